#![cfg(all(feature = "std", feature = "lz4"))]
//! The browser's protocol module, `web/poselink.js`, against the Rust codec.
//!
//! The Rust encoders make the test vectors — every control kind, synthetic skeleton
//! streams of keyframes and deltas with lost frames, raw frames, LZ4-compressed
//! payloads, audio chunks plain and compressed, the document's worked examples, and
//! broken messages of every sort — and a receiver built on the Rust decoder (one
//! `PoseDecoder` per room, sender and person, as the viewer keeps them) records what
//! it makes of each: the message, the pose frame, or the kind of error. The vectors
//! go to a JSON file, `node web/test/decode.mjs FILE` decodes them with the JS module
//! and compares, encodes the control messages and compares the bytes, then feeds the
//! JS decoder mutated input that must only ever be refused with a `PoselinkError`.
//!
//! Needs Node.js (20; CI installs it). Without `node` on the PATH the test fails and
//! says so rather than passing silently.

#[path = "../examples/wire_examples.rs"]
#[allow(dead_code)]
mod wire_examples;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use poselink::proto::{
    Ack, AudioChunk, CloseRoom, Compressor, DEFAULT_COMPRESS_THRESHOLD, EncoderConfig, Error,
    ErrorCode, ErrorMsg, Flags, Header, Hello, Join, Kick, Kind, Landmark, Leave, LeaveReason,
    MAX_PLAIN_PAYLOAD, MAX_POSE_MESSAGE_LEN, MemberInfo, MemberJoined, MemberLeft, Message,
    NeedsKeyframe, Packet, Ping, Pong, PoseCoding, PoseDecoder, PoseEncoder, PoseFrame, PoseMode,
    Role, RoleChanged, Welcome, crc32, encode_audio, encode_control, encode_snapshot, put_varint,
};
use poselink_hal::{
    AudioBlock, AudioSource, Motion, POSE_CONNECTIONS, PoseSample, PoseSource, SyntheticAudio,
    SyntheticConfig, SyntheticPose,
};
use serde_json::{Value, json};

/// The longest the Node.js process may take (it needs about a second).
const NODE_TIMEOUT: Duration = Duration::from_secs(120);

// ---- what the Rust side makes of a message, in the JSON form the JS side produces ----

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The JS module's error kind for a Rust error: the same names.
fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::NotFinite { .. } => "not_finite",
        Error::OutOfRange { .. } => "out_of_range",
        Error::BadAudio { .. } => "bad_audio",
        Error::BadName { .. } => "bad_name",
        Error::Truncated { .. } => "truncated",
        Error::BadChecksum { .. } => "bad_checksum",
        Error::UnknownVersion { .. } => "unknown_version",
        Error::UnknownKind { .. } => "unknown_kind",
        Error::Oversize { .. } => "oversize",
        Error::Malformed { .. } => "malformed",
        Error::NeedsKeyframe => "needs_keyframe",
        other => panic!("no JS counterpart for {other:?}"),
    }
}

fn leave_reason(r: LeaveReason) -> &'static str {
    match r {
        LeaveReason::Left => "left",
        LeaveReason::Disconnected => "disconnected",
        LeaveReason::Kicked => "kicked",
        LeaveReason::TimedOut => "timed_out",
        LeaveReason::RoomClosed => "room_closed",
    }
}

fn header_json(h: &Header) -> Value {
    json!({
        "version": h.version, "kind": h.kind as u8, "flags": h.flags.0, "room": h.room,
        "sender": h.sender, "seq": h.seq, "tsUs": h.ts_us.to_string(),
    })
}

fn member_json(m: &MemberInfo<'_>) -> Value {
    json!({"member": m.member, "role": m.role.name(), "user": m.user})
}

/// A message's fields as `decodeMessage` names them (64-bit values as strings).
fn body_json(msg: &Message<'_>) -> Value {
    match msg {
        Message::Hello(m) => json!({"minor": m.minor, "token": m.token,
            "resume": m.resume.to_string(), "client": m.client}),
        Message::Welcome(m) => json!({"minor": m.minor, "member": m.member, "user": m.user,
            "resume": m.resume.to_string(), "serverTimeUs": m.server_time_us.to_string(),
            "heartbeatMs": m.heartbeat_ms, "maxMessage": m.max_message}),
        Message::Join(m) => json!({"room": m.room, "role": m.role.name()}),
        Message::Leave(m) => json!({"room": m.room}),
        Message::RoomSnapshot(m) => json!({"name": m.name, "yourRole": m.your_role.name(),
            "members": m.members.iter().map(|x| member_json(&x)).collect::<Vec<_>>()}),
        Message::MemberJoined(m) => member_json(&m.member),
        Message::MemberLeft(m) => json!({"member": m.member, "reason": leave_reason(m.reason)}),
        Message::RoleChanged(m) => json!({"member": m.member, "role": m.role.name()}),
        Message::Kick(m) => json!({"member": m.member, "reason": m.reason}),
        Message::CloseRoom(m) => json!({"reason": m.reason}),
        Message::Error(m) => json!({"code": m.code.0, "about": m.about, "reason": m.reason,
            "codeName": m.code.name()}),
        Message::Ping(m) => json!({"t0Us": m.t0_us.to_string()}),
        Message::Pong(m) => json!({"t0Us": m.t0_us.to_string(), "t1Us": m.t1_us.to_string(),
            "t2Us": m.t2_us.to_string()}),
        Message::Ack(m) => json!({"kind": m.kind, "seq": m.seq}),
        Message::NeedsKeyframe(m) => json!({"publisher": m.publisher, "person": m.person}),
        Message::Pose(p) => {
            let (coding, ref_back) = coding(p.coding);
            json!({"person": p.person, "coding": coding, "refBack": ref_back, "body": hex(p.body)})
        }
        Message::Audio(a) => {
            let samples: Vec<i16> = a
                .samples
                .chunks_exact(2)
                .map(|s| i16::from_le_bytes([s[0], s[1]]))
                .collect();
            json!({"codec": "pcm16", "channels": a.channels, "sampleRate": a.sample_rate,
                "samples": samples})
        }
    }
}

