//! The hal's sources and statistics allocate nothing once made: reading frames
//! from the synthetic pose and audio sources, and sampling the Linux system
//! statistics (so a hub or an engine can sample from its allocation-free event
//! loop). A counting global allocator counts each test thread's own allocations,
//! so the tests may run side by side.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use poselink_hal::{
    AudioBlock, AudioSource, LinuxStats, Motion, PoseSample, PoseSource, SyntheticAudio,
    SyntheticConfig, SyntheticPose, SystemStats,
};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

/// Allocations made by the calling thread so far.
fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: the caller upholds `realloc`'s contract, which we pass on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn reading_frames_does_not_allocate() {
    let mut sources: Vec<SyntheticPose> = [Motion::Walk, Motion::Wave, Motion::Mixed]
        .into_iter()
        .map(|motion| {
            SyntheticPose::new(SyntheticConfig {
                motion,
                ..SyntheticConfig::default()
            })
        })
        .collect();
    let mut tone = SyntheticAudio::new(0);
    let mut sample = PoseSample::zeroed();
    let mut block = AudioBlock::zeroed();

    let before = allocations();
    for _ in 0..1_000 {
        for source in &mut sources {
            source.next_pose(&mut sample).unwrap();
        }
        tone.next_audio(&mut block).unwrap();
    }
    let after = allocations();
    assert_eq!(after - before, 0, "allocations while reading frames");
}

#[test]
fn sampling_does_not_allocate() {
    let mut stats = LinuxStats::new();
    let first = stats.sample(0).unwrap();
    let before = allocations();
    let mut last = first;
    for i in 1..=100u64 {
        last = stats.sample(i * 10_000).unwrap();
    }
    let allocations = allocations() - before;
    assert_eq!(allocations, 0, "100 samples allocated {allocations} times");
    // The values were really read (not skipped), on Linux.
    if cfg!(target_os = "linux") {
        assert!(last.process_rss_bytes.is_some());
        assert!(last.system_memory_total_bytes.is_some());
        assert!(last.process_cpu_percent.is_some());
    }
}
