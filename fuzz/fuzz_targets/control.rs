//! Arbitrary bytes as the payload of every control message kind behind a
//! forged valid header, with their parse → encode → parse round trip: see
//! `src/control_harness.rs` for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/control_harness.rs"]
mod control_harness;

fuzz_target!(|data: &[u8]| {
    control_harness::run(data);
});
