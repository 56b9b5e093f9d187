//! The client session's byte paths at their edges, in simulation: the
//! transmit buffer after a partial write (the bytes still waiting move to its
//! front when the next frame does not fit behind them), a server frame that
//! breaks RFC 6455, more audio streams than the receiver tracks, and a pose
//! that parses but does not decode.

use super::{Seen, Sim, cfg, frame};
use crate::client::{Receive, RoomId, SessionConfig, Transport};
use crate::proto::{
    AudioChunk, Compressor, EncoderConfig, Flags, Header, KEYFRAME_BODY_LEN, Kind, PoseEncoder,
    Role, encode_audio, seal,
};

/// Chunk `seq` of `len` mono samples of a pseudo-random signal.
fn noise(seq: u32, len: u16) -> AudioChunk {
    let mut c = AudioChunk::silence(48_000, 1, len);
    c.seq = seq;
    c.capture_ts_us = u64::from(seq) * 20_000;
    let mut x = seq.wrapping_mul(2_654_435_761) | 1;
    for s in &mut c.samples[..len as usize] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *s = x as i16;
    }
    c
}

/// The transmit buffer's size in the tests of its compaction.
const CAP: usize = 4096;

/// A session with a `CAP`-byte transmit buffer and no compression, joined to
/// `room` as a member, nothing waiting to be written.
fn small_buffer_session(room: &str) -> (Sim, RoomId) {
    let mut sim = Sim::new(SessionConfig {
        tx_capacity: CAP,
        encoder: EncoderConfig {
            compress_threshold: usize::MAX,
            ..EncoderConfig::default()
        },
        ..cfg()
    });
    let room = sim.session.join(0, room, Role::Member).unwrap();
    sim.run(10_000, 1_000);
    assert!(sim.session.can_send());
    assert_eq!(sim.session.transmit_pending(), 0);
    (sim, room)
}

/// The socket takes the first `n` waiting bytes only; the hub reads them.
fn write_only(sim: &mut Sim, n: usize) {
    let out = sim.session.poll_transmit().to_vec();
    sim.session.handle_written(n);
    sim.hub.feed(sim.now, &out[..n]);
}

#[test]
fn waiting_bytes_move_to_the_front_when_the_next_frame_does_not_fit_behind_them() {
    let (mut sim, room) = small_buffer_session("tx");
    // Nothing is written while the buffer fills: two full chunks, then one
    // sized to leave 40 bytes behind it, too few for any frame.
    sim.session.send_audio(room, &noise(1, 960)).unwrap();
    let first = sim.session.transmit_pending();
    let framing = first - 2 * 960;
    sim.session.send_audio(room, &noise(2, 960)).unwrap();
    let left = CAP - 2 * first;
    let len = (left - 40 - framing) / 2;
    assert!((63..=960).contains(&len), "{len}");
    sim.session.send_audio(room, &noise(3, len as u16)).unwrap();
    let behind = CAP - sim.session.transmit_pending();
    assert!(behind < 64, "{behind} bytes left behind the frames");
    // The socket takes the first frame only.
    write_only(&mut sim, first);
    // The next chunk fits only once the waiting frames move to the front.
    sim.session
        .send_audio(room, &noise(4, 960))
        .expect("room at the front of the buffer");
    sim.run(2_000, 1_000);
    let seqs: Vec<u32> = sim.hub.audio().iter().map(|a| a.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "every frame intact, in order");
    assert_eq!(sim.session.transmit_pending(), 0);
}

/// The same with more bytes left behind the frames than the smallest message
/// needs (196) but fewer than the next chunk does: the waiting bytes still
/// move to the front, and the chunk is sent. (The buffer made room only for
/// 64 bytes, the encoder then found too little behind the tail, and the
/// session refused the chunk as `TransmitFull` with 2 146 bytes free; the
/// engine dropped it with a warning, audio it promises to keep.)
#[test]
fn a_chunk_that_does_not_fit_behind_the_frames_is_not_refused_while_the_front_is_free() {
    let (mut sim, room) = small_buffer_session("tx196");
    sim.session.send_audio(room, &noise(1, 960)).unwrap();
    let first = sim.session.transmit_pending();
    let framing = first - 2 * 960;
    let len = (CAP - first - 196 - framing) / 2;
    sim.session.send_audio(room, &noise(2, len as u16)).unwrap();
    let behind = CAP - sim.session.transmit_pending();
    assert!(
        (150..first).contains(&behind),
        "{behind} bytes left behind the frames"
    );
    write_only(&mut sim, first);
    sim.session
        .send_audio(room, &noise(3, 960))
        .expect("room at the front of the buffer");
    sim.run(2_000, 1_000);
    let seqs: Vec<u32> = sim.hub.audio().iter().map(|a| a.0).collect();
    assert_eq!(seqs, [1, 2, 3], "every frame intact, in order");
}

