//! The room registry harness behind the fuzz target `room_registry`, shared
//! with `tests/protocol/props/` (included there with `#[path]`).
//!
//! [`run`] reads its input as a registry's limits (first byte) and then a
//! sequence of operations, three bytes each (see [`run`] for the encoding):
//! join (a new room, one that
//! exists, or again with another role), leave, leave_all, kick, set_role,
//! close, expire and a step of the clock, over small alphabets of room names
//! (one of them invalid), connections, users and roles, so that rooms fill,
//! the hub fills, and the same connection meets the same room again. Each
//! operation runs on the `RoomRegistry` and on a plain model of what it
//! documents; after every operation the two must agree — the outcome or the
//! refusal, every room's name, members (in join order), roles, sharing and
//! creators — and, checked on the registry alone:
//!
//! - no room holds more than `max_members` members, nor the registry more
//!   than `max_rooms` rooms, and `room_count` counts its handles;
//! - a connection is listed at most once per room; every listed handle has a
//!   name that `find` resolves to it, and handles outside it have no members;
//! - a room keeps its handle while it lives;
//! - an empty room is gone after `expire` once its grace period (the shared or
//!   the unshared one) has passed, and not before.

use poselink::proto::{Role, validate_name};
use poselink::room::{ConnId, Member, RoomConfig, RoomError, RoomHandle, RoomRegistry};

/// Room names: five valid ones sharing prefixes, and an invalid one.
pub const NAMES: [&str; 6] = ["gym", "gym-2", "a", "studio:1", "kitchen", "bad name"];
/// User ids: connection `c` is user `USERS[c % 3]`, so users share rooms.
pub const USERS: [&str; 3] = ["ana", "bo", "pi-4"];
/// Connections `0..CONNS`.
pub const CONNS: u32 = 6;
/// Operations read from one input at most.
pub const MAX_OPS: usize = 512;
const ROLES: [Role; 3] = [Role::Owner, Role::Member, Role::Viewer];

/// The registry's limits for a first byte: 1–4 rooms, 1–4 members, a grace
/// of 0–3 s and an unshared one of 0–1.5 s.
pub fn config_of(b: u8) -> RoomConfig {
    RoomConfig {
        max_rooms: usize::from(b & 3) + 1,
        max_members: usize::from((b >> 2) & 3) + 1,
        grace_us: u64::from((b >> 4) & 3) * 1_000_000,
        unshared_grace_us: u64::from(b >> 6) * 500_000,
    }
}

#[derive(Clone, Debug)]
struct ModelRoom {
    handle: RoomHandle,
    name: &'static str,
    /// (conn, member id, role, user), in join order.
    members: Vec<(ConnId, u16, Role, &'static str)>,
    empty_since: Option<u64>,
    creator: &'static str,
    creator_conn: Option<ConnId>,
    shared: bool,
}

/// What the registry documents, as plainly as possible.
#[derive(Debug)]
struct Model {
    cfg: RoomConfig,
    rooms: Vec<ModelRoom>,
}

impl Model {
    fn by_handle(&mut self, h: RoomHandle) -> Option<&mut ModelRoom> {
        self.rooms.iter_mut().find(|r| r.handle == h)
    }

    fn role_of(&self, h: RoomHandle, conn: ConnId) -> Option<Role> {
        let r = self.rooms.iter().find(|r| r.handle == h)?;
        r.members.iter().find(|m| m.0 == conn).map(|m| m.2)
    }

    fn owner_check(&self, h: RoomHandle, by: ConnId) -> Result<(), RoomError> {
        match self.role_of(h, by) {
            None => Err(RoomError::NotMember),
            Some(r) if r.may_moderate() => Ok(()),
            Some(_) => Err(RoomError::Forbidden),
        }
    }

