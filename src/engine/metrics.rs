//! The engine's counters, defined once: [`Counter`] names each one and indexes
//! one table of atomics ([`CounterTable`]) that the engine's loop and the app's
//! threads bump and that [`EngineHandle::metrics`](super::EngineHandle::metrics),
//! the performance monitor and the C API read. [`EngineMetrics`], the public
//! snapshot, is generated from the same list, so a counter is added in one
//! place. A drop is counted through one function that bumps its counter and the
//! monitor's drop of the same kind together ([`Counter::drop_kind`]).

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$doc:meta])* $variant:ident => $field:ident, $drop:expr; )*) => {
        /// One of the engine's counters; `as usize` is its index in the table.
        ///
        /// ```
        /// use poselink::engine::Counter;
        /// assert_eq!(Counter::PosesSent.name(), "poses_sent");
        /// assert_eq!(Counter::DropsStale.drop_kind(), Some("stale"));
        /// assert_eq!(Counter::ALL[Counter::PosesSent as usize], Counter::PosesSent);
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum Counter {
            $( $(#[$doc])* $variant, )*
        }

        impl Counter {
            /// Every counter, in table order.
            pub const ALL: [Counter; COUNT] = [$(Counter::$variant),*];

            /// The counter's name (the [`EngineMetrics`] field).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => stringify!($field),)*
                }
            }

            /// For a drop counter, the kind the performance monitor counts it
            /// under (`drops_by_kind` in its report).
            pub const fn drop_kind(self) -> Option<&'static str> {
                match self {
                    $(Counter::$variant => $drop,)*
                }
            }
        }

        /// The engine's counters, a snapshot of the table.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct EngineMetrics {
            /// Whether a session is open now.
            pub connected: bool,
            $( $(#[$doc])* pub $field: u64, )*
        }

        impl EngineMetrics {
            /// The value of one counter.
            pub const fn get(&self, c: Counter) -> u64 {
                match c {
                    $(Counter::$variant => self.$field,)*
                }
            }

            fn read(table: &CounterTable) -> EngineMetrics {
                EngineMetrics {
                    connected: table.connected.load(Ordering::Relaxed),
                    $( $field: table.get(Counter::$variant), )*
                }
            }
        }
    };
}

/// Counters in the table.
const COUNT: usize = 27;

