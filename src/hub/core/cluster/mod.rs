//! The cluster link, as the core sees it: hubs joined through a broker (NATS,
//! driven on a thread of its own by the driver) relay each other's rooms. This
//! layer decides what crosses: a hub is interested in a room while it has local
//! members of it (it asks the driver to subscribe to the room's subject, and to
//! drop the subscription after the last local member leaves); it tells the
//! others when a local member joins, leaves or changes role; it publishes each
//! pose or audio message of a local publisher once, when the room has members
//! on other hubs; and it relays what other hubs publish to its local members as
//! if the publisher were here.
//!
//! Members of other hubs are *remote members*: each gets a member id of this
//! hub's (so clients see ordinary member ids, in snapshots, `member_joined` and
//! the `sender` of media), a slot in a fixed table, and a few keyframe slots of
//! its own, so a late joiner here gets a remote publisher's keyframe at once. A
//! remote message's envelope is copied once into a relay block with the room
//! handle and sender rewritten for this hub (and its CRC again), then queued to
//! the local members exactly as local media.
//!
//! Hubs say they are alive every `cluster_heartbeat_ms`; a hub not heard from
//! for `cluster_node_timeout_ms`, or heard from with a new epoch (it
//! restarted), loses its members here (`member_left`, `timed_out`). When the
//! broker comes back ([`Core::handle_cluster_link`](super::Core::handle_cluster_link)),
//! the hub announces its members and asks the others for theirs again.
//!
//! Output to the broker waits in a bounded queue that the driver drains after
//! every round ([`Core::poll_cluster`](super::Core::poll_cluster)); a full queue
//! drops media (counted) and counts and logs a dropped control message.

mod remote;
pub mod wire;

use std::collections::VecDeque;

pub use wire::valid_node_name;

use crate::proto::{LeaveReason, Role};
use crate::room::{ConnId, Name, RoomHandle};

use super::relay::KeyframeSlot;
use super::{HubConfig, Inner};
use wire::Msg;

/// Known hubs at once.
pub(super) const MAX_NODES: usize = 64;
/// Remote publishers' relay blocks carry a connection id from here up: no
/// local connection has one, so per-connection state ignores them.
pub(super) const REMOTE_CONN_BASE: u32 = 1 << 30;
/// `member_conn` marks a member id held by a remote member with this.
pub(super) const REMOTE_MEMBER: u32 = u32::MAX;

/// Where a cluster message goes, or what the driver must do with the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterTo<'a> {
    /// Publish on the room's subject.
    Room(&'a str),
    /// Publish on one hub's own subject.
    Node(&'a str),
    /// Publish on the subject every hub hears (heartbeats).
    Nodes,
    /// Subscribe to the room's subject; its messages come back with `sid`.
    Subscribe {
        /// The room's name.
        room: &'a str,
        /// What [`Core::handle_cluster`](super::Core::handle_cluster) is given
        /// with each message of the subscription.
        sid: u16,
    },
    /// Drop the subscription of that room.
    Unsubscribe {
        /// The room's name.
        room: &'a str,
        /// As given when subscribing.
        sid: u16,
    },
}

/// One thing for the broker, from [`Core::poll_cluster`](super::Core::poll_cluster).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterOut<'a> {
    /// Where it goes.
    pub to: ClusterTo<'a>,
    /// The message (empty for subscribe and unsubscribe).
    pub bytes: &'a [u8],
}

/// The broker subject of `to` for a cluster named `prefix` (`poselink`):
/// `prefix.room.<room name in hex>`, `prefix.node.<name>`, `prefix.nodes`.
/// Room names may hold `.` and other bytes subjects give meaning to, hence hex.
pub fn subject(prefix: &str, to: ClusterTo<'_>, out: &mut String) {
    use core::fmt::Write as _;
    out.clear();
    match to {
        ClusterTo::Room(room)
        | ClusterTo::Subscribe { room, .. }
        | ClusterTo::Unsubscribe { room, .. } => {
            let _ = write!(out, "{prefix}.room.");
            for b in room.bytes() {
                let _ = write!(out, "{b:02x}");
            }
        }
        ClusterTo::Node(n) => {
            let _ = write!(out, "{prefix}.node.{n}");
        }
        ClusterTo::Nodes => {
            let _ = write!(out, "{prefix}.nodes");
        }
    }
}

