//! The whole lifecycle against a real hub (create, join, send, poll, leave,
//! destroy), a refused join, one engine shared by many threads, and the version
//! and ABI the library reports.

use std::ffi::{CStr, CString};
use std::time::Duration;

use poselink::hub::HubConfig;
use poselink::proto::{COORD_MAX_ERROR, Role, SCORE_MAX_ERROR};
use poselink::token::{Claims, Grant, TokenKey};
use poselink_capi::*;

use crate::common::*;

#[test]
fn the_whole_lifecycle_against_a_real_hub() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    let viewer = Engine::new(&config(&url));
    let mut cfg = config(&url);
    cfg.client = c"capi-test".as_ptr();
    let publisher = Engine::new(&cfg);

    let room_v = viewer.join(c"capi-life", PoselinkRole::Viewer);
    let room_p = publisher.join(c"capi-life", PoselinkRole::Member);
    let joined = collect(&publisher, |ev| {
        count(ev, PoselinkEventKind::RoomJoined) == 1
    });
    let rj = joined
        .iter()
        .find(|e| e.kind == PoselinkEventKind::RoomJoined)
        .expect("ROOM_JOINED");
    assert_eq!((rj.room, rj.member_count), (room_p, 2));
    assert!(publisher.metrics().connected == 1);

    const N: u32 = 30;
    let mut sent_frames = Vec::new();
    for i in 0..N {
        let frame = landmarks(i as f32 / 1000.0);
        let ts = 1_000_000 + u64::from(i) * 33_333;
        let s = unsafe {
            poselink_send_pose(
                publisher.0,
                room_p,
                frame.as_ptr(),
                frame.len(),
                i + 1,
                0,
                ts,
                POSELINK_PRIORITY_NORMAL,
            )
        };
        assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
        sent_frames.push(frame);
        let pcm: Vec<i16> = (0..960)
            .map(|k| (k as i16).wrapping_mul(31) ^ i as i16)
            .collect();
        let s = unsafe {
            poselink_send_audio(
                publisher.0,
                room_p,
                pcm.as_ptr(),
                pcm.len(),
                1,
                48_000,
                i + 1,
                ts,
                POSELINK_PRIORITY_HIGH,
            )
        };
        assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
        std::thread::sleep(Duration::from_millis(5));
    }

    let got = collect(&viewer, |ev| {
        count(ev, PoselinkEventKind::Pose) == N as usize
            && count(ev, PoselinkEventKind::Audio) == N as usize
    });
    let mj = got
        .iter()
        .find(|e| e.kind == PoselinkEventKind::MemberJoined)
        .expect("MEMBER_JOINED for the publisher");
    assert_eq!((mj.room, mj.role), (room_v, PoselinkRole::Member));
    let publisher_id = mj.member;
    let poses: Vec<&PoselinkEvent> = got
        .iter()
        .filter(|e| e.kind == PoselinkEventKind::Pose)
        .collect();
    assert_eq!(poses.len(), N as usize, "{:?}", viewer.metrics());
    for (ev, sent) in poses.iter().zip(&sent_frames) {
        assert_eq!((ev.room, ev.member), (room_v, publisher_id));
        let p = &ev.pose;
        assert_eq!(p.capture_ts_us, 1_000_000 + u64::from(p.seq - 1) * 33_333);
        for (got, want) in p.landmarks.iter().flatten().zip(sent) {
            assert!(
                (got - want).abs() <= COORD_MAX_ERROR.max(SCORE_MAX_ERROR),
                "{got} vs {want}"
            );
        }
    }
    let audio: Vec<&PoselinkEvent> = got
        .iter()
        .filter(|e| e.kind == PoselinkEventKind::Audio)
        .collect();
    assert_eq!(audio.len(), N as usize);
    for (i, ev) in audio.iter().enumerate() {
        let a = &ev.audio;
        assert_eq!(
            (a.seq, a.len, a.channels, a.sample_rate),
            (i as u32 + 1, 960, 1, 48_000)
        );
        let want: Vec<i16> = (0..960)
            .map(|k| (k as i16).wrapping_mul(31) ^ i as i16)
            .collect();
        assert_eq!(
            &a.samples[..],
            &want[..],
            "audio chunk {} arrives sample for sample",
            a.seq
        );
    }

    let m = publisher.metrics();
    assert_eq!(
        (m.poses_submitted, m.audio_submitted),
        (u64::from(N), u64::from(N))
    );
    assert_eq!(
        unsafe { poselink_set_bandwidth_limit(publisher.0, 0) },
        PoselinkStatus::Ok
    );

    // Leave: the viewer sees the publisher go, the publisher sees its room go.
    assert_eq!(
        unsafe { poselink_leave_room(publisher.0, room_p) },
        PoselinkStatus::Ok
    );
    let left = collect(&publisher, |ev| count(ev, PoselinkEventKind::RoomLeft) == 1);
    let rl = left
        .iter()
        .find(|e| e.kind == PoselinkEventKind::RoomLeft)
        .expect("ROOM_LEFT");
    assert_eq!(
        (rl.room, rl.leave_reason),
        (room_p, PoselinkLeaveReason::Left)
    );
    let gone = collect(&viewer, |ev| count(ev, PoselinkEventKind::MemberLeft) == 1);
    let ml = gone
        .iter()
        .find(|e| e.kind == PoselinkEventKind::MemberLeft)
        .expect("MEMBER_LEFT");
    assert_eq!(
        (ml.member, ml.leave_reason),
        (publisher_id, PoselinkLeaveReason::Left)
    );

    let end = publisher.destroy();
    assert_eq!(
        (end.poses_sent, end.audio_sent),
        (u64::from(N), u64::from(N))
    );
    assert_eq!(
        end.drops_ring + end.drops_stale + end.drops_no_room,
        0,
        "{end:?}"
    );
    let end_v = viewer.destroy();
    assert_eq!(
        (end_v.poses_received, end_v.audio_received),
        (u64::from(N), u64::from(N))
    );
}

