//! Rooms in simulation: joins and snapshots, member events, roles, kicks and
//! closing a room, the token's say over all of it.

use crate::proto::{CloseRoom, Kick, Kind, Leave, Message, Role, RoleChanged};

use super::util::{Frame, Poses, Sim, secured};

const FORBIDDEN: u16 = 6;
const NOT_MEMBER: u16 = 10;

/// A snapshot's (name, your role, [(member, role, user)]).
fn snapshot(f: &Frame) -> (String, Role, Vec<(u16, Role, String)>) {
    f.with(|m| match m {
        Message::RoomSnapshot(s) => (
            s.name.to_string(),
            s.your_role,
            s.members
                .iter()
                .map(|m| (m.member, m.role, m.user.to_string()))
                .collect(),
        ),
        other => panic!("not a snapshot: {other:?}"),
    })
    .unwrap()
}

/// Every member event peer `p` got, in order: ("joined" | "left" | "role", member,
/// detail).
fn events(sim: &mut Sim, p: usize) -> Vec<(&'static str, u16, String)> {
    sim.take(p)
        .iter()
        .filter_map(|f| {
            f.with(|m| match m {
                Message::MemberJoined(j) => Some((
                    "joined",
                    j.member.member,
                    format!("{} {}", j.member.role.name(), j.member.user),
                )),
                Message::MemberLeft(l) => Some(("left", l.member, format!("{:?}", l.reason))),
                Message::RoleChanged(r) => Some(("role", r.member, r.role.name().to_string())),
                Message::Kick(k) => Some(("kicked", k.member, k.reason.to_string())),
                Message::CloseRoom(c) => Some(("closed", 0, c.reason.to_string())),
                _ => None,
            })
            .flatten()
        })
        .collect()
}

#[test]
fn a_join_gets_a_snapshot_and_the_others_hear_of_joins_and_leaves() {
    let mut sim = Sim::dev();
    let a = sim.session();
    sim.send(
        a,
        0,
        &Message::Join(crate::proto::Join {
            room: "studio",
            role: Role::Owner,
        }),
    );
    let snap = sim
        .next_msg(a, |k| k == Kind::RoomSnapshot)
        .expect("snapshot");
    let h = snap.header().unwrap().room;
    let ma = sim.peers[a].member;
    assert_eq!(
        snapshot(&snap),
        (
            "studio".into(),
            Role::Owner,
            vec![(ma, Role::Owner, format!("anon-{ma}"))]
        )
    );

    let b = sim.session();
    sim.send(
        b,
        0,
        &Message::Join(crate::proto::Join {
            room: "studio",
            role: Role::Member,
        }),
    );
    let snap = sim
        .next_msg(b, |k| k == Kind::RoomSnapshot)
        .expect("snapshot");
    let mb = sim.peers[b].member;
    assert_eq!(snap.header().unwrap().room, h, "one room, one handle");
    assert_eq!(
        snapshot(&snap).2,
        [
            (ma, Role::Owner, format!("anon-{ma}")),
            (mb, Role::Member, format!("anon-{mb}"))
        ]
    );
    assert_eq!(
        events(&mut sim, a),
        [("joined", mb, format!("member anon-{mb}"))]
    );

    // Leaving is announced to everyone, the leaver included.
    sim.send(b, 0, &Message::Leave(Leave { room: "studio" }));
    assert_eq!(events(&mut sim, a), [("left", mb, "Left".into())]);
    assert_eq!(events(&mut sim, b), [("left", mb, "Left".into())]);
    // And publishing there is refused now.
    let pose = Poses::new(1).next(h, mb);
    sim.send_bytes(b, &pose);
    assert_eq!(
        sim.take_errors(b).iter().map(|e| e.0).collect::<Vec<_>>(),
        [NOT_MEMBER]
    );

    // A member that vanishes leaves every room it was in, "disconnected".
    let c = sim.session();
    sim.join(c, "studio", Role::Member).unwrap();
    let h2 = sim.join(c, "lobby", Role::Member).unwrap();
    let (d, _) = sim.member_of("lobby", Role::Viewer);
    let mc = sim.peers[c].member;
    sim.take(a);
    sim.take(d);
    sim.hang_up(c);
    assert_eq!(events(&mut sim, a), [("left", mc, "Disconnected".into())]);
    assert_eq!(events(&mut sim, d), [("left", mc, "Disconnected".into())]);
    assert_ne!(h2, h);
    assert_eq!(sim.core.stats().sessions_opened, 4);
    assert_eq!(sim.core.gauges().sessions, 3);
}

#[test]
fn rejoining_changes_the_role_and_tells_the_others() {
    let mut sim = Sim::dev();
    let (a, h) = sim.member_of("rejoin", Role::Owner);
    let (b, _) = sim.member_of("rejoin", Role::Viewer);
    let mb = sim.peers[b].member;
    sim.take(a);
    assert_eq!(sim.join(b, "rejoin", Role::Member), Ok(h));
    assert_eq!(events(&mut sim, a), [("role", mb, "member".into())]);
    let members: Vec<_> = sim
        .core
        .rooms()
        .map(|r| (r.name.to_string(), r.members))
        .collect();
    assert_eq!(members, [("rejoin".to_string(), 2)]);
}

