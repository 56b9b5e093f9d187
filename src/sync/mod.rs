//! Media sync for one sender, sans-IO: when to play what a sender captured. The
//! pieces take the caller's times in microseconds and hand back what is due, so they
//! run the same under a real clock, a simulated one, and on bare metal (`no_std`, no
//! allocation, fixed capacities as const generics).
//!
//! - [`ClockSync`] turns ping/pong samples into the offset between this peer's clock
//!   and the responder's (the hub's), keeping the sample with the smallest round
//!   trip of the last few (`docs/PROTOCOL.md` §10).
//! - [`JitterBuffer`] holds one audio stream: it puts chunks back in `seq` order,
//!   drops duplicates and latecomers, and releases each chunk at its play-out time,
//!   reporting a chunk that never came as a [`Popped::Gap`].
//! - [`MediaSync`] does the same for one sender's audio *and* pose frames on one
//!   shared timeline, and hands both out in capture-time order, so that a consumer
//!   renders each pose with the audio captured at the same moment.
//!
//! # The model
//!
//! **The timeline.** A sender stamps its pose frames and its audio chunks with one
//! clock (§10), whose origin is unrelated to ours. The first item a buffer accepts
//! fixes the mapping from that clock to ours: it plays `delay_us` after it arrived,
//! and an item captured `t` µs later plays `t` µs later:
//!
//! ```text
//! playout(capture) = first_arrival + delay_us + (capture − first_capture)
//! ```
//!
//! No clock synchronisation is needed for this (the first item's transit time is
//! folded into the mapping); [`ClockSync`] is for relating times to the hub's clock.
//! The delay is the budget for jitter: an item that arrives up to `delay_us` later
//! than the first one did, relative to its capture time, is still in time. It is fixed
//! (no adaptive stretching): if the first item itself came in slow, everything plays
//! that much later, until a [reset](#clock-jumps-and-restarts).
//!
//! **What a consumer can rely on.**
//!
//! - *Nothing comes out before its play-out time*: `pop(now)` releases an item only
//!   once `now >= playout`; call it until it returns `None` on every tick, and
//!   `next_due_us()` says when the next item falls due (a poll timeout).
//! - *Audio comes out in `seq` order, each `seq` once*: from the first chunk (or a
//!   restart) on, the sequence numbers come out consecutively, each as its chunk or
//!   as a gap (serial-number arithmetic: `u32::MAX` is followed by 0).
//! - *Gaps are certain and already due*: a missing `seq` is reported only once a
//!   later chunk is due, or has arrived after its own play-out time, so a gap means
//!   the chunk's play-out time has passed; conceal it at once. Chunks lost at the very
//!   end of a stream (with nothing after them) are never reported.
//! - *Late items are dropped, never released out of order*: an item that arrives after
//!   its play-out time is counted (`late`) and dropped, a repeated one likewise
//!   (`duplicates`). With [`MediaSync`], pose frames and audio chunks come out in
//!   non-decreasing capture time (on a tie, audio first); a gap comes out at its place
//!   in the audio sequence as soon as the loss is known, which can be after poses
//!   captured during the lost chunk.
//! - *Bounded memory*: a full jitter buffer keeps the chunks that play soonest (the
//!   one that would play last is dropped, counted as `overflow`, and becomes a gap);
//!   a full pose store keeps the latest captures. Neither fills up in normal operation
//!   when the capacity covers the delay (the delay over the chunk length, plus a few).
//! - Times passed to `push` and `pop` are taken as one monotonic clock: a time earlier
//!   than one seen before counts as that one.
//!
//! **Catching up.** The mapping is anchored on the first item; if that item was held
//! up (a stall, the backlog sent after a reconnect), every later item would wait
//! that much longer than the delay — more than the buffers hold. So an item that
//! would wait more than 150 ms beyond the delay re-anchors the timeline on itself
//! (without flushing: the mapping only moves earlier, so what is held keeps its
//! order and plays at once). A burst within 150 ms is jitter, which the delay
//! absorbs.
//!
//! <a id="clock-jumps-and-restarts"></a>**Clock jumps and restarts.** The sender's
//! clock is monotonic (§10), but a sender can restart with another origin or another
//! `seq`. A buffer starts over (flushes what it holds, counted as `resets`) when
//!
//! - an item would wait more than `resync_us` beyond the delay (the sender's clock
//!   jumped ahead): the timeline is re-anchored on it;
//! - every item pushed during `resync_us` of arrival time was late (the clock jumped
//!   back, or the network's latency rose for good by more than the delay): the
//!   timeline is re-anchored on the next one. A network stall is not mistaken for
//!   this: its backlog arrives at once, and the fresh items after it are on time, so
//!   a stall only loses what arrived after its play-out time;
//! - a chunk's `seq` is more than `max_seq_jump` from the expected one, and the chunk is
//!   on time (a restarted sequence; a stale one is dropped as late): the sequence
//!   restarts at it with no gaps for the numbers in between, on the same timeline;
//! - a chunk behind the expected `seq` has its play-out time still ahead: neither a
//!   duplicate nor a reordered chunk can, since the buffer only moves past a `seq`
//!   once its play-out time has passed; so the sender restarted its sequence.
//!
//! The push that starts a buffer over returns [`Pushed::Reset`], so the caller can
//! reset what it keeps per stream (a concealment state, say); nothing is released for
//! the items flushed.
//!
//! Before the first chunk is released, an earlier chunk than the first one received
//! (within `max_seq_jump`, and on time) is still taken in: the stream then starts at
//! it, and the numbers in between that never come are gaps.

