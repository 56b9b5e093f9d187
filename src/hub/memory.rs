//! The hub's memory ceiling: the most resident memory a hub with a given
//! configuration can hold, known before it serves anyone and stated at
//! start-up (log and `/metrics`). Every table is allocated when the hub starts
//! and never grows; its pages become resident as traffic first touches them
//! and stay so (a slot's buffers serve its next connection). So the ceiling is
//! what was resident at start, plus every table as if all of it were touched,
//! plus what each open socket may hold beyond the tables (TLS record buffers
//! and handshake state, an HTTP answer), plus the JSON edge once used, plus
//! the program's code and libraries paged in later (bounded by the size of
//! their file mappings). A test fills every slot of a small hub and checks that
//! its resident memory stays under the figure it stated.

use core::fmt;

/// The memory ceiling of one hub: its parts and their sum, in bytes.
///
/// ```
/// use poselink::hub::{HubConfig, MemoryCeiling};
/// let cfg = HubConfig { max_connections: 64, ..HubConfig::local_dev() };
/// let small = MemoryCeiling::for_config(&cfg, false, 0);
/// let big = MemoryCeiling::for_config(&HubConfig::local_dev(), false, 0);
/// assert!(small.total() < big.total());
/// println!("{small}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryCeiling {
    /// The tables allocated at start-up (core and driver): reserved then,
    /// resident as touched.
    pub tables: u64,
    /// Sockets open at most: `max_connections` plus the HTTP-only spare slots.
    pub sockets: u64,
    /// What one open socket may hold beyond the tables: TLS record buffers and
    /// handshake state (on a TLS hub), an HTTP answer being written.
    pub per_socket: u64,
    /// What the JSON edge may hold once a JSON client has used it.
    pub json: u64,
    /// Resident at start before any table is touched (anonymous memory),
    /// plus the size of every file mapping (code and libraries paging in
    /// later), plus thread stacks: 0 where the system does not say.
    pub base: u64,
}

/// Rustls' handshake state for one server connection, at most (it is dropped
/// when the handshake ends; our record buffers stay).
const TLS_HANDSHAKE: u64 = 64 * 1024;
/// The WebSocket upgrade's own allocations for one socket (request parsing,
/// the `101` answer).
const UPGRADE: u64 = 4 * 1024;
/// Thread stacks and the allocator's own bookkeeping.
const STACKS: u64 = 2 * 1024 * 1024;

impl MemoryCeiling {
    /// The ceiling for `cfg` (`tls`: the hub serves TLS), on top of `base`
    /// bytes already resident (see [`base`](Self::base); [`resident_base`]
    /// measures it on Linux).
    pub fn for_config(cfg: &super::HubConfig, tls: bool, base: u64) -> MemoryCeiling {
        let (driver_tables, sockets, http_answer) = super::driver::table_bytes(cfg);
        let tables = super::core::table_bytes(cfg) + driver_tables;
        let tls_bytes = if tls {
            crate::tls::BUFFER_BYTES as u64 + TLS_HANDSHAKE
        } else {
            0
        };
        MemoryCeiling {
            tables: tables as u64,
            sockets: sockets as u64,
            per_socket: tls_bytes + UPGRADE + http_answer as u64,
            json: super::core::json_bytes(cfg) as u64,
            base,
        }
    }

    /// The ceiling, bytes.
    pub fn total(&self) -> u64 {
        self.base + self.tables + self.sockets * self.per_socket + self.json
    }
}

impl fmt::Display for MemoryCeiling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        write!(
            f,
            "at most {:.1} MiB resident ({} bytes): {:.1} MiB of tables (reserved now, resident as traffic touches them), {} sockets × {} KiB (TLS, HTTP answers), {:.1} MiB for JSON clients, {:.1} MiB of code, libraries and stacks",
            mib(self.total()),
            self.total(),
            mib(self.tables),
            self.sockets,
            self.per_socket.div_ceil(1024),
            mib(self.json),
            mib(self.base),
        )
    }
}

/// What this process holds that is not a hub table, bytes: its anonymous
/// resident memory now, plus the size of every file it maps (an upper bound
/// on the code and libraries that can page in later), plus an allowance for
/// thread stacks. Read from `/proc/self`; 0 where that cannot be read (the
/// ceiling then covers the tables and sockets only, and says so).
pub fn resident_base() -> u64 {
    let anon = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| poselink_hal::stats::parse_kb_field(&s, "RssAnon"));
    let files = std::fs::read_to_string("/proc/self/maps").ok().map(|maps| {
        maps.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let range = f.next()?;
                let path = f.nth(4)?;
                path.starts_with('/').then_some(())?;
                let (a, b) = range.split_once('-')?;
                let a = u64::from_str_radix(a, 16).ok()?;
                let b = u64::from_str_radix(b, 16).ok()?;
                Some(b.saturating_sub(a))
            })
            .sum::<u64>()
    });
    match (anon, files) {
        (Some(a), Some(f)) => a + f + STACKS,
        _ => 0,
    }
}
