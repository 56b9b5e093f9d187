//! WebSocket framing (RFC 6455) on the hub's preallocated buffers, sans-IO. The
//! hub's loop reads bytes into a connection's receive buffer and asks
//! [`parse_frame`] for the next frame: the header is parsed with tungstenite's
//! `FrameHeader` (the opening handshake is tungstenite's too), every rule a server
//! must enforce is checked, the size limit before any payload is buffered, and the
//! payload is unmasked in place — no copy, no allocation. [`Assembler`] applies the
//! fragmentation rules across frames; [`write_header`] and [`close_payload`] format
//! what the server sends. The client side, for the edge engine, is the mirror
//! image: [`parse_server_frame`] refuses masked frames instead of unmasked ones,
//! and [`write_client_header`] with [`mask_payload`] formats masked frames.
//! tungstenite's message API is not used on this path: it allocates a buffer per
//! message.

use core::fmt;
use std::io::Cursor;

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// The close codes of RFC 6455 §7.4.1 that the hub uses.
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The hub is going away (shutting down).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// The peer sent a data type the hub does not accept (text to a binary peer).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// The peer sent data that does not match its type: text that is not
    /// UTF-8 (RFC 6455 §8.1), a close reason that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// The peer sent a message that violates the hub's policy (bad token, flood).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// The peer sent a message larger than the limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The hub hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A continuation of a fragmented message.
    Continuation,
    /// UTF-8 text (the JSON mode).
    Text,
    /// Binary (the protocol's messages).
    Binary,
    /// Close, with an optional code and reason.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

impl FrameKind {
    /// Close, ping or pong.
    pub const fn is_control(self) -> bool {
        matches!(self, FrameKind::Close | FrameKind::Ping | FrameKind::Pong)
    }
}

/// One frame parsed from the front of a receive buffer; its payload, unmasked,
/// is `buf[header_len..header_len + payload_len]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The final frame of its message.
    pub fin: bool,
    /// What it carries.
    pub kind: FrameKind,
    /// Bytes of the header.
    pub header_len: usize,
    /// Bytes of the payload.
    pub payload_len: usize,
}

impl Frame {
    /// Bytes the whole frame takes in the buffer.
    pub const fn len(&self) -> usize {
        self.header_len + self.payload_len
    }

    /// Whether the frame has no payload.
    pub const fn is_empty(&self) -> bool {
        self.payload_len == 0
    }
}

/// The outcome of looking at the front of a receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole frame.
    Frame(Frame),
    /// Not enough bytes yet: the frame needs at least this many in all.
    Need(usize),
}

/// A frame a server (or, for [`WsError::Masked`], a client) must refuse, with the
/// close code to refuse it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsError {
    /// RSV bits set, but no extension was negotiated.
    ReservedBits,
    /// A reserved opcode.
    BadOpcode,
    /// A client frame without a mask.
    Unmasked,
    /// A control frame that is fragmented or longer than 125 bytes.
    BadControlFrame,
    /// A frame or message larger than the limit.
    TooLarge {
        /// Its length (or the message's so far).
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A continuation without a message to continue, or a new message before the
    /// last one ended.
    BadFragment,
    /// A close frame whose payload is one byte, or whose reason is not UTF-8.
    BadClose,
    /// A server frame with a mask (a client must close the connection).
    Masked,
}

impl WsError {
    /// The close code to send back.
    pub const fn close_code(self) -> u16 {
        match self {
            WsError::TooLarge { .. } => close_code::MESSAGE_TOO_BIG,
            _ => close_code::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WsError::ReservedBits => {
                f.write_str("reserved bits set without a negotiated extension")
            }
            WsError::BadOpcode => f.write_str("reserved WebSocket opcode"),
            WsError::Unmasked => f.write_str("client frames must be masked (RFC 6455 §5.1)"),
            WsError::BadControlFrame => {
                f.write_str("control frames must be final and at most 125 bytes")
            }
            WsError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the limit of {max} bytes")
            }
            WsError::BadFragment => f.write_str("fragments out of order"),
            WsError::BadClose => f.write_str("malformed close frame"),
            WsError::Masked => f.write_str("server frames must not be masked (RFC 6455 §5.1)"),
        }
    }
}

impl core::error::Error for WsError {}

