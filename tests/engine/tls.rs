//! The engine over `wss://`: publish and receive through a hub with a
//! certificate; an untrusted CA, a wrong host name and an expired certificate
//! each refused with a reason that names it; and a hub restart over TLS that
//! restores the rooms and loses no audio (the same scenario as over plain TCP).

use std::time::{Duration, Instant};

use crate::common::*;
use crate::network::{restart_scenario, restored_and_exactly_once};
use poselink::engine::{EdgeEngine, EngineConfig, EngineHandle, EngineReport, Event, Priority};
use poselink::hub::HubConfig;
use poselink::proto::{AudioChunk, Role};

type Engine = (EngineHandle, std::thread::JoinHandle<EngineReport>);

fn engine(url: String, ca_file: Option<String>) -> Engine {
    EdgeEngine::start(EngineConfig {
        hub: url,
        ca_file,
        reconnect_min_ms: 50,
        reconnect_max_ms: 200,
        ..EngineConfig::default()
    })
    .unwrap()
}

/// The first ConnectFailed reason within 5 s.
fn refusal(e: &EngineHandle) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match e.wait_event(Duration::from_millis(50)) {
            Some(Event::ConnectFailed { reason }) => return reason,
            Some(Event::Connected { .. }) => panic!("connected to a hub it must refuse"),
            _ => {}
        }
    }
    panic!("no connection failure reported");
}

#[test]
fn pose_and_audio_flow_over_wss() {
    let files = TlsFiles::local("engine-flow");
    let hub = TestHub::start_tls(HubConfig::local_dev(), &files);
    let (a, ta) = engine(hub.url(), files.ca());
    let (b, tb) = engine(hub.url(), files.ca());
    let ra = a.join_room("wss", Role::Member).unwrap();
    b.join_room("wss", Role::Viewer).unwrap();
    let mut chunk = AudioChunk::silence(48_000, 1, 960);
    for seq in 1..=50u32 {
        chunk.seq = seq;
        chunk.samples[0] = seq as i16;
        a.send_audio(&chunk, ra, Priority::NORMAL).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 50 && Instant::now() < deadline {
        if let Some(Event::Audio { chunk, .. }) = b.wait_event(Duration::from_millis(50)) {
            assert_eq!(
                chunk.samples[0], chunk.seq as i16,
                "the samples arrive exact"
            );
            got.push(chunk.seq);
        }
    }
    assert_eq!(got, (1..=50).collect::<Vec<_>>());
    for (h, t) in [(a, ta), (b, tb)] {
        h.shutdown();
        t.join().unwrap();
    }
}

#[test]
fn an_untrusted_ca_a_wrong_name_and_an_expired_certificate_are_refused_by_name() {
    let files = TlsFiles::local("engine-refusals");
    let hub = TestHub::start_tls(HubConfig::local_dev(), &files);
    // Another CA than the hub's.
    let other = TlsFiles::local("engine-other-ca");
    let (e, t) = engine(hub.url(), other.ca());
    let why = refusal(&e);
    assert!(
        why.contains("unknown issuer") && why.contains("ca_file"),
        "{why}"
    );
    e.shutdown();
    t.join().unwrap();

    // The right CA, but a name the certificate does not list.
    let named = TlsFiles::make("engine-name", &["hub.example"], -1, 30);
    let hub2 = TestHub::start_tls(HubConfig::local_dev(), &named);
    let (e, t) = engine(format!("wss://localhost:{}/", hub2.addr.port()), named.ca());
    let why = refusal(&e);
    assert!(why.contains("not valid for the host name"), "{why}");
    e.shutdown();
    t.join().unwrap();

    // Expired yesterday.
    let old = TlsFiles::make("engine-expired", &["127.0.0.1"], -30, -1);
    let hub3 = TestHub::start_tls(HubConfig::local_dev(), &old);
    let (e, t) = engine(hub3.url(), old.ca());
    let why = refusal(&e);
    assert!(why.contains("expired"), "{why}");
    e.shutdown();
    t.join().unwrap();

    // A wss:// engine at a plain hub, and a ws:// one at a TLS hub: both say so.
    let plain = TestHub::dev();
    let (e, t) = engine(format!("wss://{}/", plain.addr), files.ca());
    let why = refusal(&e);
    assert!(why.contains("does not speak TLS"), "{why}");
    e.shutdown();
    t.join().unwrap();
    let (e, t) = engine(format!("ws://{}/", hub.addr), None);
    let why = refusal(&e);
    assert!(why.contains("speaks TLS"), "{why}");
    e.shutdown();
    t.join().unwrap();
}

#[test]
fn a_hub_restart_over_tls_restores_rooms_and_loses_no_audio() {
    let files = TlsFiles::local("engine-restart");
    restored_and_exactly_once(&restart_scenario(0, Some(&files)));
}

#[test]
fn a_missing_ca_file_is_a_start_up_error() {
    let e = EdgeEngine::start(EngineConfig {
        hub: "wss://127.0.0.1:1/".into(),
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..EngineConfig::default()
    })
    .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}
