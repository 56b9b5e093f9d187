//! # poselink-hal
//!
//! The board abstraction layer of poselink: everything the streaming engine needs
//! from the board it runs on (a Raspberry Pi, a Jetson, a laptop), behind small
//! traits, so that the engine above it is the same on every board and in every test.
//!
//! The traits follow the embedded-hal style. Each does one thing and is fallible:
//! it has an associated `Error` type that implements [`Error`], whose
//! [`kind`](Error::kind) reduces it to an [`ErrorKind`] (a `#[non_exhaustive]`,
//! `Copy` enum) that generic code can act on without knowing the driver. Sources
//! write into a buffer the caller owns, so reading a frame allocates nothing. A
//! `&mut T` (and a `Box<T>`) of an implementation is an implementation too, so a
//! caller can lend a source to generic code and keep it. Every trait has a real
//! implementation for boards and a mock for tests:
//!
//! | trait | real | mock |
//! | --- | --- | --- |
//! | [`Clock`] | [`MonotonicClock`] | [`MockClock`] |
//! | [`PoseSource`] | [`SyntheticPose`] | [`MockPoseSource`] |
//! | [`AudioSource`] | [`SyntheticAudio`] | [`MockAudioSource`] |
//! | [`SystemStats`] | [`LinuxStats`] | [`MockStats`] |
//!
//! [`SyntheticPose`] is a realistic moving skeleton (walking, waving) with
//! MediaPipe-like noise, deterministic for a seed; [`SyntheticAudio`] a steady test
//! tone. They stand in for a camera and a microphone on boards that have none, and
//! give tests and benchmarks data with the statistics of the real thing.
//!
//! This crate sits below the `poselink` crate and does not depend on it.
//!
//! ```
//! use poselink_hal::{Clock, MockClock, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};
//!
//! let clock = MockClock::new(0);
//! let mut source = SyntheticPose::new(SyntheticConfig::default());
//! let mut sample = PoseSample::zeroed();
//! source.next_pose(&mut sample).unwrap();
//! clock.advance(4_000);
//! let latency_us = clock.now_us() - sample.capture_ts_us;
//! assert_eq!(latency_us, 4_000);
//! ```
#![deny(missing_docs)]

pub mod audio;
pub mod clock;
pub mod error;
pub mod pose;
pub mod replay;
pub mod stats;
pub mod synthetic;

pub use audio::{AUDIO_CHUNK_SAMPLES, AudioBlock, AudioSource, MockAudioSource, SyntheticAudio};
#[cfg(target_os = "linux")]
pub use clock::TimerFd;
pub use clock::{Clock, MockClock, MonotonicClock};
pub use error::{Error, ErrorKind, MockError};
pub use pose::{LANDMARK_COUNT, LandmarkArray, MockPoseSource, PoseSample, PoseSource};
pub use replay::{Record, RecordKind, RecordReader, Recorder, ReplayError, ReplaySource};
pub use stats::{LinuxStats, MockStats, Snapshot, SystemStats};
pub use synthetic::{Motion, POSE_CONNECTIONS, SyntheticConfig, SyntheticPose};
