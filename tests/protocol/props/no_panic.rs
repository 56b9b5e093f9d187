//! No input — random bytes, or valid messages mutated and resealed — makes the
//! receive path panic or leaves a decoder unable to take the next keyframe.

use super::*;

// ---------------------------------------------------------------------------
// No input makes the receive path panic
// ---------------------------------------------------------------------------

/// Valid messages of every kind to mutate: a pose stream (keyframes, deltas and
/// raw frames of synthetic motion), audio, a snapshot and control messages.
#[derive(Clone, Debug)]
struct Corpus {
    /// Pose messages, in stream order.
    pose: Vec<Vec<u8>>,
    /// The frames they carry.
    frames: Vec<PoseFrame>,
    /// One message of another kind.
    other: Vec<u8>,
}

fn synthetic_frames(seed: u64, motion: Motion, n: usize, gap: u32) -> Vec<PoseFrame> {
    let mut src = SyntheticPose::new(SyntheticConfig {
        seed,
        motion,
        ..SyntheticConfig::default()
    });
    let mut sample = PoseSample::zeroed();
    (0..n as u32)
        .map(|k| {
            src.next_pose(&mut sample).unwrap();
            PoseFrame::from_arrays(1 + k * gap, 0, sample.capture_ts_us, &sample.landmarks)
        })
        .collect()
}

fn audio_message(seed: u16, channels: u8, rate: u32, len: u16, threshold: usize) -> Vec<u8> {
    let mut chunk = AudioChunk::silence(rate, channels, len);
    chunk.seq = u32::from(seed);
    chunk.capture_ts_us = 20_000 * u64::from(seed);
    // Every other seed is silence (compresses); the rest a noisy tone.
    if seed % 2 == 1 {
        let mut x = u32::from(seed) | 1;
        for (i, s) in chunk.samples.iter_mut().enumerate() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *s = ((i as i32 * 97) % 4000) as i16 + (x % 64) as i16;
        }
    }
    let mut c = Compressor::new(threshold);
    let mut buf = vec![0u8; 4096];
    let n = encode_audio(&chunk, 3, 4, &mut c, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn corpus() -> impl Strategy<Value = Corpus> {
    let motion = prop::sample::select(vec![Motion::Walk, Motion::Wave, Motion::Mixed]);
    let other = prop_oneof![
        (
            any::<u16>(),
            1u8..=2,
            prop::sample::select(vec![8_000u32, 16_000, 48_000, 192_000]),
            0u16..=480,
            prop::sample::select(vec![0usize, 512, usize::MAX]),
        )
            .prop_map(|(seed, ch, rate, frames, th)| audio_message(
                seed,
                ch,
                rate,
                frames * u16::from(ch),
                th
            )),
        (
            name(),
            role(),
            prop::collection::vec((any::<u16>(), role(), name()), 0..6)
        )
            .prop_map(|(room, r, members)| {
                let infos: Vec<MemberInfo<'_>> = members
                    .iter()
                    .map(|(member, role, user)| MemberInfo {
                        member: *member,
                        role: *role,
                        user,
                    })
                    .collect();
                let mut buf = vec![0u8; 1024];
                let n = encode_snapshot(
                    &Header::new(Kind::RoomSnapshot, 1, 0, 9, 9),
                    &room,
                    r,
                    &infos,
                    &mut buf,
                )
                .unwrap();
                buf.truncate(n);
                buf
            }),
        (ctl(), header()).prop_map(|(c, h)| {
            let mut buf = vec![0u8; 4096];
            let n = encode_control(&h, &c.message(), &mut buf).unwrap();
            buf.truncate(n);
            buf
        }),
    ];
    (
        any::<u64>(),
        motion,
        2usize..24,
        1u32..=3,
        prop::sample::select(vec![
            PoseMode::Quantized,
            PoseMode::Quantized,
            PoseMode::Raw,
        ]),
        prop_oneof![Just(1_000_000u64), 1u64..=200_000],
        prop::sample::select(vec![DEFAULT_COMPRESS_THRESHOLD, 0, usize::MAX]),
        other,
    )
        .prop_map(|(seed, motion, n, gap, mode, interval, threshold, other)| {
            let frames = synthetic_frames(seed, motion, n, gap);
            let mut enc = PoseEncoder::new(EncoderConfig {
                mode,
                keyframe_interval_us: interval,
                compress_threshold: threshold,
                ..EncoderConfig::default()
            });
            let mut buf = [0u8; POSE_BUF];
            let pose = frames
                .iter()
                .map(|f| {
                    let n = enc.encode(f, 1, 2, &mut buf).unwrap();
                    buf[..n].to_vec()
                })
                .collect();
            Corpus {
                pose,
                frames,
                other,
            }
        })
}

/// A keyframe of `frame` from a fresh encoder, for checking that a decoder recovers.
fn keyframe_of(frame: &PoseFrame) -> Vec<u8> {
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut buf = [0u8; POSE_BUF];
    let n = enc.encode(frame, 1, 2, &mut buf).unwrap();
    buf[..n].to_vec()
}

proptest! {
    #![proptest_config(config(16384))]

    /// (a) Arbitrary bytes, as they are, resealed and XORed over a valid delta, go
    /// through the fuzz target's harness without a panic, and its decoder keeps
    /// decoding its keyframe.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1200)) {
        let mut h = DecodeHarness::new();
        h.run(&data);
        h.run(&data);
    }

    /// (a) Arbitrary bytes behind a plausible envelope start (version 1.x, a defined
    /// kind, known flags), resealed, so that they reach every payload parser.
    #[test]
    fn arbitrary_payloads_never_panic(
        h in header(),
        data in prop::collection::vec(any::<u8>(), 0..1200),
    ) {
        let mut buf = vec![0u8; MAX_HEADER_LEN + data.len() + CRC_LEN];
        let n = h.emit(&mut buf).unwrap();
        buf[n..n + data.len()].copy_from_slice(&data);
        let len = seal(&mut buf, n + data.len()).unwrap();
        let mut harness = DecodeHarness::new();
        harness.run(&buf[..len]);
        // And the same payload as a delta right after the harness's keyframe.
        let mut delta = Header::new(Kind::Pose, harness::ROOM, harness::SENDER, harness::KEY_SEQ + 1, 0);
        delta.flags = Flags(h.flags.0 & Flags::LZ4.0);
        let n = delta.emit(&mut buf).unwrap();
        buf[n..n + data.len()].copy_from_slice(&data);
        let len = seal(&mut buf, n + data.len()).unwrap();
        harness.check_keyframe();
        let _ = harness.feed(&buf[..len]);
        harness.check_keyframe();
    }
}

