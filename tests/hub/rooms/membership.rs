//! Membership, roles and moderation: snapshots, leaves, disconnects, rejoins,
//! silent members; role changes, kicks and closing, by the owner only.

use super::*;

// ---- membership ----------------------------------------------------------------

#[test]
fn snapshot_lists_members_with_roles_and_users() {
    let hub = secured_hub();
    let mut ana = user(&hub, "ana", Role::Owner);
    let mut bo = user(&hub, "bo", Role::Member);
    let mut cy = user(&hub, "cy", Role::Viewer);
    let sa = join_snapshot(&mut ana, "studio-1", Role::Owner);
    assert_ne!(sa.handle, 0);
    assert_eq!((sa.name.as_str(), sa.your_role), ("studio-1", Role::Owner));
    assert_eq!(sa.members, [(ana.member, Role::Owner, "ana".to_string())]);
    let sb = join_snapshot(&mut bo, "studio-1", Role::Member);
    assert_eq!(sb.handle, sa.handle);
    assert_eq!(sb.your_role, Role::Member);
    assert_eq!(
        sb.members,
        [
            (ana.member, Role::Owner, "ana".to_string()),
            (bo.member, Role::Member, "bo".to_string())
        ]
    );
    let sc = join_snapshot(&mut cy, "studio-1", Role::Viewer);
    assert_eq!((sc.handle, sc.your_role), (sa.handle, Role::Viewer));
    // In join order, the joiner included.
    assert_eq!(
        sc.members,
        [
            (ana.member, Role::Owner, "ana".to_string()),
            (bo.member, Role::Member, "bo".to_string()),
            (cy.member, Role::Viewer, "cy".to_string()),
        ]
    );
    // The others heard of each join, in order, with role and user.
    let h = sa.handle;
    assert_eq!(
        member_joined(&next(&mut ana, Kind::MemberJoined)),
        (h, bo.member, Role::Member, "bo".into())
    );
    assert_eq!(
        member_joined(&next(&mut ana, Kind::MemberJoined)),
        (h, cy.member, Role::Viewer, "cy".into())
    );
    assert_eq!(
        member_joined(&next(&mut bo, Kind::MemberJoined)),
        (h, cy.member, Role::Viewer, "cy".into())
    );
    // A second room gets another handle.
    let other = join_snapshot(&mut bo, "studio-2", Role::Member);
    assert_ne!(other.handle, h);
    assert_eq!(other.members, [(bo.member, Role::Member, "bo".to_string())]);
    assert_eq!(hub.metric("poselink_rooms"), 2.0);
}

#[test]
fn leave_tells_everyone_and_ends_the_membership() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    bo.send(0, &Message::Leave(Leave { room: "studio-1" }));
    let bm = bo.member;
    for c in [&mut ana, &mut cy, &mut bo] {
        let g = next(c, Kind::MemberLeft);
        assert_eq!(
            member_left(&g),
            (h, bm, LeaveReason::Left),
            "seen by member {}",
            c.member
        );
    }
    // bo is out: its pose is refused, a second leave too, and nothing reaches cy.
    let mut s = PoseStream::new(2);
    publish(&mut bo, &mut s, h);
    let r = expect_error(&mut bo, NOT_MEMBER, Kind::Pose);
    assert!(r.contains("member"), "{r}");
    bo.send(0, &Message::Leave(Leave { room: "studio-1" }));
    expect_error(&mut bo, NOT_MEMBER, Kind::Leave);
    let mut sa = PoseStream::new(3);
    let marker = publish(&mut ana, &mut sa, h);
    assert_eq!(
        next_media(&mut cy).bytes,
        marker,
        "cy got something from bo"
    );
    // A later joiner's snapshot no longer lists bo.
    let mut dee = user(&hub, "dee", Role::Viewer);
    let sd = join_snapshot(&mut dee, "studio-1", Role::Viewer);
    let ids: Vec<u16> = sd.members.iter().map(|m| m.0).collect();
    assert_eq!(ids, [ana.member, cy.member, dee.member]);
    assert_eq!(errors(&hub, "not_member"), 2.0);
}

#[test]
fn a_disconnect_is_member_left_disconnected_in_every_room() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h1 = join_snapshot(&mut a, "r1", Role::Owner).handle;
    let h2 = join_snapshot(&mut a, "r2", Role::Owner).handle;
    join_snapshot(&mut b, "r1", Role::Member);
    join_snapshot(&mut b, "r2", Role::Member);
    let bm = b.member;
    drop(b);
    let mut seen = vec![
        member_left(&next(&mut a, Kind::MemberLeft)),
        member_left(&next(&mut a, Kind::MemberLeft)),
    ];
    seen.sort_by_key(|x| x.0);
    let mut want = vec![
        (h1, bm, LeaveReason::Disconnected),
        (h2, bm, LeaveReason::Disconnected),
    ];
    want.sort_by_key(|x| x.0);
    assert_eq!(seen, want);
    assert_eq!(hub.metric("poselink_sessions"), 1.0);
}

