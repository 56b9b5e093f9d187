//! `poselink hub`: builds a [`HubConfig`] from a TOML file and flags, binds the hub,
//! stops it on SIGINT/SIGTERM and runs it on the main thread.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;

use clap::Args;
use log::{debug, error, info, warn};
use poselink::hub::{Hub, HubConfig};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::CliError;
use crate::secret::{self, SecretSource};

/// `poselink hub`'s arguments (the help text is the [`crate::Command::Hub`] variant's).
#[derive(Args, derive_more::Debug)]
#[command(
    after_help = "Settings come from the built-in defaults, then the --config file, then the flags: \
                  a flag overrides the file. docs/OPERATIONS.md describes every setting, \
                  including those without a flag.\n\
                  The token secret comes from --secret, --secret-file, POSELINK_SECRET, \
                  then the config file's `secret_file` or `secret`, in that order.\n\
                  The broker's password and token likewise: --cluster-password-file, \
                  POSELINK_CLUSTER_PASSWORD, then the config file's `cluster_password_file` or \
                  `cluster_password` (tokens: --cluster-token-file, POSELINK_CLUSTER_TOKEN, \
                  `cluster_token_file`, `cluster_token`); no flag holds the value itself, as `ps` \
                  would show it.\n\
                  SIGINT or SIGTERM closes every connection with \"going away\" and exits with status 0; \
                  a second signal exits at once. SIGHUP reloads the TLS certificate and key, and the \
                  broker link's CA and client certificate for its next connection (open connections stay).\n\
                  Exit status: 0 after a clean shutdown, 1 on a runtime error (e.g. the address is in use), \
                  2 on a configuration error."
)]
pub struct HubArgs {
    /// TOML configuration file; its keys are the settings' names (see docs/OPERATIONS.md)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on; WebSocket, /metrics, /healthz (liveness) and /readyz (readiness) share it [default: 0.0.0.0:7700]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// HS256 token secret, at least 32 bytes [env: POSELINK_SECRET]
    #[arg(long, value_name = "SECRET")]
    #[debug("{:?}", poselink::redact::option(secret))]
    pub secret: Option<String>,

    /// File holding the HS256 token secret; surrounding whitespace is trimmed
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// TLS certificate chain (PEM, leaf first): the port then serves wss:// and https://
    /// only; reloaded with the key on SIGHUP
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The TLS certificate's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Anonymous access for local trials: no token needed, any room, as owner. NEVER IN PRODUCTION
    #[arg(long)]
    pub dev: bool,

    /// Connections held at once (the slot table's size) [default: 1024]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Rooms that may exist at once [default: 1024]
    #[arg(long, value_name = "N")]
    pub max_rooms: Option<usize>,

    /// Members one room may hold [default: 64]
    #[arg(long, value_name = "N")]
    pub max_members: Option<usize>,

    /// Largest WebSocket message accepted, in bytes [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pub max_message: Option<usize>,

    /// WebSocket ping interval in ms; a peer silent for 3 intervals is closed [default: 5000]
    #[arg(long, value_name = "MS")]
    pub heartbeat_ms: Option<u64>,

    /// Media messages queued per receiver before the oldest pose, then audio, is dropped [default: 128]
    #[arg(long, value_name = "N")]
    pub queue_depth: Option<usize>,

    /// Messages per second one connection may send, sustained [default: 1000]
    #[arg(long, value_name = "N")]
    pub rate_messages: Option<u64>,

    /// Bytes per second one connection may send, sustained [default: 4194304]
    #[arg(long, value_name = "N")]
    pub rate_bytes: Option<u64>,

    /// How long an empty room is kept, in ms, so a rebooting board gets it back [default: 30000]
    #[arg(long, value_name = "MS")]
    pub room_grace_ms: Option<u64>,

    /// Join a cluster of hubs through this NATS server (nats://HOST:4222, or tls://HOST:4222
    /// for TLS); rooms then span the hubs (docs/CLUSTER.md)
    #[arg(long, value_name = "URL")]
    #[debug("{:?}", cluster.as_deref().map(poselink::redact::url))]
    pub cluster: Option<String>,

