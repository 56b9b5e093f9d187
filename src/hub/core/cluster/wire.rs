//! What hubs say to each other through the broker: one message per broker
//! message, in a small binary format of its own (not the client protocol, which
//! the cluster link must be free to change with the hubs). Every message starts
//! with a format byte, its kind and the sending hub's node name; the rest is
//! the kind's fields. A media message carries the client's envelope as it
//! arrived, untouched, after the room and the publisher's member id on its own
//! hub: the receiving hub rewrites only the room handle and the sender for its
//! members. Encoding writes into the caller's buffer and decoding borrows from
//! the message, so neither allocates. Layout, integers little-endian, a string
//! being one length byte and its UTF-8 bytes:
//!
//! ```text
//! 0xC1 | kind u8 | node str | fields of the kind
//! heartbeat 1: epoch u64          gone 2: -
//! joined 3:    room str, member u16, role u8, stream u64, user str
//! left 4:      room str, member u16, reason u8
//! role 5:      room str, member u16, role u8
//! sync 6:      room str           (the holders of the room answer the node)
//! media 7:     room str, member u16, envelope (to the end)
//! keyframe 8:  room str, publisher u16, person u32
//! kick 9:      room str, target node str, member u16, reason str
//! close 10:    room str, reason str
//! set role 11: room str, target node str, member u16, role u8
//! roster 12:   room str, count u16, member u16 × count  (every member the
//!              node has in the room now: the others drop those not in it)
//! ```

use crate::proto::{Kind, LeaveReason, Role};

/// The format byte that opens every cluster message.
pub const FORMAT: u8 = 0xC1;
/// The kind byte of a media message (pose or audio).
pub const KIND_MEDIA: u8 = 7;

/// Whether `bytes` is a media message (what a full ring may drop), looking at
/// its kind byte only.
pub fn is_media(bytes: &[u8]) -> bool {
    bytes.first() == Some(&FORMAT) && bytes.get(1) == Some(&KIND_MEDIA)
}

/// What a full ring may do with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Never dropped silently.
    Control,
    /// A pose message: the first to go.
    Pose,
    /// An audio message.
    Audio,
}

/// The class of a cluster message (a malformed one is control: it is
/// refused by the core, counted, not dropped unseen).
pub fn class(bytes: &[u8]) -> Class {
    if !is_media(bytes) {
        return Class::Control;
    }
    match decode(bytes) {
        Ok((_, Msg::Media { envelope, .. })) if envelope.get(1) == Some(&(Kind::Audio as u8)) => {
            Class::Audio
        }
        Ok((_, Msg::Media { .. })) => Class::Pose,
        _ => Class::Control,
    }
}

/// The longest node name, bytes.
pub const MAX_NODE_LEN: usize = 32;

/// One cluster message, borrowing its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// The node is alive; `epoch` changes when it restarts.
    Heartbeat {
        /// Its start, so a restart is seen even within the timeout.
        epoch: u64,
    },
    /// The node is shutting down: its members leave now.
    Gone,
    /// A member joined a room on the node.
    Joined {
        /// The room's name.
        room: &'a str,
        /// Its member id on its own node.
        member: u16,
        /// Its role in the room.
        role: Role,
        /// Its stream id (0: none given).
        stream: u64,
        /// Its user.
        user: &'a str,
    },
    /// A member of the node left a room.
    Left {
        /// The room's name.
        room: &'a str,
        /// Its member id on its own node.
        member: u16,
        /// Why.
        reason: LeaveReason,
    },
    /// A member of the node has a new role.
    Role {
        /// The room's name.
        room: &'a str,
        /// Its member id on its own node.
        member: u16,
        /// The new role.
        role: Role,
    },
    /// The node has a first member in the room: holders tell it theirs.
    Sync {
        /// The room's name.
        room: &'a str,
    },
    /// A pose or audio message published on the node.
    Media {
        /// The room's name.
        room: &'a str,
        /// The publisher's member id on its own node.
        member: u16,
        /// The client's envelope as the node received it.
        envelope: &'a [u8],
    },
    /// A receiver on the node needs a keyframe of a publisher on another.
    Keyframe {
        /// The room's name.
        room: &'a str,
        /// The publisher's member id on its own node.
        publisher: u16,
        /// The person.
        person: u32,
    },
    /// An owner on the node removes a member of another node from a room.
    Kick {
        /// The room's name.
        room: &'a str,
        /// The node the member is on.
        target: &'a str,
        /// Its member id there.
        member: u16,
        /// The owner's reason.
        reason: &'a str,
    },
    /// An owner on the node gives a member of another node a role.
    SetRole {
        /// The room's name.
        room: &'a str,
        /// The node the member is on.
        target: &'a str,
        /// Its member id there.
        member: u16,
        /// The role.
        role: Role,
    },
    /// Every member the node has in the room now (member ids on the node,
    /// little-endian u16s): a member the others know that is not in it left.
    Roster {
        /// The room's name.
        room: &'a str,
        /// The member ids, two bytes each.
        members: &'a [u8],
    },
    /// An owner on the node closed the room.
    Close {
        /// The room's name.
        room: &'a str,
        /// The owner's reason.
        reason: &'a str,
    },
}

