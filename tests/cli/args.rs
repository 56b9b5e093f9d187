//! The `poselink` binary, run as a subprocess: `token` minting, argument and
//! configuration errors, help texts, and the sample `examples/hub.toml`. (Running the
//! hub itself is tested elsewhere.) Every subprocess is bounded by a timeout.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use poselink::hub::HubConfig;
use poselink::proto::Role;
use poselink::token::TokenKey;

const SECRET: &str = "0123456789abcdef0123456789abcdef-cli-test";
const TIMEOUT: Duration = Duration::from_secs(10);

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `poselink args…` without `POSELINK_SECRET` (unless `env` sets it), killing it
/// after [`TIMEOUT`].
fn poselink(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_poselink"));
    cmd.args(args)
        .env_remove("POSELINK_SECRET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn poselink");
    // Drain both pipes on their own threads so a chatty child cannot block.
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("poselink {args:?} did not exit within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("poselink-cli-{}-{name}", std::process::id()))
}

#[test]
fn token_mints_a_token_the_key_verifies() {
    let before = now_secs();
    let out = poselink(
        &[
            "token",
            "--secret",
            SECRET,
            "--user",
            "pi-kitchen",
            "--room",
            "studio-*",
            "--room",
            "gym",
            "--role",
            "viewer",
            "--ttl",
            "15m",
        ],
        &[],
    );
    let after = now_secs();
    assert!(out.status.success(), "{}", out.stderr);
    // Exactly the token and a newline: `TOKEN=$(poselink token …)` works.
    let token = out.stdout.strip_suffix('\n').expect("a trailing newline");
    assert!(!token.contains(char::is_whitespace), "{:?}", out.stdout);
    assert_eq!(token.split('.').count(), 3);

    let key = TokenKey::hs256(SECRET.as_bytes()).unwrap();
    let claims = key.verify(token, before).unwrap();
    assert_eq!(claims.sub, "pi-kitchen");
    assert!(
        (before + 900..=after + 900).contains(&claims.exp),
        "{}",
        claims.exp
    );
    let rooms: Vec<_> = claims
        .rooms
        .iter()
        .map(|g| (g.room.as_str(), g.role, g.create))
        .collect();
    assert_eq!(
        rooms,
        [
            ("studio-*", Role::Viewer, true),
            ("gym", Role::Viewer, true)
        ]
    );
    assert_eq!(claims.allows("studio-3", Role::Viewer), Ok(true));
    assert!(claims.allows("studio-3", Role::Member).is_err());
    // Signed with this secret and no other.
    let other = TokenKey::hs256(b"another secret that is 32 bytes long").unwrap();
    assert!(other.verify(token, before).is_err());
}

#[test]
fn token_secret_from_a_file_or_the_environment() {
    let file = temp_path("secret");
    std::fs::write(&file, format!("\n  {SECRET}\n\n")).unwrap();
    let out = poselink(
        &[
            "token",
            "--secret-file",
            file.to_str().unwrap(),
            "--user",
            "browser-1",
            "--room",
            "*",
            "--no-create",
        ],
        &[],
    );
    std::fs::remove_file(&file).unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    let key = TokenKey::hs256(SECRET.as_bytes()).unwrap();
    let claims = key.verify(out.stdout.trim_end(), now_secs()).unwrap();
    // The default role and lifetime: member, one hour.
    assert_eq!(claims.rooms.len(), 1);
    assert_eq!(
        (
            claims.rooms[0].room.as_str(),
            claims.rooms[0].role,
            claims.rooms[0].create
        ),
        ("*", Role::Member, false)
    );
    let ttl = claims.exp - now_secs();
    assert!((3590..=3600).contains(&ttl), "{ttl}");

    let out = poselink(
        &["token", "--user", "u1", "--room", "r1", "--role", "owner"],
        &[("POSELINK_SECRET", SECRET)],
    );
    assert!(out.status.success(), "{}", out.stderr);
    let claims = key.verify(out.stdout.trim_end(), now_secs()).unwrap();
    assert_eq!(claims.rooms[0].role, Role::Owner);
}

#[test]
fn token_refuses_a_short_secret() {
    let out = poselink(
        &[
            "token",
            "--secret",
            "too short",
            "--user",
            "u",
            "--room",
            "r",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    assert!(out.stderr.contains("32 bytes"), "{}", out.stderr);
}

#[test]
fn token_refuses_bad_names() {
    for (flag, value) in [
        ("--room", "has space"),
        ("--room", "a*b"),
        ("--room", ""),
        ("--user", "bad user"),
    ] {
        let (user, room) = if flag == "--user" {
            (value, "gym")
        } else {
            ("u", value)
        };
        let out = poselink(
            &["token", "--secret", SECRET, "--user", user, "--room", room],
            &[],
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "{flag} {value:?}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{:?}", out.stdout);
        assert!(
            out.stderr.contains(flag) && out.stderr.contains(&format!("{value:?}")),
            "{flag} {value:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("letters, digits"), "{}", out.stderr);
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    }
    // No secret at all.
    let out = poselink(&["token", "--user", "u", "--room", "r"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("POSELINK_SECRET"), "{}", out.stderr);
    // A bad duration is a usage error.
    let out = poselink(
        &[
            "token", "--secret", SECRET, "--user", "u", "--room", "r", "--ttl", "soon",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--ttl"), "{}", out.stderr);
}

#[test]
fn help_and_version() {
    let out = poselink(&["hub", "--help"], &[]);
    assert!(out.status.success(), "{}", out.stderr);
    for flag in [
        "--config",
        "--listen",
        "--secret",
        "--secret-file",
        "--dev",
        "--max-connections",
        "--max-rooms",
        "--max-members",
        "--max-message",
        "--heartbeat-ms",
        "--queue-depth",
        "--rate-messages",
        "--rate-bytes",
        "--room-grace-ms",
    ] {
        assert!(out.stdout.contains(flag), "{flag} missing:\n{}", out.stdout);
    }
    assert!(out.stdout.contains("[default: 0.0.0.0:7700]"));

    let out = poselink(&["token", "--help"], &[]);
    assert!(out.status.success());
    for flag in [
        "--user",
        "--room",
        "--role",
        "--ttl",
        "--no-create",
        "[default: 1h]",
    ] {
        assert!(out.stdout.contains(flag), "{flag} missing:\n{}", out.stdout);
    }

    let out = poselink(&["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout.trim(),
        format!("poselink {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn hub_without_a_secret_or_dev_is_a_config_error() {
    let out = poselink(&["hub", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--dev"), "{}", out.stderr);

    // A short secret is refused before anything is bound.
    let out = poselink(
        &["hub", "--listen", "127.0.0.1:0", "--secret", "short"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("32 bytes"), "{}", out.stderr);

    // A limit out of range, and an unreadable config file.
    let out = poselink(
        &[
            "hub",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--max-members",
            "1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("max_members"), "{}", out.stderr);
    let out = poselink(&["hub", "--config", "/nonexistent/poselink-hub.toml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("/nonexistent/poselink-hub.toml"));
}

/// The settings' names, as serde lists them when refusing an unknown key.
fn config_keys() -> Vec<String> {
    let err = HubConfig::from_toml("no_such_key_ = 1\n").unwrap_err().0;
    let expected = err
        .split("expected one of")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected error text: {err}"));
    let keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(keys.len() >= 20, "{keys:?} from {err}");
    keys
}

#[test]
fn sample_hub_toml_is_valid_and_shows_the_defaults() {
    let text = include_str!("../../examples/hub.toml");
    let cfg = HubConfig::from_toml(text).unwrap();
    cfg.validate().unwrap();
    // Apart from the secret file, the sample shows every default.
    assert_eq!(
        cfg,
        HubConfig {
            secret_file: Some("/etc/poselink/secret".into()),
            ..HubConfig::default()
        }
    );
    // And it names every key, as docs/OPERATIONS.md documents every key (the
    // TLS files and the cluster with its broker's TLS and credentials
    // commented out: the sample serves plain ws://, alone).
    let ops = include_str!("../../docs/OPERATIONS.md");
    let broker_access = [
        "cluster_ca_file",
        "cluster_cert_file",
        "cluster_key_file",
        "cluster_user",
        "cluster_password_file",
        "cluster_token_file",
    ];
    for key in config_keys() {
        // `flood_close_after` is deprecated: documented, not in the sample;
        // secrets written inline are documented, not shown.
        if ![
            "secret",
            "flood_close_after",
            "cluster_password",
            "cluster_token",
        ]
        .contains(&key.as_str())
        {
            let line = |l: &str| l.trim_start_matches("# ").starts_with(&format!("{key} = "));
            assert!(
                text.lines().any(|l| line(l)
                    && (!l.starts_with('#')
                        || key.starts_with("tls_")
                        || key == "cluster"
                        || key == "node"
                        || broker_access.contains(&key.as_str()))),
                "examples/hub.toml lacks `{key}`"
            );
        }
        assert!(
            ops.contains(&format!("`{key}`")),
            "docs/OPERATIONS.md lacks `{key}`"
        );
    }
}
