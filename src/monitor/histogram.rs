//! The one latency histogram of the crate, used by the performance monitor's
//! time slots, the hub's relay latency (`/metrics`) and the load generator. It
//! is log-linear in the way HdrHistogram is: values below `2^(s+1)` µs are
//! counted exactly, one bucket per microsecond, and every power of two above is
//! cut into `2^s` equal buckets, so a bucket is at most `2^-s` of its lower end
//! wide. Recording is a few integer operations; the counters are an array inside
//! the value, so nothing allocates after construction, and merging two of the
//! same precision is an element-wise sum.
//!
//! The precision is the array's length, a const parameter: [`FINE_BUCKETS`]
//! (`s = 3`: 12.5 %, 304 counters, the default — the monitor keeps one per
//! time slot) and [`PRECISE_BUCKETS`] (`s = 10`: 0.1 %, exact below 2048 µs,
//! about 250 KiB — the load generator's, whose figures are compared with a
//! 2 ms target). Quantiles are reported as the upper edge of their bucket: never
//! below the true value, never above the largest value recorded.
//!
//! ```
//! use poselink::monitor::LatencyHistogram;
//! use poselink::monitor::PreciseHistogram;
//! let mut h = PreciseHistogram::boxed();
//! for us in 1..=100 {
//!     h.record(us);
//! }
//! assert_eq!(h.count(), 100);
//! assert_eq!(h.quantile(0.5), 50);
//! assert_eq!(h.quantile(0.99), 99);
//! assert_eq!(h.max(), 100);
//! ```

/// Values are kept apart up to this; larger ones are counted as it (about
/// 12.7 days in µs).
pub const MAX_VALUE: u64 = (1 << 40) - 1;

/// Buckets of a histogram with `2^sub_bits` buckets per power of two: the
/// exact range `0..2^(sub_bits + 1)`, then one octave per bit up to 2^40.
pub const fn buckets_for(sub_bits: u32) -> usize {
    (1usize << (sub_bits + 1)) + (40 - (sub_bits as usize + 1)) * (1usize << sub_bits)
}

/// 12.5 % buckets (exact below 16 µs): the monitor's and the hub's.
pub const FINE_BUCKETS: usize = buckets_for(3);
/// 0.1 % buckets (exact below 2048 µs): the load generator's.
pub const PRECISE_BUCKETS: usize = buckets_for(10);

/// The sub-bucket bits that give `n` buckets (a compile error if none does).
const fn sub_bits_of(n: usize) -> u32 {
    let mut s = 0;
    while s < 20 {
        if buckets_for(s) == n {
            return s;
        }
        s += 1;
    }
    panic!("a LatencyHistogram's length must be buckets_for(s) for some s below 20");
}

/// The load generator's precision (0.1 %), about 250 KiB: keep it boxed
/// ([`LatencyHistogram::boxed`]).
pub type PreciseHistogram = LatencyHistogram<PRECISE_BUCKETS>;

/// Counts of microsecond values, for quantiles; `N` buckets (see the module
/// documentation for the precision each length gives).
#[derive(Clone, PartialEq, Eq)]
pub struct LatencyHistogram<const N: usize = FINE_BUCKETS> {
    counts: [u64; N],
    count: u64,
    sum: u128,
    max: u64,
}

impl<const N: usize> core::fmt::Debug for LatencyHistogram<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max)
            .finish()
    }
}

impl<const N: usize> Default for LatencyHistogram<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LatencyHistogram<N> {
    const SUB_BITS: u32 = sub_bits_of(N);
    const EXACT: u64 = 1 << (Self::SUB_BITS + 1);

    /// An empty histogram.
    pub const fn new() -> Self {
        // Evaluated per length: refuses a length no precision gives.
        let _ = Self::SUB_BITS;
        LatencyHistogram {
            counts: [0; N],
            count: 0,
            sum: 0,
            max: 0,
        }
    }

    /// An empty histogram on the heap (for the large precisions).
    pub fn boxed() -> Box<Self> {
        Box::new(Self::new())
    }

    /// The bucket of `v`.
    pub fn index(v: u64) -> usize {
        let v = v.min(MAX_VALUE);
        if v < Self::EXACT {
            return v as usize;
        }
        // The top SUB_BITS + 1 bits pick the sub-bucket of the octave.
        let msb = 63 - v.leading_zeros();
        let shift = msb - Self::SUB_BITS;
        let sub = (v >> shift) - (1 << Self::SUB_BITS);
        (Self::EXACT + u64::from(msb - Self::SUB_BITS - 1) * (1 << Self::SUB_BITS) + sub) as usize
    }

