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
//!
//! The first half of this file is the translation itself (pure functions); the
//! second, the core's use of it: [`JsonEdge`] (what the translation keeps) and
//! the core's JSON inputs and outputs.

use serde_json::{Map, Value, json};

use crate::proto::{
    self, AudioChunk, AudioCodec, AudioPayload, CloseRoom, Compressor, EncoderConfig, ErrorCode,
    Header, Hello, Join, Kick, Kind, LANDMARK_COUNT, Leave, Message, Packet, Ping, PoseCoding,
    PoseDecoder, PoseEncoder, PoseFrame, Role, RoleChanged,
};
use crate::room::RoomHandle;
use crate::ws::FrameKind;

use super::link::Phase;
use super::{DropReason, Inner, Space, app_close};

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
    uint_to(o, k, default, u64::MAX)
}

/// An unsigned integer field no larger than `max` (the width it has on the
/// wire): a larger one is refused, never cut or saturated (2^33 + 9 relayed
/// as 9 would be a different message).
fn uint_to(o: &Map<String, Value>, k: &str, default: Option<u64>, max: u64) -> Result<u64, String> {
    let v = match (o.get(k), default) {
        (None, Some(d)) | (Some(Value::Null), Some(d)) => return Ok(d),
        (None, None) => return Err(format!("the message lacks the \"{k}\" field")),
        (Some(v), _) => v,
    };
    match v.as_u64() {
        Some(n) if n <= max => Ok(n),
        Some(n) => Err(format!(
            "\"{k}\" is {n}, out of range: it must be an integer from 0 to {max}"
        )),
        None if v.is_number() => Err(format!(
            "\"{k}\" is {v}, out of range: it must be an integer from 0 to {max}"
        )),
        None => Err(format!("\"{k}\" must be a non-negative integer")),
    }
}

