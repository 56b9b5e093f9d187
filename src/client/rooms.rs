//! The session's rooms: a fixed table of slots, each a room the app asked for
//! ([`RoomId`] is the slot's index), with the hub's handle for it on the current
//! connection, the role, the pose encoders of its streams and the audio replay
//! window. Joins, leaves, the rejoin of every room after a reconnect and the
//! replay of its unacknowledged audio once the hub has answered are here.

use std::collections::VecDeque;

use crate::proto::{self, Join, Leave, Message, PoseEncoder, Role};
use crate::ws::FrameKind;

use super::replay::AudioReplay;
use super::{Core, JoinError, Note, RoomId};

/// One room slot.
pub(super) struct Room {
    pub(super) in_use: bool,
    pub(super) name: String,
    pub(super) role: Role,
    /// The hub's handle while joined on this connection.
    pub(super) handle: Option<u16>,
    /// Joined at least once (a later snapshot is a restore).
    pub(super) joined_once: bool,
    /// A [`Session::join`](super::Session::join) waits for the hub's answer
    /// until `deadline_us`.
    pub(super) awaiting: bool,
    pub(super) deadline_us: u64,
    /// (person, encoder) per pose stream.
    pub(super) encoders: Vec<(u32, PoseEncoder)>,
    /// Sent audio until acknowledged (none when the window is 0).
    pub(super) replay: Option<AudioReplay>,
    /// The next gathered Opus packet's `seq` (none before the room's first).
    pub(super) audio_seq: Option<u32>,
}

/// Every room slot, and the joins the hub has not answered yet.
pub(super) struct Rooms {
    pub(super) slots: Vec<Room>,
    /// Rooms whose join was sent and not answered, oldest first (the hub answers
    /// joins in order; an error does not name the room).
    pub(super) pending: VecDeque<usize>,
}

impl Rooms {
    pub(super) fn new(max_rooms: usize, max_persons: usize, window_us: u64) -> Rooms {
        // 20 ms chunks over the window, with room for shorter ones.
        let replay_slots = (window_us / 10_000).max(16) as usize;
        Rooms {
            slots: (0..max_rooms.max(1))
                .map(|_| Room {
                    in_use: false,
                    name: String::with_capacity(proto::MAX_NAME_LEN),
                    role: Role::Member,
                    handle: None,
                    joined_once: false,
                    awaiting: false,
                    deadline_us: 0,
                    encoders: Vec::with_capacity(max_persons),
                    replay: (window_us > 0).then(|| AudioReplay::new(replay_slots, window_us)),
                    audio_seq: None,
                })
                .collect(),
            pending: VecDeque::with_capacity(max_rooms.max(1)),
        }
    }

    /// The room the hub's `handle` stands for on this connection.
    pub(super) fn by_handle(&self, handle: u16) -> Option<RoomId> {
        self.slots
            .iter()
            .position(|r| r.in_use && r.handle == Some(handle))
            .map(|i| RoomId(i as u16))
    }

    /// A room in use and joined on this connection.
    pub(super) fn joined(&mut self, room: RoomId) -> Option<(&mut Room, u16)> {
        let r = self.slots.get_mut(room.index()).filter(|r| r.in_use)?;
        let handle = r.handle?;
        Some((r, handle))
    }

    /// A room joined before is waiting for its rejoin after a reconnect.
    pub(super) fn restoring(&self) -> bool {
        self.slots
            .iter()
            .any(|r| r.in_use && r.joined_once && r.handle.is_none())
    }

    /// The connection is gone: no handle is valid any more.
    pub(super) fn forget_handles(&mut self) {
        for r in self.slots.iter_mut() {
            r.handle = None;
        }
        self.pending.clear();
    }

    /// Every in-use room's audio is acknowledged.
    pub(super) fn all_acked(&self) -> bool {
        self.slots
            .iter()
            .all(|r| !r.in_use || r.replay.as_ref().is_none_or(AudioReplay::is_empty))
    }
}

impl Core {
    /// Takes a slot for `name` (the same one if it is in use already) and sends
    /// the join now if a session is open, else after the welcome.
    pub(super) fn join(&mut self, now: u64, name: &str, role: Role) -> Result<RoomId, JoinError> {
        proto::validate_name(name, "room name").map_err(|_| JoinError::BadName)?;
        let slots = &mut self.rooms.slots;
        let id = match slots.iter().position(|r| r.in_use && r.name == name) {
            Some(id) => id,
            None => {
                let id = slots
                    .iter()
                    .position(|r| !r.in_use)
                    .ok_or(JoinError::TooManyRooms)?;
                let r = &mut slots[id];
                r.in_use = true;
                r.name.clear();
                r.name.push_str(name);
                r.handle = None;
                r.joined_once = false;
                r.audio_seq = None;
                r.encoders.clear();
                if let Some(replay) = r.replay.as_mut() {
                    replay.clear();
                }
                self.audio_encoder.start_room(id as u16);
                id
            }
        };
        let r = &mut slots[id];
        r.role = role;
        r.awaiting = true;
        r.deadline_us = now + self.cfg.join_timeout_us;
        if self.is_ready() {
            self.send_join(now, id);
        }
        Ok(RoomId(id as u16))
    }

