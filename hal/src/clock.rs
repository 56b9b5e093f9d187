//! Monotonic time in microseconds, the one time base of the whole pipeline.
//!
//! Capture timestamps, send times and receive times all come from a [`Clock`]. On a
//! board, [`MonotonicClock`] reads the kernel's `CLOCK_MONOTONIC`, which every process
//! on the host shares, so a receiver on the same host can compute latency as its
//! receive time minus the sender's capture time. In tests, [`MockClock`] is set and
//! advanced by hand so that timing logic is deterministic.
//!
//! Reading a clock cannot fail, so [`Clock`] has no `Error` type.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonic clock with microsecond resolution.
///
/// Successive readings never decrease. The origin is arbitrary (boot time for
/// [`MonotonicClock`]), so only differences between readings of the same clock, or of
/// clocks sharing a time base, are meaningful.
///
/// ```
/// use poselink_hal::{Clock, MockClock};
///
/// fn elapsed<C: Clock>(clock: &C, since_us: u64) -> u64 {
///     clock.now_us().saturating_sub(since_us)
/// }
///
/// let clock = MockClock::new(1_000);
/// clock.advance(250);
/// assert_eq!(elapsed(&clock, 1_000), 250);
/// ```
pub trait Clock {
    /// The current time in microseconds.
    fn now_us(&self) -> u64;
}

impl<T: Clock + ?Sized> Clock for &T {
    fn now_us(&self) -> u64 {
        T::now_us(self)
    }
}

impl<T: Clock + ?Sized> Clock for &mut T {
    fn now_us(&self) -> u64 {
        T::now_us(self)
    }
}

impl<T: Clock + ?Sized> Clock for Box<T> {
    fn now_us(&self) -> u64 {
        T::now_us(self)
    }
}

impl<T: Clock + ?Sized> Clock for Arc<T> {
    fn now_us(&self) -> u64 {
        T::now_us(self)
    }
}

/// The host's monotonic clock (`CLOCK_MONOTONIC`), in microseconds since boot.
///
/// All processes on one host read the same time base, so timestamps taken by one
/// process can be compared with readings in another.
///
/// ```
/// use poselink_hal::{Clock, MonotonicClock};
///
/// let clock = MonotonicClock::new();
/// let a = clock.now_us();
/// let b = clock.now_us();
/// assert!(b >= a);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonotonicClock {
    _private: (),
}

impl MonotonicClock {
    /// A handle on the host's monotonic clock.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

#[cfg(unix)]
impl Clock for MonotonicClock {
    fn now_us(&self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable `timespec` that outlives the call, and
        // `CLOCK_MONOTONIC` is a clock id every supported unix provides.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        if rc != 0 {
            // Cannot happen with a valid pointer and clock id; report a zero reading
            // rather than panic in the middle of a stream.
            log::error!(
                "clock_gettime(CLOCK_MONOTONIC) failed: {}",
                std::io::Error::last_os_error()
            );
            return 0;
        }
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
        secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000)
    }
}

#[cfg(not(unix))]
impl Clock for MonotonicClock {
    fn now_us(&self) -> u64 {
        // No shared system-wide monotonic clock is read here: the origin is the first
        // reading in this process, so cross-process comparisons are not meaningful.
        use std::sync::OnceLock;
        use std::time::Instant;
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// A timer that fires at a time to the microsecond on [`MonotonicClock`]'s
/// clock, for an event loop to sleep on: a Linux `timerfd`, registered with
/// `epoll` through its descriptor (`mio`'s `SourceFd`). `epoll_wait`'s own
/// timeout is whole milliseconds. Registered edge-triggered it needs no read:
/// each firing is a new edge, and arming it again replaces the time.
///
/// ```
/// use poselink_hal::{Clock, MonotonicClock, TimerFd};
///
/// let timer = TimerFd::new().unwrap();
/// timer.arm_at_us(MonotonicClock::new().now_us() + 500).unwrap();
/// ```
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct TimerFd {
    fd: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl TimerFd {
    /// A new, unarmed, non-blocking timer on `CLOCK_MONOTONIC`.
    pub fn new() -> std::io::Result<TimerFd> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        Ok(TimerFd { fd })
    }

    /// Arms the timer to fire once at `at_us` (µs of `CLOCK_MONOTONIC`, as
    /// [`MonotonicClock::now_us`] reads it; a time past fires at once),
    /// replacing any earlier arming.
    pub fn arm_at_us(&self, at_us: u64) -> std::io::Result<()> {
        use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: (at_us / 1_000_000) as _,
                // At least 1 ns: an all-zero time would disarm the timer.
                tv_nsec: ((at_us % 1_000_000) * 1_000).max(1) as _,
            },
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::ABSTIME, &spec)?;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
impl std::os::fd::AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// A clock that only moves when told to, for deterministic tests.
///
/// Clones share the same time: a test keeps one copy to drive the clock and hands
/// another to the code under test.
///
/// ```
/// use poselink_hal::{Clock, MockClock};
///
/// let clock = MockClock::new(5_000);
/// let seen_by_code_under_test = clock.clone();
///
/// clock.advance(1_500);
/// assert_eq!(seen_by_code_under_test.now_us(), 6_500);
///
/// clock.set(42);
/// assert_eq!(seen_by_code_under_test.now_us(), 42);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MockClock {
    now_us: Arc<AtomicU64>,
}

impl MockClock {
    /// A clock reading `start_us`.
    pub fn new(start_us: u64) -> Self {
        Self {
            now_us: Arc::new(AtomicU64::new(start_us)),
        }
    }

