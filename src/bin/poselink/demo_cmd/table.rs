//! The live table printed once a second: per device the frames per second sent and
//! received, latency, bytes per frame, drops and CPU; then the process's and the
//! hub's lines. On a terminal it redraws in place.

use std::io::Write;

use super::{Device, get};
use crate::send_cmd::engine_drops;

/// The live table.
pub(super) struct Table {
    on: bool,
    redraw: bool,
    lines_drawn: usize,
    notes: Vec<String>,
}

impl Table {
    pub(super) fn new(on: bool, terminal: bool) -> Table {
        Table {
            on,
            redraw: terminal,
            lines_drawn: 0,
            notes: Vec::new(),
        }
    }

    /// A line printed above the next table (and kept in the scroll-back).
    pub(super) fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    pub(super) fn print(
        &mut self,
        now: u64,
        elapsed_us: u64,
        devices: &mut [Device],
        snap: &poselink_hal::Snapshot,
        hub: Option<String>,
    ) {
        let mut out = String::new();
        use std::fmt::Write as _;
        let now_wall = elapsed_us as f64 / 1e6;
        let mut totals = (0.0, 0.0, 0u64);
        let _ = writeln!(
            out,
            "t = {now_wall:5.1} s  {:<8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8} {:>6} {:>8}",
            "device",
            "room",
            "fps sent",
            "fps recv",
            "p50 ms",
            "p99 ms",
            "B/frame",
            "drops",
            "CPU %"
        );
        for d in devices.iter_mut() {
            let m = d.engine.metrics();
            let dt = 1.0; // the table is printed once a second
            let fps_sent = (m.poses_sent - d.last.poses_sent) as f64 / dt;
            let fps_recv = (d.poses_received - d.last_recv) as f64 / dt;
            let lat = d.live.get_performance_metrics(now);
            let p50 = get(&lat, "latency_p50_ms");
            let p99 = get(&lat, "latency_p99_ms");
            let bpf = (m.poses_sent > 0).then(|| m.pose_bytes_sent as f64 / m.poses_sent as f64);
            let drops = engine_drops(&m) + m.poses_sent.saturating_sub(d.poses_received);
            let cpu =
                (m.thread_cpu_us.saturating_sub(d.last.thread_cpu_us)) as f64 / 1e6 / dt * 100.0;
            let f = |v: Option<f64>, p: usize| v.map_or("–".into(), |v| format!("{v:.p$}"));
            let _ = writeln!(
                out,
                "              {:<8} {:>7} {:>9.1} {:>9.1} {:>8} {:>8} {:>8} {:>6} {:>8.1}",
                d.name,
                format!("demo-{}", d.room),
                fps_sent,
                fps_recv,
                f(p50, 2),
                f(p99, 2),
                f(bpf, 0),
                drops,
                cpu
            );
            totals.0 += fps_sent;
            totals.1 += fps_recv;
            totals.2 += drops;
            d.last = m;
            d.last_recv = d.poses_received;
        }
        let _ = writeln!(
            out,
            "              {:<8} {:>7} {:>9.1} {:>9.1} {:>8} {:>8} {:>8} {:>6}",
            "all", "", totals.0, totals.1, "", "", "", totals.2
        );
        let _ = writeln!(
            out,
            "  process: CPU {}  memory {}   {}",
            snap.process_cpu_percent
                .map_or("–".into(), |c| format!("{c:.1} %")),
            snap.process_rss_bytes
                .map_or("–".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            hub.unwrap_or_default()
        );
        if !self.on {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        if self.redraw && self.lines_drawn > 0 {
            // Move up over the previous table and clear to the end of the screen.
            let _ = write!(stdout, "\x1b[{}A\x1b[J", self.lines_drawn);
        }
        for note in self.notes.drain(..) {
            let _ = writeln!(stdout, "{note}");
        }
        let _ = write!(stdout, "{out}");
        if !self.redraw {
            let _ = writeln!(stdout);
        }
        let _ = stdout.flush();
        self.lines_drawn = out.lines().count();
    }
}
