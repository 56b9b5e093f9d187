//! The `poselink hub` binary as an operator runs it: started with `--dev` on a
//! free loopback port, serving a session, then SIGTERM: every connection gets
//! "going away" (error and WebSocket close 1001) and the process exits 0; and
//! SIGHUP: the TLS certificate reloaded, every session kept.

use std::time::{Duration, Instant};

use crate::common::{Client, address, spawn_hub};
use poselink::proto::Role;

#[test]
fn sigterm_closes_every_connection_with_going_away_and_exits_zero() {
    let (mut child, _lines, log) = spawn_hub(&[]);
    let addr = address(&log);
    assert!(
        log.iter().any(|l| l.contains("DEV MODE")),
        "dev mode is announced loudly: {log:?}"
    );
    let mut c = Client::session(addr, "");
    c.join("term", Role::Member).unwrap();

    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let err = c
        .recv_until(Duration::from_secs(5), |g| g.error().is_some())
        .expect("an error before the close");
    assert_eq!(err.error().unwrap().0, 15, "GOING_AWAY");
    let (code, _) = c.expect_close(Duration::from_secs(5));
    assert_eq!(code, 1001);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the hub did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_the_sessions() {
    let first = crate::common::TlsFiles::local("sighup");
    let args = [
        "--tls-cert".as_ref(),
        first.cert.as_os_str(),
        "--tls-key".as_ref(),
        first.key.as_os_str(),
    ];
    let (mut child, rx, log) = spawn_hub(&args);
    let addr = address(&log);
    assert!(log.last().unwrap().contains("TLS"), "{log:?}");
    let mut c = Client::connect_to(addr, Some(&first.ca_pem));
    c.hello("").unwrap();
    c.join("hup", Role::Member).unwrap();

    let second = crate::common::TlsFiles::local("sighup-2");
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the hub logs the reload");
        if line.contains("TLS certificate reloaded") {
            break;
        }
    }
    let mut fresh = Client::connect_to(addr, Some(&second.ca_pem));
    fresh.hello("").expect("the new certificate is served");
    // The session from before the reload is still there.
    c.join("hup-2", Role::Member)
        .expect("the old session goes on");
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP does not stop the hub"
    );
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}
