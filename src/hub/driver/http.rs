//! The HTTP side of the hub's port, the driver's alone: a socket's request head
//! is read (at most 8 KiB, within the handshake timeout; bytes that cannot be
//! HTTP are refused at once) and is either a WebSocket upgrade (checked and
//! answered by tungstenite's server handshake, then handed to the core with the
//! bytes that came behind it), `GET /healthz` (liveness: the loop runs),
//! `/readyz` (readiness: a new session would be taken), `/metrics`, `/report`,
//! `/rooms`, a file of the browser front end, or something the hub refuses with
//! a sentence saying what it is. An upgrade the core has no slot for is refused
//! with `503` and that sentence. Pages are answered from what the core shows.
//! Runs once per connection, so it may allocate.

use std::io::{self, Read, Write};

use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{create_response, write_response};

use crate::hub::core::{LINGER_US, SUBPROTOCOL, offers_json};
use crate::hub::metrics::{self, Fault};

use super::sockets::Phase;
use super::{Driver, LogKind, MAX_HTTP_HEAD};

/// What a request head asks for.
pub enum Request {
    /// A valid WebSocket upgrade; the bytes are the `101 Switching Protocols`
    /// answer, and whether the client chose JSON mode (the `poselink.json`
    /// subprotocol, then named in the answer).
    Upgrade(Vec<u8>, bool),
    /// `GET /healthz`: liveness, answered `200` whenever the loop runs.
    Healthz,
    /// `GET /readyz`: readiness, `200` while a new session would be taken.
    Readyz,
    /// `GET /metrics`.
    Metrics,
    /// `GET /report`: the performance monitor's JSON report.
    Report,
    /// `GET /rooms`: the rooms as JSON.
    Rooms,
    /// A file of the browser front end (`/`, `/view/<room>`, their scripts).
    Asset(&'static super::web::Asset),
    /// A plain GET of another path.
    NotFound,
    /// Not HTTP, or an upgrade that breaks RFC 6455: why.
    Bad(String),
}

/// Classifies a complete request head (through the blank line).
pub fn parse_request(head: &[u8]) -> Request {
    let req = match tungstenite::handshake::server::Request::try_parse(head) {
        Ok(Some((_, req))) => req,
        Ok(None) => return Request::Bad("incomplete HTTP request".into()),
        Err(e) => return Request::Bad(e.to_string()),
    };
    let wants_upgrade = req
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants_upgrade {
        return match req.uri().path() {
            "/healthz" => Request::Healthz,
            "/readyz" => Request::Readyz,
            "/metrics" => Request::Metrics,
            "/report" => Request::Report,
            "/rooms" => Request::Rooms,
            p => match super::web::asset(p) {
                Some(a) => Request::Asset(a),
                None => Request::NotFound,
            },
        };
    }
    let json = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(offers_json);
    match create_response(&req) {
        Ok(mut resp) => {
            if json {
                resp.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    tungstenite::http::HeaderValue::from_static(SUBPROTOCOL),
                );
            }
            let mut out = Vec::with_capacity(256);
            match write_response(&mut out, &resp) {
                Ok(()) => Request::Upgrade(out, json),
                Err(e) => Request::Bad(e.to_string()),
            }
        }
        Err(e) => Request::Bad(e.to_string()),
    }
}

/// Whether the start of a request head (no blank line yet) is already not HTTP:
/// a TLS ClientHello, binary bytes, a malformed request line or header.
pub fn invalid_start(partial: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(partial) {
        Ok(_) => false,
        // Too many headers is judged on the whole head (431 or 400 then).
        Err(httparse::Error::TooManyHeaders) => false,
        Err(_) => true,
    }
}

impl Driver {
    /// The request head read so far for slot `s`.
    fn head(&self, s: usize) -> &[u8] {
        let slot = &self.slots[s];
        if slot.head_in_scratch {
            &self.head_scratch[..slot.head_len]
        } else {
            &self.heads[s * MAX_HTTP_HEAD..][..slot.head_len]
        }
    }

