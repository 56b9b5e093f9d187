//! What the hub sends, and how a connection ends. Control messages (the hub as
//! sender) are encoded once into the core's encoding space and appended, as
//! whole WebSocket frames, to the receiver's control FIFO — translated to JSON
//! text first for a JSON client. Control is never dropped: a receiver whose FIFO
//! is full is not reading, and is closed (`overflowed`). A close sends a close
//! frame (after the media already queued for the peer: nothing may follow a
//! close frame), takes no more messages, and asks the driver to shut the write
//! half once everything is written ([`Event::Shutdown`]); the driver reports the
//! peer's end, or the linger deadline (housekeeping) ends it
//! ([`Event::Close`]). The peer's close frame is answered here too: its code
//! echoed when RFC 6455 §7.4 lets it be sent, a malformed one refused (an
//! `error` saying what is wrong, then 1002, or 1007 for a reason that is not
//! UTF-8), as is a text message that is not UTF-8 (1007). The transmit side —
//! the bytes lent to the driver and the accounting of what it wrote — is here
//! too.

use crate::proto::{
    ErrorCode, ErrorMsg, Header, LeaveReason, MAX_REASON_LEN, Message, encode_control,
};
use crate::room::{ConnId, RoomHandle};
use crate::ws::{self, FrameKind};

use super::link::Phase;
use super::{Event, Fault, Inner, LINGER_US, LogKind, json, reason};

impl Inner {
    /// Lists connection `i` among those with new output, once.
    pub(super) fn mark_output(&mut self, i: usize) {
        let link = &mut self.links[i];
        if !link.queued_for_output && link.phase != Phase::Free {
            link.queued_for_output = true;
            self.output.push(i as u32);
        }
    }

    /// Appends a whole server frame to `i`'s control FIFO; `false` if it is
    /// full (the caller closes the connection: control is never dropped).
    pub(super) fn push_ctrl_frame(&mut self, i: usize, kind: FrameKind, payload: &[u8]) -> bool {
        let link = &mut self.links[i];
        let was_idle = !link.has_output();
        if !link.push_ctrl_frame(self.ctrl.get_mut(i), kind, payload) {
            return false;
        }
        if was_idle {
            // The stuck clock runs from when output starts to wait.
            link.last_progress_us = self.now;
        }
        self.mark_output(i);
        true
    }

    /// Encodes a control message (hub as sender) for `i`.
    pub(super) fn send_control(&mut self, i: usize, room: RoomHandle, msg: &Message<'_>) {
        if !matches!(self.links[i].phase, Phase::AwaitHello | Phase::Session) {
            return;
        }
        let seq = self.links[i].ctrl_seq;
        let header = Header::new(msg.kind(), room.to_wire(), 0, seq, self.now);
        match encode_control(&header, msg, &mut self.out) {
            Ok(n) => {
                self.links[i].ctrl_seq = seq.wrapping_add(1);
                self.push_message(i, n);
            }
            Err(e) => log::warn!("cannot encode a {} message: {e}", msg.kind().name()),
        }
    }

    /// Queues the control message encoded in `out[..n]` for `i`, as JSON text
    /// for a JSON client.
    pub(super) fn push_message(&mut self, i: usize, n: usize) {
        let pushed = if self.links[i].json {
            let rooms = &self.rooms;
            let name = |h: u16| rooms.name(RoomHandle::from_wire(h)).map(str::to_string);
            match json::control_to_json(&self.out[..n], self.json.scratch(), &name) {
                Some(text) => self.push_ctrl_frame(i, FrameKind::Text, text.as_bytes()),
                None => return, // nothing a JSON client is sent
            }
        } else {
            let link = &mut self.links[i];
            let was_idle = !link.has_output();
            let pushed =
                link.push_ctrl_frame(self.ctrl.get_mut(i), FrameKind::Binary, &self.out[..n]);
            if pushed && was_idle {
                link.last_progress_us = self.now;
            }
            if pushed {
                self.mark_output(i);
            }
            pushed
        };
        if pushed {
            self.stats.messages_out += 1;
        } else {
            self.overflowed(i);
        }
    }