#[test]
fn a_refused_join_says_why() {
    const SECRET: &str = "capi-test-secret-capi-test-secret-0123456";
    let hub = TestHub::start(HubConfig {
        dev: false,
        secret: Some(SECRET.into()),
        ..HubConfig::local_dev()
    });
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let token = TokenKey::hs256(SECRET.as_bytes())
        .unwrap()
        .mint(&Claims {
            sub: "pi-kitchen".into(),
            exp,
            rooms: vec![Grant {
                room: "studio-1".into(),
                role: Role::Viewer,
                create: true,
            }],
        })
        .unwrap();
    let token = CString::new(token).unwrap();
    let url = hub.url();
    let mut cfg = config(&url);
    cfg.token = token.as_ptr();
    let e = Engine::new(&cfg);
    let mut room = 0;
    for (name, role) in [
        (c"studio-2", PoselinkRole::Viewer),
        (c"studio-1", PoselinkRole::Member),
    ] {
        let s = unsafe { poselink_join_room(e.0, name.as_ptr(), role as u32, &mut room) };
        assert_eq!(s, PoselinkStatus::Refused, "{name:?} as {role:?}");
        let msg = last_error();
        assert!(
            msg.contains("forbidden") && msg.contains(name.to_str().unwrap()),
            "{msg}"
        );
    }
    // What the token grants is accepted.
    e.join(c"studio-1", PoselinkRole::Viewer);
}

#[test]
fn many_threads_share_one_engine() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    let e = Engine::new(&config(&url));
    let room = e.join(c"capi-threads", PoselinkRole::Member);
    let ptr = e.0 as usize;
    let senders: Vec<_> = (0..3u32)
        .map(|person| {
            std::thread::spawn(move || {
                let engine = ptr as *const PoselinkEngine;
                for i in 0..100u32 {
                    let frame = landmarks(0.0);
                    let s = unsafe {
                        poselink_send_pose(
                            engine,
                            room,
                            frame.as_ptr(),
                            165,
                            i + 1,
                            person,
                            u64::from(i) * 1000,
                            128,
                        )
                    };
                    assert_eq!(s, PoselinkStatus::Ok);
                    let mut m = PoselinkMetrics::default();
                    assert_eq!(
                        unsafe { poselink_metrics(engine, &mut m) },
                        PoselinkStatus::Ok
                    );
                    std::thread::sleep(Duration::from_micros(300));
                }
            })
        })
        .collect();
    let mut ev = new_event();
    while senders.iter().any(|t| !t.is_finished()) {
        let s = unsafe { poselink_poll_event(e.0, &mut *ev) };
        assert!(matches!(s, PoselinkStatus::Ok | PoselinkStatus::NoEvent));
        std::thread::sleep(Duration::from_millis(1));
    }
    for t in senders {
        t.join().unwrap();
    }
    let end = e.destroy();
    assert_eq!(end.poses_submitted, 300);
    assert_eq!(
        end.poses_sent + end.drops_ring + end.drops_superseded + end.drops_stale,
        300,
        "{end:?}"
    );
}

#[test]
fn version_and_abi() {
    assert_eq!(poselink_abi_version(), POSELINK_ABI_VERSION);
    let v = unsafe { CStr::from_ptr(poselink_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}
