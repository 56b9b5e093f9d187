//! The send queue (the seed's UnifiedSender), sans-IO: what the edge engine sends
//! next, and what it gives up when the network cannot keep up. Entries carry a
//! priority (higher goes first; first in, first out within a priority); a newer
//! pose frame for the same room and person replaces an unsent older one (latest
//! wins — a stale skeleton is worth nothing); when the queue is full the lowest
//! priority goes first; pose frames older than a bound are dropped instead of
//! sent. Every drop is counted by reason. Capacity is fixed at construction and
//! the queue never allocates after that; operations scan at most `capacity`
//! slots, which is small (tens) by design.

/// What an entry is, for the replacement and staleness rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A pose frame: replaceable by a newer one of the same stream, droppable when stale.
    Pose,
    /// An audio chunk: never replaced, never stale (audio is ordered and reliable).
    Audio,
    /// A control message.
    Control,
}

/// One queued item with what the queue needs to know about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<T> {
    /// The item.
    pub item: T,
    /// What it is.
    pub kind: EntryKind,
    /// Higher goes first.
    pub priority: u8,
    /// The room handle it goes to.
    pub room: u16,
    /// The stream within the room (the person, for pose).
    pub stream: u32,
    /// When it was queued, in microseconds.
    pub queued_us: u64,
}

/// Drops by reason, since the queue was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Pose frames replaced by a newer frame of the same stream before being sent.
    pub superseded: u64,
    /// Entries evicted by a higher-priority entry when the queue was full.
    pub evicted: u64,
    /// Entries refused because the queue was full of higher priorities.
    pub refused: u64,
    /// Pose frames older than the age bound when their turn came.
    pub stale: u64,
}

/// What happened to an entry offered to a full queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed<T> {
    /// Queued, nothing lost.
    Queued,
    /// Queued in place of an older pose frame of the same stream (returned).
    Superseded(Entry<T>),
    /// Queued after evicting the lowest-priority entry (returned).
    Evicted(Entry<T>),
    /// Not queued: everything queued outranks it (returned).
    Refused(Entry<T>),
}

/// A bounded priority queue with latest-wins pose frames.
///
/// ```
/// use poselink::queue::{Entry, EntryKind, Pushed, SendQueue};
/// let mut q = SendQueue::new(2, 100_000);
/// let pose = |seq: u32, t| Entry { item: seq, kind: EntryKind::Pose, priority: 5, room: 1, stream: 0, queued_us: t };
/// assert_eq!(q.push(pose(1, 0)), Pushed::Queued);
/// assert!(matches!(q.push(pose(2, 10)), Pushed::Superseded(old) if old.item == 1));
/// assert_eq!(q.pop(20).unwrap().item, 2);
/// ```
#[derive(Debug)]
pub struct SendQueue<T> {
    slots: Vec<Option<Entry<T>>>,
    /// Arrival order of each slot's entry: first in, first out among equal
    /// priorities, even when entries share a timestamp.
    order: Vec<u64>,
    next_order: u64,
    len: usize,
    max_pose_age_us: u64,
    drops: DropCounts,
}

impl<T: Copy> SendQueue<T> {
    /// A queue of `capacity` entries whose pose frames go stale after
    /// `max_pose_age_us` (the engine's default is 100 ms).
    pub fn new(capacity: usize, max_pose_age_us: u64) -> Self {
        SendQueue {
            slots: vec![None; capacity.max(1)],
            order: vec![0; capacity.max(1)],
            next_order: 0,
            len: 0,
            max_pose_age_us,
            drops: DropCounts::default(),
        }
    }

    /// Entries queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops by reason so far.
    pub fn drops(&self) -> DropCounts {
        self.drops
    }

