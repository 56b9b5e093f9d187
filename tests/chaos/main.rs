//! Tier 3, the long and the hostile: what holds only over minutes or across a
//! bad network, run by the ordinary test command (`cargo xtask test`) so CI
//! proves it on every change.
//!
//! - [`partition`]: an engine and a hub in network namespaces of their own,
//!   joined by a link this test impairs ([`netns`], [`impair`]): delay and
//!   loss, then a partition, then the link back — pose flowing again within a
//!   second, audio exactly once and in order. Needs root and `/dev/net/tun`
//!   (fails saying so; `POSELINK_SKIP_NETNS=1` skips it knowingly).
//! - [`soak`]: R = 50 rooms of 4 members at 60 fps for two minutes
//!   (`POSELINK_SOAK_SECS` for longer) against a hub process, members leaving
//!   and joining throughout: nothing lost, the hub's resident memory flat.
//!
//! The two take turns ([`SERIAL`]): each measures timing or memory that the
//! other's load would disturb on a small machine.
#![cfg(feature = "std")]

#[path = "../common/mod.rs"]
mod common;

mod impair;
mod netns;
mod partition;
mod soak;

/// Held by each test for its whole run, so they never overlap.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The lock, also after the other test panicked while holding it.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