    /// Gives the room up (and stops rejoining it); says so to the hub if a
    /// session is open. Reported as [`Event::RoomLeft`](super::Event::RoomLeft).
    pub(super) fn leave(&mut self, now: u64, room: RoomId) {
        let Some(r) = self.rooms.slots.get_mut(room.index()).filter(|r| r.in_use) else {
            return;
        };
        r.in_use = false;
        r.handle = None;
        r.awaiting = false;
        let name = std::mem::take(&mut r.name);
        if self.is_ready() {
            self.send_control(now, 0, &Message::Leave(Leave { room: &name }));
        }
        self.rooms.slots[room.index()].name = name;
        self.note(Note::RoomLeft(room, proto::LeaveReason::Left));
    }

    pub(super) fn send_join(&mut self, now: u64, id: usize) {
        let r = &mut self.rooms.slots[id];
        r.handle = None;
        let (name, role) = (std::mem::take(&mut r.name), r.role);
        self.rooms.pending.retain(|&p| p != id);
        self.rooms.pending.push_back(id);
        self.send_control(now, 0, &Message::Join(Join { room: &name, role }));
        self.rooms.slots[id].name = name;
    }

    /// The hub's snapshot for room `id` on handle `handle`: the room is joined;
    /// its encoders start again with keyframes (for receivers that lost us) and
    /// its unacknowledged audio is sent again, readdressed. Returns whether this
    /// was a restore and how many chunks were replayed.
    pub(super) fn joined(&mut self, id: usize, handle: u16, role: Role) -> (bool, u32) {
        self.rooms.pending.retain(|&p| p != id);
        let member = self.member;
        let Core { rooms, tx, rng, .. } = self;
        let r = &mut rooms.slots[id];
        r.handle = Some(handle);
        r.role = role;
        r.awaiting = false;
        let restored = r.joined_once;
        r.joined_once = true;
        for (_, e) in r.encoders.iter_mut() {
            e.force_keyframe();
        }
        let mut replayed = 0u32;
        if let Some(replay) = r.replay.as_mut() {
            replay.begin_resend();
            replayed = replay.resend(handle, member, |msg| {
                tx.push_frame(FrameKind::Binary, msg, next_mask(rng))
            });
        }
        if replayed > 0 {
            log::info!("replayed {replayed} unacknowledged audio chunks");
        }
        (restored, replayed)
    }

    /// Goes on with the replays that a full transmit buffer stopped (after
    /// bytes were written); counts what went in the session's stats.
    pub(super) fn continue_replays(&mut self) {
        if !self.is_ready() {
            return;
        }
        let member = self.member;
        let Core {
            rooms,
            tx,
            rng,
            stats,
            ..
        } = self;
        for r in rooms.slots.iter_mut().filter(|r| r.in_use) {
            let (Some(handle), Some(replay)) = (r.handle, r.replay.as_mut()) else {
                continue;
            };
            if replay.resend_pending() {
                let n = replay.resend(handle, member, |msg| {
                    tx.push_frame(FrameKind::Binary, msg, next_mask(rng))
                });
                stats.audio_replayed += u64::from(n);
            }
        }
    }

    /// A room's replay has not all gone yet: new audio waits behind it.
    pub(super) fn replays_pending(&self) -> bool {
        self.rooms.slots.iter().any(|r| {
            r.in_use && r.handle.is_some() && r.replay.as_ref().is_some_and(|p| p.resend_pending())
        })
    }

    /// The oldest unanswered join was refused: the room is given up. Returns it
    /// and whether it was a rejoin (no join waited for the answer).
    pub(super) fn join_refused(&mut self) -> Option<(RoomId, bool)> {
        let id = self.rooms.pending.pop_front()?;
        let r = &mut self.rooms.slots[id];
        r.in_use = false;
        r.handle = None;
        let restoring = !r.awaiting;
        r.awaiting = false;
        Some((RoomId(id as u16), restoring))
    }

    /// Joins that got no answer in time.
    pub(super) fn join_timeouts(&mut self, now: u64) {
        for id in 0..self.rooms.slots.len() {
            let r = &mut self.rooms.slots[id];
            if r.awaiting && now >= r.deadline_us {
                r.awaiting = false;
                if !r.joined_once {
                    r.in_use = false;
                }
                self.note(Note::JoinTimedOut(RoomId(id as u16)));
            }
        }
    }
}

/// xorshift64*: WebSocket masks and backoff jitter (not secrets).
pub(super) fn random(state: &mut u64) -> u32 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
}

pub(super) fn next_mask(state: &mut u64) -> [u8; 4] {
    random(state).to_le_bytes()
}
