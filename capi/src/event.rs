//! What the engine reports, flattened for C: one tagged struct of fixed size
//! ([`PoselinkEvent`]) that the caller provides and the library fills, with a
//! received pose frame's landmarks and an audio chunk's samples copied into fixed
//! arrays (straight from the engine's event, which holds them in place: no
//! allocation on the way) and text copied into a fixed, NUL-terminated buffer. Nothing in it points
//! anywhere, so nothing in it needs freeing and it stays valid for as long as the
//! caller keeps it.

use std::ffi::c_char;

use poselink::engine::Event;
use poselink::monitor::AlertKind;
use poselink::proto::{
    AUDIO_CHUNK_CAPACITY, AudioChunk, LANDMARK_COUNT, LeaveReason, PoseFrame, Role,
};

/// Landmarks in a pose frame.
pub const POSELINK_LANDMARK_COUNT: usize = 33;
/// Values per landmark: x, y, z, visibility, presence.
pub const POSELINK_LANDMARK_VALUES: usize = 5;
/// `float`s in a pose frame's landmark array (33 × 5).
pub const POSELINK_POSE_VALUES: usize = 165;
/// Samples an audio chunk holds at most (all channels): 20 ms of 48 kHz mono.
pub const POSELINK_AUDIO_CAPACITY: usize = 960;
/// Bytes of `PoselinkEvent.text`, the terminating NUL included.
pub const POSELINK_TEXT_CAPACITY: usize = 257;

const _: () = assert!(POSELINK_LANDMARK_COUNT == LANDMARK_COUNT);
const _: () = assert!(POSELINK_POSE_VALUES == POSELINK_LANDMARK_COUNT * POSELINK_LANDMARK_VALUES);
const _: () = assert!(POSELINK_AUDIO_CAPACITY == AUDIO_CHUNK_CAPACITY);
const _: () = assert!(POSELINK_TEXT_CAPACITY > poselink::proto::MAX_REASON_LEN);

/// A room role.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoselinkRole {
    /// May kick, change roles and close the room; publishes and subscribes.
    Owner = 0,
    /// Publishes and subscribes.
    Member = 1,
    /// Subscribes only.
    Viewer = 2,
}

impl PoselinkRole {
    pub(crate) fn from_u32(v: u32) -> Option<Role> {
        match v {
            0 => Some(Role::Owner),
            1 => Some(Role::Member),
            2 => Some(Role::Viewer),
            _ => None,
        }
    }

    pub(crate) fn from_role(r: Role) -> PoselinkRole {
        match r {
            Role::Owner => PoselinkRole::Owner,
            Role::Member => PoselinkRole::Member,
            Role::Viewer => PoselinkRole::Viewer,
        }
    }
}

/// Why a member left a room.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoselinkLeaveReason {
    /// Not a leave event.
    None = 0,
    /// It asked to leave.
    Left = 1,
    /// Its connection closed or failed.
    Disconnected = 2,
    /// An owner removed it.
    Kicked = 3,
    /// It stopped answering, or stayed stuck as a slow receiver.
    TimedOut = 4,
    /// The room was closed.
    RoomClosed = 5,
}

impl PoselinkLeaveReason {
    fn from_reason(r: LeaveReason) -> PoselinkLeaveReason {
        match r {
            LeaveReason::Left => PoselinkLeaveReason::Left,
            LeaveReason::Disconnected => PoselinkLeaveReason::Disconnected,
            LeaveReason::Kicked => PoselinkLeaveReason::Kicked,
            LeaveReason::TimedOut => PoselinkLeaveReason::TimedOut,
            LeaveReason::RoomClosed => PoselinkLeaveReason::RoomClosed,
        }
    }
}

