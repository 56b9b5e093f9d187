//! The send path allocates nothing: after warm-up, 10 000 `send_pose` calls,
//! their encoding in the engine's loop and their writing to the hub's socket
//! cost zero heap allocations — counted over every thread of this process (the
//! app's, the engine's, and the in-process hub's), so nothing can hide.
#![cfg(feature = "std")]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use poselink::engine::{EdgeEngine, EngineConfig, Priority};
use poselink::hub::HubConfig;
use poselink::proto::{PoseFrame, Role};
use poselink_hal::{Clock, MonotonicClock, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};

struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

fn note() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn ten_thousand_send_pose_calls_allocate_nothing() {
    let hub = TestHub::start(HubConfig {
        rate_messages: 1_000_000,
        burst_messages: 1_000_000,
        ..HubConfig::local_dev()
    });
    let (engine, thread) = EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        heartbeat_ms: 200, // pings and pongs run during the measurement
        max_persons: 8,
        ..EngineConfig::default()
    })
    .unwrap();
    let room = engine.join_room("alloc", Role::Member).unwrap();
    let clock = MonotonicClock::new();
    let mut src = SyntheticPose::new(SyntheticConfig::default());
    let mut sample = PoseSample::zeroed();
    let mut seq = 0u32;
    let mut send = |n: u32| {
        for _ in 0..n {
            src.next_pose(&mut sample).unwrap();
            seq += 1;
            // Eight persons (eight encoders): a frame is replaced only if the loop
            // falls eight frames behind.
            let mut f = PoseFrame::from_arrays(seq, seq % 8, clock.now_us(), &sample.landmarks);
            f.clamp_to_range();
            engine.send_pose(&f, room, Priority::NORMAL).unwrap();
            // Paced so that the loop encodes every frame (no frame is replaced):
            // this measures the whole path, not the drop path.
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    let wait_sent = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while {
            let m = engine.metrics();
            m.poses_sent + m.drops_superseded < n
        } && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    send(2_000);
    wait_sent(2_000);
    std::thread::sleep(Duration::from_millis(300));
    let before = engine.metrics();

    COUNTING.store(true, Ordering::SeqCst);
    send(10_000);
    wait_sent(before.poses_sent + before.drops_superseded + 10_000);
    std::thread::sleep(Duration::from_millis(300)); // pings, pongs, hub housekeeping
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);

    let after = engine.metrics();
    assert_eq!(
        allocs, 0,
        "{allocs} allocations while sending 10 000 pose frames"
    );
    let sent = after.poses_sent - before.poses_sent;
    let replaced = after.drops_superseded - before.drops_superseded;
    assert_eq!(
        sent + replaced,
        10_000,
        "every frame encoded and written, or replaced by a newer one: {after:?}"
    );
    assert!(
        replaced <= 100,
        "the measurement is of the send path, not the drop path: {after:?}"
    );
    assert_eq!(after.drops_ring + after.drops_stale, 0, "{after:?}");
    assert!(after.rtt_us > 0, "pings ran");
    engine.shutdown();
    thread.join().unwrap();
    assert_eq!(
        hub.metric("poselink_messages_in_total{kind=\"pose\"}"),
        after.poses_sent as f64
    );
}
