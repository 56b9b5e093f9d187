//! Hubs of a cluster over a real `nats-server` on 127.0.0.1: members of one
//! room on two hubs exchange pose and audio byte for byte and see each other
//! join; the broker killed and restarted: local relay never stops and
//! cross-hub delivery resumes within 2 s of its return; a malformed message
//! on a cluster subject is refused and counted, and harms nothing. (The
//! protocol decisions are simulated in `src/tests/hub/cluster.rs`.) Also: a
//! late joiner on B gets the keyframe of a publisher on A; kick and close
//! across hubs; a stopping hub takes its members out of the others at once.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use poselink::hub::HubConfig;
use poselink::proto::{Kind, Message, Packet, Role};

use crate::common::{Client, NatsServer, PoseStream, TestHub, audio_message};

fn clustered(nats: &NatsServer, node: &str) -> TestHub {
    TestHub::start(HubConfig {
        cluster: Some(nats.url()),
        node: Some(node.into()),
        cluster_heartbeat_ms: 200,
        cluster_node_timeout_ms: 1_000,
        ..HubConfig::local_dev()
    })
}

/// Hubs "a" and "b" of a cluster, both connected to the broker.
fn two_hubs(nats: &NatsServer) -> (TestHub, TestHub) {
    let (a, b) = (clustered(nats, "a"), clustered(nats, "b"));
    for h in [&a, &b] {
        assert!(
            wait_metric(h, "poselink_cluster_broker_up", 1.0, Duration::from_secs(5)),
            "the hub reached the broker"
        );
    }
    (a, b)
}

/// A member of `gym` on hub `a`, then a viewer on hub `b` that has heard of
/// it: (member, its room handle, viewer, the member's id on `b`).
fn member_and_remote_viewer(a: &TestHub, b: &TestHub) -> (Client, u16, Client, u16) {
    let mut p = Client::session(a.addr, "");
    let ha = p.join("gym", Role::Member).unwrap();
    let mut v = Client::session(b.addr, "");
    v.join("gym", Role::Viewer).unwrap();
    let remote = joined_id(
        &mut v,
        &format!("anon-{}", p.member),
        Duration::from_secs(3),
    )
    .expect("B hears of A's member");
    (p, ha, v, remote)
}

