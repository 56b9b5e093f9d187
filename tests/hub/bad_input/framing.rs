//! WebSocket framing violations, oversize frames, fragmentation.

use super::*;

// ---- WebSocket framing -----------------------------------------------------------

#[test]
fn websocket_protocol_violations_close_with_1002() {
    let hub = TestHub::dev();
    let ws_before = hub.metric("poselink_errors_total{kind=\"websocket\"}");
    let ping = ping_msg(1, 0);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "an unmasked frame",
            frame_with(FIN | OP_BIN, &ping, None),
            true,
        ),
        (
            "an unmasked ping",
            frame_with(FIN | OP_PING, b"x", None),
            true,
        ),
        ("reserved data opcode 0x3", frame(FIN | 0x3, &ping), true),
        ("reserved data opcode 0x7", frame(FIN | 0x7, &ping), true),
        ("reserved control opcode 0xb", frame(FIN | 0xb, b""), true),
        ("reserved control opcode 0xf", frame(FIN | 0xf, b"x"), true),
        (
            "RSV1 (no extension negotiated)",
            frame(FIN | RSV1 | OP_BIN, &ping),
            true,
        ),
        ("RSV2", frame(FIN | RSV2 | OP_BIN, &ping), true),
        ("RSV3 on a ping", frame(FIN | RSV3 | OP_PING, b""), true),
        ("a 126-byte ping", frame(FIN | OP_PING, &[1u8; 126]), true),
        ("a 200-byte close", frame(FIN | OP_CLOSE, &[3u8; 200]), true),
        ("a fragmented ping", frame(OP_PING, b"abc"), true),
        ("a fragmented close", frame(OP_CLOSE, &[3, 232]), true),
        (
            "a continuation with nothing to continue",
            frame(FIN | OP_CONT, &ping),
            true,
        ),
        (
            "a new message inside a fragmented one",
            [frame(OP_BIN, &ping[..5]), frame(FIN | OP_TEXT, b"{}")].concat(),
            true,
        ),
        (
            "a close with a 1-byte payload",
            frame(FIN | OP_CLOSE, &[3]),
            true,
        ),
    ];
    for (k, (what, bytes, error)) in cases.iter().enumerate() {
        let mut r = Raw::upgraded(hub.addr);
        // Half before the hello, half in a session.
        let session = k % 2 == 1;
        if session {
            r.hello();
        }
        let start = Instant::now();
        assert!(r.write(bytes), "{what}");
        let o = expect_refused(&mut r, what, error.then_some(BAD_MESSAGE), 1002);
        assert!(
            o.close_after.unwrap() < Duration::from_secs(1),
            "{what}: promptly ({:?})",
            start.elapsed()
        );
        assert_hub_still_serves(&hub);
    }
    let ws_after = hub.metric("poselink_errors_total{kind=\"websocket\"}");
    let with_error = cases.iter().filter(|c| c.2).count() as f64;
    assert!(
        ws_after >= ws_before + with_error,
        "{ws_before} -> {ws_after}"
    );

    // A close reason or a text message that is not UTF-8: an error, then 1007
    // (RFC 6455 §8.1), before the hello and in a session.
    for (k, (what, bytes)) in [
        (
            "a close with a reason that is not UTF-8",
            frame(FIN | OP_CLOSE, &[3, 232, 0xff, 0xfe]),
        ),
        (
            "a text message that is not UTF-8",
            frame(FIN | OP_TEXT, b"{\xc3\x28}"),
        ),
    ]
    .iter()
    .enumerate()
    {
        for session in [false, true] {
            let mut r = Raw::upgraded(hub.addr);
            if session {
                r.hello();
            }
            assert!(r.write(bytes), "{what}");
            let o = expect_refused(&mut r, what, Some(BAD_MESSAGE), 1007);
            assert!(
                o.errors().iter().any(|e| e.2.contains("not valid UTF-8")),
                "{what} ({k}): {o:?}"
            );
            assert_hub_still_serves(&hub);
        }
    }

    // A well-formed close is answered with the same code, and the hub lets go.
    let mut r = Raw::upgraded(hub.addr);
    r.hello();
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    assert!(r.write(&frame(FIN | OP_CLOSE, &payload)));
    let o = expect_refused(&mut r, "a normal close", None, 1000);
    assert!(o.errors().is_empty(), "{o:?}");
    assert_hub_still_serves(&hub);
    wait_metric(&hub, "poselink_connections", 1.0);
}

