//! Audio coding for the client session: the sender's [`AudioEncoder`] turns
//! captured chunks into audio messages (one Opus packet per chunk, or per 2 or
//! 3 chunks gathered into a 40 or 60 ms packet, or PCM16 where Opus is off or
//! the chunk's shape is not one Opus takes), and a receiver's [`AudioDecoder`]
//! turns an audio payload back into samples. libopus (the `opus` feature) does
//! the coding; both write into buffers made when they are made, so coding a
//! chunk allocates nothing. A corrupt packet is an error for that chunk only:
//! the decoder is reset and the stream goes on.

use crate::proto::{
    self, AudioChunk, AudioCodec, AudioEncoding, AudioPayload, Compressor, Error, Header,
};

/// Samples the encoder gathers at most: 60 ms of 48 kHz stereo.
#[cfg(feature = "opus")]
const MAX_HELD: usize = 3 * proto::AUDIO_CHUNK_CAPACITY * 2;

/// A message made from the held chunks: its length, sequence number and
/// capture time (what the replay window keeps it under).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Coded {
    pub(super) len: usize,
    pub(super) seq: u32,
    pub(super) ts_us: u64,
}

/// Codes a session's outgoing audio chunks. Opus keeps state from packet to
/// packet (its predictions assume the receiver decoded the previous packet), so
/// each room's stream has an encoder of its own: coding one room's chunks with
/// another room's state would make every receiver decode against packets it
/// never got.
pub(super) struct AudioEncoder {
    cfg: AudioEncoding,
    /// One encoder per room slot, made when the slot is first joined (made at
    /// a join, a control step, never while sending) and reset when it is
    /// joined again; slot 0's is made at start, which checks the settings, so
    /// it is there exactly when Opus is in use ([`opus_on`](Self::opus_on)).
    #[cfg(feature = "opus")]
    opus: Vec<Option<opus::Encoder>>,
    /// The last packet coded (libopus writes it here, then it is copied into
    /// the message).
    #[cfg(feature = "opus")]
    packet: Box<[u8; proto::MAX_OPUS_PACKET]>,
    /// Chunks gathered for the next 40 or 60 ms packet (interleaved samples at
    /// the captured rate).
    #[cfg(feature = "opus")]
    held: Box<[i16; MAX_HELD]>,
    /// Samples in `held`, and how many chunks they came from.
    held_len: usize,
    held_chunks: usize,
    /// The room (index) the held chunks are for, the `seq` of the first and
    /// the last, and the capture time of the first.
    held_room: u16,
    held_first: u32,
    held_last: u32,
    held_ts_us: u64,
}

impl AudioEncoder {
    /// An encoder for `cfg` and up to `rooms` rooms at once; with Opus, the
    /// first room's libopus encoder is made here. A setting libopus refuses is
    /// logged and the session sends PCM16.
    pub(super) fn new(cfg: AudioEncoding, rooms: usize) -> AudioEncoder {
        #[cfg(feature = "opus")]
        let first = match cfg.codec {
            AudioCodec::Opus => match make_encoder(&cfg) {
                Ok(e) => Some(e),
                Err(e) => {
                    log::warn!("audio: cannot make an Opus encoder ({e}); sending PCM16");
                    None
                }
            },
            AudioCodec::Pcm16 => None,
        };
        #[cfg(not(feature = "opus"))]
        let _ = rooms;
        AudioEncoder {
            #[cfg(feature = "opus")]
            opus: {
                let mut v = Vec::with_capacity(rooms.max(1));
                v.push(first);
                v.resize_with(rooms.max(1), || None);
                v
            },
            #[cfg(feature = "opus")]
            packet: Box::new([0; proto::MAX_OPUS_PACKET]),
            #[cfg(feature = "opus")]
            held: Box::new([0; MAX_HELD]),
            held_len: 0,
            held_chunks: 0,
            held_room: 0,
            held_first: 0,
            held_last: 0,
            held_ts_us: 0,
            cfg,
        }
    }

    /// The codec this encoder's chunks go out with (chunks of another shape
    /// than configured go as PCM16).
    pub(super) fn codec(&self) -> AudioCodec {
        #[cfg(feature = "opus")]
        if self.opus_on() {
            return AudioCodec::Opus;
        }
        AudioCodec::Pcm16
    }

