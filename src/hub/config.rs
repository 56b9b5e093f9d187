//! The hub's settings: every capacity and limit, decided at start-up. Read from a
//! TOML file ([`HubConfig::from_toml`]), overridden by command-line flags, checked
//! once ([`HubConfig::validate`]) before anything is allocated.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::monitor::MonitorConfig;
use crate::proto::MAX_MESSAGE_LEN;

/// Everything the hub needs to know before it starts. All fields have defaults;
/// a TOML file names only what it changes (unknown keys are refused). `Debug`
/// shows of the secrets (`secret`, `cluster_password`, `cluster_token`, the
/// credentials in a `cluster` URL) only whether they are set.
///
/// ```
/// use poselink::hub::HubConfig;
/// let cfg = HubConfig::from_toml("max_connections = 64\nroom_grace_ms = 5000\ndev = true\n").unwrap();
/// assert_eq!(cfg.max_connections, 64);
/// assert_eq!(cfg.max_members, 64); // a default
/// cfg.validate().unwrap();
/// ```
#[derive(Clone, derive_more::Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Address to listen on (WebSocket, `/metrics` and `/healthz` on the same port).
    pub listen: SocketAddr,
    /// Connections held at once; the slot table is this big. Default 1024.
    pub max_connections: usize,
    /// Rooms that may exist at once. Default 1024.
    pub max_rooms: usize,
    /// Members a room may hold. Default 64.
    pub max_members: usize,
    /// Rooms one connection may be a member of at once. Default 16.
    pub max_rooms_per_connection: usize,
    /// How long an empty room is kept so a rebooting board gets it back, ms. Default 30 000.
    pub room_grace_ms: u64,
    /// How long an empty room is kept that no user but its creator ever joined,
    /// ms (a longer value is cut to `room_grace_ms`). Default 5000.
    pub unshared_room_grace_ms: u64,
    /// Rooms one user (a token's `sub`; each anonymous connection is a user of
    /// its own) may have created that exist at once, empty ones in their grace
    /// period included. Default 64.
    pub max_rooms_created_per_user: usize,
    /// Rooms one connection may have created that exist at once. Default 16.
    pub max_rooms_created_per_connection: usize,
    /// Rooms one connection may create per minute, sustained. Default 60.
    pub room_creations_per_minute: u64,
    /// Rooms one connection may create in a burst. Default 10.
    pub room_creation_burst: u64,
    /// Largest WebSocket message accepted, bytes (checked before buffering). Default 65 536.
    pub max_message: usize,
    /// Time allowed for the HTTP upgrade and then for the hello, ms. Default 5000.
    pub handshake_timeout_ms: u64,
    /// WebSocket ping interval, ms; a peer silent for 3 intervals is closed. Default 5000.
    pub heartbeat_ms: u64,
    /// A receiver that accepts no bytes for this long while output waits is closed, ms. Default 10 000.
    pub stuck_timeout_ms: u64,
    /// Media messages (pose, audio) queued per receiver; beyond it the oldest pose,
    /// then the oldest audio is dropped. Default 128.
    pub queue_depth: usize,
    /// Bytes of control messages queued per receiver; control is never dropped, a
    /// receiver that lets this fill is closed. Default 32 768.
    pub control_buffer: usize,
    /// Pose keyframes kept per publisher, one per (room, person). Default 4.
    pub keyframe_slots: usize,
    /// Messages per second a connection may send (sustained). Default 1000.
    pub rate_messages: u64,
    /// Messages a connection may send in a burst. Default 500.
    pub burst_messages: u64,
    /// Bytes per second a connection may send (sustained). Default 4 MiB.
    pub rate_bytes: u64,
    /// Bytes a connection may send in a burst. Default 1 MiB.
    pub burst_bytes: u64,
    /// Messages refused at the rate limits within `flood_window_ms` that close
    /// the connection (4012 `RATE_LIMITED`): a rate of refusals, whatever the
    /// sender interleaves. Default 1000 (a second's worth of `rate_messages`
    /// over the limit).
    pub flood_close_messages: u64,
    /// Bytes refused at the rate limits within `flood_window_ms` that close the
    /// connection. Default 4 MiB (a second's worth of `rate_bytes`).
    pub flood_close_bytes: u64,
    /// The sliding window over which refusals are counted, ms. Default 1000.
    pub flood_window_ms: u64,
    /// Deprecated: the old name of `flood_close_messages` (it counted refusals
    /// in a row, which one accepted message reset). Still read, with a warning.
    pub flood_close_after: Option<u64>,
    /// Bytes the hub reads from one connection per loop turn before it turns
    /// to the others; a connection with refusals in its flood window gets 4 KiB
    /// per 20 ms tick instead. Default 262 144.
    pub read_budget: usize,
    /// HS256 secret for tokens (at least 32 bytes). Prefer `secret_file` or the
    /// `POSELINK_SECRET` environment variable over writing it into a file.
    #[debug("{:?}", crate::redact::option(secret))]
    pub secret: Option<String>,
    /// A file holding the HS256 secret (surrounding whitespace is trimmed).
    pub secret_file: Option<String>,
    /// TLS: the certificate chain (PEM, leaf first). With `tls_key`, the port
    /// serves `wss://` and `https://` only; reloaded on SIGHUP
    /// ([`HubHandle::reload_tls`](crate::hub::HubHandle::reload_tls)).
    pub tls_cert: Option<String>,
    /// TLS: the private key of `tls_cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<String>,
    /// Anonymous access for local trials: every hello is accepted without a token
    /// and may join any room as owner. Never for production.
    pub dev: bool,
    /// Serve `GET /metrics` (Prometheus text) and `GET /report` (JSON). Default true.
    pub metrics: bool,
    /// Serve the browser front end: the room list at `/` and the live viewer at
    /// `/view/<room>` (docs/VIEWER.md). Default true.
    pub viewer: bool,
    /// Warn (once per crossing) when the hub process's CPU is above this, percent
    /// of one core; 0 turns the alert off. Default 90.
    pub alert_cpu_percent: u32,
    /// Warn when the hub's resident memory has grown by more than this since
    /// start, MiB; 0 turns it off. Default 256 (the hub allocates its tables at
    /// start, so growth means a leak).
    pub alert_memory_growth_mb: u64,
    /// Warn when the relay latency's p99 over the last 10 s is above this, ms; 0
    /// turns it off. Default 50.
    pub alert_latency_p99_ms: u64,
    /// Warn when the SoC temperature is above this, °C; 0 turns it off. Default 80.
    pub alert_soc_temp_c: u32,
    /// Join a cluster of hubs through this NATS server (`nats://HOST:4222`, or
    /// `tls://HOST:4222` for TLS; several separated by commas); none: a hub
    /// alone (docs/CLUSTER.md). Credentials in it (`nats://user:pass@HOST`)
    /// are used, and never logged.
    #[debug("{:?}", cluster.as_deref().map(crate::redact::url))]
    pub cluster: Option<String>,
    /// The broker link's TLS: the CA certificate(s) (PEM) that signed the
    /// broker's certificate; only these are trusted then (without it: the
    /// system's roots). Implies TLS, whatever the URL's scheme. Read again on
    /// SIGHUP for the next connection to the broker.
    pub cluster_ca_file: Option<String>,
    /// The broker link's TLS: this hub's certificate chain (PEM, leaf first),
    /// for a broker that verifies its clients (`verify: true`). With
    /// `cluster_key_file`; implies TLS. Both read again on SIGHUP for the
    /// next connection to the broker.
    pub cluster_cert_file: Option<String>,
    /// The private key (PEM) of `cluster_cert_file`.
    pub cluster_key_file: Option<String>,
    /// The user name this hub gives the broker, with `cluster_password` or
    /// `cluster_password_file`.
    pub cluster_user: Option<String>,
    /// The broker password of `cluster_user`. Prefer `cluster_password_file`
    /// or the `POSELINK_CLUSTER_PASSWORD` environment variable.
    #[debug("{:?}", crate::redact::option(cluster_password))]
    pub cluster_password: Option<String>,
    /// A file holding the broker password (surrounding whitespace trimmed).
    pub cluster_password_file: Option<String>,
    /// A token the broker takes instead of a user and password (its
    /// `authorization { token }`). Prefer `cluster_token_file` or the
    /// `POSELINK_CLUSTER_TOKEN` environment variable.
    #[debug("{:?}", crate::redact::option(cluster_token))]
    pub cluster_token: Option<String>,
    /// A file holding the broker token (surrounding whitespace trimmed).
    pub cluster_token_file: Option<String>,
    /// This hub's name in the cluster: 1 to 32 bytes of letters, digits and
    /// `-_`, unique among the hubs. Default: `hub-` and the listening port.
    pub node: Option<String>,
    /// How often this hub tells the others it is alive, ms. Default 1000.
    pub cluster_heartbeat_ms: u64,
    /// A hub not heard from for this long is taken for dead: its members leave
    /// every room here (`member_left`, reason `timed_out`), ms. Default 3000.
    pub cluster_node_timeout_ms: u64,
    /// Messages each way between the hub's loop and its broker thread: the
    /// rings' capacity (media; control has a quarter of it). A full media ring
    /// drops its oldest pose first, counted. Default 1024.
    pub cluster_ring: usize,
    /// Members of other hubs this hub may know at once (in rooms it has local
    /// members of). Default 1024.
    pub max_remote_members: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 7700)),
            max_connections: 1024,
            max_rooms: 1024,
            max_members: 64,
            max_rooms_per_connection: 16,
            room_grace_ms: 30_000,
            unshared_room_grace_ms: 5_000,
            max_rooms_created_per_user: 64,
            max_rooms_created_per_connection: 16,
            room_creations_per_minute: 60,
            room_creation_burst: 10,
            max_message: MAX_MESSAGE_LEN,
            handshake_timeout_ms: 5_000,
            heartbeat_ms: 5_000,
            stuck_timeout_ms: 10_000,
            queue_depth: 128,
            control_buffer: 32 * 1024,
            keyframe_slots: 4,
            rate_messages: 1_000,
            burst_messages: 500,
            rate_bytes: 4 << 20,
            burst_bytes: 1 << 20,
            flood_close_messages: 1_000,
            flood_close_bytes: 4 << 20,
            flood_window_ms: 1_000,
            flood_close_after: None,
            read_budget: 256 * 1024,
            secret: None,
            secret_file: None,
            tls_cert: None,
            tls_key: None,
            dev: false,
            metrics: true,
            viewer: true,
            alert_cpu_percent: 90,
            alert_memory_growth_mb: 256,
            alert_latency_p99_ms: 50,
            alert_soc_temp_c: 80,
            cluster: None,
            cluster_ca_file: None,
            cluster_cert_file: None,
            cluster_key_file: None,
            cluster_user: None,
            cluster_password: None,
            cluster_password_file: None,
            cluster_token: None,
            cluster_token_file: None,
            node: None,
            cluster_heartbeat_ms: 1_000,
            cluster_node_timeout_ms: 3_000,
            cluster_ring: 1024,
            max_remote_members: 1024,
        }
    }
}

