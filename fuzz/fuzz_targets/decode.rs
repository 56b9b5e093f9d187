//! Arbitrary bytes through the whole receive path: `Packet::new_checked` →
//! `Packet::message` → `PoseDecoder::decode`, as they are, with the CRC resealed,
//! and XORed over a valid pose delta (see `src/harness.rs`). One decoder lives
//! across all inputs, reset by a valid keyframe at the start of each run.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../src/harness.rs"]
mod harness;

thread_local! {
    static HARNESS: RefCell<harness::DecodeHarness> = RefCell::new(harness::DecodeHarness::new());
}

fuzz_target!(|data: &[u8]| {
    HARNESS.with(|h| h.borrow_mut().run(data));
});
