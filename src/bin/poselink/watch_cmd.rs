//! `poselink watch`: joins a room as a viewer and prints, once a second, what each
//! sender's streams look like on arrival (rate, jitter, relative age, gaps), and the
//! members coming and going; optionally records one sender's stream to a file in
//! the hal's recording format (docs/RECORDING.md).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use poselink::engine::{EngineConfig, EngineHandle, Event, MemberSummary};
use poselink::proto::{AudioChunk, PoseFrame, Role};
use poselink_hal::{AudioBlock, Clock, MonotonicClock, PoseSample, Recorder};

use crate::CliError;
use crate::send_cmd::{
    Joined, check_room, describe_event, join_or_stop, on_hub, parse_duration, stamp, start_engine,
    stop_engine, stop_flag,
};

/// `poselink watch`'s arguments (the help text is the [`crate::Command::Watch`] variant's).
#[derive(Args, derive_more::Debug)]
#[command(
    after_help = "Every second, one line per sender: pose frames and audio chunks received in \
                  that second, the pose jitter, the frame age, and the gaps seen so far.\n\n\
                  About latency: a sender stamps its frames with its own monotonic clock, which has \
                  nothing in common with this machine's, so `now - capture time` would be meaningless \
                  and is not shown. What is shown instead:\n  \
                  jitter: the interarrival jitter of the pose frames (RFC 3550's running estimate of \
                  how much the spacing of arrivals differs from the spacing of capture times);\n  \
                  age: how much later than the first frame a frame arrived, relative to its capture \
                  time — its arrival minus capture time, minus the same for the sender's first frame \
                  (the baseline moves to any later frame that arrives with less delay, e.g. when the \
                  first was the hub's cached keyframe). It shows queueing building up or draining, \
                  not the absolute latency, and the two clocks' drift (typically under 0.05 ms per \
                  second) adds a slow ramp to it.\n\
                  Arrival is when this program takes the frame from its engine (within about 0.5 ms).\n\
                  Gaps: missing pose sequence numbers per person (frames the sender, the hub or the \
                  network dropped; a sender restarting its count is not a gap) and missing audio \
                  chunk numbers.\n\n\
                  --record writes one stream: the first sender whose media arrives (its first person's \
                  poses and its audio), with the sender's capture timestamps, in the format of \
                  docs/RECORDING.md; `poselink send --source replay --file FILE` plays it back. The \
                  sender is followed by its user and stream id, so the recording goes on when it \
                  reconnects under another member id (a hub restart).\n\
                  Reconnects: watch retries every 50 to 250 ms, so that it is back in the room \
                  soon after a restarted hub is up; audio a sender replays before then is relayed \
                  without it.\n\
                  Exit status: 0 after --duration or SIGINT/SIGTERM, 1 on a runtime error, 2 on a \
                  usage error or when the hub refuses the hello or the join."
)]
pub struct WatchArgs {
    /// The hub's URL: ws://HOST:PORT/, or wss://HOST:PORT/ for TLS. Give
    /// several (repeated or comma-separated, up to 8, one scheme) to fail over:
    /// when the hub dies the engine moves to the next, rejoins and replays
    #[arg(
        long,
        value_name = "URL",
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:7700/"
    )]
    pub hub: Vec<String>,

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
    #[debug("{:?}", poselink::redact::text(token))]
    pub token: String,

    /// Room to watch: 1 to 64 letters, digits and `-_.:@/`
    #[arg(long, value_name = "ROOM")]
    pub room: String,

    /// Stop after this long: seconds (`3`, `0.5`) or a duration (`90s`, `10m`) [default: until Ctrl-C]
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Record the first sender's poses and audio to FILE (see docs/RECORDING.md)
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

/// One pose stream (a sender's person).
#[derive(Default)]
struct PersonStream {
    last_seq: Option<u32>,
    last_arrival: u64,
    last_capture: u64,
    /// RFC 3550 interarrival jitter, µs.
    jitter_us: f64,
}

