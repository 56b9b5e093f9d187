//! Simulations of the client session: a [`Session`] and a scripted fake hub
//! ([`hub::FakeHub`]) in memory, on a simulated clock — welcome and rejoin
//! after a reconnect, the backoff's schedule, the heartbeat, the audio replay
//! exactly once, keyframe requests both ways, and the failover across hubs. No sockets, no threads, no
//! sleeps; every loop is bounded.

mod edges;
mod failover;
mod hub;
mod wire_edges;

use hub::FakeHub;

use crate::client::{Event, RoomId, Session, SessionConfig, Transport};
use crate::proto::{AudioChunk, Kind, Message, NeedsKeyframe, PoseEncoder, PoseFrame, Role};
use crate::proto::{EncoderConfig, Header};

/// An owned copy of a session event, for assertions.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Connected(u16, bool),
    Disconnected(String),
    Reconnecting(u32, u64),
    Joined(RoomId, usize, bool, u32),
    Pose(u16, u32),
    Audio(u16, u32),
    RoundTrip,
    Other(String),
}

/// A session, the fake hub it talks to, and the simulated clock.
struct Sim {
    session: Session,
    hub: FakeHub,
    now: u64,
    /// Whether the hub's end of a connection is up.
    connected: bool,
    /// When the session last received bytes.
    last_in: u64,
    seen: Vec<Seen>,
    /// Hubs (by index) that refuse connections: the fake hub stands for
    /// every other one.
    down: Vec<usize>,
    /// Every connection attempt: (time, hub).
    connects: Vec<(u64, usize)>,
}

impl Sim {
    fn new(cfg: SessionConfig) -> Sim {
        Sim {
            session: Session::new(cfg, 0),
            hub: FakeHub::new(),
            now: 0,
            connected: false,
            last_in: 0,
            seen: Vec::new(),
            down: Vec::new(),
            connects: Vec::new(),
        }
    }

    /// One turn of a driver: timers, transport, bytes both ways, events.
    fn step(&mut self) {
        let now = self.now;
        self.session.handle_timeout(now);
        while let Some(t) = self.session.poll_transport() {
            match t {
                Transport::Connect => {
                    let hub = self.session.hub();
                    self.connects.push((now, hub));
                    if self.down.contains(&hub) {
                        self.session.handle_disconnected(now, "connection refused");
                        continue;
                    }
                    self.hub.reset_connection();
                    self.connected = true;
                    self.session.handle_connected(now);
                }
                Transport::Close => self.connected = false,
            }
        }
        if self.connected {
            let out = self.session.poll_transmit().to_vec();
            self.session.handle_written(out.len());
            self.hub.feed(now, &out);
            let back = std::mem::take(&mut self.hub.outbox);
            if !back.is_empty() {
                self.last_in = now;
            }
            let mut fed = 0;
            while fed < back.len() {
                fed += self.session.handle_data(now, &back[fed..]);
                self.drain();
            }
        }
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(e) = self.session.poll_event() {
            self.seen.push(match e {
                Event::Connected {
                    member, reconnect, ..
                } => Seen::Connected(member, reconnect),
                Event::Disconnected { reason } => Seen::Disconnected(reason.to_string()),
                Event::Reconnecting { attempt, delay_us } => Seen::Reconnecting(attempt, delay_us),
                Event::RoomJoined {
                    room,
                    members,
                    restored,
                    replayed,
                } => Seen::Joined(room, members.len(), restored, replayed),
                Event::Pose { sender, frame, .. } => Seen::Pose(sender, frame.seq),
                Event::Audio { sender, chunk, .. } => Seen::Audio(sender, chunk.seq),
                Event::RoundTrip { .. } => Seen::RoundTrip,
                other => Seen::Other(format!("{other:?}")),
            });
        }
    }

    /// Steps every `dt` µs for `span` µs.
    fn run(&mut self, span: u64, dt: u64) {
        let end = self.now + span;
        while self.now < end {
            self.now += dt;
            self.step();
        }
    }

    /// The transport breaks (a hub restart): what waited to be written is lost.
    fn drop_connection(&mut self) {
        self.connected = false;
        let pending = self.session.poll_transmit().len();
        self.session.handle_written(pending);
        self.session
            .handle_disconnected(self.now, "the hub closed the connection");
        self.drain();
    }

    fn take(&mut self) -> Vec<Seen> {
        std::mem::take(&mut self.seen)
    }

