//! The pose codec: turns [`PoseFrame`]s into pose messages and back, with a bounded
//! quantisation error, periodic keyframes and entropy-coded deltas, in buffers the
//! caller owns. One [`PoseEncoder`] per outgoing stream (room × person) and one
//! [`PoseDecoder`] per incoming stream (sender × person).
//!
//! **Quantisation.** x, y, z are carried as `q = round(v · 2048) + 2048` in
//! 0..=6144 (the range [-1, 2] in steps of 1/2048), so the error is at most
//! 1/4096 ≈ 2.44e-4; visibility and presence as `round(v · 128)` in 0..=128, error
//! at most 1/256 (within the 1/255 bound this protocol sets for scores; a finer
//! step would spend about a bit per score on the estimator's own noise).
//!
//! **Keyframes** carry the quantised values plainly (8 bytes a landmark) and reset
//! both sides' model. **Deltas** name their reference frame (`ref_back` = seq
//! distance, normally 1) and carry, for each of the 165 values in memory order, the
//! zigzagged residual against the reference frame's value in a fixed-width field.
//! The widths come from a model both sides update identically from decoded values
//! alone — a running mean of each value's absolute residual — so a still value
//! gets a narrow field and a swinging wrist a wider one, with no side information. A
//! residual too large for its field writes the field's all-ones escape and its
//! excess is Rice-coded in a second area after the fields. Because the widths are
//! known before a delta arrives, every field sits at a known bit position and the
//! decoder reads them independently; only the few escapes are read serially.
//!
//! **Loss.** A decoder applies a delta only onto exactly the frame it names; if it
//! does not hold that frame it returns [`Error::NeedsKeyframe`] — never a wrong
//! pose — until the next keyframe (sent at least every `keyframe_interval_us`, or
//! at once by an encoder told [`PoseEncoder::force_keyframe`], or by a hub that
//! keeps the latest state). Losing a delta therefore never corrupts a later frame:
//! later deltas are refused, not misapplied.
//!
//! **Raw mode** sends the 33 × 5 `f32`s unquantised (660 bytes) for consumers that
//! want the estimator's exact output.
//!
//! The parts: `model` (the quantisation and the prediction model both ends share),
//! `encoder` ([`PoseEncoder`]), `decoder` ([`PoseDecoder`]) and `dispatch` (which
//! build of their loops the CPU runs: [`codec_path`]); this module holds the
//! settings and counters they share.

mod decoder;
mod dispatch;
mod encoder;
mod model;

use super::compress::DEFAULT_COMPRESS_THRESHOLD;

pub use decoder::PoseDecoder;
pub use dispatch::{CodecPath, codec_path, force_codec_path};
pub use encoder::PoseEncoder;
pub use model::{COORD_MAX_ERROR, COORD_SCALE, MAX_POSE_MESSAGE_LEN, SCORE_MAX_ERROR, SCORE_SCALE};

/// How an encoder codes its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PoseMode {
    /// Quantised keyframes and entropy-coded deltas (the default: about 110 bytes
    /// a frame on the wire).
    Quantized,
    /// Unquantised `f32` values in every frame (660 bytes of payload).
    Raw,
}

/// Settings of a [`PoseEncoder`].
///
/// ```
/// use poselink::proto::{EncoderConfig, PoseMode};
/// let cfg = EncoderConfig { keyframe_interval_us: 500_000, ..EncoderConfig::default() };
/// assert_eq!(cfg.mode, PoseMode::Quantized);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Quantised (default) or raw.
    pub mode: PoseMode,
    /// A keyframe is sent when this many microseconds of capture time have passed
    /// since the last one (default 1 s).
    pub keyframe_interval_us: u64,
    /// Payloads of this size and more are tried for LZ4 compression (only raw
    /// frames get that big).
    pub compress_threshold: usize,
    /// How audio chunks are coded (Opus or PCM16).
    pub audio: super::AudioEncoding,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            mode: PoseMode::Quantized,
            keyframe_interval_us: 1_000_000,
            compress_threshold: DEFAULT_COMPRESS_THRESHOLD,
            audio: super::AudioEncoding::default(),
        }
    }
}

