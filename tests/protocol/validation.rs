//! One test per validation error of the wire protocol, each reached through the
//! public API: the exact `Error` variant (with its fields where they are part of
//! the contract) and a `Display` text that is a sentence a user can act on. The
//! last tests check that a decoder that returned an error still decodes the next
//! keyframe.

use poselink::proto::{
    AudioChunk, CRC_LEN, Compressor, EncoderConfig, Error, Field, Flags, Header, Join, Kind,
    MAX_MESSAGE_LEN, MAX_PLAIN_PAYLOAD, MAX_POSE_MESSAGE_LEN, MIN_MESSAGE_LEN, Message, Packet,
    Ping, PoseDecoder, PoseEncoder, PoseFrame, Role, crc32, encode_audio, encode_control,
    put_varint, seal, validate_name,
};

/// A valid frame: every landmark somewhere in the image, fully visible.
fn frame(seq: u32) -> PoseFrame {
    let mut f = PoseFrame::zeroed();
    f.seq = seq;
    f.capture_ts_us = u64::from(seq) * 33_333;
    for (i, lm) in f.landmarks.iter_mut().enumerate() {
        lm.x = 0.3 + i as f32 / 100.0 + seq as f32 / 1000.0;
        lm.y = 0.2 + i as f32 / 50.0;
        lm.z = -0.1;
        lm.visibility = 0.9;
        lm.presence = 1.0;
    }
    f
}

