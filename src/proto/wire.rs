//! The envelope every message travels in, and the byte-level tools to read and write
//! it: a zero-copy [`Packet`] view over received bytes (checked once, in
//! [`Packet::new_checked`]), a small `Copy` [`Header`] that is parsed and emitted, the
//! LEB128 varints, and the CRC-32 trailer. Layout (all integers little-endian):
//!
//! ```text
//! 0      u8      version   high nibble major, low nibble minor (0x10 = 1.0)
//! 1      u8      kind      see `Kind`
//! 2      u8      flags     see `Flags`
//! 3..5   u16     room      hub-assigned room handle (0 = none)
//! 5..7   u16     sender    hub-assigned member id (0 = the hub / not yet assigned)
//! 7..    varint  seq       u32, per kind and stream
//! ..     varint  ts_us     u64, sender's capture or send time in microseconds
//! ..     bytes   payload   kind-specific; if LZ4: varint raw length + LZ4 block
//! end-4  u32     crc32     CRC-32 (IEEE 802.3) over every byte before it
//! ```
//!
//! `docs/PROTOCOL.md` is the normative description.

use super::{Error, PROTOCOL_MAJOR, VERSION_BYTE};

/// Bytes of the fixed part of the header (before the varints).
pub const FIXED_HEADER_LEN: usize = 7;
/// The longest header: fixed part plus a 5-byte and a 10-byte varint.
pub const MAX_HEADER_LEN: usize = FIXED_HEADER_LEN + 5 + 10;
/// Bytes of the CRC-32 trailer.
pub const CRC_LEN: usize = 4;
/// The shortest valid message: fixed header, two one-byte varints, the CRC.
pub const MIN_MESSAGE_LEN: usize = FIXED_HEADER_LEN + 2 + CRC_LEN;
/// The largest message the protocol allows (the hub may configure less).
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// What a message is. The byte values are part of the protocol.
///
/// ```
/// use poselink::proto::Kind;
/// assert_eq!(Kind::from_u8(0x10), Some(Kind::Pose));
/// assert!(Kind::Pose.is_media());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Kind {
    /// Client → hub: first message of a connection (version, token, resume id).
    Hello = 0x01,
    /// Hub → client: the session is open (member id, resume id, server time).
    Welcome = 0x02,
    /// Client → hub: join a room with a role.
    Join = 0x03,
    /// Client → hub: leave a room.
    Leave = 0x04,
    /// Hub → client: the room's state after a join (handle, members, roles).
    RoomSnapshot = 0x05,
    /// Hub → members: someone joined.
    MemberJoined = 0x06,
    /// Hub → members: someone left or was disconnected.
    MemberLeft = 0x07,
    /// Owner → hub: change a member's role; hub → members: a role changed.
    RoleChanged = 0x08,
    /// Owner → hub: remove a member; hub → that member: you were removed.
    Kick = 0x09,
    /// Owner → hub: close the room; hub → members: the room was closed.
    CloseRoom = 0x0a,
    /// Either way: an error code and a reason.
    Error = 0x0b,
    /// Either way: liveness and clock sync request.
    Ping = 0x0c,
    /// Either way: the answer to a ping, with the responder's times.
    Pong = 0x0d,
    /// Acknowledges messages of one kind up to a sequence number.
    Ack = 0x0e,
    /// Receiver → hub or sender: my decoder lost a pose stream; send a keyframe.
    NeedsKeyframe = 0x0f,
    /// A pose frame (keyframe, delta or raw).
    Pose = 0x10,
    /// An audio chunk.
    Audio = 0x11,
}

impl Kind {
    /// Every kind, in byte order.
    pub const ALL: [Kind; 17] = [
        Kind::Hello,
        Kind::Welcome,
        Kind::Join,
        Kind::Leave,
        Kind::RoomSnapshot,
        Kind::MemberJoined,
        Kind::MemberLeft,
        Kind::RoleChanged,
        Kind::Kick,
        Kind::CloseRoom,
        Kind::Error,
        Kind::Ping,
        Kind::Pong,
        Kind::Ack,
        Kind::NeedsKeyframe,
        Kind::Pose,
        Kind::Audio,
    ];