/// What is known of one sender.
#[derive(Default)]
struct Sender {
    user: String,
    left: bool,
    persons: BTreeMap<u32, PersonStream>,
    last_audio_seq: Option<u32>,
    /// The smallest arrival − capture time seen (starting with the first frame's), µs.
    base_delay: Option<i64>,
    // This second:
    poses: u64,
    audio: u64,
    age_sum_us: i64,
    age_max_us: i64,
    // Totals:
    total_poses: u64,
    total_audio: u64,
    pose_gaps: u64,
    audio_gaps: u64,
    first_us: u64,
    last_us: u64,
}

/// Gaps between `last` and `seq`: 0 for the next number, a duplicate, or a
/// restart (a smaller number: the sender started counting again).
fn gap(last: Option<u32>, seq: u32) -> u64 {
    match last {
        Some(l) if seq > l => u64::from(seq - l - 1),
        _ => 0,
    }
}

impl Sender {
    fn touch(&mut self, now: u64) {
        if self.first_us == 0 {
            self.first_us = now;
        }
        self.last_us = now;
        self.left = false;
    }

    fn on_pose(&mut self, frame: &PoseFrame, now: u64) {
        self.touch(now);
        self.poses += 1;
        self.total_poses += 1;
        let s = self.persons.entry(frame.person).or_default();
        self.pose_gaps += gap(s.last_seq, frame.seq);
        if s.last_seq.is_some() {
            // D = (arrival spacing) − (capture spacing); J += (|D| − J) / 16.
            let d = (now as i64 - s.last_arrival as i64)
                - (frame.capture_ts_us as i64 - s.last_capture as i64);
            s.jitter_us += ((d.unsigned_abs() as f64) - s.jitter_us) / 16.0;
        }
        s.last_seq = Some(frame.seq);
        s.last_arrival = now;
        s.last_capture = frame.capture_ts_us;

        let delay = now as i64 - frame.capture_ts_us as i64;
        let base = match self.base_delay {
            Some(b) if b <= delay => b,
            _ => {
                self.base_delay = Some(delay);
                delay
            }
        };
        let age = delay - base;
        self.age_sum_us += age;
        self.age_max_us = self.age_max_us.max(age);
    }

    fn on_audio(&mut self, chunk: &AudioChunk, now: u64) {
        self.touch(now);
        self.audio += 1;
        self.total_audio += 1;
        self.audio_gaps += gap(self.last_audio_seq, chunk.seq);
        self.last_audio_seq = Some(chunk.seq);
    }

    fn jitter_ms(&self) -> f64 {
        self.persons
            .values()
            .map(|p| p.jitter_us)
            .fold(0.0, f64::max)
            / 1000.0
    }
}

/// Who a sender is for `--record`: its user and stream id, which stay the same
/// when it reconnects under another member id (a hub restart); its member id if
/// it gave no stream id (an older sender).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Publisher {
    Stream(String, u64),
    Member(u16),
}

/// The stream `--record` writes.
struct Recording {
    path: PathBuf,
    rec: Recorder<BufWriter<File>>,
    /// The publisher recorded and its person (chosen by the first media to arrive).
    sender: Option<Publisher>,
    person: Option<u32>,
    sample: PoseSample,
    block: Box<AudioBlock>,
}

impl Recording {
    fn io_error(&self, e: std::io::Error) -> CliError {
        CliError::runtime(format!(
            "cannot write the recording {}: {e}",
            self.path.display()
        ))
    }

    /// Picks the sender on its first media; true when it is the recorded one.
    fn wants(&mut self, sender: Publisher) -> bool {
        match &self.sender {
            Some(s) => *s == sender,
            None => {
                self.sender = Some(sender);
                true
            }
        }
    }

    fn pose(&mut self, sender: Publisher, frame: &PoseFrame) -> Result<bool, CliError> {
        let first = self.sender.is_none();
        if !self.wants(sender) || *self.person.get_or_insert(frame.person) != frame.person {
            return Ok(false);
        }
        self.sample.capture_ts_us = frame.capture_ts_us;
        for (dst, lm) in self.sample.landmarks.iter_mut().zip(&frame.landmarks) {
            *dst = lm.values();
        }
        self.rec
            .write_pose(&self.sample)
            .map_err(|e| self.io_error(e))?;
        Ok(first)
    }

