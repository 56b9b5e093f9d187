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
#[path = "../fuzz/src/harness.rs"]
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

// ---------------------------------------------------------------------------
// Pose streams
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1024))]

    /// Every frame of a valid stream (seq gaps of 1–3, arbitrary values) comes back
    /// within the quantisation bounds, or bit for bit in raw mode, with its seq,
    /// timestamp and person, in a message with the right envelope.
    #[test]
    fn pose_streams_round_trip(s in stream(48), raw in prop::bool::weighted(0.25)) {
        let mode = if raw { PoseMode::Raw } else { PoseMode::Quantized };
        let mut enc = encoder(&s, mode);
        let mut dec = PoseDecoder::new();
        let mut buf = [0u8; POSE_BUF];
        let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
        for (k, f) in s.frames.iter().enumerate() {
            let n = enc.encode(f, s.room, s.sender, &mut buf).unwrap();
            let (h, g) = decode(&mut dec, &mut scratch, &buf[..n])
                .unwrap_or_else(|e| panic!("frame {k} (seq {}) does not decode: {e}", f.seq));
            prop_assert_eq!(h.kind, Kind::Pose);
            prop_assert_eq!((h.room, h.sender, h.seq, h.ts_us), (s.room, s.sender, f.seq, f.capture_ts_us));
            prop_assert_eq!((g.seq, g.capture_ts_us, g.person), (f.seq, f.capture_ts_us, f.person));
            if raw {
                prop_assert!(h.flags.contains(Flags::RAW));
                prop_assert_eq!(bitwise(&g), bitwise(f), "raw frame {} differs", k);
            } else {
                prop_assert!(!h.flags.contains(Flags::RAW));
                if k == 0 {
                    prop_assert!(h.flags.contains(Flags::KEYFRAME), "a stream starts with a keyframe");
                }
                if let Err(e) = close(f, &g) {
                    return Err(TestCaseError::fail(format!("frame {k} (seq {}): {e}", f.seq)));
                }
            }
        }
        let st = enc.stats();
        prop_assert_eq!(st.keyframes + st.deltas + st.raw, s.frames.len() as u64);
    }

    /// Messages lost on the way: every decode is the sent frame (within bounds) or
    /// `NeedsKeyframe`, exactly as predicted — a delta decodes if and only if the
    /// message before it in the stream was delivered and decoded, a keyframe
    /// always. With `ask`, the receiver's `NeedsKeyframe` makes the sender's next
    /// frame a keyframe, as the hub would relay it.
    #[test]
    fn lost_messages_never_give_a_wrong_pose(
        s in stream(60),
        drops in prop::collection::vec(prop::bool::weighted(0.25), 60),
        ask in any::<bool>(),
    ) {
        let mut enc = encoder(&s, PoseMode::Quantized);
        let mut dec = PoseDecoder::new();
        let mut buf = [0u8; POSE_BUF];
        let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
        let mut chain_ok = false; // the previous message was delivered and decoded
        let mut refused = 0;
        for (k, f) in s.frames.iter().enumerate() {
            let n = enc.encode(f, s.room, s.sender, &mut buf).unwrap();
            let keyframe = Packet::new_checked(&buf[..n]).unwrap().header().flags.contains(Flags::KEYFRAME);
            if drops[k] {
                chain_ok = false;
                continue;
            }
            match decode(&mut dec, &mut scratch, &buf[..n]) {
                Ok((_, g)) => {
                    prop_assert!(keyframe || chain_ok, "frame {} decoded without its reference", k);
                    if let Err(e) = close(f, &g) {
                        return Err(TestCaseError::fail(format!("frame {k} (seq {}): wrong pose: {e}", f.seq)));
                    }
                    prop_assert_eq!((g.seq, g.capture_ts_us, g.person), (f.seq, f.capture_ts_us, f.person));
                    chain_ok = true;
                }
                Err(Error::NeedsKeyframe) => {
                    prop_assert!(!keyframe, "a keyframe was refused (frame {})", k);
                    prop_assert!(!chain_ok, "frame {} refused although its reference was decoded", k);
                    prop_assert!(!dec.is_synced());
                    refused += 1;
                    if ask {
                        enc.force_keyframe();
                    }
                }
                Err(e) => return Err(TestCaseError::fail(format!("frame {k}: unexpected error {e:?}"))),
            }
        }
        prop_assert_eq!(dec.stats().keyframes + dec.stats().deltas + refused,
            drops.iter().zip(&s.frames).filter(|(d, _)| !**d).count() as u64);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// `MAX_POSE_MESSAGE_LEN` is documented as the largest pose message, so every
    /// valid frame after any other valid frame must encode into a buffer of that
    /// size (a delta that would be larger than a keyframe goes as a keyframe).
    #[test]
    fn every_valid_frame_fits_max_pose_message_len(a in values(), b in values(), interval in 1u64..=2_000_000) {
        let mut enc = PoseEncoder::new(EncoderConfig { keyframe_interval_us: interval, ..EncoderConfig::default() });
        let mut buf = [0u8; MAX_POSE_MESSAGE_LEN];
        let first = PoseFrame::from_arrays(1, 0, 0, &a);
        let second = PoseFrame::from_arrays(2, 0, 33_333, &b);
        enc.encode(&first, 1, 2, &mut buf).unwrap();
        let r = enc.encode(&second, 1, 2, &mut buf);
        prop_assert!(r.is_ok(), "{:?}", r);
    }
}

