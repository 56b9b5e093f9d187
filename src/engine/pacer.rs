//! Pacing the engine's loop on the capture rate, sans-IO: the part of the
//! capture hand-off that decides when the loop wakes by itself. A camera hands
//! over a frame every 16.7 or 33.3 ms and a microphone a chunk every 20 ms;
//! waking the loop for each with a system call (an `eventfd` write, then the
//! scheduler waking the engine's thread) costs the capture thread tens of µs
//! at the tail. Instead the [`Pacer`] learns each hand-over stream's period from
//! the capture thread's own time stamps and plans a wake-up just after the next
//! frame is due; the app's call skips the wake when the loop is already due to
//! look within [`MAX_HOLD_US`] (the rule is the hand-off's, in `api.rs`), so a
//! paced frame waits at most that long and costs its caller no system call.
//!
//! The bounds, whatever the camera does: a stream is paced only while it is
//! regular (each arrival within a quarter of a period of its slot, its jitter
//! at most [`MAX_JITTER_US`]) and between 1 and 500 frames a second; a jittery or
//! irregular stream wakes the loop per call as before. A frame that is late
//! costs one planned wake-up that finds nothing (and its own wake); a camera
//! that stops costs at most [`MAX_MISSES`] of them, then no more until it
//! starts again. So the loop wakes at most twice per frame, and no frame waits
//! for a planned wake-up longer than [`MAX_HOLD_US`] (beyond the scheduler's
//! delay, which a system-call wake has too). The driver gives the time; this
//! module reads no clock.

/// Longest a handed-over frame may wait for a wake-up the loop has planned
/// anyway, µs: the latency the hand-off may add to spare the capture thread a
/// system call. It covers the pacing margin (at most 900 µs) and, where the
/// loop has no µs timer (not Linux), the 1 ms resolution of `epoll`'s
/// timeout; with the timer a paced frame waits about the margin.
pub(crate) const MAX_HOLD_US: u64 = 2_000;
/// Streams faster than this period (500 Hz) are not paced: a planned wake-up
/// per frame would be no cheaper than a wake per call.
const MIN_PERIOD_US: u64 = 2_000;
/// Streams slower than this period (1 Hz) are not paced: a wake a second costs nothing.
const MAX_PERIOD_US: u64 = 1_000_000;
/// Hand-overs closer than this are one arrival (the frames of several
/// persons, a pose and its audio, a thread's catching up).
const BURST_US: u64 = 500;
/// Regular intervals in a row before a stream is paced.
const REGULAR: u32 = 4;
/// A stream whose jitter (mean lateness of its arrivals behind its schedule)
/// exceeds this is not paced: its frames would miss the planned wake-ups.
pub(crate) const MAX_JITTER_US: u64 = 400;
/// The least time the planned wake-up leaves after a frame's due time, µs
/// (the capture thread's own sleep overshoots by tens of µs); twice the
/// jitter is added.
const MARGIN_MIN_US: u64 = 100;
/// Planned wake-ups in a row that find no frame before a stream is taken for
/// stopped (and no longer paced until it is regular again).
pub(crate) const MAX_MISSES: u32 = 3;

/// A hand-over stream the loop paces on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    /// `send_pose`.
    Pose = 0,
    /// `send_audio`.
    Audio = 1,
}

/// What one stream's hand-overs have shown of its rhythm. The schedule is
/// the lower envelope of the arrivals: a capture thread that sleeps until its
/// next frame is never early, only late by its sleep's overshoot and the
/// scheduler's delays, so an early arrival moves the schedule at once and a
/// late one only a little. (Predicting from the last arrival would carry one
/// frame's lateness into the next frame's wake-up, which that frame, on time,
/// would then precede.)
#[derive(Clone, Copy, Debug, Default)]
struct Cadence {
    /// The last arrival (the first of its burst), µs.
    last_us: Option<u64>,
    /// Where the schedule put the last arrival's slot, µs.
    slot_us: u64,
    /// The period learned (the first interval, then corrected by each
    /// arrival's distance from its slot), µs; 0 unknown.
    period_us: u64,
    /// The mean lateness of the arrivals behind the schedule (each counted
    /// up to twice [`MAX_JITTER_US`], so one stall does not stop the pacing), µs.
    jitter_us: u64,
    /// Regular intervals in a row.
    regular: u32,
    /// Slots since the last arrival whose planned wake-up found no frame.
    missed: u32,
}