/// Encodes `frames` with one encoder; returns each message.
fn encode_all(frames: &[PoseFrame]) -> Vec<Vec<u8>> {
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
    frames
        .iter()
        .map(|f| {
            let n = enc.encode(f, 1, 2, &mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect()
}

/// The whole receive path for a pose message.
fn decode(dec: &mut PoseDecoder, bytes: &[u8]) -> Result<PoseFrame, Error> {
    let p = Packet::new_checked(bytes)?;
    let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
    match Message::parse(&p, &mut scratch)? {
        Message::Pose(pose) => dec.decode(&p.header(), &pose).copied(),
        other => panic!("not a pose message: {other:?}"),
    }
}

/// Envelope check and parse of any message, for the error only.
fn parse_err(bytes: &[u8]) -> Error {
    let p = match Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
    Message::parse(&p, &mut scratch).expect_err("the message should be refused")
}

/// Replaces the CRC at the end of `msg` by the CRC of the bytes before it.
fn reseal(msg: &mut [u8]) {
    let body = msg.len() - CRC_LEN;
    seal(msg, body).unwrap();
}

/// `body` (a message without its CRC) with a CRC appended.
fn sealed(mut body: Vec<u8>) -> Vec<u8> {
    let len = body.len();
    body.extend_from_slice(&[0; CRC_LEN]);
    seal(&mut body, len).unwrap();
    body
}

/// The error's text is a non-empty sentence: words, no line breaks, no stray
/// whitespace, starting with a letter; the text of every `needles` occurs in it.
fn assert_sentence(e: &Error, needles: &[&str]) {
    let text = e.to_string();
    assert!(!text.is_empty(), "{e:?} has no message");
    assert!(
        text.split_whitespace().count() >= 4,
        "{e:?}: {text:?} is not a sentence"
    );
    assert!(
        text.chars().next().is_some_and(char::is_alphabetic),
        "{text:?}"
    );
    assert!(!text.contains('\n') && text.trim() == text, "{text:?}");
    for n in needles {
        assert!(text.contains(n), "{text:?} does not mention {n:?}");
    }
}

fn encode_err(f: &PoseFrame) -> Error {
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
    let e = enc.encode(f, 1, 2, &mut buf).unwrap_err();
    // Nothing was counted: a refused frame does not move the encoder.
    assert_eq!(enc.stats().keyframes + enc.stats().deltas, 0);
    e
}

#[test]
fn nan_is_not_finite() {
    let mut f = frame(1);
    f.landmarks[15].y = f32::NAN;
    let e = encode_err(&f);
    assert_eq!(
        e,
        Error::NotFinite {
            landmark: 15,
            field: Field::Y
        }
    );
    assert_sentence(&e, &["landmark 15", "y", "NaN"]);
}

#[test]
fn positive_infinity_is_not_finite() {
    let mut f = frame(1);
    f.landmarks[32].presence = f32::INFINITY;
    let e = encode_err(&f);
    assert_eq!(
        e,
        Error::NotFinite {
            landmark: 32,
            field: Field::Presence
        }
    );
    assert_sentence(&e, &["landmark 32", "presence", "infinite"]);
}

#[test]
fn coordinate_out_of_range() {
    for (field, v) in [(Field::X, 2.001f32), (Field::Z, -1.001)] {
        let mut f = frame(1);
        match field {
            Field::X => f.landmarks[0].x = v,
            _ => f.landmarks[0].z = v,
        }
        let e = encode_err(&f);
        assert_eq!(e, Error::OutOfRange { landmark: 0, field });
        assert_sentence(&e, &["landmark 0", field.name(), "out of range"]);
    }
}

#[test]
fn visibility_out_of_range() {
    let mut f = frame(1);
    f.landmarks[7].visibility = 1.5;
    let e = encode_err(&f);
    assert_eq!(
        e,
        Error::OutOfRange {
            landmark: 7,
            field: Field::Visibility
        }
    );
    assert_sentence(&e, &["landmark 7", "visibility", "out of range"]);
}

#[test]
fn a_raw_frame_carrying_nan_is_refused_by_the_decoder() {
    // A raw frame from a broken sender: valid envelope, a NaN in the body.
    let mut enc = PoseEncoder::new(EncoderConfig {
        mode: poselink::proto::PoseMode::Raw,
        compress_threshold: usize::MAX,
        ..EncoderConfig::default()
    });
    let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
    let n = enc.encode(&frame(1), 1, 2, &mut buf).unwrap();
    let mut msg = buf[..n].to_vec();
    let body_start = n - CRC_LEN - 660;
    // Landmark 3's z: 3 × 20 + 8 bytes into the body.
    msg[body_start + 68..body_start + 72].copy_from_slice(&f32::NAN.to_le_bytes());
    reseal(&mut msg);
    let e = decode(&mut PoseDecoder::new(), &msg).unwrap_err();
    assert_eq!(
        e,
        Error::NotFinite {
            landmark: 3,
            field: Field::Z
        }
    );
}

#[test]
fn short_buffer_is_truncated() {
    let e = Packet::new_checked(&[0x10u8, 0x01][..]).unwrap_err();
    assert_eq!(
        e,
        Error::Truncated {
            needed: MIN_MESSAGE_LEN,
            available: 2
        }
    );
    assert_sentence(&e, &["truncated", &MIN_MESSAGE_LEN.to_string()]);
    // The empty buffer too.
    assert!(matches!(
        Packet::new_checked(&[][..]),
        Err(Error::Truncated { available: 0, .. })
    ));
}

#[test]
fn keyframe_with_its_body_cut_is_truncated() {
    let msg = &encode_all(&[frame(1)])[0];
    let p = Packet::new_checked(&msg[..]).unwrap();
    assert!(p.header().flags.contains(Flags::KEYFRAME));
    let payload_len = p.payload().len();
    let header_len = msg.len() - CRC_LEN - payload_len;
    // Cut the last 10 bytes of the body and reseal: the envelope is fine, the body short.
    let cut = sealed(msg[..msg.len() - CRC_LEN - 10].to_vec());
    let e = parse_err(&cut);
    assert_eq!(
        e,
        Error::Truncated {
            needed: payload_len,
            available: payload_len - 10
        }
    );
    assert_sentence(&e, &["truncated"]);
    // Cut down to the header alone: the person varint is missing.
    let bare = sealed(msg[..header_len].to_vec());
    assert!(matches!(parse_err(&bare), Error::Truncated { .. }));
}

#[test]
fn flipped_payload_byte_is_a_bad_checksum() {
    let mut buf = [0u8; 64];
    let n = encode_control(
        &Header::new(Kind::Ping, 0, 0, 1, 5),
        &Message::Ping(Ping { t0_us: 123_456_789 }),
        &mut buf,
    )
    .unwrap();
    let carried = u32::from_le_bytes(buf[n - 4..n].try_into().unwrap());
    buf[n - CRC_LEN - 1] ^= 0x10; // the last payload byte
    let computed = crc32(&buf[..n - CRC_LEN]);
    let e = Packet::new_checked(&buf[..n]).unwrap_err();
    assert_eq!(e, Error::BadChecksum { carried, computed });
    assert_sentence(&e, &["checksum", &format!("{carried:#010x}")]);
}

#[test]
fn version_byte_0x20_is_an_unknown_version() {
    let mut msg = encode_all(&[frame(1)]).remove(0);
    msg[0] = 0x20;
    // Refused before the checksum is looked at, and resealed too.
    let e = Packet::new_checked(&msg[..]).unwrap_err();
    assert_eq!(e, Error::UnknownVersion { version: 0x20 });
    reseal(&mut msg);
    assert_eq!(Packet::new_checked(&msg[..]).unwrap_err(), e);
    assert_sentence(&e, &["version 2.0", "1.x"]);
    // Even a buffer too short to be a message names the version.
    assert_eq!(
        Packet::new_checked(&[0x20u8][..]).unwrap_err(),
        Error::UnknownVersion { version: 0x20 }
    );
}

#[test]
fn kind_byte_0x7f_is_an_unknown_kind() {
    let mut buf = [0u8; 64];
    let n = encode_control(
        &Header::new(Kind::Ping, 0, 0, 1, 5),
        &Message::Ping(Ping { t0_us: 1 }),
        &mut buf,
    )
    .unwrap();
    let mut msg = buf[..n].to_vec();
    msg[1] = 0x7f;
    reseal(&mut msg);
    let e = Packet::new_checked(&msg[..]).unwrap_err();
    assert_eq!(e, Error::UnknownKind { kind: 0x7f });
    assert_sentence(&e, &["kind 0x7f"]);
}

#[test]
fn message_over_the_limit_is_oversize() {
    let mut big = vec![0u8; MAX_MESSAGE_LEN + 1];
    let n = Header::new(Kind::Audio, 1, 2, 3, 4).emit(&mut big).unwrap();
    assert!(n > 0);
    reseal(&mut big);
    let e = Packet::new_checked(&big[..]).unwrap_err();
    assert_eq!(
        e,
        Error::Oversize {
            len: MAX_MESSAGE_LEN + 1,
            max: MAX_MESSAGE_LEN
        }
    );
    assert_sentence(&e, &[&(MAX_MESSAGE_LEN + 1).to_string()]);
    // Exactly at the limit the size is fine (it fails later, for its body).
    big.truncate(MAX_MESSAGE_LEN);
    reseal(&mut big);
    assert!(!matches!(
        Packet::new_checked(&big[..]),
        Err(Error::Oversize { .. })
    ));
}

#[test]
fn reserved_flag_bits_are_malformed() {
    for bit in [0x08u8, 0x80] {
        let mut msg = encode_all(&[frame(1)]).remove(0);
        msg[2] |= bit;
        reseal(&mut msg);
        let e = Packet::new_checked(&msg[..]).unwrap_err();
        assert!(
            matches!(e, Error::Malformed { what } if what.contains("flags")),
            "{e:?}"
        );
        assert_sentence(&e, &["malformed", "flags"]);
    }
}

#[test]
fn name_that_is_not_utf8_is_malformed() {
    let mut buf = [0u8; 64];
    let n = encode_control(
        &Header::new(Kind::Join, 0, 1, 1, 0),
        &Message::Join(Join {
            room: "gym",
            role: Role::Member,
        }),
        &mut buf,
    )
    .unwrap();
    let mut msg = buf[..n].to_vec();
    // Payload: len 3, "gym", role. Make the name's first byte invalid UTF-8.
    let at = msg.windows(3).position(|w| w == b"gym").unwrap();
    msg[at] = 0xff;
    reseal(&mut msg);
    let e = parse_err(&msg);
    assert!(
        matches!(e, Error::Malformed { what } if what.contains("UTF-8")),
        "{e:?}"
    );
    assert_sentence(&e, &["malformed", "UTF-8"]);
}

#[test]
fn pose_delta_with_trailing_garbage_is_malformed() {
    let msgs = encode_all(&[frame(1), frame(2)]);
    let mut dec = PoseDecoder::new();
    decode(&mut dec, &msgs[0]).unwrap();
    assert!(
        !Packet::new_checked(&msgs[1][..])
            .unwrap()
            .header()
            .flags
            .contains(Flags::KEYFRAME)
    );
    let mut body = msgs[1][..msgs[1].len() - CRC_LEN].to_vec();
    body.extend_from_slice(&[0xa5, 0x5a, 0xff]);
    let e = decode(&mut dec, &sealed(body)).unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
    assert_sentence(&e, &["malformed"]);
    // The error left the decoder as it was: the real delta still applies.
    let g = decode(&mut dec, &msgs[1]).unwrap();
    assert_eq!(g.seq, 2);
}

#[test]
fn keyframe_with_trailing_bytes_is_malformed() {
    let mut body = encode_all(&[frame(1)]).remove(0);
    body.truncate(body.len() - CRC_LEN);
    body.push(0);
    let e = parse_err(&sealed(body));
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
}

#[test]
fn audio_with_more_samples_than_its_count_is_malformed() {
    let mut chunk = AudioChunk::silence(16_000, 1, 4);
    chunk.samples[..4].copy_from_slice(&[1, -2, 300, -400]);
    let mut buf = [0u8; 256];
    let n = encode_audio(&chunk, 1, 2, &mut Compressor::new(usize::MAX), &mut buf).unwrap();
    let mut body = buf[..n - CRC_LEN].to_vec();
    body.extend_from_slice(&7i16.to_le_bytes()); // a fifth sample
    let e = parse_err(&sealed(body));
    assert!(
        matches!(e, Error::Malformed { what } if what.contains("audio")),
        "{e:?}"
    );
    assert_sentence(&e, &["malformed", "audio"]);
    // Fewer sample bytes than the count is truncated.
    let body = buf[..n - CRC_LEN - 2].to_vec();
    assert!(matches!(parse_err(&sealed(body)), Error::Truncated { .. }));
}

#[test]
fn bad_audio_shapes() {
    let mut c = Compressor::new(usize::MAX);
    let mut buf = [0u8; 2100];
    // Encoding: three channels.
    let e = encode_audio(&AudioChunk::silence(48_000, 3, 960), 1, 1, &mut c, &mut buf).unwrap_err();
    assert!(
        matches!(e, Error::BadAudio { what } if what.contains("channels")),
        "{e:?}"
    );
    assert_sentence(&e, &["audio", "channels"]);
    // Encoding: a sample rate below 8 kHz, more than 960 samples, half a frame.
    for chunk in [
        AudioChunk::silence(4_000, 1, 960),
        AudioChunk::silence(48_000, 1, 961),
        AudioChunk::silence(48_000, 2, 959),
    ] {
        let e = encode_audio(&chunk, 1, 1, &mut c, &mut buf).unwrap_err();
        assert!(matches!(e, Error::BadAudio { .. }), "{e:?}");
        assert_sentence(&e, &["audio"]);
    }
    // Receiving: a chunk claiming a 4 kHz rate (codec 0, 1 channel, rate, 2 samples).
    let mut body = vec![0u8; 64];
    let mut pos = Header::new(Kind::Audio, 1, 2, 3, 4)
        .emit(&mut body)
        .unwrap();
    body[pos] = 0; // PCM16
    body[pos + 1] = 1; // mono
    pos += 2;
    pos += put_varint(&mut body[pos..], 4_000);
    pos += put_varint(&mut body[pos..], 2);
    body.truncate(pos);
    body.extend_from_slice(&[1, 0, 2, 0]);
    let e = parse_err(&sealed(body));
    assert!(
        matches!(e, Error::BadAudio { what } if what.contains("sample rate")),
        "{e:?}"
    );
}

#[test]
fn bad_names() {
    for bad in ["", "has space", "ünïcode", &"x".repeat(65)] {
        let e = validate_name(bad, "room name").unwrap_err();
        assert_eq!(e, Error::BadName { what: "room name" });
        assert_sentence(&e, &["room name", "64"]);
        // The encoder refuses to send it.
        let mut buf = [0u8; 256];
        let header = Header::new(Kind::Join, 0, 1, 1, 0);
        let join = Join {
            room: bad,
            role: Role::Viewer,
        };
        assert_eq!(
            encode_control(&header, &Message::Join(join), &mut buf),
            Err(Error::BadName { what: "room name" })
        );
        // A peer that sends one anyway (postcard body, resealed) is refused on receipt.
        let start = header.emit(&mut buf).unwrap();
        let body = postcard::to_slice(&join, &mut buf[start..]).unwrap().len();
        let n = seal(&mut buf, start + body).unwrap();
        assert_eq!(parse_err(&buf[..n]), Error::BadName { what: "room name" });
    }
    assert_eq!(validate_name(&"x".repeat(64), "room name"), Ok(()));
    assert_eq!(validate_name("a-b_c.d:e@f/9", "user id"), Ok(()));
}

#[test]
fn delta_before_any_keyframe_needs_a_keyframe() {
    let msgs = encode_all(&[frame(1), frame(2)]);
    let mut dec = PoseDecoder::new();
    let e = decode(&mut dec, &msgs[1]).unwrap_err();
    assert_eq!(e, Error::NeedsKeyframe);
    assert_sentence(&e, &["keyframe"]);
    assert!(!dec.is_synced());
}

#[test]
fn tiny_output_buffers_are_too_small() {
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut tiny = [0u8; 16];
    let e = enc.encode(&frame(1), 1, 2, &mut tiny).unwrap_err();
    assert!(
        matches!(e, Error::BufferTooSmall { needed } if needed > tiny.len()),
        "{e:?}"
    );
    assert_sentence(&e, &["buffer"]);
    // Nothing was sent, so the next frame is still a keyframe, and fits a real buffer.
    assert!(enc.next_is_keyframe(1, 33_333));
    let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
    let n = enc.encode(&frame(1), 1, 2, &mut buf).unwrap();
    if let Error::BufferTooSmall { needed } = e {
        assert!(needed <= n, "asked for {needed}, used {n}");
    }

    let mut small = [0u8; 12];
    let e = encode_control(
        &Header::new(Kind::Join, 0, 1, 1, 0),
        &Message::Join(Join {
            room: "a-rather-long-room-name",
            role: Role::Member,
        }),
        &mut small,
    )
    .unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall { .. }), "{e:?}");

    let mut c = Compressor::new(usize::MAX);
    let e = encode_audio(
        &AudioChunk::silence(48_000, 1, 960),
        1,
        1,
        &mut c,
        &mut [0u8; 100],
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::BufferTooSmall { needed } if needed > 100),
        "{e:?}"
    );

    assert_eq!(
        seal(&mut [0u8; 6], 4),
        Err(Error::BufferTooSmall { needed: 8 })
    );
    assert_eq!(
        Header::new(Kind::Ping, 0, 0, 300, 1 << 40).emit(&mut [0u8; 8]),
        Err(Error::BufferTooSmall { needed: 7 + 2 + 6 })
    );
}

