//! Tier 3, the hub over real sockets on 127.0.0.1 — what is about the network:
//! the HTTP upgrade, framing on a real TCP stream, timeouts against a real
//! clock, slow and vanished peers, many connections, signals. The protocol
//! decisions themselves are simulated in memory (`src/tests/hub`). One test
//! binary, one module per concern:
//!
//! - [`auth`]: tokens, the first message, the hello timeout, what a token lets a join do;
//! - [`bad_input`]: garbage, framing violations, floods, vanishing peers, shutdown;
//! - [`capacity`]: the connection table's limit;
//! - [`cluster`]: hubs joined through a real `nats-server`: media and members across hubs, the broker lost and back, malformed cluster messages, kicks and closes, a hub's goodbye;
//! - [`cluster_tls`]: the broker link secured: TLS with a private CA, client certificates, a user and password, a token; each refusal said, counted, and the hub relaying alone;
//! - [`flood`]: a flooder closed within seconds beside an honest pair;
//! - [`json`]: JSON mode beside a binary engine;
//! - [`load`]: a stuck receiver beside a fast one; 500 connections;
//! - [`memory`]: every slot filled, the stated memory ceiling holds; churn gives everything back;
//! - [`resume`]: a session resumed after a reconnect;
//! - [`rooms`]: sessions, rooms, roles, the relay, keyframes, audio acks, limits;
//! - [`signal`]: the `poselink hub` binary and SIGTERM;
//! - [`tls`]: a hub with a certificate: TLS sessions and pages, mismatches, bad records, reload.
#![cfg(feature = "std")]

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod bad_input;
mod capacity;
mod cluster;
mod cluster_tls;
mod flood;
mod json;
mod load;
mod memory;
mod resume;
mod rooms;
mod signal;
mod tls;