/// Another hub, as last heard of.
#[derive(Clone, Debug)]
pub(super) struct Node {
    pub name: heapless::String<{ wire::MAX_NODE_LEN }>,
    pub epoch: u64,
    pub last_us: u64,
}

/// A member of a room on another hub.
#[derive(Clone, Debug)]
pub(super) struct Remote {
    pub in_use: bool,
    pub node: heapless::String<{ wire::MAX_NODE_LEN }>,
    pub room: RoomHandle,
    /// Its member id on its own hub.
    pub origin: u16,
    /// The member id this hub gave it.
    pub member: u16,
    pub role: Role,
    pub stream: u64,
    pub user: Name,
    pub keyframes: Vec<KeyframeSlot>,
}

/// The bounded queue of what waits for the broker.
pub(super) struct OutQueue {
    buf: Vec<u8>,
    entries: VecDeque<(u32, u32)>,
}

/// The core's cluster state.
pub(super) struct Cluster {
    pub node: heapless::String<{ wire::MAX_NODE_LEN }>,
    pub epoch: u64,
    pub heartbeat_us: u64,
    pub timeout_us: u64,
    pub next_heartbeat: u64,
    /// The broker is reachable (as the driver last said).
    pub up: bool,
    /// A control message was lost to a full queue or ring: announce every
    /// member again at the next tick.
    pub resync_due: bool,
    pub nodes: Vec<Node>,
    pub remotes: Vec<Remote>,
    pub free: Vec<u32>,
    /// Per room handle (index): its remote members' slots.
    pub by_room: Box<[Vec<u32>]>,
    /// Per room handle: subscribed to its subject.
    pub subscribed: Box<[bool]>,
    pub out: OutQueue,
    /// Encoding space for one message.
    pub scratch: Box<[u8]>,
}

impl Cluster {
    /// Every table for `cfg`, or `None` when the hub is alone.
    pub fn new(cfg: &HubConfig, now: u64, epoch: u64) -> Option<Box<Cluster>> {
        cfg.cluster.as_ref()?;
        let mut node = heapless::String::new();
        let _ = node.push_str(cfg.node.as_deref().unwrap_or("hub"));
        let n = cfg.max_remote_members;
        let entries = cfg.cluster_ring + cfg.cluster_ring / 4;
        Some(Box::new(Cluster {
            node,
            epoch,
            heartbeat_us: cfg.cluster_heartbeat_ms * 1000,
            timeout_us: cfg.cluster_node_timeout_ms * 1000,
            next_heartbeat: now,
            up: false,
            resync_due: false,
            nodes: Vec::with_capacity(MAX_NODES),
            remotes: (0..n)
                .map(|_| Remote {
                    in_use: false,
                    node: heapless::String::new(),
                    room: RoomHandle::from_wire(0),
                    origin: 0,
                    member: 0,
                    role: Role::Viewer,
                    stream: 0,
                    user: Name::new(),
                    keyframes: Vec::with_capacity(cfg.keyframe_slots),
                })
                .collect(),
            free: (0..n as u32).rev().collect(),
            by_room: (0..=cfg.max_rooms)
                .map(|_| Vec::with_capacity(cfg.max_members))
                .collect(),
            subscribed: vec![false; cfg.max_rooms + 1].into_boxed_slice(),
            out: OutQueue {
                buf: Vec::with_capacity(entries * 512),
                entries: VecDeque::with_capacity(entries),
            },
            scratch: vec![0u8; super::pool::BLOCK + 512].into_boxed_slice(),
        }))
    }

    /// Bytes the tables hold (for the memory ceiling).
    pub fn table_bytes(cfg: &HubConfig) -> usize {
        if cfg.cluster.is_none() {
            return 0;
        }
        let entries = cfg.cluster_ring + cfg.cluster_ring / 4;
        cfg.max_remote_members
            * (size_of::<Remote>() + 4 + cfg.keyframe_slots * size_of::<KeyframeSlot>())
            + (cfg.max_rooms + 1) * (size_of::<Vec<u32>>() + 4 * cfg.max_members + 1)
            + entries * (512 + 8)
            + MAX_NODES * size_of::<Node>()
            + super::pool::BLOCK
            + 512
    }
}