fn coding(c: PoseCoding) -> (&'static str, u32) {
    match c {
        PoseCoding::Raw => ("raw", 0),
        PoseCoding::Keyframe => ("keyframe", 0),
        PoseCoding::Delta { ref_back } => ("delta", ref_back),
    }
}

/// Outcomes over all vectors, to show that the vectors cover what they should.
#[derive(Default, Debug)]
struct Tally {
    messages: usize,
    frames: BTreeMap<&'static str, usize>,
    errors: BTreeMap<&'static str, usize>,
    lz4: BTreeMap<&'static str, usize>,
}

/// A receiver as the viewer is one: the envelope and payload checks, then one pose
/// decoder per (room, sender, person).
struct Receiver {
    decoders: HashMap<(u16, u16, u32), PoseDecoder>,
    scratch: Vec<u8>,
}

impl Receiver {
    fn new() -> Self {
        Receiver {
            decoders: HashMap::new(),
            scratch: vec![0; MAX_PLAIN_PAYLOAD],
        }
    }

    fn receive(&mut self, bytes: &[u8], tally: &mut Tally) -> Value {
        tally.messages += 1;
        let refuse = |e: Error, tally: &mut Tally| {
            let kind = error_kind(&e);
            *tally.errors.entry(kind).or_default() += 1;
            json!({"error": kind})
        };
        let packet = match Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(e) => return refuse(e, tally),
        };
        let header = packet.header();
        let msg = match Message::parse(&packet, &mut self.scratch) {
            Ok(m) => m,
            Err(e) => return refuse(e, tally),
        };
        if header.flags.contains(Flags::LZ4) {
            *tally.lz4.entry(header.kind.name()).or_default() += 1;
        }
        let message = json!({"header": header_json(&header), "type": header.kind.name(),
            "body": body_json(&msg)});
        let Message::Pose(pose) = msg else {
            return json!({ "message": message });
        };
        let decoder = self
            .decoders
            .entry((header.room, header.sender, pose.person))
            .or_default();
        match decoder.decode(&header, &pose) {
            Ok(f) => {
                let (coding, _) = coding(pose.coding);
                *tally.frames.entry(coding).or_default() += 1;
                // f32 → f64 is exact, so the JSON carries each value exactly.
                let values: Vec<f64> = f
                    .landmarks
                    .iter()
                    .flat_map(|l| l.values())
                    .map(f64::from)
                    .collect();
                json!({"message": message, "frame": {"seq": f.seq,
                    "tsUs": f.capture_ts_us.to_string(), "person": f.person, "coding": coding,
                    "values": values}})
            }
            Err(e) => refuse(e, tally),
        }
    }
}

// ---- the vectors --------------------------------------------------------------------

struct Vectors {
    sessions: Vec<Value>,
    encodes: Vec<Value>,
    refusals: Vec<Value>,
    tally: Tally,
    /// Every valid message, to mutate.
    valid: Vec<Vec<u8>>,
}

impl Vectors {
    fn session(&mut self, name: &str, messages: &[Vec<u8>]) {
        let mut rx = Receiver::new();
        let list: Vec<Value> = messages
            .iter()
            .map(|m| json!({"hex": hex(m), "expect": rx.receive(m, &mut self.tally)}))
            .collect();
        self.sessions.push(json!({"name": name, "messages": list}));
    }
}

/// xorshift64*: deterministic mutations without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Rewrites the CRC trailer so that a changed message passes the checksum.
fn reseal(mut m: Vec<u8>) -> Vec<u8> {
    if m.len() >= 4 {
        let n = m.len() - 4;
        let crc = crc32(&m[..n]);
        m[n..].copy_from_slice(&crc.to_le_bytes());
    }
    m
}

/// A message from a header and a raw payload (no checks: for broken messages).
fn assemble(header: &Header, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 32];
    let n = header.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf.extend_from_slice(payload);
    buf.extend_from_slice(&[0; 4]);
    reseal(buf)
}

fn control(header: Header, msg: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = encode_control(&header, msg, &mut buf).expect("a valid control message");
    buf.truncate(n);
    buf
}

fn synthetic(seed: u64, motion: Motion, fps: f32, jitter: f32) -> SyntheticPose {
    SyntheticPose::new(SyntheticConfig {
        seed,
        motion,
        fps,
        jitter,
        start_ts_us: 1_000_000 + seed * 1000,
    })
}

fn next_frame(source: &mut SyntheticPose, seq: u32, person: u32) -> PoseFrame {
    let mut sample = PoseSample::zeroed();
    source.next_pose(&mut sample).expect("synthetic pose");
    let mut f = PoseFrame::from_arrays(seq, person, sample.capture_ts_us, &sample.landmarks);
    f.clamp_to_range();
    f
}

fn encode_pose(enc: &mut PoseEncoder, frame: &PoseFrame, room: u16, sender: u16) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_POSE_MESSAGE_LEN];
    let n = enc.encode(frame, room, sender, &mut buf).expect("encode");
    buf.truncate(n);
    buf
}

fn still_frame(seq: u32, value: f32) -> PoseFrame {
    let mut f = PoseFrame::zeroed();
    f.seq = seq;
    f.capture_ts_us = seq as u64 * 33_333;
    f.landmarks = [Landmark {
        x: value,
        y: value / 2.0,
        z: -0.25,
        visibility: 0.875,
        presence: 1.0,
    }; 33];
    f
}