    /// Whether Opus is in use: the settings were Opus and libopus took them
    /// (slot 0's encoder, made at start, is there).
    #[cfg(feature = "opus")]
    fn opus_on(&self) -> bool {
        self.opus.first().is_some_and(Option::is_some)
    }

    /// Room slot `room` starts a new stream (it was joined): its Opus encoder
    /// is made the first time, and reset later, so the stream starts from a
    /// clean state. Allocates (libopus's state) only on a slot's first join.
    pub(super) fn start_room(&mut self, room: u16) {
        #[cfg(feature = "opus")]
        if self.opus_on()
            && let Some(slot) = self.opus.get_mut(usize::from(room))
        {
            match slot {
                Some(e) => {
                    if let Err(e) = e.reset_state() {
                        log::warn!("audio: cannot reset room {room}'s Opus encoder ({e})");
                    }
                }
                None => match make_encoder(&self.cfg) {
                    Ok(e) => *slot = Some(e),
                    // The settings were taken once, so only memory can fail
                    // here: the room's single chunks then go as PCM16, and
                    // gathered ones (40, 60 ms packets) are refused.
                    Err(e) => log::warn!(
                        "audio: cannot make room {room}'s Opus encoder ({e}); its audio goes as PCM16 or not at all"
                    ),
                },
            }
        }
        #[cfg(not(feature = "opus"))]
        let _ = room;
    }

    /// Captured chunks per message: 2 or 3 when chunks are gathered into 40
    /// or 60 ms Opus packets, else 1.
    pub(super) fn chunks_per_packet(&self) -> usize {
        if self.codec() == AudioCodec::Opus {
            self.cfg.chunks_per_packet()
        } else {
            1
        }
    }

    /// The room (index) whose chunks are held for a packet not yet full.
    pub(super) fn held_room(&self) -> Option<u16> {
        (self.held_chunks > 0).then_some(self.held_room)
    }

    /// The `seq` of the first held chunk.
    pub(super) fn held_first(&self) -> u32 {
        self.held_first
    }

    /// Whether `chunk` for `room` cannot join the held chunks (another room,
    /// or not the next chunk of the stream), so they must go first, as a
    /// shorter packet.
    pub(super) fn must_flush_before(&self, chunk: &AudioChunk, room: u16) -> bool {
        self.held_chunks > 0
            && (room != self.held_room || Some(chunk.seq) != self.held_last.checked_add(1))
    }

    /// Adds `chunk` (for `room`) to the held chunks; returns whether the
    /// packet is full. The chunk must be able to join the held ones
    /// ([`must_flush_before`]) and be of the configured shape
    /// ([`AudioEncoding::check`]).
    ///
    /// [`must_flush_before`]: Self::must_flush_before
    pub(super) fn hold(&mut self, chunk: &AudioChunk, room: u16) -> Result<bool, Error> {
        self.cfg.check(chunk)?;
        let per = self.chunks_per_packet() as u32;
        let pcm = chunk.pcm();
        #[cfg(feature = "opus")]
        {
            let end = self.held_len + pcm.len();
            if self.held_chunks >= per as usize || end > MAX_HELD {
                return Err(Error::BadAudio {
                    what: "more audio than one Opus packet holds",
                });
            }
            self.held[self.held_len..end].copy_from_slice(pcm);
        }
        if self.held_chunks == 0 {
            self.held_room = room;
            self.held_first = chunk.seq;
            self.held_ts_us = chunk.capture_ts_us;
        }
        self.held_last = chunk.seq;
        self.held_len += pcm.len();
        self.held_chunks += 1;
        Ok(self.held_chunks == per as usize)
    }

    /// Lets the held chunks go unsent (their room was left).
    pub(super) fn discard_held(&mut self) {
        self.held_len = 0;
        self.held_chunks = 0;
    }

