//! A room's owner at work, through the real hub core: the member list a join
//! returns and the engine keeps up to date, role changes (granted and refused
//! by the member's token), a kick, a non-owner's attempt, closing the room; and
//! the hub's audio acknowledgements as the app's send confirmations.

use super::*;
use crate::engine::{ControlError, OwnerAction, Priority};
use crate::proto::{ErrorCode, LeaveReason};

/// The user ids of `members`, sorted.
fn users(members: &[crate::engine::MemberSummary]) -> Vec<(String, Role)> {
    let mut v: Vec<_> = members.iter().map(|m| (m.user.clone(), m.role)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn owner(w: &mut World, e: usize, room: RoomId, action: OwnerAction) -> Result<(), ControlError> {
    let rx = w.engines[e]
        .handle
        .owner_later(room, action)
        .expect("running");
    w.answer(rx)
}

fn members(w: &mut World, e: usize, room: RoomId) -> Vec<(String, Role)> {
    let rx = w.engines[e].handle.members_later(room).expect("running");
    users(&w.answer(rx).expect("joined"))
}

/// The member id of user `user` in the list engine `e` keeps of `room`.
fn member_id(w: &mut World, e: usize, room: RoomId, user: &str) -> u16 {
    let rx = w.engines[e].handle.members_later(room).expect("running");
    let list = w.answer(rx).expect("joined");
    list.iter().find(|m| m.user == user).expect("listed").member
}

#[test]
fn an_owner_changes_roles_kicks_and_closes_and_the_lists_follow() {
    let mut w = World::new();
    let cfg = EngineConfig::default();
    let boss = w.engine("boss", "stage", Role::Owner, cfg.clone());
    let cam = w.engine("cam", "stage", Role::Member, cfg.clone());
    let fan = w.engine("fan", "stage", Role::Viewer, cfg);

    let j = w.join_with_members(boss, "stage", Role::Owner);
    assert_eq!(users(&j.members), [("boss".into(), Role::Owner)]);
    let r_boss = j.id;
    let j = w.join_with_members(cam, "stage", Role::Member);
    assert_eq!(
        users(&j.members),
        [("boss".into(), Role::Owner), ("cam".into(), Role::Member)]
    );
    let r_cam = j.id;
    let r_fan = w.join(fan, "stage", Role::Viewer);
    w.run(10);
    let all = [
        ("boss".to_string(), Role::Owner),
        ("cam".into(), Role::Member),
        ("fan".into(), Role::Viewer),
    ];
    assert_eq!(members(&mut w, boss, r_boss), all);
    assert_eq!(members(&mut w, cam, r_cam), all);

    // A granted change: cam becomes a viewer; everyone hears, every list follows.
    let cam_id = member_id(&mut w, boss, r_boss, "cam");
    let set = OwnerAction::SetRole {
        member: cam_id,
        role: Role::Viewer,
    };
    assert_eq!(owner(&mut w, boss, r_boss, set), Ok(()));
    w.run(10);
    for e in [boss, cam, fan] {
        let heard = w.engines[e].count(|e| {
            matches!(e, Event::RoleChanged { member, role: Role::Viewer, .. } if *member == cam_id)
        });
        assert_eq!(heard, 1, "{:?}", w.engines[e].events);
    }
    assert_eq!(members(&mut w, fan, r_fan)[1], ("cam".into(), Role::Viewer));

    // Refused by the token: fan is granted no more than viewer.
    let fan_id = member_id(&mut w, boss, r_boss, "fan");
    let set = OwnerAction::SetRole {
        member: fan_id,
        role: Role::Owner,
    };
    assert_eq!(
        owner(&mut w, boss, r_boss, set),
        Ok(()),
        "sent; the hub decides"
    );
    w.run(10);
    let forbidden =
        |e: &Event| matches!(e, Event::Error { code, .. } if *code == ErrorCode::FORBIDDEN);
    assert_eq!(
        w.engines[boss].count(forbidden),
        1,
        "{:?}",
        w.engines[boss].events
    );
    assert_eq!(
        members(&mut w, boss, r_boss)[2],
        ("fan".into(), Role::Viewer)
    );

    // A non-owner may not kick.
    let kick = OwnerAction::Kick {
        member: fan_id,
        reason: "no".into(),
    };
    assert_eq!(owner(&mut w, cam, r_cam, kick), Ok(()));
    w.run(10);
    assert_eq!(
        w.engines[cam].count(|e| matches!(e, Event::Error { .. })),
        1,
        "{:?}",
        w.engines[cam].events
    );
    assert_eq!(members(&mut w, boss, r_boss).len(), 3, "nobody left");

    // The owner may: fan is out, the others hear why.
    let kick = OwnerAction::Kick {
        member: fan_id,
        reason: "bye".into(),
    };
    assert_eq!(owner(&mut w, boss, r_boss, kick), Ok(()));
    w.run(10);
    let kicked = |e: &Event| {
        matches!(
            e,
            Event::RoomLeft {
                reason: LeaveReason::Kicked,
                ..
            }
        )
    };
    assert_eq!(
        w.engines[fan].count(kicked),
        1,
        "{:?}",
        w.engines[fan].events
    );
    for e in [boss, cam] {
        let left = w.engines[e].count(|e| {
            matches!(e, Event::MemberLeft { member, reason: LeaveReason::Kicked, .. } if *member == fan_id)
        });
        assert_eq!(left, 1);
    }
    assert_eq!(members(&mut w, cam, r_cam).len(), 2);
    // The kicked engine no longer holds the room.
    let rx = w.engines[fan].handle.members_later(r_fan).expect("running");
    assert_eq!(w.answer(rx), Err(ControlError::NotJoined));

    // Closing: both remaining members leave with RoomClosed, and stay out.
    let close = OwnerAction::Close {
        reason: "done".into(),
    };
    assert_eq!(owner(&mut w, boss, r_boss, close), Ok(()));
    w.run(2_000);
    for e in [boss, cam] {
        let closed = w.engines[e].count(|e| {
            matches!(
                e,
                Event::RoomLeft {
                    reason: LeaveReason::RoomClosed,
                    ..
                }
            )
        });
        assert_eq!(closed, 1, "{:?}", w.engines[e].events);
        assert_eq!(
            w.engines[e].count(|e| matches!(e, Event::RoomRestored { .. })),
            0
        );
    }
    // A control about a room not held is refused before it reaches the hub.
    let close = OwnerAction::Close {
        reason: "again".into(),
    };
    assert_eq!(
        owner(&mut w, boss, r_boss, close),
        Err(ControlError::NotJoined)
    );
}

#[test]
fn the_hubs_audio_acks_reach_the_app_when_asked_for() {
    let mut w = World::new();
    let cam = w.engine("cam", "acks", Role::Member, EngineConfig::default());
    let quiet = w.engine("quiet", "acks", Role::Member, EngineConfig::default());
    let room = w.join(cam, "acks", Role::Member);
    let room_q = w.join(quiet, "acks", Role::Member);
    w.engines[cam].handle.set_audio_ack_events(true);
    for seq in 1..=20 {
        for (e, r) in [(cam, room), (quiet, room_q)] {
            let c = chunk(seq, w.now);
            w.engines[e]
                .handle
                .send_audio(&c, r, Priority::NORMAL)
                .expect("queued");
        }
        w.run(20);
    }
    w.run(200);
    let acked: Vec<u32> = w.engines[cam]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::AudioAcked { room: r, seq } if *r == room => Some(*seq),
            _ => None,
        })
        .collect();
    assert!(!acked.is_empty(), "{:?}", w.engines[cam].events);
    assert!(acked.windows(2).all(|p| p[0] < p[1]), "rising: {acked:?}");
    assert_eq!(acked.last(), Some(&20), "every chunk confirmed");
    assert_eq!(
        w.engines[quiet].count(|e| matches!(e, Event::AudioAcked { .. })),
        0,
        "off unless asked for"
    );
}
