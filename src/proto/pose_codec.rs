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

use super::Error;
use super::bits::{BitReader, BitWriter, WORK_LEN};
use super::compress::{Compressor, DEFAULT_COMPRESS_THRESHOLD};
use super::message::{KEYFRAME_BODY_LEN, PoseCoding, PosePayload, RAW_BODY_LEN};
use super::pose::{LANDMARK_COUNT, PoseFrame};
use super::wire::{CRC_LEN, Flags, Header, Kind, put_varint, seal, varint_len};

/// Values per frame: 33 landmarks × 5 (x, y, z, visibility, presence), in the
/// order of the `PoseFrame`'s memory, so the frame is read as one `[f32; 165]`.
const N: usize = LANDMARK_COUNT * 5;
const _: () = assert!(
    N.is_multiple_of(3),
    "the fields are written and read in threes"
);
const _: () = assert!(
    3 * MAX_WIDTH <= 57,
    "three fields must fit one 57-bit window"
);
/// Quantisation steps per unit of x, y, z.
pub const COORD_SCALE: f32 = 2048.0;
/// The quantised value of 0.0 (so -1.0 maps to 0).
const COORD_ZERO: i32 = 2048;
/// The largest quantised x, y, z (2.0).
const COORD_QMAX: i32 = 6144;
/// Quantisation steps per unit of visibility and presence.
pub const SCORE_SCALE: f32 = 128.0;
const SCORE_QMAX: i32 = 128;
/// Worst-case absolute error of a quantised x, y or z.
pub const COORD_MAX_ERROR: f32 = 0.5 / COORD_SCALE + 1e-7;
/// Worst-case absolute error of a quantised visibility or presence.
pub const SCORE_MAX_ERROR: f32 = 0.5 / SCORE_SCALE + 1e-7;

/// The largest pose message (a raw frame with a maximal header).
pub const MAX_POSE_MESSAGE_LEN: usize = super::wire::MAX_HEADER_LEN + 5 + RAW_BODY_LEN + 4;
/// The longest delta body: 165 fields of the widest width, all escaped with the
/// longest excess code.
const MAX_DELTA_BODY_LEN: usize = (N * MAX_WIDTH as usize).div_ceil(8) + (N * 35).div_ceil(8);
/// The largest reference distance an encoder uses before sending a keyframe.
const MAX_REF_BACK: u32 = 1 << 16;

/// Running errors are kept ×4 (an exponential average over about four frames).
const ERR_SHIFT: u32 = 2;
/// Cap on one residual's contribution to the running error.
const ERR_CAP: i16 = 4095;
/// Starting running error after a keyframe (×4): about the jitter of a still joint.
const ERR_INIT_COORD: i16 = 24;
const ERR_INIT_SCORE: i16 = 2;
/// The widest field.
const MAX_WIDTH: i32 = 10;
/// An escaped value's excess is Rice-coded with parameter width − EXCESS_K_BELOW.
const EXCESS_K_BELOW: u32 = 2;

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
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            mode: PoseMode::Quantized,
            keyframe_interval_us: 1_000_000,
            compress_threshold: DEFAULT_COMPRESS_THRESHOLD,
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

/// Values held per stream, padded to a multiple of 8 lanes for vector loops.
const NP: usize = 168;

/// Whether value `i` is a coordinate (x, y, z) rather than a score.
const fn is_coord(i: usize) -> bool {
    i % 5 < 3
}

/// A per-lane table: `coord` for coordinates, `score` for scores, `pad` after N.
const fn lanes<T: Copy>(coord: T, score: T, pad: T) -> [T; NP] {
    let mut m = [pad; NP];
    let mut i = 0;
    while i < N {
        m[i] = if is_coord(i) { coord } else { score };
        i += 1;
    }
    m
}

