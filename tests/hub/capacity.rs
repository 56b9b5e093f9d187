//! The connection table's limit over real sockets: a connection beyond
//! `max_connections` gets `503 Service Unavailable` with a sentence and is closed;
//! the hub keeps serving the others, and takes new connections once slots free up.

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

    let mut extra = TcpStream::connect(hub.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.contains("maximum number of connections"),
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
