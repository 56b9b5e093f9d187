//! Clock offset estimation from ping/pong samples (`docs/PROTOCOL.md` §10).

/// One ping/pong exchange reduced to what it says about the two clocks.
///
/// ```
/// use poselink::sync::ClockSample;
/// // PROTOCOL.md §12.2: the hub is 900 019 575 µs ahead, 850 µs round trip.
/// let s = ClockSample::from_timestamps(5_000_000, 905_020_000, 905_020_050, 5_000_900).unwrap();
/// assert_eq!((s.offset_us, s.rtt_us), (900_019_575, 850));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    /// Responder clock − requester clock, in microseconds.
    pub offset_us: i64,
    /// Network round trip, the responder's own delay excluded, in microseconds.
    pub rtt_us: u64,
}

/// Why a ping/pong sample was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClockError {
    /// The pong arrived before the ping left (`t3 < t0`).
    PongBeforePing,
    /// The responder's send time is before its receive time (`t2 < t1`).
    ResponderBackwards,
    /// The responder spent longer on the ping than the whole exchange took: a
    /// negative round trip.
    NegativeRoundTrip,
    /// A time or the result does not fit signed 64-bit arithmetic.
    OutOfRange,
}

impl core::fmt::Display for ClockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ClockError::PongBeforePing => "pong received before its ping was sent (t3 < t0)",
            ClockError::ResponderBackwards => "responder's send time before its receive time",
            ClockError::NegativeRoundTrip => "negative round trip",
            ClockError::OutOfRange => "timestamps out of signed 64-bit range",
        })
    }
}

impl ClockSample {
    /// Reduces one exchange: `t0` ping sent and `t3` pong received on the requester's
    /// clock, `t1` ping received and `t2` pong sent on the responder's. In signed
    /// arithmetic, `offset = ((t1 − t0) + (t2 − t3)) / 2` (rounded towards zero) and
    /// `round trip = (t3 − t0) − (t2 − t1)`.
    pub fn from_timestamps(t0: u64, t1: u64, t2: u64, t3: u64) -> Result<Self, ClockError> {
        if t3 < t0 {
            return Err(ClockError::PongBeforePing);
        }
        if t2 < t1 {
            return Err(ClockError::ResponderBackwards);
        }
        let signed = |t: u64| i64::try_from(t).map_err(|_| ClockError::OutOfRange);
        let (t0, t1, t2, t3) = (signed(t0)?, signed(t1)?, signed(t2)?, signed(t3)?);
        // All four are in 0..=i64::MAX, so the differences fit i64 and their sum i128.
        let offset = ((t1 - t0) as i128 + (t2 - t3) as i128) / 2;
        let rtt = (t3 - t0) - (t2 - t1);
        if rtt < 0 {
            return Err(ClockError::NegativeRoundTrip);
        }
        Ok(ClockSample {
            offset_us: i64::try_from(offset).map_err(|_| ClockError::OutOfRange)?,
            rtt_us: rtt as u64,
        })
    }
}

/// The offset between our clock and a responder's (typically the hub's), from the
/// last `N` ping/pong samples: the estimate is the sample with the smallest round
/// trip (its error is at most half that round trip), the newest one on a tie.
///
/// ```
/// use poselink::sync::ClockSync;
/// let mut clock: ClockSync = ClockSync::new(); // the last 8 samples
/// assert_eq!(clock.offset_us(), None);
/// // Ping sent at 5 000 000 (our clock), pong sent at 905 020 050 (hub clock), back at 5 000 900.
/// clock.add(5_000_000, 905_020_000, 905_020_050, 5_000_900).unwrap();
/// assert_eq!(clock.offset_us(), Some(900_019_575));
/// assert_eq!(clock.rtt_us(), Some(850));
/// // The hub's 905 020 050 is our 5 000 475.
/// assert_eq!(clock.to_local(905_020_050), Some(5_000_475));
/// assert!(clock.add(10, 0, 0, 9).is_err()); // pong before ping
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSync<const N: usize = 8> {
    samples: [ClockSample; N],
    /// Samples held (up to N).
    len: usize,
    /// Where the next sample goes.
    next: usize,
    rejected: u64,
}

