//! Hubs of a cluster in simulation: two hub cores, each with its peers, joined
//! by an in-memory broker with NATS core semantics (subjects, subscriptions,
//! no echo, nothing kept for a hub that is not subscribed, everything lost
//! while the broker is down), on one simulated clock. Remote members in
//! snapshots and member events, media across hubs byte for byte, a late
//! joiner's keyframe, kicks and closes across hubs, a silent hub's members
//! leaving, the broker's loss and return, malformed cluster messages.

use crate::hub::HubConfig;
use crate::hub::core::{ClusterTo, cluster_subject};
use crate::proto::{Kick, Kind, LeaveReason, Message, NeedsKeyframe, Packet, Role};

use super::util::{Frame, Poses, Sim, audio, config, is_keyframe};

/// A hub of node `node` in a simulated cluster.
fn hub(node: &str) -> Sim {
    Sim::new(HubConfig {
        cluster: Some("nats://127.0.0.1:4222".into()),
        node: Some(node.into()),
        ..config()
    })
}

/// The in-memory broker: each hub's subscriptions (subject, sid).
struct Broker {
    subs: Vec<Vec<(String, u16)>>,
    nodes: Vec<String>,
    up: bool,
    /// Messages from hub k are lost (a partition of that hub alone).
    mute: Vec<bool>,
    /// Media messages published (whatever their receivers).
    media: usize,
}

impl Broker {
    fn new(nodes: &[&str]) -> Broker {
        Broker {
            subs: vec![Vec::new(); nodes.len()],
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            up: true,
            mute: vec![false; nodes.len()],
            media: 0,
        }
    }

    /// Moves what the hubs queued until nothing moves, then lets every hub
    /// deliver to its peers; bounded by a count.
    fn shuttle(&mut self, hubs: &mut [&mut Sim]) {
        let mut subject = String::new();
        for _ in 0..64 {
            let mut pending: Vec<(usize, String, Vec<u8>)> = Vec::new();
            for (k, sim) in hubs.iter_mut().enumerate() {
                while let Some(out) = sim.core.poll_cluster() {
                    cluster_subject("poselink", out.to, &mut subject);
                    match out.to {
                        ClusterTo::Subscribe { sid, .. } => {
                            self.subs[k].retain(|(s, _)| *s != subject);
                            self.subs[k].push((subject.clone(), sid));
                        }
                        ClusterTo::Unsubscribe { .. } => {
                            self.subs[k].retain(|(s, _)| *s != subject)
                        }
                        _ => pending.push((k, subject.clone(), out.bytes.to_vec())),
                    }
                }
            }
            if pending.is_empty() {
                return;
            }
            for (from, subject, bytes) in pending {
                if !self.up || self.mute[from] {
                    continue;
                }
                if bytes.get(1) == Some(&7) {
                    self.media += 1;
                }
                for (to, sim) in hubs.iter_mut().enumerate() {
                    if to == from {
                        continue; // no echo
                    }
                    let own = format!("poselink.node.{}", self.nodes[to]);
                    let sid = if subject == "poselink.nodes" || subject == own {
                        Some(0)
                    } else {
                        self.subs[to]
                            .iter()
                            .find(|(s, _)| *s == subject)
                            .map(|&(_, sid)| sid)
                    };
                    if let Some(sid) = sid {
                        let now = sim.now;
                        if sim.core.handle_cluster(now, sid, &bytes) {
                            sim.pump();
                        }
                    }
                }
            }
            for sim in hubs.iter_mut() {
                sim.pump();
            }
        }
        panic!("cluster messages still moving after 64 rounds");
    }

    /// Advances both hubs' clocks by `ms` in 10 ms steps, shuttling at each.
    fn advance(&mut self, hubs: &mut [&mut Sim], ms: u64) {
        for _ in 0..ms.div_ceil(10) {
            for sim in hubs.iter_mut() {
                sim.advance(10);
            }
            self.shuttle(hubs);
        }
    }
}

/// Two hubs "a" and "b" with the broker up and their first heartbeats seen.
fn pair() -> (Sim, Sim, Broker) {
    let (mut a, mut b) = (hub("a"), hub("b"));
    let mut broker = Broker::new(&["a", "b"]);
    for sim in [&mut a, &mut b] {
        let now = sim.now;
        sim.core.handle_cluster_link(now, true);
    }
    broker.shuttle(&mut [&mut a, &mut b]);
    (a, b, broker)
}

