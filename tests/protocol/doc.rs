//! Keeps `docs/PROTOCOL.md` honest. The document is normative for implementers in
//! other languages, so its bytes and tables must be the codec's:
//!
//! - every worked example (an `<!-- example: NAME -->` comment followed by a fenced
//!   `hex` block) equals what the real encoders produce for that message, and every
//!   example the encoders build is in the document;
//! - decoding the document's bytes gives the expected header and message back (and,
//!   for pose and audio, the very frame and chunk that were encoded);
//! - the CRC trailers agree with the table-free CRC-32 the document spells out;
//! - the tables marked `<!-- table: NAME -->` (kinds, flags, error codes, roles, leave
//!   reasons, limits, landmarks) agree with the code, and so do the varint examples.
//!
//! The messages are built by `examples/wire_examples.rs`, included here as a module,
//! so the document, that program and this test describe the same messages. When the
//! codec changes, run `cargo run --example wire_examples` and paste its output over
//! the blocks in the document.

use crate::wire_examples;

use poselink::proto::{
    AUDIO_CHUNK_CAPACITY, AudioChunk, COORD_SCALE, CRC_LEN, DEFAULT_COMPRESS_THRESHOLD,
    EncoderConfig, Error, ErrorCode, ErrorMsg, FIXED_HEADER_LEN, Flags, Header, Join,
    KEYFRAME_BODY_LEN, Kind, LANDMARK_COUNT, LeaveReason, MAX_HEADER_LEN, MAX_MESSAGE_LEN,
    MAX_NAME_LEN, MAX_PLAIN_PAYLOAD, MAX_POSE_MESSAGE_LEN, MAX_REASON_LEN, MAX_SAMPLE_RATE,
    MAX_TOKEN_LEN, MIN_MESSAGE_LEN, MIN_SAMPLE_RATE, MemberInfo, MemberLeft, Message,
    PROTOCOL_MAJOR, PROTOCOL_MINOR, Packet, Ping, Pong, PoseCoding, PoseDecoder, PoseFrame,
    RAW_BODY_LEN, Role, SCORE_SCALE, VERSION_BYTE, crc32, encode_control, landmark, put_varint,
};
use wire_examples::{
    MEMBER, ROOM, T0, T1, T2, delta_frame, delta_frame_2, examples, hex, keyframe_frame,
    short_audio,
};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The document's examples, in order: the name from `<!-- example: NAME -->` and the
/// bytes of the fenced `hex` block that follows it.
fn doc_examples(doc: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let line = line.trim();
        let Some(name) = line
            .strip_prefix("<!-- example:")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let name = name.trim().to_string();
        let fence = lines
            .by_ref()
            .map(|(_, l)| l.trim())
            .find(|l| !l.is_empty());
        assert_eq!(
            fence,
            Some("```hex"),
            "line {}: example {name:?} must be followed by a ```hex block",
            n + 1
        );
        let mut bytes = Vec::new();
        let mut closed = false;
        for (m, l) in lines.by_ref() {
            let l = l.trim();
            if l == "```" {
                closed = true;
                break;
            }
            for tok in l.split_whitespace() {
                assert!(
                    tok.len() == 2,
                    "line {}: {tok:?} in example {name:?} is not one hex byte",
                    m + 1
                );
                let b = u8::from_str_radix(tok, 16).unwrap_or_else(|_| {
                    panic!("line {}: {tok:?} in example {name:?} is not hex", m + 1)
                });
                bytes.push(b);
            }
        }
        assert!(closed, "example {name:?}: the hex block is not closed");
        out.push((name, bytes));
    }
    out
}

/// The body rows of the table after `<!-- table: NAME -->`, cells trimmed and with
/// their backticks removed.
fn doc_table(doc: &str, name: &str) -> Vec<Vec<String>> {
    let marker = format!("<!-- table: {name} -->");
    let mut lines = doc.lines().skip_while(|l| l.trim() != marker);
    assert!(lines.next().is_some(), "no {marker} in the document");
    let rows: Vec<Vec<String>> = lines
        .take_while(|l| l.trim_start().starts_with('|'))
        .skip(2) // the heading row and the |---| row
        .map(|l| {
            let l = l.trim().trim_start_matches('|').trim_end_matches('|');
            l.split('|')
                .map(|c| c.trim().replace('`', ""))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!rows.is_empty(), "table {name} has no rows");
    rows
}

/// The CRC-32 exactly as section 3.3 of the document spells it out.
fn doc_crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    c ^ 0xFFFF_FFFF
}

