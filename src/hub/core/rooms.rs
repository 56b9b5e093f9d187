//! Rooms, as sessions see them: join (checked against the token's grants, then
//! answered with a snapshot of the members, announced to the others, and
//! followed by every publisher's cached keyframe), leave, role changes and kicks
//! (owners only, never above the target's own token), closing a room. A join
//! that would create a room passes the creation limits first: the quotas of
//! rooms created that still exist, per connection and per user (`HUB_FULL`),
//! and the connection's rate of creation (`RATE_LIMITED`), so that no one
//! client can fill the room table. The registry (`crate::room`) keeps who is
//! where and who created what; this file turns its outcomes into messages, and
//! its refusals into protocol errors.

use crate::proto::{
    CloseRoom, ErrorCode, Header, Kick, Kind, LeaveReason, MemberInfo, MemberJoined, MemberLeft,
    Message, Role, RoleChanged, encode_snapshot_with_streams,
};
use crate::room::{ConnId, RoomError, RoomHandle};

use super::link::ROOM_TOKENS;
use super::sessions::Membership;
use super::{Inner, RoomCounts, reason};

impl Inner {
    /// Join `room` as `role`.
    pub(super) fn on_join(&mut self, i: usize, room: &str, role: Role) {
        let about = Kind::Join as u8;
        let may_create = match &self.sessions[i].claims {
            None => true, // dev mode
            Some(cl) if self.unix_secs() >= cl.exp => {
                return self.send_error(
                    i,
                    ErrorCode::TOKEN_EXPIRED,
                    about,
                    "the token has expired; reconnect with a new one",
                );
            }
            Some(cl) => match cl.allows(room, role) {
                Ok(create) => create,
                Err(e) => {
                    let r = reason(format_args!("{e} (room {room:?}, role {})", role.name()));
                    return self.send_error(i, ErrorCode::FORBIDDEN, about, &r);
                }
            },
        };
        let s = &self.sessions[i];
        let existing = self.rooms.find(room);
        let already = existing.is_some_and(|h| s.membership(h).is_some());
        if !already && s.rooms.len() >= self.cfg.max_rooms_per_connection {
            let r = reason(format_args!(
                "this connection is in {} rooms, the most one connection may join; leave one first",
                s.rooms.len()
            ));
            return self.send_error(i, ErrorCode::HUB_FULL, about, &r);
        }
        let (member, user) = (s.member, s.user.clone());
        let me = ConnId::new(i as u32);
        if existing.is_none() && may_create && !self.may_create_room(i, &user) {
            return;
        }
        let joined = match self.rooms.join(room, me, member, &user, role, may_create) {
            Ok(j) => j,
            Err(e) => return self.room_error(i, about, e),
        };
        if joined.created {
            self.links[i].room_bucket.try_take(ROOM_TOKENS, self.now);
        }
        let h = joined.handle;
        let s = &mut self.sessions[i];
        match s.membership_mut(h) {
            Some(m) => m.role = role,
            None => {
                let audio_last = s
                    .resumed_audio
                    .iter()
                    .find(|(room, _)| *room == h)
                    .map(|&(_, seq)| seq);
                s.rooms.push(Membership {
                    handle: h,
                    role,
                    audio_last,
                    ack_pending: None,
                })
            }
        }
        self.send_snapshot(i, h, room, role);
        self.cluster_joined(i, h, joined.rejoined);
        if joined.rejoined {
            let msg = Message::RoleChanged(RoleChanged { member, role });
            self.broadcast(h, Some(i), &msg);
        } else {
            let info = MemberInfo {
                member,
                role,
                user: &user,
            };
            self.broadcast(
                h,
                Some(i),
                &Message::MemberJoined(MemberJoined {
                    member: info,
                    stream: self.sessions[i].stream,
                }),
            );
        }
        if joined.created
            && let Some(rc) = self.room_counts.get_mut(h.index())
        {
            *rc = RoomCounts::default();
        }
        log::info!(
            "{user} (member {member}) joined room {room} (handle {h}) as {}{}",
            role.name(),
            if joined.created { ", creating it" } else { "" }
        );
        // Cached keyframes, so the joiner has every skeleton at once; then fresh
        // keyframes from the publishers, so that their next deltas decode.
        let n = self.rooms.members(h).len();
        for k in 0..n {
            let p = self.rooms.members(h)[k].conn;
            if p.index() == i {
                continue;
            }
            for s in 0..self.sessions[p.index()].keyframes.len() {
                let kf = self.sessions[p.index()].keyframes[s];
                if kf.room == h {
                    self.serve_keyframe(i, p, kf);
                }
            }
        }
        self.serve_remote_keyframes(i, h);
        self.request_owed_keyframes();
        self.mark_output(i);
    }