    /// Joins `room` as a viewer, lets the hub answer, forgets what surfaced,
    /// and returns the room's handle (what the hub's media carry).
    fn viewer_of(&mut self, room: &str) -> u16 {
        let id = self.session.join(self.now, room, Role::Viewer).unwrap();
        self.run(10_000, 1_000);
        self.take();
        self.session.room_handle(id).unwrap()
    }
}

fn cfg() -> SessionConfig {
    SessionConfig {
        seed: 7,
        ..SessionConfig::default()
    }
}

fn chunk(seq: u32) -> AudioChunk {
    let mut c = AudioChunk::silence(48_000, 1, 960);
    c.seq = seq;
    c.capture_ts_us = seq as u64 * 20_000;
    c
}

fn frame(seq: u32) -> PoseFrame {
    let mut f = PoseFrame::zeroed();
    f.seq = seq;
    f.capture_ts_us = seq as u64 * 16_000;
    for (i, lm) in f.landmarks.iter_mut().enumerate() {
        lm.x = 0.3 + (seq % 50) as f32 / 1000.0 + i as f32 / 200.0;
        lm.y = 0.5;
        lm.visibility = 1.0;
        lm.presence = 1.0;
    }
    f
}

#[test]
fn welcome_then_rejoin_after_a_reconnect_reports_the_room_restored() {
    let mut sim = Sim::new(cfg());
    let room = sim.session.join(0, "studio", Role::Member).unwrap();
    sim.run(10_000, 1_000);
    assert_eq!(
        sim.take(),
        [Seen::Connected(1, false), Seen::Joined(room, 2, false, 0)]
    );
    assert_eq!(sim.session.room_handle(room), Some(1));

    sim.drop_connection();
    let seen = sim.take();
    assert_eq!(
        seen[0],
        Seen::Disconnected("the hub closed the connection".into())
    );
    assert!(matches!(seen[1], Seen::Reconnecting(1, d) if (50_000..=100_000).contains(&d)));
    assert!(!sim.session.can_send());
    sim.run(200_000, 1_000);
    // A new member id and a new handle; the same local room.
    assert_eq!(
        sim.take(),
        [Seen::Connected(2, true), Seen::Joined(room, 2, true, 0)]
    );
    assert_eq!(sim.session.room_handle(room), Some(2));
    assert!(sim.session.can_send());
    assert_eq!(sim.hub.count(Kind::Hello), 2);
    assert_eq!(sim.hub.count(Kind::Join), 2);
}

#[test]
fn the_backoff_doubles_with_jitter_up_to_its_cap() {
    let mut sim = Sim::new(SessionConfig {
        reconnect_min_us: 100_000,
        reconnect_max_us: 800_000,
        ..cfg()
    });
    let mut attempts = Vec::new();
    let mut last_connect = None;
    for _ in 0..200_000 {
        sim.now += 1_000;
        sim.session.handle_timeout(sim.now);
        if let Some(Transport::Connect) = sim.session.poll_transport() {
            if let Some(t) = last_connect {
                attempts.push(sim.now - t);
            }
            last_connect = Some(sim.now);
            // Nothing listens: the connect fails at once.
            sim.session
                .handle_disconnected(sim.now, "connection refused");
        }
        sim.drain();
        if attempts.len() == 6 {
            break;
        }
    }
    let delays: Vec<(u32, u64)> = sim
        .take()
        .into_iter()
        .filter_map(|s| match s {
            Seen::Reconnecting(a, d) => Some((a, d)),
            _ => None,
        })
        .collect();
    let bases = [100_000u64, 200_000, 400_000, 800_000, 800_000, 800_000];
    for (i, base) in bases.iter().enumerate() {
        let (attempt, d) = delays[i];
        assert_eq!(attempt, i as u32 + 1);
        assert!((base / 2..=*base).contains(&d), "attempt {attempt}: {d}");
        // The next connect comes at the delay (to the simulated millisecond).
        assert!(attempts[i].abs_diff(d) <= 1_000, "{} vs {d}", attempts[i]);
    }
    assert!(
        !delays.iter().any(|s| matches!(s, (_, 0))),
        "never Disconnected before a session opened"
    );
}

