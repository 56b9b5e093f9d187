//! A deterministic, realistic synthetic pose source: a moving human skeleton.
//!
//! [`SyntheticPose`] stands in for a camera and pose estimator on boards that have
//! none, in tests and in benchmarks. Its frames look like MediaPipe BlazePose output,
//! so the codec, the network path and the consumers see data with the statistics of
//! the real thing: smooth, correlated motion of 33 landmarks plus measurement noise.
//!
//! # Model
//!
//! The person is a skeleton of rigid segments (pelvis, spine, neck, head, upper arms,
//! forearms, hands, thighs, shins, feet) with the proportions of a 1.75 m adult,
//! scaled by ±5 % per seed. Joint angles are smooth periodic functions of time, and
//! forward kinematics turns them into 3-D landmark positions:
//!
//! - [`Motion::Walk`]: a 1 Hz gait cycle with hip flexion and extension, a swing-phase
//!   knee bend and a smaller loading bend after heel strike, heel-strike and toe-off
//!   foot pitch, arms swinging opposite to the legs with more elbow bend in front,
//!   a vertical bob at twice the gait frequency, a lateral sway over the stance leg
//!   and counter-rotation of pelvis and shoulders. The body drifts slowly across the
//!   frame and back (a 24 s round trip, a little in depth too), turned about 35°
//!   towards where it is going, so the far side of the body turns away from the
//!   camera.
//! - [`Motion::Wave`]: the right upper arm raised just above the horizontal, the
//!   forearm up and swinging side to side at 2 Hz with the palm to the camera, the
//!   left arm hanging relaxed, and a slow shift of weight from foot to foot.
//! - [`Motion::Mixed`]: 6 s of walking, a 1 s blend to waving, 4 s of waving and a 1 s
//!   blend back, over and over. The blend interpolates joint angles, so bones keep
//!   their lengths through it, and the drift across the frame pauses while waving.
//!
//! The skeleton is seen by a pinhole camera 4 m away at 1 m height, with a 4:3 frame
//! ([`FRAME_ASPECT`]) and a 60° horizontal field of view, so the person fills about
//! half of the frame height. The projection is a true perspective one, so, as in a
//! real camera image, the projected length of a bone changes a little as it turns
//! in depth or moves off the camera's axis.
//!
//! Positions are given in MediaPipe's normalised image coordinates: `x` and `y` are
//! fractions of the frame width and height (`y` grows downwards), `z` is the depth
//! relative to the hip midpoint on the scale of `x` (negative towards the camera).
//! `x`, `y` and `z` are always clamped to `[-1, 2]`, visibility and presence to
//! `[0, 1]`.
//!
//! # Noise
//!
//! On top of the smooth trajectory, every frame adds independent Gaussian noise of
//! standard deviation [`SyntheticConfig::jitter`] to `x`, `y` and `z` of every
//! landmark. The noise is white, not smoothed: a per-frame estimator without
//! temporal filtering shows frame-to-frame jitter of this kind, and white noise is
//! the harder case for a delta codec and the easier one to measure (the standard
//! deviation of the second difference of a coordinate, divided by √6, recovers it).
//!
//! Visibility and presence are high (about 0.95 to 0.9999) for points in plain view,
//! vary slowly, and carry small per-frame noise (σ = 0.003). Points the motion hides
//! score lower: the far ear, eye and mouth corner when the head turns away, the far
//! arm and leg when the body turns, a hand passing behind the torso, and any point
//! that leaves the frame.
//!
//! The same seed and configuration give the same frames. The random generator
//! (PCG32) is portable, so on another platform frames differ at most in the last
//! bits of the floating-point maths. Reading a frame allocates nothing.

use core::f32::consts::{PI, TAU};

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rand_pcg::Pcg32;

use crate::pose::{LANDMARK_COUNT, PoseSample, PoseSource};

/// MediaPipe BlazePose landmark indices.
///
/// "Left" and "right" are the person's own: facing the camera, the left shoulder is
/// on the right of the image.
pub mod landmark {
    /// Nose tip.
    pub const NOSE: usize = 0;
    /// Inner corner of the left eye.
    pub const LEFT_EYE_INNER: usize = 1;
    /// Centre of the left eye.
    pub const LEFT_EYE: usize = 2;
    /// Outer corner of the left eye.
    pub const LEFT_EYE_OUTER: usize = 3;
    /// Inner corner of the right eye.
    pub const RIGHT_EYE_INNER: usize = 4;
    /// Centre of the right eye.
    pub const RIGHT_EYE: usize = 5;
    /// Outer corner of the right eye.
    pub const RIGHT_EYE_OUTER: usize = 6;
    /// Left ear.
    pub const LEFT_EAR: usize = 7;
    /// Right ear.
    pub const RIGHT_EAR: usize = 8;
    /// Left corner of the mouth.
    pub const MOUTH_LEFT: usize = 9;
    /// Right corner of the mouth.
    pub const MOUTH_RIGHT: usize = 10;
    /// Left shoulder joint.
    pub const LEFT_SHOULDER: usize = 11;
    /// Right shoulder joint.
    pub const RIGHT_SHOULDER: usize = 12;
    /// Left elbow.
    pub const LEFT_ELBOW: usize = 13;
    /// Right elbow.
    pub const RIGHT_ELBOW: usize = 14;
    /// Left wrist.
    pub const LEFT_WRIST: usize = 15;
    /// Right wrist.
    pub const RIGHT_WRIST: usize = 16;
    /// Left pinky knuckle.
    pub const LEFT_PINKY: usize = 17;
    /// Right pinky knuckle.
    pub const RIGHT_PINKY: usize = 18;
    /// Left index knuckle.
    pub const LEFT_INDEX: usize = 19;
    /// Right index knuckle.
    pub const RIGHT_INDEX: usize = 20;
    /// Left thumb.
    pub const LEFT_THUMB: usize = 21;
    /// Right thumb.
    pub const RIGHT_THUMB: usize = 22;
    /// Left hip joint.
    pub const LEFT_HIP: usize = 23;
    /// Right hip joint.
    pub const RIGHT_HIP: usize = 24;
    /// Left knee.
    pub const LEFT_KNEE: usize = 25;
    /// Right knee.
    pub const RIGHT_KNEE: usize = 26;
    /// Left ankle.
    pub const LEFT_ANKLE: usize = 27;
    /// Right ankle.
    pub const RIGHT_ANKLE: usize = 28;
    /// Left heel.
    pub const LEFT_HEEL: usize = 29;
    /// Right heel.
    pub const RIGHT_HEEL: usize = 30;
    /// Tip of the left foot (big toe side).
    pub const LEFT_FOOT_INDEX: usize = 31;
    /// Tip of the right foot (big toe side).
    pub const RIGHT_FOOT_INDEX: usize = 32;
}

