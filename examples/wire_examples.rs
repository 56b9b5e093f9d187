//! Builds the worked examples of `docs/PROTOCOL.md` with the crate's real encoders
//! and prints each one as the document shows it: an HTML comment naming the example,
//! then a fenced `hex` block, 16 bytes a line. Paste the output over the blocks in the
//! document when the codec changes; `tests/protocol/doc.rs` fails until you do.
//!
//! ```text
//! cargo run --example wire_examples
//! ```
//!
//! The test includes this file as a module, so the document, this program and the
//! test describe the very same messages.

use poselink::proto::{
    AudioChunk, Compressor, DEFAULT_COMPRESS_THRESHOLD, EncoderConfig, ErrorCode, ErrorMsg, Header,
    Join, Kind, MAX_POSE_MESSAGE_LEN, MemberInfo, Message, Ping, Pong, PoseEncoder, PoseFrame,
    Role, encode_audio, encode_control, encode_snapshot, landmark,
};

/// The room handle the hub gave the example room.
pub const ROOM: u16 = 3;
/// The member id the hub gave the example client.
pub const MEMBER: u16 = 4;

/// One worked example: its name in the document and its bytes.
pub struct Example {
    /// The name after `<!-- example:` in the document.
    pub name: &'static str,
    /// The whole message, header to CRC.
    pub bytes: Vec<u8>,
}

/// The Ping's and the Pong's clock readings (µs): the client sends at `T0` on its
/// clock; the hub receives at `T1` and answers at `T2` on its clock.
pub const T0: u64 = 5_000_000;
/// See [`T0`].
pub const T1: u64 = 905_020_000;
/// See [`T0`].
pub const T2: u64 = 905_020_050;

/// The example pose: landmark `i` at x = 0.4375 + i/256, y = 0.125 + i/64,
/// z = -0.0625, visibility 0.75, presence 1.0. Every value is a multiple of its
/// quantisation step, so the decoded frame equals this one exactly.
pub fn keyframe_frame() -> PoseFrame {
    let mut f = PoseFrame::zeroed();
    f.seq = 1;
    f.person = 0;
    f.capture_ts_us = 1_000_000;
    for (i, lm) in f.landmarks.iter_mut().enumerate() {
        lm.x = 0.4375 + i as f32 / 256.0;
        lm.y = 0.125 + i as f32 / 64.0;
        lm.z = -0.0625;
        lm.visibility = 0.75;
        lm.presence = 1.0;
    }
    f
}

/// A step of x, y or z.
const STEP: f32 = 1.0 / 2048.0;

/// The next frame, 33 333 µs later: the nose moves 3 steps right and 1 step up,
/// the left wrist 100 steps left, the right wrist 50 steps right; everything else
/// is still.
pub fn delta_frame() -> PoseFrame {
    let mut f = keyframe_frame();
    f.seq = 2;
    f.capture_ts_us = 1_033_333;
    f.landmarks[landmark::NOSE].x += 3.0 * STEP;
    f.landmarks[landmark::NOSE].y -= STEP;
    f.landmarks[landmark::LEFT_WRIST].x -= 100.0 * STEP;
    f.landmarks[landmark::RIGHT_WRIST].x += 50.0 * STEP;
    f
}

/// The frame after that: the right wrist moves 50 more steps right and 4 down;
/// everything else is still (the nose and the left wrist stay where they went).
pub fn delta_frame_2() -> PoseFrame {
    let mut f = delta_frame();
    f.seq = 3;
    f.capture_ts_us = 1_066_666;
    f.landmarks[landmark::RIGHT_WRIST].x += 50.0 * STEP;
    f.landmarks[landmark::RIGHT_WRIST].y += 4.0 * STEP;
    f
}

/// The short audio chunk: 4 mono samples at 48 kHz.
pub fn short_audio() -> AudioChunk {
    let mut c = AudioChunk::silence(48_000, 1, 4);
    c.seq = 50;
    c.capture_ts_us = 1_010_000;
    c.samples[..4].copy_from_slice(&[0, 1000, -1000, 32767]);
    c
}

/// A full chunk of silence (20 ms at 48 kHz mono), which the encoder compresses.
#[cfg_attr(not(feature = "lz4"), allow(dead_code))]
pub fn silent_audio() -> AudioChunk {
    let mut c = AudioChunk::silence(48_000, 1, 960);
    c.seq = 51;
    c.capture_ts_us = 1_030_000;
    c
}

