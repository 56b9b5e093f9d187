//! Issue #17's reconnect cases in the joint simulation: receivers know a
//! publisher by its stream id, so two boards of one user are both heard and a
//! replay under a new member id after a hub restart is dropped; the sender's
//! counts say what receivers saw; a resume takes a session over whose old
//! connection the hub still holds.

use std::collections::BTreeMap;

use super::*;
use crate::engine::Priority;

/// Audio chunks each publisher sends, one per 20 ms.
const CHUNKS: u32 = 150;

fn quick() -> EngineConfig {
    EngineConfig {
        heartbeat_ms: 500,
        reconnect_min_ms: 50,
        reconnect_max_ms: 200,
        ..EngineConfig::default()
    }
}

/// The chunk numbers engine `e` received, per (user, stream id) of the sender
/// (as its member lists said when the chunk came).
fn by_stream(w: &World, e: usize) -> BTreeMap<(String, u64), Vec<u32>> {
    let mut names: BTreeMap<u16, (String, u64)> = BTreeMap::new();
    let mut got: BTreeMap<(String, u64), Vec<u32>> = BTreeMap::new();
    for ev in &w.engines[e].events {
        match ev {
            Event::RoomJoined { members, .. } | Event::RoomRestored { members, .. } => {
                for m in members {
                    names.insert(m.member, (m.user.clone(), m.stream));
                }
            }
            Event::MemberJoined { member, .. } => {
                names.insert(member.member, (member.user.clone(), member.stream));
            }
            Event::Audio { sender, chunk, .. } => {
                let who = names.get(sender).cloned().expect("a known sender");
                got.entry(who).or_default().push(chunk.seq);
            }
            _ => {}
        }
    }
    got
}

/// Queues chunk `seq` of publisher `e` when the clock reaches its 20 ms tick;
/// returns the next seq.
fn pace(w: &mut World, e: usize, room: RoomId, seq: u32, start: u64) -> u32 {
    if seq <= CHUNKS && w.now >= start + u64::from(seq - 1) * 20_000 {
        w.engines[e]
            .handle
            .send_audio(&chunk(seq, w.now), room, Priority::NORMAL)
            .expect("queued");
        return seq + 1;
    }
    seq
}

#[test]
fn two_boards_of_one_user_survive_a_hub_restart_each_exactly_once() {
    // Chunk 51 leaves both boards at step 1 000 and is relayed two steps
    // later; the hub acknowledges in 20 ms batches, so at 1 005 the viewer has
    // it and the boards have no ack for it (1 003 to 1 009 all do this).
    let kill: u64 = 1_005;
    let mut w = World::new();
    let viewer = w.engine("viewer", "pair", Role::Viewer, quick());
    let a = w.engine("cam", "pair", Role::Member, quick());
    let b = w.engine("cam", "pair", Role::Member, quick());
    w.join(viewer, "pair", Role::Viewer);
    let ra = w.join(a, "pair", Role::Member);
    let rb = w.join(b, "pair", Role::Member);
    let start = w.now;
    let (mut sa, mut sb) = (1, 1);
    let mut viewer_back = false;
    // The hub dies right after relaying chunks whose acks are still to come
    // (see `kill`): the boards replay them to
    // a new hub that knows nothing, under new member ids, and only the viewer
    // can tell. The boards are kept away until the viewer is back in the
    // room, so that nothing is relayed to a room without it.
    for step in 0..6_000u64 {
        sa = pace(&mut w, a, ra, sa, start);
        sb = pace(&mut w, b, rb, sb, start);
        match step {
            s if s == kill => {
                w.hub_down();
                w.partition(a, true);
                w.partition(b, true);
            }
            s if s == kill + 300 => w.hub_up(),
            _ => {}
        }
        if !viewer_back && w.engines[viewer].count(|e| matches!(e, Event::RoomRestored { .. })) == 1
        {
            viewer_back = true;
            w.partition(a, false);
            w.partition(b, false);
        }
        w.step();
    }
    assert!(viewer_back, "the viewer's room was restored");
    let got = by_stream(&w, viewer);
    let all: Vec<u32> = (1..=CHUNKS).collect();
    let streams: Vec<u64> = got.keys().map(|k| k.1).collect();
    assert_eq!(got.len(), 2, "two streams of user cam: {streams:?}");
    for (who, seqs) in &got {
        assert_eq!(seqs, &all, "{who:?}: every chunk once, in order");
    }
    let mv = w.engines[viewer].handle.metrics();
    assert!(
        mv.audio_duplicates >= 1,
        "the replays reached the viewer, which dropped them: {mv:?}"
    );
    assert_eq!(
        (mv.audio_gaps, mv.audio_received),
        (0, 2 * u64::from(CHUNKS))
    );
    for e in [a, b] {
        let m = w.engines[e].handle.metrics();
        assert_eq!((m.audio_lost, m.drops_evicted), (0, 0), "{m:?}");
        assert!(m.audio_replayed >= 1, "{m:?}");
    }
}

