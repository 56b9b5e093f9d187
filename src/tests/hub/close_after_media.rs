//! The close frame a connection is owed after its queued media: when the
//! last media frame has gone, the close frame goes into the control buffer;
//! if a peer that stopped reading let that buffer fill meanwhile, there is no
//! room for it, and the hub closes the transport at once as a slow consumer
//! (control is never dropped, so nothing else is owed to it).

use std::io::IoSlice;

use crate::hub::{Fault, HubConfig};
use crate::proto::Role;
use crate::ws::FrameKind;

use super::util::{Sim, audio, config};

/// The bytes the core lends connection `p` for its next write.
fn lent(sim: &mut Sim, p: usize) -> Vec<usize> {
    let mut slices = [IoSlice::new(&[]); 16];
    let k = sim.core.poll_transmit(sim.peers[p].conn, &mut slices);
    slices[..k].iter().map(|s| s.len()).collect()
}

#[test]
fn a_close_owed_after_media_that_finds_the_control_buffer_full_closes_at_once() {
    const CONTROL: usize = 8_192;
    let mut sim = Sim::new(HubConfig {
        control_buffer: CONTROL,
        ..config()
    });
    let (p, h) = sim.member_of("late", Role::Member);
    let (r, _) = sim.member_of("late", Role::Viewer);
    sim.pump();
    sim.take(r);
    assert_eq!(lent(&mut sim, r), [0usize; 0], "nothing owed to r");
    // r stops reading; one media frame is queued for it, and its socket takes
    // the first 7 bytes of that frame.
    sim.peers[r].window = 0;
    let member = sim.peers[p].member;
    sim.send_bytes(p, &audio(h, member, 1));
    let queued = lent(&mut sim, r);
    assert_eq!(queued.len(), 1, "one media frame: {queued:?}");
    let conn = sim.peers[r].conn;
    sim.core.handle_written(sim.now, conn, 7);
    // r's pings fill its control buffer with pongs, to the last byte: 64
    // pongs of 127 bytes and one of 64. They wait behind the media frame's
    // rest (a frame is not interrupted).
    for _ in 0..64 {
        let ping = sim.frame(r, FrameKind::Ping, true, &[0x5a; 125]);
        sim.feed(r, &ping);
    }
    let ping = sim.frame(r, FrameKind::Ping, true, &[0x5a; 62]);
    sim.feed(r, &ping);
    assert_eq!(lent(&mut sim, r), [queued[0] - 7, CONTROL]);
    // r closes; the hub's answer is owed after the media frame.
    let close = sim.frame(r, FrameKind::Close, true, &1000u16.to_be_bytes());
    sim.feed(r, &close);
    sim.pump();
    assert!(!sim.peers[r].closed, "the close waits for the media frame");
    assert_eq!(sim.core.stats().faults_of(Fault::SlowConsumer), 0);
    // The rest of the media frame is written: the close frame finds no room.
    sim.core.handle_written(sim.now, conn, queued[0] - 7);
    sim.pump();
    assert!(sim.peers[r].closed, "closed at once");
    assert!(!sim.peers[r].shut, "not a graceful shutdown");
    assert_eq!(sim.core.stats().faults_of(Fault::SlowConsumer), 1);
    assert!(!sim.peers[p].closed, "the publisher stays");
}
