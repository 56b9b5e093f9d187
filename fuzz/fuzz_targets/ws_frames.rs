//! Arbitrary bytes as a WebSocket byte stream, read as the hub reads a client's
//! frames or as an engine reads the hub's (the first byte chooses): see
//! `src/ws_harness.rs` for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/ws_harness.rs"]
mod ws_harness;

fuzz_target!(|data: &[u8]| {
    ws_harness::run(data);
});
