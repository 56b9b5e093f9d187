//! Sessions: a connection's life between an accepted hello and its end. The
//! hello is checked once — the token's signature and expiry (against the wall
//! clock the driver gave), or anonymous access in dev mode — and answered with a
//! welcome that gives the session its member id (the `sender` of its messages)
//! and a resume id. A session that ends is kept for the room grace period as a
//! [`Resumable`]: a hello that presents its resume id (once, as the same user)
//! gets the member id back and, per room, the last audio `seq` relayed from it,
//! so that the chunks a publisher replays after reconnecting are recognised as
//! duplicates. Ending a session leaves every room (the others hear
//! `member_left`), frees the member id and the publisher's cached keyframes.

use core::fmt::Write as _;

use crate::proto::{
    ErrorCode, Kind, LeaveReason, MAX_NAME_LEN, MemberLeft, Message, PROTOCOL_MINOR, Packet, Role,
    Welcome,
};
use crate::room::{ConnId, RoomHandle};
use crate::token::{Claims, TokenError};

use super::link::Phase;
use super::relay::KeyframeSlot;
use super::{HubConfig, Inner, LogKind, app_close, reason};

/// A room this session is in, with what the relay needs per message.
#[derive(Clone, Copy, Debug)]
pub(super) struct Membership {
    /// The room's handle.
    pub handle: RoomHandle,
    /// The session's role there.
    pub role: Role,
    /// The last audio `seq` relayed from this session in this room.
    pub audio_last: Option<u32>,
    /// An audio `seq` relayed but not yet acknowledged to the publisher.
    pub ack_pending: Option<u32>,
}

/// A connection's session state (meaningful while its link is in
/// [`Phase::Session`]).
pub(super) struct Session {
    pub member: u16,
    pub user: heapless::String<MAX_NAME_LEN>,
    /// The token's claims; `None` for anonymous (dev) access.
    pub claims: Option<Claims>,
    pub rooms: Vec<Membership>,
    /// Bit `p` set: this receiver lost a pose from the publisher on connection
    /// `p` and gets none of its deltas until its next keyframe.
    resync: Box<[u64]>,
    /// This publisher's cached keyframes, one per (room, person).
    pub keyframes: Vec<KeyframeSlot>,
    pub last_keyframe_request_us: u64,
    /// The id this session's welcome gave for resuming it.
    pub resume_id: u64,
    /// The client's stream id from its hello (0: none given), told to the
    /// members of its rooms.
    pub stream: u64,
    /// From a resumed session: (room, last audio seq) to restore on rejoin.
    pub resumed_audio: Vec<(RoomHandle, u32)>,
    /// JSON mode: sequence numbers for pose and audio that give none.
    pub json_pose_seq: u32,
    /// See `json_pose_seq`.
    pub json_audio_seq: u32,
}

impl Session {
    /// Session state with every table sized for `cfg`.
    pub fn new(resync_words: usize, cfg: &HubConfig) -> Session {
        Session {
            member: 0,
            user: heapless::String::new(),
            claims: None,
            rooms: Vec::with_capacity(cfg.max_rooms_per_connection),
            resync: vec![0u64; resync_words].into_boxed_slice(),
            keyframes: Vec::with_capacity(cfg.keyframe_slots),
            last_keyframe_request_us: 0,
            resume_id: 0,
            stream: 0,
            resumed_audio: Vec::with_capacity(cfg.max_rooms_per_connection),
            json_pose_seq: 0,
            json_audio_seq: 0,
        }
    }

    /// Forgets the last connection's session (tables kept).
    pub fn reset(&mut self) {
        debug_assert!(self.keyframes.is_empty());
        self.member = 0;
        self.user.clear();
        self.claims = None;
        self.rooms.clear();
        self.resync.fill(0);
        self.last_keyframe_request_us = 0;
        self.stream = 0;
        self.json_pose_seq = 0;
        self.json_audio_seq = 0;
    }

