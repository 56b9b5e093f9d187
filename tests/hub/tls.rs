//! The hub with a certificate (`tls_cert`/`tls_key`): sessions and pages over
//! TLS; plain clients on the TLS port and TLS clients on a plain port refused
//! in words and counted; garbage and truncated records closing that connection
//! only; a client stopping mid-handshake closed at the handshake timeout; the
//! certificate reloaded with every open connection kept.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;
use poselink::hub::HubConfig;
use poselink::proto::{Kind, Role};

fn fault(hub: &TestHub, kind: &str) -> f64 {
    hub.metric(&format!("poselink_errors_total{{kind=\"{kind}\"}}"))
}

/// A publisher and a viewer in one room over TLS; the viewer gets `n` poses.
fn relay_works(hub: &TestHub, room: &str, n: usize) {
    let mut publisher = Client::session_with(hub, "");
    let r = publisher.join(room, Role::Member).unwrap();
    let mut viewer = Client::session_with(hub, "");
    viewer.join(room, Role::Viewer).unwrap();
    while viewer.recv(Duration::from_millis(50)).is_some() {}
    assert_eq!(
        poses_through(&mut publisher, r, &mut viewer, n, 3),
        n,
        "every pose relayed over TLS"
    );
}

/// Sends `n` poses (paced) from `publisher` into room `r` and counts those
/// `viewer` receives within 5 s.
fn poses_through(
    publisher: &mut Client,
    r: u16,
    viewer: &mut Client,
    n: usize,
    seed: u64,
) -> usize {
    let mut poses = PoseStream::new(seed);
    for k in 0..n {
        if k % 20 == 19 {
            // Paced: this is about TLS, not the drop policy.
            std::thread::sleep(Duration::from_millis(5));
        }
        let m = poses.next(r, publisher.member).to_vec();
        publisher.send_bytes(&m);
    }
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got < n && Instant::now() < deadline {
        if viewer
            .recv(Duration::from_millis(100))
            .is_some_and(|g| g.kind() == Kind::Pose)
        {
            got += 1;
        }
    }
    got
}

#[test]
fn sessions_relay_and_pages_are_served_over_tls() {
    let files = TlsFiles::local("relay");
    let hub = TestHub::start_tls(HubConfig::local_dev(), &files);
    relay_works(&hub, "tls-room", 200);
    let (status, body) = hub.http_get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    assert!(hub.metric("poselink_connections") >= 0.0);
    let (status, body) = hub.http_get("/");
    assert_eq!(status, 200);
    assert!(
        body.contains("<html") || body.contains("<!doctype"),
        "{body}"
    );
}

#[test]
fn a_plain_client_on_the_tls_port_is_told_to_use_tls() {
    let files = TlsFiles::local("plain-on-tls");
    let hub = TestHub::start_tls(HubConfig::local_dev(), &files);
    let mut s = TcpStream::connect(hub.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("wss://") && out.contains("https://"), "{out}");
    assert_eq!(fault(&hub, "tls_mismatch"), 1.0);
    // The hub goes on serving TLS clients.
    relay_works(&hub, "after", 10);
}

#[test]
fn a_tls_client_on_a_plain_port_is_refused_and_counted() {
    let files = TlsFiles::local("tls-on-plain");
    let hub = TestHub::dev();
    let tcp = TcpStream::connect(hub.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cfg = poselink::tls::client_config_from_pem(Some(files.ca_pem.as_bytes()), false).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let e = loop {
        match s.conn.complete_io(&mut s.sock) {
            Ok(_) if s.conn.is_handshaking() => {}
            Ok(_) => panic!("a TLS handshake with a plain hub succeeded"),
            Err(e) => break e,
        }
    };
    assert!(
        e.to_string().to_lowercase().contains("invalid")
            || e.kind() == std::io::ErrorKind::InvalidData,
        "{e}"
    );
    assert_eq!(fault(&hub, "tls_mismatch"), 1.0);
    let mut c = Client::session(hub.addr, "");
    c.join("still-serving", Role::Member).unwrap();
}

/// A TLS connection with its handshake done, for writing raw records after it.
fn tls_raw(hub: &TestHub) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    match Conn::open(hub.addr, hub.ca_pem.as_deref()) {
        Conn::Tls(s) => *s,
        Conn::Plain(_) => unreachable!(),
    }
}

