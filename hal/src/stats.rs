//! System statistics: how much CPU and memory this process uses, how much memory
//! the board has left, how hot the SoC is and whether it is throttling.
//!
//! A [`SystemStats`] takes a [`Snapshot`] when asked; the engine samples it now and
//! then (say once a second) to log and report the health of the board. Every value
//! of a snapshot is an `Option`: a value the board cannot provide (no thermal zone,
//! no Raspberry Pi firmware, no `/proc`) is `None`, never 0, so a caller can tell
//! "cold" from "unknown". [`LinuxStats`] reads `/proc` and `/sys` on Linux (a
//! Raspberry Pi, a Jetson, a laptop); [`MockStats`] replays scripted snapshots (and
//! errors) for tests.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, MockError};

/// One sample of the system statistics. A value that could not be read is `None`.
///
/// ```
/// use poselink_hal::Snapshot;
///
/// let snapshot = Snapshot {
///     process_rss_bytes: Some(64 << 20),
///     ..Snapshot::default()
/// };
/// assert_eq!(snapshot.process_cpu_percent, None);
/// assert_eq!(snapshot.process_rss_bytes, Some(64 << 20));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// CPU time used by this process (all its threads, user and system) since the
    /// previous sample, as a percentage of the wall time between the two samples
    /// on ONE core: a process keeping two cores busy reports 200. `None` on the
    /// first sample and when the wall time did not advance.
    pub process_cpu_percent: Option<f32>,
    /// Resident set size of this process, in bytes.
    pub process_rss_bytes: Option<u64>,
    /// Total usable memory of the system, in bytes.
    pub system_memory_total_bytes: Option<u64>,
    /// Memory available for new allocations without swapping, in bytes (Linux's
    /// `MemAvailable`, which counts reclaimable caches, not just free pages).
    pub system_memory_available_bytes: Option<u64>,
    /// Temperature of the SoC (or CPU package), in degrees Celsius.
    pub soc_temperature_c: Option<f32>,
    /// Whether the board is throttling its CPU right now (see [`LinuxStats`] for
    /// what is read). `None` on boards that do not report it.
    pub throttled: Option<bool>,
}

/// Something that samples system statistics.
///
/// `now_us` is the current time in microseconds of the caller's
/// [`Clock`](crate::Clock); it is the wall time against which CPU usage between two
/// samples is measured, so it must come from one monotonic clock.
///
/// ```
/// use poselink_hal::{MockStats, Snapshot, SystemStats};
///
/// fn rss_mib<S: SystemStats>(stats: &mut S, now_us: u64) -> Result<Option<u64>, S::Error> {
///     Ok(stats.sample(now_us)?.process_rss_bytes.map(|b| b >> 20))
/// }
///
/// let mut stats = MockStats::new(vec![Snapshot {
///     process_rss_bytes: Some(3 << 20),
///     ..Snapshot::default()
/// }]);
/// // Borrowing works too: `&mut S` is a `SystemStats`.
/// assert_eq!(rss_mib(&mut stats, 0).unwrap(), Some(3));
/// ```
pub trait SystemStats {
    /// The error this implementation reports.
    type Error: Error;

    /// Takes a snapshot at time `now_us` (microseconds).
    fn sample(&mut self, now_us: u64) -> Result<Snapshot, Self::Error>;
}

impl<T: SystemStats + ?Sized> SystemStats for &mut T {
    type Error = T::Error;

    fn sample(&mut self, now_us: u64) -> Result<Snapshot, Self::Error> {
        T::sample(self, now_us)
    }
}

impl<T: SystemStats + ?Sized> SystemStats for Box<T> {
    type Error = T::Error;

    fn sample(&mut self, now_us: u64) -> Result<Snapshot, Self::Error> {
        T::sample(self, now_us)
    }
}

/// Thermal zone types preferred for [`Snapshot::soc_temperature_c`], best first;
/// compared without regard to ASCII case.
const ZONE_PREFERENCE: [&[&str]; 3] = [
    // Raspberry Pi (`cpu-thermal`), Jetson (`CPU-therm`).
    &["cpu-thermal", "cpu-therm"],
    // Other Jetson and Arm SoC variants.
    &["soc_thermal", "soc-therm"],
    // Intel CPU package (laptops, desktops).
    &["x86_pkg_temp"],
];

