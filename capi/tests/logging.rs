//! `poselink_log_to_stderr` installs the library's logger once: a bad filter
//! string is refused before anything is installed, a second installation is
//! refused with a message. (Its own test binary: a logger is process-wide.)

use std::ffi::CStr;

use poselink_capi::{PoselinkStatus, poselink_last_error, poselink_log_to_stderr};

fn last_error() -> String {
    unsafe { CStr::from_ptr(poselink_last_error()) }
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_logger_is_installed_once() {
    let not_utf8 = [0xffu8, 0];
    let s = unsafe { poselink_log_to_stderr(not_utf8.as_ptr().cast()) };
    assert_eq!(s, PoselinkStatus::InvalidArgument);
    assert!(last_error().contains("UTF-8"), "{}", last_error());
    let long = std::ffi::CString::new("x".repeat(1025)).unwrap();
    let s = unsafe { poselink_log_to_stderr(long.as_ptr()) };
    assert_eq!(s, PoselinkStatus::BadLength);

    assert_eq!(
        unsafe { poselink_log_to_stderr(c"warn".as_ptr()) },
        PoselinkStatus::Ok
    );
    assert_eq!(log::max_level(), log::LevelFilter::Warn);
    let s = unsafe { poselink_log_to_stderr(std::ptr::null()) };
    assert_eq!(s, PoselinkStatus::InvalidArgument);
    assert!(last_error().contains("logger"), "{}", last_error());
}
