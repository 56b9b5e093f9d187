//! Criterion benches of the protocol core on the hal's synthetic motion (walking and
//! waving, 0.002 jitter, 30 fps): encode and decode, quantised + delta and raw, and
//! beside them the baseline the original Python design used — the MediaPipe-style
//! JSON object through serde_json. Before the timings it prints the mean bytes per
//! frame on the wire for each encoding.
//!
//! Run: `cargo bench --bench codec`. `POSELINK_CODEC_PATH=portable` (or `avx2`, `avx2-bmi2`)
//! forces a build of the codec's loops (see `poselink::proto::CodecPath`), and
//! `POSELINK_CODEC_COUNT=N` skips criterion and runs N encode + decode round trips
//! of the synthetic motion, for instruction counts under
//! `valgrind --tool=callgrind`. The bytes per frame of the real-motion recordings
//! (`benches/support/motion.rs`) are printed too.

use std::hint::black_box;

#[path = "support/motion.rs"]
mod motion;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use poselink::proto::{
    AudioChunk, CodecPath, Compressor, EncoderConfig, MAX_PLAIN_PAYLOAD, MAX_POSE_MESSAGE_LEN,
    Message, Packet, PoseDecoder, PoseEncoder, PoseFrame, PoseMode, encode_audio, force_codec_path,
};
use poselink_hal::{
    AudioBlock, AudioSource, PoseSample, PoseSource, SyntheticAudio, SyntheticConfig, SyntheticPose,
};
use serde::{Deserialize, Serialize};

/// Ten seconds of synthetic motion at 30 fps.
fn motion() -> Vec<PoseFrame> {
    let mut src = SyntheticPose::new(SyntheticConfig::default());
    let mut s = PoseSample::zeroed();
    (0..300)
        .map(|i| {
            src.next_pose(&mut s).unwrap();
            PoseFrame::from_arrays(i + 1, 0, s.capture_ts_us, &s.landmarks)
        })
        .collect()
}

/// The frame stream repeated for ever with growing seq and time, as a capture loop
/// would produce it.
struct Stream {
    frames: Vec<PoseFrame>,
    i: usize,
    seq: u32,
}

impl Stream {
    fn new() -> Self {
        Stream {
            frames: motion(),
            i: 0,
            seq: 0,
        }
    }
    fn next(&mut self) -> PoseFrame {
        let mut f = self.frames[self.i % self.frames.len()];
        self.i += 1;
        self.seq += 1;
        f.seq = self.seq;
        f.capture_ts_us = self.seq as u64 * 33_333;
        f
    }
}

#[derive(Serialize, Deserialize)]
struct JsonLandmark {
    x: f32,
    y: f32,
    z: f32,
    visibility: f32,
}

#[derive(Serialize, Deserialize)]
struct JsonPose {
    landmarks: Vec<JsonLandmark>,
}

fn to_json(f: &PoseFrame) -> JsonPose {
    JsonPose {
        landmarks: f
            .landmarks
            .iter()
            .map(|l| JsonLandmark {
                x: l.x,
                y: l.y,
                z: l.z,
                visibility: l.visibility,
            })
            .collect(),
    }
}

fn mean_bytes(mode: PoseMode) -> f64 {
    mean_bytes_of(mode, &motion())
}

fn mean_bytes_of(mode: PoseMode, frames: &[PoseFrame]) -> f64 {
    let mut enc = PoseEncoder::new(EncoderConfig {
        mode,
        ..EncoderConfig::default()
    });
    let mut out = [0u8; MAX_POSE_MESSAGE_LEN];
    let total: usize = frames
        .iter()
        .map(|f| enc.encode(f, 1, 2, &mut out).unwrap())
        .sum();
    total as f64 / frames.len() as f64
}

fn report_sizes() {
    let frames = motion();
    let json: usize = frames
        .iter()
        .map(|f| serde_json::to_vec(&to_json(f)).unwrap().len())
        .sum();
    println!("bytes per pose frame on the synthetic motion at 30 fps (envelope included):");
    println!(
        "  quantised + delta : {:7.1}",
        mean_bytes(PoseMode::Quantized)
    );
    println!("  raw f32           : {:7.1}", mean_bytes(PoseMode::Raw));
    println!(
        "  JSON (serde_json) : {:7.1}  (payload only)",
        json as f64 / frames.len() as f64
    );
    println!(
        "bytes per pose frame on real motion (60 s at 30 fps, quantised + delta), and the \
         entropy floor of the delta bodies alone (x y z visibility presence = total):"
    );
    for (name, file) in motion::RECORDINGS {
        for output in [motion::Output::Smoothed, motion::Output::Raw] {
            let frames = motion::load(file, 1800, 1, output);
            let f = motion::entropy_floor(&frames);
            println!(
                "  {name:<16} {:<10}: {:7.1}   floor {:.1} {:.1} {:.1} {:.1} {:.1} = {:.1}",
                format!("{output:?}"),
                mean_bytes_of(PoseMode::Quantized, &frames),
                f[0],
                f[1],
                f[2],
                f[3],
                f[4],
                f.iter().sum::<f64>()
            );
        }
    }
}

/// Applies `POSELINK_CODEC_PATH` and says which path runs.
fn choose_path() {
    let forced = match std::env::var("POSELINK_CODEC_PATH").as_deref() {
        Ok("portable") => Some(CodecPath::Portable),
        Ok("avx2") => Some(CodecPath::Avx2),
        Ok("avx2-bmi2") => Some(CodecPath::Avx2Bmi2),
        Ok(other) => panic!("POSELINK_CODEC_PATH={other}: portable, avx2 or avx2-bmi2"),
        Err(_) => None,
    };
    let path = force_codec_path(forced);
    println!("pose codec path: {path:?}");
}

