//! Rate limiting, sans-IO: a token bucket that says whether `n` units (bytes for
//! the edge engine's bandwidth limit, messages for the hub's flood limit) may go
//! now, and if not, how long until they may; and a sliding-window counter that
//! says how many events happened over the last window (the hub counts refusals
//! with it, to close a sustained flooder whatever it interleaves). The caller
//! passes the time, so the same code runs under a real clock and a simulated
//! one. Integer arithmetic only (no floats, no allocation), `no_std`.

/// Scale of the internal token count: one token is a million micro-tokens, so a
/// refill of `rate` tokens per second adds exactly `rate` micro-tokens per
/// microsecond.
const MICRO: u64 = 1_000_000;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
///
/// ```
/// use poselink::rate::TokenBucket;
/// // 1 MB/s with a 64 KiB burst, starting full at t = 0.
/// let mut bucket = TokenBucket::new(1_000_000, 65_536, 0);
/// assert!(bucket.try_take(65_536, 0));
/// assert!(!bucket.try_take(1_000, 0));
/// assert_eq!(bucket.wait_us(1_000, 0), 1_000); // 1000 bytes at 1 MB/s
/// assert!(bucket.try_take(1_000, 1_000));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Tokens held, in micro-tokens.
    level: u64,
    /// The time of the last refill, in microseconds.
    last_us: u64,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilling at `rate` tokens per second,
    /// as of `now_us`. A `rate` of 0 never refills.
    pub const fn new(rate: u64, burst: u64, now_us: u64) -> Self {
        TokenBucket {
            rate,
            burst,
            level: burst.saturating_mul(MICRO),
            last_us: now_us,
        }
    }

    /// Tokens per second.
    pub const fn rate(&self) -> u64 {
        self.rate
    }

    /// The most tokens the bucket holds.
    pub const fn burst(&self) -> u64 {
        self.burst
    }

    /// Changes the rate and the burst from `now_us` on (tokens held so far are
    /// kept, up to the new burst).
    pub fn set_rate(&mut self, rate: u64, burst: u64, now_us: u64) {
        self.refill(now_us);
        self.rate = rate;
        self.burst = burst;
        self.level = self.level.min(burst.saturating_mul(MICRO));
    }

    fn refill(&mut self, now_us: u64) {
        // A clock that goes backwards adds nothing (and does not move `last_us`
        // back, so the time is not counted twice).
        let elapsed = now_us.saturating_sub(self.last_us);
        self.last_us = self.last_us.max(now_us);
        let cap = self.burst.saturating_mul(MICRO);
        self.level = self
            .level
            .saturating_add(elapsed.saturating_mul(self.rate))
            .min(cap);
    }

    /// Whole tokens available at `now_us`.
    pub fn available(&mut self, now_us: u64) -> u64 {
        self.refill(now_us);
        self.level / MICRO
    }

    /// Takes `n` tokens if the bucket holds them at `now_us`; otherwise takes
    /// nothing and returns false.
    pub fn try_take(&mut self, n: u64, now_us: u64) -> bool {
        self.refill(now_us);
        let need = n.saturating_mul(MICRO);
        if self.level >= need {
            self.level -= need;
            true
        } else {
            false
        }
    }

    /// Microseconds from `now_us` until `n` tokens are available (0 if they are
    /// now; `u64::MAX` if they never will be: more than the burst, or rate 0).
    pub fn wait_us(&mut self, n: u64, now_us: u64) -> u64 {
        self.refill(now_us);
        let need = n.saturating_mul(MICRO);
        if self.level >= need {
            return 0;
        }
        if n > self.burst || self.rate == 0 {
            return u64::MAX;
        }
        (need - self.level).div_ceil(self.rate)
    }
}

/// Events counted over a sliding window of `window_us`: the count of the current
/// fixed window plus the previous window's, weighted by how much of it the
/// sliding window still covers (the two-bucket estimate rate limiters in
/// proxies use). Two counters, whatever the event rate; a burst older than two
/// windows is forgotten entirely.
///
/// ```
/// use poselink::rate::WindowCounter;
/// let mut w = WindowCounter::new(1_000_000, 0); // one second
/// assert_eq!(w.add(100, 0), 100);
/// // Half a second into the next window, half of the previous one still counts.
/// assert_eq!(w.count(1_500_000), 50);
/// assert_eq!(w.add(10, 1_500_000), 60);
/// assert_eq!(w.count(3_000_000), 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowCounter {
    window_us: u64,
    /// Start of the current fixed window.
    start_us: u64,
    current: u64,
    previous: u64,
}

impl WindowCounter {
    /// An empty counter over windows of `window_us` (at least 1), starting at
    /// `now_us`.
    pub const fn new(window_us: u64, now_us: u64) -> Self {
        WindowCounter {
            window_us: if window_us == 0 { 1 } else { window_us },
            start_us: now_us,
            current: 0,
            previous: 0,
        }
    }

