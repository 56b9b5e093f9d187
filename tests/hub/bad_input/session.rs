//! Broken protocol messages, floods, vanishing peers and heartbeats.

use super::*;

// ---- protocol messages -----------------------------------------------------------

#[test]
fn invalid_protocol_messages_get_bad_message_and_the_session_stays() {
    let hub = TestHub::dev();
    let bad_before = hub.metric("poselink_errors_total{kind=\"bad_message\"}");
    let mut c = Client::session(hub.addr, "");
    let me = c.member;
    let good = ping_msg(5, me);

    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 0x55;
    let mut flipped_body = good.clone();
    flipped_body[8] ^= 0x01;
    let mut unknown_kind = good.clone();
    unknown_kind[1] = 0x12;
    let mut kind_zero = good.clone();
    kind_zero[1] = 0x00;
    let mut reserved_flag = good.clone();
    reserved_flag[2] = 0x08;
    let welcome = encode(
        &Message::Welcome(Welcome {
            minor: 0,
            member: me,
            user: "mallory",
            resume: 1,
            server_time_us: 0,
            heartbeat_ms: 1,
            max_message: 1,
        }),
        0,
        me,
        3,
    );
    let bad_room = {
        let mut m = encode(
            &Message::Join(Join {
                room: "bad-room",
                role: Role::Member,
            }),
            0,
            me,
            4,
        );
        let at = m.windows(8).position(|w| w == b"bad-room").unwrap();
        m[at + 3] = b' '; // "bad room": not a name
        reseal(m)
    };
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("a bad CRC", bad_crc, 0x0c),
        ("a changed byte under the CRC", flipped_body, 0x0c),
        ("a truncated message", good[..10].to_vec(), 0x0c),
        ("a 2-byte message", good[..2].to_vec(), 0x0c),
        ("an empty message", Vec::new(), 0),
        ("an unknown kind byte 0x12", reseal(unknown_kind), 0x12),
        ("kind byte 0x00", reseal(kind_zero), 0x00),
        ("a reserved flag bit", reseal(reserved_flag), 0x0c),
        ("a welcome sent to the hub", welcome, Kind::Welcome as u8),
        ("a second hello", hello_msg("again"), Kind::Hello as u8),
        (
            "a join with an invalid room name",
            bad_room,
            Kind::Join as u8,
        ),
    ];
    for (k, (what, bytes, about)) in cases.iter().enumerate() {
        c.send_bytes(bytes);
        let e = c
            .recv_until(T, |g| g.kind() == Kind::Error)
            .unwrap_or_else(|| panic!("{what}: no error"));
        let (code, got_about, why) = error_of(&e).unwrap();
        assert_eq!((code, got_about), (BAD_MESSAGE, *about), "{what}: {why}");
        assert!(!why.is_empty(), "{what}");
        assert_answers_ping(&mut c, 100 + k as u64);
    }
    // A text message.
    c.ws.send(WsMessage::Text("{\"kind\":\"join\",\"room\":\"x\"}".into()))
        .unwrap();
    let e = c
        .recv_until(T, |g| g.kind() == Kind::Error)
        .expect("an error for text");
    let (code, _, why) = error_of(&e).unwrap();
    assert_eq!(code, BAD_MESSAGE);
    assert!(why.contains("binary"), "{why}");
    assert_answers_ping(&mut c, 1_000);
    assert!(c.closed.is_none());
    let bad_after = hub.metric("poselink_errors_total{kind=\"bad_message\"}");
    assert_eq!(bad_after, bad_before + cases.len() as f64 + 1.0);
    // Still a full session: it joins and relays.
    let h = c
        .join("after-bad-input", Role::Owner)
        .expect("a join after bad input");
    let mut other = Client::session(hub.addr, "");
    assert_eq!(other.join("after-bad-input", Role::Member).unwrap(), h);
    let sent = PoseStream::new(3).next(h, c.member).to_vec();
    c.send_bytes(&sent);
    assert_eq!(
        other
            .recv_until(T, |g| g.kind() == Kind::Pose)
            .expect("relayed")
            .bytes,
        sent
    );
    assert_hub_still_serves(&hub);

    // An unknown major version: UNSUPPORTED_VERSION and close 4002, in a session
    // and before the hello, whole or shorter than any 1.x message.
    let mut v2 = good.clone();
    v2[0] = 0x20;
    for (what, bytes, session) in [
        ("version 2.0", reseal(v2.clone()), true),
        ("version 2.0, 3 bytes", vec![0x20, 0x0c, 0x00], false),
    ] {
        let mut r = Raw::upgraded(hub.addr);
        if session {
            r.hello();
        }
        assert!(r.send_msg(&bytes));
        let o = expect_refused(&mut r, what, Some(UNSUPPORTED_VERSION), 4002);
        assert_eq!(o.errors()[0].1, 0x0c, "{what}: about the kind byte");
        assert_hub_still_serves(&hub);
    }
    // Before the hello: a broken message closes (4001), another kind first too (4003).
    let mut r = Raw::upgraded(hub.addr);
    assert!(r.send_msg(&good[..10]));
    expect_refused(&mut r, "a truncated first message", Some(BAD_MESSAGE), 4001);
    assert_hub_still_serves(&hub);
    let mut r = Raw::upgraded(hub.addr);
    assert!(r.send_msg(&good));
    let o = expect_refused(
        &mut r,
        "a ping before the hello",
        Some(UNAUTHENTICATED),
        4003,
    );
    assert_eq!(o.errors()[0].1, 0x0c);
    assert_hub_still_serves(&hub);
    assert_answers_ping(&mut c, 2_000);
}

