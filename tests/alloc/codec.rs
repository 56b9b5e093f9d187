//! The zero-allocation proof for the protocol core: after warm-up, encoding and
//! decoding 10 000 pose frames (keyframes and deltas, with the CRC check and message
//! parsing) and 10 000 audio chunks allocates nothing, and neither does parsing
//! 10 000 WebSocket frames in place. A counting global allocator
//! counts the allocations made by this test's thread only, so other test threads
//! cannot disturb the count.

use crate::counting;

use poselink::proto::{
    AudioChunk, Compressor, EncoderConfig, MAX_PLAIN_PAYLOAD, MAX_POSE_MESSAGE_LEN, Message,
    Packet, PoseDecoder, PoseEncoder, PoseFrame, PoseMode, encode_audio,
};
use poselink_hal::{PoseSample, PoseSource, SyntheticConfig, SyntheticPose};

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = counting::allocations();
    counting::this_thread(true);
    f();
    counting::this_thread(false);
    counting::allocations() - before
}

fn frames(n: usize) -> Vec<PoseFrame> {
    let mut src = SyntheticPose::new(SyntheticConfig::default());
    let mut sample = PoseSample::zeroed();
    (0..n)
        .map(|i| {
            src.next_pose(&mut sample).unwrap();
            PoseFrame::from_arrays(i as u32 + 1, 0, sample.capture_ts_us, &sample.landmarks)
        })
        .collect()
}

fn pose_round_trips(
    mode: PoseMode,
    frames: &[PoseFrame],
    out: &mut [u8],
    scratch: &mut [u8],
) -> (u64, u64) {
    let mut enc = PoseEncoder::new(EncoderConfig {
        mode,
        ..EncoderConfig::default()
    });
    let mut dec = PoseDecoder::new();
    // Warm-up: one second of frames, so every code path has run once.
    let (warm, rest) = frames.split_at(30);
    for f in warm {
        let n = enc.encode(f, 1, 2, out).unwrap();
        let p = Packet::new_checked(&out[..n]).unwrap();
        let Message::Pose(pose) = Message::parse(&p, scratch).unwrap() else {
            panic!()
        };
        dec.decode(&p.header(), &pose).unwrap();
    }
    let mut checksum = 0u64;
    let allocs = allocations_in(|| {
        for f in rest {
            let n = enc.encode(f, 1, 2, out).unwrap();
            let p = Packet::new_checked(&out[..n]).unwrap();
            let Message::Pose(pose) = Message::parse(&p, scratch).unwrap() else {
                panic!()
            };
            let got = dec.decode(&p.header(), &pose).unwrap();
            checksum = checksum.wrapping_add(got.landmarks[15].x.to_bits() as u64);
        }
    });
    assert_ne!(checksum, 0);
    (allocs, enc.stats().keyframes)
}

#[test]
fn encoding_and_decoding_10_000_frames_allocates_nothing() {
    let _turn = counting::turn();
    let frames = frames(10_030);
    let mut out = vec![0u8; MAX_POSE_MESSAGE_LEN];
    let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];

    let (allocs, keyframes) =
        pose_round_trips(PoseMode::Quantized, &frames, &mut out, &mut scratch);
    assert_eq!(allocs, 0, "quantised pose path allocated");
    assert!(
        keyframes >= 300,
        "keyframes were exercised too: {keyframes}"
    );

    let (allocs, _) = pose_round_trips(PoseMode::Raw, &frames, &mut out, &mut scratch);
    assert_eq!(allocs, 0, "raw pose path (with LZ4 attempts) allocated");

    // Audio: encode (with LZ4 tried on every chunk) and decode 10 000 chunks.
    let mut compressor = Compressor::new(512);
    let mut chunk = AudioChunk::silence(48_000, 1, 960);
    let mut got = AudioChunk::default();
    let mut buf = vec![0u8; 4096];
    let allocs = allocations_in(|| {
        for seq in 0..10_000u32 {
            chunk.seq = seq;
            chunk.samples[(seq % 960) as usize] = seq as i16;
            let n = encode_audio(&chunk, 1, 2, &mut compressor, &mut buf).unwrap();
            let p = Packet::new_checked(&buf[..n]).unwrap();
            let Message::Audio(a) = Message::parse(&p, &mut scratch).unwrap() else {
                panic!()
            };
            a.to_chunk(&p.header(), &mut got).unwrap();
            assert_eq!(got.seq, seq);
        }
    });
    assert_eq!(allocs, 0, "audio path allocated");

    // The counter itself works: a deliberate allocation is seen.
    let seen = allocations_in(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!(seen, 1);
}

#[cfg(feature = "std")]
#[test]
fn websocket_framing_allocates_nothing() {
    let _turn = counting::turn();
    // WebSocket framing: 10 000 masked client frames parsed, checked and unmasked
    // in place, and 10 000 server headers written.
    let mut frame = vec![0x82u8, 0x80 | 126, 0, 0, 1, 2, 3, 4];
    frame[2..4].copy_from_slice(&1000u16.to_be_bytes());
    let payload_len = 1000;
    frame.extend((0..payload_len).map(|i| i as u8));
    let mut rx = vec![0u8; frame.len()];
    let mut header = [0u8; 10];
    let allocs = allocations_in(|| {
        for _ in 0..10_000 {
            rx.copy_from_slice(&frame);
            let Ok(poselink::ws::Parsed::Frame(f)) = poselink::ws::parse_frame(&mut rx, 65_536)
            else {
                panic!("not a frame")
            };
            assert_eq!(f.payload_len, payload_len);
            poselink::ws::write_header(
                &mut header,
                poselink::ws::FrameKind::Binary,
                true,
                f.payload_len,
            )
            .unwrap();
        }
    });
    assert_eq!(allocs, 0, "WebSocket framing allocated");
}