    /// Codes the held chunks as one Opus packet (20, 40 or 60 ms, named at
    /// [`AudioEncoding::packet_rate`]) into `out` for the room's `handle`, and
    /// lets them go; the message is `seq`.
    pub(super) fn encode_held(
        &mut self,
        handle: u16,
        sender: u16,
        seq: u32,
        out: &mut [u8],
    ) -> Result<Coded, Error> {
        let held = self.held_len;
        self.held_len = 0;
        self.held_chunks = 0;
        #[cfg(feature = "opus")]
        if let Some(Some(enc)) = self.opus.get_mut(usize::from(self.held_room)) {
            let n = enc
                .encode(&self.held[..held], &mut self.packet[..])
                .map_err(|_| Error::BadAudio {
                    what: "the Opus encoder refused the chunks",
                })?;
            let rate = self.cfg.packet_rate();
            // Samples at the packet's rate: the held frames scaled down.
            let len = held as u64 * u64::from(rate) / u64::from(self.cfg.sample_rate);
            let payload = AudioPayload {
                codec: AudioCodec::Opus,
                channels: self.cfg.channels,
                sample_rate: rate,
                len: len as u16,
                samples: &self.packet[..n],
            };
            let len =
                proto::encode_audio_payload(&payload, seq, self.held_ts_us, handle, sender, out)?;
            return Ok(Coded {
                len,
                seq,
                ts_us: self.held_ts_us,
            });
        }
        let _ = (held, handle, sender, seq, out);
        Err(Error::BadAudio {
            what: "no Opus encoder to code the held chunks",
        })
    }

