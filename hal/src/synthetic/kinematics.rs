//! The body model behind [`SyntheticPose`](super::SyntheticPose): a skeleton of
//! rigid segments with the proportions of a 1.75 m adult, joint angles as smooth
//! periodic functions of time (walking, waving, and blends of the two), forward
//! kinematics into 3-D landmark positions, a pinhole camera that projects them
//! into MediaPipe's normalised image coordinates, and the visibility and presence
//! an estimator would give each point (lower where the motion hides it). Pure
//! arithmetic on values: no state, no randomness (the noise is added by the
//! source), nothing allocated.

use core::f32::consts::{PI, TAU};

use super::FRAME_ASPECT;
use super::Person;
use super::landmark::*;
use crate::pose::LANDMARK_COUNT;

// ---------------------------------------------------------------------------------
// Model constants (metres, before the per-seed scale).

pub(super) const HIP_HEIGHT: f32 = 0.95;
pub(super) const HIP_HALF_WIDTH: f32 = 0.09;
pub(super) const THIGH: f32 = 0.44;
pub(super) const SHIN: f32 = 0.43;
pub(super) const SPINE: f32 = 0.50;
pub(super) const SHOULDER_HALF_WIDTH: f32 = 0.19;
pub(super) const NECK: f32 = 0.08;
pub(super) const HEAD_CENTRE: f32 = 0.11;
pub(super) const UPPER_ARM: f32 = 0.29;
pub(super) const FOREARM: f32 = 0.26;
pub(super) const EAR_HALF_WIDTH: f32 = 0.075;
pub(super) const TORSO_HALF_DEPTH: f32 = 0.10;

/// Camera: distance to the person's nominal position, height, and focal length as a
/// fraction of the frame height (the frame is 4:3, so the horizontal one is 3/4 of it).
pub(super) const CAMERA_DISTANCE: f32 = 4.0;
pub(super) const CAMERA_HEIGHT: f32 = 1.0;
pub(super) const FOCAL_Y: f32 = 1.14;
pub(super) const FOCAL_X: f32 = FOCAL_Y / FRAME_ASPECT;

pub(super) const GAIT_HZ: f64 = 1.0;
pub(super) const WAVE_HZ: f64 = 2.0;
/// Round trip across the frame while walking, in seconds of walking.
pub(super) const DRIFT_PERIOD_S: f64 = 24.0;
pub(super) const DRIFT_AMPLITUDE: f32 = 0.9;
pub(super) const DRIFT_DEPTH: f32 = 0.15;
pub(super) const WALK_YAW: f32 = 35.0 * DEG;
/// Mixed motion schedule, seconds: walk, blend, wave, blend.
pub(super) const MIXED_WALK_S: f64 = 6.0;
pub(super) const MIXED_BLEND_S: f64 = 1.0;
pub(super) const MIXED_WAVE_S: f64 = 4.0;
pub(super) const MIXED_PERIOD_S: f64 = MIXED_WALK_S + MIXED_BLEND_S + MIXED_WAVE_S + MIXED_BLEND_S;

pub(super) const DEG: f32 = PI / 180.0;
pub(super) const SCORE_NOISE: f32 = 0.003;
pub(super) const SCORE_MAX: f32 = 0.9999;
pub(super) const COORD_MIN: f32 = -1.0;
pub(super) const COORD_MAX: f32 = 2.0;

/// Base visibility of each landmark when in plain view: pose estimators are surest
/// of the face and torso, least of the feet.
pub(super) const BASE_VISIBILITY: [f32; LANDMARK_COUNT] = [
    0.997, 0.996, 0.996, 0.995, 0.996, 0.996, 0.995, 0.99, 0.99, 0.995, 0.995, // face
    0.996, 0.996, 0.99, 0.99, 0.985, 0.985, 0.975, 0.975, 0.978, 0.978, 0.978, 0.978, // arms
    0.994, 0.994, 0.985, 0.985, 0.978, 0.978, 0.972, 0.972, 0.972, 0.972, // legs
];

// ---------------------------------------------------------------------------------
// Small 3-D vector and rotation helpers.
//
// Body-local vectors are (left, up, forward) of the person; world vectors are
// (image right, up, away from the camera). Both use `V3`.

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct V3 {
    x: f32,
    y: f32,
    z: f32,
}