/// Looks at the front of `buf` (bytes received from a client, oldest first): a
/// whole frame is checked, unmasked in place and described; a partial one says
/// how many bytes it needs. A frame whose payload would exceed `max_payload` is
/// refused as soon as its header is complete.
///
/// ```
/// use poselink::ws::{parse_frame, FrameKind, Parsed};
/// // RFC 6455 §5.7: a masked "Hello" from a client.
/// let mut buf = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let Parsed::Frame(f) = parse_frame(&mut buf, 1024).unwrap() else { panic!() };
/// assert_eq!((f.kind, f.fin), (FrameKind::Text, true));
/// assert_eq!(&buf[f.header_len..f.len()], b"Hello");
/// ```
pub fn parse_frame(buf: &mut [u8], max_payload: usize) -> Result<Parsed, WsError> {
    parse_from(buf, max_payload, Peer::Client)
}

/// Which end of the connection sent the frames being parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    /// A client: frames must be masked (what the hub receives).
    Client,
    /// A server: frames must not be masked (what the edge engine receives).
    Server,
}

/// [`parse_frame`] and [`parse_server_frame`]: every rule, with the masking rule
/// of the end that sent the bytes.
fn parse_from(buf: &mut [u8], max_payload: usize, from: Peer) -> Result<Parsed, WsError> {
    let mut cursor = Cursor::new(&buf[..]);
    let (header, len) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(h)) => h,
        // Incomplete: at least two bytes, then whatever the length format asks.
        Ok(None) => return Ok(Parsed::Need(header_need(buf))),
        // tungstenite refuses a reserved opcode here; a read from a slice cannot
        // fail otherwise.
        Err(_) => return Err(WsError::BadOpcode),
    };
    let header_len = cursor.position() as usize;
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Err(WsError::ReservedBits);
    }
    let kind = match header.opcode {
        OpCode::Data(Data::Continue) => FrameKind::Continuation,
        OpCode::Data(Data::Text) => FrameKind::Text,
        OpCode::Data(Data::Binary) => FrameKind::Binary,
        OpCode::Control(Control::Close) => FrameKind::Close,
        OpCode::Control(Control::Ping) => FrameKind::Ping,
        OpCode::Control(Control::Pong) => FrameKind::Pong,
        _ => return Err(WsError::BadOpcode),
    };
    if kind.is_control() && (!header.is_final || len > 125) {
        return Err(WsError::BadControlFrame);
    }
    // RFC 6455 §5.1: a client masks every frame, a server none.
    let mask = match (from, header.mask) {
        (Peer::Client, None) => return Err(WsError::Unmasked),
        (Peer::Server, Some(_)) => return Err(WsError::Masked),
        (_, mask) => mask,
    };
    if len > max_payload as u64 {
        return Err(WsError::TooLarge {
            len,
            max: max_payload,
        });
    }
    let payload_len = len as usize;
    let total = header_len + payload_len;
    if buf.len() < total {
        return Ok(Parsed::Need(total));
    }
    if let Some(mask) = mask {
        unmask(&mut buf[header_len..total], mask);
    }
    Ok(Parsed::Frame(Frame {
        fin: header.is_final,
        kind,
        header_len,
        payload_len,
    }))
}

/// Bytes a header needs, judging by what has arrived of it.
fn header_need(buf: &[u8]) -> usize {
    match buf {
        [_, b, ..] => {
            let mask = if b & 0x80 != 0 { 4 } else { 0 };
            2 + mask
                + match b & 0x7f {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                }
        }
        _ => 2,
    }
}

/// XORs `payload` with the frame's masking key (RFC 6455 §5.3). Hand-written:
/// tungstenite's own is private to the crate; this loop vectorises.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Tracks one connection's message boundaries across frames: a message starts
/// with a text or binary frame, continues with continuation frames, ends with a
/// final one; control frames may come between; the total stays under the limit.
///
/// ```
/// use poselink::ws::{Assembler, FrameKind};
/// let mut a = Assembler::new(1000);
/// assert_eq!(a.data_frame(FrameKind::Binary, false, 600), Ok(None));
/// assert!(a.data_frame(FrameKind::Continuation, true, 600).is_err()); // 1200 > 1000
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Assembler {
    max_message: usize,
    /// The kind of the message in progress, and its bytes so far.
    open: Option<(FrameKind, usize)>,
}

impl Assembler {
    /// An assembler for messages of at most `max_message` bytes.
    pub const fn new(max_message: usize) -> Self {
        Assembler {
            max_message,
            open: None,
        }
    }

