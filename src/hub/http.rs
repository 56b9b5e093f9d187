//! The HTTP side of the hub's port: a request head is either a WebSocket upgrade
//! (checked and answered by tungstenite's server handshake), `GET /healthz`,
//! `GET /metrics`, `GET /report`, or something the hub refuses with a sentence saying what it is.
//! Runs once per connection, so it may allocate.

use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{create_response, write_response};

/// What a request head asks for.
pub enum Request {
    /// A valid WebSocket upgrade; the bytes are the `101 Switching Protocols`
    /// answer, and whether the client chose JSON mode (the `poselink.json`
    /// subprotocol, then named in the answer).
    Upgrade(Vec<u8>, bool),
    /// `GET /healthz`.
    Healthz,
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
        .any(super::json::offers_json);
    match create_response(&req) {
        Ok(mut resp) => {
            if json {
                resp.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    tungstenite::http::HeaderValue::from_static(super::json::SUBPROTOCOL),
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