#[test]
fn rejoining_changes_the_role_and_tells_the_others() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    let again = join_snapshot(&mut bo, "studio-1", Role::Viewer);
    assert_eq!((again.handle, again.your_role), (h, Role::Viewer));
    assert_eq!(
        again.members.len(),
        3,
        "a rejoin is not a second membership"
    );
    assert!(
        again
            .members
            .contains(&(bo.member, Role::Viewer, "bo".to_string()))
    );
    for c in [&mut ana, &mut cy] {
        assert_eq!(
            role_changed(&next(c, Kind::RoleChanged)),
            (h, bo.member, Role::Viewer)
        );
    }
    let mut s = PoseStream::new(4);
    publish(&mut bo, &mut s, h);
    expect_error(&mut bo, FORBIDDEN, Kind::Pose);
}

#[test]
fn a_silent_member_times_out() {
    let hub = TestHub::start(small(HubConfig {
        heartbeat_ms: 100,
        ..HubConfig::local_dev()
    }));
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "r", Role::Owner).handle;
    join_snapshot(&mut b, "r", Role::Member);
    next(&mut a, Kind::MemberJoined);
    // b stops reading, so it answers no ping; a keeps reading (and answering).
    let bm = b.member;
    let g = a
        .recv_until(Duration::from_secs(3), |g| g.kind() == Kind::MemberLeft)
        .expect("b times out");
    assert_eq!(
        member_left(&g),
        (h, bm, LeaveReason::TimedOut),
        "PROTOCOL.md 6.2: a heartbeat timeout is TimedOut"
    );
    assert!(a.closed.is_none(), "a answered its pings");
    let (code, reason) = b
        .recv_until(T, |g| g.kind() == Kind::Error)
        .expect("an error")
        .error()
        .unwrap();
    assert_eq!(code, 15, "GOING_AWAY: {reason}");
    assert_eq!(b.expect_close(T).0, 1001);
    assert_eq!(errors(&hub, "heartbeat_timeout"), 1.0);
}

// ---- roles and moderation ------------------------------------------------------

#[test]
fn owner_changes_roles_at_run_time() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    // Demote bo to viewer: everyone (bo and the owner too) hears it.
    let (bm, cm) = (bo.member, cy.member);
    ana.send(
        h,
        &Message::RoleChanged(RoleChanged {
            member: bm,
            role: Role::Viewer,
        }),
    );
    for c in [&mut ana, &mut bo, &mut cy] {
        assert_eq!(
            role_changed(&next(c, Kind::RoleChanged)),
            (h, bm, Role::Viewer)
        );
    }
    let mut sb = PoseStream::new(5);
    publish(&mut bo, &mut sb, h);
    let r = expect_error(&mut bo, FORBIDDEN, Kind::Pose);
    assert!(r.contains("viewer"), "{r}");
    bo.send_bytes(&audio_message(h, bo.member, 1));
    expect_error(&mut bo, FORBIDDEN, Kind::Audio);
    // Nothing of bo's reached cy: the next media cy gets is ana's.
    let mut sa = PoseStream::new(6);
    let marker = publish(&mut ana, &mut sa, h);
    assert_eq!(next_media(&mut cy).bytes, marker);
    // bo, a viewer, still receives.
    assert_eq!(next_media(&mut bo).bytes, marker);
    // Promote cy to member: now it may publish, and bo receives it.
    ana.send(
        h,
        &Message::RoleChanged(RoleChanged {
            member: cm,
            role: Role::Member,
        }),
    );
    for c in [&mut ana, &mut bo, &mut cy] {
        assert_eq!(
            role_changed(&next(c, Kind::RoleChanged)),
            (h, cm, Role::Member)
        );
    }
    let mut sc = PoseStream::new(7);
    let from_cy = publish(&mut cy, &mut sc, h);
    assert_eq!(next_media(&mut bo).bytes, from_cy);
    assert_eq!(next_media(&mut ana).bytes, from_cy);
    // A later joiner's snapshot shows the new roles.
    let mut dee = user(&hub, "dee", Role::Viewer);
    let sd = join_snapshot(&mut dee, "studio-1", Role::Viewer);
    assert_eq!(
        sd.members,
        [
            (ana.member, Role::Owner, "ana".to_string()),
            (bo.member, Role::Viewer, "bo".to_string()),
            (cy.member, Role::Member, "cy".to_string()),
            (dee.member, Role::Viewer, "dee".to_string()),
        ]
    );
    assert_eq!(errors(&hub, "forbidden"), 2.0);
}

