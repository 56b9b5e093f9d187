//! The engine's settings ([`EngineConfig`]: every capacity decided here, read
//! once at start) and the send priorities ([`Priority`]).

use std::io;

use crate::client::{Receive, SessionConfig};
use crate::monitor::MonitorConfig;
use crate::proto::EncoderConfig;

/// The most hub URLs an engine takes (see [`EngineConfig::hub`]).
pub const MAX_HUBS: usize = 8;

/// Send priorities: higher goes first; when the queue is full the lowest goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority(pub u8);

impl Priority {
    /// Background data.
    pub const LOW: Priority = Priority(64);
    /// The default.
    pub const NORMAL: Priority = Priority(128);
    /// Latency-critical data.
    pub const HIGH: Priority = Priority(192);
}

/// The engine's settings; every capacity is decided here.
#[derive(Clone, derive_more::Debug)]
pub struct EngineConfig {
    /// The hub's URL, `ws://host:port/`, or `wss://host:port/` for TLS; or
    /// several, separated by commas, in failover order (at most [`MAX_HUBS`],
    /// all `ws://` or all `wss://`; see [`EngineConfig::with_hubs`]). The
    /// engine connects to the first; when a connection attempt fails or the
    /// session is lost it tries the next one (round robin), rejoins its rooms
    /// there and replays the unacknowledged audio.
    pub hub: String,
    /// For `wss://`: a PEM file of certificate authorities to trust besides
    /// the system's roots (a private CA, or a hub's self-signed certificate).
    pub ca_file: Option<String>,
    /// The JWT for the hello (empty for a `--dev` hub).
    #[debug("{:?}", crate::redact::text(token))]
    pub token: String,
    /// A name for the hub's logs.
    pub client: String,
    /// Rooms joined at once. Default 8.
    pub max_rooms: usize,
    /// Pose streams (persons) per room. Default 4.
    pub max_persons: usize,
    /// Pose frames the capture thread may hand over before the loop takes them
    /// (a newer frame then replaces the oldest). Default 64.
    pub pose_ring: usize,
    /// Audio chunks that may wait in the hand-over ring. Default 128.
    pub audio_ring: usize,
    /// Entries of the send queue (audio waits here while the connection is down).
    /// Default 464: 400 entries of 20 ms audio chunks, 8 s, which covers an
    /// outage up to the longest reconnect wait (`reconnect_max_ms`, 5 s) plus a
    /// connect (`connect_timeout_ms`, 3 s), and room for pose frames. Audio
    /// beyond it is evicted (counted as `evicted`): size it with
    /// [`EngineConfig::queue_for_outage`] when you change those settings.
    /// Its ~2 KiB slots are reserved at start-up and become resident only as
    /// the queue first fills (an outage), not before.
    pub queue_capacity: usize,
    /// Pose frames older than this when their turn comes are dropped, ms. Default 100.
    pub max_pose_age_ms: u64,
    /// Bytes per second the engine may send; 0 for no limit. Default 0.
    pub bandwidth_bytes_per_sec: u64,
    /// Ping interval, ms; no answer for two intervals means the connection is dead. Default 1000.
    pub heartbeat_ms: u64,
    /// Reconnect backoff, ms. Defaults 100 and 5000.
    pub reconnect_min_ms: u64,
    /// See `reconnect_min_ms`.
    pub reconnect_max_ms: u64,
    /// Time allowed to connect, upgrade and be welcomed, ms. Default 3000.
    pub connect_timeout_ms: u64,
    /// Sent audio kept for replay until the hub acknowledges it, ms of capture
    /// time. It covers the audio sent on a connection before its loss is
    /// noticed (two heartbeats) plus the hub's acknowledgement delay. Default
    /// 3000. (Audio captured while the connection is down waits in the send
    /// queue instead: see `queue_capacity`.)
    pub audio_window_ms: u64,
    /// Events that may wait for the app (beyond it the oldest are dropped, counted). Default 1024.
    pub events_capacity: usize,
    /// How long `join_room` waits for the hub's answer, ms. Default 5000.
    pub join_timeout_ms: u64,
    /// The pose codec's settings.
    pub encoder: EncoderConfig,
    /// Pose decoders kept for received streams. Default 64.
    pub decoders: usize,
    /// Received pose and audio are held this long and released in capture-time
    /// order per sender (an audio jitter buffer, with the poses aligned to it), ms.
    /// Media that arrives after its play-out time is then dropped and reported as
    /// [`Event::AudioGap`](super::Event::AudioGap) (real-time playback). 0 (the default) hands every
    /// frame and chunk out as it arrives, once and in order, nothing dropped for
    /// lateness (recording, analysis). 60 suits playback on a LAN.
    pub playout_delay_ms: u64,
    /// Senders whose media is aligned at once (each holds about 45 KB). Default 16.
    pub max_senders: usize,
    /// The performance monitor's windows and alert thresholds (see
    /// [`EngineHandle::performance_report`](super::EngineHandle::performance_report)). Default: ten one-second slots;
    /// alerts at 90 % CPU (of one core, the whole process), 64 MiB memory growth,
    /// a 250 ms p99 round trip to the hub and an 80 °C SoC; no fps floor (set
    /// `fps_below` to the capture rate to be told when sending falls behind it).
    pub monitor: MonitorConfig,
    /// Sample the process's CPU and memory and the board's temperature once a
    /// second into the monitor (Linux `/proc` and `/sys`). Default true.
    pub system_stats: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hub: "ws://127.0.0.1:7700/".into(),
            ca_file: None,
            token: String::new(),
            client: concat!("poselink-engine/", env!("CARGO_PKG_VERSION")).into(),
            max_rooms: 8,
            max_persons: 4,
            pose_ring: 64,
            audio_ring: 128,
            // Audio submitted while the connection is down waits here: see
            // queue_for_outage.
            queue_capacity: Self::queue_for_outage(5000 + 3000),
            max_pose_age_ms: 100,
            bandwidth_bytes_per_sec: 0,
            heartbeat_ms: 1000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5000,
            connect_timeout_ms: 3000,
            audio_window_ms: 3000,
            events_capacity: 1024,
            join_timeout_ms: 5000,
            encoder: EncoderConfig::default(),
            decoders: 64,
            playout_delay_ms: 0,
            max_senders: 16,
            monitor: MonitorConfig {
                cpu_percent: Some(90.0),
                memory_growth_bytes: Some(64 << 20),
                latency_p99_us: Some(250_000),
                soc_temp_c: Some(80.0),
                ..MonitorConfig::default()
            },
            system_stats: true,
        }
    }
}