use landmark::*;

/// The skeleton's edges, as MediaPipe's `POSE_CONNECTIONS`: pairs of landmark indices
/// to draw a line between.
///
/// ```
/// use poselink_hal::synthetic::{landmark, POSE_CONNECTIONS};
///
/// assert!(POSE_CONNECTIONS.contains(&(landmark::LEFT_SHOULDER, landmark::LEFT_ELBOW)));
/// assert!(POSE_CONNECTIONS.iter().all(|&(a, b)| a < 33 && b < 33 && a != b));
/// ```
pub const POSE_CONNECTIONS: [(usize, usize); 35] = [
    (NOSE, LEFT_EYE_INNER),
    (LEFT_EYE_INNER, LEFT_EYE),
    (LEFT_EYE, LEFT_EYE_OUTER),
    (LEFT_EYE_OUTER, LEFT_EAR),
    (NOSE, RIGHT_EYE_INNER),
    (RIGHT_EYE_INNER, RIGHT_EYE),
    (RIGHT_EYE, RIGHT_EYE_OUTER),
    (RIGHT_EYE_OUTER, RIGHT_EAR),
    (MOUTH_LEFT, MOUTH_RIGHT),
    (LEFT_SHOULDER, RIGHT_SHOULDER),
    (LEFT_SHOULDER, LEFT_ELBOW),
    (LEFT_ELBOW, LEFT_WRIST),
    (LEFT_WRIST, LEFT_PINKY),
    (LEFT_WRIST, LEFT_INDEX),
    (LEFT_WRIST, LEFT_THUMB),
    (LEFT_PINKY, LEFT_INDEX),
    (RIGHT_SHOULDER, RIGHT_ELBOW),
    (RIGHT_ELBOW, RIGHT_WRIST),
    (RIGHT_WRIST, RIGHT_PINKY),
    (RIGHT_WRIST, RIGHT_INDEX),
    (RIGHT_WRIST, RIGHT_THUMB),
    (RIGHT_PINKY, RIGHT_INDEX),
    (LEFT_SHOULDER, LEFT_HIP),
    (RIGHT_SHOULDER, RIGHT_HIP),
    (LEFT_HIP, RIGHT_HIP),
    (LEFT_HIP, LEFT_KNEE),
    (RIGHT_HIP, RIGHT_KNEE),
    (LEFT_KNEE, LEFT_ANKLE),
    (RIGHT_KNEE, RIGHT_ANKLE),
    (LEFT_ANKLE, LEFT_HEEL),
    (RIGHT_ANKLE, RIGHT_HEEL),
    (LEFT_HEEL, LEFT_FOOT_INDEX),
    (RIGHT_HEEL, RIGHT_FOOT_INDEX),
    (LEFT_ANKLE, LEFT_FOOT_INDEX),
    (RIGHT_ANKLE, RIGHT_FOOT_INDEX),
];

/// Width divided by height of the simulated camera frame (4:3).
///
/// `x` is a fraction of the width and `y` of the height, so a distance in pixels is
/// `hypot(dx × width, dy × height)`; with this aspect, `hypot(dx, dy / FRAME_ASPECT)`
/// in units of the width.
pub const FRAME_ASPECT: f32 = 4.0 / 3.0;

/// What the synthetic person does.
///
/// ```
/// use poselink_hal::Motion;
///
/// assert_eq!(Motion::default(), Motion::Mixed);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Motion {
    /// Walking across the frame and back.
    Walk,
    /// Standing and waving the right hand.
    Wave,
    /// Alternating walking (6 s) and waving (4 s), with 1 s smooth blends.
    #[default]
    Mixed,
}

