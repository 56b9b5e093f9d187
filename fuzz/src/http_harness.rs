//! The HTTP upgrade harness behind the fuzz target `http_upgrade`, shared with
//! `tests/protocol/props/` (included there with `#[path]`).
//!
//! [`run`] hands the hub's request-head classifier
//! (`poselink::hub::fuzzing::classify_request`, the driver's `parse_request`)
//! its input twice: as it is, and as the extra header lines of a valid upgrade
//! request (a request line and `Host`, `Upgrade`, `Connection` and
//! `Sec-WebSocket-Version` headers, then the input, then the blank line), so
//! that mutations reach the upgrade checks and the answer. Whatever the input,
//! nothing may panic, and:
//!
//! - an upgrade is answered `HTTP/1.1 101` with `Upgrade: websocket`,
//!   `Connection: Upgrade` and a `Sec-WebSocket-Accept` that is the RFC 6455
//!   hash of a `Sec-WebSocket-Key` the request carried; it names the
//!   `poselink.json` subprotocol exactly when it says JSON mode was chosen, and
//!   JSON mode is chosen only when the request offered it;
//! - a refusal has a sentence.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use poselink::hub::fuzzing::{HttpAnswer, classify_request};

/// The start of the valid upgrade request the input is appended to.
pub const UPGRADE_PREFIX: &[u8] = b"GET /ws HTTP/1.1\r\nHost: hub.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";

/// The GUID RFC 6455 §1.3 appends to the key.
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What one input did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The input as it was was an upgrade.
    pub raw_upgrade: bool,
    /// The input behind the valid prefix was an upgrade.
    pub prefixed_upgrade: bool,
}

/// Runs one input; panics if a property above does not hold.
pub fn run(data: &[u8]) -> Outcome {
    let raw_upgrade = check(data);
    let mut head = Vec::with_capacity(UPGRADE_PREFIX.len() + data.len() + 4);
    head.extend_from_slice(UPGRADE_PREFIX);
    head.extend_from_slice(data);
    head.extend_from_slice(b"\r\n\r\n");
    let prefixed_upgrade = check(&head);
    Outcome {
        raw_upgrade,
        prefixed_upgrade,
    }
}

/// The accept value RFC 6455 §4.2.2 derives from a key.
pub fn accept_of(key: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(WS_GUID);
    STANDARD.encode(ctx.finish())
}

/// The header lines of a head (after the request line), as (name, value) with
/// the value trimmed; lines without a colon are skipped.
fn headers(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&b| b == b'\n').skip(1).filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        Some((name, value.trim_ascii()))
    })
}

/// Classifies one head and checks the answer; whether it was an upgrade.
fn check(head: &[u8]) -> bool {
    match classify_request(head) {
        HttpAnswer::Upgrade(answer, json) => {
            check_upgrade(head, &answer, json);
            true
        }
        HttpAnswer::Page(name) => {
            assert!(!name.is_empty());
            false
        }
        HttpAnswer::NotFound => false,
        HttpAnswer::Bad(why) => {
            assert!(!why.trim().is_empty(), "a refusal without a sentence");
            false
        }
    }
}

fn check_upgrade(head: &[u8], answer: &[u8], json: bool) {
    let text = core::str::from_utf8(answer).expect("the 101 answer is text");
    assert!(
        text.starts_with("HTTP/1.1 101 "),
        "an upgrade answered {text:?}"
    );
    assert!(text.ends_with("\r\n\r\n"), "the 101 answer ends its head");
    let answer_headers: Vec<(&[u8], &[u8])> =
        headers(answer).filter(|(n, _)| !n.is_empty()).collect();
    let value = |name: &str| {
        answer_headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
            .collect::<Vec<_>>()
    };
    assert!(
        value("upgrade")
            .iter()
            .any(|v| v.eq_ignore_ascii_case(b"websocket")),
        "{text:?} lacks Upgrade: websocket"
    );
    assert!(
        value("connection")
            .iter()
            .any(|v| v.eq_ignore_ascii_case(b"upgrade")),
        "{text:?} lacks Connection: Upgrade"
    );
    let accept = value("sec-websocket-accept");
    assert_eq!(accept.len(), 1, "{text:?} has not one accept header");
    let keys: Vec<&[u8]> = headers(head)
        .filter(|(n, _)| n.trim_ascii().eq_ignore_ascii_case(b"sec-websocket-key"))
        .map(|(_, v)| v)
        .collect();
    assert!(
        keys.iter().any(|k| accept_of(k).as_bytes() == accept[0]),
        "the accept value {:?} is the hash of no key of the request ({keys:?})",
        String::from_utf8_lossy(accept[0])
    );
    let named = value("sec-websocket-protocol");
    if json {
        assert_eq!(named, [b"poselink.json"], "JSON mode not named in {text:?}");
        let offered = headers(head)
            .filter(|(n, _)| {
                n.trim_ascii()
                    .eq_ignore_ascii_case(b"sec-websocket-protocol")
            })
            .any(|(_, v)| {
                v.split(|&b| b == b',')
                    .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"poselink.json"))
            });
        assert!(offered, "JSON mode chosen but not offered");
    } else {
        assert!(named.is_empty(), "a subprotocol named without JSON mode");
    }
}
