//! Audio coding for the client session: the sender's [`AudioEncoder`] turns a
//! captured chunk into an audio message (one Opus packet, or PCM16 where Opus is
//! off or the chunk's shape is not one Opus takes), and a receiver's
//! [`AudioDecoder`] turns an audio payload back into samples. libopus (the `opus`
//! feature) does the coding; both write into buffers made when they are made, so
//! coding a chunk allocates nothing. A corrupt packet is an error for that
//! chunk only: the decoder is reset and the stream goes on.

use crate::proto::{
    self, AudioChunk, AudioCodec, AudioEncoding, AudioPayload, Compressor, Error, Header,
};

/// Codes a session's outgoing audio chunks.
pub(super) struct AudioEncoder {
    cfg: AudioEncoding,
    #[cfg(feature = "opus")]
    opus: Option<opus::Encoder>,
    /// The last packet coded (libopus writes it here, then it is copied into
    /// the message).
    #[cfg(feature = "opus")]
    packet: Box<[u8; proto::MAX_OPUS_PACKET]>,
}

impl AudioEncoder {
    /// An encoder for `cfg`; with Opus, libopus's encoder is made here, once. A
    /// setting libopus refuses is logged and the session sends PCM16.
    pub(super) fn new(cfg: AudioEncoding) -> AudioEncoder {
        AudioEncoder {
            #[cfg(feature = "opus")]
            opus: match cfg.codec {
                AudioCodec::Opus => match make_encoder(&cfg) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        log::warn!("audio: cannot make an Opus encoder ({e}); sending PCM16");
                        None
                    }
                },
                AudioCodec::Pcm16 => None,
            },
            #[cfg(feature = "opus")]
            packet: Box::new([0; proto::MAX_OPUS_PACKET]),
            cfg,
        }
    }

    /// The codec this encoder's chunks go out with (chunks of another shape
    /// than configured go as PCM16).
    pub(super) fn codec(&self) -> AudioCodec {
        #[cfg(feature = "opus")]
        if self.opus.is_some() {
            return AudioCodec::Opus;
        }
        AudioCodec::Pcm16
    }

    /// Encodes `chunk` for `room` from `sender` into `out` (which takes
    /// [`proto::max_audio_message_len`] of the chunk's samples); returns the
    /// message length.
    pub(super) fn encode(
        &mut self,
        chunk: &AudioChunk,
        room: u16,
        sender: u16,
        compressor: &mut Compressor,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        #[cfg(feature = "opus")]
        if let Some(enc) = self.opus.as_mut()
            && chunk.sample_rate == self.cfg.sample_rate
            && chunk.channels == self.cfg.channels
            && opus_frame_fits(chunk)
        {
            chunk.validate()?;
            let n = enc
                .encode(chunk.pcm(), &mut self.packet[..])
                .map_err(|_| Error::BadAudio {
                    what: "the Opus encoder refused the chunk",
                })?;
            let payload = AudioPayload {
                codec: AudioCodec::Opus,
                channels: chunk.channels,
                sample_rate: chunk.sample_rate,
                len: chunk.len,
                samples: &self.packet[..n],
            };
            return proto::encode_audio_payload(
                &payload,
                chunk.seq,
                chunk.capture_ts_us,
                room,
                sender,
                out,
            );
        }
        let _ = &self.cfg;
        proto::encode_audio(chunk, room, sender, compressor, out)
    }
}

#[cfg(feature = "opus")]
fn make_encoder(cfg: &AudioEncoding) -> Result<opus::Encoder, opus::Error> {
    let channels = if cfg.channels == 2 {
        opus::Channels::Stereo
    } else {
        opus::Channels::Mono
    };
    let mut e = opus::Encoder::new(cfg.sample_rate, channels, opus::Application::Voip)?;
    e.set_bitrate(opus::Bitrate::Bits(cfg.bitrate_bps as i32))?;
    e.set_complexity(i32::from(cfg.complexity.min(10)))?;
    Ok(e)
}

/// Whether Opus takes the chunk as one frame: 2.5, 5, 10 or 20 ms (longer
/// frames do not fit a chunk's 960 samples at 48 kHz).
#[cfg(feature = "opus")]
fn opus_frame_fits(chunk: &AudioChunk) -> bool {
    let per_channel = (chunk.len / u16::from(chunk.channels.max(1))) as u32;
    let units = per_channel * 400;
    units.is_multiple_of(chunk.sample_rate) && matches!(units / chunk.sample_rate, 1 | 2 | 4 | 8)
}

/// Decodes one received audio stream's payloads into chunks. The Opus decoder
/// is made on the stream's first Opus chunk (and again if its rate or channels
/// change), then reused for every chunk.
#[derive(Default)]
pub(super) struct AudioDecoder {
    #[cfg(feature = "opus")]
    opus: Option<(u32, u8, opus::Decoder)>,
}

