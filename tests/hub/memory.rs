//! The hub's memory ceiling holds: the `poselink hub` binary (TLS on, a small
//! table of 24 connections) states its ceiling at start; every slot is then
//! filled as an attack would fill it — every connection a TLS session
//! publishing audio into a room whose other member does not read (so the
//! media queues hold their full depth of distinct blocks), a large message
//! into every receive buffer, the four HTTP-only slots each asking over TLS
//! for the largest page and reading nothing — twice over, and the process's
//! peak resident memory stays under the figure it stated, after more than
//! half of its tables became resident. And churn over real sockets gives every
//! resource back.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::{Client, Conn, TlsFiles, audio_message, http_get_at, metric_in};
use poselink::proto::Role;

const CONNECTIONS: usize = 24;
const CHUNKS: u32 = 1000;

fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    poselink_hal::stats::parse_kb_field(&status, key).unwrap() / 1024
}

/// Shrinks the client's socket receive buffer, so a client that does not read
/// stops the hub's writes after a few kilobytes instead of the megabytes
/// loopback TCP would take: the hub's own queues then fill.
fn small_receive_buffer(c: &Client) {
    use std::os::fd::AsRawFd;
    let fd = c.ws.get_ref().tcp().as_raw_fd();
    let size: libc::c_int = 4096;
    // SAFETY: setting an integer socket option on a socket this test owns.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_RCVBUF");
}

