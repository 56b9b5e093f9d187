//! Arbitrary bytes as a hello's token, and as the claims of a token signed with
//! the right key: see `src/token_harness.rs` for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/token_harness.rs"]
mod token_harness;

fuzz_target!(|data: &[u8]| {
    token_harness::run(data);
});
