//! The joint simulation: the real hub core and real edge engines — each an
//! app-side [`EngineHandle`] and the engine's sans-IO core with its client
//! session — wired together in memory on one simulated clock. The harness does
//! what the two drivers do (move bytes, open and close transports, give the
//! time) and nothing else, so every protocol decision on both sides is the
//! shipped code's.
//!
//! The network: bytes written in one step arrive in the next (one step, 1 ms,
//! each way), so a connection cut between two steps loses what was in flight
//! in both directions. Faults: [`World::cut`] (a transport breaks: both ends
//! notice at once), [`World::partition`] (bytes vanish and connects fail, but
//! neither end is told: only timeouts find it), and [`World::hub_down`] /
//! [`World::hub_up`] (the hub process dies and a new one starts with no state).
//! A world may run several independent hubs ([`World::with_hubs`]); every
//! engine is then configured with all of them, in order, and fails over
//! across them ([`World::hub_down_at`] kills one).
//! No sockets, threads or sleeps; every loop is bounded by a count.

mod failover;
mod held_loop;
mod liveness;
mod owner;
mod replay;
mod streams;

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::mpsc;

use crate::engine::{
    EdgeEngine, EngineConfig, EngineCore, EngineHandle, Event, JoinedRoom, RoomId,
};
use crate::hub::HubConfig;
use crate::hub::core::{Closed, ConnId, Core, Event as HubEvent};
use crate::proto::{AudioChunk, Role};
use crate::token::{Claims, Grant, TokenKey};

/// The secret of the simulated hub's tokens.
const SECRET: &str = "joint-simulation-secret-0123456789abcdef";
/// The Unix time, seconds, when a simulation starts.
const UNIX_START: u64 = 1_800_000_000;
/// The monotonic time, µs, when a simulation starts.
const T0: u64 = 5_000_000;
/// One step of simulated time: the network's one-way delay.
pub const STEP_US: u64 = 1_000;

/// A connection between an engine and the hub core.
struct Link {
    /// The hub (index) the connection is with.
    hub: usize,
    conn: ConnId,
    /// Written by the engine last step / this step.
    to_hub: Vec<u8>,
    to_hub_next: Vec<u8>,
    /// Written by the hub last step / this step.
    to_engine: Vec<u8>,
    to_engine_next: Vec<u8>,
}

/// One engine of the world, as its app and its driver see it.
pub struct SimEngine {
    /// The app's handle: `send_audio`, `send_pose`, metrics.
    pub handle: EngineHandle,
    core: EngineCore,
    link: Option<Link>,
    /// Every event the app was given, in order.
    pub events: Vec<Event>,
    partitioned: bool,
    name: String,
}

impl SimEngine {
    /// The audio chunks' sequence numbers the app received, in order.
    pub fn audio_seqs(&self) -> Vec<u32> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Audio { chunk, .. } => Some(chunk.seq),
                _ => None,
            })
            .collect()
    }

    /// How many events match `f`.
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }
}

/// The hub core, the engines, and the clock.
pub struct World {
    /// The simulated monotonic time, µs.
    pub now: u64,
    /// The same time for the engines' handles (their hand-over stamps), set
    /// at every step.
    clock: poselink_hal::MockClock,
    /// The hubs, by index (`None` while down).
    hubs: Vec<Option<Core>>,
    hub_cfg: HubConfig,
    key: TokenKey,
    /// The engines, by index.
    pub engines: Vec<SimEngine>,
    /// Connections an engine dropped across a partition: the hub never heard,
    /// so its end stays open (writing into the void) until it times them out.
    /// (hub, connection).
    orphans: Vec<(usize, ConnId)>,
}

impl World {
    /// A secured hub (tokens required) with a 5 s room grace period.
    pub fn new() -> World {
        World::with_hubs(1)
    }

    /// `n` independent secured hubs (as [`new`](Self::new)'s), all up; the
    /// engines added get all of them, in order, as their hub list.
    pub fn with_hubs(n: usize) -> World {
        let hub_cfg = HubConfig {
            dev: false,
            secret: Some(SECRET.into()),
            max_connections: 32,
            max_rooms: 16,
            ..HubConfig::local_dev()
        };
        let mut w = World {
            now: T0,
            clock: poselink_hal::MockClock::new(T0),
            hubs: (0..n).map(|_| None).collect(),
            key: TokenKey::hs256(SECRET.as_bytes()).unwrap(),
            hub_cfg,
            engines: Vec::new(),
            orphans: Vec::new(),
        };
        for i in 0..n {
            w.hub_up_at(i);
        }
        w
    }

