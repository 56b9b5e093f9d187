//! The audio chunk: a fixed-capacity block of PCM16 samples (20 ms of 48 kHz mono by
//! convention), stamped on the same clock as the pose frames so a receiver can align
//! the two. Fixed capacity means a chunk can live in a preallocated ring slot and be
//! copied without touching the heap.

use super::Error;

/// Samples a chunk holds at most: 20 ms of 48 kHz mono.
pub const AUDIO_CHUNK_CAPACITY: usize = 960;

/// Lowest sample rate the protocol accepts.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest sample rate the protocol accepts.
pub const MAX_SAMPLE_RATE: u32 = 192_000;

/// A block of interleaved PCM16 samples.
///
/// `len` counts samples over all channels (for stereo, 2 per instant); only the first
/// `len` entries of `samples` are meaningful. `seq` numbers the chunks of a stream
/// without gaps: the edge engine's replay window and the receiver's duplicate check
/// both key on it.
///
/// ```
/// use poselink::proto::AudioChunk;
/// let mut chunk = AudioChunk::silence(48_000, 1, 960);
/// chunk.seq = 42;
/// chunk.samples[0] = 1000;
/// assert_eq!(chunk.duration_us(), 20_000);
/// assert!(chunk.validate().is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioChunk {
    /// Chunk sequence number of this stream (no gaps).
    pub seq: u32,
    /// Capture time of the first sample in microseconds (same clock as pose frames).
    pub capture_ts_us: u64,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Interleaved channels: 1 or 2.
    pub channels: u8,
    /// Number of valid samples in `samples` (all channels).
    pub len: u16,
    /// The samples; entries past `len` are ignored.
    pub samples: [i16; AUDIO_CHUNK_CAPACITY],
}

impl Default for AudioChunk {
    fn default() -> Self {
        Self::silence(48_000, 1, 0)
    }
}

impl AudioChunk {
    /// A chunk of `len` zero samples.
    pub const fn silence(sample_rate: u32, channels: u8, len: u16) -> Self {
        AudioChunk {
            seq: 0,
            capture_ts_us: 0,
            sample_rate,
            channels,
            len,
            samples: [0; AUDIO_CHUNK_CAPACITY],
        }
    }

    /// The valid samples.
    pub fn pcm(&self) -> &[i16] {
        &self.samples[..(self.len as usize).min(AUDIO_CHUNK_CAPACITY)]
    }

    /// How long the chunk plays, in microseconds.
    pub fn duration_us(&self) -> u64 {
        if self.sample_rate == 0 || self.channels == 0 {
            return 0;
        }
        let frames = self.len as u64 / self.channels as u64;
        frames * 1_000_000 / self.sample_rate as u64
    }

    /// Checks the chunk's shape: 1 or 2 channels, a sample rate in
    /// [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`], `len` within capacity and a whole
    /// number of frames.
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=2).contains(&self.channels) {
            return Err(Error::BadAudio {
                what: "channels must be 1 or 2",
            });
        }
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&self.sample_rate) {
            return Err(Error::BadAudio {
                what: "sample rate must be between 8000 and 192000 Hz",
            });
        }
        if self.len as usize > AUDIO_CHUNK_CAPACITY {
            return Err(Error::BadAudio {
                what: "more than 960 samples in one chunk",
            });
        }
        if !self.len.is_multiple_of(self.channels as u16) {
            return Err(Error::BadAudio {
                what: "sample count is not a whole number of frames",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_checks() {
        assert!(AudioChunk::silence(48_000, 1, 960).validate().is_ok());
        assert!(AudioChunk::silence(48_000, 2, 960).validate().is_ok());
        assert!(AudioChunk::silence(48_000, 3, 960).validate().is_err());
        assert!(AudioChunk::silence(48_000, 2, 959).validate().is_err());
        assert!(AudioChunk::silence(4_000, 1, 960).validate().is_err());
        assert!(AudioChunk::silence(48_000, 1, 961).validate().is_err());
        assert_eq!(AudioChunk::silence(48_000, 2, 960).duration_us(), 10_000);
        assert_eq!(AudioChunk::silence(16_000, 1, 320).duration_us(), 20_000);
    }
}