    /// Whether a fragmented message is in progress.
    pub const fn in_message(&self) -> bool {
        self.open.is_some()
    }

    /// Takes in a data frame (text, binary or continuation) of `len` bytes.
    /// Returns the message's kind and total length when this frame completes it.
    pub fn data_frame(
        &mut self,
        kind: FrameKind,
        fin: bool,
        len: usize,
    ) -> Result<Option<(FrameKind, usize)>, WsError> {
        let (kind, total) = match (kind, self.open) {
            (FrameKind::Continuation, Some((k, so_far))) => (k, so_far + len),
            (FrameKind::Continuation, None) => return Err(WsError::BadFragment),
            (FrameKind::Text | FrameKind::Binary, None) => (kind, len),
            (FrameKind::Text | FrameKind::Binary, Some(_)) => return Err(WsError::BadFragment),
            _ => return Err(WsError::BadOpcode),
        };
        if total > self.max_message {
            self.open = None;
            return Err(WsError::TooLarge {
                len: total as u64,
                max: self.max_message,
            });
        }
        if fin {
            self.open = None;
            Ok(Some((kind, total)))
        } else {
            self.open = Some((kind, total));
            Ok(None)
        }
    }
}

/// Writes the header of an unmasked (server) frame with `len` bytes of payload at
/// the start of `out`; returns its length (2, 4 or 10 bytes), or `None` if `out`
/// is shorter than that.
///
/// ```
/// use poselink::ws::{write_header, FrameKind};
/// let mut out = [0u8; 10];
/// assert_eq!(write_header(&mut out, FrameKind::Binary, true, 300), Some(4));
/// assert_eq!(&out[..4], &[0x82, 126, 0x01, 0x2c]);
/// ```
pub fn write_header(out: &mut [u8], kind: FrameKind, fin: bool, len: usize) -> Option<usize> {
    format_header(out, kind, fin, len, None)
}

/// [`write_header`] and [`write_client_header`]: a header with or without a
/// masking key, through tungstenite's `FrameHeader`.
fn format_header(
    out: &mut [u8],
    kind: FrameKind,
    fin: bool,
    len: usize,
    mask: Option<[u8; 4]>,
) -> Option<usize> {
    let opcode = match kind {
        FrameKind::Continuation => OpCode::Data(Data::Continue),
        FrameKind::Text => OpCode::Data(Data::Text),
        FrameKind::Binary => OpCode::Data(Data::Binary),
        FrameKind::Close => OpCode::Control(Control::Close),
        FrameKind::Ping => OpCode::Control(Control::Ping),
        FrameKind::Pong => OpCode::Control(Control::Pong),
    };
    let header = FrameHeader {
        is_final: fin,
        opcode,
        mask,
        ..FrameHeader::default()
    };
    let n = header.len(len as u64);
    let dst = out.get_mut(..n)?;
    header.format(len as u64, &mut Cursor::new(dst)).ok()?;
    Some(n)
}

/// Writes a close frame's payload (code, then as much of `reason` as fits the
/// 123 bytes a control frame leaves, cut at a character boundary) into `out`;
/// returns its length.
pub fn close_payload(out: &mut [u8; 125], code: u16, reason: &str) -> usize {
    out[..2].copy_from_slice(&code.to_be_bytes());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    2 + end
}

/// Reads a close frame's payload: the code (1005, "no status", if absent) and the
/// reason.
pub fn parse_close(payload: &[u8]) -> Result<(u16, &str), WsError> {
    match payload {
        [] => Ok((1005, "")),
        [_] => Err(WsError::BadClose),
        [a, b, rest @ ..] => {
            let reason = core::str::from_utf8(rest).map_err(|_| WsError::BadClose)?;
            Ok((u16::from_be_bytes([*a, *b]), reason))
        }
    }
}

