//! Reading frames from the synthetic sources allocates nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use poselink_hal::{
    AudioBlock, AudioSource, Motion, PoseSample, PoseSource, SyntheticAudio, SyntheticConfig,
    SyntheticPose,
};

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

    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..1_000 {
        for source in &mut sources {
            source.next_pose(&mut sample).unwrap();
        }
        tone.next_audio(&mut block).unwrap();
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(after - before, 0, "allocations while reading frames");
}