/// One wave: every slot filled, held a moment, then let go.
fn wave(addr: std::net::SocketAddr, ca: &str, wave: usize) {
    let mut clients = Vec::new();
    for k in 0..CONNECTIONS {
        let mut c = Client::connect_to(addr, Some(ca));
        small_receive_buffer(&c);
        let member = c.hello("").expect("a session");
        let room = c
            .join(&format!("mem-{wave}-{}", k / 2), Role::Member)
            .expect("joined");
        clients.push((c, member, room));
    }
    // Every member publishes CHUNKS chunks (paced under the rate limits; more
    // than the hub's kernel send buffer takes on loopback) into a
    // room whose other member reads nothing.
    for seq in 1..=CHUNKS {
        for (c, member, room) in clients.iter_mut() {
            c.send_bytes(&audio_message(*room, *member, seq));
        }
        if seq % 50 == 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    // A large message into every receive buffer (refused: not a protocol
    // message; the connection stays).
    let big = vec![0x5au8; 60 * 1024];
    for (c, _, _) in clients.iter_mut() {
        c.send_bytes(&big);
    }
    // The HTTP-only slots: each asks for the largest page and reads nothing.
    let pages: Vec<_> = (0..4)
        .map(|_| {
            let mut s = Conn::open(addr, Some(ca));
            s.write_all(b"GET /poselink.js HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s.flush().unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    drop(pages);
    drop(clients);
    std::thread::sleep(Duration::from_millis(300));
}

/// A `poselink hub --dev` process on a free loopback port with `args`: the
/// child, its address, its stated memory ceiling and tables (bytes).
fn spawn_hub(args: &[&std::ffi::OsStr]) -> (std::process::Child, std::net::SocketAddr, u64, u64) {
    let (mut child, rx, log) = crate::common::spawn_hub(args);
    let addr = crate::common::address(&log);
    let (mut ceiling, mut tables) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ceiling.is_none() {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            panic!("the hub did not state its memory ceiling");
        };
        if let Some(rest) = line.split("memory: at most ").nth(1) {
            let bytes = rest.split('(').nth(1).and_then(|r| r.split(' ').next());
            ceiling = bytes.and_then(|b| b.parse::<u64>().ok());
            let mib = rest.split("): ").nth(1).and_then(|r| r.split(' ').next());
            tables = mib.and_then(|m| m.parse::<f64>().ok());
        }
    }
    // The rest of its log is not read: drain it so the hub never blocks on it.
    std::thread::spawn(move || for _ in rx {});
    let tables = (tables.expect("the tables' size in the memory line") * 1048576.0) as u64;
    (child, addr, ceiling.unwrap(), tables)
}

#[test]
fn a_hub_with_every_slot_filled_stays_under_its_stated_memory_ceiling() {
    let files = TlsFiles::local("memory");
    let connections = CONNECTIONS.to_string();
    let (mut child, addr, ceiling, tables) = spawn_hub(&[
        "--max-connections".as_ref(),
        connections.as_ref(),
        "--max-rooms".as_ref(),
        "24".as_ref(),
        "--max-members".as_ref(),
        "4".as_ref(),
        "--tls-cert".as_ref(),
        files.cert.as_os_str(),
        "--tls-key".as_ref(),
        files.key.as_os_str(),
    ]);
    let pid = child.id();
    let start_kib = status_kib(pid, "VmRSS");
    for w in 0..2 {
        wave(addr, &files.ca_pem, w);
    }
    let peak = status_kib(pid, "VmHWM") * 1024;
    let now = status_kib(pid, "VmRSS") * 1024;
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "memory ceiling {ceiling} B (tables {tables} B); resident at start {} B, after two waves {now} B, peak {peak} B",
        start_kib * 1024
    );
    assert!(
        peak <= ceiling,
        "the hub's peak resident memory {peak} B passed the ceiling it stated, {ceiling} B"
    );
    // The waves did touch the tables (else this test would prove nothing):
    // over half of them became resident.
    assert!(
        peak > start_kib * 1024 + tables / 2,
        "two waves added {} KiB to {start_kib} KiB, under half the {} KiB of tables: the slots were not filled",
        peak / 1024 - start_kib,
        tables / 1024,
    );
}

/// `GET /metrics` of the hub process at `addr`: the value of `name`.
fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let (_, body) = http_get_at(addr, None, "/metrics");
    metric_in(&body, name).unwrap_or_else(|| panic!("metric {name} not in:\n{body}"))
}

/// Churn over real sockets: 2 000 connect → upgrade → hello → join → publish
/// → close cycles (half closing cleanly, half vanishing) against the hub
/// binary, beside an honest publisher and viewer. Afterwards `/metrics` shows
/// the connections, sessions, relay blocks and queues back where they were,
/// the churn's rooms gone after their grace period, the honest pair still
/// relaying; and the resident memory after the last 1 800 cycles within 2 MiB
/// of where the first 200 left it (the slots' pages are touched once, then
/// reused).
#[test]
fn two_thousand_churned_connections_give_every_resource_back() {
    let (mut child, addr, _, _) = spawn_hub(&[
        "--max-connections".as_ref(),
        "64".as_ref(),
        "--room-grace-ms".as_ref(),
        "300".as_ref(),
    ]);
    let pid = child.id();
    let mut publisher = Client::connect(addr);
    let pm = publisher.hello("").unwrap();
    let h = publisher.join("steady", Role::Member).unwrap();
    let mut viewer = Client::connect(addr);
    viewer.hello("").unwrap();
    viewer.join("steady", Role::Viewer).unwrap();
    let gauges = |addr| {
        [
            "poselink_connections",
            "poselink_sessions",
            "poselink_rooms",
            "poselink_relay_blocks_in_use",
            "poselink_queued_messages",
        ]
        .map(|n| metric(addr, n))
    };
    let baseline = gauges(addr);
    let mut after_warmup = 0;
    let mut sent = 0u32;
    for k in 0..2_000u32 {
        let mut c = Client::connect(addr);
        let member = c.hello("").expect("a session");
        let room = c
            .join(&format!("churn-{}", k % 8), Role::Member)
            .expect("joined");
        c.send_bytes(&audio_message(room, member, 1));
        if k % 2 == 0 {
            let _ = c.ws.close(None);
            let _ = c.ws.flush();
        }
        drop(c);
        if k % 50 == 0 {
            sent += 1;
            publisher.send_bytes(&audio_message(h, pm, sent));
        }
        if k == 199 {
            after_warmup = status_kib(pid, "VmRSS");
        }
    }
    // The closes are seen, the churn's rooms wait out their grace period.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let g = gauges(addr);
        if g == baseline || Instant::now() > deadline {
            break g;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let end = status_kib(pid, "VmRSS");
    let mut got = 0;
    while viewer
        .recv_until(Duration::from_secs(2), |g| {
            g.kind() == poselink::proto::Kind::Audio
        })
        .is_some()
    {
        got += 1;
        if got == sent {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        after, baseline,
        "connections, sessions, rooms, blocks in use and queued messages back to baseline"
    );
    assert_eq!(got, sent, "the honest viewer got every chunk");
    assert!(
        end <= after_warmup + 2048,
        "resident memory grew from {after_warmup} KiB after 200 cycles to {end} KiB after 2 000"
    );
}