proptest! {
    #![proptest_config(config(8192))]

    /// (b) A pose stream with one message mutated (bit flips, byte changes,
    /// insertions, deletions, truncation) and its CRC recomputed: decoding it, with
    /// the decoder holding the stream up to there, may succeed or fail but never
    /// panics, a decoded frame is always valid, and afterwards the decoder decodes
    /// the next keyframe correctly.
    #[test]
    fn mutated_pose_messages_never_panic(
        c in corpus(),
        target in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let t = target.index(c.pose.len());
        let mut dec = PoseDecoder::new();
        let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
        for (k, m) in c.pose[..t].iter().enumerate() {
            let (_, g) = decode(&mut dec, &mut scratch, m).unwrap();
            prop_assert!(close(&c.frames[k], &g).is_ok());
        }
        let bad = mutate_and_reseal(&c.pose[t], &mutations);
        let result = harness::feed(&mut dec, &mut scratch, &bad);
        match &result {
            Err(Error::NeedsKeyframe) | Ok(_) => {}
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                // "A malformed body leaves the decoder as it was": the message as
                // sent still decodes.
                let (_, g) = decode(&mut dec, &mut scratch, &c.pose[t])
                    .unwrap_or_else(|e2| panic!("after {e:?}, the original message fails: {e2}"));
                prop_assert!(close(&c.frames[t], &g).is_ok());
            }
        }
        // The next keyframe (of the next frame, or of this one again) decodes.
        let next = c.frames.get(t + 1).unwrap_or(&c.frames[t]);
        let key = keyframe_of(next);
        let (_, g) = decode(&mut dec, &mut scratch, &key)
            .unwrap_or_else(|e| panic!("after {result:?}, the next keyframe fails: {e}"));
        prop_assert!(close(next, &g).is_ok());
        prop_assert!(dec.is_synced());
    }

    /// (b) The same for audio, snapshot and control messages, through the fuzz
    /// target's harness (whose decoder must still take its keyframe afterwards).
    #[test]
    fn mutated_other_messages_never_panic(
        c in corpus(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut h = DecodeHarness::new();
        let valid = h.feed(&c.other);
        prop_assert!(matches!(valid, Ok(Fed::Other(_))), "{:?}", valid);
        let bad = mutate_and_reseal(&c.other, &mutations);
        h.check_keyframe();
        if let Err(e) = h.feed(&bad) {
            prop_assert!(!e.to_string().is_empty());
        }
        h.check_keyframe();
        h.run(&bad);
    }
}

/// The harness's own messages are what it says they are.
#[test]
fn harness_messages_decode() {
    let mut h = DecodeHarness::new();
    let key = h.keyframe().to_vec();
    let delta = h.delta().to_vec();
    let expected = harness::harness_frame(harness::KEY_SEQ, 0);
    match h.feed(&key) {
        Ok(Fed::Pose(g)) => close(&expected, &g).unwrap(),
        other => panic!("{other:?}"),
    }
    let expected = harness::harness_frame(harness::KEY_SEQ + 1, 1);
    match h.feed(&delta) {
        Ok(Fed::Pose(g)) => close(&expected, &g).unwrap(),
        other => panic!("{other:?}"),
    }
    let p = Packet::new_checked(&delta[..]).unwrap();
    assert!(!p.header().flags.contains(Flags::KEYFRAME));
    // An empty input and one of zeros leave the delta unchanged in step 4.
    h.run(&[]);
    h.run(&[0; 8]);
}