    fn audio(&mut self, sender: Publisher, chunk: &AudioChunk) -> Result<bool, CliError> {
        let first = self.sender.is_none();
        if !self.wants(sender) {
            return Ok(false);
        }
        let b = &mut *self.block;
        let n = chunk.pcm().len();
        b.capture_ts_us = chunk.capture_ts_us;
        b.sample_rate = chunk.sample_rate;
        b.channels = chunk.channels;
        b.len = n;
        b.samples[..n].copy_from_slice(chunk.pcm());
        b.samples[n..].fill(0);
        self.rec.write_audio(b).map_err(|e| self.io_error(e))?;
        Ok(first)
    }
}

fn who(m: &MemberSummary) -> String {
    format!("member {} ({}, {})", m.member, m.user, m.role.name())
}

/// Runs `poselink watch`.
pub fn run(args: WatchArgs) -> Result<(), CliError> {
    check_room(&args.room)?;
    let recording = match &args.record {
        Some(path) => Some(Recording {
            rec: Recorder::create(path).map_err(|e| {
                CliError::config(format!(
                    "cannot create the recording {}: {e}",
                    path.display()
                ))
            })?,
            path: path.clone(),
            sender: None,
            person: None,
            sample: PoseSample::zeroed(),
            block: Box::new(AudioBlock::zeroed()),
        }),
        None => None,
    };
    let stop = stop_flag()?;
    let cfg = EngineConfig {
        hub: args.hub.join(","),
        ca_file: args
            .ca_file
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        token: args.token.clone(),
        client: "poselink-watch".into(),
        // Back quickly after a hub restart: the senders send the audio that
        // waited during the outage as soon as they are back, and the hub
        // relays it only to who is in the room by then. A viewer retrying
        // every 50 to 250 ms (jittered) costs a dead hub nothing.
        reconnect_min_ms: 50,
        reconnect_max_ms: 250,
        ..EngineConfig::default()
    };
    let (engine, thread) = start_engine(cfg)?;
    let Joined { thread, events, .. } = join_or_stop(
        &engine,
        thread,
        &args.hub.join(", "),
        &args.room,
        Role::Viewer,
    )?;

    let clock = MonotonicClock::new();
    let start = clock.now_us();
    println!(
        "{} joined room {:?} on {} as viewer{}",
        stamp(&clock, start),
        args.room,
        on_hub(&args.hub, &engine),
        args.record
            .as_ref()
            .map(|p| format!("; recording the first sender to {}", p.display()))
            .unwrap_or_default()
    );
    let mut state = State {
        start,
        members: BTreeMap::new(),
        me: None,
        senders: BTreeMap::new(),
        recording,
    };
    let outcome = events
        .into_iter()
        .try_for_each(|ev| state.on_event(&clock, ev, start))
        .and_then(|()| watch(&engine, &clock, &stop, args.duration, &mut state));
    let report = stop_engine(&engine, thread);
    outcome?;
    let State {
        senders, recording, ..
    } = state;

    let secs = clock.now_us().saturating_sub(start) as f64 / 1e6;
    println!(
        "summary: {secs:.1} s; {} pose frames and {} audio chunks received; {} events dropped by the engine",
        report.metrics.poses_received, report.metrics.audio_received, report.metrics.events_dropped
    );
    for (id, s) in &senders {
        let active = (s.last_us.saturating_sub(s.first_us) as f64 / 1e6).max(1e-3);
        println!(
            "summary: sender {id} ({}): {} pose frames ({:.1} fps over {active:.1} s), {} audio chunks, \
             gaps: pose {} audio {}, jitter {:.2} ms",
            s.user,
            s.total_poses,
            s.total_poses.saturating_sub(1) as f64 / active,
            s.total_audio,
            s.pose_gaps,
            s.audio_gaps,
            s.jitter_ms(),
        );
    }
    if let Some(r) = recording {
        let (poses, audio, bytes) = (
            r.rec.poses_written(),
            r.rec.audio_written(),
            r.rec.bytes_written(),
        );
        r.rec.into_inner().map_err(|e| {
            CliError::runtime(format!(
                "cannot write the recording {}: {e}",
                r.path.display()
            ))
        })?;
        println!(
            "summary: recorded {poses} pose frames and {audio} audio chunks{} to {} ({bytes} bytes)",
            r.sender
                .map(|s| match s {
                    Publisher::Stream(user, id) => format!(" of sender {user} (stream {id})"),
                    Publisher::Member(m) => format!(" of sender {m}"),
                })
                .unwrap_or_default(),
            r.path.display()
        );
    }
    Ok(())
}

