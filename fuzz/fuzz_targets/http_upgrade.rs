//! Arbitrary bytes as an HTTP request head on the hub's port, as they are and
//! behind the start of a valid WebSocket upgrade: see `src/http_harness.rs`
//! for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/http_harness.rs"]
mod http_harness;

fuzz_target!(|data: &[u8]| {
    http_harness::run(data);
});
