//! `poselink bench`: the pose-room load test, measured the same way every time.
//! Starts a hub as a separate process (this same executable, `poselink hub
//! --dev`, on a loopback port the OS picks) so that its CPU time and memory are
//! its own, puts the [`poselink::loadgen`] workload on it, and reads the hub's
//! CPU time (`utime + stime` of `/proc/PID/stat`) just before and just after the
//! load and its peak resident memory (`VmHWM` of `/proc/PID/status`). Prints a
//! table, or with `--json` one JSON line. `--sweep` raises the room count step by
//! step (a fresh hub per step) and reports the largest that the hub carries with
//! no loss and p99 latency within a limit: its capacity on this machine.
//! `--hubs N` starts a NATS broker and N hubs joined in a cluster instead, and
//! spreads each room's members over them.
//!
//! Every run also measures the floor of a delivery on the machine it runs on
//! (`floor`: the CPU one `write()` of a message to a loopback socket costs) and
//! reports the hub's CPU per delivery as a multiple of it.
//!
//! Here: the arguments, their checks and one run. The hub's process and its `/proc`
//! figures are in `hub_process`, the cluster's broker, hubs and waits in
//! `cluster`, the floor in `floor`, the table and JSON output in `report`,
//! `--sweep` in `sweep`.

mod cluster;
mod floor;
mod hub_process;
mod report;
mod sweep;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Args;
use poselink::loadgen::{LoadConfig, LoadError, LoadErrorKind, LoadGen, LoadReport};

use crate::CliError;
use cluster::{ClusterFigures, ClusterSpec, MAX_HUBS, run_cluster};
use floor::Floor;
use hub_process::{SpawnedHub, peak_rss_kib, pin_apart, proc_cpu_s, raise_fd_limit};
use report::{note_problems, print_table};
use sweep::sweep;

/// `poselink bench`'s arguments (the help text is the [`crate::Command::Bench`] variant's).
#[derive(Args, derive_more::Debug)]
#[command(
    after_help = "The workload (\"pose-room\"): R rooms of M members; every member publishes one \
                  33-landmark pose frame (quantised keyframe + delta) at F Hz for D seconds, and with \
                  --audio a 20 ms audio chunk (48 kHz mono PCM16) 50 times a second; every message goes \
                  to the other M-1 members of its room. Latency is the receiver's read time minus the \
                  publisher's send time, both on CLOCK_MONOTONIC (same host).\n\
                  The hub runs as a separate process (`poselink hub --dev` on a loopback port) unless \
                  --hub is given; its CPU time is read from /proc/PID/stat before and after the load, \
                  its peak memory from VmHWM.\n\
                  --hubs N starts a NATS broker (nats-server on a free loopback port; --nats URL for a \
                  running one) and N hubs (`poselink hub --dev --cluster URL --node hub-K`), spreads each \
                  room's members round robin over them (member k of a room on hub k mod N), waits until \
                  every hub knows every remote member, and adds per-hub CPU and broker messages per \
                  second to the report.\n\
                  --json prints one line: {\"system\":\"poselink\",\"rooms\":R,\"members\":M,\"hz\":F,\
                  \"duration_s\":D,\"expected\":N,\"delivered\":N,\"loss\":x,\"latency_us\":{\"p50\":..,\
                  \"p95\":..,\"p99\":..,\"max\":..},\"hub_cpu_s\":..,\"hub_peak_rss_kib\":..,\
                  \"deliveries_per_hub_cpu_s\":..,\"loadgen_cpu_s\":..,\"bytes_per_frame\":..,...} \
                  (BENCHMARKS.md describes every field and the --sweep line).\n\
                  Exit status: 0 when the load ran (whatever it measured), 1 if it could not run, \
                  2 on bad arguments.\n\
                  Examples:\n  poselink bench\n  poselink bench --rooms 250 --json\n  \
                  poselink bench --sweep\n  poselink bench --hubs 2 --rooms 50 --json"
)]
pub struct BenchArgs {
    /// Rooms (R)
    #[arg(long, value_name = "R", default_value_t = 10)]
    pub rooms: usize,

    /// Members per room (M), each a connection that publishes and receives
    #[arg(long, value_name = "M", default_value_t = 4)]
    pub members: usize,

    /// Pose frames per second per member (F)
    #[arg(long, value_name = "F", default_value_t = 60)]
    pub hz: u32,

