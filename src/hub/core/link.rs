//! One connection's byte side, apart from its session: where it is in its life,
//! its outbound side — a byte FIFO of whole control frames (never dropped; the
//! bytes are this connection's stretch of the core's control arena) and a bounded
//! queue of media blocks in the shared [`Pool`] — and the times and rate limits
//! the core keeps per connection. [`Link::transmit`] lends the outbound side for
//! one vectored write, oldest first; [`Link::written`] takes away what the write
//! took.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;

use crate::rate::{TokenBucket, WindowCounter};
use crate::ws::{self, FrameKind};

use super::HubConfig;
use super::pool::Pool;

/// Tokens one room creation takes from [`Link::room_bucket`], which refills at
/// `room_creations_per_minute` tokens a second: a minute's worth a room.
pub(super) const ROOM_TOKENS: u64 = 60;

/// Malformed messages answered with an `error` at once; beyond that, answers
/// refill at [`BAD_ANSWERS_PER_S`]. A peer sending garbage in bulk gets a
/// sample of answers (the next one saying how many went unanswered) instead of
/// one per message, which would fill its control buffer and close it as a slow
/// consumer without a word.
pub(super) const BAD_ANSWERS_BURST: u64 = 16;
/// See [`BAD_ANSWERS_BURST`].
pub(super) const BAD_ANSWERS_PER_S: u64 = 4;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// The slot is free.
    Free,
    /// Upgraded; waiting for the hello.
    AwaitHello,
    /// The hello was accepted.
    Session,
    /// Writing what is left (an error, a close frame), then closing.
    Closing,
}

/// A connection's byte side.
pub(super) struct Link {
    pub phase: Phase,
    pub peer: SocketAddr,
    /// The client asked for the `poselink.json` subprotocol: it sends and gets
    /// JSON text messages, translated at the core's edges.
    pub json: bool,

    // Outbound.
    pub ctrl_head: usize,
    pub ctrl_tail: usize,
    pub data: VecDeque<u32>,
    /// A media block partly written: (block, bytes already written).
    pub partial: Option<(u32, usize)>,
    /// Control messages sent, numbering the next one.
    pub ctrl_seq: u32,
    /// Listed in the core's output list (not yet returned to the driver).
    pub queued_for_output: bool,
    /// After the outbound side empties: ask the driver to shut the write half.
    pub close_when_flushed: bool,
    /// A close frame's payload (and its length) waiting for the media queued
    /// before it to be written: nothing may follow a close frame.
    pub close_after_media: Option<([u8; 125], u8)>,
    /// That was asked.
    pub shutdown_asked: bool,

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
    /// Messages, and their bytes, refused at the rate limits over the last
    /// `flood_window_ms`.
    pub refused_msgs: WindowCounter,
    pub refused_bytes: WindowCounter,
    pub last_rate_error_us: u64,
    /// Rooms this connection may create: [`ROOM_TOKENS`] tokens a room.
    pub room_bucket: TokenBucket,
    /// Answers to this connection's malformed messages: [`BAD_ANSWERS_BURST`]
    /// at once, [`BAD_ANSWERS_PER_S`] a second after that.
    pub bad_answers: TokenBucket,
    /// Malformed messages refused without an answer since the last answer.
    pub bad_unanswered: u32,
}

impl Link {
    /// A free slot with room for `queue_depth` media blocks.
    pub fn new(queue_depth: usize) -> Link {
        Link {
            phase: Phase::Free,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            json: false,
            ctrl_head: 0,
            ctrl_tail: 0,
            data: VecDeque::with_capacity(queue_depth),
            partial: None,
            ctrl_seq: 0,
            queued_for_output: false,
            close_when_flushed: false,
            close_after_media: None,
            shutdown_asked: false,
            opened_us: 0,
            last_rx_us: 0,
            last_ping_us: 0,
            last_progress_us: 0,
            close_deadline_us: 0,
            msg_bucket: TokenBucket::new(1, 1, 0),
            byte_bucket: TokenBucket::new(1, 1, 0),
            refused_msgs: WindowCounter::new(1, 0),
            refused_bytes: WindowCounter::new(1, 0),
            last_rate_error_us: 0,
            room_bucket: TokenBucket::new(1, 1, 0),
            bad_answers: TokenBucket::new(1, 1, 0),
            bad_unanswered: 0,
        }
    }

    /// Resets the slot for a connection just upgraded (buffers kept).
    pub fn open(&mut self, peer: SocketAddr, json: bool, now: u64, cfg: &HubConfig) {
        debug_assert!(self.data.is_empty() && self.partial.is_none());
        self.phase = Phase::AwaitHello;
        self.peer = peer;
        self.json = json;
        self.ctrl_head = 0;
        self.ctrl_tail = 0;
        self.ctrl_seq = 0;
        self.close_when_flushed = false;
        self.close_after_media = None;
        self.shutdown_asked = false;
        self.opened_us = now;
        self.last_rx_us = now;
        self.last_ping_us = now;
        self.last_progress_us = now;
        self.close_deadline_us = 0;
        self.msg_bucket = TokenBucket::new(cfg.rate_messages, cfg.burst_messages, now);
        self.byte_bucket = TokenBucket::new(cfg.rate_bytes, cfg.burst_bytes, now);
        self.refused_msgs = WindowCounter::new(cfg.flood_window_ms * 1000, now);
        self.refused_bytes = WindowCounter::new(cfg.flood_window_ms * 1000, now);
        self.last_rate_error_us = 0;
        self.room_bucket = TokenBucket::new(
            cfg.room_creations_per_minute,
            cfg.room_creation_burst.saturating_mul(ROOM_TOKENS),
            now,
        );
        self.bad_answers = TokenBucket::new(BAD_ANSWERS_PER_S, BAD_ANSWERS_BURST, now);
        self.bad_unanswered = 0;
    }