    /// The CA certificate (PEM) that signed the broker's certificate, e.g. a private CA;
    /// only it is trusted then, and TLS is required whatever the URL's scheme; reloaded on SIGHUP
    #[arg(long, value_name = "FILE")]
    pub cluster_ca_file: Option<PathBuf>,

    /// This hub's certificate chain (PEM) for a broker that verifies its clients; reloaded
    /// with its key on SIGHUP
    #[arg(long, value_name = "FILE", requires = "cluster_key_file")]
    pub cluster_cert_file: Option<PathBuf>,

    /// The private key (PEM) of --cluster-cert-file
    #[arg(long, value_name = "FILE", requires = "cluster_cert_file")]
    pub cluster_key_file: Option<PathBuf>,

    /// The user name this hub gives the broker; its password from --cluster-password-file
    /// or POSELINK_CLUSTER_PASSWORD
    #[arg(long, value_name = "NAME")]
    pub cluster_user: Option<String>,

    /// File holding the broker password of --cluster-user; surrounding whitespace is trimmed
    /// [env: POSELINK_CLUSTER_PASSWORD holds the password itself]
    #[arg(long, value_name = "FILE")]
    pub cluster_password_file: Option<PathBuf>,

    /// File holding a token the broker takes instead of a user and password
    /// [env: POSELINK_CLUSTER_TOKEN holds the token itself]
    #[arg(long, value_name = "FILE")]
    pub cluster_token_file: Option<PathBuf>,

    /// This hub's name in the cluster, unique among the hubs: letters, digits, - and _
    /// [default: hub-PORT]
    #[arg(long, value_name = "NAME", requires = "cluster")]
    pub node: Option<String>,

    /// Once listening, print the bound address (e.g. 127.0.0.1:41234) as one line on stdout;
    /// with --listen 127.0.0.1:0 it tells a script the port the OS chose
    #[arg(long)]
    pub print_addr: bool,
}

/// Reads the `--config` file, if any, into a configuration. A relative
/// `secret_file` in it is taken relative to the file's own directory.
fn read_config_file(path: &Path) -> Result<HubConfig, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::config(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    let mut cfg = HubConfig::from_toml(&text)
        .map_err(|e| CliError::config(format!("{}: {e}", path.display())))?;
    // Relative file names in the file are taken beside it.
    let dir = path.parent().unwrap_or(Path::new(""));
    for file in [
        &mut cfg.secret_file,
        &mut cfg.tls_cert,
        &mut cfg.tls_key,
        &mut cfg.cluster_ca_file,
        &mut cfg.cluster_cert_file,
        &mut cfg.cluster_key_file,
        &mut cfg.cluster_password_file,
        &mut cfg.cluster_token_file,
    ] {
        if let Some(f) = file.as_deref()
            && Path::new(f).is_relative()
        {
            *file = Some(path_string(&dir.join(f))?);
        }
    }
    Ok(cfg)
}

fn path_string(path: &Path) -> Result<String, CliError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| CliError::config(format!("the path {} is not valid UTF-8", path.display())))
}

/// The broker's secrets from the environment: `POSELINK_CLUSTER_PASSWORD` and
/// `POSELINK_CLUSTER_TOKEN`, each when set and not empty.
#[derive(Clone, derive_more::Debug, Default)]
pub struct ClusterEnv {
    /// `POSELINK_CLUSTER_PASSWORD`.
    #[debug("{:?}", poselink::redact::option(password))]
    pub password: Option<String>,
    /// `POSELINK_CLUSTER_TOKEN`.
    #[debug("{:?}", poselink::redact::option(token))]
    pub token: Option<String>,
}

impl ClusterEnv {
    /// The process environment's.
    pub fn from_env() -> ClusterEnv {
        let var = |name| std::env::var(name).ok().filter(|s: &String| !s.is_empty());
        ClusterEnv {
            password: var("POSELINK_CLUSTER_PASSWORD"),
            token: var("POSELINK_CLUSTER_TOKEN"),
        }
    }
}

/// The configuration the arguments ask for: defaults, then the config file, then
/// the environment's secret, then the flags; validated, and the secret checked.
/// `env_secret` is `POSELINK_SECRET` (a parameter so tests need not touch the
/// process environment); the broker's secrets from the environment are none.
#[cfg(test)]
pub fn build_config(args: &HubArgs, env_secret: Option<String>) -> Result<HubConfig, CliError> {
    build_config_with(args, env_secret, ClusterEnv::default())
}

