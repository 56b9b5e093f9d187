//! The harnesses of the fuzz targets `control`, `room_registry`,
//! `http_upgrade` and `json_mode` (`fuzz/src/*_harness.rs`), driven on stable
//! Rust: random inputs, valid inputs, and valid inputs mutated. Each property
//! also checks that its valid inputs reach what they are meant to (a control
//! payload parses, an upgrade is answered, a JSON pose reaches the binary
//! member), so that a harness that silently stopped exercising its parser
//! fails here.

use proptest::prelude::*;
use proptest::sample::Index;

use poselink::proto::{Header, Kind, Packet, encode_control};

use super::{config, ctl, header};

#[allow(dead_code)]
#[path = "../../../fuzz/src/control_harness.rs"]
mod control_harness;

#[allow(dead_code)]
#[path = "../../../fuzz/src/room_harness.rs"]
mod room_harness;

#[allow(dead_code)]
#[path = "../../../fuzz/src/http_harness.rs"]
mod http_harness;

#[allow(dead_code)]
#[path = "../../../fuzz/src/json_harness.rs"]
mod json_harness;

/// Flips, sets or drops bytes of `bytes` at the given positions.
fn mutate(bytes: &mut Vec<u8>, edits: &[(Index, u8)]) {
    for (i, b) in edits {
        if bytes.is_empty() {
            bytes.push(*b);
            continue;
        }
        let at = i.index(bytes.len());
        match b % 4 {
            0 => bytes[at] ^= 1 << (b >> 5),
            1 => bytes[at] = *b,
            2 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, *b),
        }
    }
}

fn edits() -> impl Strategy<Value = Vec<(Index, u8)>> {
    prop::collection::vec((any::<Index>(), any::<u8>()), 0..4)
}

// ---------------------------------------------------------------------------
// control
// ---------------------------------------------------------------------------

/// The payload of a valid control message.
fn control_payload() -> impl Strategy<Value = Vec<u8>> {
    (ctl(), header()).prop_map(|(c, h)| {
        let msg = c.message();
        let mut buf = vec![0u8; 4096];
        let n = encode_control(&h, &msg, &mut buf).unwrap();
        Packet::new_checked(&buf[..n]).unwrap().payload().to_vec()
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn control_random_payloads_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        control_harness::run(&data);
    }

    #[test]
    fn control_payloads_parse_and_mutations_never_panic(p in control_payload(), e in edits()) {
        prop_assert!(control_harness::run(&p).parsed >= 1, "a valid payload parsed as no kind");
        let mut m = p.clone();
        mutate(&mut m, &e);
        control_harness::run(&m);
    }
}

/// Every control kind's own payload parses, as that kind and uncompressed.
#[test]
fn control_kinds_are_every_kind_but_media() {
    let kinds: Vec<Kind> = control_harness::control_kinds().collect();
    assert_eq!(kinds.len(), Kind::ALL.len() - 2);
    let mut buf = [0u8; 64];
    let msg = poselink::proto::Message::Ping(poselink::proto::Ping { t0_us: 5 });
    let n = encode_control(&Header::new(Kind::Ping, 0, 0, 1, 5), &msg, &mut buf).unwrap();
    let payload = Packet::new_checked(&buf[..n]).unwrap().payload().to_vec();
    assert!(control_harness::run(&payload).parsed >= 1);
}

// ---------------------------------------------------------------------------
// room_registry
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(2000))]

    /// Random limits and operation sequences: the registry agrees with the
    /// model after every operation.
    #[test]
    fn room_operation_sequences_keep_the_invariants(
        data in prop::collection::vec(any::<u8>(), 1..400),
    ) {
        let out = room_harness::run(&data);
        prop_assert_eq!(out.ops, ((data.len() - 1) / 3).min(room_harness::MAX_OPS));
    }
}

/// A fixed sequence: a room is made, shared, emptied, kept through part of its
/// grace period and expired after it.
#[test]
fn room_harness_reaches_creation_and_expiry() {
    let cfg = 0b01_01_01_01; // 2 rooms, 2 members, grace 1 s, unshared 0.5 s
    let ops: [[u8; 3]; 9] = [
        [0, 0x00, 0x80], // conn 0 makes "gym" as owner
        [0, 0x10, 0x01], // conn 1 (another user) joins it
        [2, 1, 0],       // both leave
        [2, 1, 1],
        [7, 0, 0],   // expire: too early
        [8, 50, 1],  // +0.5 s
        [7, 0, 0],   // still too early for a shared room
        [8, 255, 1], // +2.55 s
        [7, 0, 0],   // gone
    ];
    let mut data = vec![cfg];
    data.extend(ops.iter().flatten());
    let out = room_harness::run(&data);
    assert_eq!((out.ops, out.created, out.expired), (9, 1, 1), "{out:?}");
}

// ---------------------------------------------------------------------------
// http_upgrade
// ---------------------------------------------------------------------------