/// The outside test's 4.9 s outage: the audio captured meanwhile waits in the
/// send queue and goes in one burst when the session is back, faster than the
/// hub's acknowledgements return, so it overruns the replay window's age
/// bound; none of it is lost, and the sender says so.
#[test]
fn a_long_outage_loses_nothing_and_the_counts_say_so() {
    let mut w = World::new();
    let viewer = w.engine("viewer", "long", Role::Viewer, quick());
    let cam = w.engine(
        "cam",
        "long",
        Role::Member,
        EngineConfig {
            reconnect_max_ms: 5_000,
            ..EngineConfig::default()
        },
    );
    w.join(viewer, "long", Role::Viewer);
    let room = w.join(cam, "long", Role::Member);
    let start = w.now;
    let mut seq = 1;
    for step in 0..12_000u64 {
        seq = pace(&mut w, cam, room, seq, start);
        match step {
            500 => w.partition(cam, true),
            5_400 => w.partition(cam, false),
            _ => {}
        }
        w.step();
    }
    let m = w.engines[cam].handle.metrics();
    assert!(m.reconnects >= 1, "{m:?}");
    let got = by_stream(&w, viewer);
    let all: Vec<u32> = (1..=CHUNKS).collect();
    assert_eq!(got.values().collect::<Vec<_>>(), [&all], "every chunk once");
    assert_eq!(
        (m.audio_lost, m.drops_evicted),
        (0, 0),
        "nothing lost, nothing said lost: {m:?}"
    );
    let mv = w.engines[viewer].handle.metrics();
    assert_eq!(mv.audio_gaps, 0, "{mv:?}");
}

/// The board notices a dead connection (two heartbeats without a byte) long
/// before the hub does; its resume takes the session over, with its member id,
/// and its audio goes on exactly once.
#[test]
fn a_resume_takes_over_the_session_the_hub_still_holds() {
    let mut w = World::new();
    let viewer = w.engine("viewer", "live", Role::Viewer, quick());
    let cam = w.engine("cam", "live", Role::Member, quick());
    w.join(viewer, "live", Role::Viewer);
    let room = w.join(cam, "live", Role::Member);
    let start = w.now;
    let mut seq = 1;
    let mut healed = false;
    for step in 0..6_000u64 {
        seq = pace(&mut w, cam, room, seq, start);
        if step == 1_000 {
            w.partition(cam, true);
        }
        // Heal as soon as the board has given the connection up: the hub
        // (heartbeat 1 s, so 2 s of silence) still holds it.
        if !healed && w.engines[cam].count(|e| matches!(e, Event::Disconnected { .. })) == 1 {
            healed = true;
            w.partition(cam, false);
        }
        w.step();
    }
    assert!(healed);
    let members: Vec<u16> = w.engines[cam]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Connected { member, .. } => Some(*member),
            _ => None,
        })
        .collect();
    assert_eq!(members.len(), 2, "{members:?}");
    assert_eq!(members[0], members[1], "the member id comes back");
    let got = by_stream(&w, viewer);
    let all: Vec<u32> = (1..=CHUNKS).collect();
    assert_eq!(got.values().collect::<Vec<_>>(), [&all], "every chunk once");
    let m = w.engines[cam].handle.metrics();
    assert_eq!(m.audio_lost, 0, "{m:?}");
}