/// [`build_config`] with the broker's secrets from `cluster_env`; the files
/// the cluster settings name are read and checked too.
pub fn build_config_with(
    args: &HubArgs,
    env_secret: Option<String>,
    cluster_env: ClusterEnv,
) -> Result<HubConfig, CliError> {
    let mut cfg = match &args.config {
        Some(path) => read_config_file(path)?,
        None => HubConfig::default(),
    };

    macro_rules! set {
        ($($field:ident),* $(,)?) => {
            $(if let Some(v) = args.$field { cfg.$field = v; })*
        };
    }
    set!(
        listen,
        max_connections,
        max_rooms,
        max_members,
        max_message,
        heartbeat_ms,
        queue_depth,
        rate_messages,
        rate_bytes,
        room_grace_ms,
    );
    if args.dev {
        cfg.dev = true;
    }
    if let Some(url) = &args.cluster {
        cfg.cluster = Some(url.clone());
    }
    if let Some(node) = &args.node {
        cfg.node = Some(node.clone());
    }
    if cfg.cluster.is_some() && cfg.node.is_none() {
        // Port 0 (the OS chooses) would name every such hub alike.
        cfg.node = Some(match cfg.listen.port() {
            0 => format!("hub-pid{}", std::process::id()),
            p => format!("hub-{p}"),
        });
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        cfg.tls_cert = Some(path_string(cert)?);
        cfg.tls_key = Some(path_string(key)?);
    }
    cluster_access(args, cluster_env, &mut cfg)?;

    // A secret from the command line or the environment replaces the file's, whichever
    // of `secret` / `secret_file` the file used.
    match secret::choose(
        args.secret.as_deref(),
        args.secret_file.as_deref(),
        env_secret,
    )? {
        Some(SecretSource::Inline(s)) => {
            cfg.secret = Some(s);
            cfg.secret_file = None;
        }
        Some(SecretSource::File(p)) => {
            cfg.secret_file = Some(path_string(&p)?);
            cfg.secret = None;
        }
        None => {}
    }
    if cfg.secret.is_some() && cfg.secret_file.is_some() {
        return Err(CliError::config(
            "the config file sets both `secret` and `secret_file`: keep one",
        ));
    }

    cfg.validate()
        .map_err(|e| CliError::config(e.to_string()))?;
    // The broker's CA, certificate, key and secret files, read now: a missing
    // or unusable one is a configuration error before anything is bound.
    cfg.check_cluster_files()
        .map_err(|e| CliError::config(e.to_string()))?;

    // Check the secret now, so that a missing file or a short secret is a clear
    // configuration error before anything is bound.
    let source = match (&cfg.secret, &cfg.secret_file) {
        (Some(s), _) => Some(SecretSource::Inline(s.clone())),
        (None, Some(f)) => Some(SecretSource::File(PathBuf::from(f))),
        (None, None) => None,
    };
    if let Some(source) = source {
        secret::key(&secret::load(&source)?)
            .map_err(|e| CliError::config(format!("token secret: {e}")))?;
    }
    Ok(cfg)
}

/// The broker link's settings from the flags and the environment: a flag
/// beats the environment, which beats the config file (whichever of the
/// inline value and its file the file used).
fn cluster_access(args: &HubArgs, env: ClusterEnv, cfg: &mut HubConfig) -> Result<(), CliError> {
    let path = |p: &Option<PathBuf>| p.as_deref().map(path_string).transpose();
    if let Some(ca) = path(&args.cluster_ca_file)? {
        cfg.cluster_ca_file = Some(ca);
    }
    if let (Some(cert), Some(key)) = (
        path(&args.cluster_cert_file)?,
        path(&args.cluster_key_file)?,
    ) {
        cfg.cluster_cert_file = Some(cert);
        cfg.cluster_key_file = Some(key);
    }
    if let Some(user) = &args.cluster_user {
        cfg.cluster_user = Some(user.clone());
    }
    if let Some(f) = path(&args.cluster_password_file)? {
        (cfg.cluster_password_file, cfg.cluster_password) = (Some(f), None);
    } else if let Some(p) = env.password {
        (cfg.cluster_password, cfg.cluster_password_file) = (Some(p), None);
    }
    if let Some(f) = path(&args.cluster_token_file)? {
        (cfg.cluster_token_file, cfg.cluster_token) = (Some(f), None);
    } else if let Some(t) = env.token {
        (cfg.cluster_token, cfg.cluster_token_file) = (Some(t), None);
    }
    Ok(())
}

