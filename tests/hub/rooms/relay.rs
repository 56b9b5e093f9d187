//! The relay: byte for byte to every other member, cached and requested
//! keyframes, audio acknowledgements and duplicates, the room list.

use super::*;

// ---- relay and keyframes -------------------------------------------------------

#[test]
fn pose_and_audio_reach_every_other_member_byte_for_byte() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let mut c = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "r", Role::Owner).handle;
    join_snapshot(&mut b, "r", Role::Member);
    join_snapshot(&mut c, "r", Role::Viewer);
    let mut s = PoseStream::new(19);
    let mut sent = Vec::new();
    for seq in 1..=5u32 {
        sent.push(publish(&mut a, &mut s, h));
        let audio = audio_message(h, a.member, seq);
        a.send_bytes(&audio);
        sent.push(audio);
    }
    assert!(
        is_keyframe(&sent[0]) && !is_keyframe(&sent[2]),
        "the stream starts with a keyframe, then deltas"
    );
    for r in [&mut b, &mut c] {
        let got: Vec<Vec<u8>> = (0..sent.len()).map(|_| next_media(r).bytes).collect();
        assert_eq!(
            got, sent,
            "member {} got other bytes or another order",
            r.member
        );
    }
    // The publisher gets none of its own media back: its next media is b's.
    let mut sb = PoseStream::new(20);
    let from_b = publish(&mut b, &mut sb, h);
    assert_eq!(next_media(&mut a).bytes, from_b);
    assert_eq!(next_media(&mut c).bytes, from_b);
    assert_eq!(hub.metric("poselink_delivered_total"), 22.0);

    // The performance monitor saw the same 22 deliveries: in /metrics as the
    // recent window, and in the JSON report of /report.
    assert!(hub.metric("poselink_window_msgs_out_per_s") > 0.0);
    assert!(hub.metric("poselink_window_latency_p99_ms") >= 0.0);
    let (status, body) = hub.http_get("/report");
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("/report is JSON");
    assert_eq!(report["latency"]["count"], 22.0, "{report}");
    assert!(
        report["latency"]["p99"].as_f64().unwrap() >= 0.0,
        "{report}"
    );
    assert!(
        report["throughput"]["msgs_in_per_s"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert_eq!(report["reliability"]["drops"], 0.0, "{report}");
}

#[test]
fn a_late_joiner_gets_the_cached_keyframe_first() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "kf", Role::Owner).handle;
    join_snapshot(&mut b, "kf", Role::Member);
    let mut s = PoseStream::new(21);
    let frames: Vec<Vec<u8>> = (0..3).map(|_| publish(&mut a, &mut s, h)).collect();
    assert!(is_keyframe(&frames[0]));
    assert!(!is_keyframe(&frames[1]) && !is_keyframe(&frames[2]));
    for f in &frames {
        assert_eq!(&next_media(&mut b).bytes, f);
    }
    next(&mut a, Kind::MemberJoined);
    // c joins: right after its snapshot comes a's keyframe, before anything else.
    let mut c = Client::session(hub.addr, "");
    let snap = join_snapshot(&mut c, "kf", Role::Viewer);
    assert_eq!(snap.handle, h);
    let first = c.recv(T).expect("a message after the snapshot");
    assert_eq!(first.kind(), Kind::Pose);
    assert_ne!(
        first.header().flags.0 & 0x02,
        0,
        "the first pose a joiner gets is a keyframe"
    );
    assert_eq!(first.bytes, frames[0], "the cached keyframe, byte for byte");
    assert_eq!(hub.metric("poselink_keyframes_served_total"), 1.0);
    // And the hub asks a for a fresh keyframe, so that c can follow its deltas.
    let am = a.member;
    let nk = next(&mut a, Kind::NeedsKeyframe);
    assert_eq!(nk.header().room, h);
    nk.with(|m| match m {
        Message::NeedsKeyframe(n) => assert_eq!((n.publisher, n.person), (am, 0)),
        _ => unreachable!(),
    });
    // A delta before that keyframe is useless to c: b gets it, c does not.
    let delta = publish(&mut a, &mut s, h);
    assert!(!is_keyframe(&delta));
    assert_eq!(next_media(&mut b).bytes, delta);
    s.encoder.force_keyframe();
    let fresh = publish(&mut a, &mut s, h);
    assert!(is_keyframe(&fresh));
    assert_eq!(next_media(&mut b).bytes, fresh);
    assert_eq!(
        next_media(&mut c).bytes,
        fresh,
        "c got the delta it could not decode"
    );
    assert_eq!(
        hub.metric("poselink_drops_total{reason=\"awaiting_keyframe\"}"),
        1.0
    );
    // From now on c follows the deltas.
    let next_delta = publish(&mut a, &mut s, h);
    assert_eq!(next_media(&mut c).bytes, next_delta);
}