impl<const N: usize> Default for ClockSync<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ClockSync<N> {
    /// No samples yet. `N` must be at least 1.
    pub const fn new() -> Self {
        const { assert!(N > 0, "ClockSync needs room for at least one sample") };
        ClockSync {
            samples: [ClockSample {
                offset_us: 0,
                rtt_us: 0,
            }; N],
            len: 0,
            next: 0,
            rejected: 0,
        }
    }

    /// Adds the sample of one exchange (see [`ClockSample::from_timestamps`]),
    /// replacing the oldest of `N`; an absurd one is refused and counted.
    pub fn add(&mut self, t0: u64, t1: u64, t2: u64, t3: u64) -> Result<ClockSample, ClockError> {
        match ClockSample::from_timestamps(t0, t1, t2, t3) {
            Ok(sample) => {
                self.samples[self.next] = sample;
                self.next = (self.next + 1) % N;
                self.len = (self.len + 1).min(N);
                Ok(sample)
            }
            Err(e) => {
                self.rejected += 1;
                Err(e)
            }
        }
    }

    /// The sample with the smallest round trip of those held (the newest on a tie).
    pub fn best(&self) -> Option<ClockSample> {
        // Oldest to newest, so that `<=` lets a newer sample win a tie.
        let oldest = (self.next + N - self.len) % N;
        (0..self.len)
            .map(|i| self.samples[(oldest + i) % N])
            .reduce(|best, s| if s.rtt_us <= best.rtt_us { s } else { best })
    }

    /// Responder clock − our clock, in microseconds.
    pub fn offset_us(&self) -> Option<i64> {
        self.best().map(|s| s.offset_us)
    }

    /// The round trip of the sample the offset comes from.
    pub fn rtt_us(&self) -> Option<u64> {
        self.best().map(|s| s.rtt_us)
    }

    /// A time on the responder's clock as a time on ours (`remote − offset`); `None`
    /// with no estimate yet or when the result is not a `u64`.
    pub fn to_local(&self, remote_us: u64) -> Option<u64> {
        let local = remote_us as i128 - self.offset_us()? as i128;
        u64::try_from(local).ok()
    }

