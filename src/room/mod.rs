//! The room registry (the seed's RoomManager), sans-IO: which rooms exist, who is in
//! each with which role, what each role may do, and when an empty room is cleaned
//! up (soon when only its creator's user was ever in it, after the grace period
//! when others were). It remembers who created each room, so that the hub's core
//! can hold users and connections to quotas of rooms created. The core calls it
//! with connection ids, user ids and the time;
//! it answers with outcomes and typed refusals and never touches a socket or a
//! clock. Every table is sized by [`RoomConfig`] when the registry is made and only
//! reused after that; joins and leaves are control-path operations (a scan over at
//! most `max_rooms` names), never per media message — the relay asks
//! [`RoomRegistry::members`] and [`RoomRegistry::role_of`], which index directly.

use core::fmt;

use heapless::String;

use crate::proto::{MAX_NAME_LEN, Role, validate_name};

/// A connection as the hub knows it: the index of its slot in the hub core's
/// connection table (smoltcp's `SocketHandle`). The registry only stores and
/// compares it; the hub core hands them out.
///
/// ```
/// use poselink::room::ConnId;
/// assert_eq!(ConnId::new(7).index(), 7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u32);

impl ConnId {
    /// The connection in slot `index`.
    pub const fn new(index: u32) -> ConnId {
        ConnId(index)
    }

    /// Its slot's index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A room, as the registry numbers it: 1 to `max_rooms`; 0 is "no room". On the
/// wire it is the envelope's 16-bit `room` field
/// ([`from_wire`](Self::from_wire) / [`to_wire`](Self::to_wire) convert at the
/// hub core's edge). A handle that names no room is harmless: the registry
/// answers "no such room" (or nothing) for it.
///
/// ```
/// use poselink::room::RoomHandle;
/// let h = RoomHandle::from_wire(3);
/// assert_eq!(h.to_wire(), 3);
/// assert!(RoomHandle::NONE.is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomHandle(u16);

impl RoomHandle {
    /// No room: the `room` field of messages that are not about one.
    pub const NONE: RoomHandle = RoomHandle(0);

    /// The handle a message's `room` field names.
    pub const fn from_wire(room: u16) -> RoomHandle {
        RoomHandle(room)
    }

    /// The value of a message's `room` field for this room.
    pub const fn to_wire(self) -> u16 {
        self.0
    }

    /// Whether this is [`NONE`](Self::NONE).
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The index of a per-room table with a row for every handle (row 0 unused).
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for RoomHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A room or user name held in place.
pub type Name = String<MAX_NAME_LEN>;

/// Limits of a registry, fixed when it is made.
///
/// ```
/// use poselink::room::RoomConfig;
/// let cfg = RoomConfig { max_rooms: 16, ..RoomConfig::default() };
/// assert_eq!(cfg.max_members, 64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomConfig {
    /// Rooms that may exist at once (empty rooms in their grace period count).
    pub max_rooms: usize,
    /// Members a room may hold.
    pub max_members: usize,
    /// How long an empty room is kept, in microseconds, so that a rebooting board
    /// gets its room back (default 30 s).
    pub grace_us: u64,
    /// How long an empty room is kept that no user but its creator ever joined,
    /// in microseconds (default 5 s): rooms made and left by one client alone
    /// do not hold the table for the whole grace period.
    pub unshared_grace_us: u64,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            max_rooms: 1024,
            max_members: 64,
            grace_us: 30_000_000,
            unshared_grace_us: 5_000_000,
        }
    }
}

/// One member of a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's connection.
    pub conn: ConnId,
    /// The member id the hub gave the connection (the `sender` of its messages).
    pub member: u16,
    /// The member's role in this room.
    pub role: Role,
    /// The user id from the member's token.
    pub user: Name,
}

/// Why the registry refused an operation. Each maps to a protocol error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoomError {
    /// The room name is not valid.
    BadName,
    /// The room does not exist and the caller may not create it.
    NoSuchRoom,
    /// The room has `max_members` members.
    RoomFull,
    /// The registry holds `max_rooms` rooms.
    HubFull,
    /// The connection is not a member of the room.
    NotMember,
    /// The named member is not in the room.
    NoSuchMember,
    /// The caller's role may not do this (only owners kick, change roles, close).
    Forbidden,
}

