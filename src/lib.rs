//! # poselink
//!
//! Streams live human pose (33 BlazePose landmarks per frame) and audio off edge
//! devices, through a relay hub that holds rooms, to every member of the room.
//!
//! The crate is built in layers, each in its own module, each knowing nothing of the
//! layers above it:
//!
//! - [`proto`] — the wire protocol: [`PoseFrame`](proto::PoseFrame),
//!   [`AudioChunk`](proto::AudioChunk), the message kinds, the envelope with its
//!   CRC-32, the quantised keyframe/delta pose codec, validation. It is `no_std`,
//!   allocates nothing and does no IO: bytes in, bytes out, into buffers the caller
//!   owns. Every byte on the wire goes through it, on the edge board, in the hub and
//!   in every consumer.
//! - [`queue`] (with `std`) — the send queue: priorities, latest-wins pose frames,
//!   lowest priority dropped first, stale pose dropped, every drop counted.
//! - [`rate`] — a token bucket (bandwidth and flood limits), `no_std`, integer-only.
//! - [`sync`] — media sync for one sender, `no_std`, allocation-free, sans-IO:
//!   [`ClockSync`](sync::ClockSync) (the hub's clock offset from ping/pong, smallest
//!   round trip wins), [`JitterBuffer`](sync::JitterBuffer) (one audio stream put
//!   back in order, duplicates and latecomers dropped, released at a fixed play-out
//!   delay, losses reported as gaps) and [`MediaSync`](sync::MediaSync) (that
//!   sender's pose frames and audio on one timeline, released in capture-time order).
//! - [`room`] (with `std`) — the room registry: rooms, members, roles and what each
//!   role may do, empty rooms kept for a grace period; sans-IO like `proto`.
//! - [`token`] (with `std`) — HS256 JWT access tokens: mint, verify against an
//!   injected clock, and what they grant.
//! - [`ws`] (with `std`) — WebSocket framing on preallocated buffers: parse and
//!   check frames in place (a server's rules for client frames, a client's for
//!   server frames), fragmentation rules, server and masked client frame headers.
//!
//! - [`client`] (with `std`) — the client session, sans-IO: hello and welcome,
//!   joins and their rejoin after a reconnect, the audio replay window, the
//!   heartbeat, the reconnect backoff and keyframe requests, over bytes its
//!   driver moves. The engine and the load generator both run on it.
//!
//! On top of these, the IO drivers — the only code that touches sockets,
//! threads or the clock:
//!
//! - [`hub`] (with `std`) — the relay: one `mio` loop, a slot table of
//!   connections, sessions and rooms, per-receiver bounded queues over a shared
//!   block pool, keyframe cache, heartbeats, limits, `/metrics`.
//! - [`engine`] (with `std`) — the edge engine a capture app links: lock-free
//!   hand-over of frames, a sans-IO core that queues and rate-limits them and
//!   hands received media back, and one `mio` loop that moves the bytes of its
//!   client session.
//! - [`loadgen`] (with `std`) — the load generator of `poselink bench`: many
//!   client sessions per thread, one `mio` poll each.
//! - [`monitor`] (with `std`) — sans-IO performance monitoring for either driver:
//!   latency percentiles over a sliding time window, throughput, fps, system
//!   samples, drops and errors by kind, JSON reports and once-per-crossing alerts.
//!
//! Without the `std` feature the crate is `no_std` and contains the protocol core
//! only, which is what a bare-metal build (for example `thumbv7em-none-eabihf`) links.
//!
//! Features: `std` (default) for everything that needs an operating system; `log`
//! (default) or `defmt` for logging, never both; `lz4` (default) for compressing
//! payloads above a size threshold.
//!
//! ```
//! use poselink::proto::{PoseEncoder, PoseDecoder, PoseFrame, EncoderConfig, Packet, Message};
//!
//! let mut frame = PoseFrame::zeroed();
//! frame.seq = 1;
//! frame.capture_ts_us = 1_000_000;
//! for lm in frame.landmarks.iter_mut() {
//!     lm.x = 0.5;
//!     lm.y = 0.25;
//!     lm.visibility = 1.0;
//!     lm.presence = 1.0;
//! }
//! let mut encoder = PoseEncoder::new(EncoderConfig::default());
//! let mut wire = [0u8; 1024];
//! let len = encoder.encode(&frame, 7, 3, &mut wire).unwrap();
//!
//! let packet = Packet::new_checked(&wire[..len]).unwrap();
//! let mut decoder = PoseDecoder::new();
//! let mut scratch = [0u8; 2048];
//! match Message::parse(&packet, &mut scratch).unwrap() {
//!     Message::Pose(pose) => {
//!         let got = decoder.decode(&packet.header(), &pose).unwrap();
//!         assert!((got.landmarks[0].x - 0.5).abs() <= 2.5e-4);
//!     }
//!     _ => unreachable!(),
//! }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]
// No unsafe code of our own; the one exception is the `multiversion` expansion in
// the pose codec (runtime CPU-feature dispatch), allowed there explicitly.
#![deny(unsafe_code)]

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!("the `log` and `defmt` features are exclusive: enable one logging backend only");

#[macro_use]
mod macros;

pub mod proto;
pub mod rate;
pub mod sync;

#[cfg(feature = "std")]
pub mod client;
#[cfg(feature = "std")]
pub mod engine;
#[cfg(feature = "std")]
pub mod hub;
#[cfg(feature = "std")]
pub mod loadgen;
#[cfg(feature = "std")]
pub mod monitor;
#[cfg(feature = "std")]
pub mod queue;
#[cfg(feature = "std")]
pub mod room;
#[cfg(feature = "std")]
pub mod token;
#[cfg(feature = "std")]
pub mod ws;

#[cfg(all(test, feature = "std"))]
mod tests;