/// Control messages of every kind, with edge values; (type, header, message).
fn control_messages() -> Vec<(Header, Vec<u8>)> {
    let long_token = "eyJ".repeat(600);
    let long_room = "r".repeat(64);
    let long_reason = "x".repeat(256);
    let reason = "désolé — the room is closing ☂";
    let members = [
        MemberInfo {
            member: 1,
            role: Role::Owner,
            user: "ana",
        },
        MemberInfo {
            member: 65_535,
            role: Role::Member,
            user: "pi-kitchen@studio/1:a_b.c",
        },
        MemberInfo {
            member: 300,
            role: Role::Viewer,
            user: "anon-300",
        },
    ];
    let msgs: Vec<(Header, Message<'_>)> = vec![
        (
            Header::new(Kind::Hello, 0, 0, 0, 0),
            Message::Hello(Hello {
                minor: 0,
                token: "",
                resume: 0,
                client: "poselink-viewer/1.0",
            }),
        ),
        (
            Header::new(Kind::Hello, 0, 0, 1, u64::MAX),
            Message::Hello(Hello {
                minor: 7,
                token: &long_token,
                resume: u64::MAX,
                client: "ünïcode client ✓",
            }),
        ),
        (
            Header::new(Kind::Welcome, 0, 0, u32::MAX, 905_020_000),
            Message::Welcome(Welcome {
                minor: 0,
                member: 65_535,
                user: "anon-65535",
                resume: 0x9e37_79b9_7f4a_7c15,
                server_time_us: (1 << 53) + 1,
                heartbeat_ms: 5000,
                max_message: 65_536,
            }),
        ),
        (
            Header::new(Kind::Join, 0, 4, 2, 1000),
            Message::Join(Join {
                room: "demo-0",
                role: Role::Viewer,
            }),
        ),
        (
            Header::new(Kind::Join, 0, 4, 3, 1001),
            Message::Join(Join {
                room: "studio-1",
                role: Role::Owner,
            }),
        ),
        (
            Header::new(Kind::Leave, 0, 4, 4, 1002),
            Message::Leave(Leave { room: &long_room }),
        ),
        (
            Header::new(Kind::MemberJoined, 3, 0, 5, 2000),
            Message::MemberJoined(MemberJoined { member: members[1] }),
        ),
        (
            Header::new(Kind::RoleChanged, 3, 0, 9, 2004),
            Message::RoleChanged(RoleChanged {
                member: 300,
                role: Role::Member,
            }),
        ),
        (
            Header::new(Kind::Kick, 3, 0, 10, 2005),
            Message::Kick(Kick {
                member: 300,
                reason: "",
            }),
        ),
        (
            Header::new(Kind::CloseRoom, 3, 0, 11, 2006),
            Message::CloseRoom(CloseRoom { reason }),
        ),
        (
            Header::new(Kind::Error, 0, 0, 12, 2007),
            Message::Error(ErrorMsg {
                code: ErrorCode::TOKEN_EXPIRED,
                about: Kind::Hello as u8,
                reason: "the token has expired; reconnect with a new one",
            }),
        ),
        (
            Header::new(Kind::Error, 0, 0, 13, 2008),
            Message::Error(ErrorMsg {
                code: ErrorCode(999),
                about: 0,
                reason: &long_reason,
            }),
        ),
        (
            Header::new(Kind::Ping, 0, 4, 14, 5_000_000),
            Message::Ping(Ping { t0_us: u64::MAX }),
        ),
        (
            Header::new(Kind::Pong, 0, 0, 15, 905_020_050),
            Message::Pong(Pong {
                t0_us: 5_000_000,
                t1_us: 905_020_000,
                t2_us: 905_020_050,
            }),
        ),
        (
            Header::new(Kind::Ack, 3, 0, 16, 2009),
            Message::Ack(Ack {
                kind: Kind::Audio as u8,
                seq: u32::MAX,
            }),
        ),
        (
            Header::new(Kind::NeedsKeyframe, 3, 4, 17, 2010),
            Message::NeedsKeyframe(NeedsKeyframe {
                publisher: 7,
                person: u32::MAX,
            }),
        ),
    ];
    let mut out: Vec<(Header, Vec<u8>)> = msgs.iter().map(|(h, m)| (*h, control(*h, m))).collect();
    for (seq, reason) in [
        LeaveReason::Left,
        LeaveReason::Disconnected,
        LeaveReason::Kicked,
        LeaveReason::TimedOut,
        LeaveReason::RoomClosed,
    ]
    .into_iter()
    .enumerate()
    {
        let h = Header::new(Kind::MemberLeft, 3, 0, 20 + seq as u32, 3000);
        let m = Message::MemberLeft(MemberLeft { member: 9, reason });
        out.push((h, control(h, &m)));
    }
    for count in [0, 1, 3] {
        let h = Header::new(Kind::RoomSnapshot, 3, 0, 30 + count as u32, 4000);
        let mut buf = vec![0u8; 1024];
        let n = encode_snapshot(&h, "demo-0", Role::Viewer, &members[..count], &mut buf).unwrap();
        buf.truncate(n);
        out.push((h, buf));
    }
    out
}