/// A setting the hub cannot start with, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "hub configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl HubConfig {
    /// Reads a configuration from TOML text (keys as the field names).
    /// A deprecated key is taken over into its new name, with a warning.
    pub fn from_toml(text: &str) -> Result<HubConfig, ConfigError> {
        let mut cfg: HubConfig = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        cfg.take_deprecated();
        Ok(cfg)
    }

    /// Moves deprecated keys' values to their new names (the new name wins when
    /// both are set), warning once for each.
    pub fn take_deprecated(&mut self) {
        if let Some(n) = self.flood_close_after.take() {
            if self.flood_close_messages == HubConfig::default().flood_close_messages {
                self.flood_close_messages = n;
            }
            log::warn!(
                "hub configuration: `flood_close_after` is deprecated; it is read as `flood_close_messages = {}` (refusals within `flood_window_ms`, not in a row): rename it",
                self.flood_close_messages
            );
        }
    }

    /// The performance monitor's settings: ten one-second slots and the alert
    /// thresholds above.
    pub fn monitor_config(&self) -> MonitorConfig {
        let on = |v: u64| (v > 0).then_some(v);
        MonitorConfig {
            cpu_percent: on(self.alert_cpu_percent.into()).map(|v| v as f32),
            memory_growth_bytes: on(self.alert_memory_growth_mb).map(|v| v << 20),
            latency_p99_us: on(self.alert_latency_p99_ms).map(|v| v * 1000),
            soc_temp_c: on(self.alert_soc_temp_c.into()).map(|v| v as f32),
            ..MonitorConfig::default()
        }
    }

    /// A configuration for tests and demos: loopback, port chosen by the OS,
    /// anonymous access, small tables.
    pub fn local_dev() -> HubConfig {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_connections: 256,
            max_rooms: 64,
            dev: true,
            ..HubConfig::default()
        }
    }

    /// Reads the files the cluster settings name (CA, client certificate and
    /// key, password or token file) and checks them as the broker thread
    /// will, so that a command line can refuse them at start; the hub itself
    /// runs alone, the reason logged, when they fail it later.
    pub fn check_cluster_files(&self) -> Result<(), ConfigError> {
        if self.cluster.is_none() {
            return Ok(());
        }
        super::driver::cluster_access::prepare(self)
            .map(drop)
            .map_err(ConfigError)
    }

    /// Checks every limit; the hub refuses to start otherwise.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: &str| Err(ConfigError(s.to_string()));
        if self.max_connections == 0 || self.max_connections > 60_000 {
            return err("max_connections must be 1 to 60000");
        }
        if self.max_rooms == 0 || self.max_rooms > 65_000 {
            return err("max_rooms must be 1 to 65000");
        }
        if self.max_members < 2 || self.max_members > 4096 {
            return err("max_members must be 2 to 4096");
        }
        if self.max_rooms_per_connection == 0 || self.max_rooms_per_connection > 256 {
            return err("max_rooms_per_connection must be 1 to 256");
        }
        if self.max_rooms_created_per_user == 0 || self.max_rooms_created_per_connection == 0 {
            return err(
                "max_rooms_created_per_user and max_rooms_created_per_connection must be at least 1",
            );
        }
        if self.room_creations_per_minute == 0 || self.room_creation_burst == 0 {
            return err("room_creations_per_minute and room_creation_burst must be at least 1");
        }
        if self.max_message < 4096 || self.max_message > MAX_MESSAGE_LEN {
            return err("max_message must be 4096 to 65536 bytes");
        }
        if self.heartbeat_ms < 100 || self.handshake_timeout_ms < 100 || self.stuck_timeout_ms < 100
        {
            return err(
                "heartbeat_ms, handshake_timeout_ms and stuck_timeout_ms must be at least 100",
            );
        }
        if self.queue_depth < 4 || self.queue_depth > 65_536 {
            return err("queue_depth must be 4 to 65536");
        }
        if self.control_buffer < 8192 {
            return err("control_buffer must be at least 8192 bytes (a room snapshot must fit)");
        }
        if self.keyframe_slots == 0 || self.keyframe_slots > 64 {
            return err("keyframe_slots must be 1 to 64");
        }
        if let Some(url) = &self.cluster
            && !(url.starts_with("nats://") || url.starts_with("tls://"))
        {
            return Err(ConfigError(format!(
                "cluster must be a NATS URL such as nats://127.0.0.1:4222 (got {url:?})"
            )));
        }
        self.validate_cluster_access()?;
        if let Some(node) = &self.node
            && !crate::hub::core::cluster::valid_node_name(node)
        {
            return Err(ConfigError(format!(
                "node must be 1 to 32 bytes of letters, digits, `-` and `_` (got {node:?})"
            )));
        }
        if self.cluster_heartbeat_ms < 50
            || self.cluster_node_timeout_ms < 2 * self.cluster_heartbeat_ms
        {
            return err(
                "cluster_heartbeat_ms must be at least 50 and cluster_node_timeout_ms at least twice it",
            );
        }
        if self.cluster_ring < 16 || self.cluster_ring > 1 << 20 {
            return err("cluster_ring must be 16 to 1048576");
        }
        if self.max_remote_members > 65_000 {
            return err("max_remote_members must be at most 65000");
        }
        if self.rate_messages == 0 || self.burst_messages == 0 || self.rate_bytes == 0 {
            return err("rate limits must be positive");
        }
        if self.flood_close_messages == 0 || self.flood_close_bytes == 0 {
            return err("flood_close_messages and flood_close_bytes must be positive");
        }
        if self.flood_window_ms < 10 || self.flood_window_ms > 60_000 {
            return err("flood_window_ms must be 10 to 60000");
        }
        if self.read_budget < 4096 {
            return err("read_budget must be at least 4096 bytes");
        }
        if self.burst_bytes < self.max_message as u64 {
            return err(
                "burst_bytes must be at least max_message, or a largest message could never pass",
            );
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return err(
                "TLS needs both tls_cert and tls_key (the certificate chain and its private key, PEM)",
            );
        }
        if !self.dev && self.secret.is_none() && self.secret_file.is_none() {
            return err(
                "no token secret: set `secret_file` (or POSELINK_SECRET / --secret), or run with --dev for anonymous local trials",
            );
        }
        Ok(())
    }
}

