//! The control-message harness behind the fuzz target `control`, shared with
//! `tests/protocol/props/` (included there with `#[path]`).
//!
//! `decode` reaches the control parsers only when a mutation makes a valid
//! header of a control kind; this target goes straight there. [`run`] takes
//! the input as the payload of every control kind (everything but pose and
//! audio) behind a forged valid header — uncompressed, and with the LZ4 flag
//! (the payload then goes through the decompressor first) — sealed with its CRC and read by
//! `Packet::new_checked` and `Message::parse`. Whatever the input, nothing may
//! panic, every refusal has a sentence, and a message that parses:
//!
//! - is of the header's kind;
//! - encodes again with `encode_control` and parses back to the same value;
//! - encodes to the same bytes a second time (parse → encode is a fixed point).

use poselink::proto::{
    CRC_LEN, Flags, Header, Kind, MAX_HEADER_LEN, MAX_MESSAGE_LEN, MAX_PLAIN_PAYLOAD, Message,
    Packet, encode_control, seal,
};

/// The control kinds: every kind but the media.
pub fn control_kinds() -> impl Iterator<Item = Kind> {
    Kind::ALL
        .into_iter()
        .filter(|k| !matches!(k, Kind::Pose | Kind::Audio))
}

/// What one input did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// (Kind, compression) pairs whose parser accepted the input.
    pub parsed: usize,
}

/// Runs one input; panics if a property above does not hold.
pub fn run(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
    let mut buf = vec![0u8; MAX_HEADER_LEN + data.len() + CRC_LEN];
    for (kind, lz4) in control_kinds().flat_map(|k| [(k, false), (k, true)]) {
        let mut header = Header::new(kind, 7, 3, 42, 1_000_000);
        if lz4 {
            header.flags = Flags::LZ4;
        }
        let n = header.emit(&mut buf).expect("room for the header");
        buf[n..n + data.len()].copy_from_slice(data);
        let len = seal(&mut buf, n + data.len()).expect("room for the CRC");
        let packet = match Packet::new_checked(&buf[..len]) {
            Ok(p) => p,
            Err(e) => {
                // Only the size (or the LZ4 flag on a control kind) can be
                // wrong with a forged header and CRC.
                assert!(
                    len > MAX_MESSAGE_LEN || lz4,
                    "{kind:?}: a forged message refused: {e}"
                );
                assert!(!e.to_string().is_empty());
                continue;
            }
        };
        match Message::parse(&packet, &mut scratch) {
            Ok(message) => {
                out.parsed += 1;
                assert_eq!(message.kind(), kind, "parsed as another kind");
                round_trip(&packet.header(), &message);
            }
            Err(e) => assert!(!e.to_string().is_empty(), "{e:?} has no sentence"),
        }
    }
    out
}

/// parse → encode → parse gives the same value; encode is then a fixed point.
fn round_trip(header: &Header, message: &Message<'_>) {
    let mut first = vec![0u8; MAX_MESSAGE_LEN];
    let n = encode_control(header, message, &mut first)
        .unwrap_or_else(|e| panic!("a parsed {:?} does not encode: {e}", header.kind));
    let packet = Packet::new_checked(&first[..n]).expect("an encoded message is valid");
    let mut scratch = [0u8; 0];
    let again = Message::parse(&packet, &mut scratch)
        .unwrap_or_else(|e| panic!("an encoded {:?} does not parse: {e}", header.kind));
    assert_eq!(
        &again, message,
        "parse → encode → parse changed the message"
    );
    let mut second = vec![0u8; MAX_MESSAGE_LEN];
    let m = encode_control(&packet.header(), &again, &mut second).expect("encodes again");
    assert_eq!(&first[..n], &second[..m], "encoding is not a fixed point");
}