fn build() -> Vectors {
    let mut v = Vectors {
        sessions: Vec::new(),
        encodes: Vec::new(),
        refusals: Vec::new(),
        tally: Tally::default(),
        valid: Vec::new(),
    };
    let mut rng = Rng(0x005e_ed0f_9a5e_11c4);

    // The worked examples of docs/PROTOCOL.md §12, in order (a keyframe, then its
    // two deltas).
    let examples: Vec<Vec<u8>> = wire_examples::examples()
        .into_iter()
        .map(|e| e.bytes)
        .collect();
    v.session("protocol-doc-examples", &examples);
    v.valid.extend(examples);

    // Control messages, decoded, and encoded by the JS module to the same bytes.
    let controls = control_messages();
    let bytes: Vec<Vec<u8>> = controls.iter().map(|(_, b)| b.clone()).collect();
    v.session("control", &bytes);
    for (h, b) in &controls {
        let mut rx = Receiver::new();
        let mut scratch = Tally::default();
        let decoded = rx.receive(b, &mut scratch);
        let message = &decoded["message"];
        v.encodes
            .push(json!({"type": h.kind.name(), "header": {"room": h.room,
            "sender": h.sender, "seq": h.seq, "tsUs": h.ts_us.to_string()},
            "body": message["body"], "hex": hex(b)}));
    }
    v.valid.extend(bytes);

    // A control payload with bytes after its fields (a later minor version's), and
    // one sent LZ4-compressed: both decode.
    {
        let h = Header::new(Kind::CloseRoom, 3, 0, 40, 5000);
        let long = "closing ".repeat(32);
        let m = control(h, &Message::CloseRoom(CloseRoom { reason: &long }));
        let start = h.buffer_len();
        let plain = m[start..m.len() - 4].to_vec();
        let mut buf = plain.clone();
        buf.resize(plain.len() + 64, 0);
        let (n, yes) = Compressor::new(16).compress_in_place(&mut buf, plain.len());
        assert!(yes, "a repetitive reason compresses");
        let mut hz = h;
        hz.flags = Flags::LZ4;
        let mut trailing = plain;
        trailing.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let list = vec![assemble(&hz, &buf[..n]), assemble(&h, &trailing)];
        v.session("control-compressed-and-extended", &list);
        v.valid.extend(list);
    }

    // Pose: two people of one publisher, a second publisher in the same room and the
    // first publisher in another room, interleaved; person 0 loses frame 40 (the
    // decoder refuses deltas until the next keyframe), person 1 loses frame 70 and
    // its encoder is asked for a keyframe, as a needs_keyframe would.
    {
        let mut sources = [
            (synthetic(11, Motion::Walk, 30.0, 0.002), 3u16, 7u16, 0u32),
            (synthetic(12, Motion::Wave, 30.0, 0.002), 3, 7, 1),
            (synthetic(13, Motion::Mixed, 30.0, 0.002), 3, 9, 0),
            (synthetic(14, Motion::Walk, 30.0, 0.002), 5, 7, 0),
        ];
        let mut encoders: Vec<PoseEncoder> = (0..sources.len())
            .map(|_| PoseEncoder::new(EncoderConfig::default()))
            .collect();
        let mut list = Vec::new();
        for seq in 1..=150u32 {
            for (k, (src, room, sender, person)) in sources.iter_mut().enumerate() {
                let f = next_frame(src, seq, *person);
                if k == 1 && seq == 72 {
                    encoders[k].force_keyframe();
                }
                let m = encode_pose(&mut encoders[k], &f, *room, *sender);
                let lost = (k == 0 && seq == 40) || (k == 1 && seq == 70);
                if !lost {
                    list.push(m);
                }
            }
        }
        v.session("pose-four-streams-with-losses", &list);
        // The same streams, joined late: the first frames are deltas without their
        // keyframe.
        v.session("pose-joined-mid-stream", &list[4 * 17..]);
        v.valid.extend(list);
    }

    // Pose at 60 fps, every other frame sent (ref_back 2), and a jittery stream
    // whose residuals escape their fields and widen them.
    {
        let mut src = synthetic(21, Motion::Mixed, 60.0, 0.002);
        let mut enc = PoseEncoder::new(EncoderConfig::default());
        let mut jittery = synthetic(22, Motion::Walk, 30.0, 0.03);
        let mut enc2 = PoseEncoder::new(EncoderConfig::default());
        let mut list = Vec::new();
        for seq in 1..=240u32 {
            let f = next_frame(&mut src, seq, 0);
            if seq % 2 == 1 {
                list.push(encode_pose(&mut enc, &f, 2, 1));
            }
            if seq <= 90 {
                let f = next_frame(&mut jittery, seq, 3);
                list.push(encode_pose(&mut enc2, &f, 2, 2));
            }
        }
        assert!(enc2.stats().escapes > 0, "the jittery stream escapes");
        // A glitchy tracker: now and then a few landmarks flip between opposite
        // corners of the range for some frames (residuals past the model's cap of
        // 4095), then settle.
        let mut glitchy = synthetic(23, Motion::Wave, 30.0, 0.002);
        let mut enc3 = PoseEncoder::new(EncoderConfig::default());
        let mut rng = Rng(0x0061_7c4e);
        let mut burst: (u32, [usize; 3]) = (0, [0; 3]);
        for seq in 1..=600u32 {
            let mut f = next_frame(&mut glitchy, seq, 0);
            if burst.0 == 0 && rng.below(8) == 0 {
                burst = (
                    2 + rng.below(6) as u32,
                    [rng.below(33), rng.below(33), rng.below(33)],
                );
            }
            if burst.0 > 0 {
                burst.0 -= 1;
                let corner = if seq % 2 == 0 { -1.0 } else { 2.0 };
                for &i in &burst.1[..1 + (seq as usize % 3)] {
                    f.landmarks[i].x = corner;
                    f.landmarks[i].y = 1.0 - corner;
                    f.landmarks[i].visibility = rng.below(129) as f32 / 128.0;
                }
            }
            list.push(encode_pose(&mut enc3, &f, 2, 5));
        }
        assert!(
            enc3.stats().deltas > 300,
            "the glitchy stream goes mostly as deltas"
        );
        v.session("pose-thinned-and-jittery", &list);
        v.valid.extend(list);
    }

    // Pose: a counter restart (a keyframe), jumps across the whole range (keyframes,
    // since a delta would not be smaller), and LZ4 on quantised frames: a still pose
    // with the compression threshold lowered to 64 bytes compresses its keyframe and
    // its first deltas.
    {
        let mut enc = PoseEncoder::new(EncoderConfig::default());
        let mut src = synthetic(31, Motion::Wave, 30.0, 0.002);
        let mut list = Vec::new();
        for seq in (1..=12u32).chain(5..=10).chain(100..=104) {
            let f = next_frame(&mut src, seq, 0);
            list.push(encode_pose(&mut enc, &f, 1, 3));
        }
        for seq in 200..=205u32 {
            let corner = if seq % 2 == 0 { -1.0 } else { 2.0 };
            let mut f = still_frame(seq, corner);
            f.landmarks[0].visibility = if seq % 2 == 0 { 0.0 } else { 1.0 };
            list.push(encode_pose(&mut enc, &f, 1, 3));
        }
        let mut small = PoseEncoder::new(EncoderConfig {
            compress_threshold: 64,
            ..EncoderConfig::default()
        });
        for seq in 1..=12u32 {
            list.push(encode_pose(&mut small, &still_frame(seq, 0.5), 1, 4));
        }
        v.session("pose-restarts-jumps-lz4", &list);
        v.valid.extend(list);
    }

    // Raw frames: synthetic ones (which rarely compress) and still ones (which do).
    {
        let raw = EncoderConfig {
            mode: PoseMode::Raw,
            ..EncoderConfig::default()
        };
        let mut enc = PoseEncoder::new(raw);
        let mut still = PoseEncoder::new(raw);
        let mut src = synthetic(41, Motion::Walk, 30.0, 0.002);
        let mut list = Vec::new();
        for seq in 1..=30u32 {
            let f = next_frame(&mut src, seq, 0);
            list.push(encode_pose(&mut enc, &f, 6, 8));
            if seq % 3 == 0 {
                list.push(encode_pose(&mut still, &still_frame(seq, 0.3), 6, 9));
            }
        }
        v.session("pose-raw", &list);
        v.valid.extend(list);
    }

    // Audio: a tone (incompressible), silence (compressed), stereo at 44.1 kHz,
    // 16 kHz, a full-scale square wave, an empty chunk.
    {
        let mut tone = SyntheticAudio::new(2_000_000);
        let mut block = AudioBlock::zeroed();
        let mut compressor = Compressor::new(DEFAULT_COMPRESS_THRESHOLD);
        let mut silence_compressor = Compressor::new(DEFAULT_COMPRESS_THRESHOLD);
        let mut list = Vec::new();
        let mut buf = vec![0u8; 4096];
        let mut push = |chunk: &AudioChunk, c: &mut Compressor, list: &mut Vec<Vec<u8>>| {
            let n = encode_audio(chunk, 3, 7, c, &mut buf).expect("audio");
            list.push(buf[..n].to_vec());
        };
        for seq in 1..=10u32 {
            tone.next_audio(&mut block).unwrap();
            let mut chunk = AudioChunk::silence(block.sample_rate, block.channels, 0);
            chunk.len = block.len as u16;
            chunk.samples[..block.len].copy_from_slice(block.samples());
            chunk.seq = seq;
            chunk.capture_ts_us = block.capture_ts_us;
            push(&chunk, &mut compressor, &mut list);
            let mut quiet = AudioChunk::silence(48_000, 1, 960);
            quiet.seq = 100 + seq;
            quiet.capture_ts_us = block.capture_ts_us;
            push(&quiet, &mut silence_compressor, &mut list);
        }
        let mut stereo = AudioChunk::silence(44_100, 2, 882);
        let mut square = AudioChunk::silence(16_000, 1, 320);
        for i in 0..882 {
            stereo.samples[i] = ((i as i32 * 997) % 65_536 - 32_768) as i16;
        }
        for i in 0..320 {
            square.samples[i] = if (i / 20) % 2 == 0 {
                i16::MAX
            } else {
                i16::MIN
            };
        }
        let empty = AudioChunk::silence(8_000, 1, 0);
        for (seq, mut c) in [(200, stereo), (201, square), (202, empty)] {
            c.seq = seq;
            c.capture_ts_us = 3_000_000 + seq as u64;
            push(&c, &mut compressor, &mut list);
        }
        v.session("audio", &list);
        v.valid.extend(list);
    }

    broken(&mut v, &mut rng);
    refusals(&mut v);
    v
}

