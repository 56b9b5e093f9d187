//! MSB-first bit writing and reading with the Rice code the pose deltas use, over
//! fixed-size, zero-padded work buffers. Hand-written rather than taken from a
//! bit-I/O crate because this sits on the hot path — one Rice code per landmark
//! value, 165 per frame — and the budget is a few nanoseconds per value
//! (`benches/codec.rs`): the writer and the reader here are branch-light (one
//! unaligned 8-byte load or store per code, no per-byte loop, no bounds checks that
//! can fail), which general bit-I/O crates are not, and the stream needs exactly
//! this much in `no_std` without allocation.

use super::Error;

/// A Rice quotient of this many ones is an escape: the value follows in
/// [`ESCAPE_BITS`] raw bits instead.
pub(crate) const ESCAPE_QUOTIENT: u32 = 20;
/// Raw bits of an escaped value (every zigzagged residual fits: |r| ≤ 6144).
pub(crate) const ESCAPE_BITS: u32 = 15;
/// The longest code: an escape.
const MAX_CODE_BITS: u32 = ESCAPE_QUOTIENT + ESCAPE_BITS;

/// Size of a work buffer: room for the longest stream (a pose delta whose 165
/// fields are 15 bits wide and all escaped: 310 + 722 bytes), rounded up to a power
/// of two, plus the 8 bytes a load or store may reach past the last index.
pub(crate) const WORK_LEN: usize = 2048 + 8;
/// Index mask of a work buffer; every index is masked, so none can be out of
/// bounds (streams never come near the wrap).
const WORK_MASK: usize = 2048 - 1;

/// Writes Rice codes into a zero-initialised work buffer.
pub(crate) struct BitWriter<'a> {
    buf: &'a mut [u8; WORK_LEN],
    /// Bytes completely written.
    pos: usize,
    /// Pending bits, left-aligned; `n` of them valid (fewer than 8 between codes).
    acc: u64,
    n: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(buf: &'a mut [u8; WORK_LEN]) -> Self {
        BitWriter {
            buf,
            pos: 0,
            acc: 0,
            n: 0,
        }
    }

    /// Appends the low `len` bits of `code` (0 ≤ len ≤ 56; `code` has no higher
    /// bits, and is 0 when `len` is 0).
    #[inline(always)]
    pub(crate) fn put(&mut self, code: u64, len: u32) {
        // n < 8 and len ≤ 56, so the code fits in the accumulator; the split
        // shift keeps each shift below 64 even when n and len are both 0.
        self.acc |= (code << (63 - self.n - len)) << 1;
        self.n += len;
        let at = self.pos & WORK_MASK;
        self.buf[at..at + 8].copy_from_slice(&self.acc.to_be_bytes());
        let whole = self.n >> 3;
        self.pos += whole as usize;
        // `whole` ≤ 7 here, so the shift stays below 64.
        self.acc <<= whole * 8;
        self.n &= 7;
    }

    /// Appends `u` as a Rice code with parameter `k` (≤ 14); `u` must fit in
    /// [`ESCAPE_BITS`] bits.
    #[inline(always)]
    pub(crate) fn put_rice(&mut self, u: u32, k: u32) {
        let (code, len) = rice_code(u, k);
        self.put(code, len);
    }

    /// Pads with zero bits to a byte boundary; returns the stream's length in bytes.
    pub(crate) fn finish(self) -> usize {
        self.pos + (self.n > 0) as usize
    }
}

/// The Rice code of `u` with parameter `k` (≤ 14) and its length in bits: the
/// quotient in unary (ones, then a zero), then the `k` low bits; a quotient of
/// [`ESCAPE_QUOTIENT`] or more is sent as that many ones and `u` in
/// [`ESCAPE_BITS`] raw bits.
#[inline(always)]
fn rice_code(u: u32, k: u32) -> (u64, u32) {
    let q = u >> k;
    if q < ESCAPE_QUOTIENT {
        let unary = ((1u64 << q) - 1) << 1;
        ((unary << k) | (u as u64 & ((1u64 << k) - 1)), q + 1 + k)
    } else {
        (
            (((1u64 << ESCAPE_QUOTIENT) - 1) << ESCAPE_BITS)
                | (u as u64 & ((1u64 << ESCAPE_BITS) - 1)),
            MAX_CODE_BITS,
        )
    }
}

/// Reads Rice codes from a stream copied into a zero-padded work buffer.
pub(crate) struct BitReader<'a> {
    buf: &'a [u8; WORK_LEN],
    /// The stream's length in bytes.
    len: usize,
    /// Bits consumed.
    bit: usize,
}

impl<'a> BitReader<'a> {
    /// `buf` holds the stream in its first `len` bytes and zeros after them;
    /// reading starts at byte `start`.
    pub(crate) fn new(buf: &'a [u8; WORK_LEN], start: usize, len: usize) -> Self {
        BitReader {
            buf,
            len,
            bit: start * 8,
        }
    }

    /// The 64 bits of `buf` from bit `bit` on, with at least 57 of them valid:
    /// random access, so that fields whose positions are known decode
    /// independently of each other.
    #[inline(always)]
    pub(crate) fn window_at(buf: &[u8; WORK_LEN], bit: usize) -> u64 {
        let at = (bit >> 3) & WORK_MASK;
        let mut w = [0u8; 8];
        w.copy_from_slice(&buf[at..at + 8]);
        u64::from_be_bytes(w) << (bit & 7)
    }

