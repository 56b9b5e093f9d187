//! The decoder: [`PoseDecoder`] checks a pose payload and turns it back into a
//! frame — a raw frame as it is, a keyframe by resetting the shared model, a delta
//! only onto exactly the frame it names.

use crate::proto::Error;
use crate::proto::bits::{BitReader, WORK_LEN};
use crate::proto::message::{PoseCoding, PosePayload};
use crate::proto::pose::PoseFrame;
use crate::proto::wire::Header;

use super::CodecStats;
use super::dispatch::dispatched;
use super::model::{
    COORD_QMAX, EXCESS_K_BELOW, MAX_DELTA_BODY_LEN, Model, N, NP, QMAX16, SCORE_QMAX, check,
    dequantize, for_each_flagged, unzigzag,
};

/// Decodes one incoming pose stream (one sender × one person).
///
/// ```
/// use poselink::proto::{PoseDecoder, PoseEncoder, EncoderConfig, PoseFrame, Packet, Message, Error};
/// let mut enc = PoseEncoder::new(EncoderConfig::default());
/// let mut dec = PoseDecoder::new();
/// let mut frame = PoseFrame::zeroed();
/// let mut buf = [0u8; 1024];
/// let mut scratch = [0u8; 1024];
/// for seq in 1..=3u32 {
///     frame.seq = seq;
///     let n = enc.encode(&frame, 1, 2, &mut buf).unwrap();
///     if seq == 2 { continue; } // lost on the way
///     let p = Packet::new_checked(&buf[..n]).unwrap();
///     let Message::Pose(pose) = Message::parse(&p, &mut scratch).unwrap() else { unreachable!() };
///     let r = dec.decode(&p.header(), &pose);
///     if seq == 3 { assert_eq!(r.unwrap_err(), Error::NeedsKeyframe); } else { assert!(r.is_ok()); }
/// }
/// ```
#[derive(Debug)]
pub struct PoseDecoder {
    model: Model,
    have_model: bool,
    frame: PoseFrame,
    stats: CodecStats,
    /// The delta bit stream, copied here with zero padding for the reader.
    work: [u8; WORK_LEN],
}

impl Default for PoseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl PoseDecoder {
    /// A decoder that waits for a keyframe (raw frames decode at once).
    pub const fn new() -> Self {
        PoseDecoder {
            model: Model::empty(),
            have_model: false,
            frame: PoseFrame::zeroed(),
            stats: CodecStats {
                keyframes: 0,
                deltas: 0,
                raw: 0,
                bytes: 0,
                escapes: 0,
            },
            work: [0; WORK_LEN],
        }
    }

    /// Counters since creation (`bytes` counts payload bytes here).
    pub fn stats(&self) -> CodecStats {
        self.stats
    }

    /// Whether a delta can be decoded now (a keyframe has been seen since the last
    /// gap).
    pub fn is_synced(&self) -> bool {
        self.have_model
    }

    /// The sequence number of the last quantised frame decoded.
    pub fn last_seq(&self) -> Option<u32> {
        self.have_model.then_some(self.model.seq)
    }

    /// Forgets the stream; the next delta needs a keyframe first.
    pub fn reset(&mut self) {
        self.have_model = false;
    }

    /// Decodes the pose payload of the message whose header is `header`. On success
    /// the frame is returned (and kept until the next call). A delta whose
    /// reference this decoder does not hold gives [`Error::NeedsKeyframe`]; any
    /// malformed body gives an error and leaves the decoder as it was.
    pub fn decode(
        &mut self,
        header: &Header,
        payload: &PosePayload<'_>,
    ) -> Result<&PoseFrame, Error> {
        decode_dispatch(self, header, payload)?;
        Ok(&self.frame)
    }