pub(super) const fn v3(x: f32, y: f32, z: f32) -> V3 {
    V3 { x, y, z }
}

impl core::ops::Add for V3 {
    type Output = V3;
    fn add(self, o: V3) -> V3 {
        v3(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}

impl core::ops::Sub for V3 {
    type Output = V3;
    fn sub(self, o: V3) -> V3 {
        v3(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}

impl core::ops::Mul<f32> for V3 {
    type Output = V3;
    fn mul(self, k: f32) -> V3 {
        v3(self.x * k, self.y * k, self.z * k)
    }
}

impl V3 {
    fn dot(self, o: V3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }

    fn cross(self, o: V3) -> V3 {
        v3(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }

    fn norm(self) -> f32 {
        self.dot(self).sqrt()
    }

    fn normalized_or(self, fallback: V3) -> V3 {
        let n = self.norm();
        if n > 1e-6 { self * (1.0 / n) } else { fallback }
    }
}

/// A rotation matrix, by rows.
#[derive(Clone, Copy, Debug)]
pub(super) struct M3([V3; 3]);

impl M3 {
    fn apply(&self, v: V3) -> V3 {
        v3(self.0[0].dot(v), self.0[1].dot(v), self.0[2].dot(v))
    }

    fn then(&self, inner: &M3) -> M3 {
        // (self · inner): apply `inner` first, then `self`.
        let col = |j: usize| {
            let e = [v3(1.0, 0.0, 0.0), v3(0.0, 1.0, 0.0), v3(0.0, 0.0, 1.0)][j];
            self.apply(inner.apply(e))
        };
        let (c0, c1, c2) = (col(0), col(1), col(2));
        M3([
            v3(c0.x, c1.x, c2.x),
            v3(c0.y, c1.y, c2.y),
            v3(c0.z, c1.z, c2.z),
        ])
    }

    /// Turn about the vertical axis; positive brings the left side forward.
    fn yaw(a: f32) -> M3 {
        let (s, c) = a.sin_cos();
        M3([v3(c, 0.0, -s), v3(0.0, 1.0, 0.0), v3(s, 0.0, c)])
    }

    /// Lean sideways; positive leans to the left.
    fn roll(a: f32) -> M3 {
        let (s, c) = a.sin_cos();
        M3([v3(c, s, 0.0), v3(-s, c, 0.0), v3(0.0, 0.0, 1.0)])
    }

    /// Lean forwards (positive) or backwards.
    fn pitch(a: f32) -> M3 {
        let (s, c) = a.sin_cos();
        M3([v3(1.0, 0.0, 0.0), v3(0.0, c, -s), v3(0.0, s, c)])
    }
}

/// Unit direction of a limb segment on side `side` (+1 left, -1 right): first
/// swung outwards from hanging straight down by `out` in the frontal plane (90° is
/// horizontal and sideways, 180° straight up, beyond that across the midline), then
/// tilted forwards by `fwd`.
pub(super) fn limb_dir(side: f32, out: f32, fwd: f32) -> V3 {
    let (so, co) = out.sin_cos();
    let (sf, cf) = fwd.sin_cos();
    v3(side * so * cf, -co * cf, sf)
}

pub(super) fn lerp(a: f32, b: f32, w: f32) -> f32 {
    a + (b - a) * w
}

pub(super) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

pub(super) fn smootherstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * t * (t * (6.0 * t - 15.0) + 10.0)
}

/// Phase in radians of an oscillation at `hz` at time `t`, plus `phase`; computed in
/// `f64` and reduced to one cycle, so it stays exact however long the stream runs.
pub(super) fn cycle(t: f64, hz: f64, phase: f32) -> f32 {
    (t * hz).fract() as f32 * TAU + phase
}

/// `((1 + cos(p - centre)) / 2)^k`: a smooth periodic bump peaking at `centre`.
pub(super) fn bump(p: f32, centre: f32, k: i32) -> f32 {
    ((1.0 + (p - centre).cos()) * 0.5).powi(k)
}

// ---------------------------------------------------------------------------------
// Joint angles.

/// The joint angles (radians) and pelvis offsets (metres) of one moment; index 0 of
/// each pair is the left side, 1 the right.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Angles {
    sway: f32,
    bob: f32,
    pelvis_yaw: f32,
    torso_yaw: f32,
    torso_roll: f32,
    torso_pitch: f32,
    head_yaw: f32,
    head_pitch: f32,
    head_roll: f32,
    upper_out: [f32; 2],
    upper_fwd: [f32; 2],
    fore_out: [f32; 2],
    fore_fwd: [f32; 2],
    /// 0: palm towards the thigh; 1: palm towards the camera.
    palm_forward: [f32; 2],
    thigh_out: [f32; 2],
    thigh_fwd: [f32; 2],
    knee: [f32; 2],
    foot_pitch: [f32; 2],
}

impl Angles {
    fn blend(&self, o: &Angles, w: f32) -> Angles {
        let l2 = |a: [f32; 2], b: [f32; 2]| [lerp(a[0], b[0], w), lerp(a[1], b[1], w)];
        Angles {
            sway: lerp(self.sway, o.sway, w),
            bob: lerp(self.bob, o.bob, w),
            pelvis_yaw: lerp(self.pelvis_yaw, o.pelvis_yaw, w),
            torso_yaw: lerp(self.torso_yaw, o.torso_yaw, w),
            torso_roll: lerp(self.torso_roll, o.torso_roll, w),
            torso_pitch: lerp(self.torso_pitch, o.torso_pitch, w),
            head_yaw: lerp(self.head_yaw, o.head_yaw, w),
            head_pitch: lerp(self.head_pitch, o.head_pitch, w),
            head_roll: lerp(self.head_roll, o.head_roll, w),
            upper_out: l2(self.upper_out, o.upper_out),
            upper_fwd: l2(self.upper_fwd, o.upper_fwd),
            fore_out: l2(self.fore_out, o.fore_out),
            fore_fwd: l2(self.fore_fwd, o.fore_fwd),
            palm_forward: l2(self.palm_forward, o.palm_forward),
            thigh_out: l2(self.thigh_out, o.thigh_out),
            thigh_fwd: l2(self.thigh_fwd, o.thigh_fwd),
            knee: l2(self.knee, o.knee),
            foot_pitch: l2(self.foot_pitch, o.foot_pitch),
        }
    }
}

/// The walking pose at time `t`.
pub(super) fn walk_angles(person: &Person, t: f64) -> Angles {
    let p = cycle(t, GAIT_HZ, person.gait_phase);
    let slow = |i: usize, hz: f64| cycle(t, hz, person.slow_phase[i]);
    let mut a = Angles {
        // Pelvis over the stance leg (left stance is centred on p = π), highest at
        // mid-stance of either leg.
        sway: -0.025 * p.cos(),
        bob: 0.018 * (2.0 * p).cos(),
        // The left hip comes forward with the left leg; the shoulders counter-rotate.
        pelvis_yaw: 5.0 * DEG * p.sin(),
        torso_yaw: -4.0 * DEG * p.sin(),
        torso_roll: -2.0 * DEG * p.cos(),
        torso_pitch: 4.0 * DEG + 1.0 * DEG * (2.0 * p).cos(),
        head_yaw: 6.0 * DEG * slow(0, 0.11).sin(),
        head_pitch: 3.0 * DEG + 1.5 * DEG * (2.0 * p).cos(),
        head_roll: 1.5 * DEG * slow(1, 0.07).sin(),
        ..Angles::default()
    };
    for (i, side_phase) in [p, p + PI].into_iter().enumerate() {
        // Hip: +30° flexion at heel strike (phase π/2), -10° extension at toe-off.
        a.thigh_fwd[i] = 10.0 * DEG + 20.0 * DEG * side_phase.sin();
        a.thigh_out[i] = 2.0 * DEG;
        // Knee: a big bend early in the swing, a small one when loading the leg.
        a.knee[i] = 4.0 * DEG
            + 58.0 * DEG * bump(side_phase, -0.45, 3)
            + 14.0 * DEG * bump(side_phase, PI / 2.0 + 0.5, 8);
        // Foot: toes up at heel strike, down at push-off.
        a.foot_pitch[i] = 15.0 * DEG * bump(side_phase, PI / 2.0 - 0.1, 4)
            - 30.0 * DEG * bump(side_phase, -PI / 2.0 + 0.35, 4);
        // Arms swing opposite to the leg of the same side, bending more in front.
        let arm_forward = -side_phase.sin();
        a.upper_fwd[i] = 3.0 * DEG + 18.0 * DEG * arm_forward;
        a.upper_out[i] = 8.0 * DEG;
        let elbow = 18.0 * DEG + 14.0 * DEG * (1.0 + arm_forward) * 0.5;
        a.fore_fwd[i] = a.upper_fwd[i] + elbow;
        a.fore_out[i] = 5.0 * DEG;
        a.palm_forward[i] = 0.0;
    }
    a
}

/// The waving pose (right hand) at time `t`.
pub(super) fn wave_angles(person: &Person, t: f64) -> Angles {
    let q = cycle(t, WAVE_HZ, 0.0);
    let slow = |i: usize, hz: f64| cycle(t, hz, person.slow_phase[i]);
    // Weight shift from foot to foot, a 5 s cycle: positive over the left foot.
    let shift = slow(2, 0.2).sin();
    let (l, r) = (0, 1);
    let mut a = Angles {
        sway: 0.03 * shift,
        bob: -0.005 - 0.004 * shift.abs(),
        pelvis_yaw: 2.0 * DEG * shift,
        torso_yaw: 4.0 * DEG * slow(3, 0.05).sin() + 1.5 * DEG * q.sin(),
        // Lean away from the raised arm, and a little with the weight shift.
        torso_roll: 3.0 * DEG + 1.0 * DEG * shift,
        torso_pitch: 2.0 * DEG,
        head_yaw: 4.0 * DEG * slow(0, 0.09).sin(),
        head_pitch: 2.0 * DEG * slow(1, 0.13).sin(),
        head_roll: -3.0 * DEG,
        ..Angles::default()
    };
    // Right arm: upper arm just above horizontal, forearm up and swinging.
    a.upper_out[r] = 100.0 * DEG + 5.0 * DEG * (q - 0.6).sin();
    a.upper_fwd[r] = 20.0 * DEG;
    a.fore_out[r] = 160.0 * DEG + 35.0 * DEG * q.sin();
    a.fore_fwd[r] = 15.0 * DEG;
    a.palm_forward[r] = 1.0;
    // Left arm hanging relaxed.
    let drift = 2.0 * DEG * slow(3, 0.2).sin();
    a.upper_out[l] = 6.0 * DEG;
    a.upper_fwd[l] = 2.0 * DEG + drift;
    a.fore_out[l] = 5.0 * DEG;
    a.fore_fwd[l] = 14.0 * DEG + drift;
    a.palm_forward[l] = 0.0;
    // Legs: the loaded leg straight, the other knee slightly bent.
    a.thigh_fwd = [2.0 * DEG, 2.0 * DEG];
    a.thigh_out = [3.0 * DEG, 3.0 * DEG];
    a.knee[l] = 3.0 * DEG + 6.0 * DEG * (1.0 - shift) * 0.5;
    a.knee[r] = 3.0 * DEG + 6.0 * DEG * (1.0 + shift) * 0.5;
    a.thigh_fwd[l] += 0.5 * a.knee[l];
    a.thigh_fwd[r] += 0.5 * a.knee[r];
    a
}

// ---------------------------------------------------------------------------------
// Forward kinematics and projection.

/// One frame of the noiseless skeleton.
#[derive(Clone, Copy, Debug)]
pub(super) struct Skeleton {
    /// World positions, metres: x to image right, y up, z away from the camera.
    pub(super) world: [V3; LANDMARK_COUNT],
    /// Normalised image coordinates, before noise.
    pub(super) image: [[f32; 3]; LANDMARK_COUNT],
    /// The body's heading, radians: 0 faces the camera, positive turns it towards
    /// image right.
    pub(super) body_yaw: f32,
    pub(super) scale: f32,
}

pub(super) fn pose_at(person: &Person, t: f64, walk_time_s: f64, wave: f32) -> Skeleton {
    let angles = walk_angles(person, t).blend(&wave_angles(person, t), wave);

    // Where the body is and where it faces: drifting while walking, turned towards
    // where it goes; facing the camera, more or less, while waving.
    let drift = cycle(walk_time_s, 1.0 / DRIFT_PERIOD_S, 0.0);
    let depth_drift = cycle(
        walk_time_s,
        1.0 / (DRIFT_PERIOD_S * 1.37),
        person.slow_phase[3],
    );
    let root_x = person.drift_sign * DRIFT_AMPLITUDE * drift.sin();
    let root_z = DRIFT_DEPTH * depth_drift.sin();
    let walk_yaw = person.drift_sign * WALK_YAW * (2.5 * drift.cos()).tanh() / 2.5f32.tanh();
    let wave_yaw = 8.0 * DEG * cycle(t, 0.05, person.slow_phase[2]).sin();
    let body_yaw = lerp(walk_yaw, wave_yaw, wave);

    let local = body_local(&angles);
    let s = person.scale;
    let (sy, cy) = body_yaw.sin_cos();
    let mut world = [V3::default(); LANDMARK_COUNT];
    for (w, l) in world.iter_mut().zip(local.iter()) {
        let l = *l * s;
        *w = v3(
            root_x + l.x * cy + l.z * sy,
            l.y,
            root_z + l.x * sy - l.z * cy,
        );
    }

    let hip_mid = (world[LEFT_HIP] + world[RIGHT_HIP]) * 0.5;
    let hip_depth = hip_mid.z + CAMERA_DISTANCE;
    let mut image = [[0.0f32; 3]; LANDMARK_COUNT];
    for (img, w) in image.iter_mut().zip(world.iter()) {
        let depth = w.z + CAMERA_DISTANCE;
        *img = [
            0.5 + FOCAL_X * w.x / depth,
            0.5 - FOCAL_Y * (w.y - CAMERA_HEIGHT) / depth,
            FOCAL_X * (depth - hip_depth) / hip_depth,
        ];
    }
    Skeleton {
        world,
        image,
        body_yaw,
        scale: s,
    }
}

/// Landmark positions in the body frame (metres, feet on the ground at y = 0).
pub(super) fn body_local(a: &Angles) -> [V3; LANDMARK_COUNT] {
    let mut p = [V3::default(); LANDMARK_COUNT];
    let pelvis = v3(a.sway, HIP_HEIGHT + a.bob, 0.0);
    let r_pelvis = M3::yaw(a.pelvis_yaw);
    let r_torso = M3::yaw(a.torso_yaw)
        .then(&M3::roll(a.torso_roll))
        .then(&M3::pitch(a.torso_pitch));
    let r_head = r_torso
        .then(&M3::yaw(a.head_yaw))
        .then(&M3::pitch(a.head_pitch))
        .then(&M3::roll(a.head_roll));

    const SIDES: [(usize, f32); 2] = [(0, 1.0), (1, -1.0)];

    // Legs. The leg swings outwards against the pelvis sway so that the feet stay
    // roughly under the body instead of sliding sideways with it.
    let sway_comp = a.sway / (THIGH + SHIN);
    for (i, side) in SIDES {
        let hip = pelvis + r_pelvis.apply(v3(side * HIP_HALF_WIDTH, 0.0, 0.0));
        let out = a.thigh_out[i] - side * sway_comp;
        let thigh = r_pelvis.apply(limb_dir(side, out, a.thigh_fwd[i]));
        let knee = hip + thigh * THIGH;
        let shin = r_pelvis.apply(limb_dir(side, out, a.thigh_fwd[i] - a.knee[i]));
        let ankle = knee + shin * SHIN;
        // Foot frame: pitched about the ankle, toes turned out by 8°.
        let (sp, cp) = a.foot_pitch[i].sin_cos();
        let toe_out = M3::yaw(-side * 8.0 * DEG);
        let fwd = r_pelvis.apply(toe_out.apply(v3(0.0, sp, cp)));
        let up = r_pelvis.apply(toe_out.apply(v3(0.0, cp, -sp)));
        let heel = ankle - fwd * 0.055 - up * 0.05;
        let toe = ankle + fwd * 0.15 - up * 0.055;
        let [hip_i, knee_i, ankle_i, heel_i, toe_i] = if i == 0 {
            [LEFT_HIP, LEFT_KNEE, LEFT_ANKLE, LEFT_HEEL, LEFT_FOOT_INDEX]
        } else {
            [
                RIGHT_HIP,
                RIGHT_KNEE,
                RIGHT_ANKLE,
                RIGHT_HEEL,
                RIGHT_FOOT_INDEX,
            ]
        };
        p[hip_i] = hip;
        p[knee_i] = knee;
        p[ankle_i] = ankle;
        p[heel_i] = heel;
        p[toe_i] = toe;
    }

    // Torso and arms.
    let neck_base = pelvis + r_torso.apply(v3(0.0, SPINE, 0.0));
    for (i, side) in SIDES {
        let shoulder = neck_base + r_torso.apply(v3(side * SHOULDER_HALF_WIDTH, -0.03, -0.01));
        let upper = r_torso.apply(limb_dir(side, a.upper_out[i], a.upper_fwd[i]));
        let elbow = shoulder + upper * UPPER_ARM;
        let fore = r_torso.apply(limb_dir(side, a.fore_out[i], a.fore_fwd[i]));
        let wrist = elbow + fore * FOREARM;
        // Hand frame: fingers along the forearm, palm normal between "towards the
        // body" and "towards the camera", thumb across the palm.
        let medial = v3(-side, 0.0, 0.0);
        let forward = v3(0.0, 0.0, 1.0);
        let palm0 = r_torso.apply(
            (medial * (1.0 - a.palm_forward[i]) + forward * a.palm_forward[i])
                .normalized_or(forward),
        );
        let palm = (palm0 - fore * palm0.dot(fore)).normalized_or(r_torso.apply(medial));
        let thumb_dir = fore.cross(palm) * -side;
        let index = wrist + fore * 0.085 + thumb_dir * 0.02;
        let pinky = wrist + fore * 0.075 - thumb_dir * 0.035;
        let thumb = wrist + fore * 0.04 + thumb_dir * 0.045 + palm * 0.015;
        let [sh_i, el_i, wr_i, pi_i, in_i, th_i] = if i == 0 {
            [
                LEFT_SHOULDER,
                LEFT_ELBOW,
                LEFT_WRIST,
                LEFT_PINKY,
                LEFT_INDEX,
                LEFT_THUMB,
            ]
        } else {
            [
                RIGHT_SHOULDER,
                RIGHT_ELBOW,
                RIGHT_WRIST,
                RIGHT_PINKY,
                RIGHT_INDEX,
                RIGHT_THUMB,
            ]
        };
        p[sh_i] = shoulder;
        p[el_i] = elbow;
        p[wr_i] = wrist;
        p[pi_i] = pinky;
        p[in_i] = index;
        p[th_i] = thumb;
    }

    // Head and face.
    let neck_top = neck_base + r_torso.apply(v3(0.0, NECK, 0.01));
    let head = neck_top + r_head.apply(v3(0.0, HEAD_CENTRE, 0.01));
    let face = |offset: V3| head + r_head.apply(offset);
    p[NOSE] = face(v3(0.0, -0.015, 0.105));
    for (_, side) in SIDES {
        let [inner, centre, outer, ear, mouth] = if side > 0.0 {
            [
                LEFT_EYE_INNER,
                LEFT_EYE,
                LEFT_EYE_OUTER,
                LEFT_EAR,
                MOUTH_LEFT,
            ]
        } else {
            [
                RIGHT_EYE_INNER,
                RIGHT_EYE,
                RIGHT_EYE_OUTER,
                RIGHT_EAR,
                MOUTH_RIGHT,
            ]
        };
        p[inner] = face(v3(side * 0.017, 0.025, 0.085));
        p[centre] = face(v3(side * 0.032, 0.027, 0.08));
        p[outer] = face(v3(side * 0.047, 0.025, 0.072));
        p[ear] = face(v3(side * EAR_HALF_WIDTH, 0.005, -0.005));
        p[mouth] = face(v3(side * 0.025, -0.05, 0.085));
    }
    p
}

// ---------------------------------------------------------------------------------
// Visibility and presence.

/// Writes each landmark's noiseless `[visibility, presence]`.
pub(super) fn visibility_targets(sk: &Skeleton, out: &mut [[f32; 2]; LANDMARK_COUNT]) {
    let w = &sk.world;
    let s = sk.scale;
    let mut penalty = [0.0f32; LANDMARK_COUNT];

    // How far each side has turned away from the camera, in [-1, 1] (1: edge-on,
    // this side at the back).
    let head = (w[LEFT_EAR] + w[RIGHT_EAR]) * 0.5;
    let shoulder_mid = (w[LEFT_SHOULDER] + w[RIGHT_SHOULDER]) * 0.5;
    let hip_mid = (w[LEFT_HIP] + w[RIGHT_HIP]) * 0.5;
    let away = |p: V3, centre: V3, half: f32| (p.z - centre.z) / (half * s);

    let sides = [
        (
            LEFT_EAR,
            [LEFT_EYE, LEFT_EYE_OUTER, MOUTH_LEFT],
            LEFT_SHOULDER,
            LEFT_HIP,
        ),
        (
            RIGHT_EAR,
            [RIGHT_EYE, RIGHT_EYE_OUTER, MOUTH_RIGHT],
            RIGHT_SHOULDER,
            RIGHT_HIP,
        ),
    ];
    for (side, (ear, face_pts, shoulder, hip)) in sides.into_iter().enumerate() {
        // The head hides the far ear first, then the far eye and mouth corner.
        let head_away = away(w[ear], head, EAR_HALF_WIDTH);
        penalty[ear] += 0.6 * smoothstep(0.35, 0.9, head_away);
        for f in face_pts {
            penalty[f] += 0.12 * smoothstep(0.45, 0.95, head_away);
        }
        // The body hides the far arm and leg somewhat when it turns.
        let body_away = away(w[shoulder], shoulder_mid, SHOULDER_HALF_WIDTH);
        penalty[shoulder] += 0.05 * smoothstep(0.3, 0.8, body_away);
        for k in (LEFT_ELBOW + side..=RIGHT_THUMB).step_by(2) {
            penalty[k] += 0.15 * smoothstep(0.3, 0.8, body_away);
        }
        let leg_away = away(w[hip], hip_mid, HIP_HALF_WIDTH);
        for k in (LEFT_KNEE + side..=RIGHT_FOOT_INDEX).step_by(2) {
            penalty[k] += 0.12 * smoothstep(0.3, 0.8, leg_away);
        }
    }

    // A hand or elbow behind the torso is hidden by it.
    let torso_half_width =
        s * (0.17 * sk.body_yaw.cos().abs() + TORSO_HALF_DEPTH * sk.body_yaw.sin().abs());
    for k in LEFT_ELBOW..=RIGHT_THUMB {
        let p = w[k];
        let along = ((p.y - hip_mid.y) / (shoulder_mid.y - hip_mid.y)).clamp(0.0, 1.0);
        let centre = hip_mid + (shoulder_mid - hip_mid) * along;
        let behind = p.z - centre.z - TORSO_HALF_DEPTH * s * 0.8;
        let lateral = (p.x - centre.x).abs();
        let in_height = smoothstep(hip_mid.y - 0.15 * s, hip_mid.y, p.y)
            * (1.0 - smoothstep(shoulder_mid.y, shoulder_mid.y + 0.05 * s, p.y));
        let hidden = smoothstep(0.0, 0.08 * s, behind)
            * (1.0 - smoothstep(0.7 * torso_half_width, 1.1 * torso_half_width, lateral))
            * in_height;
        penalty[k] += 0.75 * hidden;
    }

    for i in 0..LANDMARK_COUNT {
        // Out of the frame: both scores drop.
        let [x, y, _] = sk.image[i];
        let outside = (-x).max(x - 1.0).max(-y).max(y - 1.0).max(0.0);
        let gone = smoothstep(0.0, 0.05, outside);
        let visibility = (BASE_VISIBILITY[i] - penalty[i]) * (1.0 - 0.9 * gone);
        // Presence is about being in the frame, so hiding lowers it only a little.
        let presence = (0.998 - 0.05 * penalty[i]) * (1.0 - 0.8 * gone);
        out[i] = [visibility, presence];
    }
}