    /// The kind for a byte, if defined.
    pub const fn from_u8(b: u8) -> Option<Kind> {
        if b >= 0x01 && b <= 0x11 {
            Some(Self::ALL[(b - 1) as usize])
        } else {
            None
        }
    }

    /// Pose and audio: the data a hub relays byte for byte and may drop when a
    /// receiver is slow. Everything else is control and is never dropped.
    pub const fn is_media(self) -> bool {
        matches!(self, Kind::Pose | Kind::Audio)
    }

    /// A short lower-case name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Welcome => "welcome",
            Kind::Join => "join",
            Kind::Leave => "leave",
            Kind::RoomSnapshot => "room_snapshot",
            Kind::MemberJoined => "member_joined",
            Kind::MemberLeft => "member_left",
            Kind::RoleChanged => "role_changed",
            Kind::Kick => "kick",
            Kind::CloseRoom => "close_room",
            Kind::Error => "error",
            Kind::Ping => "ping",
            Kind::Pong => "pong",
            Kind::Ack => "ack",
            Kind::NeedsKeyframe => "needs_keyframe",
            Kind::Pose => "pose",
            Kind::Audio => "audio",
        }
    }
}

/// The flag bits of the header's third byte.
///
/// ```
/// use poselink::proto::Flags;
/// let f = Flags::KEYFRAME.with(Flags::LZ4);
/// assert!(f.contains(Flags::LZ4) && f.contains(Flags::KEYFRAME));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Flags(pub u8);

impl Flags {
    /// No flag set.
    pub const NONE: Flags = Flags(0);
    /// The payload is a varint of its uncompressed length followed by an LZ4 block.
    pub const LZ4: Flags = Flags(0x01);
    /// Pose: the payload is a keyframe (decodable on its own).
    pub const KEYFRAME: Flags = Flags(0x02);
    /// Pose: the payload carries raw `f32` landmarks (decodable on its own).
    pub const RAW: Flags = Flags(0x04);
    /// The bits defined in protocol 1.0; the others must be zero.
    pub const KNOWN: Flags = Flags(0x07);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags plus `other`.
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// The envelope header, parsed.
///
/// ```
/// use poselink::proto::{Header, Kind, Flags};
/// let h = Header::new(Kind::Ping, 0, 0, 5, 1_000);
/// let mut buf = [0u8; 32];
/// let n = h.emit(&mut buf).unwrap();
/// let (parsed, used) = Header::parse(&buf[..n]).unwrap();
/// assert_eq!((parsed, used), (h, n));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// The version byte (major << 4 | minor).
    pub version: u8,
    /// What the message is.
    pub kind: Kind,
    /// Flag bits.
    pub flags: Flags,
    /// Hub-assigned room handle, 0 when the message is not about one room.
    pub room: u16,
    /// Hub-assigned member id of the sender, 0 for the hub itself.
    pub sender: u16,
    /// Sequence number (pose: frame seq; audio: chunk seq; control: per connection).
    pub seq: u32,
    /// Microseconds on the sender's monotonic clock (pose/audio: capture time).
    pub ts_us: u64,
}

impl Header {
    /// A header of this build's version with no flags.
    pub const fn new(kind: Kind, room: u16, sender: u16, seq: u32, ts_us: u64) -> Header {
        Header {
            version: VERSION_BYTE,
            kind,
            flags: Flags::NONE,
            room,
            sender,
            seq,
            ts_us,
        }
    }

    /// The encoded length of this header.
    pub const fn buffer_len(&self) -> usize {
        FIXED_HEADER_LEN + varint_len(self.seq as u64) + varint_len(self.ts_us)
    }