    /// Offers an entry; see [`Pushed`] for what can happen to it.
    pub fn push(&mut self, entry: Entry<T>) -> Pushed<T> {
        if entry.kind == EntryKind::Pose
            && let Some(slot) = self.slots.iter_mut().find(|s| {
                s.is_some_and(|e| {
                    e.kind == EntryKind::Pose && e.room == entry.room && e.stream == entry.stream
                })
            })
        {
            let old = slot.replace(entry).expect("found a full slot");
            self.drops.superseded += 1;
            return Pushed::Superseded(old);
        }
        if let Some(i) = self.slots.iter().position(|s| s.is_none()) {
            self.slots[i] = Some(entry);
            self.order[i] = self.next_order;
            self.next_order += 1;
            self.len += 1;
            return Pushed::Queued;
        }
        // Full: the lowest priority goes (the oldest among equals), if it does
        // not outrank the newcomer; control messages are never evicted.
        let victim = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|e| (i, e)))
            .filter(|(_, e)| e.kind != EntryKind::Control)
            .min_by_key(|(i, e)| (e.priority, self.order[*i]));
        match victim {
            Some((i, e)) if e.priority <= entry.priority => {
                self.slots[i] = Some(entry);
                self.order[i] = self.next_order;
                self.next_order += 1;
                self.drops.evicted += 1;
                Pushed::Evicted(e)
            }
            _ => {
                self.drops.refused += 1;
                Pushed::Refused(entry)
            }
        }
    }

    /// The next entry to send at `now_us`: the highest priority, the oldest among
    /// equals. Pose frames older than the age bound are dropped on the way.
    pub fn pop(&mut self, now_us: u64) -> Option<Entry<T>> {
        self.pop_with(now_us, |_| {})
    }

    /// [`pop`](Self::pop), handing each stale pose frame dropped on the way to
    /// `stale` (so that a caller keeping the items elsewhere can free them).
    pub fn pop_with(&mut self, now_us: u64, mut stale: impl FnMut(Entry<T>)) -> Option<Entry<T>> {
        loop {
            let (i, e) = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.map(|e| (i, e)))
                .max_by_key(|(i, e)| (e.priority, core::cmp::Reverse(self.order[*i])))?;
            self.slots[i] = None;
            self.len -= 1;
            if e.kind == EntryKind::Pose
                && now_us.saturating_sub(e.queued_us) > self.max_pose_age_us
            {
                self.drops.stale += 1;
                stale(e);
                continue;
            }
            return Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(item: u32, kind: EntryKind, priority: u8, stream: u32, t: u64) -> Entry<u32> {
        Entry {
            item,
            kind,
            priority,
            room: 1,
            stream,
            queued_us: t,
        }
    }

    #[test]
    fn priority_then_fifo() {
        let mut q = SendQueue::new(8, 1_000_000);
        q.push(entry(1, EntryKind::Audio, 5, 0, 0));
        q.push(entry(2, EntryKind::Control, 9, 0, 1));
        q.push(entry(3, EntryKind::Audio, 5, 0, 2));
        q.push(entry(4, EntryKind::Pose, 3, 0, 3));
        let order: Vec<u32> = (0..4).map(|_| q.pop(10).unwrap().item).collect();
        assert_eq!(order, [2, 1, 3, 4]);
        assert!(q.pop(10).is_none());
        assert!(q.is_empty());
    }

    #[test]
    fn latest_pose_wins_per_stream_only() {
        let mut q = SendQueue::new(8, 1_000_000);
        q.push(entry(1, EntryKind::Pose, 5, 0, 0));
        q.push(entry(2, EntryKind::Pose, 5, 1, 0)); // another person
        q.push(entry(3, EntryKind::Audio, 5, 0, 0));
        assert!(
            matches!(q.push(entry(4, EntryKind::Pose, 5, 0, 1)), Pushed::Superseded(e) if e.item == 1)
        );
        // Audio is never replaced.
        assert_eq!(q.push(entry(5, EntryKind::Audio, 5, 0, 1)), Pushed::Queued);
        assert_eq!(q.len(), 4);
        assert_eq!(q.drops().superseded, 1);
    }

    #[test]
    fn full_queue_drops_the_lowest_priority_first() {
        let mut q = SendQueue::new(3, 1_000_000);
        q.push(entry(1, EntryKind::Pose, 2, 0, 0));
        q.push(entry(2, EntryKind::Audio, 6, 0, 1));
        q.push(entry(3, EntryKind::Control, 1, 0, 2));
        // A priority-5 pose of another stream evicts the priority-2 pose.
        assert!(
            matches!(q.push(entry(4, EntryKind::Pose, 5, 1, 3)), Pushed::Evicted(e) if e.item == 1)
        );
        // A priority-4 audio chunk is refused: the rest outrank it (control is never evicted).
        assert!(
            matches!(q.push(entry(5, EntryKind::Audio, 4, 0, 4)), Pushed::Refused(e) if e.item == 5)
        );
        assert_eq!(
            q.drops(),
            DropCounts {
                evicted: 1,
                refused: 1,
                ..DropCounts::default()
            }
        );
        let order: Vec<u32> = (0..3).map(|_| q.pop(10).unwrap().item).collect();
        assert_eq!(order, [2, 4, 3]);
    }

    #[test]
    fn stale_pose_is_dropped_audio_is_not() {
        let mut q = SendQueue::new(4, 100_000);
        q.push(entry(1, EntryKind::Pose, 5, 0, 0));
        q.push(entry(2, EntryKind::Audio, 5, 0, 10));
        // 150 ms later the pose is stale; the audio still goes.
        let mut dropped = Vec::new();
        assert_eq!(
            q.pop_with(150_000, |e| dropped.push(e.item)).unwrap().item,
            2
        );
        assert_eq!(dropped, [1], "the stale frame is handed back");
        assert_eq!(q.drops().stale, 1);
        assert!(q.pop(150_000).is_none());
        q.push(entry(3, EntryKind::Pose, 5, 0, 200_000));
        assert_eq!(
            q.pop(300_000).unwrap().item,
            3,
            "exactly 100 ms old still goes"
        );
    }

    #[test]
    fn fifo_among_equals_even_with_one_timestamp() {
        let mut q = SendQueue::new(8, 1_000_000);
        for k in 0..8 {
            q.push(entry(k, EntryKind::Audio, 5, 0, 42));
        }
        let order: Vec<u32> = (0..8).map(|_| q.pop(50).unwrap().item).collect();
        assert_eq!(order, [0, 1, 2, 3, 4, 5, 6, 7]);
    }
}
