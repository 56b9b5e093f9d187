//! MSB-first bit writing and reading over caller-owned byte slices, with the Rice
//! code the pose deltas use. Hand-written rather than taken from a bit-I/O crate
//! because the pose codec needs exactly this much (a 64-bit accumulator, Rice codes
//! with an escape, strict checking of the trailing padding) in `no_std` with no
//! allocation, and it sits on the hot path: one call per landmark value, about 165
//! per frame, measured by `benches/codec.rs`.

use super::Error;

/// A Rice quotient of this many ones is an escape: the value follows in
/// [`ESCAPE_BITS`] raw bits instead.
pub(crate) const ESCAPE_QUOTIENT: u32 = 20;
/// Raw bits of an escaped value (every zigzagged residual fits: |r| ≤ 6144).
pub(crate) const ESCAPE_BITS: u32 = 15;

pub(crate) struct BitWriter<'a> {
    out: &'a mut [u8],
    pos: usize,
    acc: u64,
    n: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        BitWriter {
            out,
            pos: 0,
            acc: 0,
            n: 0,
        }
    }

    /// Appends the low `bits` bits of `value` (bits ≤ 32).
    #[inline(always)]
    fn put(&mut self, value: u64, bits: u32) -> Result<(), Error> {
        debug_assert!(bits <= 32);
        self.acc = (self.acc << bits) | value;
        self.n += bits;
        if self.n >= 32 {
            self.n -= 32;
            let word = (self.acc >> self.n) as u32;
            let Some(dst) = self.out.get_mut(self.pos..self.pos + 4) else {
                return Err(Error::BufferTooSmall {
                    needed: self.pos + 4,
                });
            };
            dst.copy_from_slice(&word.to_be_bytes());
            self.pos += 4;
        }
        Ok(())
    }

    /// Appends `u` as a Rice code with parameter `k` (≤ 14).
    #[inline(always)]
    pub(crate) fn put_rice(&mut self, u: u32, k: u32) -> Result<(), Error> {
        let q = u >> k;
        if q < ESCAPE_QUOTIENT {
            // q ones, a zero, then the k low bits: at most 20 + 1 + 14 = 35 bits,
            // so it goes in two pieces when long.
            let unary = ((1u64 << q) - 1) << 1;
            if q + 1 + k <= 32 {
                let low = (u as u64) & ((1u64 << k) - 1);
                self.put((unary << k) | low, q + 1 + k)
            } else {
                self.put(unary, q + 1)?;
                self.put((u as u64) & ((1u64 << k) - 1), k)
            }
        } else {
            self.put((1u64 << ESCAPE_QUOTIENT) - 1, ESCAPE_QUOTIENT)?;
            self.put(u as u64, ESCAPE_BITS)
        }
    }

    /// Pads with zero bits to a byte boundary and returns the bytes written.
    pub(crate) fn finish(mut self) -> Result<usize, Error> {
        while self.n > 0 {
            let take = self.n.min(8);
            self.n -= take;
            let byte = ((self.acc >> self.n) << (8 - take)) as u8;
            let Some(dst) = self.out.get_mut(self.pos) else {
                return Err(Error::BufferTooSmall {
                    needed: self.pos + 1,
                });
            };
            *dst = byte;
            self.pos += 1;
        }
        Ok(self.pos)
    }
}

pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Unread bits, left-aligned.
    acc: u64,
    n: u32,
}

const TRUNCATED: Error = Error::Malformed {
    what: "the pose delta bit stream (ends early)",
};

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            pos: 0,
            acc: 0,
            n: 0,
        }
    }

    #[inline(always)]
    fn refill(&mut self) {
        if self.n <= 32 && self.pos + 4 <= self.bytes.len() {
            let w = u32::from_be_bytes([
                self.bytes[self.pos],
                self.bytes[self.pos + 1],
                self.bytes[self.pos + 2],
                self.bytes[self.pos + 3],
            ]);
            self.acc |= (w as u64) << (32 - self.n);
            self.n += 32;
            self.pos += 4;
        }
        while self.n <= 56 && self.pos < self.bytes.len() {
            self.acc |= (self.bytes[self.pos] as u64) << (56 - self.n);
            self.n += 8;
            self.pos += 1;
        }
    }

    #[inline(always)]
    fn take(&mut self, bits: u32) -> Result<u32, Error> {
        if bits == 0 {
            return Ok(0);
        }
        if self.n < bits {
            self.refill();
            if self.n < bits {
                return Err(TRUNCATED);
            }
        }
        let v = (self.acc >> (64 - bits)) as u32;
        self.acc <<= bits;
        self.n -= bits;
        Ok(v)
    }

    /// Reads a Rice code with parameter `k`.
    #[inline(always)]
    pub(crate) fn get_rice(&mut self, k: u32) -> Result<u32, Error> {
        if self.n < ESCAPE_QUOTIENT + 1 + 14 {
            self.refill();
        }
        let ones = (!self.acc).leading_zeros().min(self.n);
        if ones >= ESCAPE_QUOTIENT {
            self.acc <<= ESCAPE_QUOTIENT;
            self.n -= ESCAPE_QUOTIENT;
            return self.take(ESCAPE_BITS);
        }
        if ones == self.n {
            return Err(TRUNCATED);
        }
        // Skip the ones and the terminating zero.
        self.acc <<= ones + 1;
        self.n -= ones + 1;
        let low = self.take(k)?;
        Ok((ones << k) | low)
    }

    /// Checks that only zero padding (less than a byte) is left.
    pub(crate) fn finish(self) -> Result<(), Error> {
        let unread = self.bytes.len() - self.pos;
        if unread != 0 || self.n >= 8 || self.acc != 0 {
            return Err(Error::Malformed {
                what: "the pose delta bit stream (bytes or bits after the last value)",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rice_round_trips_every_size() {
        let mut buf = [0u8; 4096];
        let cases: [(u32, u32); 12] = [
            (0, 0),
            (1, 0),
            (19, 0),
            (20, 0),
            (12288, 0),
            (5, 2),
            (100, 3),
            (12288, 14),
            (32767, 4),
            (7, 14),
            (300, 1),
            (0, 9),
        ];
        let mut w = BitWriter::new(&mut buf);
        for _ in 0..3 {
            for &(u, k) in &cases {
                w.put_rice(u, k).unwrap();
            }
        }
        let n = w.finish().unwrap();
        let mut r = BitReader::new(&buf[..n]);
        for _ in 0..3 {
            for &(u, k) in &cases {
                assert_eq!(r.get_rice(k).unwrap(), u, "u={u} k={k}");
            }
        }
        r.finish().unwrap();
    }

    #[test]
    fn fixture_bits() {
        // 5 with k=1: quotient 2 -> "110", low bit "1"; then 0 with k=0: "0".
        let mut buf = [0u8; 4];
        let mut w = BitWriter::new(&mut buf);
        w.put_rice(5, 1).unwrap();
        w.put_rice(0, 0).unwrap();
        let n = w.finish().unwrap();
        assert_eq!(&buf[..n], &[0b1101_0000]);
    }

    #[test]
    fn short_output_and_input_are_errors() {
        let mut buf = [0u8; 2];
        let mut w = BitWriter::new(&mut buf);
        let mut failed = false;
        for _ in 0..10 {
            if w.put_rice(12000, 3).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed || w.finish().is_err());
        let mut r = BitReader::new(&[0xff, 0xff]);
        assert!(r.get_rice(0).is_err());
        let r = BitReader::new(&[0x01]);
        assert!(r.finish().is_err());
    }
}
