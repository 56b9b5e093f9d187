//! Received media on their way to the app, sans-IO: with a play-out delay, each
//! sender's pose frames and audio chunks go through a [`MediaSync`] (one per
//! sender, allocated at start-up and reused, the least recently used making way)
//! and come out in capture-time order at their play-out time; without one they
//! go straight through. Only the engine uses this; the client session hands
//! media over as it decodes them.

use crate::proto::{AudioChunk, PoseFrame};
use crate::sync::{Media, MediaSync, SyncConfig};

use super::{Event, RoomId};

/// Audio chunks and pose frames one sender's aligner holds.
const SYNC_AUDIO: usize = 16;
const SYNC_POSES: usize = 16;

/// One sender's media on its way out to the app, in capture-time order.
struct SenderSync {
    room: RoomId,
    sender: u16,
    sync: Box<MediaSync<SYNC_AUDIO, SYNC_POSES>>,
    used_us: u64,
    in_use: bool,
}

/// Per-sender aligners (none when the play-out delay is 0).
pub(super) struct Playout {
    syncs: Vec<SenderSync>,
}

impl Playout {
    pub(super) fn new(delay_ms: u64, max_senders: usize) -> Playout {
        let n = if delay_ms > 0 { max_senders } else { 0 };
        Playout {
            syncs: (0..n)
                .map(|_| SenderSync {
                    room: RoomId(0),
                    sender: 0,
                    sync: Box::new(MediaSync::new(SyncConfig {
                        delay_us: delay_ms * 1000,
                        ..SyncConfig::DEFAULT
                    })),
                    used_us: 0,
                    in_use: false,
                })
                .collect(),
        }
    }

    /// Takes a pose frame in; hands it back if alignment is off (emit it now).
    pub(super) fn pose<'f>(
        &mut self,
        room: RoomId,
        sender: u16,
        frame: &'f PoseFrame,
        now: u64,
    ) -> Option<&'f PoseFrame> {
        match self.sync_for(room, sender, now) {
            Some(k) => {
                self.syncs[k]
                    .sync
                    .push_pose(frame.capture_ts_us, now, frame);
                None
            }
            None => Some(frame),
        }
    }

    /// Takes an audio chunk in; hands it back if alignment is off.
    pub(super) fn audio<'c>(
        &mut self,
        room: RoomId,
        sender: u16,
        chunk: &'c AudioChunk,
        now: u64,
    ) -> Option<&'c AudioChunk> {
        match self.sync_for(room, sender, now) {
            Some(k) => {
                let s = &mut self.syncs[k].sync;
                s.push_audio(chunk.seq, chunk.capture_ts_us, now, chunk);
                None
            }
            None => Some(chunk),
        }
    }

    /// A sender left: its aligner is free again.
    pub(super) fn forget(&mut self, room: RoomId, sender: u16) {
        for s in self.syncs.iter_mut() {
            if s.in_use && s.room == room && s.sender == sender {
                s.in_use = false;
            }
        }
    }

    /// When the next held item falls due, if any.
    pub(super) fn next_due_us(&self) -> Option<u64> {
        self.syncs
            .iter()
            .filter(|s| s.in_use)
            .filter_map(|s| s.sync.next_due_us())
            .min()
    }

    /// Hands out, through `emit`, the media whose play-out time has come.
    pub(super) fn release(&mut self, now: u64, mut emit: impl FnMut(Event)) {
        for s in self.syncs.iter_mut().filter(|s| s.in_use) {
            let (room, sender) = (s.room, s.sender);
            while let Some(m) = s.sync.pop(now) {
                emit(match m {
                    Media::Pose { frame, .. } => Event::Pose {
                        room,
                        sender,
                        frame: *frame,
                    },
                    Media::Audio { chunk, .. } => Event::Audio {
                        room,
                        sender,
                        chunk: *chunk,
                    },
                    Media::Gap { seq } => Event::AudioGap { room, sender, seq },
                });
            }
        }
    }

    /// The aligner of `sender` in `room` (taking the least recently used one if
    /// it has none), or `None` when alignment is off.
    fn sync_for(&mut self, room: RoomId, sender: u16, now: u64) -> Option<usize> {
        if self.syncs.is_empty() {
            return None;
        }
        let k = match self
            .syncs
            .iter()
            .position(|s| s.in_use && s.room == room && s.sender == sender)
        {
            Some(k) => k,
            None => {
                let k = self
                    .syncs
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| (s.in_use, s.used_us))
                    .map(|(k, _)| k)?;
                let s = &mut self.syncs[k];
                s.sync.clear();
                s.room = room;
                s.sender = sender;
                s.in_use = true;
                k
            }
        };
        self.syncs[k].used_us = now;
        Some(k)
    }
}