/// Which event a `PoselinkEvent` holds; the comment on each says which fields
/// it sets (every other field is zero).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoselinkEventKind {
    /// No event (the struct as `poselink_poll_event` leaves it when none waits).
    None = 0,
    /// The session is open: `member` is our member id.
    Connected = 1,
    /// The connection was lost or closed: `text` says why.
    Disconnected = 2,
    /// A reconnect is scheduled: `attempt` (1 for the first after a loss),
    /// `delay_ms`.
    Reconnecting = 3,
    /// A room was joined: `room`, `member_count` (us included).
    RoomJoined = 4,
    /// A room was joined again after a reconnect: `room`, `member_count`.
    RoomRestored = 5,
    /// We left a room, were kicked, or it was closed: `room`, `leave_reason`.
    RoomLeft = 6,
    /// Someone joined a room we are in: `room`, `member`, `role`, `text` (their
    /// user id).
    MemberJoined = 7,
    /// Someone left a room we are in: `room`, `member`, `leave_reason`.
    MemberLeft = 8,
    /// A pose frame from another member: `room`, `member` (the publisher), `pose`.
    Pose = 9,
    /// An audio chunk from another member: `room`, `member` (the publisher),
    /// `audio`.
    Audio = 10,
    /// An audio chunk that never came or came too late to play (conceal it):
    /// `room`, `member` (the publisher), `seq`.
    AudioGap = 11,
    /// Our audio chunks that left the replay window unacknowledged: `room`,
    /// `count`.
    AudioLost = 12,
    /// The hub reported an error: `error_code` (see docs/PROTOCOL.md), `text`.
    Error = 13,
    /// An event this version of the C API does not describe; skip it.
    Other = 14,
    /// A member's role changed (an owner's `poselink_set_role`; ours too):
    /// `room`, `member`, `role`.
    RoleChanged = 15,
    /// The hub confirmed our audio of `room` up to and including chunk `seq`
    /// (relayed to the room): `room`, `seq`. Only after
    /// `poselink_set_audio_ack_events(engine, 1)`.
    AudioAcked = 16,
    /// A performance alert (raised once per crossing of its threshold; the
    /// thresholds are `PoselinkConfig`'s `alert_*` settings): `alert_kind`,
    /// `value`, `threshold`, and `text` the kind's name.
    Alert = 17,
}

/// What a performance alert is about, and the unit of its `value` and
/// `threshold`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoselinkAlertKind {
    /// Not an alert event.
    None = 0,
    /// The process's CPU, percent of one core.
    Cpu = 1,
    /// Resident memory growth since the start, bytes.
    MemoryGrowth = 2,
    /// Pose frames sent per second fell below the threshold, fps.
    FpsLow = 3,
    /// The round trip's p99 to the hub, µs.
    LatencyP99 = 4,
    /// The SoC temperature, °C.
    SocTemp = 5,
    /// Reserved for a kind a later version adds (`text` names it).
    Other = 6,
}

impl PoselinkAlertKind {
    fn from_kind(k: AlertKind) -> PoselinkAlertKind {
        match k {
            AlertKind::Cpu => PoselinkAlertKind::Cpu,
            AlertKind::MemoryGrowth => PoselinkAlertKind::MemoryGrowth,
            AlertKind::FpsLow => PoselinkAlertKind::FpsLow,
            AlertKind::LatencyP99 => PoselinkAlertKind::LatencyP99,
            AlertKind::SocTemp => PoselinkAlertKind::SocTemp,
        }
    }
}

/// A pose frame: 33 landmarks of x, y, z (normalised image coordinates, -1 to 2),
/// visibility and presence (0 to 1).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoselinkPose {
    /// Frame sequence number of this person's stream.
    pub seq: u32,
    /// Which person of the camera this is (0 for the first).
    pub person: u32,
    /// Capture time on the publisher's monotonic clock, µs.
    pub capture_ts_us: u64,
    /// Zero.
    pub reserved: u32,
    /// `landmarks[i]` = x, y, z, visibility, presence of landmark `i`, in
    /// MediaPipe BlazePose order (0 nose … 32 right foot index).
    pub landmarks: [[f32; POSELINK_LANDMARK_VALUES]; POSELINK_LANDMARK_COUNT],
}

const _: () = assert!(size_of::<PoselinkPose>() == size_of::<PoseFrame>());

/// An audio chunk: interleaved PCM16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoselinkAudio {
    /// Chunk sequence number of the publisher's stream (no gaps).
    pub seq: u32,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Capture time of the first sample on the publisher's clock, µs.
    pub capture_ts_us: u64,
    /// Valid samples in `samples` (all channels).
    pub len: u16,
    /// 1 or 2.
    pub channels: u8,
    /// Zero.
    pub reserved: u8,
    /// The samples; entries from `len` on are zero.
    pub samples: [i16; POSELINK_AUDIO_CAPACITY],
}

