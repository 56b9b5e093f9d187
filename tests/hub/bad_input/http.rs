//! HTTP garbage, oversized heads, a TLS hello on the plain port, and silence.

use super::*;

// ---- HTTP ------------------------------------------------------------------------

#[test]
fn garbage_instead_of_http_gets_400_and_the_hub_serves_on() {
    let hub = TestHub::dev();
    let http_before = hub.metric("poselink_errors_total{kind=\"http\"}");
    let mut tls_like = tls_client_hello();
    tls_like.extend_from_slice(b"\r\n\r\n");
    let mut random: Vec<u8> = xorshift_bytes(0x2545_f491, 600)
        .into_iter()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    random.extend_from_slice(b"\r\n\r\n");
    let no_key = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
    let cases: [(&str, Vec<u8>); 5] = [
        ("TLS ClientHello bytes", tls_like),
        ("random bytes", random),
        (
            "a POST",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        ("an upgrade without a key", no_key),
        (
            "a NUL-laden request line",
            b"GET /\0\0\0 HTTP/1.1\r\n\r\n".to_vec(),
        ),
    ];
    for (what, bytes) in &cases {
        let a = http_exchange(hub.addr, bytes, T);
        assert_eq!(a.status, Some(400), "{what}: {}", a.head);
        assert!(
            a.body.contains("poselink hub"),
            "{what}: the body says what this is: {:?}",
            a.body
        );
        assert!(
            a.body.contains("WebSocket"),
            "{what}: and what to do: {:?}",
            a.body
        );
        assert!(
            a.head.to_ascii_lowercase().contains("connection: close"),
            "{what}: {}",
            a.head
        );
        assert!(a.closed, "{what}: the hub closes the connection");
        assert_hub_still_serves(&hub);
    }

    // The front page (the browser front end), then a path that is nothing.
    let (status, body) = hub.http_get("/");
    assert_eq!(status, 200);
    assert!(
        body.contains("<html") && body.contains("/index.js"),
        "{body}"
    );
    let (status, body) = hub.http_get("/no/such/page?x=1");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("poselink hub"), "{body}");
    let (status, body) = hub.http_get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = hub.http_get("/metrics");
    assert_eq!(status, 200);
    assert!(
        body.lines().any(|l| l.starts_with("poselink_connections ")),
        "{body}"
    );
    let http_after = hub.metric("poselink_errors_total{kind=\"http\"}");
    assert!(
        http_after >= http_before + cases.len() as f64,
        "every bad request is counted: {http_before} -> {http_after}"
    );
    assert_hub_still_serves(&hub);
}