/// The (member, user) of every `member_joined` peer `p` got.
fn joined(sim: &mut Sim, p: usize) -> Vec<(u16, String)> {
    sim.take_kind(p, Kind::MemberJoined)
        .iter()
        .filter_map(|f| {
            f.with(|m| match m {
                Message::MemberJoined(j) => Some((j.member.member, j.member.user.to_string())),
                _ => None,
            })
            .flatten()
        })
        .collect()
}

/// The (member, reason) of every `member_left` peer `p` got.
fn left(sim: &mut Sim, p: usize) -> Vec<(u16, LeaveReason)> {
    sim.take_kind(p, Kind::MemberLeft)
        .iter()
        .filter_map(|f| {
            f.with(|m| match m {
                Message::MemberLeft(l) => Some((l.member, l.reason)),
                _ => None,
            })
            .flatten()
        })
        .collect()
}

fn media(sim: &mut Sim, p: usize) -> Vec<Vec<u8>> {
    sim.take(p)
        .into_iter()
        .filter_map(|f| match (f.kind(), f) {
            (Some(Kind::Pose | Kind::Audio), Frame::Msg(b)) => Some(b),
            _ => None,
        })
        .collect()
}

#[test]
fn members_of_one_room_on_two_hubs_exchange_pose_and_audio_byte_for_byte() {
    let (mut a, mut b, mut broker) = pair();
    let (p, ha) = a.member_of("gym", Role::Member);
    broker.shuttle(&mut [&mut a, &mut b]);
    let (v, hb) = b.member_of("gym", Role::Viewer);
    broker.shuttle(&mut [&mut a, &mut b]);
    // Each side hears of the other's member, under a member id of its own hub.
    let seen_on_b = joined(&mut b, v);
    assert_eq!(seen_on_b.len(), 1, "{seen_on_b:?}");
    let (remote_p, user) = seen_on_b[0].clone();
    assert_eq!(user, format!("anon-{}", a.peers[p].member));
    let seen_on_a = joined(&mut a, p);
    assert_eq!(seen_on_a.len(), 1, "{seen_on_a:?}");
    a.take(p);
    b.take(v);

    let member = a.peers[p].member;
    let mut poses = Poses::new(4);
    let sent: Vec<Vec<u8>> = (0..12)
        .map(|k| {
            if k % 3 == 2 {
                audio(ha, member, k)
            } else {
                poses.next(ha, member)
            }
        })
        .collect();
    for m in &sent {
        a.send_bytes(p, m);
    }
    broker.shuttle(&mut [&mut a, &mut b]);
    let got = media(&mut b, v);
    assert_eq!(got.len(), sent.len(), "every message crossed, none twice");
    for (s, g) in sent.iter().zip(&got) {
        let (s, g) = (
            Packet::new_checked(&s[..]).unwrap(),
            Packet::new_checked(&g[..]).unwrap(),
        );
        let (sh, gh) = (s.header(), g.header());
        // Room and sender are B's; the rest is A's publisher's, byte for byte.
        assert_eq!((gh.room, gh.sender), (hb, remote_p));
        assert_eq!(
            (gh.kind, gh.seq, gh.ts_us, gh.flags),
            (sh.kind, sh.seq, sh.ts_us, sh.flags)
        );
        assert_eq!(s.payload(), g.payload());
    }
    // Published once each, not once per receiver.
    assert_eq!(broker.media, sent.len());
}