#[test]
fn a_masked_frame_from_the_hub_ends_the_connection() {
    let mut sim = Sim::new(cfg());
    sim.session.join(0, "rfc", Role::Viewer).unwrap();
    sim.run(10_000, 1_000);
    assert!(sim.session.is_connected());
    sim.take();
    // RFC 6455 §5.1: a server must not mask its frames.
    sim.hub
        .outbox
        .extend_from_slice(&[0x82, 0x81, 1, 2, 3, 4, 0x55]);
    sim.run(1_000, 1_000);
    let seen = sim.take();
    assert!(
        matches!(&seen[0], Seen::Disconnected(r) if r.starts_with("WebSocket error from the hub")),
        "{seen:?}"
    );
    assert_eq!(
        sim.session.poll_transport(),
        Some(Transport::Close),
        "the session asks its driver to close"
    );
    assert!(!sim.session.is_connected());
}

#[test]
fn past_its_bound_the_receiver_forgets_the_oldest_audio_stream() {
    const STREAMS: u16 = 3;
    let mut sim = Sim::new(SessionConfig {
        receive: Receive::Decode {
            decoders: STREAMS as usize,
        },
        ..cfg()
    });
    let handle = sim.viewer_of("ears");
    let mut compressor = Compressor::new(usize::MAX);
    let mut wire = [0u8; 4096];
    let mut send = |sim: &mut Sim, sender: u16, seq: u32| {
        let n = encode_audio(&noise(seq, 960), handle, sender, &mut compressor, &mut wire).unwrap();
        sim.hub.send_bytes(&wire[..n]);
        sim.run(1_000, 1_000);
    };
    // One sender more than the receiver tracks: 100 is forgotten when 103
    // comes.
    for sender in 100..=100 + STREAMS {
        send(&mut sim, sender, 1);
    }
    // Replays of chunk 1, newest stream first: the three tracked streams know
    // it; stream 100's is taken as new.
    for sender in (100..=100 + STREAMS).rev() {
        send(&mut sim, sender, 1);
    }
    let mut expected: Vec<Seen> = (100..=100 + STREAMS).map(|s| Seen::Audio(s, 1)).collect();
    expected.push(Seen::Audio(100, 1));
    assert_eq!(sim.take(), expected);
    assert_eq!(sim.session.stats().audio_duplicates, u64::from(STREAMS));
    // Stream 100 is followed again; its next chunk comes out once.
    send(&mut sim, 100, 2);
    send(&mut sim, 100, 2);
    assert_eq!(sim.take(), [Seen::Audio(100, 2)]);
}

#[test]
fn a_keyframe_out_of_range_is_dropped_without_asking_for_another() {
    let mut sim = Sim::new(cfg());
    let handle = sim.viewer_of("range");
    // A well-formed envelope and pose payload (person 0, a keyframe of the
    // right length) whose coordinates are all above the quantiser's range.
    let mut h = Header::new(Kind::Pose, handle, 42, 1, 16_000);
    h.flags = Flags::KEYFRAME;
    let mut bad = [0u8; 512];
    let hl = h.emit(&mut bad).unwrap();
    bad[hl] = 0; // person, as a varint
    bad[hl + 1..hl + 1 + KEYFRAME_BODY_LEN].fill(0xff);
    let n = seal(&mut bad, hl + 1 + KEYFRAME_BODY_LEN).unwrap();
    sim.hub.send_bytes(&bad[..n]);
    sim.run(2_000, 1_000);
    assert!(sim.take().is_empty(), "nothing surfaces");
    let asked: Vec<(u16, u32)> = sim.hub.got.iter().filter_map(|g| g.asked).collect();
    assert_eq!(asked, [], "a malformed keyframe is not a missing one");
    assert!(sim.session.is_connected());
    // The sender's next good keyframe decodes.
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut buf = [0u8; 2048];
    let n = enc.encode(&frame(2), handle, 42, &mut buf).unwrap();
    sim.hub.send_bytes(&buf[..n]);
    sim.run(1_000, 1_000);
    assert_eq!(sim.take(), [Seen::Pose(42, 2)]);
}
