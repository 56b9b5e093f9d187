//! JSON mode: the protocol's messages as JSON text frames, for a client that asks
//! for the `poselink.json` WebSocket subprotocol (any WebSocket library, no codec
//! to port). The hub translates at its edges: a JSON client's text message becomes
//! the binary message a binary client would have sent (and then takes exactly the
//! binary path: limits, checks, relay); whatever the hub sends a JSON client —
//! control messages, and pose and audio from binary publishers (pose decoded by a
//! per-stream decoder the hub keeps only while a JSON receiver exists) — is turned
//! into JSON text. This path allocates; the binary path is untouched by it.
//!
//! The message shapes are in docs/PROTOCOL.md §16. Every JSON message is an
//! object with a `"type"`; rooms are named (not handles); landmarks are
//! MediaPipe-style objects `{"x","y","z","visibility","presence"}`.

use serde_json::{Map, Value, json};

use crate::proto::{
    self, AudioChunk, AudioPayload, CloseRoom, Compressor, EncoderConfig, ErrorCode, Header, Hello,
    Join, Kick, Kind, LANDMARK_COUNT, Leave, LeaveReason, Message, Packet, Ping, PoseEncoder,
    PoseFrame, Role, RoleChanged,
};

/// The WebSocket subprotocol that selects JSON mode.
pub const SUBPROTOCOL: &str = "poselink.json";

/// Whether a `Sec-WebSocket-Protocol` header value offers JSON mode.
pub fn offers_json(header: &str) -> bool {
    header
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL))
}

/// What a JSON client's message needs from the hub to become binary.
pub struct Inbound<'a> {
    /// The client's member id (0 before the welcome).
    pub member: u16,
    /// The hub's clock.
    pub now_us: u64,
    /// The handle of a room the client is a member of, by name.
    pub room: &'a dyn Fn(&str) -> Option<u16>,
    /// The next pose and audio sequence numbers, for messages that give none.
    pub pose_seq: &'a mut u32,
    /// See `pose_seq`.
    pub audio_seq: &'a mut u32,
}

const TYPES: &str = "hello, join, leave, pose, audio, kick, set_role, close_room, ping";

fn field<'v>(o: &'v Map<String, Value>, k: &str) -> Result<&'v Value, String> {
    o.get(k)
        .ok_or_else(|| format!("the message lacks the \"{k}\" field"))
}

fn str_of<'v>(o: &'v Map<String, Value>, k: &str) -> Result<&'v str, String> {
    field(o, k)?
        .as_str()
        .ok_or_else(|| format!("\"{k}\" must be a string"))
}

fn uint(o: &Map<String, Value>, k: &str, default: Option<u64>) -> Result<u64, String> {
    match (o.get(k), default) {
        (None, Some(d)) | (Some(Value::Null), Some(d)) => Ok(d),
        (None, None) => Err(format!("the message lacks the \"{k}\" field")),
        (Some(v), _) => v
            .as_u64()
            .ok_or_else(|| format!("\"{k}\" must be a non-negative integer")),
    }
}

fn float(o: &Map<String, Value>, k: &str, default: Option<f32>) -> Result<f32, String> {
    match (o.get(k), default) {
        (None, Some(d)) => Ok(d),
        (None, None) => Err(format!("a landmark lacks \"{k}\"")),
        (Some(v), _) => v
            .as_f64()
            .map(|f| f as f32)
            .ok_or_else(|| format!("a landmark's \"{k}\" must be a number")),
    }
}

fn role_of(o: &Map<String, Value>) -> Result<Role, String> {
    let r = str_of(o, "role")?;
    Role::parse(r).ok_or_else(|| format!("unknown role {r:?}: use owner, member or viewer"))
}

fn room_handle(o: &Map<String, Value>, ctx: &Inbound<'_>) -> Result<u16, String> {
    let name = str_of(o, "room")?;
    (ctx.room)(name).ok_or_else(|| format!("not a member of room {name:?}: join it first"))
}

fn control(msg: &Message<'_>, room: u16, now_us: u64, out: &mut [u8]) -> Result<usize, String> {
    let header = Header::new(msg.kind(), room, 0, 0, now_us);
    proto::encode_control(&header, msg, out).map_err(|e| e.to_string())
}

