//! The audio jitter buffer of one stream: reorder by `seq`, drop duplicates and
//! latecomers, release at play-out time, report what never came as gaps.
//!
//! Its storage is not a FIFO ring (and so not `ringbuf`'s): chunks arrive out of
//! order and are placed by sequence number, a late one fills a hole before
//! what came after it, a full buffer gives up the chunk that would play *last*
//! rather than the oldest, and a gap is found by looking at the next expected
//! number. A ring's push at the tail and pop at the head cannot express that.
//! It is also `no_std` with its capacity in the type (`const N`), so that a
//! bare-metal build can hold it in a `static`.

use super::{Place, SyncConfig, Timeline, seq_delta};
use crate::proto::AudioChunk;

/// What became of a pushed chunk (or pose frame, with [`MediaSync`](super::MediaSync)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Pushed {
    /// Stored; it comes out at its play-out time.
    Stored,
    /// Stored after starting over: a restarted sequence or a clock jump; everything
    /// held before was dropped (see the [module docs](super#clock-jumps-and-restarts)).
    Reset,
    /// Dropped: already held, or already released.
    Duplicate,
    /// Dropped: it arrived after its play-out time (or after its `seq` was passed).
    Late,
    /// Dropped: the buffer is full of items that play sooner.
    Overflow,
}

/// What [`JitterBuffer::pop`] releases.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Popped<'a> {
    /// The next chunk, due since `playout_us` (local time). Its `seq` and
    /// `capture_ts_us` are those it was pushed with.
    Chunk {
        /// The chunk, valid until the next call on the buffer.
        chunk: &'a AudioChunk,
        /// When it was due to play, on the local clock.
        playout_us: u64,
    },
    /// Chunk `seq` is lost: a later chunk is due (or came after its own play-out
    /// time), so this one's time has passed. Conceal it now.
    Gap {
        /// The missing sequence number.
        seq: u32,
    },
}

/// Counters of a [`JitterBuffer`]. Every pushed chunk ends up in exactly one of
/// `released`, `duplicates`, `late`, `overflow` or `flushed`, or is still held:
/// `pushed == released + duplicates + late + overflow + flushed + len`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct JitterStats {
    /// Chunks pushed.
    pub pushed: u64,
    /// Chunks released by `pop`.
    pub released: u64,
    /// Chunks dropped as already held or already released.
    pub duplicates: u64,
    /// Chunks dropped because they arrived after their play-out time.
    pub late: u64,
    /// Chunks dropped because the buffer was full.
    pub overflow: u64,
    /// Chunks dropped when the buffer started over.
    pub flushed: u64,
    /// Gaps released: sequence numbers that never came in time.
    pub gaps: u64,
    /// Times the buffer started over (restarted sequence or clock jump).
    pub resets: u64,
}

#[derive(Clone, Copy)]
struct Slot {
    used: bool,
    /// The chunk, with `seq` and `capture_ts_us` as pushed.
    chunk: AudioChunk,
}

impl Slot {
    const EMPTY: Slot = Slot {
        used: false,
        chunk: AudioChunk::silence(48_000, 1, 0),
    };
}

/// What the head of the queue has to offer now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// The head chunk is due.
    Chunk {
        slot: usize,
        capture_ts_us: u64,
        playout_us: u64,
    },
    /// The head `seq` is lost; `capture_ts_us` is where it would have been (the end
    /// of the chunk before it), to order it among pose frames.
    Gap { seq: u32, capture_ts_us: u64 },
}

/// The sequence side of the jitter buffer; the timeline is passed in, so that
/// [`MediaSync`](super::MediaSync) can share its own with the pose frames.
#[derive(Clone)]
pub(super) struct AudioQueue<const N: usize> {
    slots: [Slot; N],
    len: usize,
    max_seq_jump: u32,
    /// Whether `head` means anything.
    started: bool,
    /// The next `seq` to release.
    head: u32,
    /// Whether `head` moved since the (re)start.
    moved: bool,
    /// Bit `i`: `head − 1 − i` was released as a chunk (for duplicates).
    released: u64,
    /// The highest `seq` at or after the head known to be past its play-out time
    /// (it came late).
    past: Option<u32>,
    /// Where the head's chunk should start (the end of the last released chunk,
    /// advanced over gaps).
    expected_capture: Option<u64>,
    last_duration_us: u64,
    pub(super) stats: JitterStats,
}