fn example<'d>(examples: &'d [(String, Vec<u8>)], name: &str) -> &'d [u8] {
    &examples
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no example {name:?} in the document"))
        .1
}

#[test]
fn the_document_describes_this_version() {
    let doc = doc();
    let title = format!("version {PROTOCOL_MAJOR}.{PROTOCOL_MINOR}");
    assert!(
        doc.lines().next().unwrap_or("").contains(&title),
        "the document's title must name {title}"
    );
    assert_eq!(
        VERSION_BYTE, 0x10,
        "the document describes version byte 0x10"
    );
}

#[test]
fn every_example_matches_the_encoders() {
    let doc = doc();
    let in_doc = doc_examples(&doc);
    let built = examples();
    let mut stale = Vec::new();
    for ex in &built {
        let found: Vec<_> = in_doc.iter().filter(|(n, _)| n == ex.name).collect();
        assert!(
            found.len() <= 1,
            "example {:?} appears {} times in the document",
            ex.name,
            found.len()
        );
        match found.first() {
            Some((_, bytes)) if *bytes == ex.bytes => {}
            _ => stale.push(format!(
                "<!-- example: {} -->\n```hex\n{}\n```",
                ex.name,
                hex(&ex.bytes)
            )),
        }
    }
    assert!(
        stale.is_empty(),
        "docs/PROTOCOL.md is out of date (run `cargo run --example wire_examples`); \
         the encoders now produce:\n\n{}",
        stale.join("\n\n")
    );
    for (name, _) in &in_doc {
        if name == "audio_lz4" && !cfg!(feature = "lz4") {
            continue; // built only with the `lz4` feature
        }
        assert!(
            built.iter().any(|ex| ex.name == name),
            "the document has an example {name:?} that no encoder builds"
        );
    }
}

#[test]
fn crc_trailers_follow_the_documented_algorithm() {
    assert_eq!(doc_crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    let doc = doc();
    let in_doc = doc_examples(&doc);
    assert!(!in_doc.is_empty());
    for (name, bytes) in &in_doc {
        let (body, trailer) = bytes.split_at(bytes.len() - 4);
        let carried = u32::from_le_bytes(trailer.try_into().unwrap());
        assert_eq!(carried, doc_crc32(body), "example {name}: CRC trailer");
        assert_eq!(carried, crc32(body), "example {name}: CRC trailer");
        // Any flipped bit is caught.
        for bit in [0, 8 * body.len() / 2 + 3, 8 * bytes.len() - 1] {
            let mut broken = bytes.clone();
            broken[bit / 8] ^= 1 << (bit % 8);
            if bit / 8 == 0 {
                // Byte 0 is the version: flipping its low bit makes it 1.1, still
                // accepted up to the CRC check.
                assert_eq!(broken[0], 0x11);
            }
            assert!(
                matches!(
                    Packet::new_checked(&broken[..]),
                    Err(Error::BadChecksum { .. })
                ),
                "example {name}: bit {bit} flipped must fail the CRC check"
            );
        }
    }
}

fn packet<'b>(examples: &'b [(String, Vec<u8>)], name: &str) -> Packet<&'b [u8]> {
    let bytes = example(examples, name);
    Packet::new_checked(bytes).unwrap_or_else(|e| panic!("example {name}: {e}"))
}

fn header(kind: Kind, flags: Flags, room: u16, sender: u16, seq: u32, ts_us: u64) -> Header {
    let mut h = Header::new(kind, room, sender, seq, ts_us);
    h.flags = flags;
    h
}

