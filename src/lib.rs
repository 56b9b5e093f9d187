//! # poselink
//!
//! Streams live human pose (33 BlazePose landmarks per frame) and audio off edge
//! devices, through a relay hub that holds rooms, to every member of the room.
//!
//! ## Two kinds of module
//!
//! The crate is built in layers, each in its own module, each knowing nothing of
//! the layers above it. Every module is one of two kinds, and a reader can tell
//! which from its place:
//!
//! **Sans-IO state machines** (quinn-proto's shape): no socket, no thread, no
//! clock, no `/proc`. Time is an argument (`now`, µs on any monotonic clock),
//! inputs are `handle_*` calls or plain methods, outputs are polled (`poll_*`),
//! buffers are the caller's or allocated once at construction. They run the
//! same in a driver, on a microcontroller, or in a simulation with a simulated
//! clock (`src/tests`).
//!
//! - [`proto`] — the wire protocol: [`PoseFrame`](proto::PoseFrame),
//!   [`AudioChunk`](proto::AudioChunk), the message kinds, the envelope with its
//!   CRC-32, the quantised keyframe/delta pose codec, validation. `no_std`,
//!   allocation-free: bytes in, bytes out. Every byte on the wire goes through it,
//!   on the edge board, in the hub and in every consumer.
//! - [`rate`] — a token bucket (bandwidth and flood limits), `no_std`, integer-only.
//! - [`sync`] — media sync for one sender, `no_std`, allocation-free:
//!   [`ClockSync`](sync::ClockSync) (the hub's clock offset from ping/pong, smallest
//!   round trip wins), [`JitterBuffer`](sync::JitterBuffer) (one audio stream put
//!   back in order, duplicates and latecomers dropped, released at a fixed play-out
//!   delay, losses reported as gaps) and [`MediaSync`](sync::MediaSync) (that
//!   sender's pose frames and audio on one timeline, released in capture-time order).
//! - [`queue`] — the send queue: priorities, latest-wins pose frames, lowest
//!   priority dropped first, stale pose dropped, every drop counted.
//! - [`room`] — the room registry: rooms, members, roles and what each role may
//!   do, empty rooms kept for a grace period.
//! - [`token`] — HS256 JWT access tokens: mint, verify against an injected clock,
//!   and what they grant.
//! - [`ws`] — WebSocket framing on preallocated buffers: frames parsed and checked
//!   in place (a server's rules for client frames, a client's for server frames),
//!   fragmentation rules, server and masked client frame headers.
//! - [`monitor`] — performance arithmetic: the crate's one latency histogram,
//!   percentiles over a sliding time window, throughput, fps, drops and errors by
//!   kind, JSON reports, once-per-crossing alerts.
//! - [`hub::core`] — the hub's protocol: sessions, rooms, the relay and its drop
//!   policy, the keyframe cache, heartbeats, limits, JSON mode.
//! - [`client`] — a client's protocol: hello, joins and their restore after a
//!   reconnect, the audio replay window, the heartbeat, the backoff, keyframe
//!   requests. The engine and the load generator both run on it: there is one
//!   client implementation.
//! - the engine's core (`engine/core.rs`, with `outbox.rs` and `playout.rs`) —
//!   what the engine decides on top of its session: the send queue and bandwidth
//!   limit, received media aligned for play-out, the counters and the monitor.
//!
//! **Drivers**: the only code that touches sockets, threads, the clock or the
//! operating system. Each is one `mio` loop that moves bytes between sockets
//! and a core, gives it the time, and acts on what it polls; none decides
//! anything about the protocol. New transports (TLS) and links (a cluster of
//! hubs) plug in here.
//!
//! - [`hub`] (`hub/driver/`) — accept, the HTTP upgrade and pages (`/metrics`,
//!   `/healthz`, `/readyz`, `/rooms`, the viewer), reads into the core's buffers, one
//!   `writev` per connection per round, timers, signals.
//! - [`engine`] (`engine/driver.rs`, and `engine/api.rs` for the app's threads)
//!   — what a capture app links: lock-free hand-over of frames, tungstenite's
//!   client handshake, the socket, the OS's CPU and memory figures.
//! - [`loadgen`] — the load generator of `poselink bench`: many client sessions
//!   per thread, one `mio` poll each.
//!
//! [`redact`] is what `Debug` shows of a secret that settings or a hello
//! message hold (a token, a password, a key): whether it is set, never its
//! text.
//!
//! Without the `engine` feature the crate is `no_std` and contains the protocol
//! core only, which is what a bare-metal build (for example `thumbv7em-none-eabihf`)
//! links.
//!
//! Features: `std` (default) for everything that needs an operating system, the
//! union of `engine` (the edge engine and the layers it runs on: what a capture
//! app, the C API and the Python module link), `hub` (the relay hub and the load
//! generator: [`hub`], [`loadgen`], [`room`], [`token`]) and `cli` (the `poselink`
//! binary's own dependencies); `log` (default) or `defmt` for logging, never both;
//! `lz4` (default) for compressing payloads above a size threshold; `opus` for Opus
//! audio.
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
#![cfg_attr(not(feature = "engine"), no_std)]
#![deny(missing_docs)]
// No unsafe code of our own; the one exception is the pose codec's runtime CPU
// dispatch (calling a build compiled for AVX2 once the CPU is known to have it),
// allowed there explicitly.
#![deny(unsafe_code)]

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!("the `log` and `defmt` features are exclusive: enable one logging backend only");

#[macro_use]
mod macros;

pub mod proto;
pub mod rate;
pub mod sync;

#[cfg(feature = "engine")]
pub mod client;
#[cfg(feature = "engine")]
pub mod engine;
#[cfg(feature = "hub")]
pub mod hub;
#[cfg(feature = "hub")]
pub mod loadgen;
#[cfg(feature = "engine")]
pub mod monitor;
#[cfg(feature = "engine")]
pub mod queue;
pub mod redact;
#[cfg(feature = "hub")]
pub mod room;
#[cfg(feature = "engine")]
pub mod tls;
#[cfg(feature = "hub")]
pub mod token;
#[cfg(feature = "engine")]
pub mod ws;

#[cfg(all(test, feature = "hub"))]
mod tests;
