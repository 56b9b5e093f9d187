//! `poselink send`: publishes a pose stream (synthetic, or a replayed recording) and
//! optionally a synthetic test tone into a room through an edge engine, paced by the
//! monotonic clock, and prints a line of statistics per second.
//!
//! The helpers shared with `poselink watch` (the stop flag, starting an engine,
//! joining a room, printing an event) live here too.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use clap::{Args, ValueEnum};
use poselink::engine::{
    EdgeEngine, EngineConfig, EngineHandle, EngineMetrics, EngineReport, Event, JoinError,
    Priority, RoomId, SendError,
};
use poselink::proto::{AudioChunk, ErrorCode, PoseFrame, Role, validate_name};
use poselink_hal::{
    AudioBlock, AudioSource, Clock, Error as _, ErrorKind, MonotonicClock, PoseSample, PoseSource,
    ReplayError, ReplaySource, SyntheticAudio, SyntheticConfig, SyntheticPose,
};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::CliError;

/// `poselink send`'s arguments (the help text is the [`crate::Command::Send`] variant's).
#[derive(Args, Debug)]
#[command(
    after_help = "Streams until --duration has passed or SIGINT/SIGTERM (Ctrl-C) arrives, then \
                  sends what is queued, closes the connection and prints a summary (a second signal \
                  exits at once).\n\
                  Every second one line goes to stdout: pose frames and audio chunks the engine wrote \
                  to the socket in that second, the bit rate, the engine's drops so far (ring, \
                  superseded, evicted, refused, stale, no room, audio lost, audio refused by a full \
                  ring), whether the session is up, the reconnects and the last round trip to the hub. \
                  Connection events are printed as they happen.\n\
                  Pose frames are stamped with the host's monotonic clock at capture, numbered from 1 \
                  per person; audio is 20 ms chunks of a 440 Hz tone at 48 kHz mono (or, with \
                  --source replay, the recording's audio if it has any, paced by each block's \
                  duration). A recording's poses are sent at --fps one after another, looping at \
                  its end, their landmarks as recorded (clamped to the protocol's ranges) and \
                  their timestamps replaced by this host's clock.\n\
                  Exit status: 0 after a clean stop, 1 on a runtime error (no answer from the hub, IO), \
                  2 on a usage error or when the hub refuses the hello or the join.\n\n\
                  Example:\n  \
                  poselink send --hub ws://hub.local:7700/ --room studio-1 --fps 30 --audio --duration 60"
)]
pub struct SendArgs {
    /// The hub's URL: ws://HOST:PORT/, or wss://HOST:PORT/ for TLS
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:7700/")]
    pub hub: String,

    /// For wss://: a PEM file of CA certificates to trust besides the system's
    /// (a private CA, or the hub's self-signed certificate)
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Access token (JWT) from `poselink token`; none for a --dev hub
    #[arg(
        long,
        value_name = "TOKEN",
        env = "POSELINK_TOKEN",
        hide_env_values = true,
        default_value = "",
        hide_default_value = true
    )]
    pub token: String,

    /// Room to publish into: 1 to 64 letters, digits and `-_.:@/`
    #[arg(long, value_name = "ROOM")]
    pub room: String,

    /// Role to join with (a viewer may not publish)
    #[arg(long, value_enum, value_name = "ROLE", default_value_t = PublishRole::Member)]
    pub role: PublishRole,

    /// Pose frames per second, per person (at most 240)
    #[arg(long, value_name = "FPS", default_value_t = 30.0)]
    pub fps: f64,

    /// Also send audio: 20 ms chunks at 48 kHz mono, 50 a second
    #[arg(long)]
    pub audio: bool,

    /// Where the poses come from: the synthetic skeleton (walking, waving) or a
    /// recording (`--file`, looped; see docs/RECORDING.md)
    #[arg(long, value_enum, value_name = "SOURCE", default_value_t = SourceArg::Synthetic)]
    pub source: SourceArg,

    /// The recording to replay with --source replay (e.g. from `poselink watch --record`)
    #[arg(long, value_name = "PATH", required_if_eq("source", "replay"))]
    pub file: Option<PathBuf>,

    /// Stop after this long: seconds (`2`, `0.5`) or a duration (`90s`, `10m`) [default: until Ctrl-C]
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Bytes per second the engine may send; pose frames are thinned to fit [default: no limit]
    #[arg(long, value_name = "BYTES_PER_SEC")]
    pub bandwidth: Option<u64>,

    /// Persons (pose streams) to send, each its own synthetic skeleton (with a replay,
    /// each replays the same recording)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=16))]
    pub persons: u32,
}