#[test]
fn control_examples_decode_to_their_messages() {
    let doc = doc();
    let ex = doc_examples(&doc);
    let mut scratch = [0u8; 0];

    let p = packet(&ex, "ping");
    assert_eq!(
        p.header(),
        header(Kind::Ping, Flags::NONE, 0, 4, 9, 5_000_000)
    );
    assert_eq!(
        Message::parse(&p, &mut scratch).unwrap(),
        Message::Ping(Ping { t0_us: 5_000_000 })
    );

    let p = packet(&ex, "pong");
    assert_eq!(
        p.header(),
        header(Kind::Pong, Flags::NONE, 0, 0, 17, 905_020_050)
    );
    assert_eq!(
        Message::parse(&p, &mut scratch).unwrap(),
        Message::Pong(Pong {
            t0_us: 5_000_000,
            t1_us: 905_020_000,
            t2_us: 905_020_050,
        })
    );
    // The clock arithmetic of the document's section 12.2.
    let t3: i64 = 5_000_900;
    let (t0, t1, t2) = (T0 as i64, T1 as i64, T2 as i64);
    assert_eq!(((t1 - t0) + (t2 - t3)) / 2, 900_019_575);
    assert_eq!((t3 - t0) - (t2 - t1), 850);

    let p = packet(&ex, "join");
    assert_eq!(p.header(), header(Kind::Join, Flags::NONE, 0, 4, 2, 1_000));
    assert_eq!(
        Message::parse(&p, &mut scratch).unwrap(),
        Message::Join(Join {
            room: "studio-1",
            role: Role::Member,
        })
    );

    let p = packet(&ex, "room_snapshot");
    assert_eq!(
        p.header(),
        header(Kind::RoomSnapshot, Flags::NONE, 3, 0, 18, 905_021_000)
    );
    let Message::RoomSnapshot(snap) = Message::parse(&p, &mut scratch).unwrap() else {
        panic!("room_snapshot example is not a snapshot")
    };
    assert_eq!((snap.name, snap.your_role), ("studio-1", Role::Member));
    assert_eq!(
        snap.members.iter().collect::<Vec<_>>(),
        vec![
            MemberInfo {
                member: 1,
                role: Role::Owner,
                user: "ana",
            },
            MemberInfo {
                member: 4,
                role: Role::Member,
                user: "pi-4",
            },
        ]
    );

    let p = packet(&ex, "error");
    assert_eq!(
        p.header(),
        header(Kind::Error, Flags::NONE, 0, 0, 19, 905_022_000)
    );
    assert_eq!(
        Message::parse(&p, &mut scratch).unwrap(),
        Message::Error(ErrorMsg {
            code: ErrorCode::FORBIDDEN,
            about: 0x03,
            reason: "role not granted",
        })
    );
}

