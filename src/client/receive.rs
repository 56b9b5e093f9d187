//! What the session does with what the hub sends: WebSocket frames are parsed in
//! place in the receive buffer when the driver polls for events; each protocol
//! message is handled (welcome, snapshots, acknowledgements, keyframe requests,
//! pings) and, if the app should hear of it, surfaced as an [`Event`] that
//! borrows the message's bytes or the session's decoder slots.
//!
//! Handling and surfacing are two steps on purpose: the handler needs the whole
//! session mutably, the event borrows it for as long as the driver holds it, and
//! Rust's borrow checker does not let a loop return a borrow taken on an
//! iteration that might also `continue`. So a handled message reports what to
//! surface as a small `Copy` value, and the event is then built from it,
//! re-reading a control message's strings from the bytes (rare: joins, leaves,
//! errors); media come out of slots filled by the handler.

use crate::proto::{
    self, CRC_LEN, ErrorCode, Flags, Header, Kind, LeaveReason, Message, NeedsKeyframe, Packet,
    Pong, PoseDecoder,
};
use crate::ws::{self, FrameKind};

use super::rooms::next_mask;
use super::wire::Next;
use super::{Core, Event, Phase, Receive, RoomId, Session};

/// A receive-side pose stream.
pub(super) struct RxStream {
    room: RoomId,
    sender: u16,
    person: u32,
    decoder: PoseDecoder,
    used_us: u64,
    /// A needs_keyframe was sent for the current outage.
    asked: bool,
}

/// A received audio stream: the last chunk number seen, for duplicate and gap
/// detection. A publisher is known by (user id hash, stream id) where it gave a
/// stream id — the same after its reconnects and across hub restarts, when its
/// member id changes; scoped by user, so that another user cannot make us drop
/// someone's audio by claiming their stream id — else by its member id.
pub(super) struct RxAudio {
    room: RoomId,
    who: u64,
    stream: u64,
    last: u32,
    decoder: super::audio_codec::AudioDecoder,
    /// A chunk of this stream failed to decode and the log said so (at warn,
    /// once a stream: the next ones go to debug).
    warned: bool,
}

/// What a handled message surfaces as.
#[derive(Clone, Copy)]
enum Surface {
    Nothing,
    Connected {
        member: u16,
        reconnect: bool,
        hub: usize,
    },
    Joined {
        room: RoomId,
        restored: bool,
        replayed: u32,
    },
    Refused {
        room: RoomId,
        restoring: bool,
    },
    MemberJoined {
        room: RoomId,
    },
    MemberLeft {
        room: RoomId,
        member: u16,
        reason: LeaveReason,
    },
    RoomLeft {
        room: RoomId,
        reason: LeaveReason,
    },
    Pose {
        room: RoomId,
        sender: u16,
    },
    Audio {
        room: RoomId,
        sender: u16,
    },
    Media {
        room: Option<RoomId>,
        header: Header,
    },
    RoundTrip {
        rtt_us: u64,
    },
    RoleChanged {
        room: RoomId,
        member: u16,
        role: proto::Role,
    },
    Acked {
        room: RoomId,
        seq: u32,
    },
    HubError,
}

impl Session {
    /// The next event, lent until the next call on the session: first what
    /// timers and the transport produced, then what the received bytes hold,
    /// parsed in place one frame at a time. Call it until `None` after every
    /// [`handle_received`](Self::handle_received) and
    /// [`handle_timeout`](Self::handle_timeout).
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        if let Some(n) = self.core.notes.pop_front() {
            return Some(self.core.note_event(n));
        }
        // Messages are handled at the time their bytes came in.
        let now = self.core.last_rx_us;
        loop {
            if !matches!(self.core.phase, Phase::Hello | Phase::Ready) {
                return None;
            }
            let (kind, fin, range) = match self.rx.next_frame() {
                Next::Nothing => return None,
                Next::Broken(e) => {
                    self.core.want_close = true;
                    self.lost(now, format_args!("WebSocket error from the hub: {e}"));
                    return self.poll_event();
                }
                Next::Frame(kind, fin, range) => (kind, fin, range),
            };
            match kind {
                FrameKind::Ping => {
                    let c = &mut self.core;
                    let mask = next_mask(&mut c.rng);
                    c.tx.push_frame(FrameKind::Pong, &self.rx.buf[range], mask);
                }
                FrameKind::Close => {
                    let mut text = [0u8; 125];
                    let (code, len) = match ws::parse_close(&self.rx.buf[range]) {
                        Ok((code, r)) => {
                            text[..r.len()].copy_from_slice(r.as_bytes());
                            (code, r.len())
                        }
                        Err(_) => (1005, 0),
                    };
                    let why = core::str::from_utf8(&text[..len]).unwrap_or("");
                    self.core.want_close = true;
                    self.lost(
                        now,
                        format_args!("the hub closed the connection ({code} {why})"),
                    );
                    return self.poll_event();
                }
                FrameKind::Binary if fin => {
                    let s = self.core.on_message(now, &self.rx.buf[range.clone()]);
                    if !matches!(s, Surface::Nothing) {
                        return Some(self.core.surface(s, &self.rx.buf[range]));
                    }
                }
                _ => {} // pong, text, fragments: the hub sends none of these
            }
        }
    }
}