/// Owners change roles, kick and close; members and viewers may not.
#[test]
fn roles_kicks_and_closing_are_the_owners() {
    let mut sim = Sim::dev();
    let (o, h) = sim.member_of("mod", Role::Owner);
    let (m, _) = sim.member_of("mod", Role::Member);
    let (v, _) = sim.member_of("mod", Role::Viewer);
    let (mm, mv) = (sim.peers[m].member, sim.peers[v].member);
    for p in [o, m, v] {
        sim.take(p);
    }

    // Refused for others, with the kind of the message refused.
    let raise = Message::RoleChanged(RoleChanged {
        member: mv,
        role: Role::Member,
    });
    sim.send(m, h, &raise);
    let kick = Message::Kick(Kick {
        member: mm,
        reason: "bye",
    });
    sim.send(v, h, &kick);
    let close = Message::CloseRoom(CloseRoom { reason: "done" });
    sim.send(m, h, &close);
    let refused: Vec<_> = sim
        .take_errors(m)
        .into_iter()
        .chain(sim.take_errors(v))
        .map(|e| (e.0, e.1))
        .collect();
    assert_eq!(
        refused,
        [
            (FORBIDDEN, Kind::RoleChanged as u8),
            (FORBIDDEN, Kind::CloseRoom as u8),
            (FORBIDDEN, Kind::Kick as u8)
        ]
    );
    assert!(events(&mut sim, o).is_empty(), "nothing happened");

    // A viewer may not publish; raised to member by the owner, it may.
    let mut poses = Poses::new(1);
    sim.send_bytes(v, &poses.next(h, mv));
    assert_eq!(sim.take_errors(v)[0].0, FORBIDDEN);
    sim.send(o, h, &raise);
    for p in [o, m, v] {
        assert_eq!(
            events(&mut sim, p),
            [("role", mv, "member".into())],
            "peer {p}"
        );
    }
    let pose = poses.next(h, mv);
    sim.send_bytes(v, &pose);
    let got = sim.next_msg(m, |k| k == Kind::Pose).expect("relayed");
    assert!(matches!(got, Frame::Msg(ref b) if *b == pose));

    // The owner kicks the member: it is told, the others hear "kicked".
    sim.send(o, h, &kick);
    assert_eq!(events(&mut sim, m), [("kicked", mm, "bye".into())]);
    assert_eq!(events(&mut sim, o), [("left", mm, "Kicked".into())]);
    assert_eq!(events(&mut sim, v), [("left", mm, "Kicked".into())]);
    sim.send_bytes(m, &Poses::new(1).next(h, mm));
    assert_eq!(sim.take_errors(m)[0].0, NOT_MEMBER);

    // The owner closes the room: gone at once, for everyone.
    sim.send(o, h, &close);
    assert_eq!(events(&mut sim, o), [("closed", 0, "done".into())]);
    assert_eq!(events(&mut sim, v), [("closed", 0, "done".into())]);
    assert_eq!(sim.core.rooms().count(), 0);
    sim.send_bytes(v, &poses.next(h, mv));
    assert_eq!(sim.take_errors(v)[0].0, NOT_MEMBER);
    assert!(
        !sim.peers[o].closed && !sim.peers[v].closed,
        "the sessions go on"
    );
}

/// The token is the authority: a join above the grant is refused, and an owner
/// may not raise a member above the member's own token.
#[test]
fn the_token_limits_joins_and_role_changes() {
    let mut sim = Sim::new(secured());
    let owner = sim.token("owner", &[("stage", Role::Owner, true)], 600);
    let viewer = sim.token("fan", &[("stage", Role::Viewer, false)], 600);
    let o = sim.connect();
    sim.hello(o, &owner).unwrap();
    let h = sim.join(o, "stage", Role::Owner).unwrap();
    let f = sim.connect();
    sim.hello(f, &viewer).unwrap();
    assert_eq!(
        sim.join(f, "stage", Role::Member).map_err(|e| e.0),
        Err(FORBIDDEN)
    );
    assert_eq!(
        sim.join(f, "elsewhere", Role::Viewer).map_err(|e| e.0),
        Err(FORBIDDEN)
    );
    assert_eq!(sim.join(f, "stage", Role::Viewer), Ok(h));
    let mf = sim.peers[f].member;
    sim.take(o);
    sim.send(
        o,
        h,
        &Message::RoleChanged(RoleChanged {
            member: mf,
            role: Role::Member,
        }),
    );
    let errors = sim.take_errors(o);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, FORBIDDEN);
    assert!(errors[0].2.contains("token"), "{errors:?}");
    assert!(events(&mut sim, f).is_empty(), "the role did not change");
}

/// An empty room lives through the grace period (same handle for a rebooting
/// board), then goes.
#[test]
fn an_empty_room_lives_through_its_grace_period_then_goes() {
    let mut sim = Sim::dev();
    let (a, h) = sim.member_of("grace", Role::Owner);
    sim.hang_up(a);
    sim.advance(4_000);
    assert_eq!(sim.core.rooms().count(), 1);
    let (b, h2) = sim.member_of("grace", Role::Owner);
    assert_eq!(h2, h, "the room, not a new one");
    sim.hang_up(b);
    sim.advance(5_100);
    assert_eq!(sim.core.rooms().count(), 0);
    assert_eq!(sim.core.stats().rooms_expired, 1);
}
