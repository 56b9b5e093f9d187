//! Status codes, the per-thread error message, and the guard every exported
//! function runs its body in. A C caller learns what went wrong from a small
//! integer (what its code branches on) and a sentence (what it logs or shows); a
//! Rust panic inside the library becomes `POSELINK_STATUS_PANIC` and never unwinds
//! into C.
//!
//! ```
//! use poselink_capi::{PoselinkStatus, poselink_last_error, poselink_send_pose, poselink_status_name};
//! use std::ffi::CStr;
//!
//! let status = unsafe { poselink_send_pose(std::ptr::null(), 0, std::ptr::null(), 165, 1, 0, 0, 128) };
//! assert_eq!(status, PoselinkStatus::NullPointer);
//! let name = unsafe { CStr::from_ptr(poselink_status_name(status as i32)) };
//! assert_eq!(name.to_str().unwrap(), "null_pointer");
//! let why = unsafe { CStr::from_ptr(poselink_last_error()) };
//! assert_eq!(why.to_str().unwrap(), "engine is NULL; pass a valid pointer");
//! ```

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a call did. Zero and positive values are successes; negative values are
/// failures, and `poselink_last_error` then holds a sentence that says why.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoselinkStatus {
    /// Success.
    Ok = 0,
    /// Success, but there was no event to return (`poselink_poll_event`,
    /// `poselink_wait_event`).
    NoEvent = 1,
    /// A pointer that must not be NULL was NULL.
    NullPointer = -1,
    /// A length is wrong: not 165 landmark values, an empty or too long audio
    /// chunk or one that is not a whole number of frames, a string longer than
    /// its limit, or a `struct_size` that does not match this library.
    BadLength = -2,
    /// A value is out of range or malformed: a role, a configuration value, a
    /// room name, a string that is not UTF-8, a hub URL.
    InvalidArgument = -3,
    /// The pose frame or audio chunk failed validation (a value not finite or
    /// out of range, a bad sample rate or channel count).
    InvalidFrame = -4,
    /// The audio hand-over ring is full: the engine is not keeping up.
    RingFull = -5,
    /// The engine has shut down.
    ShutDown = -6,
    /// The hub refused to let us join the room (the message names its reason).
    Refused = -7,
    /// No answer from the hub in time.
    Timeout = -8,
    /// `max_rooms` rooms are joined already.
    TooManyRooms = -9,
    /// The operating system refused something (a socket, a thread).
    Io = -10,
    /// A fault inside the library (a caught panic); the message has its text.
    /// Please report it.
    Panic = -11,
    /// The room is not joined (never joined, left, kicked, closed, or waiting
    /// for its rejoin after a reconnect).
    NotJoined = -12,
    /// No session with the hub is open now: try again once connected.
    NotConnected = -13,
    /// The caller's buffer is too small: the call wrote what fits (or nothing)
    /// and said how much is needed.
    BufferTooSmall = -14,
}

/// Every status, for the name table and the tests.
const ALL: [PoselinkStatus; 16] = [
    PoselinkStatus::Ok,
    PoselinkStatus::NoEvent,
    PoselinkStatus::NullPointer,
    PoselinkStatus::BadLength,
    PoselinkStatus::InvalidArgument,
    PoselinkStatus::InvalidFrame,
    PoselinkStatus::RingFull,
    PoselinkStatus::ShutDown,
    PoselinkStatus::Refused,
    PoselinkStatus::Timeout,
    PoselinkStatus::TooManyRooms,
    PoselinkStatus::Io,
    PoselinkStatus::Panic,
    PoselinkStatus::NotJoined,
    PoselinkStatus::NotConnected,
    PoselinkStatus::BufferTooSmall,
];

impl PoselinkStatus {
    /// The status's short lower-case name, NUL-terminated.
    const fn name_c(self) -> &'static std::ffi::CStr {
        match self {
            PoselinkStatus::Ok => c"ok",
            PoselinkStatus::NoEvent => c"no_event",
            PoselinkStatus::NullPointer => c"null_pointer",
            PoselinkStatus::BadLength => c"bad_length",
            PoselinkStatus::InvalidArgument => c"invalid_argument",
            PoselinkStatus::InvalidFrame => c"invalid_frame",
            PoselinkStatus::RingFull => c"ring_full",
            PoselinkStatus::ShutDown => c"shut_down",
            PoselinkStatus::Refused => c"refused",
            PoselinkStatus::Timeout => c"timeout",
            PoselinkStatus::TooManyRooms => c"too_many_rooms",
            PoselinkStatus::Io => c"io",
            PoselinkStatus::Panic => c"panic",
            PoselinkStatus::NotJoined => c"not_joined",
            PoselinkStatus::NotConnected => c"not_connected",
            PoselinkStatus::BufferTooSmall => c"buffer_too_small",
        }
    }
}