/// The message in `bytes` (checked once already), parsed again for its strings.
fn reparse<'a>(bytes: &'a [u8], scratch: &'a mut [u8]) -> Option<(Header, Message<'a>)> {
    let body = bytes.len().checked_sub(CRC_LEN)?;
    let (header, hl) = Header::parse(&bytes[..body]).ok()?;
    let payload = &bytes[hl..body];
    let plain = if header.flags.contains(Flags::LZ4) {
        proto::decompress(payload, scratch).ok()?
    } else {
        payload
    };
    Some((header, Message::parse_payload(&header, plain).ok()?))
}

/// FNV-1a of a user id, with the top bit set so that it never equals a member id.
fn user_hash(user: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h | 1 << 63
}

impl Core {
    fn surface<'a>(&'a mut self, s: Surface, bytes: &'a [u8]) -> Event<'a> {
        let parsed = match s {
            Surface::Joined { .. }
            | Surface::Refused { .. }
            | Surface::MemberJoined { .. }
            | Surface::HubError => reparse(bytes, &mut self.scratch),
            _ => None,
        };
        match (s, parsed.map(|p| p.1)) {
            (
                Surface::Connected {
                    member,
                    reconnect,
                    hub,
                },
                _,
            ) => Event::Connected {
                member,
                reconnect,
                hub,
            },
            (
                Surface::Joined {
                    room,
                    restored,
                    replayed,
                },
                Some(Message::RoomSnapshot(snap)),
            ) => Event::RoomJoined {
                room,
                members: snap.members,
                restored,
                replayed,
            },
            (Surface::Refused { room, restoring }, Some(Message::Error(e))) => Event::JoinRefused {
                room,
                code: e.code,
                reason: e.reason,
                restoring,
            },
            (Surface::MemberJoined { room }, Some(Message::MemberJoined(j))) => {
                Event::MemberJoined {
                    room,
                    member: j.member,
                    stream: j.stream,
                }
            }
            (Surface::HubError, Some(Message::Error(e))) => Event::HubError {
                code: e.code,
                reason: e.reason,
            },
            (
                Surface::MemberLeft {
                    room,
                    member,
                    reason,
                },
                _,
            ) => Event::MemberLeft {
                room,
                member,
                reason,
            },
            (Surface::RoomLeft { room, reason }, _) => Event::RoomLeft { room, reason },
            (Surface::Pose { room, sender }, _) => Event::Pose {
                room,
                sender,
                frame: &self.pose_slot,
            },
            (Surface::Audio { room, sender }, _) => Event::Audio {
                room,
                sender,
                chunk: &self.audio_slot,
            },
            (Surface::Media { room, header }, _) => Event::Media { room, header },
            (Surface::RoundTrip { rtt_us }, _) => Event::RoundTrip { rtt_us },
            (Surface::RoleChanged { room, member, role }, _) => {
                Event::RoleChanged { room, member, role }
            }
            (Surface::Acked { room, seq }, _) => Event::AudioAcked { room, seq },
            // A message that parsed once and not twice: not possible; say so.
            _ => Event::HubError {
                code: ErrorCode::INTERNAL,
                reason: "a message from the hub could not be read again",
            },
        }
    }

    fn on_message(&mut self, now: u64, bytes: &[u8]) -> Surface {
        self.stats.messages_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let packet = match Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(e) => {
                log::warn!("a malformed message from the hub: {e}");
                return Surface::Nothing;
            }
        };
        let header = packet.header();
        if self.cfg.receive == Receive::Headers && matches!(header.kind, Kind::Pose | Kind::Audio) {
            let room = self.rooms.by_handle(header.room);
            return Surface::Media { room, header };
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let s = match Message::parse(&packet, &mut scratch) {
            Ok(msg) => self.on_protocol(now, &header, msg),
            Err(e) => {
                log::warn!(
                    "a malformed {} message from the hub: {e}",
                    header.kind.name()
                );
                Surface::Nothing
            }
        };
        self.scratch = scratch;
        s
    }

