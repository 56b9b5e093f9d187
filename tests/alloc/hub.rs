//! The relay path allocates nothing: after warm-up, 10 000 pose and audio
//! messages relayed through a real hub over loopback sockets to two receivers
//! (20 000 deliveries, with the hub's acknowledgements and heartbeats running)
//! cost zero allocations on the hub's thread, over plain TCP and over TLS. A counting global allocator counts
//! the allocations of the thread marked as the hub's only.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::counting;
use poselink::hub::{Hub, HubConfig};
use poselink::proto::{Kind, Role};

#[test]
fn relaying_allocates_nothing_at_steady_state() {
    relaying_over(false);
}

#[test]
fn relaying_over_tls_allocates_nothing_at_steady_state() {
    relaying_over(true);
}

fn relaying_over(tls: bool) {
    let _turn = counting::turn();
    // Made in this test's turn: another test may be counting every thread.
    let files = tls.then(|| TlsFiles::local("alloc-hub"));
    let tls = files.as_ref();
    let ca = tls.map(|f| f.ca_pem.clone());
    let session = |addr| {
        let mut c = Client::connect_to(addr, ca.as_deref());
        c.hello("").expect("welcome");
        c
    };
    let cfg = HubConfig {
        rate_messages: 1_000_000,
        burst_messages: 1_000_000,
        rate_bytes: 1 << 30,
        burst_bytes: 1 << 30,
        // Pings and acknowledgements run during the measurement.
        heartbeat_ms: 1_000,
        // Deep queues: this test is about the steady state, not the drop policy.
        queue_depth: 4_096,
        ..HubConfig::local_dev()
    };
    let cfg = match tls {
        Some(files) => files.on(cfg),
        None => cfg,
    };
    let hub = Hub::bind(cfg).unwrap();
    let (addr, handle) = (hub.local_addr(), hub.handle());
    let hub_thread = std::thread::spawn(move || {
        counting::this_thread(true);
        hub.run()
    });

    let mut publisher = session(addr);
    let room = publisher.join("alloc", Role::Member).unwrap();
    let mut stream = PoseStream::new(7);
    let audio_seq = std::cell::Cell::new(0u32);
    let mut send_batch = |p: &mut Client, n: usize| {
        for k in 0..n {
            if k % 100 == 99 {
                // Paced (about 50 000 messages/s): readers on a busy 2-core machine
                // must keep up, or the test would measure the drop path.
                std::thread::sleep(Duration::from_millis(2));
            }
            if k % 5 == 4 {
                audio_seq.set(audio_seq.get() + 1);
                let m = audio_message(room, p.member, audio_seq.get());
                p.send_bytes(&m);
            } else {
                let m = stream.next(room, p.member).to_vec();
                p.send_bytes(&m);
            }
        }
    };

    // Warm-up: every path once (queues, blocks, keyframe slots, acks, pings).
    let warm = 2_000;
    let mut r1 = session(addr);
    r1.join("alloc", Role::Viewer).unwrap();
    let mut r2 = session(addr);
    r2.join("alloc", Role::Viewer).unwrap();
    // Drain what the joins brought (snapshots, cached keyframes).
    while r1.recv(Duration::from_millis(100)).is_some() {}
    while r2.recv(Duration::from_millis(100)).is_some() {}

    let t1 = std::thread::spawn(move || receive_keep(r1, warm));
    let t2 = std::thread::spawn(move || receive_keep(r2, warm));
    send_batch(&mut publisher, warm);
    let (n1, r1) = t1.join().unwrap();
    let (n2, r2) = t2.join().unwrap();
    assert_eq!(
        (n1, n2),
        (warm, warm),
        "warm-up delivered everything:\n{}",
        metrics(addr)
    );
    std::thread::sleep(Duration::from_millis(300)); // acks and pings settle

    let steady = 10_000;
    let before = counting::allocations();
    let t1 = std::thread::spawn(move || receive_keep(r1, steady));
    let t2 = std::thread::spawn(move || receive_keep(r2, steady));
    send_batch(&mut publisher, steady);
    let (n1, _r1) = t1.join().unwrap();
    let (n2, _r2) = t2.join().unwrap();
    // Stay in the counted window past a second, so that the hub's once-a-second
    // work runs in it too: the system sample into the performance monitor, the
    // monitor's slot rotation, heartbeats.
    std::thread::sleep(Duration::from_millis(1_200));
    let after = counting::allocations();
    assert_eq!(
        (n1, n2),
        (steady, steady),
        "every message delivered to both receivers"
    );
    assert_eq!(
        after - before,
        0,
        "the hub's thread allocated {} times while relaying {steady} messages",
        after - before
    );
    // The counter is live: the hub does allocate on the control path.
    assert!(before > 0, "the counting allocator saw the hub's start-up");
    handle.shutdown();
    hub_thread.join().unwrap().unwrap();
}

