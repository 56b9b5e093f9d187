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

/// How a sender codes its audio chunks (part of [`EncoderConfig`](super::EncoderConfig)).
///
/// With [`AudioCodec::Opus`](super::AudioCodec::Opus) the client session makes
/// one Opus encoder, for `sample_rate` and `channels`, when it starts. With
/// `packet_ms` 20 it codes every chunk of that shape whose duration Opus takes
/// (2.5, 5, 10 or 20 ms) as one packet, and any other chunk as PCM16 (the codec
/// is named in every message). With `packet_ms` 40 or 60 it gathers 2 or 3
/// captured 20 ms chunks into one packet (fewer messages: each costs about 27
/// bytes of framing besides its audio) and names a lower decode rate
/// ([`packet_rate`](Self::packet_rate)) so that the packet still decodes to at
/// most [`AUDIO_CHUNK_CAPACITY`] samples; every chunk must then be 20 ms of the
/// configured shape ([`check`](Self::check)). Builds without the `opus`
/// feature send PCM16 whatever this says.
///
/// The default is PCM16 (what every receiver decodes, exactly);
/// [`AudioEncoding::board`] is the setting a board streams with.
///
/// ```
/// use poselink::proto::{AudioCodec, AudioEncoding};
/// let board = AudioEncoding::board();
/// assert_eq!((board.codec, board.packet_ms, board.bitrate_bps), (AudioCodec::Opus, 60, 8_000));
/// assert_eq!(board.packet_rate(), 16_000); // 60 ms at 16 kHz: 960 samples
/// assert_eq!(board.chunks_per_packet(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioEncoding {
    /// The codec. Default PCM16; Opus needs the `opus` feature (on by default).
    pub codec: super::AudioCodec,
    /// Opus's target bitrate, bits per second (500 … 512 000). Default 16 000:
    /// wideband speech.
    pub bitrate_bps: u32,
    /// Opus's complexity, 0 (cheapest) … 10. Default 5: half the CPU of 10,
    /// for speech little worse, on a Pi's core.
    pub complexity: u8,
    /// The captured audio's rate: one of [`OPUS_SAMPLE_RATES`]. Default 48 000.
    pub sample_rate: u32,
    /// The captured audio's channels, 1 or 2. Default 1.
    pub channels: u8,
    /// Milliseconds of audio per Opus packet: 20 (one packet per chunk), 40
    /// or 60 (2 or 3 captured 20 ms chunks per packet, adding 20 or 40 ms of
    /// latency). Default 20.
    pub packet_ms: u8,
}

impl Default for AudioEncoding {
    fn default() -> Self {
        AudioEncoding {
            codec: super::AudioCodec::Pcm16,
            bitrate_bps: 16_000,
            complexity: 5,
            sample_rate: 48_000,
            channels: 1,
            packet_ms: 20,
        }
    }
}

impl AudioEncoding {
    /// The board setting: Opus, VOIP, 8 kbit/s (speech), 60 ms packets
    /// (decoded at 16 kHz; 40 ms of latency more than 20 ms packets),
    /// complexity 5, from 48 kHz mono captured in 20 ms chunks. With 30 fps
    /// pose it keeps a board's uplink under 40 kbit/s, framing included
    /// (BENCHMARKS.md, "Uplink of a board").
    pub const fn board() -> AudioEncoding {
        AudioEncoding {
            codec: super::AudioCodec::Opus,
            bitrate_bps: 8_000,
            complexity: 5,
            sample_rate: 48_000,
            channels: 1,
            packet_ms: 60,
        }
    }

    /// Captured chunks per Opus packet: 1, 2 or 3 (`packet_ms` / 20; 1 for
    /// PCM16 or any other value).
    pub const fn chunks_per_packet(&self) -> usize {
        match (self.codec, self.packet_ms) {
            (super::AudioCodec::Opus, 40) => 2,
            (super::AudioCodec::Opus, 60) => 3,
            _ => 1,
        }
    }

    /// The rate a packet is named (and decoded) at: the highest of
    /// [`OPUS_SAMPLE_RATES`], at most `sample_rate`, at which a whole packet is
    /// at most [`AUDIO_CHUNK_CAPACITY`] samples.
    pub fn packet_rate(&self) -> u32 {
        let ms = 20 * self.chunks_per_packet() as u32;
        let ch = u32::from(self.channels.max(1));
        OPUS_SAMPLE_RATES
            .iter()
            .rev()
            .copied()
            .find(|&r| r <= self.sample_rate && r / 1000 * ms * ch <= AUDIO_CHUNK_CAPACITY as u32)
            .unwrap_or(OPUS_SAMPLE_RATES[0])
    }