impl Cadence {
    fn arrival(&mut self, at: u64) {
        let Some(last) = self.last_us else {
            self.last_us = Some(at);
            self.slot_us = at;
            return;
        };
        let d = at.saturating_sub(last);
        if d < BURST_US {
            return;
        }
        self.last_us = Some(at);
        self.missed = 0;
        let p = self.period_us;
        if p == 0 {
            self.period_us = d;
            self.slot_us = at;
            return;
        }
        // Slots since the last one: more than one when frames were dropped.
        let since = at.saturating_sub(self.slot_us);
        let k = since.saturating_add(p / 2) / p;
        let slot = self.slot_us.saturating_add(k.saturating_mul(p));
        let late = at as i64 - slot as i64;
        if k >= 1 && k <= u64::from(MAX_MISSES) + 1 && late.unsigned_abs() <= p / 4 {
            if k == 1 {
                self.regular = self.regular.saturating_add(1);
            }
            // One stall counts for a little: it costs its own wake, not the pacing.
            let late_us = late.unsigned_abs().min(2 * MAX_JITTER_US);
            self.jitter_us = (7 * self.jitter_us + if late > 0 { late_us } else { 0 }) / 8;
            // A phase-locked loop on the lower envelope. Early: the schedule is
            // at least this early, and its period shorter. Late: the
            // schedule and its period move a little.
            let per_slot = late / k as i64;
            if late < 0 {
                self.slot_us = at;
                self.period_us = p.saturating_add_signed(per_slot / 4);
            } else {
                let late = late_us as i64;
                self.slot_us = slot.saturating_add_signed(late / 16);
                self.period_us = p.saturating_add_signed(late / (64 * k as i64));
            }
        } else {
            // Another rate, or a start after a stop: learn it again.
            self.period_us = d;
            self.slot_us = at;
            self.jitter_us = 0;
            self.regular = 0;
        }
    }

    fn paced(&self) -> bool {
        self.regular >= REGULAR
            && (MIN_PERIOD_US..=MAX_PERIOD_US).contains(&self.period_us)
            && self.jitter_us <= MAX_JITTER_US
    }

    /// The wake-up just after the next frame is due, counting the slots that
    /// passed with no frame; `None` when the stream is not paced (or has
    /// stopped).
    fn next_wake(&mut self, now: u64) -> Option<u64> {
        if !self.paced() {
            return None;
        }
        let margin = MARGIN_MIN_US + 2 * self.jitter_us;
        loop {
            let slots = u64::from(self.missed) + 1;
            let due = self.slot_us + slots * self.period_us + margin;
            if due > now {
                return Some(due);
            }
            self.missed += 1;
            if self.missed >= MAX_MISSES {
                // Stopped (or slowed down): wait for it to be regular again.
                self.regular = 0;
                return None;
            }
        }
    }
}

/// The loop's plan of wake-ups on the capture rate, one cadence per stream.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    streams: [Cadence; 2],
}

impl Pacer {
    /// A frame or chunk of `stream` handed over at `at_us` (the capture
    /// thread's clock reading in the call: the loop may take it later).
    pub(crate) fn handle_arrival(&mut self, stream: Stream, at_us: u64) {
        self.streams[stream as usize].arrival(at_us);
    }

    /// When the loop should wake next for the hand-overs: just after the
    /// earliest frame due, if any stream is paced.
    pub(crate) fn poll_timeout(&mut self, now: u64) -> Option<u64> {
        let [a, b] = &mut self.streams;
        match (a.next_wake(now), b.next_wake(now)) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    /// Whether `stream` is paced now.
    #[cfg(test)]
    pub(crate) fn is_paced(&self, stream: Stream) -> bool {
        self.streams[stream as usize].paced()
    }
}

#[cfg(test)]
mod tests {
    //! The pacer in simulated time: a loop that sleeps until the planned
    //! wake-up (or is woken by a hand-over that would otherwise wait longer
    //! than the hold), driven by a scripted camera. Each case counts the
    //! loop's wake-ups and the wait of every frame.