#[test]
fn pose_examples_decode_to_the_encoded_frames() {
    let doc = doc();
    let ex = doc_examples(&doc);
    let mut scratch = [0u8; MAX_PLAIN_PAYLOAD];
    let mut dec = PoseDecoder::new();

    let key = packet(&ex, "pose_keyframe");
    assert_eq!(
        key.header(),
        header(Kind::Pose, Flags::KEYFRAME, ROOM, MEMBER, 1, 1_000_000)
    );
    assert_eq!(key.as_bytes().len(), 11 + 1 + KEYFRAME_BODY_LEN + 4);
    let Message::Pose(pose) = Message::parse(&key, &mut scratch).unwrap() else {
        panic!("pose_keyframe example is not a pose")
    };
    assert_eq!((pose.person, pose.coding), (0, PoseCoding::Keyframe));
    let got = *dec.decode(&key.header(), &pose).unwrap();
    let want = keyframe_frame();
    // The example's values are multiples of the quantisation step: exact.
    assert_eq!(got.landmarks, want.landmarks);
    assert_eq!((got.seq, got.person, got.capture_ts_us), (1, 0, 1_000_000));
    let nose = got.landmarks[landmark::NOSE];
    assert_eq!(
        (nose.x, nose.y, nose.z, nose.visibility, nose.presence),
        (0.4375, 0.125, -0.0625, 0.75, 1.0)
    );

    let delta = packet(&ex, "pose_delta");
    assert_eq!(
        delta.header(),
        header(Kind::Pose, Flags::NONE, ROOM, MEMBER, 2, 1_033_333)
    );
    let Message::Pose(dpose) = Message::parse(&delta, &mut scratch).unwrap() else {
        panic!("pose_delta example is not a pose")
    };
    assert_eq!(
        (dpose.person, dpose.coding),
        (0, PoseCoding::Delta { ref_back: 1 })
    );
    // 79 bytes of fields (627 bits), 6 of excess (47 bits), as section 12.7 says.
    assert_eq!(dpose.body.len(), 79 + 6);
    // The bit-by-bit annotation: the nose's fields open the area, the two escaped
    // wrist x fields are its bytes 35 … 38, every other field byte is zero, and the
    // excess area holds a Rice escape (168) and an ordinary code (69, k = 3).
    let (fields, excess) = dpose.body.split_at(79);
    assert_eq!(&fields[..2], &[0x30, 0x40]);
    assert_eq!(&fields[35..39], &[0x07, 0xc0, 0x00, 0xf8]);
    assert!(fields[2..35].iter().chain(&fields[39..]).all(|&b| b == 0));
    assert_eq!(excess, &[0xff, 0xff, 0xf0, 0x15, 0x1f, 0xea]);
    let got = *dec.decode(&delta.header(), &dpose).unwrap();
    let want: PoseFrame = delta_frame();
    assert_eq!(got.landmarks, want.landmarks);
    assert_eq!((got.seq, got.capture_ts_us), (2, 1_033_333));
    assert_eq!(
        got.landmarks[landmark::RIGHT_WRIST].x,
        keyframe_frame().landmarks[landmark::RIGHT_WRIST].x + 50.0 / COORD_SCALE
    );

    // A decoder that missed the keyframe refuses the delta rather than guess.
    let mut fresh = PoseDecoder::new();
    assert_eq!(
        fresh.decode(&delta.header(), &dpose).unwrap_err(),
        Error::NeedsKeyframe
    );

    let delta2 = packet(&ex, "pose_delta_2");
    assert_eq!(
        delta2.header(),
        header(Kind::Pose, Flags::NONE, ROOM, MEMBER, 3, 1_066_666)
    );
    let Message::Pose(dpose2) = Message::parse(&delta2, &mut scratch).unwrap() else {
        panic!("pose_delta_2 example is not a pose")
    };
    assert_eq!(dpose2.coding, PoseCoding::Delta { ref_back: 1 });
    // 79 bytes of fields (629 bits), 1 of excess (7 bits), as section 12.8 says.
    assert_eq!(dpose2.body.len(), 79 + 1);
    // The right wrist's 6-bit escaped x field and its y field are the area's bytes
    // 38 and 39; its excess 37 is one Rice code with k = 4.
    let (fields, excess) = dpose2.body.split_at(79);
    assert_eq!(&fields[38..40], &[0x7e, 0x80]);
    assert!(fields[..38].iter().chain(&fields[40..]).all(|&b| b == 0));
    assert_eq!(excess, &[0xca]);
    let got = *dec.decode(&delta2.header(), &dpose2).unwrap();
    assert_eq!(got.landmarks, delta_frame_2().landmarks);
    assert_eq!(dec.stats().deltas, 2);
}