#[test]
fn only_the_owner_moderates() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    for c in [&mut bo, &mut cy] {
        let target = ana.member;
        c.send(
            h,
            &Message::Kick(Kick {
                member: target,
                reason: "coup",
            }),
        );
        let r = expect_error(c, FORBIDDEN, Kind::Kick);
        assert!(r.contains("owner"), "{r}");
        let me = c.member;
        c.send(
            h,
            &Message::RoleChanged(RoleChanged {
                member: me,
                role: Role::Owner,
            }),
        );
        let r = expect_error(c, FORBIDDEN, Kind::RoleChanged);
        assert!(r.contains("owner"), "{r}");
        c.send(h, &Message::CloseRoom(CloseRoom { reason: "mine now" }));
        let r = expect_error(c, FORBIDDEN, Kind::CloseRoom);
        assert!(r.contains("owner"), "{r}");
    }
    assert_eq!(errors(&hub, "forbidden"), 6.0);
    // Someone in no room at all is not a member.
    let mut eve = user(&hub, "eve", Role::Owner);
    eve.send(
        h,
        &Message::Kick(Kick {
            member: bo.member,
            reason: "",
        }),
    );
    expect_error(&mut eve, NOT_MEMBER, Kind::Kick);
    eve.send(h, &Message::CloseRoom(CloseRoom { reason: "" }));
    expect_error(&mut eve, NOT_MEMBER, Kind::CloseRoom);
    // The owner naming nobody.
    ana.send(
        h,
        &Message::Kick(Kick {
            member: 999,
            reason: "",
        }),
    );
    expect_error(&mut ana, NO_SUCH_MEMBER, Kind::Kick);
    ana.send(
        h,
        &Message::RoleChanged(RoleChanged {
            member: eve.member,
            role: Role::Viewer,
        }),
    );
    expect_error(&mut ana, NO_SUCH_MEMBER, Kind::RoleChanged);
    // Nothing changed: nobody left, no role changed, the room is still there.
    let mut sa = PoseStream::new(8);
    let marker = publish(&mut ana, &mut sa, h);
    for c in [&mut bo, &mut cy] {
        let g = c
            .recv_until(T, |g| g.kind() != Kind::Error)
            .expect("the marker");
        assert_eq!(g.kind(), Kind::Pose, "unexpected {:?}", g.kind());
        assert_eq!(g.bytes, marker);
    }
    let mut sb = PoseStream::new(9);
    let from_bo = publish(&mut bo, &mut sb, h);
    assert_eq!(next_media(&mut cy).bytes, from_bo, "bo is still a member");
    assert_eq!(hub.metric("poselink_rooms"), 1.0);
}

#[test]
fn owner_kicks_a_member() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    ana.send(
        h,
        &Message::Kick(Kick {
            member: bo.member,
            reason: "be nice",
        }),
    );
    let k = next(&mut bo, Kind::Kick);
    assert_eq!(k.header().room, h);
    let bm = bo.member;
    k.with(|m| match m {
        Message::Kick(k) => assert_eq!((k.member, k.reason), (bm, "be nice")),
        _ => unreachable!(),
    });
    for c in [&mut ana, &mut cy] {
        assert_eq!(
            member_left(&next(c, Kind::MemberLeft)),
            (h, bm, LeaveReason::Kicked)
        );
    }
    // The kicked one is out: its pose is NOT_MEMBER and reaches nobody.
    let mut sb = PoseStream::new(10);
    publish(&mut bo, &mut sb, h);
    let r = expect_error(&mut bo, NOT_MEMBER, Kind::Pose);
    assert!(r.contains("join"), "{r}");
    let mut sa = PoseStream::new(11);
    let marker = publish(&mut ana, &mut sa, h);
    assert_eq!(next_media(&mut cy).bytes, marker);
    // Nor does it receive the room's media any more.
    let mut sc = PoseStream::new(12);
    ana.send(
        h,
        &Message::RoleChanged(RoleChanged {
            member: cy.member,
            role: Role::Member,
        }),
    );
    next(&mut cy, Kind::RoleChanged);
    publish(&mut cy, &mut sc, h);
    next_media(&mut ana);
    assert!(
        bo.recv_until(Duration::from_millis(150), |g| g.kind().is_media())
            .is_none(),
        "a kicked member still receives the room's media"
    );
    assert_eq!(errors(&hub, "not_member"), 1.0);
}

#[test]
fn owner_closes_the_room() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    assert_eq!(hub.metric("poselink_rooms"), 1.0);
    ana.send(
        h,
        &Message::CloseRoom(CloseRoom {
            reason: "show is over",
        }),
    );
    for c in [&mut ana, &mut bo, &mut cy] {
        let g = next(c, Kind::CloseRoom);
        assert_eq!(g.header().room, h);
        g.with(|m| match m {
            Message::CloseRoom(cr) => assert_eq!(cr.reason, "show is over"),
            _ => unreachable!(),
        });
    }
    // Gone at once, no grace period.
    assert_eq!(hub.metric("poselink_rooms"), 0.0);
    let mut sb = PoseStream::new(13);
    publish(&mut bo, &mut sb, h);
    expect_error(&mut bo, NOT_MEMBER, Kind::Pose);
    ana.send(h, &Message::CloseRoom(CloseRoom { reason: "again" }));
    expect_error(&mut ana, NOT_MEMBER, Kind::CloseRoom);
    // The name is free: joining creates a fresh room with one member.
    let s = join_snapshot(&mut cy, "studio-1", Role::Viewer);
    assert_eq!(s.members, [(cy.member, Role::Viewer, "cy".to_string())]);
}