// ---- flood -----------------------------------------------------------------------

#[test]
fn a_flood_is_rate_limited_then_closed_and_others_are_unaffected() {
    let hub = TestHub::start(HubConfig {
        rate_messages: 50,
        burst_messages: 20,
        flood_close_messages: 200,
        ..HubConfig::local_dev()
    });
    // A calm pair, in a room, throughout.
    let mut p = Client::session(hub.addr, "");
    let mut q = Client::session(hub.addr, "");
    let h = p.join("calm", Role::Owner).unwrap();
    assert_eq!(q.join("calm", Role::Member).unwrap(), h);
    let mut poses = PoseStream::new(9);

    let mut f = Client::session(hub.addr, "");
    let drops_before = hub.metric("poselink_drops_total{reason=\"rate_limited\"}");
    for t0 in 1..=100u64 {
        let m = ping_msg(t0, f.member);
        f.send_bytes(&m);
    }
    let (mut pongs, mut limited) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let Some(g) = f.recv(Duration::from_millis(300)) else {
            break;
        };
        match g.kind() {
            Kind::Pong => pongs += 1,
            Kind::Error => {
                let (code, _, why) = error_of(&g).unwrap();
                assert_eq!(code, RATE_LIMITED, "{why}");
                assert!(why.contains("rate"), "{why}");
                limited += 1;
            }
            k => panic!("{k:?}"),
        }
    }
    assert!(limited >= 1, "the flooder is told it is rate limited");
    assert!(
        (15..100).contains(&pongs),
        "about the burst is answered, not all: {pongs}"
    );
    assert!(f.closed.is_none(), "not closed yet: {:?}", f.closed);
    assert!(hub.metric("poselink_drops_total{reason=\"rate_limited\"}") > drops_before);
    // The calm pair meanwhile.
    let sent = poses.next(h, q.member).to_vec();
    q.send_bytes(&sent);
    assert_eq!(
        p.recv_until(T, |g| g.kind() == Kind::Pose)
            .expect("relayed during the flood")
            .bytes,
        sent
    );
    // The flooder, slowed down, is served again.
    std::thread::sleep(Duration::from_millis(200));
    assert_answers_ping(&mut f, 500);

    // 1000 more at once: closed with 4012.
    let limited_before = hub.metric("poselink_errors_total{kind=\"rate_limited\"}");
    for t0 in 1_000..2_000u64 {
        let m = ping_msg(t0, f.member);
        if f.ws.write(WsMessage::Binary(m.into())).is_err() {
            break;
        }
    }
    let _ = f.ws.flush();
    let mut errors = Vec::new();
    let deadline = Instant::now() + T;
    while f.closed.is_none() && Instant::now() < deadline {
        if let Some(g) = f.recv(Duration::from_millis(100))
            && let Some(e) = error_of(&g)
        {
            errors.push(e);
        }
    }
    let (code, why) = f.closed.clone().expect("the flooder is closed");
    assert_eq!(code, 4012, "{why}");
    assert!(errors.iter().any(|e| e.0 == RATE_LIMITED), "{errors:?}");
    assert!(hub.metric("poselink_errors_total{kind=\"rate_limited\"}") > limited_before);

    // The others are unaffected.
    let sent = poses.next(h, q.member).to_vec();
    q.send_bytes(&sent);
    let got = p
        .recv_until(T, |g| g.kind() == Kind::Pose)
        .expect("relayed after the flood");
    assert_eq!(got.bytes, sent);
    assert!(p.closed.is_none() && q.closed.is_none());
    assert_answers_ping(&mut p, 1);
    assert_answers_ping(&mut q, 2);
    assert_hub_still_serves(&hub);
}

