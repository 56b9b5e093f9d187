//! The message kinds of the whole protocol and their payloads. Control payloads are
//! postcard-encoded structs (varints, length-prefixed UTF-8 strings) that borrow
//! their strings from the received bytes; pose and audio payloads have hand-written
//! fixed layouts (see `pose_codec` and [`AudioPayload`]). Nothing here allocates:
//! decoding returns views into the caller's bytes, encoding writes into the caller's
//! buffer.
//!
//! Compatibility rule (protocol 1.x): a newer minor version may add message kinds
//! and append fields at the end of a control payload; decoders ignore bytes after
//! the fields they know, and a sender only uses kinds that the peer's minor version
//! (announced in hello and welcome) defines. A new major version may change
//! anything; peers refuse a major they do not speak with `UNSUPPORTED_VERSION`.

use serde::{Deserialize, Serialize};

use super::Error;
use super::compress::plain_payload;
pub use super::media::{
    AudioCodec, AudioPayload, KEYFRAME_BODY_LEN, PoseCoding, PosePayload, RAW_BODY_LEN,
};
use super::media::{parse_audio, parse_pose};
use super::wire::{Header, Kind, Packet};

/// The longest room or user name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The longest token, in bytes.
pub const MAX_TOKEN_LEN: usize = 2048;
/// The longest free-text reason, in bytes.
pub const MAX_REASON_LEN: usize = 256;

/// A member's role in a room.
///
/// ```
/// use poselink::proto::Role;
/// assert!(Role::Owner.may_publish() && Role::Owner.may_moderate());
/// assert!(!Role::Viewer.may_publish());
/// assert_eq!(Role::parse("member"), Some(Role::Member));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// May kick, change roles and close the room; publishes and subscribes.
    Owner,
    /// Publishes and subscribes.
    Member,
    /// Subscribes only.
    Viewer,
}

impl Role {
    /// Whether this role may send pose and audio into the room.
    pub const fn may_publish(self) -> bool {
        matches!(self, Role::Owner | Role::Member)
    }

    /// Whether this role may kick, change roles and close the room.
    pub const fn may_moderate(self) -> bool {
        matches!(self, Role::Owner)
    }

    /// The role's lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a lower-case role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "member" => Some(Role::Member),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// Why a member left a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LeaveReason {
    /// It asked to leave.
    Left,
    /// Its connection closed or failed.
    Disconnected,
    /// An owner removed it.
    Kicked,
    /// It stopped answering (heartbeat) or stayed stuck as a slow receiver.
    TimedOut,
    /// The room was closed.
    RoomClosed,
}

impl LeaveReason {
    /// The reason's name in JSON mode and in the bindings (`"timed_out"`, …).
    pub const fn name(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Disconnected => "disconnected",
            LeaveReason::Kicked => "kicked",
            LeaveReason::TimedOut => "timed_out",
            LeaveReason::RoomClosed => "room_closed",
        }
    }
}

