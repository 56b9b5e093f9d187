//! `poselink bench`: the pose-room load test, measured the same way every time.
//! Starts a hub as a separate process (this same executable, `poselink hub
//! --dev`, on a loopback port the OS picks) so that its CPU time and memory are
//! its own, puts the [`poselink::loadgen`] workload on it, and reads the hub's
//! CPU time (`utime + stime` of `/proc/PID/stat`) just before and just after the
//! load and its peak resident memory (`VmHWM` of `/proc/PID/status`). Prints a
//! table, or with `--json` one JSON line. `--sweep` raises the room count step by
//! step (a fresh hub per step) and reports the largest that the hub carries with
//! no loss and p99 latency within a limit: its capacity on this machine.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use clap::Args;
use poselink::loadgen::{
    AUDIO_HZ, LoadConfig, LoadError, LoadErrorKind, LoadGen, LoadReport, MAX_CONNECTIONS,
};

use crate::CliError;

/// `poselink bench`'s arguments (the help text is the [`crate::Command::Bench`] variant's).
#[derive(Args, Debug)]
#[command(
    after_help = "The workload (\"pose-room\"): R rooms of M members; every member publishes one \
                  33-landmark pose frame (quantised keyframe + delta) at F Hz for D seconds, and with \
                  --audio a 20 ms audio chunk (48 kHz mono PCM16) 50 times a second; every message goes \
                  to the other M-1 members of its room. Latency is the receiver's read time minus the \
                  publisher's send time, both on CLOCK_MONOTONIC (same host).\n\
                  The hub runs as a separate process (`poselink hub --dev` on a loopback port) unless \
                  --hub is given; its CPU time is read from /proc/PID/stat before and after the load, \
                  its peak memory from VmHWM.\n\
                  --json prints one line: {\"system\":\"poselink\",\"rooms\":R,\"members\":M,\"hz\":F,\
                  \"duration_s\":D,\"expected\":N,\"delivered\":N,\"loss\":x,\"latency_us\":{\"p50\":..,\
                  \"p95\":..,\"p99\":..,\"max\":..},\"hub_cpu_s\":..,\"hub_peak_rss_kib\":..,\
                  \"deliveries_per_hub_cpu_s\":..,\"loadgen_cpu_s\":..,\"bytes_per_frame\":..,...} \
                  (BENCHMARKS.md describes every field and the --sweep line).\n\
                  Exit status: 0 when the load ran (whatever it measured), 1 if it could not run, \
                  2 on bad arguments.\n\
                  Examples:\n  poselink bench\n  poselink bench --rooms 250 --json\n  \
                  poselink bench --sweep"
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
}

impl Run {
    fn p99_us(&self) -> u64 {
        self.report.latency.quantile(0.99)
    }

    /// Zero loss, no connection lost, p99 within the limit.
    fn passes(&self, p99_limit_us: u64) -> bool {
        self.report.delivered >= self.report.expected
            && self.report.connections_lost == 0
            && self.p99_us() <= p99_limit_us
    }

    /// The run as one JSON object (see BENCHMARKS.md).
    fn json(&self) -> String {
        let r = &self.report;
        let l = &r.latency;
        let num = |v: Option<f64>, decimals: usize| match v {
            Some(x) if x.is_finite() => format!("{x:.decimals$}"),
            _ => "null".into(),
        };
        let hub_cpu = self.hub.map(|h| h.cpu_s);
        let per_cpu = self
            .hub
            .filter(|h| h.cpu_s > 0.0)
            .map(|h| r.delivered as f64 / h.cpu_s);
        let mut s = String::with_capacity(512);
        let _ = write!(
            s,
            "{{\"system\":\"poselink\",\"rooms\":{},\"members\":{},\"hz\":{},\"duration_s\":{},\
             \"expected\":{},\"delivered\":{},\"loss\":{},\
             \"latency_us\":{{\"p50\":{},\"p95\":{},\"p99\":{},\"max\":{}}},\
             \"hub_cpu_s\":{},\"hub_peak_rss_kib\":{},\"deliveries_per_hub_cpu_s\":{},\
             \"loadgen_cpu_s\":{:.3},\"bytes_per_frame\":{:.1},\
             \"audio\":{},\"tls\":{},\"loadgen_threads\":{},\"pinned\":{},\"send_lag_p99_us\":{},\"connections_lost\":{}}}",
            self.cfg.rooms,
            self.cfg.members,
            self.cfg.hz,
            self.cfg.duration.as_secs_f64(),
            r.expected,
            r.delivered,
            r.loss(),
            l.quantile(0.5),
            l.quantile(0.95),
            l.quantile(0.99),
            l.max(),
            num(hub_cpu, 3),
            self.hub
                .map_or("null".to_string(), |h| h.peak_rss_kib.to_string()),
            num(per_cpu, 0),
            r.cpu.as_secs_f64(),
            r.bytes_per_frame(),
            self.cfg.audio,
            self.cfg.tls_ca.is_some(),
            r.threads,
            self.pinned,
            r.send_lag.quantile(0.99),
            r.connections_lost,
        );
        s
    }
}