    /// Writes the header at the start of `out`; returns the bytes written.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        let need = self.buffer_len();
        if out.len() < need {
            return Err(Error::BufferTooSmall { needed: need });
        }
        out[0] = self.version;
        out[1] = self.kind as u8;
        out[2] = self.flags.0;
        out[3..5].copy_from_slice(&self.room.to_le_bytes());
        out[5..7].copy_from_slice(&self.sender.to_le_bytes());
        let mut pos = FIXED_HEADER_LEN;
        pos += put_varint(&mut out[pos..], self.seq as u64);
        pos += put_varint(&mut out[pos..], self.ts_us);
        Ok(pos)
    }

    /// Parses a header from the start of `bytes` (no CRC check: see
    /// [`Packet::new_checked`]); returns it and its length.
    pub fn parse(bytes: &[u8]) -> Result<(Header, usize), Error> {
        if bytes.len() < FIXED_HEADER_LEN + 2 {
            return Err(Error::Truncated {
                needed: FIXED_HEADER_LEN + 2,
                available: bytes.len(),
            });
        }
        let version = bytes[0];
        if version >> 4 != PROTOCOL_MAJOR {
            return Err(Error::UnknownVersion { version });
        }
        let kind = Kind::from_u8(bytes[1]).ok_or(Error::UnknownKind { kind: bytes[1] })?;
        let flags = Flags(bytes[2]);
        if flags.0 & !Flags::KNOWN.0 != 0 {
            return Err(Error::Malformed {
                what: "the flags byte (reserved bits set)",
            });
        }
        let room = u16::from_le_bytes([bytes[3], bytes[4]]);
        let sender = u16::from_le_bytes([bytes[5], bytes[6]]);
        let mut r = Reader::new(&bytes[FIXED_HEADER_LEN..]);
        let seq = r.varint_u32()?;
        let ts_us = r.varint_u64()?;
        let len = FIXED_HEADER_LEN + r.position();
        Ok((
            Header {
                version,
                kind,
                flags,
                room,
                sender,
                seq,
                ts_us,
            },
            len,
        ))
    }
}

