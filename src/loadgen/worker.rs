//! One load thread: connects its share of the members (blocking, one after the
//! other, see [`super::setup`]), waits for the start, then runs one `mio` poll
//! over all of them — sends as their deadlines come, receives as the hub
//! delivers — until every message owed to its members has arrived or the wait
//! for stragglers ends.
//!
//! Each member is a [`Session`] of the client library (the engine's own), set
//! up for a load: it encodes pose frames and audio in place in its transmit
//! buffer, and on receive parses frames in place and reads only the envelope
//! ([`Receive::Headers`](crate::client::Receive::Headers)): the room, the
//! sender and the capture time that the latency is measured from. No replay
//! window, no pings: the load generator measures the hub, not itself. Per
//! connection that is a 16 KiB receive buffer (reads take up to its free
//! space), a 16 KiB transmit buffer and one pose encoder, all allocated while
//! connecting; nothing is allocated while the load runs.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::mpsc;
use std::time::Duration;

use crate::monitor::PreciseHistogram;
use mio::{Events, Interest, Poll, Token};
use poselink_hal::{
    AudioBlock, AudioSource, Clock, MonotonicClock, PoseSample, PoseSource, SyntheticAudio,
    SyntheticConfig, SyntheticPose,
};

use super::setup::{self, Member, mix};
use super::{AUDIO_HZ, LoadConfig, LoadError, LoadErrorKind, Schedule};
use crate::client::{Event, SendError};
use crate::proto::{AudioChunk, LANDMARK_COUNT, PoseFrame};

/// Seconds of synthetic motion each thread cycles through.
const MOTION_SECONDS: u32 = 4;
/// Audio chunks of the synthetic tone cycled through (100 ms of a 440 Hz tone
/// is a whole number of cycles).
const AUDIO_CLIP: usize = 5;

/// From the load's owner to a worker.
pub(super) enum Command {
    /// Start the load; the schedule starts at this `CLOCK_MONOTONIC` time, µs.
    Start(u64),
    /// Close every connection and end the thread.
    Close,
}

/// From a worker to the load's owner.
pub(super) enum WorkerMsg {
    /// Every member of the worker is connected and joined (or the first failure).
    Ready(Result<(), LoadError>),
    /// The load is over.
    Done(Box<WorkerReport>),
}

/// What one worker counted.
#[derive(Default)]
pub(super) struct WorkerReport {
    pub pose_sent: u64,
    pub audio_sent: u64,
    pub unsent: u64,
    pub pose_bytes: u64,
    pub audio_bytes: u64,
    pub delivered: u64,
    pub pose_delivered: u64,
    pub misrouted: u64,
    pub latency: Box<PreciseHistogram>,
    pub send_lag: Box<PreciseHistogram>,
    pub hub_errors: u64,
    pub connections_lost: u64,
    pub first_problem: Option<String>,
    pub cpu_us: u64,
    pub end_us: u64,
}

/// A load thread's state.
pub(super) struct Worker {
    cfg: LoadConfig,
    clock: MonotonicClock,
    poll: Poll,
    members: Vec<Member>,
    pose: Schedule,
    audio: Schedule,
    motion: Vec<[[f32; 5]; LANDMARK_COUNT]>,
    audio_clip: Vec<AudioChunk>,
    /// Deliveries owed to this thread's members.
    expected: u64,
    report: WorkerReport,
}

impl Worker {
    /// The thread's body: connect, report, wait for the start, run, report, wait
    /// for the close.
    pub(super) fn main(
        addrs: &[SocketAddr],
        cfg: LoadConfig,
        range: Range<usize>,
        commands: mpsc::Receiver<Command>,
        results: mpsc::Sender<WorkerMsg>,
    ) {
        let mut w = match Worker::connect(addrs, cfg, range) {
            Ok(w) => {
                let _ = results.send(WorkerMsg::Ready(Ok(())));
                w
            }
            Err(e) => {
                let _ = results.send(WorkerMsg::Ready(Err(e)));
                return;
            }
        };
        match commands.recv() {
            Ok(Command::Start(start_us)) => {
                let report = w.run(start_us);
                let _ = results.send(WorkerMsg::Done(Box::new(report)));
            }
            Ok(Command::Close) | Err(_) => return,
        }
        // Hold the connections until the owner has read the hub's figures.
        let _ = commands.recv();
    }