/// A role that may publish, as written on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PublishRole {
    /// Publishes and subscribes
    Member,
    /// Publishes and subscribes; may also kick, change roles and close the room
    Owner,
}

impl From<PublishRole> for Role {
    fn from(r: PublishRole) -> Role {
        match r {
            PublishRole::Member => Role::Member,
            PublishRole::Owner => Role::Owner,
        }
    }
}

/// Where the pose frames come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// The hal's synthetic skeleton, one seed per person
    Synthetic,
    /// A recording made with `poselink watch --record` (or the hal's `Recorder`), looped
    Replay,
}

// ---- helpers shared with `watch` ---------------------------------------------------

/// Parses `--duration`: plain seconds (`2`, `0.5`) or a humantime duration (`90s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => Duration::from_secs_f64(secs),
        Ok(_) => return Err("must be a positive number of seconds".into()),
        Err(_) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{e} (write seconds, e.g. 30, or a duration, e.g. 90s or 10m)"))?,
    };
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

/// A flag that SIGINT or SIGTERM sets; a second signal exits the process at once
/// with the runtime error status.
pub fn stop_flag() -> Result<Arc<AtomicBool>, CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag before the second registration sets it.
        signal_hook::flag::register_conditional_shutdown(
            sig,
            i32::from(crate::EXIT_RUNTIME),
            Arc::clone(&stop),
        )
        .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
        .map_err(|e| CliError::runtime(format!("cannot install the signal handlers: {e}")))?;
    }
    Ok(stop)
}

/// Checks a room name before anything connects.
pub fn check_room(room: &str) -> Result<(), CliError> {
    validate_name(room, "room name").map_err(|_| {
        CliError::config(format!(
            "invalid room name {room:?}: use 1 to 64 bytes of letters, digits and `-_.:@/`"
        ))
    })
}

/// Starts an engine; a bad hub URL is a usage error.
pub fn start_engine(
    cfg: EngineConfig,
) -> Result<(EngineHandle, JoinHandle<EngineReport>), CliError> {
    let hub = cfg.hub.clone();
    EdgeEngine::start(cfg).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput => CliError::config(e.to_string()),
        _ => CliError::runtime(format!("cannot start the engine for {hub}: {e}")),
    })
}

/// Stops an engine and waits for its thread.
pub fn stop_engine(engine: &EngineHandle, thread: JoinHandle<EngineReport>) -> EngineReport {
    engine.shutdown();
    thread.join().unwrap_or_default()
}

/// A joined room: its id, the engine's thread, and the events that arrived while
/// the join was pending (for the caller to handle first).
pub struct Joined {
    /// The engine's id of the room.
    pub room: RoomId,
    /// The engine's thread.
    pub thread: JoinHandle<EngineReport>,
    /// Events taken while waiting for the join, in order.
    pub events: Vec<Event>,
}

/// Whether the hub's error refuses the session itself (the hello): retrying with
/// the same token or version cannot succeed.
fn refuses_session(code: ErrorCode) -> bool {
    [
        ErrorCode::UNSUPPORTED_VERSION,
        ErrorCode::UNAUTHENTICATED,
        ErrorCode::TOKEN_INVALID,
        ErrorCode::TOKEN_EXPIRED,
    ]
    .contains(&code)
}

