//! A long hub outage on 127.0.0.1, as the outside test ran it: the hub is
//! stopped for 2 s while a publisher streams audio at 50 chunks/s, then
//! started again on the same port; both engines find it by themselves (the
//! publisher with its default backoff, so the outage it sees is the 2 s plus
//! its backoff). The receiver gets every chunk exactly once and in order —
//! those the publisher queued while down and those it replays after its
//! reconnect — and the counts agree: the publisher reports nothing lost, the
//! receiver no gap, and the duplicates it removed are replays. In dev mode,
//! as here, an anonymous client is named after its stream id, so a replay
//! under its new member id is still recognised.
//!
//! The publisher's way back is held shut until the receiver is in the room
//! again: the hub relays to the members present, so chunks a publisher sends
//! before a receiver is back never reach that receiver (a bound the docs
//! state; `watch` retries within 250 ms to keep it short).
//!
//! The publisher's backlog (the chunks of the outage and of its backoff, up
//! to ~200) reaches the new hub in one burst, more than a receiver's media
//! queue holds: the hub writes the receiver's queue out as it fills rather
//! than pushing its oldest chunks out (it lost up to 83 here when every
//! message of a read was relayed before anything was written, while the
//! publisher counted them acknowledged).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use poselink::engine::{EdgeEngine, EngineConfig, Event};
use poselink::hub::HubConfig;
use poselink::proto::{AudioChunk, AudioCodec, AudioEncoding, EncoderConfig, Role};

#[test]
fn a_two_second_outage_loses_no_audio_and_the_counts_agree() {
    outage(AudioEncoding::default());
}

/// The same with Opus: the replay window
/// keeps the coded packets, so a replay resends them and the receiver's
/// decoder sees each packet once, in order. (Needs the `opus` feature: without
/// it the engine sends PCM16.)
#[cfg(feature = "opus")]
#[test]
fn opus_audio_survives_a_two_second_outage_exactly_once() {
    outage(AudioEncoding {
        codec: AudioCodec::Opus,
        ..AudioEncoding::default()
    });
}

/// The same with the board setting: three consecutive chunks go as one 60 ms
/// packet (decoded at 16 kHz), numbered from chunk 1's seq / 3 = 0: chunks
/// 1 ..= 300 make packets 0 ..= 99.
#[cfg(feature = "opus")]
#[test]
fn board_opus_packets_of_60_ms_survive_a_two_second_outage_exactly_once() {
    outage(AudioEncoding::board());
}

fn outage(audio: AudioEncoding) {
    let codec = audio.codec;
    let per = audio.chunks_per_packet() as u32;
    let encoder = EncoderConfig {
        audio,
        ..EncoderConfig::default()
    };
    let cfg = HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..HubConfig::local_dev()
    };
    let hub = TestHub::start(cfg.clone());
    let addr = hub.addr;
    let open = Arc::new(AtomicBool::new(true));
    let via = forwarder(addr, Arc::clone(&open));
    let (a, ta) = EdgeEngine::start(EngineConfig {
        hub: format!("ws://{via}/"),
        encoder,
        ..EngineConfig::default()
    })
    .unwrap();
    let (b, tb) = EdgeEngine::start(EngineConfig {
        hub: format!("ws://{addr}/"),
        reconnect_min_ms: 20,
        reconnect_max_ms: 50,
        heartbeat_ms: 200,
        ..EngineConfig::default()
    })
    .unwrap();
    let ra = a.join_room("outage", Role::Member).unwrap();
    b.join_room("outage", Role::Viewer).unwrap();

    let total = 300u32; // 6 s of audio
    let publisher = publish_every_20_ms(a.clone(), ra, total, false, None);
    // Messages the receiver must get: one per `per` chunks.
    let expected: Vec<u32> = if per == 1 {
        (1..=total).collect()
    } else {
        (0..total.div_ceil(per)).collect()
    };
    let mut seqs = Vec::new();
    // Samples received, in 48 kHz samples (a 60 ms packet decodes at 16 kHz).
    let played = std::cell::Cell::new(0u64);
    let add = |chunk: &AudioChunk| {
        played.set(played.get() + u64::from(chunk.len) * 48_000 / u64::from(chunk.sample_rate));
    };
    let collect = |b: &poselink::engine::EngineHandle, until: Instant, seqs: &mut Vec<u32>| {
        while Instant::now() < until {
            if let Some(Event::Audio { chunk, .. }) = b.wait_event(Duration::from_millis(20)) {
                add(&chunk);
                if per == 1 {
                    assert_eq!(chunk.len, 960, "the chunk's length");
                }
                if codec == AudioCodec::Pcm16 {
                    assert_eq!(
                        chunk.samples[0], chunk.seq as i16,
                        "the chunk's own samples"
                    );
                }
                seqs.push(chunk.seq);
            }
        }
    };
    collect(&b, Instant::now() + Duration::from_millis(1_000), &mut seqs);
    assert!(
        seqs.len() > 20 / per as usize,
        "audio flowed before the outage"
    );
    open.store(false, Ordering::Release);
    hub.stop();
    std::thread::sleep(Duration::from_millis(2_000));
    let hub2 = TestHub::start(HubConfig {
        listen: addr,
        ..cfg
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "the receiver never restored its room"
        );
        match b.wait_event(Duration::from_millis(20)) {
            Some(Event::RoomRestored { .. }) => break,
            Some(Event::Audio { chunk, .. }) => {
                add(&chunk);
                seqs.push(chunk.seq)
            }
            _ => {}
        }
    }
    open.store(true, Ordering::Release);
    let deadline = Instant::now() + Duration::from_secs(20);
    while seqs.len() < expected.len() && Instant::now() < deadline {
        collect(&b, Instant::now() + Duration::from_millis(200), &mut seqs);
    }
    publisher.join().unwrap();
    let (ma, mb) = (a.metrics(), b.metrics());
    a.shutdown();
    b.shutdown();
    ta.join().unwrap();
    tb.join().unwrap();
    drop(hub2);
    assert_eq!(
        seqs, expected,
        "every chunk once, in order (publisher {ma:?}, receiver {mb:?})"
    );
    assert_eq!(played.get(), u64::from(total) * 960, "every sample once");
    assert!(ma.reconnects >= 1 && mb.reconnects >= 1);
    assert_eq!(
        ma.audio_lost, 0,
        "the publisher reports what receivers saw: nothing lost"
    );
    assert_eq!(mb.audio_gaps, 0);
    assert_eq!(mb.audio_received, expected.len() as u64);
    assert!(
        mb.audio_duplicates <= ma.audio_replayed,
        "duplicates removed are replays: {} of {}",
        mb.audio_duplicates,
        ma.audio_replayed
    );
}
