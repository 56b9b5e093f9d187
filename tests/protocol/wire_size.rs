//! The size of a pose message on the wire, envelope included, on the hal's synthetic
//! motion (walking and waving with 0.002 jitter) at 30 fps: the mean must stay at or
//! under 120 bytes. Sizes are deterministic for a seed, so this is an exact check,
//! not a timing.

use poselink::proto::{EncoderConfig, MAX_POSE_MESSAGE_LEN, PoseEncoder, PoseFrame, PoseMode};
use poselink_hal::{Motion, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};

fn mean_bytes(motion: Motion, mode: PoseMode, seconds: u32, fps: f32, seed: u64) -> (f64, u64) {
    let mut src = SyntheticPose::new(SyntheticConfig {
        seed,
        fps,
        motion,
        ..SyntheticConfig::default()
    });
    let mut enc = PoseEncoder::new(EncoderConfig {
        mode,
        ..EncoderConfig::default()
    });
    let mut sample = PoseSample::zeroed();
    let mut out = [0u8; MAX_POSE_MESSAGE_LEN];
    let n = (seconds as f32 * fps) as u32;
    let mut total = 0u64;
    for seq in 1..=n {
        src.next_pose(&mut sample).unwrap();
        let f = PoseFrame::from_arrays(seq, 0, sample.capture_ts_us, &sample.landmarks);
        total += enc.encode(&f, 1, 2, &mut out).unwrap() as u64;
    }
    (total as f64 / n as f64, enc.stats().keyframes)
}

#[test]
fn mean_pose_message_is_at_most_120_bytes_at_30_fps() {
    for motion in [Motion::Walk, Motion::Wave, Motion::Mixed] {
        for seed in [1, 2, 3] {
            let (mean, keys) = mean_bytes(motion, PoseMode::Quantized, 60, 30.0, seed);
            println!("{motion:?} seed {seed}: {mean:.1} bytes/frame, {keys} keyframes");
            assert!(keys >= 60, "a keyframe at least once a second");
            assert!(
                mean <= 120.0,
                "{motion:?} seed {seed}: mean {mean:.1} bytes"
            );
        }
    }
}

#[test]
fn raw_frames_are_larger_than_quantised() {
    let (raw, _) = mean_bytes(Motion::Mixed, PoseMode::Raw, 5, 30.0, 1);
    let (q, _) = mean_bytes(Motion::Mixed, PoseMode::Quantized, 5, 30.0, 1);
    println!("raw {raw:.1} bytes/frame, quantised {q:.1}");
    assert!(raw > 600.0 && q * 4.0 < raw);
}
