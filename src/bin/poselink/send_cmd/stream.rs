//! The sending loop: paces pose frames and audio chunks by the monotonic clock,
//! hands them to the engine, prints a line of statistics per second and the
//! summary at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use poselink::engine::{
    EngineHandle, EngineMetrics, EngineReport, Event, Priority, RoomId, SendError,
};
use poselink::proto::{AudioChunk, PoseFrame};
use poselink_hal::{AudioBlock, Clock, MonotonicClock, PoseSample};

use super::SendArgs;
use super::sources::{Audio, Poses};
use crate::CliError;
use crate::session::{describe_event, engine_drops, stamp};

/// What the sending loop counts itself.
#[derive(Default)]
pub(super) struct Local {
    poses_submitted: u64,
    audio_submitted: u64,
    /// Audio chunks the engine's hand-over ring refused.
    audio_ring_full: u64,
    /// Pose ticks skipped because the loop fell more than a second behind.
    ticks_skipped: u64,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn stream(
    engine: &EngineHandle,
    room: RoomId,
    clock: &MonotonicClock,
    start: u64,
    stop: &AtomicBool,
    args: &SendArgs,
    poses: &mut Poses,
    audio: &mut Option<Audio>,
) -> Result<Local, CliError> {
    let persons = args.persons as usize;
    let period_us = ((1e6 / args.fps).round() as u64).max(1);
    let end = args
        .duration
        .map(|d| start.saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)));
    let mut local = Local::default();
    let mut sample = PoseSample::zeroed();
    let mut block = AudioBlock::zeroed();
    let mut chunk = AudioChunk::silence(48_000, 1, 0);
    let mut pose_seq = vec![0u32; persons];
    let mut audio_seq = 0u32;
    let (mut next_pose, mut next_audio) = (start, start);
    let mut next_stats = start + 1_000_000;
    let mut last = (start, engine.metrics());
    let mut pose_errors = 0u64;

    loop {
        let now = clock.now_us();
        if stop.load(Ordering::Relaxed) {
            println!("{} stopping (signal)", stamp(clock, start));
            break;
        }
        // Before the end check, so that `--duration N` gives N lines.
        if now >= next_stats {
            let m = engine.metrics();
            stats_line(clock, start, &last, now, &m, &local);
            last = (now, m);
            next_stats += 1_000_000;
            if now > next_stats {
                next_stats = now + 1_000_000;
            }
        }
        if end.is_some_and(|end| now >= end) {
            break;
        }
        // Audio losses come one event per stretch of lost chunks: one line per batch.
        let mut audio_lost = 0;
        while let Some(ev) = engine.poll_event() {
            if let Event::AudioLost { count, .. } = ev {
                audio_lost += count;
            } else if let Some(line) = describe_event(&ev) {
                println!("{} {line}", stamp(clock, start));
            }
        }
        if audio_lost > 0 {
            let ev = Event::AudioLost {
                room,
                count: audio_lost,
            };
            println!(
                "{} {}",
                stamp(clock, start),
                describe_event(&ev).unwrap_or_default()
            );
        }

        if now >= next_pose {
            for (person, seq) in pose_seq.iter_mut().enumerate() {
                poses.next(person, &mut sample)?;
                *seq += 1;
                let mut frame =
                    PoseFrame::from_arrays(*seq, person as u32, clock.now_us(), &sample.landmarks);
                frame.clamp_to_range();
                match engine.send_pose(&frame, room, Priority::NORMAL) {
                    Ok(()) => local.poses_submitted += 1,
                    Err(SendError::ShutDown) => {
                        return Err(CliError::runtime("the engine stopped unexpectedly"));
                    }
                    Err(e) => {
                        pose_errors += 1;
                        if pose_errors == 1 {
                            eprintln!("poselink: warning: a pose frame was refused: {e}");
                        }
                    }
                }
            }
            next_pose += period_us;
            if now > next_pose + 1_000_000 {
                // Fell far behind (the machine stalled): start afresh, do not burst.
                local.ticks_skipped += (now - next_pose) / period_us;
                next_pose = now + period_us;
            }
        }

        if let Some(src) = audio.as_mut()
            && now >= next_audio
        {
            src.next(&mut block)?;
            let n = block.len.min(chunk.samples.len());
            chunk.sample_rate = block.sample_rate;
            chunk.channels = block.channels;
            chunk.len = n as u16;
            chunk.samples[..n].copy_from_slice(&block.samples[..n]);
            audio_seq += 1;
            chunk.seq = audio_seq;
            chunk.capture_ts_us = clock.now_us();
            match engine.send_audio(&chunk, room, Priority::HIGH) {
                Ok(()) => local.audio_submitted += 1,
                Err(SendError::RingFull) => local.audio_ring_full += 1,
                Err(SendError::ShutDown) => {
                    return Err(CliError::runtime("the engine stopped unexpectedly"));
                }
                Err(e) => {
                    // A recorded block the protocol does not carry: skip it.
                    audio_seq -= 1;
                    eprintln!("poselink: warning: an audio block was refused: {e}");
                }
            }
            next_audio += block.duration_us().max(1_000);
            if now > next_audio + 1_000_000 {
                next_audio = now + block.duration_us().max(1_000);
            }
        }

        let mut wake = next_pose.min(next_stats);
        if audio.is_some() {
            wake = wake.min(next_audio);
        }
        if let Some(end) = end {
            wake = wake.min(end);
        }
        let now = clock.now_us();
        if wake > now {
            // At most 50 ms, so that a signal is noticed promptly.
            std::thread::sleep(Duration::from_micros((wake - now).min(50_000)));
        }
    }
    Ok(local)
}

