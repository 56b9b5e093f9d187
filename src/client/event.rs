//! What a session tells its driver: [`Event`], lent by
//! [`Session::poll_event`](super::Session::poll_event). Media and names are
//! borrowed from the session's receive buffer and decoder slots, so an event
//! costs no allocation; a driver that keeps something copies it out.

use crate::proto::{
    AudioChunk, ErrorCode, Header, LeaveReason, MemberInfo, Members, PoseFrame, Role,
};

use super::RoomId;

/// Something happened in the session. Borrowed from the session until the next
/// call on it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The hub welcomed us: the session is open.
    Connected {
        /// Our member id on this connection.
        member: u16,
        /// A connection after the first.
        reconnect: bool,
        /// The hub it is with: an index below [`SessionConfig::hubs`](super::SessionConfig::hubs)
        /// ([`Session::hub`](super::Session::hub)).
        hub: usize,
    },
    /// An open session was lost (the driver closes the transport on
    /// [`Transport::Close`](super::Transport::Close)).
    Disconnected {
        /// Why, in words.
        reason: &'a str,
    },
    /// A connection attempt failed before the session opened (refused, no
    /// route, TLS: an untrusted or expired certificate, …); the next one is
    /// scheduled ([`Event::Reconnecting`] follows).
    ConnectFailed {
        /// Why, in words.
        reason: &'a str,
    },
    /// The next connection attempt is scheduled.
    Reconnecting {
        /// 1 for the first attempt after a loss.
        attempt: u32,
        /// The wait before it, µs.
        delay_us: u64,
    },
    /// A room was joined, or joined again after a reconnect (its audio then
    /// replayed).
    RoomJoined {
        /// The room.
        room: RoomId,
        /// The members, us included.
        members: Members<'a>,
        /// Joined before: this is a restore after a reconnect.
        restored: bool,
        /// Unacknowledged audio chunks sent again, readdressed.
        replayed: u32,
    },
    /// The hub refused a join (or a rejoin): the room is given up.
    JoinRefused {
        /// The room.
        room: RoomId,
        /// The hub's code.
        code: ErrorCode,
        /// The hub's sentence.
        reason: &'a str,
        /// No [`Session::join`](super::Session::join) waited for this answer:
        /// it was the rejoin of a room after a reconnect.
        restoring: bool,
    },
    /// A join got no answer within `join_timeout_us` (a room never joined is
    /// given up; a restored one is still rejoined after each reconnect).
    JoinTimedOut {
        /// The room.
        room: RoomId,
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
        member: MemberInfo<'a>,
        /// The member's stream id (0: it gave none), the same after each of
        /// its reconnects.
        stream: u64,
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
    /// A member's role in a room changed (an owner's
    /// [`Session::set_role`](super::Session::set_role); ours too).
    RoleChanged {
        /// The room.
        room: RoomId,
        /// Whose role.
        member: u16,
        /// The new role.
        role: Role,
    },
    /// The hub acknowledged our audio of `room` up to and including `seq`: it
    /// has relayed those chunks (the seed's send confirmation); they leave the
    /// replay window.
    AudioAcked {
        /// The room.
        room: RoomId,
        /// The highest chunk sequence number acknowledged.
        seq: u32,
    },
    /// The connection was lost with audio chunks of `room` unacknowledged that
    /// had already left the replay window (it holds `audio_window_us`): they
    /// cannot be sent again. The hub may have relayed some of them before the
    /// loss, so this is at most what receivers miss.
    AudioLost {
        /// The room.
        room: RoomId,
        /// How many chunks.
        count: u32,
    },
    /// A decoded pose frame from another member ([`Receive::Decode`](super::Receive::Decode)).
    Pose {
        /// The room.
        room: RoomId,
        /// The publisher's member id.
        sender: u16,
        /// The frame, in the session's decoder slot.
        frame: &'a PoseFrame,
    },
    /// An audio chunk from another member, duplicates (replays) removed
    /// ([`Receive::Decode`](super::Receive::Decode)).
    Audio {
        /// The room.
        room: RoomId,
        /// The publisher's member id.
        sender: u16,
        /// The chunk, in the session's slot.
        chunk: &'a AudioChunk,
    },
    /// A pose or audio message, its envelope only ([`Receive::Headers`](super::Receive::Headers)).
    Media {
        /// The room, if its handle is one of ours (else the hub misrouted it).
        room: Option<RoomId>,
        /// The envelope.
        header: Header,
    },
    /// A ping was answered.
    RoundTrip {
        /// The round trip, µs, less the hub's time between receiving and answering.
        rtt_us: u64,
    },
    /// The hub reported an error that is not about a join.
    HubError {
        /// The code.
        code: ErrorCode,
        /// The hub's sentence.
        reason: &'a str,
    },
}
