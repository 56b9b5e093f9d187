//! The session's failover across the driver's hubs, in simulated time: which
//! hub each attempt goes to, how long it waits, which resume id its hello
//! carries, and that the rooms and the unacknowledged audio follow the board
//! to the next hub as they do after a reconnect to the same one.

use super::*;

fn hubs(n: usize) -> SessionConfig {
    SessionConfig {
        hubs: n,
        reconnect_min_us: 100_000,
        reconnect_max_us: 800_000,
        ..cfg()
    }
}

/// Steps 1 ms at a time until the next connection attempt (at most `max_us`);
/// its time and hub.
fn next_connect(sim: &mut Sim, max_us: u64) -> (u64, usize) {
    let before = sim.connects.len();
    let end = sim.now + max_us;
    while sim.now < end && sim.connects.len() == before {
        sim.now += 1_000;
        sim.step();
    }
    *sim.connects.get(before).expect("a connection attempt")
}

#[test]
fn a_lost_session_moves_to_the_next_hub_at_the_shortest_wait_with_its_rooms_and_audio() {
    let mut sim = Sim::new(hubs(3));
    let room = sim.session.join(0, "talk", Role::Member).unwrap();
    sim.run(10_000, 1_000);
    assert_eq!(sim.connects, [(1_000, 0)]);
    assert_eq!(sim.session.hub(), 0);
    sim.take();
    // Chunks 1..=10 are acknowledged by hub 0; 11..=15 reach it but are not.
    for seq in 1..=10 {
        sim.session.send_audio(room, &chunk(seq)).unwrap();
        sim.run(2_000, 1_000);
    }
    sim.hub.ack_audio = false;
    for seq in 11..=15 {
        sim.session.send_audio(room, &chunk(seq)).unwrap();
        sim.run(2_000, 1_000);
    }
    let old_member = sim.hub.member;
    // Hub 0 dies: its connection ends and it refuses new ones.
    sim.down.push(0);
    sim.hub.ack_audio = true;
    let died = sim.now;
    sim.drop_connection();
    let (at, hub) = next_connect(&mut sim, 1_000_000);
    assert_eq!(hub, 1, "the next hub, not the dead one again");
    assert!(
        (50_000..=101_000).contains(&(at - died)),
        "the shortest backoff: {}",
        at - died
    );
    sim.run(50_000, 1_000);
    let seen = sim.take();
    assert!(
        seen.contains(&Seen::Joined(room, 2, true, 5)),
        "restored on hub 1, the 5 unacknowledged chunks replayed: {seen:?}"
    );
    assert_eq!(sim.session.hub(), 1);
    assert!(sim.session.can_send());
    // Hub 1 never gave out a resume id: the hello presents none.
    assert_eq!(sim.hub.resumes, [0, 0]);
    // Each of 11..=15 once more, in order, from the new member id.
    let replays: Vec<u32> = sim
        .hub
        .audio()
        .iter()
        .filter(|a| a.2 != old_member)
        .map(|a| a.0)
        .collect();
    assert_eq!(replays, (11..=15).collect::<Vec<_>>());
    // Only one attempt: hub 1 took it.
    assert_eq!(sim.connects.len(), 2);
}

#[test]
fn attempts_go_round_the_list_and_back_off_once_per_round() {
    let mut sim = Sim::new(hubs(3));
    sim.down = vec![0, 1, 2];
    let mut attempts = vec![next_connect(&mut sim, 10_000)];
    for _ in 0..9 {
        let last = attempts.last().unwrap().0;
        attempts.push(next_connect(&mut sim, 2_000_000));
        assert!(attempts.last().unwrap().0 > last);
    }
    let order: Vec<usize> = attempts.iter().map(|a| a.1).collect();
    assert_eq!(order, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
    let waits: Vec<u64> = attempts.windows(2).map(|w| w[1].0 - w[0].0).collect();
    // Within a round the shortest wait (50-100 ms, to the simulated ms); at
    // the end of each round the backoff's, which doubles: 100, 200, 400 ms.
    let rounds = [100_000u64, 200_000, 400_000];
    for (i, w) in waits.iter().enumerate() {
        let base = if i % 3 == 2 { rounds[i / 3] } else { 100_000 };
        assert!(
            (base / 2..=base + 1_000).contains(w),
            "wait {i} (before hub {}): {w} µs, base {base}",
            order[i + 1]
        );
    }
    // The events count every failed attempt since the last session.
    let counted: Vec<u32> = sim
        .take()
        .iter()
        .filter_map(|s| match s {
            Seen::Reconnecting(a, _) => Some(*a),
            _ => None,
        })
        .collect();
    assert_eq!(counted[..9], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // A hub comes back: the round reaches it, the session opens there, and
    // the count starts over.
    sim.down = vec![0, 2];
    let (_, hub) = next_connect(&mut sim, 2_000_000);
    let hub = if hub == 1 {
        hub
    } else {
        next_connect(&mut sim, 2_000_000).1
    };
    assert_eq!(hub, 1);
    sim.run(10_000, 1_000);
    assert!(sim.session.is_connected());
    assert_eq!(sim.session.hub(), 1);
    sim.take();
    sim.drop_connection();
    assert!(matches!(
        sim.take()[..],
        [Seen::Disconnected(_), Seen::Reconnecting(1, d)] if (50_000..=100_000).contains(&d)
    ));
    assert_eq!(sim.session.hub(), 2, "the next after the hub it was on");
}

#[test]
fn a_resume_id_goes_back_only_to_the_hub_that_gave_it() {
    // One hub: each reconnect resumes the session the hub gave (the fake hub
    // gives the presented id + 1).
    let mut sim = Sim::new(hubs(1));
    sim.run(10_000, 1_000);
    for _ in 0..2 {
        sim.drop_connection();
        sim.run(300_000, 1_000);
    }
    assert_eq!(sim.hub.resumes, [0, 1, 2]);
    assert!(sim.connects.iter().all(|c| c.1 == 0));
    // Two hubs: every attempt after a loss goes to the other hub, to which
    // the last session's resume id means nothing: none is presented.
    let mut sim = Sim::new(hubs(2));
    sim.run(10_000, 1_000);
    for _ in 0..3 {
        sim.drop_connection();
        sim.run(300_000, 1_000);
    }
    let order: Vec<usize> = sim.connects.iter().map(|c| c.1).collect();
    assert_eq!(order, [0, 1, 0, 1]);
    assert_eq!(sim.hub.resumes, [0, 0, 0, 0]);
    // A failed attempt at the other hub brings the board back to the hub of
    // its resume id, which it presents again.
    sim.down.push(0);
    sim.drop_connection();
    let (_, hub) = next_connect(&mut sim, 1_000_000);
    assert_eq!(hub, 0, "refused");
    sim.down.clear();
    let (_, hub) = next_connect(&mut sim, 1_000_000);
    sim.run(10_000, 1_000);
    assert_eq!(hub, 1);
    assert_eq!(
        sim.hub.resumes,
        [0, 0, 0, 0, 1],
        "hub 1's own id, back to it"
    );
}