#[test]
fn audio_examples_decode_to_the_encoded_chunks() {
    let doc = doc();
    let ex = doc_examples(&doc);
    let mut scratch = [0u8; MAX_PLAIN_PAYLOAD];

    let p = packet(&ex, "audio");
    assert_eq!(
        p.header(),
        header(Kind::Audio, Flags::NONE, ROOM, MEMBER, 50, 1_010_000)
    );
    let Message::Audio(a) = Message::parse(&p, &mut scratch).unwrap() else {
        panic!("audio example is not audio")
    };
    assert_eq!((a.channels, a.sample_rate, a.len), (1, 48_000, 4));
    let mut chunk = AudioChunk::default();
    a.to_chunk(&p.header(), &mut chunk).unwrap();
    assert_eq!(chunk, short_audio());
    assert_eq!(chunk.pcm(), &[0, 1000, -1000, 32767]);

    #[cfg(feature = "lz4")]
    {
        let p = packet(&ex, "audio_lz4");
        assert_eq!(
            p.header(),
            header(Kind::Audio, Flags::LZ4, ROOM, MEMBER, 51, 1_030_000)
        );
        // varint 1927, then the LZ4 block.
        assert_eq!(&p.payload()[..2], &[0x87, 0x0f]);
        let Message::Audio(a) = Message::parse(&p, &mut scratch).unwrap() else {
            panic!("audio_lz4 example is not audio")
        };
        let mut chunk = AudioChunk::default();
        a.to_chunk(&p.header(), &mut chunk).unwrap();
        assert_eq!(chunk, wire_examples::silent_audio());
        assert_eq!(chunk.pcm().len(), AUDIO_CHUNK_CAPACITY);
    }
}

#[test]
fn varint_examples_match_the_encoder() {
    let doc = doc();
    for (text, v) in [
        ("0", 0u64),
        ("127", 127),
        ("128", 128),
        ("300", 300),
        ("1 000 000", 1_000_000),
    ] {
        let mut buf = [0u8; 10];
        let n = put_varint(&mut buf, v);
        let line = format!("`{text}` → `{}`", hex(&buf[..n]));
        assert!(doc.contains(&line), "the document should say {line}");
    }
}

#[test]
fn envelope_table_matches_the_header() {
    let doc = doc();
    let rows = doc_table(&doc, "envelope");
    let fields: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        fields,
        [
            "version", "kind", "flags", "room", "sender", "seq", "ts_us", "payload", "crc32"
        ]
    );
    let offsets: Vec<&str> = rows.iter().take(6).map(|r| r[0].as_str()).collect();
    assert_eq!(offsets, ["0", "1", "2", "3", "5", "7"]);
    assert_eq!(FIXED_HEADER_LEN, 7, "seq starts after the fixed part");
    assert_eq!(rows[8][1], CRC_LEN.to_string());
    // room and sender are little-endian at offsets 3 and 5.
    let mut buf = [0u8; 32];
    Header::new(Kind::Ping, 0x0102, 0x0304, 0, 0)
        .emit(&mut buf)
        .unwrap();
    assert_eq!(&buf[..7], &[VERSION_BYTE, 0x0c, 0, 0x02, 0x01, 0x04, 0x03]);
}

#[test]
fn kinds_and_flags_tables_match_the_code() {
    let doc = doc();
    let rows = doc_table(&doc, "kinds");
    assert_eq!(rows.len(), Kind::ALL.len(), "one row per kind");
    for (row, kind) in rows.iter().zip(Kind::ALL) {
        assert_eq!(row[0], format!("0x{:02x}", kind as u8));
        assert_eq!(row[1], kind.name(), "kind 0x{:02x}", kind as u8);
    }

    let rows = doc_table(&doc, "flags");
    let named = [
        ("LZ4", Flags::LZ4),
        ("KEYFRAME", Flags::KEYFRAME),
        ("RAW", Flags::RAW),
    ];
    for (name, flag) in named {
        let row = rows
            .iter()
            .find(|r| r[1] == name)
            .unwrap_or_else(|| panic!("no flag {name} in the table"));
        assert_eq!(row[0], format!("0x{:02x}", flag.0), "flag {name}");
    }
    let reserved = rows
        .iter()
        .find(|r| r[1] == "reserved")
        .expect("a reserved row");
    assert_eq!(reserved[0], format!("0x{:02x}", !Flags::KNOWN.0));
}

#[test]
fn error_code_table_matches_the_code() {
    let doc = doc();
    let rows = doc_table(&doc, "error_codes");
    assert_eq!(rows.len(), 17);
    for row in &rows {
        let code: u16 = row[0].parse().expect("a numeric code");
        assert_eq!(
            row[1],
            ErrorCode(code).name().to_uppercase(),
            "error code {code}"
        );
    }
    assert_eq!(ErrorCode(18).name(), "unknown", "a new code needs a row");
}