    fn roll(&mut self, now_us: u64) {
        // A clock that goes backwards stays in the current window.
        let elapsed = now_us.saturating_sub(self.start_us);
        if elapsed < self.window_us {
            return;
        }
        let windows = elapsed / self.window_us;
        self.previous = if windows == 1 { self.current } else { 0 };
        self.current = 0;
        self.start_us += windows * self.window_us;
    }

    /// Events over the window ending at `now_us` (an estimate: the previous
    /// fixed window's events are taken as spread evenly over it).
    pub fn count(&mut self, now_us: u64) -> u64 {
        self.roll(now_us);
        let into = now_us.saturating_sub(self.start_us) as u128;
        let w = self.window_us as u128;
        let carried = self.previous as u128 * (w - into) / w;
        self.current.saturating_add(carried as u64)
    }

    /// Counts `n` events at `now_us`; returns [`count`](Self::count) after them.
    pub fn add(&mut self, n: u64, now_us: u64) -> u64 {
        self.roll(now_us);
        self.current = self.current.saturating_add(n);
        self.count(now_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_holds_over_simulated_time() {
        // 1 MB/s, 16 KiB burst; a sender offering 1 KiB every 100 µs (10 MB/s)
        // for 5 s gets 1 MB/s through, plus the initial burst.
        let mut b = TokenBucket::new(1_000_000, 16_384, 0);
        let mut sent = 0u64;
        let mut t = 0u64;
        while t <= 5_000_000 {
            if b.try_take(1_024, t) {
                sent += 1_024;
            }
            t += 100;
        }
        let expected = 5_000_000 + 16_384;
        assert!(
            sent.abs_diff(expected) <= 2 * 1_024,
            "sent {sent}, expected about {expected}"
        );
    }

    #[test]
    fn burst_caps_an_idle_bucket() {
        let mut b = TokenBucket::new(100, 10, 0);
        assert_eq!(b.available(0), 10);
        assert!(b.try_take(10, 0));
        assert_eq!(b.available(0), 0);
        // An hour idle still holds only the burst.
        assert_eq!(b.available(3_600_000_000), 10);
    }

    #[test]
    fn wait_is_exact_and_never_for_the_impossible() {
        let mut b = TokenBucket::new(1_000, 100, 0);
        assert!(b.try_take(100, 0));
        // 50 tokens at 1000/s: 50 ms.
        assert_eq!(b.wait_us(50, 0), 50_000);
        assert!(!b.try_take(50, 49_999));
        assert!(b.try_take(50, 50_000));
        assert_eq!(b.wait_us(101, 50_000), u64::MAX);
        let mut dry = TokenBucket::new(0, 5, 0);
        assert!(dry.try_take(5, 0));
        assert_eq!(dry.wait_us(1, 0), u64::MAX);
    }

    #[test]
    fn rate_changes_and_backwards_clocks() {
        let mut b = TokenBucket::new(1_000, 1_000, 0);
        assert!(b.try_take(1_000, 0));
        b.set_rate(10, 5, 1_000_000); // refilled to 1000, then capped at 5
        assert_eq!(b.available(1_000_000), 5);
        assert!(b.try_take(5, 1_000_000));
        // The clock steps back: nothing is added, nothing breaks.
        assert_eq!(b.available(500_000), 0);
        assert_eq!(b.available(1_100_000), 1);
        assert_eq!((b.rate(), b.burst()), (10, 5));
    }

    #[test]
    fn huge_values_saturate() {
        let mut b = TokenBucket::new(u64::MAX, u64::MAX, 0);
        assert!(b.try_take(u64::MAX / MICRO, u64::MAX));
        let mut b = TokenBucket::new(1, 1, 0);
        assert_eq!(b.wait_us(u64::MAX, 0), u64::MAX);
    }

    #[test]
    fn a_window_forgets_slowly_then_entirely() {
        let mut w = WindowCounter::new(1_000, 0);
        for t in 0..1_000 {
            w.add(1, t);
        }
        assert_eq!(w.count(999), 1_000);
        // A quarter into the next window, three quarters of the last still count.
        assert_eq!(w.count(1_250), 750);
        assert_eq!(w.count(1_999), 1);
        assert_eq!(w.count(2_000), 0);
        // A steady 1 event/µs reads as the window's length, within one event.
        let mut w = WindowCounter::new(1_000, 0);
        let mut last = 0;
        for t in 0..10_000 {
            last = w.add(1, t);
        }
        assert!(last.abs_diff(1_000) <= 1, "{last}");
        // Backwards clocks and a zero window do not break it.
        assert!(w.count(5) >= last);
        let mut z = WindowCounter::new(0, 0);
        assert_eq!(z.add(3, 0), 3);
        assert_eq!(z.count(2), 0);
    }
}
