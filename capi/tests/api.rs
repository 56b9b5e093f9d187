//! The C API called as a C caller calls it: NULL pointers and wrong lengths are
//! refused with a status and a message, bad values too, and the whole lifecycle
//! (create, join, send pose and audio, poll events, metrics, bandwidth limit,
//! leave, destroy) works against a real hub on 127.0.0.1. Every wait is bounded.

use std::ffi::{CStr, CString, c_char};
use std::net::SocketAddr;
use std::ptr;
use std::time::{Duration, Instant};

use poselink::hub::{Hub, HubConfig, HubHandle, HubReport};
use poselink::proto::{COORD_MAX_ERROR, Role, SCORE_MAX_ERROR};
use poselink::token::{Claims, Grant, TokenKey};
use poselink_capi::*;

/// A hub on a free loopback port, stopped on drop.
struct TestHub {
    addr: SocketAddr,
    handle: HubHandle,
    join: Option<std::thread::JoinHandle<std::io::Result<HubReport>>>,
}

impl TestHub {
    fn start(cfg: HubConfig) -> TestHub {
        let (handle, addr, join) = Hub::spawn(cfg).expect("the hub starts");
        TestHub {
            addr,
            handle,
            join: Some(join),
        }
    }

    fn url(&self) -> CString {
        CString::new(format!("ws://{}/", self.addr)).unwrap()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(poselink_last_error()) }
        .to_str()
        .unwrap()
        .to_string()
}

fn config(hub: &CStr) -> PoselinkConfig {
    let mut c = std::mem::MaybeUninit::uninit();
    assert_eq!(
        unsafe { poselink_config_init(c.as_mut_ptr()) },
        PoselinkStatus::Ok
    );
    let mut c = unsafe { c.assume_init() };
    c.hub = hub.as_ptr();
    c
}

/// An engine (owned: destroyed on drop).
struct Engine(*mut PoselinkEngine);

impl Engine {
    fn new(cfg: &PoselinkConfig) -> Engine {
        let mut e = ptr::null_mut();
        let s = unsafe { poselink_engine_create(cfg, &mut e) };
        assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
        assert!(!e.is_null());
        Engine(e)
    }

    fn join(&self, room: &CStr, role: PoselinkRole) -> u16 {
        let mut id = u16::MAX;
        let s = unsafe { poselink_join_room(self.0, room.as_ptr(), role as u32, &mut id) };
        assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
        id
    }

    fn metrics(&self) -> PoselinkMetrics {
        let mut m = PoselinkMetrics::default();
        assert_eq!(
            unsafe { poselink_metrics(self.0, &mut m) },
            PoselinkStatus::Ok
        );
        m
    }

    fn destroy(mut self) -> PoselinkMetrics {
        let mut m = PoselinkMetrics::default();
        let s = unsafe { poselink_engine_destroy(self.0, &mut m) };
        self.0 = ptr::null_mut();
        assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
        m
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.0.is_null() {
            unsafe { poselink_engine_destroy(self.0, ptr::null_mut()) };
        }
    }
}

/// An engine pointed at a port where nothing listens: it keeps trying to
/// connect in the background, which the argument checks do not need.
fn offline_engine() -> Engine {
    let url = c"ws://127.0.0.1:9/";
    let mut cfg = config(url);
    cfg.join_timeout_ms = 100;
    Engine::new(&cfg)
}

/// A valid frame: landmark i at (0.3 + i/100, 0.6 − i/100, −0.1 + i/200), scores 0.9.
fn landmarks(shift: f32) -> [f32; POSELINK_POSE_VALUES] {
    let mut v = [0.0; POSELINK_POSE_VALUES];
    for (i, lm) in v.chunks_mut(POSELINK_LANDMARK_VALUES).enumerate() {
        let i = i as f32;
        lm.copy_from_slice(&[
            0.3 + i / 100.0 + shift,
            0.6 - i / 100.0,
            -0.1 + i / 200.0,
            0.9,
            0.95,
        ]);
    }
    v
}

