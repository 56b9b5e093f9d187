//! The driver's sockets: a slot table of them (a socket's `mio` token is its
//! slot's index), accepting, reading and writing, and acting on the core's
//! events. A socket in HTTP is the driver's alone (`http`); an upgraded one is
//! a core connection, and this file only moves its bytes: reads land in the
//! buffer the core lends (`Core::recv_buffer`); writes take what the core
//! lends (`Core::poll_transmit`), after the driver's own bytes (an upgrade's
//! `101`), in one `sendmsg` per round, with WRITABLE interest registered only
//! while output waits. On a TLS hub every socket is a [`Stream`] with a
//! [`TlsLink`](crate::tls::TlsLink) between it and the bytes above, once its
//! first byte shows a TLS handshake (`http`); reading and writing are the same
//! calls either way, and sealed bytes the socket did not take keep WRITABLE
//! interest.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use poselink_hal::Clock;

use crate::hub::core::{Closed, ConnId, Event};
use crate::hub::metrics::Fault;
use crate::tls::{Stream, TlsError};

use super::{Driver, LogKind};

/// Slices lent for one `sendmsg`.
const MAX_SLICES: usize = 32;

/// Writes `slices` to a socket in one system call: on a plain socket one
/// `sendmsg` (socket2's), the socket layer's own call, which skips the file
/// layer that `writev` passes through first and, with `MSG_NOSIGNAL`, never
/// raises SIGPIPE in a program that embeds the hub; through TLS, the stream's
/// own write (sealed records then one write).
fn send_vectored(stream: &mut Stream<TcpStream>, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    match stream {
        Stream::Plain(sock) => {
            socket2::SockRef::from(&*sock).send_vectored_with_flags(slices, libc::MSG_NOSIGNAL)
        }
        tls => tls.write_vectored(slices),
    }
}

/// Where a socket is in its life, as the driver sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// The slot is free.
    Free,
    /// Reading the HTTP request head.
    Http,
    /// Writing an HTTP answer, then closing.
    Answer,
    /// Upgraded: the core's connection.
    Ws(ConnId),
}

/// A socket and what the driver keeps for it.
pub(super) struct Slot {
    pub(super) phase: Phase,
    pub(super) stream: Option<Stream<TcpStream>>,
    pub(super) peer: SocketAddr,
    /// A TLS hub has not seen this socket's first byte yet (TLS is put on
    /// when it is a handshake record).
    pub(super) tls_first: bool,
    /// Bytes of the HTTP request head so far, and where they are: in the
    /// driver's shared scratch (only while one read is being looked at) or in
    /// the slot's stretch of the heads arena.
    pub(super) head_len: usize,
    pub(super) head_in_scratch: bool,
    /// Bytes written before the core's: an HTTP answer, or an upgrade's `101`.
    pub(super) out: Vec<u8>,
    pub(super) out_at: usize,
    /// HTTP: when the request must be complete; an answer: when to stop waiting
    /// for the peer to close.
    pub(super) deadline_us: u64,
    /// WRITABLE interest is registered.
    pub(super) want_write: bool,
    /// Listed to be written this round.
    pub(super) flush_queued: bool,
    /// Listed to be read again next round.
    pub(super) in_again: bool,
    /// Over its rate limits and its small read budget spent: listed to be read
    /// again at the next tick, not before (readiness events wait for it).
    pub(super) in_later: bool,
    /// The last readiness event said the peer closed its side: read to the end.
    pub(super) hup: bool,
    pub(super) write_shut: bool,
}

impl Slot {
    pub(super) fn new() -> Slot {
        Slot {
            phase: Phase::Free,
            stream: None,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            tls_first: false,
            head_in_scratch: false,
            head_len: 0,
            out: Vec::new(),
            out_at: 0,
            deadline_us: 0,
            want_write: false,
            flush_queued: false,
            in_again: false,
            in_later: false,
            hup: false,
            write_shut: false,
        }
    }
}

/// What a flush found.
enum Flushed {
    /// Everything was written.
    Empty,
    /// The socket took no more; wait for WRITABLE.
    Blocked,
}