#[test]
fn a_late_joiner_on_another_hub_gets_the_publishers_keyframe_and_sees_every_member() {
    let (mut a, mut b, mut broker) = pair();
    let (p, ha) = a.member_of("gym", Role::Member);
    let (q, _) = a.member_of("gym", Role::Viewer);
    let member = a.peers[p].member;
    let mut poses = Poses::new(100);
    for _ in 0..5 {
        let m = poses.next(ha, member); // a keyframe, then deltas
        a.send_bytes(p, &m);
    }
    broker.shuttle(&mut [&mut a, &mut b]);
    assert_eq!(broker.media, 0, "no one elsewhere: nothing published");
    // A first member of the room on B: its snapshot lists itself; A's two
    // members arrive as it syncs, then A's publisher's cached keyframe.
    let (v, _) = b.member_of("gym", Role::Viewer);
    broker.shuttle(&mut [&mut a, &mut b]);
    let frames = b.take(v);
    let users: Vec<String> = frames
        .iter()
        .filter_map(|f| {
            f.with(|m| match m {
                Message::MemberJoined(j) => Some(j.member.user.to_string()),
                _ => None,
            })
            .flatten()
        })
        .collect();
    let want = [a.peers[p].member, a.peers[q].member].map(|m| format!("anon-{m}"));
    assert_eq!(users, want);
    let first_pose = frames
        .iter()
        .find_map(|f| match (f.kind(), f) {
            (Some(Kind::Pose), Frame::Msg(b)) => Some(b.clone()),
            _ => None,
        })
        .expect("the cached keyframe");
    assert!(is_keyframe(&first_pose));
    // A later joiner on B finds every member in its snapshot.
    let w = b.session();
    b.send(
        w,
        0,
        &Message::Join(crate::proto::Join {
            room: "gym",
            role: Role::Viewer,
        }),
    );
    broker.shuttle(&mut [&mut a, &mut b]);
    let snap = b
        .next_msg(w, |k| k == Kind::RoomSnapshot)
        .expect("a snapshot");
    let n = snap
        .with(|m| match m {
            Message::RoomSnapshot(s) => s.members.len(),
            _ => 0,
        })
        .unwrap();
    assert_eq!(n, 4, "two on A, two on B");
    // ... and gets the keyframe from B's cache at once.
    assert!(media(&mut b, w).first().is_some_and(|m| is_keyframe(m)));
}

#[test]
fn kick_and_close_work_across_hubs() {
    let (mut a, mut b, mut broker) = pair();
    let (o, ha) = a.member_of("gym", Role::Owner);
    let (v, _) = b.member_of("gym", Role::Member);
    let (w, _) = b.member_of("gym", Role::Member);
    broker.shuttle(&mut [&mut a, &mut b]);
    let on_a = joined(&mut a, o);
    assert_eq!(on_a.len(), 2);
    let v_on_a = on_a
        .iter()
        .find(|(_, u)| *u == format!("anon-{}", b.peers[v].member))
        .unwrap()
        .0;
    b.take(v);
    b.take(w);
    a.send(
        o,
        ha,
        &Message::Kick(Kick {
            member: v_on_a,
            reason: "enough",
        }),
    );
    broker.shuttle(&mut [&mut a, &mut b]);
    let kicked = b.take_kind(v, Kind::Kick);
    assert_eq!(kicked.len(), 1, "the kicked member is told");
    assert_eq!(
        left(&mut b, w),
        vec![(b.peers[v].member, LeaveReason::Kicked)]
    );
    assert_eq!(left(&mut a, o), vec![(v_on_a, LeaveReason::Kicked)]);
    // A member may not kick.
    let w_on_b = b.peers[w].member;
    let hb = b.take(w).len(); // drop the rest
    let _ = hb;
    a.send(
        o,
        ha,
        &Message::CloseRoom(crate::proto::CloseRoom { reason: "done" }),
    );
    broker.shuttle(&mut [&mut a, &mut b]);
    assert_eq!(b.take_kind(w, Kind::CloseRoom).len(), 1, "closed on B too");
    // The room is gone on B: a message into it is refused.
    let _ = w_on_b;
    assert_eq!(a.core.rooms().count() + b.core.rooms().count(), 0);
}

#[test]
fn a_silent_hubs_members_leave_after_the_node_timeout_and_a_shutdown_at_once() {
    let (mut a, mut b, mut broker) = pair();
    let (p, _) = a.member_of("gym", Role::Member);
    let (v, _) = b.member_of("gym", Role::Viewer);
    broker.shuttle(&mut [&mut a, &mut b]);
    let remote_p = joined(&mut b, v)[0].0;
    // A goes silent (as if killed): B waits out the node timeout (3 s).
    broker.mute[0] = true;
    broker.advance(&mut [&mut a, &mut b], 2_500);
    assert!(left(&mut b, v).is_empty(), "not before the timeout");
    broker.advance(&mut [&mut a, &mut b], 1_000);
    assert_eq!(left(&mut b, v), vec![(remote_p, LeaveReason::TimedOut)]);
    assert_eq!(b.core.stats().cluster.nodes_lost, 1);
    // A is heard again: its member comes back with a re-announcement.
    broker.mute[0] = false;
    let _ = p;
    let now = a.now;
    a.core.handle_cluster_link(now, false);
    a.core.handle_cluster_link(now, true);
    broker.advance(&mut [&mut a, &mut b], 100);
    assert_eq!(joined(&mut b, v).len(), 1);
    // A shuts down: its members leave B's rooms at once.
    let now = a.now;
    a.core.handle_shutdown(now);
    broker.shuttle(&mut [&mut a, &mut b]);
    assert_eq!(left(&mut b, v).len(), 1);
}

