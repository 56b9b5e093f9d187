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
//!
//! Here: the arguments, the hub and the run's orchestration (devices, receiver,
//! the once-a-second tick). The devices' capture thread is in `capture`, the live
//! table in `table`, the hub's HTTP figures in `hub_metrics`, the closing report in
//! `report`.

mod capture;
mod hub_metrics;
mod report;
mod table;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use clap::Args;
use poselink::engine::{EngineConfig, EngineHandle, EngineMetrics, EngineReport, Event, RoomId};
use poselink::hub::{Hub, HubConfig, HubHandle, HubReport};
use poselink::monitor::{MonitorConfig, PerformanceMonitor};
use poselink::proto::Role;
use poselink_hal::{Clock, LinuxStats, MonotonicClock, SystemStats};
use serde_json::{Value, json};

use crate::CliError;
use crate::send_cmd::{
    describe_event, engine_drops, join_or_stop, parse_duration, start_engine, stop_engine,
    stop_flag,
};
use capture::capture_loop;
use hub_metrics::{http_get, hub_figures, metrics_addr_of};
use report::{build_report, finish};
use table::Table;

/// `poselink demo`'s arguments (the help text is the [`crate::Command::Demo`] variant's).
#[derive(Args, derive_more::Debug)]
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
    #[debug("{:?}", poselink::redact::text(token))]
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
            Event::Connected { member, .. } => Some(*member),
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
                    if let Event::Connected { member, .. } = e {
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
