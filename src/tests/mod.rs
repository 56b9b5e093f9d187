//! Tier 2: deterministic simulations. The sans-IO cores — the hub's core and the
//! client session the engine and the load generator share — run here in memory,
//! driven by a simulated clock: no sockets, no threads, no sleeps, so a test of a
//! heartbeat timeout or of a resume after the grace period runs in microseconds
//! and gives the same answer on every machine (quinn-proto's `src/tests/` shape).
//!
//! - `hub`: the hub core against scripted raw peers;
//! - `engine`: the client session against a scripted fake hub;
//! - `world`: the real hub core and real engines (handle, engine core, session)
//!   together, with cut connections, partitions and hub restarts.
//!
//! Socket tests in `tests/` stay for what is about sockets.

mod codec_edges;
mod engine;
mod hub;
mod world;
