//! The audio replay window. The client session keeps a copy of every audio message
//! it sends until the hub acknowledges it (`ack { kind: audio, seq }` acknowledges
//! every chunk up to `seq`); after a reconnect it sends the unacknowledged ones
//! again, readdressed to the new session's room handle and member id, and the hub
//! drops the ones it had already relayed as duplicates. The window is bounded
//! twice: by a number of slots, fixed at construction and allocated once, and by
//! age, since audio older than the window is no longer worth replaying.
//!
//! A message that falls out unacknowledged is not lost yet: it was sent on a
//! connection that is still open, and the hub's acknowledgement may simply not
//! have come back (after a reconnect the engine sends the audio that waited,
//! seconds of it at once, faster than acknowledgements return). Its sequence
//! number is kept, and it counts as lost only if the connection is lost before
//! the hub acknowledges it ([`AudioReplay::connection_lost`]): audio a
//! reconnect cannot bring back.
//!
//! The slots are a `ringbuf` ring of fixed-size items (one message each, in send
//! order): `try_push` keeps a message, `skip` forgets the oldest, `iter_mut`
//! readdresses in place. The ring's storage is reserved, not touched, at
//! construction, so its pages become resident only as the window first fills.

use std::collections::VecDeque;

use ringbuf::LocalRb;
use ringbuf::storage::Heap;
use ringbuf::traits::{Consumer, Observer, Producer};

use crate::proto::{CRC_LEN, Error, Packet, seal};

/// Bytes per slot: the largest message the window keeps. Every audio message fits
/// (the largest is well under 2 KiB, and a hub relays no media message over 2044
/// bytes).
pub const MAX_SLOT: usize = 2048;

/// One kept message: what the window knows of it, and its bytes.
struct Kept {
    seq: u32,
    len: u16,
    ts_us: u64,
    bytes: [u8; MAX_SLOT],
}

impl Kept {
    fn message(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Whether sequence number `a` is at or before `b` in serial-number order
/// (RFC 1982 style: correct across the wrap from `u32::MAX` to 0, for numbers
/// less than 2^31 apart).
const fn serial_le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// The sent, not yet acknowledged audio messages of one stream, oldest first, in a
/// ring of `capacity` fixed-size slots allocated at construction: [`push`] copies
/// a message in, [`ack`] forgets what the hub acknowledged, and after a reconnect
/// [`unacked_mut_for_resend`] hands back the rest, readdressed. Nothing allocates
/// after [`new`].
///
/// Sequence numbers are pushed in stream order (each after the last, in serial
/// order, as the audio stream numbers its chunks); an acknowledgement then
/// forgets a prefix of the window.
///
/// [`push`]: AudioReplay::push
/// [`ack`]: AudioReplay::ack
/// [`unacked_mut_for_resend`]: AudioReplay::unacked_mut_for_resend
/// [`new`]: AudioReplay::new
///
/// ```
/// use poselink::client::AudioReplay;
/// use poselink::proto::{encode_audio, AudioChunk, Compressor, Packet, DEFAULT_COMPRESS_THRESHOLD};
///
/// let mut replay = AudioReplay::new(4, 2_000_000);
/// let mut compressor = Compressor::new(DEFAULT_COMPRESS_THRESHOLD);
/// let mut wire = [0u8; 2048];
/// for seq in 1..=3u32 {
///     let mut chunk = AudioChunk::silence(48_000, 1, 960);
///     chunk.seq = seq;
///     chunk.capture_ts_us = seq as u64 * 20_000;
///     let n = encode_audio(&chunk, 7, 3, &mut compressor, &mut wire).unwrap();
///     // ... send wire[..n] ...
///     assert_eq!(replay.push(seq, chunk.capture_ts_us, &wire[..n]), 0);
/// }
/// replay.ack(1); // the hub relayed chunk 1
/// assert_eq!(replay.unacked().map(|(seq, _)| seq).collect::<Vec<_>>(), [2, 3]);
///
/// // Reconnected: the new session is in room 9 as member 12.
/// let mut resent = Vec::new();
/// replay.unacked_mut_for_resend(9, 12, |message| {
///     let header = Packet::new_checked(message).unwrap().header();
///     resent.push((header.seq, header.room, header.sender));
/// });
/// assert_eq!(resent, [(2, 9, 12), (3, 9, 12)]);
/// ```
pub struct AudioReplay {
    ring: LocalRb<Heap<Kept>>,
    window_us: u64,
    evicted: u64,
    acked_through: Option<u32>,
    /// Sequence numbers of messages that left the window unacknowledged on the
    /// open connection, oldest first (capacity: the window's, allocated once).
    at_risk: VecDeque<u32>,
    /// After a reconnect, the first kept message not yet sent again (the
    /// transmit buffer was full), if any.
    resend_next: Option<u32>,
}

impl core::fmt::Debug for AudioReplay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AudioReplay")
            .field("len", &self.len())
            .field("capacity", &self.ring.capacity())
            .field("window_us", &self.window_us)
            .field("evicted", &self.evicted)
            .field("acked_through", &self.acked_through)
            .field("at_risk", &self.at_risk.len())
            .finish()
    }
}

