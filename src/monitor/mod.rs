//! Performance monitoring for an engine or a hub: sans-IO arithmetic over samples
//! the caller feeds in, with the time injected (`now_us`, any monotonic
//! microsecond clock). [`PerformanceMonitor`] keeps rolling windows of system
//! samples (CPU, memory, SoC temperature), a sliding-time-window latency
//! histogram, message and byte counters for throughput, frame counts for fps,
//! queue depth, drops and errors by kind, reconnects and memory growth since the
//! first memory sample. It reports a flat name → value list, a JSON document, and
//! threshold alerts that fire once per crossing. All memory is taken at
//! construction; the `record_*` methods and `check_alerts` allocate nothing
//! (reports may; the hub's zero-allocation test runs them on its loop).
//!
//! ## The time window
//!
//! Time is cut into slots of [`MonitorConfig::slot_us`] (one second by default)
//! held in a ring of [`MonitorConfig::slots`] (ten by default). Each slot has its
//! own fine log-linear latency histogram (exact below 16 µs, then 8 buckets per
//! power of two, so a quantile is at most 12.5 % above the true value) and its own
//! counters (messages, bytes, frames). A query merges the slots still inside the
//! window — the current slot and the `slots - 1` before it — so a sample leaves the
//! window between `(slots - 1) * slot_us` and `slots * slot_us` after it was
//! recorded. Rates (messages, bytes, fps) are the window's totals divided by the
//! time the window covers: from the start of its oldest slot (or the first time
//! the monitor saw, if later) to `now_us`.
//!
//! The parts: this module holds the configuration, the monitor and its `record_*`
//! methods; `window` the rolling statistics and the slot ring, `report` the
//! metrics list and the JSON document, `alerts` the thresholds' alerts, and
//! `histogram` the latency histogram.

mod alerts;
mod histogram;
mod report;
mod window;

pub use alerts::{Alert, AlertKind};
pub use histogram::{
    FINE_BUCKETS, LatencyHistogram, PRECISE_BUCKETS, PreciseHistogram, buckets_for,
};
use window::{KindTable, Rolling, Slot};

/// Alert thresholds and window sizes of a [`PerformanceMonitor`].
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// Samples kept per rolling window (CPU, memory, temperature). At least 1.
    pub window_samples: usize,
    /// Length of one time slot, µs. At least 1.
    pub slot_us: u64,
    /// Slots in the time window ring. At least 1.
    pub slots: usize,
    /// Distinct drop kinds and error kinds counted by name (each); further kinds
    /// are counted under `"other"`.
    pub kind_capacity: usize,
    /// Alert when the latest CPU sample is above this, percent.
    pub cpu_percent: Option<f32>,
    /// Alert when memory has grown by more than this since the first sample, bytes.
    pub memory_growth_bytes: Option<u64>,
    /// Alert when fps over the window is below this target (only once a whole
    /// slot has elapsed since the first frame).
    pub fps_below: Option<f32>,
    /// Alert when the window's p99 latency is above this, µs.
    pub latency_p99_us: Option<u64>,
    /// Alert when the latest SoC temperature is above this, °C.
    pub soc_temp_c: Option<f32>,
    /// Hysteresis as a fraction of the threshold: a raised alert clears only once
    /// the value is back past the threshold by this much (below
    /// `threshold * (1 - h)` for upper limits, above `threshold * (1 + h)` for the
    /// fps floor). Default 0.05.
    pub hysteresis: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            window_samples: 60,
            slot_us: 1_000_000,
            slots: 10,
            kind_capacity: 16,
            cpu_percent: None,
            memory_growth_bytes: None,
            fps_below: None,
            latency_p99_us: None,
            soc_temp_c: None,
            hysteresis: 0.05,
        }
    }
}