    use super::*;

    /// What the simulated loop saw.
    #[derive(Debug, Default)]
    struct Run {
        /// Planned wake-ups (timer).
        planned: u32,
        /// Wakes by a hand-over (the system call the pacing avoids).
        woken: u32,
        /// The longest any frame waited for the loop, µs.
        max_wait: u64,
        /// Frames that waited for a planned wake-up (no system call).
        held: u32,
    }

    /// Runs the loop against hand-overs at `arrivals` (µs, ascending) of one
    /// stream until it has taken the last, with epoll's 1 ms rounding of the
    /// timeout (the worst case: with a µs timer the waits are shorter). The
    /// loop looks at the rings at every wake; a hand-over wakes it when its
    /// planned wake-up is more than `MAX_HOLD_US` away.
    fn simulate(pacer: &mut Pacer, stream: Stream, arrivals: &[u64]) -> Run {
        let end = arrivals.last().map_or(0, |a| a + 1);
        let mut run = Run::default();
        let mut now = 0;
        let mut i = 0;
        for _ in 0..1_000_000 {
            // The loop takes what has arrived, then plans its sleep.
            while i < arrivals.len() && arrivals[i] <= now {
                pacer.handle_arrival(stream, arrivals[i]);
                i += 1;
            }
            if now >= end {
                break;
            }
            let planned = pacer.poll_timeout(now).unwrap_or(now + 50_000);
            let wake = now + (planned - now).div_ceil(1_000) * 1_000;
            // The next hand-over: does it wake the loop, or wait for it?
            match arrivals.get(i) {
                Some(&a) if a < wake && wake - a > MAX_HOLD_US => {
                    run.woken += 1;
                    now = a;
                }
                Some(&a) if a < wake => {
                    run.planned += 1;
                    run.held += 1;
                    run.max_wait = run.max_wait.max(wake - a);
                    now = wake;
                }
                _ => {
                    if pacer.poll_timeout(now).is_some() {
                        run.planned += 1;
                    }
                    now = wake;
                }
            }
        }
        run
    }

    /// A camera at `period_us` from `start`, `n` frames, each `offset(k)` µs
    /// off its slot.
    fn camera(start: u64, period_us: u64, n: u64, offset: impl Fn(u64) -> i64) -> Vec<u64> {
        (0..n)
            .map(|k| (start + k * period_us).saturating_add_signed(offset(k)))
            .collect()
    }

    #[test]
    fn a_regular_camera_is_paced_and_no_frame_waits_longer_than_the_hold() {
        let mut p = Pacer::default();
        let frames = camera(1_000, 16_667, 600, |k| (k % 7) as i64 * 10);
        let run = simulate(&mut p, Stream::Pose, &frames);
        assert!(p.is_paced(Stream::Pose));
        // Only the frames before the rate was learned woke the loop.
        assert!(run.woken <= REGULAR + 2, "{run:?}");
        assert!(run.held >= 590, "{run:?}");
        assert!(run.max_wait <= MAX_HOLD_US, "{run:?}");
        // One planned wake-up per frame, not more.
        assert!(run.planned <= 600 + MAX_MISSES, "{run:?}");
    }

    #[test]
    fn a_late_frame_does_not_make_the_next_one_wake_the_loop() {
        let mut p = Pacer::default();
        // A capture thread's sleep overshoots by 50-150 µs; every tenth frame
        // it is held up 3 ms (the machine is busy).
        let frames = camera(1_000, 16_667, 600, |k| {
            if k % 10 == 5 {
                3_000
            } else {
                50 + ((k * 37) % 100) as i64
            }
        });
        let run = simulate(&mut p, Stream::Pose, &frames);
        // The 60 late frames wake the loop (their wake-up had come and gone);
        // the frames after them, on time, do not.
        assert!(run.woken <= 60 + REGULAR + 2, "{run:?}");
        assert!(run.held >= 530, "{run:?}");
        assert!(run.max_wait <= MAX_HOLD_US, "{run:?}");
    }

