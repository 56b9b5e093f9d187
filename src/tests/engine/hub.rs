//! A scripted fake hub for the client session's simulations: a small in-memory
//! peer that parses the session's masked frames and answers as a hub would —
//! hello with a welcome, join with a snapshot, audio with acknowledgements,
//! pings with pongs — and records what it received. It can drop the
//! connection, stay silent, or hold its acknowledgements back.

use crate::proto::{
    Ack, Header, Kind, MemberInfo, Message, Packet, Pong, Role, Welcome, encode_control,
    encode_snapshot,
};
use crate::ws::{self, FrameKind, Parsed};

/// One message the hub received.
#[derive(Clone, Debug)]
pub(super) struct Got {
    pub header: Header,
    /// For pose messages: a keyframe (not a delta).
    pub keyframe: bool,
    /// For needs_keyframe: (publisher, person).
    pub asked: Option<(u16, u32)>,
}

pub(super) struct FakeHub {
    /// Bytes from the client not parsed yet.
    inbox: Vec<u8>,
    /// Server frames to the client.
    pub outbox: Vec<u8>,
    next_member: u16,
    next_handle: u16,
    /// The current connection's member id.
    pub member: u16,
    /// (name, handle) of the rooms joined on the current connection.
    pub rooms: Vec<(String, u16)>,
    /// Everything received, over every connection.
    pub got: Vec<Got>,
    /// Answer audio with acknowledgements.
    pub ack_audio: bool,
    /// Answer nothing at all (a hub that hangs).
    pub silent: bool,
    /// The resume id of every hello, in order.
    pub resumes: Vec<u64>,
}

impl FakeHub {
    pub fn new() -> FakeHub {
        FakeHub {
            inbox: Vec::new(),
            outbox: Vec::new(),
            next_member: 1,
            next_handle: 1,
            member: 0,
            rooms: Vec::new(),
            got: Vec::new(),
            ack_audio: true,
            silent: false,
            resumes: Vec::new(),
        }
    }

    /// A new connection: per-connection state starts over (new member id and
    /// new room handles, as a restarted hub gives).
    pub fn reset_connection(&mut self) {
        self.inbox.clear();
        self.outbox.clear();
        self.member = 0;
        self.rooms.clear();
    }

    /// Audio sequence numbers received, in order, with their (room handle, sender).
    pub fn audio(&self) -> Vec<(u32, u16, u16)> {
        self.got
            .iter()
            .filter(|g| g.header.kind == Kind::Audio)
            .map(|g| (g.header.seq, g.header.room, g.header.sender))
            .collect()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.got.iter().filter(|g| g.header.kind == kind).count()
    }

    /// Bytes from the client.
    pub fn feed(&mut self, now: u64, bytes: &[u8]) {
        self.inbox.extend_from_slice(bytes);
        loop {
            let f = match ws::parse_frame(&mut self.inbox, 1 << 20) {
                Ok(Parsed::Frame(f)) => f,
                Ok(Parsed::Need(_)) => return,
                Err(e) => panic!("the session sent a bad frame: {e}"),
            };
            let payload = self.inbox[f.header_len..f.len()].to_vec();
            self.inbox.drain(..f.len());
            if f.kind == FrameKind::Binary {
                self.on_message(now, &payload);
            }
        }
    }

    /// Sends a message to the client as a server frame.
    pub fn send(&mut self, header: Header, msg: &Message<'_>) {
        let mut body = [0u8; 4096];
        let n = encode_control(&header, msg, &mut body).unwrap();
        self.send_bytes(&body[..n]);
    }

    /// Sends a whole sealed message (relayed media) as a server frame.
    pub fn send_bytes(&mut self, message: &[u8]) {
        let mut head = [0u8; 14];
        let hl = ws::write_header(&mut head, FrameKind::Binary, true, message.len()).unwrap();
        self.outbox.extend_from_slice(&head[..hl]);
        self.outbox.extend_from_slice(message);
    }

    fn on_message(&mut self, now: u64, bytes: &[u8]) {
        let packet = Packet::new_checked(bytes).expect("the session sends sealed messages");
        let header = packet.header();
        let mut scratch = [0u8; 8192];
        let msg = Message::parse(&packet, &mut scratch).expect("and parseable ones");
        let keyframe =
            matches!(msg, Message::Pose(p) if p.coding == crate::proto::PoseCoding::Keyframe);
        let asked = match msg {
            Message::NeedsKeyframe(nk) => Some((nk.publisher, nk.person)),
            _ => None,
        };
        self.got.push(Got {
            header,
            keyframe,
            asked,
        });
        if self.silent {
            return;
        }
        let reply = |kind, room| Header::new(kind, room, 0, 0, now);
        match msg {
            Message::Hello(h) => {
                self.resumes.push(h.resume);
                self.member = self.next_member;
                self.next_member += 1;
                let w = Message::Welcome(Welcome {
                    minor: 0,
                    member: self.member,
                    user: "sim-user",
                    resume: h.resume + 1,
                    server_time_us: now,
                    heartbeat_ms: 1000,
                    max_message: 65_536,
                });
                self.send(reply(Kind::Welcome, 0), &w);
            }
            Message::Join(j) => {
                let handle = self.next_handle;
                self.next_handle += 1;
                self.rooms.push((j.room.to_string(), handle));
                let me = MemberInfo {
                    member: self.member,
                    role: j.role,
                    user: "sim-user",
                };
                let other = MemberInfo {
                    member: 999,
                    role: Role::Member,
                    user: "other",
                };
                let mut body = [0u8; 4096];
                let h = reply(Kind::RoomSnapshot, handle);
                let n = encode_snapshot(&h, j.room, j.role, &[me, other], &mut body).unwrap();
                self.send_bytes(&body[..n]);
            }
            Message::Audio(_) if self.ack_audio => {
                let ack = Message::Ack(Ack {
                    kind: Kind::Audio as u8,
                    seq: header.seq,
                });
                self.send(reply(Kind::Ack, header.room), &ack);
            }
            Message::Ping(p) => {
                let pong = Message::Pong(Pong {
                    t0_us: p.t0_us,
                    t1_us: now,
                    t2_us: now,
                });
                self.send(reply(Kind::Pong, 0), &pong);
            }
            _ => {}
        }
    }
}