    /// Whether this receiver waits for a keyframe from the publisher on `p`.
    pub fn resync_get(&self, p: ConnId) -> bool {
        let (w, b) = (p.index() / 64, p.index() % 64);
        self.resync.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    /// Sets whether this receiver waits for a keyframe from the publisher on `p`.
    pub fn resync_set(&mut self, p: ConnId, on: bool) {
        let (w, b) = (p.index() / 64, p.index() % 64);
        if let Some(x) = self.resync.get_mut(w) {
            if on {
                *x |= 1 << b;
            } else {
                *x &= !(1 << b);
            }
        }
    }

    /// This session's membership of room `h`.
    pub fn membership(&self, h: RoomHandle) -> Option<&Membership> {
        self.rooms.iter().find(|m| m.handle == h)
    }

    /// See [`membership`](Self::membership).
    pub fn membership_mut(&mut self, h: RoomHandle) -> Option<&mut Membership> {
        self.rooms.iter_mut().find(|m| m.handle == h)
    }
}

/// What a resumed session gets back: its member id, and per room the last audio
/// `seq` relayed from it.
pub(super) struct Resumable {
    id: u64,
    user: heapless::String<MAX_NAME_LEN>,
    member: u16,
    until_us: u64,
    audio: Vec<(RoomHandle, u32)>,
}

impl Resumable {
    /// An empty record with room for `rooms` audio positions.
    pub fn new(rooms: usize) -> Resumable {
        Resumable {
            id: 0,
            user: heapless::String::new(),
            member: 0,
            until_us: 0,
            audio: Vec::with_capacity(rooms),
        }
    }
}

impl Inner {
    /// The first message of connection `i`, which must be a hello.
    pub(super) fn on_hello(&mut self, i: usize, packet: &Packet<&[u8]>, parse: &mut [u8]) {
        let header = packet.header();
        if header.kind != Kind::Hello {
            let r = reason(format_args!(
                "the first message must be a hello (got {}); see docs/PROTOCOL.md",
                header.kind.name()
            ));
            self.send_error(i, ErrorCode::UNAUTHENTICATED, header.kind as u8, &r);
            return self.close(i, app_close(ErrorCode::UNAUTHENTICATED), "hello expected");
        }
        let hello = match Message::parse(packet, parse) {
            Ok(Message::Hello(h)) => h,
            Err(e) => return self.refuse_bad(i, Kind::Hello as u8, e),
            // Parsing follows the header's kind, checked above.
            Ok(_) => return,
        };
        let verdict = match (&self.key, self.cfg.dev) {
            (_, true) if hello.token.is_empty() => Ok(None),
            (Some(key), _) => key.verify(hello.token, self.unix_secs()).map(Some),
            (None, _) => Ok(None),
        };
        let claims = match verdict {
            Ok(c) => c,
            Err(e) => {
                let code = match e {
                    TokenError::Missing => ErrorCode::UNAUTHENTICATED,
                    TokenError::Expired => ErrorCode::TOKEN_EXPIRED,
                    _ => ErrorCode::TOKEN_INVALID,
                };
                let r = reason(format_args!("{e}"));
                let peer = self.links[i].peer;
                let line = format_args!("connection {i} ({peer}): hello refused: {r}");
                self.log_limit.warn(LogKind::HelloRefused, self.now, line);
                self.send_error(i, code, Kind::Hello as u8, &r);
                return self.close(i, app_close(code), code.name());
            }
        };
        // A resume of a session whose connection is still open (the client
        // gave up on it before the hub noticed): that connection is closed, and
        // its session kept for this one to resume.
        if hello.resume != 0 {
            self.take_over(i, hello.resume, claims.as_ref().map(|c| c.sub.as_str()));
        }
        // A resumed session keeps its member id (if still free) and its audio
        // sequence numbers.
        let resumed = if hello.resume == 0 {
            None
        } else {
            let now = self.now;
            let sub = claims.as_ref().map(|c| c.sub.as_str());
            self.resumable
                .iter()
                .position(|r| {
                    r.id == hello.resume
                        && r.until_us > now
                        && sub.is_none_or(|u| r.user.as_str() == u)
                })
                .inspect(|&k| self.resumable[k].id = 0)
        };
        let member = match resumed {
            Some(k) if self.member_conn[self.resumable[k].member as usize] == 0 => {
                let m = self.resumable[k].member;
                self.member_conn[m as usize] = i as u32 + 1;
                Some(m)
            }
            _ => self.assign_member(i),
        };
        let Some(member) = member else {
            self.send_error(
                i,
                ErrorCode::HUB_FULL,
                Kind::Hello as u8,
                "no member id is free; try again later",
            );
            return self.close(i, app_close(ErrorCode::HUB_FULL), "hub full");
        };
        let s = &mut self.sessions[i];
        s.member = member;
        s.user.clear();
        match &claims {
            Some(cl) => {
                let _ = s.user.push_str(&cl.sub);
            }
            // Anonymous (dev) access: a client that gave a stream id is named
            // after it, so it keeps its name across reconnects and hub restarts
            // (receivers know a stream by user and stream id); else after its
            // member id.
            None if hello.stream != 0 => {
                let short = (hello.stream >> 32) as u32 ^ hello.stream as u32;
                let _ = write!(s.user, "anon-{short:08x}");
            }
            None => {
                let _ = write!(s.user, "anon-{member}");
            }
        }
        s.claims = claims;
        s.stream = hello.stream;
        s.resumed_audio.clear();
        if let Some(k) = resumed {
            s.resumed_audio.extend_from_slice(&self.resumable[k].audio);
        }
        self.session_counter = self
            .session_counter
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        s.resume_id = self.session_counter | 1;
        let (user, resume) = (s.user.clone(), s.resume_id);
        let link = &mut self.links[i];
        link.phase = Phase::Session;
        link.last_ping_us = self.now;
        self.sessions_open += 1;
        self.stats.sessions_opened += 1;
        log::info!(
            "session {member} for {user} from {} ({}){}",
            link.peer,
            hello.client.get(..64).unwrap_or(hello.client),
            if resumed.is_some() { ", resumed" } else { "" }
        );
        let welcome = Message::Welcome(Welcome {
            minor: PROTOCOL_MINOR,
            member,
            user: &user,
            resume,
            server_time_us: self.now,
            heartbeat_ms: self.cfg.heartbeat_ms as u32,
            max_message: self.cfg.max_message as u32,
        });
        self.send_control(i, RoomHandle::NONE, &welcome);
    }

