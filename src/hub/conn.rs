//! One connection's slot: its socket, the state of its receive buffer (frames are
//! parsed and unmasked in place there, fragments assembled in place), and its
//! outbound side: a byte FIFO of control frames (never dropped) and a bounded
//! queue of media blocks from the [`Pool`](super::pool::Pool) (the oldest pose,
//! then the oldest audio, dropped when it is full). The receive and control
//! buffers themselves are this slot's stretch of two arenas the hub allocates at
//! start-up (one allocation each, so the pages of unused slots are never touched
//! and cost no resident memory); the methods here take them as arguments.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;

use crate::proto::{MAX_NAME_LEN, Role};
use crate::rate::TokenBucket;
use crate::token::Claims;
use crate::ws::{self, Assembler, FrameKind};

use super::pool::Pool;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The slot is free.
    Free,
    /// Reading the HTTP request (a WebSocket upgrade, `/metrics` or `/healthz`).
    Http,
    /// Upgraded; waiting for the hello.
    AwaitHello,
    /// The hello was accepted.
    Session,
    /// Writing what is left (an error, a close frame, an HTTP answer), then closing.
    Closing,
}

/// A room this connection is in, with what the relay needs per message.
#[derive(Clone, Copy, Debug)]
pub struct Membership {
    /// The room's handle.
    pub handle: u16,
    /// The connection's role there.
    pub role: Role,
    /// The last audio `seq` relayed from this connection in this room.
    pub audio_last: Option<u32>,
    /// An audio `seq` relayed but not yet acknowledged to the publisher.
    pub ack_pending: Option<u32>,
}

/// A cached keyframe of this publisher: the latest standalone pose per (room, person).
#[derive(Clone, Copy, Debug)]
pub struct KeyframeSlot {
    /// The room's handle.
    pub room: u16,
    /// The person.
    pub person: u32,
    /// The pool block holding it.
    pub block: u32,
    /// When it was stored (for replacing the oldest).
    pub stored_us: u64,
}

/// A connection slot.
pub struct Conn {
    pub state: State,
    pub stream: Option<TcpStream>,
    pub peer: SocketAddr,
    /// Bumped each time the slot is reused, so a late timer or event can tell.
    pub generation: u32,
    pub max_message: usize,

    // Receive side (the buffer is the slot's stretch of the hub's receive arena).
    pub rx_len: usize,
    /// Bytes at the front of `rx` that are an assembled (fragmented) message so far.
    pub asm_len: usize,
    /// Bytes at the front of `rx` already parsed (when no message is being assembled).
    pub scan: usize,
    pub assembler: Assembler,

    // Send side (the control FIFO is the slot's stretch of the control arena).
    pub ctrl_head: usize,
    pub ctrl_tail: usize,
    pub data: VecDeque<u32>,
    /// A media block partly written: (block, bytes already written).
    pub partial: Option<(u32, usize)>,
    /// WRITABLE interest is registered.
    pub want_write: bool,
    /// Queued in the hub's list of connections to flush.
    pub dirty: bool,
    /// Queued in the hub's list of connections to read again.
    pub in_again: bool,
    /// The last readiness event said the peer closed its side: read to the end.
    pub hup: bool,
    /// The client asked for the `poselink.json` subprotocol: it sends and gets
    /// JSON text messages, translated at the hub's edges.
    pub json: bool,
    /// Sequence numbers for a JSON client's pose and audio that give none.
    pub json_pose_seq: u32,
    /// See `json_pose_seq`.
    pub json_audio_seq: u32,
    /// After the outbound side empties: half-close and wait for the peer.
    pub close_when_flushed: bool,
    pub write_shut: bool,

    // Session.
    pub member: u16,
    pub user: heapless::String<MAX_NAME_LEN>,
    pub claims: Option<Claims>,
    pub rooms: Vec<Membership>,
    /// Bit `p` set: this receiver lost a pose from the publisher in slot `p` and
    /// gets none of its deltas until its next keyframe.
    pub resync: Box<[u64]>,
    pub keyframes: Vec<KeyframeSlot>,
    /// Control messages sent, numbering the next one.
    pub ctrl_seq: u32,
    pub last_keyframe_request_us: u64,
    /// The id this session's welcome gave for resuming it.
    pub resume_id: u64,
    /// From a resumed session: (room handle, last audio seq) to restore on rejoin.
    pub resumed_audio: Vec<(u16, u32)>,

    // Time.
    pub opened_us: u64,
    pub last_rx_us: u64,
    pub last_ping_us: u64,
    /// The last time a write made progress, or output became pending.
    pub last_progress_us: u64,
    pub close_deadline_us: u64,

    // Limits.
    pub msg_bucket: TokenBucket,
    pub byte_bucket: TokenBucket,
    pub flood_refused: u64,
    pub last_rate_error_us: u64,
}

