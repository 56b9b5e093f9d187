//! Rate limits on the hub's log lines, so that an attack cannot fill the disk
//! through them. Every refused message or connection is worth a warning, and
//! an attacker can cause thousands a second (an outside attack made 1.9 MB of
//! log in 20 s); like nginx's and NATS's repeated-error suppression, each kind
//! of line gets at most [`BURST`] lines per [`WINDOW_US`], and the lines held
//! back are counted and said once: "… and 4311 more like this in the last
//! 10 s". The count is logged by the first line of that kind after its window
//! ends, or by the housekeeping timer ([`LogLimiter::flush`]) if none comes.
//!
//! It is sans-IO like the hub's core, which owns one (the driver owns another,
//! for the lines about sockets and HTTP): the time is an argument, the table is
//! a fixed array indexed by [`LogKind`], and nothing allocates; the lines go to
//! the `log` facade. What is not a warning about a peer (start-up, shutdown,
//! configuration) is logged directly, never through it.

use core::fmt;

/// How long a window of one kind of line lasts, µs.
pub const WINDOW_US: u64 = 10_000_000;
/// Lines of one kind logged per window; the rest are counted.
pub const BURST: u32 = 10;

/// A kind of repeated warning: each has its own window and count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LogKind {
    /// A WebSocket framing rule broken, a malformed close frame, text that is
    /// not UTF-8.
    WebSocket,
    /// A message refused as malformed (binary or JSON).
    BadMessage,
    /// A message over the sender's rate limit.
    RateLimited,
    /// A connection closed for flooding.
    Flooding,
    /// A hello refused (token missing, invalid or expired).
    HelloRefused,
    /// No hello within the handshake timeout.
    NoHello,
    /// A receiver closed for not reading (slow consumer, full control buffer).
    SlowConsumer,
    /// A session closed after 3 silent heartbeats.
    Silent,
    /// A connection refused because every slot is taken.
    HubFull,
    /// A request that is not HTTP, or not a valid WebSocket upgrade.
    BadHttp,
    /// TLS on a plain port, plain on a TLS port, a failed TLS handshake.
    Tls,
    /// A socket error while accepting.
    Accept,
    /// The relay pool had no block for a message (cannot happen by its sizing).
    PoolExhausted,
    /// The cluster link: malformed messages from the broker, a full queue.
    Cluster,
}

/// How many kinds there are.
const KINDS: usize = LogKind::Cluster as usize + 1;

impl LogKind {
    /// What the lines of this kind are about, for the count of those held back.
    pub const fn about(self) -> &'static str {
        match self {
            LogKind::WebSocket => "WebSocket protocol errors",
            LogKind::BadMessage => "refused messages",
            LogKind::RateLimited => "rate-limit warnings",
            LogKind::Flooding => "connections closed for flooding",
            LogKind::HelloRefused => "refused hellos",
            LogKind::NoHello => "connections without a hello",
            LogKind::SlowConsumer => "slow consumers closed",
            LogKind::Silent => "silent sessions closed",
            LogKind::HubFull => "connections refused for a full hub",
            LogKind::BadHttp => "refused HTTP requests",
            LogKind::Tls => "TLS refusals",
            LogKind::Accept => "accept errors",
            LogKind::PoolExhausted => "messages dropped for an exhausted relay pool",
            LogKind::Cluster => "cluster link warnings",
        }
    }
}

/// One kind's window.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    /// When it opened (the first line after a quiet spell), µs.
    start_us: u64,
    /// Lines logged in it.
    logged: u32,
    /// Lines held back in it.
    held: u64,
    /// Whether a window is open.
    open: bool,
}

