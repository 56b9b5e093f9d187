//! The relay: a published pose or audio message is checked once (the sender is
//! a member of the room and may publish, the sender field is its own, the
//! payload decodes), copied once — WebSocket header first — into a pool block,
//! and the block is queued for every other member. This is the hot path: no
//! allocation, no copy per receiver.
//!
//! The drop policy for a receiver that does not keep up: when its queue is full
//! the oldest pose goes (or, with no pose queued, the oldest audio), counted, and
//! the receiver gets none of that publisher's deltas — it could not decode them —
//! until a keyframe, which the hub asks the publisher for (at most one request
//! per publisher per 100 ms). The hub keeps each publisher's latest keyframe per
//! (room, person) and serves it to joiners and to receivers that ask. Audio is
//! acknowledged per room (by housekeeping) and a chunk at or below the last
//! relayed `seq` is a replay, dropped and acknowledged again.

use crate::proto::{ErrorCode, Kind, Message, NeedsKeyframe, Packet, PoseCoding};
use crate::room::{ConnId, RoomHandle};
use crate::ws::{self, FrameKind};

use super::link::Phase;
use super::pool::{MAX_MEDIA, Meta};
use super::{DropReason, Inner, LogKind, reason};

/// Keyframe requests to one publisher at most this often, µs.
const KEYFRAME_REQUEST_GAP_US: u64 = 100_000;

/// A cached keyframe of a publisher: the latest standalone pose per (room, person).
#[derive(Clone, Copy, Debug)]
pub(super) struct KeyframeSlot {
    /// The room.
    pub room: RoomHandle,
    /// The person.
    pub person: u32,
    /// The pool block holding it.
    pub block: u32,
    /// When it was stored (for replacing the oldest).
    pub stored_us: u64,
}

impl Inner {
    /// A pose or audio message from connection `i`.
    pub(super) fn on_media(&mut self, i: usize, packet: &Packet<&[u8]>, parse: &mut [u8]) {
        let header = packet.header();
        let audio = header.kind == Kind::Audio;
        self.stats.messages_in[audio as usize] += 1;
        if !audio {
            // The monitor's fps: pose frames received from publishers.
            self.stats.monitor.record_frame(self.now);
        }
        let about = header.kind as u8;
        let h = RoomHandle::from_wire(header.room);
        let s = &self.sessions[i];
        let Some(m) = s.membership(h).copied() else {
            let r = reason(format_args!(
                "not a member of room handle {h}; join the room first"
            ));
            return self.send_error(i, ErrorCode::NOT_MEMBER, about, &r);
        };
        if !m.role.may_publish() {
            return self.send_error(
                i,
                ErrorCode::FORBIDDEN,
                about,
                "viewers may not publish; ask the room's owner for the member role",
            );
        }
        if header.sender != s.member {
            let r = reason(format_args!(
                "the sender field must be your member id {} (got {})",
                s.member, header.sender
            ));
            return self.send_error(i, ErrorCode::BAD_MESSAGE, about, &r);
        }
        let bytes = packet.as_bytes();
        if bytes.len() > MAX_MEDIA {
            let r = reason(format_args!(
                "a {} message of {} bytes is over the {MAX_MEDIA}-byte relay limit for media",
                header.kind.name(),
                bytes.len()
            ));
            return self.send_error(i, ErrorCode::OVERSIZE, about, &r);
        }
        // Check the payload once here, so that receivers get only valid messages.
        let checked = Message::parse(packet, parse).map(|msg| match msg {
            Message::Pose(p) => (p.person, !matches!(p.coding, PoseCoding::Delta { .. })),
            _ => (0, false),
        });
        let (person, standalone) = match checked {
            Ok(v) => v,
            Err(e) => return self.refuse_bad(i, about, e),
        };
        if audio {
            let Some(mm) = self.sessions[i].membership_mut(h) else {
                return;
            };
            if let Some(last) = mm.audio_last
                && (header.seq.wrapping_sub(last) as i32) <= 0
            {
                // Acknowledge again: the publisher replays what it thinks is lost.
                mm.ack_pending = Some(last);
                self.stats.count_drop(DropReason::DuplicateAudio);
                return;
            }
            mm.audio_last = Some(header.seq);
            mm.ack_pending = Some(header.seq);
        }
        let mut head = [0u8; 4];
        // MAX_MEDIA keeps the length within a 4-byte header.
        let Some(hl) = ws::write_header(&mut head, FrameKind::Binary, true, bytes.len()) else {
            return;
        };
        let me = ConnId::new(i as u32);
        let meta = Meta {
            audio,
            standalone,
            publisher: me,
            room: h,
            person,
        };
        let Some(block) = self.pool.store(&head[..hl], bytes, meta, self.now) else {
            // Cannot happen by the pool's sizing; count it rather than panic.
            let line = format_args!("relay pool exhausted; dropping a message from connection {i}");
            self.log_limit.warn(LogKind::PoolExhausted, self.now, line);
            self.stats.count_drop(if audio {
                DropReason::SlowAudio
            } else {
                DropReason::SlowPose
            });
            return;
        };
        if standalone && !audio {
            self.cache_keyframe(i, h, person, block);
        }
        if !audio && let Some(rc) = self.room_counts.get_mut(h.index()) {
            rc.poses += 1;
        }
        let n = self.rooms.members(h).len();
        for k in 0..n {
            let r = self.rooms.members(h)[k].conn.index();
            if r == i || self.links[r].phase != Phase::Session {
                continue;
            }
            // A JSON receiver decodes on the hub's side, which needs every delta.
            if !audio && !self.links[r].json {
                if standalone {
                    self.sessions[r].resync_set(me, false);
                } else if self.sessions[r].resync_get(me) {
                    self.stats.count_drop(DropReason::AwaitingKeyframe);
                    if let Some(rc) = self.room_counts.get_mut(h.index()) {
                        rc.drops += 1;
                    }
                    continue;
                }
            }
            self.enqueue_media(r, block, true);
        }
        self.json.end_fan_out();
        self.pool.release(block);
        // Once to the broker, when members of other hubs are in the room.
        self.cluster_media(h, header.sender, bytes);
        if !self.keyframe_wanted.is_empty() {
            self.request_owed_keyframes();
        }
    }

