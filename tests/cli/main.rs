//! Tier 3, the programs as users run them: the `poselink` binary as a
//! subprocess, the Python JSON-mode example, and the viewer in headless
//! Chromium. Each subprocess is bounded by a timeout. (`cargo xtask test`
//! installs Chromium, Node.js and Python's `websockets` when they are missing.)
//!
//! - [`args`]: `token`, argument and configuration errors, help, the sample config;
//! - [`bench`]: `poselink bench` (its JSON line, audio, `--hub`, `--sweep`);
//! - [`demo`]: `poselink demo`, end to end;
//! - [`send_watch`]: `poselink send` and `watch`, and the recording they make;
//! - [`python_json`]: `examples/python/json_client.py` against a Rust engine;
//! - [`viewer_browser`]: the viewer page drawing the moving skeleton.
#![cfg(feature = "std")]

#[path = "../common/mod.rs"]
mod common;

mod args;
mod bench;
mod demo;
mod python_json;
mod send_watch;
mod viewer_browser;
