//! The session's two byte buffers, allocated once: [`TxBuf`], where outgoing
//! messages are encoded in place as masked WebSocket client frames, and
//! [`RxBuf`], where the driver reads and server frames are parsed in place.
//!
//! Why not a `ringbuf` byte ring for the transmit side: encoding in place needs
//! one contiguous, initialised `&mut [u8]` for the frame header and the message;
//! a byte ring lends its free space as up to two `MaybeUninit<u8>` pieces, and
//! turning those into `&mut [u8]` takes `unsafe`, which this crate denies. So the
//! transmit buffer is linear: frames are appended at the tail, written from the
//! head, and the few bytes still waiting are moved to the front when the tail
//! runs out of room (rare: the driver writes as soon as frames are queued).

use crate::proto::MAX_MESSAGE_LEN;
use crate::ws::{self, FrameKind, Parsed, WsError};

/// Header room kept before a message being encoded: a masked client header with
/// a 16-bit length (payloads of 126 to 65 535 bytes). A payload of 125 bytes or
/// less has a 6-byte header.
const HEADER_ROOM: usize = 8;
/// The largest message encoded in place (a 16-bit WebSocket length).
const MAX_IN_PLACE: usize = if MAX_MESSAGE_LEN < 65_535 {
    MAX_MESSAGE_LEN
} else {
    65_535
};

/// The header length of a masked client frame of `n` payload bytes.
const fn client_header_len(n: usize) -> usize {
    match n {
        0..=125 => 6,
        126..=65_535 => 8,
        _ => 14,
    }
}

/// Outgoing frames, oldest first: `buf[head..tail]` waits to be written.
pub(super) struct TxBuf {
    buf: Box<[u8]>,
    head: usize,
    tail: usize,
}

impl TxBuf {
    pub(super) fn new(capacity: usize) -> TxBuf {
        TxBuf {
            buf: vec![0u8; capacity.max(4096)].into_boxed_slice(),
            head: 0,
            tail: 0,
        }
    }

    /// Bytes waiting to be written.
    pub(super) fn pending(&self) -> &[u8] {
        &self.buf[self.head..self.tail]
    }

    pub(super) fn len(&self) -> usize {
        self.tail - self.head
    }

    /// `n` bytes were written.
    pub(super) fn consume(&mut self, n: usize) {
        self.head = (self.head + n).min(self.tail);
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
    }

    pub(super) fn clear(&mut self) {
        self.head = 0;
        self.tail = 0;
    }

    /// Makes `need` bytes free at the tail if the buffer can hold them at all.
    fn make_room(&mut self, need: usize) -> bool {
        if self.buf.len() - self.tail < need && self.head > 0 {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        self.buf.len() - self.tail >= need
    }

    /// The space a message is encoded into, after room for its frame header:
    /// up to `max` bytes (and at most a 16-bit length). `None` if the buffer
    /// cannot give `min` bytes. Follow with [`commit`](Self::commit).
    pub(super) fn reserve(&mut self, min: usize, max: usize) -> Option<&mut [u8]> {
        if !self.make_room(HEADER_ROOM + min) {
            return None;
        }
        let start = self.tail + HEADER_ROOM;
        let len = (self.buf.len() - start).min(max).min(MAX_IN_PLACE);
        Some(&mut self.buf[start..start + len])
    }

    /// Frames the `n`-byte message just encoded into [`reserve`](Self::reserve)'s
    /// space: writes its header in the room before it and masks it in place. A
    /// message of 125 bytes or less has a header two bytes shorter than the room
    /// kept: on an empty buffer the frame then simply starts two bytes later; on
    /// a non-empty one those (at most 125) bytes move back two bytes, which is
    /// cheaper than encoding twice.
    pub(super) fn commit(&mut self, kind: FrameKind, n: usize, mask: [u8; 4]) {
        let payload = self.tail + HEADER_ROOM;
        let hl = client_header_len(n);
        let mut start = self.tail;
        if hl < HEADER_ROOM {
            if self.head == self.tail {
                self.head += HEADER_ROOM - hl;
                start = self.head;
            } else {
                self.buf.copy_within(payload..payload + n, self.tail + hl);
            }
        }
        let at = start + hl;
        // The header fits its room by construction.
        let _ = ws::write_client_header(&mut self.buf[start..at], kind, true, n, mask);
        ws::mask_payload(&mut self.buf[at..at + n], mask);
        self.tail = at + n;
    }

    /// Appends a frame whose payload is copied in (control frames, replays).
    pub(super) fn push_frame(&mut self, kind: FrameKind, payload: &[u8], mask: [u8; 4]) -> bool {
        let n = payload.len();
        match self.reserve(n, n) {
            Some(buf) if buf.len() >= n => buf[..n].copy_from_slice(payload),
            _ => return false,
        }
        self.commit(kind, n, mask);
        true
    }
}

/// What [`RxBuf::next_frame`] found.
pub(super) enum Next {
    /// A whole frame: its kind, whether it is final, and its payload's range.
    Frame(FrameKind, bool, core::ops::Range<usize>),
    /// Nothing whole yet.
    Nothing,
    /// The stream broke a WebSocket rule.
    Broken(WsError),
}

/// Received bytes: `buf[start..end]` is not parsed yet.
pub(super) struct RxBuf {
    pub(super) buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes still to discard of a frame larger than the buffer.
    skip: usize,
    /// Frames skipped for size.
    pub(super) skipped: u64,
}

impl RxBuf {
    pub(super) fn new(capacity: usize) -> RxBuf {
        RxBuf {
            buf: vec![0u8; capacity.max(256)].into_boxed_slice(),
            start: 0,
            end: 0,
            skip: 0,
            skipped: 0,
        }
    }

