//! Arbitrary bytes as a room registry's limits and a sequence of operations on
//! it, checked against a model after every one: see `src/room_harness.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/room_harness.rs"]
mod room_harness;

fuzz_target!(|data: &[u8]| {
    room_harness::run(data);
});
