//! The hub under test as a child process: started (`poselink hub --dev` on a
//! loopback port the OS picks, with `--cluster` when it is one of several),
//! optionally pinned to a CPU of its own, measured from `/proc` (CPU time, peak
//! resident memory) and stopped; plus the open-files limit the connections need
//! and the split of the CPUs between the hub side and the load generator.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use poselink::loadgen::{AUDIO_HZ, LoadConfig, MAX_CONNECTIONS};

use crate::CliError;

/// Lets this process (and the hub it starts, which inherits it) hold every
/// connection: raises the soft limit on open files towards the hard one.
pub(super) fn raise_fd_limit(connections: usize) {
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
pub(super) fn set_affinity(cpus: &[usize]) -> bool {
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
pub(super) fn pin_apart() -> Option<usize> {
    pin_apart_n(1).and_then(|cpus| cpus.first().copied())
}

/// As [`pin_apart`] for `hubs` hubs (and their broker): the hub side gets the
/// last `hubs` CPUs allowed, but never more than half of them and at least one;
/// this process the others. With two CPUs every hub and the broker share one,
/// as a single hub has one. `None` with fewer than two CPUs.
pub(super) fn pin_apart_n(hubs: usize) -> Option<Vec<usize>> {
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        return None;
    }
    let side = hubs.min(cpus.len() / 2).max(1);
    let (rest, hub_side) = cpus.split_at(cpus.len() - side);
    if !set_affinity(rest) {
        return None;
    }
    Some(hub_side.to_vec())
}

/// CPU time (user + system, every thread) of process `pid` so far, in seconds,
/// from `/proc/PID/stat`.
pub(super) fn proc_cpu_s(pid: u32) -> Option<f64> {
    stat_cpu_s(&format!("/proc/{pid}/stat"))
}

/// CPU time so far of the threads of process `pid` whose name (as `/proc`
/// keeps it: 15 bytes at most) starts with `name`, in seconds; `None` if
/// there is no such thread.
pub(super) fn thread_cpu_s(pid: u32, name: &str) -> Option<f64> {
    let mut total = None;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(name)
            && let Some(s) = stat_cpu_s(&dir.join("stat").to_string_lossy())
        {
            *total.get_or_insert(0.0) += s;
        }
    }
    total
}

/// `utime + stime` of a `/proc` stat file, in seconds.
fn stat_cpu_s(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
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
pub(super) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A hub in a child process, stopped with SIGTERM (and killed if it lingers).
pub(super) struct SpawnedHub {
    child: Child,
    pub(super) addr: SocketAddr,
    /// The last lines the hub wrote to stderr.
    log: Arc<Mutex<VecDeque<String>>>,
    /// TLS: the directory of the hub's certificate and key files.
    tls_dir: Option<std::path::PathBuf>,
}

/// Lines of the hub's stderr kept for an error message.
const LOG_LINES: usize = 20;

impl SpawnedHub {
    /// Starts `poselink hub --dev` for the load `cfg`, on `cpu` if given, with
    /// a certificate from `tls` if given, and `extra` arguments (a cluster's).
    pub(super) fn start(
        cfg: &LoadConfig,
        cpu: Option<usize>,
        tls: Option<&poselink::tls::PrivateCa>,
        extra: &[String],
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
            .args(extra)
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

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the hub wrote anything to stderr.
    pub(super) fn has_log(&self) -> bool {
        !self
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// `e` with the hub's last log lines, if it wrote any.
    pub(super) fn explain(&self, e: CliError) -> CliError {
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
    pub(super) fn stop(mut self) -> Result<(), CliError> {
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