    #[inline(always)]
    fn window(&self) -> u64 {
        Self::window_at(self.buf, self.bit)
    }

    /// Reads a Rice code with parameter `k` (≤ 14). Reading past the end
    /// yields zeros; [`finish`](Self::finish) reports it.
    #[inline(always)]
    pub(crate) fn get_rice(&mut self, k: u32) -> u32 {
        let w = self.window();
        let ones = (!w).leading_zeros();
        if ones < ESCAPE_QUOTIENT {
            let low = ((w << (ones + 1)) >> 32 >> (32 - k)) as u32;
            self.bit += (ones + 1 + k) as usize;
            (ones << k) | low
        } else {
            let v = ((w << ESCAPE_QUOTIENT) >> (64 - ESCAPE_BITS)) as u32;
            self.bit += MAX_CODE_BITS as usize;
            v
        }
    }

    /// Checks that the codes ended inside the stream and that only zero padding
    /// (less than a byte) follows them.
    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.bit > self.len * 8 {
            return Err(Error::Malformed {
                what: "the pose delta bit stream (ends early)",
            });
        }
        let used = self.bit.div_ceil(8);
        let pad_bits = (used * 8 - self.bit) as u32;
        let last = if used > 0 { self.buf[used - 1] } else { 0 };
        let pad_is_zero = pad_bits == 0 || last & ((1u8 << pad_bits) - 1) == 0;
        if used != self.len || !pad_is_zero {
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

    fn write(codes: &[(u32, u32)]) -> ([u8; WORK_LEN], usize) {
        let mut buf = [0u8; WORK_LEN];
        let mut w = BitWriter::new(&mut buf);
        for &(u, k) in codes {
            w.put_rice(u, k);
        }
        let n = w.finish();
        (buf, n)
    }

    #[test]
    fn rice_round_trips_every_size() {
        let mut cases = [(0u32, 0u32); 48];
        let base: [(u32, u32); 12] = [
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
        for (i, c) in cases.iter_mut().enumerate() {
            *c = base[i % base.len()];
        }
        let (buf, n) = write(&cases);
        let mut r = BitReader::new(&buf, 0, n);
        for &(u, k) in &cases {
            assert_eq!(r.get_rice(k), u, "u={u} k={k}");
        }
        r.finish().unwrap();
    }

    #[test]
    fn fixture_bits() {
        // 5 with k=1: quotient 2 -> "110", low bit "1"; then 0 with k=0: "0".
        let (buf, n) = write(&[(5, 1), (0, 0)]);
        assert_eq!(&buf[..n], &[0b1101_0000]);
        // An escape: twenty ones, then 12288 in 15 bits.
        let (buf, n) = write(&[(12288, 0)]);
        assert_eq!(&buf[..n], &[0xff, 0xff, 0xf6, 0x00, 0x00]);
    }

    #[test]
    fn fields_read_at_any_position() {
        let mut buf = [0u8; WORK_LEN];
        let mut w = BitWriter::new(&mut buf);
        let fields: [(u64, u32); 6] = [(1, 1), (0x5a5a, 15), (3, 2), (0, 3), (0x7fff, 15), (9, 4)];
        for &(c, n) in &fields {
            w.put(c, n);
        }
        let n = w.finish();
        assert_eq!(n, (1 + 15 + 2 + 3 + 15 + 4usize).div_ceil(8));
        let mut bit = 0;
        for &(c, width) in &fields {
            let w = BitReader::window_at(&buf, bit);
            assert_eq!(w >> (64 - width), c);
            bit += width as usize;
        }
    }

    #[test]
    fn the_longest_stream_fits() {
        let codes = [(32767u32, 0u32); 165];
        let (buf, n) = write(&codes);
        assert_eq!(n, (165 * 35usize).div_ceil(8));
        let mut r = BitReader::new(&buf, 0, n);
        for _ in 0..165 {
            assert_eq!(r.get_rice(0), 32767);
        }
        r.finish().unwrap();
    }

    #[test]
    fn overrun_and_trailing_data_are_errors() {
        let (buf, n) = write(&[(3, 1), (9, 2)]);
        // Stream cut short.
        let mut short = buf;
        short[n - 1] = 0;
        let mut r = BitReader::new(&short, 0, n - 1);
        r.get_rice(1);
        r.get_rice(2);
        r.get_rice(2);
        assert!(r.finish().is_err());
        // Extra byte.
        let mut r = BitReader::new(&buf, 0, n + 1);
        r.get_rice(1);
        r.get_rice(2);
        assert!(r.finish().is_err());
        // Non-zero padding: 3 + 6 bits of codes, 7 bits of padding.
        let (mut dirty, n) = write(&[(3, 1), (9, 1)]);
        assert_eq!(n, 2);
        let mut r = BitReader::new(&dirty, 0, n);
        r.get_rice(1);
        r.get_rice(1);
        r.finish().unwrap();
        dirty[1] |= 1;
        let mut r = BitReader::new(&dirty, 0, n);
        assert_eq!((r.get_rice(1), r.get_rice(1)), (3, 9));
        assert!(r.finish().is_err());
    }
}