/// Looks at the front of `buf` (bytes received from a server, oldest first), like
/// [`parse_frame`] with every rule but one reversed: a server must not mask its
/// frames (RFC 6455 §5.1), so a masked one is refused with [`WsError::Masked`]
/// and the payload is used as it arrived. A frame whose payload would exceed
/// `max_payload` is refused as soon as its header is complete.
///
/// ```
/// use poselink::ws::{parse_server_frame, FrameKind, Parsed, WsError};
/// // RFC 6455 §5.7: an unmasked "Hello" from a server.
/// let mut buf = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
/// let Parsed::Frame(f) = parse_server_frame(&mut buf, 1024).unwrap() else { panic!() };
/// assert_eq!((f.kind, f.fin), (FrameKind::Text, true));
/// assert_eq!(&buf[f.header_len..f.len()], b"Hello");
/// // The same "Hello", masked as a client sends it: a server must not.
/// let mut buf = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// assert_eq!(parse_server_frame(&mut buf, 1024), Err(WsError::Masked));
/// ```
pub fn parse_server_frame(buf: &mut [u8], max_payload: usize) -> Result<Parsed, WsError> {
    parse_from(buf, max_payload, Peer::Server)
}

/// Writes the header of a masked (client) frame with `len` bytes of payload and
/// the masking key `mask` at the start of `out`; returns its length (6, 8 or 14
/// bytes), or `None` if `out` is shorter than that. The payload that follows must
/// be masked with the same key: [`mask_payload`]. RFC 6455 §5.3 asks for a fresh,
/// unpredictable key per frame; choosing it is the caller's job.
///
/// ```
/// use poselink::ws::{mask_payload, parse_frame, write_client_header, FrameKind, Parsed};
/// let mut frame = [0u8; 14 + 5];
/// let mask = [0x37, 0xfa, 0x21, 0x3d];
/// let n = write_client_header(&mut frame, FrameKind::Text, true, 5, mask).unwrap();
/// frame[n..n + 5].copy_from_slice(b"Hello");
/// mask_payload(&mut frame[n..n + 5], mask);
/// // RFC 6455 §5.7: a masked "Hello".
/// assert_eq!(
///     &frame[..n + 5],
///     &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
/// );
/// ```
pub fn write_client_header(
    out: &mut [u8],
    kind: FrameKind,
    fin: bool,
    len: usize,
    mask: [u8; 4],
) -> Option<usize> {
    format_header(out, kind, fin, len, Some(mask))
}

