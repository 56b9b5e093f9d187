//! The hub's counters and its relay-latency histogram: plain integers bumped on
//! the loop's thread (no atomics, no locks), rendered as Prometheus text when
//! `GET /metrics` asks. Beside the totals, a [`PerformanceMonitor`] keeps the
//! recent view (rates, latency percentiles and system samples over the last ten
//! seconds, alerts), exposed as `poselink_window_*` gauges and as the JSON
//! report of `GET /report`. The hub's core counts (allocation-free); the driver
//! renders, on its thread, when a page asks (rendering allocates, and reads the
//! process's figures from `/proc/self`).

use std::fmt::Write;

use crate::monitor::{LatencyHistogram, PerformanceMonitor};
use crate::proto::ErrorCode;

/// Why the hub dropped a media message for a receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The receiver's queue was full: its oldest pose frame went.
    SlowPose = 0,
    /// The receiver's queue was full and held no pose: its oldest audio went.
    SlowAudio = 1,
    /// A pose delta the receiver could not decode (it lost the reference frame and
    /// waits for a keyframe).
    AwaitingKeyframe = 2,
    /// An audio chunk the publisher had already sent (a replay after reconnecting).
    DuplicateAudio = 3,
    /// A message refused because its sender exceeded its rate limit.
    RateLimited = 4,
}

const DROP_NAMES: [&str; 5] = [
    "slow_receiver_pose",
    "slow_receiver_audio",
    "awaiting_keyframe",
    "duplicate_audio",
    "rate_limited",
];

/// Failures below the protocol, counted beside the protocol's error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Bytes that are not an HTTP request, or a request that is not a WebSocket
    /// upgrade and not a known path.
    Http = 0,
    /// The upgrade or the hello did not arrive in time.
    HandshakeTimeout = 1,
    /// A WebSocket framing rule was broken (unmasked frame, bad opcode, …).
    WebSocket = 2,
    /// No bytes from the peer for three heartbeat intervals.
    HeartbeatTimeout = 3,
    /// The receiver accepted no bytes for the stuck limit, or let its control
    /// buffer fill.
    SlowConsumer = 4,
    /// A connection arrived while every slot was taken.
    HubFull = 5,
    /// A text (not binary) WebSocket message.
    TextMessage = 6,
    /// A socket error.
    Io = 7,
    /// A TLS handshake or record failed (an untrusted client, garbage, a
    /// truncated record).
    Tls = 8,
    /// A plain client on the TLS port, or a TLS client on a plain port.
    TlsMismatch = 9,
}

const FAULT_NAMES: [&str; 10] = [
    "http",
    "handshake_timeout",
    "websocket",
    "heartbeat_timeout",
    "slow_consumer",
    "hub_full",
    "text_message",
    "io",
    "tls",
    "tls_mismatch",
];

/// Upper bounds of the latency histogram's buckets, in microseconds.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// The relay latency: the crate's one [`LatencyHistogram`] for the quantiles,
/// and beside it a count per fixed `/metrics` bucket ([`LATENCY_BUCKETS_US`]):
/// Prometheus' `le` buckets must be exact at their bounds, and round bounds
/// such as 50 µs fall inside the histogram's log-linear buckets. Recording is a
/// few integer operations; nothing allocates.
#[derive(Clone, Debug, Default)]
pub struct RelayLatency {
    histogram: LatencyHistogram,
    buckets: [u64; LATENCY_BUCKETS_US.len() + 1],
}

impl RelayLatency {
    /// Counts one sample, µs.
    #[inline]
    pub fn record(&mut self, us: u64) {
        self.buckets[LATENCY_BUCKETS_US.partition_point(|&b| b < us)] += 1;
        self.histogram.record(us);
    }

    /// Samples counted.
    pub fn count(&self) -> u64 {
        self.histogram.count()
    }

    /// The quantiles: every sample since the hub started.
    pub fn histogram(&self) -> &LatencyHistogram {
        &self.histogram
    }
}

