//! Property tests of the wire protocol through its public API: pose streams round-trip
//! within the quantisation bounds (bit for bit in raw mode), lost messages give
//! `NeedsKeyframe` and never a wrong pose, control messages and headers round-trip,
//! and no input — random bytes, or valid messages mutated and resealed with a fresh
//! CRC — makes the receive path panic or leaves a decoder unable to take the next
//! keyframe.
//!
//! The no-panic properties drive `fuzz/src/harness.rs`, the same code the cargo-fuzz
//! target `decode` runs, so that its logic is exercised on stable Rust too
//! (`docs/FUZZING.md`).

use poselink::proto::{
    Ack, AudioChunk, COORD_MAX_ERROR, CRC_LEN, CloseRoom, Compressor, DEFAULT_COMPRESS_THRESHOLD,
    EncoderConfig, Error, ErrorCode, ErrorMsg, Flags, Header, Hello, Join, Kick, Kind, Leave,
    LeaveReason, MAX_HEADER_LEN, MAX_PLAIN_PAYLOAD, MAX_POSE_MESSAGE_LEN, MemberInfo, MemberJoined,
    MemberLeft, Message, NeedsKeyframe, Packet, Ping, Pong, PoseDecoder, PoseEncoder, PoseFrame,
    PoseMode, Role, RoleChanged, SCORE_MAX_ERROR, Welcome, encode_audio, encode_control,
    encode_snapshot, seal,
};
use poselink_hal::{Motion, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};
use proptest::prelude::*;
use proptest::sample::Index;

#[allow(dead_code)]
#[path = "../../../fuzz/src/harness.rs"]
mod harness;

use harness::{DecodeHarness, Fed};

type Values = [[f32; 5]; 33];

/// The encoder's output buffer in the round-trip properties: exactly the
/// documented maximum, so that every property also checks it is enough.
const POSE_BUF: usize = MAX_POSE_MESSAGE_LEN;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// An x, y or z in the carried range, with the edges and quantisation ties often.
fn coord() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -1.0f32..=2.0,
        1 => prop::sample::select(vec![
            -1.0f32,
            2.0,
            0.0,
            -0.0,
            1.0,
            0.5 / 2048.0,
            1.5 / 2048.0,
            -1.0 + 0.5 / 2048.0,
            2.0 - 0.5 / 2048.0,
            f32::MIN_POSITIVE,
        ]),
    ]
}

/// A visibility or presence score in [0, 1], with the edges and ties often.
fn score() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => 0.0f32..=1.0,
        1 => prop::sample::select(vec![0.0f32, 1.0, -0.0, 0.5 / 128.0, 1.0 - 0.5 / 128.0, 0.5]),
    ]
}

fn landmark() -> impl Strategy<Value = [f32; 5]> {
    (coord(), coord(), coord(), score(), score()).prop_map(|(x, y, z, v, p)| [x, y, z, v, p])
}

fn values() -> impl Strategy<Value = Values> {
    prop::collection::vec(landmark(), 33).prop_map(|v| v.try_into().expect("33 landmarks"))
}

/// How the next frame of a stream is made from the previous one.
#[derive(Clone, Debug)]
enum Next {
    /// Any valid frame (every residual may be large).
    Fresh(Box<Values>),
    /// The previous frame moved a little (small residuals, the common case).
    Nudge(Vec<(f32, f32, f32, f32, f32)>),
    /// The previous frame again.
    Still,
}

fn next() -> impl Strategy<Value = Next> {
    let small = -0.01f32..=0.01;
    let nudge = prop::collection::vec(
        (
            small.clone(),
            small.clone(),
            small,
            -0.05f32..=0.05,
            -0.05f32..=0.05,
        ),
        33,
    );
    prop_oneof![
        1 => values().prop_map(|v| Next::Fresh(Box::new(v))),
        4 => nudge.prop_map(Next::Nudge),
        1 => Just(Next::Still),
    ]
}

/// One frame of a stream: its seq gap (thinning), its time step and its values.
#[derive(Clone, Debug)]
struct Step {
    gap: u32,
    dt_us: u64,
    next: Next,
}

