//! The hub: what operators run. It is built in two layers:
//!
//! - [`core`] — the sans-IO core: sessions, rooms, relay queues over a shared
//!   block pool, the keyframe cache, heartbeats and limits, driven by
//!   `handle_*(now, ..)` inputs and read through `poll_*` outputs. Every protocol
//!   decision is there, and it runs as well in a test's memory with a simulated
//!   clock as under the driver.
//! - the driver ([`Hub`]) — one thread, one `mio` event loop, every socket in a
//!   slot table sized at start-up. It accepts connections, answers HTTP on the
//!   same port (the WebSocket upgrade, `GET /metrics`, `/healthz`, `/readyz`, `/report`,
//!   `/rooms` and the browser viewer), and moves bytes between the sockets and
//!   the core: one read into the buffer the core lends, one `writev` of what the
//!   core lends per connection per round.
//! - `log_limit` — the warnings about peers, each kind limited to a few lines
//!   per 10 s and a count of the rest, so that an attack cannot fill the disk.
//!
//! A published pose or audio message is checked once, copied once into a shared
//! block with its WebSocket header, and the block's index is pushed to every
//! other member's bounded queue; frames are parsed and unmasked in place in the
//! connection's receive buffer.
//!
//! What the hub promises: control messages are never dropped (a receiver that
//! lets its control buffer fill is closed); media for a slow receiver is dropped
//! oldest pose first, then oldest audio, every drop counted, and a receiver that
//! loses a pose gets none of that publisher's deltas (it could not decode them)
//! until a keyframe, which the hub asks the publisher for; a receiver that accepts
//! no bytes for `stuck_timeout_ms` is closed. Nothing one connection sends can
//! stop the loop: every failure is answered with an error message (and a close
//! where continuing is unsafe), a log line and a counter.
//!
//! ```no_run
//! use poselink::hub::{Hub, HubConfig};
//! let hub = Hub::bind(HubConfig::local_dev())?;
//! println!("listening on ws://{}", hub.local_addr());
//! let handle = hub.handle(); // handle.shutdown() from any thread stops it
//! let report = hub.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod config;
pub mod core;
mod driver;
mod log_limit;
mod memory;
mod metrics;

/// Entry points for the fuzz targets in `fuzz/` (docs/FUZZING.md), not an API:
/// the driver's request-head classifier, reachable without a socket.
#[doc(hidden)]
pub mod fuzzing {
    /// What the hub's port answers a complete request head with.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum HttpAnswer {
        /// A WebSocket upgrade: the `101 Switching Protocols` answer's bytes, and
        /// whether the client chose JSON mode.
        Upgrade(Vec<u8>, bool),
        /// A page of the hub: `healthz`, `readyz`, `metrics`, `report`, `rooms`
        /// or `asset` (a file of the browser front end).
        Page(&'static str),
        /// A plain GET of another path.
        NotFound,
        /// Not HTTP, or an upgrade that breaks RFC 6455: why.
        Bad(String),
    }

    /// Classifies a complete request head (through the blank line) as the
    /// hub's driver does.
    pub fn classify_request(head: &[u8]) -> HttpAnswer {
        use super::driver::http::{Request, parse_request};
        match parse_request(head) {
            Request::Upgrade(answer, json) => HttpAnswer::Upgrade(answer, json),
            Request::Healthz => HttpAnswer::Page("healthz"),
            Request::Readyz => HttpAnswer::Page("readyz"),
            Request::Metrics => HttpAnswer::Page("metrics"),
            Request::Report => HttpAnswer::Page("report"),
            Request::Rooms => HttpAnswer::Page("rooms"),
            Request::Asset(_) => HttpAnswer::Page("asset"),
            Request::NotFound => HttpAnswer::NotFound,
            Request::Bad(why) => HttpAnswer::Bad(why),
        }
    }
}

pub use self::core::{BLOCK, MAX_MEDIA};
pub use config::{ConfigError, HubConfig};
pub(crate) use driver::cluster_access::redacted as redacted_url;
pub use driver::{Hub, HubHandle, HubReport};
pub use memory::{MemoryCeiling, resident_base};
pub use metrics::{DropReason, Fault, Gauges, HubStats, LATENCY_BUCKETS_US, RelayLatency};