/// Where the load goes.
enum Target {
    /// Start a hub per run, pinned to this CPU if any, with this certificate
    /// if TLS.
    Spawn(Option<usize>, Option<poselink::tls::PrivateCa>),
    /// A running hub, and its process id if known.
    External(SocketAddr, Option<u32>),
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
    let (target, tls_ca) = match &args.hub {
        None => {
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
        Some(url) => {
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
    if matches!(target, Target::Spawn(..)) && args.members > 4096 {
        return Err(CliError::config(
            "--members: a hub holds at most 4096 members per room",
        ));
    }
    if args.sweep {
        sweep(&args, &base, &target)
    } else {
        let run = run_once(&base, &target)?;
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
        Target::Spawn(cpu, ca) => {
            let hub = SpawnedHub::start(cfg, *cpu, ca.as_ref())?;
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
    })
}

/// Lets this process (and the hub it starts, which inherits it) hold every
/// connection: raises the soft limit on open files towards the hard one.
fn raise_fd_limit(connections: usize) {
    let want = (connections as u64 + 256) as libc::rlim_t;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur >= want {
        return;
    }
    let new = libc::rlimit {
        rlim_cur: want.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `new` is a valid rlimit; raising the soft limit up to the hard one
    // is always permitted.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 || new.rlim_cur < want {
        eprintln!(
            "poselink: note: open files are limited to {} here; {} connections need about {want} (raise `ulimit -n`)",
            new.rlim_cur, connections
        );
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; sched_getaffinity writes
    // at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Restricts the calling thread (and the threads it starts later) to `cpus`.
fn set_affinity(cpus: &[usize]) -> bool {
    // SAFETY: as in `allowed_cpus`; CPU_SET is given indexes below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Gives the hub one CPU of its own and this process (so the load generator's
/// threads, started later) the others: the hub's CPU (the last one allowed), or
/// `None` with fewer than two CPUs.
fn pin_apart() -> Option<usize> {
    let cpus = allowed_cpus();
    let (&hub, rest) = cpus.split_last()?;
    if rest.is_empty() || !set_affinity(rest) {
        return None;
    }
    Some(hub)
}

/// CPU time (user + system, every thread) of process `pid` so far, in seconds,
/// from `/proc/PID/stat`.
fn proc_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11); // field 3 is the first
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // Clock ticks per second: sysconf(_SC_CLK_TCK), as the hal reads it.
    let tck = poselink_hal::LinuxStats::new().ticks_per_second();
    Some((utime + stime) as f64 / tck as f64)
}

/// Peak resident memory of process `pid` (`VmHWM`), KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A hub in a child process, stopped with SIGTERM (and killed if it lingers).
struct SpawnedHub {
    child: Child,
    addr: SocketAddr,
    /// The last lines the hub wrote to stderr.
    log: Arc<Mutex<VecDeque<String>>>,
    /// TLS: the directory of the hub's certificate and key files.
    tls_dir: Option<std::path::PathBuf>,
}

/// Lines of the hub's stderr kept for an error message.
const LOG_LINES: usize = 20;

impl SpawnedHub {
    fn start(
        cfg: &LoadConfig,
        cpu: Option<usize>,
        tls: Option<&poselink::tls::PrivateCa>,
    ) -> Result<SpawnedHub, CliError> {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::runtime(format!("cannot find this executable: {e}")))?;
        let conns = (cfg.connections() + 16).min(MAX_CONNECTIONS);
        let rate = (2 * (u64::from(cfg.hz) + u64::from(AUDIO_HZ))).max(1000);
        let mut command = Command::new(exe);
        // TLS: the certificate and key in files of their own for the hub
        // (kept until the hub is gone; removed with the directory).
        let mut tls_args = Vec::new();
        let mut tls_dir = None;
        if let Some(ca) = tls {
            let dir =
                std::env::temp_dir().join(format!("poselink-bench-tls-{}", std::process::id()));
            let write = |name: &str, text: &str| {
                std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(dir.join(name), text))
                    .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", dir.display())))
            };
            write("cert.pem", &ca.cert_pem)?;
            write("key.pem", &ca.key_pem)?;
            tls_args.push("--tls-cert".to_string());
            tls_args.push(dir.join("cert.pem").to_string_lossy().into_owned());
            tls_args.push("--tls-key".to_string());
            tls_args.push(dir.join("key.pem").to_string_lossy().into_owned());
            tls_dir = Some(dir);
        }
        if let Some(cpu) = cpu {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: between fork and exec the closure only calls
            // sched_setaffinity, which is async-signal-safe, on stack data.
            unsafe {
                command.pre_exec(move || {
                    set_affinity(&[cpu]);
                    Ok(())
                });
            }
        }
        let mut child = command
            .args(["hub", "--dev", "--listen", "127.0.0.1:0", "--print-addr"])
            .args(["--max-connections", &conns.to_string()])
            .args(["--max-rooms", &(cfg.rooms + 16).min(65_000).to_string()])
            .args(["--max-members", &cfg.members.max(2).to_string()])
            .args(["--rate-messages", &rate.to_string()])
            .args(tls_args)
            // Warnings only: the dev-mode banner and per-session lines are noise here.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CliError::runtime(format!("cannot start the hub process: {e}")))?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
        if let Some(err) = child.stderr.take() {
            let log = Arc::clone(&log);
            // Drained for the hub's whole life, so that it never blocks on a full pipe.
            let _ = std::thread::Builder::new()
                .name("poselink-bench-hublog".into())
                .spawn(move || {
                    for line in BufReader::new(err).lines().map_while(Result::ok) {
                        let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                        if l.len() == LOG_LINES {
                            l.pop_front();
                        }
                        l.push_back(line);
                    }
                });
        }
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            let _ = std::thread::Builder::new()
                .name("poselink-bench-hubaddr".into())
                .spawn(move || {
                    let mut reader = BufReader::new(out);
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    let _ = tx.send(line);
                    // Keep the pipe open (and drained) for the hub's life.
                    let _ = std::io::copy(&mut reader, &mut std::io::sink());
                });
        }
        let mut hub = SpawnedHub {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            tls_dir,
        };
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        match line.trim().parse::<SocketAddr>() {
            Ok(addr) => {
                hub.addr = addr;
                Ok(hub)
            }
            Err(_) => {
                // Give it a moment to write why it did not start.
                std::thread::sleep(Duration::from_millis(100));
                Err(hub.explain(CliError::runtime(
                    "the hub process did not say where it listens within 10 s",
                )))
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `e` with the hub's last log lines, if it wrote any.
    fn explain(&self, e: CliError) -> CliError {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.is_empty() {
            return e;
        }
        let tail: Vec<&str> = log.iter().map(String::as_str).collect();
        CliError {
            code: e.code,
            message: format!("{} (the hub's last words: {})", e.message, tail.join(" | ")),
        }
    }

    /// SIGTERM, then up to 5 s for a clean exit; a hub that exits on an error
    /// or lingers is an error.
    fn stop(mut self) -> Result<(), CliError> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory preconditions; `pid` is our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(self.explain(CliError::runtime(format!(
                        "the hub process ended with {status}"
                    ))));
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(self.explain(CliError::runtime(
                        "the hub process did not stop within 5 s of SIGTERM; killed it",
                    )));
                }
            }
        }
    }
}