    /// Seconds every member publishes (D) [default: 10, or 5 per step with --sweep]
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,

    /// Also publish audio: 20 ms chunks, 50 a second per member
    #[arg(long)]
    pub audio: bool,

    /// Load a hub that is already running instead of starting one (ws://HOST:PORT/)
    #[arg(long, value_name = "URL")]
    pub hub: Option<String>,

    /// With --hub: the hub's process id on this host, for its CPU time and peak memory
    #[arg(long, value_name = "PID", requires = "hub")]
    pub hub_pid: Option<u32>,

    /// With --hub: the access token every member sends (a hub the bench starts runs with --dev)
    #[arg(long, value_name = "TOKEN", requires = "hub")]
    #[debug("{:?}", poselink::redact::option(token))]
    pub token: Option<String>,

    /// Load-generator threads [default: one per 500 connections, at most one per CPU]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Let the scheduler place the hub and the load generator anywhere (by default a hub the
    /// bench starts is pinned to one CPU and the load generator to the others)
    #[arg(long)]
    pub no_pin: bool,

    /// Print one JSON line instead of a table
    #[arg(long)]
    pub json: bool,

    /// Over TLS: the hub the bench starts gets a certificate made at start
    /// (from a private CA the members trust); with --hub wss://…, give --ca-file
    #[arg(long)]
    pub tls: bool,

    /// Flooders beside the load: connections that write pings as fast as they can for the
    /// whole run (plain ws:// only); the table shows how soon the hub closed them, and the
    /// members' latency shows what the flood cost
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub flooders: usize,

    /// With --hub wss://…: the PEM file of the CA the hub's certificate is from
    #[arg(long, value_name = "FILE", requires = "hub")]
    pub ca_file: Option<std::path::PathBuf>,

    /// Raise R step by step (M, F fixed; a fresh hub per step) and report the largest R with
    /// zero loss and p99 latency at or under --p99-limit-ms
    #[arg(long)]
    pub sweep: bool,

    /// With --sweep: the largest R tried
    #[arg(long, value_name = "R", default_value_t = 5000, requires = "sweep")]
    pub sweep_max: usize,

    /// With --sweep: the p99 latency a step may not exceed, ms
    #[arg(long, value_name = "MS", default_value_t = 50.0, requires = "sweep")]
    pub p99_limit_ms: f64,

    /// Start N hubs joined in a cluster through a NATS broker (and the broker) and spread
    /// each room's members over them, member k of a room on hub k mod N (2 to 32)
    #[arg(long, value_name = "N", conflicts_with_all = ["hub", "tls"])]
    pub hubs: Option<usize>,

    /// With --hubs: the NATS server the hubs join (nats://HOST:PORT) instead of one the
    /// bench starts
    #[arg(long, value_name = "URL", requires = "hubs")]
    pub nats: Option<String>,
}

/// The hub's figures for one run (absent for a `--hub` without `--hub-pid`).
#[derive(Clone, Copy, Debug)]
struct HubFigures {
    cpu_s: f64,
    peak_rss_kib: u64,
}

/// One run's outcome.
struct Run {
    cfg: LoadConfig,
    report: LoadReport,
    hub: Option<HubFigures>,
    /// The hub had a CPU of its own, the load generator the others.
    pinned: bool,
    /// With `--hubs`: per hub, and the broker's traffic (`hub` then sums the hubs).
    cluster: Option<ClusterFigures>,
    /// The floor of a delivery on this machine, measured after the load.
    floor: Option<Floor>,
}

impl Run {
    fn p99_us(&self) -> u64 {
        self.report.latency.quantile(0.99)
    }

    /// Hub CPU µs per delivery (summed over the hubs of a cluster).
    fn hub_us_per_delivery(&self) -> Option<f64> {
        self.hub
            .filter(|h| h.cpu_s > 0.0 && self.report.delivered > 0)
            .map(|h| h.cpu_s * 1e6 / self.report.delivered as f64)
    }

    /// The hub's CPU per delivery as a multiple of the floor's spread figure
    /// (back-to-back writes over as many sockets as the run has receivers:
    /// the strict floor; the paced one, a write that wakes its reader, costs
    /// more than the hub's whole delivery at moderate load).
    fn to_floor(&self) -> Option<f64> {
        let floor = self.floor?;
        (floor.spread_us > 0.0).then_some(self.hub_us_per_delivery()? / floor.spread_us)
    }