/// Joins `room`; on failure stops the engine and says why: a refusal by the hub
/// (of the join, or of the hello before it) is a usage error with the hub's reason.
///
/// The join waits on a helper thread while this one watches the events, so that a
/// refused hello (a bad or expired token: the engine would keep retrying) ends the
/// command at once instead of after the join's timeout.
pub fn join_or_stop(
    engine: &EngineHandle,
    thread: JoinHandle<EngineReport>,
    hub: &str,
    room: &str,
    role: Role,
) -> Result<Joined, CliError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let joiner = {
        let engine = engine.clone();
        let room = room.to_string();
        std::thread::Builder::new()
            .name("poselink-join".into())
            .spawn(move || {
                let _ = tx.send(engine.join_room(&room, role));
            })
            .map_err(|e| CliError::runtime(format!("cannot start a thread: {e}")))?
    };
    let mut events = Vec::new();
    let mut refusal = None;
    let mut lost = None;
    let mut fatal = false;
    let result = loop {
        match rx.recv_timeout(Duration::from_millis(2)) {
            Ok(r) => break Some(r),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        while let Some(ev) = engine.poll_event() {
            match &ev {
                Event::Error { code, reason } => {
                    refusal = Some(format!("{} ({reason})", code.name()));
                    fatal |= refuses_session(*code);
                }
                Event::Disconnected { reason } | Event::ConnectFailed { reason } => {
                    lost = Some(reason.clone())
                }
                _ => {}
            }
            events.push(ev);
        }
        if fatal {
            break None;
        }
    };
    let err = match result {
        Some(Ok(room)) => {
            let _ = joiner.join();
            // Events that came with the join's answer (the room's members).
            while let Some(ev) = engine.poll_event() {
                events.push(ev);
            }
            return Ok(Joined {
                room,
                thread,
                events,
            });
        }
        Some(Err(e)) => Some(e),
        None => None,
    };
    while let Some(ev) = engine.poll_event() {
        match ev {
            Event::Error { code, reason } => refusal = Some(format!("{} ({reason})", code.name())),
            Event::Disconnected { reason } | Event::ConnectFailed { reason } => lost = Some(reason),
            _ => {}
        }
    }
    // Stopping the engine ends a join still waiting.
    stop_engine(engine, thread);
    let _ = joiner.join();
    Err(match (err, refusal) {
        (Some(JoinError::Refused { code, reason }), _) => CliError::config(format!(
            "the hub refused to let us join room {room:?} as {} ({}): {reason}",
            role.name(),
            code.name()
        )),
        (Some(JoinError::BadName), _) => CliError::config(format!(
            "invalid room name {room:?}: use 1 to 64 bytes of letters, digits and `-_.:@/`"
        )),
        (_, Some(refusal)) => {
            CliError::config(format!("the hub at {hub} refused the session: {refusal}"))
        }
        (Some(JoinError::Timeout), None) => CliError::runtime(format!(
            "no answer from the hub at {hub} when joining room {room:?}: check the address and that the hub is running{}",
            lost.map(|l| format!(" (last connection error: {l})"))
                .unwrap_or_default()
        )),
        (Some(e), None) => CliError::runtime(format!("cannot join room {room:?}: {e}")),
        (None, None) => CliError::runtime(format!("cannot join room {room:?}: the engine stopped")),
    })
}

/// Seconds since `start_us`, for line prefixes.
pub fn stamp(clock: &MonotonicClock, start_us: u64) -> String {
    format!(
        "[{:7.3}s]",
        clock.now_us().saturating_sub(start_us) as f64 / 1e6
    )
}