/// Settings of a [`SyntheticPose`].
///
/// ```
/// use poselink_hal::{Motion, SyntheticConfig};
///
/// let config = SyntheticConfig { seed: 7, motion: Motion::Wave, ..SyntheticConfig::default() };
/// assert_eq!(config.fps, 30.0);
/// assert_eq!(config.jitter, 0.002);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Seed of the noise and of the person's proportions and phases: the same seed
    /// gives the same frames.
    pub seed: u64,
    /// Frames per second: each frame advances time by `1 / fps`. Default 30. A value
    /// that is not finite and positive is replaced by the default.
    pub fps: f32,
    /// What the person does. Default [`Motion::Mixed`].
    pub motion: Motion,
    /// Standard deviation of the white Gaussian noise added to every `x`, `y` and `z`,
    /// in normalised units. Default 0.002 (about a pixel in 480p). A value that is
    /// not finite or is negative is replaced by 0 (no noise).
    pub jitter: f32,
    /// Capture timestamp of the first frame, in microseconds.
    pub start_ts_us: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            fps: 30.0,
            motion: Motion::Mixed,
            jitter: 0.002,
            start_ts_us: 0,
        }
    }
}

/// A synthetic person moving in front of a camera, as a [`PoseSource`].
///
/// Frame `k` is stamped `start_ts_us + round(k × 1 000 000 / fps)`. The source does
/// not pace itself: `next_pose` returns at once and never fails.
///
/// ```
/// use poselink_hal::synthetic::landmark;
/// use poselink_hal::{Motion, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};
///
/// let config = SyntheticConfig { seed: 42, motion: Motion::Walk, ..Default::default() };
/// let mut source = SyntheticPose::new(config);
/// let mut sample = PoseSample::zeroed();
/// for _ in 0..30 {
///     source.next_pose(&mut sample).unwrap();
/// }
/// assert_eq!(sample.capture_ts_us, 966_667); // frame 29 at 30 fps
///
/// let [_, shoulder_y, ..] = sample.landmarks[landmark::LEFT_SHOULDER];
/// let [_, hip_y, ..] = sample.landmarks[landmark::LEFT_HIP];
/// assert!(shoulder_y < hip_y); // y grows downwards
///
/// // The same seed gives the same frames.
/// let mut again = SyntheticPose::new(config);
/// let mut first = PoseSample::zeroed();
/// again.next_pose(&mut first).unwrap();
/// let mut other = SyntheticPose::new(config);
/// let mut second = PoseSample::zeroed();
/// other.next_pose(&mut second).unwrap();
/// assert_eq!(first, second);
/// ```
#[derive(Clone, Debug)]
pub struct SyntheticPose {
    config: SyntheticConfig,
    person: Person,
    rng: Pcg32,
    position_noise: Normal<f32>,
    score_noise: Normal<f32>,
    frame: u64,
    /// Seconds spent walking so far: drives the drift across the frame, which
    /// pauses while the person waves.
    walk_time_s: f64,
}

/// Per-seed traits of the person.
#[derive(Clone, Copy, Debug)]
struct Person {
    /// Body size relative to the 1.75 m model.
    scale: f32,
    /// +1 to start walking towards image right, -1 towards the left.
    drift_sign: f32,
    /// Gait phase at time zero.
    gait_phase: f32,
    /// Phases of the slow head and body movements.
    slow_phase: [f32; 4],
    /// Phase and frequency (Hz) of each landmark's slow score variation.
    score_phase: [f32; LANDMARK_COUNT],
    score_hz: [f32; LANDMARK_COUNT],
}

// ---------------------------------------------------------------------------------
// Model constants (metres, before the per-seed scale).

const HIP_HEIGHT: f32 = 0.95;
const HIP_HALF_WIDTH: f32 = 0.09;
const THIGH: f32 = 0.44;
const SHIN: f32 = 0.43;
const SPINE: f32 = 0.50;
const SHOULDER_HALF_WIDTH: f32 = 0.19;
const NECK: f32 = 0.08;
const HEAD_CENTRE: f32 = 0.11;
const UPPER_ARM: f32 = 0.29;
const FOREARM: f32 = 0.26;
const EAR_HALF_WIDTH: f32 = 0.075;
const TORSO_HALF_DEPTH: f32 = 0.10;

/// Camera: distance to the person's nominal position, height, and focal length as a
/// fraction of the frame height (the frame is 4:3, so the horizontal one is 3/4 of it).
const CAMERA_DISTANCE: f32 = 4.0;
const CAMERA_HEIGHT: f32 = 1.0;
const FOCAL_Y: f32 = 1.14;
const FOCAL_X: f32 = FOCAL_Y / FRAME_ASPECT;

const GAIT_HZ: f64 = 1.0;
const WAVE_HZ: f64 = 2.0;
/// Round trip across the frame while walking, in seconds of walking.
const DRIFT_PERIOD_S: f64 = 24.0;
const DRIFT_AMPLITUDE: f32 = 0.9;
const DRIFT_DEPTH: f32 = 0.15;
const WALK_YAW: f32 = 35.0 * DEG;
/// Mixed motion schedule, seconds: walk, blend, wave, blend.
const MIXED_WALK_S: f64 = 6.0;
const MIXED_BLEND_S: f64 = 1.0;
const MIXED_WAVE_S: f64 = 4.0;
const MIXED_PERIOD_S: f64 = MIXED_WALK_S + MIXED_BLEND_S + MIXED_WAVE_S + MIXED_BLEND_S;

const DEG: f32 = PI / 180.0;
const SCORE_NOISE: f32 = 0.003;
const SCORE_MAX: f32 = 0.9999;
const COORD_MIN: f32 = -1.0;
const COORD_MAX: f32 = 2.0;

