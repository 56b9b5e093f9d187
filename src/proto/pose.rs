//! The pose frame as the capture app hands it over: 33 BlazePose landmarks, each five
//! `f32`s, in a `#[repr(C)]` plain-old-data layout that a C caller can fill in place
//! and that `bytemuck` can view as bytes. This module also says what a valid frame
//! is; the codec refuses anything else.

use bytemuck::{Pod, Zeroable};

use super::{Error, Field};

/// Number of landmarks in a BlazePose frame.
pub const LANDMARK_COUNT: usize = 33;

/// The smallest x, y or z the protocol carries (MediaPipe's normalised coordinates
/// leave [0, 1] when a landmark is outside the image).
pub const COORD_MIN: f32 = -1.0;
/// The largest x, y or z the protocol carries.
pub const COORD_MAX: f32 = 2.0;

/// One landmark in MediaPipe's normalised image coordinates: x and y in [0, 1]
/// across the image (y downwards), z the depth relative to the hips on about the
/// same scale as x, visibility and presence scores in [0, 1].
///
/// ```
/// use poselink::proto::Landmark;
/// let nose = Landmark { x: 0.5, y: 0.2, z: -0.1, visibility: 0.99, presence: 0.99 };
/// assert!(nose.validate(0).is_ok());
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct Landmark {
    /// Horizontal position, 0 = left edge of the image, 1 = right edge.
    pub x: f32,
    /// Vertical position, 0 = top edge, 1 = bottom edge.
    pub y: f32,
    /// Depth relative to the hip midpoint; smaller is nearer the camera.
    pub z: f32,
    /// Likelihood that the landmark is visible (not occluded), 0..1.
    pub visibility: f32,
    /// Likelihood that the landmark is present in the image, 0..1.
    pub presence: f32,
}

impl Landmark {
    /// The five values in wire order: x, y, z, visibility, presence.
    pub const fn values(&self) -> [f32; 5] {
        [self.x, self.y, self.z, self.visibility, self.presence]
    }

    /// Checks that every value is finite and in range; `index` names the landmark
    /// in the error.
    pub fn validate(&self, index: u8) -> Result<(), Error> {
        const FIELDS: [Field; 5] = [
            Field::X,
            Field::Y,
            Field::Z,
            Field::Visibility,
            Field::Presence,
        ];
        for (value, field) in self.values().into_iter().zip(FIELDS) {
            if !value.is_finite() {
                return Err(Error::NotFinite {
                    landmark: index,
                    field,
                });
            }
            let (lo, hi) = match field {
                Field::X | Field::Y | Field::Z => (COORD_MIN, COORD_MAX),
                Field::Visibility | Field::Presence => (0.0, 1.0),
            };
            if !(lo..=hi).contains(&value) {
                return Err(Error::OutOfRange {
                    landmark: index,
                    field,
                });
            }
        }
        Ok(())
    }
}

/// One pose of one person at one instant: what the capture app's estimator produced
/// for a camera frame.
///
/// `seq` counts the frames of this person's stream (the codec uses it to name a
/// delta's reference frame, so it must increase by at least one per frame sent);
/// `capture_ts_us` is the capture time in microseconds on the clock the sender also
/// stamps its audio with, so a receiver can align the two; `person` tells several
/// people tracked by the same camera apart.
///
/// The layout is `#[repr(C)]` and [`Pod`]: 680 bytes, no padding, so a C caller can
/// fill one in place and `bytemuck::bytes_of` can view it.
///
/// ```
/// use poselink::proto::{PoseFrame, landmark};
/// let mut frame = PoseFrame::zeroed();
/// frame.landmarks[landmark::LEFT_WRIST].x = 0.3;
/// assert_eq!(core::mem::size_of::<PoseFrame>(), 680);
/// assert!(frame.validate().is_ok());
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct PoseFrame {
    /// Frame sequence number of this person's stream.
    pub seq: u32,
    /// Which person of the camera this is (0 for the first).
    pub person: u32,
    /// Capture time in microseconds (monotonic clock shared with audio).
    pub capture_ts_us: u64,
    /// Zero. Reserved for future use; keeps the layout free of padding (a `Pod`
    /// requirement) and is not carried on the wire.
    pub reserved: u32,
    /// The 33 landmarks in MediaPipe order; see [`landmark`](super::landmark).
    pub landmarks: [Landmark; LANDMARK_COUNT],
}