    fn connect(
        addrs: &[SocketAddr],
        cfg: LoadConfig,
        range: Range<usize>,
    ) -> Result<Self, LoadError> {
        let io_err =
            |e: io::Error| LoadError::new(LoadErrorKind::Io, format!("cannot create a poll: {e}"));
        let poll = Poll::new().map_err(io_err)?;
        let seed = cfg.seed ^ mix(range.start as u64);
        let mut w = Worker {
            clock: MonotonicClock::new(),
            poll,
            members: Vec::with_capacity(range.len()),
            pose: Schedule::new(cfg.hz, 0, &[]),
            audio: Schedule::new(AUDIO_HZ, 0, &[]),
            motion: Vec::new(),
            audio_clip: Vec::new(),
            expected: 0,
            report: WorkerReport {
                pose_sent: 0,
                audio_sent: 0,
                unsent: 0,
                pose_bytes: 0,
                audio_bytes: 0,
                delivered: 0,
                pose_delivered: 0,
                misrouted: 0,
                latency: PreciseHistogram::boxed(),
                send_lag: PreciseHistogram::boxed(),
                hub_errors: 0,
                connections_lost: 0,
                first_problem: None,
                cpu_us: 0,
                end_us: 0,
            },
            cfg,
        };
        w.make_media(seed);
        // One TLS configuration for the thread's members (the CA parsed once).
        let tls = match &w.cfg.tls_ca {
            None => None,
            Some(pem) => Some(
                crate::tls::client_config_from_pem(Some(pem.as_bytes()), false)
                    .map_err(|e| LoadError::new(LoadErrorKind::Config, format!("TLS: {e}")))?,
            ),
        };
        for g in range.clone() {
            // Member k of each room on hub k mod N.
            let addr = addrs[(g % w.cfg.members) % addrs.len()];
            let m = setup::open_member(&w.cfg, &w.clock, addr, g, w.motion.len(), tls.as_ref())?;
            w.members.push(m);
        }
        for (i, m) in w.members.iter_mut().enumerate() {
            w.poll
                .registry()
                .register(
                    m.stream.socket(),
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| {
                    LoadError::new(LoadErrorKind::Io, format!("cannot register a socket: {e}"))
                })?;
        }
        // Each publisher's phase within the period, from the seed: independent
        // cameras do not tick together.
        let period = 1_000_000 / u64::from(w.cfg.hz);
        let pose: Vec<(u64, u32)> = range
            .clone()
            .enumerate()
            .map(|(i, g)| (mix(w.cfg.seed ^ ((g as u64) << 1)) % period, i as u32))
            .collect();
        let audio: Vec<(u64, u32)> = range
            .clone()
            .enumerate()
            .map(|(i, g)| {
                (
                    mix(w.cfg.seed ^ (((g as u64) << 1) | 1)) % (1_000_000 / u64::from(AUDIO_HZ)),
                    i as u32,
                )
            })
            .collect();
        w.pose = Schedule::new(w.cfg.hz, w.cfg.pose_frames(), &pose);
        w.audio = Schedule::new(AUDIO_HZ, w.cfg.audio_chunks(), &audio);
        w.expected = range.len() as u64
            * (w.cfg.members as u64 - 1)
            * (w.cfg.pose_frames() + w.cfg.audio_chunks());
        Ok(w)
    }

    /// The motion clip (the hal's synthetic person at F fps) and the audio clip.
    fn make_media(&mut self, seed: u64) {
        let mut source = SyntheticPose::new(SyntheticConfig {
            seed,
            fps: self.cfg.hz as f32,
            ..SyntheticConfig::default()
        });
        let mut sample = PoseSample::zeroed();
        let frames = (MOTION_SECONDS * self.cfg.hz).clamp(1, 2000);
        self.motion = (0..frames)
            .map(|_| {
                let Ok(()) = source.next_pose(&mut sample);
                sample.landmarks
            })
            .collect();
        let mut tone = SyntheticAudio::new(0);
        let mut block = AudioBlock::zeroed();
        self.audio_clip = (0..AUDIO_CLIP)
            .map(|_| {
                let Ok(()) = tone.next_audio(&mut block);
                let mut chunk = AudioChunk::silence(block.sample_rate, block.channels, 0);
                let pcm = block.samples();
                let n = pcm.len().min(chunk.samples.len());
                chunk.samples[..n].copy_from_slice(&pcm[..n]);
                chunk.len = n as u16;
                chunk
            })
            .collect();
    }