/// An optional string field: absent or null gives `default`; any other type is
/// refused rather than ignored.
fn opt_str<'v>(
    o: &'v Map<String, Value>,
    k: &str,
    default: &'static str,
) -> Result<&'v str, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("\"{k}\" must be a string")),
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
                minor: uint_to(
                    &o,
                    "minor",
                    Some(proto::PROTOCOL_MINOR.into()),
                    u8::MAX.into(),
                )? as u8,
                token: opt_str(&o, "token", "")?,
                resume: uint(&o, "resume", Some(0))?,
                client: opt_str(&o, "client", "json-client")?,
                stream: uint_to(&o, "stream", Some(0), proto::MAX_STREAM_ID)?,
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
                member: uint_to(&o, "member", None, u16::MAX.into())? as u16,
                reason: opt_str(&o, "reason", "")?,
            });
            control(&msg, room, now, out)
        }
        "set_role" | "role_changed" => {
            let room = room_handle(&o, ctx)?;
            let msg = Message::RoleChanged(RoleChanged {
                member: uint_to(&o, "member", None, u16::MAX.into())? as u16,
                role: role_of(&o)?,
            });
            control(&msg, room, now, out)
        }
        "close_room" => {
            let room = room_handle(&o, ctx)?;
            let msg = Message::CloseRoom(CloseRoom {
                reason: opt_str(&o, "reason", "")?,
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
                Some(_) => uint_to(&o, "seq", None, u32::MAX.into())? as u32,
                None => {
                    *ctx.pose_seq = ctx.pose_seq.wrapping_add(1);
                    *ctx.pose_seq
                }
            };
            let mut frame = PoseFrame {
                seq,
                person: uint_to(&o, "person", Some(0), u32::MAX.into())? as u32,
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
            let rate = uint_to(&o, "sample_rate", Some(48_000), u32::MAX.into())? as u32;
            let channels = match uint(&o, "channels", Some(1))? {
                n @ 1..=2 => n as u8,
                n => {
                    return Err(format!(
                        "\"channels\" is {n}: it must be 1 (mono) or 2 (stereo)"
                    ));
                }
            };
            if samples.len() > proto::AUDIO_CHUNK_CAPACITY {
                return Err(format!(
                    "{} samples in one chunk; at most {}",
                    samples.len(),
                    proto::AUDIO_CHUNK_CAPACITY
                ));
            }
            let mut chunk = AudioChunk::silence(rate, channels, 0);
            chunk.channels = channels;
            chunk.len = samples.len() as u16;
            for (dst, s) in chunk.samples.iter_mut().zip(samples) {
                *dst = s
                    .as_i64()
                    .and_then(|s| i16::try_from(s).ok())
                    .ok_or("each sample must be an integer from -32768 to 32767")?;
            }
            chunk.seq = match o.get("seq") {
                Some(_) => uint_to(&o, "seq", None, u32::MAX.into())? as u32,
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
            "members": s.members.iter_with_streams().map(|(m, stream)| json!({
                "member": m.member, "role": m.role.name(), "user": m.user, "stream": stream,
            })).collect::<Vec<_>>(),
        }),
        Message::MemberJoined(m) => json!({
            "type": "member_joined", "room": room(),
            "member": {
                "member": m.member.member, "role": m.member.role.name(), "user": m.member.user,
                "stream": m.stream,
            },
        }),
        Message::MemberLeft(m) => json!({
            "type": "member_left", "room": room(), "member": m.member,
            "reason": m.reason.name(),
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

/// The most bytes the JSON text of stored audio block `b` can take, with its
/// frame header: every sample at its longest (`-32768,`), plus the fields.
fn json_bound(pool: &super::pool::Pool, b: u32) -> usize {
    pool.bytes(b).len() / 2 * 7 + 320
}

/// An audio chunk as JSON text: PCM16 as `samples` (integers); an Opus chunk
/// as its packet, base64 in `opus`, with `codec` naming it (the hub relays
/// audio as it came and decodes no codec: docs/PROTOCOL.md §16).
pub fn audio_to_json(header: &Header, a: &AudioPayload<'_>, room: Option<&str>) -> String {
    if a.codec == AudioCodec::Opus {
        return json!({
            "type": "audio", "room": room, "sender": header.sender, "seq": header.seq,
            "timestamp_us": header.ts_us, "sample_rate": a.sample_rate, "channels": a.channels,
            "codec": a.codec.name(), "len": a.len, "opus": base64(a.samples),
        })
        .to_string();
    }
    let samples: Vec<i16> = a
        .samples
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    json!({
        "type": "audio", "room": room, "sender": header.sender, "seq": header.seq,
        "timestamp_us": header.ts_us, "sample_rate": a.sample_rate, "channels": a.channels,
        "codec": a.codec.name(), "samples": samples,
    })
    .to_string()
}

/// Standard base64 (RFC 4648, with padding), as browsers' `atob` reads it.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = u32::from(c[0]) << 16
            | u32::from(*c.get(1).unwrap_or(&0)) << 8
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                s.push(ABC[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// An error for a JSON client whose message could not be translated.
pub fn translation_error(reason: &str) -> (ErrorCode, String) {
    (
        ErrorCode::BAD_MESSAGE,
        format!("JSON mode: {reason} (see docs/PROTOCOL.md §16)"),
    )
}

/// Pose decoders the hub keeps for JSON receivers, at most.
pub(super) const JSON_DECODERS: usize = 1024;

/// What the core keeps for JSON mode: nothing until a JSON client comes.
pub(super) struct JsonEdge {
    /// Parsing space for what is translated to JSON (sized on first use).
    scratch: Vec<u8>,
    scratch_len: usize,
    /// The message being fanned out, as JSON (translated once for every JSON
    /// receiver of the room; `None` inside: it could not be decoded).
    media: Option<(u32, Option<String>)>,
    /// Pose decoders per (publisher member, room, person), kept while JSON
    /// receivers get that stream.
    decoders: Vec<((u16, u16, u32), PoseDecoder)>,
}

impl JsonEdge {
    /// Nothing allocated yet; parsing space of `scratch_len` bytes once needed.
    pub fn new(scratch_len: usize) -> JsonEdge {
        JsonEdge {
            scratch: Vec::new(),
            scratch_len,
            media: None,
            decoders: Vec::new(),
        }
    }

    /// The parsing space.
    pub fn scratch(&mut self) -> &mut [u8] {
        if self.scratch.len() < self.scratch_len {
            self.scratch.resize(self.scratch_len, 0);
        }
        &mut self.scratch
    }

    /// The fan-out of one message is over: forget its translation.
    pub fn end_fan_out(&mut self) {
        self.media = None;
    }
}

impl Inner {
    /// A JSON-mode client's text message: translated to the binary message and
    /// handled as one (limits, checks and relay included).
    pub(super) fn on_json_text(&mut self, i: usize, text: &[u8], space: &mut Space) {
        let buf = &mut space.json_in;
        buf.resize(self.cfg.max_message.max(8 * 1024), 0);
        let s = &self.sessions[i];
        let (mut pose_seq, mut audio_seq) = (s.json_pose_seq, s.json_audio_seq);
        let handles: Vec<(String, u16)> = s
            .rooms
            .iter()
            .filter_map(|m| Some((self.rooms.name(m.handle)?.to_string(), m.handle.to_wire())))
            .collect();
        let lookup = |name: &str| handles.iter().find(|h| h.0 == name).map(|h| h.1);
        let mut ctx = Inbound {
            member: s.member,
            now_us: self.now,
            room: &lookup,
            pose_seq: &mut pose_seq,
            audio_seq: &mut audio_seq,
        };
        let result = to_binary(text, &mut ctx, buf);
        let s = &mut self.sessions[i];
        s.json_pose_seq = pose_seq;
        s.json_audio_seq = audio_seq;
        match result {
            Ok(n) => self.on_binary(i, &space.json_in[..n], &mut space.parse),
            Err(why) => {
                let (code, reason) = translation_error(&why);
                log::debug!("connection {i}: {reason}");
                self.send_error(i, code, 0, &reason);
                // As for a binary client: a malformed first message ends the
                // connection (4001); later ones are refused and the session goes on.
                if self.links[i].phase == Phase::AwaitHello {
                    self.close(i, app_close(code), code.name());
                }
            }
        }
    }

    /// A media message for a JSON receiver: translated to JSON text (once per
    /// fan-out, for every JSON receiver of the room; `live`: this is the
    /// fan-out, not a cached keyframe) and written to its control FIFO. Pose
    /// that finds no room there is dropped and counted (the hub's decoder for
    /// the stream has moved on; the next keyframe resyncs). Audio that finds no
    /// room, or finds audio already waiting, waits in the receiver's media
    /// queue as the binary block, bounded by `queue_depth` like a binary
    /// receiver's (the oldest dropped and counted), and is translated as the
    /// FIFO drains ([`json_refill`](Self::json_refill)): a JSON receiver gets the
    /// audio a binary one gets.
    pub(super) fn enqueue_json_media(&mut self, r: usize, b: u32, live: bool) {
        let meta = self.pool.meta(b);
        if meta.audio && !self.links[r].data.is_empty() {
            return self.push_media(r, b);
        }
        if meta.audio
            && self.links[r].ctrl_room(self.cfg.control_buffer) < json_bound(&self.pool, b)
        {
            return self.push_media(r, b);
        }
        let text = match &self.json.media {
            Some((blk, t)) if *blk == b && live => t.clone(),
            _ => {
                let t = self.media_to_json(b, live);
                if live {
                    self.json.media = Some((b, t.clone()));
                }
                t
            }
        };
        let Some(text) = text else {
            return;
        };
        if self.links[r].ctrl_room(self.cfg.control_buffer) < text.len() + 16 {
            if let Some(rc) = self.room_counts.get_mut(meta.room.index()) {
                rc.drops += 1;
            }
            self.stats.count_drop(if meta.audio {
                DropReason::SlowAudio
            } else {
                DropReason::SlowPose
            });
            return;
        }
        if self.push_ctrl_frame(r, FrameKind::Text, text.as_bytes()) {
            self.stats.delivered += 1;
            self.stats.messages_out += 1;
        }
    }

    /// Moves the audio waiting in JSON receiver `r`'s media queue into its
    /// control FIFO, translated, oldest first, while the FIFO has room for the
    /// next (or is empty: a chunk too large for an empty FIFO is dropped and
    /// counted, so audio never waits behind an empty FIFO).
    pub(super) fn json_refill(&mut self, r: usize) {
        while let Some(&b) = self.links[r].data.front() {
            let link = &self.links[r];
            let empty = link.ctrl_head == link.ctrl_tail;
            if !empty && link.ctrl_room(self.cfg.control_buffer) < json_bound(&self.pool, b) {
                return;
            }
            let text = self.media_to_json(b, false);
            self.links[r].data.pop_front();
            let room = self.pool.meta(b).room;
            self.pool.release(b);
            let pushed = text.is_some_and(|t| {
                t.len() + 16 <= self.cfg.control_buffer
                    && self.push_ctrl_frame(r, FrameKind::Text, t.as_bytes())
            });
            if pushed {
                self.stats.delivered += 1;
                self.stats.messages_out += 1;
            } else {
                if let Some(rc) = self.room_counts.get_mut(room.index()) {
                    rc.drops += 1;
                }
                self.stats.count_drop(DropReason::SlowAudio);
            }
        }
    }

    /// A relayed media message as JSON. Pose is decoded: a live stream through
    /// the hub's decoder for it (created on first use; a delta it cannot decode
    /// yet asks the publisher for a keyframe), a served keyframe on its own.
    fn media_to_json(&mut self, b: u32, live: bool) -> Option<String> {
        let stored = self.pool.bytes(b);
        // The block starts with the binary frame's header: 2 bytes, or 4 with
        // a 16-bit length.
        let hl = if stored.get(1)? & 0x7f == 126 { 4 } else { 2 };
        let packet = Packet::new_checked(stored.get(hl..)?).ok()?;
        let header = packet.header();
        let room = self.rooms.name(RoomHandle::from_wire(header.room));
        self.json.scratch();
        let JsonEdge {
            scratch, decoders, ..
        } = &mut self.json;
        match Message::parse(&packet, scratch) {
            Ok(Message::Audio(a)) => Some(audio_to_json(&header, &a, room)),
            Ok(Message::Pose(p)) => {
                let standalone = !matches!(p.coding, PoseCoding::Delta { .. });
                let key = (header.sender, header.room, p.person);
                let decoded = if standalone && !live {
                    PoseDecoder::default().decode(&header, &p).copied()
                } else {
                    let k = match decoders.iter().position(|d| d.0 == key) {
                        Some(k) => k,
                        None => {
                            if decoders.len() >= JSON_DECODERS {
                                decoders.remove(0);
                            }
                            decoders.push((key, PoseDecoder::default()));
                            decoders.len() - 1
                        }
                    };
                    decoders[k].1.decode(&header, &p).copied()
                };
                match decoded {
                    Ok(frame) => Some(pose_to_json(&header, &frame, room, standalone)),
                    Err(_) => {
                        // Joined mid-stream: ask the publisher for a keyframe.
                        let meta = self.pool.meta(b);
                        let wanted = &mut self.keyframe_wanted;
                        if wanted.len() < wanted.capacity() {
                            wanted.push((meta.publisher, meta.room, p.person));
                        }
                        None
                    }
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_rfc_4648() {
        for (raw, b64) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (&[0xfb, 0xff, 0x3e], "+/8+"),
        ] {
            assert_eq!(super::base64(raw), b64);
        }
    }

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
    fn numbers_too_large_for_their_field_are_refused_not_cut() {
        let lm: Vec<Value> = (0..33).map(|_| json!({"x": 0.5, "y": 0.5})).collect();
        let pose = |extra: Value| {
            let mut v = json!({"type": "pose", "room": "r1", "landmarks": lm});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v.to_string()
        };
        let audio = |extra: Value| {
            let mut v = json!({"type": "audio", "room": "r1", "samples": [0, 0]});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v.to_string()
        };
        for (text, want) in [
            (
                pose(json!({"seq": (1u64 << 33) + 9})),
                "\"seq\" is 8589934601, out of range",
            ),
            (
                pose(json!({"person": 1u64 << 40})),
                "\"person\" is 1099511627776",
            ),
            (pose(json!({"seq": -1})), "\"seq\" is -1"),
            (
                pose(json!({"timestamp_us": 1e30})),
                "\"timestamp_us\" is 1e+30, out of range",
            ),
            (
                audio(json!({"seq": (1u64 << 32) + 3})),
                "\"seq\" is 4294967299",
            ),
            (
                audio(json!({"sample_rate": 1u64 << 32})),
                "\"sample_rate\" is 4294967296",
            ),
            (audio(json!({"channels": 256})), "\"channels\" is 256"),
            (audio(json!({"channels": 0})), "1 (mono) or 2 (stereo)"),
            (
                json!({"type": "hello", "minor": 256}).to_string(),
                "\"minor\" is 256",
            ),
            (
                json!({"type": "hello", "token": 5}).to_string(),
                "\"token\" must be a string",
            ),
            (
                json!({"type": "kick", "room": "r1", "member": 65536}).to_string(),
                "\"member\" is 65536",
            ),
            (
                json!({"type": "set_role", "room": "r1", "member": 70000, "role": "viewer"})
                    .to_string(),
                "\"member\" is 70000",
            ),
            (
                json!({"type": "ping", "t0_us": 2e19}).to_string(),
                "\"t0_us\" is",
            ),
        ] {
            let e = ctx_run(&text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        // The largest values that fit go through as they are.
        let bytes = ctx_run(&pose(json!({"seq": u32::MAX, "person": u32::MAX}))).unwrap();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.header().seq, u32::MAX);
        let bytes = ctx_run(&audio(json!({"seq": u32::MAX, "channels": 2}))).unwrap();
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap().header().seq,
            u32::MAX
        );
    }

    #[test]
    fn subprotocol_offers() {
        assert!(offers_json("poselink.json"));
        assert!(offers_json("chat, Poselink.JSON"));
        assert!(!offers_json("poselink"));
    }
}
