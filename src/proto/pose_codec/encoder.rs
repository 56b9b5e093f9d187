//! The encoder: [`PoseEncoder`] quantises a frame, codes it as a keyframe or as a
//! delta against the shared model (or as raw values), and writes the whole message
//! into the caller's buffer.

use crate::proto::Error;
use crate::proto::bits::{BitWriter, WORK_LEN};
use crate::proto::compress::Compressor;
use crate::proto::message::{KEYFRAME_BODY_LEN, RAW_BODY_LEN};
use crate::proto::pose::PoseFrame;
use crate::proto::wire::{CRC_LEN, Flags, Header, Kind, put_varint, seal, varint_len};

use super::dispatch::dispatched;
use super::model::{
    EXCESS_K_BELOW, MAX_REF_BACK, Model, N, NP, check, for_each_flagged, quantize, values, zigzag,
};
use super::{CodecStats, EncoderConfig, PoseMode};

/// Encodes one outgoing pose stream (one room × one person).
///
/// ```
/// use poselink::proto::{PoseEncoder, EncoderConfig, PoseFrame};
/// let mut enc = PoseEncoder::new(EncoderConfig::default());
/// let mut frame = PoseFrame::zeroed();
/// let mut buf = [0u8; poselink::proto::MAX_POSE_MESSAGE_LEN];
/// for seq in 1..=3 {
///     frame.seq = seq;
///     frame.capture_ts_us = seq as u64 * 33_333;
///     let n = enc.encode(&frame, 1, 2, &mut buf).unwrap();
///     assert!(n > 0);
/// }
/// assert_eq!(enc.stats().keyframes, 1);
/// assert_eq!(enc.stats().deltas, 2);
/// ```
#[derive(Debug)]
pub struct PoseEncoder {
    config: EncoderConfig,
    model: Model,
    have_model: bool,
    last_key_ts: u64,
    force_key: bool,
    compressor: Compressor,
    stats: CodecStats,
    /// Where the delta's fields and excesses are built before they are copied out.
    work: [u8; WORK_LEN],
    work_excess: [u8; WORK_LEN],
}

impl PoseEncoder {
    /// An encoder with `config`; its first frame will be a keyframe.
    pub fn new(config: EncoderConfig) -> Self {
        PoseEncoder {
            config,
            model: Model::empty(),
            have_model: false,
            last_key_ts: 0,
            force_key: false,
            compressor: Compressor::new(config.compress_threshold),
            stats: CodecStats::default(),
            work: [0; WORK_LEN],
            work_excess: [0; WORK_LEN],
        }
    }

    /// The settings.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Counters since creation.
    pub fn stats(&self) -> CodecStats {
        self.stats
    }

    /// Makes the next frame a keyframe (a receiver or the hub asked for one).
    pub fn force_keyframe(&mut self) {
        self.force_key = true;
    }

    /// Whether the next frame with this `seq` and capture time would be a keyframe.
    pub fn next_is_keyframe(&self, seq: u32, ts_us: u64) -> bool {
        self.config.mode == PoseMode::Quantized
            && (!self.have_model
                || self.force_key
                || seq <= self.model.seq
                || seq - self.model.seq > MAX_REF_BACK
                || ts_us < self.last_key_ts
                || ts_us - self.last_key_ts >= self.config.keyframe_interval_us)
    }

    /// Validates `frame` and encodes it as a complete message (header, payload,
    /// CRC) for room handle `room` from member `sender` into `out`; returns its
    /// length. The frame's `seq` should grow by at least one per call; a `seq` that
    /// does not grow starts the stream again with a keyframe.
    pub fn encode(
        &mut self,
        frame: &PoseFrame,
        room: u16,
        sender: u16,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        encode_dispatch(self, frame, room, sender, out)
    }