    /// Encodes `chunk` alone for room slot `slot` (wire handle `room`) from
    /// `sender` into `out` (which takes [`proto::max_audio_message_len`] of
    /// the chunk's samples); returns the message length.
    pub(super) fn encode(
        &mut self,
        chunk: &AudioChunk,
        (slot, room): (u16, u16),
        sender: u16,
        compressor: &mut Compressor,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        #[cfg(feature = "opus")]
        if let Some(Some(enc)) = self.opus.get_mut(usize::from(slot))
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
        let _ = (&self.cfg, slot);
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
        packet_ms: 20,
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
        let mut enc = AudioEncoder::new(OPUS, 1);
        assert_eq!(enc.codec(), AudioCodec::Opus);
        let mut dec = AudioDecoder::default();
        let mut c = Compressor::new(usize::MAX);
        let mut buf = [0u8; proto::max_audio_message_len(960)];
        let mut out = AudioChunk::default();
        let mut bytes = 0;
        for seq in 0..50 {
            let chunk = tone(seq);
            let n = enc.encode(&chunk, (0, 3), 4, &mut c, &mut buf).unwrap();
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

    /// The Opus packet of `chunk` coded for room slot `slot` (payload only).
    fn packet(enc: &mut AudioEncoder, slot: u16, chunk: &AudioChunk) -> Vec<u8> {
        let mut c = Compressor::new(usize::MAX);
        let mut buf = [0u8; proto::max_audio_message_len(960)];
        let n = enc.encode(chunk, (slot, 1), 1, &mut c, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let Message::Audio(a) = Message::parse(&p, &mut []).unwrap() else {
            panic!("not audio")
        };
        assert_eq!(a.codec, AudioCodec::Opus);
        a.samples.to_vec()
    }

    /// Room 2's signal: the tone an octave up, quieter.
    fn other(seq: u32) -> AudioChunk {
        let mut c = tone(seq);
        for (i, s) in c.samples.iter_mut().enumerate() {
            let t = (seq as usize * 960 + i) as f32 / 48_000.0;
            *s = ((t * 880.0 * core::f32::consts::TAU).sin() * 3_000.0) as i16;
        }
        c
    }

    #[test]
    fn each_room_has_its_own_opus_stream() {
        // Chunks for two rooms, interleaved, as an app streaming to both sends
        // them: each room's packets are exactly those of an encoder that saw
        // only that room's chunks (a shared encoder's would differ from the
        // second packet on: Opus predicts from the previous packet).
        let mut both = AudioEncoder::new(OPUS, 3);
        both.start_room(0);
        both.start_room(2);
        let (mut alone0, mut alone2) = (AudioEncoder::new(OPUS, 1), AudioEncoder::new(OPUS, 1));
        for seq in 0..20 {
            assert_eq!(
                packet(&mut both, 0, &tone(seq)),
                packet(&mut alone0, 0, &tone(seq)),
                "room 0, chunk {seq}"
            );
            assert_eq!(
                packet(&mut both, 2, &other(seq)),
                packet(&mut alone2, 0, &other(seq)),
                "room 2, chunk {seq}"
            );
        }
        // Joined again, a slot's stream starts afresh.
        both.start_room(2);
        let mut fresh = AudioEncoder::new(OPUS, 1);
        for seq in 0..5 {
            assert_eq!(
                packet(&mut both, 2, &tone(seq)),
                packet(&mut fresh, 0, &tone(seq))
            );
        }
    }

    #[test]
    fn other_shapes_go_as_pcm16() {
        let mut enc = AudioEncoder::new(OPUS, 1);
        let mut c = Compressor::new(usize::MAX);
        let mut buf = [0u8; proto::max_audio_message_len(960)];
        for chunk in [
            AudioChunk::silence(48_000, 1, 100), // not an Opus frame length
            AudioChunk::silence(44_100, 1, 882), // not the encoder's rate
            AudioChunk::silence(48_000, 2, 960), // not its channels
        ] {
            let n = enc.encode(&chunk, (0, 1), 1, &mut c, &mut buf).unwrap();
            let p = Packet::new_checked(&buf[..n]).unwrap();
            let Message::Audio(a) = Message::parse(&p, &mut []).unwrap() else {
                panic!("not audio")
            };
            assert_eq!(a.codec, AudioCodec::Pcm16);
        }
    }

    #[test]
    fn a_corrupt_packet_is_an_error_and_the_stream_goes_on() {
        let mut enc = AudioEncoder::new(OPUS, 1);
        let mut dec = AudioDecoder::default();
        let mut c = Compressor::new(usize::MAX);
        let mut buf = [0u8; proto::max_audio_message_len(960)];
        let mut out = AudioChunk::default();
        let n = enc.encode(&tone(0), (0, 1), 1, &mut c, &mut buf).unwrap();
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
        let n = enc.encode(&tone(1), (0, 1), 1, &mut c, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let Message::Audio(a) = Message::parse(&p, &mut []).unwrap() else {
            panic!("not audio")
        };
        dec.decode(&p.header(), &a, &mut out).unwrap();
        assert_eq!(out.seq, 1);
    }

    #[test]
    fn sixty_ms_packets_gather_three_consecutive_chunks() {
        let mut enc = AudioEncoder::new(AudioEncoding::board(), 2);
        enc.start_room(1);
        assert_eq!(enc.chunks_per_packet(), 3);
        let mut dec = AudioDecoder::default();
        let mut buf = [0u8; proto::max_audio_message_len(960)];
        let mut out = AudioChunk::default();
        assert!(!enc.hold(&tone(4), 1).unwrap());
        assert!(!enc.must_flush_before(&tone(5), 1));
        assert!(enc.must_flush_before(&tone(6), 1), "not the next chunk");
        assert!(enc.must_flush_before(&tone(5), 2), "another room");
        assert!(!enc.hold(&tone(5), 1).unwrap());
        assert!(enc.hold(&tone(6), 1).unwrap(), "three: full");
        assert_eq!((enc.held_room(), enc.held_first()), (Some(1), 4));
        let m = enc.encode_held(9, 2, 7, &mut buf).unwrap();
        assert_eq!((m.seq, m.ts_us, enc.held_room()), (7, 4 * 20_000, None));
        let p = Packet::new_checked(&buf[..m.len]).unwrap();
        let Message::Audio(a) = Message::parse(&p, &mut []).unwrap() else {
            panic!("not audio")
        };
        assert_eq!(
            (a.codec, a.sample_rate, a.len),
            (AudioCodec::Opus, 16_000, 960)
        );
        dec.decode(&p.header(), &a, &mut out).unwrap();
        assert_eq!((out.seq, out.len, out.sample_rate), (7, 960, 16_000));
        // A short packet: one chunk, 20 ms at 16 kHz.
        assert!(!enc.hold(&tone(7), 1).unwrap());
        let m = enc.encode_held(9, 2, 8, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..m.len]).unwrap();
        let Message::Audio(a) = Message::parse(&p, &mut []).unwrap() else {
            panic!("not audio")
        };
        assert_eq!(a.len, 320);
        // A chunk of another shape is refused, not gathered.
        assert!(enc.hold(&AudioChunk::silence(48_000, 1, 480), 1).is_err());
        assert_eq!(enc.held_room(), None);
    }
}
