//! Real human motion for the pose codec's size and error checks: public motion-capture
//! recordings (BVH files) played through forward kinematics, mapped onto the 33
//! BlazePose landmarks, seen by a fixed camera, and given BlazePose-like estimator
//! noise. Shared by `benches/codec.rs` and `tests/protocol/real_motion.rs`.
//!
//! **The recordings** are the two BVH files that the `bvhtoolbox` package (MIT) ships
//! as test data on PyPI: `test_mocapbank.bvh` (455 frames, 30 fps, an 18-joint
//! optical-mocap skeleton, a person walking and gesturing) and `test_freebvh.bvh`
//! (69 frames, 30 fps, a 54-joint Mixamo skeleton with fingers and toes). They are
//! not committed (their origin's terms are not stated in the package):
//! `scripts/fetch-motion.sh` downloads the package once into `target/motion/`,
//! checks its SHA-256 and extracts the two files; [`load`] runs it when they are
//! missing.
//!
//! **The mapping** to BlazePose's 33 landmarks: shoulders, elbows, wrists, hips,
//! knees and ankles are the skeleton's joints (mocapbank: `LeftShoulder`,
//! `LeftElbow`, `LeftWrist`, `LeftHip`, `LeftKnee`, `LeftAnkle`; Mixamo: `LeftArm`,
//! `LeftForeArm`, `LeftHand`, `LeftUpLeg`, `LeftLeg`, `LeftFoot`; the same on the
//! right). Landmarks the skeletons lack are fixed offsets in the frame of the joint
//! that carries them, so they turn with it: the nose, eyes (inner, centre, outer),
//! ears and mouth corners from `Head`; pinky, index and thumb tips from the wrist;
//! heel and foot index (toe tip) from the ankle (see [`LANDMARKS`]). Every skeleton
//! is scaled to 1.70 m.
//!
//! **The camera**: pinhole, fixed, 1.0 m above the floor, facing the recording's
//! mean position from far enough that the whole path stays in the picture; focal
//! length 1.3 image widths (a 1.70 m person at 4 m fills about half the height).
//! x, y are the normalised image coordinates; z is the depth relative to the hip
//! midpoint on x's scale, as BlazePose gives it.
//!
//! **The estimator noise**, per landmark and frame, independent: Gaussian jitter
//! of 5 mm (σ) on x and y and 15 mm on z at the subject's distance; visibility
//! 0.98 ± 0.01 and presence 0.995 ± 0.003 (clipped to 1); and visibility drops —
//! each frame each landmark has a 0.3 % chance of being lost for 10 to 40 frames,
//! with visibility near 0.2 and three times the jitter meanwhile. That is
//! [`Output::Raw`], what MediaPipe gives with its smoothing off. Capture apps get
//! [`Output::Smoothed`] by default (video and live-stream modes): the same
//! estimates through MediaPipe's own landmark filters ([`Smoother`]).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use poselink::proto::PoseFrame;

/// A recording: name and BVH file name under `target/motion/`.
pub const RECORDINGS: [(&str, &str); 2] = [
    ("mocapbank", "test_mocapbank.bvh"),
    ("freebvh-mixamo", "test_freebvh.bvh"),
];

/// The directory the fetch script fills.
pub fn motion_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/motion")
}

/// Loads recording `file` (fetching the recordings first if they are missing) and
/// returns its poses as BlazePose frames with estimator noise from `seed`, played
/// forward and backward until `frames` frames at the recording's rate.
pub fn load(file: &str, frames: usize, seed: u64, output: Output) -> Vec<PoseFrame> {
    let path = motion_dir().join(file);
    // One fetch at a time: the tests that load recordings run on several threads.
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _fetching = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-motion.sh");
        let ok = std::process::Command::new("sh")
            .arg(&script)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "could not fetch the motion recordings: run {script:?}");
    }
    let text = std::fs::read_to_string(&path).expect("read the BVH file");
    let bvh = Bvh::parse(&text);
    let clean = bvh.landmark_track();
    let mut noise = Noise::new(seed);
    let mut smoother = Smoother::new(1.0 / bvh.frame_time);
    let n = clean.len();
    (0..frames)
        .map(|i| {
            // Ping-pong: forward, then backward, so the motion stays continuous.
            let period = 2 * (n - 1);
            let k = i % period;
            let k = if k < n { k } else { period - k };
            let mut f = PoseFrame::zeroed();
            f.seq = i as u32 + 1;
            f.capture_ts_us = (i as f64 * bvh.frame_time * 1e6) as u64;
            let mut raw = [[0.0f32; 5]; 33];
            for (j, v) in raw.iter_mut().enumerate() {
                let [x, y, z] = clean[k][j];
                *v = noise.apply(j, x, y, z);
            }
            if output == Output::Smoothed {
                smoother.apply(&mut raw);
            }
            for (lm, v) in f.landmarks.iter_mut().zip(&raw) {
                lm.x = v[0];
                lm.y = v[1];
                lm.z = v[2];
                lm.visibility = v[3];
                lm.presence = v[4];
            }
            f
        })
        .collect()
}

