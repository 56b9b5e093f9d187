//! What the core's tables cost, computed from a configuration without building
//! them: every table the core allocates at start-up (reserved then, resident as
//! first touched, never given back, never grown), and what its JSON edge may
//! allocate once used. The hub's memory ceiling ([`crate::hub::MemoryCeiling`])
//! adds these to the driver's; a counting-allocator test (`tests/alloc`) checks
//! the figure against what [`Core::new`](super::Core::new) really allocates, so
//! the two cannot drift apart.

use core::mem::size_of;

use crate::proto::PoseDecoder;
use crate::room::{Member, RoomHandle};

use super::json::JSON_DECODERS;
use super::link::Link;
use super::pool::{BLOCK, Meta};
use super::receive::RX_EXTRA;
use super::relay::KeyframeSlot;
use super::sessions::{Membership, Resumable, Session};
use super::{Event, HubConfig, RoomCounts};

/// Small fixed tables (the performance monitor's slots, the log limiter, the
/// hub's counters): an allowance the allocation test checks is enough.
const SMALL_TABLES: usize = 256 * 1024;

/// Bytes of every table [`Core::new`](super::Core::new) allocates for `cfg`
/// (an upper bound: allocator headers and the small fixed tables rounded up).
pub(crate) fn table_bytes(cfg: &HubConfig) -> usize {
    let n = cfg.max_connections;
    let rooms_per_conn = cfg.max_rooms_per_connection;
    let resync_words = n.div_ceil(64);
    let remote_keyframes = if cfg.cluster.is_some() {
        cfg.max_remote_members * cfg.keyframe_slots
    } else {
        0
    };
    let blocks = n * (cfg.queue_depth + cfg.keyframe_slots) + remote_keyframes + 1;
    let link = size_of::<Link>() + cfg.queue_depth * size_of::<u32>();
    let session = size_of::<Session>()
        + resync_words * size_of::<u64>()
        + rooms_per_conn * size_of::<Membership>()
        + cfg.keyframe_slots * size_of::<KeyframeSlot>()
        + rooms_per_conn * size_of::<(RoomHandle, u32)>();
    let resumable = size_of::<Resumable>() + rooms_per_conn * size_of::<(RoomHandle, u32)>();
    let receive = cfg.max_message + RX_EXTRA + 64;
    let per_conn = link + session + resumable + receive + cfg.control_buffer
        + 3 * size_of::<u32>() // free list, output list (twice)
        + 2 * size_of::<Event>();
    let pool = blocks * (BLOCK + 2 + 4 + 8 + size_of::<Meta>() + 4);
    let rooms = cfg.max_rooms * (160 + cfg.max_members * size_of::<Member>())
        + (cfg.max_rooms + 1) * size_of::<RoomCounts>();
    let fixed = 65_536 * size_of::<u32>() // member id → connection
        + (cfg.max_message + 64) // control encoding space
        + (cfg.max_message.max(16 * 1024) + 64) // parsing space
        + cfg.max_members * 2 * size_of::<(u32, RoomHandle, u32)>()
        + 16 * size_of::<Event>()
        + SMALL_TABLES;
    n * per_conn + pool + rooms + fixed + super::cluster::Cluster::table_bytes(cfg)
}

/// Bytes the JSON edge may hold once a JSON client has used it: its parsing
/// space, the inbound text buffer, the hub's pose decoders for JSON receivers,
/// and the texts of one fan-out in flight.
pub(crate) fn json_bytes(cfg: &HubConfig) -> usize {
    let text = cfg.max_message.max(16 * 1024) + 64;
    let decoders = JSON_DECODERS * (size_of::<PoseDecoder>() + 16);
    // A translated audio chunk or pose is at most a few times its binary size;
    // one is cached per fan-out and one is being built.
    let in_flight = 2 * 8 * BLOCK.max(cfg.max_message.min(64 * 1024));
    text + cfg.max_message + decoders + in_flight
}
