//! The rolling statistics behind a [`PerformanceMonitor`]: the fixed-size windows
//! of system samples, the counts by kind, and the ring of time slots (each with its
//! latency histogram and counters) that the time-window queries merge.

use super::{LatencyHistogram, PerformanceMonitor};

/// A fixed-size rolling window of the last samples.
#[derive(Clone, Debug)]
pub(super) struct Rolling {
    buf: Vec<f64>,
    cap: usize,
    next: usize,
    pub(super) last: Option<f64>,
}

impl Rolling {
    pub(super) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Rolling {
            buf: Vec::with_capacity(cap),
            cap,
            next: 0,
            last: None,
        }
    }

    pub(super) fn push(&mut self, v: f64) {
        if self.buf.len() < self.cap {
            self.buf.push(v); // within the capacity reserved at construction
        } else {
            self.buf[self.next] = v;
        }
        self.next = (self.next + 1) % self.cap;
        self.last = Some(v);
    }

    pub(super) fn mean(&self) -> Option<f64> {
        (!self.buf.is_empty()).then(|| self.buf.iter().sum::<f64>() / self.buf.len() as f64)
    }

    pub(super) fn max(&self) -> Option<f64> {
        self.buf.iter().copied().reduce(f64::max)
    }
}

/// Counts by `&'static str` kind in a fixed-capacity table; kinds beyond the
/// capacity are counted under `"other"`.
#[derive(Clone, Debug)]
pub(super) struct KindTable {
    entries: Vec<(&'static str, u64)>,
    cap: usize,
    other: u64,
    pub(super) total: u64,
}

impl KindTable {
    pub(super) fn new(cap: usize) -> Self {
        KindTable {
            entries: Vec::with_capacity(cap),
            cap,
            other: 0,
            total: 0,
        }
    }

    pub(super) fn add(&mut self, kind: &'static str, n: u64) {
        self.total += n;
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == kind) {
            e.1 += n;
        } else if self.entries.len() < self.cap {
            self.entries.push((kind, n)); // within the reserved capacity
        } else {
            self.other += n;
        }
    }

    pub(super) fn get(&self, kind: &str) -> u64 {
        let named = self.entries.iter().find(|e| e.0 == kind).map_or(0, |e| e.1);
        if kind == "other" {
            named + self.other
        } else {
            named
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.entries
            .iter()
            .copied()
            .chain((self.other > 0).then_some(("other", self.other)))
    }
}

/// One time slot of the window ring.
#[derive(Clone, Debug)]
pub(super) struct Slot {
    /// `now_us / slot_us` of the slot's interval; `u64::MAX` when unused.
    pub(super) epoch: u64,
    pub(super) latency: LatencyHistogram,
    pub(super) msgs_in: u64,
    pub(super) bytes_in: u64,
    pub(super) msgs_out: u64,
    pub(super) bytes_out: u64,
    pub(super) frames: u64,
}

impl Slot {
    pub(super) fn new() -> Self {
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

    pub(super) fn reset(&mut self, epoch: u64) {
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
pub(super) struct WindowTotals {
    pub(super) msgs_in: u64,
    pub(super) bytes_in: u64,
    pub(super) msgs_out: u64,
    pub(super) bytes_out: u64,
    pub(super) frames: u64,
    /// Seconds the window covers (0 before anything was recorded).
    pub(super) secs: f64,
}

impl PerformanceMonitor {
    /// Advances the clock (never backwards) and returns it.
    pub(super) fn tick(&mut self, now_us: u64) -> u64 {
        self.first_us.get_or_insert(now_us);
        self.now_us = self.now_us.max(now_us);
        self.now_us
    }

    /// The slot for `now_us`, reset if it held an older interval.
    pub(super) fn slot(&mut self, now_us: u64) -> &mut Slot {
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
    pub(super) fn window(&self, now_us: u64) -> impl Iterator<Item = &Slot> + '_ {
        let epoch = now_us.max(self.now_us) / self.config.slot_us;
        let n = self.config.slots as u64;
        self.slots
            .iter()
            .filter(move |s| s.epoch != u64::MAX && s.epoch <= epoch && s.epoch + n > epoch)
    }

    /// The latency histogram of the window (on the stack: 2.4 KiB).
    pub(super) fn merged(&self, now_us: u64) -> LatencyHistogram {
        let mut m = LatencyHistogram::new();
        for s in self.window(now_us) {
            m.merge(&s.latency);
        }
        m
    }

    pub(super) fn totals(&self, now_us: u64) -> WindowTotals {
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
}
