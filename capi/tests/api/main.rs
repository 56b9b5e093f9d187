//! The C API called as a C caller calls it: NULL pointers and wrong lengths are
//! refused with a status and a message, bad values too, and the whole lifecycle
//! (create, join, send pose and audio, poll events, metrics, bandwidth limit,
//! leave, destroy) works against a real hub on 127.0.0.1. Every wait is bounded.
//!
//! - `common`: the hub, the engine wrapper and the helpers every test uses;
//! - `refusals`: NULL pointers, wrong lengths, bad values, a shut-down engine;
//! - `lifecycle`: the whole lifecycle, a refused join, many threads, version and ABI;
//! - `streaming`: the bandwidth limit and audio acks;
//! - `rooms`: an owner's and a non-owner's room management;
//! - `metrics`: metrics and the performance report;
//! - `tls`: a `wss://` hub with a private CA;
//! - `failover`: a list of two hubs, the first dead.

mod common;

mod failover;
mod lifecycle;
mod metrics;
mod refusals;
mod rooms;
mod streaming;
mod tls;
