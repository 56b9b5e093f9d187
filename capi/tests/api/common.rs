//! What every test here uses: a hub on a free loopback port, an owned engine
//! made and destroyed through the C API, the default configuration, the last
//! error's message, a valid frame, and bounded event collection.

use std::ffi::{CStr, CString};
use std::net::SocketAddr;
use std::ptr;
use std::time::{Duration, Instant};

use poselink::hub::{Hub, HubConfig, HubHandle, HubReport};
use poselink_capi::*;

/// A hub on a free loopback port, stopped on drop.
pub(crate) struct TestHub {
    pub(crate) addr: SocketAddr,
    handle: HubHandle,
    join: Option<std::thread::JoinHandle<std::io::Result<HubReport>>>,
}

impl TestHub {
    pub(crate) fn start(cfg: HubConfig) -> TestHub {
        let (handle, addr, join) = Hub::spawn(cfg).expect("the hub starts");
        TestHub {
            addr,
            handle,
            join: Some(join),
        }
    }

    pub(crate) fn url(&self) -> CString {
        CString::new(format!("ws://{}/", self.addr)).unwrap()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

pub(crate) fn last_error() -> String {
    unsafe { CStr::from_ptr(poselink_last_error()) }
        .to_str()
        .unwrap()
        .to_string()
}

pub(crate) fn config(hub: &CStr) -> PoselinkConfig {
    let mut c = std::mem::MaybeUninit::uninit();
    assert_eq!(
        unsafe { poselink_config_init(c.as_mut_ptr()) },
        PoselinkStatus::Ok
    );
    let mut c = unsafe { c.assume_init() };
    c.hub = hub.as_ptr();
    c
}

/// An engine (owned: destroyed on drop).
pub(crate) struct Engine(pub(crate) *mut PoselinkEngine);

impl Engine {
    pub(crate) fn new(cfg: &PoselinkConfig) -> Engine {
        let mut e = ptr::null_mut();
        let s = unsafe { poselink_engine_create(cfg, &mut e) };
        assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
        assert!(!e.is_null());
        Engine(e)
    }

    pub(crate) fn join(&self, room: &CStr, role: PoselinkRole) -> u16 {
        let mut id = u16::MAX;
        let s = unsafe { poselink_join_room(self.0, room.as_ptr(), role as u32, &mut id) };
        assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
        id
    }

    pub(crate) fn metrics(&self) -> PoselinkMetrics {
        let mut m = PoselinkMetrics::default();
        assert_eq!(
            unsafe { poselink_metrics(self.0, &mut m) },
            PoselinkStatus::Ok
        );
        m
    }

    pub(crate) fn destroy(mut self) -> PoselinkMetrics {
        let mut m = PoselinkMetrics::default();
        let s = unsafe { poselink_engine_destroy(self.0, &mut m) };
        self.0 = ptr::null_mut();
        assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
        m
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.0.is_null() {
            unsafe { poselink_engine_destroy(self.0, ptr::null_mut()) };
        }
    }
}

/// An engine pointed at a port where nothing listens: it keeps trying to
/// connect in the background, which the argument checks do not need.
pub(crate) fn offline_engine() -> Engine {
    let url = c"ws://127.0.0.1:9/";
    let mut cfg = config(url);
    cfg.join_timeout_ms = 100;
    Engine::new(&cfg)
}

/// A valid frame: landmark i at (0.3 + i/100, 0.6 − i/100, −0.1 + i/200), scores 0.9.
pub(crate) fn landmarks(shift: f32) -> [f32; POSELINK_POSE_VALUES] {
    let mut v = [0.0; POSELINK_POSE_VALUES];
    for (i, lm) in v.chunks_mut(POSELINK_LANDMARK_VALUES).enumerate() {
        let i = i as f32;
        lm.copy_from_slice(&[
            0.3 + i / 100.0 + shift,
            0.6 - i / 100.0,
            -0.1 + i / 200.0,
            0.9,
            0.95,
        ]);
    }
    v
}

pub(crate) fn new_event() -> Box<PoselinkEvent> {
    // SAFETY: every field of PoselinkEvent is an integer, a float or an array of
    // them, or an enum whose zero value is a variant.
    Box::new(unsafe { std::mem::zeroed() })
}

/// Events until `until` says stop or 5 s pass; returns them.
pub(crate) fn collect(
    e: &Engine,
    mut until: impl FnMut(&[PoselinkEvent]) -> bool,
) -> Vec<PoselinkEvent> {
    let mut out = Vec::new();
    let mut ev = new_event();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !until(&out) && Instant::now() < deadline {
        match unsafe { poselink_wait_event(e.0, &mut *ev, 50) } {
            PoselinkStatus::Ok => out.push(*ev),
            PoselinkStatus::NoEvent => assert_eq!(ev.kind, PoselinkEventKind::None),
            s => panic!("wait_event: {s:?} {}", last_error()),
        }
    }
    out
}

pub(crate) fn count(events: &[PoselinkEvent], kind: PoselinkEventKind) -> usize {
    events.iter().filter(|e| e.kind == kind).count()
}