/// What the estimator hands the capture app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The per-frame estimates with their noise (MediaPipe with smoothing off).
    Raw,
    /// After MediaPipe's landmark smoothing (its default in video and live-stream
    /// modes): see [`Smoother`].
    Smoothed,
}

/// MediaPipe Pose's landmark smoothing as its pose-landmark graph configures it: a
/// one-euro filter per coordinate (min cutoff 0.05 Hz, beta 80, derivative cutoff
/// 1 Hz, the derivative taken from raw values) on values divided by the body's
/// scale (the mean of its landmarks' box width and height), and an exponential
/// low-pass filter (alpha 0.1) on visibility. Presence passes through.
pub struct Smoother {
    rate: f64,
    /// Per value: last raw value, filtered value, filtered derivative.
    state: Option<[[[f64; 3]; 3]; 33]>,
    vis: [f64; 33],
}

impl Smoother {
    /// A smoother for frames at `rate` per second.
    pub fn new(rate: f64) -> Self {
        Smoother {
            rate,
            state: None,
            vis: [0.0; 33],
        }
    }

    fn alpha(&self, cutoff: f64) -> f64 {
        let tau = 1.0 / (std::f64::consts::TAU * cutoff);
        1.0 / (1.0 + tau * self.rate)
    }

    /// Filters one frame of (x, y, z, visibility, presence) in place.
    pub fn apply(&mut self, v: &mut [[f32; 5]; 33]) {
        let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
        for l in v.iter() {
            for k in 0..2 {
                lo[k] = lo[k].min(l[k] as f64);
                hi[k] = hi[k].max(l[k] as f64);
            }
        }
        let scale = ((hi[0] - lo[0]) + (hi[1] - lo[1])) / 2.0;
        let Some(state) = self.state.as_mut() else {
            let mut st = [[[0.0; 3]; 3]; 33];
            for (j, l) in v.iter().enumerate() {
                for k in 0..3 {
                    let x = l[k] as f64 / scale;
                    st[j][k] = [x, x, 0.0];
                }
                self.vis[j] = l[3] as f64;
            }
            self.state = Some(st);
            return;
        };
        let state = *state;
        let mut next = state;
        let alpha_d = self.alpha(1.0);
        for (j, l) in v.iter_mut().enumerate() {
            for k in 0..3 {
                let x = l[k] as f64 / scale;
                let [last_raw, last, last_d] = state[j][k];
                let d = (x - last_raw) * self.rate;
                let ed = last_d + alpha_d * (d - last_d);
                let cutoff = 0.05 + 80.0 * ed.abs();
                let y = last + self.alpha(cutoff) * (x - last);
                next[j][k] = [x, y, ed];
                l[k] = (y * scale) as f32;
            }
            self.vis[j] += 0.1 * (l[3] as f64 - self.vis[j]);
            l[3] = self.vis[j] as f32;
        }
        self.state = Some(next);
    }
}

/// Where a landmark comes from: candidate joint names (the first one the skeleton
/// has is used) and an offset in metres in that joint's frame, as (left, up,
/// forward) of the rest pose.
pub struct Source {
    /// Candidate joints.
    pub joints: &'static [&'static str],
    /// Offset from the joint: (left, up, forward), metres.
    pub offset: [f64; 3],
}

const fn at(joints: &'static [&'static str], offset: [f64; 3]) -> Source {
    Source { joints, offset }
}

const HEAD: &[&str] = &["Head", "mixamorig:Head"];
const L_WRIST: &[&str] = &["LeftWrist", "mixamorig:LeftHand"];
const R_WRIST: &[&str] = &["RightWrist", "mixamorig:RightHand"];
const L_ANKLE: &[&str] = &["LeftAnkle", "mixamorig:LeftFoot"];
const R_ANKLE: &[&str] = &["RightAnkle", "mixamorig:RightFoot"];

