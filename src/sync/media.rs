//! One sender's pose frames and audio on one timeline, released in capture order.

use super::jitter::{AudioQueue, JitterStats, Popped, Pushed};
use super::{Place, SyncConfig, Timeline};
use crate::proto::{AudioChunk, PoseFrame};

/// What [`MediaSync::pop`] releases, in capture-time order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Media<'a> {
    /// A pose frame, due since `playout_us` (local time); its `capture_ts_us` is the
    /// one it was pushed with.
    Pose {
        /// The frame, valid until the next call on the [`MediaSync`].
        frame: &'a PoseFrame,
        /// When it was due, on the local clock.
        playout_us: u64,
    },
    /// An audio chunk, due since `playout_us`; its `seq` and `capture_ts_us` are those
    /// it was pushed with.
    Audio {
        /// The chunk, valid until the next call on the [`MediaSync`].
        chunk: &'a AudioChunk,
        /// When it was due, on the local clock.
        playout_us: u64,
    },
    /// Audio chunk `seq` is lost and its time has passed: conceal it now.
    Gap {
        /// The missing sequence number.
        seq: u32,
    },
}

/// Counters of the pose side of a [`MediaSync`]. Every pushed frame ends up in
/// exactly one of `released`, `duplicates`, `late`, `overflow` or `flushed`, or is
/// still held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoseStats {
    /// Frames pushed.
    pub pushed: u64,
    /// Frames released by `pop`.
    pub released: u64,
    /// Frames dropped because the same one (`seq`, `person`, capture time) was held.
    pub duplicates: u64,
    /// Frames dropped because they arrived after their play-out time.
    pub late: u64,
    /// Frames dropped because the store was full of later ones (latest wins).
    pub overflow: u64,
    /// Frames dropped when the timeline started over.
    pub flushed: u64,
}

/// Counters of a [`MediaSync`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MediaStats {
    /// The audio side, as a [`JitterBuffer`](super::JitterBuffer) counts it (its
    /// `resets` include those caused by a clock jump seen in the pose frames).
    pub audio: JitterStats,
    /// The pose side.
    pub poses: PoseStats,
    /// Times the timeline was re-anchored because the sender's clock jumped (each
    /// flushes both sides).
    pub clock_jumps: u64,
}

#[derive(Clone, Copy)]
struct PoseSlot {
    used: bool,
    frame: PoseFrame,
}

/// Media sync for ONE sender: its audio chunks (through a jitter buffer of `A`
/// chunks) and its decoded pose frames (up to `P` held), on one timeline, handed out
/// in capture-time order, each at its play-out time, so that a consumer renders each
/// pose with the audio captured at the same moment.
///
/// Both kinds share the sender's clock (PROTOCOL.md §10), so one mapping serves both:
/// the first item pushed, of either kind, plays `delay_us` after its arrival and
/// fixes `playout = first_arrival + delay + (capture − first_capture)` for all. The
/// audio side behaves exactly like a [`JitterBuffer`](super::JitterBuffer) (order,
/// duplicates, late chunks, gaps, restarts); pose frames are dropped when they arrive
/// after their play-out time, when already held, and, when the store is full, the
/// oldest capture gives way to a later one. See the [module docs](super) for what a
/// consumer can rely on.
///
/// ```
/// use poselink::proto::{AudioChunk, PoseFrame};
/// use poselink::sync::{Media, MediaSync, SyncConfig};
///
/// // 8 audio chunks, 4 pose frames, 60 ms delay.
/// let mut sync: MediaSync<8, 4> = MediaSync::new(SyncConfig::DEFAULT);
/// let chunk = AudioChunk::silence(48_000, 1, 960); // 20 ms
/// let pose = PoseFrame::zeroed();
/// // The sender captured audio at 0 and 20 ms and a pose at 10 ms (its clock); they
/// // arrive out of order at 1 s and a bit (our clock).
/// sync.push_audio(1, 20_000, 1_000_000, &chunk);
/// sync.push_pose(10_000, 1_001_000, &pose);
/// sync.push_audio(0, 0, 1_002_000, &chunk); // plays at 1 040 000
/// assert_eq!(sync.pop(1_039_999), None);
/// assert_eq!(sync.next_due_us(), Some(1_040_000));
/// let mut order = [0u64; 3];
/// for (t, slot) in [1_040_000, 1_050_000, 1_060_000].into_iter().zip(&mut order) {
///     *slot = match sync.pop(t) {
///         Some(Media::Audio { chunk, .. }) => chunk.capture_ts_us,
///         Some(Media::Pose { frame, .. }) => frame.capture_ts_us,
///         other => panic!("{other:?}"),
///     };
/// }
/// assert_eq!(order, [0, 10_000, 20_000]);
/// assert!(sync.is_empty());
/// ```
#[derive(Clone)]
pub struct MediaSync<const A: usize, const P: usize> {
    config: SyncConfig,
    timeline: Timeline,
    audio: AudioQueue<A>,
    poses: [PoseSlot; P],
    pose_len: usize,
    pose_stats: PoseStats,
    clock_jumps: u64,
}

