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

use std::fmt::Write as _;

mod histogram;

pub use histogram::{
    FINE_BUCKETS, LatencyHistogram, PRECISE_BUCKETS, PreciseHistogram, buckets_for,
};

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

/// What an [`Alert`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertKind {
    /// CPU above [`MonitorConfig::cpu_percent`].
    Cpu,
    /// Memory growth above [`MonitorConfig::memory_growth_bytes`].
    MemoryGrowth,
    /// Fps below [`MonitorConfig::fps_below`].
    FpsLow,
    /// p99 latency above [`MonitorConfig::latency_p99_us`].
    LatencyP99,
    /// SoC temperature above [`MonitorConfig::soc_temp_c`].
    SocTemp,
}

impl AlertKind {
    const ALL: [AlertKind; 5] = [
        AlertKind::Cpu,
        AlertKind::MemoryGrowth,
        AlertKind::FpsLow,
        AlertKind::LatencyP99,
        AlertKind::SocTemp,
    ];

    /// A short name (`"cpu"`, `"memory_growth"`, `"fps_low"`, `"latency_p99"`,
    /// `"soc_temp"`).
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::Cpu => "cpu",
            AlertKind::MemoryGrowth => "memory_growth",
            AlertKind::FpsLow => "fps_low",
            AlertKind::LatencyP99 => "latency_p99",
            AlertKind::SocTemp => "soc_temp",
        }
    }
}

/// A newly raised alert.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Alert {
    /// What crossed its threshold.
    pub kind: AlertKind,
    /// The value that crossed (percent, bytes, fps, µs or °C by kind).
    pub value: f64,
    /// The threshold it crossed, in the same unit.
    pub threshold: f64,
}

/// A fixed-size rolling window of the last samples.
#[derive(Clone, Debug)]
struct Rolling {
    buf: Vec<f64>,
    cap: usize,
    next: usize,
    last: Option<f64>,
}

impl Rolling {
    fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Rolling {
            buf: Vec::with_capacity(cap),
            cap,
            next: 0,
            last: None,
        }
    }

    fn push(&mut self, v: f64) {
        if self.buf.len() < self.cap {
            self.buf.push(v); // within the capacity reserved at construction
        } else {
            self.buf[self.next] = v;
        }
        self.next = (self.next + 1) % self.cap;
        self.last = Some(v);
    }

    fn mean(&self) -> Option<f64> {
        (!self.buf.is_empty()).then(|| self.buf.iter().sum::<f64>() / self.buf.len() as f64)
    }

    fn max(&self) -> Option<f64> {
        self.buf.iter().copied().reduce(f64::max)
    }
}

/// Counts by `&'static str` kind in a fixed-capacity table; kinds beyond the
/// capacity are counted under `"other"`.
#[derive(Clone, Debug)]
struct KindTable {
    entries: Vec<(&'static str, u64)>,
    cap: usize,
    other: u64,
    total: u64,
}

impl KindTable {
    fn new(cap: usize) -> Self {
        KindTable {
            entries: Vec::with_capacity(cap),
            cap,
            other: 0,
            total: 0,
        }
    }

    fn add(&mut self, kind: &'static str, n: u64) {
        self.total += n;
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == kind) {
            e.1 += n;
        } else if self.entries.len() < self.cap {
            self.entries.push((kind, n)); // within the reserved capacity
        } else {
            self.other += n;
        }
    }

    fn get(&self, kind: &str) -> u64 {
        let named = self.entries.iter().find(|e| e.0 == kind).map_or(0, |e| e.1);
        if kind == "other" {
            named + self.other
        } else {
            named
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.entries
            .iter()
            .copied()
            .chain((self.other > 0).then_some(("other", self.other)))
    }
}

/// One time slot of the window ring.
#[derive(Clone, Debug)]
struct Slot {
    /// `now_us / slot_us` of the slot's interval; `u64::MAX` when unused.
    epoch: u64,
    latency: LatencyHistogram,
    msgs_in: u64,
    bytes_in: u64,
    msgs_out: u64,
    bytes_out: u64,
    frames: u64,
}

impl Slot {
    fn new() -> Self {
        Slot {
            epoch: u64::MAX,
            latency: LatencyHistogram::new(),
            msgs_in: 0,
            bytes_in: 0,
            msgs_out: 0,
            bytes_out: 0,
            frames: 0,
        }
    }

    fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.latency.clear();
        self.msgs_in = 0;
        self.bytes_in = 0;
        self.msgs_out = 0;
        self.bytes_out = 0;
        self.frames = 0;
    }
}

/// Window totals at one instant.
struct WindowTotals {
    msgs_in: u64,
    bytes_in: u64,
    msgs_out: u64,
    bytes_out: u64,
    frames: u64,
    /// Seconds the window covers (0 before anything was recorded).
    secs: f64,
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

    /// Advances the clock (never backwards) and returns it.
    fn tick(&mut self, now_us: u64) -> u64 {
        self.first_us.get_or_insert(now_us);
        self.now_us = self.now_us.max(now_us);
        self.now_us
    }

    /// The slot for `now_us`, reset if it held an older interval.
    fn slot(&mut self, now_us: u64) -> &mut Slot {
        let now = self.tick(now_us);
        let epoch = now / self.config.slot_us;
        let i = (epoch % self.config.slots as u64) as usize;
        let slot = &mut self.slots[i];
        if slot.epoch != epoch {
            slot.reset(epoch);
        }
        slot
    }

    /// Slots inside the window at `now_us`.
    fn window(&self, now_us: u64) -> impl Iterator<Item = &Slot> + '_ {
        let epoch = now_us.max(self.now_us) / self.config.slot_us;
        let n = self.config.slots as u64;
        self.slots
            .iter()
            .filter(move |s| s.epoch != u64::MAX && s.epoch <= epoch && s.epoch + n > epoch)
    }

    /// The latency histogram of the window (on the stack: 2.4 KiB).
    fn merged(&self, now_us: u64) -> LatencyHistogram {
        let mut m = LatencyHistogram::new();
        for s in self.window(now_us) {
            m.merge(&s.latency);
        }
        m
    }

    fn totals(&self, now_us: u64) -> WindowTotals {
        let now = now_us.max(self.now_us);
        let mut t = WindowTotals {
            msgs_in: 0,
            bytes_in: 0,
            msgs_out: 0,
            bytes_out: 0,
            frames: 0,
            secs: 0.0,
        };
        for s in self.window(now) {
            t.msgs_in += s.msgs_in;
            t.bytes_in += s.bytes_in;
            t.msgs_out += s.msgs_out;
            t.bytes_out += s.bytes_out;
            t.frames += s.frames;
        }
        if let Some(first) = self.first_us {
            let epoch = now / self.config.slot_us;
            let oldest = epoch.saturating_sub(self.config.slots as u64 - 1) * self.config.slot_us;
            t.secs = now.saturating_sub(oldest.max(first)) as f64 / 1e6;
        }
        t
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

    /// Metrics as name → value, like the seed's dictionary: latency in ms
    /// (`latency_avg_ms`, `latency_p50_ms`, `latency_p95_ms`, `latency_p99_ms`,
    /// `latency_max_ms`, only with samples in the window), `fps` (after the first
    /// frame), `cpu_percent` (mean of the rolling window) and `cpu_percent_max`,
    /// `memory_mb` (latest), `memory_mb_max` (of the rolling window) and
    /// `memory_growth_mb`, `soc_temp_c` (latest) — each
    /// when known —, then always `msgs_in_per_s`, `msgs_out_per_s`,
    /// `bytes_in_per_s`, `bytes_out_per_s`, `queue_depth`, `queue_depth_max`,
    /// `drops`, `errors`, `reconnects`, `success_rate`, `error_rate`.
    pub fn get_performance_metrics(&self, now_us: u64) -> Vec<(&'static str, f64)> {
        let mut out = Vec::with_capacity(24);
        let lat = self.merged(now_us);
        if lat.count() > 0 {
            let ms = |us: u64| us as f64 / 1e3;
            out.push(("latency_avg_ms", lat.mean() / 1e3));
            out.push(("latency_p50_ms", ms(lat.quantile(0.50))));
            out.push(("latency_p95_ms", ms(lat.quantile(0.95))));
            out.push(("latency_p99_ms", ms(lat.quantile(0.99))));
            out.push(("latency_max_ms", ms(lat.max())));
        }
        if let Some(f) = self.fps(now_us) {
            out.push(("fps", f));
        }
        if let (Some(c), Some(m)) = (self.cpu.mean(), self.cpu.max()) {
            out.push(("cpu_percent", c));
            out.push(("cpu_percent_max", m));
        }
        if let (Some(m), Some(peak)) = (self.memory_last, self.memory.max()) {
            out.push(("memory_mb", m as f64 / MB));
            out.push(("memory_mb_max", peak / MB));
        }
        if let Some(g) = self.memory_growth_bytes() {
            out.push(("memory_growth_mb", g as f64 / MB));
        }
        if let Some(t) = self.temp.last {
            out.push(("soc_temp_c", t));
        }
        let t = self.totals(now_us);
        let per_s = |n: u64| if t.secs > 0.0 { n as f64 / t.secs } else { 0.0 };
        out.push(("msgs_in_per_s", per_s(t.msgs_in)));
        out.push(("msgs_out_per_s", per_s(t.msgs_out)));
        out.push(("bytes_in_per_s", per_s(t.bytes_in)));
        out.push(("bytes_out_per_s", per_s(t.bytes_out)));
        out.push(("queue_depth", self.queue_last as f64));
        out.push(("queue_depth_max", self.queue_max as f64));
        out.push(("drops", self.drops.total as f64));
        out.push(("errors", self.errors.total as f64));
        out.push(("reconnects", self.reconnects as f64));
        let (s, e) = self.rates();
        out.push(("success_rate", s));
        out.push(("error_rate", e));
        out
    }

    /// A JSON report: `latency` {`avg`, `p50`, `p95`, `p99`, `max` (ms), `count`},
    /// `fps`, `resource_usage` {`cpu`, `cpu_max` (%), `memory`, `memory_max`,
    /// `memory_growth` (MB), `soc_temp` (°C)}, `throughput` {`msgs_in_per_s`, `msgs_out_per_s`,
    /// `bytes_in_per_s`, `bytes_out_per_s`}, `queue` {`depth`, `max_depth`},
    /// `reliability` {`success_rate`, `error_rate`, `drops`, `errors`,
    /// `reconnects`, `drops_by_kind`, `errors_by_kind`}. Unknown values and
    /// non-finite numbers are `null`.
    pub fn report_json(&self, now_us: u64) -> String {
        // Hand-rolled over `fmt::Write`: the document is small and fixed in shape,
        // and `serde_json` is only a dev-dependency; pulling it into the library
        // for one report is not worth it.
        let m = self.get_performance_metrics(now_us);
        let get = |k: &str| m.iter().find(|e| e.0 == k).map(|e| e.1);
        let lat = self.merged(now_us);
        let mut w = Json::default();
        w.open(None);
        w.open(Some("latency"));
        w.num("avg", get("latency_avg_ms"));
        w.num("p50", get("latency_p50_ms"));
        w.num("p95", get("latency_p95_ms"));
        w.num("p99", get("latency_p99_ms"));
        w.num("max", get("latency_max_ms"));
        w.num("count", Some(lat.count() as f64));
        w.close();
        w.num("fps", get("fps"));
        w.open(Some("resource_usage"));
        w.num("cpu", get("cpu_percent"));
        w.num("cpu_max", get("cpu_percent_max"));
        w.num("memory", get("memory_mb"));
        w.num("memory_max", get("memory_mb_max"));
        w.num("memory_growth", get("memory_growth_mb"));
        w.num("soc_temp", get("soc_temp_c"));
        w.close();
        w.open(Some("throughput"));
        for k in [
            "msgs_in_per_s",
            "msgs_out_per_s",
            "bytes_in_per_s",
            "bytes_out_per_s",
        ] {
            w.num(k, get(k));
        }
        w.close();
        w.open(Some("queue"));
        w.num("depth", get("queue_depth"));
        w.num("max_depth", get("queue_depth_max"));
        w.close();
        w.open(Some("reliability"));
        for k in [
            "success_rate",
            "error_rate",
            "drops",
            "errors",
            "reconnects",
        ] {
            w.num(k, get(k));
        }
        for (name, table) in [
            ("drops_by_kind", &self.drops),
            ("errors_by_kind", &self.errors),
        ] {
            w.open(Some(name));
            for (k, n) in table.iter() {
                w.num(k, Some(n as f64));
            }
            w.close();
        }
        w.close();
        w.close();
        w.out
    }

    /// Checks the thresholds at `now_us` and returns the alerts newly raised: an
    /// alert is raised when its value crosses its threshold and stays raised
    /// (silent) until the value is back past the threshold by the configured
    /// hysteresis, after which a new crossing raises it again. Each raise logs one
    /// warning. Values unknown so far raise nothing and clear nothing, except the
    /// latency p99, which counts as 0 (and so clears) when the window is empty.
    pub fn check_alerts(&mut self, now_us: u64) -> impl Iterator<Item = Alert> + use<> {
        let h = self.config.hysteresis.max(0.0);
        let mut fired: [Option<Alert>; 5] = [None; 5];
        for (i, kind) in AlertKind::ALL.into_iter().enumerate() {
            // (value, threshold, is the threshold a floor)
            let probe: Option<(f64, f64, bool)> = match kind {
                AlertKind::Cpu => self
                    .config
                    .cpu_percent
                    .zip(self.cpu.last)
                    .map(|(t, v)| (v, f64::from(t), false)),
                AlertKind::MemoryGrowth => self
                    .config
                    .memory_growth_bytes
                    .zip(self.memory_growth_bytes())
                    .map(|(t, v)| (v as f64, t as f64, false)),
                AlertKind::FpsLow => {
                    let started = self.first_frame_us.is_some_and(|f| {
                        now_us.max(self.now_us).saturating_sub(f) >= self.config.slot_us
                    });
                    self.config
                        .fps_below
                        .filter(|_| started)
                        .zip(self.fps(now_us))
                        .map(|(t, v)| (v, f64::from(t), true))
                }
                AlertKind::LatencyP99 => self
                    .config
                    .latency_p99_us
                    .map(|t| (t, self.merged(now_us).quantile(0.99)))
                    .map(|(t, v)| (v as f64, t as f64, false)),
                AlertKind::SocTemp => self
                    .config
                    .soc_temp_c
                    .zip(self.temp.last)
                    .map(|(t, v)| (v, f64::from(t), false)),
            };
            let Some((value, threshold, floor)) = probe else {
                continue;
            };
            let (crossed, cleared) = if floor {
                (value < threshold, value > threshold * (1.0 + h))
            } else {
                (value > threshold, value < threshold * (1.0 - h))
            };
            if !self.raised[i] && crossed {
                self.raised[i] = true;
                net_warn!(
                    "performance alert {}: {} past threshold {}",
                    kind.name(),
                    value,
                    threshold
                );
                fired[i] = Some(Alert {
                    kind,
                    value,
                    threshold,
                });
            } else if self.raised[i] && cleared {
                self.raised[i] = false;
            }
        }
        fired.into_iter().flatten()
    }

    /// Whether the alert of `kind` is currently raised.
    pub fn is_raised(&self, kind: AlertKind) -> bool {
        let i = AlertKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.raised[i]
    }
}

const MB: f64 = 1024.0 * 1024.0;

/// A minimal JSON object writer: nested objects of numbers.
#[derive(Default)]
struct Json {
    out: String,
    /// Whether the innermost open object already has a member.
    has_member: Vec<bool>,
}

impl Json {
    fn key(&mut self, key: &str) {
        if let Some(h) = self.has_member.last_mut() {
            if *h {
                self.out.push(',');
            }
            *h = true;
        }
        self.out.push('"');
        for c in key.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push_str("\":");
    }

    fn open(&mut self, key: Option<&str>) {
        if let Some(k) = key {
            self.key(k);
        }
        self.out.push('{');
        self.has_member.push(false);
    }

    fn close(&mut self) {
        self.has_member.pop();
        self.out.push('}');
    }

    fn num(&mut self, key: &str, v: Option<f64>) {
        self.key(key);
        match v.filter(|v| v.is_finite()) {
            Some(v) => {
                let _ = write!(self.out, "{v}");
            }
            None => self.out.push_str("null"),
        }
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