    #[test]
    fn audio_every_20_ms_is_paced_too() {
        let mut p = Pacer::default();
        let chunks = camera(500, 20_000, 300, |_| 0);
        let run = simulate(&mut p, Stream::Audio, &chunks);
        assert!(run.held >= 290, "{run:?}");
        assert!(run.max_wait <= MAX_HOLD_US, "{run:?}");
    }

    #[test]
    fn a_jittery_camera_is_not_paced_and_wakes_the_loop_once_a_frame() {
        let mut p = Pacer::default();
        // ±3 ms around each slot (an estimator whose inference time varies).
        let frames = camera(1_000, 33_333, 300, |k| ((k * 7919) % 6001) as i64 - 3000);
        let run = simulate(&mut p, Stream::Pose, &frames);
        assert!(!p.is_paced(Stream::Pose));
        assert!(run.woken >= 290, "{run:?}");
        // No planned wake-ups beyond the loop's 50 ms housekeeping.
        assert!(run.planned <= 10, "{run:?}");
    }

    #[test]
    fn a_stopped_camera_costs_at_most_max_misses_wake_ups() {
        let mut p = Pacer::default();
        let frames = camera(1_000, 16_667, 120, |_| 0);
        let last = *frames.last().unwrap();
        simulate(&mut p, Stream::Pose, &frames);
        // After the last frame: the loop alone, for ten seconds.
        let mut now = last + 1;
        let mut planned = 0;
        for _ in 0..10_000 {
            match p.poll_timeout(now) {
                Some(t) => {
                    planned += 1;
                    now = t;
                }
                None => break,
            }
        }
        assert_eq!(planned, MAX_MISSES);
        assert!(!p.is_paced(Stream::Pose));
        assert_eq!(p.poll_timeout(now + 10_000_000), None);
    }

    #[test]
    fn a_dropped_frame_costs_one_wake_up_and_pacing_goes_on() {
        let mut p = Pacer::default();
        let mut frames = camera(1_000, 16_667, 300, |_| 0);
        frames.remove(150);
        let run = simulate(&mut p, Stream::Pose, &frames);
        assert!(p.is_paced(Stream::Pose));
        assert!(run.woken <= REGULAR + 2, "{run:?}");
        assert!(run.held >= 290, "{run:?}");
    }

    #[test]
    fn a_camera_that_changes_rate_is_paced_again_at_the_new_rate() {
        let mut p = Pacer::default();
        let mut frames = camera(1_000, 16_667, 120, |_| 0);
        let then = frames.last().unwrap() + 500_000;
        frames.extend(camera(then, 33_333, 120, |_| 0));
        let run = simulate(&mut p, Stream::Pose, &frames);
        assert!(p.is_paced(Stream::Pose));
        // Learning twice: a handful of wakes each time.
        assert!(run.woken <= 2 * (REGULAR + 3), "{run:?}");
        assert!(run.max_wait <= MAX_HOLD_US, "{run:?}");
    }

    #[test]
    fn the_frames_of_several_persons_are_one_arrival() {
        let mut p = Pacer::default();
        let mut frames = Vec::new();
        for t in camera(1_000, 16_667, 200, |_| 0) {
            frames.extend([t, t + 30, t + 60]);
        }
        let run = simulate(&mut p, Stream::Pose, &frames);
        assert!(p.is_paced(Stream::Pose));
        assert!(run.max_wait <= MAX_HOLD_US, "{run:?}");
    }

    #[test]
    fn streams_faster_than_500_hz_are_not_paced() {
        let mut p = Pacer::default();
        let frames = camera(1_000, 1_000, 2_000, |_| 0);
        simulate(&mut p, Stream::Pose, &frames);
        assert!(!p.is_paced(Stream::Pose));
    }
}
