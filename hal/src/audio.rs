//! Audio blocks and the trait of everything that produces them.
//!
//! An [`AudioBlock`] is a fixed-capacity buffer of interleaved 16-bit PCM with the
//! capture time of its first sample; an [`AudioSource`] fills the caller's block in
//! place, so reading audio allocates nothing. [`SyntheticAudio`] generates a steady
//! test tone (for boards without a microphone, and for measuring the audio path);
//! [`MockAudioSource`] replays a fixed list of blocks (and errors) for tests.

use core::f64::consts::TAU;

use crate::error::{Error, ErrorKind, MockError};

/// Capacity of an [`AudioBlock`] in samples (all channels together): 20 ms of 48 kHz
/// mono.
pub const AUDIO_CHUNK_SAMPLES: usize = 960;

/// A block of interleaved signed 16-bit PCM audio.
///
/// Only `samples[..len]` is meaningful; `len` is a multiple of `channels`.
///
/// ```
/// use poselink_hal::{AudioBlock, AUDIO_CHUNK_SAMPLES};
///
/// let mut block = AudioBlock::zeroed();
/// block.sample_rate = 48_000;
/// block.channels = 1;
/// block.len = 480;
/// assert_eq!(block.samples().len(), 480);
/// assert_eq!(block.duration_us(), 10_000);
/// assert_eq!(block.samples.len(), AUDIO_CHUNK_SAMPLES);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioBlock {
    /// Capture time of the first sample, in microseconds of the source's
    /// [`Clock`](crate::Clock).
    pub capture_ts_us: u64,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Number of interleaved channels.
    pub channels: u8,
    /// Number of valid entries in `samples`.
    pub len: usize,
    /// The samples, interleaved; entries from `len` on are unused.
    pub samples: [i16; AUDIO_CHUNK_SAMPLES],
}

impl AudioBlock {
    /// An empty block: timestamp 0, no format, no samples.
    pub const fn zeroed() -> Self {
        Self {
            capture_ts_us: 0,
            sample_rate: 0,
            channels: 0,
            len: 0,
            samples: [0; AUDIO_CHUNK_SAMPLES],
        }
    }

    /// The valid samples, `samples[..len]` (clamped to the capacity).
    pub fn samples(&self) -> &[i16] {
        &self.samples[..self.len.min(AUDIO_CHUNK_SAMPLES)]
    }

    /// How long the valid samples last, in microseconds (0 if the format is unset).
    pub fn duration_us(&self) -> u64 {
        let frames_per_channel = self.samples().len() as u64 / u64::from(self.channels.max(1));
        if self.sample_rate == 0 {
            return 0;
        }
        frames_per_channel * 1_000_000 / u64::from(self.sample_rate)
    }
}

impl Default for AudioBlock {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// Something that produces audio: a microphone, a recording, a generator.
///
/// `next_audio` writes the next block into `out`, blocking until it is available if
/// the source is paced by hardware. On error, `out` is unspecified.
///
/// ```
/// use poselink_hal::{AudioBlock, AudioSource, SyntheticAudio};
///
/// fn peak<S: AudioSource>(source: &mut S) -> Result<i16, S::Error> {
///     let mut block = AudioBlock::zeroed();
///     source.next_audio(&mut block)?;
///     Ok(block.samples().iter().map(|s| s.saturating_abs()).max().unwrap_or(0))
/// }
///
/// let mut tone = SyntheticAudio::new(0);
/// assert!(peak(&mut tone).unwrap() > 8_000);
/// ```
pub trait AudioSource {
    /// The error this source reports.
    type Error: Error;

    /// Writes the next block into `out`.
    fn next_audio(&mut self, out: &mut AudioBlock) -> Result<(), Self::Error>;
}

impl<T: AudioSource + ?Sized> AudioSource for &mut T {
    type Error = T::Error;

    fn next_audio(&mut self, out: &mut AudioBlock) -> Result<(), Self::Error> {
        T::next_audio(self, out)
    }
}

impl<T: AudioSource + ?Sized> AudioSource for Box<T> {
    type Error = T::Error;

