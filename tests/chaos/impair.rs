//! The impaired link between two namespaces: a thread that moves IPv4 packets
//! between their TUN devices ([`crate::netns::Host`]) with a one-way delay,
//! random loss and a partition switch, set while it runs. It stands in for
//! `tc netem`, which some kernels (this CI's among them) are built without.
//!
//! Each direction is a FIFO delay line: a packet read at `t` is written to the
//! other side at `t + delay` unless the loss draw (a seeded generator, so a
//! run can be repeated) or a partition drops it. Switching the partition on
//! also drops what is in the delay lines, as a cut cable loses what is on it.
//! The thread polls both descriptors with a timeout no longer than the next
//! packet's due time (and at most 2 ms), so the delay is kept to about a
//! millisecond.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest a link thread runs, and the most poll turns it takes: bounds
/// for a test that forgets to stop it.
const MAX_LIFE: Duration = Duration::from_secs(15 * 60);
const MAX_TURNS: u64 = 200_000_000;

/// Packets counted per direction: `[a → b, b → a]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkStats {
    /// Packets delivered to the other side.
    pub forwarded: [u64; 2],
    /// Packets dropped by the loss draw.
    pub lost: [u64; 2],
    /// Packets dropped by a partition (arriving during it or in flight when it began).
    pub cut: [u64; 2],
}

struct Settings {
    delay_us: AtomicU64,
    /// Loss probability in parts per million.
    loss_ppm: AtomicU32,
    partitioned: AtomicBool,
    stop: AtomicBool,
}

/// A running link; [`stop`](Link::stop) ends it and returns its counts.
pub struct Link {
    settings: Arc<Settings>,
    thread: Option<JoinHandle<LinkStats>>,
}

impl Link {
    /// Starts moving packets between `a` and `b` (non-blocking TUN fds), clean:
    /// no delay, no loss. `seed` seeds the loss draws.
    pub fn start(a: OwnedFd, b: OwnedFd, seed: u64) -> Link {
        let settings = Arc::new(Settings {
            delay_us: AtomicU64::new(0),
            loss_ppm: AtomicU32::new(0),
            partitioned: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&settings);
        let thread = std::thread::Builder::new()
            .name("impaired-link".into())
            .spawn(move || run([a, b], &s, seed))
            .expect("the link thread starts");
        Link {
            settings,
            thread: Some(thread),
        }
    }

    /// Sets the one-way delay (each direction) and the loss probability (0 to 1).
    pub fn impair(&self, delay: Duration, loss: f64) {
        let ppm = (loss.clamp(0.0, 1.0) * 1e6).round() as u32;
        self.settings
            .delay_us
            .store(delay.as_micros() as u64, Ordering::Release);
        self.settings.loss_ppm.store(ppm, Ordering::Release);
    }

    /// Cuts the link (every packet dropped) or restores it.
    pub fn partition(&self, on: bool) {
        self.settings.partitioned.store(on, Ordering::Release);
    }

    /// Stops the thread; the counts since the start.
    pub fn stop(mut self) -> LinkStats {
        self.settings.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .expect("stopped once")
            .join()
            .expect("the link thread ended cleanly")
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.settings.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now_us(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// The link thread: reads what each side sends, delays it, writes it to the other.
fn run(fds: [OwnedFd; 2], s: &Settings, seed: u64) -> LinkStats {
    let epoch = Instant::now();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut stats = LinkStats::default();
    // In flight per direction: (due µs, packet). Packets are at most the TUN's
    // MTU (1500) long; the buffer is the largest IPv4 packet.
    let mut lines: [VecDeque<(u64, Vec<u8>)>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut buf = vec![0u8; 65_536];
    let mut turns = 0u64;
    while !s.stop.load(Ordering::Acquire) && turns < MAX_TURNS && epoch.elapsed() < MAX_LIFE {
        turns += 1;
        let partitioned = s.partitioned.load(Ordering::Acquire);
        if partitioned {
            for (dir, line) in lines.iter_mut().enumerate() {
                stats.cut[dir] += line.len() as u64;
                line.clear();
            }
        }
        // Deliver what is due.
        let now = now_us(epoch);
        for (dir, line) in lines.iter_mut().enumerate() {
            while line.front().is_some_and(|(due, _)| *due <= now) {
                let (_, pkt) = line.pop_front().expect("a front packet");
                // SAFETY: writes `pkt.len()` bytes from a live buffer to an open fd.
                let n = unsafe {
                    libc::write(fds[1 - dir].as_raw_fd(), pkt.as_ptr().cast(), pkt.len())
                };
                if n == pkt.len() as isize {
                    stats.forwarded[dir] += 1;
                } else {
                    stats.lost[dir] += 1;
                }
            }
        }
        // Wait for a packet or the next due time (at most 2 ms).
        let next_due = lines
            .iter()
            .filter_map(|l| l.front().map(|(due, _)| *due))
            .min();
        let wait_ms = next_due.map_or(2, |d| d.saturating_sub(now).div_ceil(1000).min(2));
        let mut pfds = [0, 1].map(|i| libc::pollfd {
            fd: fds[i].as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: `pfds` is a valid array of two pollfds for the call's duration.
        let ready = unsafe { libc::poll(pfds.as_mut_ptr(), 2, wait_ms as libc::c_int) };
        if ready <= 0 {
            continue;
        }
        let delay = s.delay_us.load(Ordering::Acquire);
        let loss = s.loss_ppm.load(Ordering::Acquire);
        for (dir, p) in pfds.iter().enumerate() {
            if p.revents & libc::POLLIN == 0 {
                continue;
            }
            // Drain this side (bounded: a burst larger than this waits a turn).
            for _ in 0..256 {
                // SAFETY: reads at most `buf.len()` bytes into a live buffer.
                let n = unsafe { libc::read(p.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    break; // EAGAIN: drained
                }
                if partitioned {
                    stats.cut[dir] += 1;
                } else if rng.u32(0..1_000_000) < loss {
                    stats.lost[dir] += 1;
                } else {
                    let due = now_us(epoch) + delay;
                    lines[dir].push_back((due, buf[..n as usize].to_vec()));
                }
            }
        }
    }
    stats
}