    #[inline(always)]
    fn decode_inner(&mut self, header: &Header, payload: &PosePayload<'_>) -> Result<(), Error> {
        let mut q = [0i16; NP];
        match payload.coding {
            PoseCoding::Raw => {
                let mut f = PoseFrame::zeroed();
                for (lm, b) in f.landmarks.iter_mut().zip(payload.body.chunks_exact(20)) {
                    let v = |i: usize| f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                    lm.x = v(0);
                    lm.y = v(4);
                    lm.z = v(8);
                    lm.visibility = v(12);
                    lm.presence = v(16);
                }
                check(&f)?;
                self.frame.landmarks = f.landmarks;
                self.stats.raw += 1;
            }
            PoseCoding::Keyframe => {
                let mut too_big = false;
                for (v, b) in q.chunks_exact_mut(5).zip(payload.body.chunks_exact(8)) {
                    let x = u16::from_le_bytes([b[0], b[1]]);
                    let y = u16::from_le_bytes([b[2], b[3]]);
                    let z = u16::from_le_bytes([b[4], b[5]]);
                    too_big |= (x > COORD_QMAX as u16)
                        | (y > COORD_QMAX as u16)
                        | (z > COORD_QMAX as u16)
                        | (b[6] as i32 > SCORE_QMAX)
                        | (b[7] as i32 > SCORE_QMAX);
                    v[0] = x as i16;
                    v[1] = y as i16;
                    v[2] = z as i16;
                    v[3] = b[6] as i16;
                    v[4] = b[7] as i16;
                }
                if too_big {
                    return Err(Error::Malformed {
                        what: "the pose keyframe (a coordinate above 6144 or a score above 128)",
                    });
                }
                self.model.reset(header.seq, &q);
                self.have_model = true;
                dequantize(&q, &mut self.frame);
                self.stats.keyframes += 1;
            }
            PoseCoding::Delta { ref_back } => {
                if !self.have_model || header.seq.wrapping_sub(ref_back) != self.model.seq {
                    self.have_model = false;
                    return Err(Error::NeedsKeyframe);
                }
                let len = payload.body.len();
                if len > MAX_DELTA_BODY_LEN {
                    return Err(Error::Malformed {
                        what: "the pose delta (longer than 165 escaped values)",
                    });
                }
                self.work[..len].copy_from_slice(payload.body);
                self.work[len..len + 8].fill(0);
                let width = &self.model.width;
                // Pass 1: the fields, at positions the model alone determines, so
                // each is read independently of the others.
                // Three fields (at most 36 bits) come out of each 57-bit window.
                // Codes are 16-bit: a field is at most 10 bits, and an escaped one
                // adds an excess below 2^15.
                let mut code = [0u16; NP];
                let mut bit = 0usize;
                for t in 0..N / 3 {
                    let i = 3 * t;
                    let (wa, wb, wc) = (width[i] as u32, width[i + 1] as u32, width[i + 2] as u32);
                    let w = BitReader::window_at(&self.work, bit);
                    code[i] = (w >> (64 - wa)) as u16;
                    code[i + 1] = ((w << wa) >> (64 - wb)) as u16;
                    code[i + 2] = ((w << (wa + wb)) >> (64 - wc)) as u16;
                    bit += (wa + wb + wc) as usize;
                }
                let fields_len = bit.div_ceil(8);
                let pad = (fields_len * 8 - bit) as u32;
                if fields_len > len
                    || (pad > 0 && self.work[fields_len - 1] & ((1u8 << pad) - 1) != 0)
                {
                    return Err(Error::Malformed {
                        what: "the pose delta's fields (too short or non-zero padding)",
                    });
                }
                // Pass 2: the excesses of escaped fields, in order.
                let mut excess = BitReader::new(&self.work, fields_len, len);
                let esc = &self.model.esc;
                let mut escaped = [false; NP];
                for i in 0..NP {
                    escaped[i] = code[i] == esc[i] as u16;
                }
                for_each_flagged(
                    |i| escaped[i],
                    |i| {
                        let k = (width[i] as u32).saturating_sub(EXCESS_K_BELOW);
                        // get_rice yields at most 15 bits: the sum fits.
                        code[i] += excess.get_rice(k) as u16;
                    },
                );
                excess.finish()?;
                // Pass 3: the values (vector loop). Wrapping: a hostile stream may
                // name any residual; the range check refuses what does not fit.
                let mut bad = 0i16;
                for i in 0..NP {
                    // |prev| ≤ 6144 and |residual| < 2^14 + 2^10: no overflow.
                    q[i] = self.model.prev[i].wrapping_add(unzigzag(code[i]));
                    // Negative when q < 0 or q > QMAX.
                    bad |= q[i] | (QMAX16[i] - q[i]);
                }
                let bad = bad < 0;
                if bad {
                    return Err(Error::Malformed {
                        what: "the pose delta (a value outside its range)",
                    });
                }
                self.model.update(header.seq, &q);
                dequantize(&q, &mut self.frame);
                self.stats.deltas += 1;
            }
        }
        self.frame.seq = header.seq;
        self.frame.capture_ts_us = header.ts_us;
        self.frame.person = payload.person;
        self.stats.bytes += payload.body.len() as u64;
        Ok(())
    }
}

dispatched! {
    fn decode_dispatch(
        dec: &mut PoseDecoder,
        header: &Header,
        payload: &PosePayload<'_>
    ) -> Result<(), Error> {
        dec.decode_inner(header, payload)
    }
}