    fn next_audio(&mut self, out: &mut AudioBlock) -> Result<(), Self::Error> {
        T::next_audio(self, out)
    }
}

/// A steady sine test tone: by default 440 Hz at −12 dBFS, 48 kHz mono, in blocks of
/// 20 ms (960 samples).
///
/// The phase runs on continuously from block to block, and block `k` is stamped
/// `start_ts_us + k × 20 000` µs. The generator does not pace itself: it returns at
/// once, and the caller reads it at the rate it needs.
///
/// ```
/// use poselink_hal::{AudioBlock, AudioSource, SyntheticAudio};
///
/// let mut tone = SyntheticAudio::new(1_000_000);
/// let mut block = AudioBlock::zeroed();
/// tone.next_audio(&mut block).unwrap();
/// assert_eq!((block.sample_rate, block.channels, block.len), (48_000, 1, 960));
/// assert_eq!(block.capture_ts_us, 1_000_000);
/// tone.next_audio(&mut block).unwrap();
/// assert_eq!(block.capture_ts_us, 1_020_000);
/// ```
#[derive(Clone, Debug)]
pub struct SyntheticAudio {
    start_ts_us: u64,
    blocks: u64,
    /// Phase of the next sample, in cycles, in `[0, 1)`.
    phase: f64,
    /// Phase advance per sample, in cycles.
    step: f64,
    amplitude: f64,
}

impl SyntheticAudio {
    /// Sample rate of the generated audio.
    pub const SAMPLE_RATE: u32 = 48_000;
    /// Frequency of the default tone.
    pub const DEFAULT_FREQUENCY_HZ: f64 = 440.0;
    /// Level of the default tone's peaks, relative to full scale.
    pub const DEFAULT_LEVEL_DBFS: f64 = -12.0;
    /// Duration of one block.
    pub const BLOCK_US: u64 = 20_000;

    /// The default tone, its first block stamped `start_ts_us`.
    pub fn new(start_ts_us: u64) -> Self {
        Self::with_tone(
            start_ts_us,
            Self::DEFAULT_FREQUENCY_HZ,
            Self::DEFAULT_LEVEL_DBFS,
        )
    }

    /// A tone of `frequency_hz` whose peaks are at `level_dbfs` (0 is full scale).
    ///
    /// A frequency that is not finite, negative or at or above the Nyquist frequency
    /// (24 kHz), or a level that is not finite, gives silence; levels above 0 dBFS
    /// are limited to 0 dBFS.
    pub fn with_tone(start_ts_us: u64, frequency_hz: f64, level_dbfs: f64) -> Self {
        let nyquist = f64::from(Self::SAMPLE_RATE) / 2.0;
        let valid = frequency_hz.is_finite()
            && (0.0..nyquist).contains(&frequency_hz)
            && level_dbfs.is_finite();
        if !valid {
            log::warn!(
                "synthetic tone of {frequency_hz} Hz at {level_dbfs} dBFS is not playable; generating silence"
            );
        }
        let amplitude = if valid {
            f64::from(i16::MAX) * 10f64.powf(level_dbfs.min(0.0) / 20.0)
        } else {
            0.0
        };
        Self {
            start_ts_us,
            blocks: 0,
            phase: 0.0,
            step: if valid {
                frequency_hz / f64::from(Self::SAMPLE_RATE)
            } else {
                0.0
            },
            amplitude,
        }
    }
}

impl AudioSource for SyntheticAudio {
    type Error = core::convert::Infallible;

    fn next_audio(&mut self, out: &mut AudioBlock) -> Result<(), Self::Error> {
        out.capture_ts_us = self
            .start_ts_us
            .saturating_add(self.blocks.saturating_mul(Self::BLOCK_US));
        out.sample_rate = Self::SAMPLE_RATE;
        out.channels = 1;
        out.len = AUDIO_CHUNK_SAMPLES;
        for sample in out.samples.iter_mut() {
            let value = self.amplitude * (TAU * self.phase).sin();
            *sample = value.round() as i16;
            self.phase += self.step;
            self.phase -= self.phase.floor();
        }
        self.blocks += 1;
        Ok(())
    }
}

/// An audio source that replays a list of blocks, then reports
/// [`ErrorKind::EndOfStream`].
///
/// [`from_results`](Self::from_results) also lets a test inject errors at chosen
/// points of the stream.
///
/// ```
/// use poselink_hal::{AudioBlock, AudioSource, Error, ErrorKind, MockAudioSource};
///
/// let mut block = AudioBlock::zeroed();
/// block.capture_ts_us = 20_000;
/// let mut source = MockAudioSource::from_results(vec![Ok(block), Err(ErrorKind::Io)]);
///
/// let mut out = AudioBlock::zeroed();
/// source.next_audio(&mut out).unwrap();
/// assert_eq!(out.capture_ts_us, 20_000);
/// assert_eq!(source.next_audio(&mut out).unwrap_err().kind(), ErrorKind::Io);
/// assert_eq!(source.next_audio(&mut out).unwrap_err().kind(), ErrorKind::EndOfStream);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MockAudioSource {
    items: Vec<Result<AudioBlock, ErrorKind>>,
    next: usize,
}

impl MockAudioSource {
    /// A source yielding `blocks` in order.
    pub fn new(blocks: Vec<AudioBlock>) -> Self {
        Self::from_results(blocks.into_iter().map(Ok).collect())
    }