/// [`SystemStats`] of a Linux board, read from `/proc` and `/sys`.
///
/// What it reads (all paths relative to the root given to
/// [`with_root`](Self::with_root), `/` for [`new`](Self::new)):
///
/// - CPU: `utime + stime` (fields 14 and 15, in clock ticks) of
///   `proc/self/stat`, with the ticks per second from `sysconf(_SC_CLK_TCK)`.
/// - RSS: `VmRSS` of `proc/self/status`.
/// - Memory: `MemTotal` and `MemAvailable` of `proc/meminfo`.
/// - Temperature: `sys/class/thermal/thermal_zone*/temp` (millidegrees Celsius).
///   The zone is chosen by its `type` file: `cpu-thermal` (Raspberry Pi) or
///   `CPU-therm` (Jetson) first, then `soc_thermal` / `SOC-therm`, then
///   `x86_pkg_temp` (Intel), else the zone with the lowest number. A zone whose
///   `temp` cannot be read or parsed is skipped. The zones are listed (and
///   ranked) when the value is created; thermal zones are fixed at boot, but
///   [`rescan_thermal_zones`](Self::rescan_thermal_zones) lists them again.
/// - Throttling: `sys/devices/platform/soc/soc:firmware/get_throttled`, the
///   Raspberry Pi firmware's bit mask (hex, like `vcgencmd get_throttled`).
///   [`Snapshot::throttled`] is `true` if bit 1 (ARM frequency capped now) or
///   bit 2 (throttled now) is set; the under-voltage and "since boot" bits are
///   ignored, so the value says whether the CPU is slowed right now. Without
///   that file (not a Pi) it is `None`.
///
/// Statistics must never stop the application, so reading never fails: a file
/// that is missing, unreadable or malformed makes its value `None`, and the
/// other values are still read. The error type is therefore
/// [`Infallible`](core::convert::Infallible).
///
/// [`sample`](SystemStats::sample) allocates nothing: every path is built when
/// the value is created and every file is read into one buffer owned by it, so
/// a hub or an engine can sample from its allocation-free event loop.
///
/// ```
/// use poselink_hal::{LinuxStats, SystemStats};
///
/// let mut stats = LinuxStats::new();
/// let first = stats.sample(0).unwrap();
/// assert_eq!(first.process_cpu_percent, None); // no previous sample yet
/// # #[cfg(target_os = "linux")]
/// assert!(first.process_rss_bytes.is_some());
/// ```
#[derive(Clone, Debug)]
pub struct LinuxStats {
    root: PathBuf,
    ticks_per_second: u64,
    /// `(now_us, cpu ticks)` of the previous sample whose CPU time could be read.
    previous: Option<(u64, u64)>,
    stat: PathBuf,
    status: PathBuf,
    meminfo: PathBuf,
    throttled: PathBuf,
    /// The `temp` files of the thermal zones, best first.
    zones: Vec<PathBuf>,
    /// Where files are read; `proc/self/status` and `proc/meminfo` are about
    /// 1.5 KB. A file larger than this reads as missing.
    buf: Box<[u8; READ_BUFFER]>,
}

/// Size of [`LinuxStats`]'s read buffer.
const READ_BUFFER: usize = 16 * 1024;

impl LinuxStats {
    /// Statistics of this process and the system it runs on (root `/`).
    pub fn new() -> Self {
        Self::with_root("/")
    }