/// Everything the hub counts.
#[derive(Clone, Debug, Default)]
pub struct HubStats {
    /// Connections accepted since start.
    pub accepted: u64,
    /// Sessions opened (hello accepted) since start.
    pub sessions_opened: u64,
    /// Messages received, by kind: pose, audio, control.
    pub messages_in: [u64; 3],
    /// Bytes received (WebSocket payloads).
    pub bytes_in: u64,
    /// Media messages delivered (written whole to a receiver's socket).
    pub delivered: u64,
    /// Messages written, control and media.
    pub messages_out: u64,
    /// Bytes written (everything, frame headers included).
    pub bytes_out: u64,
    /// Media dropped, by [`DropReason`].
    pub drops: [u64; 5],
    /// Errors sent to peers, by protocol error code (index = code).
    pub errors: [u64; 17],
    /// Failures below the protocol, by [`Fault`].
    pub faults: [u64; 10],
    /// Cached keyframes sent to joiners and to receivers that asked.
    pub keyframes_served: u64,
    /// Keyframe requests forwarded to publishers.
    pub keyframe_requests: u64,
    /// Rooms removed after their grace period.
    pub rooms_expired: u64,
    /// Time from reading a media message to handing it to a receiver's socket.
    pub relay_latency: RelayLatency,
    /// The cluster link's counters (all 0 for a hub alone).
    pub cluster: super::core::ClusterStats,
    /// The recent view: relay latency, message and byte rates, pose fps in,
    /// system samples, drops and errors by kind, over the monitor's window.
    pub monitor: PerformanceMonitor,
}

impl HubStats {
    /// Counts a drop.
    #[inline]
    pub fn count_drop(&mut self, why: DropReason) {
        self.drops[why as usize] += 1;
        self.monitor.record_drop(DROP_NAMES[why as usize]);
    }

    /// Counts a fault.
    pub fn count_fault(&mut self, what: Fault) {
        self.faults[what as usize] += 1;
        // A slow consumer is also counted as the error sent to it.
        if what != Fault::SlowConsumer {
            self.monitor.record_error(FAULT_NAMES[what as usize]);
        }
    }

    /// Counts an error sent to a peer.
    pub fn count_error(&mut self, code: ErrorCode) {
        let i = (code.0 as usize).min(self.errors.len() - 1);
        self.errors[i] += 1;
        self.monitor.record_error(code.name());
    }

    /// Drops of one kind so far.
    pub fn drops_of(&self, why: DropReason) -> u64 {
        self.drops[why as usize]
    }

    /// Faults of one kind so far.
    pub fn faults_of(&self, what: Fault) -> u64 {
        self.faults[what as usize]
    }
}

/// Levels sampled when rendering.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    /// Connections open.
    pub connections: usize,
    /// Of them, sessions (hello accepted).
    pub sessions: usize,
    /// Rooms (empty ones in their grace period included).
    pub rooms: usize,
    /// Relay blocks in use.
    pub blocks_in_use: usize,
    /// Relay blocks in all.
    pub blocks: usize,
    /// Media messages queued over all receivers.
    pub queued: usize,
    /// The hub's memory ceiling, bytes (0: not known to whoever renders).
    pub memory_ceiling: u64,
    /// In a cluster: whether the broker is reachable (`None`: a hub alone).
    pub cluster_up: Option<bool>,
    /// In a cluster: members of other hubs known here.
    pub remote_members: usize,
    /// In a cluster: other hubs heard from.
    pub cluster_nodes: usize,
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