impl OutQueue {
    /// Queues `msg` (its bytes in `scratch[..len]`) for `to`; false when full.
    fn push(&mut self, to: ClusterTo<'_>, msg: &[u8]) -> bool {
        let (kind, name, sid): (u8, &str, u16) = match to {
            ClusterTo::Room(r) => (0, r, 0),
            ClusterTo::Node(n) => (1, n, 0),
            ClusterTo::Nodes => (2, "", 0),
            ClusterTo::Subscribe { room, sid } => (3, room, sid),
            ClusterTo::Unsubscribe { room, sid } => (4, room, sid),
        };
        let need = 4 + name.len() + msg.len();
        if self.buf.len() + need > self.buf.capacity()
            || self.entries.len() == self.entries.capacity()
        {
            return false;
        }
        let at = self.buf.len();
        let sid = sid.to_le_bytes();
        self.buf
            .extend_from_slice(&[kind, sid[0], sid[1], name.len() as u8]);
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(msg);
        self.entries.push_back((at as u32, need as u32));
        true
    }

    /// The next entry, oldest first; `None` (and the space reused) when empty.
    pub fn pop(&mut self) -> Option<ClusterOut<'_>> {
        let Some((at, len)) = self.entries.pop_front() else {
            self.buf.clear();
            return None;
        };
        let e = &self.buf[at as usize..(at + len) as usize];
        let (kind, sid) = (e[0], u16::from_le_bytes([e[1], e[2]]));
        let n = e[3] as usize;
        // Written by `push` from a `&str`.
        let name = core::str::from_utf8(&e[4..4 + n]).unwrap_or("");
        let bytes = &e[4 + n..];
        let to = match kind {
            0 => ClusterTo::Room(name),
            1 => ClusterTo::Node(name),
            2 => ClusterTo::Nodes,
            3 => ClusterTo::Subscribe { room: name, sid },
            _ => ClusterTo::Unsubscribe { room: name, sid },
        };
        Some(ClusterOut { to, bytes })
    }
}

impl Inner {
    /// Encodes `msg` and queues it for `to`: a full queue drops media, counted,
    /// and counts and logs control.
    pub(super) fn cluster_send(&mut self, to: ClusterTo<'_>, msg: &Msg<'_>) {
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        let media = matches!(msg, Msg::Media { .. });
        let Some(n) = wire::encode(&c.node, msg, &mut c.scratch) else {
            log::warn!("cluster: a message does not encode (a name over 255 bytes?); not sent");
            return;
        };
        if c.out.push(to, &c.scratch[..n]) {
            self.stats.cluster.messages_out += 1;
        } else if media {
            self.stats.cluster.media_dropped += 1;
        } else {
            self.stats.cluster.control_dropped += 1;
            c.resync_due = true;
            let line = format_args!(
                "cluster: the queue to the broker is full (cluster_ring); a control message is lost; this hub announces its members again at its next tick"
            );
            self.log_limit.warn(super::LogKind::Cluster, self.now, line);
        }
    }

    /// Asks the driver to subscribe to or leave a room's subject.
    fn cluster_command(&mut self, to: ClusterTo<'_>) {
        if let Some(c) = self.cluster.as_deref_mut()
            && !c.out.push(to, &[])
        {
            self.stats.cluster.control_dropped += 1;
            log::warn!("cluster: the queue to the broker is full; a subscription change is lost");
        }
    }

    /// Whether the hub is in a cluster.
    pub(super) fn clustered(&self) -> bool {
        self.cluster.is_some()
    }

    /// A local member joined room `h` (`rejoined`: it was a member and changed
    /// role): subscribe when it is the first, and tell the others.
    pub(super) fn cluster_joined(&mut self, i: usize, h: RoomHandle, rejoined: bool) {
        if self.cluster.is_none() || self.rooms.name(h).is_none() {
            return;
        }
        let room = self.room_name(h);
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        if !c.subscribed[h.index()] {
            c.subscribed[h.index()] = true;
            self.cluster_command(ClusterTo::Subscribe {
                room: &room,
                sid: h.to_wire(),
            });
            self.cluster_send(ClusterTo::Room(&room), &Msg::Sync { room: &room });
        }
        let s = &self.sessions[i];
        let Some(m) = s.membership(h) else {
            return;
        };
        let (member, role, stream) = (s.member, m.role, s.stream);
        let user = s.user.clone();
        let msg = if rejoined {
            Msg::Role {
                room: &room,
                member,
                role,
            }
        } else {
            Msg::Joined {
                room: &room,
                member,
                role,
                stream,
                user: &user,
            }
        };
        self.cluster_send(ClusterTo::Room(&room), &msg);
    }

