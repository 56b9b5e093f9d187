//! What a client session is made of and what it answers with: its settings
//! ([`SessionConfig`], every capacity decided here), the room handle it gives
//! out ([`RoomId`]) and its small `Copy` errors.

use crate::proto::{self, EncoderConfig};

/// A session-local room identifier, stable across reconnects (the hub's room
/// handle may change each time the connection is re-made). It is the index of
/// the room's slot, so it stays below [`SessionConfig::max_rooms`].
///
/// ```
/// use poselink::client::RoomId;
/// let room = RoomId(3);
/// assert_eq!(u16::from(room), 3);
/// assert_eq!(RoomId::from(3u16), room);
/// assert_eq!(room.to_string(), "room#3");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomId(pub u16);

impl RoomId {
    /// The slot index behind the id.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl From<u16> for RoomId {
    fn from(v: u16) -> Self {
        RoomId(v)
    }
}

impl From<RoomId> for u16 {
    fn from(r: RoomId) -> Self {
        r.0
    }
}

impl core::fmt::Display for RoomId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "room#{}", self.0)
    }
}

/// What the session does with the media it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receive {
    /// Decode pose frames (asking the publisher for a keyframe when a delta
    /// cannot be decoded), turn audio into chunks, drop replayed duplicates:
    /// [`Event::Pose`](super::Event::Pose) and [`Event::Audio`](super::Event::Audio).
    /// `decoders` pose streams are decoded at once (the least recently used
    /// one makes way for a new one).
    Decode {
        /// Pose decoders (and audio streams tracked for duplicates).
        decoders: usize,
    },
    /// Look at the envelope only: [`Event::Media`](super::Event::Media) with
    /// the header (the load generator, which measures the hub, not the codec).
    Headers,
}

/// A client session's settings; every capacity is decided here, every buffer is
/// allocated by [`Session::new`](super::Session::new).
///
/// ```
/// use poselink::client::{Receive, SessionConfig};
/// let cfg = SessionConfig { max_rooms: 1, receive: Receive::Headers, ..SessionConfig::default() };
/// assert_eq!(cfg.heartbeat_us, 1_000_000);
/// ```
#[derive(Clone, derive_more::Debug, PartialEq)]
pub struct SessionConfig {
    /// The JWT for the hello (empty for a `--dev` hub).
    #[debug("{:?}", crate::redact::text(token))]
    pub token: String,
    /// A name for the hub's logs.
    pub client: String,
    /// Rooms joined at once. Default 8.
    pub max_rooms: usize,
    /// Pose streams (persons, so pose encoders) per room. Default 4.
    pub max_persons: usize,
    /// Ping interval, µs; no byte from the hub for two intervals means the
    /// connection is dead. Default 1 s.
    pub heartbeat_us: u64,
    /// Hubs the driver can connect to (its list of addresses, in failover
    /// order; at least 1). After a failed attempt or a lost session the next
    /// attempt goes to the next hub, round robin ([`Session::hub`](super::Session::hub)
    /// says which): the first try of another hub waits `reconnect_min_us` at
    /// most, and the backoff grows once per round of the list. Default 1.
    pub hubs: usize,
    /// Reconnect backoff, µs. Defaults 100 ms and 5 s.
    pub reconnect_min_us: u64,
    /// See `reconnect_min_us`.
    pub reconnect_max_us: u64,
    /// Time allowed to connect, upgrade and be welcomed, µs. Default 3 s.
    pub connect_timeout_us: u64,
    /// How long a join waits for the hub's answer, µs. Default 5 s.
    pub join_timeout_us: u64,
    /// Audio kept for replay until acknowledged, µs of capture time; 0 keeps
    /// none (no replay after a reconnect). Default 3 s: two heartbeats (the
    /// time to notice a dead connection) and the hub's acknowledgement delay.
    pub audio_window_us: u64,
    /// The pose codec's settings.
    pub encoder: EncoderConfig,
    /// What happens to received media. Default: decoded, 64 streams.
    pub receive: Receive,
    /// Bytes of the transmit buffer. Default 128 KiB.
    pub tx_capacity: usize,
    /// Bytes of the receive buffer; a frame larger than it is skipped (counted
    /// in [`SessionStats::skipped`](super::SessionStats::skipped)). Default 96 KiB,
    /// more than the largest message.
    pub rx_capacity: usize,
    /// Seed of the session's random numbers (WebSocket masks, backoff jitter).
    pub seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            token: String::new(),
            client: concat!("poselink-client/", env!("CARGO_PKG_VERSION")).into(),
            max_rooms: 8,
            max_persons: 4,
            heartbeat_us: 1_000_000,
            hubs: 1,
            reconnect_min_us: 100_000,
            reconnect_max_us: 5_000_000,
            connect_timeout_us: 3_000_000,
            join_timeout_us: 5_000_000,
            audio_window_us: 3_000_000,
            encoder: EncoderConfig::default(),
            receive: Receive::Decode { decoders: 64 },
            tx_capacity: 128 * 1024,
            rx_capacity: 96 * 1024,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// Why [`Session::join`](super::Session::join) did not take a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// `max_rooms` rooms are joined already.
    TooManyRooms,
    /// The room name is not valid.
    BadName,
}

impl core::fmt::Display for JoinError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            JoinError::TooManyRooms => "max_rooms rooms are joined already; leave one first",
            JoinError::BadName => {
                "invalid room name: use 1 to 64 bytes of letters, digits and `-_.:@/`"
            }
        })
    }
}

impl std::error::Error for JoinError {}

/// Why a pose frame or an audio chunk was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// No session is open.
    NotConnected,
    /// The room is not joined on this connection (left, refused, or not
    /// restored yet).
    NoRoom,
    /// `max_persons` pose streams of this room have encoders already.
    TooManyPersons,
    /// The transmit buffer has no room for the frame: the socket is not
    /// taking what was written before.
    TransmitFull,
    /// The frame does not encode.
    Encode(proto::Error),
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::NotConnected => f.write_str("no session with the hub is open"),
            SendError::NoRoom => f.write_str("the room is not joined on this connection"),
            SendError::TooManyPersons => {
                f.write_str("max_persons pose streams are sent in this room already")
            }
            SendError::TransmitFull => f.write_str(
                "the transmit buffer is full: the hub is not reading; send less or wait",
            ),
            SendError::Encode(e) => write!(f, "the frame does not encode: {e}"),
        }
    }
}

impl std::error::Error for SendError {}
