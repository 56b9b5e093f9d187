//! The client session, sans-IO: everything a poselink client says to a hub and
//! decides about it, with no socket, thread or clock inside (quinn-proto's
//! `Connection` shape). The edge engine's driver and the load generator both run
//! their connections through it, so there is one client implementation.
//!
//! Every input carries `now` (µs on any monotonic clock); outputs are polled:
//!
//! - **transport**: [`poll_transport`](Session::poll_transport) says when to open
//!   a connection ([`Transport::Connect`], on the reconnect backoff's schedule)
//!   and when to drop one ([`Transport::Close`]). The driver connects and does
//!   the HTTP upgrade, then calls [`handle_connected`](Session::handle_connected)
//!   (the session queues the hello), or
//!   [`handle_disconnected`](Session::handle_disconnected) when it fails or ends.
//! - **bytes out**: [`poll_transmit`](Session::poll_transmit) lends the bytes to
//!   write (masked WebSocket client frames), [`handle_written`](Session::handle_written)
//!   takes what the socket took. Pose frames, audio chunks and control messages
//!   are encoded in place in the transmit buffer, after room for the frame
//!   header, then framed and masked there: no copy from a scratch buffer.
//! - **bytes in**: the driver reads into [`receive_buffer`](Session::receive_buffer)
//!   and calls [`handle_received`](Session::handle_received) (or copies with
//!   [`handle_data`](Session::handle_data)); frames are parsed in place when
//!   [`poll_event`](Session::poll_event) is called, which lends each
//!   [`Event`] — a decoded pose frame, an audio chunk, a member list — from
//!   the session's buffers: no allocation per message.
//! - **time**: [`poll_timeout`](Session::poll_timeout) is the next deadline,
//!   [`handle_timeout`](Session::handle_timeout) runs what is due.
//!
//! What the session owns: the hello and the welcome (with the resume id), the
//! heartbeat (a ping per interval; no byte from the hub for two intervals means
//! the connection is dead), the reconnect backoff and the failover across the
//! driver's hubs ([`Session::hub`]: the next hub after each failed attempt or
//! lost session, a resume id presented only to the hub that gave it), the rooms (joins, leaves, the
//! hub's handle for each [`RoomId`], their rejoin after a reconnect, reported as
//! restored), the audio replay window (chunks kept until acknowledged and sent
//! again after a reconnect, readdressed to the new handle and member id, exactly
//! once per reconnect), and keyframe requests both ways (a `needs_keyframe` from
//! the hub forces the encoder; a delta that cannot be decoded asks its publisher
//! for a keyframe, once per outage). What it does not: queues and priorities,
//! the bandwidth limit, media alignment, counters and the performance monitor
//! are the engine's ([`crate::engine`]); the load generator adds its schedule.
//!
//! ```
//! use poselink::client::{Session, SessionConfig, Transport};
//!
//! let mut session = Session::new(SessionConfig::default(), 0);
//! session.handle_timeout(0);
//! assert_eq!(session.poll_transport(), Some(Transport::Connect));
//! // ... the driver connects and upgrades ...
//! session.handle_connected(1_000);
//! assert!(!session.poll_transmit().is_empty(), "the hello waits to be written");
//! let n = session.poll_transmit().len();
//! session.handle_written(n);
//! ```

mod audio_codec;
mod audio_send;
mod backoff;
mod config;
mod event;
mod receive;
mod replay;
mod rooms;
mod wire;

pub use backoff::Backoff;
pub use config::{JoinError, Receive, RoomId, SendError, SessionConfig};
pub use event::Event;
pub use replay::{AudioReplay, MAX_SLOT, readdress};

use std::collections::VecDeque;
use std::fmt::Write as _;

use crate::proto::{
    self, AudioChunk, CloseRoom, Compressor, Header, Hello, Kick, LeaveReason, Message, Ping,
    PoseEncoder, PoseFrame, Role, RoleChanged, encode_control,
};
use crate::ws::{self, FrameKind};

use receive::RxStream;
use rooms::{Rooms, next_mask, random};
use wire::{RxBuf, TxBuf};

