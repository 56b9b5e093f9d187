//! `poselink demo`: the whole path on one machine, measured. It starts a hub in
//! this process on a free loopback port (or uses `--hub`), a number of simulated
//! capture devices — each its own edge engine and connection, streaming the
//! synthetic skeleton at `--fps` with 20 ms audio chunks — spread over `--rooms`
//! rooms, and one receiver (an edge engine joined to every room as a viewer). Once
//! a second it prints a table: per device the frames per second sent and
//! received, the end-to-end latency (capture → hub → receiver's event, one
//! monotonic clock, so it is exact), bytes per frame on the wire, drops and the
//! device engine's CPU; then the process's CPU and memory and the hub loop's CPU.
//! After `--duration` it prints the performance report (JSON), and writes it to
//! `--report FILE` if asked.
//!
//! The per-second figures come from one [`PerformanceMonitor`] per device with a
//! two-second window; the report's from monitors whose window spans the whole run.

mod report;

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use clap::Args;
use poselink::engine::{
    EngineConfig, EngineHandle, EngineMetrics, EngineReport, Event, Priority, RoomId, SendError,
};
use poselink::hub::{Hub, HubConfig, HubHandle, HubReport};
use poselink::monitor::{MonitorConfig, PerformanceMonitor};
use poselink::proto::{AudioChunk, PoseFrame, Role};
use poselink_hal::{
    AudioBlock, AudioSource, Clock, LinuxStats, MonotonicClock, PoseSample, PoseSource,
    SyntheticAudio, SyntheticConfig, SyntheticPose, SystemStats,
};
use serde_json::{Value, json};

use crate::CliError;
use crate::send_cmd::{
    describe_event, engine_drops, join_or_stop, parse_duration, start_engine, stop_engine,
    stop_flag,
};
use report::{build_report, finish};

/// `poselink demo`'s arguments (the help text is the [`crate::Command::Demo`] variant's).
#[derive(Args, Debug)]
#[command(
    after_help = "The table, once a second, per device: fps sent (pose frames the device's \
                  engine wrote to its socket) and fps recv (frames the receiver got from it), over \
                  the last two seconds; latency p50 and p99 in ms from capture on the device to the \
                  frame reaching the receiving application (device engine, hub, receiver engine: \
                  all in this process, one monotonic clock); bytes per pose frame on the wire \
                  (protocol message, delta-coded); drops (frames the device's engine dropped, plus \
                  frames sent but not received so far); the device engine thread's CPU. Below it: \
                  the process's CPU (all threads, % of one core) and resident memory, and the hub \
                  loop's CPU.\n\
                  At the end (after --duration or Ctrl-C) the performance report is printed as JSON \
                  (see the README for its fields) and written to --report FILE if given. Exit \
                  status 0 when every frame sent was received, 1 otherwise.\n\n\
                  Examples:\n  poselink demo\n  poselink demo --devices 8 --rooms 2 --fps 60 \
                  --duration 30s --report demo.json\n  poselink demo --hub ws://127.0.0.1:7700/"
)]
pub struct DemoArgs {
    /// Simulated capture devices, each its own engine and connection
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub devices: u32,

    /// Rooms the devices are spread over (device i joins room `demo-(i mod R)`)
    #[arg(long, value_name = "R", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub rooms: u32,

    /// Pose frames per second per device (1 to 240)
    #[arg(long, value_name = "FPS", default_value_t = 30.0)]
    pub fps: f64,

    /// How long to stream: seconds (`20`) or a duration (`90s`, `5m`)
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = parse_duration)]
    pub duration: Duration,

    /// Use this hub instead of starting one in-process (e.g. ws://127.0.0.1:7700/)
    #[arg(long, value_name = "URL")]
    pub hub: Option<String>,

    /// Access token (JWT) for --hub; none for a --dev hub
    #[arg(
        long,
        value_name = "TOKEN",
        env = "POSELINK_TOKEN",
        hide_env_values = true,
        default_value = "",
        hide_default_value = true
    )]
    pub token: String,

    /// Send pose only, no audio
    #[arg(long)]
    pub no_audio: bool,

    /// Also write the final performance report (JSON) to this file
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// No table each second; only the final report
    #[arg(long)]
    pub quiet: bool,
}

