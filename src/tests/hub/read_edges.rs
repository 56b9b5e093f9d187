//! The hub core's reads and writes at their edges, in simulation: a read that
//! holds a whole message and the first fragment of the next (the fragment is
//! moved to the front of the buffer and assembled there); a frame header that
//! arrives in pieces, and one with a reserved opcode; a receiver that takes a
//! few bytes per write; and a driver that reports reads or writes for a
//! connection that is gone or never was (lent nothing, changes nothing).

use crate::hub::core::ConnId;
use crate::proto::{Kind, Role};
use crate::ws::FrameKind;

use super::util::{Frame, Poses, Sim};

#[test]
fn a_fragment_behind_a_whole_message_in_one_read_is_assembled() {
    let mut sim = Sim::dev();
    let (p, h) = sim.member_of("frag", Role::Member);
    let (r, _) = sim.member_of("frag", Role::Viewer);
    sim.take(p);
    sim.take(r);
    let me = sim.peers[p].member;
    let mut poses = Poses::new(1);
    let first = poses.next(h, me);
    let second = poses.next(h, me);
    let (a, b) = second.split_at(second.len() / 2);
    // One read: the first message whole, then the second's first fragment.
    let mut read = sim.frame(p, FrameKind::Binary, true, &first);
    read.extend(sim.frame(p, FrameKind::Binary, false, a));
    sim.write(p, &read);
    let got = sim.take_kind(r, Kind::Pose);
    assert!(
        matches!(&got[..], [Frame::Msg(m)] if *m == first),
        "{got:?}"
    );
    // The rest in the next read completes the second message.
    let rest = sim.frame(p, FrameKind::Continuation, true, b);
    sim.write(p, &rest);
    let got = sim.take_kind(r, Kind::Pose);
    assert!(
        matches!(&got[..], [Frame::Msg(m)] if *m == second),
        "{got:?}"
    );
    assert!(sim.take_errors(p).is_empty());
}

#[test]
fn reads_for_a_closed_or_unknown_connection_change_nothing() {
    let mut sim = Sim::dev();
    let (p, _) = sim.member_of("gone", Role::Member);
    let (r, _) = sim.member_of("gone", Role::Member);
    let conn = sim.peers[p].conn;
    sim.hang_up(p);
    sim.take(r);
    assert_eq!(sim.core.member(conn), None);
    let open = sim.core.connections();
    // The freed slot, and a slot past the table, are lent no buffer.
    let unknown = ConnId::new(10_000);
    for c in [conn, unknown] {
        assert!(sim.core.recv_buffer(c).is_empty(), "{c:?}");
        // A driver that reports bytes either way anyway changes nothing.
        assert!(!sim.core.handle_received(sim.now, c, 64), "{c:?}");
        sim.core.handle_written(sim.now, c, 64);
        assert_eq!(sim.core.poll_event(), None, "{c:?}");
    }
    sim.pump();
    assert_eq!(sim.core.connections(), open);
    assert!(sim.take(r).is_empty(), "the other member heard nothing");
}

#[test]
fn a_receiver_reading_seven_bytes_a_write_gets_every_message_whole() {
    let mut sim = Sim::dev();
    let (p, h) = sim.member_of("trickle", Role::Member);
    let (r, _) = sim.member_of("trickle", Role::Viewer);
    sim.take(p);
    sim.take(r);
    sim.peers[r].window = 7;
    let me = sim.peers[p].member;
    let mut poses = Poses::new(1);
    let sent: Vec<Vec<u8>> = (0..3).map(|_| poses.next(h, me)).collect();
    for m in &sent {
        sim.send_bytes(p, m);
    }
    // Every message spans many writes: each write ends inside a message.
    assert!(sent.iter().all(|m| m.len() > 2 * 7));
    for _ in 0..10 {
        sim.pump();
    }
    let got: Vec<Vec<u8>> = sim
        .take_kind(r, Kind::Pose)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Msg(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(got, sent);
}

#[test]
fn a_frame_header_is_read_whole_before_it_is_judged() {
    let mut sim = Sim::dev();
    let p = sim.session();
    sim.take(p);
    // A masked binary frame announcing a 64-bit length: two bytes say only
    // that eight more length bytes and a mask follow. Nothing is judged yet.
    sim.write(p, &[0x82, 0x80 | 127]);
    assert!(sim.take(p).is_empty(), "answered a partial header");
    // The rest of the header: 2^40 bytes, over the message limit.
    let mut rest = (1u64 << 40).to_be_bytes().to_vec();
    rest.extend([1, 2, 3, 4]);
    sim.write(p, &rest);
    assert_eq!(sim.close_of(p).map(|c| c.0), Some(1009));

    // A reserved opcode (0x3) is a protocol error: 1002.
    let q = sim.session();
    sim.take(q);
    sim.write(q, &[0x83, 0x80, 1, 2, 3, 4]);
    assert_eq!(sim.close_of(q).map(|c| c.0), Some(1002));
}