// ---- abrupt disconnects ----------------------------------------------------------

#[test]
fn vanishing_clients_are_cleaned_up_and_announced() {
    let hub = TestHub::dev();
    let mut w = Client::session(hub.addr, "");
    let h = w.join("abrupt", Role::Owner).unwrap();

    // A member that sends half a frame and vanishes (FIN). (The pause keeps its
    // bytes and its FIN apart: see `a_peer_that_writes_and_closes_at_once_is_noticed`.)
    let mut r = Raw::upgraded(hub.addr);
    let member = r.hello();
    assert_eq!(r.join("abrupt", member), h);
    let pose = PoseStream::new(4).next(h, member).to_vec();
    let f = frame(FIN | OP_BIN, &pose);
    assert!(r.write(&f[..f.len() / 2]));
    std::thread::sleep(Duration::from_millis(50));
    let gone = Instant::now();
    drop(r);
    let left = w
        .recv_until(T, |g| member_left(g).is_some_and(|l| l.0 == member))
        .expect("MEMBER_LEFT for the vanished member");
    assert!(
        gone.elapsed() < Duration::from_secs(1),
        "announced after {:?}",
        gone.elapsed()
    );
    assert_eq!(
        member_left(&left),
        Some((member, LeaveReason::Disconnected))
    );
    assert_eq!(left.header().room, h);
    assert_hub_still_serves(&hub);

    // A member that vanishes with unread data (the kernel resets the connection).
    let mut r = Raw::upgraded(hub.addr);
    let member = r.hello();
    assert_eq!(r.join("abrupt", member), h);
    w.recv_until(T, |g| g.kind() == Kind::MemberJoined)
        .expect("member joined");
    let io_before = hub.metric("poselink_errors_total{kind=\"io\"}");
    // The hub's answer to this ping stays unread: closing then sends a reset.
    assert!(r.send_msg(&ping_msg(9, member)));
    assert!(r.write(&f[..3]));
    std::thread::sleep(Duration::from_millis(50));
    drop(r);
    let left = w
        .recv_until(T, |g| member_left(g).is_some_and(|l| l.0 == member))
        .expect("MEMBER_LEFT for the reset member");
    assert_eq!(
        member_left(&left),
        Some((member, LeaveReason::Disconnected))
    );
    assert!(
        hub.metric("poselink_errors_total{kind=\"io\"}") > io_before,
        "a reset is a socket error"
    );
    assert_hub_still_serves(&hub);

    // Vanishing mid-request, right after the upgrade, and mid-message.
    let mut r = Raw::tcp(hub.addr);
    assert!(r.write(b"GET / HTTP/1.1\r\nUpgr"));
    std::thread::sleep(Duration::from_millis(50));
    drop(r);
    assert_hub_still_serves(&hub);
    drop(Raw::upgraded(hub.addr));
    assert_hub_still_serves(&hub);
    let mut r = Raw::upgraded(hub.addr);
    r.hello();
    assert!(r.write(&[frame(OP_BIN, &[1u8; 300]), frame(OP_CONT, &[2u8; 300])].concat()));
    assert!(r.write(&frame_header(FIN | OP_CONT, 300, Some(MASK))));
    std::thread::sleep(Duration::from_millis(50));
    drop(r);
    assert_hub_still_serves(&hub);

    // Nothing leaked: only the watcher (and the metrics request) remain.
    wait_metric(&hub, "poselink_sessions", 1.0);
    wait_metric(&hub, "poselink_connections", 2.0);
    assert_answers_ping(&mut w, 3);
}