/// What the capture thread counts per device (read by the table).
#[derive(Default)]
struct Submitted {
    poses: AtomicU64,
    audio: AtomicU64,
    refused: AtomicU64,
}

/// A simulated device.
struct Device {
    name: String,
    room: usize,
    engine: EngineHandle,
    thread: Option<JoinHandle<EngineReport>>,
    member: Option<u16>,
    submitted: Arc<Submitted>,
    /// Last two seconds (the table).
    live: PerformanceMonitor,
    /// The whole run (the report).
    run: PerformanceMonitor,
    poses_received: u64,
    audio_received: u64,
    last: EngineMetrics,
    last_recv: u64,
    final_metrics: Option<EngineMetrics>,
}

/// Monitors whose window spans at least `secs` seconds, in at most ~24 slots.
fn run_monitor(secs: f64) -> PerformanceMonitor {
    let slot_s = (secs / 20.0).ceil().max(1.0) as u64;
    PerformanceMonitor::new(MonitorConfig {
        slot_us: slot_s * 1_000_000,
        slots: ((secs / slot_s as f64).ceil() as usize) + 4,
        ..MonitorConfig::default()
    })
}

fn live_monitor() -> PerformanceMonitor {
    PerformanceMonitor::new(MonitorConfig {
        slot_us: 1_000_000,
        slots: 2,
        ..MonitorConfig::default()
    })
}

