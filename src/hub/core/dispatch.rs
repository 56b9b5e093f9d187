//! What arrived, and where it goes. WebSocket control frames are answered here
//! (a ping with a pong, within the message rate; a close echoed by the RFC 6455
//! rules); a framing error closes the connection. A data message passes the
//! flood limits first, on its wire bytes and before anything is parsed or
//! translated — messages and bytes per second, refused (counted) over them, the
//! connection closed with 4012 once the refusals within `flood_window_ms` pass
//! `flood_close_messages` or `flood_close_bytes` (a rate of refusals, so a
//! flooder gains nothing by letting a message through now and then) — then the
//! envelope's checks, and goes to the hello (before the session), the relay
//! (pose, audio) or the control handlers. Text messages are JSON mode's
//! (translated in `json`) or refused.

use crate::proto::{self, ErrorCode, Header, Kind, Message, Packet, Pong};
use crate::room::RoomHandle;
use crate::ws::{self, FrameKind};

use super::link::Phase;
use super::{DropReason, Fault, Inner, LogKind, Space, app_close, bad_message_code, reason};

impl Inner {
    /// A WebSocket control frame from `i`.
    pub(super) fn on_ws_control(&mut self, i: usize, kind: FrameKind, payload: &[u8]) {
        match kind {
            FrameKind::Ping => {
                // Pings count against the message rate like any message.
                if !self.links[i].msg_bucket.try_take(1, self.now) {
                    self.stats.count_drop(DropReason::RateLimited);
                    return;
                }
                if !self.push_ctrl_frame(i, FrameKind::Pong, payload) {
                    self.overflowed(i);
                }
            }
            FrameKind::Pong => {}
            FrameKind::Close => self.on_ws_close(i, payload),
            _ => {}
        }
    }

    /// A WebSocket framing rule was broken: say which, and close.
    pub(super) fn ws_fail(&mut self, i: usize, e: ws::WsError) {
        self.stats.count_fault(Fault::WebSocket);
        let peer = self.links[i].peer;
        let line = format_args!("connection {i} ({peer}): {e}; closing");
        self.log_limit.warn(LogKind::WebSocket, self.now, line);
        let (code, what) = match e {
            ws::WsError::TooLarge { .. } => (ErrorCode::OVERSIZE, "message too large"),
            _ => (ErrorCode::BAD_MESSAGE, "WebSocket protocol error"),
        };
        let r = reason(format_args!("{what}: {e}"));
        self.send_error(i, code, 0, &r);
        self.close(i, e.close_code(), &r);
    }

    /// A whole data message from `i`, unmasked in its receive buffer.
    pub(super) fn on_ws_message(
        &mut self,
        i: usize,
        kind: FrameKind,
        bytes: &[u8],
        space: &mut Space,
    ) {
        self.stats.bytes_in += bytes.len() as u64;
        self.stats.monitor.record_in(self.now, bytes.len());
        if !self.within_flood_limits(i, bytes.len() as u64) {
            return;
        }
        if kind == FrameKind::Text && core::str::from_utf8(bytes).is_err() {
            return self.invalid_text(i);
        }
        if kind == FrameKind::Text && self.links[i].json {
            return self.on_json_text(i, bytes, space);
        }
        if kind == FrameKind::Text {
            self.stats.count_fault(Fault::TextMessage);
            self.send_error(
                i,
                ErrorCode::BAD_MESSAGE,
                0,
                "text messages are not part of protocol 1.0: send each message as one binary WebSocket message (or ask for the poselink.json subprotocol to speak JSON)",
            );
            return;
        }
        self.on_binary(i, bytes, &mut space.parse);
    }

