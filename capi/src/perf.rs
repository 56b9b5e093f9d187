//! The engine's performance monitor from C: the metrics map of the seed's
//! `get_performance_metrics()` as an array of name–value pairs
//! ([`poselink_performance_metrics`]) and the JSON performance report
//! ([`poselink_performance_report`]), each copied into the caller's buffer.
//! A buffer too small is not an error the caller has to guess around: the call
//! says how much it needs. Both ask the engine's loop and allocate (the report
//! is built on demand): call them now and then (once a second), not per frame —
//! `poselink_metrics` is the per-frame counter read.

use std::ffi::c_char;

use crate::status::{Failure, guard};
use crate::{PoselinkEngine, PoselinkStatus, engine_ref};

/// Bytes of `PoselinkMetric.name`, the terminating NUL included.
pub const POSELINK_METRIC_NAME_CAPACITY: usize = 32;

/// One performance metric: a name such as `"latency_p99_ms"`, `"fps"`,
/// `"cpu_percent"`, `"memory_mb"`, `"drops"`, `"success_rate"` (the full
/// list is in the C API docs) and its value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoselinkMetric {
    /// The metric's name, NUL-terminated ASCII.
    pub name: [c_char; POSELINK_METRIC_NAME_CAPACITY],
    /// Its value over the monitor's window. A metric not measured yet (latency
    /// before the first heartbeat's answer, the SoC temperature on a desktop)
    /// is left out of the list rather than given a made-up value.
    pub value: f64,
}

fn report(engine: &PoselinkEngine) -> Result<poselink::engine::PerformanceReport, Failure> {
    engine.handle.performance_report().ok_or_else(|| {
        Failure::new(
            PoselinkStatus::ShutDown,
            "the engine has shut down: no performance report",
        )
    })
}

/// Copies the performance monitor's metrics (the seed's
/// `get_performance_metrics()`) into `out`, at most `capacity` of them, and
/// sets `*count` to how many there are (about 25). `out` may be NULL when
/// `capacity` is 0 (to ask for the count).
///
/// Returns `OK`; `BUFFER_TOO_SMALL` when there are more than `capacity` (the
/// first `capacity` are written); `SHUT_DOWN` or `NULL_POINTER`.
///
/// # Safety
/// `engine` is NULL or a live engine; `out` is NULL or writable for
/// `capacity` metrics; `count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_performance_metrics(
    engine: *const PoselinkEngine,
    out: *mut PoselinkMetric,
    capacity: usize,
    count: *mut usize,
) -> PoselinkStatus {
    guard("poselink_performance_metrics", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        if count.is_null() {
            return Err(Failure::null("count"));
        }
        if out.is_null() && capacity > 0 {
            return Err(Failure::null("out"));
        }
        let r = report(engine)?;
        for (i, (name, value)) in r.metrics.iter().take(capacity).enumerate() {
            let mut m = PoselinkMetric {
                name: [0; POSELINK_METRIC_NAME_CAPACITY],
                value: *value,
            };
            let bytes = &name.as_bytes()[..name.len().min(POSELINK_METRIC_NAME_CAPACITY - 1)];
            for (dst, b) in m.name.iter_mut().zip(bytes) {
                *dst = *b as c_char;
            }
            // SAFETY: i < capacity, and the caller promises `capacity` writable.
            unsafe { out.add(i).write(m) };
        }
        // SAFETY: checked non-NULL; the caller promises it writable.
        unsafe { count.write(r.metrics.len()) };
        if r.metrics.len() > capacity {
            return Err(Failure::new(
                PoselinkStatus::BufferTooSmall,
                format!(
                    "there are {} metrics and out holds {capacity}: pass a larger array",
                    r.metrics.len()
                ),
            ));
        }
        Ok(PoselinkStatus::Ok)
    })
}

/// Writes the performance report — JSON: `latency` (avg, p50, p95, p99, max
/// in ms), `fps`, `resource_usage` (CPU %, memory MB, growth), `throughput`,
/// `reliability` (success and error rates, drops and errors by kind) — into
/// `buf` as a NUL-terminated string, and sets `*needed` to its size with the
/// NUL. `buf` may be NULL when `capacity` is 0 (to ask for the size). The
/// report is built afresh on each call and may grow a little between two
/// calls: give a buffer with room to spare (4096 bytes is always plenty).
///
/// Returns `OK`; `BUFFER_TOO_SMALL` when `capacity < *needed` (then `buf`, if
/// not NULL, holds an empty string: half a JSON document is of no use);
/// `SHUT_DOWN` or `NULL_POINTER`.
///
/// # Safety
/// `engine` is NULL or a live engine; `buf` is NULL or writable for
/// `capacity` bytes; `needed` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_performance_report(
    engine: *const PoselinkEngine,
    buf: *mut c_char,
    capacity: usize,
    needed: *mut usize,
) -> PoselinkStatus {
    guard("poselink_performance_report", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        if needed.is_null() {
            return Err(Failure::null("needed"));
        }
        if buf.is_null() && capacity > 0 {
            return Err(Failure::null("buf"));
        }
        let json = report(engine)?.json;
        let size = json.len() + 1;
        // SAFETY: checked non-NULL; the caller promises it writable.
        unsafe { needed.write(size) };
        if capacity < size {
            if capacity > 0 {
                // SAFETY: non-NULL (checked) and at least one byte writable.
                unsafe { buf.write(0) };
            }
            return Err(Failure::new(
                PoselinkStatus::BufferTooSmall,
                format!(
                    "the report is {size} bytes and buf holds {capacity}: pass a larger buffer"
                ),
            ));
        }
        // SAFETY: `size` <= capacity bytes are writable; the JSON holds no NUL.
        unsafe {
            std::ptr::copy_nonoverlapping(json.as_ptr(), buf.cast::<u8>(), json.len());
            buf.add(json.len()).write(0);
        }
        Ok(PoselinkStatus::Ok)
    })
}