    /// Measures the floor for this run's message size and receivers, the
    /// writer on the hub's CPU; a failure is a note, not the run's end.
    fn measure_floor(&mut self, target: &Target) {
        let hub_cpu = match target {
            Target::Spawn(cpu, _) => *cpu,
            Target::Cluster(spec) => spec.cpus.as_ref().and_then(|c| c.first().copied()),
            Target::External(..) => None,
        };
        let payload = self.report.bytes_per_frame().round().max(1.0) as usize;
        match Floor::measure(payload, self.cfg.connections(), hub_cpu) {
            Ok(f) => self.floor = Some(f),
            Err(e) => eprintln!("poselink: note: the floor could not be measured: {e}"),
        }
    }

    /// Zero loss, no connection lost, p99 within the limit.
    fn passes(&self, p99_limit_us: u64) -> bool {
        self.report.delivered >= self.report.expected
            && self.report.connections_lost == 0
            && self.p99_us() <= p99_limit_us
    }
}

/// Where the load goes.
enum Target {
    /// Start a hub per run, pinned to this CPU if any, with this certificate
    /// if TLS.
    Spawn(Option<usize>, Option<poselink::tls::PrivateCa>),
    /// A running hub, and its process id if known.
    External(SocketAddr, Option<u32>),
    /// Start a broker (or use a running one) and hubs in a cluster per run.
    Cluster(ClusterSpec),
}

/// Runs `poselink bench`.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    let duration = args.duration.unwrap_or(if args.sweep { 5.0 } else { 10.0 });
    if !(duration.is_finite() && duration > 0.0 && duration <= 86_400.0) {
        return Err(CliError::config(format!(
            "--duration must be a number of seconds above 0 and at most 86400 (got {duration})"
        )));
    }
    if args.threads == Some(0) {
        return Err(CliError::config("--threads must be at least 1"));
    }
    if !(args.p99_limit_ms.is_finite() && args.p99_limit_ms > 0.0) {
        return Err(CliError::config("--p99-limit-ms must be above 0"));
    }
    if let Some(n) = args.hubs
        && !(2..=MAX_HUBS).contains(&n)
    {
        return Err(CliError::config(format!(
            "--hubs must be 2 to {MAX_HUBS} (got {n}); without --hubs the bench starts one hub"
        )));
    }
    if let Some(url) = &args.nats
        && !url.starts_with("nats://")
    {
        return Err(CliError::config(format!(
            "--nats {url:?}: give the broker as nats://HOST:PORT"
        )));
    }
    let (target, tls_ca) = match (&args.hub, args.hubs) {
        (None, Some(n)) => (
            Target::Cluster(ClusterSpec::new(n, args.nats.clone(), !args.no_pin)),
            None,
        ),
        (None, None) => {
            // The hub's certificate and its CA, made now; the files go to the
            // hub the bench starts.
            let ca = args
                .tls
                .then(|| poselink::tls::private_ca(&["127.0.0.1", "localhost"], -1, 2))
                .transpose()
                .map_err(|e| CliError::runtime(e.to_string()))?;
            (
                Target::Spawn(if args.no_pin { None } else { pin_apart() }, ca.clone()),
                ca.map(|c| c.ca_pem),
            )
        }
        (Some(url), _) => {
            let (addr, tls) = parse_hub_url(url)?;
            let ca = match (&args.ca_file, tls || args.tls) {
                (Some(f), true) => Some(std::fs::read_to_string(f).map_err(|e| {
                    CliError::config(format!("cannot read the CA file {}: {e}", f.display()))
                })?),
                (None, true) => {
                    return Err(CliError::config(
                        "--hub wss://…: give --ca-file with the CA of the hub's certificate",
                    ));
                }
                (Some(_), false) => return Err(CliError::config("--ca-file is for a wss:// hub")),
                (None, false) => None,
            };
            (Target::External(addr, args.hub_pid), ca)
        }
    };
    let base = LoadConfig {
        rooms: args.rooms,
        members: args.members,
        hz: args.hz,
        duration: Duration::from_secs_f64(duration),
        audio: args.audio,
        threads: args.threads.unwrap_or(0),
        token: args.token.clone().unwrap_or_default(),
        tls_ca,
        flooders: args.flooders,
        ..LoadConfig::default()
    };
    base.validate().map_err(load_error)?;
    if matches!(target, Target::Spawn(..) | Target::Cluster(_)) && args.members > 4096 {
        return Err(CliError::config(
            "--members: a hub holds at most 4096 members per room",
        ));
    }
    if args.sweep {
        sweep(&args, &base, &target)
    } else {
        let mut run = run_once(&base, &target)?;
        run.measure_floor(&target);
        if args.json {
            println!("{}", run.json());
        } else {
            print_table(&run, &target);
        }
        note_problems(&run);
        Ok(())
    }
}