fn new_event() -> Box<PoselinkEvent> {
    // SAFETY: every field of PoselinkEvent is an integer, a float or an array of
    // them, or an enum whose zero value is a variant.
    Box::new(unsafe { std::mem::zeroed() })
}

/// Events until `until` says stop or 5 s pass; returns them.
fn collect(e: &Engine, mut until: impl FnMut(&[PoselinkEvent]) -> bool) -> Vec<PoselinkEvent> {
    let mut out = Vec::new();
    let mut ev = new_event();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !until(&out) && Instant::now() < deadline {
        match unsafe { poselink_wait_event(e.0, &mut *ev, 50) } {
            PoselinkStatus::Ok => out.push(*ev),
            PoselinkStatus::NoEvent => assert_eq!(ev.kind, PoselinkEventKind::None),
            s => panic!("wait_event: {s:?} {}", last_error()),
        }
    }
    out
}

fn count(events: &[PoselinkEvent], kind: PoselinkEventKind) -> usize {
    events.iter().filter(|e| e.kind == kind).count()
}

#[test]
fn null_pointers_are_refused_with_a_message() {
    let e = offline_engine();
    let frame = landmarks(0.0);
    let pcm = [0i16; 960];
    let mut ev = new_event();
    let mut m = PoselinkMetrics::default();
    let mut room = 0u16;
    let mut out = ptr::null_mut();
    let cfg = config(c"ws://127.0.0.1:9/");
    let null = ptr::null::<PoselinkEngine>();
    let cases: Vec<(&str, PoselinkStatus)> = unsafe {
        vec![
            ("config", poselink_config_init(ptr::null_mut())),
            ("config", poselink_engine_create(ptr::null(), &mut out)),
            ("engine_out", poselink_engine_create(&cfg, ptr::null_mut())),
            ("engine", poselink_engine_destroy(ptr::null_mut(), &mut m)),
            (
                "engine",
                poselink_join_room(null, c"r".as_ptr(), 1, &mut room),
            ),
            ("room", poselink_join_room(e.0, ptr::null(), 1, &mut room)),
            (
                "room_out",
                poselink_join_room(e.0, c"r".as_ptr(), 1, ptr::null_mut()),
            ),
            ("engine", poselink_leave_room(null, 0)),
            (
                "engine",
                poselink_send_pose(null, 0, frame.as_ptr(), 165, 1, 0, 0, 128),
            ),
            (
                "landmarks",
                poselink_send_pose(e.0, 0, ptr::null(), 165, 1, 0, 0, 128),
            ),
            (
                "engine",
                poselink_send_audio(null, 0, pcm.as_ptr(), 960, 1, 48_000, 1, 0, 128),
            ),
            (
                "samples",
                poselink_send_audio(e.0, 0, ptr::null(), 960, 1, 48_000, 1, 0, 128),
            ),
            ("engine", poselink_poll_event(null, &mut *ev)),
            ("event", poselink_poll_event(e.0, ptr::null_mut())),
            ("engine", poselink_wait_event(null, &mut *ev, 1)),
            ("event", poselink_wait_event(e.0, ptr::null_mut(), 1)),
            ("engine", poselink_metrics(null, &mut m)),
            ("metrics", poselink_metrics(e.0, ptr::null_mut())),
            ("engine", poselink_set_bandwidth_limit(null, 1000)),
        ]
    };
    for (i, (what, status)) in cases.into_iter().enumerate() {
        assert_eq!(status, PoselinkStatus::NullPointer, "case {i} ({what})");
    }
    // The message names the pointer (checked on calls made one by one).
    unsafe { poselink_send_pose(e.0, 0, ptr::null(), 165, 1, 0, 0, 128) };
    assert_eq!(last_error(), "landmarks is NULL; pass a valid pointer");
    unsafe { poselink_metrics(null, &mut m) };
    assert_eq!(last_error(), "engine is NULL; pass a valid pointer");
    // A failed create leaves NULL behind, not garbage.
    let mut out = ptr::dangling_mut::<PoselinkEngine>();
    let mut bad = cfg;
    bad.max_rooms = 0;
    assert_eq!(
        unsafe { poselink_engine_create(&bad, &mut out) },
        PoselinkStatus::InvalidArgument
    );
    assert!(out.is_null());
    assert!(last_error().contains("max_rooms"), "{}", last_error());
    // Nothing was sent by any of it.
    let m = e.metrics();
    assert_eq!((m.poses_submitted, m.audio_submitted), (0, 0));
}

