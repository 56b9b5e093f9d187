//! The uplink a board uses at 30 fps pose + 20 ms audio chunks — PCM16, Opus
//! with one 20 ms packet per chunk, and the board setting
//! ([`AudioEncoding::board`]: 60 ms packets at 8 kbit/s) — measured on a real
//! socket: an engine streams the synthetic skeleton
//! and a tone with noise (as a microphone gives, so Opus cannot coast on a
//! pure tone) in real time for 4 s through a hub on 127.0.0.1, and the bytes
//! it wrote to the socket — WebSocket framing, envelopes, heartbeats and all —
//! are divided by the time. `cargo test --profile ci --test engine uplink --
//! --nocapture` prints the figures BENCHMARKS.md quotes.

use std::time::{Duration, Instant};

use crate::common::*;
use poselink::engine::{EdgeEngine, EngineConfig, Priority};
use poselink::proto::{AudioChunk, AudioCodec, AudioEncoding, EncoderConfig, PoseFrame, Role};
use poselink_hal::{Clock, MonotonicClock, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};

/// Bytes per second written by an engine streaming 30 fps pose and 50 audio
/// chunks a second coded as `audio` says, and of them the pose messages'.
fn uplink(audio: AudioEncoding) -> (f64, f64) {
    let hub = TestHub::dev();
    let (a, ta) = EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        encoder: EncoderConfig {
            audio,
            ..EncoderConfig::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
    let room = a.join_room("uplink", Role::Member).unwrap();
    let base = a.metrics();
    let mut src = SyntheticPose::new(SyntheticConfig::default());
    let mut s = PoseSample::zeroed();
    let clock = MonotonicClock::new();
    let mut rng = fastrand::Rng::with_seed(18);
    let secs = 4u32;
    let start = Instant::now();
    // 600 ticks of 1/150 s: a pose every 5th, an audio chunk every 3rd.
    for tick in 0..secs * 150 {
        let due = start + Duration::from_micros(u64::from(tick) * 1_000_000 / 150);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if tick % 5 == 0 {
            src.next_pose(&mut s).unwrap();
            let mut f = PoseFrame::from_arrays(tick / 5 + 1, 0, clock.now_us(), &s.landmarks);
            f.clamp_to_range();
            a.send_pose(&f, room, Priority::NORMAL).unwrap();
        }
        if tick % 3 == 0 {
            let seq = tick / 3 + 1;
            let mut c = AudioChunk::silence(48_000, 1, 960);
            c.seq = seq;
            c.capture_ts_us = clock.now_us();
            for (i, x) in c.samples.iter_mut().enumerate() {
                let t = (seq as usize * 960 + i) as f64 / 48_000.0;
                let tone = (t * 220.0 * std::f64::consts::TAU).sin() * 6_000.0;
                *x = (tone + rng.f64() * 3_000.0 - 1_500.0) as i16;
            }
            a.send_audio(&c, room, Priority::HIGH).unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let elapsed = start.elapsed().as_secs_f64();
    let m = a.metrics();
    a.shutdown();
    ta.join().unwrap();
    assert_eq!(m.poses_sent - base.poses_sent, u64::from(secs) * 30);
    assert_eq!(m.audio_sent - base.audio_sent, u64::from(secs) * 50);
    (
        (m.bytes_sent - base.bytes_sent) as f64 / elapsed,
        (m.pose_bytes_sent - base.pose_bytes_sent) as f64 / elapsed,
    )
}

#[test]
fn the_board_setting_keeps_the_uplink_under_40_kbit_s() {
    let (pcm, pose) = uplink(AudioEncoding::default());
    let opus20 = AudioEncoding {
        codec: AudioCodec::Opus,
        ..AudioEncoding::default()
    };
    let (opus, _) = uplink(opus20);
    let (board, _) = uplink(AudioEncoding::board());
    let kbit = |b: f64| b * 8.0 / 1000.0;
    println!(
        "uplink at 30 fps pose + 20 ms chunks of 48 kHz mono: PCM16 {pcm:.0} B/s ({:.1} kbit/s); \
         Opus 16 kbit/s, 20 ms packets {opus:.0} B/s ({:.1} kbit/s); \
         board (Opus 8 kbit/s, 60 ms packets) {board:.0} B/s ({:.1} kbit/s); \
         pose messages alone {pose:.0} B/s ({:.1} kbit/s)",
        kbit(pcm),
        kbit(opus),
        kbit(board),
        kbit(pose),
    );
    assert!(pcm > 95_000.0, "PCM16 is about 97 KB/s: {pcm:.0}");
    assert!(
        opus < pcm / 10.0,
        "Opus at a tenth of PCM16 or less: {opus:.0}"
    );
    assert!(
        kbit(board) <= 40.0,
        "the board setting within 40 kbit/s: {:.1}",
        kbit(board)
    );
}

/// The settings BENCHMARKS.md compares (`cargo test --profile ci --test engine
/// uplink -- --ignored --nocapture`, about 30 s): 40 and 60 ms packets at
/// several bitrates. The board's (60 ms, 8 kbit/s) must be the leanest.
#[test]
#[ignore = "a 30 s sweep for BENCHMARKS.md"]
fn uplink_by_packet_length_and_bitrate() {
    let mut rows = Vec::new();
    for (packet_ms, bitrate_bps) in [
        (40, 8_000),
        (40, 12_000),
        (60, 8_000),
        (60, 10_000),
        (60, 12_000),
        (60, 16_000),
    ] {
        let (b, _) = uplink(AudioEncoding {
            packet_ms,
            bitrate_bps,
            ..AudioEncoding::board()
        });
        println!(
            "{packet_ms} ms packets, {bitrate_bps} bit/s: {:.1} kbit/s",
            b * 8.0 / 1000.0
        );
        rows.push(((packet_ms, bitrate_bps), b));
    }
    let leanest = rows.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert_eq!(leanest.0, (60, 8_000), "{rows:?}");
}
