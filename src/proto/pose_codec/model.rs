//! The model both ends of a pose stream share: the quantisation (the scales, the
//! per-lane tables, [`quantize`] / [`dequantize`] and the range check) and the
//! prediction [`Model`] whose running errors set each value's field width. The
//! encoder and the decoder call it with the same decoded values, so their models
//! stay identical without side information.

use crate::proto::Error;
use crate::proto::message::RAW_BODY_LEN;
use crate::proto::pose::{LANDMARK_COUNT, PoseFrame};

/// Values per frame: 33 landmarks × 5 (x, y, z, visibility, presence), in the
/// order of the `PoseFrame`'s memory, so the frame is read as one `[f32; 165]`.
pub(super) const N: usize = LANDMARK_COUNT * 5;
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
pub(super) const COORD_QMAX: i32 = 6144;
/// Quantisation steps per unit of visibility and presence.
pub const SCORE_SCALE: f32 = 128.0;
pub(super) const SCORE_QMAX: i32 = 128;
/// Worst-case absolute error of a quantised x, y or z.
pub const COORD_MAX_ERROR: f32 = 0.5 / COORD_SCALE + 1e-7;
/// Worst-case absolute error of a quantised visibility or presence.
pub const SCORE_MAX_ERROR: f32 = 0.5 / SCORE_SCALE + 1e-7;

/// The largest pose message (a raw frame with a maximal header).
pub const MAX_POSE_MESSAGE_LEN: usize = crate::proto::wire::MAX_HEADER_LEN + 5 + RAW_BODY_LEN + 4;
/// The longest delta body: 165 fields of the widest width, all escaped with the
/// longest excess code.
pub(super) const MAX_DELTA_BODY_LEN: usize =
    (N * MAX_WIDTH as usize).div_ceil(8) + (N * 35).div_ceil(8);
/// The largest reference distance an encoder uses before sending a keyframe.
pub(super) const MAX_REF_BACK: u32 = 1 << 16;

/// Running errors are kept ×4 (an exponential average over about four frames).
const ERR_SHIFT: u32 = 2;
/// Cap on one residual's contribution to the running error.
const ERR_CAP: i16 = 4095;
/// Starting running error after a keyframe (×4): about the jitter of a still joint.
const ERR_INIT_COORD: i16 = 24;
const ERR_INIT_SCORE: i16 = 2;
/// The widest field.
pub(super) const MAX_WIDTH: i32 = 10;
/// An escaped value's excess is Rice-coded with parameter width − EXCESS_K_BELOW.
pub(super) const EXCESS_K_BELOW: u32 = 2;

/// Values held per stream, padded to a multiple of 8 lanes for vector loops.
pub(super) const NP: usize = 168;

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
pub(super) const QMAX16: [i16; NP] = lanes(COORD_QMAX as i16, SCORE_QMAX as i16, 0);
/// Quantisation: q = bits(v · SCALE + OFFSET) − bits(ROUND_MAGIC). v · SCALE is
/// exact (a power of two), so the one rounding is the final one.
const SCALE: [f32; NP] = lanes(COORD_SCALE, SCORE_SCALE, 0.0);
const OFFSET: [f32; NP] = lanes(COORD_ZERO as f32 + ROUND_MAGIC, ROUND_MAGIC, ROUND_MAGIC);
/// Dequantisation: v = (q − ZERO) · INV_SCALE, exact (the scales are powers of two).
const ZERO: [i16; NP] = lanes(COORD_ZERO as i16, 0, 0);
const INV_SCALE: [f32; NP] = lanes(1.0 / COORD_SCALE, 1.0 / SCORE_SCALE, 0.0);
/// The carried range of each value.
const LOW: [f32; NP] = lanes(crate::proto::pose::COORD_MIN, 0.0, 0.0);
const HIGH: [f32; NP] = lanes(crate::proto::pose::COORD_MAX, 1.0, 0.0);
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
pub(super) struct Model {
    pub(super) seq: u32,
    /// The previous frame's values.
    pub(super) prev: [i16; NP],
    /// Running mean of each value's absolute residual, ×4.
    pub(super) err: [i16; NP],
    /// The field width of each value of the next frame, from `err`.
    pub(super) width: [i16; NP],
    /// Each field's escape value: all ones, 2^width − 1.
    pub(super) esc: [i16; NP],
}

/// Field width as a function of the running error `err` (4× the mean absolute
/// residual): 1 + bit length of twice the mean, capped at MAX_WIDTH — wide enough
/// that about one value in thirty escapes. Narrower fields (1.5× the mean) were
/// tried during development: on the synthetic motion they saved about 5 bytes a
/// frame but escaped one value in six, which cost a quarter more time.
pub(super) const fn width_of_err(err: i16) -> i16 {
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
    pub(super) const fn empty() -> Self {
        Model {
            seq: 0,
            prev: [0; NP],
            err: [0; NP],
            width: [0; NP],
            esc: [0; NP],
        }
    }

    pub(super) fn reset(&mut self, seq: u32, q: &[i16; NP]) {
        self.seq = seq;
        self.prev = *q;
        self.err = ERR_INIT;
        self.derive_widths();
    }

    /// Field widths and escape values straight from the running errors — only at
    /// a keyframe; between keyframes [`Model::step_widths`] moves them.
    pub(super) fn derive_widths(&mut self) {
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
    pub(super) fn step_widths(&mut self) {
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
    pub(super) fn update(&mut self, seq: u32, q: &[i16; NP]) {
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
pub(super) fn for_each_flagged(flagged: impl Fn(usize) -> bool, mut visit: impl FnMut(usize)) {
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
pub(super) fn zigzag(r: i16) -> u16 {
    ((r << 1) ^ (r >> 15)) as u16
}

#[inline(always)]
pub(super) fn unzigzag(u: u16) -> i16 {
    ((u >> 1) as i16) ^ -((u & 1) as i16)
}

/// The frame's 165 values as one array, in memory order.
#[inline(always)]
pub(super) fn values(frame: &PoseFrame) -> &[f32; N] {
    bytemuck::cast_ref(&frame.landmarks)
}

/// Quantises a frame and checks it on the way: returns false if a value is NaN,
/// infinite, or more than half a step outside its range (so that the one pass
/// over the values serves both). Half a step outside rounds onto the range's end
/// and is accepted: the error bound still holds for it.
#[inline(always)]
pub(super) fn quantize(frame: &PoseFrame, q: &mut [i16; NP]) -> bool {
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
pub(super) fn dequantize(q: &[i16; NP], frame: &mut PoseFrame) {
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

pub(super) fn check(frame: &PoseFrame) -> Result<(), Error> {
    if all_in_range(frame) {
        Ok(())
    } else {
        frame.validate()
    }
}
