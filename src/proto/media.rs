//! Pose and audio payloads as received: how a pose payload is coded (keyframe,
//! delta, raw) and the audio payload (codec, shape, the coded bytes), with the
//! checks that make a parsed payload safe to hand on — a pose body of the right
//! length, an audio body within the chunk capacity whose Opus packet lasts as
//! long as its sample count says. Control messages are in `message`; the pose
//! codec that reads a pose body is `pose_codec`.

use serde::{Deserialize, Serialize};

use super::Error;
use super::audio::{AUDIO_CHUNK_CAPACITY, AudioChunk, MAX_OPUS_PACKET, opus_packet_samples};
use super::pose::LANDMARK_COUNT;
use super::wire::{Flags, Header, Reader};

/// Bytes of a raw pose body: 33 × 5 × `f32`.
pub const RAW_BODY_LEN: usize = LANDMARK_COUNT * 5 * 4;
/// Bytes of a keyframe body: 33 × (3 × u16 + 2 × u8).
pub const KEYFRAME_BODY_LEN: usize = LANDMARK_COUNT * 8;

/// How a pose payload is coded (from the header flags and the payload's first bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PoseCoding {
    /// 33 × 5 little-endian `f32`.
    Raw,
    /// Quantised values, decodable alone.
    Keyframe,
    /// Entropy-coded residuals against the frame `ref_back` sequence numbers earlier.
    Delta {
        /// `seq` minus the reference frame's `seq` (at least 1).
        ref_back: u32,
    },
}

/// A pose payload as received: decode it with a
/// [`PoseDecoder`](super::PoseDecoder) kept per (sender, person).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PosePayload<'a> {
    /// Which person of the sender.
    pub person: u32,
    /// How the body is coded.
    pub coding: PoseCoding,
    /// The coded landmarks.
    pub body: &'a [u8],
}

/// How an audio payload's samples are coded: the `codec` varint of
/// `docs/PROTOCOL.md` section 8. A receiver that does not know a value refuses
/// the message with a clear error rather than play noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AudioCodec {
    /// Interleaved signed 16-bit little-endian PCM (wire value 0).
    Pcm16,
    /// One Opus packet (RFC 6716) of the chunk's duration (wire value 1).
    Opus,
}

impl AudioCodec {
    /// The codec's value on the wire.
    pub const fn wire_value(self) -> u32 {
        match self {
            AudioCodec::Pcm16 => 0,
            AudioCodec::Opus => 1,
        }
    }

    /// The codec's name in JSON mode and in logs: `pcm16` or `opus`.
    pub const fn name(self) -> &'static str {
        match self {
            AudioCodec::Pcm16 => "pcm16",
            AudioCodec::Opus => "opus",
        }
    }
}

/// An audio payload as received: a view over the coded bytes.
///
/// Layout: codec (varint: 0 = PCM16, 1 = Opus), channels (u8), sample rate
/// (varint), sample count over all channels (varint), then the coded bytes: for
/// PCM16 the samples (2 bytes each, little-endian), for Opus one packet that
/// decodes to exactly that many samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioPayload<'a> {
    /// How the samples are coded.
    pub codec: AudioCodec,
    /// Interleaved channels.
    pub channels: u8,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Sample count over all channels (for Opus: what the packet decodes to).
    pub len: u16,
    /// The coded bytes: PCM16 samples, or one Opus packet.
    pub samples: &'a [u8],
}

impl AudioPayload<'_> {
    /// Copies PCM16 samples into a chunk, with `seq` and `capture_ts_us` from
    /// `header`. An Opus payload needs a decoder (the client session has them):
    /// it is refused here, the chunk untouched.
    pub fn to_chunk(&self, header: &Header, out: &mut AudioChunk) -> Result<(), Error> {
        if self.codec != AudioCodec::Pcm16 {
            return Err(Error::BadAudio {
                what: "an Opus chunk needs a decoder, not a copy",
            });
        }
        self.to_chunk_shape(header, out);
        for (dst, src) in out.samples.iter_mut().zip(self.samples.chunks_exact(2)) {
            *dst = i16::from_le_bytes([src[0], src[1]]);
        }
        Ok(())
    }

    /// Sets everything of `out` but its samples: `seq`, capture time, rate,
    /// channels and length.
    pub fn to_chunk_shape(&self, header: &Header, out: &mut AudioChunk) {
        out.seq = header.seq;
        out.capture_ts_us = header.ts_us;
        out.sample_rate = self.sample_rate;
        out.channels = self.channels;
        out.len = self.len;
    }
}

pub(super) fn parse_pose(flags: Flags, payload: &[u8]) -> Result<PosePayload<'_>, Error> {
    let mut r = Reader::new(payload);
    let person = r.varint_u32()?;
    let raw = flags.contains(Flags::RAW);
    let key = flags.contains(Flags::KEYFRAME);
    let coding = match (raw, key) {
        (true, true) => {
            return Err(Error::Malformed {
                what: "the pose flags (raw and keyframe together)",
            });
        }
        (true, false) => PoseCoding::Raw,
        (false, true) => PoseCoding::Keyframe,
        (false, false) => {
            let ref_back = r.varint_u32()?;
            if ref_back == 0 {
                return Err(Error::Malformed {
                    what: "the pose delta's reference (zero)",
                });
            }
            PoseCoding::Delta { ref_back }
        }
    };
    let body = r.rest();
    let expected = match coding {
        PoseCoding::Raw => Some(RAW_BODY_LEN),
        PoseCoding::Keyframe => Some(KEYFRAME_BODY_LEN),
        PoseCoding::Delta { .. } => None,
    };
    if let Some(n) = expected {
        if body.len() < n {
            return Err(Error::Truncated {
                needed: payload.len() - body.len() + n,
                available: payload.len(),
            });
        }
        if body.len() > n {
            return Err(Error::Malformed {
                what: "the pose body (longer than its coding)",
            });
        }
    }
    Ok(PosePayload {
        person,
        coding,
        body,
    })
}

pub(super) fn parse_audio(payload: &[u8]) -> Result<AudioPayload<'_>, Error> {
    let mut r = Reader::new(payload);
    let codec = match r.varint_u32()? {
        0 => AudioCodec::Pcm16,
        1 => AudioCodec::Opus,
        _ => {
            return Err(Error::Malformed {
                what: "the audio codec (unknown)",
            });
        }
    };
    let channels = r.u8()?;
    let sample_rate = r.varint_u32()?;
    let len = r.varint_u32()?;
    let probe = AudioChunk::silence(sample_rate, channels, len.min(u16::MAX as u32) as u16);
    if len as usize > AUDIO_CHUNK_CAPACITY {
        return Err(Error::BadAudio {
            what: "more than 960 samples in one chunk",
        });
    }
    probe.validate()?;
    let samples = match codec {
        AudioCodec::Pcm16 => {
            let samples = r.take(len as usize * 2)?;
            if !r.rest().is_empty() {
                return Err(Error::Malformed {
                    what: "the audio body (longer than its sample count)",
                });
            }
            samples
        }
        AudioCodec::Opus => {
            let packet = r.rest();
            if packet.len() > MAX_OPUS_PACKET {
                return Err(Error::BadAudio {
                    what: "an Opus packet longer than 1275 bytes",
                });
            }
            let per_channel = opus_packet_samples(packet, sample_rate)?;
            if per_channel * channels as usize != len as usize {
                return Err(Error::BadAudio {
                    what: "an Opus packet whose duration is not the chunk's sample count",
                });
            }
            packet
        }
    };
    Ok(AudioPayload {
        codec,
        channels,
        sample_rate,
        len: len as u16,
        samples,
    })
}
