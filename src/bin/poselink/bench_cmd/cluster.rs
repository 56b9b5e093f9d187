//! `--hubs N`: the load on a cluster. Starts a NATS broker (`nats-server` on a
//! free loopback port, found on the PATH; or `--nats URL` for a running one),
//! then N hubs (`poselink hub --dev --cluster URL --node hub-K`, each a process
//! of its own like the single hub), waits until every hub reaches the broker
//! and hears the N − 1 others, connects the load with each room's members
//! spread round robin over the hubs (member k of a room on hub k mod N), and
//! waits until every hub knows every remote member of its rooms — so that
//! what the load then measures as loss is loss, not join lag. Around the load
//! it reads each hub's CPU time (`/proc`), its `/metrics` counters (messages to
//! and from the broker, deliveries, media the cluster link dropped) and the
//! broker's CPU time when the bench started it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poselink::loadgen::{LoadConfig, LoadGen};

use super::hub_process::{
    SpawnedHub, peak_rss_kib, pin_apart_n, proc_cpu_s, set_affinity, thread_cpu_s,
};
use super::{HubFigures, Run, load_error};
use crate::CliError;

/// The most hubs a bench starts (a hub knows at most 64 others).
pub(super) const MAX_HUBS: usize = 32;

/// The name of a hub's broker thread, as `/proc` keeps it (15 bytes).
const LINK_THREAD: &str = "poselink-cluste";

/// How the cluster is made for each run.
#[derive(Clone, Debug)]
pub(super) struct ClusterSpec {
    /// Hubs (N ≥ 2).
    pub hubs: usize,
    /// A running broker's URL; `None`: start one per run.
    pub nats: Option<String>,
    /// The CPUs of the hub side (hubs round robin, the broker on all of them),
    /// the load generator on the others; `None`: not pinned.
    pub cpus: Option<Vec<usize>>,
}

impl ClusterSpec {
    pub(super) fn new(hubs: usize, nats: Option<String>, pin: bool) -> ClusterSpec {
        ClusterSpec {
            hubs,
            nats,
            cpus: if pin { pin_apart_n(hubs) } else { None },
        }
    }
}

/// One hub's figures for the load.
#[derive(Clone, Debug)]
pub(super) struct NodeFigures {
    pub node: String,
    pub cpu_s: f64,
    /// The part of `cpu_s` spent by its broker thread (the NATS client).
    pub broker_thread_cpu_s: f64,
    pub peak_rss_kib: u64,
    /// Media this hub wrote to its local members (its `poselink_delivered_total`).
    pub delivered: u64,
}

/// The cluster's figures for the load.
#[derive(Clone, Debug)]
pub(super) struct ClusterFigures {
    pub nodes: Vec<NodeFigures>,
    /// Messages the hubs gave the broker, and took from it, during the load.
    pub broker_out: u64,
    pub broker_in: u64,
    /// Seconds between the readings before and after the load.
    pub window_s: f64,
    /// Media the cluster link dropped (full queue or ring) or could not
    /// place (a sender not yet known), over the hubs.
    pub media_dropped: u64,
    pub unknown_sender: u64,
    /// The broker's CPU time during the load, when the bench started it.
    pub broker_cpu_s: Option<f64>,
    /// The broker: started by the bench (`None`) or this URL.
    pub nats: Option<String>,
}

impl ClusterFigures {
    pub(super) fn broker_messages_per_s(&self) -> f64 {
        if self.window_s > 0.0 {
            self.broker_out as f64 / self.window_s
        } else {
            0.0
        }
    }
}