fn step() -> impl Strategy<Value = Step> {
    (1u32..=3, 1u64..=100_000, next()).prop_map(|(gap, dt_us, next)| Step { gap, dt_us, next })
}

/// A stream of valid frames with increasing seq (gaps 1–3) and timestamps, plus
/// the encoder settings to send it with.
#[derive(Clone, Debug)]
struct Stream {
    frames: Vec<PoseFrame>,
    keyframe_interval_us: u64,
    compress_threshold: usize,
    room: u16,
    sender: u16,
}

fn stream(max_len: usize) -> impl Strategy<Value = Stream> {
    let start_seq = prop_oneof![
        3 => 0u32..1000,
        1 => (u32::MAX - 200)..=(u32::MAX - 3 * 60),
    ];
    let start_ts = prop_oneof![3 => 0u64..10_000_000, 1 => 0u64..=u64::MAX / 2];
    (
        start_seq,
        start_ts,
        any::<u32>(),
        values(),
        prop::collection::vec(step(), 0..max_len),
        prop_oneof![1u64..=100_000, 100_000u64..=3_000_000, Just(u64::MAX)],
        prop::sample::select(vec![DEFAULT_COMPRESS_THRESHOLD, 0, 100, usize::MAX]),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(
            |(
                seq0,
                ts0,
                person,
                first,
                steps,
                keyframe_interval_us,
                compress_threshold,
                room,
                sender,
            )| {
                let mut frames = vec![PoseFrame::from_arrays(seq0, person, ts0, &first)];
                for s in steps {
                    let prev = *frames.last().expect("at least one frame");
                    let seq = prev.seq + s.gap;
                    let ts = prev.capture_ts_us + s.dt_us;
                    let f = match s.next {
                        Next::Fresh(v) => PoseFrame::from_arrays(seq, person, ts, &v),
                        Next::Still => PoseFrame {
                            seq,
                            capture_ts_us: ts,
                            ..prev
                        },
                        Next::Nudge(d) => {
                            let mut f = PoseFrame {
                                seq,
                                capture_ts_us: ts,
                                ..prev
                            };
                            for (lm, (dx, dy, dz, dv, dp)) in f.landmarks.iter_mut().zip(d) {
                                lm.x = (lm.x + dx).clamp(-1.0, 2.0);
                                lm.y = (lm.y + dy).clamp(-1.0, 2.0);
                                lm.z = (lm.z + dz).clamp(-1.0, 2.0);
                                lm.visibility = (lm.visibility + dv).clamp(0.0, 1.0);
                                lm.presence = (lm.presence + dp).clamp(0.0, 1.0);
                            }
                            f
                        }
                    };
                    frames.push(f);
                }
                Stream {
                    frames,
                    keyframe_interval_us,
                    compress_threshold,
                    room,
                    sender,
                }
            },
        )
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:@/-]{1,64}"
}

fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(vec![Role::Owner, Role::Member, Role::Viewer])
}

fn leave_reason() -> impl Strategy<Value = LeaveReason> {
    prop::sample::select(vec![
        LeaveReason::Left,
        LeaveReason::Disconnected,
        LeaveReason::Kicked,
        LeaveReason::TimedOut,
        LeaveReason::RoomClosed,
    ])
}

/// Free text of at most 256 bytes (64 characters of up to 4 bytes), or exactly 256.
fn reason() -> impl Strategy<Value = String> {
    prop_oneof![4 => ".{0,64}", 1 => "[a-z]{256}"]
}

/// A token of at most 2048 bytes.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9_.-]{0,300}",
        1 => "[A-Za-z0-9]{2048}",
    ]
}

/// A control message with owned strings (a `Message` borrows them).
#[derive(Clone, Debug)]
enum Ctl {
    Hello(u8, String, u64, String),
    Welcome(u8, u16, String, u64, u64, u32, u32),
    Join(String, Role),
    Leave(String),
    MemberJoined(u16, Role, String),
    MemberLeft(u16, LeaveReason),
    RoleChanged(u16, Role),
    Kick(u16, String),
    CloseRoom(String),
    Error(u16, u8, String),
    Ping(u64),
    Pong(u64, u64, u64),
    Ack(u8, u32),
    NeedsKeyframe(u16, u32),
}