/// Why a cluster message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl core::fmt::Display for Malformed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "malformed cluster message: {}", self.0)
    }
}

fn role_byte(r: Role) -> u8 {
    match r {
        Role::Owner => 0,
        Role::Member => 1,
        Role::Viewer => 2,
    }
}

fn role_of(b: u8) -> Result<Role, Malformed> {
    Ok(match b {
        0 => Role::Owner,
        1 => Role::Member,
        2 => Role::Viewer,
        _ => return Err(Malformed("unknown role")),
    })
}

fn reason_byte(r: LeaveReason) -> u8 {
    match r {
        LeaveReason::Left => 0,
        LeaveReason::Disconnected => 1,
        LeaveReason::Kicked => 2,
        LeaveReason::TimedOut => 3,
        LeaveReason::RoomClosed => 4,
    }
}

fn reason_of(b: u8) -> Result<LeaveReason, Malformed> {
    Ok(match b {
        0 => LeaveReason::Left,
        1 => LeaveReason::Disconnected,
        2 => LeaveReason::Kicked,
        3 => LeaveReason::TimedOut,
        4 => LeaveReason::RoomClosed,
        _ => return Err(Malformed("unknown leave reason")),
    })
}

/// Writes into a caller's buffer; `None` when it does not fit.
struct Writer<'b> {
    out: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Option<()> {
        let end = self.at.checked_add(b.len())?;
        self.out.get_mut(self.at..end)?.copy_from_slice(b);
        self.at = end;
        Some(())
    }
    fn str(&mut self, s: &str) -> Option<()> {
        let n = u8::try_from(s.len()).ok()?;
        self.bytes(&[n])?;
        self.bytes(s.as_bytes())
    }
}

/// Encodes `msg` from `node` into `out`; the length, or `None` when `out` is
/// too small or a string is longer than 255 bytes.
pub fn encode(node: &str, msg: &Msg<'_>, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer { out, at: 0 };
    let kind = match msg {
        Msg::Heartbeat { .. } => 1,
        Msg::Gone => 2,
        Msg::Joined { .. } => 3,
        Msg::Left { .. } => 4,
        Msg::Role { .. } => 5,
        Msg::Sync { .. } => 6,
        Msg::Media { .. } => 7,
        Msg::Keyframe { .. } => 8,
        Msg::Kick { .. } => 9,
        Msg::Close { .. } => 10,
        Msg::SetRole { .. } => 11,
        Msg::Roster { .. } => 12,
    };
    w.bytes(&[FORMAT, kind])?;
    w.str(node)?;
    match *msg {
        Msg::Heartbeat { epoch } => w.bytes(&epoch.to_le_bytes())?,
        Msg::Gone => {}
        Msg::Joined {
            room,
            member,
            role,
            stream,
            user,
        } => {
            w.str(room)?;
            w.bytes(&member.to_le_bytes())?;
            w.bytes(&[role_byte(role)])?;
            w.bytes(&stream.to_le_bytes())?;
            w.str(user)?;
        }
        Msg::Left {
            room,
            member,
            reason,
        } => {
            w.str(room)?;
            w.bytes(&member.to_le_bytes())?;
            w.bytes(&[reason_byte(reason)])?;
        }
        Msg::Role { room, member, role } => {
            w.str(room)?;
            w.bytes(&member.to_le_bytes())?;
            w.bytes(&[role_byte(role)])?;
        }
        Msg::Sync { room } => w.str(room)?,
        Msg::Media {
            room,
            member,
            envelope,
        } => {
            w.str(room)?;
            w.bytes(&member.to_le_bytes())?;
            w.bytes(envelope)?;
        }
        Msg::Keyframe {
            room,
            publisher,
            person,
        } => {
            w.str(room)?;
            w.bytes(&publisher.to_le_bytes())?;
            w.bytes(&person.to_le_bytes())?;
        }
        Msg::Kick {
            room,
            target,
            member,
            reason,
        } => {
            w.str(room)?;
            w.str(target)?;
            w.bytes(&member.to_le_bytes())?;
            w.str(reason)?;
        }
        Msg::Close { room, reason } => {
            w.str(room)?;
            w.str(reason)?;
        }
        Msg::SetRole {
            room,
            target,
            member,
            role,
        } => {
            w.str(room)?;
            w.str(target)?;
            w.bytes(&member.to_le_bytes())?;
            w.bytes(&[role_byte(role)])?;
        }
        Msg::Roster { room, members } => {
            w.str(room)?;
            let n = u16::try_from(members.len() / 2).ok()?;
            w.bytes(&n.to_le_bytes())?;
            w.bytes(&members[..2 * n as usize])?;
        }
    }
    Some(w.at)
}