/// A one-line description of a connection or room event; `None` for media and
/// membership events (the commands handle those themselves).
pub fn describe_event(ev: &Event) -> Option<String> {
    Some(match ev {
        Event::Connected { member } => format!("connected: we are member {member}"),
        Event::Disconnected { reason } => format!("disconnected: {reason}"),
        Event::Reconnecting { attempt, delay } => format!(
            "reconnecting: attempt {attempt} in {} ms",
            delay.as_millis()
        ),
        Event::RoomRestored { members, .. } => {
            format!(
                "room restored after the reconnect ({} members)",
                members.len()
            )
        }
        Event::RoomLeft { reason, .. } => format!("left the room: {reason:?}"),
        Event::AudioLost { count, .. } => {
            format!("{count} audio chunks lost (not acknowledged while the connection was down)")
        }
        Event::Error { code, reason } => format!("the hub reports {}: {reason}", code.name()),
        Event::Alert(a) => format!(
            "performance alert {}: {:.1} past the threshold {:.1}",
            a.kind.name(),
            a.value,
            a.threshold
        ),
        _ => return None,
    })
}

/// The sum of the engine's drop counters.
pub fn engine_drops(m: &EngineMetrics) -> u64 {
    m.drops_ring
        + m.drops_superseded
        + m.drops_evicted
        + m.drops_refused
        + m.drops_stale
        + m.drops_no_room
        + m.audio_lost
}

// ---- sources ----------------------------------------------------------------------

enum Poses {
    Synthetic(Vec<SyntheticPose>),
    /// One source per person, and whether the truncated-tail warning was printed.
    Replay(Vec<ReplaySource>, PathBuf, bool),
}

impl Poses {
    fn next(&mut self, person: usize, out: &mut PoseSample) -> Result<(), CliError> {
        match self {
            Poses::Synthetic(s) => {
                s[person]
                    .next_pose(out)
                    .unwrap_or_else(|never| match never {});
                Ok(())
            }
            Poses::Replay(s, path, warned) => {
                let src = &mut s[person];
                let mut rewound = false;
                loop {
                    match src.next_pose(out) {
                        Ok(()) => return Ok(()),
                        Err(e) if !rewound && loops_at(&e, path, warned) => {
                            rewound = true;
                            src.rewind().map_err(|e| replay_error(path, &e))?;
                        }
                        Err(e) => return Err(replay_error(path, &e)),
                    }
                }
            }
        }
    }
}

/// Whether a replay error is the end of the recording (to loop): its end, or a
/// truncated last record (a recording whose writer was killed), reported once.
fn loops_at(e: &ReplayError, path: &std::path::Path, warned: &mut bool) -> bool {
    match e {
        ReplayError::EndOfStream => true,
        ReplayError::Truncated { .. } => {
            if !*warned {
                *warned = true;
                eprintln!(
                    "poselink: warning: {}: {e}; replaying up to it",
                    path.display()
                );
            }
            true
        }
        _ => false,
    }
}

fn replay_error(path: &std::path::Path, e: &ReplayError) -> CliError {
    let msg = format!("{}: {e}", path.display());
    match e.kind() {
        ErrorKind::Io => CliError::runtime(msg),
        _ => CliError::config(msg),
    }
}

enum Audio {
    Synthetic(SyntheticAudio),
    Replay(Box<ReplaySource>, PathBuf, bool),
}

impl Audio {
    fn next(&mut self, out: &mut AudioBlock) -> Result<(), CliError> {
        match self {
            Audio::Synthetic(s) => {
                s.next_audio(out).unwrap_or_else(|never| match never {});
                Ok(())
            }
            Audio::Replay(src, path, warned) => {
                let mut rewound = false;
                loop {
                    match src.next_audio(out) {
                        Ok(()) => return Ok(()),
                        Err(e) if !rewound && loops_at(&e, path, warned) => {
                            rewound = true;
                            src.rewind().map_err(|e| replay_error(path, &e))?;
                        }
                        Err(e) => return Err(replay_error(path, &e)),
                    }
                }
            }
        }
    }
}

