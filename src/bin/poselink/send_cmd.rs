//! `poselink send`: publishes a pose stream (synthetic, or a replayed recording) and
//! optionally a synthetic test tone into a room through an edge engine, paced by the
//! monotonic clock, and prints a line of statistics per second.
//!
//! The frames come from `sources`; `stream` is the sending loop and its report.
//! The helpers shared with `poselink watch` and `poselink demo` (the stop flag,
//! starting an engine, joining a room, printing an event) live in
//! `crate::session` and are re-exported here, where those commands import them.

mod sources;
mod stream;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use poselink::engine::EngineConfig;
use poselink::proto::{AudioCodec, AudioEncoding, EncoderConfig, Role};
use poselink_hal::{Clock, MonotonicClock, SyntheticAudio, SyntheticConfig, SyntheticPose};

use crate::CliError;
pub use crate::session::{
    Joined, check_room, describe_event, engine_drops, join_or_stop, on_hub, parse_duration, stamp,
    start_engine, stop_engine, stop_flag,
};
use sources::{Audio, Poses, open_replay};
use stream::{stream, summary};

/// `poselink send`'s arguments (the help text is the [`crate::Command::Send`] variant's).
#[derive(Args, derive_more::Debug)]
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

    /// How the audio is coded: pcm16 (exact samples, about 770 kbit/s) or opus
    /// (the board setting: 8 kbit/s speech in 60 ms packets, 3 chunks each;
    /// needs a build with Opus)
    #[arg(long, value_enum, value_name = "CODEC", default_value_t = AudioCodecArg::Pcm16)]
    pub audio_codec: AudioCodecArg,

    /// With --audio-codec opus: Opus's bitrate, bits per second (500 to 512000)
    #[arg(long, value_name = "BPS", default_value_t = 8_000)]
    pub opus_bitrate: u32,

    /// With --audio-codec opus: milliseconds per Opus packet, 20, 40 or 60
    /// (longer packets: fewer messages, more latency)
    #[arg(long, value_name = "MS", default_value_t = 60)]
    pub opus_packet_ms: u8,

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

/// An audio codec, as written on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AudioCodecArg {
    /// 16-bit PCM, as captured
    Pcm16,
    /// Opus (libopus)
    Opus,
}

impl SendArgs {
    /// The audio coding the flags ask for.
    fn audio_encoding(&self) -> Result<AudioEncoding, CliError> {
        let audio = match self.audio_codec {
            AudioCodecArg::Pcm16 => AudioEncoding::default(),
            AudioCodecArg::Opus => {
                if !cfg!(feature = "opus") {
                    return Err(CliError::config(
                        "--audio-codec opus: this poselink was built without Opus (the `opus` feature)",
                    ));
                }
                AudioEncoding {
                    bitrate_bps: self.opus_bitrate,
                    packet_ms: self.opus_packet_ms,
                    ..AudioEncoding::board()
                }
            }
        };
        audio
            .validate()
            .map_err(|e| CliError::config(format!("--audio-codec {:?}: {e}", self.audio_codec)))?;
        Ok(audio)
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
    let audio_encoding = args.audio_encoding()?;
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
        hub: args.hub.join(","),
        ca_file: args
            .ca_file
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        token: args.token.clone(),
        client: "poselink-send".into(),
        max_persons: persons.max(EngineConfig::default().max_persons),
        bandwidth_bytes_per_sec: args.bandwidth.unwrap_or(0),
        encoder: EncoderConfig {
            audio: audio_encoding,
            ..EncoderConfig::default()
        },
        ..EngineConfig::default()
    };
    let (engine, thread) = start_engine(cfg)?;
    let Joined {
        room,
        thread,
        events,
    } = join_or_stop(&engine, thread, &args.hub.join(", "), &args.room, role)?;
    let start = clock.now_us();
    println!(
        "{} joined room {:?} on {} as {}: sending {} person(s) at {} fps{}{}",
        stamp(&clock, start),
        args.room,
        on_hub(&args.hub, &engine),
        role.name(),
        persons,
        args.fps,
        match (&audio, args.audio) {
            (Some(Audio::Replay(..)), _) => " + the recording's audio",
            (_, true) if audio_encoding.codec == AudioCodec::Opus => " + 48 kHz mono audio as Opus",
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