/// Renders the Prometheus text exposition (format 0.0.4); `now_us` is the
/// monitor's clock.
pub fn render(stats: &HubStats, g: &Gauges, now_us: u64, out: &mut String) {
    gauge(
        out,
        "poselink_connections",
        "Connections open.",
        g.connections as f64,
    );
    gauge(
        out,
        "poselink_sessions",
        "Connections with an accepted hello.",
        g.sessions as f64,
    );
    gauge(
        out,
        "poselink_rooms",
        "Rooms, empty ones in their grace period included.",
        g.rooms as f64,
    );
    gauge(
        out,
        "poselink_relay_blocks_in_use",
        "Relay message blocks in use.",
        g.blocks_in_use as f64,
    );
    gauge(
        out,
        "poselink_relay_blocks",
        "Relay message blocks reserved.",
        g.blocks as f64,
    );
    if g.memory_ceiling > 0 {
        gauge(
            out,
            "poselink_memory_ceiling_bytes",
            "The most resident memory this hub can hold for its configuration (stated at start).",
            g.memory_ceiling as f64,
        );
    }
    if let Some(up) = g.cluster_up {
        gauge(
            out,
            "poselink_cluster_broker_up",
            "1 while the cluster's broker is reachable; 0: relaying between this hub's own members only.",
            up as u8 as f64,
        );
        gauge(
            out,
            "poselink_cluster_nodes",
            "Other hubs of the cluster heard from within the node timeout.",
            g.cluster_nodes as f64,
        );
        gauge(
            out,
            "poselink_cluster_remote_members",
            "Members of other hubs in rooms this hub has members of.",
            g.remote_members as f64,
        );
        let c = &stats.cluster;
        for (name, help, v) in [
            (
                "poselink_cluster_messages_out_total",
                "Messages queued for the broker.",
                c.messages_out,
            ),
            (
                "poselink_cluster_messages_in_total",
                "Messages from the broker handled.",
                c.messages_in,
            ),
            (
                "poselink_cluster_malformed_total",
                "Messages from the broker refused as malformed.",
                c.malformed,
            ),
            (
                "poselink_cluster_media_dropped_total",
                "Media not relayed across hubs: a full queue or ring.",
                c.media_dropped,
            ),
            (
                "poselink_cluster_control_dropped_total",
                "Control messages lost to a full queue or ring (logged).",
                c.control_dropped,
            ),
            (
                "poselink_cluster_unknown_sender_total",
                "Media from a remote member not (yet) known here, dropped.",
                c.unknown_sender,
            ),
            (
                "poselink_cluster_nodes_lost_total",
                "Other hubs dropped after the node timeout.",
                c.nodes_lost,
            ),
            (
                "poselink_cluster_remotes_refused_total",
                "Remote members not taken for want of room.",
                c.remotes_refused,
            ),
        ] {
            counter(out, name, help, v);
        }
        let name = "poselink_cluster_broker_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Failed attempts to connect to the broker, by reason: tls (the handshake, e.g. an untrusted certificate), auth (credentials refused), other (unreachable, closed), config (a setting's file unusable; no attempt follows).\n# TYPE {name} counter"
        );
        for (reason, v) in ["tls", "auth", "other", "config"]
            .iter()
            .zip(c.broker_failures)
        {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {v}");
        }
    }
    gauge(
        out,
        "poselink_queued_messages",
        "Media messages queued over all receivers.",
        g.queued as f64,
    );
    counter(
        out,
        "poselink_connections_total",
        "Connections accepted.",
        stats.accepted,
    );
    counter(
        out,
        "poselink_sessions_total",
        "Sessions opened (hello accepted).",
        stats.sessions_opened,
    );
    let _ = writeln!(
        out,
        "# HELP poselink_messages_in_total Messages received, by kind.\n# TYPE poselink_messages_in_total counter"
    );
    for (i, k) in ["pose", "audio", "control"].iter().enumerate() {
        let _ = writeln!(
            out,
            "poselink_messages_in_total{{kind=\"{k}\"}} {}",
            stats.messages_in[i]
        );
    }
    counter(
        out,
        "poselink_bytes_in_total",
        "WebSocket payload bytes received.",
        stats.bytes_in,
    );
    counter(
        out,
        "poselink_messages_out_total",
        "Messages written (control and media).",
        stats.messages_out,
    );
    counter(
        out,
        "poselink_bytes_out_total",
        "Bytes written, frame headers included.",
        stats.bytes_out,
    );
    counter(
        out,
        "poselink_delivered_total",
        "Media messages delivered to receivers.",
        stats.delivered,
    );
    let _ = writeln!(
        out,
        "# HELP poselink_drops_total Media messages dropped, by reason.\n# TYPE poselink_drops_total counter"
    );
    for (i, n) in DROP_NAMES.iter().enumerate() {
        let _ = writeln!(
            out,
            "poselink_drops_total{{reason=\"{n}\"}} {}",
            stats.drops[i]
        );
    }
    let _ = writeln!(
        out,
        "# HELP poselink_errors_total Errors reported, by kind (protocol error codes and transport faults).\n# TYPE poselink_errors_total counter"
    );
    for code in 1..stats.errors.len() {
        let name = ErrorCode(code as u16).name();
        let _ = writeln!(
            out,
            "poselink_errors_total{{kind=\"{name}\"}} {}",
            stats.errors[code]
        );
    }
    for (i, n) in FAULT_NAMES.iter().enumerate() {
        let _ = writeln!(
            out,
            "poselink_errors_total{{kind=\"{n}\"}} {}",
            stats.faults[i]
        );
    }
    counter(
        out,
        "poselink_keyframes_served_total",
        "Cached keyframes sent to joiners and to receivers that asked.",
        stats.keyframes_served,
    );
    counter(
        out,
        "poselink_keyframe_requests_total",
        "Keyframe requests forwarded to publishers.",
        stats.keyframe_requests,
    );
    counter(
        out,
        "poselink_rooms_expired_total",
        "Empty rooms removed after their grace period.",
        stats.rooms_expired,
    );
    let (buckets, h) = (
        &stats.relay_latency.buckets,
        stats.relay_latency.histogram(),
    );
    let name = "poselink_relay_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from reading a media message to handing it to a receiver's socket.\n# TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (i, b) in LATENCY_BUCKETS_US.iter().enumerate() {
        cumulative += buckets[i];
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            *b as f64 / 1e6
        );
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
    let _ = writeln!(out, "{name}_sum {}", h.sum() as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", h.count());
    for (q, label) in [(0.5, "0.5"), (0.99, "0.99"), (0.999, "0.999")] {
        let _ = writeln!(
            out,
            "poselink_relay_latency_quantile_seconds{{quantile=\"{label}\"}} {}",
            h.quantile(q) as f64 / 1e6
        );
    }
    process_metrics(out);
    // Rendered on the loop's thread, so this is the loop's own CPU time (the
    // process's may include an embedding application's threads).
    if let Some(us) = poselink_hal::clock::thread_cpu_us() {
        let name = "poselink_loop_cpu_seconds_total";
        let _ = writeln!(
            out,
            "# HELP {name} CPU time used by the hub's event loop thread.\n# TYPE {name} counter\n{name} {}",
            us as f64 / 1e6
        );
    }
    window_metrics(&stats.monitor, now_us, out);
}

