//! A joined room from C: its member list now, copied into an array the caller
//! provides ([`poselink_room_members`]), and the owner's controls — kick a
//! member, change a member's role, close the room. Each control is checked
//! against the engine's session (connected? room joined?) and written to the
//! hub at once; the hub's verdict arrives as events (`MEMBER_LEFT` with reason
//! `KICKED`, `ROLE_CHANGED`, `ROOM_LEFT` with reason `ROOM_CLOSED`, or an
//! `ERROR` such as `forbidden` when we are not the room's owner).

use std::ffi::c_char;

use poselink::engine::RoomId;

use crate::config::read_str;
use crate::event::PoselinkRole;
use crate::status::{Failure, guard};
use crate::{PoselinkEngine, PoselinkStatus, control_failure, engine_ref};

/// Bytes of `PoselinkMember.user`, the terminating NUL included.
pub const POSELINK_USER_CAPACITY: usize = 65;

/// Longest reason (bytes) a kick or a close carries; longer ones are cut.
const MAX_REASON_LEN: usize = poselink::proto::MAX_REASON_LEN;

/// One member of a room.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoselinkMember {
    /// The hub-assigned member id (what `poselink_kick` and
    /// `poselink_set_role` take, and events carry in `member`).
    pub member: u16,
    /// Zero.
    pub reserved: u16,
    /// The member's role.
    pub role: PoselinkRole,
    /// The member's user id (from its token), NUL-terminated UTF-8, cut at a
    /// character boundary to fit.
    pub user: [c_char; POSELINK_USER_CAPACITY],
}

impl PoselinkMember {
    fn new(m: &poselink::engine::MemberSummary) -> PoselinkMember {
        let mut out = PoselinkMember {
            member: m.member,
            reserved: 0,
            role: PoselinkRole::from_role(m.role),
            user: [0; POSELINK_USER_CAPACITY],
        };
        let s = &m.user;
        let mut end = s.len().min(POSELINK_USER_CAPACITY - 1);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        for (dst, b) in out.user.iter_mut().zip(&s.as_bytes()[..end]) {
            *dst = *b as c_char;
        }
        out
    }
}

/// Copies the members of joined `room` now (us included, in the order they
/// joined, as the engine has followed them since the hub's snapshot) into
/// `out`, at most `capacity` of them, and sets `*count` to how many the room
/// has. `out` may be NULL when `capacity` is 0 (to ask for the count).
///
/// Returns `OK`; `BUFFER_TOO_SMALL` when the room has more than `capacity`
/// members (the first `capacity` are written; `*count` says how many to make
/// room for); `NOT_JOINED`, `NOT_CONNECTED`, `SHUT_DOWN` or `NULL_POINTER`.
/// Asks the engine's loop and waits for it (well under a millisecond unless
/// the loop is busy): not for a real-time callback.
///
/// # Safety
/// `engine` is NULL or a live engine; `out` is NULL or writable for
/// `capacity` members; `count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_room_members(
    engine: *const PoselinkEngine,
    room: u16,
    out: *mut PoselinkMember,
    capacity: usize,
    count: *mut usize,
) -> PoselinkStatus {
    guard("poselink_room_members", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        if count.is_null() {
            return Err(Failure::null("count"));
        }
        if out.is_null() && capacity > 0 {
            return Err(Failure::null("out"));
        }
        let list = engine
            .handle
            .members(RoomId(room))
            .map_err(|e| control_failure(e, "cannot list the room's members"))?;
        for (i, m) in list.iter().take(capacity).enumerate() {
            // SAFETY: i < capacity, and the caller promises `capacity` writable.
            unsafe { out.add(i).write(PoselinkMember::new(m)) };
        }
        // SAFETY: checked non-NULL; the caller promises it writable.
        unsafe { count.write(list.len()) };
        if list.len() > capacity {
            return Err(Failure::new(
                PoselinkStatus::BufferTooSmall,
                format!(
                    "the room has {} members and out holds {capacity}: pass a larger array",
                    list.len()
                ),
            ));
        }
        Ok(PoselinkStatus::Ok)
    })
}

/// Owner control: asks the hub to remove `member` from `room`. `reason` (NULL
/// for none; at most 256 bytes are sent) is shown to that member's user. `OK`
/// means the request is on its way; the hub's verdict comes as a `MEMBER_LEFT`
/// event with `leave_reason` `KICKED`, or an `ERROR` (`forbidden` when we are
/// not the room's owner, `not_member` for an unknown member).
///
/// Fails with `NULL_POINTER`, `NOT_JOINED`, `NOT_CONNECTED`, `SHUT_DOWN`,
/// `INVALID_ARGUMENT` (reason not UTF-8) or `BAD_LENGTH` (reason over 1024
/// bytes).
///
/// # Safety
/// `engine` is NULL or a live engine; `reason` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_kick(
    engine: *const PoselinkEngine,
    room: u16,
    member: u16,
    reason: *const c_char,
) -> PoselinkStatus {
    guard("poselink_kick", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's promise.
        let reason = unsafe { read_str(reason, 1024, "the reason") }?.unwrap_or("");
        engine
            .handle
            .kick(RoomId(room), member, cut(reason))
            .map_err(|e| control_failure(e, "cannot kick"))?;
        Ok(PoselinkStatus::Ok)
    })
}

/// Owner control: gives `member` of `room` the role `role` (one of
/// `POSELINK_ROLE_*`; no more than that member's token grants). Every member,
/// us included, hears of it as a `ROLE_CHANGED` event; a refusal comes as an
/// `ERROR` event.
///
/// Fails with `NULL_POINTER`, `INVALID_ARGUMENT` (not a role), `NOT_JOINED`,
/// `NOT_CONNECTED` or `SHUT_DOWN`.
///
/// # Safety
/// `engine` is NULL or a live engine.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_set_role(
    engine: *const PoselinkEngine,
    room: u16,
    member: u16,
    role: u32,
) -> PoselinkStatus {
    guard("poselink_set_role", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        let role = PoselinkRole::from_u32(role).ok_or_else(|| {
            Failure::new(
                PoselinkStatus::InvalidArgument,
                format!("role {role} is not a role: use POSELINK_ROLE_OWNER (0), _MEMBER (1) or _VIEWER (2)"),
            )
        })?;
        engine
            .handle
            .set_role(RoomId(room), member, role)
            .map_err(|e| control_failure(e, "cannot set the role"))?;
        Ok(PoselinkStatus::Ok)
    })
}

/// Owner control: closes `room` for every member. We get a `ROOM_LEFT` event
/// with `leave_reason` `ROOM_CLOSED` (the room is not rejoined), or an `ERROR`
/// event if we may not. `reason` as for `poselink_kick`.
///
/// Fails with `NULL_POINTER`, `NOT_JOINED`, `NOT_CONNECTED`, `SHUT_DOWN`,
/// `INVALID_ARGUMENT` or `BAD_LENGTH`.
///
/// # Safety
/// `engine` is NULL or a live engine; `reason` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_close_room(
    engine: *const PoselinkEngine,
    room: u16,
    reason: *const c_char,
) -> PoselinkStatus {
    guard("poselink_close_room", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's promise.
        let reason = unsafe { read_str(reason, 1024, "the reason") }?.unwrap_or("");
        engine
            .handle
            .close_room(RoomId(room), cut(reason))
            .map_err(|e| control_failure(e, "cannot close the room"))?;
        Ok(PoselinkStatus::Ok)
    })
}

/// `s` cut to what a reason may carry, at a character boundary.
fn cut(s: &str) -> &str {
    let mut end = s.len().min(MAX_REASON_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
