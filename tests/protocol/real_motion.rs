//! The pose codec on real human motion: the public motion-capture recordings of
//! `benches/support/motion.rs` (mapped onto BlazePose's 33 landmarks, with
//! BlazePose-like estimator noise), encoded and decoded at 30 fps for 60 s each.
//! Every decoded value must be within the quantisation bound of the frame that was
//! sent, and the mean message size (envelope included) may not grow past today's
//! (111.6–115.7 bytes with MediaPipe's smoothing, 118.1–121.8 without; the target
//! for real motion is 100, which this coding cannot reach: BENCHMARKS.md gives the
//! entropy floor). Sizes are deterministic for a seed, so the size check is exact,
//! not a timing.

#[path = "../../benches/support/motion.rs"]
mod motion;

use motion::Output;

use poselink::proto::{
    COORD_MAX_ERROR, CodecPath, EncoderConfig, MAX_PLAIN_PAYLOAD, MAX_POSE_MESSAGE_LEN, Message,
    Packet, PoseDecoder, PoseEncoder, SCORE_MAX_ERROR, force_codec_path,
};

/// Encodes and decodes `frames` frames of `file` with noise `seed`; checks every
/// value against the bound and returns the mean message size.
fn run(file: &str, frames: usize, seed: u64, output: Output) -> f64 {
    let poses = motion::load(file, frames, seed, output);
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
fn real_motion_stays_within_the_bound_and_its_size() {
    for (output, limit) in [(Output::Smoothed, 116.0), (Output::Raw, 122.0)] {
        let mut worst = (0.0f64, "");
        for (name, file) in motion::RECORDINGS {
            for seed in [1, 2] {
                let mean = run(file, 1800, seed, output);
                println!("{name} {output:?} seed {seed}: {mean:.1} bytes/frame");
                if mean > worst.0 {
                    worst = (mean, name);
                }
            }
        }
        assert!(
            worst.0 <= limit,
            "{} {output:?}: mean {:.1} bytes",
            worst.1,
            worst.0
        );
    }
}

#[test]
fn the_mapped_recordings_move_and_stay_in_the_picture() {
    // The mapping is sane: every value in range, the wrists travel, noise present.
    for (name, file) in motion::RECORDINGS {
        let poses = motion::load(file, 60, 7, Output::Raw);
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

#[test]
fn every_build_of_the_codec_writes_and_reads_the_same_bits() {
    // The codec's loops exist in several builds (portable, AVX2, AVX2 + BMI2) and
    // the CPU picks one; streams must not depend on which. Each build this CPU can
    // run encodes and decodes the same recording; the messages and the decoded
    // values must match bit for bit.
    // (Other tests of this binary may run meanwhile on whichever build is forced:
    // harmless, since that is what this checks.)
    let poses = motion::load(motion::RECORDINGS[0].1, 600, 3, Output::Raw);
    let mut streams: Vec<(CodecPath, Vec<u8>)> = Vec::new();
    for path in [CodecPath::Portable, CodecPath::Avx2, CodecPath::Avx2Bmi2] {
        let got = force_codec_path(Some(path));
        if got != path {
            println!("{path:?}: not on this CPU");
            continue;
        }
        let mut enc = PoseEncoder::new(EncoderConfig::default());
        let mut dec = PoseDecoder::new();
        let mut out = [0u8; MAX_POSE_MESSAGE_LEN];
        let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
        // The messages, then the decoded values' bits.
        let mut bytes = Vec::new();
        for f in &poses {
            let n = enc.encode(f, 1, 2, &mut out).unwrap();
            bytes.extend_from_slice(&out[..n]);
            let p = Packet::new_checked(&out[..n]).unwrap();
            let Message::Pose(pose) = Message::parse(&p, &mut scratch).unwrap() else {
                panic!("not a pose message")
            };
            let g = dec.decode(&p.header(), &pose).unwrap();
            for lm in &g.landmarks {
                for v in lm.values() {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        streams.push((path, bytes));
    }
    force_codec_path(None);
    assert!(!streams.is_empty());
    for (path, bytes) in &streams[1..] {
        assert!(
            bytes == &streams[0].1,
            "{path:?} differs from {:?}",
            streams[0].0
        );
    }
}