/// What the driver should do with its transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Open a connection to hub [`Session::hub`] and upgrade it; then
    /// [`Session::handle_connected`].
    Connect,
    /// Drop the connection (the session gave it up).
    Close,
}

/// What a sent audio chunk cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioSent {
    /// Bytes of the message (without the WebSocket framing).
    pub bytes: usize,
    /// Unacknowledged chunks the replay window let go to keep this one.
    pub lost: usize,
}

/// Running totals of the session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Protocol messages received (binary frames), and their bytes.
    pub messages_in: u64,
    /// See `messages_in`.
    pub bytes_in: u64,
    /// Frames skipped because they were larger than the receive buffer.
    pub skipped: u64,
    /// Received audio chunks dropped as duplicates: a publisher's replay after
    /// its reconnect of chunks that had reached us already.
    pub audio_duplicates: u64,
    /// Audio chunks missing from the received streams: sequence numbers
    /// skipped over within a publisher's stream (the chunks that will not
    /// come; a later replay of one of them is not counted again).
    pub audio_gaps: u64,
    /// Sent audio chunks lost (see [`Event::AudioLost`]).
    pub audio_lost: u64,
    /// Audio chunks sent again after reconnects (replays from the window).
    pub audio_replayed: u64,
    /// Received audio chunks that could not be decoded (a corrupt Opus
    /// packet, or Opus in a build without it): dropped, the stream goes on.
    pub audio_undecodable: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No connection; the next attempt at `retry_at_us`.
    Down,
    /// The driver is connecting and upgrading.
    Connecting,
    /// Hello sent; waiting for the welcome.
    Hello,
    /// Session open.
    Ready,
    /// Closed for good.
    Closed,
}

/// An event that borrows nothing, waiting for [`Session::poll_event`].
#[derive(Clone, Copy, Debug)]
enum Note {
    Disconnected,
    ConnectFailed,
    Reconnecting(u32, u64),
    RoomLeft(RoomId, LeaveReason),
    AudioLost(RoomId, u32),
    JoinTimedOut(RoomId),
}

/// A client session with one hub. See the [module documentation](self).
///
/// ```
/// use poselink::client::{Event, Session, SessionConfig, Transport};
/// use poselink::proto::Role;
///
/// let mut s = Session::new(SessionConfig::default(), 0);
/// // Rooms may be asked for before the connection: joined after the welcome.
/// let room = s.join(0, "studio-1", Role::Member).unwrap();
/// assert!(s.has_room(room) && s.room_handle(room).is_none());
/// // The transport breaks before the upgrade: the next attempt is scheduled.
/// s.handle_timeout(0);
/// assert_eq!(s.poll_transport(), Some(Transport::Connect));
/// s.handle_disconnected(10, "connection refused");
/// assert!(matches!(s.poll_event(), Some(Event::ConnectFailed { reason: "connection refused" })));
/// assert!(matches!(s.poll_event(), Some(Event::Reconnecting { attempt: 1, .. })));
/// assert!(s.poll_timeout().unwrap() > 10);
/// ```
pub struct Session {
    rx: RxBuf,
    core: Core,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("phase", &self.core.phase)
            .field("member", &self.core.member)
            .finish_non_exhaustive()
    }
}