    /// The simulated Unix time, µs.
    fn unix_us(&self) -> u64 {
        UNIX_START * 1_000_000 + (self.now - T0)
    }

    /// The (first) hub's core (panics while it is down).
    pub fn hub(&self) -> &Core {
        self.hub_at(0)
    }

    /// Hub `i`'s core (panics while it is down).
    pub fn hub_at(&self, i: usize) -> &Core {
        self.hubs[i].as_ref().expect("the hub is up")
    }

    /// Adds an engine for user `user`, granted `room` up to `role`, with
    /// `cfg`'s settings (its hub URL and token are the world's).
    pub fn engine(&mut self, user: &str, room: &str, role: Role, cfg: EngineConfig) -> usize {
        let claims = Claims {
            sub: user.into(),
            exp: self.unix_us() / 1_000_000 + 3_600,
            rooms: vec![Grant {
                room: room.into(),
                role,
                create: true,
            }],
        };
        let urls = (0..self.hubs.len()).map(|i| format!("ws://hub{i}.sim:7700/"));
        let cfg = EngineConfig {
            token: self.key.mint(&claims).unwrap(),
            // This core reads no /proc; the simulation has no driver to.
            system_stats: false,
            ..cfg.with_hubs(urls)
        };
        let seed = 0x5eed_0000 + self.engines.len() as u64;
        let (handle, core) =
            EdgeEngine::in_memory(&cfg, self.clock.clone(), seed).expect("an engine");
        self.engines.push(SimEngine {
            handle,
            core,
            link: None,
            events: Vec::new(),
            partitioned: false,
            name: user.into(),
        });
        self.engines.len() - 1
    }

    /// Engine `e` joins `room` as `role`, waiting (in simulated time, at most
    /// 5 s) for the hub's answer.
    pub fn join(&mut self, e: usize, room: &str, role: Role) -> RoomId {
        self.join_with_members(e, room, role).id
    }

    /// [`join`](Self::join), returning the room with the members it had.
    pub fn join_with_members(&mut self, e: usize, room: &str, role: Role) -> JoinedRoom {
        let rx = self.engines[e].handle.join_room_later(room, role);
        for _ in 0..5_000 {
            self.step();
            match rx.try_recv() {
                Ok(r) => return r.expect("joined"),
                Err(mpsc::TryRecvError::Empty) => {}
                Err(e) => panic!("the engine dropped the join: {e}"),
            }
        }
        panic!("{}: no answer to the join of {room}", self.engines[e].name);
    }

    /// Steps until the engine's loop answers on `rx` (at most 5 s simulated).
    pub fn answer<T>(&mut self, rx: mpsc::Receiver<T>) -> T {
        for _ in 0..5_000 {
            self.step();
            if let Ok(r) = rx.try_recv() {
                return r;
            }
        }
        panic!("no answer from the engine's loop");
    }

    /// Runs `steps` steps.
    pub fn run(&mut self, steps: u64) {
        for _ in 0..steps {
            self.step();
        }
    }