impl fmt::Display for RoomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoomError::BadName => {
                "invalid room name: use 1 to 64 bytes of letters, digits and `-_.:@/`"
            }
            RoomError::NoSuchRoom => {
                "no such room, and the token does not allow creating it; join an existing room or ask for a token that may create it"
            }
            RoomError::RoomFull => "the room is full; try again later or use another room",
            RoomError::HubFull => {
                "the hub holds its maximum number of rooms; try again later or raise max_rooms"
            }
            RoomError::NotMember => "not a member of that room; join it first",
            RoomError::NoSuchMember => "no such member in that room",
            RoomError::Forbidden => "only the room's owner may do that",
        })
    }
}

impl core::error::Error for RoomError {}

/// What a successful join did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Joined {
    /// The room's handle (the `room` field of its messages).
    pub handle: RoomHandle,
    /// Whether the room was created by this join.
    pub created: bool,
    /// Whether the connection was already a member (its role was updated).
    pub rejoined: bool,
}

#[derive(Debug)]
struct Room {
    in_use: bool,
    name: Name,
    members: Vec<Member>,
    /// When the last member left, while the room is empty.
    empty_since: Option<u64>,
    /// The user who created the room.
    creator: Name,
    /// The connection that created it, while that connection is open.
    creator_conn: Option<ConnId>,
    /// A user other than the creator has joined it.
    shared: bool,
}

/// Rooms, members and roles.
///
/// ```
/// use poselink::proto::Role;
/// use poselink::room::{ConnId, RoomConfig, RoomRegistry};
/// let mut rooms = RoomRegistry::new(RoomConfig::default());
/// let j = rooms.join("gym", ConnId::new(7), 1, "ana", Role::Owner, true).unwrap();
/// assert!(j.created);
/// rooms.join("gym", ConnId::new(8), 2, "pi-4", Role::Member, false).unwrap();
/// assert_eq!(rooms.members(j.handle).len(), 2);
/// assert_eq!(rooms.role_of(j.handle, ConnId::new(8)), Some(Role::Member));
/// ```
#[derive(Debug)]
pub struct RoomRegistry {
    config: RoomConfig,
    rooms: Vec<Room>,
    live: usize,
}

impl RoomRegistry {
    /// A registry with every table allocated for `config`'s limits.
    pub fn new(config: RoomConfig) -> Self {
        assert!(
            config.max_rooms < u16::MAX as usize,
            "room handles are 16-bit: max_rooms must be below 65535"
        );
        let rooms = (0..config.max_rooms)
            .map(|_| Room {
                in_use: false,
                name: Name::new(),
                members: Vec::with_capacity(config.max_members),
                empty_since: None,
                creator: Name::new(),
                creator_conn: None,
                shared: false,
            })
            .collect();
        RoomRegistry {
            config,
            rooms,
            live: 0,
        }
    }

    /// The limits.
    pub fn config(&self) -> &RoomConfig {
        &self.config
    }

    /// Rooms that exist (empty ones in their grace period included).
    pub fn room_count(&self) -> usize {
        self.live
    }

    fn room(&self, handle: RoomHandle) -> Option<&Room> {
        let r = self.rooms.get(handle.index().checked_sub(1)?)?;
        r.in_use.then_some(r)
    }

    fn room_mut(&mut self, handle: RoomHandle) -> Option<&mut Room> {
        let r = self.rooms.get_mut(handle.index().checked_sub(1)?)?;
        r.in_use.then_some(r)
    }

    /// The handle of the room called `name`, if it exists.
    pub fn find(&self, name: &str) -> Option<RoomHandle> {
        self.rooms
            .iter()
            .position(|r| r.in_use && r.name.as_str() == name)
            .map(|i| RoomHandle(i as u16 + 1))
    }