impl Ctl {
    fn message(&self) -> Message<'_> {
        match self {
            Ctl::Hello(minor, token, resume, client) => Message::Hello(Hello {
                minor: *minor,
                token,
                resume: *resume,
                client,
                stream: 0,
            }),
            Ctl::Welcome(
                minor,
                member,
                user,
                resume,
                server_time_us,
                heartbeat_ms,
                max_message,
            ) => Message::Welcome(Welcome {
                minor: *minor,
                member: *member,
                user,
                resume: *resume,
                server_time_us: *server_time_us,
                heartbeat_ms: *heartbeat_ms,
                max_message: *max_message,
            }),
            Ctl::Join(room, role) => Message::Join(Join { room, role: *role }),
            Ctl::Leave(room) => Message::Leave(Leave { room }),
            Ctl::MemberJoined(member, role, user) => Message::MemberJoined(MemberJoined {
                member: MemberInfo {
                    member: *member,
                    role: *role,
                    user,
                },
                stream: 0,
            }),
            Ctl::MemberLeft(member, reason) => Message::MemberLeft(MemberLeft {
                member: *member,
                reason: *reason,
            }),
            Ctl::RoleChanged(member, role) => Message::RoleChanged(RoleChanged {
                member: *member,
                role: *role,
            }),
            Ctl::Kick(member, reason) => Message::Kick(Kick {
                member: *member,
                reason,
            }),
            Ctl::CloseRoom(reason) => Message::CloseRoom(CloseRoom { reason }),
            Ctl::Error(code, about, reason) => Message::Error(ErrorMsg {
                code: ErrorCode(*code),
                about: *about,
                reason,
            }),
            Ctl::Ping(t0_us) => Message::Ping(Ping { t0_us: *t0_us }),
            Ctl::Pong(t0_us, t1_us, t2_us) => Message::Pong(Pong {
                t0_us: *t0_us,
                t1_us: *t1_us,
                t2_us: *t2_us,
            }),
            Ctl::Ack(kind, seq) => Message::Ack(Ack {
                kind: *kind,
                seq: *seq,
            }),
            Ctl::NeedsKeyframe(publisher, person) => Message::NeedsKeyframe(NeedsKeyframe {
                publisher: *publisher,
                person: *person,
            }),
        }
    }
}

