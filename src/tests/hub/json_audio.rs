//! JSON receivers and audio bursts: a burst of audio reaches a JSON receiver
//! as it reaches a binary one (the chunks wait in the receiver's media queue
//! and are translated as its control buffer drains), and beyond `queue_depth`
//! the oldest are dropped and counted, as for a binary receiver.

use serde_json::{Value, json};

use crate::hub::{DropReason, HubConfig};
use crate::proto::{Kind, Role};
use crate::ws::FrameKind;

use super::util::{Frame, Sim, audio, config};

/// A hub with media queues of `depth`, a binary viewer and a JSON viewer in
/// room "burst", and the publisher: (sim, publisher, its room handle, binary
/// viewer, JSON viewer).
fn room_with_json_viewer(depth: usize) -> (Sim, usize, u16, usize, usize) {
    let mut sim = Sim::new(HubConfig {
        queue_depth: depth,
        ..config()
    });
    let (p, h) = sim.member_of("burst", Role::Member);
    let (b, _) = sim.member_of("burst", Role::Viewer);
    let j = sim.connect_with(true);
    for v in [
        json!({"type": "hello"}),
        json!({"type": "join", "room": "burst", "role": "viewer"}),
    ] {
        let f = sim.frame(j, FrameKind::Text, true, v.to_string().as_bytes());
        sim.write(j, &f);
    }
    let got = audio_seqs_json(&mut sim, j);
    assert!(got.is_empty());
    for q in [p, b] {
        sim.take(q);
    }
    (sim, p, h, b, j)
}

/// Sends audio chunks `seqs` from `p` in one read (a burst), while neither
/// viewer reads; then both read.
fn burst(
    sim: &mut Sim,
    p: usize,
    h: u16,
    viewers: [usize; 2],
    seqs: std::ops::RangeInclusive<u32>,
) {
    let member = sim.peers[p].member;
    for v in viewers {
        sim.peers[v].window = 0;
    }
    let mut bytes = Vec::new();
    for seq in seqs {
        let m = audio(h, member, seq);
        bytes.extend(sim.frame(p, FrameKind::Binary, true, &m));
    }
    sim.feed(p, &bytes);
    sim.pump();
    for v in viewers {
        sim.peers[v].window = usize::MAX;
    }
    sim.pump();
}

fn audio_seqs_binary(sim: &mut Sim, b: usize) -> Vec<u32> {
    sim.take_kind(b, Kind::Audio)
        .iter()
        .map(|f| f.header().unwrap().seq)
        .collect()
}

fn audio_seqs_json(sim: &mut Sim, j: usize) -> Vec<u32> {
    sim.take(j)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Text(t) => Some(serde_json::from_str::<Value>(&t).unwrap()),
            _ => None,
        })
        .filter(|v| v["type"] == "audio")
        .map(|v| {
            assert_eq!(v["samples"].as_array().unwrap().len(), 960);
            v["seq"].as_u64().unwrap() as u32
        })
        .collect()
}

/// 25 chunks back to back: the JSON viewer gets all 25, in order, as the
/// binary one does (it got 7 of 25 when its audio shared the control buffer
/// with no queue behind it).
#[test]
fn a_json_viewer_gets_an_audio_burst_whole() {
    let (mut sim, p, h, b, j) = room_with_json_viewer(32);
    burst(&mut sim, p, h, [b, j], 1..=25);
    let want: Vec<u32> = (1..=25).collect();
    assert_eq!(audio_seqs_binary(&mut sim, b), want);
    assert_eq!(audio_seqs_json(&mut sim, j), want);
    assert_eq!(sim.core.stats().drops_of(DropReason::SlowAudio), 0);
    // The queue is empty again: the next chunk goes straight through.
    burst(&mut sim, p, h, [b, j], 26..=26);
    assert_eq!(audio_seqs_json(&mut sim, j), [26]);
}

/// Beyond `queue_depth` waiting, the oldest chunks are dropped and counted for
/// the JSON viewer as for the binary one; what arrives is in order, the newest
/// kept.
#[test]
fn a_json_viewer_drops_the_oldest_audio_beyond_its_queue_and_counts_them() {
    let (mut sim, p, h, b, j) = room_with_json_viewer(8);
    burst(&mut sim, p, h, [b, j], 1..=40);
    let bin = audio_seqs_binary(&mut sim, b);
    assert_eq!(
        bin,
        (33..=40).collect::<Vec<u32>>(),
        "binary keeps the newest 8"
    );
    let js = audio_seqs_json(&mut sim, j);
    // Those translated before the control buffer filled, then the newest 8.
    assert!(js.len() >= 8, "{js:?}");
    assert!(js.windows(2).all(|w| w[0] < w[1]), "in order: {js:?}");
    assert_eq!(js[js.len() - 8..], bin[..], "the newest 8 kept: {js:?}");
    let dropped = sim.core.stats().drops_of(DropReason::SlowAudio);
    assert_eq!(
        dropped as usize,
        (40 - bin.len()) + (40 - js.len()),
        "every chunk is delivered or counted"
    );
}

/// A burst larger than the queue, in one read, to viewers whose sockets take
/// what they are given (seconds of audio a publisher queued through an outage
/// and sends at once on reconnect): the hub writes each viewer's queue out as
/// it fills instead of pushing its oldest chunks out, so both viewers get all
/// 40 in order and nothing is dropped. (It pushed out the oldest 32 of 40 here
/// when every message of a read was relayed before any output was written.)
#[test]
fn a_burst_beyond_the_queue_reaches_viewers_that_read() {
    let (mut sim, p, h, b, j) = room_with_json_viewer(8);
    let member = sim.peers[p].member;
    let mut bytes = Vec::new();
    for seq in 1..=40 {
        let m = audio(h, member, seq);
        bytes.extend(sim.frame(p, FrameKind::Binary, true, &m));
    }
    sim.feed(p, &bytes);
    sim.pump();
    let want: Vec<u32> = (1..=40).collect();
    assert_eq!(audio_seqs_binary(&mut sim, b), want);
    assert_eq!(audio_seqs_json(&mut sim, j), want);
    assert_eq!(sim.core.stats().drops_of(DropReason::SlowAudio), 0);
    // The publisher's acknowledgement (at the next tick) covers every chunk:
    // each was relayed.
    sim.advance(100);
    let acked = sim
        .take(p)
        .iter()
        .filter_map(super::util::ack)
        .filter(|&(_, kind, _)| kind == Kind::Audio as u8)
        .map(|(_, _, seq)| seq)
        .max();
    assert_eq!(acked, Some(40));
}