    /// Checks the setting itself: a known codec's limits, and for Opus a rate
    /// of [`OPUS_SAMPLE_RATES`], 1 or 2 channels, `packet_ms` 20, 40 or 60.
    pub fn validate(&self) -> Result<(), Error> {
        if self.codec == super::AudioCodec::Pcm16 {
            return Ok(());
        }
        let bad = |what| Err(Error::BadAudio { what });
        if !OPUS_SAMPLE_RATES.contains(&self.sample_rate) {
            return bad("Opus encodes at 8000, 12000, 16000, 24000 or 48000 Hz only");
        }
        if !(1..=2).contains(&self.channels) {
            return bad("channels must be 1 or 2");
        }
        if !matches!(self.packet_ms, 20 | 40 | 60) {
            return bad("an Opus packet is 20, 40 or 60 ms");
        }
        if !(500..=512_000).contains(&self.bitrate_bps) {
            return bad("Opus's bitrate is 500 to 512000 bit/s");
        }
        Ok(())
    }

    /// Whether a sender with this setting takes `chunk`: with 40 or 60 ms
    /// packets, only 20 ms chunks of the configured rate and channels (they
    /// are gathered into packets); otherwise any valid chunk.
    pub fn check(&self, chunk: &AudioChunk) -> Result<(), Error> {
        chunk.validate()?;
        if self.chunks_per_packet() > 1
            && (chunk.sample_rate != self.sample_rate
                || chunk.channels != self.channels
                || u32::from(chunk.len) * 50 != self.sample_rate * u32::from(self.channels))
        {
            return Err(Error::BadAudio {
                what: "with 40 or 60 ms Opus packets every chunk must be 20 ms of the configured rate and channels",
            });
        }
        Ok(())
    }
}

/// Bytes an Opus packet in an audio message may take at most: one 20 ms frame
/// at Opus's highest bitrate (RFC 6716, section 3.2.1).
pub const MAX_OPUS_PACKET: usize = 1275;

/// The sample rates an Opus stream may be decoded at (RFC 6716, section 2).
pub const OPUS_SAMPLE_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// Samples per channel that an Opus `packet` decodes to at `sample_rate`, read
/// from its table-of-contents byte (RFC 6716, section 3.1) without decoding it:
/// a receiver checks a message's sample count against it, so a corrupt packet is
/// refused before it reaches a decoder.
///
/// ```
/// use poselink::proto::opus_packet_samples;
/// // TOC 0xf8: CELT-only fullband, 20 ms, one frame.
/// assert_eq!(opus_packet_samples(&[0xf8, 0, 0], 48_000), Ok(960));
/// assert!(opus_packet_samples(&[], 48_000).is_err());
/// ```
pub fn opus_packet_samples(packet: &[u8], sample_rate: u32) -> Result<usize, Error> {
    let bad = |what| Err(Error::BadAudio { what });
    let Some(&toc) = packet.first() else {
        return bad("an empty Opus packet");
    };
    if !OPUS_SAMPLE_RATES.contains(&sample_rate) {
        return bad("Opus decodes at 8000, 12000, 16000, 24000 or 48000 Hz only");
    }
    let config = toc >> 3;
    // Frame length in units of 2.5 ms.
    let units: u32 = match config {
        0..=11 => [4, 8, 16, 24][config as usize % 4], // SILK: 10, 20, 40, 60 ms
        12..=15 => [4, 8][config as usize % 2],        // hybrid: 10, 20 ms
        _ => [1, 2, 4, 8][config as usize % 4],        // CELT: 2.5, 5, 10, 20 ms
    };
    let frames: u32 = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => match packet.get(1) {
            Some(&c) if c & 0x3f > 0 => u32::from(c & 0x3f),
            _ => return bad("an Opus packet whose frame count is missing or zero"),
        },
    };
    // 2.5 ms = sample_rate / 400 samples per channel; at most 120 ms a packet.
    if frames * units > 48 {
        return bad("an Opus packet longer than 120 ms");
    }
    Ok((frames * units * sample_rate / 400) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_toc_durations() {
        // SILK NB 10 ms, one frame; SILK 60 ms; hybrid 20 ms, two frames (code 1);
        // CELT 2.5 ms, code 3 with 8 frames.
        assert_eq!(opus_packet_samples(&[0x00], 48_000), Ok(480));
        assert_eq!(opus_packet_samples(&[0x18], 16_000), Ok(960));
        assert_eq!(opus_packet_samples(&[0x69], 48_000), Ok(1920));
        assert_eq!(opus_packet_samples(&[0x83, 8], 48_000), Ok(960));
        assert!(opus_packet_samples(&[0x83], 48_000).is_err());
        assert!(opus_packet_samples(&[0x83, 0], 48_000).is_err());
        assert!(opus_packet_samples(&[0x1b, 3], 48_000).is_err()); // 3 × 60 ms
        assert!(opus_packet_samples(&[0x78], 44_100).is_err());
    }

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