fn control(header: Header, msg: Message<'_>) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let n = encode_control(&header, &msg, &mut buf).expect("example control message");
    buf[..n].to_vec()
}

/// Every example of the document, in document order.
pub fn examples() -> Vec<Example> {
    let mut out = Vec::new();

    // 12.1: client → hub, a ping (the client's control message number 9).
    out.push(Example {
        name: "ping",
        bytes: control(
            Header::new(Kind::Ping, 0, MEMBER, 9, T0),
            Message::Ping(Ping { t0_us: T0 }),
        ),
    });

    // 12.2: hub → client, the answer, stamped with the hub's clock.
    out.push(Example {
        name: "pong",
        bytes: control(
            Header::new(Kind::Pong, 0, 0, 17, T2),
            Message::Pong(Pong {
                t0_us: T0,
                t1_us: T1,
                t2_us: T2,
            }),
        ),
    });

    // 12.3: client → hub, join room "studio-1" as a member.
    out.push(Example {
        name: "join",
        bytes: control(
            Header::new(Kind::Join, 0, MEMBER, 2, 1_000),
            Message::Join(Join {
                room: "studio-1",
                role: Role::Member,
            }),
        ),
    });

    // 12.4: hub → client, the room's snapshot after the join.
    let members = [
        MemberInfo {
            member: 1,
            role: Role::Owner,
            user: "ana",
        },
        MemberInfo {
            member: MEMBER,
            role: Role::Member,
            user: "pi-4",
        },
    ];
    let mut buf = [0u8; 512];
    let n = encode_snapshot(
        &Header::new(Kind::RoomSnapshot, ROOM, 0, 18, 905_021_000),
        "studio-1",
        Role::Member,
        &members,
        &mut buf,
    )
    .expect("example snapshot");
    out.push(Example {
        name: "room_snapshot",
        bytes: buf[..n].to_vec(),
    });

    // 12.5: hub → client, a join refused.
    out.push(Example {
        name: "error",
        bytes: control(
            Header::new(Kind::Error, 0, 0, 19, 905_022_000),
            Message::Error(ErrorMsg {
                code: ErrorCode::FORBIDDEN,
                about: Kind::Join as u8,
                reason: "role not granted",
            }),
        ),
    });

    // 12.6 to 12.8: a keyframe and the two deltas after it, from one encoder.
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
    let n = enc
        .encode(&keyframe_frame(), ROOM, MEMBER, &mut buf)
        .expect("example keyframe");
    out.push(Example {
        name: "pose_keyframe",
        bytes: buf[..n].to_vec(),
    });
    let n = enc
        .encode(&delta_frame(), ROOM, MEMBER, &mut buf)
        .expect("example delta");
    out.push(Example {
        name: "pose_delta",
        bytes: buf[..n].to_vec(),
    });
    let n = enc
        .encode(&delta_frame_2(), ROOM, MEMBER, &mut buf)
        .expect("example second delta");
    out.push(Example {
        name: "pose_delta_2",
        bytes: buf[..n].to_vec(),
    });

    // 12.9, 12.10: a short audio chunk, and a silent full one that goes compressed.
    let mut compressor = Compressor::new(DEFAULT_COMPRESS_THRESHOLD);
    let mut buf = [0u8; 2048];
    let n = encode_audio(&short_audio(), ROOM, MEMBER, &mut compressor, &mut buf)
        .expect("example audio");
    out.push(Example {
        name: "audio",
        bytes: buf[..n].to_vec(),
    });
    #[cfg(feature = "lz4")]
    {
        let n = encode_audio(&silent_audio(), ROOM, MEMBER, &mut compressor, &mut buf)
            .expect("example compressed audio");
        out.push(Example {
            name: "audio_lz4",
            bytes: buf[..n].to_vec(),
        });
    }

    out
}

/// Lower-case hex, bytes separated by spaces, 16 bytes a line.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn main() {
    for ex in examples() {
        println!("{} bytes:\n", ex.bytes.len());
        println!("<!-- example: {} -->", ex.name);
        println!("```hex\n{}\n```\n", hex(&ex.bytes));
    }
}