    fn on_protocol(&mut self, now: u64, header: &Header, msg: Message<'_>) -> Surface {
        let room = self.rooms.by_handle(header.room);
        match msg {
            Message::Welcome(w) => {
                self.member = w.member;
                self.resume = w.resume;
                self.resume_hub = self.hub;
                self.phase = Phase::Ready;
                self.connections += 1;
                self.failures = 0;
                self.backoff.reset();
                self.last_ping_us = now;
                log::info!("session open: member {} as {}", w.member, w.user);
                for id in 0..self.rooms.slots.len() {
                    if self.rooms.slots[id].in_use {
                        self.send_join(now, id);
                    }
                }
                Surface::Connected {
                    member: w.member,
                    reconnect: self.connections > 1,
                    hub: self.hub,
                }
            }
            Message::RoomSnapshot(s) => {
                let Some(id) = self
                    .rooms
                    .slots
                    .iter()
                    .position(|r| r.in_use && r.name == s.name && r.handle.is_none())
                else {
                    return Surface::Nothing;
                };
                let room = RoomId(id as u16);
                self.members.retain(|m| m.0 != room);
                for (m, stream) in s.members.iter_with_streams() {
                    if self.members.len() < self.members.capacity() {
                        self.members
                            .push((room, m.member, user_hash(m.user), stream));
                    }
                }
                let (restored, replayed) = self.joined(id, header.room, s.your_role);
                self.stats.audio_replayed += u64::from(replayed);
                Surface::Joined {
                    room,
                    restored,
                    replayed,
                }
            }
            Message::MemberJoined(j) => {
                let Some(room) = room else {
                    return Surface::Nothing;
                };
                let m = j.member;
                self.members.retain(|x| !(x.0 == room && x.1 == m.member));
                if self.members.len() < self.members.capacity() {
                    self.members
                        .push((room, m.member, user_hash(m.user), j.stream));
                }
                Surface::MemberJoined { room }
            }
            Message::MemberLeft(l) => match room {
                Some(room) if l.member != self.member => {
                    self.rx_streams
                        .retain(|s| !(s.room == room && s.sender == l.member));
                    self.members.retain(|m| !(m.0 == room && m.1 == l.member));
                    Surface::MemberLeft {
                        room,
                        member: l.member,
                        reason: l.reason,
                    }
                }
                _ => Surface::Nothing,
            },
            Message::Kick(_) | Message::CloseRoom(_) => {
                let Some(room) = room else {
                    return Surface::Nothing;
                };
                let r = &mut self.rooms.slots[room.index()];
                r.in_use = false;
                r.handle = None;
                let reason = if header.kind == Kind::Kick {
                    LeaveReason::Kicked
                } else {
                    LeaveReason::RoomClosed
                };
                Surface::RoomLeft { room, reason }
            }
            Message::Error(e) => {
                // A join refused (the oldest unanswered one).
                if e.about == Kind::Join as u8
                    && let Some((room, restoring)) = self.join_refused()
                {
                    if restoring {
                        let name = &self.rooms.slots[room.index()].name;
                        log::warn!("room {name} could not be restored: {}", e.reason);
                    }
                    return Surface::Refused { room, restoring };
                }
                if e.code == ErrorCode::SESSION_RESUMED {
                    // Another connection took this session over: resuming it
                    // again would take it back.
                    self.resume = 0;
                }
                log::warn!(
                    "the hub reports {} ({}): {}",
                    e.code.0,
                    e.code.name(),
                    e.reason
                );
                Surface::HubError
            }
            Message::Pong(p) => {
                let rtt_us =
                    (now.saturating_sub(p.t0_us)).saturating_sub(p.t2_us.saturating_sub(p.t1_us));
                Surface::RoundTrip { rtt_us }
            }
            Message::Ping(p) => {
                let pong = Message::Pong(Pong {
                    t0_us: p.t0_us,
                    t1_us: now,
                    t2_us: now,
                });
                self.send_control(now, 0, &pong);
                Surface::Nothing
            }
            Message::Ack(a) => {
                let Some(room) = room.filter(|_| a.kind == Kind::Audio as u8) else {
                    return Surface::Nothing;
                };
                if let Some(replay) = self.rooms.slots[room.index()].replay.as_mut() {
                    replay.ack(a.seq);
                }
                Surface::Acked { room, seq: a.seq }
            }
            Message::NeedsKeyframe(nk) => {
                if let Some(room) = room {
                    for (p, e) in self.rooms.slots[room.index()].encoders.iter_mut() {
                        if *p == nk.person {
                            e.force_keyframe();
                        }
                    }
                }
                Surface::Nothing
            }
            Message::RoleChanged(rc) => {
                let Some(room) = room else {
                    return Surface::Nothing;
                };
                if rc.member == self.member {
                    self.rooms.slots[room.index()].role = rc.role;
                }
                Surface::RoleChanged {
                    room,
                    member: rc.member,
                    role: rc.role,
                }
            }
            Message::Pose(p) => match room {
                Some(room) => self.on_pose(now, room, header, &p),
                None => Surface::Nothing,
            },
            Message::Audio(a) => {
                let Some(room) = room else {
                    return Surface::Nothing;
                };
                let Some(k) = self.audio_stream(room, header.sender, header.seq) else {
                    return Surface::Nothing; // a replay after a reconnect
                };
                let rx = &mut self.rx_audio[k];
                if let Err(e) = rx.decoder.decode(header, &a, &mut self.audio_slot) {
                    self.stats.audio_undecodable += 1;
                    // Said once a stream where a user sees it (a receiver
                    // built without Opus gets no audio at all otherwise, and
                    // would not know why); counted every time.
                    if rx.warned {
                        log::debug!("audio from member {} dropped: {e}", header.sender);
                    } else {
                        rx.warned = true;
                        log::warn!(
                            "audio from member {} dropped: {e} (further chunks of this stream that fail are counted as audio_undecodable)",
                            header.sender
                        );
                    }
                    return Surface::Nothing;
                }
                Surface::Audio {
                    room,
                    sender: header.sender,
                }
            }
            Message::Hello(_) | Message::Join(_) | Message::Leave(_) => Surface::Nothing,
        }
    }