fn payload_of(msg: Message<'_>) -> Vec<u8> {
    let mut buf = [0u8; 128];
    let n = encode_control(&Header::new(msg.kind(), 0, 0, 1, 0), &msg, &mut buf).unwrap();
    Packet::new_checked(&buf[..n]).unwrap().payload().to_vec()
}

#[test]
fn enum_tables_match_the_encoding() {
    let doc = doc();
    let rows = doc_table(&doc, "role");
    let roles = [Role::Owner, Role::Member, Role::Viewer];
    assert_eq!(rows.len(), roles.len());
    for (row, role) in rows.iter().zip(roles) {
        assert_eq!(row[0], format!("{role:?}"));
        let p = payload_of(Message::Join(Join { room: "r", role }));
        assert_eq!(row[1], p.last().unwrap().to_string(), "{role:?}");
    }

    let rows = doc_table(&doc, "leave_reason");
    let reasons = [
        LeaveReason::Left,
        LeaveReason::Disconnected,
        LeaveReason::Kicked,
        LeaveReason::TimedOut,
        LeaveReason::RoomClosed,
    ];
    assert_eq!(rows.len(), reasons.len());
    for (row, reason) in rows.iter().zip(reasons) {
        assert_eq!(row[0], format!("{reason:?}"));
        let p = payload_of(Message::MemberLeft(MemberLeft { member: 1, reason }));
        assert_eq!(row[1], p.last().unwrap().to_string(), "{reason:?}");
    }
}

#[test]
fn limits_table_matches_the_code() {
    let doc = doc();
    let known: [(&str, u64); 16] = [
        ("MAX_MESSAGE_LEN", MAX_MESSAGE_LEN as u64),
        ("MIN_MESSAGE_LEN", MIN_MESSAGE_LEN as u64),
        ("MAX_HEADER_LEN", MAX_HEADER_LEN as u64),
        ("MAX_NAME_LEN", MAX_NAME_LEN as u64),
        ("MAX_TOKEN_LEN", MAX_TOKEN_LEN as u64),
        ("MAX_REASON_LEN", MAX_REASON_LEN as u64),
        ("LANDMARK_COUNT", LANDMARK_COUNT as u64),
        ("RAW_BODY_LEN", RAW_BODY_LEN as u64),
        ("KEYFRAME_BODY_LEN", KEYFRAME_BODY_LEN as u64),
        ("MAX_POSE_MESSAGE_LEN", MAX_POSE_MESSAGE_LEN as u64),
        ("AUDIO_CHUNK_CAPACITY", AUDIO_CHUNK_CAPACITY as u64),
        ("MIN_SAMPLE_RATE", MIN_SAMPLE_RATE as u64),
        ("MAX_SAMPLE_RATE", MAX_SAMPLE_RATE as u64),
        ("MAX_PLAIN_PAYLOAD", MAX_PLAIN_PAYLOAD as u64),
        (
            "DEFAULT_COMPRESS_THRESHOLD",
            DEFAULT_COMPRESS_THRESHOLD as u64,
        ),
        (
            "EncoderConfig::default().keyframe_interval_us",
            EncoderConfig::default().keyframe_interval_us,
        ),
    ];
    let rows = doc_table(&doc, "limits");
    for (name, value) in known {
        let row = rows
            .iter()
            .find(|r| r[2] == name)
            .unwrap_or_else(|| panic!("no row for {name} in the limits table"));
        assert_eq!(row[1], value.to_string(), "{name}");
    }
    assert_eq!(rows.len(), known.len(), "every row names a known constant");
    // The quantisation of section 7.4.
    assert_eq!((COORD_SCALE, SCORE_SCALE), (2048.0, 128.0));
}

#[test]
fn landmark_table_matches_the_code() {
    let doc = doc();
    let rows = doc_table(&doc, "landmarks");
    assert_eq!(rows.len(), LANDMARK_COUNT);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], i.to_string());
        assert_eq!(row[1], landmark::NAMES[i], "landmark {i}");
    }
}