/// Everything but the receive buffer (so that an event can borrow both).
struct Core {
    cfg: SessionConfig,
    phase: Phase,
    /// End of the connect, upgrade and hello (Connecting, Hello).
    deadline_us: u64,
    retry_at_us: u64,
    backoff: Backoff,
    /// The hub (index into the driver's list of `cfg.hubs`) the current
    /// connection or the next attempt is for.
    hub: usize,
    /// Failed attempts and lost sessions since the last welcome: every
    /// `cfg.hubs`-th one (a whole round of the list) counts on the backoff.
    failures: u32,
    rng: u64,
    member: u16,
    resume: u64,
    /// The hub that gave out `resume`: it is presented to that hub only.
    resume_hub: usize,
    /// Our stream id, for the hello: the same for the session's whole life.
    stream: u64,
    connections: u64,
    last_rx_us: u64,
    last_ping_us: u64,
    ctrl_seq: u32,
    /// No new connections (shutting down).
    closing: bool,
    want_connect: bool,
    want_close: bool,
    tx: TxBuf,
    /// Decompressed payloads of received messages.
    scratch: Box<[u8]>,
    compressor: Compressor,
    audio_encoder: audio_codec::AudioEncoder,
    rooms: Rooms,
    rx_streams: Vec<RxStream>,
    /// Received audio streams, for duplicate and gap detection.
    rx_audio: Vec<receive::RxAudio>,
    /// (room, member id, user id hash, stream id) of the members of joined rooms.
    members: Vec<(RoomId, u16, u64, u64)>,
    notes: VecDeque<Note>,
    /// The last disconnection's reason.
    reason: String,
    pose_slot: PoseFrame,
    audio_slot: Box<AudioChunk>,
    stats: SessionStats,
}

impl Session {
    /// A session, down, whose first connection attempt is due at `now`. Every
    /// buffer is allocated here.
    pub fn new(cfg: SessionConfig, now: u64) -> Session {
        let decoders = match cfg.receive {
            Receive::Decode { decoders } => decoders.max(1),
            Receive::Headers => 0,
        };
        let core = Core {
            phase: Phase::Down,
            deadline_us: 0,
            retry_at_us: now,
            backoff: Backoff::new(cfg.reconnect_min_us, cfg.reconnect_max_us),
            hub: 0,
            failures: 0,
            rng: cfg.seed | 1,
            member: 0,
            resume: 0,
            resume_hub: 0,
            stream: stream_id(cfg.seed),
            connections: 0,
            last_rx_us: now,
            last_ping_us: now,
            ctrl_seq: 0,
            closing: false,
            want_connect: false,
            want_close: false,
            tx: TxBuf::new(cfg.tx_capacity),
            scratch: vec![0u8; if decoders > 0 { 16 * 1024 } else { 0 }].into_boxed_slice(),
            compressor: Compressor::new(cfg.encoder.compress_threshold),
            audio_encoder: audio_codec::AudioEncoder::new(cfg.encoder.audio, cfg.max_rooms),
            rooms: Rooms::new(cfg.max_rooms, cfg.max_persons, cfg.audio_window_us),
            rx_streams: Vec::with_capacity(decoders),
            rx_audio: Vec::with_capacity(decoders),
            members: Vec::with_capacity(if decoders > 0 { cfg.max_rooms * 64 } else { 0 }),
            notes: VecDeque::with_capacity(cfg.max_rooms + 8),
            reason: String::with_capacity(256),
            pose_slot: PoseFrame::zeroed(),
            audio_slot: Box::default(),
            stats: SessionStats::default(),
            cfg,
        };
        Session {
            rx: RxBuf::new(core.cfg.rx_capacity),
            core,
        }
    }

    // ---- the transport ----------------------------------------------------------

    /// What to do with the transport now, if anything.
    pub fn poll_transport(&mut self) -> Option<Transport> {
        let c = &mut self.core;
        if std::mem::take(&mut c.want_close) {
            return Some(Transport::Close);
        }
        std::mem::take(&mut c.want_connect).then_some(Transport::Connect)
    }

    /// The transport is connected and upgraded: the hello is queued.
    pub fn handle_connected(&mut self, now: u64) {
        let c = &mut self.core;
        if c.phase != Phase::Connecting {
            return;
        }
        self.rx.clear();
        c.tx.clear();
        c.phase = Phase::Hello;
        c.ctrl_seq = 0;
        c.member = 0;
        c.last_rx_us = now;
        let token = std::mem::take(&mut c.cfg.token);
        let client = std::mem::take(&mut c.cfg.client);
        // A resume id means something to the hub that gave it out only: another
        // hub would take it for one of its own sessions' (or ignore it).
        let resume = if c.resume_hub == c.hub { c.resume } else { 0 };
        let hello = Message::Hello(Hello {
            minor: proto::PROTOCOL_MINOR,
            token: &token,
            resume,
            client: &client,
            stream: c.stream,
        });
        c.send_control(now, 0, &hello);
        c.cfg.token = token;
        c.cfg.client = client;
    }