fn get(m: &[(&'static str, f64)], k: &str) -> Option<f64> {
    m.iter().find(|e| e.0 == k).map(|e| e.1)
}

/// Runs `poselink demo`.
pub fn run(args: DemoArgs) -> Result<(), CliError> {
    if args.rooms > args.devices {
        return Err(CliError::config(format!(
            "--rooms {} is more than --devices {}: every room needs a device",
            args.rooms, args.devices
        )));
    }
    if !(args.fps.is_finite() && (1.0..=240.0).contains(&args.fps)) {
        return Err(CliError::config("--fps must be between 1 and 240"));
    }
    let n = args.devices as usize;
    let rooms: Vec<String> = (0..args.rooms).map(|r| format!("demo-{r}")).collect();
    let stop = stop_flag()?;
    let clock = MonotonicClock::new();

    // The hub.
    let (url, hub) = match &args.hub {
        Some(url) => (url.clone(), None),
        None => {
            let cfg = HubConfig {
                max_connections: n + 16,
                max_rooms: rooms.len() + 4,
                ..HubConfig::local_dev()
            };
            let (handle, addr, thread) = Hub::spawn(cfg)
                .map_err(|e| CliError::runtime(format!("cannot start the hub: {e}")))?;
            (format!("ws://{addr}/"), Some((handle, addr, thread)))
        }
    };
    let metrics_addr = hub.as_ref().map(|h| h.1).or_else(|| metrics_addr_of(&url));
    let where_ = if hub.is_some() {
        format!("in-process hub at {url}")
    } else {
        format!("hub at {url}")
    };
    println!(
        "poselink demo: {n} devices in {} room(s), {} fps{}, for {:.0} s, through the {where_}",
        rooms.len(),
        args.fps,
        if args.no_audio {
            ""
        } else {
            " + audio (20 ms chunks)"
        },
        args.duration.as_secs_f64()
    );

    let result = run_with_hub(&args, &url, &rooms, metrics_addr, &stop, &clock);
    let hub_report = hub.map(|(handle, _, thread)| stop_hub(handle, thread));
    let (report, ok) = result?;
    finish(&args, report, hub_report, ok)
}

fn stop_hub(
    handle: HubHandle,
    thread: JoinHandle<std::io::Result<HubReport>>,
) -> Option<HubReport> {
    handle.shutdown();
    thread.join().ok().and_then(|r| r.ok())
}

/// `host:port` of a `ws://host:port/...` URL, for its `/metrics`.
fn metrics_addr_of(url: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = url.strip_prefix("ws://")?;
    let hostport = rest.split('/').next()?;
    hostport.to_socket_addrs().ok()?.next()
}

/// `GET path` on the hub's port; the body, or `None` (no hub metrics: an
/// external hub with `metrics = false`, or not reachable).
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(1_000)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// What the run produced: the report (JSON) and whether nothing was lost.
type Outcome = (Value, bool);

fn run_with_hub(
    args: &DemoArgs,
    url: &str,
    rooms: &[String],
    metrics_addr: Option<SocketAddr>,
    stop: &AtomicBool,
    clock: &MonotonicClock,
) -> Result<Outcome, CliError> {
    let n = args.devices as usize;
    let secs = args.duration.as_secs_f64();

    // The receiver: one engine, a viewer in every room.
    let (receiver, rthread) = start_engine(EngineConfig {
        hub: url.to_string(),
        token: args.token.clone(),
        client: "poselink-demo-receiver".into(),
        max_rooms: rooms.len(),
        decoders: n + 8,
        events_capacity: 16_384,
        system_stats: false,
        ..EngineConfig::default()
    })?;
    let mut rthread = Some(rthread);
    let mut early: Vec<Event> = Vec::new();
    for room in rooms {
        let joined = join_or_stop(
            &receiver,
            rthread.take().expect("the receiver's thread"),
            url,
            room,
            Role::Viewer,
        )?;
        rthread = Some(joined.thread);
        early.extend(joined.events);
    }

    // The devices.
    let mut devices: Vec<Device> = Vec::with_capacity(n);
    let mut handles: Vec<(EngineHandle, RoomId, Arc<Submitted>)> = Vec::with_capacity(n);
    for d in 0..n {
        let room = d % rooms.len();
        let (engine, thread) = start_engine(EngineConfig {
            hub: url.to_string(),
            token: args.token.clone(),
            client: format!("poselink-demo-device-{d}"),
            max_rooms: 1,
            system_stats: false,
            ..EngineConfig::default()
        })?;
        let joined = match join_or_stop(&engine, thread, url, &rooms[room], Role::Member) {
            Ok(j) => j,
            Err(e) => {
                for dev in &mut devices {
                    if let Some(t) = dev.thread.take() {
                        stop_engine(&dev.engine, t);
                    }
                }
                if let Some(t) = rthread.take() {
                    stop_engine(&receiver, t);
                }
                return Err(e);
            }
        };
        let member = joined.events.iter().rev().find_map(|e| match e {
            Event::Connected { member } => Some(*member),
            _ => None,
        });
        let submitted = Arc::new(Submitted::default());
        handles.push((engine.clone(), joined.room, Arc::clone(&submitted)));
        devices.push(Device {
            name: format!("dev-{d}"),
            room,
            engine,
            thread: Some(joined.thread),
            member,
            submitted,
            live: live_monitor(),
            run: run_monitor(secs + 5.0),
            poses_received: 0,
            audio_received: 0,
            last: EngineMetrics::default(),
            last_recv: 0,
            final_metrics: None,
        });
    }

    // Capture: one thread paces every device.
    let capture_stop = Arc::new(AtomicBool::new(false));
    let capture = {
        let stop = Arc::clone(&capture_stop);
        let fps = args.fps;
        let audio = !args.no_audio;
        std::thread::Builder::new()
            .name("poselink-demo-capture".into())
            .spawn(move || capture_loop(handles, fps, audio, &stop))
            .map_err(|e| CliError::runtime(format!("cannot start a thread: {e}")))?
    };

    let start = clock.now_us();
    let end = start + args.duration.as_micros() as u64;
    let mut overall = run_monitor(secs + 5.0);
    let mut system = LinuxStats::new();
    let mut table = Table::new(!args.quiet, std::io::stdout().is_terminal());
    let mut member_of: HashMap<u16, usize> = devices
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.member.map(|m| (m, i)))
        .collect();
    let mut hub_prev: Option<(u64, f64)> = None;
    let mut rx_last = EngineMetrics::default();
    let mut tx_last = (0u64, 0u64);
    let mut next_tick = start + 1_000_000;
    let mut unknown_sender = 0u64;
    let mut stopped_early = false;
    for e in early {
        on_receiver_event(
            e,
            clock,
            &mut devices,
            &member_of,
            &mut overall,
            &mut unknown_sender,
        );
    }

    // Streaming, then draining: after the end, wait (at most 3 s) until every
    // frame the devices sent has reached the receiver.
    let mut drain_deadline: Option<u64> = None;
    loop {
        let now = clock.now_us();
        if drain_deadline.is_none() && (now >= end || stop.load(Ordering::Relaxed)) {
            stopped_early = now < end;
            capture_stop.store(true, Ordering::Relaxed);
            drain_deadline = Some(now + 3_000_000);
        }
        if let Some(deadline) = drain_deadline {
            let settled = devices.iter().all(|d| {
                let m = d.engine.metrics();
                let s = d.submitted.poses.load(Ordering::Relaxed);
                s == m.poses_sent + engine_drops(&m) - m.audio_lost
                    && m.poses_sent == d.poses_received
                    && (args.no_audio || m.audio_sent - m.audio_replayed <= d.audio_received)
            });
            if settled || now >= deadline {
                break;
            }
        }
        let wait = next_tick.saturating_sub(now).min(20_000);
        if let Some(e) = receiver.wait_event(Duration::from_micros(wait.max(1))) {
            on_receiver_event(
                e,
                clock,
                &mut devices,
                &member_of,
                &mut overall,
                &mut unknown_sender,
            );
            while let Some(e) = receiver.poll_event() {
                on_receiver_event(
                    e,
                    clock,
                    &mut devices,
                    &member_of,
                    &mut overall,
                    &mut unknown_sender,
                );
            }
        }
        let now = clock.now_us();
        if now >= next_tick && drain_deadline.is_none() {
            next_tick += 1_000_000;
            // Device events: a reconnect changes a device's member id.
            for (i, d) in devices.iter_mut().enumerate() {
                while let Some(e) = d.engine.poll_event() {
                    if let Event::Connected { member } = e {
                        d.member = Some(member);
                        member_of.insert(member, i);
                    } else if let Some(line) = describe_event(&e) {
                        table.note(format!("{}: {line}", d.name));
                    }
                }
            }
            let snap = system.sample(now).unwrap_or_else(|never| match never {});
            overall.record_system(
                now,
                snap.process_cpu_percent,
                snap.process_rss_bytes,
                snap.soc_temperature_c,
            );
            // Traffic: what the devices wrote, what the receiver read.
            let (mut msgs, mut bytes) = (0, 0);
            for d in devices.iter() {
                let m = d.engine.metrics();
                msgs += m.poses_sent + m.audio_sent;
                bytes += m.bytes_sent;
            }
            overall.record_out_many(now, msgs - tx_last.0, bytes - tx_last.1);
            tx_last = (msgs, bytes);
            let rm = receiver.metrics();
            overall.record_in_many(
                now,
                rm.messages_received - rx_last.messages_received,
                rm.bytes_received - rx_last.bytes_received,
            );
            rx_last = rm;
            let hub_line = metrics_addr
                .and_then(|a| http_get(a, "/metrics"))
                .map(|body| hub_figures(&body, now, &mut hub_prev));
            table.print(now, now - start, &mut devices, &snap, hub_line.flatten());
        }
    }
    let elapsed_s = (clock.now_us() - start) as f64 / 1e6;
    capture_stop.store(true, Ordering::Relaxed);
    let _ = capture.join();

    // Devices stop (sending what is queued, waiting for audio acks), then the
    // receiver takes what is still on its way (at most a second).
    for d in devices.iter_mut() {
        if let Some(t) = d.thread.take() {
            d.final_metrics = Some(stop_engine(&d.engine, t).metrics);
        }
    }
    let until = clock.now_us() + 1_000_000;
    loop {
        let all = devices.iter().all(|d| {
            let m = d.final_metrics.unwrap_or_default();
            m.poses_sent == d.poses_received
                && (args.no_audio || m.audio_sent - m.audio_replayed <= d.audio_received)
        });
        let now = clock.now_us();
        if all || now >= until {
            break;
        }
        if let Some(e) = receiver.wait_event(Duration::from_millis(10)) {
            on_receiver_event(
                e,
                clock,
                &mut devices,
                &member_of,
                &mut overall,
                &mut unknown_sender,
            );
        }
    }
    let hub_report = metrics_addr.and_then(|a| http_get(a, "/report"));
    let hub_metrics = metrics_addr.and_then(|a| http_get(a, "/metrics"));
    let receiver_metrics = match rthread.take() {
        Some(t) => stop_engine(&receiver, t).metrics,
        None => receiver.metrics(),
    };
    let now = clock.now_us();
    let snap = system.sample(now).unwrap_or_else(|never| match never {});
    overall.record_system(
        now,
        snap.process_cpu_percent,
        snap.process_rss_bytes,
        snap.soc_temperature_c,
    );
    Ok(build_report(
        args,
        &devices,
        &overall,
        now,
        elapsed_s,
        stopped_early,
        unknown_sender,
        &receiver_metrics,
        hub_report.as_deref(),
        hub_metrics.as_deref(),
    ))
}

/// The hub's line of the table from its `/metrics`: loop CPU since the last
/// second, deliveries and drops so far.
fn hub_figures(body: &str, now: u64, prev: &mut Option<(u64, f64)>) -> Option<String> {
    let cpu = metric(body, "poselink_loop_cpu_seconds_total")
        .or_else(|| metric(body, "process_cpu_seconds_total"))?;
    let delivered = metric(body, "poselink_delivered_total").unwrap_or(0.0);
    let drops: f64 = body
        .lines()
        .filter(|l| l.starts_with("poselink_drops_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let pct = prev.map(|(t, c)| (cpu - c) / ((now - t) as f64 / 1e6) * 100.0);
    *prev = Some((now, cpu));
    Some(format!(
        "hub: loop CPU {}  delivered {delivered:.0}  dropped {drops:.0}",
        pct.map_or("–".into(), |p| format!("{p:.1} %")),
    ))
}

fn on_receiver_event(
    e: Event,
    clock: &MonotonicClock,
    devices: &mut [Device],
    member_of: &HashMap<u16, usize>,
    overall: &mut PerformanceMonitor,
    unknown: &mut u64,
) {
    let now = clock.now_us();
    match e {
        Event::Pose { sender, frame, .. } => {
            let Some(&i) = member_of.get(&sender) else {
                *unknown += 1;
                return;
            };
            let d = &mut devices[i];
            let latency = now.saturating_sub(frame.capture_ts_us);
            d.poses_received += 1;
            for m in [&mut d.live, &mut d.run, overall] {
                m.record_latency_us(now, latency);
                m.record_frame(now);
            }
        }
        Event::Audio { sender, .. } => match member_of.get(&sender) {
            Some(&i) => devices[i].audio_received += 1,
            None => *unknown += 1,
        },
        _ => {}
    }
}

fn capture_loop(
    devices: Vec<(EngineHandle, RoomId, Arc<Submitted>)>,
    fps: f64,
    audio: bool,
    stop: &AtomicBool,
) {
    let clock = MonotonicClock::new();
    let n = devices.len().max(1) as u64;
    let period = ((1e6 / fps).round() as u64).max(1);
    let start = clock.now_us();
    let mut poses: Vec<SyntheticPose> = (0..devices.len())
        .map(|d| {
            SyntheticPose::new(SyntheticConfig {
                seed: d as u64,
                fps: fps as f32,
                ..SyntheticConfig::default()
            })
        })
        .collect();
    let mut tones: Vec<SyntheticAudio> = (0..devices.len())
        .map(|_| SyntheticAudio::new(start))
        .collect();
    // Spread the devices over the frame period, as independent cameras are.
    let mut next_pose: Vec<u64> = (0..n).map(|d| start + d * period / n).collect();
    let mut next_audio: Vec<u64> = next_pose.clone();
    let mut seq = vec![0u32; devices.len()];
    let mut audio_seq = vec![0u32; devices.len()];
    let mut sample = PoseSample::zeroed();
    let mut block = AudioBlock::zeroed();
    let mut chunk = AudioChunk::silence(48_000, 1, 0);
    while !stop.load(Ordering::Relaxed) {
        let now = clock.now_us();
        let mut wake = now + 10_000;
        for (d, (engine, room, counts)) in devices.iter().enumerate() {
            if now >= next_pose[d] {
                poses[d]
                    .next_pose(&mut sample)
                    .unwrap_or_else(|never| match never {});
                seq[d] += 1;
                let mut frame = PoseFrame::from_arrays(seq[d], 0, now, &sample.landmarks);
                frame.clamp_to_range();
                match engine.send_pose(&frame, *room, Priority::NORMAL) {
                    Ok(()) => counts.poses.fetch_add(1, Ordering::Relaxed),
                    Err(SendError::ShutDown) => return,
                    Err(_) => counts.refused.fetch_add(1, Ordering::Relaxed),
                };
                next_pose[d] += period;
                if now > next_pose[d] + 1_000_000 {
                    next_pose[d] = now + period; // the machine stalled: no burst
                }
            }
            if audio && now >= next_audio[d] {
                tones[d]
                    .next_audio(&mut block)
                    .unwrap_or_else(|never| match never {});
                let len = block.len.min(chunk.samples.len());
                chunk.sample_rate = block.sample_rate;
                chunk.channels = block.channels;
                chunk.len = len as u16;
                chunk.samples[..len].copy_from_slice(&block.samples[..len]);
                audio_seq[d] += 1;
                chunk.seq = audio_seq[d];
                chunk.capture_ts_us = now;
                match engine.send_audio(&chunk, *room, Priority::HIGH) {
                    Ok(()) => counts.audio.fetch_add(1, Ordering::Relaxed),
                    Err(SendError::ShutDown) => return,
                    Err(_) => counts.refused.fetch_add(1, Ordering::Relaxed),
                };
                next_audio[d] += block.duration_us().max(1_000);
                if now > next_audio[d] + 1_000_000 {
                    next_audio[d] = now + block.duration_us().max(1_000);
                }
            }
            wake = wake.min(next_pose[d]);
            if audio {
                wake = wake.min(next_audio[d]);
            }
        }
        let now = clock.now_us();
        if wake > now {
            std::thread::sleep(Duration::from_micros(wake - now));
        }
    }
}

/// The live table.
struct Table {
    on: bool,
    redraw: bool,
    lines_drawn: usize,
    notes: Vec<String>,
}

impl Table {
    fn new(on: bool, terminal: bool) -> Table {
        Table {
            on,
            redraw: terminal,
            lines_drawn: 0,
            notes: Vec::new(),
        }
    }

    /// A line printed above the next table (and kept in the scroll-back).
    fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    fn print(
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
