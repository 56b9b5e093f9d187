//! What `send`, `watch` and `demo` share around an edge engine: the stop flag that
//! SIGINT and SIGTERM set, parsing `--duration`, checking a room name, starting and
//! stopping an engine, joining a room (and telling a refused session from a slow
//! one), and the one-line descriptions of its events.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

use poselink::engine::{
    EdgeEngine, EngineConfig, EngineHandle, EngineMetrics, EngineReport, Event, JoinError, RoomId,
};
use poselink::proto::{ErrorCode, Role, validate_name};
use poselink_hal::{Clock, MonotonicClock};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::CliError;

/// Parses `--duration`: plain seconds (`2`, `0.5`) or a humantime duration (`90s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => Duration::from_secs_f64(secs),
        Ok(_) => return Err("must be a positive number of seconds".into()),
        Err(_) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{e} (write seconds, e.g. 30, or a duration, e.g. 90s or 10m)"))?,
    };
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

/// A flag that SIGINT or SIGTERM sets; a second signal exits the process at once
/// with the runtime error status.
pub fn stop_flag() -> Result<Arc<AtomicBool>, CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag before the second registration sets it.
        signal_hook::flag::register_conditional_shutdown(
            sig,
            i32::from(crate::EXIT_RUNTIME),
            Arc::clone(&stop),
        )
        .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
        .map_err(|e| CliError::runtime(format!("cannot install the signal handlers: {e}")))?;
    }
    Ok(stop)
}

/// Checks a room name before anything connects.
pub fn check_room(room: &str) -> Result<(), CliError> {
    validate_name(room, "room name").map_err(|_| {
        CliError::config(format!(
            "invalid room name {room:?}: use 1 to 64 bytes of letters, digits and `-_.:@/`"
        ))
    })
}

/// Starts an engine; a bad hub URL is a usage error.
pub fn start_engine(
    cfg: EngineConfig,
) -> Result<(EngineHandle, JoinHandle<EngineReport>), CliError> {
    let hub = cfg.hub.clone();
    EdgeEngine::start(cfg).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput => CliError::config(e.to_string()),
        _ => CliError::runtime(format!("cannot start the engine for {hub}: {e}")),
    })
}

/// The URL of the hub the engine's session is with, of the list `hubs`.
pub fn on_hub<'a>(hubs: &'a [String], engine: &EngineHandle) -> &'a str {
    let i = engine.metrics().hub_index as usize;
    hubs.get(i).or(hubs.first()).map_or("?", String::as_str)
}

/// Stops an engine and waits for its thread.
pub fn stop_engine(engine: &EngineHandle, thread: JoinHandle<EngineReport>) -> EngineReport {
    engine.shutdown();
    thread.join().unwrap_or_default()
}

/// A joined room: its id, the engine's thread, and the events that arrived while
/// the join was pending (for the caller to handle first).
pub struct Joined {
    /// The engine's id of the room.
    pub room: RoomId,
    /// The engine's thread.
    pub thread: JoinHandle<EngineReport>,
    /// Events taken while waiting for the join, in order.
    pub events: Vec<Event>,
}

/// Whether the hub's error refuses the session itself (the hello): retrying with
/// the same token or version cannot succeed.
fn refuses_session(code: ErrorCode) -> bool {
    [
        ErrorCode::UNSUPPORTED_VERSION,
        ErrorCode::UNAUTHENTICATED,
        ErrorCode::TOKEN_INVALID,
        ErrorCode::TOKEN_EXPIRED,
    ]
    .contains(&code)
}