    fn leave(&mut self, h: RoomHandle, conn: ConnId, now: u64) -> Result<u16, RoomError> {
        let r = self.by_handle(h).ok_or(RoomError::NotMember)?;
        let i = r
            .members
            .iter()
            .position(|m| m.0 == conn)
            .ok_or(RoomError::NotMember)?;
        let m = r.members.remove(i);
        if r.members.is_empty() {
            r.empty_since = Some(now);
        }
        Ok(m.1)
    }
}

/// What one input did, for the property tests' statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Operations run.
    pub ops: usize,
    /// Operations the registry accepted.
    pub accepted: usize,
    /// Rooms created.
    pub created: usize,
    /// Rooms expired.
    pub expired: usize,
}

/// The connection a byte's low nibble names.
fn conn(b: u8) -> ConnId {
    ConnId::new(u32::from(b & 0x0f) % CONNS)
}

fn member_of(c: ConnId) -> u16 {
    c.index() as u16 + 1
}

fn user_of(c: ConnId) -> &'static str {
    USERS[c.index() % USERS.len()]
}

fn handle(cfg: &RoomConfig, b: u8) -> RoomHandle {
    // 0 (no room) to one past the last: the registry must take any handle.
    RoomHandle::from_wire(u16::from(b) % (cfg.max_rooms as u16 + 2))
}

fn same(m: &Member, e: &(ConnId, u16, Role, &str)) -> bool {
    (m.conn, m.member, m.role, m.user.as_str()) == (e.0, e.1, e.2, e.3)
}