/// Whether the hub closed `s` within `within` (read gives 0 or an error).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn garbage_and_truncated_records_close_that_connection_only() {
    let files = TlsFiles::local("garbage");
    let hub = TestHub::start_tls(HubConfig::local_dev(), &files);
    // An honest pair keeps a session open through all of it.
    let mut publisher = Client::session_with(&hub, "");
    let r = publisher.join("honest", Role::Member).unwrap();
    let mut viewer = Client::session_with(&hub, "");
    viewer.join("honest", Role::Viewer).unwrap();

    // 1. After the handshake, an application-data record that does not open.
    let mut s = tls_raw(&hub);
    let mut junk = vec![23u8, 3, 3, 0, 40];
    junk.extend((0..40u8).map(|i| i.wrapping_mul(37)));
    s.sock.write_all(&junk).unwrap();
    assert!(
        closed_within(&mut s.sock, Duration::from_secs(3)),
        "a forged record closes the connection"
    );

    // 2. A record header announcing more than TLS allows.
    let mut s = tls_raw(&hub);
    s.sock.write_all(&[23, 3, 3, 0xff, 0xff, 1, 2, 3]).unwrap();
    assert!(
        closed_within(&mut s.sock, Duration::from_secs(3)),
        "an oversized record closes the connection"
    );

    // 3. Half a record, then the client goes away.
    let mut s = tls_raw(&hub);
    s.sock.write_all(&[23, 3, 3, 0, 100, 9, 9, 9]).unwrap();
    s.sock.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_within(&mut s.sock, Duration::from_secs(3)));

    // 4. Garbage in place of a ClientHello (a handshake record type, then junk).
    let mut raw = TcpStream::connect(hub.addr).unwrap();
    raw.write_all(&[22, 3, 1, 0, 20]).unwrap();
    raw.write_all(&[0xAB; 20]).unwrap();
    assert!(
        closed_within(&mut raw, Duration::from_secs(3)),
        "a garbage hello closes the connection"
    );

    assert!(
        fault(&hub, "tls") >= 4.0,
        "each counted: {}",
        fault(&hub, "tls")
    );
    // The honest session never noticed.
    assert_eq!(poses_through(&mut publisher, r, &mut viewer, 20, 5), 20);
}

#[test]
fn a_client_stopping_mid_handshake_is_closed_at_the_timeout() {
    let files = TlsFiles::local("slowloris");
    let hub = TestHub::start_tls(
        HubConfig {
            handshake_timeout_ms: 300,
            ..HubConfig::local_dev()
        },
        &files,
    );
    // The first bytes of a ClientHello, and then nothing.
    let mut raw = TcpStream::connect(hub.addr).unwrap();
    raw.write_all(&[22, 3, 1, 1, 0, 1, 0, 0]).unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut raw, Duration::from_secs(5)),
        "closed at the timeout"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "not before the timeout: {took:?}"
    );
    assert_eq!(fault(&hub, "handshake_timeout"), 1.0);
    // A complete handshake that never sends its HTTP request is closed too.
    let mut s = tls_raw(&hub);
    assert!(closed_within(&mut s.sock, Duration::from_secs(5)));
    assert_eq!(fault(&hub, "handshake_timeout"), 2.0);
}

#[test]
fn a_reloaded_certificate_serves_new_connections_and_keeps_open_ones() {
    let first = TlsFiles::local("reload");
    let hub = TestHub::start_tls(HubConfig::local_dev(), &first);
    let mut publisher = Client::session_with(&hub, "");
    let r = publisher.join("reload", Role::Member).unwrap();
    let mut viewer = Client::session_with(&hub, "");
    viewer.join("reload", Role::Viewer).unwrap();

    // New files in the same places, from another CA; then the reload.
    let second = TlsFiles::local("reload-2");
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    hub.handle.reload_tls();
    let deadline = Instant::now() + Duration::from_secs(5);
    // A client trusting only the new CA gets in once the reload ran.
    let mut fresh = loop {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        let tcp = TcpStream::connect(hub.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let cfg =
            poselink::tls::client_config_from_pem(Some(second.ca_pem.as_bytes()), false).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut s =
            rustls::StreamOwned::new(rustls::ClientConnection::new(cfg, name).unwrap(), tcp);
        let mut ok = true;
        while s.conn.is_handshaking() {
            if s.conn.complete_io(&mut s.sock).is_err() {
                ok = false;
                break;
            }
        }
        if ok {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    write!(fresh, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = fresh.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // The connections made before the reload still relay.
    assert_eq!(
        poses_through(&mut publisher, r, &mut viewer, 10, 9),
        10,
        "open connections kept through the reload"
    );
    // A reload whose files are broken keeps the certificate in service.
    std::fs::write(&first.key, "not a key").unwrap();
    hub.handle.reload_tls();
    std::thread::sleep(Duration::from_millis(100));
    let mut c = Client::connect_to(hub.addr, Some(&second.ca_pem));
    c.hello("")
        .expect("the reloaded certificate stays after a failed reload");
}
