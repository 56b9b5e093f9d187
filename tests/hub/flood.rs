//! A flooder over a real socket on 127.0.0.1, beside an honest publisher and
//! viewer (issue #17's attack, bounded): a thread writes pings as fast as the
//! socket takes them, so that the hub's rate limit lets one through now and
//! then. The hub must close it with 4012 `RATE_LIMITED` within a few seconds (a
//! rate of refusals, not a run of them), and the honest pair must get every
//! pose. What the hub decides is simulated in `src/tests/hub/wire.rs`; here it
//! is the driver's side: the flooder's bytes read in a bounded share per loop
//! turn, the close reaching a socket that is still being written to.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::*;
use poselink::hub::HubConfig;
use poselink::proto::{Header, Kind, Message, Ping, Role, encode_control};
use poselink::ws::{FrameKind, mask_payload, write_client_header};

/// The longest the flooder may stay connected once it starts.
const CLOSED_WITHIN: Duration = Duration::from_secs(3);
/// The flooder's bounds: it stops at whichever comes first.
const FLOOD_FOR: Duration = Duration::from_secs(10);
const FLOOD_BATCHES: usize = 20_000;
/// Poses the publisher sends, at 30 a second.
const POSES: usize = 45;

/// `n` masked binary frames, each a ping from `sender`.
fn ping_frames(sender: u16, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut msg = [0u8; 64];
    let mut head = [0u8; 14];
    for k in 0..n {
        let h = Header::new(Kind::Ping, 0, sender, k as u32, 0);
        let ping = Message::Ping(Ping { t0_us: k as u64 });
        let len = encode_control(&h, &ping, &mut msg).unwrap();
        let mask = (k as u32).wrapping_mul(0x9e37_79b9).to_le_bytes();
        let hl = write_client_header(&mut head, FrameKind::Binary, true, len, mask).unwrap();
        mask_payload(&mut msg[..len], mask);
        out.extend_from_slice(&head[..hl]);
        out.extend_from_slice(&msg[..len]);
    }
    out
}

/// Writes `frames` into the flooder's socket until the hub closes it, `stop` is
/// set, or the bounds run out; returns how many batches went.
fn flood(
    mut tcp: std::net::TcpStream,
    frames: Vec<u8>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        tcp.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let end = Instant::now() + FLOOD_FOR;
        let mut sent = 0;
        while sent < FLOOD_BATCHES && Instant::now() < end && !stop.load(Ordering::Relaxed) {
            match tcp.write_all(&frames) {
                Ok(()) => sent += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break, // closed by the hub
            }
        }
        sent
    })
}

#[test]
fn a_flooder_is_closed_with_4012_while_an_honest_pair_gets_every_pose() {
    let hub = TestHub::start(HubConfig {
        // No WebSocket pings from the hub: the flooder's socket is written by
        // two threads, and only the flood may go on it.
        heartbeat_ms: 60_000,
        ..HubConfig::local_dev()
    });
    let mut publisher = Client::session(hub.addr, "");
    let mut viewer = Client::session(hub.addr, "");
    let h = publisher.join("gym", Role::Member).unwrap();
    assert_eq!(viewer.join("gym", Role::Viewer).unwrap(), h);

    let mut flooder = Client::session(hub.addr, "");
    let tcp = flooder.ws.get_ref().tcp().try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let writer = flood(tcp, ping_frames(flooder.member, 1_000), stop.clone());

    // The honest publisher, during the flood, on its own thread.
    let member = publisher.member;
    let publishing = std::thread::spawn(move || {
        let mut poses = PoseStream::new(17);
        let mut sent = Vec::new();
        for _ in 0..POSES {
            let m = poses.next(h, member).to_vec();
            publisher.send_bytes(&m);
            sent.push(m);
            std::thread::sleep(Duration::from_millis(33));
        }
        (publisher, sent)
    });

    let (code, why) = flooder.expect_close(CLOSED_WITHIN);
    let closed_after = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let batches = writer.join().unwrap();
    assert_eq!(code, 4012, "{why}");
    assert!(why.contains("flood"), "{why}");
    assert!(
        closed_after <= CLOSED_WITHIN,
        "closed after {closed_after:?}"
    );
    assert!(batches >= 1, "the flood went out");
    assert!(hub.metric("poselink_drops_total{reason=\"rate_limited\"}") >= 1_000.0);

    let (publisher, sent) = publishing.join().unwrap();
    let mut got = Vec::new();
    while got.len() < sent.len() {
        match viewer.recv_until(Duration::from_secs(5), |g| g.kind() == Kind::Pose) {
            Some(g) => got.push(g.bytes),
            None => break,
        }
    }
    assert_eq!(got.len(), sent.len(), "every pose arrives");
    assert!(got == sent, "in order, byte for byte");
    assert!(publisher.closed.is_none() && viewer.closed.is_none());
}
