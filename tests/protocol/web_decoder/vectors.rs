//! The test vectors: every control kind, synthetic skeleton streams with lost
//! frames, raw frames, LZ4-compressed payloads, audio, and the worked examples of
//! `docs/PROTOCOL.md`, with what the Rust receiver makes of each.

use super::*;

// ---- the vectors --------------------------------------------------------------------

pub(super) struct Vectors {
    pub(super) sessions: Vec<Value>,
    pub(super) encodes: Vec<Value>,
    pub(super) refusals: Vec<Value>,
    pub(super) tally: Tally,
    /// Every valid message, to mutate.
    pub(super) valid: Vec<Vec<u8>>,
}

impl Vectors {
    pub(super) fn session(&mut self, name: &str, messages: &[Vec<u8>]) {
        let mut rx = Receiver::new();
        let list: Vec<Value> = messages
            .iter()
            .map(|m| json!({"hex": hex(m), "expect": rx.receive(m, &mut self.tally)}))
            .collect();
        self.sessions.push(json!({"name": name, "messages": list}));
    }
}

/// xorshift64*: deterministic mutations without a dependency.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Rewrites the CRC trailer so that a changed message passes the checksum.
pub(super) fn reseal(mut m: Vec<u8>) -> Vec<u8> {
    if m.len() >= 4 {
        let n = m.len() - 4;
        let crc = crc32(&m[..n]);
        m[n..].copy_from_slice(&crc.to_le_bytes());
    }
    m
}

/// A message from a header and a raw payload (no checks: for broken messages).
pub(super) fn assemble(header: &Header, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 32];
    let n = header.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf.extend_from_slice(payload);
    buf.extend_from_slice(&[0; 4]);
    reseal(buf)
}

pub(super) fn control(header: Header, msg: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = encode_control(&header, msg, &mut buf).expect("a valid control message");
    buf.truncate(n);
    buf
}

pub(super) fn synthetic(seed: u64, motion: Motion, fps: f32, jitter: f32) -> SyntheticPose {
    SyntheticPose::new(SyntheticConfig {
        seed,
        motion,
        fps,
        jitter,
        start_ts_us: 1_000_000 + seed * 1000,
    })
}

pub(super) fn next_frame(source: &mut SyntheticPose, seq: u32, person: u32) -> PoseFrame {
    let mut sample = PoseSample::zeroed();
    source.next_pose(&mut sample).expect("synthetic pose");
    let mut f = PoseFrame::from_arrays(seq, person, sample.capture_ts_us, &sample.landmarks);
    f.clamp_to_range();
    f
}

pub(super) fn encode_pose(
    enc: &mut PoseEncoder,
    frame: &PoseFrame,
    room: u16,
    sender: u16,
) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_POSE_MESSAGE_LEN];
    let n = enc.encode(frame, room, sender, &mut buf).expect("encode");
    buf.truncate(n);
    buf
}

pub(super) fn still_frame(seq: u32, value: f32) -> PoseFrame {
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
pub(super) fn control_messages() -> Vec<(Header, Vec<u8>)> {
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
                stream: 0,
            }),
        ),
        (
            Header::new(Kind::Hello, 0, 0, 1, u64::MAX),
            Message::Hello(Hello {
                minor: 7,
                token: &long_token,
                resume: u64::MAX,
                client: "ünïcode client ✓",
                stream: 0,
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
            Message::MemberJoined(MemberJoined {
                member: members[1],
                stream: 0,
            }),
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

pub(super) fn build() -> Vectors {
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