impl AudioDecoder {
    /// Decodes `a` (received with `header`) into `out`. An Opus chunk in a
    /// build without Opus, or a packet libopus cannot decode, is an error; the
    /// chunk is then not delivered and the stream's decoder starts afresh.
    pub(super) fn decode(
        &mut self,
        header: &Header,
        a: &AudioPayload<'_>,
        out: &mut AudioChunk,
    ) -> Result<(), Error> {
        match a.codec {
            AudioCodec::Pcm16 => a.to_chunk(header, out),
            #[cfg(feature = "opus")]
            AudioCodec::Opus => {
                let fresh = !matches!(&self.opus, Some((r, c, _)) if *r == a.sample_rate && *c == a.channels);
                if fresh {
                    let channels = if a.channels == 2 {
                        opus::Channels::Stereo
                    } else {
                        opus::Channels::Mono
                    };
                    let d = opus::Decoder::new(a.sample_rate, channels).map_err(|_| {
                        Error::BadAudio {
                            what: "no Opus decoder for this rate and channel count",
                        }
                    })?;
                    self.opus = Some((a.sample_rate, a.channels, d));
                }
                let Some((_, _, d)) = self.opus.as_mut() else {
                    unreachable!("made above");
                };
                let len = a.len as usize;
                match d.decode(a.samples, &mut out.samples[..len], false) {
                    Ok(n) if n * a.channels as usize == len => {
                        a.to_chunk_shape(header, out);
                        Ok(())
                    }
                    _ => {
                        let _ = d.reset_state();
                        Err(Error::BadAudio {
                            what: "an Opus packet that does not decode",
                        })
                    }
                }
            }
            #[cfg(not(feature = "opus"))]
            AudioCodec::Opus => Err(Error::BadAudio {
                what: "Opus audio, and this build has no Opus decoder (the `opus` feature)",
            }),
        }
    }
}

#[cfg(all(test, feature = "opus"))]
mod tests {
    use super::*;
    use crate::proto::{Message, Packet};

    const OPUS: AudioEncoding = AudioEncoding {
        codec: AudioCodec::Opus,
        bitrate_bps: 16_000,
        complexity: 5,
        sample_rate: 48_000,
        channels: 1,
    };

    fn tone(seq: u32) -> AudioChunk {
        let mut c = AudioChunk::silence(48_000, 1, 960);
        c.seq = seq;
        c.capture_ts_us = seq as u64 * 20_000;
        for (i, s) in c.samples.iter_mut().enumerate() {
            let t = (seq as usize * 960 + i) as f32 / 48_000.0;
            *s = ((t * 440.0 * core::f32::consts::TAU).sin() * 8_000.0) as i16;
        }
        c
    }

    #[test]
    fn opus_round_trip_keeps_shape_and_energy() {
        let mut enc = AudioEncoder::new(OPUS);
        assert_eq!(enc.codec(), AudioCodec::Opus);
        let mut dec = AudioDecoder::default();
        let mut c = Compressor::new(usize::MAX);
        let mut buf = [0u8; proto::max_audio_message_len(960)];
        let mut out = AudioChunk::default();
        let mut bytes = 0;
        for seq in 0..50 {
            let chunk = tone(seq);
            let n = enc.encode(&chunk, 3, 4, &mut c, &mut buf).unwrap();
            bytes += n;
            let p = Packet::new_checked(&buf[..n]).unwrap();
            let Message::Audio(a) = Message::parse(&p, &mut []).unwrap() else {
                panic!("not audio")
            };
            assert_eq!(a.codec, AudioCodec::Opus);
            dec.decode(&p.header(), &a, &mut out).unwrap();
            assert_eq!((out.seq, out.len, out.sample_rate), (seq, 960, 48_000));
            if seq > 5 {
                let rms = |c: &AudioChunk| {
                    (c.pcm().iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / 960.0).sqrt()
                };
                let (a, b) = (rms(&chunk), rms(&out));
                assert!((b / a - 1.0).abs() < 0.3, "rms {a} in, {b} out");
            }
        }
        // 16 kbit/s is 40 bytes a chunk; the envelope adds about 20.
        assert!(bytes / 50 < 90, "{} bytes a message", bytes / 50);
    }

    #[test]
    fn other_shapes_go_as_pcm16() {
        let mut enc = AudioEncoder::new(OPUS);
        let mut c = Compressor::new(usize::MAX);
        let mut buf = [0u8; proto::max_audio_message_len(960)];
        for chunk in [
            AudioChunk::silence(48_000, 1, 100), // not an Opus frame length
            AudioChunk::silence(44_100, 1, 882), // not the encoder's rate
            AudioChunk::silence(48_000, 2, 960), // not its channels
        ] {
            let n = enc.encode(&chunk, 1, 1, &mut c, &mut buf).unwrap();
            let p = Packet::new_checked(&buf[..n]).unwrap();
            let Message::Audio(a) = Message::parse(&p, &mut []).unwrap() else {
                panic!("not audio")
            };
            assert_eq!(a.codec, AudioCodec::Pcm16);
        }
    }

    #[test]
    fn a_corrupt_packet_is_an_error_and_the_stream_goes_on() {
        let mut enc = AudioEncoder::new(OPUS);
        let mut dec = AudioDecoder::default();
        let mut c = Compressor::new(usize::MAX);
        let mut buf = [0u8; proto::max_audio_message_len(960)];
        let mut out = AudioChunk::default();
        let n = enc.encode(&tone(0), 1, 1, &mut c, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let Message::Audio(mut a) = Message::parse(&p, &mut []).unwrap() else {
            panic!("not audio")
        };
        // One 20 ms frame (code 3) whose padding length runs past the end.
        let bad = [0xfb, 0x41, 0xff, 0xff];
        a.samples = &bad;
        out.seq = 77;
        assert!(dec.decode(&p.header(), &a, &mut out).is_err());
        assert_eq!(out.seq, 77, "the chunk is untouched");
        let n = enc.encode(&tone(1), 1, 1, &mut c, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let Message::Audio(a) = Message::parse(&p, &mut []).unwrap() else {
            panic!("not audio")
        };
        dec.decode(&p.header(), &a, &mut out).unwrap();
        assert_eq!(out.seq, 1);
    }
}