#[test]
fn two_silent_heartbeat_intervals_mean_a_dead_connection() {
    let mut sim = Sim::new(SessionConfig {
        heartbeat_us: 100_000,
        ..cfg()
    });
    sim.run(10_000, 1_000);
    assert_eq!(sim.take(), [Seen::Connected(1, false)]);
    // Answered pings keep it alive.
    sim.run(500_000, 1_000);
    assert!(sim.take().iter().all(|s| *s == Seen::RoundTrip));
    let pings = sim.hub.count(Kind::Ping);
    assert!((4..=6).contains(&pings), "{pings}");

    sim.hub.silent = true;
    let mut dead_at = None;
    for _ in 0..1_000 {
        sim.now += 1_000;
        sim.step();
        if sim.seen.iter().any(|s| matches!(s, Seen::Disconnected(_))) {
            dead_at = Some(sim.now);
            break;
        }
    }
    let dead_at = dead_at.expect("found dead");
    // Dead after two intervals without a byte (to the simulated millisecond).
    let silence = dead_at - sim.last_in;
    assert!((200_001..=201_000).contains(&silence), "{silence}");
    assert!(!sim.connected, "the session asked the driver to close");
    assert!(
        sim.hub.count(Kind::Ping) > pings,
        "pings went on while silent"
    );
    let seen = sim.take();
    assert_eq!(
        seen[0],
        Seen::Disconnected("no answer from the hub for two heartbeat intervals".into())
    );
}

#[test]
fn audio_is_replayed_after_a_reconnect_exactly_once_and_readdressed() {
    let mut sim = Sim::new(cfg());
    let room = sim.session.join(0, "talk", Role::Member).unwrap();
    sim.run(10_000, 1_000);
    sim.take();
    // Chunks 1..=20 go out and are acknowledged; then the hub stops
    // acknowledging, 21..=30 reach it, and 31..=35 are still in the transmit
    // buffer when the connection breaks.
    for seq in 1..=20 {
        sim.session.send_audio(room, &chunk(seq)).unwrap();
        sim.run(2_000, 1_000);
    }
    sim.hub.ack_audio = false;
    for seq in 21..=30 {
        sim.session.send_audio(room, &chunk(seq)).unwrap();
        sim.run(2_000, 1_000);
    }
    for seq in 31..=35 {
        sim.session.send_audio(room, &chunk(seq)).unwrap();
    }
    let (old_member, old_handle) = (sim.hub.member, sim.session.room_handle(room).unwrap());
    sim.drop_connection();
    assert_eq!(
        sim.session.send_audio(room, &chunk(36)).err(),
        Some(crate::client::SendError::NotConnected)
    );
    sim.hub.ack_audio = true;
    sim.run(300_000, 1_000);
    let seen = sim.take();
    assert!(seen.contains(&Seen::Joined(room, 2, true, 15)), "{seen:?}");
    let new_handle = sim.session.room_handle(room).unwrap();
    // After the restore the stream goes on.
    for seq in 36..=40 {
        sim.session.send_audio(room, &chunk(seq)).unwrap();
        sim.run(2_000, 1_000);
    }
    // One more reconnect: everything was acknowledged, nothing is replayed.
    sim.drop_connection();
    sim.run(300_000, 1_000);
    assert!(
        sim.take()
            .iter()
            .any(|s| matches!(s, Seen::Joined(_, _, true, 0)))
    );

    let audio = sim.hub.audio();
    // What the hub saw, de-duplicated by sequence number: every chunk, once.
    let mut seqs: Vec<u32> = audio.iter().map(|a| a.0).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>(), "none lost");
    // Replays: 21..=35 once each (21..=30 as duplicates of what arrived), on
    // the new handle and member id.
    let replays: Vec<&(u32, u16, u16)> = audio.iter().filter(|a| a.2 != old_member).collect();
    let replayed: Vec<u32> = replays.iter().map(|a| a.0).filter(|s| *s <= 35).collect();
    assert_eq!(
        replayed,
        (21..=35).collect::<Vec<_>>(),
        "each once, in order"
    );
    assert!(
        replays
            .iter()
            .all(|a| a.1 == new_handle && a.1 != old_handle)
    );
    assert_eq!(
        audio.iter().filter(|a| a.0 <= 20).count(),
        20,
        "acknowledged: never again"
    );
}

#[test]
fn needs_keyframe_forces_the_encoder() {
    let mut sim = Sim::new(cfg());
    let room = sim.session.join(0, "pose", Role::Member).unwrap();
    sim.run(10_000, 1_000);
    for seq in 1..=5 {
        sim.session.send_pose(room, &frame(seq)).unwrap();
        sim.run(1_000, 1_000);
    }
    let handle = sim.session.room_handle(room).unwrap();
    let ask = Message::NeedsKeyframe(NeedsKeyframe {
        publisher: sim.hub.member,
        person: 0,
    });
    sim.hub.send(
        Header::new(Kind::NeedsKeyframe, handle, 0, 0, sim.now),
        &ask,
    );
    sim.run(1_000, 1_000);
    for seq in 6..=7 {
        sim.session.send_pose(room, &frame(seq)).unwrap();
        sim.run(1_000, 1_000);
    }
    let kinds: Vec<bool> = sim
        .hub
        .got
        .iter()
        .filter(|g| g.header.kind == Kind::Pose)
        .map(|g| g.keyframe)
        .collect();
    assert_eq!(kinds, [true, false, false, false, false, true, false]);
}

