//! The WebSocket framing harness behind the fuzz target `ws_frames`, shared with
//! `tests/protocol/props/` (included there with `#[path]`, like `harness.rs`), so
//! the logic the fuzzer drives also runs on stable Rust in `cargo test`.
//!
//! [`run`] reads its input as a connection's byte stream: the first byte picks the
//! end that sent it (a client's frames through `parse_frame`, what the hub
//! receives; a server's through `parse_server_frame`, what an engine receives)
//! and the message limit; the rest is parsed frame after frame as the readers
//! do — whole frames consumed, close payloads read with `parse_close`, data
//! frames assembled by an `Assembler` — until an error, a partial frame or the
//! end. Whatever the input, nothing may panic, and:
//!
//! - a whole frame lies inside the bytes given, its header is 2 to 14 bytes, its
//!   payload within the limit (control frames within 125 bytes);
//! - a partial frame asks for more bytes than there are;
//! - every refusal has a close code of RFC 6455 §7.4.1 (1002, 1007 or 1009) and
//!   a sentence;
//! - a message the assembler completes is within the limit;
//! - every whole frame, written again with `write_header` (server) or
//!   `write_client_header` + `mask_payload` (client), parses back to the same
//!   frame and payload.

use poselink::ws::{
    Assembler, Frame, FrameKind, Parsed, WsError, mask_payload, parse_close, parse_frame,
    parse_server_frame, write_client_header, write_header,
};

/// The message limits the first byte chooses among.
const LIMITS: [usize; 4] = [0, 125, 1024, 65_536];

/// Frames read from one input at most (the input is at most a few kB).
const MAX_FRAMES: usize = 4096;

/// What one input did, for the property tests' statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Whole frames read.
    pub frames: usize,
    /// Messages completed.
    pub messages: usize,
    /// Whether it ended with a refusal.
    pub refused: bool,
}

/// Runs one input; panics if a property above does not hold.
pub fn run(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let Some((&select, stream)) = data.split_first() else {
        return out;
    };
    let server = select & 1 == 1;
    let max = LIMITS[usize::from((select >> 1) & 3)];
    let mut buf = stream.to_vec();
    let mut at = 0;
    let mut assembler = Assembler::new(max);
    for _ in 0..MAX_FRAMES {
        let window = &mut buf[at..];
        if window.is_empty() {
            break;
        }
        let original = window.to_vec();
        let parsed = if server {
            parse_server_frame(window, max)
        } else {
            parse_frame(window, max)
        };
        let frame = match parsed {
            Ok(Parsed::Need(n)) => {
                assert!(
                    n > window.len(),
                    "asked for {n} bytes with {} there",
                    window.len()
                );
                break;
            }
            Ok(Parsed::Frame(frame)) => frame,
            Err(e) => {
                check_refusal(e);
                out.refused = true;
                break;
            }
        };
        assert!(frame.len() <= window.len());
        assert!(
            (2..=14).contains(&frame.header_len),
            "header of {} bytes",
            frame.header_len
        );
        assert!(frame.payload_len <= max);
        let payload = window[frame.header_len..frame.len()].to_vec();
        if frame.kind.is_control() {
            assert!(frame.fin && payload.len() <= 125);
        }
        rewrite(server, &frame, &payload, &original[..frame.len()]);
        out.frames += 1;
        at += frame.len();
        match frame.kind {
            FrameKind::Close => {
                match parse_close(&payload) {
                    // No payload: "no status" (1005) and no reason.
                    Ok((code, reason)) if payload.is_empty() => {
                        assert_eq!((code, reason), (1005, ""));
                    }
                    Ok((code, reason)) => {
                        assert_eq!(code, u16::from_be_bytes([payload[0], payload[1]]));
                        assert_eq!(reason.as_bytes(), &payload[2..]);
                    }
                    Err(e) => check_refusal(e),
                }
            }
            FrameKind::Ping | FrameKind::Pong => {}
            kind => match assembler.data_frame(kind, frame.fin, frame.payload_len) {
                Ok(Some((done, total))) => {
                    assert!(matches!(done, FrameKind::Text | FrameKind::Binary));
                    assert!(total <= max);
                    out.messages += 1;
                }
                Ok(None) => assert!(assembler.in_message()),
                Err(e) => {
                    check_refusal(e);
                    out.refused = true;
                    break;
                }
            },
        }
    }
    out
}

/// A refusal names a close code a peer may send and says what was wrong.
fn check_refusal(e: WsError) {
    assert!(matches!(e.close_code(), 1002 | 1007 | 1009), "{e:?}");
    let sentence = e.to_string();
    assert!(!sentence.is_empty());
}

/// Writes `frame` again with the writers and checks it parses to the same frame
/// and payload: a server frame with `write_header`, a client frame with
/// `write_client_header` and `mask_payload` under the key it came with.
fn rewrite(server: bool, frame: &Frame, payload: &[u8], original: &[u8]) {
    let mut out = vec![0u8; 14 + payload.len()];
    let n = if server {
        write_header(&mut out, frame.kind, frame.fin, payload.len()).expect("room for a header")
    } else {
        let key = &original[frame.header_len - 4..frame.header_len];
        let mask = [key[0], key[1], key[2], key[3]];
        let n = write_client_header(&mut out, frame.kind, frame.fin, payload.len(), mask)
            .expect("room for a header");
        out[n..n + payload.len()].copy_from_slice(payload);
        mask_payload(&mut out[n..n + payload.len()], mask);
        n
    };
    if server {
        out[n..n + payload.len()].copy_from_slice(payload);
    }
    out.truncate(n + payload.len());
    let parsed = if server {
        parse_server_frame(&mut out, payload.len())
    } else {
        parse_frame(&mut out, payload.len())
    };
    let again = match parsed {
        Ok(Parsed::Frame(f)) => f,
        other => panic!("a frame written again parsed as {other:?}"),
    };
    assert_eq!(
        (again.kind, again.fin, again.payload_len),
        (frame.kind, frame.fin, payload.len())
    );
    assert_eq!(&out[again.header_len..again.len()], payload);
}