#[test]
fn wrong_lengths_are_refused_with_a_message() {
    let e = offline_engine();
    let frame = landmarks(0.0);
    for len in [0, 5, 164, 166, 330] {
        let s = unsafe { poselink_send_pose(e.0, 0, frame.as_ptr(), len, 1, 0, 0, 128) };
        assert_eq!(s, PoselinkStatus::BadLength, "len {len}");
        assert!(
            last_error().contains(&format!("not {len}")),
            "{}",
            last_error()
        );
    }
    let pcm = [0i16; 1024];
    for (len, channels) in [(0, 1), (961, 1), (1024, 2), (959, 2)] {
        let s =
            unsafe { poselink_send_audio(e.0, 0, pcm.as_ptr(), len, channels, 48_000, 1, 0, 128) };
        assert_eq!(
            s,
            PoselinkStatus::BadLength,
            "len {len} channels {channels}"
        );
    }
    // A room name of 65 bytes, and one with no terminator in its first 65: the
    // library stops reading at byte 65 and refuses.
    let long = CString::new("r".repeat(65)).unwrap();
    let mut room = 0;
    let s = unsafe { poselink_join_room(e.0, long.as_ptr(), 1, &mut room) };
    assert_eq!(s, PoselinkStatus::BadLength);
    assert!(last_error().contains("64 bytes"), "{}", last_error());
    let unterminated = [b'r' as c_char; 65];
    let s = unsafe { poselink_join_room(e.0, unterminated.as_ptr(), 1, &mut room) };
    assert_eq!(s, PoselinkStatus::BadLength);
    // 64 bytes is a valid name: it gets as far as the hub (which is not there).
    let max = CString::new("r".repeat(64)).unwrap();
    let s = unsafe { poselink_join_room(e.0, max.as_ptr(), 1, &mut room) };
    assert_eq!(s, PoselinkStatus::Timeout, "{}", last_error());
    // A config from another layout (or never initialised).
    let mut cfg = config(c"ws://127.0.0.1:9/");
    cfg.struct_size = 8;
    let mut out = ptr::null_mut();
    let s = unsafe { poselink_engine_create(&cfg, &mut out) };
    assert_eq!(s, PoselinkStatus::BadLength);
    assert!(out.is_null());
    let m = e.metrics();
    assert_eq!((m.poses_submitted, m.audio_submitted), (0, 0));
}