/// The 33 BlazePose landmarks in their order (0 nose … 32 right foot index).
/// Face offsets assume the `Head` joint at the base of the skull; a hand's tips lie
/// outward along the T-posed arm (left arm: +left).
pub const LANDMARKS: [Source; 33] = [
    at(HEAD, [0.0, 0.08, 0.10]),     // 0 nose
    at(HEAD, [0.015, 0.11, 0.085]),  // 1 left eye inner
    at(HEAD, [0.032, 0.11, 0.08]),   // 2 left eye
    at(HEAD, [0.048, 0.11, 0.07]),   // 3 left eye outer
    at(HEAD, [-0.015, 0.11, 0.085]), // 4 right eye inner
    at(HEAD, [-0.032, 0.11, 0.08]),  // 5 right eye
    at(HEAD, [-0.048, 0.11, 0.07]),  // 6 right eye outer
    at(HEAD, [0.075, 0.09, 0.0]),    // 7 left ear
    at(HEAD, [-0.075, 0.09, 0.0]),   // 8 right ear
    at(HEAD, [0.025, 0.04, 0.09]),   // 9 mouth left
    at(HEAD, [-0.025, 0.04, 0.09]),  // 10 mouth right
    at(&["LeftShoulder", "mixamorig:LeftArm"], [0.0; 3]),
    at(&["RightShoulder", "mixamorig:RightArm"], [0.0; 3]),
    at(&["LeftElbow", "mixamorig:LeftForeArm"], [0.0; 3]),
    at(&["RightElbow", "mixamorig:RightForeArm"], [0.0; 3]),
    at(L_WRIST, [0.0; 3]),              // 15 left wrist
    at(R_WRIST, [0.0; 3]),              // 16 right wrist
    at(L_WRIST, [0.075, 0.0, -0.025]),  // 17 left pinky
    at(R_WRIST, [-0.075, 0.0, -0.025]), // 18 right pinky
    at(L_WRIST, [0.09, 0.0, 0.02]),     // 19 left index
    at(R_WRIST, [-0.09, 0.0, 0.02]),    // 20 right index
    at(L_WRIST, [0.04, -0.01, 0.045]),  // 21 left thumb
    at(R_WRIST, [-0.04, -0.01, 0.045]), // 22 right thumb
    at(&["LeftHip", "mixamorig:LeftUpLeg"], [0.0; 3]),
    at(&["RightHip", "mixamorig:RightUpLeg"], [0.0; 3]),
    at(&["LeftKnee", "mixamorig:LeftLeg"], [0.0; 3]),
    at(&["RightKnee", "mixamorig:RightLeg"], [0.0; 3]),
    at(L_ANKLE, [0.0; 3]),            // 27 left ankle
    at(R_ANKLE, [0.0; 3]),            // 28 right ankle
    at(L_ANKLE, [0.0, -0.06, -0.05]), // 29 left heel
    at(R_ANKLE, [0.0, -0.06, -0.05]), // 30 right heel
    at(L_ANKLE, [0.0, -0.07, 0.15]),  // 31 left foot index
    at(R_ANKLE, [0.0, -0.07, 0.15]),  // 32 right foot index
];

type V3 = [f64; 3];
type M3 = [[f64; 3]; 3];

fn mul(a: &M3, b: &M3) -> M3 {
    let mut m = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

fn apply(a: &M3, v: V3) -> V3 {
    [0, 1, 2].map(|i| a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2])
}

fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn scale(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

fn rot(axis: u8, deg: f64) -> M3 {
    let (s, c) = deg.to_radians().sin_cos();
    match axis {
        b'X' => [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]],
        b'Y' => [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]],
        _ => [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]],
    }
}

const IDENTITY: M3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

struct Joint {
    name: String,
    parent: Option<usize>,
    offset: V3,
    /// Channel names ("Xposition", "Zrotation", …), in file order.
    channels: Vec<String>,
    /// Index of the joint's first channel in a motion line.
    first: usize,
}

/// A parsed BVH file: the hierarchy and the motion lines.
pub struct Bvh {
    joints: Vec<Joint>,
    frames: Vec<Vec<f64>>,
    /// Seconds per frame.
    pub frame_time: f64,
}

