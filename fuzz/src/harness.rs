//! The decode harness behind the fuzz target `decode`, shared with
//! `tests/protocol/props/`, which includes this file with `#[path]` so that the
//! logic the fuzzer drives (on a nightly toolchain) also runs on stable Rust in
//! `cargo test`.
//!
//! One [`DecodeHarness`] holds one [`PoseDecoder`] for its whole life, as a
//! receiver's decoder for one stream would. [`DecodeHarness::run`] takes one input
//! and, in order:
//!
//! 1. decodes a fixed valid keyframe (so every input starts from a known model, and
//!    a decoder that an earlier input left in a bad state is caught here);
//! 2. feeds the input as it is (`Packet::new_checked` → `Packet::message` →
//!    `PoseDecoder::decode` for a pose);
//! 3. feeds the input with its last four bytes replaced by the CRC of the rest, so
//!    that mutations get past the checksum and reach the payload parsers;
//! 4. decodes the keyframe again, then feeds a valid delta that follows it with the
//!    input XORed over (and appended to) its payload, resealed: this reaches the
//!    delta bit-stream reader with a matching reference frame;
//! 5. decodes the keyframe once more and checks that the decoder still works.
//!
//! Whatever the input, nothing may panic, every decoded pose must be a valid frame
//! carrying the header's seq and timestamp, every control message that parses
//! must re-encode and parse to the same value, and the keyframe must always decode
//! to the same frame.

use poselink::proto::{
    CRC_LEN, EncoderConfig, Error, Kind, MAX_MESSAGE_LEN, MAX_PLAIN_PAYLOAD, MAX_POSE_MESSAGE_LEN,
    Message, Packet, PoseDecoder, PoseEncoder, PoseFrame, encode_control, seal,
};

/// The room, sender and person of the harness's own pose stream.
pub const ROOM: u16 = 1;
/// See [`ROOM`].
pub const SENDER: u16 = 2;
/// See [`ROOM`].
pub const PERSON: u32 = 0;
/// The sequence number of the fixed keyframe; its delta has `KEY_SEQ + 1`.
pub const KEY_SEQ: u32 = 1000;
/// The capture time of the fixed keyframe.
pub const KEY_TS_US: u64 = 33_333_000;

/// What one message decoded to.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // a frame is copied out on purpose, once per message
pub enum Fed {
    /// A pose frame (copied out of the decoder).
    Pose(PoseFrame),
    /// Any other message kind, parsed and checked.
    Other(Kind),
}

/// Runs one message through the receive path: envelope check, payload parse and,
/// for a pose, `decoder`. Panics (the fuzzer's "crash") only when a result that
/// came back `Ok` breaks an invariant; errors are returned.
pub fn feed(decoder: &mut PoseDecoder, scratch: &mut [u8], bytes: &[u8]) -> Result<Fed, Error> {
    let packet = Packet::new_checked(bytes)?;
    let header = packet.header();
    assert!(
        header.version >> 4 == 1,
        "a checked packet has major version 1"
    );
    let message = Message::parse(&packet, scratch)?;
    assert_eq!(
        message.kind(),
        header.kind,
        "the message is of the header's kind"
    );
    match message {
        Message::Pose(pose) => {
            let frame = *decoder.decode(&header, &pose)?;
            assert_eq!(frame.validate(), Ok(()), "a decoded pose must be valid");
            assert_eq!(frame.seq, header.seq);
            assert_eq!(frame.capture_ts_us, header.ts_us);
            assert_eq!(frame.person, pose.person);
            Ok(Fed::Pose(frame))
        }
        Message::Audio(audio) => {
            assert!((1..=2).contains(&audio.channels));
            assert_eq!(audio.samples.len(), audio.len as usize * 2);
            assert_eq!(audio.len % audio.channels as u16, 0);
            let mut chunk = poselink::proto::AudioChunk::default();
            let _ = audio.to_chunk(&header, &mut chunk);
            assert_eq!(
                chunk.validate(),
                Ok(()),
                "a decoded audio chunk must be valid"
            );
            Ok(Fed::Other(Kind::Audio))
        }
        Message::RoomSnapshot(snap) => {
            // The parser checked every member, so iterating cannot come up short.
            assert_eq!(snap.members.iter().count(), snap.members.len());
            reencode(&header, &message);
            Ok(Fed::Other(Kind::RoomSnapshot))
        }
        other => {
            reencode(&header, &other);
            Ok(Fed::Other(other.kind()))
        }
    }
}

/// A control message that parsed must encode again and parse to the same value.
fn reencode(header: &poselink::proto::Header, message: &Message<'_>) {
    let mut out = vec![0u8; MAX_MESSAGE_LEN];
    let n = encode_control(header, message, &mut out)
        .unwrap_or_else(|e| panic!("a parsed {:?} does not re-encode: {e}", header.kind));
    let again = Packet::new_checked(&out[..n]).expect("a re-encoded message is valid");
    let mut scratch = [0u8; 0];
    assert_eq!(
        Message::parse(&again, &mut scratch).as_ref(),
        Ok(message),
        "a parsed message must re-encode to the same value"
    );
}

/// Replaces the last [`CRC_LEN`] bytes of `bytes` by the CRC of the rest (inputs
/// shorter than that are left as they are).
pub fn reseal(bytes: &mut [u8]) {
    if let Some(body) = bytes.len().checked_sub(CRC_LEN) {
        seal(bytes, body).expect("the buffer holds the CRC");
    }
}