/// An error code carried by [`ErrorMsg`]. A newtype, not an enum, so that codes a
/// newer peer defines still decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// A message failed validation (see the reason).
    pub const BAD_MESSAGE: ErrorCode = ErrorCode(1);
    /// The peer speaks an unknown major protocol version.
    pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(2);
    /// The first message was not a hello, or it carried no token.
    pub const UNAUTHENTICATED: ErrorCode = ErrorCode(3);
    /// The token's signature or claims are invalid.
    pub const TOKEN_INVALID: ErrorCode = ErrorCode(4);
    /// The token has expired.
    pub const TOKEN_EXPIRED: ErrorCode = ErrorCode(5);
    /// The token does not grant this room or role, or the role may not do this.
    pub const FORBIDDEN: ErrorCode = ErrorCode(6);
    /// The room has its maximum number of members.
    pub const ROOM_FULL: ErrorCode = ErrorCode(7);
    /// The hub holds its maximum number of rooms or connections.
    pub const HUB_FULL: ErrorCode = ErrorCode(8);
    /// The room does not exist (and may not be created by this token).
    pub const NO_SUCH_ROOM: ErrorCode = ErrorCode(9);
    /// The sender is not a member of the room the message names.
    pub const NOT_MEMBER: ErrorCode = ErrorCode(10);
    /// The named member is not in the room.
    pub const NO_SUCH_MEMBER: ErrorCode = ErrorCode(11);
    /// The sender exceeded its message rate.
    pub const RATE_LIMITED: ErrorCode = ErrorCode(12);
    /// The message exceeded the size limit.
    pub const OVERSIZE: ErrorCode = ErrorCode(13);
    /// The receiver could not keep up and was disconnected.
    pub const SLOW_CONSUMER: ErrorCode = ErrorCode(14);
    /// The hub is shutting down.
    pub const GOING_AWAY: ErrorCode = ErrorCode(15);
    /// An unexpected fault on the other side.
    pub const INTERNAL: ErrorCode = ErrorCode(16);
    /// Minor 1: another connection resumed this session (presented its resume
    /// id); this one is closed. The client should not resume it again.
    pub const SESSION_RESUMED: ErrorCode = ErrorCode(17);

    /// A short name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "bad_message",
            2 => "unsupported_version",
            3 => "unauthenticated",
            4 => "token_invalid",
            5 => "token_expired",
            6 => "forbidden",
            7 => "room_full",
            8 => "hub_full",
            9 => "no_such_room",
            10 => "not_member",
            11 => "no_such_member",
            12 => "rate_limited",
            13 => "oversize",
            14 => "slow_consumer",
            15 => "going_away",
            16 => "internal",
            17 => "session_resumed",
            _ => "unknown",
        }
    }
}

/// Client → hub, first message: protocol minor version, token, the resume id of
/// a previous session (0 for none) and, from minor 1, the client's stream id.
#[derive(Clone, Copy, derive_more::Debug, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The client's protocol minor version.
    pub minor: u8,
    /// A JWT (HS256); empty where the hub runs without authentication.
    /// `Debug` shows only whether it is there.
    #[debug("{:?}", crate::redact::text(token))]
    pub token: &'a str,
    /// The resume id from a previous welcome, or 0.
    pub resume: u64,
    /// Free-form client name and version, for the hub's logs.
    pub client: &'a str,
    /// The client's stream id (minor 1, appended): a random non-zero number
    /// below 2^53 that the client keeps for its whole life, across reconnects
    /// and hub restarts, so that receivers know its media after it came back
    /// under another member id. 0: none given (an older client); not written.
    pub stream: u64,
}

/// The fields of [`Hello`] that minor 0 defined (the stream id follows them).
#[derive(Serialize, Deserialize)]
pub(super) struct HelloHead<'a> {
    pub(super) minor: u8,
    pub(super) token: &'a str,
    pub(super) resume: u64,
    pub(super) client: &'a str,
}

/// The largest stream id: ids stay below 2^53 so that JSON readers (whose
/// numbers are doubles) hold them exactly.
pub const MAX_STREAM_ID: u64 = (1 << 53) - 1;

/// Hub → client: the session is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome<'a> {
    /// The hub's protocol minor version.
    pub minor: u8,
    /// The member id the hub assigned to this connection (the `sender` of its messages).
    pub member: u16,
    /// The user id from the token.
    pub user: &'a str,
    /// An id to present in a later hello to resume this session.
    pub resume: u64,
    /// The hub's clock when it sent this, in microseconds.
    pub server_time_us: u64,
    /// The hub's heartbeat interval in milliseconds.
    pub heartbeat_ms: u32,
    /// The largest message the hub accepts, in bytes.
    pub max_message: u32,
}

/// Client → hub: join a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join<'a> {
    /// The room's name.
    pub room: &'a str,
    /// The role asked for (the token must grant it).
    pub role: Role,
}

/// Client → hub: leave a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leave<'a> {
    /// The room's name.
    pub room: &'a str,
}