fn ctl() -> impl Strategy<Value = Ctl> {
    prop_oneof![
        (any::<u8>(), token(), any::<u64>(), ".{0,16}")
            .prop_map(|(m, t, r, c)| Ctl::Hello(m, t, r, c)),
        (
            any::<u8>(),
            any::<u16>(),
            name(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(a, b, c, d, e, f, g)| Ctl::Welcome(a, b, c, d, e, f, g)),
        (name(), role()).prop_map(|(n, r)| Ctl::Join(n, r)),
        name().prop_map(Ctl::Leave),
        (any::<u16>(), role(), name()).prop_map(|(m, r, u)| Ctl::MemberJoined(m, r, u)),
        (any::<u16>(), leave_reason()).prop_map(|(m, r)| Ctl::MemberLeft(m, r)),
        (any::<u16>(), role()).prop_map(|(m, r)| Ctl::RoleChanged(m, r)),
        (any::<u16>(), reason()).prop_map(|(m, r)| Ctl::Kick(m, r)),
        reason().prop_map(Ctl::CloseRoom),
        (any::<u16>(), any::<u8>(), reason()).prop_map(|(c, a, r)| Ctl::Error(c, a, r)),
        any::<u64>().prop_map(Ctl::Ping),
        any::<(u64, u64, u64)>().prop_map(|(a, b, c)| Ctl::Pong(a, b, c)),
        any::<(u8, u32)>().prop_map(|(k, s)| Ctl::Ack(k, s)),
        any::<(u16, u32)>().prop_map(|(p, q)| Ctl::NeedsKeyframe(p, q)),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

/// A header with every field arbitrary (the version's minor nibble too).
fn header() -> impl Strategy<Value = Header> {
    (
        0x10u8..=0x1f,
        kind(),
        0u8..=Flags::KNOWN.0,
        any::<u16>(),
        any::<u16>(),
        prop_oneof![any::<u32>(), Just(0), Just(u32::MAX), Just(127), Just(128)],
        prop_oneof![any::<u64>(), Just(0), Just(u64::MAX), Just(127), Just(128)],
    )
        .prop_map(|(version, kind, flags, room, sender, seq, ts_us)| Header {
            version,
            kind,
            flags: Flags(flags),
            room,
            sender,
            seq,
            ts_us,
        })
}

/// One byte-level mutation; positions are taken modulo the current length.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<Index>().prop_map(Mutation::Delete),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

/// Applies `mutations` to everything before the CRC of `message`, then appends a
/// freshly computed CRC, so that the mutated bytes reach the payload parsers.
fn mutate_and_reseal(message: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut body = message[..message.len() - CRC_LEN].to_vec();
    for m in mutations {
        match m {
            Mutation::Flip(i, bit) if !body.is_empty() => {
                let at = i.index(body.len());
                body[at] ^= 1 << bit;
            }
            Mutation::Set(i, b) if !body.is_empty() => {
                let at = i.index(body.len());
                body[at] = *b;
            }
            Mutation::Insert(i, b) => {
                let at = i.index(body.len() + 1);
                body.insert(at, *b);
            }
            Mutation::Delete(i) if !body.is_empty() => {
                body.remove(i.index(body.len()));
            }
            Mutation::Truncate(i) => body.truncate(i.index(body.len() + 1)),
            _ => {}
        }
    }
    let len = body.len();
    body.extend_from_slice(&[0; CRC_LEN]);
    seal(&mut body, len).expect("room for the CRC");
    body
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn encoder(s: &Stream, mode: PoseMode) -> PoseEncoder {
    PoseEncoder::new(EncoderConfig {
        mode,
        keyframe_interval_us: s.keyframe_interval_us,
        compress_threshold: s.compress_threshold,
        ..EncoderConfig::default()
    })
}

/// Envelope check, parse and pose decode of one message; the header is returned
/// with the frame.
fn decode(
    dec: &mut PoseDecoder,
    scratch: &mut [u8],
    bytes: &[u8],
) -> Result<(Header, PoseFrame), Error> {
    let p = Packet::new_checked(bytes)?;
    let Message::Pose(pose) = Message::parse(&p, scratch)? else {
        panic!("not a pose message")
    };
    let h = p.header();
    dec.decode(&h, &pose).map(|f| (h, *f))
}

/// Whether `got` is within the quantisation bounds of `sent`.
fn close(sent: &PoseFrame, got: &PoseFrame) -> Result<(), String> {
    for (i, (a, b)) in sent.landmarks.iter().zip(got.landmarks.iter()).enumerate() {
        for (j, (u, v)) in a.values().iter().zip(b.values()).enumerate() {
            let bound = if j < 3 {
                COORD_MAX_ERROR
            } else {
                SCORE_MAX_ERROR
            };
            if (u - v).abs() > bound {
                return Err(format!(
                    "landmark {i} value {j}: sent {u}, got {v} (error {} > {bound})",
                    (u - v).abs()
                ));
            }
        }
    }
    Ok(())
}

fn bitwise(f: &PoseFrame) -> Vec<u32> {
    f.landmarks
        .iter()
        .flat_map(|l| l.values().map(f32::to_bits))
        .collect()
}

/// `cases` in an optimised build (the whole file then runs in a few seconds on two
/// cores), an eighth of that in a debug build.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(debug_assertions) {
            cases / 8
        } else {
            cases
        },
        // Shrinking a long stream is slow; a failure still prints a small input.
        max_shrink_iters: 2048,
        // Print a failing input rather than write a regressions file.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// The WebSocket framing and the tokens are std-only modules of the library.
#[cfg(feature = "std")]
mod framing;
mod no_panic;
mod round_trip;
// The hub, the room registry and the WebSocket upgrade are std-only too.
#[cfg(feature = "std")]
mod targets;