    /// Keeps `block` as publisher `i`'s keyframe for (room, person), replacing
    /// the one it had, or the oldest when every slot is taken.
    fn cache_keyframe(&mut self, i: usize, room: RoomHandle, person: u32, block: u32) {
        let slots = self.cfg.keyframe_slots;
        let slot = KeyframeSlot {
            room,
            person,
            block,
            stored_us: self.now,
        };
        let keyframes = &mut self.sessions[i].keyframes;
        self.pool.acquire(block);
        if let Some(k) = keyframes
            .iter_mut()
            .find(|k| k.room == room && k.person == person)
        {
            self.pool.release(k.block);
            *k = slot;
        } else if keyframes.len() < slots {
            keyframes.push(slot);
        } else if let Some(k) = keyframes.iter_mut().min_by_key(|k| k.stored_us) {
            self.pool.release(k.block);
            *k = slot;
        }
    }

    /// Queues media block `b` for receiver `r` (`live`: fanned out now, not a
    /// cached keyframe); when the queue is full the oldest pose goes (or, with no
    /// pose queued, the oldest audio), counted, and the receiver waits for that
    /// publisher's next keyframe.
    pub(super) fn enqueue_media(&mut self, r: usize, b: u32, live: bool) {
        if self.links[r].json {
            return self.enqueue_json_media(r, b, live);
        }
        self.push_media(r, b);
    }

    /// Puts block `b` at the back of receiver `r`'s media queue; when the
    /// queue holds `queue_depth` already, the oldest pose goes (or, with no pose
    /// queued, the oldest audio), counted, and the receiver waits for that
    /// publisher's next keyframe. (A JSON receiver's queue holds only audio
    /// waiting for translation.) A queue that fills from below asks for its
    /// output to be written before the sender's next message is handled.
    pub(super) fn push_media(&mut self, r: usize, b: u32) {
        let depth = self.cfg.queue_depth;
        let link = &mut self.links[r];
        let was_full = link.data.len() >= depth;
        if was_full {
            let pool = &self.pool;
            let victim = link
                .data
                .iter()
                .position(|&x| !pool.meta(x).audio)
                .unwrap_or(0);
            if let Some(old) = link.data.remove(victim) {
                let meta = self.pool.meta(old);
                self.pool.release(old);
                if let Some(rc) = self.room_counts.get_mut(meta.room.index()) {
                    rc.drops += 1;
                }
                if meta.audio {
                    self.stats.count_drop(DropReason::SlowAudio);
                } else {
                    self.stats.count_drop(DropReason::SlowPose);
                    self.sessions[r].resync_set(meta.publisher, true);
                    self.want_keyframe(meta.publisher, meta.room, meta.person);
                }
            }
        }
        let link = &mut self.links[r];
        if !link.has_output() {
            link.last_progress_us = self.now;
        }
        link.data.push_back(b);
        if !was_full && link.data.len() == depth {
            // Full from below: the sender's next messages wait until the
            // driver has tried this receiver's socket (see `handle_received`).
            self.output_due = true;
        }
        self.pool.acquire(b);
        self.mark_output(r);
    }

