//! The core's timers, run every tick (20 ms) by `Core::handle_timeout`: a hello
//! that does not come within `handshake_timeout_ms`; a closing connection whose
//! linger ran out; a receiver with output waiting that accepted no bytes for
//! `stuck_timeout_ms`; heartbeats (a ping every `heartbeat_ms`, and a session
//! silent for three intervals closed as timed out); audio acknowledgements, one
//! per room per tick; empty rooms past their grace period; the counts of
//! warnings the log limit held back (`hub::log_limit`). Also here: the
//! system samples the driver hands in, and the "going away" of a shutdown.

use poselink_hal::Snapshot;

use crate::proto::{Ack, ErrorCode, Kind, LeaveReason, Message};
use crate::ws::{FrameKind, close_code};

use super::cluster;
use super::link::Phase;
use super::{Fault, Inner, LogKind, app_close, reason};

impl Inner {
    /// Every timer that is due at `now`.
    pub(super) fn housekeeping(&mut self) {
        let now = self.now;
        let hb = self.cfg.heartbeat_ms * 1000;
        let handshake = self.cfg.handshake_timeout_ms * 1000;
        let stuck = self.cfg.stuck_timeout_ms * 1000;
        // Counts of warnings held back in windows that are over.
        self.log_limit.flush_to_log(now);
        self.cluster_tick();
        for i in 0..self.links.len() {
            let link = &self.links[i];
            match link.phase {
                Phase::Free => continue,
                Phase::AwaitHello if now.saturating_sub(link.opened_us) > handshake => {
                    self.stats.count_fault(Fault::HandshakeTimeout);
                    let r = reason(format_args!(
                        "no hello within {} ms of connecting; send the hello first",
                        self.cfg.handshake_timeout_ms
                    ));
                    let line = format_args!("connection {i} ({}): {r}", link.peer);
                    self.log_limit.warn(LogKind::NoHello, now, line);
                    self.send_error(i, ErrorCode::UNAUTHENTICATED, 0, &r);
                    self.close(i, app_close(ErrorCode::UNAUTHENTICATED), "no hello");
                    continue;
                }
                Phase::Closing if now >= link.close_deadline_us => {
                    self.teardown(i, LeaveReason::Disconnected);
                    continue;
                }
                _ => {}
            }
            if link.has_output() && now.saturating_sub(link.last_progress_us) > stuck {
                self.stats.count_fault(Fault::SlowConsumer);
                self.stats.count_error(ErrorCode::SLOW_CONSUMER);
                let line = format_args!(
                    "connection {i} ({}): accepted no bytes for {} ms; closing it as a slow consumer",
                    link.peer, self.cfg.stuck_timeout_ms
                );
                self.log_limit.warn(LogKind::SlowConsumer, now, line);
                self.teardown(i, LeaveReason::TimedOut);
                continue;
            }
            if link.phase != Phase::Session {
                continue;
            }
            if now.saturating_sub(link.last_rx_us) > 3 * hb {
                self.stats.count_fault(Fault::HeartbeatTimeout);
                let line = format_args!(
                    "connection {i} ({}): silent for {} ms (3 heartbeats); closing",
                    link.peer,
                    now.saturating_sub(link.last_rx_us) / 1000
                );
                self.log_limit.warn(LogKind::Silent, now, line);
                self.send_error(
                    i,
                    ErrorCode::GOING_AWAY,
                    0,
                    "no traffic for 3 heartbeat intervals",
                );
                self.close_as(
                    i,
                    close_code::GOING_AWAY,
                    "heartbeat timeout",
                    LeaveReason::TimedOut,
                );
                // Do not linger for a silent peer.
                self.links[i].close_deadline_us = now;
                continue;
            }
            if now.saturating_sub(link.last_ping_us) >= hb {
                self.links[i].last_ping_us = now;
                if !self.push_ctrl_frame(i, FrameKind::Ping, &now.to_le_bytes()) {
                    self.overflowed(i);
                    continue;
                }
            }
            self.send_acks(i);
        }
        let expired = self.rooms.expire(now);
        if expired > 0 {
            self.stats.rooms_expired += expired as u64;
            log::debug!("{expired} empty rooms expired");
        }
    }

    /// Acknowledges relayed audio to publisher `i`: one ack per room, the
    /// highest `seq` relayed since the last.
    fn send_acks(&mut self, i: usize) {
        let mut k = 0;
        // An ack that overflows the control FIFO closes the connection and
        // empties its room list: go by index, and stop there.
        while let Some(m) = self.sessions[i].rooms.get_mut(k) {
            k += 1;
            if let Some(seq) = m.ack_pending.take() {
                let h = m.handle;
                let ack = Message::Ack(Ack {
                    kind: Kind::Audio as u8,
                    seq,
                });
                self.send_control(i, h, &ack);
                if self.links[i].phase != Phase::Session {
                    return;
                }
            }
        }
    }

    /// A system sample: into the monitor, with the queue depth and the rooms'
    /// pose rates since the last sample; alerts newly raised are logged by the
    /// monitor (nothing here allocates).
    pub(super) fn sample_system(&mut self, snap: &Snapshot) {
        let now = self.now;
        let queued = self.queued();
        let m = &mut self.stats.monitor;
        m.record_system(
            now,
            snap.process_cpu_percent,
            snap.process_rss_bytes,
            snap.soc_temperature_c,
        );
        m.record_queue_depth(queued);
        m.check_alerts(now).for_each(drop);
        let dt = (now.saturating_sub(self.last_sample_us)).max(1) as f64 / 1e6;
        self.last_sample_us = now;
        for rc in self.room_counts.iter_mut() {
            rc.fps = rc.poses.saturating_sub(rc.poses_at_sample) as f64 / dt;
            rc.poses_at_sample = rc.poses;
        }
    }

    /// Tells every connection the hub is going away (an error, then a close).
    pub(super) fn shutdown(&mut self) {
        log::info!("hub shutting down: closing {} connections", self.open);
        if self.cluster.as_deref().is_some_and(|c| c.up) {
            self.cluster_send(cluster::ClusterTo::Nodes, &cluster::wire::Msg::Gone);
        }
        for i in 0..self.links.len() {
            if matches!(self.links[i].phase, Phase::AwaitHello | Phase::Session) {
                self.send_error(
                    i,
                    ErrorCode::GOING_AWAY,
                    0,
                    "the hub is shutting down; reconnect later",
                );
                self.close(i, close_code::GOING_AWAY, "hub shutting down");
            }
        }
    }
}