/// Broken messages: every outcome is whatever the Rust receiver says, and the JS
/// module must say the same.
fn broken(v: &mut Vectors, rng: &mut Rng) {
    let valid = v.valid.clone();

    // Cut short: at every length, as received (the CRC fails) and resealed (the
    // parsers see the cut).
    let mut cut = Vec::new();
    for m in valid.iter().step_by(valid.len() / 16 + 1) {
        // Every length near either end, and some in between.
        let mut lengths: Vec<usize> = (0..m.len().min(40)).collect();
        lengths.extend(m.len().saturating_sub(40)..m.len());
        lengths.extend((0..20).map(|_| rng.below(m.len())));
        lengths.sort_unstable();
        lengths.dedup();
        for n in lengths {
            cut.push(m[..n].to_vec());
            if n >= 4 {
                cut.push(reseal(m[..n].to_vec()));
            }
        }
    }
    v.session("broken-truncated", &cut);

    // Random bytes changed, most resealed so that the payload parsers see them; pose
    // streams are mutated in place, each mutated frame followed by the original, so
    // that deltas meet the decoder in the state they were made for.
    for s in 0..v.sessions.len() {
        let name = v.sessions[s]["name"].as_str().unwrap().to_string();
        if name.starts_with("broken") {
            continue;
        }
        let originals: Vec<Vec<u8>> = v.sessions[s]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| from_hex(m["hex"].as_str().unwrap()))
            .collect();
        let mut list = Vec::new();
        for m in originals {
            if rng.below(6) == 0 {
                let mut b = m.clone();
                let header_end = 9.min(b.len());
                let k = 1 + rng.below(3);
                for _ in 0..k {
                    // Mostly the payload: the header's checks are simpler.
                    let at = if rng.below(5) == 0 {
                        rng.below(b.len())
                    } else {
                        header_end + rng.below(b.len().saturating_sub(header_end + 4).max(1))
                    };
                    if at < b.len() {
                        b[at] ^= 1 << rng.below(8) as u8;
                        if rng.below(3) == 0 {
                            b[at] = rng.next() as u8;
                        }
                    }
                }
                if rng.below(8) != 0 {
                    b = reseal(b);
                }
                list.push(b);
            }
            list.push(m);
        }
        v.session(&format!("broken-mutated-{name}"), &list);
    }

    // Made by hand: each check of the envelope, the payloads and LZ4.
    let mut list: Vec<Vec<u8>> = Vec::new();
    let ping = control(
        Header::new(Kind::Ping, 0, 4, 1, 5),
        &Message::Ping(Ping { t0_us: 5 }),
    );
    let mut b = ping.clone();
    b[0] = 0x20; // major 2
    list.push(reseal(b));
    list.push(vec![0x21]); // major 2, one byte
    list.push(vec![]);
    for kind in [0x00u8, 0x12, 0xff] {
        let mut b = ping.clone();
        b[1] = kind;
        list.push(reseal(b));
    }
    for flags in [0x08u8, 0x80, 0x06] {
        let mut b = ping.clone();
        b[2] = flags;
        list.push(reseal(b));
    }
    let mut big = vec![0u8; 65_537];
    big[0] = 0x10;
    list.push(reseal(big));
    // Header varints: a seq over 32 bits, a ts over 64 bits, an 11-byte varint.
    let mut h = vec![0x10, 0x0c, 0, 0, 0, 0, 0];
    h.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10, 0x01, 0x00, 0, 0, 0, 0]);
    list.push(reseal(h));
    let mut h = vec![0x10, 0x0c, 0, 0, 0, 0, 0, 0x01];
    h.extend_from_slice(&[0xff; 9]);
    h.extend_from_slice(&[0x02, 0x00, 0, 0, 0, 0]);
    list.push(reseal(h));
    let mut h = vec![0x10, 0x0c, 0, 0, 0, 0, 0, 0x01];
    h.extend_from_slice(&[0xff; 11]);
    h.extend_from_slice(&[0, 0, 0, 0]);
    list.push(reseal(h));
    // Control payloads: a bad name, invalid UTF-8, a role out of range, a u16 over
    // its width, a body cut short, an overlong token and reason.
    let join = |payload: &[u8]| assemble(&Header::new(Kind::Join, 0, 4, 2, 9), payload);
    list.push(join(b"\x09has space\x01"));
    list.push(join(b"\x04\xff\xfe\xfd\xfc\x01"));
    list.push(join(b"\x04abcd\x03"));
    list.push(join(b"\x04abcd"));
    list.push(join(b"\x05abcd"));
    list.push(join(b"\x00\x01"));
    let left = |payload: &[u8]| assemble(&Header::new(Kind::MemberLeft, 3, 0, 2, 9), payload);
    list.push(left(&[0xff, 0xff, 0x03, 0x00]));
    list.push(left(&[0xff, 0xff, 0x04, 0x00]));
    list.push(left(&[0x01, 0x05]));
    let mut hello = vec![0u8];
    let mut token_len = [0u8; 10];
    let n = put_varint(&mut token_len, 2049);
    hello.extend_from_slice(&token_len[..n]);
    hello.extend(std::iter::repeat_n(b'a', 2049));
    hello.extend_from_slice(&[0, 0]);
    list.push(assemble(&Header::new(Kind::Hello, 0, 0, 0, 0), &hello));
    let mut err = vec![0x01, 0x00];
    let n = put_varint(&mut token_len, 257);
    err.extend_from_slice(&token_len[..n]);
    err.extend(std::iter::repeat_n(b'e', 257));
    list.push(assemble(&Header::new(Kind::Error, 0, 0, 0, 0), &err));
    let mut snap = b"\x06demo-0\x02\x02\x01\x00\x03ana".to_vec();
    list.push(assemble(
        &Header::new(Kind::RoomSnapshot, 3, 0, 1, 1),
        &snap,
    ));
    snap.extend_from_slice(b"\x02\x01\x03b c");
    list.push(assemble(
        &Header::new(Kind::RoomSnapshot, 3, 0, 1, 1),
        &snap,
    ));
    // Audio: unknown codec, 3 channels, rates out of range, too many samples, an odd
    // stereo count, missing samples, a trailing byte.
    let audio = |payload: &[u8]| assemble(&Header::new(Kind::Audio, 3, 7, 1, 1), payload);
    list.push(audio(&[1, 1, 0x80, 0xf7, 0x02, 0]));
    list.push(audio(&[0, 3, 0x80, 0xf7, 0x02, 0]));
    list.push(audio(&[0, 1, 0xbf, 0x3e, 0]));
    list.push(audio(&[0, 1, 0x81, 0xdc, 0x0b, 0]));
    list.push(audio(&[0, 1, 0x80, 0xf7, 0x02, 0xc1, 0x07]));
    list.push(audio(&[0, 2, 0x80, 0xf7, 0x02, 3, 0, 0, 0, 0, 0, 0]));
    list.push(audio(&[0, 1, 0x80, 0xf7, 0x02, 2, 0, 0]));
    list.push(audio(&[0, 1, 0x80, 0xf7, 0x02, 1, 0, 0, 0]));
    list.push(audio(&[0, 1]));
    // LZ4: an uncompressed length over the limit, a block that expands past its
    // stated length or falls short of it, a zero offset, an offset before the start,
    // a length run past the end, an empty block.
    let lz4 = |payload: &[u8]| {
        let mut h = Header::new(Kind::Audio, 3, 7, 2, 2);
        h.flags = Flags::LZ4;
        assemble(&h, payload)
    };
    list.push(lz4(&[0x81, 0x40, 0x10, 0x00]));
    list.push(lz4(&[0x04, 0x1f, 0x00, 0x01, 0x00, 0xff, 0xff, 0x00]));
    list.push(lz4(&[0x0a, 0x40, 0x00, 0x01, 0x80, 0xf7]));
    list.push(lz4(&[0x08, 0x10, 0x00, 0x00, 0x00, 0x00]));
    list.push(lz4(&[0x08, 0x10, 0x00, 0x05, 0x00, 0x00]));
    list.push(lz4(&[0x08, 0xf0, 0xff, 0xff]));
    list.push(lz4(&[0x00]));
    list.push(lz4(&[0x00, 0x00]));
    list.push(lz4(&[0x07, 0x70, 0x00, 0x01, 0x80, 0xf7, 0x02, 0x00, 0x00]));
    // Pose: raw and keyframe together, a zero reference, bodies of the wrong size, a
    // raw NaN and a raw value out of range, a keyframe value over its range, a delta
    // longer than any delta can be, and a delta whose fields are all escapes.
    let pose = |flags: u8, seq: u32, payload: &[u8]| {
        let mut h = Header::new(Kind::Pose, 1, 1, seq, seq as u64 * 1000);
        h.flags = Flags(flags);
        assemble(&h, payload)
    };
    list.push(pose(0x06, 1, &[0; 300]));
    let mut key = vec![0u8];
    key.extend_from_slice(&[0x00, 0x08, 0x00, 0x08, 0x00, 0x08, 0x40, 0x40].repeat(33));
    list.push(pose(0x02, 1, &key));
    list.push(pose(0x00, 2, &[0, 0, 0]));
    list.push(pose(0x02, 3, &key[..200]));
    let mut long_key = key.clone();
    long_key.push(0);
    list.push(pose(0x02, 3, &long_key));
    let mut over = key.clone();
    over[1 + 8 * 5..1 + 8 * 5 + 2].copy_from_slice(&6145u16.to_le_bytes());
    list.push(pose(0x02, 4, &over));
    let mut score = key.clone();
    score[1 + 8 * 6 + 7] = 129;
    list.push(pose(0x02, 4, &score));
    list.push(pose(0x02, 5, &key));
    let mut huge = vec![0u8, 1];
    huge.extend_from_slice(&[0; 930]);
    list.push(pose(0x00, 6, &huge));
    let mut escapes = vec![0u8, 1];
    escapes.extend_from_slice(&[0xff; 120]);
    list.push(pose(0x00, 6, &escapes));
    let mut zeros = vec![0u8, 1];
    zeros.extend_from_slice(&[0; 79]);
    list.push(pose(0x00, 6, &zeros)); // a valid still delta onto frame 5
    for (value, at) in [
        (f32::NAN, 17usize),
        (f32::INFINITY, 3),
        (2.5, 40),
        (-0.01, 3),
    ] {
        let mut raw = vec![0u8];
        for i in 0..165 {
            let v = if i == at { value } else { 0.25f32 };
            raw.extend_from_slice(&v.to_le_bytes());
        }
        list.push(pose(0x04, 7, &raw));
    }
    // A match one byte before the start: were it allowed, the payload would read as
    // a valid ping.
    let mut h = Header::new(Kind::Ping, 0, 0, 3, 3);
    h.flags = Flags::LZ4;
    list.push(assemble(&h, &[0x05, 0x10, 0x01, 0x02, 0x00, 0x00]));
    v.session("broken-by-hand", &list);

    // Random bytes, some of them behind a plausible header with a valid CRC.
    let mut list = Vec::new();
    for i in 0..400 {
        let len = rng.below(if i % 2 == 0 { 40 } else { 800 });
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 4 != 0 && b.len() >= 13 {
            b[0] = 0x10;
            b[1] = 1 + rng.below(17) as u8;
            b[2] = rng.below(8) as u8;
            b = reseal(b);
        }
        list.push(b);
    }
    v.session("broken-random", &list);
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Control messages the Rust encoder refuses; the JS encoder must refuse them too.
fn refusals(v: &mut Vectors) {
    let long_token = "t".repeat(2049);
    let long_reason = "r".repeat(257);
    let long_client = "c".repeat(65);
    let cases: Vec<(Header, Message<'_>)> = vec![
        (
            Header::new(Kind::Join, 0, 4, 1, 1),
            Message::Join(Join {
                room: "has space",
                role: Role::Viewer,
            }),
        ),
        (
            Header::new(Kind::Join, 0, 4, 1, 1),
            Message::Join(Join {
                room: "",
                role: Role::Viewer,
            }),
        ),
        (
            Header::new(Kind::Leave, 0, 4, 1, 1),
            Message::Leave(Leave { room: "ünï" }),
        ),
        (
            Header::new(Kind::Hello, 0, 0, 0, 0),
            Message::Hello(Hello {
                minor: 0,
                token: &long_token,
                resume: 0,
                client: "c",
            }),
        ),
        (
            Header::new(Kind::Hello, 0, 0, 0, 0),
            Message::Hello(Hello {
                minor: 0,
                token: "",
                resume: 0,
                client: &long_client,
            }),
        ),
        (
            Header::new(Kind::Error, 0, 0, 0, 0),
            Message::Error(ErrorMsg {
                code: ErrorCode::INTERNAL,
                about: 0,
                reason: &long_reason,
            }),
        ),
        (
            Header::new(Kind::MemberJoined, 3, 0, 0, 0),
            Message::MemberJoined(MemberJoined {
                member: MemberInfo {
                    member: 1,
                    role: Role::Owner,
                    user: "a/b c",
                },
            }),
        ),
    ];
    for (h, m) in cases {
        let mut buf = vec![0u8; 8192];
        let err = encode_control(&h, &m, &mut buf).expect_err("the Rust encoder refuses it");
        let body = match &m {
            Message::MemberJoined(j) => member_json(&j.member),
            other => body_json(other),
        };
        v.refusals
            .push(json!({"type": h.kind.name(), "header": {"room": h.room,
            "sender": h.sender, "seq": h.seq, "tsUs": h.ts_us.to_string()}, "body": body,
            "error": error_kind(&err)}));
    }
}