    /// Sets the time to `us`, for every clone of this clock.
    ///
    /// Unlike a real clock, this may move time backwards; tests that do so check how
    /// their code copes with it.
    pub fn set(&self, us: u64) {
        self.now_us.store(us, Ordering::SeqCst);
    }

    /// Moves the time forward by `us` (saturating at `u64::MAX`), for every clone.
    pub fn advance(&self, us: u64) {
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let _ = self
            .now_us
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(us))
            });
    }
}

impl Clock for MockClock {
    fn now_us(&self) -> u64 {
        self.now_us.load(Ordering::SeqCst)
    }
}

/// CPU time the calling thread has used, in microseconds (`CLOCK_THREAD_CPUTIME_ID`),
/// or `None` where the platform does not say. Benchmarks use it to charge a
/// thread's work to it alone.
pub fn thread_cpu_us() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc != 0 {
            return None;
        }
        let secs = u64::try_from(ts.tv_sec).ok()?;
        let nanos = u64::try_from(ts.tv_nsec).ok()?;
        Some(secs * 1_000_000 + nanos / 1_000)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_moves_forward_with_real_time() {
        let clock = MonotonicClock::new();
        let a = clock.now_us();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = clock.now_us();
        assert!(b >= a + 4_000, "a={a} b={b}");
        assert!(b < a + 5_000_000, "a={a} b={b}");
    }

    #[cfg(unix)]
    #[test]
    fn monotonic_clock_matches_std_instant_rate() {
        let clock = MonotonicClock::new();
        let start = std::time::Instant::now();
        let a = clock.now_us();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = clock.now_us();
        let std_us = start.elapsed().as_micros() as u64;
        // Our interval lies within the std interval, give or take scheduling.
        assert!(b - a <= std_us + 1_000, "ours={} std={std_us}", b - a);
        assert!(b - a >= 20_000);
    }

    /// Whether `timer` fires within `within_ms` (a `poll` for readable).
    #[cfg(target_os = "linux")]
    fn fires_within(timer: &TimerFd, within_ms: i32) -> bool {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: timer.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd that outlives the call.
        let n = unsafe { libc::poll(&mut pfd, 1, within_ms) };
        assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
        n == 1
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn timerfd_fires_at_its_time_on_the_monotonic_clock_and_rearms() {
        let clock = MonotonicClock::new();
        let timer = TimerFd::new().unwrap();
        assert!(!fires_within(&timer, 0), "unarmed");
        // An absolute time on CLOCK_MONOTONIC: 20 ms from now fires after
        // 20 ms, not before (a relative or wrong-clock arming would not).
        let start = clock.now_us();
        timer.arm_at_us(start + 20_000).unwrap();
        assert!(!fires_within(&timer, 5), "fired early");
        assert!(fires_within(&timer, 2_000), "did not fire");
        assert!(clock.now_us() >= start + 20_000);
        // Arming again replaces the time (and the firing is a new edge).
        let timer = TimerFd::new().unwrap();
        timer.arm_at_us(clock.now_us() + 60_000_000).unwrap();
        timer.arm_at_us(clock.now_us() + 1_000).unwrap();
        assert!(
            fires_within(&timer, 2_000),
            "the second arming replaced the first"
        );
        // A time past, even on a whole second, fires at once.
        let timer = TimerFd::new().unwrap();
        timer.arm_at_us(start / 1_000_000 * 1_000_000).unwrap();
        assert!(fires_within(&timer, 1_000), "a time past fires at once");
    }

    #[test]
    fn mock_clock_clones_share_time_and_saturate() {
        let clock = MockClock::new(10);
        let other = clock.clone();
        other.advance(5);
        assert_eq!(clock.now_us(), 15);
        clock.set(u64::MAX - 1);
        other.advance(10);
        assert_eq!(clock.now_us(), u64::MAX);
        assert_eq!(MockClock::default().now_us(), 0);
    }

    #[test]
    fn blanket_impls_forward() {
        fn reading<C: Clock>(clock: C) -> u64 {
            clock.now_us()
        }
        let mut clock = MockClock::new(7);
        assert_eq!(reading(&clock), 7);
        assert_eq!(reading(&mut clock), 7);
        let boxed: Box<dyn Clock> = Box::new(clock.clone());
        assert_eq!(boxed.now_us(), 7);
        assert_eq!(Arc::new(clock).now_us(), 7);
    }
}
