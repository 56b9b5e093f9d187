//! Room creation in simulation, against issue #17's lock-out: one connection
//! making and leaving rooms as fast as it can must not fill the room table; the
//! quotas of rooms created per connection and per user, and the rate of
//! creation, refuse with a sentence that names the limit; an empty room only
//! its creator ever joined goes after the short grace, one that others shared
//! keeps the full grace.

use crate::hub::HubConfig;
use crate::proto::{Leave, Message, Role};

use super::util::{Sim, config, secured};

const HUB_FULL: u16 = 8;
const RATE_LIMITED: u16 = 12;

fn leave(sim: &mut Sim, p: usize, room: &str) {
    sim.send(p, 0, &Message::Leave(Leave { room }));
    sim.take(p);
}

fn room_names(sim: &Sim) -> Vec<String> {
    let mut v: Vec<String> = sim.core.rooms().map(|r| r.name.to_string()).collect();
    v.sort();
    v
}

/// The attack: one anonymous connection joins and leaves new rooms about 70
/// times a second for 10 s of simulated time. The creation rate and the short
/// grace of rooms no one else joined keep it to a few rooms at a time; the
/// table never fills, and another user creates a room at the end.
#[test]
fn one_connection_cannot_fill_the_room_table() {
    let mut sim = Sim::new(HubConfig {
        max_rooms: 32,
        max_connections: 4,
        ..config()
    });
    let attacker = sim.session();
    let (mut created, mut most_rooms) = (0, 0);
    let mut refused = Vec::new();
    for k in 0..700 {
        let name = format!("junk-{k}");
        match sim.join(attacker, &name, Role::Owner) {
            Ok(_) => {
                created += 1;
                leave(&mut sim, attacker, &name);
            }
            Err(e) => refused.push(e),
        }
        most_rooms = most_rooms.max(sim.core.rooms().count());
        sim.advance(14);
    }
    // A burst of 10, then one a second (60 a minute) over ~9.8 s.
    assert!((18..=21).contains(&created), "created {created}");
    assert!(most_rooms <= 16, "at most {most_rooms} rooms at once");
    assert_eq!(refused.len(), 700 - created);
    for (code, why) in &refused {
        assert_eq!(*code, RATE_LIMITED, "{why}");
        assert!(
            why.contains("room_creations_per_minute") && why.contains("try again in"),
            "{why}"
        );
    }
    let other = sim.session();
    assert!(sim.join(other, "honest", Role::Owner).is_ok());
    assert!(
        !sim.peers[attacker].closed && !sim.peers[attacker].shut,
        "refused, not closed"
    );
}

/// Per connection, then per user (a token's subject, over its connections):
/// rooms created that still exist are counted, empty ones in their grace
/// included. Joining an existing room is never limited by them; another user
/// creates rooms freely; the user's rooms count until they expire.
#[test]
fn quotas_of_rooms_created_per_connection_and_per_user() {
    let mut sim = Sim::new(HubConfig {
        max_rooms_created_per_user: 3,
        max_rooms_created_per_connection: 2,
        unshared_room_grace_ms: 1_000,
        ..secured()
    });
    let everything = [("*", Role::Owner, true)];
    let mallory = sim.token("mallory", &everything, 3600);
    let ana = sim.token("ana", &everything, 3600);

    let m1 = sim.connect();
    sim.hello(m1, &mallory).unwrap();
    for room in ["m-a", "m-b"] {
        sim.join(m1, room, Role::Owner).unwrap();
        leave(&mut sim, m1, room);
    }
    let (code, why) = sim.join(m1, "m-c", Role::Owner).unwrap_err();
    assert_eq!(code, HUB_FULL, "{why}");
    assert!(why.contains("max_rooms_created_per_connection"), "{why}");

    let m2 = sim.connect();
    sim.hello(m2, &mallory).unwrap();
    sim.join(m2, "m-c", Role::Owner).unwrap();
    let (code, why) = sim.join(m2, "m-d", Role::Owner).unwrap_err();
    assert_eq!(code, HUB_FULL, "{why}");
    assert!(
        why.contains("max_rooms_created_per_user") && why.contains("mallory"),
        "{why}"
    );

    // Another user is not held by mallory's quota, and mallory still joins
    // rooms that exist.
    let a = sim.connect();
    sim.hello(a, &ana).unwrap();
    let h = sim.join(a, "ana-room", Role::Owner).unwrap();
    assert_eq!(sim.join(m2, "ana-room", Role::Member), Ok(h));

    // A new connection of the same user: still over the user's quota, until
    // the empty rooms only mallory joined expire.
    sim.hang_up(m1);
    let m3 = sim.connect();
    sim.hello(m3, &mallory).unwrap();
    let (code, why) = sim.join(m3, "m-e", Role::Owner).unwrap_err();
    assert_eq!(code, HUB_FULL, "{why}");
    sim.advance(1_100);
    assert_eq!(room_names(&sim), ["ana-room", "m-c"], "m-a and m-b expired");
    sim.join(m3, "m-e", Role::Owner).unwrap();
}

/// Rooms created faster than `room_creations_per_minute` (after the burst) are
/// refused with RATE_LIMITED and the wait; after it, creation goes on.
#[test]
fn room_creation_has_a_rate() {
    let mut sim = Sim::new(HubConfig {
        room_creations_per_minute: 30, // one every 2 s
        room_creation_burst: 2,
        ..config()
    });
    let p = sim.session();
    for room in ["a", "b"] {
        sim.join(p, room, Role::Owner).unwrap();
        leave(&mut sim, p, room);
    }
    let (code, why) = sim.join(p, "c", Role::Owner).unwrap_err();
    assert_eq!(code, RATE_LIMITED, "{why}");
    assert!(why.contains("try again in 2000 ms"), "{why}");
    // Joining a room that exists is not creating one.
    let q = sim.session();
    sim.join(q, "existing", Role::Owner).unwrap();
    sim.join(p, "existing", Role::Member).unwrap();
    sim.advance(1_900);
    assert!(sim.join(p, "c", Role::Owner).is_err(), "not yet");
    sim.advance(100);
    sim.join(p, "c", Role::Owner).unwrap();
}

/// An empty room that only its creator was ever in goes after
/// `unshared_room_grace_ms`; one another user joined keeps `room_grace_ms`, so
/// that a rebooting board finds it again.
#[test]
fn never_shared_empty_rooms_go_quickly_shared_ones_keep_their_grace() {
    let mut sim = Sim::new(HubConfig {
        unshared_room_grace_ms: 500,
        room_grace_ms: 5_000,
        ..config()
    });
    let solo = sim.session();
    sim.join(solo, "solo", Role::Owner).unwrap();
    let board = sim.session();
    let viewer = sim.session();
    let h = sim.join(board, "duo", Role::Owner).unwrap();
    sim.join(viewer, "duo", Role::Viewer).unwrap();
    leave(&mut sim, viewer, "duo");
    sim.hang_up(solo);
    sim.hang_up(board);
    assert_eq!(room_names(&sim), ["duo", "solo"]);
    sim.advance(400);
    assert_eq!(room_names(&sim), ["duo", "solo"], "within the short grace");
    sim.advance(200);
    assert_eq!(room_names(&sim), ["duo"], "solo went after 500 ms");
    sim.advance(4_300);
    let back = sim.session();
    assert_eq!(
        sim.join(back, "duo", Role::Owner),
        Ok(h),
        "the board finds its shared room again"
    );
    leave(&mut sim, back, "duo");
    sim.advance(5_100);
    assert!(
        room_names(&sim).is_empty(),
        "and it goes after the full grace"
    );
}
