//! Criterion benches of the send queue (`poselink::queue::SendQueue`) at the edge
//! engine's default capacity (192 entries, pose stale after 100 ms): what one
//! push and one pop cost in the cases the engine meets — a queue that drains as
//! fast as it fills, a pose frame replacing the unsent frame of its stream
//! (latest wins), and a full queue evicting its lowest priority.
//!
//! Run: `cargo bench --bench queue`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use poselink::queue::{Entry, EntryKind, SendQueue};

/// The engine's default queue capacity.
const CAPACITY: usize = 192;
/// The engine's default age bound for pose frames, µs.
const MAX_POSE_AGE_US: u64 = 100_000;

fn entry(kind: EntryKind, priority: u8, stream: u32, t: u64) -> Entry<u32> {
    Entry {
        item: t as u32,
        kind,
        priority,
        room: 1,
        stream,
        queued_us: t,
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");

    // A pose frame and an audio chunk in, both out: the steady state of an
    // engine whose link keeps up (a few entries queued at a time).
    g.bench_function("push + pop, pose and audio, 4 queued", |b| {
        let mut q = SendQueue::new(CAPACITY, MAX_POSE_AGE_US);
        for k in 0..4 {
            q.push(entry(EntryKind::Audio, 3, 0, k));
        }
        let mut t = 10u64;
        b.iter(|| {
            t += 1;
            black_box(q.push(entry(EntryKind::Pose, 5, 0, t)));
            black_box(q.push(entry(EntryKind::Audio, 3, 0, t)));
            black_box(q.pop(t));
            black_box(q.pop(t));
        });
    });

    // Latest wins: every push finds the unsent frame of its stream and replaces
    // it, in a queue holding 64 entries of other streams.
    g.bench_function("push, pose replacing its stream's frame, 64 queued", |b| {
        let mut q = SendQueue::new(CAPACITY, MAX_POSE_AGE_US);
        for k in 0..64 {
            q.push(entry(EntryKind::Audio, 3, 100 + k, u64::from(k)));
        }
        q.push(entry(EntryKind::Pose, 5, 7, 64));
        let mut t = 65u64;
        b.iter(|| {
            t += 1;
            black_box(q.push(entry(EntryKind::Pose, 5, 7, t)));
        });
    });

    // A full queue: a control message evicts the lowest-priority entry and is
    // popped, and an audio chunk fills the place again (three operations).
    g.bench_function("full queue: push evicting + pop + refill", |b| {
        let mut q = SendQueue::new(CAPACITY, MAX_POSE_AGE_US);
        for k in 0..CAPACITY as u64 {
            q.push(entry(EntryKind::Audio, 2, k as u32 + 1000, k));
        }
        let mut t = CAPACITY as u64;
        b.iter(|| {
            t += 1;
            black_box(q.push(entry(EntryKind::Control, 9, 0, t)));
            black_box(q.pop(t));
            black_box(q.push(entry(EntryKind::Audio, 2, t as u32, t)));
        });
    });
    g.finish();
}

criterion_group!(queue, benches);
criterion_main!(queue);