/// What the watch loop keeps between events.
struct State {
    start: u64,
    members: BTreeMap<u16, MemberSummary>,
    me: Option<u16>,
    senders: BTreeMap<u16, Sender>,
    recording: Option<Recording>,
}

impl State {
    fn user(&self, id: u16) -> String {
        self.members
            .get(&id)
            .map_or_else(|| "?".to_string(), |m| m.user.clone())
    }

    /// Who member `id` is, for `--record`.
    fn publisher(&self, id: u16) -> Publisher {
        match self.members.get(&id) {
            Some(m) if m.stream != 0 => Publisher::Stream(m.user.clone(), m.stream),
            _ => Publisher::Member(id),
        }
    }

    fn sender(&mut self, id: u16) -> &mut Sender {
        let user = self.user(id);
        let s = self.senders.entry(id).or_default();
        if s.user.is_empty() {
            s.user = user;
        }
        s
    }

    /// Handles one event that arrived at `now`.
    fn on_event(&mut self, clock: &MonotonicClock, ev: Event, now: u64) -> Result<(), CliError> {
        let start = self.start;
        match ev {
            Event::Pose { sender, frame, .. } => {
                self.sender(sender).on_pose(&frame, now);
                let publisher = self.publisher(sender);
                if let Some(r) = self.recording.as_mut()
                    && r.pose(publisher, &frame)?
                {
                    println!(
                        "{} recording sender {sender}: person {} and its audio",
                        stamp(clock, start),
                        frame.person
                    );
                }
            }
            Event::Audio { sender, chunk, .. } => {
                self.sender(sender).on_audio(&chunk, now);
                let publisher = self.publisher(sender);
                if let Some(r) = self.recording.as_mut()
                    && r.audio(publisher, &chunk)?
                {
                    println!(
                        "{} recording sender {sender}: its audio and its first person's poses",
                        stamp(clock, start)
                    );
                }
            }
            Event::Connected { member, hub_index } => {
                self.me = Some(member);
                println!(
                    "{} connected: we are member {member} (hub {hub_index})",
                    stamp(clock, start)
                );
            }
            Event::RoomJoined { members, .. } | Event::RoomRestored { members, .. } => {
                self.members = members.into_iter().map(|m| (m.member, m)).collect();
                let others: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| Some(m.member) != self.me)
                    .map(who)
                    .collect();
                println!(
                    "{} members: {}",
                    stamp(clock, start),
                    if others.is_empty() {
                        "none besides us".to_string()
                    } else {
                        others.join(", ")
                    }
                );
            }
            Event::MemberJoined { member, .. } => {
                println!("{} joined: {}", stamp(clock, start), who(&member));
                if let Some(s) = self.senders.get_mut(&member.member) {
                    s.user = member.user.clone();
                }
                self.members.insert(member.member, member);
            }
            Event::MemberLeft { member, reason, .. } => {
                let name = self
                    .members
                    .remove(&member)
                    .map_or_else(|| format!("member {member}"), |m| who(&m));
                println!("{} left: {name} ({reason:?})", stamp(clock, start));
                if let Some(s) = self.senders.get_mut(&member) {
                    s.left = true;
                }
            }
            other => {
                if let Some(line) = describe_event(&other) {
                    println!("{} {line}", stamp(clock, start));
                }
            }
        }
        Ok(())
    }
}