/// Reads a message's fields in order.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        if self.b.len() < n {
            return Err(Malformed(what));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, Malformed> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, Malformed> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, Malformed> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, Malformed> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self, what: &'static str) -> Result<&'a str, Malformed> {
        let n = self.u8(what)? as usize;
        core::str::from_utf8(self.take(n, what)?).map_err(|_| Malformed(what))
    }
    fn end(&self) -> Result<(), Malformed> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(Malformed("bytes after the last field"))
        }
    }
}

fn room<'a>(r: &mut Reader<'a>) -> Result<&'a str, Malformed> {
    let s = r.str("the room name is cut short")?;
    if s.is_empty() || s.len() > crate::proto::MAX_NAME_LEN {
        return Err(Malformed("invalid room name"));
    }
    Ok(s)
}

/// Decodes a cluster message: the sending node's name and the message.
pub fn decode(bytes: &[u8]) -> Result<(&str, Msg<'_>), Malformed> {
    let mut r = Reader { b: bytes };
    if r.u8("empty")? != FORMAT {
        return Err(Malformed(
            "not a poselink cluster message (unknown format byte)",
        ));
    }
    let kind = r.u8("no kind")?;
    let node = r.str("the node name is cut short")?;
    if !valid_node_name(node) {
        return Err(Malformed("invalid node name"));
    }
    let msg = match kind {
        1 => Msg::Heartbeat {
            epoch: r.u64("the epoch is cut short")?,
        },
        2 => Msg::Gone,
        3 => Msg::Joined {
            room: room(&mut r)?,
            member: r.u16("the member is cut short")?,
            role: role_of(r.u8("the role is cut short")?)?,
            stream: r.u64("the stream id is cut short")?,
            user: r.str("the user is cut short")?,
        },
        4 => Msg::Left {
            room: room(&mut r)?,
            member: r.u16("the member is cut short")?,
            reason: reason_of(r.u8("the reason is cut short")?)?,
        },
        5 => Msg::Role {
            room: room(&mut r)?,
            member: r.u16("the member is cut short")?,
            role: role_of(r.u8("the role is cut short")?)?,
        },
        6 => Msg::Sync {
            room: room(&mut r)?,
        },
        7 => {
            let room = room(&mut r)?;
            let member = r.u16("the member is cut short")?;
            let envelope = core::mem::take(&mut r.b);
            Msg::Media {
                room,
                member,
                envelope,
            }
        }
        8 => Msg::Keyframe {
            room: room(&mut r)?,
            publisher: r.u16("the publisher is cut short")?,
            person: r.u32("the person is cut short")?,
        },
        9 => Msg::Kick {
            room: room(&mut r)?,
            target: r.str("the target node is cut short")?,
            member: r.u16("the member is cut short")?,
            reason: r.str("the reason is cut short")?,
        },
        10 => Msg::Close {
            room: room(&mut r)?,
            reason: r.str("the reason is cut short")?,
        },
        11 => Msg::SetRole {
            room: room(&mut r)?,
            target: r.str("the target node is cut short")?,
            member: r.u16("the member is cut short")?,
            role: role_of(r.u8("the role is cut short")?)?,
        },
        12 => {
            let room = room(&mut r)?;
            let n = r.u16("the member count is cut short")? as usize;
            Msg::Roster {
                room,
                members: r.take(2 * n, "the member list is cut short")?,
            }
        }
        _ => return Err(Malformed("unknown kind")),
    };
    r.end()?;
    Ok((node, msg))
}

