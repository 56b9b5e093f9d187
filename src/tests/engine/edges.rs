//! The client session at the edges of its send and receive paths, in
//! simulation: what it refuses to send (no session yet, one person too many),
//! what it does with a message from the hub that does not check or does not
//! parse (nothing, and the stream goes on), and how a receiver that follows
//! more pose streams than it has decoders forgets the least recently used one,
//! which then waits for a keyframe instead of decoding garbage.

use super::{Seen, Sim, cfg, frame};
use crate::client::{Receive, SendError, SessionConfig};
use crate::proto::{EncoderConfig, Header, Kind, PoseEncoder, Role, seal};

#[test]
fn nothing_is_sent_before_the_welcome_nor_past_max_persons() {
    let mut sim = Sim::new(SessionConfig {
        max_persons: 2,
        ..cfg()
    });
    let room = sim.session.join(0, "edges", Role::Member).unwrap();
    assert_eq!(
        sim.session.send_pose(room, &frame(1)),
        Err(SendError::NotConnected)
    );
    sim.run(10_000, 1_000);
    assert!(sim.session.is_connected());
    let mut f = frame(2);
    for person in 0..2 {
        f.person = person;
        assert!(sim.session.send_pose(room, &f).is_ok(), "person {person}");
    }
    f.person = 2;
    assert_eq!(
        sim.session.send_pose(room, &f),
        Err(SendError::TooManyPersons)
    );
    // The persons it has encoders for go on.
    f.person = 1;
    f.seq = 3;
    assert!(sim.session.send_pose(room, &f).is_ok());
    sim.run(2_000, 1_000);
    assert_eq!(sim.hub.count(Kind::Pose), 3);
}

#[test]
fn a_bad_message_from_the_hub_is_skipped_and_the_stream_goes_on() {
    let mut sim = Sim::new(cfg());
    let handle = sim.viewer_of("skip");
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut buf = [0u8; 2048];
    let n = enc.encode(&frame(1), handle, 42, &mut buf).unwrap();
    // A flipped bit: the CRC does not match.
    let mut corrupt = buf[..n].to_vec();
    corrupt[n / 2] ^= 0x10;
    sim.hub.send_bytes(&corrupt);
    // A whole envelope (right CRC) whose pose payload does not parse.
    let h = Header::new(Kind::Pose, handle, 42, 2, 32_000);
    let mut bad = [0u8; 64];
    let hl = h.emit(&mut bad).unwrap();
    bad[hl..hl + 3].copy_from_slice(&[0xff, 0xff, 0xff]);
    let bl = seal(&mut bad, hl + 3).unwrap();
    sim.hub.send_bytes(&bad[..bl]);
    sim.run(1_000, 1_000);
    assert!(sim.take().is_empty(), "nothing surfaces from either");
    // The good copy after them decodes.
    sim.hub.send_bytes(&buf[..n]);
    sim.run(1_000, 1_000);
    assert_eq!(sim.take(), [Seen::Pose(42, 1)]);
    assert!(sim.session.is_connected());
}

#[test]
fn the_least_recently_used_stream_is_forgotten_and_resyncs_at_a_keyframe() {
    const DECODERS: u16 = 3;
    let mut sim = Sim::new(SessionConfig {
        receive: Receive::Decode {
            decoders: DECODERS as usize,
        },
        ..cfg()
    });
    let handle = sim.viewer_of("many");
    // One more publisher than decoders, each opening with a keyframe; sender
    // 100 is the least recently used when sender 103 arrives.
    let mut encoders: Vec<PoseEncoder> = (0..=DECODERS)
        .map(|_| PoseEncoder::new(EncoderConfig::default()))
        .collect();
    let mut buf = [0u8; 2048];
    for (k, enc) in encoders.iter_mut().enumerate() {
        let n = enc
            .encode(&frame(1), handle, 100 + k as u16, &mut buf)
            .unwrap();
        sim.hub.send_bytes(&buf[..n]);
        sim.run(1_000, 1_000);
    }
    let decoded: Vec<Seen> = (0..=DECODERS).map(|k| Seen::Pose(100 + k, 1)).collect();
    assert_eq!(sim.take(), decoded, "every keyframe decodes");
    // Sender 100's next delta finds no decoder with its reference: it asks for
    // a keyframe rather than decode against another stream's state.
    let n = encoders[0]
        .encode(&frame(2), handle, 100, &mut buf)
        .unwrap();
    sim.hub.send_bytes(&buf[..n]);
    // A step to receive it, another for the request to reach the hub.
    sim.run(2_000, 1_000);
    assert!(
        sim.take().is_empty(),
        "the forgotten stream's delta is not decoded"
    );
    let asked: Vec<(u16, u32)> = sim.hub.got.iter().filter_map(|g| g.asked).collect();
    assert_eq!(asked, [(100, 0)]);
    // Sender 103, the most recent, still decodes its delta.
    let n = encoders[3]
        .encode(&frame(2), handle, 103, &mut buf)
        .unwrap();
    sim.hub.send_bytes(&buf[..n]);
    sim.run(1_000, 1_000);
    assert_eq!(sim.take(), [Seen::Pose(103, 2)]);
}