/// Counters of one encoder or decoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodecStats {
    /// Keyframes coded.
    pub keyframes: u64,
    /// Deltas coded.
    pub deltas: u64,
    /// Raw frames coded.
    pub raw: u64,
    /// Message bytes (envelope included).
    pub bytes: u64,
    /// Delta values that did not fit their field and went to the excess area.
    pub escapes: u64,
}

#[cfg(test)]
mod tests {
    use super::super::{Error, KEYFRAME_BODY_LEN, Message, Packet, PoseFrame, landmark};
    use super::model::{MAX_WIDTH, Model, NP, dequantize, quantize, width_of_err};
    use super::*;
    use core::f32::consts::{PI, TAU};

    fn frame_at(seq: u32, t: f32) -> PoseFrame {
        let mut f = PoseFrame::zeroed();
        f.seq = seq;
        f.capture_ts_us = seq as u64 * 33_333;
        for (i, lm) in f.landmarks.iter_mut().enumerate() {
            let phase = i as f32 * 0.37;
            lm.x = 0.5 + 0.2 * libm_sin(t * TAU + phase);
            lm.y = 0.5 + 0.3 * libm_sin(t * 3.1 + phase * 2.0);
            lm.z = -0.1 + 0.05 * libm_sin(t + phase);
            lm.visibility = 0.9 + 0.09 * libm_sin(t * 0.5 + phase);
            lm.presence = 0.99;
        }
        f
    }

    // A small sine without std, good enough for test motion.
    fn libm_sin(x: f32) -> f32 {
        let mut x = x % TAU;
        if x > PI {
            x -= TAU;
        } else if x < -PI {
            x += TAU;
        }
        let x2 = x * x;
        x * (1.0 - x2 / 6.0 * (1.0 - x2 / 20.0 * (1.0 - x2 / 42.0 * (1.0 - x2 / 72.0))))
    }

    fn decode_one(dec: &mut PoseDecoder, bytes: &[u8]) -> Result<PoseFrame, Error> {
        let p = Packet::new_checked(bytes)?;
        let mut scratch = [0u8; 2048];
        let Message::Pose(pose) = Message::parse(&p, &mut scratch)? else {
            panic!("not a pose")
        };
        dec.decode(&p.header(), &pose).copied()
    }

    fn assert_close(a: &PoseFrame, b: &PoseFrame) {
        for (x, y) in a.landmarks.iter().zip(b.landmarks.iter()) {
            for (u, v) in x.values().iter().zip(y.values()).take(3) {
                assert!((u - v).abs() <= COORD_MAX_ERROR, "{u} vs {v}");
            }
            for (u, v) in x.values().iter().zip(y.values()).skip(3) {
                assert!((u - v).abs() <= SCORE_MAX_ERROR, "{u} vs {v}");
            }
        }
    }

    #[test]
    fn widths_follow_the_formula() {
        assert_eq!(width_of_err(0), 1);
        assert_eq!(width_of_err(2), 2);
        assert_eq!(width_of_err(4), 3);
        assert_eq!(width_of_err(i16::MAX), MAX_WIDTH as i16);
        let mut m = Model::empty();
        for e in [0i16, 4, 100, 5000, i16::MAX] {
            m.err = [e; NP];
            m.derive_widths();
            assert_eq!(m.esc[0] as i32, (1 << m.width[0]) - 1, "err {e}");
        }
    }

    #[test]
    fn stepped_widths_settle_on_the_formula() {
        // From any width, a constant running error brings the stepped width to
        // width_of_err within MAX_WIDTH steps (up: exactly; down: within the
        // one-step hysteresis), and the escape value stays all ones.
        for start in [0i16, 40, 4000] {
            for e in [0i16, 1, 3, 7, 20, 300, 4000] {
                let mut m = Model::empty();
                m.err = [start; NP];
                m.derive_widths();
                m.err = [e; NP];
                for _ in 0..MAX_WIDTH {
                    m.step_widths();
                }
                let (w, exact) = (m.width[0], width_of_err(e));
                assert!(
                    w == exact || w == exact + 1,
                    "start {start} err {e}: {w} vs {exact}"
                );
                assert_eq!(m.esc[0] as i32, (1 << w) - 1);
            }
        }
    }

