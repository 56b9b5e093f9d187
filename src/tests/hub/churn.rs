//! Churn in simulation: thousands of connect → hello → join → (publish) →
//! leave cycles, ending every way a connection ends (a clean close handshake,
//! a vanished peer, a leave then a close), beside an honest publisher and
//! viewer, and a watcher in every churn room (so the churn's media is
//! relayed and its keyframes cached). Afterwards every table is back where it was before the churn: the
//! connections, sessions, rooms, relay blocks and queues the core reports;
//! and the honest viewer got every frame.

use crate::proto::{Kind, Leave, Message, Role};
use crate::ws::FrameKind;

use super::util::{Poses, Sim, config};
use crate::hub::HubConfig;

const CYCLES: usize = 4_000;

#[test]
fn four_thousand_churned_sessions_give_every_resource_back() {
    let mut sim = Sim::new(HubConfig {
        max_connections: 16,
        max_rooms: 16,
        ..config()
    });
    let (publisher, h) = sim.member_of("steady", Role::Member);
    let (viewer, _) = sim.member_of("steady", Role::Viewer);
    let mut poses = Poses::new(30);
    let pm = sim.peers[publisher].member;
    let first = poses.next(h, pm);
    sim.send_bytes(publisher, &first);
    sim.take(viewer);
    // A watcher in every churn room, so the churn's media is relayed (and its
    // publishers' keyframes cached).
    let watcher = sim.session();
    for r in 0..8 {
        sim.join(watcher, &format!("churn-{r}"), Role::Viewer)
            .expect("joined");
    }
    // Empty rooms of the churn expire after the grace period: let the
    // baseline's own settle first.
    sim.advance(100);
    let baseline = sim.core.gauges();
    let mut sent = 1;

    for k in 0..CYCLES {
        let (p, ch) = sim.member_of(&format!("churn-{}", k % 8), Role::Member);
        let member = sim.peers[p].member;
        if k % 3 == 0 {
            // A publisher: its keyframe is cached, then freed when it goes.
            let mut own = Poses::new(1);
            let m = own.next(ch, member);
            sim.send_bytes(p, &m);
        }
        match k % 4 {
            0 => sim.hang_up(p),
            1 => {
                let f = sim.frame(p, FrameKind::Close, true, &1000u16.to_be_bytes());
                sim.write(p, &f);
                sim.hang_up(p);
            }
            2 => {
                sim.send(
                    p,
                    ch,
                    &Message::Leave(Leave {
                        room: &format!("churn-{}", k % 8),
                    }),
                );
                sim.hang_up(p);
            }
            _ => {
                // Vanishes mid-message: half a frame in its receive buffer.
                let f = sim.frame(p, FrameKind::Binary, true, &[0u8; 400]);
                sim.feed(p, &f[..200]);
                sim.hang_up(p);
            }
        }
        if k % 100 == 0 {
            sim.take(watcher);
        }
        if k % 40 == 0 {
            let m = poses.next(h, pm);
            sim.send_bytes(publisher, &m);
            sent += 1;
            sim.advance(20);
        }
    }
    assert_eq!(sim.core.stats().sessions_opened, CYCLES as u64 + 3);
    let during = sim.core.gauges();
    let relayed = sim.take_kind(watcher, Kind::Pose).len();
    assert!(relayed > 0 && during.blocks_in_use >= baseline.blocks_in_use);
    // Past the rooms' grace period and the resumable sessions'.
    sim.advance(6_000);
    let after = sim.core.gauges();
    assert_eq!(
        (after.connections, after.sessions, after.rooms),
        (baseline.connections, baseline.sessions, baseline.rooms),
        "connections, sessions and rooms back to baseline: {baseline:?} → {after:?}"
    );
    assert_eq!(
        (after.blocks_in_use, after.queued),
        (baseline.blocks_in_use, baseline.queued),
        "relay blocks and queues back to baseline: {baseline:?} → {after:?}"
    );
    let got = sim.take_kind(viewer, Kind::Pose).len();
    assert_eq!(
        got,
        sent - 1,
        "the honest viewer got every frame sent after it joined"
    );
    assert!(!sim.peers[publisher].closed && !sim.peers[viewer].closed);
}