    /// Statistics read from a tree rooted at `root` instead of `/`: `root/proc/...`
    /// and `root/sys/...`. For tests with a fake tree.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        // SAFETY: sysconf has no preconditions; it only reads a configuration value.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let root = root.into();
        let mut stats = Self {
            ticks_per_second: if tck > 0 { tck as u64 } else { 100 },
            previous: None,
            stat: root.join("proc/self/stat"),
            status: root.join("proc/self/status"),
            meminfo: root.join("proc/meminfo"),
            throttled: root.join("sys/devices/platform/soc/soc:firmware/get_throttled"),
            zones: Vec::new(),
            buf: Box::new([0; READ_BUFFER]),
            root,
        };
        stats.rescan_thermal_zones();
        stats
    }

    /// The root the files are read under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Clock ticks per second, the unit of the CPU times in `proc/self/stat`
    /// (`sysconf(_SC_CLK_TCK)`, 100 if that fails).
    pub fn ticks_per_second(&self) -> u64 {
        self.ticks_per_second
    }

    /// Lists and ranks the thermal zones again (this allocates; `sample` does not).
    pub fn rescan_thermal_zones(&mut self) {
        let dir = self.root.join("sys/class/thermal");
        let Ok(entries) = fs::read_dir(&dir) else {
            self.zones.clear();
            return;
        };
        let mut zones: Vec<(usize, u32, PathBuf)> = entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name();
                let number: u32 = name.to_str()?.strip_prefix("thermal_zone")?.parse().ok()?;
                let path = entry.path();
                let kind = fs::read_to_string(path.join("type")).unwrap_or_default();
                let kind = kind.trim();
                let rank = ZONE_PREFERENCE
                    .iter()
                    .position(|names| names.iter().any(|n| n.eq_ignore_ascii_case(kind)))
                    .unwrap_or(ZONE_PREFERENCE.len());
                Some((rank, number, path.join("temp")))
            })
            .collect();
        zones.sort();
        self.zones = zones.into_iter().map(|(_, _, p)| p).collect();
    }

    /// Reads a whole file into the buffer, without allocating (the path is at
    /// most a few dozen bytes, which `File::open` converts on the stack).
    fn read_into(buf: &mut [u8; READ_BUFFER], path: &Path) -> Option<usize> {
        let mut file = fs::File::open(path).ok()?;
        let mut len = 0;
        loop {
            if len == buf.len() {
                return None;
            }
            match file.read(&mut buf[len..]) {
                Ok(0) => return Some(len),
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads `path` and applies `parse` to its text.
    fn with_file<T>(&mut self, which: Which, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
        let path = match which {
            Which::Stat => &self.stat,
            Which::Status => &self.status,
            Which::Meminfo => &self.meminfo,
            Which::Throttled => &self.throttled,
            Which::Zone(i) => self.zones.get(i)?,
        };
        let len = Self::read_into(&mut self.buf, path)?;
        parse(core::str::from_utf8(&self.buf[..len]).ok()?)
    }

    fn cpu_percent(&mut self, now_us: u64) -> Option<f32> {
        let Some(ticks) = self.with_file(Which::Stat, parse_stat_cpu_ticks) else {
            self.previous = None;
            return None;
        };
        let previous = self.previous.replace((now_us, ticks));
        let (then_us, then_ticks) = previous?;
        let wall_us = now_us.checked_sub(then_us).filter(|&d| d > 0)?;
        let used_ticks = ticks.checked_sub(then_ticks)?;
        let cpu_s = used_ticks as f64 / self.ticks_per_second as f64;
        Some((cpu_s / (wall_us as f64 / 1e6) * 100.0) as f32)
    }

    fn temperature_c(&mut self) -> Option<f32> {
        (0..self.zones.len()).find_map(|i| {
            self.with_file(Which::Zone(i), |text| {
                let millidegrees: i64 = text.trim().parse().ok()?;
                Some(millidegrees as f32 / 1000.0)
            })
        })
    }

    fn throttled(&mut self) -> Option<bool> {
        self.with_file(Which::Throttled, |text| {
            let text = text.trim();
            let digits = text
                .strip_prefix("0x")
                .or_else(|| text.strip_prefix("0X"))
                .unwrap_or(text);
            let mask = u32::from_str_radix(digits, 16).ok()?;
            Some(mask & 0b110 != 0)
        })
    }
}

/// The files [`LinuxStats`] reads.
#[derive(Clone, Copy)]
enum Which {
    Stat,
    Status,
    Meminfo,
    Throttled,
    Zone(usize),
}

impl Default for LinuxStats {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemStats for LinuxStats {
    type Error = core::convert::Infallible;

    fn sample(&mut self, now_us: u64) -> Result<Snapshot, Self::Error> {
        let memory = self
            .with_file(Which::Meminfo, |m| {
                Some((
                    parse_kb_field(m, "MemTotal"),
                    parse_kb_field(m, "MemAvailable"),
                ))
            })
            .unwrap_or((None, None));
        Ok(Snapshot {
            process_cpu_percent: self.cpu_percent(now_us),
            process_rss_bytes: self.with_file(Which::Status, |s| parse_kb_field(s, "VmRSS")),
            system_memory_total_bytes: memory.0,
            system_memory_available_bytes: memory.1,
            soc_temperature_c: self.temperature_c(),
            throttled: self.throttled(),
        })
    }
}

/// `utime + stime` from the text of `/proc/<pid>/stat`. The command name (field 2)
/// is in parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// The value of a `Key:   1234 kB` line of a `/proc` status file, in bytes
/// (`None` where the key is missing or its value is not a number of kB).
///
/// ```
/// use poselink_hal::stats::parse_kb_field;
/// let status = "Name:\tposelink\nVmRSS:\t  12 kB\n";
/// assert_eq!(parse_kb_field(status, "VmRSS"), Some(12 * 1024));
/// assert_eq!(parse_kb_field(status, "RssAnon"), None);
/// ```
pub fn parse_kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        let mut parts = value.split_ascii_whitespace();
        let number: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some(unit) if unit.eq_ignore_ascii_case("kB") => number.checked_mul(1024),
            None => Some(number),
            Some(_) => None,
        }
    })
}