/// RFC 6455 §7.4: 1005, 1006 and 1015 must never be sent in a close frame, and
/// codes below 1000 are not used; a close frame carrying one is a protocol error,
/// answered with an error naming the code, then 1002 (not echoed).
#[test]
fn close_frames_with_invalid_codes_get_1002() {
    let hub = TestHub::dev();
    for code in [0u16, 999, 1004, 1006, 1015] {
        let mut r = Raw::upgraded(hub.addr);
        r.hello();
        assert!(r.write(&frame(FIN | OP_CLOSE, &code.to_be_bytes())));
        let o = expect_refused(
            &mut r,
            &format!("close code {code}"),
            Some(BAD_MESSAGE),
            1002,
        );
        assert!(
            o.errors()
                .iter()
                .any(|e| e.2.contains(&format!("close code {code} "))),
            "{o:?}"
        );
        assert_hub_still_serves(&hub);
    }
}

// ---- oversize --------------------------------------------------------------------

#[test]
fn oversize_frames_close_with_1009_before_the_payload() {
    let hub = TestHub::dev(); // max_message: 65 536
    let oversize_before = hub.metric("poselink_errors_total{kind=\"oversize\"}");
    for (what, len, session) in [
        ("a 1 MiB frame", 1u64 << 20, true),
        ("a 65 537-byte frame", 65_537, false),
        ("a 2^62-byte frame", 1 << 62, true),
    ] {
        let mut r = Raw::upgraded(hub.addr);
        if session {
            r.hello();
        }
        // The header only: the hub must refuse it before any payload arrives.
        let start = Instant::now();
        assert!(r.write(&frame_header(FIN | OP_BIN, len, Some(MASK))));
        let o = expect_refused(&mut r, what, Some(OVERSIZE), 1009);
        let at = o.close_after.unwrap();
        assert!(
            at < Duration::from_secs(1),
            "{what}: refused after {at:?} ({:?} in all)",
            start.elapsed()
        );
        assert_hub_still_serves(&hub);
    }

    // Fragments that together exceed max_message: two big ones...
    let mut r = Raw::upgraded(hub.addr);
    r.hello();
    let piece = vec![0x11u8; 40_000];
    let _ = r.write(&[frame(OP_BIN, &piece), frame(FIN | OP_CONT, &piece)].concat());
    expect_refused(&mut r, "two 40 000-byte fragments", Some(OVERSIZE), 1009);
    assert_hub_still_serves(&hub);

    // ... or many small ones, with pings between them.
    let mut r = Raw::upgraded(hub.addr);
    r.hello();
    let piece = vec![0x22u8; 1_000];
    let mut bytes = frame(OP_BIN, &piece);
    for k in 0..80 {
        bytes.extend(frame(OP_CONT, &piece));
        if k % 10 == 0 {
            bytes.extend(frame(FIN | OP_PING, b"between"));
        }
    }
    bytes.extend(frame(FIN | OP_CONT, &piece));
    let _ = r.write(&bytes);
    let o = expect_refused(&mut r, "82 fragments of 1000 bytes", Some(OVERSIZE), 1009);
    assert!(
        !o.pongs.is_empty(),
        "the pings before the limit were answered"
    );
    assert_hub_still_serves(&hub);

    let oversize_after = hub.metric("poselink_errors_total{kind=\"oversize\"}");
    assert!(
        oversize_after >= oversize_before + 5.0,
        "{oversize_before} -> {oversize_after}"
    );
    wait_metric(&hub, "poselink_connections", 1.0);
}

