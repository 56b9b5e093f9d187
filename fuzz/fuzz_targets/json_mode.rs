//! Arbitrary bytes as the texts a JSON-mode client sends a hub core, beside a
//! binary member of the same room: see `src/json_harness.rs` for what is
//! checked. One core lives across inputs (as `decode`'s decoder does): making
//! one costs more than most inputs.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../src/json_harness.rs"]
mod json_harness;

thread_local! {
    static HARNESS: RefCell<json_harness::JsonHarness> = RefCell::new(json_harness::JsonHarness::new());
}

fuzz_target!(|data: &[u8]| {
    HARNESS.with(|h| h.borrow_mut().run(data));
});