/// A [`SystemStats`] that replays a list of snapshots, then reports
/// [`ErrorKind::EndOfStream`], like [`MockPoseSource`](crate::MockPoseSource).
///
/// [`from_results`](Self::from_results) also lets a test inject errors at chosen
/// points. The `now_us` passed to [`sample`](SystemStats::sample) is ignored.
///
/// ```
/// use poselink_hal::{Error, ErrorKind, MockStats, Snapshot, SystemStats};
///
/// let hot = Snapshot {
///     soc_temperature_c: Some(81.5),
///     throttled: Some(true),
///     ..Snapshot::default()
/// };
/// let mut stats = MockStats::new(vec![hot]);
/// assert_eq!(stats.sample(0).unwrap(), hot);
/// assert_eq!(stats.sample(1).unwrap_err().kind(), ErrorKind::EndOfStream);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MockStats {
    items: Vec<Result<Snapshot, ErrorKind>>,
    next: usize,
}

impl MockStats {
    /// Statistics yielding `snapshots` in order.
    pub fn new(snapshots: Vec<Snapshot>) -> Self {
        Self::from_results(snapshots.into_iter().map(Ok).collect())
    }

    /// Statistics yielding each `Ok` snapshot, or failing with a [`MockError`] of
    /// the given kind for each `Err`, in order.
    pub fn from_results(items: Vec<Result<Snapshot, ErrorKind>>) -> Self {
        Self { items, next: 0 }
    }

    /// How many items (snapshots or errors) are left before the end of the stream.
    pub fn remaining(&self) -> usize {
        self.items.len() - self.next
    }
}

impl SystemStats for MockStats {
    type Error = MockError;

