//! What other hubs say, handled: their heartbeats, their members joining,
//! leaving and changing role in rooms this hub has members of, their media
//! relayed to the local members, requests for keyframes of local publishers,
//! and sync requests answered with this hub's members and cached keyframes.
//! A message that does not decode, or names what it may not, is refused and
//! counted, and harms nothing.

use crate::proto::{
    Kind, LeaveReason, MemberInfo, MemberJoined, MemberLeft, Message, Packet, PoseCoding, Role,
    RoleChanged, crc32,
};
use crate::room::{ConnId, RoomHandle};
use crate::ws::{self, FrameKind};

use super::super::pool::{MAX_MEDIA, Meta};
use super::super::relay::KeyframeSlot;
use super::super::{Inner, LogKind, Phase};
use super::wire::{self, Msg};
use super::{ClusterTo, MAX_NODES, Node, REMOTE_MEMBER, remote_conn};

impl Inner {
    /// A message from the broker; `sid` is the room handle of the subscription
    /// it came through (0: a hub's own subject or every hub's).
    pub(in super::super) fn on_cluster(&mut self, sid: u16, bytes: &[u8], parse: &mut [u8]) {
        let Some(c) = self.cluster.as_deref() else {
            return;
        };
        let (node, msg) = match wire::decode(bytes) {
            Ok(m) => m,
            Err(e) => return self.cluster_refuse(e.0),
        };
        if node == c.node.as_str() {
            return; // our own (the driver asks the broker not to echo)
        }
        self.stats.cluster.messages_in += 1;
        if !self.touch_node(node, msg) {
            return;
        }
        let room_of = |this: &Self, name: &str| -> Option<RoomHandle> {
            let by_sid = RoomHandle::from_wire(sid);
            let h = if sid != 0 && this.rooms.name(by_sid) == Some(name) {
                by_sid
            } else {
                this.rooms.find(name)?
            };
            // Only rooms with local members are of interest.
            (!this.rooms.members(h).is_empty()).then_some(h)
        };
        match msg {
            Msg::Heartbeat { .. } => {}
            Msg::Gone => {
                log::info!("cluster: hub {node} is shutting down; its members leave");
                self.remove_node_members(node, LeaveReason::Disconnected);
                if let Some(c) = self.cluster.as_deref_mut() {
                    c.nodes.retain(|n| n.name.as_str() != node);
                }
            }
            Msg::Joined {
                room,
                member,
                role,
                stream,
                user,
            } => {
                if let Some(h) = room_of(self, room) {
                    self.remote_joined(node, h, member, role, stream, user);
                }
            }
            Msg::Left {
                room,
                member,
                reason,
            } => {
                if let Some(h) = room_of(self, room)
                    && let Some(r) = self.remote_find(node, h, member)
                {
                    self.remote_remove(r, reason);
                }
            }
            Msg::Role { room, member, role } => {
                if let Some(h) = room_of(self, room)
                    && let Some(r) = self.remote_find(node, h, member)
                    && let Some(c) = self.cluster.as_deref_mut()
                {
                    c.remotes[r as usize].role = role;
                    let member = c.remotes[r as usize].member;
                    self.broadcast(h, None, &Message::RoleChanged(RoleChanged { member, role }));
                }
            }
            Msg::Sync { room } => {
                if let Some(h) = room_of(self, room) {
                    self.answer_sync(node, h, room);
                }
            }
            Msg::Media {
                room,
                member,
                envelope,
            } => match room_of(self, room) {
                Some(h) => self.remote_media(node, h, member, envelope, parse),
                None => self.stats.cluster.unknown_sender += 1,
            },
            Msg::Keyframe {
                room,
                publisher,
                person,
            } => {
                if let Some(h) = room_of(self, room)
                    && let Some(p) = self.conn_of_member(publisher)
                    && self.sessions[p].membership(h).is_some()
                {
                    self.want_keyframe(ConnId::new(p as u32), h, person);
                    self.request_owed_keyframes();
                }
            }
            Msg::Kick {
                room,
                target,
                member,
                reason,
            } => {
                let me = self.cluster.as_deref().is_some_and(|c| c.node == target);
                if me && let Some(h) = room_of(self, room) {
                    self.kicked_from_afar(h, member, reason);
                }
            }
            Msg::SetRole {
                room,
                target,
                member,
                role,
            } => {
                let me = self.cluster.as_deref().is_some_and(|c| c.node == target);
                if me && let Some(h) = room_of(self, room) {
                    self.role_from_afar(h, member, role);
                }
            }
            Msg::Roster { room, members } => {
                if let Some(h) = room_of(self, room) {
                    self.remote_roster(node, h, members);
                }
            }
            Msg::Close { room, reason } => {
                if let Some(h) = room_of(self, room) {
                    self.closed_from_afar(h, reason);
                }
            }
        }
    }

