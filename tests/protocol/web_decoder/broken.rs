//! Broken messages of every sort, and the refusals the JS module must give.

use super::*;

/// Broken messages: every outcome is whatever the Rust receiver says, and the JS
/// module must say the same.
pub(super) fn broken(v: &mut Vectors, rng: &mut Rng) {
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

pub(super) fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Control messages the Rust encoder refuses; the JS encoder must refuse them too.
pub(super) fn refusals(v: &mut Vectors) {
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
                stream: 0,
            }),
        ),
        (
            Header::new(Kind::Hello, 0, 0, 0, 0),
            Message::Hello(Hello {
                minor: 0,
                token: "",
                resume: 0,
                client: &long_client,
                stream: 0,
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
                stream: 0,
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