/// Waits (bounded) until `hub`'s metric reaches `want`.
fn wait_metric(hub: &TestHub, name: &str, want: f64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if hub.metric(name) >= want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The member id a `member_joined` for `user` gives, within `within`.
fn joined_id(c: &mut Client, user: &str, within: Duration) -> Option<u16> {
    let g = c.recv_until(within, |g| {
        g.kind() == Kind::MemberJoined
            && g.with(|m| matches!(m, Message::MemberJoined(j) if j.member.user == user))
    })?;
    Some(g.with(|m| match m {
        Message::MemberJoined(j) => j.member.member,
        _ => 0,
    }))
}

#[test]
fn members_on_two_hubs_exchange_pose_and_audio_byte_for_byte() {
    let nats = NatsServer::start();
    let (a, b) = two_hubs(&nats);
    let mut p = Client::session(a.addr, "");
    let ha = p.join("gym", Role::Member).unwrap();
    let mut v = Client::session(b.addr, "");
    let hb = v.join("gym", Role::Viewer).unwrap();
    let p_user = format!("anon-{}", p.member);
    let remote_p =
        joined_id(&mut v, &p_user, Duration::from_secs(3)).expect("B hears of A's member");
    let v_user = format!("anon-{}", v.member);
    joined_id(&mut p, &v_user, Duration::from_secs(3)).expect("A hears of B's member");

    let mut poses = PoseStream::new(7);
    let mut sent = Vec::new();
    for k in 0..60u32 {
        let m = if k % 3 == 2 {
            audio_message(ha, p.member, k)
        } else {
            poses.next(ha, p.member).to_vec()
        };
        p.send_bytes(&m);
        sent.push(m);
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let Some(g) = v.recv_until(Duration::from_secs(3), |g| {
            matches!(g.kind(), Kind::Pose | Kind::Audio)
        }) else {
            break;
        };
        got.push(g.bytes);
    }
    assert_eq!(got.len(), sent.len(), "every message crossed once");
    // In order within each kind. Across kinds there is no order to keep: pose
    // and audio cross in rings of their own (docs/CLUSTER.md), so an audio
    // chunk may overtake the pose frame sent just before it.
    let kind = |m: &Vec<u8>| Packet::new_checked(&m[..]).unwrap().header().kind;
    let pairs = [Kind::Pose, Kind::Audio].into_iter().flat_map(|k| {
        let s = sent.iter().filter(move |m| kind(m) == k);
        let g = got.iter().filter(move |m| kind(m) == k);
        assert_eq!(s.clone().count(), g.clone().count(), "{k:?} messages");
        s.zip(g)
    });
    for (s, g) in pairs {
        let (s, g) = (
            Packet::new_checked(&s[..]).unwrap(),
            Packet::new_checked(&g[..]).unwrap(),
        );
        assert_eq!((g.header().room, g.header().sender), (hb, remote_p));
        assert_eq!(
            (g.header().seq, g.header().ts_us),
            (s.header().seq, s.header().ts_us)
        );
        assert_eq!(s.payload(), g.payload(), "the payload, byte for byte");
    }
    assert_eq!(b.metric("poselink_cluster_remote_members"), 1.0);
    assert_eq!(b.metric("poselink_cluster_nodes"), 1.0);
}

#[test]
fn without_the_broker_local_relay_goes_on_and_cross_hub_delivery_resumes_after() {
    let mut nats = NatsServer::start();
    let (a, b) = two_hubs(&nats);
    let (mut p, ha, mut v, _) = member_and_remote_viewer(&a, &b);
    let mut q = Client::session(a.addr, "");
    q.join("gym", Role::Viewer).unwrap();

    nats.kill();
    assert!(
        wait_metric(
            &a,
            "poselink_cluster_broker_up",
            0.0,
            Duration::from_secs(1)
        ),
        "metric readable"
    );
    let mut poses = PoseStream::new(3);
    // Local relay through the outage: every frame reaches the member on A.
    let mut local = 0;
    for _ in 0..20 {
        let m = poses.next(ha, p.member).to_vec();
        p.send_bytes(&m);
        if q.recv_until(Duration::from_secs(1), |g| g.kind() == Kind::Pose)
            .is_some()
        {
            local += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(local, 20, "local relay never stopped");
    assert_eq!(a.metric("poselink_cluster_broker_up"), 0.0);

    nats.restart();
    let back = Instant::now();
    // Cross-hub delivery resumes: B's member gets A's frames again.
    let mut resumed = None;
    while back.elapsed() < Duration::from_secs(5) {
        let m = poses.next(ha, p.member).to_vec();
        p.send_bytes(&m);
        if v.recv_until(Duration::from_millis(50), |g| g.kind() == Kind::Pose)
            .is_some()
        {
            resumed = Some(back.elapsed());
            break;
        }
    }
    let resumed = resumed.expect("cross-hub delivery resumed");
    eprintln!(
        "cross-hub delivery resumed {} ms after the broker was back",
        resumed.as_millis()
    );
    assert!(resumed < Duration::from_secs(2), "{resumed:?}");
}

#[test]
fn a_malformed_message_on_a_cluster_subject_is_refused_and_counted() {
    let nats = NatsServer::start();
    let (a, b) = two_hubs(&nats);
    let (mut p, ha, mut v, _) = member_and_remote_viewer(&a, &b);
    // Another program publishes garbage on the subject every hub hears and on
    // the room's subject, in NATS's own text protocol.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", nats.port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut info = [0u8; 4096];
    let _ = raw.read(&mut info);
    let room: String = "gym".bytes().map(|b| format!("{b:02x}")).collect();
    let mut garbage = format!(
        "CONNECT {{\"verbose\":false}}\r\nPUB poselink.nodes 5\r\nhello\r\nPUB poselink.room.{room} 4\r\n"
    )
    .into_bytes();
    // A media message cut short after its node name.
    garbage.extend_from_slice(&[0xC1, 0x07, 0x01, b'z']);
    garbage.extend_from_slice(b"\r\nPING\r\n");
    raw.write_all(&garbage).unwrap();
    let _ = raw.read(&mut info); // PONG: the server took both
    for h in [&a, &b] {
        assert!(
            wait_metric(
                h,
                "poselink_cluster_malformed_total",
                2.0,
                Duration::from_secs(3)
            ),
            "refused and counted"
        );
    }
    // And the hubs relay on.
    let mut poses = PoseStream::new(1);
    let m = poses.next(ha, p.member).to_vec();
    p.send_bytes(&m);
    assert!(
        v.recv_until(Duration::from_secs(3), |g| g.kind() == Kind::Pose)
            .is_some()
    );
    let _ = audio_message;
}

#[test]
fn a_hub_that_stops_takes_its_members_out_of_the_other_hubs_at_once() {
    let nats = NatsServer::start();
    let a = TestHub::start(HubConfig {
        cluster: Some(nats.url()),
        node: Some("a".into()),
        // Long: a member leaving within it left by the goodbye.
        cluster_node_timeout_ms: 30_000,
        ..HubConfig::local_dev()
    });
    let b = clustered(&nats, "b");
    for h in [&a, &b] {
        assert!(wait_metric(
            h,
            "poselink_cluster_broker_up",
            1.0,
            Duration::from_secs(5)
        ));
    }
    let (_p, _, mut v, remote) = member_and_remote_viewer(&a, &b);
    let stopped = Instant::now();
    // (Stopping waits up to a second for A's clients to take its close.)
    let stopper = std::thread::spawn(move || a.stop());
    let left = v
        .recv_until(Duration::from_secs(5), |g| g.kind() == Kind::MemberLeft)
        .expect("member_left on B");
    let (member, reason) = left.with(|m| match m {
        Message::MemberLeft(l) => (l.member, l.reason),
        _ => unreachable!(),
    });
    assert_eq!(
        (member, reason),
        (remote, poselink::proto::LeaveReason::Disconnected)
    );
    eprintln!(
        "member_left on B {} ms after A stopped",
        stopped.elapsed().as_millis()
    );
    assert!(
        stopped.elapsed() < Duration::from_millis(500),
        "at once, not after the node timeout"
    );
    stopper.join().unwrap();
}

#[test]
fn a_late_joiner_on_b_gets_the_keyframe_of_a_publisher_on_a() {
    let nats = NatsServer::start();
    let (a, b) = two_hubs(&nats);
    let mut p = Client::session(a.addr, "");
    let ha = p.join("gym", Role::Member).unwrap();
    // A keyframe, then deltas, before anyone on B is in the room.
    let mut poses = PoseStream::new(5);
    for _ in 0..10 {
        let m = poses.next(ha, p.member).to_vec();
        p.send_bytes(&m);
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut v = Client::session(b.addr, "");
    v.join("gym", Role::Viewer).unwrap();
    let first = v
        .recv_until(Duration::from_secs(3), |g| g.kind() == Kind::Pose)
        .expect("a pose from A's publisher, without a new one sent");
    let standalone = first.with(|m| match m {
        Message::Pose(pose) => !matches!(pose.coding, poselink::proto::PoseCoding::Delta { .. }),
        _ => false,
    });
    assert!(
        standalone,
        "the first pose a late joiner gets decodes alone"
    );
}

#[test]
fn kick_and_close_reach_members_on_the_other_hub() {
    let nats = NatsServer::start();
    let (a, b) = two_hubs(&nats);
    let mut o = Client::session(a.addr, "");
    let ha = o.join("gym", Role::Owner).unwrap();
    let mut v = Client::session(b.addr, "");
    v.join("gym", Role::Member).unwrap();
    let mut w = Client::session(b.addr, "");
    w.join("gym", Role::Member).unwrap();
    let v_on_a = joined_id(
        &mut o,
        &format!("anon-{}", v.member),
        Duration::from_secs(3),
    )
    .expect("A hears of v");
    joined_id(
        &mut o,
        &format!("anon-{}", w.member),
        Duration::from_secs(3),
    )
    .expect("and of w");
    let kick = Message::Kick(poselink::proto::Kick {
        member: v_on_a,
        reason: "enough",
    });
    o.send(ha, &kick);
    assert!(
        v.recv_until(Duration::from_secs(3), |g| g.kind() == Kind::Kick)
            .is_some(),
        "the member on B is told it was kicked"
    );
    let left = o
        .recv_until(Duration::from_secs(3), |g| g.kind() == Kind::MemberLeft)
        .expect("the owner on A sees it leave");
    let (member, reason) = left.with(|m| match m {
        Message::MemberLeft(l) => (l.member, l.reason),
        _ => unreachable!(),
    });
    assert_eq!(
        (member, reason),
        (v_on_a, poselink::proto::LeaveReason::Kicked)
    );
    let close = Message::CloseRoom(poselink::proto::CloseRoom { reason: "done" });
    o.send(ha, &close);
    assert!(
        w.recv_until(Duration::from_secs(3), |g| g.kind() == Kind::CloseRoom)
            .is_some(),
        "the member on B hears the room close"
    );
}