    /// Counts and logs a refused cluster message.
    fn cluster_refuse(&mut self, what: &str) {
        self.stats.cluster.malformed += 1;
        let line = format_args!(
            "cluster: refused a malformed message from the broker ({what}); is another program publishing on the cluster's subjects?"
        );
        self.log_limit.warn(LogKind::Cluster, self.now, line);
    }

    /// Notes that `node` is alive; a new epoch means it restarted, and what we
    /// knew of its members is stale. False when the node table is full.
    fn touch_node(&mut self, node: &str, msg: Msg<'_>) -> bool {
        let now = self.now;
        let Some(c) = self.cluster.as_deref_mut() else {
            return false;
        };
        let epoch = match msg {
            Msg::Heartbeat { epoch } => Some(epoch),
            _ => None,
        };
        if let Some(n) = c.nodes.iter_mut().find(|n| n.name.as_str() == node) {
            n.last_us = now;
            let restarted = epoch.is_some_and(|e| n.epoch != 0 && e != n.epoch);
            if let Some(e) = epoch {
                n.epoch = e;
            }
            if restarted {
                log::info!("cluster: hub {node} restarted; its old members leave");
                self.remove_node_members(node, LeaveReason::Disconnected);
            }
            return true;
        }
        if c.nodes.len() >= MAX_NODES {
            let line = format_args!(
                "cluster: more than {MAX_NODES} hubs; ignoring hub {node} (raise MAX_NODES)"
            );
            self.log_limit.warn(LogKind::Cluster, now, line);
            return false;
        }
        let mut name = heapless::String::new();
        let _ = name.push_str(node);
        log::info!("cluster: hub {node} is here");
        c.nodes.push(Node {
            name,
            epoch: epoch.unwrap_or(0),
            last_us: now,
        });
        true
    }

    /// The slot of `node`'s member `origin` in room `h`.
    pub(super) fn remote_find(&self, node: &str, h: RoomHandle, origin: u16) -> Option<u32> {
        let c = self.cluster.as_deref()?;
        c.by_room.get(h.index())?.iter().copied().find(|&r| {
            let rm = &c.remotes[r as usize];
            rm.origin == origin && rm.node.as_str() == node
        })
    }

    /// The slot of the remote member with this hub's member id `member` in `h`.
    pub(in super::super) fn remote_by_member(&self, h: RoomHandle, member: u16) -> Option<u32> {
        let c = self.cluster.as_deref()?;
        c.by_room
            .get(h.index())?
            .iter()
            .copied()
            .find(|&r| c.remotes[r as usize].member == member)
    }

    fn remote_joined(
        &mut self,
        node: &str,
        h: RoomHandle,
        origin: u16,
        role: Role,
        stream: u64,
        user: &str,
    ) {
        if let Some(r) = self.remote_find(node, h, origin) {
            // Known (a re-announcement after a sync or the broker's return).
            let c = self.cluster.as_deref_mut().expect("clustered");
            let rm = &mut c.remotes[r as usize];
            if rm.role != role {
                rm.role = role;
                let member = rm.member;
                self.broadcast(h, None, &Message::RoleChanged(RoleChanged { member, role }));
            }
            return;
        }
        let full = self.rooms.members(h).len()
            + self
                .cluster
                .as_deref()
                .map_or(0, |c| c.by_room[h.index()].len())
            >= self.cfg.max_members;
        let Some(member) = (!full).then(|| self.assign_remote_member()).flatten() else {
            self.stats.cluster.remotes_refused += 1;
            let line = format_args!(
                "cluster: no room for member {origin} of hub {node} in room {h} (max_members, max_remote_members or member ids)"
            );
            return self.log_limit.warn(LogKind::Cluster, self.now, line);
        };
        let c = self.cluster.as_deref_mut().expect("clustered");
        let Some(r) = c.free.pop() else {
            self.member_conn[member as usize] = 0;
            self.stats.cluster.remotes_refused += 1;
            return;
        };
        let rm = &mut c.remotes[r as usize];
        rm.in_use = true;
        rm.node.clear();
        let _ = rm.node.push_str(node);
        rm.room = h;
        rm.origin = origin;
        rm.member = member;
        rm.role = role;
        rm.stream = stream;
        rm.user.clear();
        let _ = rm
            .user
            .push_str(&user[..user.len().min(rm.user.capacity())]);
        c.by_room[h.index()].push(r);
        let user = rm.user.clone();
        log::info!(
            "cluster: {user} (member {origin} of hub {node}) joined room {h} as member {member}"
        );
        let info = MemberInfo {
            member,
            role,
            user: &user,
        };
        self.broadcast(
            h,
            None,
            &Message::MemberJoined(MemberJoined {
                member: info,
                stream,
            }),
        );
    }