/// Opens the recording once per person, checking that it holds a pose; and, with
/// `audio`, once more for its audio if it has any.
fn open_replay(
    path: &std::path::Path,
    persons: usize,
    audio: bool,
) -> Result<(Poses, Option<Audio>), CliError> {
    // A recording that cannot be opened is a usage error, whatever the reason.
    let open = || {
        ReplaySource::open(path)
            .map_err(|e| CliError::config(format!("cannot replay {}: {e}", path.display())))
    };
    let mut first = open()?;
    let mut probe = PoseSample::zeroed();
    match first.next_pose(&mut probe) {
        Ok(()) => {}
        Err(ReplayError::EndOfStream) => {
            return Err(CliError::config(format!(
                "{}: the recording holds no pose frames",
                path.display()
            )));
        }
        Err(e) => return Err(replay_error(path, &e)),
    }
    first.rewind().map_err(|e| replay_error(path, &e))?;
    let mut sources = vec![first];
    for _ in 1..persons {
        sources.push(open()?);
    }
    let audio = if audio {
        let mut src = open()?;
        let mut block = AudioBlock::zeroed();
        match src.next_audio(&mut block) {
            Ok(()) => {
                src.rewind().map_err(|e| replay_error(path, &e))?;
                Some(Audio::Replay(Box::new(src), path.to_owned(), false))
            }
            Err(_) => {
                eprintln!(
                    "poselink: note: {} holds no audio; sending the synthetic tone",
                    path.display()
                );
                None
            }
        }
    } else {
        None
    };
    Ok((Poses::Replay(sources, path.to_owned(), false), audio))
}

// ---- the command ------------------------------------------------------------------

/// Runs `poselink send`.
pub fn run(args: SendArgs) -> Result<(), CliError> {
    check_room(&args.room)?;
    let role = Role::from(args.role);
    if !(args.fps.is_finite() && args.fps > 0.0 && args.fps <= 240.0) {
        return Err(CliError::config(format!(
            "--fps {}: give a rate above 0 and at most 240",
            args.fps
        )));
    }
    if args.source == SourceArg::Synthetic && args.file.is_some() {
        return Err(CliError::config("--file is only read with --source replay"));
    }
    let persons = args.persons as usize;
    let (mut poses, replay_audio) = match (&args.source, &args.file) {
        (SourceArg::Replay, Some(path)) => open_replay(path, persons, args.audio)?,
        (SourceArg::Replay, None) => {
            return Err(CliError::config("--source replay needs --file PATH"));
        }
        (SourceArg::Synthetic, _) => (
            Poses::Synthetic(
                (0..persons)
                    .map(|p| {
                        SyntheticPose::new(SyntheticConfig {
                            seed: p as u64,
                            fps: args.fps as f32,
                            ..SyntheticConfig::default()
                        })
                    })
                    .collect(),
            ),
            None,
        ),
    };
    let clock = MonotonicClock::new();
    let mut audio = if args.audio {
        Some(replay_audio.unwrap_or_else(|| Audio::Synthetic(SyntheticAudio::new(clock.now_us()))))
    } else {
        None
    };

    let stop = stop_flag()?;
    let cfg = EngineConfig {
        hub: args.hub.clone(),
        ca_file: args
            .ca_file
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        token: args.token.clone(),
        client: "poselink-send".into(),
        max_persons: persons.max(EngineConfig::default().max_persons),
        bandwidth_bytes_per_sec: args.bandwidth.unwrap_or(0),
        ..EngineConfig::default()
    };
    let (engine, thread) = start_engine(cfg)?;
    let Joined {
        room,
        thread,
        events,
    } = join_or_stop(&engine, thread, &args.hub, &args.room, role)?;
    let start = clock.now_us();
    println!(
        "{} joined room {:?} on {} as {}: sending {} person(s) at {} fps{}{}",
        stamp(&clock, start),
        args.room,
        args.hub,
        role.name(),
        persons,
        args.fps,
        match (&audio, args.audio) {
            (Some(Audio::Replay(..)), _) => " + the recording's audio",
            (_, true) => " + 48 kHz mono audio",
            _ => "",
        },
        match &poses {
            Poses::Replay(_, path, _) => format!(" from {}", path.display()),
            Poses::Synthetic(_) => " (synthetic)".into(),
        },
    );
    for ev in &events {
        if let Some(line) = describe_event(ev) {
            println!("{} {line}", stamp(&clock, start));
        }
    }

    let outcome = stream(
        &engine, room, &clock, start, &stop, &args, &mut poses, &mut audio,
    );
    let report = stop_engine(&engine, thread);
    let local = outcome?;
    summary(&clock, start, &report, &local);
    Ok(())
}