/// Per-slot sizes.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub queue_depth: usize,
    pub resync_words: usize,
    pub keyframe_slots: usize,
    pub rooms: usize,
    pub max_message: usize,
}

impl Conn {
    pub fn new(s: &Sizes) -> Conn {
        Conn {
            state: State::Free,
            stream: None,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            generation: 0,
            max_message: s.max_message,
            rx_len: 0,
            asm_len: 0,
            scan: 0,
            assembler: Assembler::new(s.max_message),
            ctrl_head: 0,
            ctrl_tail: 0,
            data: VecDeque::with_capacity(s.queue_depth),
            partial: None,
            want_write: false,
            dirty: false,
            in_again: false,
            hup: false,
            json: false,
            json_pose_seq: 0,
            json_audio_seq: 0,
            close_when_flushed: false,
            write_shut: false,
            member: 0,
            user: heapless::String::new(),
            claims: None,
            rooms: Vec::with_capacity(s.rooms),
            resync: vec![0u64; s.resync_words].into_boxed_slice(),
            keyframes: Vec::with_capacity(s.keyframe_slots),
            ctrl_seq: 0,
            last_keyframe_request_us: 0,
            resume_id: 0,
            resumed_audio: Vec::with_capacity(s.rooms),
            opened_us: 0,
            last_rx_us: 0,
            last_ping_us: 0,
            last_progress_us: 0,
            close_deadline_us: 0,
            msg_bucket: TokenBucket::new(1, 1, 0),
            byte_bucket: TokenBucket::new(1, 1, 0),
            flood_refused: 0,
            last_rate_error_us: 0,
        }
    }

    /// Media entries plus control bytes waiting.
    pub fn has_output(&self) -> bool {
        self.partial.is_some() || self.ctrl_head != self.ctrl_tail || !self.data.is_empty()
    }

    /// Appends a whole server frame (header + payload) to the control FIFO.
    /// `false` if it does not fit: the receiver is not reading.
    /// Bytes the control FIFO can take now.
    pub fn ctrl_room(&self, capacity: usize) -> usize {
        capacity - (self.ctrl_tail - self.ctrl_head)
    }

    pub fn push_ctrl_frame(&mut self, ctrl: &mut [u8], kind: FrameKind, payload: &[u8]) -> bool {
        let mut head = [0u8; 10];
        let Some(hl) = ws::write_header(&mut head, kind, true, payload.len()) else {
            return false;
        };
        self.push_ctrl_raw(ctrl, &[&head[..hl], payload])
    }

    /// Appends raw bytes (an HTTP response, or a frame in parts) to the control FIFO.
    pub fn push_ctrl_raw(&mut self, ctrl: &mut [u8], parts: &[&[u8]]) -> bool {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if ctrl.len() - self.ctrl_tail < n && self.ctrl_head > 0 {
            ctrl.copy_within(self.ctrl_head..self.ctrl_tail, 0);
            self.ctrl_tail -= self.ctrl_head;
            self.ctrl_head = 0;
        }
        if ctrl.len() - self.ctrl_tail < n {
            return false;
        }
        for p in parts {
            ctrl[self.ctrl_tail..self.ctrl_tail + p.len()].copy_from_slice(p);
            self.ctrl_tail += p.len();
        }
        true
    }

    /// Resets the slot for a new connection (buffers kept).
    pub fn open(&mut self, stream: TcpStream, peer: SocketAddr, now_us: u64) {
        self.state = State::Http;
        self.stream = Some(stream);
        self.peer = peer;
        self.generation = self.generation.wrapping_add(1);
        self.rx_len = 0;
        self.asm_len = 0;
        self.scan = 0;
        self.assembler = Assembler::new(self.max_message);
        self.ctrl_head = 0;
        self.ctrl_tail = 0;
        self.partial = None;
        self.want_write = false;
        self.hup = false;
        self.close_when_flushed = false;
        self.write_shut = false;
        self.member = 0;
        self.user.clear();
        self.claims = None;
        self.rooms.clear();
        self.resync.fill(0);
        self.ctrl_seq = 0;
        self.last_keyframe_request_us = 0;
        self.opened_us = now_us;
        self.last_rx_us = now_us;
        self.last_ping_us = now_us;
        self.last_progress_us = now_us;
        self.close_deadline_us = 0;
        self.flood_refused = 0;
        self.last_rate_error_us = 0;
    }