impl Drop for SpawnedHub {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(dir) = &self.tls_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `1234567` as `1 234 567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn describe(cfg: &LoadConfig) -> String {
    format!(
        "{} rooms × {} members, pose {} Hz{}, {} s{}",
        cfg.rooms,
        cfg.members,
        cfg.hz,
        if cfg.audio { " + audio 50 Hz" } else { "" },
        cfg.duration.as_secs_f64(),
        if cfg.tls_ca.is_some() {
            ", over TLS"
        } else {
            ""
        }
    )
}

fn print_table(run: &Run, target: &Target) {
    let r = &run.report;
    let l = &r.latency;
    let hub = match target {
        Target::Spawn(Some(cpu), _) => format!(
            "a separate process started for the run, pinned to CPU {cpu} (the load generator to the others)"
        ),
        Target::Spawn(None, _) => "a separate process started for the run".to_string(),
        Target::External(addr, Some(pid)) => format!("ws://{addr}/ (pid {pid})"),
        Target::External(addr, None) => format!("ws://{addr}/ (no --hub-pid: no hub figures)"),
    };
    println!("poselink bench, pose-room: {}", describe(&run.cfg));
    println!(
        "hub: {hub}; load generator: {} connections on {} thread{}",
        r.connections,
        r.threads,
        if r.threads == 1 { "" } else { "s" }
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| deliveries expected / delivered | {} / {} |",
        grouped(r.expected),
        grouped(r.delivered)
    );
    println!("| loss | {} |", r.loss());
    if r.flooders > 0 {
        println!(
            "| flooders closed by the hub | {} of {} ({} pings written; the last closed after {}) |",
            r.flooders_closed,
            r.flooders,
            grouped(r.flood_messages),
            r.flooder_closed_after
                .map_or("-".to_string(), |d| format!("{} ms", d.as_millis()))
        );
    }
    println!(
        "| latency p50 / p95 / p99 / max | {} / {} / {} / {} µs |",
        l.quantile(0.5),
        l.quantile(0.95),
        l.quantile(0.99),
        l.max()
    );
    match run.hub {
        Some(h) => {
            let per = if h.cpu_s > 0.0 {
                format!(
                    " ({} deliveries per CPU second, {:.2} µs per delivery)",
                    grouped((r.delivered as f64 / h.cpu_s) as u64),
                    h.cpu_s * 1e6 / r.delivered.max(1) as f64
                )
            } else {
                String::new()
            };
            println!("| hub CPU | {:.3} s{per} |", h.cpu_s);
            println!("| hub peak RSS | {} KiB |", grouped(h.peak_rss_kib));
        }
        None => println!("| hub CPU, peak RSS | not measured |"),
    }
    println!(
        "| load generator CPU | {:.3} s (sends late by p99 {} µs) |",
        r.cpu.as_secs_f64(),
        r.send_lag.quantile(0.99)
    );
    println!("| bytes per pose frame | {:.1} |", r.bytes_per_frame());
}

/// Tells stderr what went wrong during a run, if anything did.
fn note_problems(run: &Run) {
    let r = &run.report;
    if r.connections_lost > 0 || r.hub_errors > 0 || r.unsent > 0 || r.misrouted > 0 {
        eprintln!(
            "poselink: note: {} connections lost, {} error messages from the hub, {} frames unsent, {} misrouted{}",
            r.connections_lost,
            r.hub_errors,
            r.unsent,
            r.misrouted,
            r.first_problem
                .as_deref()
                .map_or(String::new(), |p| format!("; first: {p}"))
        );
    }
}

/// The room counts a sweep tries before bisecting.
const LADDER: [usize; 25] = [
    10, 25, 50, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1250, 1500, 2000, 2500, 3000,
    4000, 5000, 6000, 8000, 10_000, 12_500, 15_000,
];

/// Rooms between the last passing and the first failing step at which the
/// bisection stops.
const SWEEP_RESOLUTION: usize = 10;

fn sweep(args: &BenchArgs, base: &LoadConfig, target: &Target) -> Result<(), CliError> {
    let limit_us = (args.p99_limit_ms * 1000.0).round() as u64;
    let max_rooms = args.sweep_max.min(MAX_CONNECTIONS / base.members.max(1));
    if max_rooms == 0 {
        return Err(CliError::config("--sweep-max must be at least 1"));
    }
    let mut ladder: Vec<usize> = LADDER.iter().copied().filter(|&r| r < max_rooms).collect();
    ladder.push(max_rooms);
    if !args.json {
        println!(
            "poselink bench --sweep: rooms of {} members, pose {} Hz{}, {} s per step; a step passes with loss 0 and p99 ≤ {} ms",
            base.members,
            base.hz,
            if base.audio { " + audio 50 Hz" } else { "" },
            base.duration.as_secs_f64(),
            args.p99_limit_ms
        );
        println!();
        println!(
            "| rooms | connections | deliveries/s | loss | latency p50 / p99 / max (µs) | hub CPU (% of a core) | load generator CPU (%) | step |"
        );
        println!("|---|---|---|---|---|---|---|---|");
    }
    // Each step's JSON object (with its verdict), in the order run.
    let mut steps: Vec<String> = Vec::new();
    let mut pass: Option<usize> = None;
    let mut fail: Option<usize> = None;
    let step = |rooms: usize, steps: &mut Vec<String>| -> bool {
        let cfg = LoadConfig {
            rooms,
            ..base.clone()
        };
        match run_once(&cfg, target) {
            Ok(run) => {
                let ok = run.passes(limit_us);
                if !args.json {
                    print_step(&run, ok);
                }
                note_problems(&run);
                let line = run.json();
                steps.push(format!("{},\"pass\":{ok}}}", &line[..line.len() - 1]));
                ok
            }
            Err(e) => {
                // A step that cannot even be set up is a failed step, not the
                // end of the sweep's report.
                if !args.json {
                    println!(
                        "| {rooms} | {} | — | — | — | — | — | FAIL: {} |",
                        cfg.connections(),
                        e.message
                    );
                }
                eprintln!("poselink: note: {rooms} rooms could not run: {}", e.message);
                steps.push(format!(
                    "{{\"system\":\"poselink\",\"rooms\":{rooms},\"error\":{},\"pass\":false}}",
                    json_string(&e.message)
                ));
                false
            }
        }
    };
    for &rooms in &ladder {
        if step(rooms, &mut steps) {
            pass = Some(rooms);
        } else {
            fail = Some(rooms);
            break;
        }
    }
    // Bisect between the last pass and the first failure, in whole tens of rooms.
    while let (Some(p), Some(f)) = (pass, fail) {
        if f - p <= SWEEP_RESOLUTION {
            break;
        }
        let mid = ((p + f) / 2).div_ceil(SWEEP_RESOLUTION) * SWEEP_RESOLUTION;
        if mid <= p || mid >= f {
            break;
        }
        if step(mid, &mut steps) {
            pass = Some(mid);
        } else {
            fail = Some(mid);
        }
    }
    let capacity = pass.unwrap_or(0);
    if args.json {
        let mut s = String::with_capacity(512 * (steps.len() + 1));
        let _ = write!(
            s,
            "{{\"system\":\"poselink\",\"sweep\":{{\"members\":{},\"hz\":{},\"duration_s\":{},\"audio\":{},\
             \"p99_limit_us\":{limit_us},\"capacity_rooms\":{capacity},\"first_failing_rooms\":{},\
             \"sweep_max\":{max_rooms}}},\"steps\":[",
            base.members,
            base.hz,
            base.duration.as_secs_f64(),
            base.audio,
            fail.map_or("null".to_string(), |f| f.to_string()),
        );
        s.push_str(&steps.join(","));
        s.push_str("]}");
        println!("{s}");
    } else {
        println!();
        match (pass, fail) {
            (Some(p), Some(f)) => println!(
                "capacity on this machine: {p} rooms of {} members at {} Hz ({} deliveries/s); {f} rooms failed",
                base.members,
                base.hz,
                grouped(deliveries_per_s(base, p))
            ),
            (Some(p), None) => println!(
                "capacity on this machine: at least {p} rooms of {} members at {} Hz ({} deliveries/s): every step passed up to --sweep-max",
                base.members,
                base.hz,
                grouped(deliveries_per_s(base, p))
            ),
            (None, _) => println!(
                "capacity on this machine: none — even {} rooms failed",
                ladder[0]
            ),
        }
    }
    Ok(())
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Deliveries per second the workload asks for at `rooms` rooms.
fn deliveries_per_s(base: &LoadConfig, rooms: usize) -> u64 {
    let per_member = u64::from(base.hz) + if base.audio { u64::from(AUDIO_HZ) } else { 0 };
    (rooms * base.members) as u64 * (base.members as u64 - 1) * per_member
}

fn print_step(run: &Run, ok: bool) {
    let r = &run.report;
    let secs = run.cfg.duration.as_secs_f64();
    let pct = |s: f64| format!("{:.0}", 100.0 * s / secs);
    println!(
        "| {} | {} | {} | {} | {} / {} / {} | {} | {} | {} |",
        run.cfg.rooms,
        r.connections,
        grouped((r.delivered as f64 / secs) as u64),
        r.loss(),
        r.latency.quantile(0.5),
        r.latency.quantile(0.99),
        r.latency.max(),
        run.hub.map_or("—".to_string(), |h| pct(h.cpu_s)),
        pct(r.cpu.as_secs_f64()),
        if ok { "pass" } else { "FAIL" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

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
