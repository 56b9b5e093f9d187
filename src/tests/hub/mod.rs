//! Simulations of the hub core: a [`Core`](crate::hub::core::Core) and scripted
//! peers in memory, on a clock the test advances (no sockets, no sleeps, no
//! threads). `util` is the harness; the rest go by concern.

mod bad_bursts;
mod byte_flood;
mod churn;
mod close_after_media;
mod cluster;
mod json_audio;
mod media_checks;
mod quotas;
mod read_edges;
mod relay;
mod rooms;
mod sessions;
mod takeover;
mod util;
mod wire;
