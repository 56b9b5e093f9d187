//! Tier 3, the protocol through the crate's public API — one test binary, one
//! module per concern (and one link, not five):
//!
//! - [`validation`]: one test per validation error, with its sentence;
//! - [`doc`]: `docs/PROTOCOL.md`'s worked examples and tables against the codec;
//! - [`props`]: property tests (round trips, losses, no panic on any input);
//! - [`wire_size`]: the mean pose message size on synthetic motion;
//! - [`real_motion`]: size and error bound on public motion-capture recordings;
//! - [`web_decoder`]: the browser's JS module against the Rust codec (Node.js).
//!
//! Everything but the JS test also runs on the portable `no_std` build of the
//! core (`--no-default-features --features log,lz4`).

/// The worked examples of `docs/PROTOCOL.md`, built by the real encoders (also
/// `cargo run --example wire_examples`).
#[path = "../../examples/wire_examples.rs"]
#[allow(dead_code)]
mod wire_examples;

mod doc;
mod props;
mod real_motion;
mod validation;
#[cfg(all(feature = "std", feature = "lz4"))]
mod web_decoder;
mod wire_size;