// ---- running Node.js ------------------------------------------------------------------

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `node ARGS` with a deadline; panics with advice if Node.js is missing.
fn node(args: &[&std::ffi::OsStr], timeout: Duration) -> Output {
    let mut child = match Command::new("node")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "this test needs Node.js 20 and `node` is not on the PATH: install Node.js 20 \
             (https://nodejs.org, or your distribution's `nodejs` package; CI installs it)"
        ),
        Err(e) => panic!("cannot start node: {e}"),
    };
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for node") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node {args:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn node_major() -> u32 {
    let out = node(&["--version".as_ref()], Duration::from_secs(30));
    let v = out.stdout.trim();
    v.trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("unexpected `node --version` output: {v:?}"))
}

/// A file removed when dropped (unless the second field says to keep it).
struct TempFile(PathBuf, bool);

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.1 {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn the_js_module_decodes_what_the_rust_codec_encodes() {
    let major = node_major();
    assert!(
        major >= 18,
        "Node.js {major} is too old for web/poselink.js: install Node.js 20"
    );

    let v = build();
    let t = &v.tally;
    eprintln!(
        "vectors: {} messages in {} sessions; frames {:?}; errors {:?}; LZ4 {:?}",
        t.messages,
        v.sessions.len(),
        t.frames,
        t.errors,
        t.lz4
    );
    // The vectors cover what they claim to.
    for coding in ["keyframe", "delta", "raw"] {
        assert!(t.frames.get(coding).copied().unwrap_or(0) >= 10, "{coding}");
    }
    for kind in [
        "needs_keyframe",
        "truncated",
        "bad_checksum",
        "unknown_version",
        "unknown_kind",
        "oversize",
        "malformed",
        "bad_name",
        "bad_audio",
        "not_finite",
        "out_of_range",
    ] {
        assert!(
            t.errors.contains_key(kind),
            "no vector is refused as {kind}"
        );
    }
    for kind in ["pose", "audio", "close_room"] {
        assert!(t.lz4.contains_key(kind), "no LZ4-compressed {kind}");
    }
    let frames: usize = t.frames.values().sum();
    let needs_keyframe = t.errors["needs_keyframe"];
    let errors: usize = t.errors.values().sum::<usize>() - needs_keyframe;

    let connections: Vec<[usize; 2]> = POSE_CONNECTIONS.iter().map(|&(a, b)| [a, b]).collect();
    let doc = json!({
        "sessions": v.sessions, "encodes": v.encodes, "refusals": v.refusals,
        "connections": connections,
    });
    // POSELINK_WEB_VECTORS=FILE keeps the vectors there, to run the script by hand.
    let keep = std::env::var_os("POSELINK_WEB_VECTORS").map(PathBuf::from);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "poselink-web-vectors-{}-{nanos}.json",
            std::process::id()
        ))
    });
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).expect("writing the vectors");
    let file = TempFile(path, keep.is_none());

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/test/decode.mjs");
    let out = node(&[script.as_os_str(), file.0.as_os_str()], NODE_TIMEOUT);
    let summary: Value = out
        .stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "node printed no summary ({}):\n{}\n{}",
                out.status, out.stdout, out.stderr
            )
        });
    eprintln!("node: {summary}");
    assert!(
        out.status.success(),
        "web/test/decode.mjs failed ({}): {:#}\n{}",
        out.status,
        summary["failures"],
        out.stderr
    );
    let count = |k: &str| summary[k].as_u64().unwrap_or(u64::MAX) as usize;
    assert_eq!(count("messages"), t.messages);
    assert_eq!(count("matched"), t.messages);
    assert_eq!(count("inexact"), 0, "JS and Rust values differ below 1e-6");
    assert_eq!(count("frames"), frames);
    assert_eq!(count("needsKeyframe"), needs_keyframe);
    assert_eq!(count("errors"), errors);
    assert_eq!(count("encodes"), v.encodes.len());
    assert_eq!(count("encodeMatched"), v.encodes.len());
    assert_eq!(count("refusals"), v.refusals.len());
    assert_eq!(count("refusalMatched"), v.refusals.len());
    assert!(count("fuzz") >= 1000, "too few mutated inputs: {summary}");
    assert_eq!(count("failureCount"), 0);
}
