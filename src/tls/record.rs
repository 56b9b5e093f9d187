//! The TLS 1.3 record layer of an established connection (RFC 8446 §5.2),
//! sealing and opening records in place in the caller's buffers with `ring`'s
//! AEADs. rustls runs the handshake and owns the key schedule (key updates go
//! through its `KernelConnection`); this file only turns plaintext into records
//! and back, with the traffic secrets rustls hands over.
//!
//! Why not rustls' own record layer: in rustls 0.23 even the unbuffered API
//! allocates a `Vec` for every record, both ways (`take_received_plaintext`
//! appends `bytes.into_vec()`, and `MessageEncrypter::encrypt` returns a record
//! in a fresh `PrefixedPayload`), and the hub's relay and the engine's send
//! path must not allocate (`tests/alloc`). kTLS users replace it the same way;
//! this is that replacement, in user space, with the AEAD primitives of the
//! same `ring` that rustls uses. It is small: nonce = IV XOR sequence number,
//! additional data = the 5-byte record header, the inner content type after
//! the plaintext.

use ring::aead::{
    AES_128_GCM, AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey,
};
use rustls::ConnectionTrafficSecrets;

/// The record header's length.
pub const HEADER_LEN: usize = 5;
/// The AEAD tag's length (all three TLS 1.3 AEADs).
pub const TAG_LEN: usize = 16;
/// The most plaintext one record carries (RFC 8446 §5.1).
pub const MAX_PLAINTEXT: usize = 1 << 14;
/// The longest encrypted record body a peer may send (RFC 8446 §5.2).
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
/// The longest whole record, header included.
pub const MAX_RECORD: usize = HEADER_LEN + MAX_CIPHERTEXT;
/// What sealing adds to the plaintext: header, inner content type, tag.
pub const OVERHEAD: usize = HEADER_LEN + 1 + TAG_LEN;

/// TLS content types (RFC 8446 §5.1).
pub const ALERT: u8 = 21;
/// Handshake messages (after the handshake: tickets, key updates).
pub const HANDSHAKE: u8 = 22;
/// Application data.
pub const APPLICATION_DATA: u8 = 23;

/// Why a record could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The outer type is not application data, or the length is out of range.
    Malformed,
    /// The tag did not verify: corrupted, forged, or out of order.
    BadRecordMac,
    /// The record is all padding (no content type).
    NoContentType,
}

/// One direction's key, IV and sequence number.
pub struct Direction {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl core::fmt::Debug for Direction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the key or the IV.
        f.debug_struct("Direction").field("seq", &self.seq).finish()
    }
}

impl Direction {
    /// The direction for traffic secrets extracted from rustls, starting at
    /// sequence number `seq`.
    pub fn new(seq: u64, secrets: &ConnectionTrafficSecrets) -> Result<Direction, RecordError> {
        let (alg, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&CHACHA20_POLY1305, key, iv),
            // The enum is non-exhaustive; the configs offer only these three.
            #[allow(unreachable_patterns)]
            _ => return Err(RecordError::Malformed),
        };
        let key = UnboundKey::new(alg, key.as_ref()).map_err(|_| RecordError::Malformed)?;
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(iv.as_ref());
        Ok(Direction {
            key: LessSafeKey::new(key),
            iv: nonce,
            seq,
        })
    }

    /// Records sealed or opened so far with this key.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn nonce(&self) -> Nonce {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(n)
    }

    /// Seals the `len` plaintext bytes at `buf[HEADER_LEN..]` into one record
    /// of content type `kind`, in place; `buf` must have room for
    /// [`OVERHEAD`] more. Returns the record's length.
    pub fn seal(&mut self, buf: &mut [u8], len: usize, kind: u8) -> usize {
        debug_assert!(len <= MAX_PLAINTEXT && buf.len() >= len + OVERHEAD);
        let body = len + 1 + TAG_LEN;
        buf[HEADER_LEN + len] = kind;
        let header = [APPLICATION_DATA, 3, 3, (body >> 8) as u8, body as u8];
        buf[..HEADER_LEN].copy_from_slice(&header);
        let nonce = self.nonce();
        let (plain, rest) = buf[HEADER_LEN..].split_at_mut(len + 1);
        // Sealing fails only for inputs longer than the AEAD allows (GiB).
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), plain)
            .expect("a TLS record is far below the AEAD's length limit");
        rest[..TAG_LEN].copy_from_slice(tag.as_ref());
        self.seq += 1;
        HEADER_LEN + body
    }

    /// Opens the whole record `rec` (header included) in place; returns the
    /// inner content type and the plaintext's length, which starts at
    /// `rec[HEADER_LEN..]`.
    pub fn open(&mut self, rec: &mut [u8]) -> Result<(u8, usize), RecordError> {
        if rec.len() < HEADER_LEN + TAG_LEN + 1 || rec[0] != APPLICATION_DATA {
            return Err(RecordError::Malformed);
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&rec[..HEADER_LEN]);
        let nonce = self.nonce();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(header), &mut rec[HEADER_LEN..])
            .map_err(|_| RecordError::BadRecordMac)?;
        self.seq += 1;
        // Strip the zero padding, then the content type.
        let Some(last) = plain.iter().rposition(|&b| b != 0) else {
            return Err(RecordError::NoContentType);
        };
        Ok((plain[last], last))
    }
}

