//! One load thread: connects its share of the members (blocking, one after the
//! other: WebSocket upgrade through tungstenite, then hello and join in the
//! protocol's own frames), waits for the start, then runs one `mio` poll over all
//! of them — sends as their deadlines come, receives with large reads into one
//! buffer shared by the thread, frames parsed in place — until every message owed
//! to its members has arrived or the wait for stragglers ends.
//!
//! Per connection it keeps only what must outlive one read or one write: a small
//! buffer for a frame cut by the end of a read, and a small buffer for output the
//! socket did not take. All of it is allocated while connecting.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::ops::Range;
use std::sync::mpsc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use poselink_hal::{
    AudioBlock, AudioSource, Clock, MonotonicClock, PoseSample, PoseSource, SyntheticAudio,
    SyntheticConfig, SyntheticPose,
};

use super::{AUDIO_HZ, LatencyHistogram, LoadConfig, LoadError, LoadErrorKind, Schedule};
use crate::proto::{
    AudioChunk, Compressor, DEFAULT_COMPRESS_THRESHOLD, EncoderConfig, Header, Hello, Join, Kind,
    LANDMARK_COUNT, Message, Packet, PoseEncoder, PoseFrame, Role, encode_audio, encode_control,
};
use crate::ws::{self, FrameKind, Parsed};

/// Time allowed to connect, upgrade, and be welcomed and joined.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes kept per connection for a frame cut by the end of a read: media frames
/// (at most 2048 bytes with their header) always fit; a larger control frame is
/// skipped rather than kept.
const CARRY: usize = 4096;
/// Bytes of output kept per connection when the socket does not take a frame
/// whole (more than the largest frame, so a frame's rest always fits).
const TX: usize = 16 * 1024;
/// The thread's receive buffer: one read takes up to this much.
const READ_BUF: usize = 256 * 1024;
/// Room before an outgoing message for its client frame header.
const HEAD: usize = 14;
/// Frames larger than this are refused as a broken stream.
const MAX_FRAME: usize = 1 << 20;
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
pub(super) struct WorkerReport {
    pub pose_sent: u64,
    pub audio_sent: u64,
    pub unsent: u64,
    pub pose_bytes: u64,
    pub audio_bytes: u64,
    pub delivered: u64,
    pub pose_delivered: u64,
    pub misrouted: u64,
    pub latency: LatencyHistogram,
    pub send_lag: LatencyHistogram,
    pub hub_errors: u64,
    pub connections_lost: u64,
    pub first_problem: Option<String>,
    pub cpu_us: u64,
    pub end_us: u64,
}

/// One member: its connection and its publisher's state.
struct Member {
    stream: TcpStream,
    /// The member's number over the whole load.
    global: usize,
    /// The room handle the hub gave.
    room: u16,
    /// The member id the hub gave.
    me: u16,
    encoder: Box<PoseEncoder>,
    pose_seq: u32,
    audio_seq: u32,
    /// Next frame of the motion clip.
    motion: usize,
    /// The start of a frame cut by the end of the last read.
    carry: Box<[u8]>,
    carry_len: usize,
    /// Bytes still to discard of a frame too large to keep.
    skip: usize,
    /// Output the socket has not taken yet: `tx[tx_start..tx_end]`.
    tx: Box<[u8]>,
    tx_start: usize,
    tx_end: usize,
    open: bool,
}