    /// The transport failed or ended (`why` says how, for the app): the
    /// session forgets the connection and schedules the next attempt.
    pub fn handle_disconnected(&mut self, now: u64, why: &str) {
        self.core.want_close = false;
        self.lost(now, format_args!("{why}"));
    }

    /// No more connections: the next [`Transport::Connect`] is never asked for.
    /// The open session (if any) stays open, so that what was queued can go.
    pub fn shutdown(&mut self) {
        self.core.closing = true;
        self.core.want_connect = false;
    }

    /// Ends the session: a normal WebSocket close frame is queued if a session
    /// is open (write [`poll_transmit`](Self::poll_transmit) out, then drop the
    /// transport); nothing reconnects.
    pub fn close(&mut self) {
        self.shutdown();
        let c = &mut self.core;
        if c.phase == Phase::Ready {
            let mut payload = [0u8; 125];
            let n = ws::close_payload(&mut payload, ws::close_code::NORMAL, "engine shutting down");
            let mask = next_mask(&mut c.rng);
            c.tx.push_frame(FrameKind::Close, &payload[..n], mask);
        }
        c.phase = Phase::Closed;
    }

    // ---- bytes ------------------------------------------------------------------

    /// The bytes waiting to be written (empty if none).
    pub fn poll_transmit(&self) -> &[u8] {
        self.core.tx.pending()
    }

    /// The transport took `n` bytes of [`poll_transmit`](Self::poll_transmit).
    pub fn handle_written(&mut self, n: usize) {
        self.core.tx.consume(n);
        self.core.continue_replays();
    }

    /// Free space of the receive buffer, to read into; then
    /// [`handle_received`](Self::handle_received). Empty when the buffer is full:
    /// call [`poll_event`](Self::poll_event) until `None` first.
    pub fn receive_buffer(&mut self) -> &mut [u8] {
        self.rx.space()
    }

    /// `n` bytes were read into [`receive_buffer`](Self::receive_buffer).
    pub fn handle_received(&mut self, now: u64, n: usize) {
        if n > 0 {
            self.rx.filled(n);
            self.core.last_rx_us = now;
        }
    }

    /// Copies received bytes in (as many as fit; returns how many). For drivers
    /// that read elsewhere, and for tests.
    pub fn handle_data(&mut self, now: u64, data: &[u8]) -> usize {
        let n = self.rx.push(data);
        if n > 0 {
            self.core.last_rx_us = now;
        }
        n
    }

    // ---- time ---------------------------------------------------------------------

    /// The next deadline (µs), if any: a reconnect, the end of a connect, a
    /// ping, the heartbeat's end, a join's answer.
    pub fn poll_timeout(&self) -> Option<u64> {
        let c = &self.core;
        let mut at = match c.phase {
            Phase::Down if !c.closing => Some(c.retry_at_us),
            Phase::Connecting | Phase::Hello => Some(c.deadline_us),
            Phase::Ready => {
                let hb = c.cfg.heartbeat_us;
                Some((c.last_ping_us + hb).min(c.last_rx_us + 2 * hb + 1))
            }
            _ => None,
        };
        for r in c.rooms.slots.iter().filter(|r| r.awaiting) {
            at = Some(at.map_or(r.deadline_us, |a| a.min(r.deadline_us)));
        }
        at
    }

