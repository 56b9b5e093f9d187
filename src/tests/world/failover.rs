//! Issue #15's failover in the joint simulation: two independent hub cores, a
//! publishing engine and a viewing engine configured with both; the first hub
//! dies (a SIGKILL: every transport reset, its state gone) while audio and
//! poses stream. Both engines move to the second hub, rejoin, and the
//! publisher's unacknowledged audio is replayed there: the viewer hears every
//! chunk once, in order, and sees the publisher's poses again within 3 s.
//!
//! The hubs share nothing (the hub cluster is another piece of work), so what
//! the publisher sends to the second hub before the viewer is back in the room
//! there reaches no one: the viewer here retries sooner than the publisher (a
//! shorter `reconnect_min_ms`), as it would have to on real independent hubs.

use super::*;
use crate::engine::Priority;
use crate::proto::PoseFrame;

/// Audio chunks sent, one per 20 ms (3 s).
const CHUNKS: u32 = 150;

fn pose(seq: u32, ts_us: u64) -> PoseFrame {
    let mut f = PoseFrame::zeroed();
    f.seq = seq;
    f.capture_ts_us = ts_us;
    for (i, lm) in f.landmarks.iter_mut().enumerate() {
        lm.x = 0.25 + i as f32 / 100.0;
        lm.y = 0.5;
        lm.visibility = 1.0;
        lm.presence = 1.0;
    }
    f
}

/// The hub of each `Connected` event of engine `e`, in order.
fn hubs_connected(w: &World, e: usize) -> Vec<usize> {
    w.engines[e]
        .events
        .iter()
        .filter_map(|ev| match ev {
            Event::Connected { hub_index, .. } => Some(*hub_index),
            _ => None,
        })
        .collect()
}

#[test]
fn a_killed_hub_fails_both_engines_over_with_audio_exactly_once() {
    let mut w = World::with_hubs(2);
    let quick = |min_ms| EngineConfig {
        heartbeat_ms: 500,
        reconnect_min_ms: min_ms,
        reconnect_max_ms: 2_000,
        ..EngineConfig::default()
    };
    let viewer = w.engine("viewer", "fo", Role::Viewer, quick(10));
    let cam = w.engine("cam", "fo", Role::Member, quick(300));
    w.join(viewer, "fo", Role::Viewer);
    let room = w.join(cam, "fo", Role::Member);
    assert_eq!(
        (hubs_connected(&w, viewer), hubs_connected(&w, cam)),
        (vec![0], vec![0])
    );
    let start = w.now;
    let mut seq = 1;
    let mut killed_at = None;
    // The first pose frame the viewer got after the kill, µs after it.
    let mut pose_back_after = None;
    for step in 0..5_000u64 {
        if seq <= CHUNKS && w.now >= start + u64::from(seq - 1) * 20_000 {
            let h = &w.engines[cam].handle;
            h.send_audio(&chunk(seq, w.now), room, Priority::NORMAL)
                .expect("queued");
            h.send_pose(&pose(seq, w.now), room, Priority::NORMAL)
                .expect("queued");
            seq += 1;
        }
        // 1.011 s in: some audio is in flight and some unacknowledged.
        if step == 1_011 {
            let poses = w.engines[viewer].count(|e| matches!(e, Event::Pose { .. }));
            w.hub_down_at(0);
            killed_at = Some((w.now, poses));
        }
        w.step();
        if let (Some((t, poses)), None) = (killed_at, pose_back_after)
            && w.engines[viewer].count(|e| matches!(e, Event::Pose { .. })) > poses
        {
            pose_back_after = Some(w.now - t);
        }
    }
    let back = pose_back_after.expect("the viewer saw the publisher's poses again");
    assert!(back <= 3_000_000, "publishing again after {back} µs");
    assert_eq!(hubs_connected(&w, viewer), [0, 1]);
    assert_eq!(hubs_connected(&w, cam), [0, 1]);
    assert_eq!(
        w.engines[viewer].audio_seqs(),
        (1..=CHUNKS).collect::<Vec<_>>(),
        "every chunk once, in order"
    );
    let m = w.engines[cam].handle.metrics();
    assert_eq!((m.failovers, m.hub_index, m.audio_lost), (1, 1, 0), "{m:?}");
    assert!(
        m.audio_replayed >= 1,
        "the kill left audio to replay: {m:?}"
    );
    assert_eq!(
        w.engines[cam].count(|e| matches!(e, Event::RoomRestored { .. })),
        1
    );
    // The viewer dropped what it had heard already (replayed on the new hub
    // under the publisher's new member id, known by its stream id).
    assert!(w.engines[viewer].handle.metrics().audio_duplicates >= 1);
    // Everything after the kill went through hub 1.
    assert!(w.hub_at(1).stats().sessions_opened >= 2);
}