/// A message of exactly max_message bytes is within the limit, however many
/// messages came before it in the same read.
#[test]
fn a_max_size_message_after_small_ones_is_accepted() {
    let hub = TestHub::dev();
    let mut r = Raw::upgraded(hub.addr);
    let member = r.hello();
    let mut bytes = Vec::new();
    for t0 in 1..=40u64 {
        bytes.extend(frame(FIN | OP_BIN, &ping_msg(t0, member)));
    }
    let big = frame(FIN | OP_BIN, &padded_ping(41, member, 65_536));
    // The small messages and the start of the big one arrive together, the rest later.
    bytes.extend_from_slice(&big[..1_000]);
    assert!(r.write(&bytes));
    std::thread::sleep(Duration::from_millis(50));
    assert!(r.write(&big[1_000..]));
    let mut seen = Vec::new();
    while seen.len() < 41 {
        match r.next(T) {
            Some(Ev::Msg(g)) => {
                assert_eq!(error_of(&g), None, "after pongs {seen:?}");
                if let Some(t0) = pong_t0(&g) {
                    seen.push(t0);
                }
            }
            Some(Ev::Close(code, why)) => panic!("closed with {code} ({why}) after pongs {seen:?}"),
            Some(Ev::End(e)) => panic!("{e} after pongs {seen:?}"),
            Some(_) => {}
            None => panic!("no answer after pongs {seen:?}"),
        }
    }
    assert_eq!(seen, (1..=41).collect::<Vec<u64>>());
    assert_hub_still_serves(&hub);
}

// ---- fragmentation ---------------------------------------------------------------

/// A hello in 3 fragments with a ping between them: the pong comes first, then the
/// welcome; sent in one write, frame by frame, byte by byte, and pipelined with the
/// upgrade request.
#[test]
fn a_fragmented_hello_with_a_ping_between_is_assembled() {
    let hub = TestHub::dev();
    let hello = hello_msg("a client that fragments its hello");
    let (a, rest) = hello.split_at(7);
    let (b, c) = rest.split_at(rest.len() / 2);
    let frames = [
        frame(OP_BIN, a),
        frame(FIN | OP_PING, b"are you there"),
        frame(OP_CONT, b),
        frame(OP_CONT, b""),
        frame(FIN | OP_CONT, c),
    ];
    for (k, how) in [
        "one write",
        "frame by frame",
        "byte by byte",
        "with the upgrade request",
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = if how == "with the upgrade request" {
            let mut r = Raw::tcp(hub.addr);
            assert!(r.write(&[upgrade_request(), frames.concat()].concat()));
            r.read_upgrade_response();
            r
        } else {
            Raw::upgraded(hub.addr)
        };
        match how {
            "frame by frame" => {
                for f in &frames {
                    assert!(r.write(f));
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            "byte by byte" => {
                for byte in frames.concat() {
                    assert!(r.write(&[byte]));
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            "one write" => assert!(r.write(&frames.concat())),
            _ => {}
        }
        let mut pong_first = false;
        let welcome = loop {
            match r.next(T) {
                Some(Ev::Pong(p)) => {
                    assert_eq!(p, b"are you there", "{how}");
                    pong_first = true;
                }
                Some(Ev::Msg(g)) => break g,
                other => panic!("{how}: {other:?}"),
            }
        };
        assert!(
            pong_first,
            "{how}: the ping between the fragments is answered first"
        );
        let member = welcome.with(|m| match m {
            Message::Welcome(w) => w.member,
            other => panic!("{how}: {other:?}"),
        });
        assert_ne!(member, 0);
        // The session works: a join, and a big message in fragments with a ping.
        r.join(&format!("fragments-{k}"), member);
        let big = padded_ping(77, member, 30_000);
        let (x, rest) = big.split_at(10_000);
        let (y, z) = rest.split_at(10_000);
        let bytes = [
            frame(OP_BIN, x),
            frame(FIN | OP_PING, b"p2"),
            frame(OP_CONT, y),
            frame(FIN | OP_CONT, z),
        ]
        .concat();
        assert!(r.write(&bytes));
        let mut pong = false;
        let answer = loop {
            match r.next(T) {
                Some(Ev::Pong(p)) => pong = p == b"p2",
                Some(Ev::Msg(g)) if g.kind() == Kind::Pong => break g,
                Some(Ev::Msg(g)) => panic!("{how}: {:?}", error_of(&g)),
                Some(Ev::Ping) => {}
                other => panic!("{how}: {other:?}"),
            }
        };
        assert!(pong, "{how}");
        assert_eq!(pong_t0(&answer), Some(77), "{how}");
        assert_hub_still_serves(&hub);
    }
}