    fn assign_remote_member(&mut self) -> Option<u16> {
        for _ in 0..65_536 {
            self.next_member = self.next_member.wrapping_add(1);
            let m = self.next_member;
            if m != 0 && self.member_conn[m as usize] == 0 {
                self.member_conn[m as usize] = REMOTE_MEMBER;
                return Some(m);
            }
        }
        None
    }

    /// Removes remote member slot `r`, telling the local members.
    pub(in super::super) fn remote_remove(&mut self, r: u32, why: LeaveReason) {
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        let rm = &mut c.remotes[r as usize];
        if !rm.in_use {
            return;
        }
        rm.in_use = false;
        let (h, member) = (rm.room, rm.member);
        for k in rm.keyframes.drain(..) {
            self.pool.release(k.block);
        }
        c.by_room[h.index()].retain(|&x| x != r);
        c.free.push(r);
        if self.member_conn[member as usize] == REMOTE_MEMBER {
            self.member_conn[member as usize] = 0;
        }
        let gone = remote_conn(r);
        for s in self.sessions.iter_mut() {
            s.resync_set(gone, false);
        }
        self.broadcast(
            h,
            None,
            &Message::MemberLeft(MemberLeft {
                member,
                reason: why,
            }),
        );
    }

    /// Every member of `node`, in every room, leaves.
    pub(in super::super) fn remove_node_members(&mut self, node: &str, why: LeaveReason) {
        let Some(c) = self.cluster.as_deref() else {
            return;
        };
        let slots: Vec<u32> = (0..c.remotes.len() as u32)
            .filter(|&r| {
                let rm = &c.remotes[r as usize];
                rm.in_use && rm.node.as_str() == node
            })
            .collect();
        for r in slots {
            self.remote_remove(r, why);
        }
    }

    /// `node` has a first member in room `h`: tell it ours, and send it our
    /// publishers' cached keyframes.
    fn answer_sync(&mut self, node: &str, h: RoomHandle, room: &str) {
        let n = self.rooms.members(h).len();
        for k in 0..n {
            let m = &self.rooms.members(h)[k];
            let i = m.conn.index();
            let (member, role, user) = (m.member, m.role, m.user.clone());
            let stream = self.sessions[i].stream;
            let msg = Msg::Joined {
                room,
                member,
                role,
                stream,
                user: &user,
            };
            self.cluster_send(ClusterTo::Node(node), &msg);
            for s in 0..self.sessions[i].keyframes.len() {
                let kf = self.sessions[i].keyframes[s];
                if kf.room != h {
                    continue;
                }
                // The block holds the WebSocket header, then the envelope.
                let bytes = self.pool.bytes(kf.block);
                // (A server frame's header: 2 bytes below 126 of payload, else 4.)
                let skip = if bytes.len() - 2 < 126 { 2 } else { 4 };
                let envelope: heapless::Vec<u8, { MAX_MEDIA }> =
                    heapless::Vec::from_slice(&bytes[skip..]).unwrap_or_default();
                let msg = Msg::Media {
                    room,
                    member,
                    envelope: &envelope,
                };
                self.cluster_send(ClusterTo::Node(node), &msg);
            }
        }
    }

