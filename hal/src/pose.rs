//! The pose sample and the trait of everything that produces one.
//!
//! A [`PoseSample`] is one frame of a pose estimator's output: the 33 BlazePose
//! landmarks with the capture time of the camera frame they were computed from. A
//! [`PoseSource`] fills the caller's sample in place, so reading a frame allocates
//! nothing. [`SyntheticPose`](crate::SyntheticPose) is the source used on boards
//! without a camera and in benchmarks; [`MockPoseSource`] replays a fixed list of
//! frames (and errors) for tests.

use crate::error::{Error, ErrorKind, MockError};

/// The number of landmarks in a BlazePose frame.
pub const LANDMARK_COUNT: usize = 33;

/// The landmarks of one frame; each one as `[x, y, z, visibility, presence]`,
/// MediaPipe's normalised image coordinates.
///
/// `x` and `y` are fractions of the image width and height (origin top left, `y`
/// grows downwards), `z` is the depth relative to the hip midpoint on roughly the
/// scale of `x` (smaller is closer to the camera), `visibility` and `presence` are
/// probabilities in `[0, 1]`. Landmark indices are listed in
/// [`synthetic::landmark`](crate::synthetic::landmark).
pub type LandmarkArray = [[f32; 5]; LANDMARK_COUNT];

/// One frame of pose landmarks and the time its camera frame was captured.
///
/// ```
/// use poselink_hal::{PoseSample, LANDMARK_COUNT};
///
/// let mut sample = PoseSample::zeroed();
/// sample.capture_ts_us = 33_333;
/// sample.landmarks[0] = [0.5, 0.3, -0.1, 0.99, 0.99];
/// assert_eq!(sample.landmarks.len(), LANDMARK_COUNT);
/// assert_eq!(sample.position(0), [0.5, 0.3, -0.1]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoseSample {
    /// Capture time of the camera frame, in microseconds of the source's
    /// [`Clock`](crate::Clock).
    pub capture_ts_us: u64,
    /// The landmarks, indexed as in [`synthetic::landmark`](crate::synthetic::landmark).
    pub landmarks: LandmarkArray,
}

impl PoseSample {
    /// A sample with timestamp 0 and every landmark value 0.
    pub const fn zeroed() -> Self {
        Self {
            capture_ts_us: 0,
            landmarks: [[0.0; 5]; LANDMARK_COUNT],
        }
    }

    /// The `[x, y, z]` of landmark `index`.
    ///
    /// # Panics
    ///
    /// If `index >= LANDMARK_COUNT`.
    pub fn position(&self, index: usize) -> [f32; 3] {
        let [x, y, z, _, _] = self.landmarks[index];
        [x, y, z]
    }
}

impl Default for PoseSample {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// Something that produces pose frames: a camera with a pose estimator, a recording,
/// a generator.
///
/// `next_pose` blocks until the next frame is available (a source paced by a camera)
/// or returns at once (a generator, which leaves pacing to the caller), and writes
/// the frame into `out`. On error, `out` is unspecified.
///
/// ```
/// use poselink_hal::{PoseSample, PoseSource, SyntheticConfig, SyntheticPose};
///
/// fn first_nose_x<S: PoseSource>(mut source: S) -> Result<f32, S::Error> {
///     let mut sample = PoseSample::zeroed();
///     source.next_pose(&mut sample)?;
///     Ok(sample.landmarks[0][0])
/// }
///
/// let mut source = SyntheticPose::new(SyntheticConfig::default());
/// // Borrowing works too: `&mut S` is a `PoseSource`.
/// let x = first_nose_x(&mut source).unwrap();
/// assert!((0.0..=1.0).contains(&x));
/// ```
pub trait PoseSource {
    /// The error this source reports.
    type Error: Error;

    /// Writes the next frame into `out`.
    fn next_pose(&mut self, out: &mut PoseSample) -> Result<(), Self::Error>;
}

impl<T: PoseSource + ?Sized> PoseSource for &mut T {
    type Error = T::Error;

    fn next_pose(&mut self, out: &mut PoseSample) -> Result<(), Self::Error> {
        T::next_pose(self, out)
    }
}

impl<T: PoseSource + ?Sized> PoseSource for Box<T> {
    type Error = T::Error;

    fn next_pose(&mut self, out: &mut PoseSample) -> Result<(), Self::Error> {
        T::next_pose(self, out)
    }
}

/// A pose source that replays a list of frames, then reports
/// [`ErrorKind::EndOfStream`].
///
/// [`from_results`](Self::from_results) also lets a test inject errors at chosen
/// points of the stream.
///
/// ```
/// use poselink_hal::{Error, ErrorKind, MockPoseSource, PoseSample, PoseSource};
///
/// let mut frame = PoseSample::zeroed();
/// frame.capture_ts_us = 100;
/// let mut source = MockPoseSource::new(vec![frame]);
///
/// let mut out = PoseSample::zeroed();
/// source.next_pose(&mut out).unwrap();
/// assert_eq!(out.capture_ts_us, 100);
/// assert_eq!(source.next_pose(&mut out).unwrap_err().kind(), ErrorKind::EndOfStream);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MockPoseSource {
    items: Vec<Result<PoseSample, ErrorKind>>,
    next: usize,
}

impl MockPoseSource {
    /// A source yielding `frames` in order.
    pub fn new(frames: Vec<PoseSample>) -> Self {
        Self::from_results(frames.into_iter().map(Ok).collect())
    }

    /// A source yielding each `Ok` frame, or failing with a [`MockError`] of the
    /// given kind for each `Err`, in order.
    pub fn from_results(items: Vec<Result<PoseSample, ErrorKind>>) -> Self {
        Self { items, next: 0 }
    }

    /// How many items (frames or errors) are left before the end of the stream.
    pub fn remaining(&self) -> usize {
        self.items.len() - self.next
    }
}

impl PoseSource for MockPoseSource {
    type Error = MockError;

    fn next_pose(&mut self, out: &mut PoseSample) -> Result<(), Self::Error> {
        let item = self
            .items
            .get(self.next)
            .ok_or(MockError::new(ErrorKind::EndOfStream))?;
        self.next += 1;
        match item {
            Ok(frame) => {
                *out = *frame;
                Ok(())
            }
            Err(kind) => Err(MockError::new(*kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_replays_frames_and_errors_then_ends() {
        let mut a = PoseSample::zeroed();
        a.capture_ts_us = 1;
        let mut b = a;
        b.capture_ts_us = 2;
        let mut source =
            MockPoseSource::from_results(vec![Ok(a), Err(ErrorKind::Unavailable), Ok(b)]);
        let mut out = PoseSample::default();
        assert_eq!(source.remaining(), 3);
        source.next_pose(&mut out).unwrap();
        assert_eq!(out, a);
        assert_eq!(
            source.next_pose(&mut out).unwrap_err().kind(),
            ErrorKind::Unavailable
        );
        source.next_pose(&mut out).unwrap();
        assert_eq!(out.capture_ts_us, 2);
        for _ in 0..3 {
            assert_eq!(
                source.next_pose(&mut out).unwrap_err().kind(),
                ErrorKind::EndOfStream
            );
        }
        assert_eq!(source.remaining(), 0);
    }

    #[test]
    fn boxed_dyn_source_works() {
        let mut source: Box<dyn PoseSource<Error = MockError>> =
            Box::new(MockPoseSource::new(vec![PoseSample::zeroed()]));
        let mut out = PoseSample::zeroed();
        assert!(source.next_pose(&mut out).is_ok());
        assert!(source.next_pose(&mut out).is_err());
    }
}
