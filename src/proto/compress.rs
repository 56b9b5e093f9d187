//! LZ4 over payloads above a size threshold, with lz4_flex's reusable
//! `CompressTable` so that compressing allocates nothing. A payload is only sent
//! compressed when that makes it smaller; the flag in the header says which. The
//! threshold exists because compression must earn its place: a pose delta (about
//! 80 bytes of entropy-coded residuals) never shrinks, so it is never tried; and
//! because an attempt on an incompressible payload (a raw pose frame, live PCM)
//! costs more than encoding it (`benches/codec.rs`), a compressor that keeps
//! failing backs off exponentially — after [`BACKOFF_AFTER`] misses in a row it
//! passes over 2, 4, 8 … up to [`MAX_BACKOFF`] payloads between attempts — until an
//! attempt succeeds again (silence compresses; speech does not).

use super::wire::{Flags, Packet};
#[cfg(feature = "lz4")]
use super::wire::{put_varint, varint_len};
use super::{Error, wire::Reader};

/// Default payload size at and above which compression is tried, in bytes.
pub const DEFAULT_COMPRESS_THRESHOLD: usize = 512;

/// Failed attempts in a row before backing off.
pub const BACKOFF_AFTER: u32 = 4;
/// The most payloads passed over between two attempts when backed off.
pub const MAX_BACKOFF: u32 = 1024;

/// The largest payload that is tried for compression; larger ones go as they are.
pub const MAX_COMPRESS_INPUT: usize = 8 * 1024;

/// Compresses payloads in place inside an output buffer, reusing one hash table and
/// one scratch buffer for ever. Without the `lz4` feature it never compresses.
///
/// ```
/// use poselink::proto::Compressor;
/// let mut c = Compressor::new(64);
/// let mut buf = [0u8; 600];
/// buf[..512].fill(7); // very compressible
/// let (len, compressed) = c.compress_in_place(&mut buf, 512);
/// assert!(compressed == cfg!(feature = "lz4"));
/// assert!(len <= 512);
/// ```
pub struct Compressor {
    threshold: usize,
    /// Failed attempts in a row, and payloads passed over since backing off.
    misses: u32,
    skipped: u32,
    #[cfg(feature = "lz4")]
    table: lz4_flex::block::CompressTable,
    #[cfg(feature = "lz4")]
    scratch: [u8; MAX_COMPRESS_INPUT + MAX_COMPRESS_INPUT / 255 + 32],
}

impl core::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Compressor")
            .field("threshold", &self.threshold)
            .finish()
    }
}

impl Compressor {
    /// A compressor that tries payloads of `threshold` bytes and more
    /// (`usize::MAX` turns compression off).
    pub fn new(threshold: usize) -> Self {
        Compressor {
            threshold,
            misses: 0,
            skipped: 0,
            #[cfg(feature = "lz4")]
            table: lz4_flex::block::CompressTable::small(),
            #[cfg(feature = "lz4")]
            scratch: [0; MAX_COMPRESS_INPUT + MAX_COMPRESS_INPUT / 255 + 32],
        }
    }

    /// The size threshold in bytes.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Tries to compress the `len` payload bytes at the start of `buf`. If the
    /// result (varint length prefix + LZ4 block) is smaller, it replaces the payload
    /// and `(new_len, true)` is returned; otherwise `(len, false)` and `buf` is as it was.
    pub fn compress_in_place(&mut self, buf: &mut [u8], len: usize) -> (usize, bool) {
        if len < self.threshold || len > MAX_COMPRESS_INPUT {
            return (len, false);
        }
        if self.misses >= BACKOFF_AFTER {
            // Pass over 2^(misses − BACKOFF_AFTER + 1) payloads, at most MAX_BACKOFF.
            let period = 1u32
                .checked_shl(self.misses - BACKOFF_AFTER + 1)
                .unwrap_or(MAX_BACKOFF)
                .min(MAX_BACKOFF);
            if self.skipped < period {
                self.skipped += 1;
                return (len, false);
            }
            self.skipped = 0;
        }
        #[cfg(feature = "lz4")]
        {
            let n = lz4_flex::block::compress_into_with_table(
                &buf[..len],
                &mut self.scratch,
                &mut self.table,
            )
            .unwrap_or(usize::MAX);
            let total = varint_len(len as u64).saturating_add(n);
            if total >= len || total > buf.len() {
                self.misses = self.misses.saturating_add(1);
                return (len, false);
            }
            // An attempt costs about half a microsecond on a raw pose frame
            // (lz4_flex clears its 8 KiB table each time; `benches/codec.rs`
            // showed raw encoding fall from 620 to 90 ns once attempts stopped):
            // one that saves less than an eighth still counts as a miss for the
            // back-off, though its smaller result is sent.
            if (len - total) * 8 < len {
                self.misses = self.misses.saturating_add(1);
            } else {
                self.misses = 0;
            }
            let p = put_varint(buf, len as u64);
            buf[p..p + n].copy_from_slice(&self.scratch[..n]);
            (total, true)
        }
        #[cfg(not(feature = "lz4"))]
        {
            let _ = buf;
            (len, false)
        }
    }

