//! Tier 3, the edge engine against a real hub over loopback sockets: what is
//! about the network — a hub killed mid-stream and restarted on the same port,
//! the bandwidth limit on a real socket, the order of drops. The session's
//! decisions themselves are simulated in memory (`src/tests/engine`).
//!
//! - [`basic`]: join, publish pose and audio, receive them in another engine;
//! - [`cluster_failover`]: a board's hub of a cluster SIGKILLed: it publishes
//!   through another hub of the cluster, audio exactly once;
//! - [`failover`]: a SIGKILLed hub: both engines move to the next hub of their
//!   list, audio exactly once;
//! - [`network`]: reconnect and restore, the bandwidth limit, priorities;
//! - [`outage`]: a 2 s hub outage: audio exactly once, counts that agree;
//! - [`seed_load`]: the seed's 1 000-send CPU and memory figures;
//! - [`tls`]: the same over `wss://`, and certificates refused by name;
//! - [`uplink`]: a board's uplink in bytes per second, PCM16 and Opus.
#![cfg(feature = "std")]

#[path = "../common/mod.rs"]
mod common;

mod basic;
mod cluster_failover;
mod failover;
mod network;
mod outage;
mod seed_load;
mod tls;
#[cfg(feature = "opus")] // without it the engine sends PCM16
mod uplink;