/// Extra header lines for the harness's upgrade prefix: a key (valid, or
/// arbitrary text), maybe a subprotocol offer, maybe other headers.
fn upgrade_lines() -> impl Strategy<Value = (Vec<u8>, bool)> {
    (
        prop_oneof![
            3 => any::<[u8; 16]>().prop_map(|k| {
                use base64::Engine as _;
                (base64::engine::general_purpose::STANDARD.encode(k), true)
            }),
            1 => "[ -~]{0,40}".prop_map(|k| (k, false)),
        ],
        prop::sample::select(vec![
            "",
            "\r\nSec-WebSocket-Protocol: poselink.json",
            "\r\nSec-WebSocket-Protocol: chat, POSELINK.JSON ",
            "\r\nSec-WebSocket-Protocol: chat",
            "\r\nOrigin: http://a\r\nUser-Agent: x",
        ]),
    )
        .prop_map(|((key, valid), extra)| {
            (
                format!("Sec-WebSocket-Key: {key}{extra}").into_bytes(),
                valid,
            )
        })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn http_random_heads_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
        http_harness::run(&data);
    }

    #[test]
    fn http_upgrades_are_answered_and_mutations_never_panic(
        (lines, valid) in upgrade_lines(),
        e in edits(),
    ) {
        let out = http_harness::run(&lines);
        if valid {
            prop_assert!(out.prefixed_upgrade, "a valid upgrade was not answered");
        }
        let mut m = lines.clone();
        mutate(&mut m, &e);
        http_harness::run(&m);
        // And as whole heads.
        let mut head = http_harness::UPGRADE_PREFIX.to_vec();
        head.extend_from_slice(&m);
        head.extend_from_slice(b"\r\n\r\n");
        http_harness::run(&head);
    }
}

/// RFC 6455 §1.3's worked example of the accept value.
#[test]
fn http_accept_value_is_rfc_6455s() {
    assert_eq!(
        http_harness::accept_of(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

// ---------------------------------------------------------------------------
// json_mode
// ---------------------------------------------------------------------------

/// One JSON text: a valid message of each type (some with wrong fields), or
/// arbitrary text.
fn json_text() -> impl Strategy<Value = String> {
    let lm = r#"{"x":0.5,"y":0.25,"z":0,"visibility":1,"presence":0.5}"#;
    let landmarks = vec![lm; 33].join(",");
    let texts = vec![
        r#"{"type":"hello","client":"p"}"#.to_string(),
        r#"{"type":"hello","minor":256}"#.to_string(),
        r#"{"type":"join","room":"r1","role":"member"}"#.to_string(),
        r#"{"type":"join","room":"r1","role":"owner"}"#.to_string(),
        r#"{"type":"join","room":"r2","role":"viewer"}"#.to_string(),
        r#"{"type":"leave","room":"r1"}"#.to_string(),
        format!(r#"{{"type":"pose","room":"r1","landmarks":[{landmarks}]}}"#),
        format!(r#"{{"type":"pose","room":"r1","seq":4294967295,"landmarks":[{landmarks}]}}"#),
        r#"{"type":"pose","room":"r1","landmarks":[]}"#.to_string(),
        r#"{"type":"audio","room":"r1","channels":2,"samples":[1,-1,32767,-32768]}"#.to_string(),
        r#"{"type":"audio","room":"r1","channels":3,"samples":[]}"#.to_string(),
        r#"{"type":"kick","room":"r1","member":1,"reason":"x"}"#.to_string(),
        r#"{"type":"set_role","room":"r1","member":1,"role":"viewer"}"#.to_string(),
        r#"{"type":"close_room","room":"r1"}"#.to_string(),
        r#"{"type":"ping","t0_us":7}"#.to_string(),
        r#"{"type":"welcome"}"#.to_string(),
        "[]".to_string(),
        "".to_string(),
    ];
    prop_oneof![
        6 => prop::sample::select(texts),
        1 => "[ -~]{0,40}",
    ]
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn json_clients_never_break_the_hub(
        mode in any::<u8>(),
        texts in prop::collection::vec(json_text(), 0..12),
        e in edits(),
    ) {
        let mut data = vec![mode];
        data.extend_from_slice(texts.join("\n").as_bytes());
        json_harness::run(&data);
        mutate(&mut data, &e);
        json_harness::run(&data);
    }
}

/// A JSON client that says hello, joins and publishes a pose and audio: both
/// reach the binary member, and the refused texts get errors.
#[test]
fn json_harness_relays_and_refuses() {
    let lm = r#"{"x":0.5,"y":0.25}"#;
    let landmarks = vec![lm; 33].join(",");
    let texts = [
        format!(r#"{{"type":"pose","room":"r1","landmarks":[{landmarks}]}}"#),
        r#"{"type":"audio","room":"r1","samples":[1,2,3]}"#.to_string(),
        "not json".to_string(),
        r#"{"type":"welcome"}"#.to_string(),
    ];
    let mut data = vec![0b110];
    data.extend_from_slice(texts.join("\n").as_bytes());
    let out = json_harness::run(&data);
    assert_eq!(out.texts, 6, "{out:?}");
    assert!(out.relayed >= 2, "{out:?}");
    assert!(out.errors >= 2, "{out:?}");
    assert!(!out.closed, "{out:?}");
}

/// Found by `json_mode` (docs/FUZZING.md, "Findings"): the hub's refusal of a
/// JSON text quotes the text's unknown `"type"` (or the `"room"` it is not a
/// member of, or the unknown `"role"`) in full; past 256 bytes the error does
/// not encode and the client got no answer at all. The hub now cuts an
/// error's sentence to fit (`send_error`).
#[test]
fn json_refusals_quoting_long_strings_still_get_an_error() {
    let long = "x".repeat(120);
    let unanswered = [
        format!(r#"{{"type":"{long}"}}"#),
        format!(r#"{{"type":"kick","room":"{long}{long}","member":1}}"#),
        format!(r#"{{"type":"join","room":"r1","role":"{long}{long}"}}"#),
    ]
    .iter()
    .filter_map(|text| {
        let mut data = vec![0b010]; // hello first
        data.extend_from_slice(text.as_bytes());
        let out = json_harness::run(&data);
        (out.errors != 1).then(|| format!("{text}: {out:?}"))
    })
    .collect::<Vec<_>>();
    assert!(unanswered.is_empty(), "{unanswered:#?}");
}