impl Next {
    /// The capture time to order it by.
    pub(super) fn capture_ts_us(&self) -> u64 {
        match *self {
            Next::Chunk { capture_ts_us, .. } | Next::Gap { capture_ts_us, .. } => capture_ts_us,
        }
    }
}

impl<const N: usize> AudioQueue<N> {
    pub(super) const fn new(max_seq_jump: u32) -> Self {
        const { assert!(N > 0, "a jitter buffer needs room for at least one chunk") };
        AudioQueue {
            slots: [Slot::EMPTY; N],
            len: 0,
            max_seq_jump,
            started: false,
            head: 0,
            moved: false,
            released: 0,
            past: None,
            expected_capture: None,
            last_duration_us: 0,
            stats: JitterStats {
                pushed: 0,
                released: 0,
                duplicates: 0,
                late: 0,
                overflow: 0,
                flushed: 0,
                gaps: 0,
                resets: 0,
            },
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn find(&self, seq: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.used && s.chunk.seq == seq)
    }

    fn start(&mut self, seq: u32) {
        self.started = true;
        self.head = seq;
        self.moved = false;
        self.released = 0;
        self.past = None;
        self.expected_capture = None;
    }

    /// Drops everything held and forgets the sequence (counted as a reset if it had
    /// started); the next chunk starts it again.
    pub(super) fn stop(&mut self) {
        if self.started {
            self.stats.resets += 1;
        }
        self.stats.flushed += self.len as u64;
        for slot in self.slots.iter_mut() {
            slot.used = false;
        }
        self.len = 0;
        self.started = false;
    }

    /// Starts over at `seq` and stores the chunk: after a clock jump.
    pub(super) fn restart_with(&mut self, seq: u32, capture_ts_us: u64, chunk: &AudioChunk) {
        self.stats.pushed += 1;
        self.stop();
        self.start(seq);
        self.store(seq, capture_ts_us, chunk);
    }

    /// Takes in a chunk that plays at `playout_us` and arrived at `arrival_us` (on
    /// the monotonic clock of the timeline, which has already placed it).
    pub(super) fn push(
        &mut self,
        seq: u32,
        capture_ts_us: u64,
        chunk: &AudioChunk,
        playout_us: u64,
        arrival_us: u64,
    ) -> Pushed {
        self.stats.pushed += 1;
        let late = playout_us < arrival_us;
        if !self.started {
            if late {
                self.stats.late += 1;
                return Pushed::Late;
            }
            self.start(seq);
            return self.store(seq, capture_ts_us, chunk);
        }
        let d = seq_delta(seq, self.head);
        if d.unsigned_abs() > self.max_seq_jump {
            if late {
                self.stats.late += 1;
                return Pushed::Late;
            }
            self.stop();
            self.start(seq);
            self.store(seq, capture_ts_us, chunk);
            return Pushed::Reset;
        }
        if d < 0 {
            if playout_us > arrival_us {
                if !self.moved {
                    // Nothing released yet: the stream starts earlier than we thought.
                    self.head = seq;
                    return self.store(seq, capture_ts_us, chunk);
                }
                // Behind the head, yet still to play: neither a duplicate nor a
                // reordered chunk (the head only moves past a `seq` once its play-out
                // time has come), so the sender restarted its sequence.
                self.stop();
                self.start(seq);
                self.store(seq, capture_ts_us, chunk);
                return Pushed::Reset;
            }
            let back = d.unsigned_abs();
            if back <= 64 && (self.released >> (back - 1)) & 1 == 1 {
                self.stats.duplicates += 1;
                return Pushed::Duplicate;
            }
            self.stats.late += 1;
            return Pushed::Late;
        }
        if self.find(seq).is_some() {
            self.stats.duplicates += 1;
            return Pushed::Duplicate;
        }
        if late {
            self.stats.late += 1;
            if self.past.is_none_or(|p| seq_delta(seq, p) > 0) {
                self.past = Some(seq);
            }
            return Pushed::Late;
        }
        self.store(seq, capture_ts_us, chunk)
    }

    /// Stores a chunk at or after the head; when full, the chunk that plays last
    /// (furthest `seq`) makes room, or the new one is dropped if it is that chunk.
    fn store(&mut self, seq: u32, capture_ts_us: u64, chunk: &AudioChunk) -> Pushed {
        let index = if self.len < N {
            self.len += 1;
            self.slots.iter().position(|s| !s.used)
        } else {
            let head = self.head;
            let (furthest, d) = self
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| (i, seq_delta(s.chunk.seq, head)))
                .max_by_key(|&(_, d)| d)
                .expect("N > 0");
            self.stats.overflow += 1;
            if seq_delta(seq, head) >= d {
                return Pushed::Overflow;
            }
            Some(furthest)
        };
        let slot = &mut self.slots[index.expect("a free slot when len < N")];
        slot.used = true;
        slot.chunk = *chunk;
        slot.chunk.seq = seq;
        slot.chunk.capture_ts_us = capture_ts_us;
        Pushed::Stored
    }

