//! A `wss://` hub with a private CA, reached through `ca_file`.

use std::ffi::CString;
use std::ptr;

use poselink::hub::HubConfig;
use poselink_capi::*;

use crate::common::*;

#[test]
fn a_wss_hub_with_a_private_ca_is_reached_through_ca_file() {
    let ca = poselink::tls::private_ca(&["127.0.0.1"], -1, 30).unwrap();
    let dir = std::env::temp_dir().join(format!("poselink-capi-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, ca_file) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(&cert, &ca.cert_pem).unwrap();
    std::fs::write(&key, &ca.key_pem).unwrap();
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let hub = TestHub::start(HubConfig {
        tls_cert: Some(cert.to_string_lossy().into_owned()),
        tls_key: Some(key.to_string_lossy().into_owned()),
        ..HubConfig::local_dev()
    });
    let url = CString::new(format!("wss://{}/", hub.addr)).unwrap();
    let ca_path = CString::new(ca_file.to_string_lossy().into_owned()).unwrap();
    let mut cfg = config(&url);
    cfg.ca_file = ca_path.as_ptr();
    let e = Engine::new(&cfg);
    e.join(c"tls-room", PoselinkRole::Member);
    assert_eq!(e.metrics().connected, 1);
    drop(e);
    // A CA file that is not there: refused at creation, with its path.
    let missing = c"/nonexistent/poselink-ca.pem";
    cfg.ca_file = missing.as_ptr();
    let mut engine = ptr::null_mut();
    let s = unsafe { poselink_engine_create(&cfg, &mut engine) };
    assert_eq!(s, PoselinkStatus::InvalidArgument);
    assert!(engine.is_null());
    assert!(
        last_error().contains("/nonexistent/poselink-ca.pem"),
        "{}",
        last_error()
    );
    let _ = std::fs::remove_dir_all(dir);
}