#[test]
fn an_undecodable_delta_asks_for_a_keyframe_once() {
    let mut sim = Sim::new(cfg());
    let handle = sim.viewer_of("watch");
    // Another member's stream: its keyframe is lost on the way, deltas arrive.
    let mut enc = PoseEncoder::new(EncoderConfig::default());
    let mut wire = vec![[0u8; 2048]; 6];
    let mut lens = Vec::new();
    for (i, w) in wire.iter_mut().enumerate() {
        lens.push(enc.encode(&frame(i as u32 + 1), handle, 999, w).unwrap());
    }
    for k in 1..=3 {
        sim.hub.send_bytes(&wire[k][..lens[k]]);
        sim.run(1_000, 1_000);
    }
    let asked: Vec<(u16, u32)> = sim.hub.got.iter().filter_map(|g| g.asked).collect();
    assert_eq!(asked, [(999, 0)], "asked once for the outage");
    assert!(sim.take().is_empty(), "nothing decoded yet");
    // The publisher answers with a keyframe: decoding resumes.
    enc.force_keyframe();
    let n = enc.encode(&frame(7), handle, 999, &mut wire[4]).unwrap();
    sim.hub.send_bytes(&wire[4][..n]);
    let n = enc.encode(&frame(8), handle, 999, &mut wire[5]).unwrap();
    sim.hub.send_bytes(&wire[5][..n]);
    sim.run(1_000, 1_000);
    assert_eq!(sim.take(), [Seen::Pose(999, 7), Seen::Pose(999, 8)]);
}

#[test]
fn received_audio_replayed_by_a_publisher_comes_out_once() {
    let mut sim = Sim::new(cfg());
    let handle = sim.viewer_of("listen");
    let mut compressor = crate::proto::Compressor::new(usize::MAX);
    let mut wire = [0u8; 4096];
    for seq in [1, 2, 3, 2, 3, 4] {
        let n = crate::proto::encode_audio(&chunk(seq), handle, 999, &mut compressor, &mut wire)
            .unwrap();
        sim.hub.send_bytes(&wire[..n]);
    }
    sim.run(1_000, 1_000);
    let seqs: Vec<Seen> = sim.take();
    assert_eq!(
        seqs,
        (1..=4).map(|s| Seen::Audio(999, s)).collect::<Vec<_>>()
    );
}

/// Board audio (Opus in 60 ms packets of three chunks): a chunk that does not
/// follow the held ones sends them first as a shorter packet, so no audio
/// waits behind a gap and packets stay in order.
#[cfg(feature = "opus")]
#[test]
fn a_chunk_after_a_gap_sends_the_held_chunks_first() {
    let mut sim = Sim::new(SessionConfig {
        encoder: crate::proto::EncoderConfig {
            audio: crate::proto::AudioEncoding::board(),
            ..crate::proto::EncoderConfig::default()
        },
        ..cfg()
    });
    let room = sim.session.join(0, "talk", Role::Member).unwrap();
    sim.run(10_000, 1_000);
    sim.take();
    // 1 and 2 are held (a packet takes three); 5 does not follow them.
    for seq in [1, 2] {
        let sent = sim.session.send_audio(room, &chunk(seq)).unwrap();
        assert_eq!(sent.bytes, 0, "held");
    }
    let sent = sim.session.send_audio(room, &chunk(5)).unwrap();
    assert!(sent.bytes > 0, "the held chunks went out as a packet");
    sim.run(2_000, 1_000);
    assert_eq!(sim.hub.audio().len(), 1, "one packet: chunks 1 and 2");
    // 6 and 7 complete the packet that 5 began.
    for seq in [6, 7] {
        sim.session.send_audio(room, &chunk(seq)).unwrap();
    }
    sim.run(2_000, 1_000);
    let seqs: Vec<u32> = sim.hub.audio().iter().map(|a| a.0).collect();
    assert_eq!(seqs.len(), 2, "{seqs:?}");
    assert!(seqs[0] < seqs[1], "in order: {seqs:?}");
}