#[test]
fn without_the_broker_each_hub_relays_its_own_and_resynchronises_after() {
    let (mut a, mut b, mut broker) = pair();
    let (p, ha) = a.member_of("gym", Role::Member);
    let (q, _) = a.member_of("gym", Role::Viewer);
    let (v, _) = b.member_of("gym", Role::Viewer);
    broker.shuttle(&mut [&mut a, &mut b]);
    let member = a.peers[p].member;
    let mut poses = Poses::new(3);
    broker.up = false;
    for sim in [&mut a, &mut b] {
        let now = sim.now;
        sim.core.handle_cluster_link(now, false);
    }
    a.take(q);
    for _ in 0..4 {
        let m = poses.next(ha, member);
        a.send_bytes(p, &m);
        broker.advance(&mut [&mut a, &mut b], 1_000);
    }
    assert_eq!(media(&mut a, q).len(), 4, "local relay never stopped");
    b.take(v);
    broker.up = true;
    for sim in [&mut a, &mut b] {
        let now = sim.now;
        sim.core.handle_cluster_link(now, true);
    }
    broker.advance(&mut [&mut a, &mut b], 100);
    assert_eq!(joined(&mut b, v).len(), 2, "A's members are back on B");
    for _ in 0..3 {
        let m = poses.next(ha, member);
        a.send_bytes(p, &m);
    }
    broker.shuttle(&mut [&mut a, &mut b]);
    assert!(!media(&mut b, v).is_empty(), "cross-hub delivery resumed");
}

#[test]
fn a_receiver_asking_for_a_remote_publishers_keyframe_reaches_the_publisher() {
    let (mut a, mut b, mut broker) = pair();
    let (p, _) = a.member_of("gym", Role::Member);
    let (v, hb) = b.member_of("gym", Role::Viewer);
    broker.shuttle(&mut [&mut a, &mut b]);
    let remote_p = joined(&mut b, v)[0].0;
    a.take(p);
    let ask = NeedsKeyframe {
        publisher: remote_p,
        person: 0,
    };
    b.send(v, hb, &Message::NeedsKeyframe(ask));
    broker.shuttle(&mut [&mut a, &mut b]);
    let asked = a.take_kind(p, Kind::NeedsKeyframe);
    assert_eq!(asked.len(), 1, "the publisher on A is asked");
    assert!(b.take_errors(v).is_empty());
}

#[test]
fn malformed_cluster_messages_are_refused_counted_and_harm_nothing() {
    let (mut a, mut b, mut broker) = pair();
    let (p, ha) = a.member_of("gym", Role::Member);
    let (v, hb) = b.member_of("gym", Role::Viewer);
    broker.shuttle(&mut [&mut a, &mut b]);
    b.take(v);
    let now = b.now;
    let mut bad: Vec<Vec<u8>> = vec![
        vec![],
        b"PUB poselink.nodes 5\r\nhello".to_vec(),
        vec![0xC1, 7, 1, b'a'],
        vec![0xC1, 200, 1, b'a'],
    ];
    // A media message whose envelope's CRC is wrong, from a known member.
    let member = a.peers[p].member;
    let mut env = Poses::new(1).next(ha, member);
    let last = env.len() - 1;
    env[last] ^= 0xFF;
    let mut m = vec![0xC1, 7, 1, b'a', 3, b'g', b'y', b'm'];
    m.extend_from_slice(&member.to_le_bytes());
    m.extend_from_slice(&env);
    bad.push(m);
    for x in &bad {
        assert!(!b.core.handle_cluster(now, hb, x));
    }
    assert_eq!(b.core.stats().cluster.malformed as usize, bad.len());
    assert!(media(&mut b, v).is_empty(), "nothing reached a member");
    // And the hub relays on.
    let mut poses = Poses::new(1);
    let m = poses.next(ha, member);
    a.send_bytes(p, &m);
    broker.shuttle(&mut [&mut a, &mut b]);
    assert_eq!(media(&mut b, v).len(), 1);
}