counters! {
    /// Pose frames handed over by the app.
    PosesSubmitted => poses_submitted, None;
    /// Audio chunks handed over by the app.
    AudioSubmitted => audio_submitted, None;
    /// Pose frames written to the socket.
    PosesSent => poses_sent, None;
    /// Audio chunks written (first sends and replays).
    AudioSent => audio_sent, None;
    /// Audio chunks sent again after a reconnect.
    AudioReplayed => audio_replayed, None;
    /// Bytes written to the socket.
    BytesSent => bytes_sent, None;
    /// Bytes of the pose messages sent (protocol messages, without the
    /// WebSocket framing): `pose_bytes_sent / poses_sent` is the size of a frame
    /// on the wire.
    PoseBytesSent => pose_bytes_sent, None;
    /// Pose frames replaced in the hand-over ring (the loop was behind).
    DropsRing => drops_ring, Some("ring");
    /// Pose frames replaced by a newer one in the send queue.
    DropsSuperseded => drops_superseded, Some("superseded");
    /// Entries evicted by higher priorities.
    DropsEvicted => drops_evicted, Some("evicted");
    /// Entries refused by a full queue of higher priorities.
    DropsRefused => drops_refused, Some("refused");
    /// Pose frames dropped for age (the network or the bandwidth limit could not carry them).
    DropsStale => drops_stale, Some("stale");
    /// Frames for a room not joined.
    DropsNoRoom => drops_no_room, Some("no_room");
    /// Audio chunks lost to a reconnect: sent, not acknowledged by the hub
    /// before the connection was lost, and out of the replay window by then
    /// (at most what receivers miss: the hub may have relayed some).
    AudioLost => audio_lost, Some("audio_lost");
    /// Events dropped because the app did not take them.
    EventsDropped => events_dropped, None;
    /// Protocol messages received from the hub, and their bytes (without the
    /// WebSocket framing).
    MessagesReceived => messages_received, None;
    /// See `messages_received`.
    BytesReceived => bytes_received, None;
    /// Pose frames received and decoded.
    PosesReceived => poses_received, None;
    /// Audio chunks received (duplicates removed).
    AudioReceived => audio_received, None;
    /// Received audio chunks dropped as duplicates (a publisher's replay after
    /// its reconnect of chunks that had come already).
    AudioDuplicates => audio_duplicates, None;
    /// Audio chunks missing from the received streams (sequence numbers
    /// skipped within a publisher's stream).
    AudioGaps => audio_gaps, None;
    /// Connections made after the first.
    Reconnects => reconnects, None;
    /// Connections made to another hub than the previous session's (see
    /// [`EngineConfig::hub`](super::EngineConfig::hub)).
    Failovers => failovers, None;
    /// The hub of the open (or the last) session: its index in the list of
    /// [`EngineConfig::hub`](super::EngineConfig::hub), 0 for the first.
    HubIndex => hub_index, None;
    /// The last round trip to the hub, µs.
    RttUs => rtt_us, None;
    /// CPU time the engine's thread has used, µs (updated ten times a second;
    /// 0 where the platform cannot tell).
    ThreadCpuUs => thread_cpu_us, None;
    /// Wakes of the engine's loop by the app's calls (each one a system call
    /// on the calling thread): a send wakes it only when it sleeps with no
    /// wake-up due soon (at a camera's steady rate the loop paces itself on
    /// the frames and the sends wake nothing); a request always does.
    Wakes => wakes, None;
}

/// The table: one atomic per [`Counter`], and whether a session is open.
///
/// Each counter has a cache line of its own: the app's threads count their
/// hand-overs (`poses_submitted`, `audio_submitted`, `drops_ring`, `wakes`)
/// while the engine's loop counts what it sends, and counters side by side
/// would make every `send_pose` fetch a line the loop last wrote from the
/// other core (27 lines, 3.4 KiB).
#[derive(Debug)]
pub struct CounterTable {
    values: [CachePadded<AtomicU64>; COUNT],
    connected: AtomicBool,
}

impl Default for CounterTable {
    fn default() -> Self {
        CounterTable {
            values: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
            connected: AtomicBool::new(false),
        }
    }
}

impl CounterTable {
    /// Adds `n` to `c`.
    pub fn add(&self, c: Counter, n: u64) {
        self.values[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Sets `c` (for gauges such as `rtt_us` and running totals kept elsewhere).
    pub fn set(&self, c: Counter, v: u64) {
        self.values[c as usize].store(v, Ordering::Relaxed);
    }

    /// The value of `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize].load(Ordering::Relaxed)
    }

    /// Whether a session is open.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Records whether a session is open.
    pub fn set_connected(&self, on: bool) {
        self.connected.store(on, Ordering::Relaxed);
    }

    /// A snapshot of every counter.
    pub fn snapshot(&self) -> EngineMetrics {
        EngineMetrics::read(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_the_table() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        let t = CounterTable::default();
        t.add(Counter::DropsStale, 3);
        t.set(Counter::RttUs, 250);
        t.set_connected(true);
        let m = t.snapshot();
        assert_eq!((m.drops_stale, m.rtt_us, m.connected), (3, 250, true));
        let drops: Vec<&str> = Counter::ALL.iter().filter_map(|c| c.drop_kind()).collect();
        assert_eq!(
            drops,
            [
                "ring",
                "superseded",
                "evicted",
                "refused",
                "stale",
                "no_room",
                "audio_lost"
            ]
        );
    }
}