/// Runs one input; panics if the registry and the model disagree or an
/// invariant above does not hold.
///
/// An operation is three bytes `a b c`; `a % 9` chooses it. A connection is
/// named by a byte's low nibble (modulo [`CONNS`]), a role by its high one
/// (modulo 3: owner, member, viewer), a room by a handle (`b` modulo
/// `max_rooms + 2`, so that 0 and unknown handles come too):
///
/// - 0, 1: join room `NAMES[b & 15]` as role `b >> 4`, connection `c`,
///   creating it if `c & 0x80`;
/// - 2: connection `c` leaves room `b`; 3: connection `b` leaves all;
/// - 4: connection `c` kicks connection `b >> 4`'s member from room `b`;
/// - 5: the same, setting its role to `c >> 4`;
/// - 6: connection `c` closes room `b`; 7: expire;
/// - 8: the clock moves `b` × 10 ms if `c` is odd, else `b` µs.
pub fn run(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let Some((&first, ops)) = data.split_first() else {
        return out;
    };
    let cfg = config_of(first);
    let mut reg = RoomRegistry::new(cfg);
    let mut model = Model {
        cfg,
        rooms: Vec::new(),
    };
    let mut now: u64 = 1_000_000;
    for op in ops.chunks_exact(3).take(MAX_OPS) {
        let (a, b, c) = (op[0], op[1], op[2]);
        out.ops += 1;
        let ok = match a % 9 {
            // join; 1 of 9 with a conn that is probably a member already
            0 | 1 => {
                let name = NAMES[usize::from(b & 0x0f) % NAMES.len()];
                let cn = conn(c);
                let role = ROLES[usize::from(b >> 4) % 3];
                let may_create = c & 0x80 != 0;
                let got = reg.join(name, cn, member_of(cn), user_of(cn), role, may_create);
                let want = model_join(&mut model, name, cn, role, may_create, got);
                assert_eq!(got.map(|j| (j.created, j.rejoined)), want, "join {name}");
                if let Ok(j) = got {
                    out.created += usize::from(j.created);
                }
                got.is_ok()
            }
            2 => {
                let (h, cn) = (handle(&cfg, b), conn(c));
                let got = reg.leave(h, cn, now).map(|m| m.member);
                assert_eq!(got, model.leave(h, cn, now), "leave {h} by {cn}");
                got.is_ok()
            }
            3 => {
                let cn = conn(b);
                let mut got = Vec::new();
                reg.leave_all(cn, now, |h, m| got.push((h, m.member)));
                let mut want = Vec::new();
                for r in model.rooms.iter_mut() {
                    if r.creator_conn == Some(cn) {
                        r.creator_conn = None;
                    }
                }
                let mut handles: Vec<RoomHandle> = model.rooms.iter().map(|r| r.handle).collect();
                handles.sort();
                for h in handles {
                    if let Ok(m) = model.leave(h, cn, now) {
                        want.push((h, m));
                    }
                }
                assert_eq!(got, want, "leave_all {cn}");
                true
            }
            4 => {
                let (h, by) = (handle(&cfg, b), conn(c));
                let target = member_of(conn(b >> 4));
                let got = reg.kick(h, by, target, now).map(|m| m.member);
                let want = model.owner_check(h, by).and_then(|()| {
                    let r = model.by_handle(h).ok_or(RoomError::NotMember)?;
                    let cn = r
                        .members
                        .iter()
                        .find(|m| m.1 == target)
                        .map(|m| m.0)
                        .ok_or(RoomError::NoSuchMember)?;
                    model.leave(h, cn, now)
                });
                assert_eq!(got, want, "kick {target} from {h} by {by}");
                got.is_ok()
            }
            5 => {
                let (h, by) = (handle(&cfg, b), conn(c));
                let target = member_of(conn(b >> 4));
                let role = ROLES[usize::from(c >> 4) % 3];
                let got = reg.set_role(h, by, target, role);
                let want = model.owner_check(h, by).and_then(|()| {
                    let r = model.by_handle(h).ok_or(RoomError::NotMember)?;
                    let m = r
                        .members
                        .iter_mut()
                        .find(|m| m.1 == target)
                        .ok_or(RoomError::NoSuchMember)?;
                    m.2 = role;
                    Ok(())
                });
                assert_eq!(got, want, "set_role {target} in {h} by {by}");
                got.is_ok()
            }
            6 => {
                let (h, by) = (handle(&cfg, b), conn(c));
                let mut got = Vec::new();
                let result = reg.close(h, by, |m| got.push(m.member));
                let want = model.owner_check(h, by).map(|()| {
                    let i = model.rooms.iter().position(|r| r.handle == h).unwrap();
                    let r = model.rooms.remove(i);
                    r.members.iter().map(|m| m.1).collect::<Vec<_>>()
                });
                assert_eq!(result.map(|()| got), want, "close {h} by {by}");
                result.is_ok()
            }
            7 => {
                let removed = reg.expire(now);
                let before = model.rooms.len();
                let (shared, unshared) = (cfg.grace_us, cfg.unshared_grace_us);
                model.rooms.retain(|r| {
                    let grace = if r.shared { shared } else { unshared };
                    r.empty_since.is_none_or(|s| now - s < grace)
                });
                assert_eq!(removed, before - model.rooms.len(), "expire at {now}");
                out.expired += removed;
                true
            }
            // the clock: 0 to 2.55 s, or 0 to 255 µs
            _ => {
                now += if c & 1 == 1 {
                    u64::from(b) * 10_000
                } else {
                    u64::from(b)
                };
                true
            }
        };
        out.accepted += usize::from(ok);
        check(&reg, &model);
    }
    out
}