    /// Reads what the socket has into `rx` (this slot's receive buffer), at most `budget` bytes. Returns the
    /// bytes read, and whether the socket is drained (`WouldBlock`) or closed.
    pub fn read_some(&mut self, rx: &mut [u8], budget: usize) -> io::Result<(usize, ReadEnd)> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok((0, ReadEnd::Closed));
        };
        let mut total = 0;
        loop {
            if self.rx_len == rx.len() {
                return Ok((total, ReadEnd::BufferFull));
            }
            if total >= budget {
                return Ok((total, ReadEnd::Budget));
            }
            match stream.read(&mut rx[self.rx_len..]) {
                Ok(0) => return Ok((total, ReadEnd::Closed)),
                Ok(n) => {
                    let asked = rx.len() - self.rx_len;
                    self.rx_len += n;
                    total += n;
                    // A short read emptied the socket's queue: data arriving later
                    // raises a new edge, so the `WouldBlock` read can be skipped
                    // (what tokio does too). Saves a system call per message.
                    if n < asked && !self.hup {
                        return Ok((total, ReadEnd::Drained));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((total, ReadEnd::Drained));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes as much of the outbound side as the socket takes: the rest of a
    /// partly written media frame, then control frames, then media frames, in one
    /// `writev` per round. `delivered(block)` is called for each media block
    /// written whole (after which the block is released).
    pub fn flush(
        &mut self,
        ctrl: &[u8],
        pool: &mut Pool,
        mut delivered: impl FnMut(&Pool, u32),
    ) -> io::Result<FlushEnd> {
        const MAX_SLICES: usize = 32;
        let mut written_total = 0usize;
        loop {
            if !self.has_output() {
                return Ok(FlushEnd::Empty(written_total));
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(FlushEnd::Empty(written_total));
            };
            let n = {
                let mut slices: [IoSlice<'_>; MAX_SLICES] = [IoSlice::new(&[]); MAX_SLICES];
                let mut k = 0;
                if let Some((b, off)) = self.partial {
                    slices[k] = IoSlice::new(&pool.bytes(b)[off..]);
                    k += 1;
                }
                if self.ctrl_head != self.ctrl_tail {
                    slices[k] = IoSlice::new(&ctrl[self.ctrl_head..self.ctrl_tail]);
                    k += 1;
                }
                for &b in self.data.iter().take(MAX_SLICES - k) {
                    slices[k] = IoSlice::new(pool.bytes(b));
                    k += 1;
                }
                match stream.write_vectored(&slices[..k]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(FlushEnd::Blocked(written_total));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            written_total += n;
            let mut left = n;
            if let Some((b, off)) = self.partial {
                let rest = pool.bytes(b).len() - off;
                if left >= rest {
                    left -= rest;
                    self.partial = None;
                    delivered(pool, b);
                    pool.release(b);
                } else {
                    self.partial = Some((b, off + left));
                    continue;
                }
            }
            let c = (self.ctrl_tail - self.ctrl_head).min(left);
            self.ctrl_head += c;
            left -= c;
            if self.ctrl_head == self.ctrl_tail {
                self.ctrl_head = 0;
                self.ctrl_tail = 0;
            }
            while left > 0 {
                let b = self
                    .data
                    .pop_front()
                    .expect("written bytes came from the queue");
                let len = pool.bytes(b).len();
                if left >= len {
                    left -= len;
                    delivered(pool, b);
                    pool.release(b);
                } else {
                    self.partial = Some((b, left));
                    left = 0;
                }
            }
        }
    }

    /// Releases every block this connection holds.
    pub fn release_all(&mut self, pool: &mut Pool) {
        if let Some((b, _)) = self.partial.take() {
            pool.release(b);
        }
        for b in self.data.drain(..) {
            pool.release(b);
        }
        for k in self.keyframes.drain(..) {
            pool.release(k.block);
        }
    }

    pub fn resync_get(&self, publisher: u32) -> bool {
        let (w, b) = (publisher as usize / 64, publisher % 64);
        self.resync.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    pub fn resync_set(&mut self, publisher: u32, on: bool) {
        let (w, b) = (publisher as usize / 64, publisher % 64);
        if let Some(x) = self.resync.get_mut(w) {
            if on {
                *x |= 1 << b;
            } else {
                *x &= !(1 << b);
            }
        }
    }

    pub fn membership(&self, handle: u16) -> Option<&Membership> {
        self.rooms.iter().find(|m| m.handle == handle)
    }

    pub fn membership_mut(&mut self, handle: u16) -> Option<&mut Membership> {
        self.rooms.iter_mut().find(|m| m.handle == handle)
    }
}

/// Why [`Conn::read_some`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The socket has nothing more now.
    Drained,
    /// The read budget is spent; the socket may have more.
    Budget,
    /// The receive buffer is full: parse before reading more.
    BufferFull,
    /// The peer closed its side.
    Closed,
}

/// How [`Conn::flush`] ended, with the bytes written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushEnd {
    /// Everything was written.
    Empty(usize),
    /// The socket took no more; wait for WRITABLE.
    Blocked(usize),
}
