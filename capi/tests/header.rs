//! The checked-in C header is what cbindgen makes of the crate today. A change to
//! an exported function, struct, enum or constant that is not carried into
//! `include/poselink.h` fails here, with the command that regenerates it.

use std::path::Path;

const BLESS: &str = "POSELINK_BLESS_HEADER";

fn generate() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen parses the crate");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn the_checked_in_header_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/poselink.h");
    let fresh = generate();
    if std::env::var_os(BLESS).is_some() {
        std::fs::write(&path, &fresh).expect("write the header");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != fresh {
        let first = current
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(current.lines().count().min(fresh.lines().count()));
        panic!(
            "capi/include/poselink.h is stale (first difference at line {}): regenerate it with\n  \
             {BLESS}=1 cargo test -p poselink-capi --test header\nand commit it",
            first + 1
        );
    }
}

#[test]
fn the_header_declares_the_whole_lifecycle() {
    let h = generate();
    for f in [
        "poselink_config_init",
        "poselink_engine_create",
        "poselink_join_room",
        "poselink_leave_room",
        "poselink_send_pose",
        "poselink_send_audio",
        "poselink_poll_event",
        "poselink_wait_event",
        "poselink_metrics",
        "poselink_set_bandwidth_limit",
        "poselink_engine_destroy",
        "poselink_last_error",
        "poselink_status_name",
        "poselink_engine_shutdown",
        "poselink_performance_metrics",
        "poselink_performance_report",
        "poselink_room_members",
        "poselink_kick",
        "poselink_set_role",
        "poselink_close_room",
        "poselink_set_audio_ack_events",
    ] {
        assert!(h.contains(&format!("{f}(")), "{f} missing from the header");
    }
    for c in [
        "#define POSELINK_POSE_VALUES 165",
        "#define POSELINK_AUDIO_CAPACITY 960",
        "POSELINK_STATUS_BAD_LENGTH = -2",
        "POSELINK_ROLE_VIEWER = 2",
        "POSELINK_EVENT_KIND_POSE = 9",
        "POSELINK_EVENT_KIND_ALERT = 17",
        "POSELINK_STATUS_BUFFER_TOO_SMALL = -14",
        "typedef struct PoselinkEngine PoselinkEngine;",
        "OWNERSHIP",
        "THREADING",
    ] {
        assert!(h.contains(c), "{c:?} missing from the header");
    }
}