/// Like `receive`, but hands the client back.
fn receive_keep(mut c: Client, n: usize) -> (usize, Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    while got < n && Instant::now() < deadline {
        if let Some(g) = c.recv(Duration::from_millis(200))
            && matches!(g.kind(), Kind::Pose | Kind::Audio)
        {
            got += 1;
        }
    }
    (got, c)
}

fn metrics(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The cluster's relay path allocates nothing on the hub's thread either: hub
/// A (counted) relays its local publisher to a local receiver and publishes
/// each message once to the broker, and relays hub B's publisher, which it
/// gets from the broker, to its receiver. (The broker thread allocates for
/// the NATS client; it is not the hub's loop.)
#[test]
fn relaying_across_a_cluster_allocates_nothing_on_the_hubs_thread() {
    let _turn = counting::turn();
    let nats = NatsServer::start();
    let cfg = |node: &str| HubConfig {
        rate_messages: 1_000_000,
        burst_messages: 1_000_000,
        rate_bytes: 1 << 30,
        burst_bytes: 1 << 30,
        heartbeat_ms: 1_000,
        queue_depth: 4_096,
        cluster: Some(nats.url()),
        node: Some(node.into()),
        cluster_heartbeat_ms: 200,
        cluster_ring: 8_192,
        ..HubConfig::local_dev()
    };
    let hub = Hub::bind(cfg("a")).unwrap();
    let (a, handle) = (hub.local_addr(), hub.handle());
    let hub_thread = std::thread::spawn(move || {
        counting::this_thread(true);
        hub.run()
    });
    let b = TestHub::start(cfg("b"));
    let session = |addr| {
        let mut c = Client::connect(addr);
        c.hello("").expect("welcome");
        c
    };
    let mut pa = session(a);
    let ha = pa.join("alloc", Role::Member).unwrap();
    let mut pb = session(b.addr);
    let hb = pb.join("alloc", Role::Member).unwrap();
    let mut ra = session(a);
    ra.join("alloc", Role::Viewer).unwrap();
    let mut rb = session(b.addr);
    rb.join("alloc", Role::Viewer).unwrap();
    // Every hub knows the other's members before anything is sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.metric("poselink_cluster_remote_members") < 2.0 {
        assert!(
            Instant::now() < deadline,
            "hub B never heard of A's members"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    for c in [&mut pa, &mut pb, &mut ra, &mut rb] {
        while c.recv(Duration::from_millis(100)).is_some() {}
    }
    let (mut sa, mut sb) = (PoseStream::new(1), PoseStream::new(2));
    let mut seq = 0u32;
    let mut send = |pa: &mut Client, pb: &mut Client, n: usize| {
        for k in 0..n {
            if k % 50 == 49 {
                // Paced (about 20 000 messages/s over both publishers).
                std::thread::sleep(Duration::from_millis(2));
            }
            if k % 5 == 4 {
                seq += 1;
                pa.send_bytes(&audio_message(ha, pa.member, seq));
                pb.send_bytes(&audio_message(hb, pb.member, seq));
            } else {
                let m = sa.next(ha, pa.member).to_vec();
                pa.send_bytes(&m);
                let m = sb.next(hb, pb.member).to_vec();
                pb.send_bytes(&m);
            }
        }
    };
    let warm = 1_000;
    let t1 = std::thread::spawn(move || receive_keep(ra, 2 * warm));
    let t2 = std::thread::spawn(move || receive_keep(rb, 2 * warm));
    send(&mut pa, &mut pb, warm);
    let (n1, ra) = t1.join().unwrap();
    let (n2, rb) = t2.join().unwrap();
    assert_eq!(
        (n1, n2),
        (2 * warm, 2 * warm),
        "warm-up delivered everything:\n{}",
        metrics(a)
    );
    std::thread::sleep(Duration::from_millis(300));

    let steady = 4_000;
    let before = counting::allocations();
    let t1 = std::thread::spawn(move || receive_keep(ra, 2 * steady));
    let t2 = std::thread::spawn(move || receive_keep(rb, 2 * steady));
    send(&mut pa, &mut pb, steady);
    let (n1, _ra) = t1.join().unwrap();
    let (n2, _rb) = t2.join().unwrap();
    // Past a second: heartbeats to and from the broker run in the window.
    std::thread::sleep(Duration::from_millis(1_200));
    let after = counting::allocations();
    assert_eq!(
        (n1, n2),
        (2 * steady, 2 * steady),
        "every message reached both receivers, local and across hubs:\n{}",
        metrics(a)
    );
    assert_eq!(
        after - before,
        0,
        "hub A's thread allocated {} times relaying across the cluster",
        after - before
    );
    assert!(before > 0, "the counting allocator saw the hub's start-up");
    handle.shutdown();
    hub_thread.join().unwrap().unwrap();
}
