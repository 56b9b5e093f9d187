//! Failover through the C API: `config.hub` lists two hubs, the first of
//! which listens nowhere; the engine moves to the second, joins there, and
//! the `CONNECTED` event's `count` says which hub of the list it is on.

use crate::common::*;
use poselink::hub::HubConfig;
use poselink_capi::*;
use std::ffi::CString;

#[test]
fn the_engine_fails_over_to_the_second_hub_of_its_list() {
    let hub = TestHub::start(HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..HubConfig::local_dev()
    });
    // Port 9 (discard) on loopback: the connection is refused.
    let list = CString::new(format!("ws://127.0.0.1:9/,ws://{}/", hub.addr)).unwrap();
    let mut cfg = config(&list);
    cfg.reconnect_min_ms = 20;
    let e = Engine::new(&cfg);
    e.join(c"capi-failover", PoselinkRole::Member);
    let events = collect(&e, |ev| count(ev, PoselinkEventKind::Connected) == 1);
    let connected: Vec<u64> = events
        .iter()
        .filter(|ev| ev.kind == PoselinkEventKind::Connected)
        .map(|ev| ev.count)
        .collect();
    assert_eq!(connected, [1], "on the second hub of the list");
    assert!(
        count(&events, PoselinkEventKind::Reconnecting) >= 1,
        "after a failed attempt at the first"
    );
    e.destroy();
}
