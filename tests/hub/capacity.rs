//! The connection table's limit over real sockets: an upgrade beyond
//! `max_connections` gets `503 Service Unavailable` with a sentence; the hub
//! keeps serving the others, and takes new connections once slots free up. A
//! full hub is alive (`/healthz` 200) but not ready (`/readyz` 503 with the
//! reason), and ready again once a slot frees up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;
use poselink::hub::HubConfig;
use poselink::proto::{Kind, Role};

#[test]
fn a_connection_beyond_the_table_gets_503_and_the_others_carry_on() {
    let hub = TestHub::start(HubConfig {
        max_connections: 3,
        ..HubConfig::local_dev()
    });
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let mut c = Client::session(hub.addr, "");
    let h = a.join("full", Role::Member).unwrap();
    b.join("full", Role::Member).unwrap();

    let answer = raw_request(hub.addr, UPGRADE);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.contains("hub_full") && answer.contains("maximum number of connections"),
        "{answer:?}"
    );

    // The sessions are unaffected.
    let mut s = PoseStream::new(5);
    let m = s.next(h, a.member).to_vec();
    a.send_bytes(&m);
    let got = b
        .recv_until(Duration::from_secs(5), |g| g.kind() == Kind::Pose)
        .expect("relayed");
    assert_eq!(got.bytes, m);

    // A slot frees up: a new connection is served again (here: the metrics page).
    drop(c.ws.close(None));
    let _ = c.recv(Duration::from_millis(200));
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = hub.http_get("/metrics");
        if status == 200 {
            assert!(
                body.contains("poselink_errors_total{kind=\"hub_full\"} 1"),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Sends `request` on a new connection and reads the answer until the hub
/// closes (at most 5 s).
fn raw_request(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(request);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn a_full_hub_is_alive_but_not_ready_until_a_slot_frees_up() {
    let hub = TestHub::start(HubConfig {
        max_connections: 2,
        ..HubConfig::local_dev()
    });
    let (status, body) = hub.http_get("/readyz");
    assert_eq!(
        (status, body.as_str()),
        (200, "ready: 2 of 2 connection slots free\n")
    );
    let a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");

    // Every slot holds a session: alive, not ready, and says why.
    assert_eq!(hub.http_get("/healthz"), (200, "ok\n".to_string()));
    let (status, body) = hub.http_get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("all 2 connection slots") && body.contains("raise max_connections"),
        "{body}"
    );
    // Several probes at once still get answers (the HTTP-only slots).
    let probes: Vec<_> = (0..3)
        .map(|_| {
            let addr = hub.addr;
            std::thread::spawn(move || {
                raw_request(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            })
        })
        .collect();
    for p in probes {
        let answer = p.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
    assert!(hub.metric("poselink_sessions") == 2.0);

    // A session ends: ready again.
    drop(b.ws.close(None));
    let _ = b.recv(Duration::from_millis(200));
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = hub.http_get("/readyz");
        if status == 200 {
            assert_eq!(body, "ready: 1 of 2 connection slots free\n");
            break;
        }
        assert!(Instant::now() < deadline, "not ready again: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(a);
}