    /// A time on our clock as a time on the responder's (`local + offset`).
    pub fn to_remote(&self, local_us: u64) -> Option<u64> {
        let remote = local_us as i128 + self.offset_us()? as i128;
        u64::try_from(remote).ok()
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No sample held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Samples refused so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Forgets every sample (say, after a reconnect); keeps the `rejected` count.
    pub fn clear(&mut self) {
        self.len = 0;
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_of_the_protocol() {
        // PROTOCOL.md §12.2.
        let s = ClockSample::from_timestamps(5_000_000, 905_020_000, 905_020_050, 5_000_900);
        assert_eq!(
            s,
            Ok(ClockSample {
                offset_us: 900_019_575,
                rtt_us: 850
            })
        );
    }

    #[test]
    fn hand_computed_samples() {
        // Responder 1000 µs behind, 200 µs out, 300 µs back, 50 µs in the responder:
        // t0 = 10 000, t1 = 10 000 + 200 − 1000 = 9 200, t2 = 9 250,
        // t3 = 10 000 + 200 + 50 + 300 = 10 550.
        // offset = ((9200 − 10000) + (9250 − 10550)) / 2 = (−800 − 1300) / 2 = −1050
        // (off by half the asymmetry, −50), rtt = 550 − 50 = 500.
        let s = ClockSample::from_timestamps(10_000, 9_200, 9_250, 10_550).unwrap();
        assert_eq!((s.offset_us, s.rtt_us), (-1_050, 500));
        // An odd sum rounds towards zero: ((1 − 0) + (1 − 1)) / 2 = 0, and −1/2 = 0.
        assert_eq!(
            ClockSample::from_timestamps(0, 1, 1, 1).unwrap().offset_us,
            0
        );
        assert_eq!(
            ClockSample::from_timestamps(1, 0, 0, 2).unwrap().offset_us,
            -1
        ); // −3/2
        assert_eq!(
            ClockSample::from_timestamps(2, 0, 0, 3).unwrap().offset_us,
            -2
        ); // −5/2
        // Zero round trip (loopback, same clock) is fine.
        let s = ClockSample::from_timestamps(7, 7, 7, 7).unwrap();
        assert_eq!((s.offset_us, s.rtt_us), (0, 0));
    }

    #[test]
    fn absurd_samples_are_refused() {
        use ClockError::*;
        assert_eq!(
            ClockSample::from_timestamps(10, 0, 0, 9),
            Err(PongBeforePing)
        );
        assert_eq!(
            ClockSample::from_timestamps(0, 10, 9, 20),
            Err(ResponderBackwards)
        );
        // The responder held it 30 µs but the exchange took 20.
        assert_eq!(
            ClockSample::from_timestamps(0, 100, 130, 20),
            Err(NegativeRoundTrip)
        );
        assert_eq!(
            ClockSample::from_timestamps(0, u64::MAX, u64::MAX, 1),
            Err(OutOfRange)
        );
        let mut c: ClockSync<4> = ClockSync::new();
        assert!(c.add(10, 0, 0, 9).is_err());
        assert!(c.add(0, 100, 130, 20).is_err());
        assert_eq!((c.len(), c.rejected(), c.offset_us()), (0, 2, None));
    }

    #[test]
    fn smallest_round_trip_of_the_last_n_wins() {
        let mut c: ClockSync<3> = ClockSync::new();
        // offset 1000 rtt 400; offset 1100 rtt 100; offset 900 rtt 300.
        c.add(0, 1_200, 1_200, 400).unwrap();
        c.add(1_000, 2_150, 2_150, 1_100).unwrap();
        c.add(2_000, 3_050, 3_050, 2_300).unwrap();
        assert_eq!(
            c.best().map(|s| (s.offset_us, s.rtt_us)),
            Some((1_100, 100))
        );
        assert_eq!((c.offset_us(), c.rtt_us()), (Some(1_100), Some(100)));
        assert_eq!(c.to_local(11_100), Some(10_000));
        assert_eq!(c.to_remote(10_000), Some(11_100));
        assert_eq!(c.to_local(1_000), None); // before our clock's origin
        // Two more samples push the rtt-100 one out; rtt 300 is then the best, and a
        // later sample with the same rtt beats it.
        c.add(3_000, 4_000, 4_000, 3_600).unwrap(); // offset 700, rtt 600
        c.add(4_000, 5_000, 5_000, 4_700).unwrap(); // offset 650, rtt 700
        assert_eq!(c.len(), 3);
        assert_eq!((c.offset_us(), c.rtt_us()), (Some(900), Some(300)));
        c.add(5_000, 5_400, 5_400, 5_300).unwrap(); // offset 250, rtt 300
        assert_eq!((c.offset_us(), c.rtt_us()), (Some(250), Some(300)));
        c.clear();
        assert!(c.is_empty());
        // A tie goes to the newer sample.
        c.add(0, 1_200, 1_200, 400).unwrap(); // offset 1000, rtt 400
        c.add(1_000, 1_300, 1_300, 1_400).unwrap(); // offset 100, rtt 400
        c.add(2_000, 3_200, 3_200, 2_500).unwrap(); // offset 950, rtt 500
        assert_eq!((c.offset_us(), c.rtt_us()), (Some(100), Some(400)));
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.offset_us(), None);
    }
}
