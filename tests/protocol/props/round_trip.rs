//! Round trips: pose streams within the quantisation bounds (bit for bit in raw
//! mode), losses that never give a wrong pose, control messages and headers.

use super::*;

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