#[test]
fn a_decoder_keeps_working_after_errors() {
    let frames: Vec<PoseFrame> = (1..=4).map(frame).collect();
    let msgs = encode_all(&frames);
    let mut dec = PoseDecoder::new();

    // NeedsKeyframe first: a delta with no keyframe yet.
    assert_eq!(decode(&mut dec, &msgs[1]), Err(Error::NeedsKeyframe));

    // A keyframe with an out-of-range value (x quantised above 6144), resealed.
    let mut bad = msgs[0].clone();
    let body_start = bad.len() - CRC_LEN - 264;
    bad[body_start..body_start + 2].copy_from_slice(&0xffffu16.to_le_bytes());
    reseal(&mut bad);
    assert!(matches!(
        decode(&mut dec, &bad),
        Err(Error::Malformed { .. })
    ));

    // A truncated keyframe and a corrupted one.
    let cut = sealed(msgs[0][..msgs[0].len() - CRC_LEN - 1].to_vec());
    assert!(matches!(
        decode(&mut dec, &cut),
        Err(Error::Truncated { .. })
    ));
    let mut flipped = msgs[0].clone();
    flipped[20] ^= 1;
    assert!(matches!(
        decode(&mut dec, &flipped),
        Err(Error::BadChecksum { .. })
    ));

    // The next valid keyframe decodes, and the deltas after it.
    let g = decode(&mut dec, &msgs[0]).unwrap();
    assert_eq!(g.seq, 1);
    assert!((g.landmarks[5].x - frames[0].landmarks[5].x).abs() <= 2.5e-4);
    for (m, f) in msgs[1..3].iter().zip(&frames[1..3]) {
        let g = decode(&mut dec, m).unwrap();
        assert_eq!(g.seq, f.seq);
        assert!((g.landmarks[20].y - f.landmarks[20].y).abs() <= 2.5e-4);
    }

    // A malformed delta (trailing byte) leaves the decoder as it was: the real
    // delta still applies.
    let mut body = msgs[3][..msgs[3].len() - CRC_LEN].to_vec();
    body.push(0xff);
    assert!(matches!(
        decode(&mut dec, &sealed(body)),
        Err(Error::Malformed { .. })
    ));
    assert_eq!(decode(&mut dec, &msgs[3]).unwrap().seq, 4);

    // A keyframe from a restarted sender resynchronises.
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
    let n = enc.encode(&frame(5), 1, 2, &mut buf).unwrap();
    assert_eq!(decode(&mut dec, &buf[..n]).unwrap().seq, 5);
    assert!(dec.is_synced());
}