mod clock;
mod jitter;
mod media;

pub use clock::{ClockError, ClockSample, ClockSync};
pub use jitter::{JitterBuffer, JitterStats, Popped, Pushed};
pub use media::{Media, MediaStats, MediaSync, PoseStats};

/// The play-out settings shared by [`JitterBuffer`] and [`MediaSync`].
///
/// ```
/// use poselink::sync::SyncConfig;
/// let config = SyncConfig { delay_us: 80_000, ..SyncConfig::DEFAULT };
/// assert_eq!(config.resync_us, 1_000_000);
/// assert_eq!(SyncConfig::default().delay_us, 60_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    /// How long after its arrival the first item plays, in microseconds: the jitter
    /// budget and the latency the buffer adds. Default 60 ms.
    pub delay_us: u64,
    /// How far the sender's clock may appear to step before the buffer starts over on
    /// a new timeline, in microseconds. Default 1 s.
    pub resync_us: u64,
    /// The largest distance between a chunk's `seq` and the expected one that is
    /// taken as loss or reordering; beyond it the sequence restarts. Default 100
    /// (2 s of 20 ms chunks).
    pub max_seq_jump: u32,
}

impl SyncConfig {
    /// 60 ms delay, 1 s resync threshold, sequence jumps up to 100.
    pub const DEFAULT: SyncConfig = SyncConfig {
        delay_us: 60_000,
        resync_us: 1_000_000,
        max_seq_jump: 100,
    };
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An item that would be held this much longer than the play-out delay means the
/// mapping is anchored on a held-up item: the timeline catches up (re-anchors).
const CATCH_UP_US: u64 = 150_000;

/// What to do with a chunk or frame pushed into a buffer, as far as its place on the
/// timeline goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// It plays at this local time (which may already have passed: late).
    At(u64),
    /// The mapping no longer holds: start over, re-anchored on this item.
    Jump,
}

/// The capture-time → local-time mapping of one sender, with the monotonic local
/// clock and the clock-jump detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timeline {
    delay_us: u64,
    resync_us: u64,
    /// (capture time, local play-out time) of the item that anchors the mapping.
    anchor: Option<(u64, u64)>,
    /// The latest local time seen (push arrivals and pop times).
    now_us: u64,
    /// Arrival of the first of an unbroken run of late items.
    late_since: Option<u64>,
}

impl Timeline {
    const fn new(config: &SyncConfig) -> Self {
        Timeline {
            delay_us: config.delay_us,
            resync_us: config.resync_us,
            anchor: None,
            now_us: 0,
            late_since: None,
        }
    }