/// A peer that writes its last bytes and closes at once: its bytes and its FIN
/// arrive together, before the hub reads. The hub must still see the end of the
/// stream at once, in every state, not when a timeout fires.
#[test]
fn a_peer_that_writes_and_closes_at_once_is_noticed() {
    let hub = TestHub::dev(); // handshake 5 s, heartbeat 5 s
    let mut w = Client::session(hub.addr, "");
    let h = w.join("write-and-close", Role::Owner).unwrap();
    let half = frame(FIN | OP_BIN, &ping_msg(1, 0));
    let half = &half[..half.len() / 2];
    for round in 0..10 {
        // Part of a request head, then gone.
        let mut r = Raw::tcp(hub.addr);
        assert!(r.write(b"GET / HTTP/1.1\r\nUpgr"));
        drop(r);
        let open = poll_metric(&hub, "poselink_connections", 2.0, Duration::from_secs(1));
        assert_eq!(open, 2.0, "round {round}: a half request lingers");
        // Upgraded, half a frame, gone.
        let mut r = Raw::upgraded(hub.addr);
        assert!(r.write(half));
        drop(r);
        let open = poll_metric(&hub, "poselink_connections", 2.0, Duration::from_secs(1));
        assert_eq!(open, 2.0, "round {round}: a half frame lingers");
        // A room member: half a frame, gone; the room hears of it at once.
        let mut r = Raw::upgraded(hub.addr);
        let member = r.hello();
        assert_eq!(r.join("write-and-close", member), h);
        assert!(r.write(half));
        drop(r);
        let left = w.recv_until(Duration::from_secs(1), |g| {
            member_left(g).is_some_and(|l| l.0 == member)
        });
        assert!(left.is_some(), "round {round}: MEMBER_LEFT within 1 s");
    }
    assert_hub_still_serves(&hub);
}

// ---- heartbeat -------------------------------------------------------------------

/// A session silent for 3 heartbeats is closed; a reading (auto-ponging) one is not.
#[test]
fn heartbeat_closes_silent_sessions_only() {
    let hub = TestHub::start(HubConfig {
        heartbeat_ms: 200,
        ..HubConfig::local_dev()
    });
    let mut a = Client::session(hub.addr, "");
    let h = a.join("heartbeat", Role::Owner).unwrap();
    let mut idle = Client::session(hub.addr, ""); // no room, only reading
    let hb_before = hub.metric("poselink_errors_total{kind=\"heartbeat_timeout\"}");

    let mut s = Raw::upgraded(hub.addr);
    let member = s.hello();
    assert_eq!(s.join("heartbeat", member), h);
    let t0 = Instant::now(); // s's last bytes; from now on it neither reads nor writes
    // Both readers are polled in turn (a tungstenite client pongs when it reads).
    let mut left = None;
    while left.is_none() && t0.elapsed() < T {
        if let Some(g) = a.recv(Duration::from_millis(50))
            && member_left(&g).is_some_and(|l| l.0 == member)
        {
            left = Some((g, t0.elapsed()));
        }
        let _ = idle.recv(Duration::from_millis(50));
    }
    let (left, after) = left.expect("MEMBER_LEFT for the silent member");
    assert!(
        after >= Duration::from_millis(550) && after <= Duration::from_millis(1_300),
        "closed {after:?} after its last bytes (3 heartbeats of 200 ms + a tick)"
    );
    assert_eq!(left.header().room, h);
    // What the silent client finds when it looks: pings, then GOING_AWAY and 1001.
    let o = s.drain(T);
    assert_eq!(o.close_code(), Some(1001), "{o:?}");
    assert!(
        o.errors().iter().any(|e| e.0 == GOING_AWAY),
        "{:?}",
        o.errors()
    );
    assert!(o.ended.is_some(), "{o:?}");
    assert!(hub.metric("poselink_errors_total{kind=\"heartbeat_timeout\"}") > hb_before);

    // The readers, over more than the same time, stay.
    while t0.elapsed() < Duration::from_millis(1_600) {
        let _ = a.recv(Duration::from_millis(50));
        let _ = idle.recv(Duration::from_millis(50));
    }
    assert!(a.closed.is_none(), "{:?}", a.closed);
    assert!(idle.closed.is_none(), "{:?}", idle.closed);
    assert_answers_ping(&mut a, 1);
    assert_answers_ping(&mut idle, 2);
    assert_hub_still_serves(&hub);
}