/// 1.5 · 2²³: adding it to a float below 2²² leaves the value rounded to the
/// nearest integer (ties to even) in the low mantissa bits — a rounding that
/// vectorises, unlike `as` conversions with their saturation rules.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// Per-lane limit of the quantised values (0 in the padding lanes).
const QMAX32: [i32; NP] = lanes(COORD_QMAX, SCORE_QMAX, 0);
const QMAX16: [i16; NP] = lanes(COORD_QMAX as i16, SCORE_QMAX as i16, 0);
/// Quantisation: q = bits(v · SCALE + OFFSET) − bits(ROUND_MAGIC). v · SCALE is
/// exact (a power of two), so the one rounding is the final one.
const SCALE: [f32; NP] = lanes(COORD_SCALE, SCORE_SCALE, 0.0);
const OFFSET: [f32; NP] = lanes(COORD_ZERO as f32 + ROUND_MAGIC, ROUND_MAGIC, ROUND_MAGIC);
/// Dequantisation: v = (q − ZERO) · INV_SCALE, exact (the scales are powers of two).
const ZERO: [i16; NP] = lanes(COORD_ZERO as i16, 0, 0);
const INV_SCALE: [f32; NP] = lanes(1.0 / COORD_SCALE, 1.0 / SCORE_SCALE, 0.0);
/// The carried range of each value.
const LOW: [f32; NP] = lanes(super::pose::COORD_MIN, 0.0, 0.0);
const HIGH: [f32; NP] = lanes(super::pose::COORD_MAX, 1.0, 0.0);
/// Starting running error after a keyframe.
const ERR_INIT: [i16; NP] = lanes(ERR_INIT_COORD, ERR_INIT_SCORE, 0);

/// The prediction model both ends keep per stream, updated from decoded values only.
///
/// Each value is predicted by its previous value, and its field width follows a
/// running mean of its absolute residual, so a still joint costs a few bits and a
/// swinging wrist more. Richer predictors (linear extrapolation, an average that
/// smooths jitter out) were tried during development: on the synthetic motion
/// they saved under one byte a frame, less than they cost in time. The state is `i16` in fixed-size arrays and the loops are branch-free, so
/// they vectorise with plain SSE2 or NEON.
#[derive(Clone, Debug)]
struct Model {
    seq: u32,
    /// The previous frame's values.
    prev: [i16; NP],
    /// Running mean of each value's absolute residual, ×4.
    err: [i16; NP],
    /// The field width of each value of the next frame, from `err`.
    width: [i16; NP],
    /// Each field's escape value: all ones, 2^width − 1.
    esc: [i16; NP],
}

/// Field width as a function of the running error `err` (4× the mean absolute
/// residual): 1 + bit length of twice the mean, capped at MAX_WIDTH — wide enough
/// that about one value in thirty escapes. Narrower fields (1.5× the mean) were
/// tried during development: on the synthetic motion they saved about 5 bytes a
/// frame but escaped one value in six, which cost a quarter more time.
const fn width_of_err(err: i16) -> i16 {
    let x = two_means(err) as u32;
    let w = 1 + (32 - x.leading_zeros()) as i32;
    if w > MAX_WIDTH {
        MAX_WIDTH as i16
    } else {
        w as i16
    }
}

/// Twice the mean absolute residual, from the running error (4× the mean).
#[inline(always)]
const fn two_means(err: i16) -> i16 {
    err >> (ERR_SHIFT - 1)
}

impl Model {
    const fn empty() -> Self {
        Model {
            seq: 0,
            prev: [0; NP],
            err: [0; NP],
            width: [0; NP],
            esc: [0; NP],
        }
    }

    fn reset(&mut self, seq: u32, q: &[i16; NP]) {
        self.seq = seq;
        self.prev = *q;
        self.err = ERR_INIT;
        self.derive_widths();
    }

    /// Field widths and escape values straight from the running errors — only at
    /// a keyframe; between keyframes [`Model::step_widths`] moves them.
    fn derive_widths(&mut self) {
        for i in 0..NP {
            let w = width_of_err(self.err[i]);
            self.width[i] = w;
            self.esc[i] = (1 << w) - 1;
        }
    }

    /// Moves each width one step toward `width_of_err(err)`: up when twice the
    /// mean residual has reached the field's upper half, down when it has fallen
    /// below its lower quarter. Comparisons and constant shifts against the lane's
    /// own escape value only — a third of the work of `derive_widths`, and a width
    /// rarely needs more than a step a frame.
    #[inline(always)]
    fn step_widths(&mut self) {
        for i in 0..NP {
            let x = two_means(self.err[i]);
            let esc = self.esc[i];
            let half = (esc >> 1) + 1;
            let up = (x >= half) & (self.width[i] < MAX_WIDTH as i16);
            let down = (x < (half >> 1)) & (self.width[i] > 1);
            self.esc[i] = if up {
                esc * 2 + 1
            } else if down {
                esc >> 1
            } else {
                esc
            };
            self.width[i] += up as i16 - down as i16;
        }
    }