    /// The load: sends on schedule and receives until every message owed has
    /// arrived or the wait for stragglers is over.
    fn run(&mut self, start_us: u64) -> WorkerReport {
        let cpu0 = poselink_hal::clock::thread_cpu_us().unwrap_or(0);
        let mut events = Events::with_capacity(1024);
        let drain = self.cfg.drain.as_micros() as u64;
        // The wait for stragglers counts from the last send as made, which is
        // later than its deadline when the generator fell behind.
        let mut drain_until = None;
        let mut now;
        loop {
            now = self.clock.now_us();
            self.send_due(start_us, now);
            if self.pose.done() && self.audio.done() {
                let until = *drain_until.get_or_insert(now + drain);
                if self.report.delivered >= self.expected || now >= until {
                    break;
                }
            }
            let next = match (self.pose.next(start_us), self.audio.next(start_us)) {
                (Some((a, _)), Some((b, _))) => a.min(b),
                (Some((a, _)), None) | (None, Some((a, _))) => a,
                (None, None) => drain_until.unwrap_or(now),
            };
            let timeout = Duration::from_micros(next.saturating_sub(now));
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.report
                        .first_problem
                        .get_or_insert_with(|| format!("poll failed: {e}"));
                    break;
                }
            }
            for ev in events.iter() {
                let i = ev.token().0;
                if ev.is_writable() {
                    self.flush(i);
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.receive(i);
                }
            }
        }
        let cpu1 = poselink_hal::clock::thread_cpu_us().unwrap_or(cpu0);
        let mut report = std::mem::take(&mut self.report);
        report.cpu_us = cpu1.saturating_sub(cpu0);
        report.end_us = now;
        report
    }

    /// Sends everything due by `now`, in deadline order.
    fn send_due(&mut self, start_us: u64, now: u64) {
        loop {
            let pose = self.pose.next(start_us).filter(|&(at, _)| at <= now);
            let audio = self.audio.next(start_us).filter(|&(at, _)| at <= now);
            let (at, i, is_audio) = match (pose, audio) {
                (Some(p), Some(a)) if a.0 < p.0 => (a.0, a.1, true),
                (Some(p), _) => (p.0, p.1, false),
                (None, Some(a)) => (a.0, a.1, true),
                (None, None) => return,
            };
            // Stamped right before encoding: the capture time the receiver subtracts.
            let t = self.clock.now_us();
            self.report.send_lag.record(t.saturating_sub(at));
            if is_audio {
                self.audio.advance();
                self.send_audio(i as usize, t);
            } else {
                self.pose.advance();
                self.send_pose(i as usize, t);
            }
        }
    }

    fn send_pose(&mut self, i: usize, t: u64) {
        self.report.pose_sent += 1;
        let Worker {
            members,
            motion,
            report,
            ..
        } = self;
        let m = &mut members[i];
        if !m.open {
            report.unsent += 1;
            return;
        }
        m.pose_seq = m.pose_seq.wrapping_add(1);
        let frame = PoseFrame::from_arrays(m.pose_seq, 0, t, &motion[m.motion]);
        m.motion = (m.motion + 1) % motion.len();
        let waiting = m.session.transmit_pending();
        match m.session.send_pose(m.room, &frame) {
            Ok(n) => report.pose_bytes += n as u64,
            Err(e) => return self.unsent(e, "a pose frame"),
        }
        if waiting == 0 {
            self.flush(i);
        }
    }

    fn send_audio(&mut self, i: usize, t: u64) {
        self.report.audio_sent += 1;
        let Worker {
            members,
            audio_clip,
            report,
            ..
        } = self;
        let m = &mut members[i];
        if !m.open {
            report.unsent += 1;
            return;
        }
        m.audio_seq = m.audio_seq.wrapping_add(1);
        let mut chunk = audio_clip[m.audio_seq as usize % audio_clip.len()];
        chunk.seq = m.audio_seq;
        chunk.capture_ts_us = t;
        let waiting = m.session.transmit_pending();
        match m.session.send_audio(m.room, &chunk) {
            Ok(sent) => report.audio_bytes += sent.bytes as u64,
            Err(e) => return self.unsent(e, "an audio chunk"),
        }
        if waiting == 0 {
            self.flush(i);
        }
    }

    /// A frame could not be queued: with no room left (the hub stopped reading
    /// this connection) it is owed all the same, so it shows as loss.
    fn unsent(&mut self, e: SendError, what: &str) {
        self.report.unsent += 1;
        if e != SendError::TransmitFull {
            self.report
                .first_problem
                .get_or_insert_with(|| format!("{what} did not encode: {e}"));
        }
    }

    /// Writes what member `i`'s session has queued until it is written or the
    /// socket is full.
    fn flush(&mut self, i: usize) {
        let Some(m) = self.members.get_mut(i) else {
            return;
        };
        if let Err(e) = m.stream.send_pending() {
            return self.lost(i, format_args!("write failed: {e}"));
        }
        while m.open {
            let out = m.session.poll_transmit();
            if out.is_empty() {
                return;
            }
            match m.stream.write(out) {
                Ok(0) => return self.lost(i, format_args!("write failed: the hub closed")),
                Ok(n) => m.session.handle_written(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.lost(i, format_args!("write failed: {e}")),
            }
        }
    }

    /// A connection ended during the load.
    fn lost(&mut self, i: usize, why: core::fmt::Arguments<'_>) {
        let m = &mut self.members[i];
        if !m.open {
            return;
        }
        m.open = false;
        let _ = self.poll.registry().deregister(m.stream.socket());
        self.report.connections_lost += 1;
        let g = m.global;
        self.report
            .first_problem
            .get_or_insert_with(|| format!("member {g}: {why}"));
    }

    /// Reads member `i`'s socket dry into its session, counting every message
    /// delivered by its envelope.
    fn receive(&mut self, i: usize) {
        loop {
            let m = &mut self.members[i];
            if !m.open {
                break;
            }
            if m.session.receive_buffer().is_empty() {
                // Full of whole frames: count them, then read on.
                let now = self.clock.now_us();
                if let Some(why) = self.take_events(i, now) {
                    self.lost(i, format_args!("{why}"));
                    break;
                }
                if self.members[i].session.receive_buffer().is_empty() {
                    break;
                }
                continue;
            }
            let buf = m.session.receive_buffer();
            let asked = buf.len();
            let n = match m.stream.read(buf) {
                Ok(0) => {
                    self.lost(i, format_args!("the hub closed the connection"));
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.lost(i, format_args!("read failed: {e}"));
                    break;
                }
            };
            let now = self.clock.now_us();
            m.session.handle_received(now, n);
            if let Some(why) = self.take_events(i, now) {
                self.lost(i, format_args!("{why}"));
                break;
            }
            // Pongs the session owes the hub.
            if self.members[i].session.transmit_pending() > 0 {
                self.flush(i);
            }
            // A short read emptied the socket: the next data raises a new edge
            // (a TLS read ends at a record: read on).
            if n < asked && !self.members[i].stream.is_tls() {
                break;
            }
        }
    }

    /// Counts what member `i`'s session received; the reason if it broke.
    fn take_events(&mut self, i: usize, now: u64) -> Option<String> {
        let Worker {
            members, report, ..
        } = self;
        let m = &mut members[i];
        let (room, me, g) = (m.room, m.session.member(), m.global);
        while let Some(ev) = m.session.poll_event() {
            match ev {
                Event::Media { room: r, header } => {
                    if r != Some(room) || header.sender == me {
                        report.misrouted += 1;
                        continue;
                    }
                    report.delivered += 1;
                    report.pose_delivered += u64::from(header.kind == crate::proto::Kind::Pose);
                    report.latency.record(now.saturating_sub(header.ts_us));
                }
                Event::HubError { code, reason } => {
                    report.hub_errors += 1;
                    report.first_problem.get_or_insert_with(|| {
                        format!("member {g}: the hub said: {reason} ({})", code.name())
                    });
                }
                Event::Disconnected { reason } => return Some(reason.to_string()),
                _ => {}
            }
        }
        None
    }
}
