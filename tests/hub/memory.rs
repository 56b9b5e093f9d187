//! The hub's memory ceiling holds: the `poselink hub` binary (TLS on, a small
//! table of 24 connections) states its ceiling at start; every slot is then
//! filled as an attack would fill it — every connection a TLS session
//! publishing audio into a room whose other member does not read (so the
//! media queues hold their full depth of distinct blocks), a large message
//! into every receive buffer, the four HTTP-only slots each asking over TLS
//! for the largest page and reading nothing — twice over, and the process's
//! peak resident memory stays under the figure it stated, after more than
//! half of its tables became resident.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Client, Conn, TlsFiles, audio_message};
use poselink::proto::Role;

const CONNECTIONS: usize = 24;
const CHUNKS: u32 = 1000;

fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
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

#[test]
fn a_hub_with_every_slot_filled_stays_under_its_stated_memory_ceiling() {
    let files = TlsFiles::local("memory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_poselink"))
        .args(["hub", "--dev", "--listen", "127.0.0.1:0"])
        .args(["--max-connections", &CONNECTIONS.to_string()])
        .args(["--max-rooms", "24", "--max-members", "4"])
        .arg("--tls-cert")
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&files.key)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut addr, mut ceiling, mut tables) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while addr.is_none() || ceiling.is_none() {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            panic!("the hub did not state its address and memory ceiling");
        };
        if let Some(rest) = line.split("hub listening on ").nth(1) {
            addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
        }
        if let Some(rest) = line.split("memory: at most ").nth(1) {
            let bytes = rest.split('(').nth(1).and_then(|r| r.split(' ').next());
            ceiling = bytes.and_then(|b| b.parse::<u64>().ok());
            let mib = rest.split("): ").nth(1).and_then(|r| r.split(' ').next());
            tables = mib.and_then(|m| m.parse::<f64>().ok());
        }
    }
    let (addr, ceiling) = (addr.unwrap(), ceiling.unwrap());
    let tables = (tables.expect("the tables' size in the memory line") * 1048576.0) as u64;
    let start_kib = status_kib(pid, "VmRSS:");
    for w in 0..2 {
        wave(addr, &files.ca_pem, w);
    }
    let peak = status_kib(pid, "VmHWM:") * 1024;
    let now = status_kib(pid, "VmRSS:") * 1024;
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