/// A bad request is one HTTP error, counted once.
/// A request head that comes in pieces (a slow network, or a client that
/// writes header by header) is kept until it is whole; the hello that comes in
/// the same write as its last piece is the session's first message. Two such
/// clients at once, interleaved, so that neither's bytes can land in the
/// other's head.
#[test]
fn a_request_head_in_pieces_is_assembled() {
    let hub = TestHub::dev();
    let req = upgrade_request();
    let (a, rest) = req.split_at(9);
    let (b, c) = rest.split_at(40);
    let mut last = c.to_vec();
    last.extend_from_slice(&frame(FIN | OP_BIN, &hello_msg("pieces")));
    let mut one = Raw::tcp(hub.addr);
    let mut two = Raw::tcp(hub.addr);
    for piece in [a, b] {
        assert!(one.write(piece));
        std::thread::sleep(Duration::from_millis(30));
        assert!(two.write(piece));
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(one.write(&last));
    assert!(two.write(&last));
    for raw in [&mut one, &mut two] {
        raw.read_upgrade_response();
        let w = raw
            .recv_msg(T, |g| matches!(g.kind(), Kind::Welcome | Kind::Error))
            .expect("an answer to the hello");
        assert_eq!(w.kind(), Kind::Welcome, "{:?}", w.error());
    }
    assert_hub_still_serves(&hub);
}

#[test]
fn a_bad_request_is_counted_once() {
    let hub = TestHub::dev();
    let before = hub.metric("poselink_errors_total{kind=\"http\"}");
    let a = http_exchange(hub.addr, b"HELLO?\r\n\r\n", T);
    assert_eq!(a.status, Some(400));
    let after = hub.metric("poselink_errors_total{kind=\"http\"}");
    assert_eq!(after - before, 1.0, "one bad request, one count");
}

/// A TLS client (someone pointing `wss://` or `https://` at the hub's plain port)
/// never sends a blank line: its ClientHello must be refused when it arrives, not
/// held until the handshake timeout.
#[test]
fn tls_client_hello_is_refused_at_once() {
    let hub = TestHub::start(HubConfig {
        handshake_timeout_ms: 3_000,
        ..HubConfig::local_dev()
    });
    let a = http_exchange(hub.addr, &tls_client_hello(), Duration::from_millis(1_500));
    assert_eq!(
        a.status,
        Some(400),
        "an HTTP 400 within 1.5 s, got {:?} after {:?}",
        a.head,
        a.elapsed
    );
    assert!(a.body.contains("poselink hub"), "{:?}", a.body);
    assert!(a.closed);
    assert_hub_still_serves(&hub);
}

#[test]
fn an_oversized_request_head_gets_431() {
    let hub = TestHub::dev();
    let before = hub.metric("poselink_errors_total{kind=\"http\"}");
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    while head.len() < 9 * 1024 {
        head.extend_from_slice(
            b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    let a = http_exchange(hub.addr, &head, T);
    assert_eq!(a.status, Some(431), "{}", a.head);
    assert!(a.body.contains("8 KiB"), "{:?}", a.body);
    assert!(a.closed, "the hub closes the connection");
    assert!(hub.metric("poselink_errors_total{kind=\"http\"}") > before);
    assert_hub_still_serves(&hub);

    // The same, dripped in 1 KiB pieces.
    let mut s = TcpStream::connect(hub.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    for chunk in head.chunks(1024) {
        if s.write_all(chunk).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut got = Vec::new();
    let start = Instant::now();
    let mut tmp = [0u8; 1024];
    while start.elapsed() < T {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) if !got.is_empty() => break,
            Ok(n) => got.extend_from_slice(&tmp[..n]),
            Err(_) => {}
        }
    }
    assert!(
        got.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_hub_still_serves(&hub);
}

// ---- silence ---------------------------------------------------------------------

#[test]
fn silent_connections_time_out() {
    let hub = TestHub::start(HubConfig {
        handshake_timeout_ms: 300,
        ..HubConfig::local_dev()
    });
    let timeouts = || hub.metric("poselink_errors_total{kind=\"handshake_timeout\"}");
    let unauth = || hub.metric("poselink_errors_total{kind=\"unauthenticated\"}");
    let before = timeouts();

    // Connected, nothing sent.
    let start = Instant::now();
    let mut r = Raw::tcp(hub.addr);
    let o = r.drain(T);
    let took = start.elapsed();
    assert!(o.ended.is_some(), "a silent connection is closed: {o:?}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1_500),
        "closed after {took:?}"
    );
    assert_eq!(timeouts(), before + 1.0);
    assert_hub_still_serves(&hub);

    // Half a request head, then silence.
    let start = Instant::now();
    let mut r = Raw::tcp(hub.addr);
    assert!(r.write(b"GET / HTTP/1.1\r\nHost: x\r\n"));
    let o = r.drain(T);
    assert!(o.ended.is_some(), "a half request is closed: {o:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(timeouts(), before + 2.0);
    assert_hub_still_serves(&hub);

    // A request dripped one byte every 50 ms (slowloris): the deadline holds.
    let start = Instant::now();
    let mut r = Raw::tcp(hub.addr);
    let drip =
        b"GET / HTTP/1.1\r\nHost: slowloris.example\r\nX-A: bbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n";
    let mut closed_after = None;
    for &b in drip.iter() {
        if !r.write(&[b]) {
            closed_after = Some(start.elapsed());
            break;
        }
        r.fill();
        if r.end.is_some() {
            closed_after = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let closed_after = closed_after.expect("a dripping client is closed at the deadline");
    assert!(
        closed_after < Duration::from_millis(1_500),
        "closed after {closed_after:?}"
    );
    assert_eq!(timeouts(), before + 3.0);
    assert_hub_still_serves(&hub);

    // Upgraded, but no hello: UNAUTHENTICATED and 4003 after the timeout.
    let unauth_before = unauth();
    let mut r = Raw::upgraded(hub.addr);
    let start = Instant::now();
    let o = expect_refused(&mut r, "no hello", Some(UNAUTHENTICATED), 4003);
    let at = o.close_after.unwrap();
    assert!(
        at >= Duration::from_millis(250) && at < Duration::from_millis(1_500),
        "closed after {at:?}"
    );
    assert!(start.elapsed() < T);
    assert_eq!(o.errors()[0].1, 0, "about 0: no message caused it");
    assert!(o.errors()[0].2.contains("hello"), "{:?}", o.errors());
    assert_eq!(timeouts(), before + 4.0);
    assert_eq!(unauth(), unauth_before + 1.0);
    assert_hub_still_serves(&hub);

    // The same through tungstenite.
    let mut c = Client::connect(hub.addr);
    let e = c
        .recv_until(T, |g| g.kind() == Kind::Error)
        .expect("an error before the close");
    assert_eq!(e.error().unwrap().0, UNAUTHENTICATED);
    assert_eq!(c.expect_close(T).0, 4003);
    assert_hub_still_serves(&hub);
    wait_metric(&hub, "poselink_connections", 1.0); // the metrics request itself
}