impl Default for PoseFrame {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl PoseFrame {
    /// A frame with every field zero.
    pub const fn zeroed() -> Self {
        const ZERO: Landmark = Landmark {
            x: 0.0,
            y: 0.0,
            z: 0.0,
            visibility: 0.0,
            presence: 0.0,
        };
        PoseFrame {
            seq: 0,
            person: 0,
            capture_ts_us: 0,
            reserved: 0,
            landmarks: [ZERO; LANDMARK_COUNT],
        }
    }

    /// A frame from landmarks given as `[x, y, z, visibility, presence]` arrays (the
    /// shape a C caller or the hal's sources hold them in).
    pub fn from_arrays(
        seq: u32,
        person: u32,
        capture_ts_us: u64,
        values: &[[f32; 5]; LANDMARK_COUNT],
    ) -> Self {
        PoseFrame {
            seq,
            person,
            capture_ts_us,
            reserved: 0,
            landmarks: bytemuck::cast(*values),
        }
    }

    /// Checks every landmark (finite, in range); the first failure is returned.
    pub fn validate(&self) -> Result<(), Error> {
        for (i, lm) in self.landmarks.iter().enumerate() {
            lm.validate(i as u8)?;
        }
        Ok(())
    }

    /// Clamps every value into the carried range and replaces NaN by the range's
    /// lower bound, for capture apps that prefer a clamped frame to a refused one.
    pub fn clamp_to_range(&mut self) {
        fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
            if v.is_nan() { lo } else { v.clamp(lo, hi) }
        }
        for lm in self.landmarks.iter_mut() {
            lm.x = clamp(lm.x, COORD_MIN, COORD_MAX);
            lm.y = clamp(lm.y, COORD_MIN, COORD_MAX);
            lm.z = clamp(lm.z, COORD_MIN, COORD_MAX);
            lm.visibility = clamp(lm.visibility, 0.0, 1.0);
            lm.presence = clamp(lm.presence, 0.0, 1.0);
        }
    }
}

/// Named indices of the 33 BlazePose landmarks, in MediaPipe's order.
///
/// ```
/// use poselink::proto::landmark;
/// assert_eq!(landmark::NOSE, 0);
/// assert_eq!(landmark::RIGHT_FOOT_INDEX, 32);
/// ```
pub mod landmark {
    #![allow(missing_docs)]
    pub const NOSE: usize = 0;
    pub const LEFT_EYE_INNER: usize = 1;
    pub const LEFT_EYE: usize = 2;
    pub const LEFT_EYE_OUTER: usize = 3;
    pub const RIGHT_EYE_INNER: usize = 4;
    pub const RIGHT_EYE: usize = 5;
    pub const RIGHT_EYE_OUTER: usize = 6;
    pub const LEFT_EAR: usize = 7;
    pub const RIGHT_EAR: usize = 8;
    pub const MOUTH_LEFT: usize = 9;
    pub const MOUTH_RIGHT: usize = 10;
    pub const LEFT_SHOULDER: usize = 11;
    pub const RIGHT_SHOULDER: usize = 12;
    pub const LEFT_ELBOW: usize = 13;
    pub const RIGHT_ELBOW: usize = 14;
    pub const LEFT_WRIST: usize = 15;
    pub const RIGHT_WRIST: usize = 16;
    pub const LEFT_PINKY: usize = 17;
    pub const RIGHT_PINKY: usize = 18;
    pub const LEFT_INDEX: usize = 19;
    pub const RIGHT_INDEX: usize = 20;
    pub const LEFT_THUMB: usize = 21;
    pub const RIGHT_THUMB: usize = 22;
    pub const LEFT_HIP: usize = 23;
    pub const RIGHT_HIP: usize = 24;
    pub const LEFT_KNEE: usize = 25;
    pub const RIGHT_KNEE: usize = 26;
    pub const LEFT_ANKLE: usize = 27;
    pub const RIGHT_ANKLE: usize = 28;
    pub const LEFT_HEEL: usize = 29;
    pub const RIGHT_HEEL: usize = 30;
    pub const LEFT_FOOT_INDEX: usize = 31;
    pub const RIGHT_FOOT_INDEX: usize = 32;

