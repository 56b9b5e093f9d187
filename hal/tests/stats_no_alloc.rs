//! Sampling the Linux system statistics allocates nothing after construction, so
//! a hub or an engine can sample from its allocation-free event loop.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use poselink_hal::{LinuxStats, SystemStats};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller upholds `realloc`'s contract, which we pass on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// The only test in this binary, so no other thread allocates while it counts.
#[test]
fn sampling_does_not_allocate() {
    let mut stats = LinuxStats::new();
    let first = stats.sample(0).unwrap();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut last = first;
    for i in 1..=100u64 {
        last = stats.sample(i * 10_000).unwrap();
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(allocations, 0, "100 samples allocated {allocations} times");
    // The values were really read (not skipped), on Linux.
    if cfg!(target_os = "linux") {
        assert!(last.process_rss_bytes.is_some());
        assert!(last.system_memory_total_bytes.is_some());
        assert!(last.process_cpu_percent.is_some());
    }
}