    /// A remote publisher's pose or audio: checked, rewritten for this hub,
    /// stored once and queued to every local member of the room.
    fn remote_media(
        &mut self,
        node: &str,
        h: RoomHandle,
        origin: u16,
        envelope: &[u8],
        parse: &mut [u8],
    ) {
        let Some(r) = self.remote_find(node, h, origin) else {
            self.stats.cluster.unknown_sender += 1;
            return;
        };
        let Ok(packet) = Packet::new_checked(envelope) else {
            return self.cluster_refuse("a media envelope that does not check");
        };
        let kind = packet.header().kind;
        if !matches!(kind, Kind::Pose | Kind::Audio) || envelope.len() > MAX_MEDIA {
            return self.cluster_refuse("a media message that is not pose or audio");
        }
        let person_standalone = match Message::parse(&packet, parse) {
            Ok(Message::Pose(p)) => (p.person, !matches!(p.coding, PoseCoding::Delta { .. })),
            Ok(_) => (0, false),
            Err(_) => return self.cluster_refuse("a media payload that does not decode"),
        };
        let (person, standalone) = person_standalone;
        let audio = kind == Kind::Audio;
        let c = self.cluster.as_deref_mut().expect("clustered");
        let member = c.remotes[r as usize].member;
        // The envelope with this hub's room handle and sender, CRC again.
        let mut copy: heapless::Vec<u8, { MAX_MEDIA }> =
            heapless::Vec::from_slice(envelope).unwrap_or_default();
        crate::proto::rewrite_room_sender(&mut copy, h.to_wire(), member);
        let end = copy.len() - 4;
        let crc = crc32(&copy[..end]).to_le_bytes();
        copy[end..].copy_from_slice(&crc);
        let mut head = [0u8; 4];
        let Some(hl) = ws::write_header(&mut head, FrameKind::Binary, true, copy.len()) else {
            return;
        };
        let publisher = remote_conn(r);
        let meta = Meta {
            audio,
            standalone,
            publisher,
            room: h,
            person,
        };
        let Some(block) = self.pool.store(&head[..hl], &copy, meta, self.now) else {
            self.stats.cluster.media_dropped += 1;
            return;
        };
        self.stats.messages_in[audio as usize] += 1;
        if standalone && !audio {
            self.cache_remote_keyframe(r, h, person, block);
        }
        let n = self.rooms.members(h).len();
        for k in 0..n {
            let t = self.rooms.members(h)[k].conn.index();
            if self.links[t].phase == Phase::Session {
                self.enqueue_media(t, block, true);
            }
        }
        self.json.end_fan_out();
        self.pool.release(block);
    }

    fn cache_remote_keyframe(&mut self, r: u32, room: RoomHandle, person: u32, block: u32) {
        let slots = self.cfg.keyframe_slots;
        let c = self.cluster.as_deref_mut().expect("clustered");
        let keyframes = &mut c.remotes[r as usize].keyframes;
        let slot = KeyframeSlot {
            room,
            person,
            block,
            stored_us: self.now,
        };
        self.pool.acquire(block);
        if let Some(k) = keyframes.iter_mut().find(|k| k.person == person) {
            self.pool.release(k.block);
            *k = slot;
        } else if keyframes.len() < slots {
            keyframes.push(slot);
        } else if let Some(k) = keyframes.iter_mut().min_by_key(|k| k.stored_us) {
            self.pool.release(k.block);
            *k = slot;
        }
    }

    /// Sends a joiner `i` of room `h` the cached keyframes of its remote
    /// publishers.
    pub(in super::super) fn serve_remote_keyframes(&mut self, i: usize, h: RoomHandle) {
        let Some(c) = self.cluster.as_deref() else {
            return;
        };
        let blocks: Vec<u32> = c.by_room[h.index()]
            .iter()
            .flat_map(|&r| c.remotes[r as usize].keyframes.iter().map(|k| k.block))
            .collect();
        for b in blocks {
            self.enqueue_media(i, b, false);
            self.stats.keyframes_served += 1;
        }
    }

    /// A receiver here needs a keyframe of remote member slot `r`: from the
    /// cache if there is one, and asked of its hub.
    pub(in super::super) fn remote_keyframe_request(&mut self, r: u32, person: u32) {
        let Some(c) = self.cluster.as_deref() else {
            return;
        };
        let rm = &c.remotes[r as usize];
        if !rm.in_use {
            return;
        }
        let (node, origin, h) = (rm.node.clone(), rm.origin, rm.room);
        if self.rooms.name(h).is_none() {
            return;
        }
        let room = self.room_name(h);
        self.stats.keyframe_requests += 1;
        self.cluster_send(
            ClusterTo::Node(&node),
            &Msg::Keyframe {
                room: &room,
                publisher: origin,
                person,
            },
        );
    }