    /// Whether connection `i` (of `user`) may create one more room: within the
    /// quotas of rooms created (per connection, per user) and the rate of
    /// creation. If not, it is told which limit, and what to do.
    fn may_create_room(&mut self, i: usize, user: &str) -> bool {
        let about = Kind::Join as u8;
        let cfg = &self.cfg;
        let unshared_s = cfg.unshared_room_grace_ms.min(cfg.room_grace_ms) / 1000;
        let by_conn = self.rooms.created_by_conn(ConnId::new(i as u32));
        if by_conn >= cfg.max_rooms_created_per_connection {
            let r = reason(format_args!(
                "this connection created {by_conn} rooms that still exist, the most one connection may (max_rooms_created_per_connection); join an existing room, or close or leave one of yours (an empty room only you joined goes after {unshared_s} s)"
            ));
            self.send_error(i, ErrorCode::HUB_FULL, about, &r);
            return false;
        }
        let by_user = self.rooms.created_by_user(user);
        if by_user >= cfg.max_rooms_created_per_user {
            let r = reason(format_args!(
                "user {user} created {by_user} rooms that still exist, the most one user may (max_rooms_created_per_user); join an existing room, or close or leave one of yours (an empty room only you joined goes after {unshared_s} s)"
            ));
            self.send_error(i, ErrorCode::HUB_FULL, about, &r);
            return false;
        }
        let (per_minute, burst) = (cfg.room_creations_per_minute, cfg.room_creation_burst);
        let wait_us = self.links[i].room_bucket.wait_us(ROOM_TOKENS, self.now);
        if wait_us > 0 {
            let wait_ms = wait_us.div_ceil(1000);
            let r = reason(format_args!(
                "rooms created too fast: one connection may create {per_minute} a minute, {burst} at once (room_creations_per_minute); try again in {wait_ms} ms, or join an existing room"
            ));
            self.send_error(i, ErrorCode::RATE_LIMITED, about, &r);
            return false;
        }
        true
    }

    /// The room's members, to the joiner (control path: the list allocates).
    fn send_snapshot(&mut self, i: usize, h: RoomHandle, room: &str, role: Role) {
        let mut infos: Vec<MemberInfo<'_>> = self
            .rooms
            .members(h)
            .iter()
            .map(|m| MemberInfo {
                member: m.member,
                role: m.role,
                user: &m.user,
            })
            .collect();
        let mut streams: Vec<u64> = self
            .rooms
            .members(h)
            .iter()
            .map(|m| self.sessions[m.conn.index()].stream)
            .collect();
        // Members on other hubs of a cluster.
        if let Some(c) = self.cluster.as_deref() {
            for &r in &c.by_room[h.index()] {
                let rm = &c.remotes[r as usize];
                infos.push(MemberInfo {
                    member: rm.member,
                    role: rm.role,
                    user: &rm.user,
                });
                streams.push(rm.stream);
            }
        }
        let seq = self.links[i].ctrl_seq;
        let header = Header::new(Kind::RoomSnapshot, h.to_wire(), 0, seq, self.now);
        let encoded =
            encode_snapshot_with_streams(&header, room, role, &infos, &streams, &mut self.out);
        drop(infos);
        match encoded {
            Ok(n) => {
                self.links[i].ctrl_seq = seq.wrapping_add(1);
                self.push_message(i, n);
            }
            Err(e) => log::warn!("cannot encode the snapshot of room {room}: {e}"),
        }
    }

    /// Leave the room called `room`.
    pub(super) fn on_leave(&mut self, i: usize, room: &str, about: u8) {
        match self.rooms.find(room) {
            Some(h) if self.sessions[i].membership(h).is_some() => {
                self.leave_room(i, h, LeaveReason::Left, true);
            }
            _ => self.send_error(i, ErrorCode::NOT_MEMBER, about, "not a member of that room"),
        }
    }

    /// An owner gives a member of room `h` another role.
    pub(super) fn on_role_changed(&mut self, i: usize, h: RoomHandle, rc: RoleChanged, about: u8) {
        let me = ConnId::new(i as u32);
        if self.remote_by_member(h, rc.member).is_some() {
            let order = super::cluster::Order::Role(rc.role);
            return self.moderate_remote(i, h, rc.member, order, about);
        }
        // An owner may give a member no more than the member's own token grants
        // in this room: the token is the authority on rights.
        let target = self.conn_of_member(rc.member);
        let granted = match (target, self.rooms.name(h)) {
            (Some(t), Some(name)) => match &self.sessions[t].claims {
                Some(cl) => cl.allows(name, rc.role).is_ok(),
                None => true,
            },
            _ => true, // the registry answers for unknown members and rooms
        };
        if !granted && self.rooms.role_of(h, me).is_some_and(|r| r.may_moderate()) {
            let r = reason(format_args!(
                "member {}'s token does not grant the role {} in this room",
                rc.member,
                rc.role.name()
            ));
            return self.send_error(i, ErrorCode::FORBIDDEN, about, &r);
        }
        match self.rooms.set_role(h, me, rc.member, rc.role) {
            Ok(()) => {
                if let Some(t) = self.conn_of_member(rc.member)
                    && let Some(m) = self.sessions[t].membership_mut(h)
                {
                    m.role = rc.role;
                }
                self.broadcast(h, None, &Message::RoleChanged(rc));
            }
            Err(e) => self.room_error(i, about, e),
        }
    }

