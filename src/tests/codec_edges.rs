//! The pose encoder handed a frame that is not valid directly, past the
//! engine's and the session's own checks: it refuses it with the validation's
//! own error (which landmark, which value), and its stream state is unchanged,
//! so the next valid frame still opens with a keyframe.

use crate::proto::{EncoderConfig, Error, PoseEncoder, PoseFrame};

fn valid(seq: u32) -> PoseFrame {
    let mut f = PoseFrame::zeroed();
    f.seq = seq;
    f.capture_ts_us = u64::from(seq) * 33_000;
    for (i, lm) in f.landmarks.iter_mut().enumerate() {
        lm.x = 0.2 + i as f32 / 100.0;
        lm.y = 0.4;
        lm.visibility = 1.0;
        lm.presence = 1.0;
    }
    f
}

#[test]
fn an_invalid_frame_is_refused_with_the_validation_error() {
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut out = [0u8; 2048];
    for bad in [f32::NAN, f32::INFINITY, 1e9] {
        let mut f = valid(1);
        f.landmarks[5].y = bad;
        let got = enc.encode(&f, 1, 2, &mut out);
        let want = f.validate();
        assert!(want.is_err(), "{bad} validates");
        assert_eq!(got.map(|_| ()), want, "for {bad}");
        assert!(!matches!(got, Err(Error::Malformed { .. })), "for {bad}");
    }
    assert!(enc.next_is_keyframe(1, 33_000));
    assert!(enc.encode(&valid(1), 1, 2, &mut out).is_ok());
}

#[test]
fn an_opus_payload_is_not_copied_into_a_chunk_as_samples() {
    use crate::proto::{AudioChunk, AudioCodec, AudioPayload, Header, Kind};
    let p = AudioPayload {
        codec: AudioCodec::Opus,
        channels: 1,
        sample_rate: 48_000,
        len: 960,
        samples: &[0xf8, 0xff, 0xfe],
    };
    let mut chunk = AudioChunk::silence(48_000, 1, 960);
    chunk.samples[0] = 7;
    let header = Header::new(Kind::Audio, 1, 2, 3, 4);
    let e = p.to_chunk(&header, &mut chunk).unwrap_err();
    assert!(e.to_string().contains("needs a decoder"), "{e}");
    assert_eq!((chunk.samples[0], chunk.seq), (7, 0), "the chunk untouched");
}

#[test]
fn an_opus_packet_too_long_or_of_the_wrong_duration_is_refused() {
    use crate::proto::{AudioCodec, AudioPayload, encode_audio_payload};
    let mut buf = vec![0u8; 4096];
    // 1 276 bytes: over Opus's 1 275-byte packet limit.
    let long = vec![0xf8u8; 1276];
    let p = AudioPayload {
        codec: AudioCodec::Opus,
        channels: 1,
        sample_rate: 48_000,
        len: 960,
        samples: &long,
    };
    let e = encode_audio_payload(&p, 1, 0, 1, 2, &mut buf).unwrap_err();
    assert!(
        matches!(e, Error::BadAudio { what } if what.contains("longer than 1275")),
        "{e}"
    );
    // A 20 ms packet (TOC 0xf8: 960 samples at 48 kHz) said to be 10 ms.
    let p = AudioPayload {
        len: 480,
        samples: &[0xf8, 0xff, 0xfe],
        ..p
    };
    let e = encode_audio_payload(&p, 1, 0, 1, 2, &mut buf).unwrap_err();
    assert!(
        matches!(e, Error::BadAudio { what } if what.contains("duration")),
        "{e}"
    );
}
