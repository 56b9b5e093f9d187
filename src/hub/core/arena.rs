//! Per-connection byte buffers, carved out of one allocation per kind (receive
//! buffers, control FIFOs): the memory is reserved at start-up for every slot,
//! but a page becomes resident only when a connection first writes into it, so
//! slots never used cost nothing and a reused slot finds its pages warm.

/// `slots` buffers of `size` bytes each, in one allocation.
pub(super) struct Arena {
    bytes: Box<[u8]>,
    size: usize,
}

impl Arena {
    /// Reserves `slots * size` zeroed bytes (calloc'd: untouched pages stay
    /// unmapped).
    pub fn new(slots: usize, size: usize) -> Arena {
        Arena {
            bytes: vec![0u8; slots * size].into_boxed_slice(),
            size,
        }
    }

    /// Slot `i`'s buffer.
    pub fn get(&self, i: usize) -> &[u8] {
        &self.bytes[i * self.size..(i + 1) * self.size]
    }

    /// Slot `i`'s buffer, to write.
    pub fn get_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bytes[i * self.size..(i + 1) * self.size]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_apart() {
        let mut a = Arena::new(3, 4);
        a.get_mut(1).copy_from_slice(b"abcd");
        assert_eq!(a.get(0), &[0; 4]);
        assert_eq!(a.get(1), b"abcd");
        assert_eq!(a.get(2), &[0; 4]);
    }
}