/// `POSELINK_CODEC_COUNT=N`: N quantised encode + decode round trips, no criterion.
fn count_only() -> bool {
    let Ok(n) = std::env::var("POSELINK_CODEC_COUNT") else {
        return false;
    };
    let n: usize = n.parse().expect("POSELINK_CODEC_COUNT=N");
    let mut stream = Stream::new();
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut dec = PoseDecoder::new();
    let mut out = [0u8; MAX_POSE_MESSAGE_LEN];
    let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
    let mut sum = 0.0;
    for _ in 0..n {
        let f = stream.next();
        let len = enc.encode(&f, 1, 2, &mut out).unwrap();
        let p = Packet::new_checked(&out[..len]).unwrap();
        let Message::Pose(pose) = Message::parse(&p, &mut scratch).unwrap() else {
            unreachable!()
        };
        sum += dec.decode(&p.header(), &pose).unwrap().landmarks[0].x;
    }
    println!("{n} round trips ({sum})");
    true
}

fn pose(c: &mut Criterion) {
    choose_path();
    if count_only() {
        return;
    }
    report_sizes();
    let mut g = c.benchmark_group("pose");
    g.throughput(Throughput::Elements(1));

    for (name, mode) in [("quantised", PoseMode::Quantized), ("raw", PoseMode::Raw)] {
        let mut stream = Stream::new();
        let mut enc = PoseEncoder::new(EncoderConfig {
            mode,
            ..EncoderConfig::default()
        });
        let mut out = [0u8; MAX_POSE_MESSAGE_LEN];
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                let f = stream.next();
                black_box(enc.encode(black_box(&f), 1, 2, &mut out).unwrap())
            })
        });

        // Decode alone: a pre-encoded stream (keyframes included) decoded in order.
        let mut enc = PoseEncoder::new(EncoderConfig {
            mode,
            ..EncoderConfig::default()
        });
        let mut stream = Stream::new();
        let encoded: Vec<Vec<u8>> = (0..3000)
            .map(|_| {
                let n = enc.encode(&stream.next(), 1, 2, &mut out).unwrap();
                out[..n].to_vec()
            })
            .collect();
        let mut dec = PoseDecoder::new();
        let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
        let mut i = 0;
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                if i == encoded.len() {
                    i = 0;
                    dec.reset();
                }
                let p = Packet::new_checked(&encoded[i][..]).unwrap();
                i += 1;
                let Message::Pose(pose) = Message::parse(&p, &mut scratch).unwrap() else {
                    unreachable!()
                };
                // The first frame after a reset is a keyframe, so this never fails.
                black_box(dec.decode(&p.header(), &pose).unwrap().landmarks[0].x)
            })
        });

        let mut stream = Stream::new();
        let mut enc = PoseEncoder::new(EncoderConfig {
            mode,
            ..EncoderConfig::default()
        });
        let mut dec = PoseDecoder::new();
        g.bench_function(format!("encode+decode/{name}"), |b| {
            b.iter(|| {
                let f = stream.next();
                let n = enc.encode(&f, 1, 2, &mut out).unwrap();
                let p = Packet::new_checked(&out[..n]).unwrap();
                let Message::Pose(pose) = Message::parse(&p, &mut scratch).unwrap() else {
                    unreachable!()
                };
                black_box(dec.decode(&p.header(), &pose).unwrap().landmarks[0].x)
            })
        });
    }

    // The Python design's format: a JSON object per frame.
    let mut stream = Stream::new();
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    g.bench_function("encode/json-baseline", |b| {
        b.iter(|| {
            let f = stream.next();
            buf.clear();
            serde_json::to_writer(&mut buf, &to_json(&f)).unwrap();
            black_box(buf.len())
        })
    });
    let mut stream = Stream::new();
    g.bench_function("encode+decode/json-baseline", |b| {
        b.iter(|| {
            let f = stream.next();
            buf.clear();
            serde_json::to_writer(&mut buf, &to_json(&f)).unwrap();
            let back: JsonPose = serde_json::from_slice(&buf).unwrap();
            black_box(back.landmarks[0].x)
        })
    });
    g.finish();
}

fn audio(c: &mut Criterion) {
    if std::env::var_os("POSELINK_CODEC_COUNT").is_some() {
        return;
    }
    let mut g = c.benchmark_group("audio");
    g.throughput(Throughput::Elements(1));
    let mut src = SyntheticAudio::new(0);
    let mut block = AudioBlock::zeroed();
    src.next_audio(&mut block).unwrap();
    let mut chunk = AudioChunk::silence(block.sample_rate, block.channels, block.len as u16);
    chunk.samples[..block.len].copy_from_slice(&block.samples[..block.len]);
    let mut out = vec![0u8; 4096];
    for (name, threshold) in [("pcm16", usize::MAX), ("pcm16+lz4-attempt", 512)] {
        let mut comp = Compressor::new(threshold);
        let n = encode_audio(&chunk, 1, 2, &mut comp, &mut out).unwrap();
        println!("audio 20 ms 48 kHz mono tone, {name}: {n} bytes");
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                chunk.seq = chunk.seq.wrapping_add(1);
                black_box(encode_audio(&chunk, 1, 2, &mut comp, &mut out).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, pose, audio);
criterion_main!(benches);