    /// A protocol message from `i` (binary, or translated from JSON), within
    /// the flood limits.
    pub(super) fn on_binary(&mut self, i: usize, bytes: &[u8], parse: &mut [u8]) {
        let packet = match Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(e) => return self.refuse_bad(i, bytes.get(1).copied().unwrap_or(0), e),
        };
        let header = packet.header();
        if self.links[i].phase == Phase::AwaitHello {
            self.stats.messages_in[2] += 1;
            return self.on_hello(i, &packet, parse);
        }
        match header.kind {
            Kind::Pose | Kind::Audio => self.on_media(i, &packet, parse),
            _ => {
                self.stats.messages_in[2] += 1;
                match Message::parse(&packet, parse) {
                    Ok(m) => self.on_control(i, &header, m),
                    Err(e) => self.refuse_bad(i, header.kind as u8, e),
                }
            }
        }
    }

    /// Flood control, before any parsing: takes the message's share of `i`'s
    /// rate limits, or refuses it: counted in the flood window, an error at most
    /// once a second, and a close once the window's refusals pass
    /// `flood_close_messages` or `flood_close_bytes`.
    fn within_flood_limits(&mut self, i: usize, len: u64) -> bool {
        let now = self.now;
        let link = &mut self.links[i];
        if link.msg_bucket.available(now) >= 1 && link.byte_bucket.available(now) >= len {
            link.msg_bucket.try_take(1, now);
            link.byte_bucket.try_take(len, now);
            return true;
        }
        let msgs = link.refused_msgs.add(1, now);
        let bytes = link.refused_bytes.add(len, now);
        self.stats.count_drop(DropReason::RateLimited);
        let cfg = &self.cfg;
        let (rate_messages, rate_bytes, window) =
            (cfg.rate_messages, cfg.rate_bytes, cfg.flood_window_ms);
        if msgs > cfg.flood_close_messages || bytes > cfg.flood_close_bytes {
            let (limit, what) = if msgs > cfg.flood_close_messages {
                ("flood_close_messages", cfg.flood_close_messages)
            } else {
                ("flood_close_bytes", cfg.flood_close_bytes)
            };
            let r = reason(format_args!(
                "flooding: {msgs} messages ({bytes} bytes) refused over the rate limit ({rate_messages} messages/s, {rate_bytes} bytes/s) within {window} ms, past {limit} = {what}; closing"
            ));
            let line = format_args!("connection {i} ({}): {r}", link.peer);
            self.log_limit.warn(LogKind::Flooding, now, line);
            self.send_error(i, ErrorCode::RATE_LIMITED, 0, &r);
            self.close(i, app_close(ErrorCode::RATE_LIMITED), "flooding");
        } else if now.saturating_sub(link.last_rate_error_us) >= 1_000_000 {
            link.last_rate_error_us = now;
            let r = reason(format_args!(
                "over the rate limit ({rate_messages} messages/s, {rate_bytes} bytes/s): messages are being dropped; slow down"
            ));
            let line = format_args!("connection {i} ({}): {r}", link.peer);
            self.log_limit.warn(LogKind::RateLimited, now, line);
            self.send_error(i, ErrorCode::RATE_LIMITED, 0, &r);
        }
        false
    }

    /// Answers a message that breaks the protocol. Before the hello, or for an
    /// unknown major version, the connection is closed too. Answers are
    /// limited per connection (`link::BAD_ANSWERS_BURST`): past the limit a
    /// malformed message is refused and counted without one, and the next
    /// answer says how many went unanswered.
    pub(super) fn refuse_bad(&mut self, i: usize, about: u8, e: proto::Error) {
        let code = bad_message_code(e);
        let closing =
            code == ErrorCode::UNSUPPORTED_VERSION || self.links[i].phase == Phase::AwaitHello;
        let link = &mut self.links[i];
        let peer = link.peer;
        let line = format_args!("connection {i} ({peer}): refused a message: {e}");
        self.log_limit.warn(LogKind::BadMessage, self.now, line);
        if !closing && !link.bad_answers.try_take(1, self.now) {
            // Answered in a sample: the next answer says how many were not.
            link.bad_unanswered = link.bad_unanswered.saturating_add(1);
            self.stats.count_error(code);
            return;
        }
        let unanswered = core::mem::take(&mut link.bad_unanswered);
        let r = if unanswered == 0 {
            reason(format_args!("{e}"))
        } else {
            reason(format_args!(
                "{e} ({unanswered} more malformed messages were refused before this one without an answer)"
            ))
        };
        self.send_error(i, code, about, &r);
        if closing {
            self.close(i, app_close(code), code.name());
        }
    }

    /// A control message from session `i`.
    fn on_control(&mut self, i: usize, header: &Header, msg: Message<'_>) {
        let about = header.kind as u8;
        let room = RoomHandle::from_wire(header.room);
        match msg {
            Message::Join(j) => self.on_join(i, j.room, j.role),
            Message::Leave(l) => self.on_leave(i, l.room, about),
            Message::RoleChanged(rc) => self.on_role_changed(i, room, rc, about),
            Message::Kick(k) => self.on_kick(i, room, k, about),
            Message::CloseRoom(cr) => self.on_close_room(i, room, cr, about),
            Message::Ping(p) => {
                // Both times are when the ping was handled: the hub answers at once.
                let pong = Message::Pong(Pong {
                    t0_us: p.t0_us,
                    t1_us: self.now,
                    t2_us: self.now,
                });
                self.send_control(i, RoomHandle::NONE, &pong);
            }
            Message::NeedsKeyframe(nk) => self.on_needs_keyframe(i, room, nk),
            Message::Pong(_) | Message::Ack(_) => {}
            Message::Error(e) => {
                log::debug!(
                    "connection {i} reports error {} ({}): {}",
                    e.code.0,
                    e.code.name(),
                    e.reason
                );
            }
            Message::Hello(_) => self.send_error(
                i,
                ErrorCode::BAD_MESSAGE,
                about,
                "the hello was already accepted; send it once per connection",
            ),
            _ => {
                let r = reason(format_args!(
                    "{} is sent by the hub, not to it",
                    header.kind.name()
                ));
                self.send_error(i, ErrorCode::BAD_MESSAGE, about, &r);
            }
        }
    }
}