impl EngineConfig {
    /// A send queue capacity that holds `outage_ms` of 20 ms audio chunks of
    /// one room, plus 64 entries for pose frames (one per stream waits: a newer
    /// frame replaces an older one). For an outage up to the longest reconnect
    /// wait plus a connect, give `reconnect_max_ms + connect_timeout_ms`.
    ///
    /// ```
    /// use poselink::engine::EngineConfig;
    /// let d = EngineConfig::default();
    /// assert_eq!(d.queue_capacity, EngineConfig::queue_for_outage(d.reconnect_max_ms + d.connect_timeout_ms));
    /// ```
    pub const fn queue_for_outage(outage_ms: u64) -> usize {
        (outage_ms / 20) as usize + 64
    }

    /// This configuration with `urls` as its hubs, in failover order (joined
    /// into [`hub`](Self::hub)); checked when the engine starts (and by
    /// [`check_hubs`](Self::check_hubs)).
    ///
    /// ```
    /// use poselink::engine::EngineConfig;
    /// let cfg = EngineConfig::default().with_hubs(["ws://10.0.0.2:7700/", "ws://10.0.0.3:7700/"]);
    /// assert_eq!(cfg.hub, "ws://10.0.0.2:7700/,ws://10.0.0.3:7700/");
    /// assert_eq!(cfg.hub_urls().collect::<Vec<_>>(), ["ws://10.0.0.2:7700/", "ws://10.0.0.3:7700/"]);
    /// assert_eq!(cfg.check_hubs().unwrap(), 2);
    /// ```
    pub fn with_hubs<S: AsRef<str>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.hub.clear();
        for (i, u) in urls.into_iter().enumerate() {
            if i > 0 {
                self.hub.push(',');
            }
            self.hub.push_str(u.as_ref().trim());
        }
        self
    }

    /// The hub URLs of [`hub`](Self::hub), in failover order (as written,
    /// spaces around the commas trimmed; not checked).
    pub fn hub_urls(&self) -> impl Iterator<Item = &str> {
        self.hub.split(',').map(str::trim)
    }

    /// Checks the hub URLs as [`EdgeEngine::start`](super::EdgeEngine::start)
    /// does; returns how many there are. An empty list, a URL that is not
    /// `ws://` or `wss://`, a mix of the two (a board that fell back from
    /// `wss://` to `ws://` would send in the clear), a URL given twice and more
    /// than [`MAX_HUBS`] are refused with a sentence that says which.
    ///
    /// ```
    /// use poselink::engine::EngineConfig;
    /// let mixed = EngineConfig::default().with_hubs(["wss://a.example/", "ws://b.example/"]);
    /// assert!(mixed.check_hubs().unwrap_err().to_string().contains("mixes"));
    /// ```
    pub fn check_hubs(&self) -> io::Result<usize> {
        super::url::HubUrl::parse_list(&self.hub).map(|l| l.len())
    }

    /// The client session's part of the settings; `seed` seeds its masks and
    /// backoff jitter.
    pub(super) fn session(&self, seed: u64) -> SessionConfig {
        SessionConfig {
            token: self.token.clone(),
            client: self.client.clone(),
            max_rooms: self.max_rooms,
            max_persons: self.max_persons,
            heartbeat_us: self.heartbeat_ms * 1000,
            hubs: self.hub_urls().count(),
            reconnect_min_us: self.reconnect_min_ms * 1000,
            reconnect_max_us: self.reconnect_max_ms * 1000,
            connect_timeout_us: self.connect_timeout_ms * 1000,
            join_timeout_us: self.join_timeout_ms * 1000,
            audio_window_us: self.audio_window_ms * 1000,
            encoder: self.encoder,
            receive: Receive::Decode {
                decoders: self.decoders,
            },
            tx_capacity: 128 * 1024,
            rx_capacity: 96 * 1024,
            seed,
        }
    }
}
