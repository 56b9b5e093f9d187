//! Malformed messages in bulk: each is refused and counted, but answered only
//! in a sample (a burst of answers, then a few a second), so a peer sending
//! garbage in bulk is not closed as a slow consumer by the hub's own answers;
//! the next answer says how many went unanswered, and the session goes on.

use crate::proto::{Header, Kind, Message, Ping, Role, encode_control};
use crate::ws::FrameKind;

use super::util::{Frame, Sim};

/// A ping whose checksum is wrong.
fn corrupt_ping() -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let n = encode_control(
        &Header::new(Kind::Ping, 0, 0, 1, 0),
        &Message::Ping(Ping { t0_us: 7 }),
        &mut buf,
    )
    .unwrap();
    buf.truncate(n);
    buf[n - 1] ^= 0xff;
    buf
}

#[test]
fn three_hundred_malformed_messages_get_a_sample_of_answers_not_a_close() {
    let mut sim = Sim::dev();
    let (p, _) = sim.member_of("bulk", Role::Member);
    sim.take(p);
    let bad = corrupt_ping();
    let mut bytes = Vec::new();
    for _ in 0..300 {
        bytes.extend(sim.frame(p, FrameKind::Binary, true, &bad));
    }
    sim.feed(p, &bytes);
    sim.pump();
    let errors = sim.take_errors(p);
    assert!(
        (1..=16).contains(&errors.len()),
        "a sample of answers, not 300: {}",
        errors.len()
    );
    assert!(errors.iter().all(|e| e.0 == 1), "BAD_MESSAGE: {errors:?}");
    assert!(!sim.peers[p].closed && !sim.peers[p].shut, "still open");
    assert_eq!(sim.core.stats().errors[1], 300, "every one counted");

    // Answers refill; the next says how many went unanswered.
    sim.advance(1_000);
    let f = sim.frame(p, FrameKind::Binary, true, &bad);
    sim.write(p, &f);
    let errors = sim.take_errors(p);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .2
            .contains(&format!("{} more malformed", 300 - 16)),
        "{errors:?}"
    );
    // The session goes on: a valid ping is answered.
    let ping = {
        let mut buf = vec![0u8; 64];
        let n = encode_control(
            &Header::new(Kind::Ping, 0, 0, 2, 0),
            &Message::Ping(Ping { t0_us: 9 }),
            &mut buf,
        )
        .unwrap();
        buf.truncate(n);
        buf
    };
    sim.send_bytes(p, &ping);
    let pong = sim.next_msg(p, |k| k == Kind::Pong);
    assert!(matches!(pong, Some(Frame::Msg(_))), "{pong:?}");
}