    /// What the head offers at `now_us` (already observed), without taking it.
    pub(super) fn peek(&self, now_us: u64, timeline: &Timeline) -> Option<Next> {
        if !self.started {
            return None;
        }
        let due = |slot: &Slot| {
            timeline
                .playout_us(slot.chunk.capture_ts_us)
                .filter(|&p| p <= now_us)
        };
        if let Some(i) = self.find(self.head) {
            return due(&self.slots[i]).map(|playout_us| Next::Chunk {
                slot: i,
                capture_ts_us: self.slots[i].chunk.capture_ts_us,
                playout_us,
            });
        }
        let lost = self.past.is_some() || self.slots.iter().any(|s| s.used && due(s).is_some());
        lost.then(|| Next::Gap {
            seq: self.head,
            capture_ts_us: self.expected_capture.unwrap_or(0),
        })
    }

    /// When `peek` will next offer something: `None` if only a new chunk can change
    /// that; a time at or before the last one observed if it offers something now.
    pub(super) fn next_due_us(&self, timeline: &Timeline) -> Option<u64> {
        if !self.started {
            return None;
        }
        let playout = |slot: &Slot| timeline.playout_us(slot.chunk.capture_ts_us);
        if let Some(i) = self.find(self.head) {
            return playout(&self.slots[i]);
        }
        if self.past.is_some() {
            return Some(timeline.now_us);
        }
        self.slots
            .iter()
            .filter(|s| s.used)
            .filter_map(playout)
            .min()
    }

    /// Takes what `peek` offered.
    pub(super) fn take(&mut self, next: Next) -> Popped<'_> {
        match next {
            Next::Chunk {
                slot, playout_us, ..
            } => {
                self.advance(true);
                self.len -= 1;
                self.stats.released += 1;
                let slot = &mut self.slots[slot];
                slot.used = false;
                self.last_duration_us = slot.chunk.duration_us();
                self.expected_capture = Some(
                    slot.chunk
                        .capture_ts_us
                        .saturating_add(self.last_duration_us),
                );
                Popped::Chunk {
                    chunk: &slot.chunk,
                    playout_us,
                }
            }
            Next::Gap { seq, .. } => {
                self.advance(false);
                self.stats.gaps += 1;
                self.expected_capture = self
                    .expected_capture
                    .map(|c| c.saturating_add(self.last_duration_us));
                Popped::Gap { seq }
            }
        }
    }

    fn advance(&mut self, released: bool) {
        let passed = self.head;
        self.head = self.head.wrapping_add(1);
        self.moved = true;
        self.released = (self.released << 1) | released as u64;
        if self.past == Some(passed) {
            self.past = None;
        }
    }
}