/// One event. `kind` says which; the comment on each `PoselinkEventKind` says
/// which fields it sets, and every other field is zero. The caller owns the
/// struct (about 2.9 KB: keep one and reuse it); the library only writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PoselinkEvent {
    /// What happened.
    pub kind: PoselinkEventKind,
    /// The engine-local room id, as `poselink_join_room` returned it.
    pub room: u16,
    /// A member id: ours (`CONNECTED`), the member who joined or left, or the
    /// publisher of a pose frame, an audio chunk or a gap.
    pub member: u16,
    /// The role of the member who joined (`MEMBER_JOINED`), or the new role
    /// (`ROLE_CHANGED`).
    pub role: PoselinkRole,
    /// Why a member or we left (`ROOM_LEFT`, `MEMBER_LEFT`).
    pub leave_reason: PoselinkLeaveReason,
    /// The hub's error code (`ERROR`).
    pub error_code: u32,
    /// Members of the room, us included (`ROOM_JOINED`, `ROOM_RESTORED`).
    pub member_count: u32,
    /// The missing audio chunk's sequence number (`AUDIO_GAP`), or the highest
    /// acknowledged one (`AUDIO_ACKED`).
    pub seq: u32,
    /// The reconnect attempt, 1 for the first after a loss (`RECONNECTING`).
    pub attempt: u32,
    /// The wait before the reconnect, ms (`RECONNECTING`).
    pub delay_ms: u64,
    /// Audio chunks lost (`AUDIO_LOST`), or the hub the session is open with
    /// (`CONNECTED`): the index of its URL in `config.hub`'s list, 0 for the
    /// first.
    pub count: u64,
    /// What the alert is about (`ALERT`).
    pub alert_kind: PoselinkAlertKind,
    /// Zero.
    pub reserved: u32,
    /// The value that crossed the threshold (`ALERT`; unit by `alert_kind`).
    pub value: f64,
    /// The threshold it crossed (`ALERT`; same unit).
    pub threshold: f64,
    /// NUL-terminated UTF-8: the reason (`DISCONNECTED`, `ERROR`), the user id
    /// (`MEMBER_JOINED`) or the alert's kind (`ALERT`: `"cpu"`,
    /// `"memory_growth"`, `"fps_low"`, `"latency_p99"`, `"soc_temp"`), cut at a
    /// character boundary to fit.
    pub text: [c_char; POSELINK_TEXT_CAPACITY],
    /// The pose frame (`POSE`).
    pub pose: PoselinkPose,
    /// The audio chunk (`AUDIO`).
    pub audio: PoselinkAudio,
}

impl PoselinkEvent {
    /// An event of kind `None` with every field zero.
    pub(crate) const fn empty() -> PoselinkEvent {
        PoselinkEvent {
            kind: PoselinkEventKind::None,
            room: 0,
            member: 0,
            role: PoselinkRole::Owner,
            leave_reason: PoselinkLeaveReason::None,
            error_code: 0,
            member_count: 0,
            seq: 0,
            attempt: 0,
            delay_ms: 0,
            count: 0,
            alert_kind: PoselinkAlertKind::None,
            reserved: 0,
            value: 0.0,
            threshold: 0.0,
            text: [0; POSELINK_TEXT_CAPACITY],
            pose: PoselinkPose {
                seq: 0,
                person: 0,
                capture_ts_us: 0,
                reserved: 0,
                landmarks: [[0.0; POSELINK_LANDMARK_VALUES]; POSELINK_LANDMARK_COUNT],
            },
            audio: PoselinkAudio {
                seq: 0,
                sample_rate: 0,
                capture_ts_us: 0,
                len: 0,
                channels: 0,
                reserved: 0,
                samples: [0; POSELINK_AUDIO_CAPACITY],
            },
        }
    }

    fn set_text(&mut self, s: &str) {
        let mut end = s.len().min(POSELINK_TEXT_CAPACITY - 1);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        for (dst, b) in self.text.iter_mut().zip(&s.as_bytes()[..end]) {
            *dst = *b as c_char;
        }
        self.text[end] = 0;
    }