/// A failed call: the status and the sentence for [`poselink_last_error`].
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: PoselinkStatus,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: PoselinkStatus, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// A NULL `what`.
    pub(crate) fn null(what: &str) -> Failure {
        Failure::new(
            PoselinkStatus::NullPointer,
            format!("{what} is NULL; pass a valid pointer"),
        )
    }
}

thread_local! {
    /// The message of the last failure on this thread.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message never holds a NUL of ours; one from elsewhere is cut there.
    let message = message.split('\0').next().unwrap_or_default();
    let c = CString::new(message).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = c);
}

/// Runs an exported function's body: a failure is recorded for
/// [`poselink_last_error`] and becomes its status; a panic is caught, recorded and
/// becomes [`PoselinkStatus::Panic`]. Success costs no allocation.
pub(crate) fn guard(
    what: &str,
    body: impl FnOnce() -> Result<PoselinkStatus, Failure>,
) -> PoselinkStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(failure)) => {
            log::debug!("{what}: {}", failure.message);
            set_last_error(&failure.message);
            failure.status
        }
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            let message = format!("internal fault in {what}: {text} (please report it)");
            log::error!("{message}");
            set_last_error(&message);
            PoselinkStatus::Panic
        }
    }
}

/// The message of the last failed call on the calling thread, NUL-terminated
/// UTF-8; "" before any failure. The pointer stays valid until the next failing
/// call on the same thread; copy the text to keep it. Never NULL. Successful
/// calls leave the message as it was, so read it only right after a call returned
/// a negative status.
#[unsafe(no_mangle)]
pub extern "C" fn poselink_last_error() -> *const c_char {
    catch_unwind(|| LAST_ERROR.with(|slot| slot.borrow().as_ptr())).unwrap_or(c"".as_ptr())
}

/// The short lower-case name of a status (`"ok"`, `"bad_length"`, ...), for logs;
/// `"unknown"` for a value that is not a status. A static string: never freed,
/// never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn poselink_status_name(status: i32) -> *const c_char {
    ALL.iter()
        .find(|s| **s as i32 == status)
        .map_or(c"unknown".as_ptr(), |s| s.name_c().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        unsafe { CStr::from_ptr(poselink_last_error()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_failure_sets_the_message_and_success_keeps_it() {
        let s = guard("test", || {
            Err(Failure::new(PoselinkStatus::BadLength, "too long"))
        });
        assert_eq!(s, PoselinkStatus::BadLength);
        assert_eq!(last(), "too long");
        assert_eq!(guard("test", || Ok(PoselinkStatus::Ok)), PoselinkStatus::Ok);
        assert_eq!(last(), "too long");
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let s = guard("poselink_test", || -> Result<PoselinkStatus, Failure> {
            panic!("boom {}", 7)
        });
        assert_eq!(s, PoselinkStatus::Panic);
        let m = last();
        assert!(m.contains("poselink_test") && m.contains("boom 7"), "{m}");
    }

    #[test]
    fn the_message_is_per_thread() {
        guard("test", || Err(Failure::new(PoselinkStatus::Io, "here")));
        let other = std::thread::spawn(last).join().unwrap();
        assert_eq!(other, "");
        assert_eq!(last(), "here");
    }

    #[test]
    fn every_status_has_a_distinct_name() {
        let names: std::collections::BTreeSet<String> = ALL
            .iter()
            .map(|s| {
                unsafe { CStr::from_ptr(poselink_status_name(*s as i32)) }
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(names.len(), ALL.len());
        assert!(!names.contains("unknown"));
        let unknown = unsafe { CStr::from_ptr(poselink_status_name(-999)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown");
    }

    #[test]
    fn a_nul_inside_a_message_cuts_it() {
        guard("test", || {
            Err(Failure::new(PoselinkStatus::InvalidArgument, "a\0b"))
        });
        assert_eq!(last(), "a");
    }
}
