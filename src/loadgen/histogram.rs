//! A latency histogram for the load generator: fixed memory, constant-time
//! recording, exact below 2048 µs and within 0.1 % above (1024 sub-buckets per
//! power of two, as HdrHistogram does with three significant digits), mergeable
//! across threads. Quantiles are reported as the upper edge of their bucket (never
//! below the true value) and never above the largest value recorded.

/// Values below this are counted exactly, one bucket per microsecond.
const EXACT: u64 = 2048;
/// Sub-buckets per power of two above [`EXACT`].
const SUB: u64 = 1024;
/// log2 of [`SUB`].
const SUB_BITS: u32 = 10;
/// The largest value kept apart; larger values are counted as this (about 12.7 days).
const MAX_VALUE: u64 = (1 << 40) - 1;
/// Buckets in all: the exact range, then 1024 per octave from 2^11 to 2^39.
const BUCKETS: usize = (EXACT + (40 - 11) * SUB) as usize;

/// Counts of microsecond values (latencies), for quantiles.
///
/// ```
/// use poselink::loadgen::LatencyHistogram;
/// let mut h = LatencyHistogram::new();
/// for us in 1..=100 {
///     h.record(us);
/// }
/// assert_eq!(h.count(), 100);
/// assert_eq!(h.quantile(0.5), 50);
/// assert_eq!(h.quantile(0.99), 99);
/// assert_eq!(h.max(), 100);
/// ```
#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    max: u64,
}

impl core::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max)
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket of `v`.
fn index(v: u64) -> usize {
    let v = v.min(MAX_VALUE);
    if v < EXACT {
        return v as usize;
    }
    // `msb` is at least 11 here; the top SUB_BITS + 1 bits pick the sub-bucket.
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    (EXACT + u64::from(msb - 11) * SUB + ((v >> shift) - SUB)) as usize
}

/// The largest value that falls in bucket `i`.
fn upper_edge(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let octave = (i - EXACT) / SUB;
    let sub = (i - EXACT) % SUB;
    let shift = octave + 1;
    (((SUB + sub + 1) << shift) - 1).min(MAX_VALUE)
}

impl LatencyHistogram {
    /// An empty histogram (about 250 KiB of counters, allocated here once).
    pub fn new() -> Self {
        LatencyHistogram {
            counts: vec![0u64; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            max: 0,
        }
    }

    /// Counts one value, in microseconds.
    #[inline]
    pub fn record(&mut self, us: u64) {
        self.counts[index(us)] += 1;
        self.count += 1;
        self.sum += u128::from(us);
        self.max = self.max.max(us);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value counted (0 if none).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean of the values counted (0 if none).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value below or at which a fraction `q` (0 to 1) of the values lie (the
    /// nearest-rank quantile), as the upper edge of its bucket; 0 if empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper_edge(i).min(self.max);
            }
        }
        self.max
    }

    /// Adds every value counted by `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        // Every bucket's upper edge + 1 starts the next bucket, and the relative
        // width stays under 0.1 %.
        for i in 0..BUCKETS - 1 {
            let top = upper_edge(i);
            assert_eq!(index(top), i, "bucket {i}");
            assert_eq!(index(top + 1), i + 1, "bucket {i}");
            if top >= EXACT {
                let low = if i == 0 { 0 } else { upper_edge(i - 1) + 1 };
                assert!(
                    (top - low) as f64 / low as f64 <= 1.0 / 1000.0,
                    "bucket {i}"
                );
            }
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(upper_edge(BUCKETS - 1), MAX_VALUE);
    }

    #[test]
    fn quantiles_are_nearest_rank_and_never_low() {
        let mut h = LatencyHistogram::new();
        assert_eq!((h.quantile(0.5), h.max(), h.mean()), (0, 0, 0.0));
        let values: Vec<u64> = (0..10_000u64).map(|i| i * i % 1_000_003 + 3).collect();
        for &v in &values {
            h.record(v);
        }
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for q in [0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let exact = sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1];
            let got = h.quantile(q);
            assert!(got >= exact, "q {q}: {got} < {exact}");
            assert!(
                got as f64 <= exact as f64 * 1.001 + 1.0,
                "q {q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.quantile(1.0), *sorted.last().unwrap());
        assert_eq!(h.max(), *sorted.last().unwrap());
    }

    #[test]
    fn merging_adds_counts() {
        let (mut a, mut b) = (LatencyHistogram::new(), LatencyHistogram::new());
        a.record(10);
        b.record(30);
        b.record(5_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.5), 30);
        assert_eq!(a.max(), 5_000_000);
        assert!((a.mean() - 5_000_040.0 / 3.0).abs() < 1e-6);
    }
}