impl AudioReplay {
    /// A window of `capacity` messages of at most `MAX_SLOT` (2048) bytes each, kept
    /// for at most `window_us` microseconds of capture time. The slots are
    /// allocated here, once (reserved, not touched: pages become resident as the
    /// window first fills).
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    pub fn new(capacity: usize, window_us: u64) -> Self {
        assert!(
            capacity > 0,
            "an audio replay window needs at least one slot"
        );
        AudioReplay {
            ring: LocalRb::new(capacity),
            window_us,
            evicted: 0,
            acked_through: None,
            at_risk: VecDeque::with_capacity(capacity),
            resend_next: None,
        }
    }

    /// Keeps a copy of `message`, the encoded audio message of chunk `seq`
    /// captured at `ts_us`, until it is acknowledged. First lets go, oldest
    /// first, of the messages captured more than the window before `ts_us`, then
    /// of the oldest one if every slot is taken: those are remembered as at
    /// risk (lost if the connection is lost before their acknowledgement). Returns
    /// how many messages are lost for certain now (counted in
    /// [`evicted`](Self::evicted) too): one longer than `MAX_SLOT` (no audio
    /// message is), which cannot be kept, and, should more than a window's
    /// worth be at risk at once, the oldest of those.
    pub fn push(&mut self, seq: u32, ts_us: u64, message: &[u8]) -> usize {
        let mut lost = 0;
        while let Some(k) = self
            .ring
            .first()
            .filter(|k| ts_us.saturating_sub(k.ts_us) > self.window_us)
        {
            let old = k.seq;
            self.ring.skip(1);
            lost += self.risk(old);
        }
        if message.len() > MAX_SLOT {
            lost += 1;
        } else {
            if let Some(old) = self.ring.first().map(|k| k.seq)
                && self.ring.is_full()
            {
                self.ring.skip(1);
                lost += self.risk(old);
            }
            let mut kept = Kept {
                seq,
                len: message.len() as u16,
                ts_us,
                bytes: [0; MAX_SLOT],
            };
            kept.bytes[..message.len()].copy_from_slice(message);
            // Room was made above: the push cannot fail.
            let _ = self.ring.try_push(kept);
        }
        self.evicted += lost as u64;
        lost
    }

    /// Remembers that `seq` left the window unacknowledged; 1 if that pushed
    /// the oldest such out of the (full) list, which then counts as lost.
    fn risk(&mut self, seq: u32) -> usize {
        let full = self.at_risk.len() == self.at_risk.capacity();
        if full {
            self.at_risk.pop_front();
        }
        self.at_risk.push_back(seq);
        full as usize
    }

    /// The connection the kept messages were sent on is gone: the messages
    /// that had left the window unacknowledged cannot be sent again. Returns
    /// how many (counted in [`evicted`](Self::evicted)); the rest are sent again
    /// by [`unacked_mut_for_resend`](Self::unacked_mut_for_resend).
    pub fn connection_lost(&mut self) -> u32 {
        let n = self.at_risk.len();
        self.at_risk.clear();
        self.evicted += n as u64;
        n as u32
    }