impl<const A: usize, const P: usize> Default for MediaSync<A, P> {
    fn default() -> Self {
        Self::new(SyncConfig::DEFAULT)
    }
}

impl<const A: usize, const P: usize> MediaSync<A, P> {
    /// Empty (`A` and `P` must be at least 1). It takes about `A` × 1.95 KB +
    /// `P` × 0.7 KB; give each side room for the delay over its item interval, plus a
    /// few (at 60 ms: 8 chunks of 20 ms, 4 or more poses at 30 fps, 8 at 60 fps).
    pub const fn new(config: SyncConfig) -> Self {
        const { assert!(P > 0, "a MediaSync needs room for at least one pose frame") };
        MediaSync {
            config,
            timeline: Timeline::new(&config),
            audio: AudioQueue::new(config.max_seq_jump),
            poses: [PoseSlot {
                used: false,
                frame: PoseFrame::zeroed(),
            }; P],
            pose_len: 0,
            pose_stats: PoseStats {
                pushed: 0,
                released: 0,
                duplicates: 0,
                late: 0,
                overflow: 0,
                flushed: 0,
            },
            clock_jumps: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> SyncConfig {
        self.config
    }

    /// Takes in audio chunk `seq`, captured at `capture_ts_us` on the sender's clock
    /// and received at `arrival_us` on ours, storing a copy (whose `seq` and
    /// `capture_ts_us` are set from the arguments).
    pub fn push_audio(
        &mut self,
        seq: u32,
        capture_ts_us: u64,
        arrival_us: u64,
        chunk: &AudioChunk,
    ) -> Pushed {
        let arrival_us = self.timeline.observe(arrival_us);
        match self.timeline.place(capture_ts_us, arrival_us) {
            Place::At(playout_us) => {
                self.audio
                    .push(seq, capture_ts_us, chunk, playout_us, arrival_us)
            }
            Place::Jump => {
                self.jump(capture_ts_us, arrival_us);
                self.audio.restart_with(seq, capture_ts_us, chunk);
                Pushed::Reset
            }
        }
    }

    /// Takes in a decoded pose frame captured at `capture_ts_us` on the sender's
    /// clock and received at `arrival_us` on ours, storing a copy (whose
    /// `capture_ts_us` is set from the argument).
    pub fn push_pose(&mut self, capture_ts_us: u64, arrival_us: u64, frame: &PoseFrame) -> Pushed {
        self.pose_stats.pushed += 1;
        let arrival_us = self.timeline.observe(arrival_us);
        match self.timeline.place(capture_ts_us, arrival_us) {
            Place::At(playout_us) => {
                let same = |s: &PoseSlot| {
                    s.used
                        && s.frame.capture_ts_us == capture_ts_us
                        && s.frame.seq == frame.seq
                        && s.frame.person == frame.person
                };
                if self.poses.iter().any(same) {
                    self.pose_stats.duplicates += 1;
                    return Pushed::Duplicate;
                }
                if playout_us < arrival_us {
                    self.pose_stats.late += 1;
                    return Pushed::Late;
                }
                self.store_pose(capture_ts_us, frame)
            }
            Place::Jump => {
                self.jump(capture_ts_us, arrival_us);
                self.store_pose(capture_ts_us, frame);
                Pushed::Reset
            }
        }
    }

    /// The sender's clock jumped: flush both sides and re-anchor on this item.
    fn jump(&mut self, capture_ts_us: u64, arrival_us: u64) {
        self.clock_jumps += 1;
        self.timeline.anchor(capture_ts_us, arrival_us);
        self.audio.stop();
        self.flush_poses();
    }

    fn flush_poses(&mut self) {
        self.pose_stats.flushed += self.pose_len as u64;
        for slot in self.poses.iter_mut() {
            slot.used = false;
        }
        self.pose_len = 0;
    }

    /// Stores a frame; when full, the oldest capture makes room for a later one
    /// (latest wins), or the new one is dropped if it is the oldest.
    fn store_pose(&mut self, capture_ts_us: u64, frame: &PoseFrame) -> Pushed {
        let index = if self.pose_len < P {
            self.pose_len += 1;
            self.poses.iter().position(|s| !s.used)
        } else {
            let (oldest, oldest_capture) = self
                .poses
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.frame.capture_ts_us))
                .min_by_key(|&(_, c)| c)
                .expect("P > 0");
            self.pose_stats.overflow += 1;
            if capture_ts_us <= oldest_capture {
                return Pushed::Overflow;
            }
            Some(oldest)
        };
        let slot = &mut self.poses[index.expect("a free slot when not full")];
        slot.used = true;
        slot.frame = *frame;
        slot.frame.capture_ts_us = capture_ts_us;
        Pushed::Stored
    }