    #[test]
    fn quantisation_error_is_bounded_at_the_edges() {
        let mut f = PoseFrame::zeroed();
        let probes = [
            -1.0f32,
            -0.999_9,
            2.0,
            1.999_9,
            0.0,
            0.000_244,
            0.000_245,
            1.0 / 3.0,
        ];
        for (i, lm) in f.landmarks.iter_mut().enumerate() {
            let v = probes[i % probes.len()];
            lm.x = v;
            lm.y = v;
            lm.z = v;
            lm.visibility = (i as f32 / 32.0).min(1.0);
            lm.presence = 1.0 - (i as f32 / 32.0).min(1.0);
        }
        let mut q = [0i16; NP];
        assert!(quantize(&f, &mut q));
        let mut g = PoseFrame::zeroed();
        dequantize(&q, &mut g);
        assert_close(&f, &g);
        const { assert!(COORD_MAX_ERROR <= 2.5e-4) };
        const { assert!(SCORE_MAX_ERROR <= 1.0 / 255.0) };
    }

    #[test]
    fn keyframes_deltas_and_raw_round_trip() {
        for mode in [PoseMode::Quantized, PoseMode::Raw] {
            let mut enc = PoseEncoder::new(EncoderConfig {
                mode,
                ..EncoderConfig::default()
            });
            let mut dec = PoseDecoder::new();
            let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
            for seq in 1..200u32 {
                let f = frame_at(seq, seq as f32 / 30.0);
                let n = enc.encode(&f, 3, 4, &mut buf).unwrap();
                let g = decode_one(&mut dec, &buf[..n]).unwrap();
                if mode == PoseMode::Raw {
                    assert_eq!(g.landmarks, f.landmarks);
                } else {
                    assert_close(&f, &g);
                }
                assert_eq!((g.seq, g.capture_ts_us), (f.seq, f.capture_ts_us));
            }
            if mode == PoseMode::Quantized {
                // 200 frames at 30 fps = 6.6 s: a keyframe each second.
                assert_eq!(enc.stats().keyframes, 7);
            }
        }
    }