    /// The landmark names in index order, as MediaPipe spells them.
    pub const NAMES: [&str; super::LANDMARK_COUNT] = [
        "nose",
        "left_eye_inner",
        "left_eye",
        "left_eye_outer",
        "right_eye_inner",
        "right_eye",
        "right_eye_outer",
        "left_ear",
        "right_ear",
        "mouth_left",
        "mouth_right",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_pinky",
        "right_pinky",
        "left_index",
        "right_index",
        "left_thumb",
        "right_thumb",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
        "left_heel",
        "right_heel",
        "left_foot_index",
        "right_foot_index",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> PoseFrame {
        let mut f = PoseFrame::zeroed();
        for lm in f.landmarks.iter_mut() {
            *lm = Landmark {
                x: 0.5,
                y: 0.5,
                z: 0.0,
                visibility: 0.9,
                presence: 0.9,
            };
        }
        f
    }

    #[test]
    fn layout_is_c_and_padding_free() {
        assert_eq!(core::mem::size_of::<Landmark>(), 20);
        assert_eq!(core::mem::size_of::<PoseFrame>(), 20 + 33 * 20);
        assert_eq!(bytemuck::bytes_of(&valid()).len(), 680);
    }

    #[test]
    fn every_validation_failure_names_landmark_and_field() {
        let mut f = valid();
        f.landmarks[7].z = f32::NAN;
        assert_eq!(
            f.validate(),
            Err(Error::NotFinite {
                landmark: 7,
                field: Field::Z
            })
        );
        let mut f = valid();
        f.landmarks[32].x = f32::INFINITY;
        assert_eq!(
            f.validate(),
            Err(Error::NotFinite {
                landmark: 32,
                field: Field::X
            })
        );
        let mut f = valid();
        f.landmarks[3].y = 2.01;
        assert_eq!(
            f.validate(),
            Err(Error::OutOfRange {
                landmark: 3,
                field: Field::Y
            })
        );
        let mut f = valid();
        f.landmarks[0].visibility = -0.01;
        assert_eq!(
            f.validate(),
            Err(Error::OutOfRange {
                landmark: 0,
                field: Field::Visibility
            })
        );
        let mut f = valid();
        f.landmarks[1].presence = 1.5;
        assert_eq!(
            f.validate(),
            Err(Error::OutOfRange {
                landmark: 1,
                field: Field::Presence
            })
        );
    }

    #[test]
    fn clamp_makes_any_frame_valid() {
        let mut f = valid();
        f.landmarks[2].x = f32::NAN;
        f.landmarks[4].y = 9.0;
        f.landmarks[5].visibility = f32::NEG_INFINITY;
        f.clamp_to_range();
        assert!(f.validate().is_ok());
        assert_eq!(f.landmarks[4].y, COORD_MAX);
    }

    #[test]
    fn names_match_indices() {
        assert_eq!(landmark::NAMES[landmark::LEFT_WRIST], "left_wrist");
        assert_eq!(
            landmark::NAMES[landmark::RIGHT_FOOT_INDEX],
            "right_foot_index"
        );
    }
}