/// Base visibility of each landmark when in plain view: pose estimators are surest
/// of the face and torso, least of the feet.
const BASE_VISIBILITY: [f32; LANDMARK_COUNT] = [
    0.997, 0.996, 0.996, 0.995, 0.996, 0.996, 0.995, 0.99, 0.99, 0.995, 0.995, // face
    0.996, 0.996, 0.99, 0.99, 0.985, 0.985, 0.975, 0.975, 0.978, 0.978, 0.978, 0.978, // arms
    0.994, 0.994, 0.985, 0.985, 0.978, 0.978, 0.972, 0.972, 0.972, 0.972, // legs
];

impl SyntheticPose {
    /// A new source; see [`SyntheticConfig`] for the settings.
    pub fn new(config: SyntheticConfig) -> Self {
        let mut config = config;
        if !(config.fps.is_finite() && config.fps > 0.0) {
            log::warn!(
                "synthetic pose: fps {} is not a positive number, using 30",
                config.fps
            );
            config.fps = SyntheticConfig::default().fps;
        }
        if !(config.jitter.is_finite() && config.jitter >= 0.0) {
            log::warn!(
                "synthetic pose: jitter {} is not a non-negative number, using 0",
                config.jitter
            );
            config.jitter = 0.0;
        }
        let mut rng = Pcg32::seed_from_u64(config.seed);
        let uniform = |rng: &mut Pcg32, lo: f32, hi: f32| {
            // 24 random bits give a uniform f32 in [0, 1) exactly.
            let unit = (rand::Rng::next_u32(rng) >> 8) as f32 / (1u32 << 24) as f32;
            lo + (hi - lo) * unit
        };
        let scale = uniform(&mut rng, 0.95, 1.05);
        let drift_sign = if uniform(&mut rng, 0.0, 1.0) < 0.5 {
            1.0
        } else {
            -1.0
        };
        let gait_phase = uniform(&mut rng, 0.0, TAU);
        let mut slow_phase = [0.0; 4];
        for p in &mut slow_phase {
            *p = uniform(&mut rng, 0.0, TAU);
        }
        let mut score_phase = [0.0; LANDMARK_COUNT];
        let mut score_hz = [0.0; LANDMARK_COUNT];
        for i in 0..LANDMARK_COUNT {
            score_phase[i] = uniform(&mut rng, 0.0, TAU);
            score_hz[i] = uniform(&mut rng, 0.05, 0.25);
        }
        let person = Person {
            scale,
            drift_sign,
            gait_phase,
            slow_phase,
            score_phase,
            score_hz,
        };
        // Both standard deviations are finite, which is all `Normal::new` checks.
        let position_noise = Normal::new(0.0, config.jitter).expect("finite jitter");
        let score_noise = Normal::new(0.0, SCORE_NOISE).expect("finite constant");
        Self {
            config,
            person,
            rng,
            position_noise,
            score_noise,
            frame: 0,
            walk_time_s: 0.0,
        }
    }

    /// The settings in use (after replacing invalid values by their defaults).
    pub fn config(&self) -> &SyntheticConfig {
        &self.config
    }

    /// How many frames have been produced so far.
    pub fn frames_produced(&self) -> u64 {
        self.frame
    }

    /// Weight of the wave pose at time `t` (0 walking, 1 waving).
    fn wave_weight(&self, t: f64) -> f32 {
        match self.config.motion {
            Motion::Walk => 0.0,
            Motion::Wave => 1.0,
            Motion::Mixed => {
                let s = t.rem_euclid(MIXED_PERIOD_S);
                let up_start = MIXED_WALK_S;
                let down_start = MIXED_WALK_S + MIXED_BLEND_S + MIXED_WAVE_S;
                let w = if s < up_start {
                    0.0
                } else if s < up_start + MIXED_BLEND_S {
                    (s - up_start) / MIXED_BLEND_S
                } else if s < down_start {
                    1.0
                } else {
                    1.0 - (s - down_start) / MIXED_BLEND_S
                };
                smootherstep(w as f32)
            }
        }
    }
}

impl PoseSource for SyntheticPose {
    type Error = core::convert::Infallible;