    /// Compresses the payload at `out[start..start + len]` of a message being
    /// built, and sets the LZ4 flag in the header byte if it did; returns the new
    /// payload length.
    pub(crate) fn finish_payload(&mut self, out: &mut [u8], start: usize, len: usize) -> usize {
        let (n, compressed) = self.compress_in_place(&mut out[start..], len);
        if compressed {
            out[2] |= Flags::LZ4.0;
        }
        n
    }
}

/// Undoes [`Compressor::compress_in_place`]: reads the varint length and
/// decompresses the LZ4 block into `scratch`; returns the plain payload.
pub fn decompress<'s>(payload: &[u8], scratch: &'s mut [u8]) -> Result<&'s [u8], Error> {
    let mut r = Reader::new(payload);
    let raw_len = r.varint_u64()? as usize;
    if raw_len > scratch.len() {
        return Err(Error::Oversize {
            len: raw_len,
            max: scratch.len(),
        });
    }
    #[cfg(feature = "lz4")]
    {
        let n =
            lz4_flex::block::decompress_into(r.rest(), &mut scratch[..raw_len]).map_err(|_| {
                Error::Malformed {
                    what: "the LZ4 block",
                }
            })?;
        if n != raw_len {
            return Err(Error::Malformed {
                what: "the LZ4 block (length differs from its prefix)",
            });
        }
        Ok(&scratch[..n])
    }
    #[cfg(not(feature = "lz4"))]
    {
        let _ = r;
        Err(Error::CompressionUnsupported)
    }
}

#[cfg(all(test, feature = "lz4"))]
mod tests {
    use super::*;

    /// 64 incompressible bytes (xorshift32 from `seed`).
    fn noise(seed: u32) -> [u8; 64] {
        let mut out = [0u8; 64];
        let mut x = seed;
        for b in out.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        out
    }

    #[test]
    fn compresses_only_when_smaller_and_round_trips() {
        let mut c = Compressor::new(16);
        let mut buf = [0u8; 256];
        for (i, b) in buf.iter_mut().enumerate().take(200) {
            *b = (i % 4) as u8;
        }
        let original = buf;
        let (n, yes) = c.compress_in_place(&mut buf, 200);
        assert!(yes && n < 200);
        let mut scratch = [0u8; 256];
        assert_eq!(
            decompress(&buf[..n], &mut scratch).unwrap(),
            &original[..200]
        );

        // Incompressible bytes stay as they are.
        let mut noise = noise(0x1234_5678);
        let before = noise;
        assert_eq!(c.compress_in_place(&mut noise, 64), (64, false));
        assert_eq!(noise, before);
        // Below the threshold nothing is tried.
        assert_eq!(c.compress_in_place(&mut buf, 15), (15, false));
    }

    #[test]
    fn backs_off_after_failures_and_recovers() {
        let mut c = Compressor::new(16);
        let noise = noise(0x9e37_79b9);
        for _ in 0..BACKOFF_AFTER {
            assert_eq!(c.compress_in_place(&mut noise.clone(), 64), (64, false));
        }
        // Backed off: the next 2 payloads are passed over, the third is tried.
        let mut zeros = [0u8; 64];
        let mut tried_at = None;
        for i in 1..=3 {
            if c.compress_in_place(&mut zeros, 64).1 {
                tried_at = Some(i);
                break;
            }
        }
        assert_eq!(tried_at, Some(3));
        // A success ends the back-off.
        let mut zeros = [0u8; 64];
        assert!(c.compress_in_place(&mut zeros, 64).1);
        // Each further miss doubles the gap, up to MAX_BACKOFF.
        let mut attempts = 0;
        for _ in 0..10_000 {
            let before = c.misses;
            c.compress_in_place(&mut noise.clone(), 64);
            attempts += (c.misses != before) as u32;
        }
        assert!(
            attempts < 30,
            "{attempts} attempts in 10 000 incompressible payloads"
        );
        assert!(attempts > 10_000 / (MAX_BACKOFF + 1));
    }

    #[test]
    fn lying_length_prefix_is_refused() {
        let mut c = Compressor::new(16);
        let mut buf = [9u8; 128];
        let (n, yes) = c.compress_in_place(&mut buf, 100);
        assert!(yes);
        buf[0] = 99; // claims 99 bytes, block holds 100
        let mut scratch = [0u8; 128];
        assert!(decompress(&buf[..n], &mut scratch).is_err());
        let mut small = [0u8; 10];
        buf[0] = 100;
        assert!(matches!(
            decompress(&buf[..n], &mut small),
            Err(Error::Oversize { .. })
        ));
    }
}

/// The payload of `packet` with any compression undone: borrowed from the packet,
/// or decompressed into `scratch` (which must hold [`MAX_COMPRESS_INPUT`] bytes to
/// take any payload a peer may send).
pub fn plain_payload<'s, T: AsRef<[u8]>>(
    packet: &'s Packet<T>,
    scratch: &'s mut [u8],
) -> Result<&'s [u8], Error> {
    if packet.header().flags.contains(Flags::LZ4) {
        decompress(packet.payload(), scratch)
    } else {
        Ok(packet.payload())
    }
}
