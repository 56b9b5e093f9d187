//! The encoders of the protocol's messages: control messages (postcard bodies,
//! with the fields a newer minor version appended written after them), the room
//! snapshot (written from the hub's member list) and audio chunks. Each writes
//! into the caller's buffer and returns the message's length; nothing allocates.
//! Their inverse, [`Message::parse`], is in `message`.

use serde::Serialize;

use super::message::AudioPayload;
use super::message::{HelloHead, MemberInfo, Message, Role, SnapshotHead};
use super::wire::{Flags, Header, Kind, seal};
use super::{AudioChunk, Compressor, Error};

/// Encodes a control message (every kind but pose and audio, which have their own
/// encoders) with `header` into `out`; returns the message length.
///
/// ```
/// use poselink::proto::{encode_control, Header, Join, Kind, Message, Role};
/// let mut buf = [0u8; 128];
/// let join = Message::Join(Join { room: "studio-1", role: Role::Member });
/// let n = encode_control(&Header::new(Kind::Join, 0, 4, 2, 0), &join, &mut buf).unwrap();
/// assert!(n < 32);
/// ```
pub fn encode_control(header: &Header, msg: &Message<'_>, out: &mut [u8]) -> Result<usize, Error> {
    let mut h = *header;
    h.kind = msg.kind();
    h.flags = Flags::NONE;
    let start = h.emit(out)?;
    let body = &mut out[start..];
    fn pc<T: Serialize>(v: &T, b: &mut [u8]) -> Result<usize, Error> {
        postcard::to_slice(v, b)
            .map(|s| s.len())
            .map_err(|_| Error::BufferTooSmall { needed: 0 })
    }
    // An appended u64 (a stream id) after `n` bytes, unless it is 0.
    fn append(v: u64, n: usize, b: &mut [u8]) -> Result<usize, Error> {
        Ok(if v == 0 { n } else { n + pc(&v, &mut b[n..])? })
    }
    let n = match msg {
        Message::Hello(m) => {
            let head = HelloHead {
                minor: m.minor,
                token: m.token,
                resume: m.resume,
                client: m.client,
            };
            let n = pc(&head, body)?;
            append(m.stream, n, body)?
        }
        Message::Welcome(m) => pc(m, body)?,
        Message::Join(m) => pc(m, body)?,
        Message::Leave(m) => pc(m, body)?,
        Message::RoomSnapshot(m) => {
            let (count, list, streams) = m.members.raw();
            let head = SnapshotHead {
                name: m.name,
                your_role: m.your_role,
                count,
            };
            let n = pc(&head, body)?;
            let tail = list.len() + streams.len();
            if body.len() < n + tail {
                return Err(Error::BufferTooSmall {
                    needed: start + n + tail + 4,
                });
            }
            body[n..n + list.len()].copy_from_slice(list);
            body[n + list.len()..n + tail].copy_from_slice(streams);
            n + tail
        }
        Message::MemberJoined(m) => {
            let n = pc(&m.member, body)?;
            append(m.stream, n, body)?
        }
        Message::MemberLeft(m) => pc(m, body)?,
        Message::RoleChanged(m) => pc(m, body)?,
        Message::Kick(m) => pc(m, body)?,
        Message::CloseRoom(m) => pc(m, body)?,
        Message::Error(m) => pc(m, body)?,
        Message::Ping(m) => pc(m, body)?,
        Message::Pong(m) => pc(m, body)?,
        Message::Ack(m) => pc(m, body)?,
        Message::NeedsKeyframe(m) => pc(m, body)?,
        Message::Pose(_) | Message::Audio(_) => {
            return Err(Error::Malformed {
                what: "a media message given to encode_control (use the pose or audio encoder)",
            });
        }
    };
    // Refuse to send what every receiver would refuse (a bad name, an overlong
    // reason): control messages are rare, so checking by parsing costs nothing
    // that matters and keeps the two directions from drifting apart.
    Message::parse_payload(&h, &out[start..start + n])?;
    seal(out, start + n)
}