    fn next_pose(&mut self, out: &mut PoseSample) -> Result<(), Self::Error> {
        let fps = f64::from(self.config.fps);
        let t = self.frame as f64 / fps;
        let offset_us = (self.frame as f64 * 1_000_000.0 / fps).round() as u64;
        out.capture_ts_us = self.config.start_ts_us.saturating_add(offset_us);

        let wave = self.wave_weight(t);
        let skeleton = pose_at(&self.person, t, self.walk_time_s, wave);
        let mut scores = [[0.0f32; 2]; LANDMARK_COUNT];
        visibility_targets(&skeleton, &mut scores);

        for (i, lm) in out.landmarks.iter_mut().enumerate() {
            let [x, y, z] = skeleton.image[i];
            let nx = self.position_noise.sample(&mut self.rng);
            let ny = self.position_noise.sample(&mut self.rng);
            let nz = self.position_noise.sample(&mut self.rng);
            let nv = self.score_noise.sample(&mut self.rng);
            let np = self.score_noise.sample(&mut self.rng);
            let slow = cycle(
                t,
                f64::from(self.person.score_hz[i]),
                self.person.score_phase[i],
            );
            let visibility = scores[i][0] + 0.006 * slow.sin() + nv;
            let presence = scores[i][1] + 0.0015 * (slow * 0.7).cos() + np;
            *lm = [
                (x + nx).clamp(COORD_MIN, COORD_MAX),
                (y + ny).clamp(COORD_MIN, COORD_MAX),
                (z + nz).clamp(COORD_MIN, COORD_MAX),
                visibility.clamp(0.0, SCORE_MAX),
                presence.clamp(0.0, SCORE_MAX),
            ];
        }

        self.walk_time_s += f64::from(1.0 - wave) / fps;
        self.frame += 1;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Small 3-D vector and rotation helpers.
//
// Body-local vectors are (left, up, forward) of the person; world vectors are
// (image right, up, away from the camera). Both use `V3`.

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct V3 {
    x: f32,
    y: f32,
    z: f32,
}

const fn v3(x: f32, y: f32, z: f32) -> V3 {
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
struct M3([V3; 3]);

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
fn limb_dir(side: f32, out: f32, fwd: f32) -> V3 {
    let (so, co) = out.sin_cos();
    let (sf, cf) = fwd.sin_cos();
    v3(side * so * cf, -co * cf, sf)
}

fn lerp(a: f32, b: f32, w: f32) -> f32 {
    a + (b - a) * w
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn smootherstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * t * (t * (6.0 * t - 15.0) + 10.0)
}

/// Phase in radians of an oscillation at `hz` at time `t`, plus `phase`; computed in
/// `f64` and reduced to one cycle, so it stays exact however long the stream runs.
fn cycle(t: f64, hz: f64, phase: f32) -> f32 {
    (t * hz).fract() as f32 * TAU + phase
}

/// `((1 + cos(p - centre)) / 2)^k`: a smooth periodic bump peaking at `centre`.
fn bump(p: f32, centre: f32, k: i32) -> f32 {
    ((1.0 + (p - centre).cos()) * 0.5).powi(k)
}

// ---------------------------------------------------------------------------------
// Joint angles.

/// The joint angles (radians) and pelvis offsets (metres) of one moment; index 0 of
/// each pair is the left side, 1 the right.
#[derive(Clone, Copy, Debug, Default)]
struct Angles {
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
fn walk_angles(person: &Person, t: f64) -> Angles {
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
fn wave_angles(person: &Person, t: f64) -> Angles {
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
struct Skeleton {
    /// World positions, metres: x to image right, y up, z away from the camera.
    world: [V3; LANDMARK_COUNT],
    /// Normalised image coordinates, before noise.
    image: [[f32; 3]; LANDMARK_COUNT],
    /// The body's heading, radians: 0 faces the camera, positive turns it towards
    /// image right.
    body_yaw: f32,
    scale: f32,
}

fn pose_at(person: &Person, t: f64, walk_time_s: f64, wave: f32) -> Skeleton {
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
fn body_local(a: &Angles) -> [V3; LANDMARK_COUNT] {
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
fn visibility_targets(sk: &Skeleton, out: &mut [[f32; 2]; LANDMARK_COUNT]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Motion; 3] = [Motion::Walk, Motion::Wave, Motion::Mixed];

    fn run(config: SyntheticConfig, frames: usize) -> Vec<PoseSample> {
        let mut source = SyntheticPose::new(config);
        let mut out = Vec::with_capacity(frames);
        let mut sample = PoseSample::zeroed();
        for _ in 0..frames {
            source.next_pose(&mut sample).unwrap();
            out.push(sample);
        }
        out
    }

    fn config(motion: Motion) -> SyntheticConfig {
        SyntheticConfig {
            seed: 1234,
            motion,
            ..SyntheticConfig::default()
        }
    }

    fn coord(sample: &PoseSample, i: usize, c: usize) -> f32 {
        sample.landmarks[i][c]
    }

    /// Distance between two landmarks in units of the frame width (x, y and z).
    fn dist(sample: &PoseSample, a: usize, b: usize) -> f32 {
        let [ax, ay, az] = sample.position(a);
        let [bx, by, bz] = sample.position(b);
        let dy = (ay - by) / FRAME_ASPECT;
        ((ax - bx).powi(2) + dy.powi(2) + (az - bz).powi(2)).sqrt()
    }

    fn range(values: impl Iterator<Item = f32>) -> f32 {
        let (lo, hi) = values.fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        hi - lo
    }

    #[test]
    fn same_seed_same_frames_other_seed_other_frames() {
        for motion in ALL {
            let a = run(config(motion), 300);
            let b = run(config(motion), 300);
            assert_eq!(a, b, "{motion:?}");
            let c = run(
                SyntheticConfig {
                    seed: 99,
                    ..config(motion)
                },
                300,
            );
            assert_ne!(a, c, "{motion:?}");
        }
    }

    #[test]
    fn timestamps_follow_fps() {
        let frames = run(
            SyntheticConfig {
                fps: 60.0,
                start_ts_us: 1_000,
                ..config(Motion::Walk)
            },
            121,
        );
        for (k, f) in frames.iter().enumerate() {
            let expected = 1_000 + (k as f64 * 1_000_000.0 / 60.0).round() as u64;
            assert_eq!(f.capture_ts_us, expected);
        }
        assert_eq!(frames[120].capture_ts_us, 2_001_000);
    }

    #[test]
    fn invalid_settings_are_replaced() {
        let source = SyntheticPose::new(SyntheticConfig {
            fps: f32::NAN,
            jitter: -1.0,
            ..SyntheticConfig::default()
        });
        assert_eq!(source.config().fps, 30.0);
        assert_eq!(source.config().jitter, 0.0);
    }

    #[test]
    fn sixty_seconds_of_every_motion_stay_finite_and_in_range() {
        for motion in ALL {
            let frames = run(config(motion), 60 * 30);
            for (k, f) in frames.iter().enumerate() {
                for (i, lm) in f.landmarks.iter().enumerate() {
                    assert!(
                        lm.iter().all(|v| v.is_finite()),
                        "{motion:?} frame {k} lm {i}"
                    );
                    for &c in &lm[..3] {
                        assert!((-1.0..=2.0).contains(&c), "{motion:?} {k} {i}: {lm:?}");
                    }
                    // The whole person stays in the frame.
                    assert!((0.0..=1.0).contains(&lm[0]), "{motion:?} {k} {i}: {lm:?}");
                    assert!((0.0..=1.0).contains(&lm[1]), "{motion:?} {k} {i}: {lm:?}");
                    assert!(lm[2].abs() < 0.5, "{motion:?} {k} {i}: {lm:?}");
                    for &score in &lm[3..] {
                        assert!((0.0..=1.0).contains(&score), "{motion:?} {k} {i}: {lm:?}");
                    }
                }
                // The person fills roughly the middle half of the frame height.
                let height = range(f.landmarks.iter().map(|lm| lm[1]));
                assert!((0.35..=0.65).contains(&height), "{motion:?} {k}: {height}");
            }
        }
    }

    #[test]
    fn out_of_range_noise_is_clamped() {
        let frames = run(
            SyntheticConfig {
                jitter: 10.0,
                ..config(Motion::Mixed)
            },
            100,
        );
        for f in &frames {
            for lm in &f.landmarks {
                assert!(lm[..3].iter().all(|c| (-1.0..=2.0).contains(c)));
            }
        }
    }

    /// The jitter estimated from second differences, pooled over every landmark and
    /// coordinate.
    fn second_difference_jitter(frames: &[PoseSample]) -> f64 {
        let mut sum = 0.0f64;
        let mut sum_sq = 0.0f64;
        let mut n = 0usize;
        for w in frames.windows(3) {
            for i in 0..LANDMARK_COUNT {
                for c in 0..3 {
                    let d2 = f64::from(coord(&w[2], i, c)) - 2.0 * f64::from(coord(&w[1], i, c))
                        + f64::from(coord(&w[0], i, c));
                    sum += d2;
                    sum_sq += d2 * d2;
                    n += 1;
                }
            }
        }
        let mean = sum / n as f64;
        (sum_sq / n as f64 - mean * mean).sqrt() / 6f64.sqrt()
    }

    #[test]
    fn second_differences_measure_the_configured_jitter() {
        for motion in ALL {
            for fps in [30.0, 60.0] {
                let frames = run(
                    SyntheticConfig {
                        fps,
                        ..config(motion)
                    },
                    20 * fps as usize,
                );
                let jitter = second_difference_jitter(&frames);
                assert!(
                    (0.0015..=0.0025).contains(&jitter),
                    "{motion:?} at {fps} fps: {jitter}"
                );
            }
        }
        // Without noise, the smooth motion alone is far below the noise level.
        let clean = run(
            SyntheticConfig {
                jitter: 0.0,
                ..config(Motion::Mixed)
            },
            600,
        );
        assert!(second_difference_jitter(&clean) < 0.0007);
    }

    #[test]
    fn noise_is_white_gaussian_of_the_configured_size() {
        // Same seed, no jitter: the same smooth trajectory and the same random
        // stream, so the difference is exactly the added noise.
        let noisy = run(config(Motion::Mixed), 900);
        let clean = run(
            SyntheticConfig {
                jitter: 0.0,
                ..config(Motion::Mixed)
            },
            900,
        );
        let mut noise = Vec::new();
        for (a, b) in noisy.iter().zip(&clean) {
            for i in 0..LANDMARK_COUNT {
                for c in 0..3 {
                    noise.push(f64::from(coord(a, i, c)) - f64::from(coord(b, i, c)));
                }
            }
            // Scores do not depend on the jitter.
            for i in 0..LANDMARK_COUNT {
                assert_eq!(a.landmarks[i][3..], b.landmarks[i][3..]);
            }
        }
        let n = noise.len() as f64;
        let mean = noise.iter().sum::<f64>() / n;
        let std = (noise.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.0001, "mean {mean}");
        assert!((std - 0.002).abs() < 0.0001, "std {std}");
        // White: successive frames' noise of the same coordinate is uncorrelated.
        let per_frame = LANDMARK_COUNT * 3;
        let mut lag1 = 0.0;
        for k in per_frame..noise.len() {
            lag1 += (noise[k] - mean) * (noise[k - per_frame] - mean);
        }
        let corr = lag1 / (noise.len() - per_frame) as f64 / (std * std);
        assert!(corr.abs() < 0.05, "lag-1 correlation {corr}");
        // Gaussian: about 68 % within one σ and 99.7 % within three.
        let within =
            |k: f64| noise.iter().filter(|v| (*v - mean).abs() < k * std).count() as f64 / n;
        assert!((within(1.0) - 0.6827).abs() < 0.01);
        assert!((within(3.0) - 0.9973).abs() < 0.002);
    }

    #[test]
    fn the_waving_wrist_moves_and_the_hips_move_less() {
        let frames = run(config(Motion::Wave), 60);
        let wrist_x = range(frames.iter().map(|f| coord(f, RIGHT_WRIST, 0)));
        assert!(wrist_x > 0.05, "waving wrist x range {wrist_x}");
        for hip in [LEFT_HIP, RIGHT_HIP] {
            let hip_x = range(frames.iter().map(|f| coord(f, hip, 0)));
            let hip_y = range(frames.iter().map(|f| coord(f, hip, 1)));
            assert!(hip_x < wrist_x / 2.0, "hip x range {hip_x}");
            assert!(hip_y < wrist_x / 2.0, "hip y range {hip_y}");
        }
        // The waving hand is up (above the shoulder), the other one down (below the hip
        // line is not required, but below the elbow).
        for f in &frames {
            assert!(coord(f, RIGHT_WRIST, 1) < coord(f, RIGHT_SHOULDER, 1));
            assert!(coord(f, RIGHT_INDEX, 1) < coord(f, RIGHT_WRIST, 1));
            assert!(coord(f, LEFT_WRIST, 1) > coord(f, LEFT_ELBOW, 1));
        }
        // About two waves a second: count direction reversals of the clean wrist x.
        let clean = run(
            SyntheticConfig {
                jitter: 0.0,
                ..config(Motion::Wave)
            },
            90,
        );
        let xs: Vec<f32> = clean.iter().map(|f| coord(f, RIGHT_WRIST, 0)).collect();
        let reversals = xs
            .windows(3)
            .filter(|w| (w[1] - w[0]) * (w[2] - w[1]) < 0.0)
            .count();
        assert!(
            (11..=13).contains(&reversals),
            "{reversals} reversals in 3 s"
        );
    }

    #[test]
    fn walking_swings_arms_against_legs_and_drifts() {
        let frames = run(
            SyntheticConfig {
                jitter: 0.0,
                ..config(Motion::Walk)
            },
            24 * 30,
        );
        // Over two seconds, both wrists and both ankles move a fair amount relative
        // to the hips.
        let rel = |f: &PoseSample, i: usize| {
            coord(f, i, 2) - (coord(f, LEFT_HIP, 2) + coord(f, RIGHT_HIP, 2)) / 2.0
        };
        for i in [LEFT_WRIST, RIGHT_WRIST, LEFT_ANKLE, RIGHT_ANKLE] {
            let r = range(frames[..60].iter().map(|f| rel(f, i)));
            assert!(r > 0.04, "landmark {i} depth range {r}");
        }
        // The left arm is in front (smaller depth) when the left leg is behind,
        // so their depths are anti-correlated once the slow changes of the body's
        // heading are taken out (a moving average over one gait cycle).
        let swing = |i: usize| -> Vec<f32> {
            let raw: Vec<f32> = frames.iter().map(|f| rel(f, i)).collect();
            (15..raw.len() - 15)
                .map(|k| raw[k] - raw[k - 15..k + 15].iter().sum::<f32>() / 30.0)
                .collect()
        };
        let a = swing(LEFT_WRIST);
        let b = swing(LEFT_KNEE);
        assert!(correlation(&a, &b) < -0.5, "{}", correlation(&a, &b));
        // The body crosses a good part of the frame and comes back.
        let hip_x: Vec<f32> = frames
            .iter()
            .map(|f| (coord(f, LEFT_HIP, 0) + coord(f, RIGHT_HIP, 0)) / 2.0)
            .collect();
        let span = range(hip_x.iter().copied());
        assert!(span > 0.3, "drift span {span}");
        assert!((hip_x[0] - hip_x[hip_x.len() - 1]).abs() < 0.02);
        // A vertical bob of the pelvis, at twice the gait frequency.
        let hip_y = range(frames[..30].iter().map(|f| coord(f, LEFT_HIP, 1)));
        assert!((0.005..0.03).contains(&hip_y), "bob {hip_y}");
    }

    fn correlation(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len() as f32;
        let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
        let cov: f32 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f32 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f32 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn anatomy_is_plausible() {
        for motion in ALL {
            let frames = run(config(motion), 60 * 30);
            let widths: Vec<f32> = frames
                .iter()
                .map(|f| dist(f, LEFT_SHOULDER, RIGHT_SHOULDER))
                .collect();
            let mean = widths.iter().sum::<f32>() / widths.len() as f32;
            for (k, f) in frames.iter().enumerate() {
                for (s, h) in [(LEFT_SHOULDER, LEFT_HIP), (RIGHT_SHOULDER, RIGHT_HIP)] {
                    assert!(coord(f, s, 1) < coord(f, h, 1), "{motion:?} {k}");
                }
                assert!(coord(f, NOSE, 1) < coord(f, LEFT_SHOULDER, 1));
                assert!(coord(f, LEFT_EYE, 1) < coord(f, MOUTH_LEFT, 1));
                for (h, kn, an) in [
                    (LEFT_HIP, LEFT_KNEE, LEFT_ANKLE),
                    (RIGHT_HIP, RIGHT_KNEE, RIGHT_ANKLE),
                ] {
                    assert!(coord(f, h, 1) < coord(f, kn, 1), "{motion:?} {k}");
                    assert!(coord(f, kn, 1) < coord(f, an, 1), "{motion:?} {k}");
                }
                // The shoulder width, averaged over 0.3 s to take out the noise, stays
                // within 20 % of its mean; what changes it is the perspective of the
                // body turning and moving off the camera's axis, and the drift in depth.
                let window = &widths[k.saturating_sub(4)..(k + 5).min(widths.len())];
                let smooth = window.iter().sum::<f32>() / window.len() as f32;
                assert!(
                    (smooth - mean).abs() < 0.2 * mean,
                    "{motion:?} {k}: width {smooth} mean {mean}"
                );
                // Frame by frame, noise included, within 30 %.
                assert!(
                    (widths[k] - mean).abs() < 0.3 * mean,
                    "{motion:?} {k}: width {} mean {mean}",
                    widths[k]
                );
            }
            // Bone lengths hold within 25 % (again over 0.3 s): the noise and the
            // perspective of a bone turning in depth change them, the swinging shin
            // by up to 19 %.
            for (a, b) in [
                (RIGHT_SHOULDER, RIGHT_ELBOW),
                (LEFT_ELBOW, LEFT_WRIST),
                (LEFT_HIP, LEFT_KNEE),
                (RIGHT_KNEE, RIGHT_ANKLE),
            ] {
                let lengths: Vec<f32> = frames.iter().map(|f| dist(f, a, b)).collect();
                let mean = lengths.iter().sum::<f32>() / lengths.len() as f32;
                for k in 0..lengths.len() {
                    let window = &lengths[k.saturating_sub(4)..(k + 5).min(lengths.len())];
                    let d = window.iter().sum::<f32>() / window.len() as f32;
                    assert!(
                        (d - mean).abs() < 0.25 * mean,
                        "{motion:?} {k}: {a}-{b} {d} vs {mean}"
                    );
                }
            }
        }
        // Facing the camera, the person's left is on the image's right.
        let f = run(config(Motion::Wave), 1)[0];
        assert!(coord(&f, LEFT_SHOULDER, 0) > coord(&f, RIGHT_SHOULDER, 0));
        assert!(coord(&f, LEFT_EAR, 0) > coord(&f, NOSE, 0));
        assert!(coord(&f, NOSE, 0) > coord(&f, RIGHT_EAR, 0));
        // The nose is in front of the ears (nearer the camera).
        assert!(coord(&f, NOSE, 2) < coord(&f, LEFT_EAR, 2));
    }

    #[test]
    fn turning_away_lowers_the_far_side_visibility() {
        let frames = run(config(Motion::Walk), 24 * 30);
        let hip_x: Vec<f32> = frames
            .iter()
            .map(|f| (coord(f, LEFT_HIP, 0) + coord(f, RIGHT_HIP, 0)) / 2.0)
            .collect();
        // Walking towards image right the person's left side is at the back, and the
        // other way round.
        let (mut right_moving, mut left_moving) = ([0.0f32; 2], [0.0f32; 2]);
        let (mut nr, mut nl) = (0, 0);
        for k in 15..frames.len() - 15 {
            let v = hip_x[k + 15] - hip_x[k - 15];
            let ears = [
                frames[k].landmarks[LEFT_EAR][3],
                frames[k].landmarks[RIGHT_EAR][3],
            ];
            if v > 0.03 {
                right_moving[0] += ears[0];
                right_moving[1] += ears[1];
                nr += 1;
            } else if v < -0.03 {
                left_moving[0] += ears[0];
                left_moving[1] += ears[1];
                nl += 1;
            }
        }
        assert!(nr > 60 && nl > 60);
        let r = [right_moving[0] / nr as f32, right_moving[1] / nr as f32];
        let l = [left_moving[0] / nl as f32, left_moving[1] / nl as f32];
        assert!(r[0] < r[1] - 0.1, "moving right: ears {r:?}");
        assert!(l[1] < l[0] - 0.1, "moving left: ears {l:?}");

        for f in &frames {
            for lm in &f.landmarks {
                assert!((0.0..=1.0).contains(&lm[3]) && (0.0..=1.0).contains(&lm[4]));
            }
            // The nose and the near shoulder stay clearly visible.
            assert!(f.landmarks[NOSE][3] > 0.95);
            assert!(f.landmarks[LEFT_SHOULDER][3].max(f.landmarks[RIGHT_SHOULDER][3]) > 0.95);
        }
    }

    #[test]
    fn visible_points_score_high_and_vary_a_little() {
        // Waving towards the camera, nothing is hidden.
        let frames = run(config(Motion::Wave), 10 * 30);
        for i in 0..LANDMARK_COUNT {
            let vis: Vec<f32> = frames.iter().map(|f| f.landmarks[i][3]).collect();
            let pres: Vec<f32> = frames.iter().map(|f| f.landmarks[i][4]).collect();
            for v in vis.iter().chain(&pres) {
                assert!((0.95..=0.9999).contains(v), "landmark {i}: {v}");
            }
            assert!(
                range(vis.iter().copied()) > 0.005,
                "landmark {i} never varies"
            );
        }
    }

    #[test]
    fn mixed_motion_alternates_and_blends_smoothly() {
        let frames = run(
            SyntheticConfig {
                jitter: 0.0,
                ..config(Motion::Mixed)
            },
            36 * 30,
        );
        // Waving: the right wrist is above the right shoulder; walking: below.
        let raised: Vec<bool> = frames
            .iter()
            .map(|f| coord(f, RIGHT_WRIST, 1) < coord(f, RIGHT_SHOULDER, 1))
            .collect();
        let switches = raised.windows(2).filter(|w| w[0] != w[1]).count();
        assert_eq!(switches, 6, "three wave episodes in 36 s");
        assert!(!raised[0] && raised[(8.5 * 30.0) as usize]);
        // No jumps: at 30 fps nothing moves more than 5 % of the frame per frame,
        // including through the blends (the waving hand itself moves up to 2 %).
        for w in frames.windows(2) {
            for i in 0..LANDMARK_COUNT {
                for c in 0..3 {
                    let step = (coord(&w[1], i, c) - coord(&w[0], i, c)).abs();
                    assert!(step < 0.05, "landmark {i} coord {c} jumped {step}");
                }
            }
        }
    }
}
