//! The relay's checks of a published message before its one copy: a pose or
//! audio message over the relay's media limit, and one whose envelope is whole
//! (CRC right) but whose payload does not decode, are refused with a code that
//! says which and reach no other member; the publisher's session goes on.

use crate::hub::DropReason;
use crate::hub::core::MAX_MEDIA;
use crate::proto::{Header, Kind, Role, seal};

use super::util::{Frame, Poses, Sim, audio};

const BAD_MESSAGE: u16 = 1;
const OVERSIZE: u16 = 13;

/// A message of `kind` with `payload` as its payload, sealed with a right CRC.
fn sealed(kind: Kind, room: u16, sender: u16, payload: &[u8]) -> Vec<u8> {
    let h = Header::new(kind, room, sender, 7, 70_000);
    let mut buf = vec![0u8; h.buffer_len() + payload.len() + 4];
    let n = h.emit(&mut buf).unwrap();
    buf[n..n + payload.len()].copy_from_slice(payload);
    let n = seal(&mut buf, n + payload.len()).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn media_over_the_relay_limit_is_refused_with_oversize() {
    let mut sim = Sim::dev();
    let (p, h) = sim.member_of("big", Role::Member);
    let (r, _) = sim.member_of("big", Role::Viewer);
    sim.take(p);
    sim.take(r);
    let me = sim.peers[p].member;
    for kind in [Kind::Pose, Kind::Audio] {
        // Within the hub's message limit, one byte over the relay's block.
        let payload = vec![0u8; MAX_MEDIA];
        let msg = sealed(kind, h, me, &payload);
        assert!(msg.len() > MAX_MEDIA);
        sim.send_bytes(p, &msg);
        let errors = sim.take_errors(p);
        assert_eq!(errors.len(), 1, "{kind:?}: {errors:?}");
        assert_eq!((errors[0].0, errors[0].1), (OVERSIZE, kind as u8));
        assert!(errors[0].2.contains("relay limit"), "{}", errors[0].2);
        assert!(
            sim.take_kind(r, kind).is_empty(),
            "{kind:?} reached a receiver"
        );
    }
    // The session goes on: the next valid frame is relayed.
    let mut poses = Poses::new(1);
    let good = poses.next(h, me);
    sim.send_bytes(p, &good);
    let got = sim.take_kind(r, Kind::Pose);
    assert!(
        matches!(&got[..], [Frame::Msg(b)] if *b == good),
        "the receiver got {} pose messages, not the one sent",
        got.len()
    );
}

#[test]
fn a_payload_that_does_not_decode_is_refused_before_the_fan_out() {
    let mut sim = Sim::dev();
    let (p, h) = sim.member_of("bad", Role::Member);
    let (r, _) = sim.member_of("bad", Role::Member);
    sim.take(p);
    sim.take(r);
    let me = sim.peers[p].member;
    // A whole envelope: the CRC is right, only the payloads are wrong.
    let pose = sealed(Kind::Pose, h, me, &[0xff; 3]);
    let mut chunk = audio(h, me, 1);
    // The audio payload cut short: its sample count promises more bytes.
    let header_len = Header::parse(&chunk).unwrap().1;
    chunk.truncate(header_len + 6);
    let n = chunk.len();
    chunk.resize(n + 4, 0);
    let short_audio = {
        let n = seal(&mut chunk, n).unwrap();
        chunk.truncate(n);
        chunk
    };
    for (kind, msg) in [(Kind::Pose, pose), (Kind::Audio, short_audio)] {
        sim.send_bytes(p, &msg);
        let errors = sim.take_errors(p);
        assert_eq!(errors.len(), 1, "{kind:?}: {errors:?}");
        assert_eq!((errors[0].0, errors[0].1), (BAD_MESSAGE, kind as u8));
        assert!(
            sim.take_kind(r, kind).is_empty(),
            "{kind:?} reached a receiver"
        );
    }
    // Refused before the audio bookkeeping: the first valid chunk, seq 1, is
    // relayed, not taken for a duplicate of the refused one.
    let before = sim.core.stats().drops_of(DropReason::DuplicateAudio);
    let ok = audio(h, me, 1);
    sim.send_bytes(p, &ok);
    assert_eq!(sim.take_kind(r, Kind::Audio).len(), 1);
    assert_eq!(
        sim.core.stats().drops_of(DropReason::DuplicateAudio),
        before
    );
}