    /// On a TLS hub, the first byte decides: a TLS handshake record gets TLS
    /// put on the socket; anything else is a plain client on the TLS port,
    /// refused in clear. False when the slot was refused or nothing came yet.
    fn start_tls(&mut self, s: usize, now: u64) -> bool {
        let slot = &mut self.slots[s];
        let Some(stream) = slot.stream.as_mut() else {
            return false;
        };
        let mut first = [0u8; 1];
        match stream.socket_ref().peek(&mut first) {
            Ok(0) => {
                self.close_slot(s);
                return false;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => {
                self.core.stats_mut().count_fault(Fault::Io);
                self.close_slot(s);
                return false;
            }
        }
        slot.tls_first = false;
        let peer = slot.peer;
        if first[0] != crate::tls::record::HANDSHAKE {
            self.core.stats_mut().count_fault(Fault::TlsMismatch);
            let line = format_args!(
                "socket {s} ({peer}): a plain (not TLS) client on the TLS port, refused"
            );
            self.log_limit.warn(LogKind::Tls, now, line);
            self.http_refuse(
                s,
                400,
                "Bad Request",
                "This poselink hub speaks TLS on this port: use https:// (pages) or wss:// (WebSocket) with the same host and port.\n",
                now,
            );
            return false;
        }
        let Some(cfg) = self.tls.clone() else {
            return false;
        };
        let link = match crate::tls::TlsLink::server(cfg) {
            Ok(l) => l,
            Err(e) => {
                log::error!("socket {s} ({peer}): cannot start TLS: {e}");
                self.close_slot(s);
                return false;
            }
        };
        let slot = &mut self.slots[s];
        if let Some(crate::tls::Stream::Plain(sock)) = slot.stream.take() {
            slot.stream = Some(crate::tls::Stream::tls(sock, link));
        }
        true
    }

    pub(super) fn read_http(&mut self, s: usize, now: u64) {
        if self.slots[s].tls_first && !self.start_tls(s, now) {
            return;
        }
        let slot = &mut self.slots[s];
        let Some(stream) = slot.stream.as_mut() else {
            return;
        };
        // A fresh head is read into the shared scratch; the rest of one that
        // came in pieces, after its start in the slot's own stretch.
        slot.head_in_scratch = slot.head_len == 0;
        let buf: &mut [u8] = if slot.head_in_scratch {
            &mut self.head_scratch
        } else {
            &mut self.heads[s * MAX_HTTP_HEAD..][..MAX_HTTP_HEAD]
        };
        let mut closed = false;
        while slot.head_len < MAX_HTTP_HEAD {
            let asked = MAX_HTTP_HEAD - slot.head_len;
            match stream.read(&mut buf[slot.head_len..]) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    slot.head_len += n;
                    // (A TLS read ends at a record: read on to `WouldBlock`.)
                    if n < asked && !slot.hup && !stream.is_tls() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.read_error(s, &e);
                    if !e.get_ref().is_some_and(|r| r.is::<crate::tls::TlsError>())
                        && e.kind() != io::ErrorKind::UnexpectedEof
                    {
                        self.core.stats_mut().count_fault(Fault::Io);
                    }
                    return self.close_slot(s);
                }
            }
        }
        let peer = slot.peer;
        // A TLS handshake's answer may not have fit the socket at once.
        if self.slots[s].stream.as_ref().is_some_and(|st| st.pending()) {
            self.queue_flush(s);
        }
        let got = self.head(s);
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n");
        // Refuse what cannot become an HTTP request at once (a TLS ClientHello,
        // binary garbage) instead of waiting for a blank line that never comes.
        let invalid = head_end.is_none() && !got.is_empty() && invalid_start(got);
        let tls_hello = got.first() == Some(&crate::tls::record::HANDSHAKE)
            && !self.slots[s].stream.as_ref().is_some_and(|st| st.is_tls());
        match head_end {
            Some(p) => self.on_http_request(s, p + 4, now),
            None if tls_hello => {
                self.core.stats_mut().count_fault(Fault::TlsMismatch);
                let line =
                    format_args!("socket {s} ({peer}): a TLS client on this plain port, refused");
                self.log_limit.warn(LogKind::Tls, now, line);
                // In clear: a TLS client cannot read it, but its error then
                // says the peer does not speak TLS, and `curl -v` shows it.
                self.http_refuse(
                    s,
                    400,
                    "Bad Request",
                    "This poselink hub speaks plain ws:// and http:// on this port (no tls_cert/tls_key set): connect with ws:// or http://, or give the hub a certificate.\n",
                    now,
                )
            }
            None if invalid => {
                let line = format_args!("socket {s} ({peer}): not an HTTP request");
                self.log_limit.warn(LogKind::BadHttp, now, line);
                self.http_refuse(
                    s,
                    400,
                    "Bad Request",
                    "This is a poselink hub and these bytes are not HTTP. Connect with a WebSocket client (RFC 6455).\n",
                    now,
                )
            }
            None if got.len() >= MAX_HTTP_HEAD => self.http_refuse(
                s,
                431,
                "Request Header Fields Too Large",
                "The request head is over 8 KiB.",
                now,
            ),
            None if closed => self.close_slot(s),
            None => {
                // In pieces (rare, or slow on purpose): keep it with the slot.
                let slot = &mut self.slots[s];
                if slot.head_in_scratch {
                    let n = slot.head_len;
                    self.heads[s * MAX_HTTP_HEAD..][..n].copy_from_slice(&self.head_scratch[..n]);
                    slot.head_in_scratch = false;
                }
            }
        }
    }

    fn on_http_request(&mut self, s: usize, head_len: usize, now: u64) {
        let request = parse_request(&self.head(s)[..head_len]);
        match request {
            Request::Upgrade(response, json) => self.upgrade(s, head_len, response, json, now),
            Request::Healthz => {
                self.http_answer(s, 200, "OK", "text/plain; charset=utf-8", b"ok\n", now)
            }
            Request::Readyz => {
                let (max, used) = (self.cfg.max_connections, self.core.connections());
                if used < max {
                    let body = format!("ready: {} of {max} connection slots free\n", max - used);
                    self.http_answer(s, 200, "OK", "text/plain; charset=utf-8", body.as_bytes(), now)
                } else {
                    let body = format!(
                        "not ready: all {max} connection slots hold WebSocket connections, so a new session would be refused; send clients to another hub, or raise max_connections\n"
                    );
                    let ctype = "text/plain; charset=utf-8";
                    self.http_answer(s, 503, "Service Unavailable", ctype, body.as_bytes(), now)
                }
            }
            Request::Metrics if self.cfg.metrics => {
                let mut body = String::with_capacity(8 * 1024);
                let mut gauges = self.core.gauges();
                gauges.connections = self.open;
                gauges.memory_ceiling = self.ceiling.total();
                if let Some(link) = self.cluster.as_ref() {
                    // Drops in the rings, beside the core's own.
                    let (out, inn, _) = link.counts();
                    let mut stats = self.core.stats().clone();
                    stats.cluster.media_dropped += out + inn;
                    stats.cluster.broker_failures = link.failures();
                    metrics::render(&stats, &gauges, now, &mut body);
                    let ctype = "text/plain; version=0.0.4; charset=utf-8";
                    return self.http_answer(s, 200, "OK", ctype, body.as_bytes(), now);
                }
                metrics::render(self.core.stats(), &gauges, now, &mut body);
                let ctype = "text/plain; version=0.0.4; charset=utf-8";
                self.http_answer(s, 200, "OK", ctype, body.as_bytes(), now);
            }
            Request::Asset(a) if self.cfg.viewer => {
                self.http_answer(s, 200, "OK", a.content_type, a.body.as_bytes(), now)
            }
            Request::Rooms if self.cfg.metrics => {
                let body = self.rooms_json();
                self.http_answer(s, 200, "OK", "application/json", body.as_bytes(), now);
            }
            Request::Report if self.cfg.metrics => {
                let body = self.core.stats().monitor.report_json(now);
                self.http_answer(s, 200, "OK", "application/json", body.as_bytes(), now);
            }
            Request::Metrics
            | Request::Report
            | Request::Rooms
            | Request::Asset(_)
            | Request::NotFound => self.http_refuse(
                s,
                404,
                "Not Found",
                "This is a poselink hub: connect a WebSocket client, or open / (the rooms) or /view/ROOM in a browser, or GET /metrics, /report, /rooms, /healthz or /readyz.",
                now,
            ),
            Request::Bad(why) => {
                let peer = self.slots[s].peer;
                let line = format_args!("socket {s} ({peer}): not a WebSocket upgrade: {why}");
                self.log_limit.warn(LogKind::BadHttp, now, line);
                let body = format!(
                    "This is a poselink hub; the request is not a WebSocket upgrade ({why}). Connect with a WebSocket client (RFC 6455).\n"
                );
                self.http_refuse(s, 400, "Bad Request", &body, now);
            }
        }
    }

    /// Hands the upgraded connection to the core; the `101` goes out first, and
    /// the bytes that came behind the request head are its first frames.
    fn upgrade(&mut self, s: usize, head_len: usize, response: Vec<u8>, json: bool, now: u64) {
        let c = match self.core.handle_open(now, self.slots[s].peer, json) {
            Ok(c) => c,
            Err(e) => {
                // Every connection slot holds a session; this socket has one
                // of the HTTP-only slots: say why in a 503.
                let peer = self.slots[s].peer;
                let line = format_args!("socket {s} ({peer}): upgrade refused: {e}");
                self.log_limit.warn(LogKind::HubFull, now, line);
                self.core.stats_mut().count_fault(Fault::HubFull);
                let body = format!("hub_full: {e}.\n");
                let ctype = "text/plain; charset=utf-8";
                return self.http_answer(
                    s,
                    503,
                    "Service Unavailable",
                    ctype,
                    body.as_bytes(),
                    now,
                );
            }
        };
        self.slot_of[c.index()] = s as u32 + 1;
        let n = {
            let slot = &self.slots[s];
            let head = if slot.head_in_scratch {
                &self.head_scratch[..slot.head_len]
            } else {
                &self.heads[s * MAX_HTTP_HEAD..][..slot.head_len]
            };
            let rest = &head[head_len..];
            self.core.recv_buffer(c)[..rest.len()].copy_from_slice(rest);
            rest.len()
        };
        let slot = &mut self.slots[s];
        slot.phase = Phase::Ws(c);
        slot.out = response;
        slot.out_at = 0;
        slot.head_len = 0;
        self.queue_flush(s);
        if n > 0 {
            self.receive(now, c, n);
        }
        // More may have come right behind the request than was read.
        if self.slots[s].phase == Phase::Ws(c) {
            self.push_again(s);
        }
    }

    /// `GET /rooms`: every room with its member count, pose frames per second
    /// published into it (over the last second) and media dropped in it.
    fn rooms_json(&self) -> String {
        let rooms: Vec<serde_json::Value> = self
            .core
            .rooms()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "members": r.members,
                    "fps": (r.fps * 10.0).round() / 10.0,
                    "drops": r.drops,
                })
            })
            .collect();
        serde_json::json!({ "rooms": rooms }).to_string()
    }

    fn http_refuse(&mut self, s: usize, status: u16, text: &str, body: &str, now: u64) {
        if status != 404 {
            self.core.stats_mut().count_fault(Fault::Http);
        }
        let ctype = "text/plain; charset=utf-8";
        self.http_answer(s, status, text, ctype, body.as_bytes(), now);
    }

    /// Queues an HTTP answer; the socket is closed once it is written and the
    /// peer has closed (or after a linger).
    #[allow(clippy::too_many_arguments)]
    fn http_answer(
        &mut self,
        s: usize,
        status: u16,
        text: &str,
        ctype: &str,
        body: &[u8],
        now: u64,
    ) {
        let slot = &mut self.slots[s];
        slot.out.clear();
        let _ = write!(
            slot.out,
            "HTTP/1.1 {status} {text}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        slot.out.extend_from_slice(body);
        slot.out_at = 0;
        slot.phase = Phase::Answer;
        slot.deadline_us = now + LINGER_US;
        self.queue_flush(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_health_metrics_and_garbage() {
        let up = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let Request::Upgrade(resp, json) = parse_request(up) else {
            panic!("not an upgrade")
        };
        assert!(!json);
        let text = String::from_utf8(resp).unwrap();
        assert!(!text.to_ascii_lowercase().contains("sec-websocket-protocol"));
        assert!(text.starts_with("HTTP/1.1 101"), "{text}");
        // RFC 6455 §1.3's example key and accept value.
        assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{text}");
        assert!(matches!(
            parse_request(b"GET /healthz HTTP/1.1\r\n\r\n"),
            Request::Healthz
        ));
        assert!(matches!(
            parse_request(b"GET /readyz HTTP/1.1\r\n\r\n"),
            Request::Readyz
        ));
        assert!(matches!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"),
            Request::Metrics
        ));
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\n\r\n"),
            Request::Asset(_)
        ));
        assert!(matches!(
            parse_request(b"GET /view/demo-0?hub=x HTTP/1.1\r\n\r\n"),
            Request::Asset(_)
        ));
        assert!(matches!(
            parse_request(b"GET /rooms HTTP/1.1\r\n\r\n"),
            Request::Rooms
        ));
        assert!(matches!(
            parse_request(b"GET /nothing HTTP/1.1\r\n\r\n"),
            Request::NotFound
        ));
        assert!(matches!(
            parse_request(b"\x16\x03\x01garbage\r\n\r\n"),
            Request::Bad(_)
        ));
        assert!(matches!(
            parse_request(b"POST / HTTP/1.1\r\n\r\n"),
            Request::Bad(_)
        ));
        let no_key = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert!(invalid_start(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
        ));
        assert!(!invalid_start(b"GET /ws HTTP/1.1\r\nHost: a"));
        assert!(!invalid_start(b"GE"));
        assert!(matches!(parse_request(no_key), Request::Bad(_)));
    }
}