impl HubConfig {
    /// The broker link's TLS and credential settings: pairs complete, one
    /// kind of credentials, none without `cluster`.
    fn validate_cluster_access(&self) -> Result<(), ConfigError> {
        let err = |s: &str| Err(ConfigError(s.to_string()));
        let set = [
            ("cluster_ca_file", self.cluster_ca_file.is_some()),
            ("cluster_cert_file", self.cluster_cert_file.is_some()),
            ("cluster_key_file", self.cluster_key_file.is_some()),
            ("cluster_user", self.cluster_user.is_some()),
            ("cluster_password", self.cluster_password.is_some()),
            (
                "cluster_password_file",
                self.cluster_password_file.is_some(),
            ),
            ("cluster_token", self.cluster_token.is_some()),
            ("cluster_token_file", self.cluster_token_file.is_some()),
        ];
        let Some(url) = &self.cluster else {
            return match set.iter().find(|(_, on)| *on) {
                Some((name, _)) => Err(ConfigError(format!(
                    "{name} is set but cluster is not: set cluster to the broker's URL, or remove {name}"
                ))),
                None => Ok(()),
            };
        };
        if self.cluster_cert_file.is_some() != self.cluster_key_file.is_some() {
            return err(
                "a client certificate for the broker needs both cluster_cert_file and cluster_key_file (the certificate chain and its private key, PEM)",
            );
        }
        if self.cluster_password.is_some() && self.cluster_password_file.is_some() {
            return err("give either cluster_password or cluster_password_file, not both");
        }
        if self.cluster_token.is_some() && self.cluster_token_file.is_some() {
            return err("give either cluster_token or cluster_token_file, not both");
        }
        let password = self.cluster_password.is_some() || self.cluster_password_file.is_some();
        let token = self.cluster_token.is_some() || self.cluster_token_file.is_some();
        if self.cluster_user.is_some() != password {
            return err(
                "broker credentials need both cluster_user and a password (cluster_password_file, POSELINK_CLUSTER_PASSWORD or cluster_password)",
            );
        }
        if password && token {
            return err(
                "give the broker either cluster_user and a password, or cluster_token, not both",
            );
        }
        if (password || token) && super::driver::cluster_access::has_credentials(url) {
            return err(
                "the cluster URL holds credentials (user:pass@ or token@) and cluster_user or cluster_token is set too: keep one (the settings keep the secret out of the URL)",
            );
        }
        if self.cluster_user.as_deref() == Some("") {
            return err("cluster_user is empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_whether_a_secret_is_set_never_its_text() {
        let cfg = HubConfig {
            secret: Some("token-secret-0123456789abcdef0123456789".into()),
            cluster: Some("nats://hub:url-password-42@broker:4222".into()),
            cluster_user: Some("hub-user".into()),
            cluster_password: Some("broker-password-42".into()),
            cluster_token: Some("broker-token-42".into()),
            ..HubConfig::local_dev()
        };
        for shown in [format!("{cfg:?}"), format!("{cfg:#?}")] {
            for secret in [
                "token-secret-0123456789abcdef0123456789",
                "url-password-42",
                "broker-password-42",
                "broker-token-42",
            ] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains("<redacted>"), "{shown}");
            // Everything else as the standard derive shows it.
            assert!(shown.contains("hub-user"), "{shown}");
            assert!(shown.contains("broker:4222"), "{shown}");
            assert!(shown.contains("max_connections: 256"), "{shown}");
        }
        let compact = format!("{cfg:?}");
        assert!(
            compact.contains(r#"secret: Some("<redacted>")"#),
            "{compact}"
        );
        assert!(compact.contains("cluster_token_file: None"), "{compact}");
    }

    #[test]
    fn cluster_access_settings_are_checked_together() {
        let ok = HubConfig {
            cluster: Some("tls://broker:4222".into()),
            node: Some("a".into()),
            ..HubConfig::local_dev()
        };
        ok.validate().unwrap();
        for good in [
            HubConfig {
                cluster_ca_file: Some("ca.pem".into()),
                cluster_cert_file: Some("c.pem".into()),
                cluster_key_file: Some("k.pem".into()),
                cluster_user: Some("hub".into()),
                cluster_password_file: Some("pw".into()),
                ..ok.clone()
            },
            HubConfig {
                cluster: Some("nats://broker:4222".into()),
                cluster_ca_file: Some("ca.pem".into()),
                cluster_token: Some("t".into()),
                ..ok.clone()
            },
            HubConfig {
                cluster: Some("nats://hub:pw@broker:4222".into()),
                ..ok.clone()
            },
        ] {
            good.validate().unwrap();
        }
        for (bad, says) in [
            (
                HubConfig {
                    cluster: None,
                    cluster_ca_file: Some("ca.pem".into()),
                    ..ok.clone()
                },
                "cluster_ca_file is set but cluster is not",
            ),
            (
                HubConfig {
                    cluster_cert_file: Some("c.pem".into()),
                    ..ok.clone()
                },
                "cluster_key_file",
            ),
            (
                HubConfig {
                    cluster_user: Some("hub".into()),
                    ..ok.clone()
                },
                "cluster_password_file",
            ),
            (
                HubConfig {
                    cluster_password: Some("pw".into()),
                    ..ok.clone()
                },
                "cluster_user",
            ),
            (
                HubConfig {
                    cluster_password: Some("pw".into()),
                    cluster_password_file: Some("pw".into()),
                    cluster_user: Some("hub".into()),
                    ..ok.clone()
                },
                "not both",
            ),
            (
                HubConfig {
                    cluster_user: Some("hub".into()),
                    cluster_password: Some("pw".into()),
                    cluster_token: Some("t".into()),
                    ..ok.clone()
                },
                "cluster_token, not both",
            ),
            (
                HubConfig {
                    cluster: Some("nats://hub:pw@broker:4222".into()),
                    cluster_token_file: Some("t".into()),
                    ..ok.clone()
                },
                "the cluster URL holds credentials",
            ),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn the_deprecated_flood_key_is_read_as_its_new_name() {
        let cfg = HubConfig::from_toml("dev = true\nflood_close_after = 300\n").unwrap();
        assert_eq!(cfg.flood_close_messages, 300);
        assert_eq!(cfg.flood_close_after, None, "taken over");
        cfg.validate().unwrap();
        // The new name wins when both are given.
        let both = "flood_close_after = 300\nflood_close_messages = 50\n";
        assert_eq!(HubConfig::from_toml(both).unwrap().flood_close_messages, 50);
    }

    #[test]
    fn creation_limits_and_flood_window_are_checked() {
        let ok = HubConfig::local_dev();
        ok.validate().unwrap();
        for bad in [
            HubConfig {
                max_rooms_created_per_user: 0,
                ..ok.clone()
            },
            HubConfig {
                room_creations_per_minute: 0,
                ..ok.clone()
            },
            HubConfig {
                flood_window_ms: 0,
                ..ok.clone()
            },
            HubConfig {
                read_budget: 100,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