impl Member {
    /// Writes one whole frame, or queues what the socket did not take. `Ok(false)`:
    /// there is no room to queue it and nothing of it was written (the hub is not
    /// reading this connection).
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<bool> {
        if self.tx_end > self.tx_start {
            return Ok(self.queue(frame));
        }
        loop {
            match self.stream.write(frame) {
                Ok(n) if n == frame.len() => return Ok(true),
                // The rest fits: the queue is empty and larger than any frame.
                Ok(n) => return Ok(self.queue(&frame[n..])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(self.queue(frame)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn queue(&mut self, bytes: &[u8]) -> bool {
        if self.tx.len() - self.tx_end < bytes.len() && self.tx_start > 0 {
            self.tx.copy_within(self.tx_start..self.tx_end, 0);
            self.tx_end -= self.tx_start;
            self.tx_start = 0;
        }
        if self.tx.len() - self.tx_end < bytes.len() {
            return false;
        }
        self.tx[self.tx_end..self.tx_end + bytes.len()].copy_from_slice(bytes);
        self.tx_end += bytes.len();
        true
    }

    /// Writes queued output until it is gone or the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        while self.tx_start < self.tx_end {
            match self.stream.write(&self.tx[self.tx_start..self.tx_end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.tx_start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.tx_start = 0;
        self.tx_end = 0;
        Ok(())
    }
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
    audio_compressor: Box<Compressor>,
    /// The receive buffer, shared by the thread's connections.
    rbuf: Box<[u8]>,
    /// Where an outgoing frame is built: header in `..HEAD`, message after it.
    out: Box<[u8]>,
    mask_state: u64,
    /// Deliveries owed to this thread's members.
    expected: u64,
    report: WorkerReport,
}

/// splitmix64: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn setup_err(kind: LoadErrorKind, g: usize, what: impl core::fmt::Display) -> LoadError {
    LoadError::new(kind, format!("member {g}: {what}"))
}

/// Encodes a control message as a masked client frame.
fn control_frame(sender: u16, msg: &Message<'_>, mask: [u8; 4]) -> Vec<u8> {
    let mut body = vec![0u8; 4096];
    let n = encode_control(&Header::new(msg.kind(), 0, sender, 0, 0), msg, &mut body)
        .expect("a hello or join fits 4096 bytes");
    let mut frame = vec![0u8; HEAD + n];
    let hl = ws::write_client_header(&mut frame, FrameKind::Binary, true, n, mask)
        .expect("14 bytes hold a client frame header");
    frame[hl..hl + n].copy_from_slice(&body[..n]);
    ws::mask_payload(&mut frame[hl..hl + n], mask);
    frame.truncate(hl + n);
    frame
}

/// Reads frames (blocking) until a message of kind `want` arrives; returns its
/// bytes and leaves what followed it in `buf`. An error message from the hub is
/// [`LoadErrorKind::Refused`] with its reason.
fn read_until(
    s: &mut StdStream,
    buf: &mut Vec<u8>,
    want: Kind,
    g: usize,
) -> Result<Vec<u8>, LoadError> {
    let mut chunk = [0u8; 4096];
    loop {
        while let Ok(Parsed::Frame(f)) = ws::parse_server_frame(buf, MAX_FRAME) {
            let payload = buf[f.header_len..f.len()].to_vec();
            buf.drain(..f.len());
            match f.kind {
                FrameKind::Binary => {}
                FrameKind::Close => {
                    let why = ws::parse_close(&payload)
                        .map_or(String::new(), |(c, r)| format!(" ({c} {r})"));
                    return Err(setup_err(
                        LoadErrorKind::Handshake,
                        g,
                        format_args!(
                            "the hub closed the connection while {} was awaited{why}",
                            want.name()
                        ),
                    ));
                }
                _ => continue,
            }
            let Ok(p) = Packet::new_checked(&payload[..]) else {
                return Err(setup_err(
                    LoadErrorKind::Handshake,
                    g,
                    "the hub sent a message that fails its check (is this a poselink hub?)",
                ));
            };
            let kind = p.header().kind;
            if kind == want {
                return Ok(payload);
            }
            if kind == Kind::Error {
                let mut scratch = vec![0u8; 70_000];
                if let Ok(Message::Error(e)) = Message::parse(&p, &mut scratch) {
                    return Err(setup_err(
                        LoadErrorKind::Refused,
                        g,
                        format_args!(
                            "the hub refused the {}: {} ({})",
                            if want == Kind::Welcome {
                                "hello"
                            } else {
                                "join"
                            },
                            e.reason,
                            e.code.name()
                        ),
                    ));
                }
            }
        }
        if let Err(e) = ws::parse_server_frame(buf, MAX_FRAME) {
            return Err(setup_err(
                LoadErrorKind::Handshake,
                g,
                format_args!("bad WebSocket frame from the hub: {e}"),
            ));
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                return Err(setup_err(
                    LoadErrorKind::Handshake,
                    g,
                    format_args!(
                        "the hub closed the connection while {} was awaited",
                        want.name()
                    ),
                ));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(setup_err(
                    LoadErrorKind::Handshake,
                    g,
                    format_args!(
                        "no {} from the hub within {} s",
                        want.name(),
                        SETUP_TIMEOUT.as_secs()
                    ),
                ));
            }
            Err(e) => return Err(setup_err(LoadErrorKind::Io, g, e)),
        }
    }
}

impl Worker {
    /// The thread's body: connect, report, wait for the start, run, report, wait
    /// for the close.
    pub(super) fn main(
        addr: SocketAddr,
        cfg: LoadConfig,
        range: Range<usize>,
        commands: mpsc::Receiver<Command>,
        results: mpsc::Sender<WorkerMsg>,
    ) {
        let mut w = match Worker::connect(addr, cfg, range) {
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

    fn connect(addr: SocketAddr, cfg: LoadConfig, range: Range<usize>) -> Result<Self, LoadError> {
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
            audio_compressor: Box::new(Compressor::new(DEFAULT_COMPRESS_THRESHOLD)),
            rbuf: vec![0u8; READ_BUF].into_boxed_slice(),
            out: vec![0u8; HEAD + 8192].into_boxed_slice(),
            mask_state: mix(seed) | 1,
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
                latency: LatencyHistogram::new(),
                send_lag: LatencyHistogram::new(),
                hub_errors: 0,
                connections_lost: 0,
                first_problem: None,
                cpu_us: 0,
                end_us: 0,
            },
            cfg,
        };
        w.make_media(seed);
        for g in range.clone() {
            let m = w.open_member(addr, g)?;
            w.members.push(m);
        }
        for (i, m) in w.members.iter_mut().enumerate() {
            w.poll
                .registry()
                .register(
                    &mut m.stream,
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

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift64*: cheap, and unpredictable enough for a load generator.
        let mut x = self.mask_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.mask_state = x;
        ((x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32).to_ne_bytes()
    }

    /// Connects member `g`: upgrade, hello, welcome, join, snapshot.
    fn open_member(&mut self, addr: SocketAddr, g: usize) -> Result<Member, LoadError> {
        let room_name = format!("{}{}", self.cfg.room_prefix, g / self.cfg.members);
        let s = StdStream::connect_timeout(&addr, SETUP_TIMEOUT).map_err(|e| {
            setup_err(
                LoadErrorKind::Connect,
                g,
                format_args!("cannot connect to the hub at {addr}: {e}"),
            )
        })?;
        let io = |e: io::Error| setup_err(LoadErrorKind::Io, g, e);
        s.set_nodelay(true).map_err(io)?;
        s.set_read_timeout(Some(SETUP_TIMEOUT)).map_err(io)?;
        s.set_write_timeout(Some(SETUP_TIMEOUT)).map_err(io)?;
        let (ws, _) = tungstenite::client(format!("ws://{addr}/"), s).map_err(|e| {
            setup_err(
                LoadErrorKind::Handshake,
                g,
                format_args!("the WebSocket upgrade with {addr} failed: {e}"),
            )
        })?;
        // The hub says nothing between its 101 and our hello: nothing is buffered.
        let mut s = ws.into_inner();
        let mut buf = Vec::with_capacity(4096);

        let mask = self.next_mask();
        let hello = Message::Hello(Hello {
            minor: 0,
            token: &self.cfg.token,
            resume: 0,
            client: "poselink-loadgen",
        });
        s.write_all(&control_frame(0, &hello, mask)).map_err(io)?;
        let welcome = read_until(&mut s, &mut buf, Kind::Welcome, g)?;
        let parsed = Packet::new_checked(&welcome[..]);
        let me = match parsed.as_ref().map(|p| Message::parse(p, &mut [])) {
            Ok(Ok(Message::Welcome(w))) => w.member,
            _ => {
                return Err(setup_err(
                    LoadErrorKind::Handshake,
                    g,
                    "the hub's welcome does not parse",
                ));
            }
        };
        let join = Message::Join(Join {
            room: &room_name,
            role: Role::Member,
        });
        let mask = self.next_mask();
        s.write_all(&control_frame(me, &join, mask)).map_err(io)?;
        let snapshot = read_until(&mut s, &mut buf, Kind::RoomSnapshot, g)?;
        let room = Packet::new_checked(&snapshot[..])
            .map_err(|e| setup_err(LoadErrorKind::Handshake, g, e))?
            .header()
            .room;
        if buf.len() > CARRY {
            return Err(setup_err(
                LoadErrorKind::Handshake,
                g,
                format_args!(
                    "{} bytes followed the room snapshot; more than expected",
                    buf.len()
                ),
            ));
        }
        s.set_nonblocking(true).map_err(io)?;
        let mut carry = vec![0u8; CARRY].into_boxed_slice();
        carry[..buf.len()].copy_from_slice(&buf);
        Ok(Member {
            stream: TcpStream::from_std(s),
            global: g,
            room,
            me,
            encoder: Box::new(PoseEncoder::new(EncoderConfig::default())),
            pose_seq: 0,
            audio_seq: 0,
            motion: (mix(g as u64) % self.motion.len() as u64) as usize,
            carry,
            carry_len: buf.len(),
            skip: 0,
            tx: vec![0u8; TX].into_boxed_slice(),
            tx_start: 0,
            tx_end: 0,
            open: true,
        })
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
        let mut report = std::mem::replace(
            &mut self.report,
            WorkerReport {
                pose_sent: 0,
                audio_sent: 0,
                unsent: 0,
                pose_bytes: 0,
                audio_bytes: 0,
                delivered: 0,
                pose_delivered: 0,
                misrouted: 0,
                latency: LatencyHistogram::new(),
                send_lag: LatencyHistogram::new(),
                hub_errors: 0,
                connections_lost: 0,
                first_problem: None,
                cpu_us: 0,
                end_us: 0,
            },
        );
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
        let mask = self.next_mask();
        let Worker {
            members,
            motion,
            out,
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
        let n = match m.encoder.encode(&frame, m.room, m.me, &mut out[HEAD..]) {
            Ok(n) => n,
            Err(e) => {
                report.unsent += 1;
                report
                    .first_problem
                    .get_or_insert_with(|| format!("a pose frame did not encode: {e}"));
                return;
            }
        };
        report.pose_bytes += n as u64;
        self.send_built(i, n, mask);
    }

    fn send_audio(&mut self, i: usize, t: u64) {
        self.report.audio_sent += 1;
        let mask = self.next_mask();
        let Worker {
            members,
            audio_clip,
            audio_compressor,
            out,
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
        let n = match encode_audio(&chunk, m.room, m.me, audio_compressor, &mut out[HEAD..]) {
            Ok(n) => n,
            Err(e) => {
                report.unsent += 1;
                report
                    .first_problem
                    .get_or_insert_with(|| format!("an audio chunk did not encode: {e}"));
                return;
            }
        };
        report.audio_bytes += n as u64;
        self.send_built(i, n, mask);
    }

    /// Frames and writes the message of `n` bytes at `out[HEAD..]` to member `i`.
    fn send_built(&mut self, i: usize, n: usize, mask: [u8; 4]) {
        let mut head = [0u8; HEAD];
        let hl = ws::write_client_header(&mut head, FrameKind::Binary, true, n, mask)
            .expect("14 bytes hold a client frame header");
        self.out[HEAD - hl..HEAD].copy_from_slice(&head[..hl]);
        ws::mask_payload(&mut self.out[HEAD..HEAD + n], mask);
        let frame = &self.out[HEAD - hl..HEAD + n];
        match self.members[i].write_frame(frame) {
            Ok(true) => {}
            Ok(false) => self.report.unsent += 1,
            Err(e) => {
                self.report.unsent += 1;
                self.lost(i, format_args!("write failed: {e}"));
            }
        }
    }

    fn flush(&mut self, i: usize) {
        let Some(m) = self.members.get_mut(i) else {
            return;
        };
        if m.open
            && let Err(e) = m.flush()
        {
            self.lost(i, format_args!("write failed: {e}"));
        }
    }

    /// A connection ended during the load.
    fn lost(&mut self, i: usize, why: core::fmt::Arguments<'_>) {
        let m = &mut self.members[i];
        if !m.open {
            return;
        }
        m.open = false;
        let _ = self.poll.registry().deregister(&mut m.stream);
        self.report.connections_lost += 1;
        let g = m.global;
        self.report
            .first_problem
            .get_or_insert_with(|| format!("member {g}: {why}"));
    }

    /// Reads member `i`'s socket dry, handling every whole frame.
    fn receive(&mut self, i: usize) {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        loop {
            let m = &mut self.members[i];
            if !m.open {
                break;
            }
            let c = m.carry_len;
            rbuf[..c].copy_from_slice(&m.carry[..c]);
            let asked = rbuf.len() - c;
            let n = match m.stream.read(&mut rbuf[c..]) {
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
            m.carry_len = 0;
            let mut pos = 0;
            let len = c + n;
            if m.skip > 0 {
                pos = m.skip.min(len);
                m.skip -= pos;
            }
            while pos < len {
                match ws::parse_server_frame(&mut rbuf[pos..len], MAX_FRAME) {
                    Ok(Parsed::Frame(f)) => {
                        let (h, e) = (pos + f.header_len, pos + f.len());
                        self.on_frame(i, f.kind, &rbuf[h..e], now);
                        pos = e;
                    }
                    Ok(Parsed::Need(total)) => {
                        let m = &mut self.members[i];
                        let have = len - pos;
                        if total > CARRY {
                            // A control message too large to keep: nothing the
                            // load needs; drop it.
                            m.skip = total - have;
                        } else {
                            m.carry[..have].copy_from_slice(&rbuf[pos..len]);
                            m.carry_len = have;
                        }
                        pos = len;
                    }
                    Err(e) => {
                        self.lost(i, format_args!("bad WebSocket frame from the hub: {e}"));
                        pos = len;
                    }
                }
            }
            // A short read emptied the socket: the next data raises a new edge.
            if n < asked {
                break;
            }
        }
        self.rbuf = rbuf;
    }

    fn on_frame(&mut self, i: usize, kind: FrameKind, payload: &[u8], now: u64) {
        match kind {
            FrameKind::Binary => {}
            FrameKind::Ping => {
                let mut pong = [0u8; 6 + 125];
                let mask = self.next_mask();
                let n = payload.len().min(125);
                let hl = ws::write_client_header(&mut pong, FrameKind::Pong, true, n, mask)
                    .expect("a pong header fits");
                pong[hl..hl + n].copy_from_slice(&payload[..n]);
                ws::mask_payload(&mut pong[hl..hl + n], mask);
                if let Err(e) = self.members[i].write_frame(&pong[..hl + n]) {
                    self.lost(i, format_args!("write failed: {e}"));
                }
                return;
            }
            FrameKind::Close => {
                let (code, why) = ws::parse_close(payload).unwrap_or((1005, ""));
                self.lost(
                    i,
                    format_args!("the hub closed the connection ({code} {why})"),
                );
                return;
            }
            _ => return,
        }
        let Ok(p) = Packet::new_checked(payload) else {
            self.report.hub_errors += 1;
            self.report
                .first_problem
                .get_or_insert_with(|| "a message from the hub failed its check".into());
            return;
        };
        let h = p.header();
        match h.kind {
            Kind::Pose | Kind::Audio => {
                let m = &self.members[i];
                if h.room != m.room || h.sender == m.me {
                    self.report.misrouted += 1;
                    return;
                }
                self.report.delivered += 1;
                self.report.pose_delivered += u64::from(h.kind == Kind::Pose);
                self.report.latency.record(now.saturating_sub(h.ts_us));
            }
            // A receiver lost a frame of ours: the next one must decode alone.
            Kind::NeedsKeyframe => self.members[i].encoder.force_keyframe(),
            Kind::Error => {
                self.report.hub_errors += 1;
                if self.report.first_problem.is_none() {
                    let mut scratch = [0u8; 0];
                    let text = match Message::parse(&p, &mut scratch) {
                        Ok(Message::Error(e)) => format!("{} ({})", e.reason, e.code.name()),
                        _ => "an error message".into(),
                    };
                    let g = self.members[i].global;
                    self.report.first_problem = Some(format!("member {g}: the hub said: {text}"));
                }
            }
            _ => {}
        }
    }
}
