//! The edge engine: what a capture app links. [`EdgeEngine::start`] allocates
//! every buffer and starts one thread running one `mio` loop that owns the
//! connection to the hub. The capture thread and an audio thread hand frames over
//! with [`EngineHandle::send_pose`] and [`EngineHandle::send_audio`]: a push into
//! a preallocated lock-free ring (crossbeam's `ArrayQueue`) and, if the loop is
//! asleep with no wake-up due soon, one `mio::Waker` wake — no allocation, no
//! lock, no waiting. The loop paces its sleep on the capture rate (`pacer.rs`),
//! so at a camera's steady rate the call makes no system call: the frame waits
//! at most 2 ms for a wake-up the loop had planned.
//!
//! The loop drains the rings into the send queue (priorities; a newer pose frame
//! of a room and person replaces an unsent older one; pose frames older than
//! `max_pose_age_ms` are dropped; every drop counted), lets the token bucket decide
//! what may leave (the bandwidth limit), encodes with the pose codec at send time
//! (so a thinned stream's deltas refer to what was actually sent), and writes
//! masked WebSocket frames through a bounded transmit buffer. Audio chunks stay in
//! a replay window until the hub acknowledges them and are sent again after a
//! reconnect. The connection is kept alive with pings, found dead within two
//! heartbeat intervals, and re-made with exponential backoff and jitter; after a
//! reconnect the engine resumes its session, rejoins every room with its role and
//! reports "room restored". Given several hub URLs ([`EngineConfig::hub`]), it
//! fails over: each attempt after a failed one or a lost session goes to the
//! next hub of the list (the session decides which, [`crate::client::Session::hub`]),
//! where it rejoins and replays just the same; [`Event::Connected`] names the hub. Received pose and audio from the other members come
//! out of [`EngineHandle::poll_event`] as [`Event`]s, held in the events ring's
//! preallocated slots (no allocation per received frame or chunk).
//!
//! The layers, by file: the protocol is the client session's
//! ([`crate::client`], sans-IO, shared with the load generator); `core.rs` is
//! what the engine decides on top of it (sans-IO: the send queue and bandwidth
//! limit of `outbox.rs`, received media through `playout.rs`, the wake-ups
//! paced on the capture rate of `pacer.rs`, the counters of `metrics.rs` and
//! the monitor); `driver.rs` is the `mio` loop that moves
//! bytes between the socket and the session; `api.rs` is the app's side.
//!
//! ```no_run
//! use poselink::engine::{EdgeEngine, EngineConfig, Priority};
//! use poselink::proto::{PoseFrame, Role};
//!
//! let cfg = EngineConfig { hub: "ws://127.0.0.1:7700/".into(), ..EngineConfig::default() };
//! let (engine, thread) = EdgeEngine::start(cfg)?;
//! let room = engine.join_room("studio-1", Role::Member).expect("joined");
//! let frame = PoseFrame::zeroed(); // from the pose estimator
//! engine.send_pose(&frame, room, Priority::NORMAL).expect("queued");
//! while let Some(event) = engine.poll_event() {
//!     println!("{event:?}");
//! }
//! engine.shutdown();
//! let report = thread.join().unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```

mod api;
mod config;
mod core;
mod driver;
mod event;
mod metrics;
mod outbox;
mod pacer;
mod playout;
mod url;

pub use crate::client::{AudioReplay, Backoff, RoomId, readdress};
pub use api::{
    ControlError, EngineHandle, EngineReport, JoinError, JoinedRoom, PerformanceReport, SendError,
};
pub use config::{EngineConfig, MAX_HUBS, Priority};
pub use event::{Event, MemberSummary};
pub use metrics::{Counter, CounterTable, EngineMetrics};

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use mio::{Poll, Waker};
use poselink_hal::{Clock, MonotonicClock};

#[cfg(test)]
pub(crate) use api::OwnerAction;
use api::Shared;
#[cfg(test)]
pub(crate) use core::EngineCore;
use driver::{Driver, WAKER};
use url::HubUrl;

/// The engine's constructor.
#[derive(Debug)]
pub struct EdgeEngine;

impl EdgeEngine {
    /// Allocates everything and starts the loop on a thread named `poselink-engine`.
    pub fn start(config: EngineConfig) -> io::Result<(EngineHandle, JoinHandle<EngineReport>)> {
        let targets = HubUrl::parse_list(&config.hub)?;
        config.encoder.audio.validate().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("encoder.audio: {e}"))
        })?;
        // The roots and the CA file are read once, here: a bad file is a
        // start-up error, not a reconnect loop. (Every hub has the same scheme.)
        let tls = if targets[0].tls {
            let ca = config.ca_file.as_deref().map(std::path::Path::new);
            let cfg = crate::tls::client_config(ca)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            Some(cfg)
        } else {
            None
        };
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let clock = MonotonicClock::new();
        let shared = shared(&config, waker, Arc::new(clock));
        let now = clock.now_us();
        let seed = now ^ (Arc::as_ptr(&shared) as u64).rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
        let core = core::EngineCore::new(&config, Arc::clone(&shared), now, seed);
        let mut driver = Driver::new(
            core,
            targets,
            tls,
            config.client.clone(),
            poll,
            clock,
            config.system_stats,
        );
        let thread = std::thread::Builder::new()
            .name("poselink-engine".into())
            .spawn(move || driver.run())?;
        Ok((EngineHandle { shared }, thread))
    }

    /// The app's handle and the engine's sans-IO core, with no thread, socket
    /// or clock: the simulations (`src/tests`) drive the core in memory on a
    /// simulated clock, as the driver would, and the handle reads `clock`.
    /// (The handle's waker wakes no one.)
    #[cfg(test)]
    pub(crate) fn in_memory(
        config: &EngineConfig,
        clock: poselink_hal::MockClock,
        seed: u64,
    ) -> io::Result<(EngineHandle, EngineCore)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let now = clock.now_us();
        let shared = shared(config, waker, Arc::new(clock));
        let core = core::EngineCore::new(config, Arc::clone(&shared), now, seed);
        Ok((EngineHandle { shared }, core))
    }
}

/// The state the app's threads and the engine's loop share, sized by `config`.
fn shared(config: &EngineConfig, waker: Waker, clock: Arc<dyn Clock + Send + Sync>) -> Arc<Shared> {
    Arc::new(Shared {
        poses: ArrayQueue::new(config.pose_ring.max(1)),
        audio: ArrayQueue::new(config.audio_ring.max(1)),
        commands: ArrayQueue::new(64),
        events: ArrayQueue::new(config.events_capacity.max(16)),
        waker,
        wake_pending: CachePadded::new(AtomicBool::new(false)),
        park_until: CachePadded::new(AtomicU64::new(api::RUNNING)),
        clock,
        stop: AtomicBool::new(false),
        stopped: AtomicBool::new(false),
        ack_events: AtomicBool::new(false),
        counters: CounterTable::default(),
        join_timeout: Duration::from_millis(config.join_timeout_ms),
        audio_encoding: config.encoder.audio,
    })
}