    /// Local member `member` left room `h`: tell the others; after the last
    /// local member, leave the room's subject and forget its remote members.
    pub(super) fn cluster_left(&mut self, h: RoomHandle, member: u16, why: LeaveReason) {
        if self.cluster.is_none() {
            return;
        }
        if self.rooms.name(h).is_none() {
            return self.cluster_drop_room(h, None);
        }
        let room = self.room_name(h);
        self.cluster_send(
            ClusterTo::Room(&room),
            &Msg::Left {
                room: &room,
                member,
                reason: why,
            },
        );
        if self.rooms.members(h).is_empty() {
            self.cluster_drop_room(h, Some(&room));
        }
    }

    /// Forgets room `h`'s remote members (no local member hears of it) and
    /// leaves its subject.
    pub(super) fn cluster_drop_room(&mut self, h: RoomHandle, room: Option<&str>) {
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        let Some(list) = c.by_room.get_mut(h.index()) else {
            return;
        };
        while let Some(r) = list.pop() {
            let rm = &mut c.remotes[r as usize];
            rm.in_use = false;
            for k in rm.keyframes.drain(..) {
                self.pool.release(k.block);
            }
            if self.member_conn[rm.member as usize] == REMOTE_MEMBER {
                self.member_conn[rm.member as usize] = 0;
            }
            c.free.push(r);
        }
        if core::mem::take(&mut c.subscribed[h.index()]) {
            self.cluster_command(ClusterTo::Unsubscribe {
                room: room.unwrap_or(""),
                sid: h.to_wire(),
            });
        }
    }

    /// Publishes a local publisher's media message, once, when room `h` has
    /// members on other hubs.
    pub(super) fn cluster_media(&mut self, h: RoomHandle, member: u16, envelope: &[u8]) {
        let Some(c) = self.cluster.as_deref() else {
            return;
        };
        if c.by_room.get(h.index()).is_none_or(|l| l.is_empty()) || !c.up {
            return;
        }
        if self.rooms.name(h).is_none() {
            return;
        }
        let room = self.room_name(h);
        self.cluster_send(
            ClusterTo::Room(&room),
            &Msg::Media {
                room: &room,
                member,
                envelope,
            },
        );
    }

    /// The cluster's timers: heartbeats out, silent hubs dropped.
    pub(super) fn cluster_tick(&mut self) {
        let now = self.now;
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        if c.resync_due && c.up && c.out.entries.is_empty() {
            c.resync_due = false;
            self.cluster_announce();
            return self.cluster_expire_nodes(now);
        }
        if now >= c.next_heartbeat {
            c.next_heartbeat = now + c.heartbeat_us;
            let epoch = c.epoch;
            if c.up {
                self.cluster_send(ClusterTo::Nodes, &Msg::Heartbeat { epoch });
            }
        }
        self.cluster_expire_nodes(now);
    }

    /// Drops the hubs not heard from for `cluster_node_timeout_ms`.
    fn cluster_expire_nodes(&mut self, now: u64) {
        loop {
            let Some(c) = self.cluster.as_deref_mut() else {
                return;
            };
            let timeout = c.timeout_us;
            let Some(k) = c
                .nodes
                .iter()
                .position(|n| now.saturating_sub(n.last_us) > timeout)
            else {
                return;
            };
            let gone = c.nodes.swap_remove(k);
            log::warn!(
                "cluster: hub {} not heard from for {} ms; its members leave every room here",
                gone.name,
                timeout / 1000
            );
            self.stats.cluster.nodes_lost += 1;
            self.remove_node_members(&gone.name, LeaveReason::TimedOut);
        }
    }

    /// The broker came back (or was reached for the first time): say who we
    /// are, subscribe again, announce our members and ask for theirs.
    pub(super) fn cluster_link(&mut self, up: bool) {
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        if c.up == up {
            return;
        }
        c.up = up;
        if !up {
            log::warn!(
                "cluster: the broker is unreachable; relaying between this hub's own members only until it is back"
            );
            return;
        }
        log::info!("cluster: connected to the broker as node {}", c.node);
        c.next_heartbeat = self.now;
        self.cluster_announce();
        self.cluster_tick();
    }