    /// Sends an error report to `i` (and counts it). A reason longer than the
    /// protocol allows (it may quote what the peer sent) is cut, on a character
    /// boundary, to fit: an error is never lost to its own length.
    pub(super) fn send_error(&mut self, i: usize, code: ErrorCode, about: u8, why: &str) {
        self.stats.count_error(code);
        let mut end = why.len().min(MAX_REASON_LEN);
        while !why.is_char_boundary(end) {
            end -= 1;
        }
        let msg = Message::Error(ErrorMsg {
            code,
            about,
            reason: &why[..end],
        });
        self.send_control(i, RoomHandle::NONE, &msg);
    }

    /// Sends `msg` to every session member of room `h` but `except`.
    pub(super) fn broadcast(&mut self, h: RoomHandle, except: Option<usize>, msg: &Message<'_>) {
        let n = self.rooms.members(h).len();
        for k in 0..n {
            let Some(t) = self.rooms.members(h).get(k).map(|m| m.conn.index()) else {
                break;
            };
            if Some(t) != except {
                self.send_control(t, h, msg);
            }
        }
    }

    /// The control FIFO is full: the receiver is not reading. Control is never
    /// dropped, so the connection goes.
    pub(super) fn overflowed(&mut self, i: usize) {
        self.stats.count_fault(Fault::SlowConsumer);
        self.stats.count_error(ErrorCode::SLOW_CONSUMER);
        let line = format_args!(
            "connection {i} ({}): its control buffer ({} bytes) is full; the peer is not reading; closing",
            self.links[i].peer, self.cfg.control_buffer
        );
        self.log_limit.warn(LogKind::SlowConsumer, self.now, line);
        self.teardown(i, LeaveReason::TimedOut);
    }