    /// Takes in the frame just coded.
    #[inline(always)]
    fn update(&mut self, seq: u32, q: &[i16; NP]) {
        for i in 0..NP {
            let e = (q[i] - self.prev[i]).abs().min(ERR_CAP);
            self.err[i] += e - (self.err[i] >> ERR_SHIFT);
        }
        self.step_widths();
        self.prev = *q;
        self.seq = seq;
    }
}

/// Calls `visit(i)`, in order, for every `i` in 0..N with `flagged(i)` — testing
/// eight lanes at a time (a vectorisable test) and looking inside a group only when
/// one of them is flagged, because flags are rare and a branch per lane
/// mispredicts on them.
#[inline(always)]
fn for_each_flagged(flagged: impl Fn(usize) -> bool, mut visit: impl FnMut(usize)) {
    for g in 0..NP / 8 {
        let mut any = false;
        for i in 8 * g..8 * g + 8 {
            any |= flagged(i);
        }
        if any {
            for i in 8 * g..(8 * g + 8).min(N) {
                if flagged(i) {
                    visit(i);
                }
            }
        }
    }
}

#[inline(always)]
fn zigzag(r: i16) -> u16 {
    ((r << 1) ^ (r >> 15)) as u16
}

#[inline(always)]
fn unzigzag(u: u16) -> i16 {
    ((u >> 1) as i16) ^ -((u & 1) as i16)
}

/// The frame's 165 values as one array, in memory order.
#[inline(always)]
fn values(frame: &PoseFrame) -> &[f32; N] {
    bytemuck::cast_ref(&frame.landmarks)
}

/// Quantises a frame and checks it on the way: returns false if a value is NaN,
/// infinite, or more than half a step outside its range (so that the one pass
/// over the values serves both). Half a step outside rounds onto the range's end
/// and is accepted: the error bound still holds for it.
#[inline(always)]
fn quantize(frame: &PoseFrame, q: &mut [i16; NP]) -> bool {
    let v = values(frame);
    let mut bad = 0i32;
    for i in 0..N {
        let r = v[i] * SCALE[i] + OFFSET[i];
        // NaN and ±∞ land far outside 0..=QMAX too.
        let x = r.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32;
        bad |= x | (QMAX32[i] - x);
        q[i] = x as i16;
    }
    bad >= 0
}

#[inline(always)]
fn dequantize(q: &[i16; NP], frame: &mut PoseFrame) {
    let v: &mut [f32; N] = bytemuck::cast_mut(&mut frame.landmarks);
    for i in 0..N {
        v[i] = (q[i] - ZERO[i]) as f32 * INV_SCALE[i];
    }
}

/// Whether every value is finite and in range, without branching per value; the
/// precise error comes from [`PoseFrame::validate`] when this says no.
#[inline(always)]
fn all_in_range(frame: &PoseFrame) -> bool {
    let v = values(frame);
    let mut bad = 0u32;
    for i in 0..N {
        // NaN fails both comparisons, infinities fail the range.
        bad |= !((v[i] >= LOW[i]) & (v[i] <= HIGH[i])) as u32;
    }
    bad == 0
}

fn check(frame: &PoseFrame) -> Result<(), Error> {
    if all_in_range(frame) {
        Ok(())
    } else {
        frame.validate()
    }
}

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

// The encoder and the decoder are compiled twice on x86-64: for the portable
// baseline and for CPUs with AVX2 and BMI2 (shifts by a register amount without the
// CL register, wider vectors), chosen once at run time; the latter is about 20 %
// faster (`benches/codec.rs`). Other targets get one build for their own features.
// The dispatch is the `multiversion` crate's, whose expansion uses `unsafe` to call
// the feature-specific clone after checking the CPU.
#[allow(unsafe_code)]
#[multiversion::multiversion(targets("x86_64+avx2+bmi1+bmi2+lzcnt+popcnt"))]
fn encode_dispatch(
    enc: &mut PoseEncoder,
    frame: &PoseFrame,
    room: u16,
    sender: u16,
    out: &mut [u8],
) -> Result<usize, Error> {
    enc.encode_inner(frame, room, sender, out)
}

#[allow(unsafe_code)]
#[multiversion::multiversion(targets("x86_64+avx2+bmi1+bmi2+lzcnt+popcnt"))]
fn decode_dispatch(
    dec: &mut PoseDecoder,
    header: &Header,
    payload: &PosePayload<'_>,
) -> Result<(), Error> {
    dec.decode_inner(header, payload)
}

#[cfg(test)]
mod tests {
    use super::super::{Message, Packet, landmark};
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
