//! The C API's send path allocates nothing: after warm-up, 5 000
//! `poselink_send_pose` and 1 000 `poselink_send_audio` calls, their encoding in
//! the engine's loop and their writing to the hub's socket, plus a
//! `poselink_metrics` and a `poselink_poll_event` per frame, cost zero heap
//! allocations, counted over every thread of this process (the caller's, the
//! engine's and the in-process hub's).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use poselink::hub::{Hub, HubConfig};
use poselink_capi::*;

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
fn sending_through_the_c_api_allocates_nothing() {
    let (hub, addr, hub_thread) = Hub::spawn(HubConfig {
        rate_messages: 1_000_000,
        burst_messages: 1_000_000,
        ..HubConfig::local_dev()
    })
    .unwrap();
    let url = std::ffi::CString::new(format!("ws://{addr}/")).unwrap();
    let mut cfg = std::mem::MaybeUninit::uninit();
    unsafe { poselink_config_init(cfg.as_mut_ptr()) };
    let mut cfg = unsafe { cfg.assume_init() };
    cfg.hub = url.as_ptr();
    cfg.heartbeat_ms = 200; // pings and pongs run during the measurement
    cfg.max_persons = 8;
    let mut engine = ptr::null_mut();
    assert_eq!(
        unsafe { poselink_engine_create(&cfg, &mut engine) },
        PoselinkStatus::Ok
    );
    let mut room = 0u16;
    assert_eq!(
        unsafe { poselink_join_room(engine, c"capi-alloc".as_ptr(), 1, &mut room) },
        PoselinkStatus::Ok
    );
    let mut event: Box<PoselinkEvent> = Box::new(unsafe { std::mem::zeroed() });
    let mut metrics = PoselinkMetrics::default();
    let mut landmarks = [0.5f32; POSELINK_POSE_VALUES];
    let pcm = [100i16; 960];
    let (mut seq, mut audio_seq) = (0u32, 0u32);
    let start = Instant::now();
    let mut send = |n: u32| {
        for _ in 0..n {
            seq += 1;
            // A moving value, so that the deltas are not all zero.
            landmarks[0] = 0.3 + (seq % 100) as f32 / 1000.0;
            let ts = start.elapsed().as_micros() as u64;
            // Eight persons (eight encoders): a frame is replaced only if the
            // loop falls eight frames behind.
            let s = unsafe {
                poselink_send_pose(engine, room, landmarks.as_ptr(), 165, seq, seq % 8, ts, 128)
            };
            assert_eq!(s, PoselinkStatus::Ok);
            if seq.is_multiple_of(5) {
                audio_seq += 1;
                let s = unsafe {
                    poselink_send_audio(
                        engine,
                        room,
                        pcm.as_ptr(),
                        960,
                        1,
                        48_000,
                        audio_seq,
                        ts,
                        192,
                    )
                };
                assert_eq!(s, PoselinkStatus::Ok);
            }
            unsafe {
                poselink_poll_event(engine, &mut *event);
                poselink_metrics(engine, &mut metrics);
            }
            // Paced so that the loop encodes every frame: this measures the
            // whole path, not the drop path.
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    let wait_sent = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut m = PoselinkMetrics::default();
        loop {
            unsafe { poselink_metrics(engine, &mut m) };
            if m.poses_sent + m.drops_superseded >= n || Instant::now() >= deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    send(2_000);
    wait_sent(2_000);
    std::thread::sleep(Duration::from_millis(300));
    let before = wait_sent(0);

    COUNTING.store(true, Ordering::SeqCst);
    send(5_000);
    let after = wait_sent(before.poses_sent + before.drops_superseded + 5_000);
    std::thread::sleep(Duration::from_millis(300)); // pings, pongs, acknowledgements
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);

    assert_eq!(
        allocs, 0,
        "{allocs} allocations while sending 5 000 pose frames and 1 000 audio chunks"
    );
    let sent = after.poses_sent - before.poses_sent;
    let replaced = after.drops_superseded - before.drops_superseded;
    assert_eq!(sent + replaced, 5_000, "{after:?}");
    assert!(
        replaced <= 50,
        "the send path was measured, not the drop path: {after:?}"
    );
    assert_eq!(after.audio_sent - before.audio_sent, 1_000, "{after:?}");
    assert!(after.rtt_us > 0, "pings ran");
    assert_eq!(
        unsafe { poselink_engine_destroy(engine, ptr::null_mut()) },
        PoselinkStatus::Ok
    );
    hub.shutdown();
    hub_thread.join().unwrap().unwrap();
}
