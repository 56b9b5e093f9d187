//! The two heartbeats together — the engine's pings and the hub's — and what a
//! partition does to both ends; and a pose stream from one engine decoded by
//! another through the hub core.

use super::*;
use crate::engine::Priority;
use crate::proto::{COORD_MAX_ERROR, LeaveReason, PoseFrame, SCORE_MAX_ERROR};

#[test]
fn an_idle_session_stays_up_for_a_minute() {
    let mut w = World::new();
    let a = w.engine("a", "quiet", Role::Member, EngineConfig::default());
    let b = w.engine("b", "quiet", Role::Member, EngineConfig::default());
    w.join(a, "quiet", Role::Member);
    w.join(b, "quiet", Role::Member);
    w.run(60_000);
    for e in [a, b] {
        let eng = &w.engines[e];
        assert_eq!(
            eng.count(|e| matches!(e, Event::Disconnected { .. } | Event::MemberLeft { .. })),
            0,
            "{:?}",
            eng.events
        );
        assert!(eng.handle.metrics().rtt_us > 0, "pings were answered");
    }
    assert_eq!(w.hub().stats().faults.iter().sum::<u64>(), 0);
}

#[test]
fn a_partition_is_found_by_both_ends_and_the_room_comes_back() {
    let mut w = World::new();
    let cfg = EngineConfig {
        heartbeat_ms: 1_000,
        reconnect_min_ms: 100,
        reconnect_max_ms: 1_000,
        ..EngineConfig::default()
    };
    let cam = w.engine("cam", "field", Role::Member, cfg.clone());
    let viewer = w.engine("viewer", "field", Role::Viewer, cfg);
    w.join(cam, "field", Role::Member);
    w.join(viewer, "field", Role::Viewer);
    w.partition(cam, true);
    // The engine: no byte for two of its heartbeats.
    assert!(w.run_until(3_000, |w| {
        w.engines[cam].count(|e| matches!(e, Event::Disconnected { .. })) == 1
    }));
    // The hub: silent for three of its heartbeats (5 s each); the room hears.
    assert!(w.run_until(20_000, |w| {
        w.engines[viewer].count(|e| {
            matches!(
                e,
                Event::MemberLeft {
                    reason: LeaveReason::TimedOut,
                    ..
                }
            )
        }) == 1
    }));
    w.partition(cam, false);
    assert!(w.run_until(3_000, |w| {
        w.engines[cam].count(|e| matches!(e, Event::RoomRestored { .. })) == 1
    }));
    w.run(100);
    assert_eq!(
        w.engines[viewer].count(|e| matches!(e, Event::MemberJoined { .. })),
        1,
        "{:?}",
        w.engines[viewer].events
    );
}

#[test]
fn pose_from_one_engine_decodes_in_another_within_the_bound() {
    let mut w = World::new();
    let cam = w.engine("cam", "pose", Role::Member, EngineConfig::default());
    let viewer = w.engine("viewer", "pose", Role::Viewer, EngineConfig::default());
    let room = w.join(cam, "pose", Role::Member);
    w.join(viewer, "pose", Role::Viewer);
    let mut sent = Vec::new();
    for seq in 1..=90u32 {
        let mut f = PoseFrame::zeroed();
        f.seq = seq;
        f.capture_ts_us = w.now;
        for (k, lm) in f.landmarks.iter_mut().enumerate() {
            let t = seq as f32 * 0.03 + k as f32 * 0.1;
            lm.x = 0.5 + 0.3 * t.sin();
            lm.y = 0.5 + 0.3 * t.cos();
            lm.z = -0.1 * (t * 0.5).sin();
            lm.visibility = 0.9;
            lm.presence = 0.95;
        }
        w.engines[cam]
            .handle
            .send_pose(&f, room, Priority::NORMAL)
            .unwrap();
        sent.push(f);
        w.run(33);
    }
    w.run(100);
    let got: Vec<PoseFrame> = w.engines[viewer]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Pose { frame, .. } => Some(*frame),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), sent.len(), "every frame arrived");
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!(g.seq, s.seq);
        for (a, b) in g.landmarks.iter().zip(&s.landmarks) {
            assert!((a.x - b.x).abs() <= COORD_MAX_ERROR, "{} vs {}", a.x, b.x);
            assert!((a.y - b.y).abs() <= COORD_MAX_ERROR);
            assert!((a.z - b.z).abs() <= COORD_MAX_ERROR);
            assert!((a.visibility - b.visibility).abs() <= SCORE_MAX_ERROR);
            assert!((a.presence - b.presence).abs() <= SCORE_MAX_ERROR);
        }
    }
}