    /// Subscribes again to every room with local members, announces them and
    /// asks the other hubs for theirs (announcements of members already known
    /// change nothing there).
    fn cluster_announce(&mut self) {
        let handles: Vec<RoomHandle> = self.rooms.handles().collect();
        for h in handles {
            if self.rooms.members(h).is_empty() {
                continue;
            }
            if let Some(c) = self.cluster.as_deref_mut() {
                c.subscribed[h.index()] = false;
            }
            let conns: Vec<usize> = self
                .rooms
                .members(h)
                .iter()
                .map(|m| m.conn.index())
                .collect();
            for &i in &conns {
                self.cluster_joined(i, h, false);
            }
            // And who is not here any more, if a `left` was lost.
            let members: Vec<u8> = conns
                .iter()
                .flat_map(|&i| self.sessions[i].member.to_le_bytes())
                .collect();
            if self.rooms.name(h).is_some() {
                let room = self.room_name(h);
                let msg = Msg::Roster {
                    room: &room,
                    members: &members,
                };
                self.cluster_send(ClusterTo::Room(&room), &msg);
            }
        }
    }

    /// The driver lost a control message to a full ring: announce again.
    pub(super) fn cluster_resync_later(&mut self) {
        if let Some(c) = self.cluster.as_deref_mut() {
            c.resync_due = true;
        }
    }
}

/// Counters of the cluster link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Messages queued for the broker.
    pub messages_out: u64,
    /// Messages from the broker handled.
    pub messages_in: u64,
    /// Messages from the broker refused as malformed.
    pub malformed: u64,
    /// Media not sent because the queue to the broker was full.
    pub media_dropped: u64,
    /// Control messages not sent because the queue was full (logged).
    pub control_dropped: u64,
    /// Media from a remote member this hub does not know (yet), dropped.
    pub unknown_sender: u64,
    /// Other hubs dropped after their heartbeat timeout.
    pub nodes_lost: u64,
    /// Remote members refused because `max_remote_members` were known.
    pub remotes_refused: u64,
    /// Failed attempts to connect to the broker, by reason: the TLS
    /// handshake, the credentials, anything else (unreachable, closed), and a
    /// setting's file unusable (the hub then runs alone). Filled by the
    /// driver's broker thread, not the core.
    pub broker_failures: [u64; 4],
}

/// What an owner orders for a member of another hub.
#[derive(Clone, Copy, Debug)]
pub(super) enum Order<'a> {
    /// Remove it from the room, with this reason.
    Kick(&'a str),
    /// Give it this role.
    Role(Role),
}

/// A room's name, held apart from the registry's borrow.
pub(super) type RoomName = heapless::String<{ crate::proto::MAX_NAME_LEN }>;

impl Inner {
    /// Room `h`'s name (empty for a room that is gone).
    pub(super) fn room_name(&self, h: RoomHandle) -> RoomName {
        self.rooms
            .name(h)
            .and_then(|n| RoomName::try_from(n).ok())
            .unwrap_or_default()
    }

    /// Owner `i` orders something for member `member` of room `h`, who is on
    /// another hub: the owner's right is checked here; the member's hub does
    /// it (a kick; a role within the member's own token's grants) and tells
    /// every hub.
    pub(super) fn moderate_remote(
        &mut self,
        i: usize,
        h: RoomHandle,
        member: u16,
        order: Order<'_>,
        about: u8,
    ) {
        if !self
            .rooms
            .role_of(h, ConnId::new(i as u32))
            .is_some_and(|r| r.may_moderate())
        {
            return self.room_error(i, about, crate::room::RoomError::Forbidden);
        }
        let (Some(r), Some(c)) = (self.remote_by_member(h, member), self.cluster.as_deref()) else {
            return;
        };
        let rm = &c.remotes[r as usize];
        let (node, origin) = (rm.node.clone(), rm.origin);
        let room = self.room_name(h);
        let msg = match order {
            Order::Kick(reason) => Msg::Kick {
                room: &room,
                target: &node,
                member: origin,
                reason,
            },
            Order::Role(role) => Msg::SetRole {
                room: &room,
                target: &node,
                member: origin,
                role,
            },
        };
        self.cluster_send(ClusterTo::Room(&room), &msg);
        log::info!(
            "{order:?} for member {member} (of hub {node}) in room {h}, by {}",
            self.sessions[i].member
        );
    }
}

/// `ConnId` a remote member's relay blocks carry as their publisher.
pub(super) fn remote_conn(slot: u32) -> ConnId {
    ConnId::new(REMOTE_CONN_BASE + slot)
}
