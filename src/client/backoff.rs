//! Reconnect backoff: how long the client session waits before its next attempt to
//! reach the hub. The wait doubles with each failed attempt, from a minimum up to
//! a maximum, with "equal jitter" (half the wait fixed, half random) so that a
//! fleet of boards that lost the hub at the same moment does not come back at the
//! same moment. It is a pure state machine: the caller supplies the randomness and
//! does the waiting, and resets it once a session is established.

/// Exponential backoff with equal jitter.
///
/// Attempt `n` (counting from 0) has the base `min(max, min · 2^n)` and waits
/// `base / 2 + r % (base / 2 + 1)` for a random `r`: between half the base and the
/// base, inclusive.
///
/// ```
/// use poselink::client::Backoff;
///
/// let mut backoff = Backoff::new(100_000, 5_000_000); // 100 ms to 5 s
/// assert_eq!(backoff.next_delay_us(0), 50_000); // base 100 ms, no jitter
/// assert_eq!(backoff.next_delay_us(u32::MAX), 100_000 + u32::MAX as u64 % 100_001);
/// assert_eq!(backoff.attempt(), 2);
/// backoff.reset(); // connected
/// assert_eq!(backoff.next_delay_us(0), 50_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    min_us: u64,
    max_us: u64,
    attempt: u32,
}

impl Backoff {
    /// A backoff from `min_us` up to `max_us` microseconds (a `max_us` below
    /// `min_us` is taken as `min_us`), at attempt 0.
    pub const fn new(min_us: u64, max_us: u64) -> Self {
        Backoff {
            min_us,
            max_us: if max_us < min_us { min_us } else { max_us },
            attempt: 0,
        }
    }

    /// The wait before the next attempt, in microseconds, jittered by `random`
    /// (any value, for example from the hal's random source); counts the attempt.
    pub fn next_delay_us(&mut self, random: u32) -> u64 {
        let half = self.base_us() / 2;
        self.attempt = self.attempt.saturating_add(1);
        half + random as u64 % (half + 1)
    }

    /// The wait of attempt 0 (between half of `min_us` and `min_us`), jittered
    /// by `random`, without counting an attempt: the client session's first
    /// try of another hub.
    ///
    /// ```
    /// use poselink::client::Backoff;
    /// let mut b = Backoff::new(100_000, 5_000_000);
    /// b.next_delay_us(0);
    /// assert_eq!(b.shortest_delay_us(0), 50_000);
    /// assert_eq!(b.shortest_delay_us(u32::MAX), 50_000 + u32::MAX as u64 % 50_001);
    /// assert_eq!(b.attempt(), 1);
    /// ```
    pub fn shortest_delay_us(&self, random: u32) -> u64 {
        let half = self.min_us.min(self.max_us) / 2;
        half + random as u64 % (half + 1)
    }

    /// Back to attempt 0: the next wait is the shortest again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts counted since construction or the last [`reset`](Self::reset).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The base of the current attempt: `min(max, min · 2^attempt)`, without
    /// overflow.
    fn base_us(&self) -> u64 {
        let factor = 1u64.checked_shl(self.attempt).unwrap_or(u64::MAX);
        self.min_us.saturating_mul(factor).min(self.max_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's defaults.
    const MIN: u64 = 100_000;
    const MAX: u64 = 5_000_000;

    #[test]
    fn doubles_within_its_jitter_and_caps() {
        let bases = [
            100_000, 200_000, 400_000, 800_000, 1_600_000, 3_200_000, 5_000_000, 5_000_000,
            5_000_000,
        ];
        for random in [0, 1, 12_345, 49_999, 50_000, 0x8000_0000, u32::MAX] {
            let mut b = Backoff::new(MIN, MAX);
            for (n, &base) in bases.iter().enumerate() {
                assert_eq!(b.attempt(), n as u32);
                let d = b.next_delay_us(random);
                assert!(
                    (base / 2..=base).contains(&d),
                    "attempt {n}: {d} for {base}"
                );
                assert_eq!(d, base / 2 + random as u64 % (base / 2 + 1));
            }
        }
        // No jitter: exactly half the base, which doubles until the cap.
        let mut b = Backoff::new(MIN, MAX);
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay_us(0)).collect();
        assert_eq!(
            delays,
            [
                50_000, 100_000, 200_000, 400_000, 800_000, 1_600_000, 2_500_000, 2_500_000
            ]
        );
        // The top of the jitter reaches the base itself.
        let mut b = Backoff::new(MIN, MAX);
        assert_eq!(b.next_delay_us(50_000), 100_000);
    }

    #[test]
    fn stays_capped_however_many_attempts() {
        let mut b = Backoff::new(MIN, MAX);
        for _ in 0..200 {
            let d = b.next_delay_us(u32::MAX);
            assert!(d <= MAX);
        }
        assert_eq!(b.attempt(), 200);
        let mut b = Backoff {
            attempt: u32::MAX - 1,
            ..Backoff::new(MIN, MAX)
        };
        assert!((MAX / 2..=MAX).contains(&b.next_delay_us(7)));
        assert!((MAX / 2..=MAX).contains(&b.next_delay_us(7)));
        assert_eq!(b.attempt(), u32::MAX, "saturates");
        // Large bounds do not overflow.
        let mut b = Backoff::new(u64::MAX / 3, u64::MAX);
        for _ in 0..70 {
            assert!(b.next_delay_us(u32::MAX) >= u64::MAX / 6);
        }
    }

    #[test]
    fn reset_restarts() {
        let mut b = Backoff::new(MIN, MAX);
        for _ in 0..10 {
            b.next_delay_us(3);
        }
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay_us(0), 50_000);
        assert_eq!(b.next_delay_us(0), 100_000);
    }

    #[test]
    fn odd_bounds() {
        // A maximum below the minimum is the minimum.
        let mut b = Backoff::new(MAX, MIN);
        assert_eq!(b.next_delay_us(0), MAX / 2);
        assert_eq!(b.next_delay_us(0), MAX / 2);
        // No minimum: no wait.
        let mut b = Backoff::new(0, MAX);
        assert_eq!(b.next_delay_us(u32::MAX), 0);
        // An odd base: the wait stays within it.
        let mut b = Backoff::new(3, 3);
        for random in 0..10 {
            assert!((1..=3).contains(&b.next_delay_us(random)));
        }
    }
}
