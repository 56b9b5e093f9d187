//! What a [`PerformanceMonitor`] reports: the flat name → value list of metrics and
//! the JSON document, with the small JSON writer it uses.

use std::fmt::Write as _;

use super::PerformanceMonitor;

impl PerformanceMonitor {
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