/// docs/PROTOCOL.md §6.2: `TimedOut` is "it stopped answering (heartbeat)".
#[test]
fn a_heartbeat_timeout_is_announced_as_timed_out() {
    let hub = TestHub::start(HubConfig {
        heartbeat_ms: 200,
        ..HubConfig::local_dev()
    });
    let mut a = Client::session(hub.addr, "");
    let h = a.join("heartbeat", Role::Owner).unwrap();
    let mut s = Raw::upgraded(hub.addr);
    let member = s.hello();
    assert_eq!(s.join("heartbeat", member), h);
    let left = a
        .recv_until(T, |g| member_left(g).is_some_and(|l| l.0 == member))
        .expect("MEMBER_LEFT");
    assert_eq!(member_left(&left), Some((member, LeaveReason::TimedOut)));
}

// ---- shutdown --------------------------------------------------------------------

#[test]
fn shutdown_tells_everyone_going_away() {
    let hub = TestHub::dev();
    let mut s1 = Client::session(hub.addr, "");
    let mut s2 = Client::session(hub.addr, "");
    let h = s1.join("shutdown", Role::Owner).unwrap();
    assert_eq!(s2.join("shutdown", Role::Member).unwrap(), h);
    let mut before_hello = Raw::upgraded(hub.addr);
    let mut plain_tcp = Raw::tcp(hub.addr);
    std::thread::sleep(Duration::from_millis(50)); // let the hub accept them all

    let stopper = std::thread::spawn(move || {
        let start = Instant::now();
        let report = hub.stop(); // panics unless the hub's thread returns Ok
        (report, start.elapsed())
    });
    for (k, c) in [&mut s1, &mut s2].into_iter().enumerate() {
        let mut errors = Vec::new();
        let deadline = Instant::now() + T;
        while c.closed.is_none() && Instant::now() < deadline {
            if let Some(g) = c.recv(Duration::from_millis(100))
                && let Some(e) = error_of(&g)
            {
                errors.push(e);
            }
        }
        assert!(
            errors.iter().any(|e| e.0 == GOING_AWAY),
            "session {k}: {errors:?}"
        );
        assert_eq!(c.closed.as_ref().map(|c| c.0), Some(1001), "session {k}");
    }
    expect_refused(
        &mut before_hello,
        "upgraded, no hello",
        Some(GOING_AWAY),
        1001,
    );
    let o = plain_tcp.drain(T);
    assert!(
        o.ended.is_some(),
        "a connection still in HTTP is closed: {o:?}"
    );

    let (report, took) = stopper.join().expect("the hub stops cleanly");
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(report.stats.accepted >= 4, "{:?}", report.stats);
    assert_eq!(report.stats.sessions_opened, 2);
    assert!(
        report.stats.errors[GOING_AWAY as usize] >= 3,
        "{:?}",
        report.stats.errors
    );
}

// ---- pipelining ------------------------------------------------------------------

/// A client that sends its hello and a lot more right behind the upgrade request
/// (more than one read of the hub's buffer) gets every answer without stalling.
#[test]
fn data_pipelined_behind_the_upgrade_is_not_left_unread() {
    let hub = TestHub::dev();
    let mut bytes = upgrade_request();
    bytes.extend(frame(FIN | OP_BIN, &hello_msg("pipeliner")));
    // Within the default burst (500 messages, 1 MiB), more than a receive buffer.
    let n = 400u64;
    for t0 in 1..=n {
        bytes.extend(frame(FIN | OP_BIN, &padded_ping(t0, 0, 250)));
    }
    assert!(bytes.len() > 100_000);
    let mut r = Raw::tcp(hub.addr);
    assert!(r.write(&bytes));
    r.read_upgrade_response();
    let mut pongs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while (pongs.len() as u64) < n && Instant::now() < deadline {
        match r.next(Duration::from_millis(100)) {
            Some(Ev::Msg(g)) if g.kind() == Kind::Pong => pongs.push(pong_t0(&g).unwrap()),
            Some(Ev::Msg(g)) => assert_eq!(g.kind(), Kind::Welcome, "{:?}", error_of(&g)),
            Some(Ev::End(e)) => panic!("{e} after {} pongs", pongs.len()),
            _ => {}
        }
    }
    assert_eq!(
        pongs.len() as u64,
        n,
        "every pipelined ping is answered within 3 s"
    );
    assert_eq!(pongs, (1..=n).collect::<Vec<u64>>());
    assert_hub_still_serves(&hub);
}
