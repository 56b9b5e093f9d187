//! What the engine does to a stream: the bandwidth limit thins it, and audio
//! acks confirm each chunk sent.

use std::time::{Duration, Instant};

use poselink::hub::HubConfig;
use poselink_capi::*;

use crate::common::*;

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