impl Bvh {
    /// Parses the text of a BVH file (panics on a malformed one: test data).
    pub fn parse(text: &str) -> Bvh {
        let mut joints: Vec<Joint> = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        let mut last: Option<usize> = None;
        let mut channel_count = 0;
        let mut tok = text.split_whitespace().peekable();
        while let Some(t) = tok.next() {
            match t {
                "ROOT" | "JOINT" | "End" => {
                    let name = tok.next().unwrap().to_string();
                    let name = if t == "End" {
                        format!("{}:end", joints[*stack.last().unwrap()].name)
                    } else {
                        name
                    };
                    joints.push(Joint {
                        name,
                        parent: stack.last().copied(),
                        offset: [0.0; 3],
                        channels: Vec::new(),
                        first: channel_count,
                    });
                    last = Some(joints.len() - 1);
                }
                "{" => stack.push(last.unwrap()),
                "}" => {
                    stack.pop();
                }
                "OFFSET" => {
                    let j = last.unwrap();
                    for k in 0..3 {
                        joints[j].offset[k] = tok.next().unwrap().parse().unwrap();
                    }
                }
                "CHANNELS" => {
                    let j = last.unwrap();
                    let n: usize = tok.next().unwrap().parse().unwrap();
                    joints[j].first = channel_count;
                    for _ in 0..n {
                        joints[j].channels.push(tok.next().unwrap().to_string());
                    }
                    channel_count += n;
                }
                "MOTION" => break,
                _ => {}
            }
        }
        // "Frames: N" and "Frame Time: t", then the motion lines.
        assert_eq!(tok.next(), Some("Frames:"));
        let n: usize = tok.next().unwrap().parse().unwrap();
        assert_eq!((tok.next(), tok.next()), (Some("Frame"), Some("Time:")));
        let frame_time: f64 = tok.next().unwrap().parse().unwrap();
        let values: Vec<f64> = tok.map(|v| v.parse().unwrap()).collect();
        assert_eq!(values.len(), n * channel_count, "motion values");
        let frames = values.chunks(channel_count).map(|c| c.to_vec()).collect();
        Bvh {
            joints,
            frames,
            frame_time,
        }
    }

    fn find(&self, names: &[&str]) -> usize {
        names
            .iter()
            .find_map(|n| self.joints.iter().position(|j| j.name == *n))
            .unwrap_or_else(|| panic!("no joint among {names:?}"))
    }

    /// World rotation and position of every joint in frame `f` (or the rest pose).
    fn pose(&self, f: Option<usize>) -> Vec<(M3, V3)> {
        let mut out: Vec<(M3, V3)> = Vec::with_capacity(self.joints.len());
        for j in &self.joints {
            let mut r = IDENTITY;
            let mut t = j.offset;
            if let Some(f) = f {
                for (c, name) in j.channels.iter().enumerate() {
                    let v = self.frames[f][j.first + c];
                    let axis = name.as_bytes()[0];
                    if name.ends_with("position") {
                        t[(axis - b'X') as usize] = v;
                    } else {
                        r = mul(&r, &rot(axis, v));
                    }
                }
            }
            out.push(match j.parent {
                None => (r, t),
                Some(p) => {
                    let (pr, pt) = out[p];
                    (mul(&pr, &r), add(pt, apply(&pr, t)))
                }
            });
        }
        out
    }

    /// The 33 landmarks of every frame in the camera's normalised coordinates,
    /// without noise.
    pub fn landmark_track(&self) -> Vec<[[f32; 3]; 33]> {
        let rest = self.pose(None);
        let sources: Vec<usize> = LANDMARKS.iter().map(|s| self.find(s.joints)).collect();
        // The rest pose's body axes and scale.
        let (lh, rh) = (rest[sources[23]].1, rest[sources[24]].1);
        let up = [0.0, 1.0, 0.0];
        let left = normalise(sub(lh, rh));
        let forward = cross(left, up);
        // The head joint (skull base) sits about 1.41 m above the ankle joint of a
        // 1.70 m person.
        let height = rest[sources[0]].1[1] - rest[sources[27]].1[1];
        let unit = 1.41 / height;
        let poses: Vec<Vec<(M3, V3)>> =
            (0..self.frames.len()).map(|f| self.pose(Some(f))).collect();
        // The floor: the lowest the ankle joints come in the recording.
        let floor = poses
            .iter()
            .map(|p| p[sources[27]].1[1].min(p[sources[28]].1[1]))
            .fold(f64::MAX, f64::min);
        let world: Vec<Vec<V3>> = poses
            .iter()
            .map(|p| {
                LANDMARKS
                    .iter()
                    .zip(&sources)
                    .map(|(s, &j)| {
                        let (r, t) = p[j];
                        let o = add(
                            add(scale(left, s.offset[0]), scale(up, s.offset[1])),
                            scale(forward, s.offset[2]),
                        );
                        let mut w = add(scale(sub(t, [0.0, floor, 0.0]), unit), apply(&r, o));
                        w[1] += 0.07; // the ankle's height above the floor
                        w
                    })
                    .collect()
            })
            .collect();
        // The camera: in front of the mean position (along the rest pose's forward
        // axis), far enough for the whole path.
        let n = world.len() as f64;
        let mean = world
            .iter()
            .fold([0.0; 3], |a, w| add(a, scale(w[23], 1.0 / n)));
        let reach = world
            .iter()
            .flatten()
            .map(|w| {
                let d = sub(*w, mean);
                (d[0] * d[0] + d[2] * d[2]).sqrt()
            })
            .fold(0.0, f64::max);
        let dist = (4.0f64).max(2.5 * reach + 1.5);
        let cam = add(add(mean, scale(forward, dist)), [0.0, 1.0 - mean[1], 0.0]);
        let focal = 1.3;
        let right = cross(up, forward); // the camera's x axis (image right)
        world
            .iter()
            .map(|w| {
                let depth = |p: V3| dot(sub(cam, p), forward);
                let hip_mid = scale(add(w[23], w[24]), 0.5);
                let d0 = depth(hip_mid);
                let mut out = [[0.0f32; 3]; 33];
                for (o, p) in out.iter_mut().zip(w) {
                    let d = depth(*p);
                    let rel = sub(*p, cam);
                    o[0] = (0.5 + focal * dot(rel, right) / d) as f32;
                    o[1] = (0.5 - focal * rel[1] / d) as f32;
                    o[2] = (focal * (d - d0) / d0) as f32;
                }
                out
            })
            .collect()
    }
}

fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalise(a: V3) -> V3 {
    scale(a, 1.0 / dot(a, a).sqrt())
}

/// BlazePose-like estimator noise (see the module's paragraph), deterministic for a
/// seed.
pub struct Noise {
    rng: fastrand::Rng,
    /// Frames left of each landmark's visibility drop.
    dropped: [u32; 33],
}

/// Jitter σ on x and y in normalised units: 5 mm at about 4.5 m with focal 1.3.
pub const JITTER_XY: f64 = 0.005 * 1.3 / 4.5;
/// Jitter σ on z: three times that.
pub const JITTER_Z: f64 = 3.0 * JITTER_XY;

impl Noise {
    /// Noise from `seed`.
    pub fn new(seed: u64) -> Self {
        Noise {
            rng: fastrand::Rng::with_seed(seed),
            dropped: [0; 33],
        }
    }

    fn uniform(&mut self) -> f64 {
        self.rng.f64()
    }

    fn gauss(&mut self) -> f64 {
        let u = self.uniform().max(1e-12);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Landmark `j`'s noisy (x, y, z, visibility, presence).
    pub fn apply(&mut self, j: usize, x: f32, y: f32, z: f32) -> [f32; 5] {
        if self.dropped[j] == 0 && self.uniform() < 0.003 {
            self.dropped[j] = 10 + (self.uniform() * 30.0) as u32;
        }
        let lost = self.dropped[j] > 0;
        self.dropped[j] = self.dropped[j].saturating_sub(1);
        let k = if lost { 3.0 } else { 1.0 };
        let vis = if lost {
            0.2 + 0.08 * self.gauss()
        } else {
            0.98 + 0.01 * self.gauss()
        };
        let pres = 0.995 + 0.003 * self.gauss();
        [
            (x as f64 + k * JITTER_XY * self.gauss()) as f32,
            (y as f64 + k * JITTER_XY * self.gauss()) as f32,
            (z as f64 + k * JITTER_Z * self.gauss()) as f32,
            vis.clamp(0.0, 1.0) as f32,
            pres.clamp(0.0, 1.0) as f32,
        ]
    }
}

/// The floor under any per-value code of the deltas that predicts each value by
/// its previous one: the empirical entropy of each value's quantised residual over
/// the whole recording, per value (33 × 5 distributions, each its own), summed in
/// bytes per frame and split by kind (x, y, z, visibility, presence). An adaptive
/// coder that knew each distribution exactly would still spend this much.
pub fn entropy_floor(frames: &[PoseFrame]) -> [f64; 5] {
    use std::collections::HashMap;
    let quantised = |f: &PoseFrame, i: usize| {
        let v = f.landmarks[i / 5].values()[i % 5];
        let scale = if i % 5 < 3 { 2048.0 } else { 128.0 };
        (v * scale).round() as i32
    };
    let mut floor = [0.0; 5];
    for i in 0..165 {
        let mut counts: HashMap<i32, u32> = HashMap::new();
        for w in frames.windows(2) {
            *counts
                .entry(quantised(&w[1], i) - quantised(&w[0], i))
                .or_default() += 1;
        }
        let n = (frames.len() - 1) as f64;
        let bits: f64 = counts
            .values()
            .map(|&c| {
                let p = c as f64 / n;
                -p * p.log2()
            })
            .sum();
        floor[i % 5] += bits / 8.0;
    }
    floor
}
