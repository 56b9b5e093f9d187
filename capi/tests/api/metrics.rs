//! Metrics and the performance report written into the caller's buffers.

use std::ffi::{CStr, c_char};
use std::ptr;
use std::time::{Duration, Instant};

use poselink::hub::HubConfig;
use poselink_capi::*;

use crate::common::*;

#[test]
fn metrics_and_the_report_fill_the_callers_buffers() {
    let hub = TestHub::start(HubConfig::local_dev());
    let url = hub.url();
    let mut cfg = config(&url);
    // An fps floor no stream reaches: an ALERT with its kind and values.
    cfg.alert_fps_below = 1000.0;
    let e = Engine::new(&cfg);
    let room = e.join(c"capi-perf", PoselinkRole::Member);
    let start = Instant::now();
    let mut seq = 0u32;
    let mut alert = None;
    let mut ev = new_event();
    while alert.is_none() && start.elapsed() < Duration::from_secs(6) {
        seq += 1;
        let frame = landmarks(0.0);
        let ts = start.elapsed().as_micros() as u64;
        let s = unsafe { poselink_send_pose(e.0, room, frame.as_ptr(), 165, seq, 0, ts, 128) };
        assert_eq!(s, PoselinkStatus::Ok);
        while unsafe { poselink_poll_event(e.0, &mut *ev) } == PoselinkStatus::Ok {
            if ev.kind == PoselinkEventKind::Alert {
                alert = Some(*ev);
            }
        }
        std::thread::sleep(Duration::from_millis(33));
    }
    let a = alert.expect("an fps alert within 6 s");
    assert_eq!(a.alert_kind, PoselinkAlertKind::FpsLow);
    assert_eq!(a.threshold, 1000.0);
    assert!(a.value > 5.0 && a.value < 1000.0, "{}", a.value);
    let kind = unsafe { CStr::from_ptr(a.text.as_ptr()) }.to_str().unwrap();
    assert_eq!(kind, "fps_low");

    // The metrics: asked for the count, then read.
    let mut n = 0usize;
    let s = unsafe { poselink_performance_metrics(e.0, ptr::null_mut(), 0, &mut n) };
    assert_eq!(s, PoselinkStatus::BufferTooSmall);
    assert!(n >= 10, "{n}");
    let blank = PoselinkMetric {
        name: [0; POSELINK_METRIC_NAME_CAPACITY],
        value: 0.0,
    };
    let mut out = vec![blank; n + 8];
    let mut got = 0usize;
    let s = unsafe { poselink_performance_metrics(e.0, out.as_mut_ptr(), out.len(), &mut got) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    let map: std::collections::HashMap<String, f64> = out[..got]
        .iter()
        .map(|m| {
            let name = unsafe { CStr::from_ptr(m.name.as_ptr()) };
            (name.to_str().unwrap().to_string(), m.value)
        })
        .collect();
    let fps = map["fps"];
    assert!(fps > 5.0 && fps < 60.0, "fps {fps}");
    assert!(map.contains_key("success_rate") && map.contains_key("bytes_out_per_s"));

    // The report: too small a buffer says the size and holds "".
    let mut small = [1 as c_char; 8];
    let mut need = 0usize;
    let s = unsafe { poselink_performance_report(e.0, small.as_mut_ptr(), 8, &mut need) };
    assert_eq!(s, PoselinkStatus::BufferTooSmall);
    assert!(need > 100, "{need}");
    assert_eq!(small[0], 0);
    // Built afresh per call: it may have grown since (a figure one digit longer).
    let mut buf = vec![0 as c_char; need + 1024];
    let mut need2 = 0usize;
    let s = unsafe { poselink_performance_report(e.0, buf.as_mut_ptr(), buf.len(), &mut need2) };
    assert_eq!(s, PoselinkStatus::Ok, "{}", last_error());
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
    assert_eq!(text.len() + 1, need2);
    let json: serde_json::Value = serde_json::from_str(text).expect("JSON");
    assert!(json["fps"].as_f64().unwrap() > 5.0, "{json}");
    assert!(json["reliability"]["success_rate"].is_number(), "{json}");
}