    #[test]
    fn lost_delta_gives_needs_keyframe_never_a_wrong_pose() {
        let mut enc = PoseEncoder::new(EncoderConfig::default());
        let mut dec = PoseDecoder::new();
        let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
        let mut refused = 0;
        for seq in 1..100u32 {
            let f = frame_at(seq, seq as f32 / 30.0);
            let n = enc.encode(&f, 1, 1, &mut buf).unwrap();
            if seq == 10 {
                continue; // the delta is lost
            }
            match decode_one(&mut dec, &buf[..n]) {
                Ok(g) => assert_close(&f, &g),
                Err(Error::NeedsKeyframe) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        // Frames 11..=31 are refused; frame 32 is the first whose capture time is a
        // full second after the first keyframe's (32 × 33 333 µs ≥ 33 333 + 10⁶).
        assert_eq!(refused, 21);
    }

    #[test]
    fn lost_keyframe_needs_keyframe_until_next() {
        let mut enc = PoseEncoder::new(EncoderConfig::default());
        let mut dec = PoseDecoder::new();
        let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
        let mut ok = 0;
        for seq in 1..40u32 {
            let f = frame_at(seq, seq as f32 / 30.0);
            let n = enc.encode(&f, 1, 1, &mut buf).unwrap();
            if seq == 1 {
                continue; // the first keyframe is lost
            }
            match decode_one(&mut dec, &buf[..n]) {
                Ok(g) => {
                    assert!(seq >= 32);
                    assert_close(&f, &g);
                    ok += 1;
                }
                Err(e) => assert_eq!(e, Error::NeedsKeyframe),
            }
        }
        assert_eq!(ok, 8);
    }

    #[test]
    fn forced_keyframe_and_seq_restart() {
        let mut enc = PoseEncoder::new(EncoderConfig::default());
        let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
        enc.encode(&frame_at(1, 0.0), 1, 1, &mut buf).unwrap();
        enc.encode(&frame_at(2, 0.03), 1, 1, &mut buf).unwrap();
        enc.force_keyframe();
        enc.encode(&frame_at(3, 0.06), 1, 1, &mut buf).unwrap();
        assert_eq!(enc.stats().keyframes, 2);
        // The capture app restarted its counter: a keyframe, not a bogus delta.
        enc.encode(&frame_at(1, 0.09), 1, 1, &mut buf).unwrap();
        assert_eq!(enc.stats().keyframes, 3);
    }

    #[test]
    fn skipped_frames_use_ref_back() {
        // The edge engine thins frames: seq jumps by 2 and deltas still decode.
        let mut enc = PoseEncoder::new(EncoderConfig::default());
        let mut dec = PoseDecoder::new();
        let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
        for seq in (1..60u32).step_by(2) {
            let f = frame_at(seq, seq as f32 / 300.0);
            let n = enc.encode(&f, 1, 1, &mut buf).unwrap();
            assert_close(&f, &decode_one(&mut dec, &buf[..n]).unwrap());
        }
        assert!(enc.stats().deltas > 20);
    }

    #[test]
    fn a_delta_larger_than_a_keyframe_goes_as_a_keyframe() {
        // The whole body jumps from one corner of the range to the other: the
        // delta would not fit a pose message, a keyframe does.
        let mut enc = PoseEncoder::new(EncoderConfig::default());
        let mut dec = PoseDecoder::new();
        let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
        for seq in 1..=6u32 {
            let mut f = PoseFrame::zeroed();
            f.seq = seq;
            f.capture_ts_us = seq as u64 * 33_333;
            let (c, p) = if seq % 2 == 1 {
                (-1.0, 0.0)
            } else {
                (2.0, 1.0)
            };
            for lm in f.landmarks.iter_mut() {
                *lm = super::super::Landmark {
                    x: c,
                    y: c,
                    z: c,
                    visibility: p,
                    presence: p,
                };
            }
            let n = enc.encode(&f, 1, 1, &mut buf).unwrap();
            assert!(n <= 11 + KEYFRAME_BODY_LEN + 5 + 4 + 8, "{n} bytes");
            assert_close(&f, &decode_one(&mut dec, &buf[..n]).unwrap());
        }
        assert_eq!(enc.stats().keyframes, 6);
    }

    #[test]
    fn invalid_frames_are_refused_before_encoding() {
        let mut enc = PoseEncoder::new(EncoderConfig::default());
        let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
        let mut f = frame_at(1, 0.0);
        f.landmarks[landmark::LEFT_WRIST].x = f32::NAN;
        assert!(matches!(
            enc.encode(&f, 1, 1, &mut buf),
            Err(Error::NotFinite { landmark: 15, .. })
        ));
        assert_eq!(enc.stats(), CodecStats::default());
    }

    #[test]
    fn small_buffer_is_an_error_and_leaves_the_model() {
        let mut enc = PoseEncoder::new(EncoderConfig::default());
        let mut small = [0u8; 40];
        assert!(matches!(
            enc.encode(&frame_at(1, 0.0), 1, 1, &mut small),
            Err(Error::BufferTooSmall { .. })
        ));
        assert!(enc.next_is_keyframe(1, 0));
    }

    #[test]
    fn keyframe_fixture() {
        // Every landmark at (0.5, 0.25, 0), visibility 1, presence 0.5:
        // x = 1024 + 2048 = 3072 = 0x0c00, y = 512 + 2048 = 0x0a00, z = 0x0800,
        // vis = 128, presence = 64.
        let mut f = PoseFrame::zeroed();
        f.seq = 1;
        f.capture_ts_us = 1000;
        for lm in f.landmarks.iter_mut() {
            lm.x = 0.5;
            lm.y = 0.25;
            lm.visibility = 1.0;
            lm.presence = 0.5;
        }
        let mut enc = PoseEncoder::new(EncoderConfig::default());
        let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
        let n = enc.encode(&f, 1, 2, &mut buf).unwrap();
        // header: 10 10 02 | 01 00 | 02 00 | seq 01 | ts e8 07 ; person 00
        assert_eq!(
            &buf[..11],
            &[
                0x10, 0x10, 0x02, 0x01, 0x00, 0x02, 0x00, 0x01, 0xe8, 0x07, 0x00
            ]
        );
        assert_eq!(
            &buf[11..19],
            &[0x00, 0x0c, 0x00, 0x0a, 0x00, 0x08, 0x80, 0x40]
        );
        assert_eq!(n, 11 + 264 + 4);
    }
}