#[test]
fn an_owner_changes_the_role_of_a_member_on_another_hub() {
    let (mut a, mut b, mut broker) = pair();
    let (o, ha) = a.member_of("gym", Role::Owner);
    let (v, hb) = b.member_of("gym", Role::Member);
    broker.shuttle(&mut [&mut a, &mut b]);
    let v_on_a = joined(&mut a, o)[0].0;
    b.take(v);
    let rc = crate::proto::RoleChanged {
        member: v_on_a,
        role: Role::Viewer,
    };
    a.send(o, ha, &Message::RoleChanged(rc));
    broker.shuttle(&mut [&mut a, &mut b]);
    let roles = |sim: &mut Sim, p: usize| -> Vec<(u16, Role)> {
        sim.take_kind(p, Kind::RoleChanged)
            .iter()
            .filter_map(|f| {
                f.with(|m| match m {
                    Message::RoleChanged(r) => Some((r.member, r.role)),
                    _ => None,
                })
                .flatten()
            })
            .collect()
    };
    assert_eq!(roles(&mut b, v), vec![(b.peers[v].member, Role::Viewer)]);
    assert_eq!(roles(&mut a, o), vec![(v_on_a, Role::Viewer)]);
    // The member's own hub enforces it: a viewer may not publish.
    let m = Poses::new(1).next(hb, b.peers[v].member);
    b.send_bytes(v, &m);
    let errors = b.take_errors(v);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].2.contains("viewers may not publish"),
        "{errors:?}"
    );
    // A member (not an owner) may not change roles across hubs either.
    let (w, _) = a.member_of("gym", Role::Member);
    let rc = crate::proto::RoleChanged {
        member: v_on_a,
        role: Role::Owner,
    };
    a.send(w, ha, &Message::RoleChanged(rc));
    broker.shuttle(&mut [&mut a, &mut b]);
    assert_eq!(a.take_errors(w).len(), 1, "refused on the owner's hub");
    assert!(roles(&mut b, v).is_empty());
}

#[test]
fn a_hub_restarted_within_the_timeout_has_its_old_members_dropped() {
    let (mut a, mut b, mut broker) = pair();
    let (p, _) = a.member_of("gym", Role::Member);
    let (v, _) = b.member_of("gym", Role::Viewer);
    broker.shuttle(&mut [&mut a, &mut b]);
    let old = joined(&mut b, v)[0].0;
    let _ = p;
    // A restarts at once (a new process: a new epoch, no goodbye).
    let now = a.now;
    let cfg = HubConfig {
        cluster: Some("nats://127.0.0.1:4222".into()),
        node: Some("a".into()),
        ..config()
    };
    a.core = crate::hub::core::Core::new(&cfg, None, now, 1_900_000_000_000_000).unwrap();
    a.peers.clear();
    a.core.handle_cluster_link(now, true);
    broker.subs[0].clear();
    broker.advance(&mut [&mut a, &mut b], 50);
    assert_eq!(
        left(&mut b, v),
        vec![(old, LeaveReason::Disconnected)],
        "the restarted hub's heartbeat dropped its old members"
    );
    // Its member comes back as a new one.
    let (q, _) = a.member_of("gym", Role::Member);
    broker.shuttle(&mut [&mut a, &mut b]);
    let back = joined(&mut b, v);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].1, format!("anon-{}", a.peers[q].member));
}

#[test]
fn a_lost_control_message_is_repaired_by_announcing_again() {
    let (mut a, mut b, mut broker) = pair();
    let (p, _) = a.member_of("gym", Role::Member);
    let (q, _) = a.member_of("gym", Role::Member);
    let (v, _) = b.member_of("gym", Role::Viewer);
    broker.shuttle(&mut [&mut a, &mut b]);
    let known = joined(&mut b, v);
    assert_eq!(known.len(), 2);
    let q_on_b = known
        .iter()
        .find(|(_, u)| *u == format!("anon-{}", a.peers[q].member))
        .unwrap()
        .0;
    // Q leaves while A's messages are lost (a full ring, as the driver says).
    broker.mute[0] = true;
    a.hang_up(q);
    broker.shuttle(&mut [&mut a, &mut b]);
    broker.mute[0] = false;
    assert!(left(&mut b, v).is_empty(), "B missed it");
    let now = a.now;
    a.core.handle_cluster_lost_control();
    broker.advance(&mut [&mut a, &mut b], 50);
    // A's roster shows Q gone; P, announced again, is not announced twice.
    assert_eq!(left(&mut b, v), vec![(q_on_b, LeaveReason::Disconnected)]);
    assert!(joined(&mut b, v).is_empty());
    let _ = (p, now);
}
