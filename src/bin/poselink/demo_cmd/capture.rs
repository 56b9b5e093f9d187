//! The simulated capture devices: one thread paces every device's synthetic
//! skeleton at the frame rate (the devices spread over the frame period, as
//! independent cameras are) and its 20 ms tone chunks, and hands them to each
//! device's edge engine, counting what it submitted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use poselink::engine::{EngineHandle, Priority, RoomId, SendError};
use poselink::proto::{AudioChunk, PoseFrame};
use poselink_hal::{
    AudioBlock, AudioSource, Clock, MonotonicClock, PoseSample, PoseSource, SyntheticAudio,
    SyntheticConfig, SyntheticPose,
};

use super::Submitted;

pub(super) fn capture_loop(
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
