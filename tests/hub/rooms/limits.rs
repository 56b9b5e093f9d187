//! The publishing rules (roles, membership, the sender field), the capacity
//! limits and the grace period of empty rooms.

use super::*;

// ---- publishing rules ----------------------------------------------------------

#[test]
fn viewers_may_not_publish() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    let mut sc = PoseStream::new(14);
    publish(&mut cy, &mut sc, h);
    let r = expect_error(&mut cy, FORBIDDEN, Kind::Pose);
    assert!(r.contains("viewer"), "{r}");
    cy.send_bytes(&audio_message(h, cy.member, 1));
    expect_error(&mut cy, FORBIDDEN, Kind::Audio);
    // Nothing relayed: the next media the others get is bo's.
    let mut sb = PoseStream::new(15);
    let marker = publish(&mut bo, &mut sb, h);
    assert_eq!(next_media(&mut ana).bytes, marker);
    assert_eq!(next_media(&mut cy).bytes, marker);
    assert_eq!(errors(&hub, "forbidden"), 2.0);
    assert_eq!(hub.metric("poselink_messages_in_total{kind=\"pose\"}"), 2.0);
}

#[test]
fn publishing_into_a_room_one_is_not_in_is_not_member() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h1 = join_snapshot(&mut a, "r1", Role::Owner).handle;
    let h2 = join_snapshot(&mut b, "r2", Role::Owner).handle;
    let mut s = PoseStream::new(16);
    for room in [h1, 999, 0] {
        publish(&mut b, &mut s, room);
        let r = expect_error(&mut b, NOT_MEMBER, Kind::Pose);
        assert!(r.contains("join"), "{r}");
    }
    b.send_bytes(&audio_message(h1, b.member, 1));
    expect_error(&mut b, NOT_MEMBER, Kind::Audio);
    assert!(
        a.recv_until(Duration::from_millis(150), |g| g.kind().is_media())
            .is_none(),
        "a non-member's media was relayed"
    );
    // Into its own room it is fine (and alone there, nobody gets it).
    publish(&mut b, &mut s, h2);
    b.send(0, &Message::Ping(poselink::proto::Ping { t0_us: 1 }));
    let g = b
        .recv_until(T, |g| matches!(g.kind(), Kind::Pong | Kind::Error))
        .unwrap();
    assert_eq!(g.kind(), Kind::Pong, "{:?}", g.error());
    assert_eq!(errors(&hub, "not_member"), 4.0);
}

#[test]
fn a_sender_field_that_is_not_ones_own_is_bad_message() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "r1", Role::Owner).handle;
    join_snapshot(&mut b, "r1", Role::Member);
    let mut s = PoseStream::new(17);
    // a claims to be b, and then the hub.
    for sender in [b.member, 0] {
        a.send_bytes(s.next(h, sender));
        let r = expect_error(&mut a, BAD_MESSAGE, Kind::Pose);
        assert!(r.contains("sender"), "{r}");
    }
    a.send_bytes(&audio_message(h, b.member, 1));
    expect_error(&mut a, BAD_MESSAGE, Kind::Audio);
    let marker = publish(&mut a, &mut s, h);
    assert_eq!(
        next_media(&mut b).bytes,
        marker,
        "a forged message was relayed"
    );
    assert_eq!(errors(&hub, "bad_message"), 3.0);
}

// ---- limits --------------------------------------------------------------------

#[test]
fn max_members_refuses_with_room_full() {
    let hub = TestHub::start(small(HubConfig {
        max_members: 2,
        ..HubConfig::local_dev()
    }));
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let mut c = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "small", Role::Owner).handle;
    join_snapshot(&mut b, "small", Role::Member);
    c.send(
        0,
        &Message::Join(Join {
            room: "small",
            role: Role::Member,
        }),
    );
    let r = expect_error(&mut c, ROOM_FULL, Kind::Join);
    assert!(r.contains("full"), "{r}");
    assert_eq!(errors(&hub, "room_full"), 1.0);
    // a heard of b only.
    assert_eq!(member_joined(&next(&mut a, Kind::MemberJoined)).1, b.member);
    // A refused joiner is not a member.
    let mut s = PoseStream::new(18);
    publish(&mut c, &mut s, h);
    expect_error(&mut c, NOT_MEMBER, Kind::Pose);
    // Once b leaves there is room.
    b.send(0, &Message::Leave(Leave { room: "small" }));
    next(&mut a, Kind::MemberLeft);
    assert_eq!(join_snapshot(&mut c, "small", Role::Member).handle, h);
    assert_eq!(member_joined(&next(&mut a, Kind::MemberJoined)).1, c.member);
}