    /// The index in `rx_audio` of the stream that audio chunk `seq` of
    /// `sender` in `room` belongs to, or `None` if the chunk came before
    /// (publishers replay after their reconnects, under a new member id after
    /// a hub restart); counts duplicates and the chunks skipped over.
    fn audio_stream(&mut self, room: RoomId, sender: u16, seq: u32) -> Option<usize> {
        let (who, stream) = match self.members.iter().find(|m| m.0 == room && m.1 == sender) {
            Some(&(_, _, user, stream)) if stream != 0 => (user, stream),
            _ => (sender as u64, 0),
        };
        match self
            .rx_audio
            .iter()
            .position(|a| a.room == room && a.who == who && a.stream == stream)
        {
            Some(k) => {
                let a = &mut self.rx_audio[k];
                let ahead = seq.wrapping_sub(a.last) as i32;
                if ahead <= 0 {
                    self.stats.audio_duplicates += 1;
                    return None;
                }
                self.stats.audio_gaps += (ahead - 1) as u64;
                a.last = seq;
                Some(k)
            }
            None => {
                if self.rx_audio.len() == self.rx_audio.capacity() && !self.rx_audio.is_empty() {
                    self.rx_audio.remove(0);
                }
                self.rx_audio.push(RxAudio {
                    room,
                    who,
                    stream,
                    last: seq,
                    decoder: Default::default(),
                    warned: false,
                });
                Some(self.rx_audio.len() - 1)
            }
        }
    }

    fn on_pose(
        &mut self,
        now: u64,
        room: RoomId,
        header: &Header,
        p: &proto::PosePayload<'_>,
    ) -> Surface {
        let sender = header.sender;
        let k = match self
            .rx_streams
            .iter()
            .position(|s| s.room == room && s.sender == sender && s.person == p.person)
        {
            Some(k) => k,
            None => {
                if self.rx_streams.len() == self.rx_streams.capacity() {
                    let oldest = self
                        .rx_streams
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, s)| s.used_us)
                        .map_or(0, |(i, _)| i);
                    self.rx_streams.swap_remove(oldest);
                }
                self.rx_streams.push(RxStream {
                    room,
                    sender,
                    person: p.person,
                    decoder: PoseDecoder::new(),
                    used_us: now,
                    asked: false,
                });
                self.rx_streams.len() - 1
            }
        };
        let s = &mut self.rx_streams[k];
        s.used_us = now;
        match s.decoder.decode(header, p) {
            Ok(frame) => {
                s.asked = false;
                self.pose_slot = *frame;
                Surface::Pose { room, sender }
            }
            Err(proto::Error::NeedsKeyframe) => {
                if !s.asked {
                    s.asked = true;
                    let ask = Message::NeedsKeyframe(NeedsKeyframe {
                        publisher: sender,
                        person: p.person,
                    });
                    self.send_control(now, header.room, &ask);
                }
                Surface::Nothing
            }
            Err(e) => {
                log::warn!("a pose from member {sender} does not decode: {e}");
                Surface::Nothing
            }
        }
    }
}