/// Collects performance samples and reports metrics, JSON and alerts.
///
/// ```
/// use poselink::monitor::{MonitorConfig, PerformanceMonitor};
///
/// let mut mon = PerformanceMonitor::new(MonitorConfig {
///     cpu_percent: Some(80.0),
///     ..MonitorConfig::default()
/// });
/// for i in 0..100u64 {
///     let now = i * 10_000; // 100 frames over one second
///     mon.record_frame(now);
///     mon.record_latency_us(now, 2_000 + i * 10);
///     mon.record_out(now, 400);
/// }
/// mon.record_system(1_000_000, Some(95.0), Some(50 << 20), None);
/// let alerts: Vec<_> = mon.check_alerts(1_000_000).collect();
/// assert_eq!(alerts.len(), 1); // CPU above 80 %
/// assert!(mon.check_alerts(1_000_000).next().is_none()); // once per crossing
///
/// let m = mon.get_performance_metrics(1_000_000);
/// let fps = m.iter().find(|(k, _)| *k == "fps").unwrap().1;
/// assert!((fps - 100.0).abs() < 1.0);
/// assert!(mon.report_json(1_000_000).contains("\"p99\""));
/// ```
#[derive(Clone, Debug)]
pub struct PerformanceMonitor {
    config: MonitorConfig,
    slots: Vec<Slot>,
    /// First and latest time seen (the clock is clamped to never go back).
    first_us: Option<u64>,
    now_us: u64,
    first_frame_us: Option<u64>,
    cpu: Rolling,
    memory: Rolling,
    temp: Rolling,
    memory_baseline: Option<u64>,
    memory_last: Option<u64>,
    queue_last: usize,
    queue_max: usize,
    drops: KindTable,
    errors: KindTable,
    reconnects: u64,
    total_in: u64,
    total_out: u64,
    /// Alert raised state, indexed like [`AlertKind::ALL`].
    raised: [bool; 5],
}

impl Default for PerformanceMonitor {
    /// A monitor with [`MonitorConfig::default`] (ten one-second slots, no alerts).
    fn default() -> Self {
        Self::new(MonitorConfig::default())
    }
}

