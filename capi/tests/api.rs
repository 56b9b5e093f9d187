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

/// The members `e` lists for `room`, as (user, role), sorted by user.
fn members(e: &Engine, room: u16) -> Vec<(String, PoselinkRole, u16)> {
    let mut count = 0usize;
    let s = unsafe { poselink_room_members(e.0, room, ptr::null_mut(), 0, &mut count) };
    assert!(
        matches!(s, PoselinkStatus::BufferTooSmall | PoselinkStatus::Ok),
        "{s:?} {}",
        last_error()
    );
    let mut out = vec![
        PoselinkMember {
            member: 0,
            reserved: 0,
            role: PoselinkRole::Viewer,
            user: [0; POSELINK_USER_CAPACITY],
        };
        count
    ];
    let mut n = 0usize;
    let s = unsafe { poselink_room_members(e.0, room, out.as_mut_ptr(), out.len(), &mut n) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    assert_eq!(n, count);
    let mut v: Vec<_> = out
        .iter()
        .map(|m| {
            let user = unsafe { CStr::from_ptr(m.user.as_ptr()) };
            (user.to_str().unwrap().to_string(), m.role, m.member)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn named(hub: &CStr, name: &CStr) -> PoselinkConfig {
    let mut cfg = config(hub);
    cfg.client = name.as_ptr();
    cfg
}

#[test]
fn an_owner_lists_changes_kicks_and_closes() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    let boss = Engine::new(&named(&url, c"boss"));
    let cam = Engine::new(&named(&url, c"cam"));
    let r_boss = boss.join(c"capi-owner", PoselinkRole::Owner);
    let r_cam = cam.join(c"capi-owner", PoselinkRole::Member);
    // The owner hears of cam's join; then both lists hold both.
    collect(&boss, |ev| count(ev, PoselinkEventKind::MemberJoined) == 1);
    let list = members(&boss, r_boss);
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(members(&cam, r_cam).len(), 2);
    let roles: Vec<_> = list.iter().map(|m| m.1).collect();
    assert!(roles.contains(&PoselinkRole::Owner) && roles.contains(&PoselinkRole::Member));
    let cam_id = list.iter().find(|m| m.1 == PoselinkRole::Member).unwrap().2;

    // Too small an array: what fits is written, the count says how many.
    let mut one = [PoselinkMember {
        member: 0,
        reserved: 0,
        role: PoselinkRole::Viewer,
        user: [0; POSELINK_USER_CAPACITY],
    }];
    let mut n = 0usize;
    let s = unsafe { poselink_room_members(boss.0, r_boss, one.as_mut_ptr(), 1, &mut n) };
    assert_eq!(s, PoselinkStatus::BufferTooSmall);
    assert_eq!(n, 2);
    assert!(last_error().contains("2 members"), "{}", last_error());

    // A role change, heard by both, and the lists follow.
    let s = unsafe { poselink_set_role(boss.0, r_boss, cam_id, PoselinkRole::Viewer as u32) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    let ev = collect(&cam, |ev| count(ev, PoselinkEventKind::RoleChanged) == 1);
    let rc = ev
        .iter()
        .find(|e| e.kind == PoselinkEventKind::RoleChanged)
        .expect("ROLE_CHANGED");
    assert_eq!(
        (rc.member, rc.role, rc.room),
        (cam_id, PoselinkRole::Viewer, r_cam)
    );
    collect(&boss, |ev| count(ev, PoselinkEventKind::RoleChanged) == 1);
    assert!(
        members(&boss, r_boss)
            .iter()
            .any(|m| m.2 == cam_id && m.1 == PoselinkRole::Viewer)
    );
    assert_eq!(
        unsafe { poselink_set_role(boss.0, r_boss, cam_id, 7) },
        PoselinkStatus::InvalidArgument
    );

    // A kick: cam is out and says why; the owner hears it.
    let s = unsafe { poselink_kick(boss.0, r_boss, cam_id, c"enough".as_ptr()) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    let ev = collect(&cam, |ev| count(ev, PoselinkEventKind::RoomLeft) == 1);
    let left = ev
        .iter()
        .find(|e| e.kind == PoselinkEventKind::RoomLeft)
        .unwrap();
    assert_eq!(left.leave_reason, PoselinkLeaveReason::Kicked);
    let ev = collect(&boss, |ev| count(ev, PoselinkEventKind::MemberLeft) == 1);
    let gone = ev
        .iter()
        .find(|e| e.kind == PoselinkEventKind::MemberLeft)
        .unwrap();
    assert_eq!(
        (gone.member, gone.leave_reason),
        (cam_id, PoselinkLeaveReason::Kicked)
    );
    assert_eq!(members(&boss, r_boss).len(), 1);
    // The kicked engine holds the room no more.
    let mut n = 0usize;
    let s = unsafe { poselink_room_members(cam.0, r_cam, ptr::null_mut(), 0, &mut n) };
    assert_eq!(s, PoselinkStatus::NotJoined, "{}", last_error());
    let s = unsafe { poselink_kick(cam.0, r_cam, 1, ptr::null()) };
    assert_eq!(s, PoselinkStatus::NotJoined);
    assert!(last_error().contains("not joined"), "{}", last_error());

    // Closing the room.
    let s = unsafe { poselink_close_room(boss.0, r_boss, c"done".as_ptr()) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    let ev = collect(&boss, |ev| count(ev, PoselinkEventKind::RoomLeft) == 1);
    let closed = ev
        .iter()
        .find(|e| e.kind == PoselinkEventKind::RoomLeft)
        .unwrap();
    assert_eq!(closed.leave_reason, PoselinkLeaveReason::RoomClosed);
}

#[test]
fn a_non_owner_is_refused_by_the_hub() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    let boss = Engine::new(&named(&url, c"boss"));
    let cam = Engine::new(&named(&url, c"cam"));
    let r_boss = boss.join(c"capi-not-owner", PoselinkRole::Owner);
    let r_cam = cam.join(c"capi-not-owner", PoselinkRole::Member);
    let boss_id = members(&cam, r_cam)
        .iter()
        .find(|m| m.1 == PoselinkRole::Owner)
        .unwrap()
        .2;
    let s = unsafe { poselink_kick(cam.0, r_cam, boss_id, ptr::null()) };
    assert_eq!(s, PoselinkStatus::Ok, "sent; the hub decides");
    let ev = collect(&cam, |ev| count(ev, PoselinkEventKind::Error) == 1);
    let err = ev
        .iter()
        .find(|e| e.kind == PoselinkEventKind::Error)
        .expect("ERROR");
    let why = unsafe { CStr::from_ptr(err.text.as_ptr()) }
        .to_str()
        .unwrap();
    assert!(err.error_code != 0 && !why.is_empty(), "{why}");
    assert_eq!(members(&boss, r_boss).len(), 2, "nobody was kicked");
}

#[test]
fn metrics_and_the_report_fill_the_callers_buffers() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    let mut cfg = config(&url);
    // An fps floor no stream reaches: an ALERT with its kind and values.
    cfg.alert_fps_below = 1000.0;
    let e = Engine::new(&cfg);
    let room = e.join(c"capi-perf", PoselinkRole::Member);
    let start = Instant::now();
    let mut seq = 0u32;
    let mut alert = None;
    let mut ev = new_event();
    while alert.is_none() && start.elapsed() < Duration::from_secs(6) {
        seq += 1;
        let frame = landmarks(0.0);
        let ts = start.elapsed().as_micros() as u64;
        let s = unsafe { poselink_send_pose(e.0, room, frame.as_ptr(), 165, seq, 0, ts, 128) };
        assert_eq!(s, PoselinkStatus::Ok);
        while unsafe { poselink_poll_event(e.0, &mut *ev) } == PoselinkStatus::Ok {
            if ev.kind == PoselinkEventKind::Alert {
                alert = Some(*ev);
            }
        }
        std::thread::sleep(Duration::from_millis(33));
    }
    let a = alert.expect("an fps alert within 6 s");
    assert_eq!(a.alert_kind, PoselinkAlertKind::FpsLow);
    assert_eq!(a.threshold, 1000.0);
    assert!(a.value > 5.0 && a.value < 1000.0, "{}", a.value);
    let kind = unsafe { CStr::from_ptr(a.text.as_ptr()) }.to_str().unwrap();
    assert_eq!(kind, "fps_low");

    // The metrics: asked for the count, then read.
    let mut n = 0usize;
    let s = unsafe { poselink_performance_metrics(e.0, ptr::null_mut(), 0, &mut n) };
    assert_eq!(s, PoselinkStatus::BufferTooSmall);
    assert!(n >= 10, "{n}");
    let blank = PoselinkMetric {
        name: [0; POSELINK_METRIC_NAME_CAPACITY],
        value: 0.0,
    };
    let mut out = vec![blank; n + 8];
    let mut got = 0usize;
    let s = unsafe { poselink_performance_metrics(e.0, out.as_mut_ptr(), out.len(), &mut got) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    let map: std::collections::HashMap<String, f64> = out[..got]
        .iter()
        .map(|m| {
            let name = unsafe { CStr::from_ptr(m.name.as_ptr()) };
            (name.to_str().unwrap().to_string(), m.value)
        })
        .collect();
    let fps = map["fps"];
    assert!(fps > 5.0 && fps < 60.0, "fps {fps}");
    assert!(map.contains_key("success_rate") && map.contains_key("bytes_out_per_s"));

    // The report: too small a buffer says the size and holds "".
    let mut small = [1 as c_char; 8];
    let mut need = 0usize;
    let s = unsafe { poselink_performance_report(e.0, small.as_mut_ptr(), 8, &mut need) };
    assert_eq!(s, PoselinkStatus::BufferTooSmall);
    assert!(need > 100, "{need}");
    assert_eq!(small[0], 0);
    // Built afresh per call: it may have grown since (a figure one digit longer).
    let mut buf = vec![0 as c_char; need + 1024];
    let mut need2 = 0usize;
    let s = unsafe { poselink_performance_report(e.0, buf.as_mut_ptr(), buf.len(), &mut need2) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
    assert_eq!(text.len() + 1, need2);
    let json: serde_json::Value = serde_json::from_str(text).expect("JSON");
    assert!(json["fps"].as_f64().unwrap() > 5.0, "{json}");
    assert!(json["reliability"]["success_rate"].is_number(), "{json}");
}

#[test]
fn audio_acks_confirm_each_chunk_sent() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    let e = Engine::new(&config(&url));
    let room = e.join(c"capi-acks", PoselinkRole::Member);
    assert_eq!(
        unsafe { poselink_set_audio_ack_events(e.0, 1) },
        PoselinkStatus::Ok
    );
    let pcm = [7i16; 960];
    for seq in 1..=10u32 {
        let ts = u64::from(seq) * 20_000;
        let s =
            unsafe { poselink_send_audio(e.0, room, pcm.as_ptr(), 960, 1, 48_000, seq, ts, 192) };
        assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
        std::thread::sleep(Duration::from_millis(20));
    }
    let ev = collect(&e, |ev| {
        ev.iter()
            .any(|x| x.kind == PoselinkEventKind::AudioAcked && x.seq == 10)
    });
    let acks: Vec<u32> = ev
        .iter()
        .filter(|x| x.kind == PoselinkEventKind::AudioAcked)
        .map(|x| x.seq)
        .collect();
    assert_eq!(acks.last(), Some(&10), "{acks:?}");
    assert!(acks.windows(2).all(|p| p[0] < p[1]), "{acks:?}");
    assert!(
        ev.iter()
            .all(|x| x.kind != PoselinkEventKind::AudioAcked || x.room == room)
    );
}

#[test]
fn a_shut_down_engine_says_so() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    let e = Engine::new(&config(&url));
    let room = e.join(c"capi-down", PoselinkRole::Member);
    assert_eq!(unsafe { poselink_engine_shutdown(e.0) }, PoselinkStatus::Ok);
    assert_eq!(unsafe { poselink_engine_shutdown(e.0) }, PoselinkStatus::Ok);
    let checks: [(&str, PoselinkStatus); 5] = [
        ("leave", unsafe { poselink_leave_room(e.0, room) }),
        ("bandwidth", unsafe {
            poselink_set_bandwidth_limit(e.0, 1000)
        }),
        ("kick", unsafe { poselink_kick(e.0, room, 1, ptr::null()) }),
        ("close", unsafe {
            poselink_close_room(e.0, room, ptr::null())
        }),
        ("report", unsafe {
            let mut n = 0usize;
            poselink_performance_report(e.0, ptr::null_mut(), 0, &mut n)
        }),
    ];
    for (what, s) in checks {
        assert_eq!(s, PoselinkStatus::ShutDown, "{what}");
        assert!(
            last_error().contains("shut down"),
            "{what}: {}",
            last_error()
        );
    }
    let mut id = 0u16;
    let s = unsafe { poselink_join_room(e.0, c"capi-down".as_ptr(), 1, &mut id) };
    assert_eq!(s, PoselinkStatus::ShutDown);
    // The sends say so once the loop has ended (bounded wait).
    let frame = landmarks(0.0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = PoselinkStatus::Ok;
    while s == PoselinkStatus::Ok && Instant::now() < deadline {
        s = unsafe { poselink_send_pose(e.0, room, frame.as_ptr(), 165, 1, 0, 1, 128) };
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s, PoselinkStatus::ShutDown);
    e.destroy();
}

#[test]
fn a_wss_hub_with_a_private_ca_is_reached_through_ca_file() {
    let ca = poselink::tls::private_ca(&["127.0.0.1"], -1, 30).unwrap();
    let dir = std::env::temp_dir().join(format!("poselink-capi-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, ca_file) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(&cert, &ca.cert_pem).unwrap();
    std::fs::write(&key, &ca.key_pem).unwrap();
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let hub = TestHub::start(HubConfig {
        tls_cert: Some(cert.to_string_lossy().into_owned()),
        tls_key: Some(key.to_string_lossy().into_owned()),
        ..HubConfig::local_dev()
    });
    let url = CString::new(format!("wss://{}/", hub.addr)).unwrap();
    let ca_path = CString::new(ca_file.to_string_lossy().into_owned()).unwrap();
    let mut cfg = config(&url);
    cfg.ca_file = ca_path.as_ptr();
    let e = Engine::new(&cfg);
    e.join(c"tls-room", PoselinkRole::Member);
    assert_eq!(e.metrics().connected, 1);
    drop(e);
    // A CA file that is not there: refused at creation, with its path.
    let missing = c"/nonexistent/poselink-ca.pem";
    cfg.ca_file = missing.as_ptr();
    let mut engine = ptr::null_mut();
    let s = unsafe { poselink_engine_create(&cfg, &mut engine) };
    assert_eq!(s, PoselinkStatus::InvalidArgument);
    assert!(engine.is_null());
    assert!(
        last_error().contains("/nonexistent/poselink-ca.pem"),
        "{}",
        last_error()
    );
    let _ = std::fs::remove_dir_all(dir);
}
