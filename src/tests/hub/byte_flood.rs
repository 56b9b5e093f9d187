//! A flood measured in bytes: a member whose messages stay under the message
//! rate but whose bytes do not is refused, and closed with 4012 once the bytes
//! refused within the flood window pass `flood_close_bytes`; the reason names
//! that limit, and what passed before reached the room.

use crate::hub::{DropReason, HubConfig};
use crate::proto::{Kind, Role};

use super::util::{Frame, Sim, audio, config};

const RATE_LIMITED: u16 = 12;

#[test]
fn a_flood_of_bytes_is_closed_by_flood_close_bytes() {
    let mut sim = Sim::new(HubConfig {
        max_message: 4096,
        rate_bytes: 4096,
        burst_bytes: 4096,
        flood_close_bytes: 10_000,
        ..config()
    });
    let (f, h) = sim.member_of("bytes", Role::Member);
    let (w, _) = sim.member_of("bytes", Role::Viewer);
    sim.take(f);
    sim.take(w);
    let me = sim.peers[f].member;
    // ~1.9 KB chunks, no time passing: two fit the 4 KiB burst, then each is
    // refused, and the sixth refusal passes 10 000 bytes.
    let chunk_len = audio(h, me, 1).len() as u64;
    assert!((1_500..2_048).contains(&chunk_len), "{chunk_len}");
    let mut closed = None;
    for seq in 1..=20 {
        sim.send_bytes(f, &audio(h, me, seq));
        let frames = sim.take(f);
        if frames.iter().any(|fr| matches!(fr, Frame::Close(..))) {
            closed = Some((seq, frames));
            break;
        }
    }
    let (seq, frames) = closed.expect("closed within 20 chunks");
    assert_eq!(seq, 8, "2 passed, the 6th refusal closed");
    let errors: Vec<_> = frames.iter().filter_map(Frame::error).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.0 == RATE_LIMITED && e.2.contains("flood_close_bytes = 10000")),
        "the reason names the byte limit: {errors:?}"
    );
    assert!(
        matches!(frames.last(), Some(Frame::Close(4012, _))),
        "{frames:?}"
    );
    assert_eq!(sim.core.stats().drops_of(DropReason::RateLimited), 6);
    assert_eq!(
        sim.take_kind(w, Kind::Audio).len(),
        2,
        "what passed was relayed"
    );
}
