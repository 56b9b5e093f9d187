//! `poselink`: the command-line front end — run the demo, run a hub, mint access
//! tokens, stream a capture device's pose and audio into a room, watch a room,
//! measure a hub under the pose-room load.
//!
//! One module per subcommand; each exposes an `Args` struct (clap derive) and a
//! `run(args) -> Result<(), CliError>`. To add a subcommand: write its module, add
//! a variant to [`Command`] and a match arm in [`main`].
//!
//! Exit status: 0 on success, 1 on a runtime error ([`EXIT_RUNTIME`]), 2 on a
//! configuration or usage error ([`EXIT_CONFIG`], the same code clap uses for a bad
//! command line).

mod bench_cmd;
mod demo_cmd;
mod hub_cmd;
mod secret;
mod send_cmd;
mod session;
mod token_cmd;
mod watch_cmd;

use std::fmt;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for an error while running (cannot bind, IO failure, …).
pub const EXIT_RUNTIME: u8 = 1;
/// Exit status for a bad configuration or bad arguments.
pub const EXIT_CONFIG: u8 = 2;

/// Live human pose and audio from edge devices, relayed through rooms.
#[derive(Parser, Debug)]
#[command(
    name = "poselink",
    version,
    propagate_version = true,
    after_help = "Logging: set RUST_LOG (e.g. RUST_LOG=debug); the default level is info.\n\
                  Exit status: 0 on success, 1 on a runtime error, 2 on a configuration or usage error.\n\
                  See docs/OPERATIONS.md for the hub's configuration file and tokens."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run everything on this machine and measure it: an in-process hub, simulated
    /// devices streaming pose and audio, a receiver; a live table, then a performance report
    Demo(demo_cmd::DemoArgs),
    /// Run the relay hub: accept WebSocket connections and relay pose and audio within rooms
    // Boxed: its many settings would make every command as large.
    Hub(Box<hub_cmd::HubArgs>),
    /// Mint an HS256 access token (JWT) and print it to stdout
    Token(token_cmd::TokenArgs),
    /// Publish a pose stream (synthetic or a replayed recording) and audio into a room
    Send(send_cmd::SendArgs),
    /// Watch a room as a viewer: per-sender rates, jitter and gaps; optionally record it
    Watch(watch_cmd::WatchArgs),
    /// Load test: R rooms of M members publishing pose at F Hz through a hub; latency, loss, hub CPU and memory
    Bench(bench_cmd::BenchArgs),
}

/// An error a subcommand ends with: one line for stderr and an exit status.
#[derive(Debug)]
pub struct CliError {
    /// [`EXIT_CONFIG`] or [`EXIT_RUNTIME`].
    pub code: u8,
    /// What went wrong, in one line.
    pub message: String,
}

impl CliError {
    /// A configuration or usage error (exit status 2).
    pub fn config(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_CONFIG,
            message: message.into(),
        }
    }

    /// A runtime error (exit status 1).
    pub fn runtime(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_RUNTIME,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn init_logging() {
    init_logging_at("info");
}

/// Logging at `level` unless `RUST_LOG` says otherwise.
fn init_logging_at(level: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's output is its table: only warnings and errors interleave.
    match cli.command {
        Command::Demo(_) => init_logging_at("warn"),
        // The load generator's members are client sessions: a line each as
        // they open would bury the bench's own output.
        Command::Bench(_) => init_logging_at("info,poselink::client=warn"),
        _ => init_logging(),
    }
    let result = match cli.command {
        Command::Demo(args) => demo_cmd::run(args),
        Command::Hub(args) => hub_cmd::run(*args),
        Command::Token(args) => token_cmd::run(args),
        Command::Send(args) => send_cmd::run(args),
        Command::Watch(args) => watch_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the error's text holds.
            let line = e.message.replace('\n', " ");
            eprintln!("poselink: error: {line}");
            ExitCode::from(e.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn debug_of_the_arguments_hides_every_secret() {
        let secret = "flag-secret-0123456789abcdef0123456789";
        for argv in [
            &[
                "hub",
                "--secret",
                secret,
                "--cluster",
                "nats://hub:url-pw-42@broker:4222",
            ][..],
            &["token", "--secret", secret, "--user", "pi", "--room", "r"],
            &["send", "--token", "access-token-42", "--room", "r"],
            &["watch", "--token", "access-token-42", "--room", "r"],
            &["demo", "--token", "access-token-42"],
            &[
                "bench",
                "--hub",
                "127.0.0.1:7700",
                "--token",
                "access-token-42",
            ],
        ] {
            let cli = Cli::try_parse_from([&["poselink"][..], argv].concat())
                .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            for shown in [format!("{cli:?}"), format!("{cli:#?}")] {
                for hidden in [secret, "url-pw-42", "access-token-42"] {
                    assert!(!shown.contains(hidden), "{hidden} in {shown}");
                }
                assert!(shown.contains("<redacted>"), "{shown}");
            }
        }
        let env = hub_cmd::ClusterEnv {
            password: Some("env-pw-42".into()),
            token: None,
        };
        assert_eq!(
            format!("{env:?}"),
            r#"ClusterEnv { password: Some("<redacted>"), token: None }"#
        );
        let inline = secret::SecretSource::Inline(secret.into());
        assert_eq!(format!("{inline:?}"), r#"Inline("<redacted>")"#);
    }
}
