//! The receive side: every connection's receive buffer, lent to the driver to
//! read into, and the WebSocket framing over it. Frames are parsed and unmasked
//! in place (`ws::parse_frame`); a fragmented message is assembled in place at
//! the front of the buffer (each fragment's payload moved down over the header
//! that followed the previous one, never parsed twice); a control frame that
//! arrives between fragments is handled and cut out. What a frame means is not
//! decided here: each whole message, control frame or framing error is handed to
//! the caller's closure, which says whether the connection still takes frames,
//! or that parsing should pause (the rest kept for a later call) while output is
//! written.
//!
//! A buffer holds a whole message of `max_message` bytes, one more frame header,
//! and a control frame that may arrive between fragments; anything larger is
//! refused as soon as its header says so.

use crate::ws::{self, Assembler, FrameKind, Parsed, WsError};

use super::arena::Arena;

/// What the framing found in a connection's buffer.
pub(super) enum Item<'a> {
    /// A control frame (ping, pong, close) and its payload.
    Control(FrameKind, &'a [u8]),
    /// A whole data message (text or binary), unmasked, to handle in place.
    Message(FrameKind, &'a mut [u8]),
    /// A framing rule broken: the connection must be closed.
    Error(WsError),
}

/// What the caller of [`Receive::parse`] wants after an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    /// Go on with the next frame.
    Go,
    /// Stop here and keep the rest for the next `parse` (output is due first).
    Pause,
    /// The connection takes no more frames: drop the rest.
    Stop,
}

/// One connection's framing state.
#[derive(Clone, Copy, Debug)]
struct RxState {
    /// Bytes in the buffer.
    len: usize,
    /// Bytes at the front that are an assembled (fragmented) message so far.
    asm_len: usize,
    /// Bytes at the front already parsed (when no message is being assembled).
    scan: usize,
    assembler: Assembler,
}

impl RxState {
    const fn new(max_message: usize) -> RxState {
        RxState {
            len: 0,
            asm_len: 0,
            scan: 0,
            assembler: Assembler::new(max_message),
        }
    }
}

/// Receive buffer bytes beyond `max_message`: one more frame header, and a
/// control frame (header and payload) that may arrive between fragments.
pub(super) const RX_EXTRA: usize = 14 + 14 + 125;

/// Every connection's receive buffer and framing state.
pub(super) struct Receive {
    buffers: Arena,
    state: Box<[RxState]>,
    size: usize,
    max_message: usize,
}

impl Receive {
    /// Buffers for `slots` connections taking messages of up to `max_message`
    /// bytes.
    pub fn new(slots: usize, max_message: usize) -> Receive {
        let size = max_message + RX_EXTRA;
        Receive {
            buffers: Arena::new(slots, size),
            state: vec![RxState::new(max_message); slots].into_boxed_slice(),
            size,
            max_message,
        }
    }

    /// Forgets what connection `i`'s buffer holds (a new connection).
    pub fn reset(&mut self, i: usize) {
        self.state[i] = RxState::new(self.max_message);
    }

    /// Drops the bytes in connection `i`'s buffer (a closing connection's).
    pub fn discard(&mut self, i: usize) {
        let s = &mut self.state[i];
        s.len = 0;
        s.scan = 0;
        s.asm_len = 0;
    }

    /// The free part of connection `i`'s buffer.
    pub fn spare(&mut self, i: usize) -> &mut [u8] {
        let len = self.state[i].len;
        &mut self.buffers.get_mut(i)[len..]
    }

    /// `n` bytes were written at the start of [`spare`](Self::spare).
    pub fn filled(&mut self, i: usize, n: usize) {
        let s = &mut self.state[i];
        s.len = (s.len + n).min(self.size);
    }