#[test]
fn bad_values_are_refused_with_a_message() {
    let e = offline_engine();
    let mut frame = landmarks(0.0);
    frame[3 * 5 + 1] = f32::NAN; // landmark 3, y
    let s = unsafe { poselink_send_pose(e.0, 0, frame.as_ptr(), 165, 1, 0, 0, 128) };
    assert_eq!(s, PoselinkStatus::InvalidFrame);
    let msg = last_error();
    assert!(msg.contains("landmark 3") && msg.contains('y'), "{msg}");
    let mut frame = landmarks(0.0);
    frame[32 * 5 + 3] = 1.5; // landmark 32, visibility
    let s = unsafe { poselink_send_pose(e.0, 0, frame.as_ptr(), 165, 1, 0, 0, 128) };
    assert_eq!(s, PoselinkStatus::InvalidFrame);
    assert!(last_error().contains("visibility"), "{}", last_error());
    // Misaligned: a float pointer one byte into the array.
    let bytes = [0u8; 4 * 166];
    let odd = unsafe { bytes.as_ptr().add(1) }.cast::<f32>();
    let s = unsafe { poselink_send_pose(e.0, 0, odd, 165, 1, 0, 0, 128) };
    assert_eq!(s, PoselinkStatus::InvalidArgument);
    assert!(last_error().contains("aligned"), "{}", last_error());

    let pcm = [0i16; 960];
    for (channels, rate) in [(3, 48_000), (0, 48_000), (1, 4_000), (1, 200_000)] {
        let s =
            unsafe { poselink_send_audio(e.0, 0, pcm.as_ptr(), 960, channels, rate, 1, 0, 128) };
        assert_eq!(s, PoselinkStatus::InvalidFrame, "{channels} ch {rate} Hz");
    }

    let mut room = 0;
    let s = unsafe { poselink_join_room(e.0, c"studio".as_ptr(), 7, &mut room) };
    assert_eq!(s, PoselinkStatus::InvalidArgument);
    assert!(
        last_error().contains("POSELINK_ROLE_MEMBER"),
        "{}",
        last_error()
    );
    let s = unsafe { poselink_join_room(e.0, c"two words".as_ptr(), 1, &mut room) };
    assert_eq!(s, PoselinkStatus::InvalidArgument);
    let s = unsafe { poselink_join_room(e.0, c"".as_ptr(), 1, &mut room) };
    assert_eq!(s, PoselinkStatus::InvalidArgument);

    for url in [c"http://127.0.0.1:7700/", c"ws://", c""] {
        let cfg = config(url);
        let mut out = ptr::null_mut();
        let s = unsafe { poselink_engine_create(&cfg, &mut out) };
        assert_eq!(s, PoselinkStatus::InvalidArgument, "{url:?}");
        assert!(last_error().contains("hub URL"), "{}", last_error());
        assert!(out.is_null());
    }
    let m = e.metrics();
    assert_eq!((m.poses_submitted, m.audio_submitted), (0, 0));
}

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
fn the_bandwidth_limit_thins_the_stream() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    let e = Engine::new(&config(&url));
    let room = e.join(c"capi-bw", PoselinkRole::Member);
    const LIMIT: u64 = 1_000;
    assert_eq!(
        unsafe { poselink_set_bandwidth_limit(e.0, LIMIT) },
        PoselinkStatus::Ok
    );
    std::thread::sleep(Duration::from_millis(50));
    let before = e.metrics();
    let start = Instant::now();
    // 60 frames at 60 fps: about 5 KB unlimited, at most about 1 KB + the 2 KB burst here.
    for i in 0..60u32 {
        let frame = landmarks(i as f32 / 1000.0);
        let s = unsafe {
            poselink_send_pose(
                e.0,
                room,
                frame.as_ptr(),
                165,
                i + 1,
                0,
                u64::from(i) * 16_667,
                128,
            )
        };
        assert_eq!(s, PoselinkStatus::Ok);
        std::thread::sleep(Duration::from_micros(16_667));
    }
    std::thread::sleep(Duration::from_millis(200));
    let secs = start.elapsed().as_secs_f64();
    let after = e.metrics();
    let bytes = after.bytes_sent - before.bytes_sent;
    let burst = (LIMIT / 10).max(2048) as f64;
    assert!(
        (bytes as f64) <= burst + LIMIT as f64 * secs + 700.0,
        "{bytes} bytes in {secs:.2} s with a limit of {LIMIT} B/s"
    );
    let dropped = after.drops_superseded + after.drops_stale + after.drops_ring;
    assert!(dropped > 0, "the limit thinned the frames: {after:?}");
    assert_eq!(after.poses_sent + dropped, 60, "{after:?}");
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