    fn sample(&mut self, _now_us: u64) -> Result<Snapshot, Self::Error> {
        let item = self
            .items
            .get(self.next)
            .ok_or(MockError::new(ErrorKind::EndOfStream))?;
        self.next += 1;
        item.map_err(MockError::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A fresh, empty directory under the system temp dir.
    fn temp_root(name: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!(
            "poselink-hal-stats-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        root
    }

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn stat_line(utime: u64, stime: u64) -> String {
        // A command name with spaces and parentheses, as a process may choose.
        format!(
            "4242 (my (odd) cmd) R 1 4242 4242 0 -1 4194304 100 0 0 0 {utime} {stime} 0 0 20 0 3 0 12345 1000000 2000 18446744073709551615\n"
        )
    }

    fn zone(root: &Path, n: u32, kind: &str, temp: &str) {
        write(
            root,
            &format!("sys/class/thermal/thermal_zone{n}/type"),
            kind,
        );
        write(
            root,
            &format!("sys/class/thermal/thermal_zone{n}/temp"),
            temp,
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn real_system_values_are_plausible() {
        let mut stats = LinuxStats::new();
        let start = Instant::now();
        let now = |s: &Instant| s.elapsed().as_micros() as u64;
        let first = stats.sample(now(&start)).unwrap();
        assert_eq!(first.process_cpu_percent, None);
        let rss = first.process_rss_bytes.unwrap();
        assert!(rss > 1 << 20 && rss < 10 << 30, "rss {rss}");
        let total = first.system_memory_total_bytes.unwrap();
        let available = first.system_memory_available_bytes.unwrap();
        assert!(total > available && available > 0, "{total} {available}");
        if let Some(t) = first.soc_temperature_c {
            assert!((-40.0..150.0).contains(&t), "temperature {t}");
        }

        // Busy loop ~200 ms, bounded by iteration count as well as time.
        let mut x = 0u64;
        for i in 0..10_000_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            if i % 4096 == 0 && start.elapsed() > Duration::from_millis(200) {
                break;
            }
        }
        std::hint::black_box(x);
        let second = stats.sample(now(&start)).unwrap();
        let cpu = second.process_cpu_percent.unwrap();
        assert!(cpu > 20.0, "cpu {cpu}%");
    }

    #[test]
    fn fake_tree_gives_exactly_the_values_written() {
        let root = temp_root("exact");
        write(&root, "proc/self/stat", &stat_line(100, 50));
        write(
            &root,
            "proc/self/status",
            "Name:\tposelink\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nVmData:\t 777 kB\n",
        );
        write(
            &root,
            "proc/meminfo",
            "MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    5000000 kB\n",
        );
        zone(&root, 0, "cpu-thermal\n", "48312\n");
        write(
            &root,
            "sys/devices/platform/soc/soc:firmware/get_throttled",
            "throttled=0x0\n",
        );

        let mut stats = LinuxStats::with_root(&root);
        assert_eq!(stats.root(), root.as_path());
        let first = stats.sample(1_000_000).unwrap();
        assert_eq!(
            first,
            Snapshot {
                process_cpu_percent: None,
                process_rss_bytes: Some(12345 * 1024),
                system_memory_total_bytes: Some(8_000_000 * 1024),
                system_memory_available_bytes: Some(5_000_000 * 1024),
                soc_temperature_c: Some(48.312),
                // "throttled=0x0" is vcgencmd's format, not the sysfs one: malformed.
                throttled: None,
            }
        );

        // Two seconds later, 3 seconds of CPU time used: 150% of one core.
        let tck = stats.ticks_per_second();
        write(&root, "proc/self/stat", &stat_line(100 + 2 * tck, 50 + tck));
        write(
            &root,
            "sys/devices/platform/soc/soc:firmware/get_throttled",
            "0x50005\n",
        );
        let second = stats.sample(3_000_000).unwrap();
        let cpu = second.process_cpu_percent.unwrap();
        assert!((cpu - 150.0).abs() < 1e-3, "cpu {cpu}");
        // Bits 0, 2, 16, 18: throttled now.
        assert_eq!(second.throttled, Some(true));

        // Only since-boot and under-voltage bits: not throttled now.
        write(
            &root,
            "sys/devices/platform/soc/soc:firmware/get_throttled",
            "0x50001",
        );
        let third = stats.sample(4_000_000).unwrap();
        assert_eq!(third.throttled, Some(false));
        assert_eq!(third.process_cpu_percent, Some(0.0));
        // Bit 1 alone: frequency capped now.
        write(
            &root,
            "sys/devices/platform/soc/soc:firmware/get_throttled",
            "2",
        );
        assert_eq!(stats.sample(5_000_000).unwrap().throttled, Some(true));
        // Time not advancing gives no CPU figure rather than a division by zero.
        assert_eq!(stats.sample(5_000_000).unwrap().process_cpu_percent, None);

        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn temperature_zone_preference() {
        let root = temp_root("zones");
        zone(&root, 0, "acpitz", "30000");
        zone(&root, 1, "x86_pkg_temp", "55000");
        let mut stats = LinuxStats::with_root(&root);
        assert_eq!(stats.sample(0).unwrap().soc_temperature_c, Some(55.0));

        zone(&root, 3, "SOC-therm", "41500");
        stats.rescan_thermal_zones();
        assert_eq!(stats.sample(1).unwrap().soc_temperature_c, Some(41.5));

        // Jetson's CPU zone beats the SOC one; zone 10 sorts numerically after 3.
        zone(&root, 10, "CPU-therm", "-2500");
        stats.rescan_thermal_zones();
        assert_eq!(stats.sample(2).unwrap().soc_temperature_c, Some(-2.5));

        // An unreadable preferred zone is skipped.
        zone(&root, 11, "cpu-thermal", "garbage");
        stats.rescan_thermal_zones();
        assert_eq!(stats.sample(3).unwrap().soc_temperature_c, Some(-2.5));

        // No known type: the lowest-numbered zone.
        let root2 = temp_root("zones-unknown");
        zone(&root2, 10, "gpu", "70000");
        zone(&root2, 2, "board", "35000");
        let mut stats2 = LinuxStats::with_root(&root2);
        assert_eq!(stats2.sample(0).unwrap().soc_temperature_c, Some(35.0));

        fs::remove_dir_all(&root).unwrap();
        fs::remove_dir_all(&root2).unwrap();
    }

    #[test]
    fn missing_and_malformed_files_give_none() {
        let root = temp_root("missing");
        let mut stats = LinuxStats::with_root(&root);
        for t in 0..3 {
            assert_eq!(stats.sample(t * 1_000_000).unwrap(), Snapshot::default());
        }

        write(&root, "proc/self/stat", "garbage without parens");
        write(&root, "proc/self/status", "VmRSS:\tlots kB\n");
        write(&root, "proc/meminfo", "MemTotal:  1000 kB\n");
        zone(&root, 0, "cpu-thermal", "");
        stats.rescan_thermal_zones();
        let snapshot = stats.sample(5_000_000).unwrap();
        assert_eq!(
            snapshot,
            Snapshot {
                system_memory_total_bytes: Some(1000 * 1024),
                ..Snapshot::default()
            }
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn parsers_handle_edge_cases() {
        assert_eq!(parse_stat_cpu_ticks(&stat_line(7, 5)), Some(12));
        assert_eq!(parse_stat_cpu_ticks("1 (x) R 1 2 3"), None);
        assert_eq!(
            parse_kb_field("VmRSSx: 5 kB\nVmRSS: 6 kB", "VmRSS"),
            Some(6 * 1024)
        );
        assert_eq!(
            parse_kb_field("HugePages_Total: 4", "HugePages_Total"),
            Some(4)
        );
        assert_eq!(parse_kb_field("MemTotal: 4 MB", "MemTotal"), None);
    }

    #[test]
    fn mock_replays_snapshots_and_errors_then_ends() {
        let a = Snapshot {
            process_cpu_percent: Some(12.5),
            throttled: Some(false),
            ..Snapshot::default()
        };
        let b = Snapshot {
            system_memory_total_bytes: Some(1 << 30),
            ..Snapshot::default()
        };
        let mut stats = MockStats::from_results(vec![Ok(a), Err(ErrorKind::Io), Ok(b)]);
        assert_eq!(stats.remaining(), 3);
        assert_eq!(stats.sample(0).unwrap(), a);
        assert_eq!(stats.sample(1).unwrap_err().kind(), ErrorKind::Io);
        assert_eq!(stats.sample(2).unwrap(), b);
        for t in 0..3 {
            assert_eq!(stats.sample(t).unwrap_err().kind(), ErrorKind::EndOfStream);
        }
        assert_eq!(stats.remaining(), 0);

        let mut boxed: Box<dyn SystemStats<Error = MockError>> = Box::new(MockStats::new(vec![b]));
        assert_eq!(boxed.sample(0).unwrap(), b);
        assert!(boxed.sample(0).is_err());
    }
}
