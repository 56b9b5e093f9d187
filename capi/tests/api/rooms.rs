//! Room management through the C API: an owner lists members, changes roles,
//! kicks and closes; a non-owner is refused by the hub.

use std::ffi::CStr;
use std::ptr;

use poselink::hub::HubConfig;
use poselink_capi::*;

use crate::common::*;

/// The members `e` lists for `room`, as (user, role), sorted by user.
fn members(e: &Engine, room: u16) -> Vec<(String, PoselinkRole, u16)> {
    let mut count = 0usize;
    let s = unsafe { poselink_room_members(e.0, room, ptr::null_mut(), 0, &mut count) };
    assert!(
        matches!(s, PoselinkStatus::BufferTooSmall | PoselinkStatus::Ok),
        "{s:?} {}",
        last_error()
    );
    let mut out = vec![
        PoselinkMember {
            member: 0,
            reserved: 0,
            role: PoselinkRole::Viewer,
            user: [0; POSELINK_USER_CAPACITY],
        };
        count
    ];
    let mut n = 0usize;
    let s = unsafe { poselink_room_members(e.0, room, out.as_mut_ptr(), out.len(), &mut n) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    assert_eq!(n, count);
    let mut v: Vec<_> = out
        .iter()
        .map(|m| {
            let user = unsafe { CStr::from_ptr(m.user.as_ptr()) };
            (user.to_str().unwrap().to_string(), m.role, m.member)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn named(hub: &CStr, name: &CStr) -> PoselinkConfig {
    let mut cfg = config(hub);
    cfg.client = name.as_ptr();
    cfg
}

#[test]
fn an_owner_lists_changes_kicks_and_closes() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    let boss = Engine::new(&named(&url, c"boss"));
    let cam = Engine::new(&named(&url, c"cam"));
    let r_boss = boss.join(c"capi-owner", PoselinkRole::Owner);
    let r_cam = cam.join(c"capi-owner", PoselinkRole::Member);
    // The owner hears of cam's join; then both lists hold both.
    collect(&boss, |ev| count(ev, PoselinkEventKind::MemberJoined) == 1);
    let list = members(&boss, r_boss);
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(members(&cam, r_cam).len(), 2);
    let roles: Vec<_> = list.iter().map(|m| m.1).collect();
    assert!(roles.contains(&PoselinkRole::Owner) && roles.contains(&PoselinkRole::Member));
    let cam_id = list.iter().find(|m| m.1 == PoselinkRole::Member).unwrap().2;

    // Too small an array: what fits is written, the count says how many.
    let mut one = [PoselinkMember {
        member: 0,
        reserved: 0,
        role: PoselinkRole::Viewer,
        user: [0; POSELINK_USER_CAPACITY],
    }];
    let mut n = 0usize;
    let s = unsafe { poselink_room_members(boss.0, r_boss, one.as_mut_ptr(), 1, &mut n) };
    assert_eq!(s, PoselinkStatus::BufferTooSmall);
    assert_eq!(n, 2);
    assert!(last_error().contains("2 members"), "{}", last_error());

    // A role change, heard by both, and the lists follow.
    let s = unsafe { poselink_set_role(boss.0, r_boss, cam_id, PoselinkRole::Viewer as u32) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    let ev = collect(&cam, |ev| count(ev, PoselinkEventKind::RoleChanged) == 1);
    let rc = ev
        .iter()
        .find(|e| e.kind == PoselinkEventKind::RoleChanged)
        .expect("ROLE_CHANGED");
    assert_eq!(
        (rc.member, rc.role, rc.room),
        (cam_id, PoselinkRole::Viewer, r_cam)
    );
    collect(&boss, |ev| count(ev, PoselinkEventKind::RoleChanged) == 1);
    assert!(
        members(&boss, r_boss)
            .iter()
            .any(|m| m.2 == cam_id && m.1 == PoselinkRole::Viewer)
    );
    assert_eq!(
        unsafe { poselink_set_role(boss.0, r_boss, cam_id, 7) },
        PoselinkStatus::InvalidArgument
    );

    // A kick: cam is out and says why; the owner hears it.
    let s = unsafe { poselink_kick(boss.0, r_boss, cam_id, c"enough".as_ptr()) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    let ev = collect(&cam, |ev| count(ev, PoselinkEventKind::RoomLeft) == 1);
    let left = ev
        .iter()
        .find(|e| e.kind == PoselinkEventKind::RoomLeft)
        .unwrap();
    assert_eq!(left.leave_reason, PoselinkLeaveReason::Kicked);
    let ev = collect(&boss, |ev| count(ev, PoselinkEventKind::MemberLeft) == 1);
    let gone = ev
        .iter()
        .find(|e| e.kind == PoselinkEventKind::MemberLeft)
        .unwrap();
    assert_eq!(
        (gone.member, gone.leave_reason),
        (cam_id, PoselinkLeaveReason::Kicked)
    );
    assert_eq!(members(&boss, r_boss).len(), 1);
    // The kicked engine holds the room no more.
    let mut n = 0usize;
    let s = unsafe { poselink_room_members(cam.0, r_cam, ptr::null_mut(), 0, &mut n) };
    assert_eq!(s, PoselinkStatus::NotJoined, "{}", last_error());
    let s = unsafe { poselink_kick(cam.0, r_cam, 1, ptr::null()) };
    assert_eq!(s, PoselinkStatus::NotJoined);
    assert!(last_error().contains("not joined"), "{}", last_error());

    // Closing the room.
    let s = unsafe { poselink_close_room(boss.0, r_boss, c"done".as_ptr()) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    let ev = collect(&boss, |ev| count(ev, PoselinkEventKind::RoomLeft) == 1);
    let closed = ev
        .iter()
        .find(|e| e.kind == PoselinkEventKind::RoomLeft)
        .unwrap();
    assert_eq!(closed.leave_reason, PoselinkLeaveReason::RoomClosed);
}

#[test]
fn a_non_owner_is_refused_by_the_hub() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    let boss = Engine::new(&named(&url, c"boss"));
    let cam = Engine::new(&named(&url, c"cam"));
    let r_boss = boss.join(c"capi-not-owner", PoselinkRole::Owner);
    let r_cam = cam.join(c"capi-not-owner", PoselinkRole::Member);
    let boss_id = members(&cam, r_cam)
        .iter()
        .find(|m| m.1 == PoselinkRole::Owner)
        .unwrap()
        .2;
    let s = unsafe { poselink_kick(cam.0, r_cam, boss_id, ptr::null()) };
    assert_eq!(s, PoselinkStatus::Ok, "sent; the hub decides");
    let ev = collect(&cam, |ev| count(ev, PoselinkEventKind::Error) == 1);
    let err = ev
        .iter()
        .find(|e| e.kind == PoselinkEventKind::Error)
        .expect("ERROR");
    let why = unsafe { CStr::from_ptr(err.text.as_ptr()) }
        .to_str()
        .unwrap();
    assert!(err.error_code != 0 && !why.is_empty(), "{why}");
    assert_eq!(members(&boss, r_boss).len(), 2, "nobody was kicked");
}