    /// Closes the open session (not `i`'s) whose resume id is `resume`, if it
    /// is `user`'s (any user's where the hub runs without tokens), so that
    /// connection `i` resumes it now rather than after the old connection
    /// times out. The old connection is told why.
    fn take_over(&mut self, i: usize, resume: u64, user: Option<&str>) {
        let Some(j) = (0..self.sessions.len()).find(|&j| {
            j != i
                && self.links[j].phase == Phase::Session
                && self.sessions[j].resume_id == resume
                && user.is_none_or(|u| self.sessions[j].user.as_str() == u)
        }) else {
            return;
        };
        let member = self.sessions[j].member;
        log::info!(
            "session {member} resumed by connection {i} from {}; closing its old connection {j}",
            self.links[i].peer
        );
        let code = ErrorCode::SESSION_RESUMED;
        let why = "this session was resumed from another connection";
        self.send_error(j, code, Kind::Hello as u8, why);
        self.close(j, app_close(code), "session resumed elsewhere");
    }

    fn assign_member(&mut self, i: usize) -> Option<u16> {
        for _ in 0..65_536 {
            self.next_member = self.next_member.wrapping_add(1);
            let m = self.next_member;
            if m != 0 && self.member_conn[m as usize] == 0 {
                self.member_conn[m as usize] = i as u32 + 1;
                return Some(m);
            }
        }
        None
    }

    /// The connection of the session with member id `member`.
    pub(super) fn conn_of_member(&self, member: u16) -> Option<usize> {
        match self.member_conn[member as usize] {
            0 | super::cluster::REMOTE_MEMBER => None,
            s => Some(s as usize - 1),
        }
    }

    /// Leaves every room (telling the others) and frees the member id.
    pub(super) fn end_session(&mut self, i: usize, why: LeaveReason) {
        if self.links[i].phase != Phase::Session {
            return;
        }
        self.sessions_open -= 1;
        let member = self.sessions[i].member;
        self.save_resumable(i);
        let mut left: heapless::Vec<RoomHandle, 256> = heapless::Vec::new();
        self.rooms
            .leave_all(ConnId::new(i as u32), self.now, |h, _| {
                let _ = left.push(h);
            });
        // Leave the session state before telling others, so nothing is queued to it.
        self.links[i].phase = Phase::Closing;
        for &h in &left {
            self.forget_membership(i, h);
            let msg = Message::MemberLeft(MemberLeft {
                member,
                reason: why,
            });
            self.broadcast(h, None, &msg);
            self.cluster_left(h, member, why);
        }
        let s = &mut self.sessions[i];
        s.rooms.clear();
        for k in s.keyframes.drain(..) {
            self.pool.release(k.block);
        }
        if self.member_conn[member as usize] == i as u32 + 1 {
            self.member_conn[member as usize] = 0;
        }
        let gone = ConnId::new(i as u32);
        for s in self.sessions.iter_mut() {
            s.resync_set(gone, false);
        }
        log::debug!("session {member} ended");
    }

    /// Keeps what a resume restores, for the room grace period, in the slot of
    /// the record that expires first.
    fn save_resumable(&mut self, i: usize) {
        let s = &self.sessions[i];
        let Some(r) = self.resumable.iter_mut().min_by_key(|r| r.until_us) else {
            return;
        };
        r.id = s.resume_id;
        r.user.clone_from(&s.user);
        r.member = s.member;
        r.until_us = self.now + self.cfg.room_grace_ms * 1000;
        r.audio.clear();
        r.audio.extend(
            s.rooms
                .iter()
                .filter_map(|m| m.audio_last.map(|a| (m.handle, a))),
        );
    }
}