    /// A source yielding each `Ok` block, or failing with a [`MockError`] of the
    /// given kind for each `Err`, in order.
    pub fn from_results(items: Vec<Result<AudioBlock, ErrorKind>>) -> Self {
        Self { items, next: 0 }
    }

    /// How many items (blocks or errors) are left before the end of the stream.
    pub fn remaining(&self) -> usize {
        self.items.len() - self.next
    }
}

impl AudioSource for MockAudioSource {
    type Error = MockError;

    fn next_audio(&mut self, out: &mut AudioBlock) -> Result<(), Self::Error> {
        let item = self
            .items
            .get(self.next)
            .ok_or(MockError::new(ErrorKind::EndOfStream))?;
        self.next += 1;
        match item {
            Ok(block) => {
                *out = *block;
                Ok(())
            }
            Err(kind) => Err(MockError::new(*kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(source: &mut SyntheticAudio, n: usize) -> Vec<AudioBlock> {
        (0..n)
            .map(|_| {
                let mut b = AudioBlock::zeroed();
                source.next_audio(&mut b).unwrap();
                b
            })
            .collect()
    }

    #[test]
    fn timestamps_advance_by_twenty_ms() {
        let mut tone = SyntheticAudio::new(5);
        let got = blocks(&mut tone, 100);
        for (k, b) in got.iter().enumerate() {
            assert_eq!(b.capture_ts_us, 5 + k as u64 * 20_000);
            assert_eq!(b.duration_us(), 20_000);
            assert_eq!(b.len, AUDIO_CHUNK_SAMPLES);
        }
    }

    #[test]
    fn amplitude_is_minus_twelve_dbfs() {
        let mut tone = SyntheticAudio::new(0);
        let got = blocks(&mut tone, 50);
        let all: Vec<f64> = got
            .iter()
            .flat_map(|b| b.samples().iter().map(|&s| f64::from(s)))
            .collect();
        let expected_peak = 32767.0 * 10f64.powf(-12.0 / 20.0);
        let peak = all.iter().fold(0.0f64, |m, s| m.max(s.abs()));
        assert!((peak - expected_peak).abs() <= 2.0, "peak {peak}");
        // RMS of a sine is peak / sqrt(2); -12 dBFS peak is about -15 dBFS RMS.
        let rms = (all.iter().map(|s| s * s).sum::<f64>() / all.len() as f64).sqrt();
        let rms_dbfs = 20.0 * (rms / 32767.0).log10();
        assert!(
            (rms_dbfs - (-12.0 - 3.0103)).abs() < 0.05,
            "rms {rms_dbfs} dBFS"
        );
    }

    #[test]
    fn phase_is_continuous_across_blocks() {
        let mut tone = SyntheticAudio::new(0);
        let got = blocks(&mut tone, 20);
        let all: Vec<i16> = got.iter().flat_map(|b| b.samples().to_vec()).collect();
        // Every sample equals the ideal sine at its global index, so block
        // boundaries leave no jump in phase.
        let amp = 32767.0 * 10f64.powf(-12.0 / 20.0);
        for (n, &s) in all.iter().enumerate() {
            let ideal = amp * (TAU * 440.0 * n as f64 / 48_000.0).sin();
            assert!(
                (f64::from(s) - ideal).abs() <= 1.0,
                "sample {n}: {s} vs {ideal}"
            );
        }
        // And the step across each boundary is no larger than the largest step
        // inside a block (the sine's maximum slope).
        let max_step = (TAU * 440.0 / 48_000.0) * amp + 2.0;
        for w in all.windows(2) {
            assert!(f64::from((w[1] - w[0]).abs()) <= max_step);
        }
    }

    #[test]
    fn frequency_is_440_hz() {
        let mut tone = SyntheticAudio::new(0);
        let got = blocks(&mut tone, 50); // one second
        let all: Vec<i16> = got.iter().flat_map(|b| b.samples().to_vec()).collect();
        let rising = all.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        assert!(
            (439..=441).contains(&rising),
            "{rising} rising zero crossings"
        );
    }

    #[test]
    fn invalid_tone_is_silent() {
        let mut tone = SyntheticAudio::with_tone(0, f64::NAN, -12.0);
        let got = blocks(&mut tone, 2);
        assert!(got.iter().all(|b| b.samples().iter().all(|&s| s == 0)));
    }

    #[test]
    fn mock_ends_with_end_of_stream() {
        let mut source = MockAudioSource::new(vec![AudioBlock::zeroed(); 2]);
        let mut out = AudioBlock::default();
        assert_eq!(source.remaining(), 2);
        source.next_audio(&mut out).unwrap();
        source.next_audio(&mut out).unwrap();
        assert_eq!(
            source.next_audio(&mut out).unwrap_err().kind(),
            ErrorKind::EndOfStream
        );
    }
}