    /// Receiver `i` asks for a keyframe of remote member slot `r`: the cached
    /// one if there is one, and a fresh one from its hub.
    pub(in super::super) fn remote_needs_keyframe(&mut self, i: usize, r: u32, person: u32) {
        let cached = self.cluster.as_deref().and_then(|c| {
            c.remotes[r as usize]
                .keyframes
                .iter()
                .find(|k| k.person == person)
                .map(|k| k.block)
        });
        if let Some(b) = cached {
            self.enqueue_media(i, b, false);
            self.stats.keyframes_served += 1;
        }
        self.remote_keyframe_request(r, person);
    }

    /// An owner on another hub kicked local member `member` from room `h`.
    fn kicked_from_afar(&mut self, h: RoomHandle, member: u16, why: &str) {
        let Some(i) = self
            .conn_of_member(member)
            .filter(|&i| self.sessions[i].membership(h).is_some())
        else {
            return;
        };
        if self
            .rooms
            .leave(h, ConnId::new(i as u32), self.now)
            .is_err()
        {
            return;
        }
        let r = super::super::reason(format_args!("{why}"));
        self.send_control(
            i,
            h,
            &Message::Kick(crate::proto::Kick { member, reason: &r }),
        );
        self.forget_membership(i, h);
        let left = Message::MemberLeft(MemberLeft {
            member,
            reason: LeaveReason::Kicked,
        });
        self.broadcast(h, None, &left);
        log::info!("member {member} kicked from room {h} by an owner on another hub");
        self.cluster_left(h, member, LeaveReason::Kicked);
    }

    /// An owner on another hub gives local member `member` of room `h` a role:
    /// within what the member's own token grants, as for a local owner.
    fn role_from_afar(&mut self, h: RoomHandle, member: u16, role: Role) {
        let Some(i) = self
            .conn_of_member(member)
            .filter(|&i| self.sessions[i].membership(h).is_some())
        else {
            return;
        };
        let granted = match (&self.sessions[i].claims, self.rooms.name(h)) {
            (Some(cl), Some(name)) => cl.allows(name, role).is_ok(),
            _ => true,
        };
        if !granted {
            log::info!(
                "an owner on another hub asked for role {} for member {member} in room {h}; its token does not grant it",
                role.name()
            );
            return;
        }
        if self.rooms.set_role_by_hub(h, member, role).is_err() {
            return;
        }
        if let Some(m) = self.sessions[i].membership_mut(h) {
            m.role = role;
        }
        self.broadcast(h, None, &Message::RoleChanged(RoleChanged { member, role }));
        self.cluster_joined(i, h, true);
    }

    /// `node`'s members of room `h` are those in `members` (u16s): the rest of
    /// what this hub knows of it left (a `left` was lost on the way).
    fn remote_roster(&mut self, node: &str, h: RoomHandle, members: &[u8]) {
        let Some(c) = self.cluster.as_deref() else {
            return;
        };
        let gone: Vec<u32> = c.by_room[h.index()]
            .iter()
            .copied()
            .filter(|&r| {
                let rm = &c.remotes[r as usize];
                rm.node.as_str() == node
                    && !members
                        .chunks_exact(2)
                        .any(|m| u16::from_le_bytes([m[0], m[1]]) == rm.origin)
            })
            .collect();
        for r in gone {
            self.remote_remove(r, LeaveReason::Disconnected);
        }
    }

    /// An owner on another hub closed room `h`.
    fn closed_from_afar(&mut self, h: RoomHandle, why: &str) {
        let conns: Vec<ConnId> = self.rooms.members(h).iter().map(|m| m.conn).collect();
        let name = self.room_name(h);
        self.rooms.close_by_hub(h);
        let r = super::super::reason(format_args!("{why}"));
        let msg = Message::CloseRoom(crate::proto::CloseRoom { reason: &r });
        for t in conns {
            self.send_control(t.index(), h, &msg);
            self.forget_membership(t.index(), h);
        }
        self.cluster_drop_room(h, Some(&name));
        log::info!("room {name} closed by an owner on another hub");
    }
}