/// A zero-copy view of one received message whose version, kind, length and CRC
/// have been checked. The envelope does not know its payloads: parse one with
/// [`Message::parse`](super::Message::parse).
///
/// ```
/// use poselink::proto::{encode_control, Header, Kind, Message, Packet, Ping};
/// let mut buf = [0u8; 64];
/// let n = encode_control(&Header::new(Kind::Ping, 0, 0, 1, 5), &Message::Ping(Ping { t0_us: 5 }), &mut buf).unwrap();
/// let packet = Packet::new_checked(&buf[..n]).unwrap();
/// assert_eq!(packet.header().kind, Kind::Ping);
/// let mut scratch = [0u8; 0];
/// assert_eq!(Message::parse(&packet, &mut scratch).unwrap(), Message::Ping(Ping { t0_us: 5 }));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    header: Header,
    header_len: usize,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the length limits, the version, the kind, the header's varints and
    /// the CRC, and returns the view.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let bytes = buffer.as_ref();
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(Error::Oversize {
                len: bytes.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        // Version first, so an old peer gets "unknown version" rather than "truncated".
        if let Some(&v) = bytes.first()
            && v >> 4 != PROTOCOL_MAJOR
        {
            return Err(Error::UnknownVersion { version: v });
        }
        if bytes.len() < MIN_MESSAGE_LEN {
            return Err(Error::Truncated {
                needed: MIN_MESSAGE_LEN,
                available: bytes.len(),
            });
        }
        let body_end = bytes.len() - CRC_LEN;
        let carried = u32::from_le_bytes([
            bytes[body_end],
            bytes[body_end + 1],
            bytes[body_end + 2],
            bytes[body_end + 3],
        ]);
        let computed = crc32(&bytes[..body_end]);
        if carried != computed {
            return Err(Error::BadChecksum { carried, computed });
        }
        let (header, header_len) = Header::parse(&bytes[..body_end])?;
        Ok(Packet {
            buffer,
            header,
            header_len,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// The payload as carried (still compressed if the LZ4 flag is set).
    pub fn payload(&self) -> &[u8] {
        let bytes = self.buffer.as_ref();
        &bytes[self.header_len..bytes.len() - CRC_LEN]
    }

    /// The whole message, header to CRC.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Sets the room handle and sender of an encoded message in place (a hub
/// relaying another hub's message to its own members); the CRC must be
/// written again after. Does nothing to a buffer shorter than the fixed header.
pub fn rewrite_room_sender(message: &mut [u8], room: u16, sender: u16) {
    if let Some(fixed) = message.get_mut(3..FIXED_HEADER_LEN) {
        fixed[..2].copy_from_slice(&room.to_le_bytes());
        fixed[2..].copy_from_slice(&sender.to_le_bytes());
    }
}

/// CRC-32 (IEEE 802.3, the one zlib and PNG use) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes);
    h.finalize()
}

/// Appends the CRC-32 of `out[..len]` at `out[len..len + 4]`; returns the new length.
pub fn seal(out: &mut [u8], len: usize) -> Result<usize, Error> {
    if out.len() < len + CRC_LEN {
        return Err(Error::BufferTooSmall {
            needed: len + CRC_LEN,
        });
    }
    let crc = crc32(&out[..len]);
    out[len..len + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(len + CRC_LEN)
}

/// Bytes the LEB128 encoding of `v` takes.
pub const fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Writes `v` as LEB128 at the start of `out` (which must hold
/// [`varint_len`]`(v)` bytes); returns the bytes written.
pub fn put_varint(out: &mut [u8], mut v: u64) -> usize {
    let mut i = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[i] = byte;
            return i + 1;
        }
        out[i] = byte | 0x80;
        i += 1;
    }
}

/// A bounds-checked reading cursor over a byte slice.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.bytes.len() - self.pos < n {
            return Err(Error::Truncated {
                needed: self.pos + n,
                available: self.bytes.len(),
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn varint_u64(&mut self) -> Result<u64, Error> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let part = (b & 0x7f) as u64;
            if i == 9 && b > 1 {
                return Err(Error::Malformed {
                    what: "a varint (longer than 64 bits)",
                });
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::Malformed {
            what: "a varint (longer than 64 bits)",
        })
    }

    pub(crate) fn varint_u32(&mut self) -> Result<u32, Error> {
        u32::try_from(self.varint_u64()?).map_err(|_| Error::Malformed {
            what: "a varint (longer than 32 bits)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_and_round_trip() {
        for &v in &[0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut buf = [0u8; 10];
            let n = put_varint(&mut buf, v);
            assert_eq!(n, varint_len(v), "{v}");
            let mut r = Reader::new(&buf[..n]);
            assert_eq!(r.varint_u64().unwrap(), v);
        }
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(u64::MAX), 10);
    }

    #[test]
    fn overlong_varint_is_malformed() {
        let bytes = [0xffu8; 11];
        assert!(matches!(
            Reader::new(&bytes).varint_u64(),
            Err(Error::Malformed { .. })
        ));
        // 10th byte may only carry the top bit of a u64.
        let mut bytes = [0xffu8; 10];
        bytes[9] = 0x02;
        assert!(Reader::new(&bytes).varint_u64().is_err());
    }

    #[test]
    fn header_fixture() {
        // A pose header: room 7, sender 3, seq 300, ts 1_000_000 µs, keyframe flag.
        let mut h = Header::new(Kind::Pose, 7, 3, 300, 1_000_000);
        h.flags = Flags::KEYFRAME;
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = h.emit(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            &[
                0x10, 0x10, 0x02, 0x07, 0x00, 0x03, 0x00, 0xac, 0x02, 0xc0, 0x84, 0x3d
            ]
        );
        assert_eq!(Header::parse(&buf[..n]).unwrap(), (h, n));
    }

    #[test]
    fn crc_is_ieee() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn every_kind_round_trips_its_byte() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_u8(k as u8), Some(k));
        }
        assert_eq!(Kind::from_u8(0), None);
        assert_eq!(Kind::from_u8(0x12), None);
    }
}