    /// Runs what is due at `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        let c = &mut self.core;
        match c.phase {
            Phase::Down if now >= c.retry_at_us && !c.closing => {
                c.phase = Phase::Connecting;
                c.deadline_us = now + c.cfg.connect_timeout_us;
                c.want_connect = true;
            }
            Phase::Connecting | Phase::Hello if now >= c.deadline_us => {
                c.want_close = true;
                self.lost(now, format_args!("no session within connect_timeout_ms"));
            }
            Phase::Ready => {
                let hb = c.cfg.heartbeat_us;
                if now.saturating_sub(c.last_rx_us) > 2 * hb {
                    c.want_close = true;
                    self.lost(
                        now,
                        format_args!("no answer from the hub for two heartbeat intervals"),
                    );
                } else if now.saturating_sub(c.last_ping_us) >= hb {
                    c.last_ping_us = now;
                    c.send_control(now, 0, &Message::Ping(Ping { t0_us: now }));
                }
            }
            _ => {}
        }
        self.core.join_timeouts(now);
    }

    // ---- rooms --------------------------------------------------------------------

    /// Joins `room` with `role`: the join is sent now if a session is open, else
    /// after the welcome, and again after every reconnect until
    /// [`leave`](Self::leave). The answer comes as [`Event::RoomJoined`],
    /// [`Event::JoinRefused`] or [`Event::JoinTimedOut`].
    pub fn join(&mut self, now: u64, room: &str, role: Role) -> Result<RoomId, JoinError> {
        self.core.join(now, room, role)
    }

    /// Leaves a room and stops rejoining it ([`Event::RoomLeft`] follows).
    pub fn leave(&mut self, now: u64, room: RoomId) {
        self.core.leave(now, room);
    }

    /// Owner control: asks the hub to remove `member` from `room` (`reason`,
    /// cut to [`proto::MAX_REASON_LEN`] bytes, is shown to the member's user).
    /// The hub answers with [`Event::MemberLeft`] (reason `Kicked`) to every
    /// member, or an error ([`Event::HubError`]) if we are not the room's owner.
    pub fn kick(
        &mut self,
        now: u64,
        room: RoomId,
        member: u16,
        reason: &str,
    ) -> Result<(), SendError> {
        let handle = self.core.control_handle(room)?;
        let reason = cut(reason, proto::MAX_REASON_LEN);
        self.core
            .send_control(now, handle, &Message::Kick(Kick { member, reason }));
        Ok(())
    }

    /// Owner control: gives `member` of `room` another role (no more than that
    /// member's token grants). Every member hears of it as
    /// [`Event::RoleChanged`]; a refusal comes as [`Event::HubError`].
    pub fn set_role(
        &mut self,
        now: u64,
        room: RoomId,
        member: u16,
        role: Role,
    ) -> Result<(), SendError> {
        let handle = self.core.control_handle(room)?;
        self.core.send_control(
            now,
            handle,
            &Message::RoleChanged(RoleChanged { member, role }),
        );
        Ok(())
    }

    /// Owner control: closes `room` for every member, us included (we get
    /// [`Event::RoomLeft`] with `RoomClosed`, and the room is not rejoined);
    /// a refusal comes as [`Event::HubError`].
    pub fn close_room(&mut self, now: u64, room: RoomId, reason: &str) -> Result<(), SendError> {
        let handle = self.core.control_handle(room)?;
        let reason = cut(reason, proto::MAX_REASON_LEN);
        self.core
            .send_control(now, handle, &Message::CloseRoom(CloseRoom { reason }));
        Ok(())
    }

    // ---- sending ------------------------------------------------------------------

    /// Whether media may be sent: a session is open and no room is waiting for
    /// its rejoin after a reconnect or for the rest of its replay (which a full
    /// transmit buffer held back): audio keeps its order behind the replay.
    pub fn can_send(&self) -> bool {
        self.core.is_ready() && !self.core.rooms.restoring() && !self.core.replays_pending()
    }

    /// Bytes queued and not yet written.
    pub fn transmit_pending(&self) -> usize {
        self.core.tx.len()
    }

    /// Encodes `frame` for `room` with the room's encoder for its person (the
    /// first frame of a person makes one), in place in the transmit buffer;
    /// returns the message's length.
    pub fn send_pose(&mut self, room: RoomId, frame: &PoseFrame) -> Result<usize, SendError> {
        let c = &mut self.core;
        if !c.is_ready() {
            return Err(SendError::NotConnected);
        }
        let member = c.member;
        let max_persons = c.cfg.max_persons;
        let encoder = c.cfg.encoder;
        let (r, handle) = c.rooms.joined(room).ok_or(SendError::NoRoom)?;
        let person = frame.person;
        let k = match r.encoders.iter().position(|(p, _)| *p == person) {
            Some(k) => k,
            None if r.encoders.len() < max_persons => {
                r.encoders.push((person, PoseEncoder::new(encoder)));
                r.encoders.len() - 1
            }
            None => return Err(SendError::TooManyPersons),
        };
        // Room for the longest pose message: the buffer moves what waits to
        // its front if the space behind it is shorter.
        let buf =
            c.tx.reserve(proto::MAX_POSE_MESSAGE_LEN, proto::MAX_MESSAGE_LEN)
                .ok_or(SendError::TransmitFull)?;
        let n = r.encoders[k]
            .1
            .encode(frame, handle, member, buf)
            .map_err(full_or(SendError::Encode))?;
        let mask = next_mask(&mut c.rng);
        c.tx.commit(FrameKind::Binary, n, mask);
        Ok(n)
    }

    // ---- what the session knows ---------------------------------------------------

    /// The hub the current connection is with, or the next attempt is for: an
    /// index below [`SessionConfig::hubs`], into the driver's list of hub
    /// addresses. The driver reads it on [`Transport::Connect`].
    pub fn hub(&self) -> usize {
        self.core.hub
    }

    /// Our member id on the current connection (0 before the welcome).
    pub fn member(&self) -> u16 {
        self.core.member
    }

    /// Our stream id (sent in every hello; receivers know our media by it
    /// across our reconnects): derived from [`SessionConfig::seed`], non-zero,
    /// below 2^53 ([`proto::MAX_STREAM_ID`]).
    pub fn stream_id(&self) -> u64 {
        self.core.stream
    }

    /// The stream id of member `member` of `room`, as the hub told us (0 if it
    /// gave none, or if the member is unknown).
    pub fn stream_of(&self, room: RoomId, member: u16) -> u64 {
        self.core
            .members
            .iter()
            .find(|m| m.0 == room && m.1 == member)
            .map_or(0, |m| m.3)
    }

    /// Whether a session is open (welcomed).
    pub fn is_connected(&self) -> bool {
        self.core.is_ready()
    }

    /// Whether `room` is one the session holds (joined, or being joined).
    pub fn has_room(&self, room: RoomId) -> bool {
        self.core
            .rooms
            .slots
            .get(room.index())
            .is_some_and(|r| r.in_use)
    }

    /// The hub's handle of `room` on this connection, if joined.
    pub fn room_handle(&self, room: RoomId) -> Option<u16> {
        let r = self.core.rooms.slots.get(room.index())?;
        r.in_use.then_some(r.handle).flatten()
    }

    /// Nothing waits to be written and every sent audio chunk is acknowledged.
    pub fn is_idle(&self) -> bool {
        self.core.tx.len() == 0 && self.core.rooms.all_acked()
    }

    /// The session's running totals.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            skipped: self.rx.skipped,
            ..self.core.stats
        }
    }

    /// The connection is gone: tell the app, forget per-connection state, and
    /// schedule the next attempt.
    fn lost(&mut self, now: u64, why: core::fmt::Arguments<'_>) {
        let c = &mut self.core;
        let was = c.phase;
        if was == Phase::Down || was == Phase::Closed {
            return;
        }
        c.phase = Phase::Down;
        c.tx.clear();
        self.rx.clear();
        c.rooms.forget_handles();
        // Chunks that left the replay window unacknowledged cannot come back now.
        for id in 0..c.rooms.slots.len() {
            let n = c.rooms.slots[id]
                .replay
                .as_mut()
                .map_or(0, |r| r.connection_lost());
            if n > 0 {
                c.stats.audio_lost += n as u64;
                c.note(Note::AudioLost(RoomId(id as u16), n));
            }
        }
        c.reason.clear();
        let _ = c.reason.write_fmt(why);
        if was == Phase::Ready {
            log::warn!("connection to the hub lost: {}", c.reason);
            c.note(Note::Disconnected);
        } else {
            // Loud on the first failure after a loss and then at powers of
            // two: the reason is seen, a dead hub does not fill the log.
            let attempt = c.failures + 1;
            if attempt.is_power_of_two() {
                log::warn!(
                    "connecting to hub {} failed (attempt {attempt}): {}",
                    c.hub,
                    c.reason
                );
            } else {
                log::debug!(
                    "connecting to hub {} failed (attempt {attempt}): {}",
                    c.hub,
                    c.reason
                );
            }
            c.note(Note::ConnectFailed);
        }
        let delay = c.next_attempt();
        c.retry_at_us = now + delay;
        if !c.closing {
            c.note(Note::Reconnecting(c.failures, delay));
        }
    }
}

