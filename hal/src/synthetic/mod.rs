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

use core::f32::consts::TAU;

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rand_pcg::Pcg32;

use crate::pose::{LANDMARK_COUNT, PoseSample, PoseSource};

mod kinematics;
use kinematics::*;

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
