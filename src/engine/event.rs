//! What the engine tells the app: [`Event`]s, taken with
//! [`EngineHandle::poll_event`](super::EngineHandle::poll_event) from a bounded
//! ring filled by the engine's loop, oldest first, in one ordered stream.

use std::time::Duration;

use crate::monitor::Alert;
use crate::proto::{AudioChunk, ErrorCode, LeaveReason, MemberInfo, PoseFrame, Role};

use super::RoomId;

/// One member of a room, as a snapshot lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSummary {
    /// The hub-assigned member id.
    pub member: u16,
    /// The member's role.
    pub role: Role,
    /// The member's user id.
    pub user: String,
    /// The member's stream id: the same after each of its reconnects (when its
    /// member id may change), so (user, stream) names one publisher for good;
    /// 0 if it gave none (an older client, a JSON client).
    pub stream: u64,
}

impl MemberSummary {
    /// A summary of `m`, whose stream id is `stream`.
    pub fn with_stream(m: MemberInfo<'_>, stream: u64) -> Self {
        MemberSummary {
            stream,
            ..MemberSummary::from(m)
        }
    }
}

impl From<MemberInfo<'_>> for MemberSummary {
    /// A summary with stream id 0 (unknown).
    fn from(m: MemberInfo<'_>) -> Self {
        MemberSummary {
            member: m.member,
            role: m.role,
            user: m.user.to_string(),
            stream: 0,
        }
    }
}

/// What happened, for the app.
///
/// Received media are held in the event itself, not boxed: the events ring is
/// a ring of `Event` slots allocated at start-up, so a received pose frame or
/// audio chunk reaches the app with no allocation. A slot is the size of the
/// largest variant (an [`AudioChunk`], about 1.9 KiB): the ring takes
/// `events_capacity × size_of::<Event>()` (2 MiB at the default 1024).
///
/// ```
/// use poselink::engine::{Event, RoomId};
/// use poselink::proto::PoseFrame;
/// let e = Event::Pose { room: RoomId(0), sender: 3, frame: PoseFrame::zeroed() };
/// if let Event::Pose { frame, .. } = &e {
///     assert_eq!(frame.seq, 0);
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
// In place on purpose (see above): boxing the media would allocate per message.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// The session is open.
    Connected {
        /// Our member id.
        member: u16,
        /// The hub it is open with: the index of its URL in
        /// [`EngineConfig::hub`](super::EngineConfig::hub)'s list, 0 for the
        /// first (another than the last session's after a failover).
        hub_index: usize,
    },
    /// The connection was lost or closed.
    Disconnected {
        /// Why, in words.
        reason: String,
    },
    /// A connection attempt failed before the session opened (refused, no
    /// route, TLS: an untrusted or expired certificate, a wrong host name, …);
    /// a reconnect follows.
    ConnectFailed {
        /// Why, in words.
        reason: String,
    },
    /// A reconnect is scheduled.
    Reconnecting {
        /// 1 for the first attempt after a loss.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
    },
    /// A room was joined (its members listed).
    RoomJoined {
        /// The room.
        room: RoomId,
        /// The members, us included.
        members: Vec<MemberSummary>,
    },
    /// A room was joined again after a reconnect.
    RoomRestored {
        /// The room.
        room: RoomId,
        /// The members now.
        members: Vec<MemberSummary>,
    },
    /// We left a room, were kicked, or it was closed.
    RoomLeft {
        /// The room.
        room: RoomId,
        /// Why.
        reason: LeaveReason,
    },
    /// Someone joined a room we are in.
    MemberJoined {
        /// The room.
        room: RoomId,
        /// Who.
        member: MemberSummary,
    },
    /// Someone left a room we are in.
    MemberLeft {
        /// The room.
        room: RoomId,
        /// Who.
        member: u16,
        /// Why.
        reason: LeaveReason,
    },
    /// A pose frame from another member.
    Pose {
        /// The room.
        room: RoomId,
        /// The publisher's member id.
        sender: u16,
        /// The frame (capture time on the sender's clock).
        frame: PoseFrame,
    },
    /// An audio chunk that never came (or came too late to play): conceal it.
    AudioGap {
        /// The room.
        room: RoomId,
        /// The publisher's member id.
        sender: u16,
        /// The missing chunk's sequence number.
        seq: u32,
    },
    /// An audio chunk from another member.
    Audio {
        /// The room.
        room: RoomId,
        /// The publisher's member id.
        sender: u16,
        /// The chunk.
        chunk: AudioChunk,
    },
    /// Audio chunks lost to a reconnect: the connection was lost before the
    /// hub acknowledged them, and they had left the replay window
    /// ([`EngineConfig::audio_window_ms`](super::EngineConfig::audio_window_ms)),
    /// so they were not sent again. At most what receivers miss.
    AudioLost {
        /// The room.
        room: RoomId,
        /// How many.
        count: u64,
    },
    /// A member's role changed (an owner's
    /// [`EngineHandle::set_role`](super::EngineHandle::set_role), ours included).
    RoleChanged {
        /// The room.
        room: RoomId,
        /// Whose role.
        member: u16,
        /// The new role.
        role: Role,
    },
    /// The hub acknowledged our audio of `room` up to and including chunk
    /// `seq`: relayed to the room (the seed's send confirmation). Only with
    /// [`EngineHandle::set_audio_ack_events`](super::EngineHandle::set_audio_ack_events)
    /// on: the hub acknowledges in batches, a few times a second.
    AudioAcked {
        /// The room.
        room: RoomId,
        /// The highest chunk sequence number acknowledged.
        seq: u32,
    },
    /// A performance alert: a monitored value crossed its threshold (raised
    /// once per crossing; see [`EngineConfig::monitor`](super::EngineConfig::monitor)).
    Alert(Alert),
    /// The hub reported an error.
    Error {
        /// The code.
        code: ErrorCode,
        /// The hub's sentence.
        reason: String,
    },
}