/// `ws://host:port/`, `wss://host:port/` (or `host:port`) to an address, and
/// whether it is TLS.
fn parse_hub_url(url: &str) -> Result<(SocketAddr, bool), CliError> {
    let (rest, tls) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(r), _) => (r, false),
        (_, Some(r)) => (r, true),
        _ => (url, false),
    };
    let host_port = rest.split('/').next().unwrap_or("");
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| (a, tls))
        .ok_or_else(|| {
            CliError::config(format!(
                "--hub {url:?} is not a reachable ws://HOST:PORT/ address"
            ))
        })
}

fn load_error(e: LoadError) -> CliError {
    match e.kind {
        LoadErrorKind::Config => CliError::config(e.message),
        _ => CliError::runtime(e.message),
    }
}

/// One run: a hub (started or given), the load, the hub's figures.
fn run_once(cfg: &LoadConfig, target: &Target) -> Result<Run, CliError> {
    raise_fd_limit(cfg.connections());
    let (addr, pid, spawned) = match target {
        Target::Cluster(spec) => return run_cluster(cfg, spec),
        Target::Spawn(cpu, ca) => {
            let hub = SpawnedHub::start(cfg, *cpu, ca.as_ref(), &[])?;
            (hub.addr, Some(hub.pid()), Some(hub))
        }
        Target::External(addr, pid) => (*addr, *pid, None),
    };
    let with_log = |e: CliError| match &spawned {
        Some(h) => h.explain(e),
        None => e,
    };
    let mut load = LoadGen::connect(addr, cfg)
        .map_err(load_error)
        .map_err(with_log)?;
    let cpu_before = pid.and_then(proc_cpu_s);
    let report = load.run().map_err(load_error).map_err(with_log)?;
    let cpu_after = pid.and_then(proc_cpu_s);
    let rss = pid.and_then(peak_rss_kib);
    drop(load);
    if let Some(hub) = spawned {
        hub.stop()?;
    }
    let hub = match (cpu_before, cpu_after, rss) {
        (Some(a), Some(b), Some(rss)) => Some(HubFigures {
            cpu_s: (b - a).max(0.0),
            peak_rss_kib: rss,
        }),
        _ => {
            if pid.is_some() {
                eprintln!(
                    "poselink: note: could not read the hub's /proc figures; they are left out"
                );
            }
            None
        }
    };
    Ok(Run {
        cfg: cfg.clone(),
        report,
        hub,
        pinned: matches!(target, Target::Spawn(Some(_), _)),
        cluster: None,
        floor: None,
    })
}

#[cfg(test)]
mod tests {
    use super::report::grouped;
    use super::*;
    use std::time::Instant;

    #[test]
    fn hub_urls_and_numbers() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            parse_hub_url("ws://127.0.0.1:7700/").unwrap(),
            (addr("127.0.0.1:7700"), false)
        );
        assert_eq!(
            parse_hub_url("127.0.0.1:9").unwrap(),
            (addr("127.0.0.1:9"), false)
        );
        assert_eq!(
            parse_hub_url("wss://127.0.0.1:7700/").unwrap(),
            (addr("127.0.0.1:7700"), true)
        );
        assert!(parse_hub_url("ws://no port/").is_err());
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1 000");
        assert_eq!(grouped(1_234_567), "1 234 567");
    }

    #[test]
    fn proc_figures_of_this_process() {
        // Burn a little CPU so that the reading is above zero.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let me = std::process::id();
        assert!(proc_cpu_s(me).unwrap() > 0.0);
        assert!(peak_rss_kib(me).unwrap() > 100);
        assert_eq!(proc_cpu_s(u32::MAX), None);
    }
}