fn watch(
    engine: &EngineHandle,
    clock: &MonotonicClock,
    stop: &std::sync::atomic::AtomicBool,
    duration: Option<Duration>,
    state: &mut State,
) -> Result<(), CliError> {
    let start = state.start;
    let end =
        duration.map(|d| start.saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)));
    let mut next_stats = start + 1_000_000;
    let mut last_stats = start;
    loop {
        let now = clock.now_us();
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            println!("{} stopping (signal)", stamp(clock, start));
            return Ok(());
        }
        // Before the end check, so that `--duration N` gives N lines.
        if now >= next_stats {
            let secs = (now - last_stats) as f64 / 1e6;
            stats_lines(clock, secs, state);
            last_stats = now;
            next_stats += 1_000_000;
            if now > next_stats {
                next_stats = now + 1_000_000;
            }
        }
        if end.is_some_and(|end| now >= end) {
            return Ok(());
        }
        let mut wake = next_stats;
        if let Some(end) = end {
            wake = wake.min(end);
        }
        let wait = Duration::from_micros(wake.saturating_sub(now).min(50_000));
        if let Some(ev) = engine.wait_event(wait) {
            state.on_event(clock, ev, clock.now_us())?;
        }
    }
}

fn stats_lines(clock: &MonotonicClock, secs: f64, state: &mut State) {
    let secs = secs.max(1e-3);
    let start = state.start;
    let mut printed = false;
    for (id, s) in state.senders.iter_mut() {
        if s.left && s.poses == 0 && s.audio == 0 {
            continue;
        }
        let age = if s.poses > 0 {
            format!(
                "age {:.1} ms (max {:.1})",
                s.age_sum_us as f64 / s.poses as f64 / 1000.0,
                s.age_max_us as f64 / 1000.0
            )
        } else {
            "age -".to_string()
        };
        println!(
            "{} sender {id} ({}): pose {:.1} fps, audio {:.1}/s, jitter {:.2} ms, {age}, gaps: pose {} audio {}",
            stamp(clock, start),
            s.user,
            s.poses as f64 / secs,
            s.audio as f64 / secs,
            s.jitter_ms(),
            s.pose_gaps,
            s.audio_gaps,
        );
        s.poses = 0;
        s.audio = 0;
        s.age_sum_us = 0;
        s.age_max_us = 0;
        printed = true;
    }
    if !printed {
        let others = state
            .members
            .keys()
            .filter(|&&m| Some(m) != state.me)
            .count();
        println!(
            "{} no media ({others} other member{} in the room)",
            stamp(clock, start),
            if others == 1 { "" } else { "s" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_missing_numbers_only() {
        assert_eq!(gap(None, 5), 0);
        assert_eq!(gap(Some(1), 2), 0);
        assert_eq!(gap(Some(1), 4), 2);
        assert_eq!(gap(Some(9), 9), 0); // duplicate
        assert_eq!(gap(Some(900), 1), 0); // the sender restarted
    }

    #[test]
    fn age_is_relative_to_the_least_delayed_frame() {
        let mut s = Sender::default();
        let mut f = PoseFrame::zeroed();
        // Sender clock 1 000 000 µs ahead: absolute numbers are meaningless.
        f.seq = 1;
        f.capture_ts_us = 1_000_000;
        s.on_pose(&f, 5_000);
        f.seq = 2;
        f.capture_ts_us = 1_033_333;
        s.on_pose(&f, 5_000 + 33_333 + 2_000); // 2 ms later than the first
        assert_eq!(s.age_max_us, 2_000);
        f.seq = 4;
        f.capture_ts_us = 1_100_000;
        s.on_pose(&f, 5_000 + 100_000 - 1_000); // faster than the first: new baseline
        assert_eq!(s.base_delay, Some(5_000 - 1_000_000 - 1_000));
        assert_eq!(s.pose_gaps, 1);
        assert!(s.jitter_ms() > 0.0);
    }
}