fn stats_line(
    clock: &MonotonicClock,
    start: u64,
    last: &(u64, EngineMetrics),
    now: u64,
    m: &EngineMetrics,
    local: &Local,
) {
    let (then, p) = last;
    let secs = (now.saturating_sub(*then) as f64 / 1e6).max(1e-3);
    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
    let rtt = if m.rtt_us == 0 {
        "-".to_string()
    } else {
        format!("{:.2} ms", m.rtt_us as f64 / 1000.0)
    };
    println!(
        "{} pose {:.0}/s  audio {:.0}/s  {:.1} kbit/s  drops {}  {}  reconnects {}  rtt {rtt}",
        stamp(clock, start),
        rate(m.poses_sent, p.poses_sent),
        rate(m.audio_sent, p.audio_sent),
        rate(m.bytes_sent, p.bytes_sent) * 8.0 / 1000.0,
        engine_drops(m) + local.audio_ring_full,
        if m.connected {
            "connected"
        } else {
            "DISCONNECTED"
        },
        m.reconnects,
    );
}

pub(super) fn summary(clock: &MonotonicClock, start: u64, report: &EngineReport, local: &Local) {
    let m = &report.metrics;
    let secs = (clock.now_us().saturating_sub(start) as f64 / 1e6).max(1e-3);
    println!(
        "summary: {secs:.1} s; pose frames {} sent of {} submitted; audio chunks {} sent of {} submitted \
         ({} replayed); {:.1} kB sent ({:.1} kbit/s); drops {} (ring {}, superseded {}, evicted {}, \
         refused {}, stale {}, no room {}, audio lost {}, audio ring full {}); reconnects {}{}{}",
        m.poses_sent,
        local.poses_submitted,
        m.audio_sent,
        local.audio_submitted,
        m.audio_replayed,
        m.bytes_sent as f64 / 1000.0,
        m.bytes_sent as f64 * 8.0 / 1000.0 / secs,
        engine_drops(m) + local.audio_ring_full,
        m.drops_ring,
        m.drops_superseded,
        m.drops_evicted,
        m.drops_refused,
        m.drops_stale,
        m.drops_no_room,
        m.audio_lost,
        local.audio_ring_full,
        m.reconnects,
        if local.ticks_skipped > 0 {
            format!(
                "; {} frame ticks skipped (the host stalled)",
                local.ticks_skipped
            )
        } else {
            String::new()
        },
        report
            .thread_cpu
            .map(|c| format!("; engine thread CPU {:.3} s", c.as_secs_f64()))
            .unwrap_or_default(),
    );
}