    /// Messages that left the window unacknowledged on the open connection.
    pub fn at_risk(&self) -> usize {
        self.at_risk.len()
    }

    /// The hub acknowledged every chunk up to and including `seq`: forgets them
    /// (serial-number order, so across the wrap from `u32::MAX` to 0). An
    /// acknowledgement older than one already received changes nothing.
    pub fn ack(&mut self, seq: u32) {
        match self.acked_through {
            Some(through) if serial_le(seq, through) => {}
            _ => self.acked_through = Some(seq),
        }
        while self.ring.first().is_some_and(|k| serial_le(k.seq, seq)) {
            self.ring.skip(1);
        }
        while self.at_risk.front().is_some_and(|&k| serial_le(k, seq)) {
            self.at_risk.pop_front();
        }
    }

    /// Forgets every kept message and the last acknowledgement, for a new stream
    /// (a room slot used again); [`evicted`](Self::evicted) keeps counting.
    pub fn clear(&mut self) {
        self.ring.clear();
        self.acked_through = None;
        self.at_risk.clear();
        self.resend_next = None;
    }

    /// Messages kept (sent, not acknowledged, not evicted).
    pub fn len(&self) -> usize {
        self.ring.occupied_len()
    }

    /// Whether no message is kept.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// The kept messages, oldest first, with their sequence numbers.
    pub fn unacked(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.ring.iter().map(|k| (k.seq, k.message()))
    }

    /// After a reconnect: rewrites each kept message, oldest first, for the new
    /// session — room handle `room`, member id `sender`, and the CRC (see
    /// [`readdress`]) — and passes it to `send`. The messages stay kept until
    /// acknowledged, with their new addresses. A kept message that does not pass
    /// [`Packet::new_checked`] (which [`push`](Self::push) does not check) is
    /// skipped.
    pub fn unacked_mut_for_resend(&mut self, room: u16, sender: u16, mut send: impl FnMut(&[u8])) {
        for k in self.ring.iter_mut() {
            let len = k.len as usize;
            let message = &mut k.bytes[..len];
            if readdress(message, room, sender).is_ok() {
                send(message);
            }
        }
    }

    /// After a reconnect: every kept message is to be sent again, oldest first,
    /// by [`resend`](Self::resend).
    pub fn begin_resend(&mut self) {
        self.resend_next = self.ring.first().map(|k| k.seq);
    }

    /// Whether kept messages wait to be sent again (a [`resend`](Self::resend)
    /// stopped at a full transmit buffer): new audio must wait behind them.
    pub fn resend_pending(&self) -> bool {
        self.resend_next.is_some()
    }

    /// Sends again, oldest first, the kept messages not yet sent again since
    /// [`begin_resend`](Self::begin_resend), readdressed to room handle `room`
    /// and member id `sender` (see [`readdress`]): `send` returns false when
    /// it has no room for one, and the rest wait for the next call. Returns how
    /// many were sent. A message that does not pass [`Packet::new_checked`]
    /// is skipped.
    pub fn resend(&mut self, room: u16, sender: u16, mut send: impl FnMut(&[u8]) -> bool) -> u32 {
        let Some(from) = self.resend_next else {
            return 0;
        };
        let mut sent = 0;
        for k in self.ring.iter_mut() {
            if !serial_le(from, k.seq) {
                continue; // sent again already
            }
            let len = k.len as usize;
            let message = &mut k.bytes[..len];
            if readdress(message, room, sender).is_err() {
                continue;
            }
            if !send(message) {
                self.resend_next = Some(k.seq);
                return sent;
            }
            sent += 1;
        }
        self.resend_next = None;
        sent
    }

    /// Messages lost since construction: evicted unacknowledged (by age, for
    /// room) and then not acknowledged before their connection was lost, or too
    /// long to keep: audio a reconnect could not replay.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The highest sequence number acknowledged so far (serial-number order), or
    /// `None` before the first acknowledgement.
    pub fn acked_through(&self) -> Option<u32> {
        self.acked_through
    }
}