/// One run on a cluster: broker, hubs, the load, the figures.
pub(super) fn run_cluster(cfg: &LoadConfig, spec: &ClusterSpec) -> Result<Run, CliError> {
    // On a broker of someone else's, this run's rooms and hub names are its own.
    let tag = match spec.nats {
        Some(_) => format!("-{}", std::process::id()),
        None => String::new(),
    };
    let cfg = &LoadConfig {
        room_prefix: format!("{}{tag}-", cfg.room_prefix.trim_end_matches('-')),
        ..cfg.clone()
    };
    let mut broker = match &spec.nats {
        Some(url) => Broker::External(url.clone()),
        None => Broker::start(spec.cpus.as_deref())?,
    };
    let conf = HubConf::write(cfg)?;
    let mut hubs = Vec::with_capacity(spec.hubs);
    for k in 0..spec.hubs {
        let cpu = spec.cpus.as_ref().map(|c| c[k % c.len()]);
        let extra = [
            "--config".to_string(),
            conf.path.to_string_lossy().into_owned(),
            "--cluster".into(),
            broker.url(),
            "--node".into(),
            node_name(k, &tag),
        ];
        hubs.push(SpawnedHub::start(cfg, cpu, None, &extra)?);
    }
    let explain = |e: CliError, hubs: &[SpawnedHub]| match hubs.iter().find(|h| h.has_log()) {
        Some(h) => h.explain(e),
        None => e,
    };
    wait_formed(&hubs).map_err(|e| explain(e, &hubs))?;
    let addrs: Vec<SocketAddr> = hubs.iter().map(|h| h.addr).collect();
    let mut load = LoadGen::connect_spread(&addrs, cfg)
        .map_err(load_error)
        .map_err(|e| explain(e, &hubs))?;
    wait_members_known(&hubs, cfg).map_err(|e| explain(e, &hubs))?;

    let before = Reading::take(&hubs, broker.pid())?;
    let report = load
        .run()
        .map_err(load_error)
        .map_err(|e| explain(e, &hubs))?;
    let after = Reading::take(&hubs, broker.pid())?;
    let rss: Vec<Option<u64>> = hubs.iter().map(|h| peak_rss_kib(h.pid())).collect();
    drop(load);
    let mut stopped = Ok(());
    for h in hubs {
        let r = h.stop();
        if stopped.is_ok() {
            stopped = r;
        }
    }
    broker.stop();
    drop(conf);
    stopped?;

    let nodes: Vec<NodeFigures> = (0..before.hubs.len())
        .map(|k| {
            let (b, a) = (&before.hubs[k], &after.hubs[k]);
            NodeFigures {
                node: node_name(k, &tag),
                cpu_s: (a.cpu_s - b.cpu_s).max(0.0),
                broker_thread_cpu_s: (a.link_cpu_s - b.link_cpu_s).max(0.0),
                peak_rss_kib: rss[k].unwrap_or(0),
                delivered: a.delivered.saturating_sub(b.delivered),
            }
        })
        .collect();
    let sum = |f: fn(&Counters) -> u64| -> u64 {
        let total = |r: &Reading| r.hubs.iter().map(f).sum::<u64>();
        total(&after).saturating_sub(total(&before))
    };
    let figures = ClusterFigures {
        broker_out: sum(|c| c.out),
        broker_in: sum(|c| c.r#in),
        window_s: after.at.duration_since(before.at).as_secs_f64(),
        media_dropped: sum(|c| c.media_dropped),
        unknown_sender: sum(|c| c.unknown_sender),
        broker_cpu_s: match (before.broker_cpu_s, after.broker_cpu_s) {
            (Some(b), Some(a)) => Some((a - b).max(0.0)),
            _ => None,
        },
        nats: spec.nats.clone(),
        nodes,
    };
    let hub = HubFigures {
        cpu_s: figures.nodes.iter().map(|n| n.cpu_s).sum(),
        peak_rss_kib: figures.nodes.iter().map(|n| n.peak_rss_kib).sum(),
    };
    Ok(Run {
        cfg: cfg.clone(),
        report,
        hub: Some(hub),
        pinned: spec.cpus.is_some(),
        cluster: Some(figures),
        floor: None,
    })
}

/// Hub k's name in the cluster; `tag` is empty, or the bench's process id
/// on a broker given with `--nats`.
fn node_name(k: usize, tag: &str) -> String {
    format!("hub-{k}{tag}")
}

/// Members of other hubs that hub `h` of `n` must know for the load `cfg`:
/// in every room where it has members, the room's members on other hubs.
pub(super) fn expected_remote(cfg: &LoadConfig, n: usize, h: usize) -> u64 {
    let local = (0..cfg.members).filter(|k| k % n == h).count();
    if local == 0 {
        0
    } else {
        (cfg.rooms * (cfg.members - local)) as u64
    }
}

/// What every hub reads before and after the load.
struct Reading {
    at: Instant,
    hubs: Vec<Counters>,
    broker_cpu_s: Option<f64>,
}

/// One hub's CPU time and counters.
struct Counters {
    cpu_s: f64,
    /// Of which the broker thread's.
    link_cpu_s: f64,
    out: u64,
    r#in: u64,
    delivered: u64,
    media_dropped: u64,
    unknown_sender: u64,
}

impl Reading {
    fn take(hubs: &[SpawnedHub], broker: Option<u32>) -> Result<Reading, CliError> {
        let mut out = Reading {
            at: Instant::now(),
            hubs: Vec::with_capacity(hubs.len()),
            broker_cpu_s: broker.and_then(proc_cpu_s),
        };
        for (k, h) in hubs.iter().enumerate() {
            let cpu_s = proc_cpu_s(h.pid())
                .ok_or_else(|| CliError::runtime(format!("cannot read the CPU time of hub {k}")))?;
            let m = Metrics::fetch(h.addr)?;
            let c = |name: &str| m.get(name).map_or(0, |v| v as u64);
            out.hubs.push(Counters {
                cpu_s,
                link_cpu_s: thread_cpu_s(h.pid(), LINK_THREAD).unwrap_or(0.0),
                out: c("poselink_cluster_messages_out_total"),
                r#in: c("poselink_cluster_messages_in_total"),
                delivered: c("poselink_delivered_total"),
                media_dropped: c("poselink_cluster_media_dropped_total"),
                unknown_sender: c("poselink_cluster_unknown_sender_total"),
            });
        }
        Ok(out)
    }
}

/// A hub's `/metrics` page.
struct Metrics(String);

impl Metrics {
    /// `GET /metrics` from the hub at `addr` (plain HTTP; the hub answers and closes).
    fn fetch(addr: SocketAddr) -> Result<Metrics, CliError> {
        let fail = |e: std::io::Error| {
            CliError::runtime(format!("cannot read http://{addr}/metrics: {e}"))
        };
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(fail)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(fail)?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .map_err(fail)?;
        let mut text = String::new();
        s.read_to_string(&mut text).map_err(fail)?;
        match text.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(Metrics(body.into())),
            _ => Err(CliError::runtime(format!(
                "http://{addr}/metrics did not answer 200 OK"
            ))),
        }
    }

    /// The value of the line of `name` (no labels).
    fn get(&self, name: &str) -> Option<f64> {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// Polls every hub's `/metrics` until `ready` says yes for each, or `within`
/// passes; the error names the first hub not ready and what it said.
fn wait_all(
    hubs: &[SpawnedHub],
    within: Duration,
    what: &str,
    ready: impl Fn(usize, &Metrics) -> Result<(), String>,
) -> Result<(), CliError> {
    let deadline = Instant::now() + within;
    loop {
        let mut waiting = None;
        for (k, h) in hubs.iter().enumerate() {
            if let Err(why) = ready(k, &Metrics::fetch(h.addr)?) {
                waiting = Some(format!("hub {k}: {why}"));
                break;
            }
        }
        let Some(why) = waiting else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(CliError::runtime(format!(
                "{what} within {} s ({why})",
                within.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Until every hub says its broker is up and it hears the N − 1 others.
fn wait_formed(hubs: &[SpawnedHub]) -> Result<(), CliError> {
    let others = (hubs.len() - 1) as f64;
    wait_all(
        hubs,
        Duration::from_secs(15),
        "the hubs did not form a cluster",
        |_, m| {
            let up = m.get("poselink_cluster_broker_up").unwrap_or(0.0);
            let nodes = m.get("poselink_cluster_nodes").unwrap_or(0.0);
            if up < 1.0 {
                Err("poselink_cluster_broker_up is 0".into())
            } else if nodes < others {
                Err(format!("it hears {nodes} other hubs of {others}"))
            } else {
                Ok(())
            }
        },
    )
}

/// Until every hub knows every member of other hubs in its rooms.
fn wait_members_known(hubs: &[SpawnedHub], cfg: &LoadConfig) -> Result<(), CliError> {
    let n = hubs.len();
    let within = Duration::from_secs(15 + (cfg.connections() / 1000) as u64);
    wait_all(
        hubs,
        within,
        "the hubs did not learn each other's members",
        |k, m| {
            let want = expected_remote(cfg, n, k);
            let have = m.get("poselink_cluster_remote_members").unwrap_or(0.0) as u64;
            if have >= want {
                Ok(())
            } else {
                Err(format!("it knows {have} remote members of {want}"))
            }
        },
    )
}

/// The hubs' configuration file, for what has no flag: room for every
/// remote member of the load. Removed on drop.
struct HubConf {
    path: PathBuf,
}

impl HubConf {
    fn write(cfg: &LoadConfig) -> Result<HubConf, CliError> {
        let path = std::env::temp_dir().join(format!(
            "poselink-bench-cluster-{}-{}.toml",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let remotes = cfg.connections().clamp(1024, 65_000);
        std::fs::write(&path, format!("max_remote_members = {remotes}\n"))
            .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", path.display())))?;
        Ok(HubConf { path })
    }
}

impl Drop for HubConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The NATS broker of the run.
enum Broker {
    /// Started by the bench; stopped after the run.
    Spawned { child: Child, port: u16 },
    /// Given with `--nats`.
    External(String),
}

/// Where `nats-server` may be: the PATH, then the system directories a
/// package puts it in (Debian's is in /usr/sbin, not on every user's PATH).
fn find_nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

impl Broker {
    /// `nats-server -a 127.0.0.1 -p PORT` on a free port, on `cpus` if
    /// given; returns when it takes connections.
    fn start(cpus: Option<&[usize]>) -> Result<Broker, CliError> {
        let exe = find_nats_server().ok_or_else(|| {
            CliError::runtime(
                "--hubs needs a NATS broker: nats-server is not on the PATH (nor in /usr/sbin); \
                 install it (Debian/Ubuntu: apt-get install nats-server; or `cargo xtask setup`; \
                 or a release from https://github.com/nats-io/nats-server), or give --nats nats://HOST:PORT \
                 for one that runs",
            )
        })?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| CliError::runtime(format!("cannot find a free port: {e}")))?
            .port();
        let mut command = Command::new(&exe);
        if let Some(cpus) = cpus {
            use std::os::unix::process::CommandExt as _;
            let cpus = cpus.to_vec();
            // SAFETY: between fork and exec the closure only calls
            // sched_setaffinity, which is async-signal-safe, on data made before the fork.
            unsafe {
                command.pre_exec(move || {
                    set_affinity(&cpus);
                    Ok(())
                });
            }
        }
        let mut child = command
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CliError::runtime(format!("cannot start {}: {e}", exe.display())))?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(8)));
        if let Some(err) = child.stderr.take() {
            let log = Arc::clone(&log);
            // Drained for the broker's whole life, so that it never blocks on a full pipe.
            let _ = std::thread::Builder::new()
                .name("poselink-bench-natslog".into())
                .spawn(move || {
                    for line in BufReader::new(err).lines().map_while(Result::ok) {
                        let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                        if l.len() == 8 {
                            l.pop_front();
                        }
                        l.push_back(line);
                    }
                });
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let ended = !matches!(child.try_wait(), Ok(None));
            if ended || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                // Give the log thread a moment to read its last words.
                std::thread::sleep(Duration::from_millis(50));
                let tail: Vec<String> = log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned()
                    .collect();
                return Err(CliError::runtime(format!(
                    "nats-server did not take connections on 127.0.0.1:{port} within 10 s (its last words: {})",
                    tail.join(" | ")
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Broker::Spawned { child, port })
    }

    fn url(&self) -> String {
        match self {
            Broker::Spawned { port, .. } => format!("nats://127.0.0.1:{port}"),
            Broker::External(url) => url.clone(),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Broker::Spawned { child, .. } => Some(child.id()),
            Broker::External(_) => None,
        }
    }

    /// SIGTERM, up to 5 s, then SIGKILL (also on drop: a run that fails
    /// half-way leaves no broker behind).
    fn stop(&mut self) {
        let Broker::Spawned { child, .. } = self else {
            return;
        };
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        // SAFETY: kill has no memory preconditions; the pid is our own child, not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_members_each_hub_must_know() {
        let cfg = |rooms, members| LoadConfig {
            rooms,
            members,
            ..LoadConfig::default()
        };
        // 4 members over 2 hubs: 2 here, 2 there, in each of 50 rooms.
        assert_eq!(expected_remote(&cfg(50, 4), 2, 0), 100);
        assert_eq!(expected_remote(&cfg(50, 4), 2, 1), 100);
        // 3 members over 2 hubs: hub 0 has members 0 and 2, hub 1 member 1.
        assert_eq!(expected_remote(&cfg(10, 3), 2, 0), 10);
        assert_eq!(expected_remote(&cfg(10, 3), 2, 1), 20);
        // 2 members over 3 hubs: hub 2 has nobody, so knows nobody.
        assert_eq!(expected_remote(&cfg(5, 2), 3, 0), 5);
        assert_eq!(expected_remote(&cfg(5, 2), 3, 2), 0);
    }

    #[test]
    fn metrics_lines_are_read_by_exact_name() {
        let m = Metrics(
            "# HELP x\nposelink_cluster_nodes 1\nposelink_cluster_nodes_lost_total 3\n\
             poselink_delivered_total 12345\n"
                .into(),
        );
        assert_eq!(m.get("poselink_cluster_nodes"), Some(1.0));
        assert_eq!(m.get("poselink_cluster_nodes_lost_total"), Some(3.0));
        assert_eq!(m.get("poselink_delivered_total"), Some(12345.0));
        assert_eq!(m.get("poselink_cluster_broker_up"), None);
    }
}