    /// Media blocks or control bytes waiting. (A JSON connection with media
    /// waiting for translation always has control bytes waiting too: the
    /// media wait only while its control FIFO is not empty.)
    pub fn has_output(&self) -> bool {
        self.partial.is_some() || self.ctrl_head != self.ctrl_tail || !self.data.is_empty()
    }

    /// Bytes the control FIFO (of `capacity` bytes) can take now.
    pub fn ctrl_room(&self, capacity: usize) -> usize {
        capacity - (self.ctrl_tail - self.ctrl_head)
    }

    /// Appends a whole server frame (header + payload) to the control FIFO
    /// `ctrl`; `false` if it does not fit: the receiver is not reading.
    pub fn push_ctrl_frame(&mut self, ctrl: &mut [u8], kind: FrameKind, payload: &[u8]) -> bool {
        let mut head = [0u8; 10];
        let Some(hl) = ws::write_header(&mut head, kind, true, payload.len()) else {
            return false;
        };
        self.push_ctrl_raw(ctrl, &[&head[..hl], payload])
    }

    /// Appends bytes (a frame in parts) to the control FIFO.
    fn push_ctrl_raw(&mut self, ctrl: &mut [u8], parts: &[&[u8]]) -> bool {
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

    /// Lends the outbound side for one vectored write: the rest of a partly
    /// written media frame, then the control frames, then media frames, as many
    /// as `slices` holds. Returns how many slices it filled. A JSON connection's
    /// media queue holds binary blocks waiting to be translated into its control
    /// FIFO (see `json_refill`): they are never lent.
    pub fn transmit<'a>(
        &self,
        ctrl: &'a [u8],
        pool: &'a Pool,
        slices: &mut [IoSlice<'a>],
    ) -> usize {
        let mut k = 0;
        if let Some((b, off)) = self.partial
            && k < slices.len()
        {
            slices[k] = IoSlice::new(&pool.bytes(b)[off..]);
            k += 1;
        }
        if self.ctrl_head != self.ctrl_tail && k < slices.len() {
            slices[k] = IoSlice::new(&ctrl[self.ctrl_head..self.ctrl_tail]);
            k += 1;
        }
        for &b in self.data.iter() {
            if k == slices.len() || self.json {
                break;
            }
            slices[k] = IoSlice::new(pool.bytes(b));
            k += 1;
        }
        k
    }

    /// The first `n` bytes of what [`transmit`](Self::transmit) lent were
    /// written. `delivered(block)` is called for each media block written whole
    /// (after which this connection's hold on it is released).
    pub fn written(&mut self, n: usize, pool: &mut Pool, mut delivered: impl FnMut(&Pool, u32)) {
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
                return;
            }
        }
        let c = (self.ctrl_tail - self.ctrl_head).min(left);
        self.ctrl_head += c;
        left -= c;
        if self.ctrl_head == self.ctrl_tail {
            self.ctrl_head = 0;
            self.ctrl_tail = 0;
        }
        while left > 0 && !self.json {
            // More than was lent is a driver's mistake; ignore the excess.
            let Some(b) = self.data.pop_front() else {
                return;
            };
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

    /// Releases every block this connection's queue holds and forgets its
    /// output.
    pub fn release_all(&mut self, pool: &mut Pool) {
        if let Some((b, _)) = self.partial.take() {
            pool.release(b);
        }
        for b in self.data.drain(..) {
            pool.release(b);
        }
        self.ctrl_head = 0;
        self.ctrl_tail = 0;
        self.close_after_media = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::core::pool::Meta;

    /// What `transmit` lends, gathered.
    fn lent(l: &Link, ctrl: &[u8], pool: &Pool) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); 8];
        let k = l.transmit(ctrl, pool, &mut slices);
        slices[..k].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn control_goes_before_media_and_partial_writes_resume() {
        let mut pool = Pool::new(4);
        let mut ctrl = vec![0u8; 64];
        let mut l = Link::new(8);
        let a = pool.store(b"AA", b"aaaa", Meta::default(), 0).unwrap();
        let b = pool.store(b"BB", b"bb", Meta::default(), 0).unwrap();
        l.data.push_back(a);
        l.data.push_back(b);
        assert!(l.push_ctrl_frame(&mut ctrl, FrameKind::Binary, b"c"));
        assert_eq!(lent(&l, &ctrl, &pool), b"\x82\x01cAAaaaaBBbb");

        // The write takes the control frame and part of the first block.
        let mut delivered = Vec::new();
        l.written(7, &mut pool, |_, blk| delivered.push(blk));
        assert!(delivered.is_empty());
        assert_eq!(lent(&l, &ctrl, &pool), b"aaBBbb");
        l.written(6, &mut pool, |_, blk| delivered.push(blk));
        assert_eq!(delivered, [a, b]);
        assert!(!l.has_output());
        assert_eq!(pool.in_use(), 0, "every block released");
    }

    #[test]
    fn a_full_control_fifo_refuses_and_compacts() {
        let mut ctrl = vec![0u8; 8];
        let mut l = Link::new(1);
        assert!(l.push_ctrl_frame(&mut ctrl, FrameKind::Binary, b"1234"));
        assert!(!l.push_ctrl_frame(&mut ctrl, FrameKind::Binary, b"5"));
        let mut pool = Pool::new(1);
        l.written(3, &mut pool, |_, _| {});
        // 3 bytes left at the back; the new frame fits once they move down.
        assert!(l.push_ctrl_frame(&mut ctrl, FrameKind::Binary, b"56"));
        assert_eq!(lent(&l, &ctrl, &pool), b"234\x82\x0256");
        assert_eq!(l.ctrl_room(8), 1);
    }
}