/// Whether `name` may name a node: 1 to 32 bytes of ASCII letters, digits,
/// `-` and `_` (it is a token of the broker's subjects).
pub fn valid_node_name(name: &str) -> bool {
    (1..=MAX_NODE_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(msg: Msg<'_>) {
        let mut buf = [0u8; 512];
        let n = encode("hub-a", &msg, &mut buf).unwrap();
        assert_eq!(decode(&buf[..n]), Ok(("hub-a", msg)));
        // Every cut is refused, never misread.
        for cut in 0..n {
            if let Ok((_, m)) = decode(&buf[..cut]) {
                assert!(matches!(m, Msg::Media { .. }), "{cut}: {m:?}");
            }
        }
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(Msg::Heartbeat { epoch: 42 });
        round_trip(Msg::Gone);
        round_trip(Msg::Joined {
            room: "gym",
            member: 7,
            role: Role::Viewer,
            stream: 0xDEAD_BEEF,
            user: "ana",
        });
        round_trip(Msg::Left {
            room: "gym",
            member: 7,
            reason: LeaveReason::TimedOut,
        });
        round_trip(Msg::Role {
            room: "gym",
            member: 7,
            role: Role::Owner,
        });
        round_trip(Msg::Sync { room: "a.b" });
        round_trip(Msg::Media {
            room: "gym",
            member: 3,
            envelope: &[1, 2, 3, 4, 5],
        });
        round_trip(Msg::Keyframe {
            room: "gym",
            publisher: 3,
            person: 1,
        });
        round_trip(Msg::Kick {
            room: "gym",
            target: "hub-b",
            member: 9,
            reason: "bye",
        });
        round_trip(Msg::Close {
            room: "gym",
            reason: "done",
        });
        round_trip(Msg::Roster {
            room: "gym",
            members: &[1, 0, 9, 0],
        });
        round_trip(Msg::SetRole {
            room: "gym",
            target: "hub-b",
            member: 9,
            role: Role::Viewer,
        });
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert_eq!(decode(&[]), Err(Malformed("empty")));
        assert!(decode(b"PUB foo").is_err());
        assert_eq!(
            decode(&[FORMAT, 99, 1, b'a']),
            Err(Malformed("unknown kind"))
        );
        assert_eq!(
            decode(&[FORMAT, 2, 3, b'a', b' ', b'b']),
            Err(Malformed("invalid node name"))
        );
        assert_eq!(
            decode(&[FORMAT, 2, 1, b'a', 0]),
            Err(Malformed("bytes after the last field"))
        );
        let mut buf = [0u8; 64];
        let n = encode("a", &Msg::Sync { room: "r" }, &mut buf).unwrap();
        buf[n - 2] = 0; // an empty room name
        assert_eq!(decode(&buf[..n - 1]), Err(Malformed("invalid room name")));
    }

    #[test]
    fn a_ring_tells_pose_audio_and_control_apart() {
        let mut buf = [0u8; 64];
        let mut with = |kind: u8| {
            let envelope = [0x11, kind, 0, 0, 0, 0, 0];
            let m = Msg::Media {
                room: "r",
                member: 1,
                envelope: &envelope,
            };
            let n = encode("a", &m, &mut buf).unwrap();
            class(&buf[..n])
        };
        assert_eq!(with(Kind::Audio as u8), Class::Audio);
        assert_eq!(with(Kind::Pose as u8), Class::Pose);
        let n = encode("a", &Msg::Gone, &mut buf).unwrap();
        assert_eq!(class(&buf[..n]), Class::Control);
        assert_eq!(
            class(&[FORMAT, KIND_MEDIA]),
            Class::Control,
            "malformed: seen"
        );
    }

    #[test]
    fn node_names() {
        assert!(valid_node_name("hub-1_a"));
        assert!(!valid_node_name(""));
        assert!(!valid_node_name("a.b"));
        assert!(!valid_node_name(&"x".repeat(33)));
    }
}