/// The length of the record whose header starts `buf`, if the header is there.
pub fn record_len(buf: &[u8]) -> Option<usize> {
    (buf.len() >= HEADER_LEN).then(|| HEADER_LEN + u16::from_be_bytes([buf[3], buf[4]]) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::cipher::{AeadKey, Iv};

    fn secrets(n: u8) -> ConnectionTrafficSecrets {
        ConnectionTrafficSecrets::Aes256Gcm {
            key: AeadKey::from([n; 32]),
            iv: Iv::from([n.wrapping_add(1); 12]),
        }
    }

    #[test]
    fn a_sealed_record_opens_with_the_same_secrets_and_sequence() {
        let mut tx = Direction::new(0, &secrets(7)).unwrap();
        let mut rx = Direction::new(0, &secrets(7)).unwrap();
        for round in 0..3u8 {
            let mut buf = [0u8; 64];
            buf[HEADER_LEN..HEADER_LEN + 10].copy_from_slice(&[round; 10]);
            let n = tx.seal(&mut buf, 10, APPLICATION_DATA);
            assert_eq!(n, 10 + OVERHEAD);
            assert_eq!(record_len(&buf), Some(n));
            assert_ne!(&buf[HEADER_LEN..HEADER_LEN + 10], &[round; 10], "encrypted");
            let (kind, len) = rx.open(&mut buf[..n]).unwrap();
            assert_eq!((kind, len), (APPLICATION_DATA, 10));
            assert_eq!(&buf[HEADER_LEN..HEADER_LEN + 10], &[round; 10]);
        }
        assert_eq!((tx.seq(), rx.seq()), (3, 3));
    }

    #[test]
    fn a_flipped_bit_a_replay_or_another_key_is_refused() {
        let mut tx = Direction::new(0, &secrets(1)).unwrap();
        let mut buf = [0u8; 64];
        let n = tx.seal(&mut buf, 20, APPLICATION_DATA);
        let sealed = buf;
        for i in 0..n {
            let mut b = sealed;
            b[i] ^= 0x10;
            let mut rx = Direction::new(0, &secrets(1)).unwrap();
            assert!(rx.open(&mut b[..n]).is_err(), "bit flipped at {i}");
        }
        let mut rx = Direction::new(1, &secrets(1)).unwrap();
        assert_eq!(
            rx.open(&mut { sealed }[..n]),
            Err(RecordError::BadRecordMac)
        );
        let mut rx = Direction::new(0, &secrets(2)).unwrap();
        assert_eq!(
            rx.open(&mut { sealed }[..n]),
            Err(RecordError::BadRecordMac)
        );
        let mut rx = Direction::new(0, &secrets(1)).unwrap();
        assert!(rx.open(&mut { sealed }[..4]).is_err(), "short");
    }
}
