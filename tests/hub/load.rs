//! The hub under load, over real sockets on 127.0.0.1: a receiver that stops
//! reading loses media (counted) and is finally closed, while a fast receiver in
//! the same room gets everything with its latency unchanged; and 500 connections
//! at once, in 125 rooms, each relaying to its room.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::common::*;
use poselink::hub::HubConfig;
use poselink::proto::{Kind, Message, Packet, Role};
use poselink_hal::{Clock, MonotonicClock};

/// Raises the open-file limit to what 1000 sockets in one process need.
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a valid, owned rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn set_rcvbuf(fd: i32, bytes: i32) {
    // SAFETY: setsockopt with a valid fd and a pointer to an i32 of the stated size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        );
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn a_slow_receiver_loses_media_and_is_closed_without_delaying_a_fast_one() {
    let hub = TestHub::start(HubConfig {
        queue_depth: 64,
        stuck_timeout_ms: 1_500,
        rate_messages: 100_000,
        burst_messages: 10_000,
        rate_bytes: 1 << 30,
        burst_bytes: 1 << 30,
        ..HubConfig::local_dev()
    });
    let mut publisher = Client::session(hub.addr, "");
    let room = publisher.join("slow", Role::Member).unwrap();
    let mut fast = Client::session(hub.addr, "");
    fast.join("slow", Role::Viewer).unwrap();
    let mut slow = Client::session(hub.addr, "");
    slow.join("slow", Role::Viewer).unwrap();
    let slow_member = slow.member;
    // The slow one stops reading, with a tiny receive buffer.
    set_rcvbuf(slow.ws.get_ref().tcp().as_raw_fd(), 4096);

    let duration = Duration::from_secs(4);
    let reader = std::thread::spawn(move || {
        let clock = MonotonicClock::new();
        let mut latencies = Vec::with_capacity(20_000);
        let mut media = 0usize;
        let mut slow_left = None;
        let deadline = Instant::now() + duration + Duration::from_secs(3);
        while Instant::now() < deadline {
            let Some(g) = fast.recv(Duration::from_millis(100)) else {
                continue;
            };
            match g.kind() {
                Kind::Pose | Kind::Audio => {
                    media += 1;
                    let sent = g.header().ts_us;
                    latencies.push(clock.now_us().saturating_sub(sent));
                }
                Kind::MemberLeft => {
                    g.with(|m| {
                        if let Message::MemberLeft(l) = m
                            && l.member == slow_member
                        {
                            slow_left = Some(l.reason);
                        }
                    });
                }
                _ => {}
            }
        }
        (media, latencies, slow_left)
    });

    // 2000 messages/s, mostly 1.9 KB audio: about 4 MB/s, far more than the slow
    // receiver's socket can hold.
    let clock = MonotonicClock::new();
    let start = Instant::now();
    let mut sent = 0usize;
    let mut seq = 0u32;
    let mut stream = PoseStream::new(3);
    while start.elapsed() < duration {
        for _ in 0..20 {
            seq += 1;
            let mut m = if seq.is_multiple_of(4) {
                stream.next(room, publisher.member).to_vec()
            } else {
                audio_message(room, publisher.member, seq)
            };
            restamp(&mut m, clock.now_us());
            publisher.send_bytes(&m);
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (media, mut lat, slow_left) = reader.join().unwrap();
    lat.sort_unstable();
    let p99 = percentile(&lat, 0.99);
    eprintln!(
        "fast receiver: {media}/{sent} messages, latency p50 {} µs, p99 {p99} µs, max {} µs",
        percentile(&lat, 0.5),
        lat.last().copied().unwrap_or(0)
    );
    assert_eq!(media, sent, "the fast receiver lost nothing");
    assert!(
        p99 < 50_000,
        "the fast receiver's p99 latency stayed low: {p99} µs"
    );
    assert!(
        hub.metric("poselink_drops_total{reason=\"slow_receiver_audio\"}")
            + hub.metric("poselink_drops_total{reason=\"slow_receiver_pose\"}")
            > 0.0,
        "the slow receiver's drops were counted"
    );
    assert_eq!(
        hub.metric("poselink_errors_total{kind=\"slow_consumer\"}"),
        1.0
    );
    assert_eq!(
        slow_left,
        Some(poselink::proto::LeaveReason::TimedOut),
        "the room was told the slow receiver left"
    );
    drop(slow);
}

/// Rewrites a message's capture timestamp (and its CRC) so the receiver can
/// measure the relay's latency on the shared monotonic clock.
fn restamp(msg: &mut Vec<u8>, ts_us: u64) {
    let p = Packet::new_checked(&msg[..]).unwrap();
    let mut h = p.header();
    let old_hlen = h.buffer_len();
    let body = p.payload().to_vec();
    h.ts_us = ts_us;
    let mut out = vec![0u8; h.buffer_len() + body.len() + 4];
    let n = h.emit(&mut out).unwrap();
    out[n..n + body.len()].copy_from_slice(&body);
    let len = poselink::proto::seal(&mut out, n + body.len()).unwrap();
    out.truncate(len);
    let _ = old_hlen;
    *msg = out;
}

#[test]
fn five_hundred_connections_each_relaying_to_its_room() {
    raise_fd_limit(4096);
    let hub = TestHub::start(HubConfig {
        max_connections: 600,
        max_rooms: 200,
        ..HubConfig::local_dev()
    });
    let n = 500;
    let mut clients: Vec<Client> = (0..n).map(|_| Client::session(hub.addr, "")).collect();
    let mut handles = Vec::with_capacity(n);
    for (k, c) in clients.iter_mut().enumerate() {
        handles.push(c.join(&format!("room-{}", k / 4), Role::Member).unwrap());
    }
    // The metrics request is a connection too.
    assert_eq!(hub.metric("poselink_connections"), (n + 1) as f64);
    assert_eq!(hub.metric("poselink_rooms"), (n / 4) as f64);
    let mut sent = Vec::with_capacity(n);
    for (k, c) in clients.iter_mut().enumerate() {
        let mut s = PoseStream::new(k as u64);
        let m = s.next(handles[k], c.member).to_vec();
        c.send_bytes(&m);
        sent.push(m);
    }
    for (k, c) in clients.iter_mut().enumerate() {
        let room = k / 4;
        let mut want: Vec<&Vec<u8>> = (room * 4..room * 4 + 4)
            .filter(|&j| j != k)
            .map(|j| &sent[j])
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !want.is_empty() && Instant::now() < deadline {
            if let Some(g) = c.recv(Duration::from_millis(200))
                && g.kind() == Kind::Pose
            {
                let pos = want
                    .iter()
                    .position(|w| **w == g.bytes)
                    .expect("a pose from this room's members");
                want.remove(pos);
            }
        }
        assert!(want.is_empty(), "client {k} missed {} poses", want.len());
    }
    assert_eq!(hub.metric("poselink_delivered_total"), (n * 3) as f64);
}