/// Turns a JSON client's text message into the binary message, written to `out`;
/// or a sentence saying what is wrong with it.
pub fn to_binary(text: &[u8], ctx: &mut Inbound<'_>, out: &mut [u8]) -> Result<usize, String> {
    let v: Value = serde_json::from_slice(text).map_err(|e| format!("not valid JSON ({e})"))?;
    let Value::Object(o) = v else {
        return Err(format!(
            "a JSON message must be an object with a \"type\" ({TYPES})"
        ));
    };
    let ty = o
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("a JSON message needs a \"type\" string ({TYPES})"))?;
    let now = ctx.now_us;
    match ty {
        "hello" => {
            let msg = Message::Hello(Hello {
                minor: uint(&o, "minor", Some(proto::PROTOCOL_MINOR.into()))?.min(255) as u8,
                token: o.get("token").and_then(Value::as_str).unwrap_or(""),
                resume: uint(&o, "resume", Some(0))?,
                client: o
                    .get("client")
                    .and_then(Value::as_str)
                    .unwrap_or("json-client"),
            });
            control(&msg, 0, now, out)
        }
        "join" => {
            let msg = Message::Join(Join {
                room: str_of(&o, "room")?,
                role: role_of(&o)?,
            });
            control(&msg, 0, now, out)
        }
        "leave" => control(
            &Message::Leave(Leave {
                room: str_of(&o, "room")?,
            }),
            0,
            now,
            out,
        ),
        "kick" => {
            let room = room_handle(&o, ctx)?;
            let msg = Message::Kick(Kick {
                member: uint(&o, "member", None)?.min(u16::MAX.into()) as u16,
                reason: o.get("reason").and_then(Value::as_str).unwrap_or(""),
            });
            control(&msg, room, now, out)
        }
        "set_role" | "role_changed" => {
            let room = room_handle(&o, ctx)?;
            let msg = Message::RoleChanged(RoleChanged {
                member: uint(&o, "member", None)?.min(u16::MAX.into()) as u16,
                role: role_of(&o)?,
            });
            control(&msg, room, now, out)
        }
        "close_room" => {
            let room = room_handle(&o, ctx)?;
            let msg = Message::CloseRoom(CloseRoom {
                reason: o.get("reason").and_then(Value::as_str).unwrap_or(""),
            });
            control(&msg, room, now, out)
        }
        "ping" => control(
            &Message::Ping(Ping {
                t0_us: uint(&o, "t0_us", Some(0))?,
            }),
            0,
            now,
            out,
        ),
        "pose" => {
            let room = room_handle(&o, ctx)?;
            let lms = field(&o, "landmarks")?
                .as_array()
                .ok_or("\"landmarks\" must be an array of 33 objects")?;
            if lms.len() != LANDMARK_COUNT {
                return Err(format!(
                    "\"landmarks\" has {} entries; a BlazePose frame has {LANDMARK_COUNT}",
                    lms.len()
                ));
            }
            let seq = match o.get("seq") {
                Some(_) => uint(&o, "seq", None)? as u32,
                None => {
                    *ctx.pose_seq = ctx.pose_seq.wrapping_add(1);
                    *ctx.pose_seq
                }
            };
            let mut frame = PoseFrame {
                seq,
                person: uint(&o, "person", Some(0))?.min(u32::MAX.into()) as u32,
                capture_ts_us: uint(&o, "timestamp_us", Some(now))?,
                ..PoseFrame::default()
            };
            for (lm, v) in frame.landmarks.iter_mut().zip(lms) {
                let p = v
                    .as_object()
                    .ok_or("each landmark must be an object {x, y, z, visibility, presence}")?;
                lm.x = float(p, "x", None)?;
                lm.y = float(p, "y", None)?;
                lm.z = float(p, "z", Some(0.0))?;
                lm.visibility = float(p, "visibility", Some(1.0))?;
                lm.presence = float(p, "presence", Some(1.0))?;
            }
            frame.validate().map_err(|e| e.to_string())?;
            // A fresh encoder: every JSON frame is a keyframe, decodable alone (a
            // JSON publisher keeps no codec state, and the hub none for it).
            let mut enc = PoseEncoder::new(EncoderConfig::default());
            enc.encode(&frame, room, ctx.member, out)
                .map_err(|e| e.to_string())
        }
        "audio" => {
            let room = room_handle(&o, ctx)?;
            let samples = field(&o, "samples")?
                .as_array()
                .ok_or("\"samples\" must be an array of 16-bit integers")?;
            let rate = uint(&o, "sample_rate", Some(48_000))?.min(u32::MAX.into()) as u32;
            let channels = uint(&o, "channels", Some(1))?.min(255) as u8;
            if samples.len() > proto::AUDIO_CHUNK_CAPACITY {
                return Err(format!(
                    "{} samples in one chunk; at most {}",
                    samples.len(),
                    proto::AUDIO_CHUNK_CAPACITY
                ));
            }
            let mut chunk = AudioChunk::silence(rate, channels.max(1), 0);
            chunk.channels = channels;
            chunk.len = samples.len() as u16;
            for (dst, s) in chunk.samples.iter_mut().zip(samples) {
                *dst = s
                    .as_i64()
                    .and_then(|s| i16::try_from(s).ok())
                    .ok_or("each sample must be an integer from -32768 to 32767")?;
            }
            chunk.seq = match o.get("seq") {
                Some(_) => uint(&o, "seq", None)? as u32,
                None => {
                    *ctx.audio_seq = ctx.audio_seq.wrapping_add(1);
                    *ctx.audio_seq
                }
            };
            chunk.capture_ts_us = uint(&o, "timestamp_us", Some(now))?;
            let mut plain = Compressor::new(usize::MAX);
            proto::encode_audio(&chunk, room, ctx.member, &mut plain, out)
                .map_err(|e| e.to_string())
        }
        other => Err(format!(
            "unknown message type {other:?}; JSON mode knows {TYPES}"
        )),
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

fn kind_name(k: u8) -> Value {
    match Kind::from_u8(k) {
        Some(k) => json!(k.name()),
        None => json!(k),
    }
}

/// A control message from the hub (binary, as a binary client would get it) as
/// JSON text; `room_name` names a room handle. `None` for media or what does not
/// parse (the hub made it, so that does not happen).
pub fn control_to_json(
    bytes: &[u8],
    scratch: &mut [u8],
    room_name: &dyn Fn(u16) -> Option<String>,
) -> Option<String> {
    let packet = Packet::new_checked(bytes).ok()?;
    let header = packet.header();
    let room = || room_name(header.room).map_or(Value::Null, Value::String);
    let v = match Message::parse(&packet, scratch).ok()? {
        Message::Welcome(w) => json!({
            "type": "welcome", "member": w.member, "user": w.user, "resume": w.resume,
            "server_time_us": w.server_time_us, "heartbeat_ms": w.heartbeat_ms,
            "max_message": w.max_message, "minor": w.minor,
        }),
        Message::RoomSnapshot(s) => json!({
            "type": "room_snapshot", "room": s.name, "your_role": s.your_role.name(),
            "members": s.members.iter().map(|m| json!({
                "member": m.member, "role": m.role.name(), "user": m.user,
            })).collect::<Vec<_>>(),
        }),
        Message::MemberJoined(m) => json!({
            "type": "member_joined", "room": room(),
            "member": { "member": m.member.member, "role": m.member.role.name(), "user": m.member.user },
        }),
        Message::MemberLeft(m) => json!({
            "type": "member_left", "room": room(), "member": m.member,
            "reason": leave_reason(m.reason),
        }),
        Message::RoleChanged(r) => json!({
            "type": "role_changed", "room": room(), "member": r.member, "role": r.role.name(),
        }),
        Message::Kick(k) => json!({
            "type": "kick", "room": room(), "member": k.member, "reason": k.reason,
        }),
        Message::CloseRoom(c) => {
            json!({ "type": "close_room", "room": room(), "reason": c.reason })
        }
        Message::Error(e) => json!({
            "type": "error", "code": e.code.0, "name": e.code.name(), "about": kind_name(e.about),
            "reason": e.reason,
        }),
        Message::Ping(p) => json!({ "type": "ping", "t0_us": p.t0_us }),
        Message::Pong(p) => json!({
            "type": "pong", "t0_us": p.t0_us, "t1_us": p.t1_us, "t2_us": p.t2_us,
        }),
        Message::Ack(a) => json!({
            "type": "ack", "room": room(), "kind": kind_name(a.kind), "seq": a.seq,
        }),
        Message::NeedsKeyframe(n) => json!({
            "type": "needs_keyframe", "room": room(), "publisher": n.publisher, "person": n.person,
        }),
        Message::Hello(_)
        | Message::Join(_)
        | Message::Leave(_)
        | Message::Pose(_)
        | Message::Audio(_) => return None,
    };
    Some(v.to_string())
}

/// A decoded pose frame as JSON text.
pub fn pose_to_json(
    header: &Header,
    frame: &PoseFrame,
    room: Option<&str>,
    keyframe: bool,
) -> String {
    let landmarks: Vec<Value> = frame
        .landmarks
        .iter()
        .map(|l| {
            json!({
                "x": l.x, "y": l.y, "z": l.z, "visibility": l.visibility, "presence": l.presence,
            })
        })
        .collect();
    json!({
        "type": "pose", "room": room, "sender": header.sender, "person": frame.person,
        "seq": header.seq, "timestamp_us": header.ts_us, "keyframe": keyframe,
        "landmarks": landmarks,
    })
    .to_string()
}

/// An audio chunk as JSON text (samples as integers).
pub fn audio_to_json(header: &Header, a: &AudioPayload<'_>, room: Option<&str>) -> String {
    let samples: Vec<i16> = a
        .samples
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    json!({
        "type": "audio", "room": room, "sender": header.sender, "seq": header.seq,
        "timestamp_us": header.ts_us, "sample_rate": a.sample_rate, "channels": a.channels,
        "samples": samples,
    })
    .to_string()
}

/// An error for a JSON client whose message could not be translated.
pub fn translation_error(reason: &str) -> (ErrorCode, String) {
    (
        ErrorCode::BAD_MESSAGE,
        format!("JSON mode: {reason} (see docs/PROTOCOL.md §16)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_run(text: &str) -> Result<Vec<u8>, String> {
        let rooms = |n: &str| (n == "r1").then_some(7u16);
        let (mut ps, mut au) = (0, 0);
        let mut ctx = Inbound {
            member: 3,
            now_us: 1_000,
            room: &rooms,
            pose_seq: &mut ps,
            audio_seq: &mut au,
        };
        let mut out = [0u8; 4096];
        to_binary(text.as_bytes(), &mut ctx, &mut out).map(|n| out[..n].to_vec())
    }

    #[test]
    fn a_json_pose_becomes_a_decodable_keyframe() {
        let lm: Vec<Value> = (0..33)
            .map(|i| json!({"x": i as f64 / 40.0, "y": 0.5, "z": -0.1, "visibility": 0.9, "presence": 1.0}))
            .collect();
        let text =
            json!({"type": "pose", "room": "r1", "seq": 5, "timestamp_us": 77, "landmarks": lm})
                .to_string();
        let bytes = ctx_run(&text).unwrap();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let h = p.header();
        assert_eq!(
            (h.kind, h.room, h.sender, h.seq, h.ts_us),
            (Kind::Pose, 7, 3, 5, 77)
        );
        let mut scratch = [0u8; 4096];
        let Message::Pose(pp) = Message::parse(&p, &mut scratch).unwrap() else {
            panic!()
        };
        let mut dec = proto::PoseDecoder::default();
        let f = dec.decode(&h, &pp).unwrap();
        assert!((f.landmarks[32].x - 0.8).abs() < 3e-4);
        assert!((f.landmarks[0].visibility - 0.9).abs() < 1.0 / 256.0 + 1e-6);
        // And back to JSON with the same values.
        let back: Value = serde_json::from_str(&pose_to_json(&h, f, Some("r1"), true)).unwrap();
        assert_eq!(back["landmarks"].as_array().unwrap().len(), 33);
        assert_eq!(back["seq"], 5);
    }

    #[test]
    fn bad_json_messages_are_explained() {
        for (text, want) in [
            ("{", "not valid JSON"),
            ("[1]", "must be an object"),
            ("{\"x\":1}", "needs a \"type\""),
            ("{\"type\":\"dance\"}", "unknown message type"),
            (
                "{\"type\":\"join\",\"room\":\"r1\",\"role\":\"king\"}",
                "unknown role",
            ),
            (
                "{\"type\":\"pose\",\"room\":\"r2\",\"landmarks\":[]}",
                "not a member of room \"r2\"",
            ),
            (
                "{\"type\":\"pose\",\"room\":\"r1\",\"landmarks\":[]}",
                "has 0 entries",
            ),
            (
                "{\"type\":\"audio\",\"room\":\"r1\",\"samples\":[40000]}",
                "-32768 to 32767",
            ),
        ] {
            let e = ctx_run(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let lm: Vec<Value> = (0..33).map(|_| json!({"x": 9.0, "y": 0.5})).collect();
        let e =
            ctx_run(&json!({"type":"pose","room":"r1","landmarks":lm}).to_string()).unwrap_err();
        assert!(e.contains('x') || e.contains("range"), "{e}");
    }

    #[test]
    fn subprotocol_offers() {
        assert!(offers_json("poselink.json"));
        assert!(offers_json("chat, Poselink.JSON"));
        assert!(!offers_json("poselink"));
    }
}