    /// The largest value that falls in bucket `i`.
    pub fn upper_edge(i: usize) -> u64 {
        let i = i as u64;
        if i < Self::EXACT {
            return i;
        }
        let per = 1u64 << Self::SUB_BITS;
        let octave = (i - Self::EXACT) / per;
        let sub = (i - Self::EXACT) % per;
        (((per + sub + 1) << (octave + 1)) - 1).min(MAX_VALUE)
    }

    /// Counts one value, in microseconds.
    #[inline]
    pub fn record(&mut self, us: u64) {
        self.counts[Self::index(us)] += 1;
        self.count += 1;
        self.sum += u128::from(us);
        self.max = self.max.max(us);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum of the values counted, µs.
    pub fn sum(&self) -> u128 {
        self.sum
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
    /// nearest-rank quantile), as the upper edge of its bucket, never above the
    /// largest value; 0 if empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper_edge(i).min(self.max);
            }
        }
        self.max
    }

    /// Adds every value counted by `other`.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// Forgets every value.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.count = 0;
        self.sum = 0;
        self.max = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fine = LatencyHistogram<FINE_BUCKETS>;
    type Precise = LatencyHistogram<PRECISE_BUCKETS>;

    /// Every bucket's upper edge + 1 starts the next bucket, the last holds
    /// everything above, and no bucket is wider than `width` of its lower end.
    fn check_buckets<const N: usize>(width: f64) {
        type H<const M: usize> = LatencyHistogram<M>;
        for i in 0..N - 1 {
            let top = H::<N>::upper_edge(i);
            assert_eq!(H::<N>::index(top), i, "bucket {i}");
            assert_eq!(H::<N>::index(top + 1), i + 1, "bucket {i}");
            let low = if i == 0 {
                0
            } else {
                H::<N>::upper_edge(i - 1) + 1
            };
            if low > 0 {
                assert!((top - low) as f64 / low as f64 <= width, "bucket {i}");
            }
        }
        assert_eq!(H::<N>::index(u64::MAX), N - 1);
        assert_eq!(H::<N>::upper_edge(N - 1), MAX_VALUE);
    }

    #[test]
    fn buckets_are_contiguous_and_tight() {
        check_buckets::<FINE_BUCKETS>(0.125);
        check_buckets::<PRECISE_BUCKETS>(0.001);
        assert_eq!((FINE_BUCKETS, PRECISE_BUCKETS), (304, 31_744));
        // Exact ranges.
        assert_eq!(Fine::index(15), 15);
        assert_eq!(Precise::index(2047), 2047);
    }

    /// Nearest-rank quantiles against a sorted reference: never low, at most
    /// one bucket high.
    fn quantiles_against_reference<const N: usize>(width: f64) {
        let mut h = LatencyHistogram::<N>::new();
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
                got as f64 <= exact as f64 * (1.0 + width) + 1.0,
                "q {q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.quantile(1.0), *sorted.last().unwrap());
        assert_eq!(h.max(), *sorted.last().unwrap());
        let mean = values.iter().sum::<u64>() as f64 / values.len() as f64;
        assert!((h.mean() - mean).abs() < 1e-6);
    }

    #[test]
    fn quantiles_are_nearest_rank_and_never_low() {
        quantiles_against_reference::<FINE_BUCKETS>(0.125);
        quantiles_against_reference::<PRECISE_BUCKETS>(0.001);
        let mut h = Fine::new();
        for us in [10, 30, 30, 700, 2_000_000] {
            h.record(us);
        }
        assert_eq!(h.quantile(0.2), 10);
        // 30 lies in the fine bucket [30, 31].
        assert_eq!(h.quantile(0.6), 31);
        assert_eq!(h.quantile(0.8), 703);
        assert_eq!(h.quantile(1.0), 2_000_000);
    }

    #[test]
    fn merging_adds_counts_and_clear_forgets() {
        let (mut a, mut b) = (Precise::new(), Precise::new());
        a.record(10);
        b.record(30);
        b.record(5_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.5), 30);
        assert_eq!(a.max(), 5_000_000);
        assert!((a.mean() - 5_000_040.0 / 3.0).abs() < 1e-6);
        a.clear();
        assert_eq!(a, Precise::new());
    }
}