/// Joins `room`; on failure stops the engine and says why: a refusal by the hub
/// (of the join, or of the hello before it) is a usage error with the hub's reason.
///
/// The join waits on a helper thread while this one watches the events, so that a
/// refused hello (a bad or expired token: the engine would keep retrying) ends the
/// command at once instead of after the join's timeout.
pub fn join_or_stop(
    engine: &EngineHandle,
    thread: JoinHandle<EngineReport>,
    hub: &str,
    room: &str,
    role: Role,
) -> Result<Joined, CliError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let joiner = {
        let engine = engine.clone();
        let room = room.to_string();
        std::thread::Builder::new()
            .name("poselink-join".into())
            .spawn(move || {
                let _ = tx.send(engine.join_room(&room, role));
            })
            .map_err(|e| CliError::runtime(format!("cannot start a thread: {e}")))?
    };
    let mut events = Vec::new();
    let mut refusal = None;
    let mut lost = None;
    let mut fatal = false;
    let result = loop {
        match rx.recv_timeout(Duration::from_millis(2)) {
            Ok(r) => break Some(r),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        while let Some(ev) = engine.poll_event() {
            match &ev {
                Event::Error { code, reason } => {
                    refusal = Some(format!("{} ({reason})", code.name()));
                    fatal |= refuses_session(*code);
                }
                Event::Disconnected { reason } | Event::ConnectFailed { reason } => {
                    lost = Some(reason.clone())
                }
                _ => {}
            }
            events.push(ev);
        }
        if fatal {
            break None;
        }
    };
    let err = match result {
        Some(Ok(room)) => {
            let _ = joiner.join();
            // Events that came with the join's answer (the room's members).
            while let Some(ev) = engine.poll_event() {
                events.push(ev);
            }
            return Ok(Joined {
                room,
                thread,
                events,
            });
        }
        Some(Err(e)) => Some(e),
        None => None,
    };
    while let Some(ev) = engine.poll_event() {
        match ev {
            Event::Error { code, reason } => refusal = Some(format!("{} ({reason})", code.name())),
            Event::Disconnected { reason } | Event::ConnectFailed { reason } => lost = Some(reason),
            _ => {}
        }
    }
    // Stopping the engine ends a join still waiting.
    stop_engine(engine, thread);
    let _ = joiner.join();
    Err(match (err, refusal) {
        (Some(JoinError::Refused { code, reason }), _) => CliError::config(format!(
            "the hub refused to let us join room {room:?} as {} ({}): {reason}",
            role.name(),
            code.name()
        )),
        (Some(JoinError::BadName), _) => CliError::config(format!(
            "invalid room name {room:?}: use 1 to 64 bytes of letters, digits and `-_.:@/`"
        )),
        (_, Some(refusal)) => {
            CliError::config(format!("the hub at {hub} refused the session: {refusal}"))
        }
        (Some(JoinError::Timeout), None) => CliError::runtime(format!(
            "no answer from the hub at {hub} when joining room {room:?}: check the address and that the hub is running{}",
            lost.map(|l| format!(" (last connection error: {l})"))
                .unwrap_or_default()
        )),
        (Some(e), None) => CliError::runtime(format!("cannot join room {room:?}: {e}")),
        (None, None) => CliError::runtime(format!("cannot join room {room:?}: the engine stopped")),
    })
}

/// Seconds since `start_us`, for line prefixes.
pub fn stamp(clock: &MonotonicClock, start_us: u64) -> String {
    format!(
        "[{:7.3}s]",
        clock.now_us().saturating_sub(start_us) as f64 / 1e6
    )
}

/// A one-line description of a connection or room event; `None` for media and
/// membership events (the commands handle those themselves).
pub fn describe_event(ev: &Event) -> Option<String> {
    Some(match ev {
        Event::Connected { member, hub_index } => {
            format!("connected: we are member {member} (hub {hub_index})")
        }
        Event::Disconnected { reason } => format!("disconnected: {reason}"),
        Event::Reconnecting { attempt, delay } => format!(
            "reconnecting: attempt {attempt} in {} ms",
            delay.as_millis()
        ),
        Event::RoomRestored { members, .. } => {
            format!(
                "room restored after the reconnect ({} members)",
                members.len()
            )
        }
        Event::RoomLeft { reason, .. } => format!("left the room: {reason:?}"),
        Event::AudioLost { count, .. } => {
            format!("{count} audio chunks lost (not acknowledged while the connection was down)")
        }
        Event::Error { code, reason } => format!("the hub reports {}: {reason}", code.name()),
        Event::Alert(a) => format!(
            "performance alert {}: {:.1} past the threshold {:.1}",
            a.kind.name(),
            a.value,
            a.threshold
        ),
        _ => return None,
    })
}

/// The sum of the engine's drop counters.
pub fn engine_drops(m: &EngineMetrics) -> u64 {
    m.drops_ring
        + m.drops_superseded
        + m.drops_evicted
        + m.drops_refused
        + m.drops_stale
        + m.drops_no_room
        + m.audio_lost
}