// ---------------------------------------------------------------------------
// Control messages and headers
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(2048))]

    /// Every control message with valid names (1..=64 of `[A-Za-z0-9_.:@/-]`),
    /// roles, ids, reasons and tokens comes back equal, with its header.
    #[test]
    fn control_messages_round_trip(c in ctl(), h in header()) {
        let msg = c.message();
        let mut buf = vec![0u8; 4096];
        let n = encode_control(&h, &msg, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let mut expected = h;
        expected.kind = msg.kind();
        expected.flags = Flags::NONE;
        prop_assert_eq!(p.header(), expected);
        let mut scratch = [0u8; 0];
        prop_assert_eq!(Message::parse(&p, &mut scratch).unwrap(), msg);
    }

    /// A room snapshot of arbitrary valid members comes back member for member,
    /// and its parsed view re-encodes to the same bytes.
    #[test]
    fn room_snapshots_round_trip(
        room in name(),
        your_role in role(),
        members in prop::collection::vec((any::<u16>(), role(), name()), 0..24),
        h in header(),
    ) {
        let infos: Vec<MemberInfo<'_>> = members
            .iter()
            .map(|(member, role, user)| MemberInfo { member: *member, role: *role, user })
            .collect();
        let mut buf = vec![0u8; 4096];
        let n = encode_snapshot(&h, &room, your_role, &infos, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        prop_assert_eq!((p.header().kind, p.header().seq, p.header().room), (Kind::RoomSnapshot, h.seq, h.room));
        let mut scratch = [0u8; 0];
        let msg = Message::parse(&p, &mut scratch).unwrap();
        let Message::RoomSnapshot(snap) = msg else { panic!("not a snapshot") };
        prop_assert_eq!(snap.name, room.as_str());
        prop_assert_eq!(snap.your_role, your_role);
        prop_assert_eq!(snap.members.len(), infos.len());
        prop_assert_eq!(snap.members.iter().collect::<Vec<_>>(), infos);
        let mut again = vec![0u8; 4096];
        let m = encode_control(&p.header(), &msg, &mut again).unwrap();
        prop_assert_eq!(&again[..m], &buf[..n]);
    }

    /// Every header field value survives emit → parse, and emit → seal →
    /// `Packet::new_checked`; a buffer one byte short is refused.
    #[test]
    fn headers_round_trip(h in header(), payload in prop::collection::vec(any::<u8>(), 0..16)) {
        let mut buf = [0u8; MAX_HEADER_LEN + 16 + CRC_LEN];
        let n = h.emit(&mut buf).unwrap();
        prop_assert_eq!(n, h.buffer_len());
        prop_assert!(n <= MAX_HEADER_LEN);
        prop_assert_eq!(Header::parse(&buf[..n]).unwrap(), (h, n));
        buf[n..n + payload.len()].copy_from_slice(&payload);
        let len = seal(&mut buf, n + payload.len()).unwrap();
        let p = Packet::new_checked(&buf[..len]).unwrap();
        prop_assert_eq!(p.header(), h);
        prop_assert_eq!(p.payload(), &payload[..]);
        prop_assert_eq!(
            h.emit(&mut vec![0u8; n - 1]),
            Err(Error::BufferTooSmall { needed: n })
        );
    }
}

// ---------------------------------------------------------------------------
// No input makes the receive path panic
// ---------------------------------------------------------------------------

/// Valid messages of every kind to mutate: a pose stream (keyframes, deltas and
/// raw frames of synthetic motion), audio, a snapshot and control messages.
#[derive(Clone, Debug)]
struct Corpus {
    /// Pose messages, in stream order.
    pose: Vec<Vec<u8>>,
    /// The frames they carry.
    frames: Vec<PoseFrame>,
    /// One message of another kind.
    other: Vec<u8>,
}

fn synthetic_frames(seed: u64, motion: Motion, n: usize, gap: u32) -> Vec<PoseFrame> {
    let mut src = SyntheticPose::new(SyntheticConfig {
        seed,
        motion,
        ..SyntheticConfig::default()
    });
    let mut sample = PoseSample::zeroed();
    (0..n as u32)
        .map(|k| {
            src.next_pose(&mut sample).unwrap();
            PoseFrame::from_arrays(1 + k * gap, 0, sample.capture_ts_us, &sample.landmarks)
        })
        .collect()
}

fn audio_message(seed: u16, channels: u8, rate: u32, len: u16, threshold: usize) -> Vec<u8> {
    let mut chunk = AudioChunk::silence(rate, channels, len);
    chunk.seq = u32::from(seed);
    chunk.capture_ts_us = 20_000 * u64::from(seed);
    // Every other seed is silence (compresses); the rest a noisy tone.
    if seed % 2 == 1 {
        let mut x = u32::from(seed) | 1;
        for (i, s) in chunk.samples.iter_mut().enumerate() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *s = ((i as i32 * 97) % 4000) as i16 + (x % 64) as i16;
        }
    }
    let mut c = Compressor::new(threshold);
    let mut buf = vec![0u8; 4096];
    let n = encode_audio(&chunk, 3, 4, &mut c, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn corpus() -> impl Strategy<Value = Corpus> {
    let motion = prop::sample::select(vec![Motion::Walk, Motion::Wave, Motion::Mixed]);
    let other = prop_oneof![
        (
            any::<u16>(),
            1u8..=2,
            prop::sample::select(vec![8_000u32, 16_000, 48_000, 192_000]),
            0u16..=480,
            prop::sample::select(vec![0usize, 512, usize::MAX]),
        )
            .prop_map(|(seed, ch, rate, frames, th)| audio_message(
                seed,
                ch,
                rate,
                frames * u16::from(ch),
                th
            )),
        (
            name(),
            role(),
            prop::collection::vec((any::<u16>(), role(), name()), 0..6)
        )
            .prop_map(|(room, r, members)| {
                let infos: Vec<MemberInfo<'_>> = members
                    .iter()
                    .map(|(member, role, user)| MemberInfo {
                        member: *member,
                        role: *role,
                        user,
                    })
                    .collect();
                let mut buf = vec![0u8; 1024];
                let n = encode_snapshot(
                    &Header::new(Kind::RoomSnapshot, 1, 0, 9, 9),
                    &room,
                    r,
                    &infos,
                    &mut buf,
                )
                .unwrap();
                buf.truncate(n);
                buf
            }),
        (ctl(), header()).prop_map(|(c, h)| {
            let mut buf = vec![0u8; 4096];
            let n = encode_control(&h, &c.message(), &mut buf).unwrap();
            buf.truncate(n);
            buf
        }),
    ];
    (
        any::<u64>(),
        motion,
        2usize..24,
        1u32..=3,
        prop::sample::select(vec![
            PoseMode::Quantized,
            PoseMode::Quantized,
            PoseMode::Raw,
        ]),
        prop_oneof![Just(1_000_000u64), 1u64..=200_000],
        prop::sample::select(vec![DEFAULT_COMPRESS_THRESHOLD, 0, usize::MAX]),
        other,
    )
        .prop_map(|(seed, motion, n, gap, mode, interval, threshold, other)| {
            let frames = synthetic_frames(seed, motion, n, gap);
            let mut enc = PoseEncoder::new(EncoderConfig {
                mode,
                keyframe_interval_us: interval,
                compress_threshold: threshold,
            });
            let mut buf = [0u8; POSE_BUF];
            let pose = frames
                .iter()
                .map(|f| {
                    let n = enc.encode(f, 1, 2, &mut buf).unwrap();
                    buf[..n].to_vec()
                })
                .collect();
            Corpus {
                pose,
                frames,
                other,
            }
        })
}

/// A keyframe of `frame` from a fresh encoder, for checking that a decoder recovers.
fn keyframe_of(frame: &PoseFrame) -> Vec<u8> {
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut buf = [0u8; POSE_BUF];
    let n = enc.encode(frame, 1, 2, &mut buf).unwrap();
    buf[..n].to_vec()
}

proptest! {
    #![proptest_config(config(16384))]

    /// (a) Arbitrary bytes, as they are, resealed and XORed over a valid delta, go
    /// through the fuzz target's harness without a panic, and its decoder keeps
    /// decoding its keyframe.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1200)) {
        let mut h = DecodeHarness::new();
        h.run(&data);
        h.run(&data);
    }

    /// (a) Arbitrary bytes behind a plausible envelope start (version 1.x, a defined
    /// kind, known flags), resealed, so that they reach every payload parser.
    #[test]
    fn arbitrary_payloads_never_panic(
        h in header(),
        data in prop::collection::vec(any::<u8>(), 0..1200),
    ) {
        let mut buf = vec![0u8; MAX_HEADER_LEN + data.len() + CRC_LEN];
        let n = h.emit(&mut buf).unwrap();
        buf[n..n + data.len()].copy_from_slice(&data);
        let len = seal(&mut buf, n + data.len()).unwrap();
        let mut harness = DecodeHarness::new();
        harness.run(&buf[..len]);
        // And the same payload as a delta right after the harness's keyframe.
        let mut delta = Header::new(Kind::Pose, harness::ROOM, harness::SENDER, harness::KEY_SEQ + 1, 0);
        delta.flags = Flags(h.flags.0 & Flags::LZ4.0);
        let n = delta.emit(&mut buf).unwrap();
        buf[n..n + data.len()].copy_from_slice(&data);
        let len = seal(&mut buf, n + data.len()).unwrap();
        harness.check_keyframe();
        let _ = harness.feed(&buf[..len]);
        harness.check_keyframe();
    }
}

proptest! {
    #![proptest_config(config(8192))]

    /// (b) A pose stream with one message mutated (bit flips, byte changes,
    /// insertions, deletions, truncation) and its CRC recomputed: decoding it, with
    /// the decoder holding the stream up to there, may succeed or fail but never
    /// panics, a decoded frame is always valid, and afterwards the decoder decodes
    /// the next keyframe correctly.
    #[test]
    fn mutated_pose_messages_never_panic(
        c in corpus(),
        target in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let t = target.index(c.pose.len());
        let mut dec = PoseDecoder::new();
        let mut scratch = vec![0u8; MAX_PLAIN_PAYLOAD];
        for (k, m) in c.pose[..t].iter().enumerate() {
            let (_, g) = decode(&mut dec, &mut scratch, m).unwrap();
            prop_assert!(close(&c.frames[k], &g).is_ok());
        }
        let bad = mutate_and_reseal(&c.pose[t], &mutations);
        let result = harness::feed(&mut dec, &mut scratch, &bad);
        match &result {
            Err(Error::NeedsKeyframe) | Ok(_) => {}
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                // "A malformed body leaves the decoder as it was": the message as
                // sent still decodes.
                let (_, g) = decode(&mut dec, &mut scratch, &c.pose[t])
                    .unwrap_or_else(|e2| panic!("after {e:?}, the original message fails: {e2}"));
                prop_assert!(close(&c.frames[t], &g).is_ok());
            }
        }
        // The next keyframe (of the next frame, or of this one again) decodes.
        let next = c.frames.get(t + 1).unwrap_or(&c.frames[t]);
        let key = keyframe_of(next);
        let (_, g) = decode(&mut dec, &mut scratch, &key)
            .unwrap_or_else(|e| panic!("after {result:?}, the next keyframe fails: {e}"));
        prop_assert!(close(next, &g).is_ok());
        prop_assert!(dec.is_synced());
    }

    /// (b) The same for audio, snapshot and control messages, through the fuzz
    /// target's harness (whose decoder must still take its keyframe afterwards).
    #[test]
    fn mutated_other_messages_never_panic(
        c in corpus(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut h = DecodeHarness::new();
        let valid = h.feed(&c.other);
        prop_assert!(matches!(valid, Ok(Fed::Other(_))), "{:?}", valid);
        let bad = mutate_and_reseal(&c.other, &mutations);
        h.check_keyframe();
        if let Err(e) = h.feed(&bad) {
            prop_assert!(!e.to_string().is_empty());
        }
        h.check_keyframe();
        h.run(&bad);
    }
}

/// The harness's own messages are what it says they are.
#[test]
fn harness_messages_decode() {
    let mut h = DecodeHarness::new();
    let key = h.keyframe().to_vec();
    let delta = h.delta().to_vec();
    let expected = harness::harness_frame(harness::KEY_SEQ, 0);
    match h.feed(&key) {
        Ok(Fed::Pose(g)) => close(&expected, &g).unwrap(),
        other => panic!("{other:?}"),
    }
    let expected = harness::harness_frame(harness::KEY_SEQ + 1, 1);
    match h.feed(&delta) {
        Ok(Fed::Pose(g)) => close(&expected, &g).unwrap(),
        other => panic!("{other:?}"),
    }
    let p = Packet::new_checked(&delta[..]).unwrap();
    assert!(!p.header().flags.contains(Flags::KEYFRAME));
    // An empty input and one of zeros leave the delta unchanged in step 4.
    h.run(&[]);
    h.run(&[0; 8]);
}