/// What the sending loop counts itself.
#[derive(Default)]
struct Local {
    poses_submitted: u64,
    audio_submitted: u64,
    /// Audio chunks the engine's hand-over ring refused.
    audio_ring_full: u64,
    /// Pose ticks skipped because the loop fell more than a second behind.
    ticks_skipped: u64,
}

#[allow(clippy::too_many_arguments)]
fn stream(
    engine: &EngineHandle,
    room: RoomId,
    clock: &MonotonicClock,
    start: u64,
    stop: &AtomicBool,
    args: &SendArgs,
    poses: &mut Poses,
    audio: &mut Option<Audio>,
) -> Result<Local, CliError> {
    let persons = args.persons as usize;
    let period_us = ((1e6 / args.fps).round() as u64).max(1);
    let end = args
        .duration
        .map(|d| start.saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)));
    let mut local = Local::default();
    let mut sample = PoseSample::zeroed();
    let mut block = AudioBlock::zeroed();
    let mut chunk = AudioChunk::silence(48_000, 1, 0);
    let mut pose_seq = vec![0u32; persons];
    let mut audio_seq = 0u32;
    let (mut next_pose, mut next_audio) = (start, start);
    let mut next_stats = start + 1_000_000;
    let mut last = (start, engine.metrics());
    let mut pose_errors = 0u64;

    loop {
        let now = clock.now_us();
        if stop.load(Ordering::Relaxed) {
            println!("{} stopping (signal)", stamp(clock, start));
            break;
        }
        // Before the end check, so that `--duration N` gives N lines.
        if now >= next_stats {
            let m = engine.metrics();
            stats_line(clock, start, &last, now, &m, &local);
            last = (now, m);
            next_stats += 1_000_000;
            if now > next_stats {
                next_stats = now + 1_000_000;
            }
        }
        if end.is_some_and(|end| now >= end) {
            break;
        }
        // Audio losses come one event per stretch of lost chunks: one line per batch.
        let mut audio_lost = 0;
        while let Some(ev) = engine.poll_event() {
            if let Event::AudioLost { count, .. } = ev {
                audio_lost += count;
            } else if let Some(line) = describe_event(&ev) {
                println!("{} {line}", stamp(clock, start));
            }
        }
        if audio_lost > 0 {
            let ev = Event::AudioLost {
                room,
                count: audio_lost,
            };
            println!(
                "{} {}",
                stamp(clock, start),
                describe_event(&ev).unwrap_or_default()
            );
        }

        if now >= next_pose {
            for (person, seq) in pose_seq.iter_mut().enumerate() {
                poses.next(person, &mut sample)?;
                *seq += 1;
                let mut frame =
                    PoseFrame::from_arrays(*seq, person as u32, clock.now_us(), &sample.landmarks);
                frame.clamp_to_range();
                match engine.send_pose(&frame, room, Priority::NORMAL) {
                    Ok(()) => local.poses_submitted += 1,
                    Err(SendError::ShutDown) => {
                        return Err(CliError::runtime("the engine stopped unexpectedly"));
                    }
                    Err(e) => {
                        pose_errors += 1;
                        if pose_errors == 1 {
                            eprintln!("poselink: warning: a pose frame was refused: {e}");
                        }
                    }
                }
            }
            next_pose += period_us;
            if now > next_pose + 1_000_000 {
                // Fell far behind (the machine stalled): start afresh, do not burst.
                local.ticks_skipped += (now - next_pose) / period_us;
                next_pose = now + period_us;
            }
        }

        if let Some(src) = audio.as_mut()
            && now >= next_audio
        {
            src.next(&mut block)?;
            let n = block.len.min(chunk.samples.len());
            chunk.sample_rate = block.sample_rate;
            chunk.channels = block.channels;
            chunk.len = n as u16;
            chunk.samples[..n].copy_from_slice(&block.samples[..n]);
            audio_seq += 1;
            chunk.seq = audio_seq;
            chunk.capture_ts_us = clock.now_us();
            match engine.send_audio(&chunk, room, Priority::HIGH) {
                Ok(()) => local.audio_submitted += 1,
                Err(SendError::RingFull) => local.audio_ring_full += 1,
                Err(SendError::ShutDown) => {
                    return Err(CliError::runtime("the engine stopped unexpectedly"));
                }
                Err(e) => {
                    // A recorded block the protocol does not carry: skip it.
                    audio_seq -= 1;
                    eprintln!("poselink: warning: an audio block was refused: {e}");
                }
            }
            next_audio += block.duration_us().max(1_000);
            if now > next_audio + 1_000_000 {
                next_audio = now + block.duration_us().max(1_000);
            }
        }

        let mut wake = next_pose.min(next_stats);
        if audio.is_some() {
            wake = wake.min(next_audio);
        }
        if let Some(end) = end {
            wake = wake.min(end);
        }
        let now = clock.now_us();
        if wake > now {
            // At most 50 ms, so that a signal is noticed promptly.
            std::thread::sleep(Duration::from_micros((wake - now).min(50_000)));
        }
    }
    Ok(local)
}