/// A stream id from the session's seed (splitmix64): non-zero, below 2^53 so
/// that JSON readers hold it exactly.
fn stream_id(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z & proto::MAX_STREAM_ID).max(1)
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A buffer too small is the transmit buffer's fault, not the frame's.
fn full_or(other: fn(proto::Error) -> SendError) -> impl Fn(proto::Error) -> SendError {
    move |e| match e {
        proto::Error::BufferTooSmall { .. } => SendError::TransmitFull,
        e => other(e),
    }
}

impl Core {
    fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// After a failed attempt or a lost session: the hub of the next attempt
    /// and the wait before it (µs). The next hub in the list, round robin; the
    /// backoff's wait grows once per round of the list, and a move to a hub
    /// not tried in this round waits the shortest (jittered) backoff, so that
    /// a board whose hub died is on another one within about
    /// `reconnect_min_us` while a fleet does not arrive at once. With one hub
    /// every attempt counts on the backoff, as before failover existed.
    fn next_attempt(&mut self) -> u64 {
        let hubs = self.cfg.hubs.max(1);
        self.failures = self.failures.saturating_add(1);
        let from = self.hub;
        self.hub = (self.hub + 1) % hubs;
        let jitter = random(&mut self.rng);
        if u64::from(self.failures) % hubs as u64 == 0 {
            self.backoff.next_delay_us(jitter)
        } else {
            if !self.closing {
                log::info!("failing over from hub {from} to hub {}", self.hub);
            }
            self.backoff.shortest_delay_us(jitter)
        }
    }