#[test]
fn max_rooms_refuses_with_hub_full_and_empty_rooms_count() {
    let hub = TestHub::start(HubConfig {
        max_rooms: 1,
        ..small(HubConfig::local_dev())
    });
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    join_snapshot(&mut a, "r1", Role::Owner);
    b.send(
        0,
        &Message::Join(Join {
            room: "r2",
            role: Role::Owner,
        }),
    );
    let r = expect_error(&mut b, HUB_FULL, Kind::Join);
    assert!(r.contains("rooms"), "{r}");
    // The existing room can still be joined.
    join_snapshot(&mut b, "r1", Role::Member);
    // An empty room in its grace period still counts.
    for c in [&mut a, &mut b] {
        c.send(0, &Message::Leave(Leave { room: "r1" }));
    }
    next(&mut b, Kind::MemberLeft);
    next(&mut b, Kind::MemberLeft);
    b.send(
        0,
        &Message::Join(Join {
            room: "r2",
            role: Role::Owner,
        }),
    );
    expect_error(&mut b, HUB_FULL, Kind::Join);
    assert_eq!(hub.metric("poselink_rooms"), 1.0);
    // Closing frees it at once.
    let h = join_snapshot(&mut a, "r1", Role::Owner).handle;
    a.send(h, &Message::CloseRoom(CloseRoom { reason: "" }));
    next(&mut a, Kind::CloseRoom);
    assert_ne!(join_snapshot(&mut b, "r2", Role::Owner).handle, 0);
    assert_eq!(errors(&hub, "hub_full"), 2.0);
}

#[test]
fn max_rooms_per_connection() {
    let hub = TestHub::start(small(HubConfig {
        max_rooms_per_connection: 2,
        ..HubConfig::local_dev()
    }));
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h1 = join_snapshot(&mut a, "r1", Role::Owner).handle;
    join_snapshot(&mut a, "r2", Role::Owner);
    a.send(
        0,
        &Message::Join(Join {
            room: "r3",
            role: Role::Owner,
        }),
    );
    let r = expect_error(&mut a, HUB_FULL, Kind::Join);
    assert!(r.contains("rooms"), "{r}");
    // A room one is in may be joined again (a role change), another connection is
    // not limited by a's rooms.
    assert_eq!(join_snapshot(&mut a, "r1", Role::Member).handle, h1);
    join_snapshot(&mut b, "r3", Role::Owner);
    join_snapshot(&mut b, "r1", Role::Viewer);
    // After leaving one, a may join another.
    a.send(0, &Message::Leave(Leave { room: "r2" }));
    next(&mut a, Kind::MemberLeft);
    join_snapshot(&mut a, "r3", Role::Member);
    assert_eq!(errors(&hub, "hub_full"), 1.0);
}

// ---- grace period --------------------------------------------------------------

#[test]
fn an_empty_room_lives_through_its_grace_period_then_goes() {
    let hub = TestHub::start(small(HubConfig {
        room_grace_ms: 300,
        ..secured()
    }));
    let mut owner = Client::session(
        hub.addr,
        &token("coach", &[("gym", Role::Owner, true)], 600),
    );
    let guest_token = token("board", &[("gym", Role::Member, false)], 600);
    let mut guest = Client::session(hub.addr, &guest_token);
    let h = join_snapshot(&mut owner, "gym", Role::Owner).handle;
    owner.send(0, &Message::Leave(Leave { room: "gym" }));
    assert_eq!(
        member_left(&next(&mut owner, Kind::MemberLeft)),
        (h, owner.member, LeaveReason::Left)
    );
    let left_at = Instant::now();
    assert_eq!(
        hub.metric("poselink_rooms"),
        1.0,
        "an empty room is kept for its grace period"
    );
    // Within the grace period, a token that may not create gets the same room back.
    let back = join_snapshot(&mut guest, "gym", Role::Member);
    assert!(
        left_at.elapsed() < Duration::from_millis(300),
        "too slow to test the grace period"
    );
    assert_eq!(back.handle, h);
    assert_eq!(
        back.members,
        [(guest.member, Role::Member, "board".to_string())]
    );
    // The guest disconnects; the room expires about 300 ms later.
    drop(guest);
    let dropped_at = Instant::now();
    let deadline = dropped_at + Duration::from_secs(3);
    while hub.metric("poselink_rooms") != 0.0 {
        assert!(Instant::now() < deadline, "the empty room never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
    let expired_after = dropped_at.elapsed();
    assert!(
        expired_after >= Duration::from_millis(290),
        "expired after only {expired_after:?}"
    );
    assert_eq!(hub.metric("poselink_rooms_expired_total"), 1.0);
    let mut late = Client::session(hub.addr, &guest_token);
    late.send(
        0,
        &Message::Join(Join {
            room: "gym",
            role: Role::Member,
        }),
    );
    let r = expect_error(&mut late, NO_SUCH_ROOM, Kind::Join);
    assert!(r.contains("no such room"), "{r}");
    assert_eq!(errors(&hub, "no_such_room"), 1.0);
}