    /// The pose frame to release next: the earliest capture (then person, then seq).
    fn pose_head(&self) -> Option<usize> {
        self.poses
            .iter()
            .enumerate()
            .filter(|(_, s)| s.used)
            .min_by_key(|(_, s)| (s.frame.capture_ts_us, s.frame.person, s.frame.seq))
            .map(|(i, _)| i)
    }

    /// The next pose frame, audio chunk or gap in capture-time order, if its time has
    /// come at `now_us`. A chunk and a frame captured at the same time: the chunk
    /// first.
    pub fn pop(&mut self, now_us: u64) -> Option<Media<'_>> {
        let now_us = self.timeline.observe(now_us);
        let audio = self.audio.peek(now_us, &self.timeline);
        let pose = self.pose_head().and_then(|i| {
            let capture = self.poses[i].frame.capture_ts_us;
            let playout = self.timeline.playout_us(capture)?;
            (playout <= now_us).then_some((i, capture, playout))
        });
        let audio = match (audio, pose) {
            (None, None) => return None,
            (Some(next), Some((_, capture, _))) if next.capture_ts_us() > capture => None,
            (audio, _) => audio,
        };
        if let Some(next) = audio {
            return Some(match self.audio.take(next) {
                Popped::Chunk { chunk, playout_us } => Media::Audio { chunk, playout_us },
                Popped::Gap { seq } => Media::Gap { seq },
            });
        }
        let (i, _, playout_us) = pose?;
        self.pose_len -= 1;
        self.pose_stats.released += 1;
        let slot = &mut self.poses[i];
        slot.used = false;
        Some(Media::Pose {
            frame: &slot.frame,
            playout_us,
        })
    }

    /// When [`pop`](Self::pop) will next have something (a time already passed if it
    /// has something now); `None` until more arrives.
    pub fn next_due_us(&self) -> Option<u64> {
        let pose = self
            .pose_head()
            .and_then(|i| self.timeline.playout_us(self.poses[i].frame.capture_ts_us));
        match (self.audio.next_due_us(&self.timeline), pose) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        }
    }

    /// When an item captured at `capture_ts_us` plays, on our clock; `None` before
    /// the first item.
    pub fn playout_us(&self, capture_ts_us: u64) -> Option<u64> {
        self.timeline.playout_us(capture_ts_us)
    }

    /// Items held: audio chunks and pose frames.
    pub fn len(&self) -> usize {
        self.audio.len() + self.pose_len
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Audio chunks held.
    pub fn audio_len(&self) -> usize {
        self.audio.len()
    }

    /// Pose frames held.
    pub fn pose_len(&self) -> usize {
        self.pose_len
    }

    /// The counters.
    pub fn stats(&self) -> MediaStats {
        MediaStats {
            audio: self.audio.stats,
            poses: self.pose_stats,
            clock_jumps: self.clock_jumps,
        }
    }

    /// Forgets both streams and the timeline (the next item starts again), for
    /// example when the sender left; the counters are kept.
    pub fn clear(&mut self) {
        self.audio.stop();
        self.flush_poses();
        self.timeline = Timeline {
            now_us: self.timeline.now_us,
            ..Timeline::new(&self.config)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 5_000_000;
    const CHUNK_US: u64 = 20_000;

    fn chunk() -> AudioChunk {
        AudioChunk::silence(48_000, 1, 960)
    }

    fn pose(seq: u32) -> PoseFrame {
        let mut f = PoseFrame::zeroed();
        f.seq = seq;
        f
    }

    /// What came out, as (capture time, 0 for audio / 1 for pose, seq, playout).
    type Out = (u64, u8, u32, u64);

    fn out(m: Media<'_>) -> Out {
        match m {
            Media::Audio { chunk, playout_us } => (chunk.capture_ts_us, 0, chunk.seq, playout_us),
            Media::Pose { frame, playout_us } => (frame.capture_ts_us, 1, frame.seq, playout_us),
            Media::Gap { seq } => (u64::MAX, 2, seq, 0),
        }
    }

    /// A small deterministic generator (xorshift) for the network jitter.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn interleaved_pose_and_audio_come_out_in_capture_order_on_time() {
        // Two seconds of a sender: 20 ms audio chunks and 30 fps pose frames,
        // captured on its clock from 7 s on, each delayed 3 ms plus up to 40 ms of
        // jitter (so they arrive out of order, but within the 60 ms delay), and the
        // very first item (chunk 0) arrives with no jitter.
        const SENDER: u64 = 7_000_000;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // (arrival, capture, is_pose, seq)
        let mut events: heapless::Vec<(u64, u64, bool, u32), 256> = heapless::Vec::new();
        for seq in 0..100u32 {
            let capture = seq as u64 * CHUNK_US;
            let jitter = if seq == 0 { 0 } else { rng.below(40_000) };
            events
                .push((T0 + capture + 3_000 + jitter, capture, false, seq))
                .unwrap();
        }
        for seq in 0..60u32 {
            let capture = seq as u64 * 100_000 / 3; // 30 fps: 0, 33 333, 66 666, 100 000, …
            let jitter = 1 + rng.below(40_000);
            events
                .push((T0 + capture + 3_000 + jitter, capture, true, seq))
                .unwrap();
        }
        events.sort_unstable();
        assert!(
            events.windows(2).any(|w| w[0].1 > w[1].1),
            "the test should reorder some items"
        );

        let mut sync: MediaSync<8, 8> = MediaSync::new(SyncConfig::DEFAULT);
        let mut got: heapless::Vec<Out, 256> = heapless::Vec::new();
        let mut next = 0;
        let mut now = T0;
        while now < T0 + 2_200_000 {
            while next < events.len() && events[next].0 <= now {
                let (_, capture, is_pose, seq) = events[next];
                let pushed = if is_pose {
                    sync.push_pose(SENDER + capture, now, &pose(seq))
                } else {
                    sync.push_audio(seq, SENDER + capture, now, &chunk())
                };
                assert_eq!(pushed, Pushed::Stored, "{:?}", events[next]);
                next += 1;
            }
            while let Some(m) = sync.pop(now) {
                let o = out(m);
                // Due now (we pop every 100 µs), not before.
                assert!(o.3 <= now && now < o.3 + 100, "{o:?} released at {now}");
                assert_eq!(
                    o.3,
                    T0 + 3_000 + 60_000 + (o.0 - SENDER),
                    "the shared timeline"
                );
                got.push(o).unwrap();
            }
            now += 100;
        }
        assert_eq!(got.len(), 160);
        assert!(sync.is_empty());
        // Capture-time order, audio first on a tie (at 0, 100 ms, 200 ms, …).
        assert!(
            got.windows(2).all(|w| (w[0].0, w[0].1) <= (w[1].0, w[1].1)),
            "{got:?}"
        );
        assert_eq!((got[0].1, got[1].1, got[2].1), (0, 1, 0));
        // Every chunk and every frame, each in its own order.
        let audio = got.iter().filter(|o| o.1 == 0).map(|o| o.2);
        assert!(audio.eq(0..100));
        let poses = got.iter().filter(|o| o.1 == 1).map(|o| o.2);
        assert!(poses.eq(0..60));
        let s = sync.stats();
        assert_eq!(
            (s.audio.released, s.audio.gaps, s.poses.released),
            (100, 0, 60)
        );
    }

    #[test]
    fn nothing_is_released_before_its_time() {
        let mut sync: MediaSync<8, 4> = MediaSync::new(SyncConfig::DEFAULT);
        // A burst: chunks 0..3 and poses at 0, 33 ms, 67 ms, all at once.
        for seq in 0..4u32 {
            sync.push_audio(seq, seq as u64 * CHUNK_US, T0, &chunk());
        }
        for (seq, capture) in [(0, 0), (1, 33_333), (2, 66_667)] {
            sync.push_pose(capture, T0, &pose(seq));
        }
        let mut expected = [0, 0, 20_000, 33_333, 40_000, 60_000, 66_667].into_iter();
        let mut last = 0;
        while let Some(due) = sync.next_due_us() {
            let capture = expected.next().unwrap();
            assert_eq!(due, T0 + 60_000 + capture);
            if due > last {
                assert_eq!(sync.pop(due - 1), None);
            }
            last = due;
            let o = out(sync.pop(due).unwrap());
            assert_eq!((o.0, o.3), (capture, due));
        }
        assert_eq!(expected.next(), None);
    }

    #[test]
    fn late_duplicate_and_overflowing_poses() {
        let mut sync: MediaSync<4, 2> = MediaSync::new(SyncConfig::DEFAULT);
        assert_eq!(sync.push_audio(0, 0, T0, &chunk()), Pushed::Stored);
        assert_eq!(sync.push_pose(10_000, T0, &pose(0)), Pushed::Stored);
        assert_eq!(sync.push_pose(10_000, T0, &pose(0)), Pushed::Duplicate);
        // Another person in the same camera frame is not a duplicate.
        let mut other = pose(0);
        other.person = 1;
        assert_eq!(sync.push_pose(10_000, T0, &other), Pushed::Stored);
        // Full: a later frame wins over the oldest; an older one is dropped.
        assert_eq!(sync.push_pose(5_000, T0, &pose(9)), Pushed::Overflow);
        assert_eq!(sync.push_pose(43_333, T0, &pose(1)), Pushed::Stored);
        assert_eq!(sync.pose_len(), 2);
        // Audio 0 (capture 0) first, then the frames in order.
        let got: [Out; 3] = core::array::from_fn(|_| out(sync.pop(T0 + 200_000).unwrap()));
        assert_eq!(got.map(|o| (o.0, o.1)), [(0, 0), (10_000, 1), (43_333, 1)]);
        assert_eq!(got[1].2, 0);
        // A frame captured before what came out is late.
        assert_eq!(sync.push_pose(40_000, T0 + 200_000, &pose(2)), Pushed::Late);
        let s = sync.stats().poses;
        assert_eq!(
            (s.pushed, s.released, s.duplicates, s.late, s.overflow),
            (6, 2, 1, 1, 2)
        );
    }

    #[test]
    fn a_gap_comes_out_before_the_chunk_after_it() {
        let mut sync: MediaSync<8, 8> = MediaSync::new(SyncConfig::DEFAULT);
        sync.push_audio(0, 0, T0, &chunk());
        sync.push_pose(30_000, T0 + 1_000, &pose(0));
        sync.push_audio(2, 40_000, T0 + 2_000, &chunk()); // 1 is lost
        sync.push_pose(45_000, T0 + 3_000, &pose(1));
        let mut got: heapless::Vec<(u8, u32), 8> = heapless::Vec::new();
        while let Some(m) = sync.pop(T0 + 200_000) {
            let o = out(m);
            got.push((o.1, o.2)).unwrap();
        }
        // Popped all at once, the gap takes the place of chunk 1 (captured 20–40 ms):
        // before the pose captured at 30 ms.
        assert_eq!(got.as_slice(), &[(0, 0), (2, 1), (1, 0), (0, 2), (1, 1)]);
        // In real time, pose 30 ms (due T0 + 90 ms) comes out before the loss is known
        // (chunk 2 due at T0 + 100 ms).
        let mut sync: MediaSync<8, 8> = MediaSync::new(SyncConfig::DEFAULT);
        sync.push_audio(0, 0, T0, &chunk());
        sync.push_pose(30_000, T0 + 1_000, &pose(0));
        sync.push_audio(2, 40_000, T0 + 2_000, &chunk());
        assert!(matches!(sync.pop(T0 + 60_000), Some(Media::Audio { .. })));
        assert_eq!(sync.pop(T0 + 89_999), None);
        assert!(matches!(sync.pop(T0 + 90_000), Some(Media::Pose { .. })));
        assert_eq!(sync.pop(T0 + 99_999), None);
        assert_eq!(sync.pop(T0 + 100_000), Some(Media::Gap { seq: 1 }));
        assert!(
            matches!(sync.pop(T0 + 100_000), Some(Media::Audio { chunk, .. }) if chunk.seq == 2)
        );
    }

    #[test]
    fn pose_only_and_clock_jumps() {
        let mut sync: MediaSync<4, 4> = MediaSync::new(SyncConfig::DEFAULT);
        // A sender without audio: the first pose anchors the timeline.
        sync.push_pose(1_000_000, T0, &pose(0));
        sync.push_audio(0, 1_010_000, T0 + 5_000, &chunk());
        assert_eq!(sync.playout_us(1_000_000), Some(T0 + 60_000));
        // The sender's clock jumps 5 s ahead: the pose re-anchors and flushes both.
        assert_eq!(
            sync.push_pose(6_020_000, T0 + 20_000, &pose(1)),
            Pushed::Reset
        );
        assert_eq!((sync.audio_len(), sync.pose_len()), (0, 1));
        assert_eq!(sync.next_due_us(), Some(T0 + 80_000));
        // Audio on the new clock starts a new sequence on the new timeline.
        assert_eq!(
            sync.push_audio(1, 6_030_000, T0 + 30_000, &chunk()),
            Pushed::Stored
        );
        let a = out(sync.pop(T0 + 100_000).unwrap());
        let b = out(sync.pop(T0 + 100_000).unwrap());
        assert_eq!(
            [(a.1, a.3), (b.1, b.3)],
            [(1, T0 + 80_000), (0, T0 + 90_000)]
        );
        let s = sync.stats();
        assert_eq!(
            (
                s.clock_jumps,
                s.audio.resets,
                s.audio.flushed,
                s.poses.flushed
            ),
            (1, 1, 1, 1)
        );
        sync.clear();
        assert_eq!(sync.playout_us(0), None);
    }
}