    /// The hub's handle of `room`, for a control message about it.
    fn control_handle(&mut self, room: RoomId) -> Result<u16, SendError> {
        if !self.is_ready() {
            return Err(SendError::NotConnected);
        }
        self.rooms
            .joined(room)
            .map(|(_, h)| h)
            .ok_or(SendError::NoRoom)
    }

    fn note(&mut self, n: Note) {
        if self.notes.len() == self.notes.capacity() {
            self.notes.pop_front();
        }
        self.notes.push_back(n);
    }

    /// Encodes a control message in place and queues it.
    fn send_control(&mut self, now: u64, room: u16, msg: &Message<'_>) {
        self.ctrl_seq = self.ctrl_seq.wrapping_add(1);
        let h = Header::new(msg.kind(), room, self.member, self.ctrl_seq, now);
        let Some(buf) = self.tx.reserve(64, proto::MAX_MESSAGE_LEN) else {
            log::warn!(
                "transmit buffer full; a {} message is lost",
                msg.kind().name()
            );
            return;
        };
        match encode_control(&h, msg, buf) {
            Ok(n) => {
                let mask = next_mask(&mut self.rng);
                self.tx.commit(FrameKind::Binary, n, mask);
            }
            Err(e) => log::warn!("cannot encode a {} message: {e}", msg.kind().name()),
        }
    }

    fn note_event(&self, n: Note) -> Event<'_> {
        match n {
            Note::Disconnected => Event::Disconnected {
                reason: &self.reason,
            },
            Note::ConnectFailed => Event::ConnectFailed {
                reason: &self.reason,
            },
            Note::Reconnecting(attempt, delay_us) => Event::Reconnecting { attempt, delay_us },
            Note::RoomLeft(room, reason) => Event::RoomLeft { room, reason },
            Note::JoinTimedOut(room) => Event::JoinTimedOut { room },
            Note::AudioLost(room, count) => Event::AudioLost { room, count },
        }
    }
}