#[test]
fn needs_keyframe_is_served_from_the_cache_and_forwarded() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let mut outsider = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "kf", Role::Owner).handle;
    join_snapshot(&mut b, "kf", Role::Member);
    let mut s = PoseStream::new(22);
    let key = publish(&mut a, &mut s, h);
    let delta = publish(&mut a, &mut s, h);
    assert!(is_keyframe(&key) && !is_keyframe(&delta));
    assert_eq!(next_media(&mut b).bytes, key);
    assert_eq!(next_media(&mut b).bytes, delta);
    b.send(
        h,
        &Message::NeedsKeyframe(NeedsKeyframe {
            publisher: a.member,
            person: 0,
        }),
    );
    // b gets the cached keyframe at once...
    assert_eq!(next_media(&mut b).bytes, key);
    // ...and a is asked for a fresh one.
    let am = a.member;
    let g = next(&mut a, Kind::NeedsKeyframe);
    assert_eq!((g.header().room, g.header().sender), (h, 0));
    g.with(|m| match m {
        Message::NeedsKeyframe(n) => assert_eq!((n.publisher, n.person), (am, 0)),
        _ => unreachable!(),
    });
    assert_eq!(hub.metric("poselink_keyframes_served_total"), 1.0);
    assert_eq!(hub.metric("poselink_keyframe_requests_total"), 1.0);
    // Naming someone who is not in the room, or asking about a room one is not in.
    b.send(
        h,
        &Message::NeedsKeyframe(NeedsKeyframe {
            publisher: outsider.member,
            person: 0,
        }),
    );
    expect_error(&mut b, NO_SUCH_MEMBER, Kind::NeedsKeyframe);
    outsider.send(
        h,
        &Message::NeedsKeyframe(NeedsKeyframe {
            publisher: am,
            person: 0,
        }),
    );
    expect_error(&mut outsider, NOT_MEMBER, Kind::NeedsKeyframe);
    assert!(
        outsider
            .recv_until(Duration::from_millis(100), |g| g.kind().is_media())
            .is_none(),
        "a non-member was served a keyframe"
    );
}

#[test]
fn audio_is_acknowledged_and_duplicates_are_not_relayed() {
    assert_eq!(Kind::Audio as u8, 0x11);
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let mut c = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "au", Role::Owner).handle;
    join_snapshot(&mut b, "au", Role::Member);
    join_snapshot(&mut c, "au", Role::Viewer);
    let sent: Vec<Vec<u8>> = (1..=3).map(|seq| audio_message(h, a.member, seq)).collect();
    for m in &sent {
        a.send_bytes(m);
    }
    let sent_at = Instant::now();
    // Acks carry the audio kind and climb to the highest seq within ~200 ms.
    let mut last_seq = 0;
    let ack = a.recv_until(T, |g| {
        if g.kind() != Kind::Ack {
            return false;
        }
        let (kind, seq) = g.with(|m| match m {
            Message::Ack(k) => (k.kind, k.seq),
            _ => unreachable!(),
        });
        assert_eq!((kind, g.header().room), (0x11, h));
        assert!(seq > last_seq && seq <= 3, "ack {seq} after {last_seq}");
        last_seq = seq;
        seq == 3
    });
    assert!(ack.is_some(), "no ack of seq 3");
    assert!(
        sent_at.elapsed() < Duration::from_millis(500),
        "ack took {:?}",
        sent_at.elapsed()
    );
    for r in [&mut b, &mut c] {
        for m in &sent {
            assert_eq!(&next_media(r).bytes, m);
        }
    }
    // Resent chunks are dropped; the next new one goes through.
    a.send_bytes(&sent[1]);
    a.send_bytes(&sent[2]);
    let fourth = audio_message(h, a.member, 4);
    a.send_bytes(&fourth);
    for r in [&mut b, &mut c] {
        let mut kinds = Vec::new();
        let g = r
            .recv_until(T, |g| {
                kinds.push(g.kind());
                g.kind().is_media()
            })
            .expect("chunk 4");
        assert_eq!(g.bytes, fourth, "a duplicate was relayed");
        assert!(!kinds.contains(&Kind::Ack), "acks go to the publisher only");
    }
    let ack = next(&mut a, Kind::Ack);
    ack.with(|m| match m {
        Message::Ack(k) => assert_eq!((k.kind, k.seq), (0x11, 4)),
        _ => unreachable!(),
    });
    assert_eq!(
        hub.metric("poselink_drops_total{reason=\"duplicate_audio\"}"),
        2.0
    );
}

#[test]
fn rooms_are_listed_with_members_rate_and_drops() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let mut c = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "listed-1", Role::Owner).handle;
    join_snapshot(&mut b, "listed-1", Role::Viewer);
    join_snapshot(&mut c, "listed-2", Role::Owner);
    let (status, body) = hub.http_get("/rooms");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let find = |v: &serde_json::Value, name: &str| {
        v["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {v}"))
    };
    assert_eq!(find(&v, "listed-1")["members"], 2);
    assert_eq!(find(&v, "listed-2")["members"], 1);
    // About 50 frames a second; after 2.2 s (two samples) the listing, taken
    // while publishing goes on, shows the rate of the last second.
    let mut s = PoseStream::new(5);
    let start = Instant::now();
    let mut sent = 0u32;
    while start.elapsed() < Duration::from_millis(2_200) {
        publish(&mut a, &mut s, h);
        sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, body) = hub.http_get("/rooms");
    let rate = f64::from(sent) / start.elapsed().as_secs_f64();
    for _ in 0..sent {
        next_media(&mut b);
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let fps = find(&v, "listed-1")["fps"].as_f64().unwrap();
    assert!(
        (fps - rate).abs() <= 0.4 * rate,
        "fps {fps} in {v}, published at {rate:.1}/s"
    );
    assert_eq!(find(&v, "listed-1")["drops"], 0);
    assert_eq!(find(&v, "listed-2")["fps"], 0.0);
}