    /// Advances the monotonic clock to `t` (if later) and returns it.
    fn observe(&mut self, t: u64) -> u64 {
        self.now_us = self.now_us.max(t);
        self.now_us
    }

    fn playout_us(&self, capture_ts_us: u64) -> Option<u64> {
        let (base_capture, base_local) = self.anchor?;
        Some(if capture_ts_us >= base_capture {
            base_local.saturating_add(capture_ts_us - base_capture)
        } else {
            base_local.saturating_sub(base_capture - capture_ts_us)
        })
    }

    fn anchor(&mut self, capture_ts_us: u64, arrival_us: u64) {
        self.anchor = Some((capture_ts_us, arrival_us.saturating_add(self.delay_us)));
        self.late_since = None;
    }

    /// Places an item arriving at `arrival_us` (already observed); anchors the
    /// timeline on it if there is none yet.
    fn place(&mut self, capture_ts_us: u64, arrival_us: u64) -> Place {
        let Some(playout) = self.playout_us(capture_ts_us) else {
            self.anchor(capture_ts_us, arrival_us);
            return Place::At(arrival_us.saturating_add(self.delay_us));
        };
        let ready = arrival_us.saturating_add(self.delay_us);
        if playout > ready.saturating_add(self.resync_us) {
            return Place::Jump;
        }
        if playout > ready.saturating_add(CATCH_UP_US) {
            // It came far sooner than the mapping expects: the item the mapping
            // was anchored on was held up (a stall, the backlog after a
            // reconnect), and every later item would wait that much longer —
            // more than the buffers hold. Catch up: re-anchor on this one. (A
            // burst within CATCH_UP_US is jitter, which the delay absorbs.) The
            // mapping stays monotonic, so what is held keeps its order.
            self.anchor(capture_ts_us, arrival_us);
            return Place::At(ready);
        }
        if playout < arrival_us {
            let since = *self.late_since.get_or_insert(arrival_us);
            if arrival_us.saturating_sub(since) >= self.resync_us {
                return Place::Jump;
            }
        } else {
            self.late_since = None;
        }
        Place::At(playout)
    }
}

/// Serial-number distance from `from` to `seq` (RFC 1982 style): positive when `seq`
/// comes after `from`.
const fn seq_delta(seq: u32, from: u32) -> i32 {
    seq.wrapping_sub(from) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_maps_and_detects_jumps() {
        let mut t = Timeline::new(&SyncConfig::DEFAULT);
        assert_eq!(t.playout_us(5), None);
        assert_eq!(t.place(1_000, 10_000), Place::At(70_000));
        assert_eq!(t.playout_us(21_000), Some(90_000));
        assert_eq!(t.playout_us(0), Some(69_000));
        // Far ahead: a jump.
        assert_eq!(t.place(2_100_000, 20_000), Place::Jump);
        // Late, but only a jump once lateness has lasted resync_us.
        assert_eq!(t.place(1_000, 100_000), Place::At(70_000));
        assert_eq!(t.place(1_000, 1_099_999), Place::At(70_000));
        assert_eq!(t.place(1_000, 1_100_000), Place::Jump);
        // An on-time item breaks the run.
        t.late_since = None;
        assert_eq!(t.place(1_000, 100_000), Place::At(70_000));
        assert_eq!(
            t.place(300_000, 200_000),
            Place::At(369_000),
            "held 109 ms more: jitter"
        );
        // Held 569 ms: the anchor was held up; catch up on this item.
        assert_eq!(t.place(2_000_000, 1_500_000), Place::At(1_560_000));
        assert_eq!(t.playout_us(1_000_000), Some(560_000));
        assert_eq!(t.observe(5), 5);
        assert_eq!(t.observe(7), 7);
        assert_eq!(t.observe(3), 7);
    }

    #[test]
    fn serial_numbers_wrap() {
        assert_eq!(seq_delta(0, u32::MAX), 1);
        assert_eq!(seq_delta(u32::MAX, 0), -1);
        assert_eq!(seq_delta(5, 3), 2);
        assert_eq!(seq_delta(2, u32::MAX - 2), 5);
    }
}