/// The frame the harness's keyframe and delta carry (`step` 0 and 1).
pub fn harness_frame(seq: u32, step: u32) -> PoseFrame {
    let mut frame = PoseFrame::zeroed();
    frame.seq = seq;
    frame.person = PERSON;
    frame.capture_ts_us = KEY_TS_US + u64::from(step) * 33_333;
    for (i, lm) in frame.landmarks.iter_mut().enumerate() {
        let t = i as f32 / 32.0;
        let s = step as f32 * 0.003;
        lm.x = 0.2 + 0.6 * t + s;
        lm.y = 0.9 - 0.7 * t + s * 0.5;
        lm.z = -0.3 + 0.4 * t - s;
        lm.visibility = 0.5 + 0.5 * t;
        lm.presence = 1.0 - 0.25 * t;
    }
    frame
}

/// One decoder and the fixed messages it is reset with between inputs.
pub struct DecodeHarness {
    decoder: PoseDecoder,
    scratch: Vec<u8>,
    keyframe: Vec<u8>,
    /// What `keyframe` decodes to, bit for bit.
    key_decoded: PoseFrame,
    delta: Vec<u8>,
    /// Bytes of `delta` before its payload.
    delta_header_len: usize,
    buf: Vec<u8>,
}

impl Default for DecodeHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl DecodeHarness {
    /// A harness whose decoder has seen nothing yet.
    pub fn new() -> Self {
        let mut encoder = PoseEncoder::new(EncoderConfig::default());
        let mut out = [0u8; MAX_POSE_MESSAGE_LEN];
        let n = encoder
            .encode(&harness_frame(KEY_SEQ, 0), ROOM, SENDER, &mut out)
            .expect("the harness keyframe encodes");
        let keyframe = out[..n].to_vec();
        let n = encoder
            .encode(&harness_frame(KEY_SEQ + 1, 1), ROOM, SENDER, &mut out)
            .expect("the harness delta encodes");
        let delta = out[..n].to_vec();
        let delta_header_len = Packet::new_checked(&delta[..])
            .expect("the harness delta is valid")
            .header()
            .buffer_len();
        let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
        let mut decoder = PoseDecoder::new();
        let key_decoded = match feed(&mut decoder, &mut scratch, &keyframe) {
            Ok(Fed::Pose(frame)) => frame,
            other => panic!("the harness keyframe does not decode: {other:?}"),
        };
        match feed(&mut decoder, &mut scratch, &delta) {
            Ok(Fed::Pose(_)) => {}
            other => panic!("the harness delta does not decode: {other:?}"),
        }
        DecodeHarness {
            decoder: PoseDecoder::new(),
            scratch,
            keyframe,
            key_decoded,
            delta,
            delta_header_len,
            buf: Vec::with_capacity(MAX_MESSAGE_LEN + CRC_LEN),
        }
    }

    /// The fixed keyframe message.
    pub fn keyframe(&self) -> &[u8] {
        &self.keyframe
    }

    /// The valid delta that follows the keyframe.
    pub fn delta(&self) -> &[u8] {
        &self.delta
    }

    /// Decodes the fixed keyframe and checks it decodes to the same frame as ever.
    pub fn check_keyframe(&mut self) {
        match feed(&mut self.decoder, &mut self.scratch, &self.keyframe) {
            Ok(Fed::Pose(frame)) => assert!(
                frame == self.key_decoded,
                "the keyframe decoded differently after earlier inputs"
            ),
            other => panic!("the decoder no longer decodes a valid keyframe: {other:?}"),
        }
    }

    /// Feeds `bytes` through the receive path with the harness's decoder.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Fed, Error> {
        let result = feed(&mut self.decoder, &mut self.scratch, bytes);
        if let Err(e) = &result {
            let text = e.to_string();
            assert!(!text.is_empty(), "{e:?} has an empty message");
        }
        result
    }

    /// Runs the five steps described in the module documentation on `data`.
    pub fn run(&mut self, data: &[u8]) {
        self.check_keyframe();
        let _ = self.feed(data);

        self.buf.clear();
        self.buf.extend_from_slice(data);
        reseal(&mut self.buf);
        let buf = core::mem::take(&mut self.buf);
        let _ = self.feed(&buf);
        self.buf = buf;

        self.check_keyframe();
        self.buf.clear();
        let body_end = self.delta.len() - CRC_LEN;
        self.buf.extend_from_slice(&self.delta[..body_end]);
        let payload = &mut self.buf[self.delta_header_len..];
        let payload_len = payload.len();
        for (b, d) in payload.iter_mut().zip(data) {
            *b ^= d;
        }
        if data.len() > payload_len {
            let extra = &data[payload_len..];
            let room = (MAX_MESSAGE_LEN - CRC_LEN).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&extra[..extra.len().min(room)]);
        }
        self.buf.extend_from_slice(&[0; CRC_LEN]);
        reseal(&mut self.buf);
        let buf = core::mem::take(&mut self.buf);
        let overlaid = self.feed(&buf);
        self.buf = buf;
        if data.len() <= payload_len && data.iter().all(|&b| b == 0) {
            // Nothing was changed: the delta must decode.
            assert!(
                matches!(overlaid, Ok(Fed::Pose(_))),
                "the untouched delta did not decode: {overlaid:?}"
            );
        }

        self.check_keyframe();
    }
}