impl PerformanceMonitor {
    /// A monitor with all its memory taken now.
    pub fn new(config: MonitorConfig) -> Self {
        let mut config = config;
        config.slot_us = config.slot_us.max(1);
        config.slots = config.slots.max(1);
        config.window_samples = config.window_samples.max(1);
        PerformanceMonitor {
            slots: (0..config.slots).map(|_| Slot::new()).collect(),
            first_us: None,
            now_us: 0,
            first_frame_us: None,
            cpu: Rolling::new(config.window_samples),
            memory: Rolling::new(config.window_samples),
            temp: Rolling::new(config.window_samples),
            memory_baseline: None,
            memory_last: None,
            queue_last: 0,
            queue_max: 0,
            drops: KindTable::new(config.kind_capacity),
            errors: KindTable::new(config.kind_capacity),
            reconnects: 0,
            total_in: 0,
            total_out: 0,
            raised: [false; 5],
            config,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Records one latency sample, µs.
    pub fn record_latency_us(&mut self, now_us: u64, us: u64) {
        self.slot(now_us).latency.record(us);
    }

    /// Records one frame (captured, sent or rendered: whatever fps should count).
    pub fn record_frame(&mut self, now_us: u64) {
        self.slot(now_us).frames += 1;
        self.first_frame_us.get_or_insert(now_us);
    }

    /// Records one message of `bytes` received.
    pub fn record_in(&mut self, now_us: u64, bytes: usize) {
        let s = self.slot(now_us);
        s.msgs_in += 1;
        s.bytes_in += bytes as u64;
        self.total_in += 1;
    }

    /// Records one message of `bytes` sent.
    pub fn record_out(&mut self, now_us: u64, bytes: usize) {
        let s = self.slot(now_us);
        s.msgs_out += 1;
        s.bytes_out += bytes as u64;
        self.total_out += 1;
    }

    /// Records `msgs` messages of `bytes` bytes in all received since the last
    /// call, for counters kept elsewhere and brought in now and then.
    pub fn record_in_many(&mut self, now_us: u64, msgs: u64, bytes: u64) {
        let s = self.slot(now_us);
        s.msgs_in += msgs;
        s.bytes_in += bytes;
        self.total_in += msgs;
    }

    /// Like [`record_in_many`](Self::record_in_many), for messages sent.
    pub fn record_out_many(&mut self, now_us: u64, msgs: u64, bytes: u64) {
        let s = self.slot(now_us);
        s.msgs_out += msgs;
        s.bytes_out += bytes;
        self.total_out += msgs;
    }

    /// Records the current queue depth (kept: the last and the maximum).
    pub fn record_queue_depth(&mut self, n: usize) {
        self.queue_last = n;
        self.queue_max = self.queue_max.max(n);
    }

    /// Counts one drop of `kind`.
    pub fn record_drop(&mut self, kind: &'static str) {
        self.drops.add(kind, 1);
    }

    /// Counts `n` drops of `kind` (counted elsewhere and brought in at once).
    pub fn record_drops(&mut self, kind: &'static str, n: u64) {
        if n > 0 {
            self.drops.add(kind, n);
        }
    }

    /// Counts one error of `kind`.
    pub fn record_error(&mut self, kind: &'static str) {
        self.errors.add(kind, 1);
    }

    /// Counts one reconnect.
    pub fn record_reconnect(&mut self) {
        self.reconnects += 1;
    }

    /// Records system samples; `None` for what is unknown on this platform. The
    /// first memory sample is the baseline for memory growth.
    pub fn record_system(
        &mut self,
        now_us: u64,
        cpu_percent: Option<f32>,
        memory_bytes: Option<u64>,
        soc_temp_c: Option<f32>,
    ) {
        self.tick(now_us);
        if let Some(c) = cpu_percent.filter(|c| c.is_finite()) {
            self.cpu.push(f64::from(c));
        }
        if let Some(m) = memory_bytes {
            self.memory_baseline.get_or_insert(m);
            self.memory_last = Some(m);
            self.memory.push(m as f64);
        }
        if let Some(t) = soc_temp_c.filter(|t| t.is_finite()) {
            self.temp.push(f64::from(t));
        }
    }

    /// Drops counted of `kind` (`"other"` includes kinds beyond the table).
    pub fn drops_of(&self, kind: &str) -> u64 {
        self.drops.get(kind)
    }

    /// Errors counted of `kind` (`"other"` includes kinds beyond the table).
    pub fn errors_of(&self, kind: &str) -> u64 {
        self.errors.get(kind)
    }

    /// Memory growth since the first memory sample, bytes (negative if shrunk).
    pub fn memory_growth_bytes(&self) -> Option<i64> {
        Some(self.memory_last? as i64 - self.memory_baseline? as i64)
    }

    /// Fps over the window; `None` before the first frame.
    pub fn fps(&self, now_us: u64) -> Option<f64> {
        self.first_frame_us?;
        let t = self.totals(now_us);
        (t.secs > 0.0).then(|| t.frames as f64 / t.secs)
    }

    /// Success rate and error rate since start, each 0..=1: operations are the
    /// messages received and sent, failures the drops and errors; success rate =
    /// operations / (operations + failures), error rate = 1 − success rate. With
    /// nothing counted, 1 and 0.
    pub fn rates(&self) -> (f64, f64) {
        let ops = (self.total_in + self.total_out) as f64;
        let fails = (self.drops.total + self.errors.total) as f64;
        if ops + fails == 0.0 {
            return (1.0, 0.0);
        }
        let s = ops / (ops + fails);
        (s, fails / (ops + fails))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn metric(m: &PerformanceMonitor, now: u64, k: &str) -> Option<f64> {
        m.get_performance_metrics(now)
            .into_iter()
            .find(|e| e.0 == k)
            .map(|e| e.1)
    }

    #[test]
    fn percentiles_match_sorted_reference_within_bucket_error() {
        let mut m = PerformanceMonitor::new(MonitorConfig::default());
        let mut x: u64 = 12345;
        let mut samples = Vec::new();
        for i in 0..5_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let us = 50 + (x >> 33) % 200_000;
            samples.push(us);
            m.record_latency_us(i * 1_000, us); // 5 s, inside the 10 s window
        }
        samples.sort_unstable();
        let now = 5 * S;
        for (k, q) in [
            ("latency_p50_ms", 0.50),
            ("latency_p95_ms", 0.95),
            ("latency_p99_ms", 0.99),
        ] {
            let rank = ((samples.len() as f64 * q).ceil() as usize).max(1) - 1;
            let truth = samples[rank] as f64 / 1e3;
            let got = metric(&m, now, k).unwrap();
            assert!(
                got >= truth && got <= truth * 1.125,
                "{k}: {got} vs {truth}"
            );
        }
        let max = *samples.last().unwrap() as f64 / 1e3;
        assert_eq!(metric(&m, now, "latency_max_ms"), Some(max));
        let avg = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1e3;
        assert!((metric(&m, now, "latency_avg_ms").unwrap() - avg).abs() < 1e-9);
    }

    #[test]
    fn old_latencies_leave_the_window() {
        let mut m = PerformanceMonitor::new(MonitorConfig::default());
        m.record_latency_us(0, 900_000);
        m.record_latency_us(5 * S, 1_000);
        assert_eq!(metric(&m, 9 * S, "latency_max_ms"), Some(900.0));
        // Slot 0 leaves once slot 10 begins.
        assert_eq!(metric(&m, 10 * S, "latency_max_ms"), Some(1.0));
        assert_eq!(metric(&m, 15 * S, "latency_max_ms"), None);
        // A reused ring slot starts empty.
        m.record_latency_us(20 * S, 2_000);
        assert_eq!(metric(&m, 20 * S, "latency_max_ms"), Some(2.0));
        assert_eq!(m.merged(20 * S).count(), 1);
    }

    #[test]
    fn throughput_per_second_from_counters() {
        let mut m = PerformanceMonitor::new(MonitorConfig::default());
        for i in 0..200u64 {
            let now = i * 100_000; // 10 messages per second for 20 s
            m.record_in(now, 100);
            m.record_out(now, 50);
            m.record_out(now, 50);
        }
        let now = 20 * S - 1;
        assert!((metric(&m, now, "msgs_in_per_s").unwrap() - 10.0).abs() < 0.01);
        assert!((metric(&m, now, "bytes_in_per_s").unwrap() - 1_000.0).abs() < 1.0);
        assert!((metric(&m, now, "msgs_out_per_s").unwrap() - 20.0).abs() < 0.01);
        assert!((metric(&m, now, "bytes_out_per_s").unwrap() - 1_000.0).abs() < 1.0);
        // Half a second in: the window covers only that half second.
        let mut m = PerformanceMonitor::new(MonitorConfig::default());
        for i in 0..5u64 {
            m.record_in(i * 100_000, 10);
        }
        assert!((metric(&m, 500_000, "msgs_in_per_s").unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn fps_from_frame_times() {
        let mut m = PerformanceMonitor::new(MonitorConfig::default());
        assert_eq!(m.fps(0), None);
        for i in 0..300u64 {
            m.record_frame(i * 33_333); // 30 fps for 10 s
        }
        let fps = m.fps(10 * S - 1).unwrap();
        assert!((fps - 30.0).abs() < 0.1, "{fps}");
        // Frames stop: fps falls as the window empties.
        assert_eq!(m.fps(30 * S), Some(0.0));
    }

    #[test]
    fn memory_growth_since_first_sample() {
        let mut m = PerformanceMonitor::new(MonitorConfig::default());
        assert_eq!(m.memory_growth_bytes(), None);
        m.record_system(0, Some(10.0), Some(100 << 20), None);
        m.record_system(S, Some(30.0), None, Some(55.0));
        m.record_system(2 * S, None, Some(150 << 20), None);
        assert_eq!(m.memory_growth_bytes(), Some(50 << 20));
        assert_eq!(metric(&m, 2 * S, "memory_growth_mb"), Some(50.0));
        assert_eq!(metric(&m, 2 * S, "memory_mb"), Some(150.0));
        assert_eq!(metric(&m, 2 * S, "cpu_percent"), Some(20.0));
        assert_eq!(metric(&m, 2 * S, "cpu_percent_max"), Some(30.0));
        assert_eq!(metric(&m, 2 * S, "soc_temp_c"), Some(55.0));
    }

    #[test]
    fn rolling_window_keeps_last_samples() {
        let mut m = PerformanceMonitor::new(MonitorConfig {
            window_samples: 3,
            ..MonitorConfig::default()
        });
        for c in [90.0, 10.0, 20.0, 30.0] {
            m.record_system(0, Some(c), None, None);
        }
        assert_eq!(metric(&m, 0, "cpu_percent"), Some(20.0));
        assert_eq!(metric(&m, 0, "cpu_percent_max"), Some(30.0));
    }

    #[test]
    fn alert_fires_once_per_crossing() {
        let mut m = PerformanceMonitor::new(MonitorConfig {
            cpu_percent: Some(80.0),
            soc_temp_c: Some(70.0),
            ..MonitorConfig::default()
        });
        let mut raised = 0;
        let mut t = 0;
        let mut feed = |m: &mut PerformanceMonitor, cpu: f32| {
            t += S;
            m.record_system(t, Some(cpu), None, Some(40.0));
            m.check_alerts(t)
                .filter(|a| a.kind == AlertKind::Cpu)
                .count()
        };
        for _ in 0..5 {
            raised += feed(&mut m, 90.0);
        }
        assert_eq!(raised, 1);
        assert!(m.is_raised(AlertKind::Cpu));
        // Within the hysteresis band (80 * 0.95 = 76): still raised, no new alert.
        raised += feed(&mut m, 78.0);
        raised += feed(&mut m, 85.0);
        assert_eq!(raised, 1);
        // Cleared, then crossed again.
        raised += feed(&mut m, 50.0);
        assert!(!m.is_raised(AlertKind::Cpu));
        raised += feed(&mut m, 95.0);
        raised += feed(&mut m, 96.0);
        assert_eq!(raised, 2);
        assert!(!m.is_raised(AlertKind::SocTemp));
    }

    #[test]
    fn fps_floor_and_latency_alerts() {
        let mut m = PerformanceMonitor::new(MonitorConfig {
            fps_below: Some(25.0),
            latency_p99_us: Some(50_000),
            memory_growth_bytes: Some(10 << 20),
            ..MonitorConfig::default()
        });
        for i in 0..60u64 {
            m.record_frame(i * 33_333);
            m.record_latency_us(i * 33_333, 100_000);
        }
        m.record_system(0, None, Some(1 << 20), None);
        m.record_system(S, None, Some(20 << 20), None);
        let mut kinds: Vec<_> = m.check_alerts(2 * S).map(|a| a.kind).collect();
        kinds.sort_by_key(|k| k.name());
        assert_eq!(kinds, [AlertKind::LatencyP99, AlertKind::MemoryGrowth]);
        // Frames stop: fps falls under the floor once.
        assert_eq!(
            m.check_alerts(5 * S).map(|a| a.kind).collect::<Vec<_>>(),
            [AlertKind::FpsLow]
        );
        assert_eq!(m.check_alerts(6 * S).count(), 0);
        // Latency samples leave the window: cleared, nothing new raised.
        assert_eq!(m.check_alerts(30 * S).count(), 0);
        assert!(!m.is_raised(AlertKind::LatencyP99));
    }

    #[test]
    fn success_and_error_rates() {
        let mut m = PerformanceMonitor::new(MonitorConfig::default());
        assert_eq!(m.rates(), (1.0, 0.0));
        for _ in 0..60 {
            m.record_in(0, 1);
        }
        for _ in 0..30 {
            m.record_out(0, 1);
        }
        for _ in 0..6 {
            m.record_drop("stale");
        }
        for _ in 0..4 {
            m.record_error("crc");
        }
        let (s, e) = m.rates();
        assert!((s - 0.9).abs() < 1e-12 && (e - 0.1).abs() < 1e-12);
        assert_eq!(metric(&m, 0, "drops"), Some(6.0));
        assert_eq!(metric(&m, 0, "errors"), Some(4.0));
        assert_eq!(m.drops_of("stale"), 6);
        assert_eq!(m.errors_of("crc"), 4);
    }

    #[test]
    fn kind_table_overflows_into_other() {
        let mut m = PerformanceMonitor::new(MonitorConfig {
            kind_capacity: 2,
            ..MonitorConfig::default()
        });
        for k in ["a", "b", "c", "d", "a"] {
            m.record_drop(k);
        }
        assert_eq!(m.drops_of("a"), 2);
        assert_eq!(m.drops_of("b"), 1);
        assert_eq!(m.drops_of("c"), 0);
        assert_eq!(m.drops_of("other"), 2);
        assert_eq!(metric(&m, 0, "drops"), Some(5.0));
    }

    #[test]
    fn json_parses_and_has_required_keys() {
        let mut m = PerformanceMonitor::new(MonitorConfig::default());
        // Empty monitor: unknowns are null, still valid JSON.
        let v: serde_json::Value = serde_json::from_str(&m.report_json(0)).unwrap();
        assert!(v["latency"]["p99"].is_null());
        assert!(v["resource_usage"]["cpu"].is_null());
        assert_eq!(v["reliability"]["success_rate"], 1.0);

        m.record_latency_us(0, 2_000);
        m.record_frame(0);
        m.record_in(0, 10);
        m.record_out(0, 20);
        m.record_queue_depth(7);
        m.record_queue_depth(3);
        m.record_drop("quo\"te");
        m.record_error("io");
        m.record_reconnect();
        m.record_system(S / 2, Some(12.5), Some(64 << 20), Some(45.0));
        let json = m.report_json(S / 2);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for (sec, key) in [
            ("latency", "avg"),
            ("latency", "p50"),
            ("latency", "p95"),
            ("latency", "p99"),
            ("latency", "max"),
            ("resource_usage", "cpu"),
            ("resource_usage", "memory"),
            ("resource_usage", "memory_growth"),
            ("resource_usage", "soc_temp"),
            ("reliability", "success_rate"),
            ("reliability", "error_rate"),
            ("reliability", "reconnects"),
            ("throughput", "bytes_in_per_s"),
            ("queue", "depth"),
        ] {
            assert!(v[sec][key].is_number(), "{sec}.{key} in {json}");
        }
        assert_eq!(v["latency"]["p99"], 2.0);
        assert_eq!(v["resource_usage"]["memory"], 64.0);
        assert_eq!(v["queue"]["depth"], 3.0);
        assert_eq!(v["queue"]["max_depth"], 7.0);
        assert_eq!(v["reliability"]["drops_by_kind"]["quo\"te"], 1.0);
        assert_eq!(v["reliability"]["errors_by_kind"]["io"], 1.0);
        assert!(v["fps"].is_number());
    }
}
