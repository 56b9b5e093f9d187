//! The WebSocket framing and token harnesses of the fuzz targets `ws_frames` and
//! `token` (`fuzz/src/ws_harness.rs`, `fuzz/src/token_harness.rs`), driven on
//! stable Rust: random streams, and streams of valid frames mutated; random
//! claims, and valid claims mutated.

use proptest::prelude::*;

use super::config;

#[allow(dead_code)]
#[path = "../../../fuzz/src/ws_harness.rs"]
mod ws_harness;

#[allow(dead_code)]
#[path = "../../../fuzz/src/token_harness.rs"]
mod token_harness;

/// A stream of valid frames from one end: `select`'s low bit picks the end (as
/// in the harness), then frames of every kind with payloads of 0–300 bytes and
/// all three length encodings.
fn valid_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        prop::collection::vec((0u8..6, any::<bool>(), 0usize..300, any::<[u8; 4]>()), 1..8),
    )
        .prop_map(|(select, frames)| {
            use poselink::ws::{FrameKind, mask_payload, write_client_header, write_header};
            // The largest limit, so that most of these are accepted.
            let select = select | 0b110;
            let mut out = vec![select];
            for (kind, fin, len, mask) in frames {
                let kind = [
                    FrameKind::Binary,
                    FrameKind::Text,
                    FrameKind::Continuation,
                    FrameKind::Ping,
                    FrameKind::Pong,
                    FrameKind::Close,
                ][usize::from(kind)];
                let (fin, len) = if kind.is_control() {
                    (true, len.min(125))
                } else {
                    (fin, len)
                };
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut frame = vec![0u8; 14 + len];
                let n = if select & 1 == 1 {
                    write_header(&mut frame, kind, fin, len).unwrap()
                } else {
                    write_client_header(&mut frame, kind, fin, len, mask).unwrap()
                };
                frame[n..n + len].copy_from_slice(&payload);
                if select & 1 == 0 {
                    mask_payload(&mut frame[n..n + len], mask);
                }
                frame.truncate(n + len);
                out.extend_from_slice(&frame);
            }
            out
        })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn random_streams_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        ws_harness::run(&data);
    }

    #[test]
    fn valid_streams_parse_and_mutations_never_panic(
        stream in valid_stream(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let clean = ws_harness::run(&stream);
        // Close payloads of arbitrary bytes may end a stream early; the rest
        // is read whole.
        prop_assert!(clean.frames >= 1, "{clean:?}");
        let mut mutated = stream.clone();
        for (at, x) in flips {
            let i = at.index(mutated.len());
            mutated[i] ^= x;
        }
        ws_harness::run(&mutated);
    }

    #[test]
    fn arbitrary_tokens_and_claims_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        token_harness::run(&data);
    }

    #[test]
    fn valid_claims_verify_and_mutations_never_panic(
        exp in (token_harness::NOW + 1)..u64::from(u32::MAX),
        sub in "[a-z][a-z0-9-]{0,20}",
        room in "(studio-\\*|kitchen|\\*|a)",
        role in prop::sample::select(vec!["owner", "member", "viewer"]),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let claims = format!(
            r#"{{"sub":"{sub}","exp":{exp},"rooms":[{{"room":"{room}","role":"{role}"}}]}}"#
        );
        let out = token_harness::run(claims.as_bytes());
        prop_assert!(out.signed_ok, "valid claims did not verify: {claims}");
        let mut mutated = claims.into_bytes();
        for (at, x) in flips {
            let i = at.index(mutated.len());
            mutated[i] ^= x;
        }
        token_harness::run(&mutated);
    }
}