/// XORs `payload` with the masking key `mask` (RFC 6455 §5.3), in place: masks a
/// client frame's payload before it is sent, and unmasks it again (the operation
/// is its own inverse).
///
/// ```
/// use poselink::ws::mask_payload;
/// let mut p = *b"Hello";
/// mask_payload(&mut p, [1, 2, 3, 4]);
/// assert_ne!(&p, b"Hello");
/// mask_payload(&mut p, [1, 2, 3, 4]);
/// assert_eq!(&p, b"Hello");
/// ```
pub fn mask_payload(payload: &mut [u8], mask: [u8; 4]) {
    unmask(payload, mask);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with `mask`, payload as given.
    fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut v = vec![first];
        match payload.len() {
            n @ 0..=125 => v.push(0x80 | n as u8),
            n @ 126..=65535 => {
                v.push(0x80 | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(0x80 | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }

    #[test]
    fn partial_frames_say_what_they_need() {
        let frame = client_frame(0x82, &[7u8; 300], [1, 2, 3, 4]);
        for cut in 0..frame.len() {
            let mut part = frame[..cut].to_vec();
            match parse_frame(&mut part, 1 << 16).unwrap() {
                Parsed::Need(n) => assert!(n > cut, "cut {cut}: need {n}"),
                Parsed::Frame(_) => panic!("a frame from {cut} of {} bytes", frame.len()),
            }
        }
        let mut whole = frame.clone();
        let Parsed::Frame(f) = parse_frame(&mut whole, 1 << 16).unwrap() else {
            panic!()
        };
        assert_eq!((f.header_len, f.payload_len), (8, 300));
        assert!(whole[8..].iter().all(|&b| b == 7));
    }

    #[test]
    fn every_rule_is_enforced() {
        let m = [9, 8, 7, 6];
        let cases: [(Vec<u8>, WsError); 6] = [
            (client_frame(0x82 | 0x40, b"x", m), WsError::ReservedBits),
            (client_frame(0x83, b"x", m), WsError::BadOpcode),
            (vec![0x82, 0x01, b'x'], WsError::Unmasked),
            (client_frame(0x09, b"ping", m), WsError::BadControlFrame),
            (client_frame(0x89, &[0u8; 126], m), WsError::BadControlFrame),
            (
                client_frame(0x82, &[0u8; 2000], m),
                WsError::TooLarge {
                    len: 2000,
                    max: 1000,
                },
            ),
        ];
        for (mut bytes, want) in cases {
            assert_eq!(parse_frame(&mut bytes, 1000), Err(want), "{bytes:02x?}");
        }
        // The size limit bites on the header alone, before the payload arrives.
        let big = client_frame(0x82, &vec![0u8; 70_000], m);
        let mut head = big[..14].to_vec();
        assert_eq!(
            parse_frame(&mut head, 65_536),
            Err(WsError::TooLarge {
                len: 70_000,
                max: 65_536
            })
        );
        assert_eq!(WsError::TooLarge { len: 1, max: 0 }.close_code(), 1009);
        assert_eq!(WsError::Unmasked.close_code(), 1002);
    }

    #[test]
    fn fragments_follow_the_rules() {
        let mut a = Assembler::new(100);
        assert_eq!(
            a.data_frame(FrameKind::Continuation, true, 1),
            Err(WsError::BadFragment)
        );
        assert_eq!(a.data_frame(FrameKind::Binary, false, 40), Ok(None));
        assert!(a.in_message());
        assert_eq!(
            a.data_frame(FrameKind::Text, true, 1),
            Err(WsError::BadFragment)
        );
        assert_eq!(a.data_frame(FrameKind::Continuation, false, 40), Ok(None));
        assert_eq!(
            a.data_frame(FrameKind::Continuation, true, 20),
            Ok(Some((FrameKind::Binary, 100)))
        );
        assert!(!a.in_message());
        assert_eq!(
            a.data_frame(FrameKind::Binary, true, 5),
            Ok(Some((FrameKind::Binary, 5)))
        );
        assert_eq!(a.data_frame(FrameKind::Binary, false, 90), Ok(None));
        assert_eq!(
            a.data_frame(FrameKind::Continuation, true, 11),
            Err(WsError::TooLarge { len: 101, max: 100 })
        );
        assert!(!a.in_message(), "a refused message is forgotten");
    }

    #[test]
    fn server_headers_and_close_payloads() {
        let mut out = [0u8; 10];
        assert_eq!(write_header(&mut out, FrameKind::Binary, true, 5), Some(2));
        assert_eq!(&out[..2], &[0x82, 5]);
        assert_eq!(write_header(&mut out, FrameKind::Pong, true, 0), Some(2));
        assert_eq!(&out[..2], &[0x8a, 0]);
        assert_eq!(
            write_header(&mut out, FrameKind::Binary, false, 70_000),
            Some(10)
        );
        assert_eq!(&out[..2], &[0x02, 127]);
        assert_eq!(u64::from_be_bytes(out[2..10].try_into().unwrap()), 70_000);
        assert_eq!(
            write_header(&mut out[..3], FrameKind::Binary, true, 300),
            None
        );

        let mut p = [0u8; 125];
        let n = close_payload(&mut p, close_code::GOING_AWAY, "hub shutting down");
        assert_eq!(parse_close(&p[..n]), Ok((1001, "hub shutting down")));
        let long = "é".repeat(100); // 200 bytes: cut to 122, a char boundary
        let n = close_payload(&mut p, 1008, &long);
        assert!(n <= 125);
        assert!(parse_close(&p[..n]).is_ok());
        assert_eq!(parse_close(&[]), Ok((1005, "")));
        assert_eq!(parse_close(&[3]), Err(WsError::BadClose));
        assert_eq!(parse_close(&[3, 232, 0xff]), Err(WsError::BadClose));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 0x2545_f491;
        for len in 0..200 {
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            // Both sides' rules, each on its own copy (parsing unmasks in place).
            let mut copy = buf.clone();
            let _ = parse_frame(&mut buf, 1 << 16);
            let _ = parse_server_frame(&mut copy, 1 << 16);
        }
    }

    /// A client frame built with the client-side writers.
    fn masked_frame(kind: FrameKind, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut v = vec![0u8; 14 + payload.len()];
        let n = write_client_header(&mut v, kind, fin, payload.len(), mask).unwrap();
        v[n..n + payload.len()].copy_from_slice(payload);
        mask_payload(&mut v[n..n + payload.len()], mask);
        v.truncate(n + payload.len());
        v
    }

    #[test]
    fn client_frames_round_trip_through_the_server_parser() {
        let mask = [0xa5, 0x01, 0xfe, 0x5a];
        for (len, header_len) in [
            (0, 6),
            (5, 6),
            (125, 6),
            (126, 8),
            (300, 8),
            (65_535, 8),
            (65_536, 14),
            (70_000, 14),
        ] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut frame = masked_frame(FrameKind::Binary, true, &payload, mask);
            assert_eq!(frame.len(), header_len + len, "{len}");
            if len > 0 {
                assert_ne!(&frame[header_len..], &payload[..], "masked on the wire");
            }
            let Parsed::Frame(f) = parse_frame(&mut frame, 1 << 20).unwrap() else {
                panic!("{len}")
            };
            assert_eq!((f.kind, f.fin), (FrameKind::Binary, true));
            assert_eq!((f.header_len, f.payload_len), (header_len, len));
            assert_eq!(&frame[f.header_len..f.len()], &payload[..], "{len}");
        }
        for kind in [
            FrameKind::Continuation,
            FrameKind::Text,
            FrameKind::Close,
            FrameKind::Ping,
            FrameKind::Pong,
        ] {
            let mut frame = masked_frame(kind, true, b"abc", mask);
            let Parsed::Frame(f) = parse_frame(&mut frame, 1024).unwrap() else {
                panic!("{kind:?}")
            };
            assert_eq!((f.kind, f.fin, &frame[6..]), (kind, true, &b"abc"[..]));
        }
        let mut frame = masked_frame(FrameKind::Text, false, b"abc", mask);
        let Parsed::Frame(f) = parse_frame(&mut frame, 1024).unwrap() else {
            panic!()
        };
        assert!(!f.fin);
        let mut out = [0u8; 14];
        assert_eq!(
            write_client_header(&mut out[..7], FrameKind::Binary, true, 300, mask),
            None
        );
        assert_eq!(
            write_client_header(&mut out[..8], FrameKind::Binary, true, 300, mask),
            Some(8)
        );
        assert_eq!(
            &out[..8],
            &[0x82, 0x80 | 126, 0x01, 0x2c, 0xa5, 0x01, 0xfe, 0x5a]
        );
    }

    #[test]
    fn server_frames_must_not_be_masked() {
        // An unmasked server frame, as the hub writes it, is accepted in place.
        let payload: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let mut frame = vec![0u8; 10];
        let n = write_header(&mut frame, FrameKind::Binary, true, payload.len()).unwrap();
        frame.truncate(n);
        frame.extend_from_slice(&payload);
        for cut in 0..frame.len() {
            let mut part = frame[..cut].to_vec();
            match parse_server_frame(&mut part, 1 << 16).unwrap() {
                Parsed::Need(need) => assert!(need > cut, "cut {cut}: need {need}"),
                Parsed::Frame(_) => panic!("a frame from {cut} of {} bytes", frame.len()),
            }
        }
        let Parsed::Frame(f) = parse_server_frame(&mut frame, 1 << 16).unwrap() else {
            panic!()
        };
        assert_eq!(
            (f.kind, f.fin, f.header_len, f.payload_len),
            (FrameKind::Binary, true, 4, 300)
        );
        assert_eq!(&frame[4..], &payload[..]);
        // The parser for client frames refuses it.
        assert_eq!(parse_frame(&mut frame, 1 << 16), Err(WsError::Unmasked));

        // A masked one is refused, as soon as its header is complete.
        let masked = masked_frame(FrameKind::Binary, true, &payload, [1, 2, 3, 4]);
        assert_eq!(
            parse_server_frame(&mut masked.clone(), 1 << 16),
            Err(WsError::Masked)
        );
        assert_eq!(
            parse_server_frame(&mut masked[..8].to_vec(), 1 << 16),
            Err(WsError::Masked)
        );
        assert_eq!(
            parse_server_frame(&mut masked[..7].to_vec(), 1 << 16),
            Ok(Parsed::Need(8))
        );
        assert_eq!(WsError::Masked.close_code(), close_code::PROTOCOL_ERROR);
        assert!(WsError::Masked.to_string().contains("must not be masked"));

        // Every other rule holds as for client frames.
        let cases: [(Vec<u8>, WsError); 5] = [
            (vec![0x82 | 0x40, 0x01, b'x'], WsError::ReservedBits),
            (vec![0x83, 0x01, b'x'], WsError::BadOpcode),
            (vec![0x09, 0x01, b'x'], WsError::BadControlFrame),
            (
                [&[0x89, 126, 0, 126][..], &[0u8; 126]].concat(),
                WsError::BadControlFrame,
            ),
            (
                [&[0x82, 126, 0x07, 0xd0][..], &[0u8; 2000]].concat(),
                WsError::TooLarge {
                    len: 2000,
                    max: 1000,
                },
            ),
        ];
        for (mut bytes, want) in cases {
            assert_eq!(
                parse_server_frame(&mut bytes, 1000),
                Err(want),
                "{bytes:02x?}"
            );
        }
        // The size limit bites on the header alone, before the payload arrives.
        let mut head = [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70];
        assert_eq!(
            parse_server_frame(&mut head, 65_536),
            Err(WsError::TooLarge {
                len: 70_000,
                max: 65_536
            })
        );
    }

    #[test]
    fn rfc_6455_examples() {
        // §5.7, every example, through the parser of the end that receives it.
        let hello = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let masked_hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mask = [0x37, 0xfa, 0x21, 0x3d];

        // A single-frame unmasked text message, server to client.
        let mut buf = hello;
        let Parsed::Frame(f) = parse_server_frame(&mut buf, 1024).unwrap() else {
            panic!()
        };
        assert_eq!(
            (f.kind, f.fin, &buf[f.header_len..f.len()]),
            (FrameKind::Text, true, &b"Hello"[..])
        );
        let mut out = [0u8; 14];
        assert_eq!(write_header(&mut out, FrameKind::Text, true, 5), Some(2));
        assert_eq!(&out[..2], &hello[..2]);

        // A single-frame masked text message, client to server.
        assert_eq!(
            masked_frame(FrameKind::Text, true, b"Hello", mask),
            masked_hello
        );
        let mut buf = masked_hello;
        let Parsed::Frame(f) = parse_frame(&mut buf, 1024).unwrap() else {
            panic!()
        };
        assert_eq!(
            (f.kind, &buf[f.header_len..f.len()]),
            (FrameKind::Text, &b"Hello"[..])
        );

        // A fragmented unmasked text message: "Hel", then "lo".
        let mut first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let mut second = [0x80, 0x02, 0x6c, 0x6f];
        let mut asm = Assembler::new(1024);
        let Parsed::Frame(f) = parse_server_frame(&mut first, 1024).unwrap() else {
            panic!()
        };
        assert_eq!(
            (f.kind, f.fin, &first[2..]),
            (FrameKind::Text, false, &b"Hel"[..])
        );
        assert_eq!(asm.data_frame(f.kind, f.fin, f.payload_len), Ok(None));
        let Parsed::Frame(f) = parse_server_frame(&mut second, 1024).unwrap() else {
            panic!()
        };
        assert_eq!(
            (f.kind, f.fin, &second[2..]),
            (FrameKind::Continuation, true, &b"lo"[..])
        );
        assert_eq!(
            asm.data_frame(f.kind, f.fin, f.payload_len),
            Ok(Some((FrameKind::Text, 5)))
        );

        // An unmasked ping, and the masked pong that answers it.
        let mut ping = hello;
        ping[0] = 0x89;
        let Parsed::Frame(f) = parse_server_frame(&mut ping, 1024).unwrap() else {
            panic!()
        };
        assert_eq!((f.kind, &ping[2..]), (FrameKind::Ping, &b"Hello"[..]));
        let mut pong = masked_hello;
        pong[0] = 0x8a;
        assert_eq!(masked_frame(FrameKind::Pong, true, b"Hello", mask), pong);
        let Parsed::Frame(f) = parse_frame(&mut pong, 1024).unwrap() else {
            panic!()
        };
        assert_eq!((f.kind, &pong[6..]), (FrameKind::Pong, &b"Hello"[..]));

        // 256 bytes and 64 KiB of binary data in a single unmasked message.
        for (len, header) in [
            (256, &[0x82, 0x7e, 0x01, 0x00][..]),
            (65_536, &[0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00][..]),
        ] {
            assert_eq!(
                write_header(&mut out, FrameKind::Binary, true, len),
                Some(header.len())
            );
            assert_eq!(&out[..header.len()], header);
            let mut frame = [header, &vec![0x5a; len]].concat();
            let Parsed::Frame(f) = parse_server_frame(&mut frame, 1 << 16).unwrap() else {
                panic!()
            };
            assert_eq!(
                (f.kind, f.header_len, f.payload_len),
                (FrameKind::Binary, header.len(), len)
            );
        }
    }
}