/// The jitter buffer of ONE audio stream, holding up to `N` chunks in place.
///
/// Chunks are pushed as they arrive, with their `seq`, capture time (sender's clock)
/// and arrival time (ours); [`pop`](Self::pop) releases them in `seq` order, each at
/// `first_arrival + delay + (capture − first_capture)`, and reports a chunk that
/// never came in time as a [`Popped::Gap`]. The [module docs](super) give the rules.
/// For pose frames aligned with the audio, use [`MediaSync`](super::MediaSync), which
/// holds a jitter buffer itself.
///
/// ```
/// use poselink::proto::AudioChunk;
/// use poselink::sync::{JitterBuffer, Popped, Pushed, SyncConfig};
///
/// let mut jb: JitterBuffer<8> = JitterBuffer::new(SyncConfig::DEFAULT); // 60 ms delay
/// let chunk = AudioChunk::silence(48_000, 1, 960); // 20 ms
/// // Chunk 1 (captured at 20 ms) overtakes chunk 0 on the way.
/// assert_eq!(jb.push(1, 20_000, 1_000_000, &chunk), Pushed::Stored);
/// assert_eq!(jb.push(0, 0, 1_005_000, &chunk), Pushed::Stored);
/// assert_eq!(jb.push(0, 0, 1_006_000, &chunk), Pushed::Duplicate);
/// // Chunk 1 anchored the timeline: it plays at 1 060 000, chunk 0 20 ms earlier.
/// assert_eq!(jb.pop(1_039_999), None);
/// match jb.pop(1_040_000) {
///     Some(Popped::Chunk { chunk, playout_us }) => assert_eq!((chunk.seq, playout_us), (0, 1_040_000)),
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(jb.next_due_us(), Some(1_060_000));
/// assert!(matches!(jb.pop(1_060_000), Some(Popped::Chunk { .. })));
/// // Chunk 2 never comes; chunk 3 does, and when it is due, 2 is reported lost.
/// jb.push(3, 60_000, 1_070_000, &chunk);
/// assert_eq!(jb.pop(1_100_000), Some(Popped::Gap { seq: 2 }));
/// assert!(matches!(jb.pop(1_100_000), Some(Popped::Chunk { chunk, .. }) if chunk.seq == 3));
/// assert_eq!((jb.stats().gaps, jb.stats().duplicates, jb.len()), (1, 1, 0));
/// ```
#[derive(Clone)]
pub struct JitterBuffer<const N: usize> {
    config: SyncConfig,
    timeline: Timeline,
    queue: AudioQueue<N>,
}

impl<const N: usize> Default for JitterBuffer<N> {
    fn default() -> Self {
        Self::new(SyncConfig::DEFAULT)
    }
}

impl<const N: usize> JitterBuffer<N> {
    /// An empty buffer (`N` must be at least 1). It takes about `N` × 1.95 KB; give it
    /// room for the delay over the chunk length, plus a few.
    pub const fn new(config: SyncConfig) -> Self {
        JitterBuffer {
            config,
            timeline: Timeline::new(&config),
            queue: AudioQueue::new(config.max_seq_jump),
        }
    }

    /// The settings.
    pub fn config(&self) -> SyncConfig {
        self.config
    }

    /// Takes in chunk `seq`, captured at `capture_ts_us` on the sender's clock and
    /// received at `arrival_us` on ours, storing a copy (whose `seq` and
    /// `capture_ts_us` are set from the arguments).
    pub fn push(
        &mut self,
        seq: u32,
        capture_ts_us: u64,
        arrival_us: u64,
        chunk: &AudioChunk,
    ) -> Pushed {
        let arrival_us = self.timeline.observe(arrival_us);
        match self.timeline.place(capture_ts_us, arrival_us) {
            Place::At(playout_us) => {
                self.queue
                    .push(seq, capture_ts_us, chunk, playout_us, arrival_us)
            }
            Place::Jump => {
                self.timeline.anchor(capture_ts_us, arrival_us);
                self.queue.restart_with(seq, capture_ts_us, chunk);
                Pushed::Reset
            }
        }
    }