/// Runs `poselink hub` until SIGINT or SIGTERM.
pub fn run(args: HubArgs) -> Result<(), CliError> {
    let cfg = build_config_with(&args, secret::from_env(), ClusterEnv::from_env())?;
    if cfg.dev {
        warn!(
            "!!! DEV MODE: anonymous access is ON — every client is accepted without a token and may join any room as owner !!!"
        );
        warn!(
            "!!! never use --dev (or `dev = true`) in production: anyone who can reach this port can read and publish everything !!!"
        );
    }
    let (listen, metrics, tls) = (cfg.listen, cfg.metrics, cfg.tls_cert.is_some());
    // Logged field by field: the configuration holds the secret.
    debug!(
        "hub config: max_connections {}, max_rooms {}, max_members {}, max_message {} B, heartbeat {} ms, \
         queue_depth {}, rate {} msg/s and {} B/s, room grace {} ms, metrics {}",
        cfg.max_connections,
        cfg.max_rooms,
        cfg.max_members,
        cfg.max_message,
        cfg.heartbeat_ms,
        cfg.queue_depth,
        cfg.rate_messages,
        cfg.rate_bytes,
        cfg.room_grace_ms,
        if cfg.metrics { "on" } else { "off" },
    );

    let hub = Hub::bind(cfg).map_err(|e| match e.kind() {
        // The hub refuses a configuration it cannot start with as InvalidInput.
        io::ErrorKind::InvalidInput => CliError::config(e.to_string()),
        _ => CliError::runtime(format!("cannot start the hub on {listen}: {e}")),
    })?;
    let addr = hub.local_addr();
    if args.print_addr {
        use std::io::Write as _;
        let mut out = io::stdout().lock();
        writeln!(out, "{addr}")
            .and_then(|()| out.flush())
            .map_err(|e| CliError::runtime(format!("cannot print the address: {e}")))?;
    }
    let (ws, http) = if tls {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    let metrics_url = if metrics {
        format!(", {http}://{addr}/metrics")
    } else {
        String::new()
    };
    info!(
        "poselink hub {} listening on {addr} ({ws}://{addr}/{metrics_url}, liveness {http}://{addr}/healthz, readiness {http}://{addr}/readyz)",
        env!("CARGO_PKG_VERSION")
    );

    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| CliError::runtime(format!("cannot install the signal handlers: {e}")))?;
    let handle = hub.handle();
    thread::Builder::new()
        .name("poselink-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                if sig == SIGHUP {
                    info!("SIGHUP: reloading the TLS certificate and key, and the broker link's");
                    handle.reload_tls();
                    continue;
                }
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                if stopping {
                    warn!("{name} again: exiting at once");
                    std::process::exit(i32::from(crate::EXIT_RUNTIME));
                }
                info!(
                    "{name}: closing every connection and stopping (send it again to exit at once)"
                );
                stopping = true;
                handle.shutdown();
            }
        })
        .map_err(|e| CliError::runtime(format!("cannot start the signal thread: {e}")))?;

    match hub.run() {
        Ok(report) => {
            // The hub logs its own summary; this line says the exit was clean.
            match report.thread_cpu {
                Some(cpu) => info!(
                    "hub stopped cleanly (hub thread CPU time {:.3} s)",
                    cpu.as_secs_f64()
                ),
                None => info!("hub stopped cleanly"),
            }
            Ok(())
        }
        Err(e) => {
            error!("hub stopped on an error: {e}");
            Err(CliError::runtime(format!(
                "the hub stopped on an error: {e}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::{CommandFactory, Parser};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn hub_args(argv: &[&str]) -> HubArgs {
        let mut full = vec!["poselink", "hub"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            crate::Command::Hub(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("poselink-hubcmd-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn flags_override_the_file() {
        let dir = temp_dir("override");
        std::fs::write(dir.join("secret"), format!("  {SECRET}\n")).unwrap();
        let toml = dir.join("hub.toml");
        std::fs::write(
            &toml,
            "listen = \"127.0.0.1:9000\"\nmax_rooms = 10\nmax_members = 8\nsecret_file = \"secret\"\n",
        )
        .unwrap();
        let args = hub_args(&[
            "--config",
            toml.to_str().unwrap(),
            "--max-members",
            "16",
            "--listen",
            "127.0.0.1:0",
            "--rate-bytes",
            "65536",
            "--heartbeat-ms",
            "250",
        ]);
        let cfg = build_config(&args, None).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(cfg.max_rooms, 10);
        assert_eq!(cfg.max_members, 16);
        assert_eq!(cfg.rate_bytes, 65536);
        assert_eq!(cfg.heartbeat_ms, 250);
        assert_eq!(cfg.max_connections, HubConfig::default().max_connections);
        // The relative secret file is found beside the config file.
        assert_eq!(
            cfg.secret_file.as_deref(),
            Some(dir.join("secret").to_str().unwrap())
        );
        assert_eq!(cfg.secret, None);

        // The environment's secret replaces the file's secret_file; a flag beats both.
        let cfg = build_config(&args, Some(SECRET.into())).unwrap();
        assert_eq!(
            (cfg.secret.as_deref(), cfg.secret_file),
            (Some(SECRET), None)
        );
        let other = format!("{SECRET}-flag");
        let mut args = args;
        args.secret = Some(other.clone());
        let cfg = build_config(&args, Some(SECRET.into())).unwrap();
        assert_eq!(cfg.secret, Some(other));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refusals_are_config_errors() {
        let no_secret = build_config(&hub_args(&[]), None).unwrap_err();
        assert_eq!(no_secret.code, crate::EXIT_CONFIG);
        assert!(no_secret.message.contains("--dev"), "{}", no_secret.message);

        build_config(&hub_args(&["--dev"]), None).unwrap();

        let short = build_config(&hub_args(&["--secret", "short"]), None).unwrap_err();
        assert!(short.message.contains("32 bytes"), "{}", short.message);

        let missing = build_config(
            &hub_args(&["--secret-file", "/nonexistent/poselink-secret"]),
            None,
        )
        .unwrap_err();
        assert!(
            missing.message.contains("/nonexistent/poselink-secret"),
            "{}",
            missing.message
        );

        let limit = build_config(&hub_args(&["--dev", "--max-members", "1"]), None).unwrap_err();
        assert!(limit.message.contains("max_members"), "{}", limit.message);

        let dir = temp_dir("bad");
        let toml = dir.join("hub.toml");
        std::fs::write(&toml, "max_conections = 5\n").unwrap();
        let unknown = build_config(
            &hub_args(&["--dev", "--config", toml.to_str().unwrap()]),
            None,
        )
        .unwrap_err();
        assert!(unknown.message.contains("hub.toml"), "{}", unknown.message);
        std::fs::write(&toml, "secret = \"x\"\nsecret_file = \"y\"\n").unwrap();
        let both =
            build_config(&hub_args(&["--config", toml.to_str().unwrap()]), None).unwrap_err();
        assert!(both.message.contains("both"), "{}", both.message);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tls_files_come_from_flags_or_beside_the_config_file() {
        let dir = temp_dir("tls");
        let toml = dir.join("hub.toml");
        std::fs::write(&toml, "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n").unwrap();
        let cfg = build_config(
            &hub_args(&["--dev", "--config", toml.to_str().unwrap()]),
            None,
        )
        .unwrap();
        assert_eq!(
            cfg.tls_cert.as_deref(),
            Some(dir.join("c.pem").to_str().unwrap())
        );
        assert_eq!(
            cfg.tls_key.as_deref(),
            Some(dir.join("k.pem").to_str().unwrap())
        );
        let cfg = build_config(
            &hub_args(&["--dev", "--tls-cert", "/x/c.pem", "--tls-key", "/x/k.pem"]),
            None,
        )
        .unwrap();
        assert_eq!(cfg.tls_cert.as_deref(), Some("/x/c.pem"));
        // One without the other is refused, by the flags and by the file.
        assert!(Cli::try_parse_from(["poselink", "hub", "--dev", "--tls-cert", "c.pem"]).is_err());
        std::fs::write(&toml, "tls_cert = \"c.pem\"\n").unwrap();
        let e = build_config(
            &hub_args(&["--dev", "--config", toml.to_str().unwrap()]),
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("tls_key"), "{}", e.message);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn broker_files_and_secrets_come_from_flags_the_environment_or_beside_the_file() {
        let dir = temp_dir("broker");
        let ca = poselink::tls::private_ca(&["broker"], -1, 30).unwrap();
        std::fs::write(dir.join("ca.pem"), &ca.ca_pem).unwrap();
        std::fs::write(dir.join("pw"), "from-file\n").unwrap();
        let toml = dir.join("hub.toml");
        std::fs::write(
            &toml,
            "cluster = \"tls://broker:4222\"\ncluster_ca_file = \"ca.pem\"\ncluster_user = \"hub\"\ncluster_password_file = \"pw\"\n",
        )
        .unwrap();
        let args = hub_args(&["--dev", "--config", toml.to_str().unwrap()]);
        let cfg = build_config(&args, None).unwrap();
        assert_eq!(
            cfg.cluster_ca_file.as_deref(),
            Some(dir.join("ca.pem").to_str().unwrap())
        );
        assert_eq!(
            cfg.cluster_password_file.as_deref(),
            Some(dir.join("pw").to_str().unwrap())
        );
        // The environment's password replaces the file's.
        let env = ClusterEnv {
            password: Some("from-env".into()),
            token: None,
        };
        let cfg = build_config_with(&args, None, env.clone()).unwrap();
        assert_eq!(
            (cfg.cluster_password.as_deref(), cfg.cluster_password_file),
            (Some("from-env"), None)
        );
        // A flag beats the environment.
        let pw = dir.join("pw").to_str().unwrap().to_string();
        let flagged = hub_args(&[
            "--dev",
            "--config",
            toml.to_str().unwrap(),
            "--cluster-password-file",
            &pw,
        ]);
        let cfg = build_config_with(&flagged, None, env).unwrap();
        assert_eq!(cfg.cluster_password, None);
        // A file that is not there is refused at start, naming the setting.
        let missing = build_config(
            &hub_args(&[
                "--dev",
                "--config",
                toml.to_str().unwrap(),
                "--cluster-ca-file",
                "/nonexistent/ca.pem",
            ]),
            None,
        )
        .unwrap_err();
        assert_eq!(missing.code, crate::EXIT_CONFIG);
        assert!(
            missing
                .message
                .contains("cluster_ca_file /nonexistent/ca.pem"),
            "{}",
            missing.message
        );
        // A user without a password, and a key without a certificate.
        let e = build_config(
            &hub_args(&[
                "--dev",
                "--cluster",
                "nats://b:4222",
                "--cluster-user",
                "hub",
            ]),
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("cluster_user"), "{}", e.message);
        assert!(
            Cli::try_parse_from(["poselink", "hub", "--dev", "--cluster-key-file", "k"]).is_err()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The defaults written into the help texts are the configuration's defaults.
    #[test]
    fn help_shows_the_real_defaults() {
        let d = HubConfig::default();
        let expected: [(&str, String); 10] = [
            ("listen", d.listen.to_string()),
            ("max_connections", d.max_connections.to_string()),
            ("max_rooms", d.max_rooms.to_string()),
            ("max_members", d.max_members.to_string()),
            ("max_message", d.max_message.to_string()),
            ("heartbeat_ms", d.heartbeat_ms.to_string()),
            ("queue_depth", d.queue_depth.to_string()),
            ("rate_messages", d.rate_messages.to_string()),
            ("rate_bytes", d.rate_bytes.to_string()),
            ("room_grace_ms", d.room_grace_ms.to_string()),
        ];
        let cli = Cli::command();
        let hub = cli.find_subcommand("hub").unwrap();
        for (id, value) in expected {
            let arg = hub.get_arguments().find(|a| a.get_id() == id).unwrap();
            let help = arg.get_help().unwrap().to_string();
            assert!(
                help.ends_with(&format!("[default: {value}]")),
                "--{id}: {help}"
            );
        }
    }
}