/// One member of a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo<'a> {
    /// Hub-assigned member id.
    pub member: u16,
    /// The member's role.
    pub role: Role,
    /// The member's user id.
    pub user: &'a str,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SnapshotHead<'a> {
    pub(super) name: &'a str,
    pub(super) your_role: Role,
    pub(super) count: u16,
}

/// Hub → client after a join: the room's handle (in the header), name, the joiner's
/// role and the members. The member list is a view over the received bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomSnapshot<'a> {
    /// The room's name.
    pub name: &'a str,
    /// The role the joiner was given.
    pub your_role: Role,
    /// The members, the joiner included.
    pub members: Members<'a>,
}

/// A checked, zero-copy list of [`MemberInfo`]s inside a received snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Members<'a> {
    count: u16,
    bytes: &'a [u8],
    /// `count` stream ids (varints) after the list (minor 1), or empty.
    streams: &'a [u8],
}

impl<'a> Members<'a> {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The members in order.
    pub fn iter(&self) -> impl Iterator<Item = MemberInfo<'a>> + 'a {
        let mut rest = self.bytes;
        (0..self.count).map_while(move |_| {
            let (m, r) = postcard::take_from_bytes::<MemberInfo<'a>>(rest).ok()?;
            rest = r;
            Some(m)
        })
    }

    /// The members in order with their stream ids (0 for a member that gave
    /// none, and for every member in a snapshot from a minor-0 hub).
    pub fn iter_with_streams(&self) -> impl Iterator<Item = (MemberInfo<'a>, u64)> + 'a {
        let mut ids = self.streams;
        self.iter().map(move |m| {
            let id = match postcard::take_from_bytes::<u64>(ids) {
                Ok((id, r)) => {
                    ids = r;
                    id
                }
                Err(_) => 0,
            };
            (m, id)
        })
    }

    /// The encoded member list and stream ids, for re-encoding.
    pub(super) fn raw(&self) -> (u16, &'a [u8], &'a [u8]) {
        (self.count, self.bytes, self.streams)
    }
}

/// The value of an appended `u64` field (postcard varint) at the start of
/// `rest`, or 0 where an older peer wrote none; and what follows it.
pub(super) fn appended_u64(rest: &[u8]) -> Result<(u64, &[u8]), Error> {
    if rest.is_empty() {
        return Ok((0, rest));
    }
    Ok(postcard::take_from_bytes::<u64>(rest)?)
}

/// Hub → members: someone joined (room in the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberJoined<'a> {
    /// Who.
    pub member: MemberInfo<'a>,
    /// The member's stream id from its hello (minor 1, appended after the
    /// member); 0 if it gave none, and then not written.
    pub stream: u64,
}

/// Hub → members: someone left (room in the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberLeft {
    /// Who.
    pub member: u16,
    /// Why.
    pub reason: LeaveReason,
}

/// Owner → hub: set a member's role; hub → members: a member's role changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleChanged {
    /// Whose role.
    pub member: u16,
    /// The new role.
    pub role: Role,
}

/// Owner → hub: remove a member; hub → the member: you were removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kick<'a> {
    /// Who.
    pub member: u16,
    /// Why, for the member's user.
    pub reason: &'a str,
}

/// Owner → hub: close the room; hub → members: the room was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRoom<'a> {
    /// Why.
    pub reason: &'a str,
}

/// An error report: a code and a sentence a user can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMsg<'a> {
    /// What went wrong, as a code.
    pub code: ErrorCode,
    /// The kind byte of the message that caused it, or 0.
    pub about: u8,
    /// What went wrong and what to do, in words.
    pub reason: &'a str,
}

/// Liveness and clock-sync request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// The requester's clock at sending, in microseconds.
    pub t0_us: u64,
}