    /// The next chunk or gap in `seq` order, if its time has come at `now_us`.
    pub fn pop(&mut self, now_us: u64) -> Option<Popped<'_>> {
        let now_us = self.timeline.observe(now_us);
        let next = self.queue.peek(now_us, &self.timeline)?;
        Some(self.queue.take(next))
    }

    /// When [`pop`](Self::pop) will next have something (a time already passed if it
    /// has something now); `None` until another chunk arrives.
    pub fn next_due_us(&self) -> Option<u64> {
        self.queue.next_due_us(&self.timeline)
    }

    /// When a chunk captured at `capture_ts_us` plays, on our clock; `None` before
    /// the first chunk.
    pub fn playout_us(&self, capture_ts_us: u64) -> Option<u64> {
        self.timeline.playout_us(capture_ts_us)
    }

    /// Chunks held.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// No chunk held.
    pub fn is_empty(&self) -> bool {
        self.queue.len() == 0
    }

    /// The counters.
    pub fn stats(&self) -> JitterStats {
        self.queue.stats
    }

    /// Forgets the stream and the timeline (the next chunk starts both again), for
    /// example when the sender left; the counters are kept.
    pub fn clear(&mut self) {
        self.queue.stop();
        self.timeline = Timeline {
            now_us: self.timeline.now_us,
            ..Timeline::new(&self.config)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK_US: u64 = 20_000;
    const T0: u64 = 1_000_000;

    fn chunk(seq: u32) -> AudioChunk {
        let mut c = AudioChunk::silence(48_000, 1, 960);
        c.samples[0] = seq as i16;
        c
    }

    /// A buffer of 8 with the default 60 ms delay.
    fn jb() -> JitterBuffer<8> {
        JitterBuffer::new(SyncConfig::DEFAULT)
    }

    /// Pushes `seq` captured at `seq × 20 ms` (relative to `base`).
    fn push(jb: &mut JitterBuffer<8>, base: u32, seq: u32, arrival: u64) -> Pushed {
        let capture = seq.wrapping_sub(base) as u64 * CHUNK_US;
        jb.push(seq, capture, arrival, &chunk(seq))
    }

    #[derive(Debug, PartialEq)]
    enum Out {
        Chunk(u32, u64),
        Gap(u32),
    }

    fn pop(jb: &mut JitterBuffer<8>, now: u64) -> Option<Out> {
        jb.pop(now).map(|p| match p {
            Popped::Chunk { chunk, playout_us } => {
                assert_eq!(
                    chunk.samples[0], chunk.seq as i16,
                    "the chunk's own samples"
                );
                Out::Chunk(chunk.seq, playout_us)
            }
            Popped::Gap { seq } => Out::Gap(seq),
        })
    }

    fn drain(jb: &mut JitterBuffer<8>, now: u64) -> heapless::Vec<Out, 64> {
        let mut out = heapless::Vec::new();
        while let Some(o) = pop(jb, now) {
            out.push(o).unwrap();
        }
        out
    }

    fn accounted(jb: &JitterBuffer<8>) {
        let s = jb.stats();
        assert_eq!(
            s.pushed,
            s.released + s.duplicates + s.late + s.overflow + s.flushed + jb.len() as u64,
            "{s:?}"
        );
    }

    #[test]
    fn releases_in_order_at_play_out_time() {
        let mut jb = jb();
        assert_eq!(jb.pop(T0), None);
        assert_eq!(jb.next_due_us(), None);
        // Arrivals jittered by up to 40 ms, so they come in the order 0 2 1 4 3 5.
        let arrivals: [u64; 6] = [0, 40_000, 5_000, 30_000, 0, 1_000];
        let arrival = |seq: usize| T0 + seq as u64 * CHUNK_US + arrivals[seq];
        let mut next = 0;
        let mut now = T0;
        while now < T0 + 300_000 {
            for seq in 0..6 {
                if arrival(seq) == now {
                    assert_eq!(push(&mut jb, 0, seq as u32, now), Pushed::Stored);
                }
            }
            while let Some(out) = pop(&mut jb, now) {
                let due = T0 + 60_000 + next as u64 * CHUNK_US;
                assert_eq!(out, Out::Chunk(next, due));
                assert_eq!(now, due, "released at its time, not before, not after");
                next += 1;
            }
            now += 1_000;
        }
        assert_eq!(next, 6);
        assert_eq!(jb.stats().released, 6);
        accounted(&jb);
    }

    #[test]
    fn duplicates_are_dropped_held_or_released() {
        let mut jb = jb();
        assert_eq!(push(&mut jb, 0, 0, T0), Pushed::Stored);
        assert_eq!(push(&mut jb, 0, 1, T0 + 20_000), Pushed::Stored);
        assert_eq!(push(&mut jb, 0, 1, T0 + 21_000), Pushed::Duplicate);
        assert_eq!(
            drain(&mut jb, T0 + 60_000).as_slice(),
            &[Out::Chunk(0, T0 + 60_000)]
        );
        // Released, then repeated (a replay after a reconnect).
        assert_eq!(push(&mut jb, 0, 0, T0 + 61_000), Pushed::Duplicate);
        assert_eq!(jb.stats().duplicates, 2);
        assert_eq!(jb.stats().late, 0);
        accounted(&jb);
    }

    #[test]
    fn late_chunks_are_dropped_and_become_gaps() {
        let mut jb = jb();
        push(&mut jb, 0, 0, T0);
        push(&mut jb, 0, 2, T0 + 40_000);
        // Chunk 1 is due at T0 + 80 ms and comes at T0 + 81 ms, before anybody popped.
        assert_eq!(push(&mut jb, 0, 1, T0 + 81_000), Pushed::Late);
        assert_eq!(
            drain(&mut jb, T0 + 81_000).as_slice(),
            &[Out::Chunk(0, T0 + 60_000), Out::Gap(1)]
        );
        assert_eq!(drain(&mut jb, T0 + 99_999).as_slice(), &[]);
        assert_eq!(
            drain(&mut jb, T0 + 100_000).as_slice(),
            &[Out::Chunk(2, T0 + 100_000)]
        );
        // Chunk 3 is missing; 4 comes, and when it is due, 3 is a gap.
        push(&mut jb, 0, 4, T0 + 100_000);
        assert_eq!(jb.next_due_us(), Some(T0 + 140_000));
        assert_eq!(
            drain(&mut jb, T0 + 140_000).as_slice(),
            &[Out::Gap(3), Out::Chunk(4, T0 + 140_000)]
        );
        // 3 turns up now: behind the head, past its time.
        assert_eq!(push(&mut jb, 0, 3, T0 + 141_000), Pushed::Late);
        let s = jb.stats();
        assert_eq!((s.late, s.gaps, s.released), (2, 2, 3));
        accounted(&jb);
    }

    #[test]
    fn a_gap_waits_for_evidence() {
        let mut jb = jb();
        push(&mut jb, 0, 0, T0);
        assert_eq!(drain(&mut jb, T0 + 60_000).len(), 1);
        // Chunk 1 is overdue, but nothing says it is lost rather than the stream
        // paused: no gap, and nothing due.
        assert_eq!(drain(&mut jb, T0 + 400_000).as_slice(), &[]);
        assert_eq!(jb.next_due_us(), None);
        // The stream resumes (the sender paused capturing for 400 ms): chunk 1 is on
        // time on the sender's clock.
        jb.push(1, 420_000, T0 + 420_000, &chunk(1));
        assert_eq!(
            drain(&mut jb, T0 + 480_000).as_slice(),
            &[Out::Chunk(1, T0 + 480_000)]
        );
        assert_eq!(jb.stats().gaps, 0);
    }

    #[test]
    fn nothing_comes_before_its_time() {
        let mut jb = jb();
        // A burst: six chunks at once.
        for seq in 0..6 {
            push(&mut jb, 0, seq, T0);
        }
        for seq in 0..6u64 {
            let due = T0 + 60_000 + seq * CHUNK_US;
            assert_eq!(jb.next_due_us(), Some(due));
            assert_eq!(jb.len(), 6 - seq as usize);
            assert_eq!(pop(&mut jb, due - 1), None);
            assert_eq!(pop(&mut jb, due), Some(Out::Chunk(seq as u32, due)));
        }
    }

    #[test]
    fn wraps_around_u32_max() {
        let mut jb = jb();
        let base = u32::MAX - 2;
        // MAX−2, MAX, 0, MAX−1, 2, 1 (MAX−1 and 1 overtaken).
        for (seq, arrival) in [
            (base, T0),
            (u32::MAX, T0 + 40_000),
            (0, T0 + 60_000),
            (u32::MAX - 1, T0 + 61_000),
            (2, T0 + 100_000),
            (1, T0 + 101_000),
        ] {
            assert_eq!(
                push(&mut jb, base, seq, arrival),
                Pushed::Stored,
                "seq {seq}"
            );
        }
        assert_eq!(
            push(&mut jb, base, u32::MAX, T0 + 102_000),
            Pushed::Duplicate
        );
        let out = drain(&mut jb, T0 + 200_000);
        let seqs: heapless::Vec<u32, 8> = out
            .iter()
            .map(|o| match o {
                Out::Chunk(s, _) => *s,
                Out::Gap(s) => panic!("gap {s}"),
            })
            .collect();
        assert_eq!(
            seqs.as_slice(),
            &[u32::MAX - 2, u32::MAX - 1, u32::MAX, 0, 1, 2]
        );
        // A released chunk from before the wrap is still a duplicate after it.
        assert_eq!(
            push(&mut jb, base, u32::MAX, T0 + 201_000),
            Pushed::Duplicate
        );
        // And a gap across the wrap.
        let mut jb = self::jb();
        push(&mut jb, base, u32::MAX, T0);
        push(&mut jb, base, 1, T0 + 40_000);
        assert_eq!(
            drain(&mut jb, T0 + 100_000).as_slice(),
            &[
                Out::Chunk(u32::MAX, T0 + 60_000),
                Out::Gap(0),
                Out::Chunk(1, T0 + 100_000)
            ]
        );
    }

    #[test]
    fn an_earlier_chunk_before_the_first_release_starts_the_stream() {
        let mut jb = jb();
        push(&mut jb, 0, 5, T0 + 100_000);
        assert_eq!(push(&mut jb, 0, 3, T0 + 101_000), Pushed::Stored);
        // 3 plays 40 ms before 5; 4 never came: a gap once 5 is due.
        assert_eq!(
            drain(&mut jb, T0 + 160_000).as_slice(),
            &[
                Out::Chunk(3, T0 + 120_000),
                Out::Gap(4),
                Out::Chunk(5, T0 + 160_000)
            ]
        );
        assert_eq!(jb.stats().resets, 0);
    }

    #[test]
    fn a_restarted_stream_resets() {
        // Far away: the sender restarted at a random sequence number.
        let mut jb = jb();
        push(&mut jb, 0, 1_000, T0);
        push(&mut jb, 0, 1_001, T0 + 20_000);
        assert_eq!(
            jb.push(7, 1_002 * CHUNK_US, T0 + 40_000, &chunk(7)),
            Pushed::Reset
        );
        assert_eq!(
            jb.push(8, 1_003 * CHUNK_US, T0 + 60_000, &chunk(8)),
            Pushed::Stored
        );
        assert_eq!(
            drain(&mut jb, T0 + 200_000).as_slice(),
            &[Out::Chunk(7, T0 + 100_000), Out::Chunk(8, T0 + 120_000)]
        );
        let s = jb.stats();
        assert_eq!((s.resets, s.flushed, s.gaps), (1, 2, 0));
        accounted(&jb);

        // Close behind, still to play: restarted from 0 after 30 chunks.
        let mut jb = self::jb();
        for seq in 0..30 {
            let t = T0 + seq as u64 * CHUNK_US;
            push(&mut jb, 0, seq, t);
            drain(&mut jb, t);
        }
        let t = T0 + 30 * CHUNK_US;
        assert_eq!(jb.push(0, 30 * CHUNK_US, t, &chunk(0)), Pushed::Reset);
        assert_eq!(
            jb.push(1, 31 * CHUNK_US, t + 20_000, &chunk(1)),
            Pushed::Stored
        );
        let out = drain(&mut jb, t + 100_000);
        assert_eq!(
            &out[out.len() - 2..],
            &[Out::Chunk(0, t + 60_000), Out::Chunk(1, t + 80_000)]
        );
        assert_eq!(jb.stats().resets, 1);
        accounted(&jb);
    }

    #[test]
    fn a_stale_far_chunk_is_late_not_a_reset() {
        // A 5 s stall: the backlog comes at once. The stale chunks are dropped; the
        // first fresh one restarts the sequence on the same timeline.
        let mut jb = jb();
        push(&mut jb, 0, 0, T0);
        drain(&mut jb, T0 + 60_000);
        let back = T0 + 5_000_000;
        for seq in 1..=250 {
            let got = push(&mut jb, 0, seq, back);
            let playout = T0 + 60_000 + seq as u64 * CHUNK_US;
            if playout < back {
                assert!(matches!(got, Pushed::Late), "seq {seq}: {got:?}");
            } else if seq > 100 {
                // 247 is the first fresh one: more than 100 from the head.
                assert_eq!(
                    got,
                    if seq == 247 {
                        Pushed::Reset
                    } else {
                        Pushed::Stored
                    }
                );
            }
        }
        let out = drain(&mut jb, back + 60_000);
        assert_eq!(out[0], Out::Chunk(247, T0 + 60_000 + 247 * CHUNK_US));
        assert_eq!(jb.stats().gaps, 0);
        assert_eq!(
            jb.playout_us(250 * CHUNK_US),
            Some(T0 + 60_000 + 250 * CHUNK_US)
        );
        accounted(&jb);
    }

    #[test]
    fn clock_jumps_reanchor() {
        // Forward: a chunk that would wait 2 s.
        let mut jb = jb();
        push(&mut jb, 0, 0, T0);
        assert_eq!(jb.push(1, 2_020_000, T0 + 20_000, &chunk(1)), Pushed::Reset);
        assert_eq!(jb.playout_us(2_020_000), Some(T0 + 80_000));
        assert_eq!(
            drain(&mut jb, T0 + 80_000).as_slice(),
            &[Out::Chunk(1, T0 + 80_000)]
        );

        // Backward: the sender's clock steps back by 10 s after chunk 0, so every
        // chunk after it is late; once that has lasted a second, the buffer starts over.
        let mut jb = self::jb();
        jb.push(0, 20_000_000, T0, &chunk(0));
        drain(&mut jb, T0 + 60_000);
        let mut reset_at = None;
        for seq in 1..100u32 {
            let t = T0 + 60_000 + seq as u64 * CHUNK_US;
            let capture = 10_000_000 + seq as u64 * CHUNK_US;
            match jb.push(seq, capture, t, &chunk(seq)) {
                Pushed::Reset => {
                    reset_at = Some(seq);
                    break;
                }
                got => assert_eq!(got, Pushed::Late),
            }
            // Each late chunk is a gap at once.
            assert_eq!(drain(&mut jb, t).as_slice(), &[Out::Gap(seq)]);
        }
        // Late from chunk 1 (at T0 + 80 ms) on; chunk 51 comes a second later.
        assert_eq!(reset_at, Some(51));
        assert_eq!(
            jb.playout_us(10_000_000 + 51 * CHUNK_US),
            Some(T0 + 120_000 + 51 * CHUNK_US)
        );
        let s = jb.stats();
        assert_eq!((s.resets, s.late, s.gaps), (1, 50, 50));
        accounted(&jb);
    }

    #[test]
    fn overflow_keeps_what_plays_soonest() {
        let mut jb: JitterBuffer<2> = JitterBuffer::new(SyncConfig::DEFAULT);
        let c = chunk(0);
        assert_eq!(jb.push(0, 0, T0, &c), Pushed::Stored);
        assert_eq!(jb.push(2, 40_000, T0, &c), Pushed::Stored);
        assert_eq!(jb.push(3, 60_000, T0, &c), Pushed::Overflow);
        assert_eq!(jb.push(1, 20_000, T0, &c), Pushed::Stored); // evicts 2
        let mut seqs = heapless::Vec::<(u32, bool), 8>::new();
        while let Some(p) = jb.pop(T0 + 1_000_000) {
            let _ = seqs.push(match p {
                Popped::Chunk { chunk, .. } => (chunk.seq, true),
                Popped::Gap { seq } => (seq, false),
            });
        }
        // Nothing after 1 is held, so 2 and 3 are not (yet) known lost.
        assert_eq!(seqs.as_slice(), &[(0, true), (1, true)]);
        assert_eq!(jb.stats().overflow, 2);
    }

    #[test]
    fn clear_forgets_stream_and_timeline() {
        let mut jb = jb();
        push(&mut jb, 0, 0, T0);
        jb.clear();
        assert!(jb.is_empty());
        assert_eq!(jb.playout_us(0), None);
        assert_eq!(push(&mut jb, 0, 9, T0 + 1_000), Pushed::Stored);
        assert_eq!(jb.playout_us(9 * CHUNK_US), Some(T0 + 61_000));
        assert_eq!(jb.stats().flushed, 1);
        accounted(&jb);
    }
}
