//! The session's audio sending: [`Session::send_audio`] codes a chunk in place
//! in the transmit buffer (or holds it for a 40 or 60 ms Opus packet) and keeps
//! each message in its room's replay window; [`Session::flush_audio`] sends a
//! packet whose chunks did not all come. The coding itself is
//! [`audio_codec`](super::audio_codec)'s.

use crate::proto::{self, AudioChunk};
use crate::ws::FrameKind;

use super::rooms::next_mask;
use super::{AudioSent, RoomId, SendError, Session, full_or};

impl Session {
    /// Encodes `chunk` for `room` in place in the transmit buffer (as one Opus
    /// packet or PCM16: [`AudioEncoding`](proto::AudioEncoding)) and keeps a
    /// copy of the message in the room's replay window until the hub
    /// acknowledges it: a replay sends the same packet again.
    ///
    /// With 40 or 60 ms Opus packets the chunk is held until its packet is
    /// full (2 or 3 consecutive chunks): [`AudioSent::bytes`] is then 0. Held
    /// chunks go first, as a shorter packet, when the chunk is for another
    /// room or does not follow them; [`flush_audio`](Self::flush_audio) sends
    /// them when no chunk follows. A room's packets are numbered
    /// consecutively from its first chunk's `seq` / chunks per packet.
    pub fn send_audio(&mut self, room: RoomId, chunk: &AudioChunk) -> Result<AudioSent, SendError> {
        if !self.core.is_ready() {
            return Err(SendError::NotConnected);
        }
        if self.core.audio_encoder.chunks_per_packet() > 1 {
            let mut sent = AudioSent { bytes: 0, lost: 0 };
            if self.core.audio_encoder.must_flush_before(chunk, room.0) {
                sent = self.flush_audio()?;
            }
            let c = &mut self.core;
            c.rooms.joined(room).ok_or(SendError::NoRoom)?;
            let full = c
                .audio_encoder
                .hold(chunk, room.0)
                .map_err(SendError::Encode)?;
            if full {
                let more = self.flush_audio()?;
                sent.bytes += more.bytes;
                sent.lost += more.lost;
            }
            return Ok(sent);
        }
        let c = &mut self.core;
        let member = c.member;
        let (r, handle) = c.rooms.joined(room).ok_or(SendError::NoRoom)?;
        // Room for this chunk's longest message (as for a pose frame above).
        let buf =
            c.tx.reserve(
                proto::max_audio_message_len(chunk.pcm().len()),
                proto::MAX_MESSAGE_LEN,
            )
            .ok_or(SendError::TransmitFull)?;
        let n = c
            .audio_encoder
            .encode(chunk, (room.0, handle), member, &mut c.compressor, buf)
            .map_err(full_or(SendError::Encode))?;
        let lost = match r.replay.as_mut() {
            Some(replay) => replay.push(chunk.seq, chunk.capture_ts_us, &buf[..n]),
            None => 0,
        };
        let mask = next_mask(&mut c.rng);
        c.tx.commit(FrameKind::Binary, n, mask);
        Ok(AudioSent { bytes: n, lost })
    }

    /// Sends the chunks held for a 40 or 60 ms Opus packet that is not full
    /// yet, as a shorter packet (nothing if none are held; they are let go if
    /// their room was left). The engine calls it when no chunk has followed
    /// for a packet's time.
    pub fn flush_audio(&mut self) -> Result<AudioSent, SendError> {
        let c = &mut self.core;
        let Some(room) = c.audio_encoder.held_room() else {
            return Ok(AudioSent { bytes: 0, lost: 0 });
        };
        if !c.is_ready() {
            return Err(SendError::NotConnected);
        }
        let member = c.member;
        let Some((r, handle)) = c.rooms.joined(RoomId(room)) else {
            // Left (or not rejoined yet): what was held for it goes.
            c.audio_encoder.discard_held();
            return Err(SendError::NoRoom);
        };
        let seq = r
            .audio_seq
            .unwrap_or(c.audio_encoder.held_first() / c.audio_encoder.chunks_per_packet() as u32);
        let buf =
            c.tx.reserve(
                proto::max_audio_message_len(proto::AUDIO_CHUNK_CAPACITY),
                proto::MAX_MESSAGE_LEN,
            )
            .ok_or(SendError::TransmitFull)?;
        let m = c
            .audio_encoder
            .encode_held(handle, member, seq, buf)
            .map_err(full_or(SendError::Encode))?;
        r.audio_seq = Some(seq.wrapping_add(1));
        let lost = match r.replay.as_mut() {
            Some(replay) => replay.push(m.seq, m.ts_us, &buf[..m.len]),
            None => 0,
        };
        let mask = next_mask(&mut c.rng);
        c.tx.commit(FrameKind::Binary, m.len, mask);
        Ok(AudioSent { bytes: m.len, lost })
    }

    /// Whether chunks are held for an Opus packet not yet full
    /// ([`flush_audio`](Self::flush_audio)).
    pub fn audio_held(&self) -> bool {
        self.core.audio_encoder.held_room().is_some()
    }

    /// The room whose chunks are held, if any.
    pub fn audio_held_for(&self) -> Option<RoomId> {
        self.core.audio_encoder.held_room().map(RoomId)
    }

    /// The codec this session's audio goes out with.
    pub fn audio_codec(&self) -> proto::AudioCodec {
        self.core.audio_encoder.codec()
    }
}
