//! Threshold alerts: what an alert is about, and the check that raises each once
//! per crossing (with hysteresis) and logs it.

use super::PerformanceMonitor;

/// What an [`Alert`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertKind {
    /// CPU above [`MonitorConfig::cpu_percent`](super::MonitorConfig::cpu_percent).
    Cpu,
    /// Memory growth above [`MonitorConfig::memory_growth_bytes`](super::MonitorConfig::memory_growth_bytes).
    MemoryGrowth,
    /// Fps below [`MonitorConfig::fps_below`](super::MonitorConfig::fps_below).
    FpsLow,
    /// p99 latency above [`MonitorConfig::latency_p99_us`](super::MonitorConfig::latency_p99_us).
    LatencyP99,
    /// SoC temperature above [`MonitorConfig::soc_temp_c`](super::MonitorConfig::soc_temp_c).
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

impl PerformanceMonitor {
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