/// Rewrites a sealed message's room handle (bytes 3..5) and sender id (bytes 5..7)
/// in place and seals it again (a new CRC-32 over everything before the last four
/// bytes). The message is checked with [`Packet::new_checked`] first: one that
/// does not pass is left as it is and its error returned, so a corrupt message is
/// never given a valid CRC.
///
/// ```
/// use poselink::client::readdress;
/// use poselink::proto::{encode_control, Header, Kind, Message, Packet, Ping};
///
/// let mut buf = [0u8; 64];
/// let ping = Message::Ping(Ping { t0_us: 5 });
/// let n = encode_control(&Header::new(Kind::Ping, 7, 3, 1, 5), &ping, &mut buf).unwrap();
/// readdress(&mut buf[..n], 9, 12).unwrap();
/// let header = Packet::new_checked(&buf[..n]).unwrap().header();
/// assert_eq!((header.room, header.sender), (9, 12));
/// ```
pub fn readdress(message: &mut [u8], room: u16, sender: u16) -> Result<(), Error> {
    Packet::new_checked(&*message)?;
    message[3..5].copy_from_slice(&room.to_le_bytes());
    message[5..7].copy_from_slice(&sender.to_le_bytes());
    let body = message.len() - CRC_LEN;
    seal(message, body)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{
        AudioChunk, Compressor, DEFAULT_COMPRESS_THRESHOLD, Flags, Kind, MAX_PLAIN_PAYLOAD,
        Message, encode_audio,
    };

    /// An encoded audio message: chunk `seq`, captured at `ts_us`, `samples` mono
    /// samples of a sawtooth (which LZ4 compresses), in `room` from `sender`.
    fn audio(seq: u32, ts_us: u64, samples: u16, room: u16, sender: u16) -> Vec<u8> {
        let mut chunk = AudioChunk::silence(48_000, 1, samples);
        chunk.seq = seq;
        chunk.capture_ts_us = ts_us;
        for (i, s) in chunk.samples.iter_mut().enumerate() {
            *s = (i % 16) as i16 * 1000 + (seq % 100) as i16;
        }
        let mut out = vec![0u8; MAX_SLOT];
        let mut compressor = Compressor::new(DEFAULT_COMPRESS_THRESHOLD);
        let n = encode_audio(&chunk, room, sender, &mut compressor, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn seqs(replay: &AudioReplay) -> Vec<u32> {
        replay.unacked().map(|(seq, _)| seq).collect()
    }

    #[test]
    fn push_and_ack() {
        let mut r = AudioReplay::new(8, 10_000_000);
        assert!(r.is_empty());
        assert_eq!(r.acked_through(), None);
        let messages: Vec<Vec<u8>> = (1..=5)
            .map(|seq| audio(seq, seq as u64 * 20_000, 960, 7, 3))
            .collect();
        for (seq, m) in (1..=5).zip(&messages) {
            assert_eq!(r.push(seq, seq as u64 * 20_000, m), 0);
        }
        assert_eq!((r.len(), seqs(&r)), (5, vec![1, 2, 3, 4, 5]));
        for ((seq, bytes), m) in r.unacked().zip(&messages) {
            assert_eq!(bytes, &m[..], "{seq}");
        }

        r.ack(3);
        assert_eq!((r.len(), seqs(&r)), (2, vec![4, 5]));
        assert_eq!(r.acked_through(), Some(3));
        assert_eq!(r.unacked().next().unwrap().1, &messages[3][..]);
        // A late, older acknowledgement changes nothing.
        r.ack(2);
        assert_eq!((seqs(&r), r.acked_through()), (vec![4, 5], Some(3)));
        // Acknowledging past the newest forgets everything.
        r.ack(9);
        assert!(r.is_empty());
        assert_eq!(r.acked_through(), Some(9));
        assert_eq!(r.evicted(), 0, "acknowledged messages are not lost");
        assert_eq!(r.push(10, 200_000, &messages[0]), 0);
        assert_eq!(seqs(&r), [10]);
    }

    #[test]
    fn evicts_the_oldest_when_full() {
        let m = audio(0, 0, 960, 1, 1);
        let mut r = AudioReplay::new(3, u64::MAX);
        for seq in 0..3 {
            assert_eq!(r.push(seq, seq as u64, &m), 0);
        }
        // Out of the window, not lost: the connection is still open.
        assert_eq!(r.push(3, 3, &m), 0);
        assert_eq!((seqs(&r), r.at_risk()), (vec![1, 2, 3], 1));
        assert_eq!(r.push(4, 4, &m), 0);
        assert_eq!((seqs(&r), r.at_risk(), r.evicted()), (vec![2, 3, 4], 2, 0));
        // The ring wraps around its slots and keeps the order; an
        // acknowledgement clears what it covers, at risk or kept.
        r.ack(2);
        assert_eq!(r.at_risk(), 0);
        assert_eq!(r.push(5, 5, &m), 0);
        assert_eq!(seqs(&r), [3, 4, 5]);
        assert_eq!(r.push(6, 6, &m), 0);
        assert_eq!(r.push(7, 7, &m), 0);
        assert_eq!((seqs(&r), r.at_risk()), (vec![5, 6, 7], 2));
        // The connection is lost before chunks 3 and 4 were acknowledged: they
        // cannot be replayed. Chunk 5 on can.
        assert_eq!(r.connection_lost(), 2);
        assert_eq!((r.evicted(), r.at_risk(), seqs(&r)), (2, 0, vec![5, 6, 7]));
        assert_eq!(r.connection_lost(), 0, "counted once");
    }

    #[test]
    fn a_resend_stopped_by_a_full_buffer_goes_on_later_in_order() {
        let mut r = AudioReplay::new(8, u64::MAX);
        for seq in 1..=5 {
            r.push(seq, seq as u64, &audio(seq, seq as u64, 100, 7, 3));
        }
        assert!(!r.resend_pending());
        r.begin_resend();
        let mut sent = Vec::new();
        let mut room_for = 2;
        let n = r.resend(9, 12, |m| {
            if room_for == 0 {
                return false;
            }
            room_for -= 1;
            sent.push(parse(m).0.seq);
            true
        });
        assert_eq!((n, r.resend_pending()), (2, true));
        r.ack(1); // the hub relayed the first
        let n = r.resend(9, 12, |m| {
            sent.push(parse(m).0.seq);
            true
        });
        assert_eq!((n, r.resend_pending()), (3, false));
        assert_eq!(sent, [1, 2, 3, 4, 5], "each once, in order");
        assert_eq!(r.resend(9, 12, |_| true), 0);
    }

    #[test]
    fn more_at_risk_than_a_window_counts_the_oldest_as_lost() {
        let m = audio(0, 0, 100, 1, 1);
        let mut r = AudioReplay::new(2, u64::MAX);
        let lost: usize = (0..6).map(|seq| r.push(seq, seq as u64, &m)).sum();
        // 0..=3 left the window; the list of those at risk holds 2.
        assert_eq!((lost, r.at_risk(), r.evicted()), (2, 2, 2));
        r.ack(5);
        assert_eq!((r.at_risk(), r.connection_lost(), r.evicted()), (0, 0, 2));
    }

    #[test]
    fn evicts_what_is_older_than_the_window() {
        let m = audio(0, 0, 100, 1, 1);
        let mut r = AudioReplay::new(16, 100_000);
        for seq in 0..5u32 {
            assert_eq!(r.push(seq, seq as u64 * 20_000, &m), 0);
        }
        // At 130 ms, chunks 0 (0 ms) and 1 (20 ms) are more than 100 ms old;
        // chunk 2 (40 ms) is 90 ms old.
        assert_eq!(r.push(5, 130_000, &m), 0);
        assert_eq!((seqs(&r), r.at_risk()), (vec![2, 3, 4, 5], 2));
        // Exactly the window's age is still inside it.
        assert_eq!(r.push(6, 140_000, &m), 0);
        assert_eq!(r.at_risk(), 2);
        assert_eq!(r.push(7, 140_001, &m), 0);
        assert_eq!((seqs(&r), r.at_risk()), (vec![3, 4, 5, 6, 7], 3));
        // A long gap empties the window; a timestamp that goes backwards evicts
        // nothing.
        assert_eq!(r.push(8, 10_000_000, &m), 0);
        assert_eq!(r.push(9, 5_000, &m), 0);
        assert_eq!((seqs(&r), r.at_risk()), (vec![8, 9], 8));
        // The hub acknowledges through 4: those were relayed, not lost.
        r.ack(4);
        assert_eq!((seqs(&r), r.at_risk()), (vec![8, 9], 3));
        assert_eq!((r.connection_lost(), r.evicted()), (3, 3));
        // Acknowledged chunks are not lost when their time passes.
        r.ack(9);
        assert_eq!(r.push(10, 20_000_000, &m), 0);
        assert_eq!((r.at_risk(), r.evicted()), (0, 3));
    }

    #[test]
    fn a_message_too_long_to_keep_counts_as_lost() {
        let mut r = AudioReplay::new(2, u64::MAX);
        assert_eq!(r.push(1, 0, &[0u8; MAX_SLOT]), 0);
        assert_eq!(r.push(2, 0, &[0u8; MAX_SLOT + 1]), 1);
        assert_eq!((seqs(&r), r.evicted()), (vec![1], 1));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let m = audio(0, 0, 10, 1, 1);
        let mut r = AudioReplay::new(8, u64::MAX);
        let first = u32::MAX - 2;
        let all: Vec<u32> = (0..6).map(|i| first.wrapping_add(i)).collect();
        assert_eq!(all, [u32::MAX - 2, u32::MAX - 1, u32::MAX, 0, 1, 2]);
        for &seq in &all {
            r.push(seq, 0, &m);
        }
        r.ack(u32::MAX - 1);
        assert_eq!(seqs(&r), [u32::MAX, 0, 1, 2]);
        r.ack(u32::MAX);
        assert_eq!(seqs(&r), [0, 1, 2]);
        r.ack(0);
        assert_eq!(seqs(&r), [1, 2]);
        assert_eq!(r.acked_through(), Some(0));
        // u32::MAX is before 0: an older acknowledgement, nothing changes.
        r.ack(u32::MAX);
        assert_eq!((seqs(&r), r.acked_through()), (vec![1, 2], Some(0)));
        r.ack(1);
        assert_eq!((seqs(&r), r.acked_through()), (vec![2], Some(1)));
        assert!(serial_le(u32::MAX, 0) && !serial_le(0, u32::MAX));
        assert!(serial_le(5, 5) && serial_le(4, 5) && !serial_le(6, 5));
    }

    /// The header and the plain payload of a message, checked.
    fn parse(message: &[u8]) -> (crate::proto::Header, Vec<u8>) {
        let packet = Packet::new_checked(message).unwrap();
        let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
        let payload = crate::proto::plain_payload(&packet, &mut scratch)
            .unwrap()
            .to_vec();
        let mut scratch2 = vec![0u8; MAX_PLAIN_PAYLOAD];
        assert!(matches!(
            Message::parse(&packet, &mut scratch2).unwrap(),
            Message::Audio(_)
        ));
        (packet.header(), payload)
    }

    #[test]
    fn readdress_keeps_the_message_valid() {
        // Uncompressed (short) and LZ4-compressed (long) audio.
        for (samples, lz4) in [(4, false), (960, true)] {
            let original = audio(50, 1_010_000, samples, 7, 3);
            let (before, payload) = parse(&original);
            assert_eq!(before.flags.contains(Flags::LZ4), lz4);
            let mut m = original.clone();
            readdress(&mut m, 0x1234, 0xbeef).unwrap();
            let (after, same_payload) = parse(&m);
            assert_eq!((after.room, after.sender), (0x1234, 0xbeef));
            assert_eq!(
                (after.kind, after.flags, after.seq, after.ts_us),
                (Kind::Audio, before.flags, 50, 1_010_000)
            );
            assert_eq!(same_payload, payload);
            assert_eq!(m.len(), original.len());
            assert_eq!(
                m[7..m.len() - CRC_LEN],
                original[7..original.len() - CRC_LEN]
            );
            // Back to the old address: the original bytes, CRC included.
            readdress(&mut m, 7, 3).unwrap();
            assert_eq!(m, original);
        }
    }

    #[test]
    fn readdress_refuses_a_broken_message() {
        let mut m = audio(1, 0, 4, 7, 3);
        m[10] ^= 0x40;
        let broken = m.clone();
        assert!(matches!(
            readdress(&mut m, 9, 12),
            Err(Error::BadChecksum { .. })
        ));
        assert_eq!(m, broken, "left as it was");
        assert!(readdress(&mut [0u8; 3], 9, 12).is_err());
        assert!(readdress(&mut [], 9, 12).is_err());
    }

    #[test]
    fn resend_readdresses_the_unacknowledged_oldest_first() {
        let mut r = AudioReplay::new(4, u64::MAX);
        let originals: Vec<Vec<u8>> = (1..=6)
            .map(|seq| audio(seq, seq as u64 * 20_000, 960, 7, 3))
            .collect();
        for (seq, m) in (1..=6).zip(&originals) {
            r.push(seq, seq as u64 * 20_000, m);
        }
        assert_eq!((r.at_risk(), r.evicted()), (2, 0));
        r.ack(3);
        assert_eq!(r.at_risk(), 0);
        let mut sent = Vec::new();
        r.unacked_mut_for_resend(9, 12, |m| sent.push(m.to_vec()));
        assert_eq!(sent.len(), 3);
        for (m, original) in sent.iter().zip(&originals[3..]) {
            let (h, payload) = parse(m);
            let (h0, payload0) = parse(original);
            assert_eq!(
                (h.room, h.sender, h.seq, h.ts_us),
                (9, 12, h0.seq, h0.ts_us)
            );
            assert_eq!(payload, payload0);
        }
        // Kept, with the new address, until acknowledged.
        let kept: Vec<Vec<u8>> = r.unacked().map(|(_, m)| m.to_vec()).collect();
        assert_eq!(kept, sent);
        r.ack(5);
        let mut again = Vec::new();
        r.unacked_mut_for_resend(10, 13, |m| again.push(parse(m).0));
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].seq, again[0].room, again[0].sender), (6, 10, 13));
    }

    #[test]
    fn resend_skips_what_does_not_check() {
        let mut r = AudioReplay::new(4, u64::MAX);
        r.push(1, 0, b"not a message");
        r.push(2, 0, &audio(2, 0, 4, 7, 3));
        let mut sent = Vec::new();
        r.unacked_mut_for_resend(9, 12, |m| sent.push(parse(m).0.seq));
        assert_eq!(sent, [2]);
        assert_eq!(seqs(&r), [1, 2], "still kept until acknowledged");
    }

    #[test]
    fn clear_forgets_everything() {
        let m = audio(0, 0, 10, 1, 1);
        let mut r = AudioReplay::new(8, u64::MAX);
        // A window across the middle of the sequence space, where no single
        // acknowledgement forgets all of it.
        for seq in (1u32 << 31) - 2..(1 << 31) + 3 {
            r.push(seq, 0, &m);
        }
        r.ack(3);
        assert_eq!(r.acked_through(), Some(3));
        r.push(3, 0, &m);
        r.push(4, 0, &m);
        assert_eq!((r.len(), r.evicted()), (7, 0));
        r.clear();
        assert!(r.is_empty());
        assert_eq!((r.acked_through(), r.unacked().count()), (None, 0));
        assert_eq!(r.push(100, 0, &m), 0);
        assert_eq!(seqs(&r), [100]);
    }

    #[test]
    #[should_panic(expected = "at least one slot")]
    fn no_slots_is_refused() {
        let _ = AudioReplay::new(0, 1);
    }
}