    #[inline(always)]
    fn encode_inner(
        &mut self,
        frame: &PoseFrame,
        room: u16,
        sender: u16,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let quantized = self.config.mode == PoseMode::Quantized;
        let mut key = self.next_is_keyframe(frame.seq, frame.capture_ts_us);
        let mut q = [0i16; NP];
        let (mut fields_len, mut excess_len, mut escapes) = (0, 0, 0);
        let ref_back = frame.seq.wrapping_sub(self.model.seq);
        if !quantized {
            check(frame)?;
        } else {
            if !quantize(frame, &mut q) {
                // The precise error (which landmark, which value).
                frame.validate()?;
                return Err(Error::Malformed {
                    what: "a pose value outside the quantised range",
                });
            }
            if !key {
                (fields_len, excess_len, escapes) = self.code_delta(&q);
                // A delta no smaller than a keyframe (the person jumped, or the
                // tracker switched people) goes as a keyframe.
                key = varint_len(ref_back as u64) + fields_len + excess_len >= KEYFRAME_BODY_LEN;
            }
        }
        let mut header = Header::new(Kind::Pose, room, sender, frame.seq, frame.capture_ts_us);
        header.flags = match (quantized, key) {
            (false, _) => Flags::RAW,
            (true, true) => Flags::KEYFRAME,
            (true, false) => Flags::NONE,
        };
        let start = header.emit(out)?;
        let body_len = varint_len(frame.person as u64)
            + match (quantized, key) {
                (false, _) => RAW_BODY_LEN,
                (true, true) => KEYFRAME_BODY_LEN,
                (true, false) => varint_len(ref_back as u64) + fields_len + excess_len,
            };
        let Some(body) = out.get_mut(start..start + body_len) else {
            return Err(Error::BufferTooSmall {
                needed: start + body_len + CRC_LEN,
            });
        };
        let mut pos = put_varint(body, frame.person as u64);
        match (quantized, key) {
            (false, _) => {
                for (d, v) in body[pos..pos + RAW_BODY_LEN]
                    .chunks_exact_mut(4)
                    .zip(values(frame))
                {
                    d.copy_from_slice(&v.to_le_bytes());
                }
                pos += RAW_BODY_LEN;
            }
            (true, true) => {
                let dst = &mut body[pos..pos + KEYFRAME_BODY_LEN];
                for (d, v) in dst.chunks_exact_mut(8).zip(q.chunks_exact(5)) {
                    d[0..2].copy_from_slice(&(v[0] as u16).to_le_bytes());
                    d[2..4].copy_from_slice(&(v[1] as u16).to_le_bytes());
                    d[4..6].copy_from_slice(&(v[2] as u16).to_le_bytes());
                    d[6] = v[3] as u8;
                    d[7] = v[4] as u8;
                }
                pos += KEYFRAME_BODY_LEN;
            }
            (true, false) => {
                pos += put_varint(&mut body[pos..], ref_back as u64);
                body[pos..pos + fields_len].copy_from_slice(&self.work[..fields_len]);
                pos += fields_len;
                body[pos..pos + excess_len].copy_from_slice(&self.work_excess[..excess_len]);
                pos += excess_len;
            }
        }
        let payload_len = self.compressor.finish_payload(out, start, pos);
        let len = seal(out, start + payload_len)?;
        // Only now, with the message complete, does the model move on.
        match (quantized, key) {
            (false, _) => self.stats.raw += 1,
            (true, true) => {
                self.model.reset(frame.seq, &q);
                self.have_model = true;
                self.last_key_ts = frame.capture_ts_us;
                self.force_key = false;
                self.stats.keyframes += 1;
            }
            (true, false) => {
                self.model.update(frame.seq, &q);
                self.stats.deltas += 1;
                self.stats.escapes += escapes;
            }
        }
        self.stats.bytes += len as u64;
        Ok(len)
    }

    /// Codes the delta of `q` against the model into the work buffers; returns the
    /// byte lengths of the fields and of the excesses, and the number of escapes.
    #[inline(always)]
    fn code_delta(&mut self, q: &[i16; NP]) -> (usize, usize, u64) {
        let width = &self.model.width;
        // Residuals, zigzagged, and each field's escape value (all ones).
        // Sixteen-bit lanes throughout: |residual| ≤ 6144, so its zigzag (and
        // so every value here) fits in an i16, where SSE2 has min and compare.
        let mut u = [0i16; NP];
        let mut field = [0i16; NP];
        let esc = &self.model.esc;
        for i in 0..NP {
            u[i] = zigzag(q[i] - self.model.prev[i]) as i16;
            field[i] = u[i].min(esc[i]);
        }
        // The fields go out three at a time (at most 30 bits), so the writer's
        // serial chain is a third as long.
        let mut fields = BitWriter::new(&mut self.work);
        for t in 0..N / 3 {
            let i = 3 * t;
            let (wa, wb, wc) = (width[i] as u32, width[i + 1] as u32, width[i + 2] as u32);
            let (a, b, c) = (field[i] as u64, field[i + 1] as u64, field[i + 2] as u64);
            fields.put((((a << wb) | b) << wc) | c, wa + wb + wc);
        }
        // The escaped fields' excesses, in order (about one field in thirty):
        // eight lanes are tested at once, and only lanes that escape are visited.
        let mut excess = BitWriter::new(&mut self.work_excess);
        let mut count = 0;
        for_each_flagged(
            |i| u[i] >= esc[i],
            |i| {
                count += 1;
                let k = (width[i] as u32).saturating_sub(EXCESS_K_BELOW);
                excess.put_rice((u[i] - esc[i]) as u32, k);
            },
        );
        (fields.finish(), excess.finish(), count as u64)
    }
}

dispatched! {
    fn encode_dispatch(
        enc: &mut PoseEncoder,
        frame: &PoseFrame,
        room: u16,
        sender: u16,
        out: &mut [u8]
    ) -> Result<usize, Error> {
        enc.encode_inner(frame, room, sender, out)
    }
}
