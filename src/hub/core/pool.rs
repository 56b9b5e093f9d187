//! The relay's message store: fixed-size blocks, allocated once, shared by
//! reference count. A published media message is copied once, WebSocket header
//! first, into a block; every receiver's queue then holds the block's index, and
//! the block returns to the free list when the last receiver has written it (or
//! dropped it). The pool is sized so that it cannot run dry: every live block is
//! held by at least one bounded queue or keyframe slot.

use crate::room::{ConnId, RoomHandle};

/// Bytes per block: the largest media message the relay carries, with its
/// server-side WebSocket header (4 bytes for 126..65535-byte payloads).
pub const BLOCK: usize = 2048;

/// The largest media message (envelope) the hub relays.
pub const MAX_MEDIA: usize = BLOCK - 4;

/// What a block holds, for the drop policy and the keyframe rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Audio (otherwise pose).
    pub audio: bool,
    /// A pose message that decodes alone (keyframe or raw).
    pub standalone: bool,
    /// The publisher's connection.
    pub publisher: ConnId,
    /// The room.
    pub room: RoomHandle,
    /// The person (pose).
    pub person: u32,
}

impl Default for Meta {
    fn default() -> Meta {
        Meta {
            audio: false,
            standalone: false,
            publisher: ConnId::new(0),
            room: RoomHandle::NONE,
            person: 0,
        }
    }
}

/// Reference-counted fixed-size blocks.
pub struct Pool {
    data: Box<[u8]>,
    len: Box<[u16]>,
    refs: Box<[u32]>,
    recv_us: Box<[u64]>,
    meta: Box<[Meta]>,
    free: Vec<u32>,
}

impl Pool {
    /// A pool of `blocks` blocks. The memory is reserved, not touched: pages become
    /// resident as blocks are first used, and the free list is LIFO so the same
    /// hot blocks are reused.
    pub fn new(blocks: usize) -> Pool {
        Pool {
            data: vec![0u8; blocks * BLOCK].into_boxed_slice(),
            len: vec![0u16; blocks].into_boxed_slice(),
            refs: vec![0u32; blocks].into_boxed_slice(),
            recv_us: vec![0u64; blocks].into_boxed_slice(),
            meta: vec![Meta::default(); blocks].into_boxed_slice(),
            free: (0..blocks as u32).rev().collect(),
        }
    }

    /// Blocks in all.
    pub fn capacity(&self) -> usize {
        self.refs.len()
    }

    /// Blocks in use.
    pub fn in_use(&self) -> usize {
        self.refs.len() - self.free.len()
    }

    /// Takes a free block holding `head` then `body` (with one reference, the
    /// caller's).
    pub fn store(&mut self, head: &[u8], body: &[u8], meta: Meta, recv_us: u64) -> Option<u32> {
        let n = head.len() + body.len();
        debug_assert!(n <= BLOCK);
        let h = self.free.pop()?;
        let i = h as usize;
        let block = &mut self.data[i * BLOCK..i * BLOCK + n];
        block[..head.len()].copy_from_slice(head);
        block[head.len()..].copy_from_slice(body);
        self.len[i] = n as u16;
        self.refs[i] = 1;
        self.recv_us[i] = recv_us;
        self.meta[i] = meta;
        Some(h)
    }

    /// The block's bytes.
    pub fn bytes(&self, h: u32) -> &[u8] {
        let i = h as usize;
        &self.data[i * BLOCK..i * BLOCK + self.len[i] as usize]
    }

    /// What the block holds.
    pub fn meta(&self, h: u32) -> Meta {
        self.meta[h as usize]
    }

    /// When the message it holds was read.
    pub fn recv_us(&self, h: u32) -> u64 {
        self.recv_us[h as usize]
    }

    /// One more holder.
    pub fn acquire(&mut self, h: u32) {
        self.refs[h as usize] += 1;
    }

    /// One holder fewer; the block is free again when none is left.
    pub fn release(&mut self, h: u32) {
        let r = &mut self.refs[h as usize];
        debug_assert!(*r > 0, "released a free block");
        *r -= 1;
        if *r == 0 {
            self.free.push(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_blocks_return_when_the_last_holder_releases() {
        let mut p = Pool::new(2);
        let a = p.store(b"a", b"bc", Meta::default(), 5).unwrap();
        p.acquire(a);
        let b = p.store(b"", b"de", Meta::default(), 6).unwrap();
        assert!(
            p.store(b"x", b"", Meta::default(), 7).is_none(),
            "only two blocks"
        );
        assert_eq!(
            (p.bytes(a), p.bytes(b), p.recv_us(a)),
            (&b"abc"[..], &b"de"[..], 5)
        );
        p.release(a);
        assert_eq!(p.in_use(), 2);
        p.release(a);
        assert_eq!(p.in_use(), 1);
        assert_eq!(
            p.store(b"y", b"", Meta::default(), 8),
            Some(a),
            "LIFO reuse"
        );
    }
}