impl Driver {
    pub(super) fn accept_all(&mut self, listener: &TcpListener, now: u64) {
        loop {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    let Some(s) = self.free.pop() else {
                        self.core.stats_mut().count_fault(Fault::HubFull);
                        let line = format_args!(
                            "refused {peer}: all {} sockets are in use ({} connection slots and {} for HTTP requests)",
                            self.slots.len(),
                            self.cfg.max_connections,
                            self.slots.len() - self.cfg.max_connections
                        );
                        self.log_limit.warn(LogKind::HubFull, now, line);
                        let _ = stream.write(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 67\r\nConnection: close\r\n\r\nThe hub holds its maximum number of connections; try again later.\r\n",
                        );
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let i = s as usize;
                    if let Err(e) =
                        self.registry
                            .register(&mut stream, Token(i), Interest::READABLE)
                    {
                        let line = format_args!("cannot register {peer}: {e}");
                        self.log_limit.warn(LogKind::Accept, now, line);
                        self.free.push(s);
                        continue;
                    }
                    let slot = &mut self.slots[i];
                    slot.phase = Phase::Http;
                    slot.stream = Some(Stream::Plain(stream));
                    slot.tls_first = self.tls.is_some();
                    slot.peer = peer;
                    slot.head_len = 0;
                    slot.out.clear();
                    slot.out_at = 0;
                    slot.deadline_us = now + self.cfg.handshake_timeout_ms * 1000;
                    slot.want_write = false;
                    slot.hup = false;
                    slot.write_shut = false;
                    self.open += 1;
                    self.core.stats_mut().accepted += 1;
                    log::debug!("socket {i} from {peer}");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog for the next
                    // readiness event rather than spinning.
                    let line = format_args!("accept failed: {e}");
                    self.log_limit.warn(LogKind::Accept, now, line);
                    return;
                }
            }
        }
    }

    pub(super) fn on_ready(&mut self, s: usize, ev: &mio::event::Event, now: u64) {
        let Some(slot) = self.slots.get_mut(s) else {
            return; // a stray token
        };
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            // With the peer's FIN already here, read to the end: a short read
            // would not see it, and no new edge comes.
            slot.hup = ev.is_read_closed() || ev.is_error();
            if slot.in_later && matches!(slot.phase, Phase::Ws(_)) {
                // Read at the next tick, with the rest of the throttled.
                return;
            }
            self.on_readable(s, now);
        }
        if ev.is_writable() {
            self.queue_flush(s);
        }
    }

    fn on_readable(&mut self, s: usize, now: u64) {
        match self.slots[s].phase {
            Phase::Free => {}
            Phase::Http => self.read_http(s, now),
            Phase::Answer => self.read_discard(s),
            Phase::Ws(c) => self.read_ws(s, c, now),
        }
    }

    /// Reads slot `s` again in the next iteration (its budget ran out).
    pub(super) fn push_again(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        if !slot.in_again {
            slot.in_again = true;
            self.again.push(s as u32);
        }
    }

    /// Reads slot `s` again at the next tick (a connection over its rate
    /// limits spent its small budget).
    fn push_later(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        if !slot.in_later {
            slot.in_later = true;
            self.later.push(s as u32);
        }
    }

    /// The tick: the throttled connections are read again.
    pub(super) fn release_later(&mut self) {
        for k in 0..self.later.len() {
            let s = self.later[k] as usize;
            self.slots[s].in_later = false;
            if matches!(self.slots[s].phase, Phase::Ws(_)) {
                self.push_again(s);
            }
        }
        self.later.clear();
    }

    pub(super) fn read_again(&mut self, now: u64) {
        std::mem::swap(&mut self.again, &mut self.again_next);
        self.again.clear();
        for k in 0..self.again_next.len() {
            let s = self.again_next[k] as usize;
            self.slots[s].in_again = false;
            self.on_readable(s, now);
        }
        self.again_next.clear();
    }

    /// Reads an upgraded connection into the buffer the core lends.
    /// At most the core's read budget for it per loop turn (`read_budget`), so
    /// that one socket cannot hold the loop; the rest waits for the next turn.
    /// A connection over its rate limits gets a small budget per tick instead:
    /// its bytes wait in its socket, where TCP slows the sender down.
    fn read_ws(&mut self, s: usize, c: ConnId, now: u64) {
        let budget = self.core.read_budget(now, c);
        let throttled = budget < self.cfg.read_budget;
        let mut total = 0;
        loop {
            if total >= budget {
                return if throttled {
                    self.push_later(s)
                } else {
                    self.push_again(s)
                };
            }
            let slot = &mut self.slots[s];
            let Some(stream) = slot.stream.as_mut() else {
                return;
            };
            let buf = self.core.recv_buffer(c);
            let buf_len = buf.len().min(budget - total);
            let buf = &mut buf[..buf_len];
            let asked = buf.len();
            if asked == 0 {
                return self.push_again(s);
            }
            match stream.read(buf) {
                Ok(0) => {
                    log::debug!("socket {s} ({}) closed by the peer", slot.peer);
                    self.core.handle_closed(now, c, Closed::Peer);
                    return self.close_slot(s);
                }
                Ok(n) => {
                    total += n;
                    // A TLS read ends at a record: more may wait behind it.
                    let hup = slot.hup || stream.is_tls();
                    self.receive(now, c, n);
                    if self.slots[s].phase != Phase::Ws(c) {
                        return;
                    }
                    // A short read emptied the socket's queue: data arriving later
                    // raises a new edge, so the `WouldBlock` read can be skipped
                    // (what tokio does too). Saves a system call per message.
                    if n < asked && !hup {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.read_error(s, &e);
                    self.core.handle_closed(now, c, Closed::ReadFailed);
                    return self.close_slot(s);
                }
            }
        }
    }

    /// Hands `n` bytes read for connection `c` to the core. When a receiver's
    /// queue fills on the way, the core holds the rest back: what is due is
    /// written first, then the core goes on (each round handles at least one
    /// message, so this ends).
    pub(super) fn receive(&mut self, now: u64, c: ConnId, n: usize) {
        let mut more = self.core.handle_received(now, c, n);
        self.drain_events();
        while more {
            self.flush_all();
            more = self.core.handle_received(now, c, 0);
            self.drain_events();
        }
    }

    /// Logs and counts a read error (TLS ones as such).
    pub(super) fn read_error(&mut self, s: usize, e: &io::Error) {
        let peer = self.slots[s].peer;
        if e.get_ref().is_some_and(|r| r.is::<TlsError>()) {
            self.core.stats_mut().count_fault(Fault::Tls);
            let now = self.clock.now_us();
            let line = format_args!("socket {s} ({peer}): TLS failed, closed: {e}");
            self.log_limit.warn(LogKind::Tls, now, line);
        } else if e.kind() == io::ErrorKind::UnexpectedEof {
            self.core.stats_mut().count_fault(Fault::Tls);
            log::info!("socket {s} ({peer}): {e}");
        } else {
            log::debug!("socket {s} ({peer}): read error {e}");
        }
    }

    /// Reads and drops what a peer sends after its HTTP answer, until it closes.
    fn read_discard(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        let Some(stream) = slot.stream.as_mut() else {
            return;
        };
        let mut total = 0;
        loop {
            if total >= self.cfg.read_budget {
                return self.push_again(s);
            }
            match stream.read(&mut self.head_scratch) {
                Ok(0) => return self.close_slot(s),
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A reset here is the peer's answer to being closed.
                Err(_) => return self.close_slot(s),
            }
        }
    }

    pub(super) fn queue_flush(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        if !slot.flush_queued && slot.phase != Phase::Free {
            slot.flush_queued = true;
            self.to_flush.push(s as u32);
        }
    }

    /// Writes every socket that became writable or has new output from the core.
    pub(super) fn flush_all(&mut self) {
        while let Some(c) = self.core.poll_output() {
            if let Some(s) = self.slot(c) {
                self.queue_flush(s);
            }
        }
        let mut k = 0;
        while k < self.to_flush.len() {
            let s = self.to_flush[k] as usize;
            k += 1;
            self.slots[s].flush_queued = false;
            self.flush(s);
        }
        self.to_flush.clear();
    }

    /// Writes what slot `s` has (its own bytes, then the core's), in one
    /// `writev` per round, until done or the socket takes no more.
    fn flush(&mut self, s: usize) {
        let now = self.clock.now_us();
        let conn = match self.slots[s].phase {
            Phase::Free => return,
            // Only a TLS handshake's own records go out before the answer.
            Phase::Http => return self.flush_tls(s),
            Phase::Answer => None,
            Phase::Ws(c) => Some(c),
        };
        let result = loop {
            let slot = &mut self.slots[s];
            let Some(stream) = slot.stream.as_mut() else {
                return;
            };
            let own = &slot.out[slot.out_at..];
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut k = 0;
            if !own.is_empty() {
                slices[0] = IoSlice::new(own);
                k = 1;
            }
            if let Some(c) = conn {
                k += self.core.poll_transmit(c, &mut slices[k..]);
            }
            if k == 0 {
                // Sealed records the socket did not take yet keep it listed.
                break match stream.send_pending() {
                    Ok(()) if stream.pending() => Ok(Flushed::Blocked),
                    Ok(()) => Ok(Flushed::Empty),
                    Err(e) => Err(e),
                };
            }
            let own_len = own.len();
            let n = match send_vectored(stream, &slices[..k]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(Flushed::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            let slot = &mut self.slots[s];
            let own_written = n.min(own_len);
            slot.out_at += own_written;
            if own_written > 0 && slot.out_at == slot.out.len() && conn.is_some() {
                // The `101` is out: the core's bytes follow.
                slot.out = Vec::new();
                slot.out_at = 0;
            }
            if let Some(c) = conn
                && n > own_written
            {
                self.core.handle_written(now, c, n - own_written);
            }
        };
        match result {
            Ok(end) => {
                let want = matches!(end, Flushed::Blocked);
                self.want_write(s, want);
                let slot = &self.slots[s];
                if !want && slot.phase == Phase::Answer {
                    self.shut_write(s);
                }
            }
            Err(e) => {
                log::debug!("socket {s}: write error {e}");
                match conn {
                    Some(c) => self.core.handle_closed(now, c, Closed::WriteFailed),
                    None => self.core.stats_mut().count_fault(Fault::Io),
                }
                self.close_slot(s);
            }
        }
        self.drain_events();
    }

    /// Registers or drops WRITABLE interest for slot `s`.
    fn want_write(&mut self, s: usize, want: bool) {
        let slot = &mut self.slots[s];
        if want != slot.want_write
            && let Some(stream) = slot.stream.as_mut()
        {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .registry
                .reregister(stream.socket(), Token(s), interest)
                .is_ok()
            {
                slot.want_write = want;
            }
        }
    }

    /// Sends a TLS handshake's records that the socket did not take at once.
    fn flush_tls(&mut self, s: usize) {
        let Some(stream) = self.slots[s].stream.as_mut() else {
            return;
        };
        match stream.send_pending() {
            Ok(()) => {
                let want = stream.pending();
                self.want_write(s, want);
            }
            Err(e) => {
                log::debug!("socket {s}: write error {e}");
                self.core.stats_mut().count_fault(Fault::Io);
                self.close_slot(s);
            }
        }
    }

    // ---- the core's events, and closing ---------------------------------------

    fn slot(&self, c: ConnId) -> Option<usize> {
        match self.slot_of.get(c.index()).copied() {
            Some(0) | None => None,
            Some(s) => Some(s as usize - 1),
        }
    }

    /// Acts on everything the core asked for.
    pub(super) fn drain_events(&mut self) {
        while let Some(ev) = self.core.poll_event() {
            let Some(s) = self.slot(ev.conn()) else {
                continue;
            };
            match ev {
                Event::Shutdown(_) => self.shut_write(s),
                Event::Close(_) => self.close_slot(s),
            }
        }
    }

    /// Half-closes slot `s` (everything is written): the peer reads to the end.
    fn shut_write(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        if !slot.write_shut {
            slot.write_shut = true;
            if let Some(stream) = slot.stream.as_mut() {
                // TLS: close_notify first (if the socket takes it now).
                stream.close_tls();
                let _ = stream.socket_ref().shutdown(Shutdown::Write);
            }
        }
    }

    /// Closes slot `s`'s socket now and frees the slot (the core has already
    /// forgotten its connection).
    pub(super) fn close_slot(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        if slot.phase == Phase::Free {
            return;
        }
        if let Phase::Ws(c) = slot.phase {
            self.slot_of[c.index()] = 0;
        }
        if let Some(mut stream) = slot.stream.take() {
            let _ = self.registry.deregister(stream.socket());
        }
        slot.phase = Phase::Free;
        slot.head_len = 0;
        // An answer can be large (a page, the viewer's script): give it back.
        slot.out = Vec::new();
        slot.out_at = 0;
        self.open -= 1;
        self.free.push(s as u32);
    }
}
