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

use crate::wire_examples;

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
        Message::Audio(a) if a.codec == poselink::proto::AudioCodec::Opus => {
            json!({"codec": "opus", "channels": a.channels, "sampleRate": a.sample_rate,
                "len": a.len, "packet": hex(a.samples)})
        }
        Message::Audio(a) => {
            let samples: Vec<i16> = a
                .samples
                .chunks_exact(2)
                .map(|s| i16::from_le_bytes([s[0], s[1]]))
                .collect();
            json!({"codec": "pcm16", "channels": a.channels, "sampleRate": a.sample_rate,
                "len": a.len, "samples": samples})
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

mod broken;
mod vectors;

use broken::{broken, refusals};
use vectors::*;

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