    /// An owner removes a member from room `h`.
    pub(super) fn on_kick(&mut self, i: usize, h: RoomHandle, k: Kick<'_>, about: u8) {
        let me = ConnId::new(i as u32);
        if self.remote_by_member(h, k.member).is_some() {
            let order = super::cluster::Order::Kick(k.reason);
            return self.moderate_remote(i, h, k.member, order, about);
        }
        match self.rooms.kick(h, me, k.member, self.now) {
            Ok(m) => {
                let t = m.conn.index();
                let r = reason(format_args!("{}", k.reason));
                let kick = Message::Kick(Kick {
                    member: k.member,
                    reason: &r,
                });
                self.send_control(t, h, &kick);
                self.forget_membership(t, h);
                let left = Message::MemberLeft(MemberLeft {
                    member: k.member,
                    reason: LeaveReason::Kicked,
                });
                self.broadcast(h, None, &left);
                log::info!(
                    "member {} kicked from room {h} by {}",
                    k.member,
                    self.sessions[i].member
                );
                self.cluster_left(h, k.member, LeaveReason::Kicked);
            }
            Err(e) => self.room_error(i, about, e),
        }
    }

    /// An owner closes room `h`: every member is told, and it is gone at once.
    pub(super) fn on_close_room(&mut self, i: usize, h: RoomHandle, cr: CloseRoom<'_>, about: u8) {
        let conns: Vec<ConnId> = self.rooms.members(h).iter().map(|m| m.conn).collect();
        let name = self.room_name(h);
        match self.rooms.close(h, ConnId::new(i as u32), |_| {}) {
            Ok(()) => {
                let r = reason(format_args!("{}", cr.reason));
                if self.clustered() {
                    let msg = super::cluster::wire::Msg::Close {
                        room: &name,
                        reason: &r,
                    };
                    self.cluster_send(super::cluster::ClusterTo::Room(&name), &msg);
                    self.cluster_drop_room(h, Some(&name));
                }
                let msg = Message::CloseRoom(CloseRoom { reason: &r });
                for t in conns {
                    self.send_control(t.index(), h, &msg);
                    self.forget_membership(t.index(), h);
                }
                log::info!("room {h} closed by member {}", self.sessions[i].member);
            }
            Err(e) => self.room_error(i, about, e),
        }
    }

    /// Removes `i` from room `h`, telling the others (and `i`, if `tell_self`).
    fn leave_room(&mut self, i: usize, h: RoomHandle, why: LeaveReason, tell_self: bool) {
        if self
            .rooms
            .leave(h, ConnId::new(i as u32), self.now)
            .is_err()
        {
            return;
        }
        let member = self.sessions[i].member;
        self.forget_membership(i, h);
        let msg = Message::MemberLeft(MemberLeft {
            member,
            reason: why,
        });
        self.broadcast(h, None, &msg);
        if tell_self {
            self.send_control(i, h, &msg);
        }
        self.cluster_left(h, member, why);
    }

    /// Drops `i`'s per-room state for `h` (the registry already has).
    pub(super) fn forget_membership(&mut self, i: usize, h: RoomHandle) {
        let s = &mut self.sessions[i];
        s.rooms.retain(|m| m.handle != h);
        let pool = &mut self.pool;
        s.keyframes.retain(|k| {
            if k.room == h {
                pool.release(k.block);
                false
            } else {
                true
            }
        });
    }

    pub(super) fn room_error(&mut self, i: usize, about: u8, e: RoomError) {
        let code = match e {
            RoomError::BadName => ErrorCode::BAD_MESSAGE,
            RoomError::NoSuchRoom => ErrorCode::NO_SUCH_ROOM,
            RoomError::RoomFull => ErrorCode::ROOM_FULL,
            RoomError::HubFull => ErrorCode::HUB_FULL,
            RoomError::NotMember => ErrorCode::NOT_MEMBER,
            RoomError::NoSuchMember => ErrorCode::NO_SUCH_MEMBER,
            _ => ErrorCode::FORBIDDEN,
        };
        let r = reason(format_args!("{e}"));
        self.send_error(i, code, about, &r);
    }
}