    fn set_pose(&mut self, f: &PoseFrame) {
        self.pose.seq = f.seq;
        self.pose.person = f.person;
        self.pose.capture_ts_us = f.capture_ts_us;
        for (dst, lm) in self.pose.landmarks.iter_mut().zip(&f.landmarks) {
            *dst = lm.values();
        }
    }

    fn set_audio(&mut self, c: &AudioChunk) {
        let a = &mut self.audio;
        a.seq = c.seq;
        a.sample_rate = c.sample_rate;
        a.capture_ts_us = c.capture_ts_us;
        a.channels = c.channels;
        let pcm = c.pcm();
        a.len = pcm.len() as u16;
        a.samples[..pcm.len()].copy_from_slice(pcm);
    }

    /// Flattens an engine event into `self`, which must be `empty()`.
    pub(crate) fn fill(&mut self, event: &Event) {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.kind = match event {
            Event::Connected { member, hub_index } => {
                self.member = *member;
                self.count = *hub_index as u64;
                PoselinkEventKind::Connected
            }
            Event::Disconnected { reason } => {
                self.set_text(reason);
                PoselinkEventKind::Disconnected
            }
            Event::Reconnecting { attempt, delay } => {
                self.attempt = *attempt;
                self.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                PoselinkEventKind::Reconnecting
            }
            Event::RoomJoined { room, members } => {
                self.room = room.0;
                self.member_count = count(members.len());
                PoselinkEventKind::RoomJoined
            }
            Event::RoomRestored { room, members } => {
                self.room = room.0;
                self.member_count = count(members.len());
                PoselinkEventKind::RoomRestored
            }
            Event::RoomLeft { room, reason } => {
                self.room = room.0;
                self.leave_reason = PoselinkLeaveReason::from_reason(*reason);
                PoselinkEventKind::RoomLeft
            }
            Event::MemberJoined { room, member } => {
                self.room = room.0;
                self.member = member.member;
                self.role = PoselinkRole::from_role(member.role);
                self.set_text(&member.user);
                PoselinkEventKind::MemberJoined
            }
            Event::MemberLeft {
                room,
                member,
                reason,
            } => {
                self.room = room.0;
                self.member = *member;
                self.leave_reason = PoselinkLeaveReason::from_reason(*reason);
                PoselinkEventKind::MemberLeft
            }
            Event::Pose {
                room,
                sender,
                frame,
            } => {
                self.room = room.0;
                self.member = *sender;
                self.set_pose(frame);
                PoselinkEventKind::Pose
            }
            Event::Audio {
                room,
                sender,
                chunk,
            } => {
                self.room = room.0;
                self.member = *sender;
                self.set_audio(chunk);
                PoselinkEventKind::Audio
            }
            Event::AudioGap { room, sender, seq } => {
                self.room = room.0;
                self.member = *sender;
                self.seq = *seq;
                PoselinkEventKind::AudioGap
            }
            Event::AudioLost { room, count } => {
                self.room = room.0;
                self.count = *count;
                PoselinkEventKind::AudioLost
            }
            Event::Error { code, reason } => {
                self.error_code = u32::from(code.0);
                self.set_text(reason);
                PoselinkEventKind::Error
            }
            Event::RoleChanged { room, member, role } => {
                self.room = room.0;
                self.member = *member;
                self.role = PoselinkRole::from_role(*role);
                PoselinkEventKind::RoleChanged
            }
            Event::AudioAcked { room, seq } => {
                self.room = room.0;
                self.seq = *seq;
                PoselinkEventKind::AudioAcked
            }
            Event::Alert(a) => {
                self.alert_kind = PoselinkAlertKind::from_kind(a.kind);
                self.value = a.value;
                self.threshold = a.threshold;
                self.set_text(a.kind.name());
                PoselinkEventKind::Alert
            }
            _ => PoselinkEventKind::Other,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poselink::engine::{MemberSummary, RoomId};
    use poselink::proto::ErrorCode;
    use std::ffi::CStr;
    use std::time::Duration;

    fn flat(e: &Event) -> PoselinkEvent {
        let mut out = PoselinkEvent::empty();
        out.fill(e);
        out
    }

    fn text(e: &PoselinkEvent) -> &str {
        unsafe { CStr::from_ptr(e.text.as_ptr()) }.to_str().unwrap()
    }

    #[test]
    fn a_pose_is_copied_value_for_value() {
        let mut frame = PoseFrame::zeroed();
        frame.seq = 41;
        frame.person = 2;
        frame.capture_ts_us = 123_456_789;
        for (i, lm) in frame.landmarks.iter_mut().enumerate() {
            lm.x = i as f32 / 100.0;
            lm.y = 1.0 - i as f32 / 100.0;
            lm.z = -(i as f32) / 200.0;
            lm.visibility = 0.5;
            lm.presence = i as f32 / 33.0;
        }
        let e = flat(&Event::Pose {
            room: RoomId(3),
            sender: 9,
            frame,
        });
        assert_eq!(e.kind, PoselinkEventKind::Pose);
        assert_eq!((e.room, e.member), (3, 9));
        assert_eq!(
            (e.pose.seq, e.pose.person, e.pose.capture_ts_us),
            (41, 2, 123_456_789)
        );
        for (got, lm) in e.pose.landmarks.iter().zip(&frame.landmarks) {
            assert_eq!(*got, lm.values());
        }
        assert_eq!(e.audio.len, 0);
    }

    #[test]
    fn an_audio_chunk_is_copied_and_the_rest_stays_zero() {
        let mut c = AudioChunk::silence(16_000, 2, 320);
        c.seq = 77;
        c.capture_ts_us = 5;
        for (i, s) in c.samples.iter_mut().enumerate() {
            *s = i as i16 - 500;
        }
        let e = flat(&Event::Audio {
            room: RoomId(1),
            sender: 4,
            chunk: c,
        });
        assert_eq!(e.kind, PoselinkEventKind::Audio);
        assert_eq!(
            (e.audio.seq, e.audio.sample_rate, e.audio.channels),
            (77, 16_000, 2)
        );
        assert_eq!(e.audio.len, 320);
        assert_eq!(&e.audio.samples[..320], c.pcm());
        assert!(e.audio.samples[320..].iter().all(|s| *s == 0));
    }

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        // 255 ASCII bytes then a 3-byte character: it does not fit in 256.
        let reason = format!("{}€€", "a".repeat(255));
        let e = flat(&Event::Disconnected {
            reason: reason.clone(),
        });
        assert_eq!(e.kind, PoselinkEventKind::Disconnected);
        assert_eq!(text(&e), &reason[..255]);
        let e = flat(&Event::Error {
            code: ErrorCode::ROOM_FULL,
            reason: "the room is full".into(),
        });
        assert_eq!((e.kind, e.error_code), (PoselinkEventKind::Error, 7));
        assert_eq!(text(&e), "the room is full");
    }

    #[test]
    fn membership_events_carry_ids_roles_and_reasons() {
        let who = MemberSummary {
            member: 12,
            role: Role::Viewer,
            user: "browser-1".into(),
            stream: 0,
        };
        let e = flat(&Event::MemberJoined {
            room: RoomId(2),
            member: who.clone(),
        });
        assert_eq!(
            (e.kind, e.room, e.member, e.role),
            (PoselinkEventKind::MemberJoined, 2, 12, PoselinkRole::Viewer)
        );
        assert_eq!(text(&e), "browser-1");
        let e = flat(&Event::RoomJoined {
            room: RoomId(2),
            members: vec![who.clone(), who],
        });
        assert_eq!((e.kind, e.member_count), (PoselinkEventKind::RoomJoined, 2));
        let e = flat(&Event::MemberLeft {
            room: RoomId(2),
            member: 12,
            reason: LeaveReason::Kicked,
        });
        assert_eq!(e.leave_reason, PoselinkLeaveReason::Kicked);
        let e = flat(&Event::Reconnecting {
            attempt: 3,
            delay: Duration::from_millis(400),
        });
        assert_eq!((e.attempt, e.delay_ms), (3, 400));
        let e = flat(&Event::AudioLost {
            room: RoomId(1),
            count: 5,
        });
        assert_eq!((e.kind, e.count), (PoselinkEventKind::AudioLost, 5));
    }
}