    /// Hands every whole frame in connection `i`'s buffer to `on`, in order,
    /// until `on` says the connection takes no more ([`Flow::Stop`]: its bytes
    /// are then dropped) or to pause ([`Flow::Pause`]: the rest waits for the
    /// next call), or only part of a frame is left (it waits for more).
    /// Returns the flow it ended on ([`Flow::Go`] when the bytes ran out).
    pub fn parse(&mut self, i: usize, mut on: impl FnMut(Item<'_>) -> Flow) -> Flow {
        let max = self.max_message;
        let st = &mut self.state[i];
        let rx = self.buffers.get_mut(i);
        let (mut rx_len, mut scan, mut asm_len) = (st.len, st.scan, st.asm_len);
        let mut flow = Flow::Go;
        while flow == Flow::Go {
            let frame = match ws::parse_frame(&mut rx[scan..rx_len], max) {
                Ok(Parsed::Frame(f)) => f,
                Ok(Parsed::Need(n)) => {
                    // Parsed frames are moved out below, so the frame has the
                    // buffer less the message assembled so far; only a message
                    // over the limit can outgrow that.
                    if asm_len + n > rx.len() {
                        let len = (asm_len + n) as u64;
                        flow = on(Item::Error(WsError::TooLarge { len, max }));
                    }
                    break;
                }
                Err(e) => {
                    flow = on(Item::Error(e));
                    break;
                }
            };
            let (h, p) = (scan + frame.header_len, scan + frame.len());
            if frame.kind.is_control() {
                flow = on(Item::Control(frame.kind, &rx[h..p]));
                if asm_len > 0 {
                    // Cut it out from between the fragments.
                    rx.copy_within(p..rx_len, scan);
                    rx_len -= frame.len();
                } else {
                    scan = p;
                }
                continue;
            }
            let done = match st
                .assembler
                .data_frame(frame.kind, frame.fin, frame.payload_len)
            {
                Ok(d) => d,
                Err(e) => {
                    flow = on(Item::Error(e));
                    break;
                }
            };
            if frame.fin && asm_len == 0 {
                if let Some((kind, _)) = done {
                    flow = on(Item::Message(kind, &mut rx[h..p]));
                }
                scan = p;
                continue;
            }
            // A fragment: assemble the message at the front of the buffer. (The
            // frame is already unmasked: move it, never parse it again.)
            if asm_len == 0 && scan > 0 {
                rx.copy_within(scan..rx_len, 0);
                rx_len -= scan;
                scan = 0;
            }
            rx.copy_within(scan + frame.header_len..rx_len, scan);
            rx_len -= frame.header_len;
            asm_len += frame.payload_len;
            scan = asm_len;
            if let Some((kind, total)) = done {
                flow = on(Item::Message(kind, &mut rx[..total]));
                rx.copy_within(total..rx_len, 0);
                rx_len -= total;
                asm_len = 0;
                scan = 0;
            }
        }
        if asm_len == 0 && scan > 0 {
            rx.copy_within(scan..rx_len, 0);
            rx_len -= scan;
            scan = 0;
        }
        if flow != Flow::Stop {
            st.len = rx_len;
            st.scan = scan;
            st.asm_len = asm_len;
        } else {
            st.len = 0;
            st.scan = 0;
            st.asm_len = 0;
        }
        flow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::{mask_payload, write_client_header};

    fn frame(kind: FrameKind, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [7, 1, 9, 3];
        let mut v = vec![0u8; 14 + payload.len()];
        let n = write_client_header(&mut v, kind, fin, payload.len(), mask).unwrap();
        v[n..n + payload.len()].copy_from_slice(payload);
        mask_payload(&mut v[n..n + payload.len()], mask);
        v.truncate(n + payload.len());
        v
    }

    fn feed(rx: &mut Receive, bytes: &[u8]) {
        rx.spare(0)[..bytes.len()].copy_from_slice(bytes);
        rx.filled(0, bytes.len());
    }

    /// Everything one `parse` hands out, as (what, bytes).
    fn items(rx: &mut Receive) -> Vec<(String, Vec<u8>)> {
        let mut got = Vec::new();
        rx.parse(0, |item| {
            got.push(match item {
                Item::Control(k, p) => (format!("{k:?}"), p.to_vec()),
                Item::Message(k, m) => (format!("{k:?}"), m.to_vec()),
                Item::Error(e) => (format!("error: {e}"), Vec::new()),
            });
            Flow::Go
        });
        got
    }

    #[test]
    fn fragments_with_a_ping_between_are_joined_in_place() {
        let mut rx = Receive::new(1, 4096);
        let mut bytes = frame(FrameKind::Binary, false, b"hel");
        bytes.extend(frame(FrameKind::Ping, true, b"p"));
        bytes.extend(frame(FrameKind::Continuation, true, b"lo"));
        bytes.extend(frame(FrameKind::Binary, true, b"next"));
        // Byte by byte: every partial state is kept across calls.
        let mut got = Vec::new();
        for b in &bytes {
            feed(&mut rx, &[*b]);
            got.extend(items(&mut rx));
        }
        let want: Vec<(String, Vec<u8>)> = vec![
            ("Ping".into(), b"p".to_vec()),
            ("Binary".into(), b"hello".to_vec()),
            ("Binary".into(), b"next".to_vec()),
        ];
        assert_eq!(got, want);
        assert_eq!(rx.spare(0).len(), rx.size, "the buffer is empty again");
    }

    #[test]
    fn a_message_over_the_limit_is_refused_by_its_header() {
        let mut rx = Receive::new(1, 4096);
        let big = frame(FrameKind::Binary, true, &[0u8; 5000]);
        feed(&mut rx, &big[..8]);
        let got = items(&mut rx);
        assert_eq!(got.len(), 1);
        assert!(got[0].0.contains("exceeds the limit"), "{got:?}");
    }

    #[test]
    fn a_refusal_drops_the_rest() {
        let mut rx = Receive::new(1, 4096);
        feed(&mut rx, &frame(FrameKind::Binary, true, b"one"));
        feed(&mut rx, &frame(FrameKind::Binary, true, b"two"));
        let mut seen = 0;
        rx.parse(0, |_| {
            seen += 1;
            Flow::Stop
        });
        assert_eq!(seen, 1, "no frame after the closure said stop");
        assert_eq!(rx.spare(0).len(), rx.size);
    }

    #[test]
    fn a_pause_keeps_the_rest_for_the_next_call() {
        let mut rx = Receive::new(1, 4096);
        let mut bytes = frame(FrameKind::Binary, true, b"one");
        bytes.extend(frame(FrameKind::Binary, false, b"tw"));
        bytes.extend(frame(FrameKind::Ping, true, b"p"));
        bytes.extend(frame(FrameKind::Continuation, true, b"o"));
        bytes.extend(frame(FrameKind::Binary, true, b"three"));
        bytes.extend(frame(FrameKind::Binary, false, b"fo"));
        feed(&mut rx, &bytes);
        // Pause after every item: each call hands out exactly one.
        let mut got = Vec::new();
        for _ in 0..10 {
            let before = got.len();
            rx.parse(0, |item| {
                match item {
                    Item::Message(_, m) => got.push(m.to_vec()),
                    Item::Control(_, p) => got.push(p.to_vec()),
                    Item::Error(e) => panic!("{e}"),
                }
                Flow::Pause
            });
            if got.len() == before {
                break;
            }
        }
        let want: Vec<&[u8]> = vec![b"one", b"p", b"two", b"three"];
        assert_eq!(got, want);
        // The unfinished message is kept and completed by later bytes.
        feed(&mut rx, &frame(FrameKind::Continuation, true, b"ur"));
        assert_eq!(
            items(&mut rx),
            vec![("Binary".to_string(), b"four".to_vec())]
        );
        assert_eq!(rx.spare(0).len(), rx.size, "the buffer is empty again");
    }
}