    pub(super) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.skip = 0;
    }

    /// Free space to read into (the unparsed rest moved to the front first).
    pub(super) fn space(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`space`](Self::space).
    pub(super) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Copies what fits of `data` in; returns how much.
    pub(super) fn push(&mut self, data: &[u8]) -> usize {
        let space = self.space();
        let n = data.len().min(space.len());
        space[..n].copy_from_slice(&data[..n]);
        self.filled(n);
        n
    }

    /// The next whole frame, parsed in place; frames too large for the buffer
    /// are skipped.
    pub(super) fn next_frame(&mut self) -> Next {
        if self.skip > 0 {
            let d = self.skip.min(self.end - self.start);
            self.start += d;
            self.skip -= d;
            if self.skip > 0 {
                return Next::Nothing;
            }
        }
        if self.start == self.end {
            return Next::Nothing;
        }
        match ws::parse_server_frame(&mut self.buf[self.start..self.end], MAX_MESSAGE_LEN) {
            Ok(Parsed::Frame(f)) => {
                let at = self.start;
                self.start += f.len();
                Next::Frame(f.kind, f.fin, at + f.header_len..at + f.len())
            }
            Ok(Parsed::Need(total)) => {
                if total > self.buf.len() {
                    self.skip = total - (self.end - self.start);
                    self.start = self.end;
                    self.skipped += 1;
                }
                Next::Nothing
            }
            Err(e) => Next::Broken(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(tx: &TxBuf) -> Vec<(FrameKind, Vec<u8>)> {
        // Unmask as a server would.
        let mut bytes = tx.pending().to_vec();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let Ok(Parsed::Frame(f)) = ws::parse_frame(&mut bytes[pos..], 1 << 20) else {
                panic!("a whole client frame at {pos}")
            };
            out.push((f.kind, bytes[pos + f.header_len..pos + f.len()].to_vec()));
            pos += f.len();
        }
        out
    }

    #[test]
    fn in_place_frames_of_every_header_size() {
        let mut tx = TxBuf::new(8192);
        for n in [0usize, 5, 125, 126, 300, 2000, 7] {
            let buf = tx.reserve(n, usize::MAX).unwrap();
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = i as u8;
            }
            tx.commit(FrameKind::Binary, n, [1, 2, 3, 4]);
        }
        let got = frames(&tx);
        let sizes: Vec<usize> = got.iter().map(|f| f.1.len()).collect();
        assert_eq!(sizes, [0, 5, 125, 126, 300, 2000, 7]);
        for (_, p) in got {
            assert!(p.iter().enumerate().all(|(i, b)| *b == i as u8));
        }
    }

    #[test]
    fn written_bytes_leave_and_room_is_made() {
        let mut tx = TxBuf::new(4096);
        assert!(tx.push_frame(FrameKind::Binary, &[7u8; 2000], [9, 9, 9, 9]));
        assert!(tx.push_frame(FrameKind::Binary, &[8u8; 1500], [9, 9, 9, 9]));
        assert!(!tx.push_frame(FrameKind::Binary, &[1u8; 1000], [9, 9, 9, 9]));
        tx.consume(2008);
        assert!(tx.push_frame(FrameKind::Pong, b"hi", [9, 9, 9, 9]));
        let got = frames(&tx);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], (FrameKind::Pong, b"hi".to_vec()));
        tx.consume(tx.len());
        assert_eq!(tx.len(), 0);
    }

    #[test]
    fn oversized_frames_are_skipped() {
        let mut rx = RxBuf::new(256);
        // A 1000-byte binary frame, then a 2-byte one.
        let mut stream = vec![0x82, 126, 0x03, 0xe8];
        stream.extend_from_slice(&[5u8; 1000]);
        stream.extend_from_slice(&[0x82, 2, 1, 2]);
        let mut fed = 0;
        let mut got = Vec::new();
        while fed < stream.len() {
            fed += rx.push(&stream[fed..]);
            while let Next::Frame(_, _, r) = rx.next_frame() {
                got.push(rx.buf[r].to_vec());
            }
        }
        assert_eq!(got, [vec![1, 2]]);
        assert_eq!(rx.skipped, 1);
    }
}