/// Encodes a room snapshot from the hub's member list (`header.room` is the handle).
///
/// ```
/// use poselink::proto::{encode_snapshot, Header, Kind, MemberInfo, Message, Packet, Role};
/// let members = [MemberInfo { member: 1, role: Role::Owner, user: "ana" },
///                MemberInfo { member: 2, role: Role::Viewer, user: "bo" }];
/// let mut buf = [0u8; 256];
/// let n = encode_snapshot(&Header::new(Kind::RoomSnapshot, 3, 0, 1, 0), "gym", Role::Viewer, &members, &mut buf).unwrap();
/// let p = Packet::new_checked(&buf[..n]).unwrap();
/// let mut s = [0u8; 0];
/// let Message::RoomSnapshot(snap) = Message::parse(&p, &mut s).unwrap() else { panic!() };
/// assert_eq!(snap.members.iter().nth(1).unwrap().user, "bo");
/// ```
pub fn encode_snapshot(
    header: &Header,
    name: &str,
    your_role: Role,
    members: &[MemberInfo<'_>],
    out: &mut [u8],
) -> Result<usize, Error> {
    encode_snapshot_with_streams(header, name, your_role, members, &[], out)
}

/// [`encode_snapshot`] with the members' stream ids (minor 1): `streams[k]` is
/// the stream id of `members[k]`. They are written after the member list, one
/// per member, unless every one is 0 (or `streams` is empty), which a minor-0
/// receiver's snapshot looks like.
///
/// ```
/// use poselink::proto::{encode_snapshot_with_streams, Header, Kind, MemberInfo, Message, Packet, Role};
/// let members = [MemberInfo { member: 1, role: Role::Owner, user: "ana" },
///                MemberInfo { member: 2, role: Role::Viewer, user: "bo" }];
/// let mut buf = [0u8; 256];
/// let h = Header::new(Kind::RoomSnapshot, 3, 0, 1, 0);
/// let n = encode_snapshot_with_streams(&h, "gym", Role::Viewer, &members, &[77, 0], &mut buf).unwrap();
/// let p = Packet::new_checked(&buf[..n]).unwrap();
/// let Message::RoomSnapshot(snap) = Message::parse(&p, &mut []).unwrap() else { panic!() };
/// let ids: Vec<u64> = snap.members.iter_with_streams().map(|(_, s)| s).collect();
/// assert_eq!(ids, [77, 0]);
/// ```
pub fn encode_snapshot_with_streams(
    header: &Header,
    name: &str,
    your_role: Role,
    members: &[MemberInfo<'_>],
    streams: &[u64],
    out: &mut [u8],
) -> Result<usize, Error> {
    let count = u16::try_from(members.len()).map_err(|_| Error::Malformed {
        what: "the member list (more than 65535 members)",
    })?;
    let mut h = *header;
    h.kind = Kind::RoomSnapshot;
    h.flags = Flags::NONE;
    let mut pos = h.emit(out)?;
    let head = SnapshotHead {
        name,
        your_role,
        count,
    };
    let full = |_| Error::BufferTooSmall { needed: 0 };
    pos += postcard::to_slice(&head, &mut out[pos..])
        .map_err(full)?
        .len();
    for m in members {
        pos += postcard::to_slice(m, &mut out[pos..]).map_err(full)?.len();
    }
    if streams.iter().any(|&s| s != 0) {
        for k in 0..members.len() {
            let id = streams.get(k).copied().unwrap_or(0);
            pos += postcard::to_slice(&id, &mut out[pos..])
                .map_err(full)?
                .len();
        }
    }
    let start = h.buffer_len();
    Message::parse_payload(&h, &out[start..pos])?;
    seal(out, pos)
}

/// Payload bytes an uncompressed audio chunk of `samples` samples takes at most:
/// the codec, channel, rate and length fields, then the PCM16.
const fn audio_payload_max_len(samples: usize) -> usize {
    1 + 1 + 5 + 5 + 2 * samples
}

/// The longest message [`encode_audio`] writes for a chunk of `samples`
/// samples (all channels): the longest envelope header, the payload and the
/// CRC (compression only ever shortens it). A buffer this long always takes
/// such a chunk.
pub const fn max_audio_message_len(samples: usize) -> usize {
    super::wire::MAX_HEADER_LEN + audio_payload_max_len(samples) + super::wire::CRC_LEN
}

/// Encodes an audio chunk for `room` from `sender` into `out`, compressing the
/// payload if the compressor finds that worth it; returns the message length.
///
/// ```
/// use poselink::proto::{encode_audio, AudioChunk, Compressor, Message, Packet};
/// let mut chunk = AudioChunk::silence(48_000, 1, 960);
/// chunk.seq = 9;
/// let mut c = Compressor::new(usize::MAX); // no compression
/// let mut buf = [0u8; 2048];
/// let n = encode_audio(&chunk, 2, 5, &mut c, &mut buf).unwrap();
/// let p = Packet::new_checked(&buf[..n]).unwrap();
/// assert_eq!(p.header().seq, 9);
/// ```
pub fn encode_audio(
    chunk: &AudioChunk,
    room: u16,
    sender: u16,
    compressor: &mut Compressor,
    out: &mut [u8],
) -> Result<usize, Error> {
    chunk.validate()?;
    let header = Header::new(Kind::Audio, room, sender, chunk.seq, chunk.capture_ts_us);
    let start = header.emit(out)?;
    let pcm = chunk.pcm();
    let need = start + audio_payload_max_len(pcm.len()) + super::wire::CRC_LEN;
    if out.len() < need {
        return Err(Error::BufferTooSmall { needed: need });
    }
    let mut pos = start;
    pos += super::wire::put_varint(&mut out[pos..], 0); // PCM16
    out[pos] = chunk.channels;
    pos += 1;
    pos += super::wire::put_varint(&mut out[pos..], chunk.sample_rate as u64);
    pos += super::wire::put_varint(&mut out[pos..], pcm.len() as u64);
    for (dst, s) in out[pos..pos + pcm.len() * 2].chunks_exact_mut(2).zip(pcm) {
        dst.copy_from_slice(&s.to_le_bytes());
    }
    pos += pcm.len() * 2;
    let n = compressor.finish_payload(out, start, pos - start);
    seal(out, start + n)
}

/// Encodes an already coded audio payload (an Opus packet from the session's
/// encoder, or PCM16 bytes) as chunk `seq` captured at `ts_us`, for `room` from
/// `sender`, into `out`, uncompressed (coded audio does not shrink further);
/// returns the message length. The payload is checked as a receiver checks it,
/// so what cannot be parsed is never sent.
///
/// ```
/// use poselink::proto::{encode_audio_payload, AudioCodec, AudioPayload, Message, Packet};
/// // A CELT 20 ms packet (TOC 0xf8) standing for 960 mono samples at 48 kHz.
/// let p = AudioPayload { codec: AudioCodec::Opus, channels: 1, sample_rate: 48_000, len: 960, samples: &[0xf8, 0xff, 0xfe] };
/// let mut buf = [0u8; 64];
/// let n = encode_audio_payload(&p, 9, 20_000, 2, 5, &mut buf).unwrap();
/// let packet = Packet::new_checked(&buf[..n]).unwrap();
/// let Message::Audio(a) = Message::parse(&packet, &mut []).unwrap() else { panic!() };
/// assert_eq!((a.codec, a.len), (AudioCodec::Opus, 960));
/// ```
pub fn encode_audio_payload(
    payload: &AudioPayload<'_>,
    seq: u32,
    ts_us: u64,
    room: u16,
    sender: u16,
    out: &mut [u8],
) -> Result<usize, Error> {
    let header = Header::new(Kind::Audio, room, sender, seq, ts_us);
    let start = header.emit(out)?;
    let need = start + 1 + 1 + 5 + 5 + payload.samples.len() + super::wire::CRC_LEN;
    if out.len() < need {
        return Err(Error::BufferTooSmall { needed: need });
    }
    let mut pos = start;
    pos += super::wire::put_varint(&mut out[pos..], payload.codec.wire_value() as u64);
    out[pos] = payload.channels;
    pos += 1;
    pos += super::wire::put_varint(&mut out[pos..], payload.sample_rate as u64);
    pos += super::wire::put_varint(&mut out[pos..], payload.len as u64);
    out[pos..pos + payload.samples.len()].copy_from_slice(payload.samples);
    pos += payload.samples.len();
    Message::parse_payload(&header, &out[start..pos])?;
    seal(out, pos)
}