/// The answer to a [`Ping`]: with `t0` echoed and the responder's receive (`t1`) and
/// send (`t2`) times, the requester computes offset = ((t1 − t0) + (t2 − t3)) / 2
/// and round-trip = (t3 − t0) − (t2 − t1), where t3 is its own receive time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The ping's `t0_us`, echoed.
    pub t0_us: u64,
    /// The responder's clock when the ping arrived.
    pub t1_us: u64,
    /// The responder's clock when the pong left.
    pub t2_us: u64,
}

/// Acknowledges every message of `kind` in the header's room up to and including
/// `seq` (used for audio: the edge keeps chunks until acknowledged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The kind byte acknowledged.
    pub kind: u8,
    /// The highest sequence number acknowledged.
    pub seq: u32,
}

/// Receiver → hub: my decoder for this publisher's pose stream needs a keyframe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedsKeyframe {
    /// The publisher's member id.
    pub publisher: u16,
    /// Which person of that publisher.
    pub person: u32,
}

/// Every message of the protocol, parsed (borrowing from the received bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Message<'a> {
    Hello(Hello<'a>),
    Welcome(Welcome<'a>),
    Join(Join<'a>),
    Leave(Leave<'a>),
    RoomSnapshot(RoomSnapshot<'a>),
    MemberJoined(MemberJoined<'a>),
    MemberLeft(MemberLeft),
    RoleChanged(RoleChanged),
    Kick(Kick<'a>),
    CloseRoom(CloseRoom<'a>),
    Error(ErrorMsg<'a>),
    Ping(Ping),
    Pong(Pong),
    Ack(Ack),
    NeedsKeyframe(NeedsKeyframe),
    Pose(PosePayload<'a>),
    Audio(AudioPayload<'a>),
}

/// Checks a room or user name: 1 to 64 bytes of ASCII letters, digits and `-_.:@/`.
pub fn validate_name(name: &str, what: &'static str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::BadName { what })
    }
}

fn check_len(s: &str, max: usize, what: &'static str) -> Result<(), Error> {
    if s.len() > max {
        Err(Error::Malformed { what })
    } else {
        Ok(())
    }
}

impl<'a> Message<'a> {
    /// The kind this message is sent as.
    pub const fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::Hello,
            Message::Welcome(_) => Kind::Welcome,
            Message::Join(_) => Kind::Join,
            Message::Leave(_) => Kind::Leave,
            Message::RoomSnapshot(_) => Kind::RoomSnapshot,
            Message::MemberJoined(_) => Kind::MemberJoined,
            Message::MemberLeft(_) => Kind::MemberLeft,
            Message::RoleChanged(_) => Kind::RoleChanged,
            Message::Kick(_) => Kind::Kick,
            Message::CloseRoom(_) => Kind::CloseRoom,
            Message::Error(_) => Kind::Error,
            Message::Ping(_) => Kind::Ping,
            Message::Pong(_) => Kind::Pong,
            Message::Ack(_) => Kind::Ack,
            Message::NeedsKeyframe(_) => Kind::NeedsKeyframe,
            Message::Pose(_) => Kind::Pose,
            Message::Audio(_) => Kind::Audio,
        }
    }

    /// Parses the payload of a checked [`Packet`], decompressing it into
    /// `scratch` first if it is compressed (size `scratch` with
    /// [`MAX_PLAIN_PAYLOAD`](super::MAX_PLAIN_PAYLOAD); an uncompressed payload
    /// is borrowed from the packet and `scratch` may be empty).
    ///
    /// ```
    /// use poselink::proto::{encode_control, Header, Kind, Message, Packet, Ping};
    /// let mut buf = [0u8; 64];
    /// let msg = Message::Ping(Ping { t0_us: 5 });
    /// let n = encode_control(&Header::new(Kind::Ping, 0, 0, 1, 5), &msg, &mut buf).unwrap();
    /// let packet = Packet::new_checked(&buf[..n]).unwrap();
    /// assert_eq!(Message::parse(&packet, &mut []).unwrap(), msg);
    /// ```
    pub fn parse<T: AsRef<[u8]>>(
        packet: &'a Packet<T>,
        scratch: &'a mut [u8],
    ) -> Result<Message<'a>, Error> {
        let header = packet.header();
        Message::parse_payload(&header, plain_payload(packet, scratch)?)
    }

    /// Parses a (decompressed) payload of the kind named in `header`, checking every
    /// field: names, lengths, roles, sample counts.
    pub fn parse_payload(header: &Header, payload: &'a [u8]) -> Result<Message<'a>, Error> {
        fn pc<'b, T: Deserialize<'b>>(p: &'b [u8]) -> Result<T, Error> {
            Ok(postcard::take_from_bytes::<T>(p)?.0)
        }
        Ok(match header.kind {
            Kind::Hello => {
                let (h, rest) = postcard::take_from_bytes::<HelloHead>(payload)?;
                check_len(h.token, MAX_TOKEN_LEN, "the hello's token (too long)")?;
                check_len(h.client, MAX_NAME_LEN, "the hello's client name (too long)")?;
                let (stream, _) = appended_u64(rest)?;
                Message::Hello(Hello {
                    minor: h.minor,
                    token: h.token,
                    resume: h.resume,
                    client: h.client,
                    stream,
                })
            }
            Kind::Welcome => {
                let m: Welcome = pc(payload)?;
                validate_name(m.user, "user id")?;
                Message::Welcome(m)
            }
            Kind::Join => {
                let m: Join = pc(payload)?;
                validate_name(m.room, "room name")?;
                Message::Join(m)
            }
            Kind::Leave => {
                let m: Leave = pc(payload)?;
                validate_name(m.room, "room name")?;
                Message::Leave(m)
            }
            Kind::RoomSnapshot => {
                let (head, rest) = postcard::take_from_bytes::<SnapshotHead>(payload)?;
                validate_name(head.name, "room name")?;
                // Check every member now, so that iterating later cannot fail.
                let mut r = rest;
                for _ in 0..head.count {
                    let (m, tail) = postcard::take_from_bytes::<MemberInfo>(r)?;
                    validate_name(m.user, "user id")?;
                    r = tail;
                }
                let used = rest.len() - r.len();
                // Minor 1 appends one stream id per member; a minor-0 hub none.
                let ids = r;
                for _ in 0..if r.is_empty() { 0 } else { head.count } {
                    r = postcard::take_from_bytes::<u64>(r)?.1;
                }
                Message::RoomSnapshot(RoomSnapshot {
                    name: head.name,
                    your_role: head.your_role,
                    members: Members {
                        count: head.count,
                        bytes: &rest[..used],
                        streams: &ids[..ids.len() - r.len()],
                    },
                })
            }
            Kind::MemberJoined => {
                let (member, rest) = postcard::take_from_bytes::<MemberInfo>(payload)?;
                validate_name(member.user, "user id")?;
                let (stream, _) = appended_u64(rest)?;
                Message::MemberJoined(MemberJoined { member, stream })
            }
            Kind::MemberLeft => Message::MemberLeft(pc(payload)?),
            Kind::RoleChanged => Message::RoleChanged(pc(payload)?),
            Kind::Kick => {
                let m: Kick = pc(payload)?;
                check_len(m.reason, MAX_REASON_LEN, "the kick reason (too long)")?;
                Message::Kick(m)
            }
            Kind::CloseRoom => {
                let m: CloseRoom = pc(payload)?;
                check_len(m.reason, MAX_REASON_LEN, "the close reason (too long)")?;
                Message::CloseRoom(m)
            }
            Kind::Error => {
                let m: ErrorMsg = pc(payload)?;
                check_len(m.reason, MAX_REASON_LEN, "the error reason (too long)")?;
                Message::Error(m)
            }
            Kind::Ping => Message::Ping(pc(payload)?),
            Kind::Pong => Message::Pong(pc(payload)?),
            Kind::Ack => Message::Ack(pc(payload)?),
            Kind::NeedsKeyframe => Message::NeedsKeyframe(pc(payload)?),
            Kind::Pose => Message::Pose(parse_pose(header.flags, payload)?),
            Kind::Audio => Message::Audio(parse_audio(payload)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AudioChunk, Flags};
    use super::super::{
        Compressor, Packet, encode_audio, encode_control, encode_snapshot,
        encode_snapshot_with_streams, seal,
    };
    use super::*;

    fn round_trip(msg: Message<'_>) {
        let mut buf = [0u8; 512];
        let h = Header::new(msg.kind(), 4, 2, 77, 123_456);
        let n = encode_control(&h, &msg, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let mut scratch = [0u8; 0];
        assert_eq!(Message::parse(&p, &mut scratch).unwrap(), msg);
        assert_eq!(p.header().seq, 77);
    }

    #[test]
    fn every_control_message_round_trips() {
        round_trip(Message::Hello(Hello {
            minor: 0,
            token: "eyJ.a.b",
            resume: 99,
            client: "capture/1.0",
            stream: 0,
        }));
        round_trip(Message::Hello(Hello {
            minor: 1,
            token: "",
            resume: 0,
            client: "capture/1.1",
            stream: MAX_STREAM_ID,
        }));
        round_trip(Message::Welcome(Welcome {
            minor: 0,
            member: 12,
            user: "pi-7",
            resume: 1 << 40,
            server_time_us: 5,
            heartbeat_ms: 5000,
            max_message: 65536,
        }));
        round_trip(Message::Join(Join {
            room: "gym",
            role: Role::Owner,
        }));
        round_trip(Message::Leave(Leave { room: "gym" }));
        round_trip(Message::MemberJoined(MemberJoined {
            member: MemberInfo {
                member: 3,
                role: Role::Viewer,
                user: "browser",
            },
            stream: 0,
        }));
        round_trip(Message::MemberJoined(MemberJoined {
            member: MemberInfo {
                member: 4,
                role: Role::Member,
                user: "pi-4",
            },
            stream: 1 << 40,
        }));
        round_trip(Message::MemberLeft(MemberLeft {
            member: 3,
            reason: LeaveReason::TimedOut,
        }));
        round_trip(Message::RoleChanged(RoleChanged {
            member: 3,
            role: Role::Member,
        }));
        round_trip(Message::Kick(Kick {
            member: 3,
            reason: "spam",
        }));
        round_trip(Message::CloseRoom(CloseRoom { reason: "done" }));
        round_trip(Message::Error(ErrorMsg {
            code: ErrorCode::FORBIDDEN,
            about: Kind::Join as u8,
            reason: "token does not grant room gym",
        }));
        round_trip(Message::Ping(Ping { t0_us: 1 }));
        round_trip(Message::Pong(Pong {
            t0_us: 1,
            t1_us: 2,
            t2_us: 3,
        }));
        round_trip(Message::Ack(Ack {
            kind: Kind::Audio as u8,
            seq: 4000,
        }));
        round_trip(Message::NeedsKeyframe(NeedsKeyframe {
            publisher: 5,
            person: 0,
        }));
    }

    #[test]
    fn snapshot_round_trips_and_reencodes() {
        let members = [
            MemberInfo {
                member: 1,
                role: Role::Owner,
                user: "ana",
            },
            MemberInfo {
                member: 9,
                role: Role::Member,
                user: "pi-4",
            },
        ];
        let mut buf = [0u8; 256];
        let h = Header::new(Kind::RoomSnapshot, 3, 0, 1, 0);
        let n = encode_snapshot(&h, "gym", Role::Member, &members, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let mut s = [0u8; 0];
        let msg = Message::parse(&p, &mut s).unwrap();
        let Message::RoomSnapshot(snap) = msg else {
            panic!("not a snapshot")
        };
        assert_eq!(snap.name, "gym");
        assert_eq!(snap.members.len(), 2);
        let got: [MemberInfo; 2] = {
            let mut it = snap.members.iter();
            [it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(got, members);
        // The parsed view re-encodes to the same bytes.
        let mut again = [0u8; 256];
        let m = encode_control(&h, &msg, &mut again).unwrap();
        assert_eq!(&again[..m], &buf[..n]);
    }

    /// Minor 1's stream ids: appended after what minor 0 defined, so a minor-0
    /// decoder (which stops at its last field) reads the rest unchanged, and a
    /// minor-1 decoder reads a minor-0 message as stream 0.
    #[test]
    fn stream_ids_are_appended_and_optional() {
        let mut buf = [0u8; 256];
        let h = Header::new(Kind::Hello, 0, 0, 1, 0);
        let hello = Hello {
            minor: 1,
            token: "t",
            resume: 5,
            client: "c",
            stream: 0x1234_5678,
        };
        let n = encode_control(&h, &Message::Hello(hello), &mut buf).unwrap();
        let start = h.buffer_len();
        let payload = &buf[start..n - 4];
        // What a minor-0 peer decodes: the head, the stream id left over.
        let (head, rest) = postcard::take_from_bytes::<HelloHead>(payload).unwrap();
        assert_eq!((head.token, head.resume, head.client), ("t", 5, "c"));
        assert_eq!(postcard::from_bytes::<u64>(rest).unwrap(), 0x1234_5678);
        let id_len = rest.len();
        // Stream 0 is not written: the bytes are minor 0's.
        let zero = Hello { stream: 0, ..hello };
        let m = encode_control(&h, &Message::Hello(zero), &mut buf).unwrap();
        assert_eq!(m, n - id_len);
        let p = Packet::new_checked(&buf[..m]).unwrap();
        assert_eq!(Message::parse(&p, &mut []).unwrap(), Message::Hello(zero));

        // member_joined: the same.
        let who = MemberInfo {
            member: 7,
            role: Role::Member,
            user: "pi",
        };
        let h = Header::new(Kind::MemberJoined, 2, 0, 1, 0);
        let joined = MemberJoined {
            member: who,
            stream: 99,
        };
        let n = encode_control(&h, &Message::MemberJoined(joined), &mut buf).unwrap();
        let payload = &buf[h.buffer_len()..n - 4];
        let (old, rest) = postcard::take_from_bytes::<MemberInfo>(payload).unwrap();
        assert_eq!((old, postcard::from_bytes::<u64>(rest).unwrap()), (who, 99));

        // The snapshot: ids after the list, one per member; none if all are 0.
        let members = [who, MemberInfo { member: 8, ..who }];
        let h = Header::new(Kind::RoomSnapshot, 3, 0, 1, 0);
        let with =
            encode_snapshot_with_streams(&h, "gym", Role::Viewer, &members, &[0, 300], &mut buf)
                .unwrap();
        let p = Packet::new_checked(&buf[..with]).unwrap();
        let msg = Message::parse(&p, &mut []).unwrap();
        let Message::RoomSnapshot(snap) = msg else {
            panic!("not a snapshot")
        };
        let got: heapless::Vec<(u16, u64), 4> = snap
            .members
            .iter_with_streams()
            .map(|(m, s)| (m.member, s))
            .collect();
        assert_eq!(got[..], [(7, 0), (8, 300)]);
        let mut again = [0u8; 256];
        let m = encode_control(&h, &msg, &mut again).unwrap();
        assert_eq!(
            &again[..m],
            &buf[..with],
            "the parsed view re-encodes the same"
        );
        let without = encode_snapshot(&h, "gym", Role::Viewer, &members, &mut again).unwrap();
        assert_eq!(with - without, 1 + 2, "two varints: 0 and 300");
        let p = Packet::new_checked(&again[..without]).unwrap();
        let Message::RoomSnapshot(snap) = Message::parse(&p, &mut []).unwrap() else {
            panic!("not a snapshot")
        };
        assert!(snap.members.iter_with_streams().all(|(_, s)| s == 0));
        // A truncated id list is refused.
        let mut cut = buf;
        let body = with - 4 - 1;
        seal(&mut cut, body).unwrap();
        let p = Packet::new_checked(&cut[..body + 4]).unwrap();
        assert!(Message::parse(&p, &mut []).is_err());
    }

    #[test]
    fn bad_names_and_lengths_are_refused_both_ways() {
        let mut buf = [0u8; 4096];
        for bad in ["", "has space", "ünïcode", &"x".repeat(65)] {
            let h = Header::new(Kind::Join, 0, 1, 1, 0);
            let join = Message::Join(Join {
                room: bad,
                role: Role::Member,
            });
            assert!(
                matches!(
                    encode_control(&h, &join, &mut buf),
                    Err(Error::BadName { .. })
                ),
                "{bad:?}"
            );
            // A peer that sends one anyway is refused on receipt.
            let n = h.emit(&mut buf).unwrap();
            let m = postcard::to_slice(
                &Join {
                    room: bad,
                    role: Role::Member,
                },
                &mut buf[n..],
            )
            .unwrap()
            .len();
            let len = seal(&mut buf, n + m).unwrap();
            let p = Packet::new_checked(&buf[..len]).unwrap();
            let mut s = [0u8; 0];
            assert!(
                matches!(Message::parse(&p, &mut s), Err(Error::BadName { .. })),
                "{bad:?}"
            );
        }
        let long = "t".repeat(MAX_TOKEN_LEN + 1);
        let h = Header::new(Kind::Hello, 0, 0, 1, 0);
        let hello = Message::Hello(Hello {
            minor: 0,
            token: &long,
            resume: 0,
            client: "c",
            stream: 0,
        });
        assert!(matches!(
            encode_control(&h, &hello, &mut buf),
            Err(Error::Malformed { .. })
        ));
        let members = [MemberInfo {
            member: 1,
            role: Role::Owner,
            user: "no spaces please",
        }];
        let h = Header::new(Kind::RoomSnapshot, 1, 0, 1, 0);
        assert!(matches!(
            encode_snapshot(&h, "gym", Role::Owner, &members, &mut buf),
            Err(Error::BadName { .. })
        ));
    }

    #[test]
    fn audio_round_trips() {
        let mut chunk = AudioChunk::silence(48_000, 1, 960);
        for (i, s) in chunk.samples.iter_mut().enumerate() {
            *s = (i as i16).wrapping_mul(331);
        }
        chunk.seq = 17;
        chunk.capture_ts_us = 3_000_000;
        let mut c = Compressor::new(usize::MAX);
        let mut buf = [0u8; 2100];
        let n = encode_audio(&chunk, 2, 5, &mut c, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let mut s = [0u8; 0];
        let Message::Audio(a) = Message::parse(&p, &mut s).unwrap() else {
            panic!()
        };
        let mut out = AudioChunk::default();
        a.to_chunk(&p.header(), &mut out).unwrap();
        assert_eq!(out, chunk);
    }

    #[cfg(feature = "lz4")]
    #[test]
    fn silent_audio_compresses_and_round_trips() {
        let mut chunk = AudioChunk::silence(48_000, 1, 960);
        chunk.seq = 1;
        let mut c = Compressor::new(512);
        let mut buf = [0u8; 2100];
        let n = encode_audio(&chunk, 2, 5, &mut c, &mut buf).unwrap();
        assert!(n < 100, "silence should compress, got {n}");
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert!(p.header().flags.contains(Flags::LZ4));
        let mut s = [0u8; 2048];
        let Message::Audio(a) = Message::parse(&p, &mut s).unwrap() else {
            panic!()
        };
        let mut out = AudioChunk::default();
        a.to_chunk(&p.header(), &mut out).unwrap();
        assert_eq!(out, chunk);
    }

    #[test]
    fn bad_audio_shapes_are_refused() {
        let mut c = Compressor::new(usize::MAX);
        let mut buf = [0u8; 2100];
        let chunk = AudioChunk::silence(48_000, 3, 960);
        assert!(matches!(
            encode_audio(&chunk, 1, 1, &mut c, &mut buf),
            Err(Error::BadAudio { .. })
        ));
    }
}