/// The monitor's recent view, one gauge per figure of
/// [`PerformanceMonitor::get_performance_metrics`] (figures not known yet are
/// left out).
fn window_metrics(monitor: &PerformanceMonitor, now_us: u64, out: &mut String) {
    let secs = monitor.config().slot_us as f64 * monitor.config().slots as f64 / 1e6;
    for (name, value) in monitor.get_performance_metrics(now_us) {
        let _ = writeln!(
            out,
            "# HELP poselink_window_{name} {name} over the last {secs} s (poselink performance monitor; see GET /report).\n# TYPE poselink_window_{name} gauge\nposelink_window_{name} {value}"
        );
    }
}

/// The standard process metrics, read from `/proc/self` (Linux; absent elsewhere).
fn process_metrics(out: &mut String) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name (which may contain spaces) start at ") ".
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // The kernel's USER_HZ is 100 on every Linux ABI this runs on.
    let cpu = (ticks(11) + ticks(12)) as f64 / 100.0;
    gauge(
        out,
        "process_cpu_seconds_total",
        "User and system CPU time, seconds.",
        cpu,
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for (key, name, help) in [
            (
                "VmRSS:",
                "process_resident_memory_bytes",
                "Resident memory, bytes.",
            ),
            (
                "VmHWM:",
                "process_resident_memory_max_bytes",
                "Peak resident memory, bytes.",
            ),
        ] {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                gauge(out, name, help, (kib * 1024) as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let mut h = RelayLatency::default();
        for us in [10, 30, 30, 700, 2_000_000] {
            h.record(us);
        }
        assert_eq!(h.count(), 5);
        // 30 lies in the fine bucket [30, 31].
        assert_eq!(h.histogram().quantile(0.6), 31);
        let mut s = String::new();
        let mut stats = HubStats {
            relay_latency: h,
            ..HubStats::default()
        };
        stats.monitor.record_latency_us(1_000, 700);
        stats.monitor.record_out(1_000, 100);
        stats.count_drop(DropReason::SlowPose);
        render(&stats, &Gauges::default(), 500_000, &mut s);
        assert!(
            s.contains("poselink_relay_latency_seconds_bucket{le=\"0.00005\"} 3"),
            "{s}"
        );
        assert!(s.contains("poselink_relay_latency_seconds_count 5"));
        assert!(s.contains("poselink_errors_total{kind=\"rate_limited\"} 0"));
        assert!(s.contains("poselink_relay_latency_quantile_seconds{quantile=\"0.99\"} 2"));
        // The monitor's window: one latency sample of 700 µs (12.5 % buckets).
        let p99 = s
            .lines()
            .find_map(|l| l.strip_prefix("poselink_window_latency_p99_ms "))
            .expect("window p99 exported");
        let p99: f64 = p99.parse().unwrap();
        assert!((0.7..=0.79).contains(&p99), "{p99}");
        assert!(s.contains("poselink_window_drops 1\n"), "{s}");
    }
}