    /// Sends publisher `p`'s cached keyframe to receiver `r`, which then waits for
    /// a fresh one (skipping deltas it could not decode), and owes a request.
    pub(super) fn serve_keyframe(&mut self, r: usize, p: ConnId, kf: KeyframeSlot) {
        self.enqueue_media(r, kf.block, false);
        self.stats.keyframes_served += 1;
        self.sessions[r].resync_set(p, true);
        self.want_keyframe(p, kf.room, kf.person);
    }

    /// Notes a keyframe request owed to publisher `p` (sent by
    /// [`request_owed_keyframes`](Self::request_owed_keyframes)).
    pub(super) fn want_keyframe(&mut self, p: ConnId, room: RoomHandle, person: u32) {
        // The list is emptied after every message; its capacity is never reached
        // in practice, and a request lost to it is asked again by the receiver.
        if self.keyframe_wanted.len() < self.keyframe_wanted.capacity() {
            self.keyframe_wanted.push((p, room, person));
        }
    }

    /// A receiver asks for a publisher's keyframe: from the cache if it has one
    /// the receiver does not have yet, otherwise from the publisher.
    pub(super) fn on_needs_keyframe(&mut self, i: usize, room: RoomHandle, nk: NeedsKeyframe) {
        let about = Kind::NeedsKeyframe as u8;
        if self.sessions[i].membership(room).is_none() {
            return self.send_error(i, ErrorCode::NOT_MEMBER, about, "not a member of that room");
        }
        if let Some(r) = self.remote_by_member(room, nk.publisher) {
            return self.remote_needs_keyframe(i, r, nk.person);
        }
        let Some(p) = self
            .conn_of_member(nk.publisher)
            .filter(|&p| self.sessions[p].membership(room).is_some())
        else {
            return self.send_error(
                i,
                ErrorCode::NO_SUCH_MEMBER,
                about,
                "that publisher is not in the room",
            );
        };
        let publisher = ConnId::new(p as u32);
        if self.sessions[i].resync_get(publisher) {
            // Already waiting for a fresh keyframe; ask again in case it was lost.
            self.want_keyframe(publisher, room, nk.person);
        } else if let Some(kf) = self.sessions[p]
            .keyframes
            .iter()
            .copied()
            .find(|k| k.room == room && k.person == nk.person)
        {
            self.serve_keyframe(i, publisher, kf);
        } else {
            self.sessions[i].resync_set(publisher, true);
            self.want_keyframe(publisher, room, nk.person);
        }
        self.request_owed_keyframes();
    }

    /// Forwards owed keyframe requests to their publishers, at most one per
    /// publisher per 100 ms.
    pub(super) fn request_owed_keyframes(&mut self) {
        while let Some((p, room, person)) = self.keyframe_wanted.pop() {
            let p = p.index();
            if p >= self.sessions.len() {
                // A publisher on another hub: asked through the broker.
                if let Some(r) = (p as u32).checked_sub(super::cluster::REMOTE_CONN_BASE) {
                    self.remote_keyframe_request(r, person);
                }
                continue;
            }
            let last = self.sessions[p].last_keyframe_request_us;
            if self.links[p].phase != Phase::Session
                || self.now.saturating_sub(last) < KEYFRAME_REQUEST_GAP_US && last != 0
            {
                continue;
            }
            self.sessions[p].last_keyframe_request_us = self.now;
            self.stats.keyframe_requests += 1;
            let msg = Message::NeedsKeyframe(NeedsKeyframe {
                publisher: self.sessions[p].member,
                person,
            });
            self.send_control(p, room, &msg);
        }
    }
}
