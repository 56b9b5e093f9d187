//! The engine's drop paths, with its loop held still: the app's handle and the
//! engine's core run in memory, so a test can hand frames over without a turn
//! of the loop (the hand-over rings fill), let simulated time pass between
//! the hand-over and the send (pose frames go stale), or leave a room while a
//! frame waits. Each case checks what the app is told (the call's result and
//! the counters) and what a viewer in the room receives.

use super::*;
use crate::engine::{Counter, Priority, SendError};
use crate::proto::PoseFrame;

/// A valid pose frame of `person`, numbered `seq`.
fn pose(seq: u32, person: u32, ts_us: u64) -> PoseFrame {
    let mut f = PoseFrame::zeroed();
    f.seq = seq;
    f.person = person;
    f.capture_ts_us = ts_us;
    for (k, lm) in f.landmarks.iter_mut().enumerate() {
        lm.x = 0.25 + 0.01 * k as f32;
        lm.y = 0.5;
        lm.visibility = 0.9;
        lm.presence = 0.9;
    }
    f
}

/// A world with a publishing engine `cam` (configured by `cfg`) and a viewer,
/// both in room "held"; returns it, the two engines and cam's room.
fn room_of_two(cfg: EngineConfig) -> (World, usize, usize, RoomId) {
    let mut w = World::new();
    let cam = w.engine("cam", "held", Role::Member, cfg);
    let viewer = w.engine("viewer", "held", Role::Viewer, EngineConfig::default());
    let room = w.join(cam, "held", Role::Member);
    w.join(viewer, "held", Role::Viewer);
    (w, cam, viewer, room)
}

/// The (person, seq) of every pose frame engine `e`'s app received.
fn poses_seen(w: &World, e: usize) -> Vec<(u32, u32)> {
    w.engines[e]
        .events
        .iter()
        .filter_map(|ev| match ev {
            Event::Pose { frame, .. } => Some((frame.person, frame.seq)),
            _ => None,
        })
        .collect()
}

fn counter(w: &World, e: usize, c: Counter) -> u64 {
    w.engines[e].handle.counter(c)
}

#[test]
fn a_full_pose_ring_replaces_the_oldest_frame_and_counts_it() {
    let (mut w, cam, viewer, room) = room_of_two(EngineConfig {
        pose_ring: 4,
        ..EngineConfig::default()
    });
    // Six frames while the loop does not turn: the ring holds four.
    for seq in 1..=6 {
        let f = pose(seq, 0, w.now);
        w.engines[cam]
            .handle
            .send_pose(&f, room, Priority::NORMAL)
            .expect("a full pose ring is not the app's error");
    }
    assert_eq!(counter(&w, cam, Counter::PosesSubmitted), 6);
    assert_eq!(counter(&w, cam, Counter::DropsRing), 2);
    assert!(w.run_until(100, |w| !poses_seen(w, viewer).is_empty()));
    w.run(20);
    // Frames 3 to 6 reached the queue in one turn; the newest replaced the
    // others there, and only it was sent.
    assert_eq!(poses_seen(&w, viewer), [(0, 6)]);
    assert_eq!(counter(&w, cam, Counter::DropsSuperseded), 3);
    assert_eq!(counter(&w, cam, Counter::PosesSent), 1);
}

#[test]
fn a_full_audio_ring_refuses_the_chunk_and_keeps_the_rest() {
    let (mut w, cam, viewer, room) = room_of_two(EngineConfig {
        audio_ring: 4,
        ..EngineConfig::default()
    });
    let start = w.now;
    for seq in 1..=4 {
        w.engines[cam]
            .handle
            .send_audio(
                &chunk(seq, start + u64::from(seq) * 20_000),
                room,
                Priority::NORMAL,
            )
            .expect("room in the ring");
    }
    let fifth = chunk(5, start + 100_000);
    assert_eq!(
        w.engines[cam]
            .handle
            .send_audio(&fifth, room, Priority::NORMAL),
        Err(SendError::RingFull)
    );
    // One turn empties the ring: the app's retry is taken.
    w.step();
    w.engines[cam]
        .handle
        .send_audio(&fifth, room, Priority::NORMAL)
        .expect("the loop took the ring's chunks");
    assert!(w.run_until(200, |w| w.engines[viewer].audio_seqs().len() == 5));
    w.run(20);
    assert_eq!(w.engines[viewer].audio_seqs(), [1, 2, 3, 4, 5]);
    assert_eq!(counter(&w, cam, Counter::AudioSent), 5);
}

#[test]
fn a_frame_for_a_room_left_while_it_waited_in_the_ring_is_dropped() {
    let (mut w, cam, viewer, room) = room_of_two(EngineConfig::default());
    w.engines[cam]
        .handle
        .send_pose(&pose(1, 0, w.now), room, Priority::NORMAL)
        .unwrap();
    // The app leaves before the loop turns: the loop takes the leave first.
    w.engines[cam].handle.leave_room(room);
    w.run(50);
    assert_eq!(counter(&w, cam, Counter::DropsNoRoom), 1);
    assert_eq!(counter(&w, cam, Counter::PosesSent), 0);
    assert_eq!(poses_seen(&w, viewer), []);
}

