//! What the engine sends next, sans-IO: the send queue (priorities, latest-wins
//! pose frames, stale pose dropped; [`crate::queue`]) over a slab of the items
//! themselves, and the token bucket of the bandwidth limit. The queue holds slab
//! indices, so a push or a pop moves no frame; the slab has one slot more than
//! the queue, because a push into a full queue needs the newcomer's slot before
//! the queue says which entry it gives up. The slab's memory is reserved at
//! start-up and its slots are written the first time they are needed (freed
//! slots are reused first): a queue sized for seconds of outage (~2 KiB a slot)
//! costs resident memory only as far as it has ever filled.

use crate::proto::{AudioChunk, PoseFrame};
use crate::queue::{Entry, EntryKind, Pushed, SendQueue};
use crate::rate::TokenBucket;

use super::RoomId;
use super::metrics::Counter;

/// One item of the send queue, kept in the slab.
// Stored in place on purpose: boxing the audio variant would allocate per chunk.
#[allow(clippy::large_enum_variant)]
pub(super) enum Item {
    Free,
    Pose(PoseFrame),
    Audio(AudioChunk),
}

/// The send queue, its items and the bandwidth limit.
pub(super) struct Outbox {
    queue: SendQueue<u16>,
    /// Items by slot; grows (within its reserved capacity, never moving) up to
    /// `slots` as slots are first used.
    slab: Vec<Item>,
    /// Slots in the slab, used before and free now.
    free: Vec<u16>,
    /// The slab's size: one slot per queue entry, and one more.
    slots: usize,
    bucket: Option<TokenBucket>,
    /// Bytes sent beyond what the bucket held (a frame larger than the estimate).
    debt: u64,
    /// Stale entries a pop hands back (capacity: the queue's).
    stale: Vec<u16>,
}

fn bucket_for(bytes_per_sec: u64, now: u64) -> TokenBucket {
    // A burst of 100 ms of the rate (at least one largest frame): enough to
    // carry a frame, too little to hide the limit.
    TokenBucket::new(bytes_per_sec, (bytes_per_sec / 10).max(2048), now)
}

impl Outbox {
    pub(super) fn new(capacity: usize, max_pose_age_us: u64, bytes_per_sec: u64, now: u64) -> Self {
        let slots = capacity.max(1);
        Outbox {
            queue: SendQueue::new(slots, max_pose_age_us),
            slab: Vec::with_capacity(slots + 1),
            free: Vec::with_capacity(slots + 1),
            slots: slots + 1,
            bucket: (bytes_per_sec > 0).then(|| bucket_for(bytes_per_sec, now)),
            debt: 0,
            stale: Vec::with_capacity(slots),
        }
    }

    /// Limits sending to `bytes_per_sec` (0: no limit) from `now` on.
    pub(super) fn set_bandwidth(&mut self, bytes_per_sec: u64, now: u64) {
        self.bucket = (bytes_per_sec > 0).then(|| bucket_for(bytes_per_sec, now));
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues `item`; returns the drop it caused, if any.
    pub(super) fn push(
        &mut self,
        item: Item,
        room: RoomId,
        stream: u32,
        priority: u8,
        now: u64,
    ) -> Option<Counter> {
        let kind = match item {
            Item::Pose(_) => EntryKind::Pose,
            _ => EntryKind::Audio,
        };
        // The slab has a slot per queue entry; when the queue is full the push
        // below frees one, so take the slot only after making sure one is free.
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = item;
                slot
            }
            None if self.slab.len() < self.slots => {
                // Within the capacity reserved at start-up: no allocation.
                self.slab.push(item);
                (self.slab.len() - 1) as u16
            }
            None => return Some(Counter::DropsRefused),
        };
        let entry = Entry {
            item: slot,
            kind,
            priority,
            room: room.0,
            stream,
            queued_us: now,
        };
        let (dropped, counter) = match self.queue.push(entry) {
            Pushed::Queued => return None,
            Pushed::Superseded(old) => (old.item, Counter::DropsSuperseded),
            Pushed::Evicted(old) => (old.item, Counter::DropsEvicted),
            Pushed::Refused(e) => (e.item, Counter::DropsRefused),
        };
        self.release(dropped);
        Some(counter)
    }

    fn release(&mut self, slot: u16) {
        self.slab[slot as usize] = Item::Free;
        self.free.push(slot);
    }

    /// Whether the bandwidth limit lets the next frame go now (paying what the
    /// last one owed first).
    pub(super) fn may_send(&mut self, now: u64) -> bool {
        let Some(b) = self.bucket.as_mut() else {
            return true;
        };
        if b.available(now) < self.debt + 128 {
            return false;
        }
        b.try_take(self.debt, now);
        self.debt = 0;
        true
    }

    /// How long until [`may_send`](Self::may_send) can say yes, µs (0 without a limit).
    pub(super) fn wait_us(&mut self, now: u64) -> u64 {
        let need = self.debt + 128;
        match self.bucket.as_mut() {
            Some(b) => b.wait_us(need, now),
            None => 0,
        }
    }

    /// The next entry to send and its item; `stale` is told how many pose
    /// frames aged out on the way.
    pub(super) fn pop(&mut self, now: u64, stale: &mut u64) -> Option<(RoomId, Item)> {
        let mut dropped = std::mem::take(&mut self.stale);
        let next = self.queue.pop_with(now, |e| dropped.push(e.item));
        *stale += dropped.len() as u64;
        for &s in &dropped {
            self.release(s);
        }
        dropped.clear();
        self.stale = dropped;
        let entry = next?;
        let item = std::mem::replace(&mut self.slab[entry.item as usize], Item::Free);
        self.free.push(entry.item);
        Some((RoomId(entry.room), item))
    }

    /// Charges what a sent frame really cost; what the bucket did not hold is
    /// owed before the next frame may go.
    pub(super) fn charge(&mut self, n: usize, now: u64) {
        if let Some(b) = self.bucket.as_mut()
            && !b.try_take(n as u64, now)
        {
            let avail = b.available(now);
            b.try_take(avail, now);
            self.debt += n as u64 - avail;
        }
    }

    /// The connection is gone: nothing is owed to it.
    pub(super) fn forgive(&mut self) {
        self.debt = 0;
    }
}