/// Per-kind windows over the log lines of peers' misdeeds (see the
/// [module documentation](self)).
#[derive(Clone, Debug)]
pub struct LogLimiter {
    windows: [Window; KINDS],
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LogLimiter {
    /// Every kind quiet.
    pub const fn new() -> LogLimiter {
        LogLimiter {
            windows: [Window {
                start_us: 0,
                logged: 0,
                held: 0,
                open: false,
            }; KINDS],
        }
    }

    /// Whether a line of `kind` at `now_us` is logged: `Some(held)` if so,
    /// `held` being the lines of that kind held back in the window that just
    /// ended (0 if none, or if they were said already); `None` if it is held
    /// back (and counted).
    pub fn admit(&mut self, kind: LogKind, now_us: u64) -> Option<u64> {
        let w = &mut self.windows[kind as usize];
        let mut held_before = 0;
        if w.open && now_us.saturating_sub(w.start_us) >= WINDOW_US {
            held_before = w.held;
            w.open = false;
        }
        if !w.open {
            *w = Window {
                start_us: now_us,
                logged: 0,
                held: 0,
                open: true,
            };
        }
        if w.logged < BURST {
            w.logged += 1;
            Some(held_before)
        } else {
            w.held += 1;
            None
        }
    }

    /// Ends the windows that are over at `now_us`, handing each count of lines
    /// held back to `say` (kind, count); the housekeeping timer calls it so that
    /// a count is said even when no line of its kind follows.
    pub fn flush(&mut self, now_us: u64, mut say: impl FnMut(LogKind, u64)) {
        for (k, w) in self.windows.iter_mut().enumerate() {
            if w.open && now_us.saturating_sub(w.start_us) >= WINDOW_US {
                w.open = false;
                if w.held > 0 {
                    say(KIND_OF[k], w.held);
                }
            }
        }
    }

    /// Logs a warning of `kind` unless its window is spent; a count of lines
    /// held back before it is added to it.
    pub fn warn(&mut self, kind: LogKind, now_us: u64, line: fmt::Arguments<'_>) {
        match self.admit(kind, now_us) {
            Some(0) => log::warn!("{line}"),
            Some(held) => log::warn!(
                "{line} (and {held} more like this in the {} s before, not logged)",
                WINDOW_US / 1_000_000
            ),
            None => {}
        }
    }

    /// [`flush`](Self::flush), logging each count as a warning.
    pub fn flush_to_log(&mut self, now_us: u64) {
        self.flush(now_us, |kind, held| {
            log::warn!(
                "… and {held} more {} like these in the last {} s, not logged",
                kind.about(),
                WINDOW_US / 1_000_000
            );
        });
    }
}

/// Every kind by index.
const KIND_OF: [LogKind; KINDS] = [
    LogKind::WebSocket,
    LogKind::BadMessage,
    LogKind::RateLimited,
    LogKind::Flooding,
    LogKind::HelloRefused,
    LogKind::NoHello,
    LogKind::SlowConsumer,
    LogKind::Silent,
    LogKind::HubFull,
    LogKind::BadHttp,
    LogKind::Tls,
    LogKind::Accept,
    LogKind::PoolExhausted,
    LogKind::Cluster,
];

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn every_kind_is_at_its_index() {
        for (k, kind) in KIND_OF.iter().enumerate() {
            assert_eq!(*kind as usize, k);
        }
    }

    #[test]
    fn a_burst_is_logged_then_held_back_and_counted_until_the_next_window() {
        let mut lim = LogLimiter::new();
        let t0 = 5 * S;
        // 5000 refusals within the window (one every 1 ms): BURST logged.
        let logged = (0..5_000)
            .filter(|n| lim.admit(LogKind::BadMessage, t0 + n * 1_000).is_some())
            .count();
        assert_eq!(logged, BURST as usize);
        // Another kind is not affected.
        assert_eq!(lim.admit(LogKind::WebSocket, t0 + 6 * S), Some(0));
        // The first line after the window carries the count.
        assert_eq!(
            lim.admit(LogKind::BadMessage, t0 + WINDOW_US),
            Some(5_000 - u64::from(BURST))
        );
        // And it opened a new window: the count is said once.
        assert_eq!(lim.admit(LogKind::BadMessage, t0 + WINDOW_US + 1), Some(0));
    }

    #[test]
    fn the_housekeeping_flush_says_the_count_when_no_line_follows() {
        let mut lim = LogLimiter::new();
        for n in 0..25 {
            lim.admit(LogKind::RateLimited, n * 1_000);
        }
        lim.admit(LogKind::HubFull, 3 * S);
        let mut said = Vec::new();
        lim.flush(WINDOW_US - 1, |k, n| said.push((k, n)));
        assert!(said.is_empty(), "not before the window ends: {said:?}");
        lim.flush(WINDOW_US, |k, n| said.push((k, n)));
        // HubFull held nothing back: nothing to say about it.
        assert_eq!(said, [(LogKind::RateLimited, 25 - u64::from(BURST))]);
        // Said once: not again by a later flush, nor by the next line.
        said.clear();
        lim.flush(3 * WINDOW_US, |k, n| said.push((k, n)));
        assert_eq!(said, [], "{said:?}");
        assert_eq!(lim.admit(LogKind::RateLimited, 3 * WINDOW_US), Some(0));
    }

    #[test]
    fn a_steady_attack_costs_a_bounded_number_of_lines() {
        // 100 000 refusals a second for 60 s, with the housekeeping flush every
        // 20 ms: BURST lines and one count per window.
        let mut lim = LogLimiter::new();
        let (mut lines, mut counted) = (0u64, 0u64);
        let mut held_total = 0u64;
        let mut t = 0;
        while t < 60 * S {
            for k in 0..2_000 {
                if let Some(h) = lim.admit(LogKind::BadMessage, t + k * 10) {
                    lines += 1;
                    held_total += h;
                }
            }
            lim.flush(t + 20_000, |_, n| {
                counted += 1;
                held_total += n;
            });
            t += 20_000;
        }
        let windows = 60 * S / WINDOW_US;
        assert_eq!(lines, windows * u64::from(BURST));
        assert!(counted <= windows, "{counted}");
        // Every refusal is either logged or counted (the last window's count
        // is said at its end, just after the loop).
        lim.flush(t + WINDOW_US, |_, n| held_total += n);
        assert_eq!(lines + held_total, 60 * 100_000);
    }
}