    /// The peer's close frame: its code is echoed if it is one a peer may send
    /// (RFC 6455 §7.4: 1000–1003, 1007–1014, 3000–4999; no code at all is
    /// answered with 1000). A malformed one is a protocol error: an `error`
    /// (`bad_message`) says what is wrong, then the close frame carries 1002 —
    /// or 1007 when the reason is not UTF-8 (§8.1).
    pub(super) fn on_ws_close(&mut self, i: usize, payload: &[u8]) {
        let (ws_code, why) = match payload {
            [] => return self.close(i, ws::close_code::NORMAL, ""),
            [_] => (
                ws::close_code::PROTOCOL_ERROR,
                reason(format_args!(
                    "a close frame's payload of 1 byte: it must be empty or start with a 2-byte status code (RFC 6455 §5.5.1)"
                )),
            ),
            [a, b, rest @ ..] => {
                let code = u16::from_be_bytes([*a, *b]);
                match core::str::from_utf8(rest) {
                    Err(_) => (
                        ws::close_code::INVALID_PAYLOAD,
                        reason(format_args!(
                            "the close frame's reason is not valid UTF-8 (RFC 6455 §5.5.1): send UTF-8 text, or no reason"
                        )),
                    ),
                    Ok(text) if matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) => {
                        log::debug!("connection {i}: peer closed ({code} {text})");
                        return self.close(i, code, "");
                    }
                    Ok(_) => (
                        ws::close_code::PROTOCOL_ERROR,
                        reason(format_args!(
                            "close code {code} may not be sent by a peer (RFC 6455 §7.4): use 1000 (normal), 1001 (going away) or an application code 3000-4999"
                        )),
                    ),
                }
            }
        };
        self.refuse_and_close(i, ws_code, &why);
    }

    /// A text message that is not UTF-8: refused and closed with 1007 (RFC 6455
    /// §8.1 fails the connection).
    pub(super) fn invalid_text(&mut self, i: usize) {
        self.refuse_and_close(
            i,
            ws::close_code::INVALID_PAYLOAD,
            "a text message that is not valid UTF-8 (RFC 6455 §8.1): JSON mode's messages are UTF-8 JSON text, the protocol's are binary messages",
        );
    }

    /// A WebSocket-level refusal that ends the connection: counted, logged, an
    /// `error` (`bad_message`) with `why`, then a close frame with `ws_code`.
    fn refuse_and_close(&mut self, i: usize, ws_code: u16, why: &str) {
        self.stats.count_fault(Fault::WebSocket);
        let line = format_args!("connection {i} ({}): {why}; closing", self.links[i].peer);
        self.log_limit.warn(LogKind::WebSocket, self.now, line);
        self.send_error(i, ErrorCode::BAD_MESSAGE, 0, why);
        self.close(i, ws_code, why);
    }

    /// Sends a close frame, stops taking messages, and closes once it is written
    /// and the peer has closed (or after a linger).
    pub(super) fn close(&mut self, i: usize, code: u16, why: &str) {
        self.close_as(i, code, why, LeaveReason::Disconnected);
    }

    /// [`close`](Self::close), telling the rooms why the member left.
    pub(super) fn close_as(&mut self, i: usize, code: u16, why: &str, leave: LeaveReason) {
        let phase = self.links[i].phase;
        if matches!(phase, Phase::Free | Phase::Closing) {
            return;
        }
        let mut payload = [0u8; 125];
        let n = ws::close_payload(&mut payload, code, why);
        let link = &mut self.links[i];
        if link.data.is_empty() && link.partial.is_none() {
            if !self.push_ctrl_frame(i, FrameKind::Close, &payload[..n]) {
                // Not even the close frame fits: the peer is not reading.
                return self.overflowed(i);
            }
        } else {
            // Media queued before the close go first (control frames already
            // go before media): the close frame follows the last of them.
            link.close_after_media = Some((payload, n as u8));
        }
        let link = &mut self.links[i];
        link.close_when_flushed = true;
        link.close_deadline_us = self.now + LINGER_US;
        if phase == Phase::Session {
            self.end_session(i, leave);
        }
        self.links[i].phase = Phase::Closing;
    }

    /// Frees connection `i` now and tells the driver to close its transport.
    pub(super) fn teardown(&mut self, i: usize, why: LeaveReason) {
        if self.free_conn(i, why) {
            self.events.push_back(Event::Close(ConnId::new(i as u32)));
        }
    }

    /// Ends connection `i`'s session and frees its slot; `false` if it was free.
    pub(super) fn free_conn(&mut self, i: usize, why: LeaveReason) -> bool {
        if self.links[i].phase == Phase::Free {
            return false;
        }
        self.end_session(i, why);
        let link = &mut self.links[i];
        link.release_all(&mut self.pool);
        link.phase = Phase::Free;
        self.open -= 1;
        self.free.push(i as u32);
        // Nothing about the connection outlives it.
        let conn = ConnId::new(i as u32);
        self.events.retain(|e| e.conn() != conn);
        true
    }

    /// The driver wrote the first `n` bytes of what `conn` lent.
    pub(super) fn written(&mut self, conn: ConnId, n: usize) {
        let i = conn.index();
        let Some(link) = self.links.get_mut(i) else {
            return;
        };
        if link.phase == Phase::Free {
            return;
        }
        let (now, stats) = (self.now, &mut self.stats);
        link.written(n, &mut self.pool, |pool, b| {
            stats.delivered += 1;
            stats.messages_out += 1;
            let us = now.saturating_sub(pool.recv_us(b));
            stats.relay_latency.record(us);
            stats.monitor.record_latency_us(now, us);
            stats.monitor.record_out(now, pool.bytes(b).len());
        });
        stats.bytes_out += n as u64;
        if n > 0 {
            link.last_progress_us = now;
        }
        if link.json && !link.data.is_empty() {
            self.json_refill(i);
        }
        let link = &mut self.links[i];
        if link.data.is_empty()
            && link.partial.is_none()
            && let Some((payload, n)) = link.close_after_media.take()
            && !self.push_ctrl_frame(i, FrameKind::Close, &payload[..n as usize])
        {
            return self.overflowed(i);
        }
        let link = &mut self.links[i];
        if !link.has_output() && link.close_when_flushed && !link.shutdown_asked {
            link.shutdown_asked = true;
            self.events.push_back(Event::Shutdown(conn));
        }
    }
}