    /// Runs steps until `done` (checked after each), at most `max` of them.
    pub fn run_until(&mut self, max: u64, mut done: impl FnMut(&World) -> bool) -> bool {
        for _ in 0..max {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }

    // ---- faults -------------------------------------------------------------------

    /// Engine `e`'s transport breaks: what was in flight is lost, and both ends
    /// are told (a reset).
    pub fn cut(&mut self, e: usize) {
        let now = self.now;
        let eng = &mut self.engines[e];
        if let Some(link) = eng.link.take() {
            if let Some(hub) = self.hubs[link.hub].as_mut() {
                hub.handle_closed(now, link.conn, Closed::ReadFailed);
            }
            eng.core
                .session
                .handle_disconnected(now, "the connection was reset");
        }
    }

    /// Between engine `e` and the hub, bytes vanish and connects fail (`on`),
    /// or flow again; neither end is told.
    pub fn partition(&mut self, e: usize, on: bool) {
        self.engines[e].partitioned = on;
    }

    /// The (first) hub process dies: every transport ends, and every state
    /// with it.
    pub fn hub_down(&mut self) {
        self.hub_down_at(0);
    }

    /// Hub `i`'s process dies (a SIGKILL): its transports end (the engines'
    /// ends are reset), and its state with it.
    pub fn hub_down_at(&mut self, i: usize) {
        let now = self.now;
        self.hubs[i] = None;
        self.orphans.retain(|o| o.0 != i);
        for eng in &mut self.engines {
            if eng.link.as_ref().is_some_and(|l| l.hub == i) {
                eng.link = None;
                eng.core
                    .session
                    .handle_disconnected(now, "the hub closed the connection");
            }
        }
    }

    /// A new (first) hub process starts (no rooms, no sessions).
    pub fn hub_up(&mut self) {
        self.hub_up_at(0);
    }

    /// A new process of hub `i` starts (no rooms, no sessions).
    pub fn hub_up_at(&mut self, i: usize) {
        let key = TokenKey::hs256(SECRET.as_bytes()).unwrap();
        self.hubs[i] = Some(
            Core::new(&self.hub_cfg, Some(key), self.now, self.unix_us())
                .expect("a valid configuration"),
        );
    }

    // ---- one step -------------------------------------------------------------------

    /// One millisecond: each engine's driver turn, then the hub's, then the
    /// bytes written move one hop.
    pub fn step(&mut self) {
        self.now += STEP_US;
        self.clock.set(self.now);
        for e in 0..self.engines.len() {
            self.engine_turn(e);
        }
        for i in 0..self.hubs.len() {
            self.hub_turn(i);
        }
        for eng in &mut self.engines {
            if let Some(l) = eng.link.as_mut() {
                std::mem::swap(&mut l.to_hub, &mut l.to_hub_next);
                std::mem::swap(&mut l.to_engine, &mut l.to_engine_next);
                if eng.partitioned {
                    l.to_hub.clear();
                    l.to_engine.clear();
                }
            }
        }
    }

    /// What the engine's driver does in one turn of its loop.
    fn engine_turn(&mut self, e: usize) {
        let now = self.now;
        let eng = &mut self.engines[e];
        eng.core.take_input(now);
        if let Some(l) = eng.link.as_mut() {
            let bytes = std::mem::take(&mut l.to_engine);
            let mut fed = 0;
            for _ in 0..10_000 {
                if fed == bytes.len() {
                    break;
                }
                let buf = eng.core.session.receive_buffer();
                if buf.is_empty() {
                    eng.core.take_events(now);
                    continue;
                }
                let n = buf.len().min(bytes.len() - fed);
                buf[..n].copy_from_slice(&bytes[fed..fed + n]);
                eng.core.session.handle_received(now, n);
                eng.core.take_events(now);
                fed += n;
            }
            assert_eq!(fed, bytes.len(), "the session stopped taking bytes");
        }
        eng.core.tick(now);
        while let Some(t) = eng.core.session.poll_transport() {
            if let Some(old) = eng.link.take()
                && let Some(hub) = self.hubs[old.hub].as_mut()
            {
                if eng.partitioned {
                    self.orphans.push((old.hub, old.conn));
                } else {
                    hub.handle_closed(now, old.conn, Closed::Peer);
                }
            }
            if t == crate::client::Transport::Connect {
                let peer: SocketAddr = format!("10.0.1.{}:5{e:04}", e + 1).parse().unwrap();
                let target = eng.core.session.hub();
                let opened = match self.hubs[target].as_mut() {
                    Some(hub) if !eng.partitioned => hub.handle_open(now, peer, false).ok(),
                    _ => None,
                };
                match opened {
                    Some(conn) => {
                        eng.link = Some(Link {
                            hub: target,
                            conn,
                            to_hub: Vec::new(),
                            to_hub_next: Vec::new(),
                            to_engine: Vec::new(),
                            to_engine_next: Vec::new(),
                        });
                        eng.core.session.handle_connected(now);
                    }
                    None => eng
                        .core
                        .session
                        .handle_disconnected(now, "connection refused"),
                }
            }
        }
        if let Some(l) = eng.link.as_mut() {
            let out = eng.core.session.poll_transmit();
            l.to_hub_next.extend_from_slice(out);
            let n = out.len();
            eng.core.session.handle_written(n);
        }
        while let Some(ev) = eng.handle.poll_event() {
            eng.events.push(ev);
        }
    }

    /// One write per hub connection with output (the whole of it: the
    /// simulated socket is never full).
    fn write_hub_output(
        i: usize,
        hub: &mut Core,
        engines: &mut [SimEngine],
        orphans: &[(usize, ConnId)],
        now: u64,
    ) {
        while let Some(conn) = hub.poll_output() {
            if orphans.contains(&(i, conn)) {
                let mut slices = [IoSlice::new(&[]); 64];
                let k = hub.poll_transmit(conn, &mut slices);
                let n = slices[..k].iter().map(|s| s.len()).sum();
                hub.handle_written(now, conn, n);
                continue;
            }
            let Some(l) = engines
                .iter_mut()
                .filter_map(|e| e.link.as_mut())
                .find(|l| l.hub == i && l.conn == conn)
            else {
                continue;
            };
            let mut slices = [IoSlice::new(&[]); 64];
            let k = hub.poll_transmit(conn, &mut slices);
            let mut n = 0;
            for s in &slices[..k] {
                l.to_engine_next.extend_from_slice(s);
                n += s.len();
            }
            hub.handle_written(now, conn, n);
        }
    }

    /// What hub `i`'s driver does in one turn: reads, timers, transport
    /// events, one write per connection with output.
    fn hub_turn(&mut self, i: usize) {
        let now = self.now;
        let Some(hub) = self.hubs[i].as_mut() else {
            return;
        };
        for e in 0..self.engines.len() {
            let Some(l) = self.engines[e].link.as_mut().filter(|l| l.hub == i) else {
                continue;
            };
            let conn = l.conn;
            let bytes = std::mem::take(&mut l.to_hub);
            let mut fed = 0;
            for _ in 0..10_000 {
                if fed == bytes.len() {
                    break;
                }
                let buf = hub.recv_buffer(conn);
                if buf.is_empty() {
                    break; // closing: the core takes nothing more
                }
                let n = buf.len().min(bytes.len() - fed);
                buf[..n].copy_from_slice(&bytes[fed..fed + n]);
                let mut more = hub.handle_received(now, conn, n);
                // A receiver's queue filled: the hub's output is written
                // first, as its driver does, then the rest of these bytes.
                for _ in 0..10_000 {
                    if !more {
                        break;
                    }
                    Self::write_hub_output(i, hub, &mut self.engines, &self.orphans, now);
                    more = hub.handle_received(now, conn, 0);
                }
                assert!(!more, "the hub held bytes back 10 000 times");
                fed += n;
            }
        }
        if hub.poll_timeout().is_some_and(|t| t <= now) {
            hub.handle_timeout(now);
        }
        Self::write_hub_output(i, hub, &mut self.engines, &self.orphans, now);
        while let Some(ev) = hub.poll_event() {
            let conn = ev.conn();
            if let Some(k) = self.orphans.iter().position(|&c| c == (i, conn)) {
                // A shut write half gets no answer across the partition: the
                // core's linger ends it (a `Close` later).
                if matches!(ev, HubEvent::Close(_)) {
                    self.orphans.swap_remove(k);
                }
                continue;
            }
            let Some(eng) = self.engines.iter_mut().find(|e| {
                e.link
                    .as_ref()
                    .is_some_and(|l| l.hub == i && l.conn == conn)
            }) else {
                continue;
            };
            // The close frame was queued before: it goes, then the transport ends.
            let mut link = eng.link.take().expect("found by its link");
            let mut slices = [IoSlice::new(&[]); 64];
            let k = hub.poll_transmit(conn, &mut slices);
            for s in &slices[..k] {
                link.to_engine_next.extend_from_slice(s);
            }
            if matches!(ev, HubEvent::Shutdown(_)) {
                hub.handle_closed(now, conn, Closed::Peer);
            }
            // The engine reads what came before the end (the close frame last).
            let mut rest = std::mem::take(&mut link.to_engine);
            rest.extend_from_slice(&link.to_engine_next);
            let mut fed = 0;
            while fed < rest.len() {
                let took = eng.core.session.handle_data(now, &rest[fed..]);
                eng.core.take_events(now);
                if took == 0 {
                    break;
                }
                fed += took;
            }
            eng.core
                .session
                .handle_disconnected(now, "the hub closed the connection");
        }
    }
}

/// A 20 ms mono chunk at 48 kHz with a recognisable ramp.
pub fn chunk(seq: u32, ts_us: u64) -> AudioChunk {
    let mut c = AudioChunk {
        seq,
        capture_ts_us: ts_us,
        sample_rate: 48_000,
        channels: 1,
        len: 960,
        ..AudioChunk::default()
    };
    for (k, s) in c.samples[..960].iter_mut().enumerate() {
        *s = (seq as i32 * 31 + k as i32) as i16;
    }
    c
}