fn stats_line(
    clock: &MonotonicClock,
    start: u64,
    last: &(u64, EngineMetrics),
    now: u64,
    m: &EngineMetrics,
    local: &Local,
) {
    let (then, p) = last;
    let secs = (now.saturating_sub(*then) as f64 / 1e6).max(1e-3);
    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
    let rtt = if m.rtt_us == 0 {
        "-".to_string()
    } else {
        format!("{:.2} ms", m.rtt_us as f64 / 1000.0)
    };
    println!(
        "{} pose {:.0}/s  audio {:.0}/s  {:.1} kbit/s  drops {}  {}  reconnects {}  rtt {rtt}",
        stamp(clock, start),
        rate(m.poses_sent, p.poses_sent),
        rate(m.audio_sent, p.audio_sent),
        rate(m.bytes_sent, p.bytes_sent) * 8.0 / 1000.0,
        engine_drops(m) + local.audio_ring_full,
        if m.connected {
            "connected"
        } else {
            "DISCONNECTED"
        },
        m.reconnects,
    );
}

fn summary(clock: &MonotonicClock, start: u64, report: &EngineReport, local: &Local) {
    let m = &report.metrics;
    let secs = (clock.now_us().saturating_sub(start) as f64 / 1e6).max(1e-3);
    println!(
        "summary: {secs:.1} s; pose frames {} sent of {} submitted; audio chunks {} sent of {} submitted \
         ({} replayed); {:.1} kB sent ({:.1} kbit/s); drops {} (ring {}, superseded {}, evicted {}, \
         refused {}, stale {}, no room {}, audio lost {}, audio ring full {}); reconnects {}{}{}",
        m.poses_sent,
        local.poses_submitted,
        m.audio_sent,
        local.audio_submitted,
        m.audio_replayed,
        m.bytes_sent as f64 / 1000.0,
        m.bytes_sent as f64 * 8.0 / 1000.0 / secs,
        engine_drops(m) + local.audio_ring_full,
        m.drops_ring,
        m.drops_superseded,
        m.drops_evicted,
        m.drops_refused,
        m.drops_stale,
        m.drops_no_room,
        m.audio_lost,
        local.audio_ring_full,
        m.reconnects,
        if local.ticks_skipped > 0 {
            format!(
                "; {} frame ticks skipped (the host stalled)",
                local.ticks_skipped
            )
        } else {
            String::new()
        },
        report
            .thread_cpu
            .map(|c| format!("; engine thread CPU {:.3} s", c.as_secs_f64()))
            .unwrap_or_default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