#[test]
fn a_frame_for_a_room_left_while_it_waited_in_the_queue_is_dropped() {
    let (mut w, cam, viewer, room) = room_of_two(EngineConfig::default());
    w.engines[cam]
        .handle
        .send_pose(&pose(1, 0, w.now), room, Priority::NORMAL)
        .unwrap();
    // The loop takes the frame into its send queue, then (before it sends)
    // the app leaves the room.
    let now = w.now;
    w.engines[cam].core.take_input(now);
    w.engines[cam].handle.leave_room(room);
    w.run(50);
    assert_eq!(counter(&w, cam, Counter::DropsNoRoom), 1);
    assert_eq!(counter(&w, cam, Counter::PosesSent), 0);
    assert_eq!(poses_seen(&w, viewer), []);
}

#[test]
fn a_pose_older_than_max_pose_age_at_its_turn_is_dropped_and_its_slot_reused() {
    let (mut w, cam, viewer, room) = room_of_two(EngineConfig {
        max_pose_age_ms: 100,
        queue_capacity: 2,
        ..EngineConfig::default()
    });
    // Three times, the loop stalls for 200 ms between taking a frame into
    // its send queue and its turn to send.
    for k in 1..=3 {
        w.engines[cam]
            .handle
            .send_pose(&pose(k, 0, w.now), room, Priority::NORMAL)
            .unwrap();
        let now = w.now;
        w.engines[cam].core.take_input(now);
        w.now += 200_000;
        w.step();
        assert_eq!(counter(&w, cam, Counter::DropsStale), u64::from(k));
    }
    assert_eq!(counter(&w, cam, Counter::PosesSent), 0);
    // The stale frames' slots were given back (the queue's slab has three):
    // two frames (two persons, so neither replaces the other) still fit, and
    // both are sent.
    for person in 0..2 {
        w.engines[cam]
            .handle
            .send_pose(&pose(10, person, w.now), room, Priority::NORMAL)
            .unwrap();
    }
    assert!(w.run_until(100, |w| poses_seen(w, viewer).len() == 2));
    w.run(20);
    assert_eq!(poses_seen(&w, viewer), [(0, 10), (1, 10)]);
    assert_eq!(counter(&w, cam, Counter::DropsStale), 3);
    assert_eq!(counter(&w, cam, Counter::DropsRefused), 0);
    assert_eq!(counter(&w, cam, Counter::DropsEvicted), 0);
}

#[test]
fn a_person_beyond_max_persons_is_refused_between_queue_and_session() {
    let (mut w, cam, viewer, room) = room_of_two(EngineConfig {
        max_persons: 1,
        ..EngineConfig::default()
    });
    for person in 0..2 {
        w.engines[cam]
            .handle
            .send_pose(&pose(1, person, w.now), room, Priority::NORMAL)
            .unwrap();
    }
    assert!(w.run_until(100, |w| !poses_seen(w, viewer).is_empty()));
    w.run(20);
    assert_eq!(poses_seen(&w, viewer), [(0, 1)]);
    assert_eq!(counter(&w, cam, Counter::DropsRefused), 1);
    assert_eq!(counter(&w, cam, Counter::PosesSent), 1);
}

#[test]
fn audio_the_replay_window_cannot_keep_is_lost_on_an_open_connection() {
    // A 1 ms window: every chunk leaves it unacknowledged as the next is
    // sent (captured 20 ms later). The partition keeps the hub's
    // acknowledgements away; the connection stays open (no heartbeat is due
    // to fail yet), so once the at-risk list is full each chunk pushes the
    // oldest out of it, lost for certain.
    let (mut w, cam, _viewer, room) = room_of_two(EngineConfig {
        audio_window_ms: 1,
        ..EngineConfig::default()
    });
    w.partition(cam, true);
    let start = w.now;
    const N: u32 = 60;
    for seq in 1..=N {
        w.engines[cam]
            .handle
            .send_audio(
                &chunk(seq, start + u64::from(seq) * 20_000),
                room,
                Priority::NORMAL,
            )
            .expect("room in the ring");
    }
    assert!(w.run_until(200, |w| counter(w, cam, Counter::AudioSent) == N as u64));
    assert!(w.engines[cam].handle.is_connected(), "still connected");
    let lost = counter(&w, cam, Counter::AudioLost);
    assert!(lost > 0 && lost < u64::from(N), "lost {lost}");
    let told: u64 = w.engines[cam]
        .events
        .iter()
        .map(|e| match e {
            Event::AudioLost { count, .. } => *count,
            _ => 0,
        })
        .sum();
    assert_eq!(told, lost, "the app is told of each lost chunk");
    assert!(
        !w.engines[cam]
            .events
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "lost on an open connection"
    );
}