/// The model's join, given the registry's answer (the registry picks the new
/// room's handle; the model checks it is free and in range).
fn model_join(
    model: &mut Model,
    name: &'static str,
    cn: ConnId,
    role: Role,
    may_create: bool,
    got: Result<poselink::room::Joined, RoomError>,
) -> Result<(bool, bool), RoomError> {
    if validate_name(name, "room name").is_err() {
        return Err(RoomError::BadName);
    }
    let user = user_of(cn);
    let created = match model.rooms.iter().position(|r| r.name == name) {
        Some(i) => {
            if let Ok(j) = got {
                assert_eq!(j.handle, model.rooms[i].handle, "{name} changed handle");
            }
            false
        }
        None if !may_create => return Err(RoomError::NoSuchRoom),
        None if model.rooms.len() >= model.cfg.max_rooms => return Err(RoomError::HubFull),
        None => {
            let Ok(j) = got else {
                panic!("creating {name} refused: {got:?}");
            };
            let h = j.handle;
            assert!(
                (1..=model.cfg.max_rooms).contains(&h.index()),
                "handle {h} out of range"
            );
            assert!(
                model.rooms.iter().all(|r| r.handle != h),
                "handle {h} given twice"
            );
            model.rooms.push(ModelRoom {
                handle: h,
                name,
                members: Vec::new(),
                empty_since: None,
                creator: user,
                creator_conn: Some(cn),
                shared: false,
            });
            true
        }
    };
    let max = model.cfg.max_members;
    let r = model.rooms.iter_mut().find(|r| r.name == name).unwrap();
    if let Some(m) = r.members.iter_mut().find(|m| m.0 == cn) {
        m.2 = role;
        return Ok((created, true));
    }
    if r.members.len() >= max {
        return Err(RoomError::RoomFull);
    }
    if r.creator != user {
        r.shared = true;
    }
    r.members.push((cn, member_of(cn), role, user));
    r.empty_since = None;
    Ok((created, false))
}

/// The registry agrees with the model, and its invariants hold.
fn check(reg: &RoomRegistry, model: &Model) {
    let cfg = reg.config();
    let handles: Vec<RoomHandle> = reg.handles().collect();
    assert_eq!(handles.len(), reg.room_count(), "room_count");
    assert!(
        reg.room_count() <= cfg.max_rooms,
        "more rooms than max_rooms"
    );
    assert_eq!(reg.room_count(), model.rooms.len(), "room count vs model");
    for h in (0..=cfg.max_rooms as u16 + 1).map(RoomHandle::from_wire) {
        let members = reg.members(h);
        assert!(members.len() <= cfg.max_members, "{h}: over max_members");
        for (i, m) in members.iter().enumerate() {
            assert!(
                members[..i].iter().all(|o| o.conn != m.conn),
                "{h}: {} listed twice",
                m.conn
            );
            assert_eq!(reg.role_of(h, m.conn), Some(m.role));
        }
        match model.rooms.iter().find(|r| r.handle == h) {
            Some(r) => {
                assert!(handles.contains(&h), "{h} not listed");
                assert_eq!(reg.name(h), Some(r.name), "{h}'s name");
                assert_eq!(reg.find(r.name), Some(h), "find({})", r.name);
                assert_eq!(members.len(), r.members.len(), "{h}'s members");
                assert!(
                    members.iter().zip(&r.members).all(|(m, e)| same(m, e)),
                    "{h}'s members: {members:?} vs {:?}",
                    r.members
                );
                assert_eq!(reg.is_shared(h), r.shared, "{h} shared");
                // An empty room always has its grace period running.
                assert_eq!(r.members.is_empty(), r.empty_since.is_some());
            }
            None => {
                assert!(!handles.contains(&h), "{h} listed, not in the model");
                assert_eq!(reg.name(h), None);
                assert!(members.is_empty(), "{h} has members but no room");
                assert!(!reg.is_shared(h));
            }
        }
    }
    for name in NAMES {
        let want = model
            .rooms
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.handle);
        assert_eq!(reg.find(name), want, "find({name})");
    }
    for user in USERS {
        let want = model.rooms.iter().filter(|r| r.creator == user).count();
        assert_eq!(reg.created_by_user(user), want, "created_by_user({user})");
    }
    for c in (0..CONNS).map(ConnId::new) {
        let want = model
            .rooms
            .iter()
            .filter(|r| r.creator_conn == Some(c))
            .count();
        assert_eq!(reg.created_by_conn(c), want, "created_by_conn({c})");
    }
}