    /// Every room that exists, by handle (empty ones in their grace period
    /// included).
    pub fn handles(&self) -> impl Iterator<Item = RoomHandle> + '_ {
        self.rooms
            .iter()
            .enumerate()
            .filter(|(_, r)| r.in_use)
            .map(|(i, _)| RoomHandle(i as u16 + 1))
    }

    /// The room's name.
    pub fn name(&self, handle: RoomHandle) -> Option<&str> {
        self.room(handle).map(|r| r.name.as_str())
    }

    /// The room's members (empty for an unknown handle).
    pub fn members(&self, handle: RoomHandle) -> &[Member] {
        self.room(handle).map_or(&[], |r| &r.members[..])
    }

    /// The role of connection `conn` in the room, if it is a member.
    pub fn role_of(&self, handle: RoomHandle, conn: ConnId) -> Option<Role> {
        self.members(handle)
            .iter()
            .find(|m| m.conn == conn)
            .map(|m| m.role)
    }

    /// Adds connection `conn` (member id `member`, user `user`) to room `name` with
    /// `role` — a role the caller has already checked the token grants. The room
    /// is created if it does not exist and `may_create`. Joining a room one is in
    /// again updates the role.
    pub fn join(
        &mut self,
        name: &str,
        conn: ConnId,
        member: u16,
        user: &str,
        role: Role,
        may_create: bool,
    ) -> Result<Joined, RoomError> {
        validate_name(name, "room name").map_err(|_| RoomError::BadName)?;
        let user = Name::try_from(user).map_err(|_| RoomError::BadName)?;
        let (handle, created) = match self.find(name) {
            Some(h) => (h, false),
            None if !may_create => return Err(RoomError::NoSuchRoom),
            None => {
                let slot = self
                    .rooms
                    .iter()
                    .position(|r| !r.in_use)
                    .ok_or(RoomError::HubFull)?;
                let r = &mut self.rooms[slot];
                r.in_use = true;
                r.name = Name::try_from(name).map_err(|_| RoomError::BadName)?;
                r.members.clear();
                r.empty_since = None;
                r.creator.clone_from(&user);
                r.creator_conn = Some(conn);
                r.shared = false;
                self.live += 1;
                (RoomHandle(slot as u16 + 1), true)
            }
        };
        let max = self.config.max_members;
        let r = self.room_mut(handle).ok_or(RoomError::NoSuchRoom)?;
        if let Some(m) = r.members.iter_mut().find(|m| m.conn == conn) {
            m.role = role;
            return Ok(Joined {
                handle,
                created,
                rejoined: true,
            });
        }
        if r.members.len() >= max {
            return Err(RoomError::RoomFull);
        }
        if r.creator != user {
            r.shared = true;
        }
        r.members.push(Member {
            conn,
            member,
            role,
            user,
        });
        r.empty_since = None;
        Ok(Joined {
            handle,
            created,
            rejoined: false,
        })
    }

    /// Removes connection `conn` from the room and returns its membership. An
    /// emptied room starts its grace period at `now_us`.
    pub fn leave(
        &mut self,
        handle: RoomHandle,
        conn: ConnId,
        now_us: u64,
    ) -> Result<Member, RoomError> {
        let r = self.room_mut(handle).ok_or(RoomError::NotMember)?;
        let i = r
            .members
            .iter()
            .position(|m| m.conn == conn)
            .ok_or(RoomError::NotMember)?;
        // Keep the order of the others: snapshots list members by join order.
        let m = r.members.remove(i);
        if r.members.is_empty() {
            r.empty_since = Some(now_us);
        }
        Ok(m)
    }

    /// Removes connection `conn` from every room (it disconnected), calling
    /// `left(handle, member)` for each membership it had.
    pub fn leave_all(
        &mut self,
        conn: ConnId,
        now_us: u64,
        mut left: impl FnMut(RoomHandle, &Member),
    ) {
        for r in self.rooms.iter_mut() {
            if r.creator_conn == Some(conn) {
                r.creator_conn = None;
            }
        }
        for handle in (1..=self.rooms.len() as u16).map(RoomHandle) {
            // `leave` changes nothing where `conn` is not a member.
            if let Ok(m) = self.leave(handle, conn, now_us) {
                left(handle, &m);
            }
        }
    }

    fn owner_check(&self, handle: RoomHandle, by: ConnId) -> Result<(), RoomError> {
        match self.role_of(handle, by) {
            None => Err(RoomError::NotMember),
            Some(r) if r.may_moderate() => Ok(()),
            Some(_) => Err(RoomError::Forbidden),
        }
    }

    /// Owner `by` gives `member` the role `role`.
    pub fn set_role(
        &mut self,
        handle: RoomHandle,
        by: ConnId,
        member: u16,
        role: Role,
    ) -> Result<(), RoomError> {
        self.owner_check(handle, by)?;
        let r = self.room_mut(handle).ok_or(RoomError::NotMember)?;
        let m = r
            .members
            .iter_mut()
            .find(|m| m.member == member)
            .ok_or(RoomError::NoSuchMember)?;
        m.role = role;
        Ok(())
    }

    /// Gives `member` the role `role` on behalf of the hub (an owner on another
    /// hub of a cluster asked, and was checked there).
    pub fn set_role_by_hub(
        &mut self,
        handle: RoomHandle,
        member: u16,
        role: Role,
    ) -> Result<(), RoomError> {
        let r = self.room_mut(handle).ok_or(RoomError::NotMember)?;
        let m = r
            .members
            .iter_mut()
            .find(|m| m.member == member)
            .ok_or(RoomError::NoSuchMember)?;
        m.role = role;
        Ok(())
    }

    /// Owner `by` removes `member` from the room; returns its membership.
    pub fn kick(
        &mut self,
        handle: RoomHandle,
        by: ConnId,
        member: u16,
        now_us: u64,
    ) -> Result<Member, RoomError> {
        self.owner_check(handle, by)?;
        let conn = self
            .members(handle)
            .iter()
            .find(|m| m.member == member)
            .map(|m| m.conn)
            .ok_or(RoomError::NoSuchMember)?;
        self.leave(handle, conn, now_us)
    }

    /// Owner `by` closes the room: `left(member)` is called for every member, then
    /// the room is gone at once (no grace period).
    pub fn close(
        &mut self,
        handle: RoomHandle,
        by: ConnId,
        mut left: impl FnMut(&Member),
    ) -> Result<(), RoomError> {
        self.owner_check(handle, by)?;
        let r = self.room_mut(handle).ok_or(RoomError::NotMember)?;
        for m in r.members.drain(..) {
            left(&m);
        }
        r.in_use = false;
        r.empty_since = None;
        r.creator_conn = None;
        self.live -= 1;
        Ok(())
    }

    /// Closes the room on behalf of the hub (an owner on another hub of a
    /// cluster closed it): every member goes, and the room at once.
    pub fn close_by_hub(&mut self, handle: RoomHandle) {
        if let Some(r) = self.room_mut(handle) {
            r.members.clear();
            r.in_use = false;
            r.empty_since = None;
            r.creator_conn = None;
            self.live -= 1;
        }
    }

    /// Rooms that exist and were created by `user` (empty ones in their grace
    /// period included).
    pub fn created_by_user(&self, user: &str) -> usize {
        self.rooms
            .iter()
            .filter(|r| r.in_use && r.creator.as_str() == user)
            .count()
    }

    /// Rooms that exist and were created by connection `conn` (while it is
    /// open: [`leave_all`](Self::leave_all) forgets it).
    pub fn created_by_conn(&self, conn: ConnId) -> usize {
        self.rooms
            .iter()
            .filter(|r| r.in_use && r.creator_conn == Some(conn))
            .count()
    }

    /// Whether a user other than the room's creator ever joined it (its grace
    /// period, once empty, is then `grace_us`, else `unshared_grace_us`).
    pub fn is_shared(&self, handle: RoomHandle) -> bool {
        self.room(handle).is_some_and(|r| r.shared)
    }

    /// Removes rooms that have been empty for their grace period (`grace_us`,
    /// or `unshared_grace_us` for a room only its creator ever joined);
    /// returns how many.
    pub fn expire(&mut self, now_us: u64) -> usize {
        let (shared_grace, unshared_grace) = (self.config.grace_us, self.config.unshared_grace_us);
        let mut removed = 0;
        for r in self.rooms.iter_mut().filter(|r| r.in_use) {
            let grace = if r.shared {
                shared_grace
            } else {
                unshared_grace
            };
            if let Some(since) = r.empty_since
                && now_us.saturating_sub(since) >= grace
            {
                r.in_use = false;
                r.empty_since = None;
                removed += 1;
            }
        }
        self.live -= removed;
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(i: u32) -> ConnId {
        ConnId::new(i)
    }

    fn small() -> RoomRegistry {
        RoomRegistry::new(RoomConfig {
            max_rooms: 2,
            max_members: 3,
            grace_us: 1_000,
            unshared_grace_us: 1_000,
        })
    }

    #[test]
    fn create_join_list_and_roles() {
        let mut r = small();
        assert_eq!(
            r.join("gym", c(1), 10, "ana", Role::Member, false),
            Err(RoomError::NoSuchRoom)
        );
        let j = r.join("gym", c(1), 10, "ana", Role::Owner, true).unwrap();
        assert!(j.created && !j.rejoined);
        let j2 = r.join("gym", c(2), 11, "bo", Role::Viewer, true).unwrap();
        assert_eq!(j2.handle, j.handle);
        assert!(!j2.created);
        let users: Vec<&str> = r
            .members(j.handle)
            .iter()
            .map(|m| m.user.as_str())
            .collect();
        assert_eq!(users, ["ana", "bo"]);
        assert_eq!(r.role_of(j.handle, c(2)), Some(Role::Viewer));
        // Joining again changes the role, not the member count.
        let again = r.join("gym", c(2), 11, "bo", Role::Member, false).unwrap();
        assert!(again.rejoined);
        assert_eq!(r.members(j.handle).len(), 2);
        assert_eq!(r.role_of(j.handle, c(2)), Some(Role::Member));
        assert_eq!(r.name(j.handle), Some("gym"));
        assert_eq!(r.find("gym"), Some(j.handle));
    }

    #[test]
    fn limits_are_refused_with_their_reason() {
        let mut r = small();
        let h = r
            .join("a", c(1), 1, "u1", Role::Owner, true)
            .unwrap()
            .handle;
        r.join("a", c(2), 2, "u2", Role::Member, false).unwrap();
        r.join("a", c(3), 3, "u3", Role::Member, false).unwrap();
        assert_eq!(
            r.join("a", c(4), 4, "u4", Role::Member, false),
            Err(RoomError::RoomFull)
        );
        r.join("b", c(4), 4, "u4", Role::Owner, true).unwrap();
        assert_eq!(
            r.join("c", c(5), 5, "u5", Role::Owner, true),
            Err(RoomError::HubFull)
        );
        assert_eq!(
            r.join("bad name", c(5), 5, "u5", Role::Owner, true),
            Err(RoomError::BadName)
        );
        assert_eq!(r.members(h).len(), 3);
        assert_eq!(r.room_count(), 2);
    }

    #[test]
    fn only_owners_moderate() {
        let mut r = small();
        let h = r
            .join("gym", c(1), 10, "ana", Role::Owner, true)
            .unwrap()
            .handle;
        r.join("gym", c(2), 11, "bo", Role::Member, false).unwrap();
        r.join("gym", c(3), 12, "cy", Role::Viewer, false).unwrap();
        assert_eq!(r.kick(h, c(2), 12, 0), Err(RoomError::Forbidden));
        assert_eq!(
            r.set_role(h, c(3), 11, Role::Owner),
            Err(RoomError::Forbidden)
        );
        assert_eq!(r.close(h, c(9), |_| ()), Err(RoomError::NotMember));
        assert_eq!(r.kick(h, c(1), 99, 0), Err(RoomError::NoSuchMember));
        r.set_role(h, c(1), 12, Role::Member).unwrap();
        assert_eq!(r.role_of(h, c(3)), Some(Role::Member));
        let kicked = r.kick(h, c(1), 11, 0).unwrap();
        assert_eq!(kicked.user.as_str(), "bo");
        let mut told = 0;
        r.close(h, c(1), |_| told += 1).unwrap();
        assert_eq!(told, 2);
        assert_eq!(r.room_count(), 0);
        assert!(r.members(h).is_empty());
    }

    #[test]
    fn empty_rooms_survive_the_grace_period_then_go() {
        let mut r = small();
        let h = r
            .join("gym", c(1), 10, "ana", Role::Owner, true)
            .unwrap()
            .handle;
        r.leave(h, c(1), 5_000).unwrap();
        assert_eq!(r.expire(5_999), 0);
        // A rebooting board comes back in time: same room, same handle.
        let back = r.join("gym", c(1), 10, "ana", Role::Owner, false).unwrap();
        assert_eq!(back.handle, h);
        r.leave(h, c(1), 6_000).unwrap();
        assert_eq!(r.expire(7_000), 1);
        assert_eq!(r.find("gym"), None);
        assert_eq!(
            r.join("gym", c(1), 10, "ana", Role::Member, false),
            Err(RoomError::NoSuchRoom)
        );
    }

    #[test]
    fn rooms_only_their_creator_joined_go_sooner_and_creators_are_counted() {
        let mut r = RoomRegistry::new(RoomConfig {
            max_rooms: 4,
            max_members: 3,
            grace_us: 30_000,
            unshared_grace_us: 2_000,
        });
        let alone = r.join("alone", c(1), 10, "ana", Role::Owner, true).unwrap();
        let shared = r
            .join("shared", c(1), 10, "ana", Role::Owner, true)
            .unwrap();
        // Another connection of the same user does not share a room; another user does.
        r.join("alone", c(2), 11, "ana", Role::Member, false)
            .unwrap();
        r.join("shared", c(3), 12, "bo", Role::Member, false)
            .unwrap();
        assert!(!r.is_shared(alone.handle) && r.is_shared(shared.handle));
        assert_eq!(r.created_by_user("ana"), 2);
        assert_eq!(r.created_by_user("bo"), 0);
        assert_eq!(r.created_by_conn(c(1)), 2);
        for conn in [c(1), c(2), c(3)] {
            r.leave_all(conn, 1_000, |_, _| {});
        }
        // The connection is gone; the user's rooms still count until they expire.
        assert_eq!(r.created_by_conn(c(1)), 0);
        assert_eq!(r.created_by_user("ana"), 2);
        assert_eq!(r.expire(2_999), 0);
        assert_eq!(r.expire(3_000), 1);
        assert_eq!(r.find("alone"), None);
        assert_eq!(r.expire(30_999), 0);
        assert_eq!(r.expire(31_000), 1);
        assert_eq!(r.created_by_user("ana"), 0);
    }

    #[test]
    fn disconnect_leaves_every_room() {
        let mut r = small();
        let a = r
            .join("a", c(1), 10, "ana", Role::Owner, true)
            .unwrap()
            .handle;
        let b = r
            .join("b", c(1), 10, "ana", Role::Member, true)
            .unwrap()
            .handle;
        r.join("b", c(2), 11, "bo", Role::Member, false).unwrap();
        let mut left = Vec::new();
        r.leave_all(c(1), 10, |h, m| left.push((h, m.member)));
        assert_eq!(left, [(a, 10), (b, 10)]);
        assert!(r.members(a).is_empty());
        assert_eq!(r.members(b).len(), 1);
        assert_eq!(r.leave(a, c(1), 10), Err(RoomError::NotMember));
        assert_eq!(r.expire(10 + 1_000), 1, "room a expires, b still has bo");
    }

    #[test]
    fn unknown_handles_are_harmless() {
        let r = small();
        assert!(r.members(RoomHandle::NONE).is_empty());
        assert!(r.members(RoomHandle::from_wire(999)).is_empty());
        assert_eq!(r.role_of(RoomHandle::NONE, c(1)), None);
        assert_eq!(r.name(RoomHandle::from_wire(1)), None);
    }

    #[test]
    fn every_refusal_has_a_sentence() {
        for e in [
            RoomError::BadName,
            RoomError::NoSuchRoom,
            RoomError::RoomFull,
            RoomError::HubFull,
            RoomError::NotMember,
            RoomError::NoSuchMember,
            RoomError::Forbidden,
        ] {
            assert!(e.to_string().len() > 20, "{e:?}");
        }
    }
}
