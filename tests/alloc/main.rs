//! The zero-allocation proofs, in one test binary with one counting global
//! allocator:
//!
//! - [`codec`]: encoding and decoding 10 000 pose frames and audio chunks, and
//!   parsing 10 000 WebSocket frames in place (this thread's allocations);
//! - [`hub`]: 20 000 deliveries relayed by a real hub over loopback (the hub
//!   thread's allocations);
//! - [`engine`]: 10 000 `send_pose` calls through the engine to the hub, and
//!   10 000 frames and chunks received and taken with `poll_event` (every
//!   thread's allocations: the app's, the engines', the in-process hub's);
//! - [`memory`]: what a hub allocates at start-up, against the tables its
//!   stated memory ceiling counts.
//!
//! The allocator counts a thread that asked to be counted, or every thread while
//! a test asks for that; the tests take turns ([`counting::turn`]), so one
//! test's count never includes another's work.

mod codec;
#[cfg(feature = "std")]
#[path = "../common/mod.rs"]
mod common;
#[cfg(feature = "std")]
mod engine;
#[cfg(feature = "std")]
mod hub;
#[cfg(feature = "std")]
mod memory;

/// The counting allocator and the turn the tests take.
pub mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Mutex, MutexGuard};

    struct CountingAlloc;

    static EVERY_THREAD: AtomicBool = AtomicBool::new(false);
    static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
    static TURN: Mutex<()> = Mutex::new(());

    thread_local! {
        static THIS_THREAD: Cell<bool> = const { Cell::new(false) };
    }

    /// Bytes allocated and freed by counted threads (net: what they hold).
    static BYTES_IN: AtomicU64 = AtomicU64::new(0);
    static BYTES_OUT: AtomicU64 = AtomicU64::new(0);

    fn counted() -> bool {
        // `try_with`: the allocator runs while thread-locals are torn down too.
        EVERY_THREAD.load(Ordering::Relaxed) || THIS_THREAD.try_with(Cell::get).unwrap_or(false)
    }

    fn note() {
        if counted() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn bytes(allocated: usize, freed: usize) {
        if counted() {
            BYTES_IN.fetch_add(allocated as u64, Ordering::Relaxed);
            BYTES_OUT.fetch_add(freed as u64, Ordering::Relaxed);
        }
    }

    // SAFETY: every call is forwarded to the system allocator unchanged; only a
    // counter is bumped beside it.
    unsafe impl GlobalAlloc for CountingAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note();
            bytes(layout.size(), 0);
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note();
            bytes(layout.size(), 0);
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note();
            bytes(new_size, layout.size());
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            bytes(0, layout.size());
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: CountingAlloc = CountingAlloc;

    /// One measurement at a time: held for a whole test.
    pub fn turn() -> MutexGuard<'static, ()> {
        TURN.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts (or stops counting) the calling thread's allocations.
    pub fn this_thread(on: bool) {
        THIS_THREAD.with(|c| c.set(on));
    }

    /// Counts (or stops counting) every thread's allocations.
    pub fn every_thread(on: bool) {
        EVERY_THREAD.store(on, Ordering::SeqCst);
    }

    /// Bytes the counted threads hold: allocated minus freed since the process
    /// started (wrapping: compare two readings).
    pub fn held_bytes() -> u64 {
        BYTES_IN
            .load(Ordering::SeqCst)
            .wrapping_sub(BYTES_OUT.load(Ordering::SeqCst))
    }

    /// Allocations counted since the process started.
    pub fn allocations() -> u64 {
        ALLOCATIONS.load(Ordering::SeqCst)
    }
}
