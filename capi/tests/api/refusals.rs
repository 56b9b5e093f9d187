//! Bad calls are refused with a status and a message: NULL pointers, wrong
//! lengths, bad values, and any call on an engine that was shut down.

use std::ffi::{CString, c_char};
use std::ptr;
use std::time::{Duration, Instant};

use poselink::hub::HubConfig;
use poselink_capi::*;

use crate::common::*;

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
fn the_audio_codec_field_is_checked_and_opus_takes_20_ms_chunks() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    for (codec, bitrate, packet_ms, why) in [
        (2, 8_000, 60, "audio_codec"),
        (1, 100, 60, "opus_bitrate_bps"),
        (1, 8_000, 30, "opus_packet_ms"),
    ] {
        let mut cfg = config(&url);
        cfg.audio_codec = codec;
        cfg.opus_bitrate_bps = bitrate;
        cfg.opus_packet_ms = packet_ms;
        let mut out = ptr::null_mut();
        let s = unsafe { poselink_engine_create(&cfg, &mut out) };
        assert_eq!(s, PoselinkStatus::InvalidArgument, "{why}");
        assert!(last_error().contains(why), "{}", last_error());
        assert!(out.is_null());
    }
    let mut cfg = config(&url);
    assert_eq!((cfg.audio_codec, cfg.opus_packet_ms), (0, 60));
    cfg.audio_codec = 1;
    let e = Engine::new(&cfg);
    let room = e.join(c"capi-opus", PoselinkRole::Member);
    let pcm = [0i16; 960];
    // 60 ms packets gather 20 ms chunks of 48 kHz mono; 10 ms is refused.
    let s = unsafe { poselink_send_audio(e.0, room, pcm.as_ptr(), 480, 1, 48_000, 1, 0, 128) };
    assert_eq!(s, PoselinkStatus::InvalidFrame);
    assert!(last_error().contains("20 ms"), "{}", last_error());
    let s = unsafe { poselink_send_audio(e.0, room, pcm.as_ptr(), 960, 1, 48_000, 1, 0, 128) };
    assert_eq!(s, PoselinkStatus::Ok);
}
