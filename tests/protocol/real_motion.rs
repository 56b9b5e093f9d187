//! The pose codec on real human motion: the public motion-capture recordings of
//! `benches/support/motion.rs` (mapped onto BlazePose's 33 landmarks, with
//! BlazePose-like estimator noise), encoded and decoded at 30 fps for 60 s each.
//! Every decoded value must be within the quantisation bound of the frame that was
//! sent, and the mean message size (envelope included) at most 100 bytes. Sizes
//! are deterministic for a seed, so the size check is exact, not a timing.

#[path = "../../benches/support/motion.rs"]
mod motion;

use poselink::proto::{
    COORD_MAX_ERROR, EncoderConfig, MAX_PLAIN_PAYLOAD, MAX_POSE_MESSAGE_LEN, Message, Packet,
    PoseDecoder, PoseEncoder, SCORE_MAX_ERROR,
};

/// Encodes and decodes `frames` frames of `file` with noise `seed`; checks every
/// value against the bound and returns the mean message size.
fn run(file: &str, frames: usize, seed: u64) -> f64 {
    let poses = motion::load(file, frames, seed);
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut dec = PoseDecoder::new();
    let mut out = [0u8; MAX_POSE_MESSAGE_LEN];
    let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
    let mut total = 0usize;
    for f in &poses {
        let n = enc.encode(f, 1, 2, &mut out).unwrap();
        total += n;
        let p = Packet::new_checked(&out[..n]).unwrap();
        let Message::Pose(pose) = Message::parse(&p, &mut scratch).unwrap() else {
            panic!("not a pose message")
        };
        let g = dec.decode(&p.header(), &pose).unwrap();
        assert_eq!(g.seq, f.seq);
        for (j, (a, b)) in f.landmarks.iter().zip(&g.landmarks).enumerate() {
            for (k, (u, v)) in a.values().iter().zip(b.values()).enumerate() {
                let bound = if k < 3 {
                    COORD_MAX_ERROR
                } else {
                    SCORE_MAX_ERROR
                };
                assert!(
                    (u - v).abs() <= bound,
                    "{file} frame {} landmark {j} value {k}: sent {u}, decoded {v}",
                    f.seq
                );
            }
        }
    }
    total as f64 / poses.len() as f64
}

#[test]
fn real_motion_stays_within_the_bound_and_100_bytes_a_frame() {
    let mut worst = (0.0f64, "");
    for (name, file) in motion::RECORDINGS {
        for seed in [1, 2] {
            let mean = run(file, 1800, seed);
            println!("{name} seed {seed}: {mean:.1} bytes/frame");
            if mean > worst.0 {
                worst = (mean, name);
            }
        }
    }
    assert!(worst.0 <= 100.0, "{}: mean {:.1} bytes", worst.1, worst.0);
}

#[test]
fn the_mapped_recordings_move_and_stay_in_the_picture() {
    // The mapping is sane: every value in range, the wrists travel, noise present.
    for (name, file) in motion::RECORDINGS {
        let poses = motion::load(file, 60, 7);
        let mut travel = 0.0f32;
        for w in poses.windows(2) {
            for lm in &w[0].landmarks {
                for v in &lm.values()[..2] {
                    assert!((0.0..=1.0).contains(v), "{name}: {v} outside the image");
                }
            }
            travel += (w[1].landmarks[15].x - w[0].landmarks[15].x).abs();
        }
        assert!(
            travel > 0.01,
            "{name}: the left wrist does not move ({travel})"
        );
    }
}
