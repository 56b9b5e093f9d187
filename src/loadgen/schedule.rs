//! Send pacing for many publishers of one rate, sans-IO: every publisher has a
//! fixed phase within the period and sends its `k`-th item at `start + k·period +
//! phase`. The publishers are kept sorted by phase, so the next deadline of all
//! of them is one cursor into that list — no heap, no per-publisher timers, and
//! deadlines computed from the start (integer arithmetic) so that they never
//! drift however late a send was.

/// Deadlines of a set of publishers sending `count` items each at `hz` per second.
///
/// ```
/// use poselink::loadgen::Schedule;
/// // Two publishers at 100 Hz (period 10 000 µs), phases 0 and 2500 µs, 2 items each.
/// let mut s = Schedule::new(100, 2, &[(2_500, 7), (0, 3)]);
/// let mut due = Vec::new();
/// while let Some((at, publisher)) = s.next(1_000_000) {
///     due.push((at, publisher));
///     s.advance();
/// }
/// assert_eq!(due, [(1_000_000, 3), (1_002_500, 7), (1_010_000, 3), (1_012_500, 7)]);
/// ```
#[derive(Clone, Debug)]
pub struct Schedule {
    hz: u64,
    count: u64,
    /// (phase in µs, publisher), sorted by phase.
    slots: Vec<(u64, u32)>,
    round: u64,
    cursor: usize,
}

impl Schedule {
    /// A schedule for publishers given as `(phase_us, publisher)`; each sends
    /// `count` items at `hz` per second (`hz` at least 1). Phases should lie within
    /// one period (`1_000_000 / hz` µs).
    pub fn new(hz: u32, count: u64, publishers: &[(u64, u32)]) -> Schedule {
        let mut slots = publishers.to_vec();
        slots.sort_unstable();
        Schedule {
            hz: u64::from(hz.max(1)),
            count,
            slots,
            round: 0,
            cursor: 0,
        }
    }

    /// Whether every item has been taken.
    pub fn done(&self) -> bool {
        self.slots.is_empty() || self.round >= self.count
    }

    /// The next deadline (µs, counting from a schedule that starts at `start_us`)
    /// and whose it is; `None` when done.
    #[inline]
    pub fn next(&self, start_us: u64) -> Option<(u64, u32)> {
        if self.done() {
            return None;
        }
        let (phase, publisher) = self.slots[self.cursor];
        Some((
            start_us + self.round * 1_000_000 / self.hz + phase,
            publisher,
        ))
    }

    /// Moves past the deadline [`next`](Self::next) gave.
    #[inline]
    pub fn advance(&mut self) {
        if self.done() {
            return;
        }
        self.cursor += 1;
        if self.cursor == self.slots.len() {
            self.cursor = 0;
            self.round += 1;
        }
    }

    /// When the last item is due (µs from `start_us`'s schedule), or `start_us`
    /// for an empty schedule.
    pub fn last_due(&self, start_us: u64) -> u64 {
        match self.slots.last() {
            Some(&(phase, _)) if self.count > 0 => {
                start_us + (self.count - 1) * 1_000_000 / self.hz + phase
            }
            _ => start_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_do_not_drift_and_stay_in_order() {
        // 60 Hz does not divide a second into whole microseconds.
        let pubs: Vec<(u64, u32)> = (0..5).map(|k| ((k * 3_331) % 16_666, k as u32)).collect();
        let mut s = Schedule::new(60, 600, &pubs);
        let mut last = 0;
        let mut n = 0;
        while let Some((at, _)) = s.next(0) {
            assert!(at >= last);
            last = at;
            n += 1;
            s.advance();
        }
        assert_eq!(n, 5 * 600);
        // Item 599 of the publisher of the largest phase: exactly 599/60 s in.
        assert_eq!(last, 599 * 1_000_000 / 60 + 13_324);
        assert_eq!(s.last_due(0), last);
        assert!(s.done());
        s.advance();
        assert!(s.next(0).is_none());
        assert!(Schedule::new(60, 10, &[]).done());
        assert!(Schedule::new(60, 0, &[(0, 1)]).done());
    }
}
