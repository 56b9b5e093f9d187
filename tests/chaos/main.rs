//! Tier 3, the long and the hostile: what holds only over minutes or across a
//! bad network, run by the ordinary test command (`cargo xtask test`) so CI
//! proves it on every change.
//!
//! - [`partition`]: an engine and a hub in network namespaces of their own,
//!   joined by a link this test impairs ([`netns`], [`impair`]): delay and
//!   loss, then a partition, then the link back — pose flowing again within a
//!   second, audio exactly once and in order. Needs root and `/dev/net/tun`
//!   (fails saying so; `POSELINK_SKIP_NETNS=1` skips it knowingly).
//!
//! Tests here take turns ([`SERIAL`]): each measures timing or memory that
//! another's load would disturb on a small machine.
#![cfg(feature = "std")]

mod impair;
mod netns;
mod partition;

/// Held by each test for its whole run, so they never overlap.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The lock, also after the other test panicked while holding it.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
