//! The engine between the app and the client session, sans-IO: everything the
//! engine's loop decides, with the time as an argument and no socket in sight.
//! It takes the app's frames from the hand-over rings into the [`Outbox`] (send
//! queue and bandwidth limit) and from there into the [`Session`] while the
//! transmit buffer is below its watermark; it answers the app's commands; it
//! turns the session's events into the app's [`Event`]s (received media through
//! the [`Playout`] aligners) and keeps the counters and the performance monitor.
//! It plans the loop's wake-ups, those on the capture rate among them (the
//! [`Pacer`]), and keeps the loop's side of the hand-off ([`park`](EngineCore::park)).
//! The protocol itself — hello, rooms, replay, heartbeat — is the session's.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use poselink_hal::Snapshot;

use crate::client::{self, SendError as SessionSendError, Session};
use crate::monitor::PerformanceMonitor;
use crate::proto::LeaveReason;

use super::api::{
    Command, ControlError, JoinError, JoinedRoom, OwnerAction, PerformanceReport, Shared,
};
use super::metrics::Counter;
use super::outbox::{Item, Outbox};
use super::pacer::{Pacer, Stream};
use super::playout::Playout;
use super::{EngineConfig, Event, MemberSummary, RoomId};

/// Bytes waiting in the transmit buffer above which the send queue is not drained:
/// beyond this, the queue's drop rules decide, not a growing backlog.
const TX_WATERMARK: usize = 16 * 1024;
/// How often the queues are sampled into the monitor (and alerts checked), µs.
pub(super) const SAMPLE_US: u64 = 1_000_000;

type JoinReply = mpsc::SyncSender<Result<JoinedRoom, JoinError>>;

/// The app-facing half: where events, counters and monitor figures go.
struct AppSide {
    shared: Arc<Shared>,
    monitor: PerformanceMonitor,
    playout: Playout,
    /// The `join_room` waiting for each room's answer.
    replies: Vec<Option<JoinReply>>,
    /// Each room's members as followed since its snapshot (empty while not
    /// joined). Changes only on membership events, which are rare.
    members: Vec<Vec<MemberSummary>>,
    /// The hub URLs, in failover order, for the logs.
    hubs: Vec<String>,
    /// The hub of the last session, if there was one.
    last_hub: Option<usize>,
}

/// The engine's decisions; the driver feeds it time and bytes.
pub(crate) struct EngineCore {
    pub(crate) session: Session,
    outbox: Outbox,
    app: AppSide,
    /// The wake-ups planned on the capture rate.
    pacer: Pacer,
    /// The monitor's once-a-second bookkeeping (queue depth, ring drops, alerts).
    next_sample_us: u64,
    /// Ring drops (counted on the app's thread) already given to the monitor.
    ring_drops_seen: u64,
    /// Received messages and bytes already given to the monitor.
    seen_in: (u64, u64),
    /// The session's `audio_replayed` when last counted.
    replayed_seen: u64,
    /// Since when the session has held audio chunks for a 40 or 60 ms Opus
    /// packet that is not full, and how long it may (a packet's time and one
    /// chunk more): then they go as a shorter packet.
    held_since_us: Option<u64>,
    hold_us: u64,
}

impl AppSide {
    fn emit(&self, e: Event) {
        if self.shared.events.force_push(e).is_some() {
            self.shared.counters.add(Counter::EventsDropped, 1);
        }
    }

    /// Counts `n` drops: the counter and the monitor's drops of its kind.
    fn drop(&mut self, c: Counter, n: u64) {
        self.shared.counters.add(c, n);
        if let Some(kind) = c.drop_kind() {
            self.monitor.record_drops(kind, n);
        }
    }

    fn reply(&mut self, room: RoomId, r: Result<JoinedRoom, JoinError>) {
        if let Some(tx) = self.replies.get_mut(room.index()).and_then(Option::take) {
            let _ = tx.try_send(r);
        }
    }

    /// One event of the session, for the app.
    fn on_event(&mut self, now: u64, ev: client::Event<'_>) {
        let c = &self.shared.counters;
        match ev {
            client::Event::Connected {
                member,
                reconnect,
                hub,
            } => {
                c.set_connected(true);
                if reconnect {
                    c.add(Counter::Reconnects, 1);
                    self.monitor.record_reconnect();
                }
                c.set(Counter::HubIndex, hub as u64);
                let url = self.hubs.get(hub).map_or("?", String::as_str);
                if self.last_hub.is_some_and(|h| h != hub) {
                    c.add(Counter::Failovers, 1);
                    log::warn!("failed over to hub {hub} ({url}): member {member}");
                } else {
                    log::info!("connected to hub {hub} ({url}): member {member}");
                }
                self.last_hub = Some(hub);
                self.emit(Event::Connected {
                    member,
                    hub_index: hub,
                });
            }
            client::Event::Disconnected { reason } => {
                c.set_connected(false);
                self.emit(Event::Disconnected {
                    reason: reason.to_string(),
                });
            }
            client::Event::ConnectFailed { reason } => self.emit(Event::ConnectFailed {
                reason: reason.to_string(),
            }),
            client::Event::Reconnecting { attempt, delay_us } => self.emit(Event::Reconnecting {
                attempt,
                delay: Duration::from_micros(delay_us),
            }),
            client::Event::RoomJoined {
                room,
                members,
                restored,
                replayed,
            } => {
                // Replays are counted from the session's stats (a replay a
                // full transmit buffer held back goes on later).
                let _ = replayed;
                let members: Vec<MemberSummary> = members
                    .iter_with_streams()
                    .map(|(m, stream)| MemberSummary::with_stream(m, stream))
                    .collect();
                if let Some(list) = self.members.get_mut(room.index()) {
                    list.clone_from(&members);
                }
                let joined = JoinedRoom {
                    id: room,
                    members: members.clone(),
                };
                self.reply(room, Ok(joined));
                self.emit(if restored {
                    Event::RoomRestored { room, members }
                } else {
                    Event::RoomJoined { room, members }
                });
            }
            client::Event::JoinRefused {
                room, code, reason, ..
            } => {
                self.monitor.record_error(code.name());
                let reason = reason.to_string();
                match self.replies.get_mut(room.index()).and_then(Option::take) {
                    Some(tx) => {
                        let _ = tx.try_send(Err(JoinError::Refused { code, reason }));
                    }
                    None => {
                        self.emit(Event::RoomLeft {
                            room,
                            reason: LeaveReason::Disconnected,
                        });
                        self.emit(Event::Error { code, reason });
                    }
                }
            }
            client::Event::JoinTimedOut { room } => self.reply(room, Err(JoinError::Timeout)),
            client::Event::RoomLeft { room, reason } => {
                if let Some(list) = self.members.get_mut(room.index()) {
                    list.clear();
                }
                self.emit(Event::RoomLeft { room, reason })
            }
            client::Event::AudioLost { room, count } => {
                self.drop(Counter::AudioLost, count.into());
                self.emit(Event::AudioLost {
                    room,
                    count: count.into(),
                });
            }
            client::Event::MemberJoined {
                room,
                member,
                stream,
            } => {
                let member = MemberSummary::with_stream(member, stream);
                if let Some(list) = self.members.get_mut(room.index()) {
                    list.retain(|m| m.member != member.member);
                    list.push(member.clone());
                }
                self.emit(Event::MemberJoined { room, member })
            }
            client::Event::RoleChanged { room, member, role } => {
                if let Some(m) = self
                    .members
                    .get_mut(room.index())
                    .and_then(|l| l.iter_mut().find(|m| m.member == member))
                {
                    m.role = role;
                }
                self.emit(Event::RoleChanged { room, member, role })
            }
            client::Event::AudioAcked { room, seq }
                if self.shared.ack_events.load(Ordering::Relaxed) =>
            {
                self.emit(Event::AudioAcked { room, seq });
            }
            client::Event::MemberLeft {
                room,
                member,
                reason,
            } => {
                self.playout.forget(room, member);
                if let Some(list) = self.members.get_mut(room.index()) {
                    list.retain(|m| m.member != member);
                }
                self.emit(Event::MemberLeft {
                    room,
                    member,
                    reason,
                });
            }
            client::Event::Pose {
                room,
                sender,
                frame,
            } => {
                c.add(Counter::PosesReceived, 1);
                if let Some(frame) = self.playout.pose(room, sender, frame, now) {
                    self.emit(Event::Pose {
                        room,
                        sender,
                        frame: *frame,
                    });
                }
            }
            client::Event::Audio {
                room,
                sender,
                chunk,
            } => {
                c.add(Counter::AudioReceived, 1);
                if let Some(chunk) = self.playout.audio(room, sender, chunk, now) {
                    self.emit(Event::Audio {
                        room,
                        sender,
                        chunk: *chunk,
                    });
                }
            }
            client::Event::RoundTrip { rtt_us } => {
                c.set(Counter::RttUs, rtt_us);
                self.monitor.record_latency_us(now, rtt_us);
            }
            client::Event::HubError { code, reason } => {
                self.monitor.record_error(code.name());
                self.emit(Event::Error {
                    code,
                    reason: reason.to_string(),
                });
            }
            _ => {} // envelopes only: not asked for by the engine
        }
    }
}

impl EngineCore {
    pub(super) fn new(cfg: &EngineConfig, shared: Arc<Shared>, now: u64, seed: u64) -> Self {
        EngineCore {
            session: Session::new(cfg.session(seed), now),
            outbox: Outbox::new(
                cfg.queue_capacity,
                cfg.max_pose_age_ms * 1000,
                cfg.bandwidth_bytes_per_sec,
                now,
            ),
            app: AppSide {
                shared,
                monitor: PerformanceMonitor::new(cfg.monitor.clone()),
                playout: Playout::new(cfg.playout_delay_ms, cfg.max_senders),
                replies: (0..cfg.max_rooms.max(1)).map(|_| None).collect(),
                members: (0..cfg.max_rooms.max(1)).map(|_| Vec::new()).collect(),
                hubs: cfg.hub_urls().map(str::to_string).collect(),
                last_hub: None,
            },
            pacer: Pacer::default(),
            next_sample_us: now,
            ring_drops_seen: 0,
            seen_in: (0, 0),
            replayed_seen: 0,
            held_since_us: None,
            hold_us: 20_000 * (cfg.encoder.audio.chunks_per_packet() as u64 + 1),
        }
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.app.shared
    }

    /// The app's requests and hand-overs.
    pub(crate) fn take_input(&mut self, now: u64) {
        while let Some(cmd) = self.app.shared.commands.pop() {
            self.command(cmd, now);
        }
        let s = Arc::clone(&self.app.shared);
        while let Some(p) = s.poses.pop() {
            self.pacer.handle_arrival(Stream::Pose, p.at_us);
            let person = p.frame.person;
            self.enqueue(Item::Pose(p.frame), p.room, person, p.priority, now);
        }
        while let Some(a) = s.audio.pop() {
            self.pacer.handle_arrival(Stream::Audio, a.at_us);
            self.enqueue(Item::Audio(a.chunk), a.room, 0, a.priority, now);
        }
    }

    fn command(&mut self, cmd: Command, now: u64) {
        match cmd {
            Command::Join { name, role, reply } => match self.session.join(now, &name, role) {
                Ok(room) => self.app.replies[room.index()] = Some(reply),
                Err(e) => {
                    let _ = reply.try_send(Err(match e {
                        client::JoinError::BadName => JoinError::BadName,
                        _ => JoinError::TooManyRooms,
                    }));
                }
            },
            Command::Leave(room) => self.session.leave(now, room),
            Command::Report(reply) => {
                self.sample_queues();
                let m = &self.app.monitor;
                let _ = reply.try_send(PerformanceReport {
                    metrics: m.get_performance_metrics(now),
                    json: m.report_json(now),
                });
            }
            Command::Owner {
                room,
                action,
                reply,
            } => {
                let s = &mut self.session;
                let sent = match &action {
                    OwnerAction::Kick { member, reason } => s.kick(now, room, *member, reason),
                    OwnerAction::SetRole { member, role } => s.set_role(now, room, *member, *role),
                    OwnerAction::Close { reason } => s.close_room(now, room, reason),
                };
                let _ = reply.try_send(sent.map_err(control_error));
            }
            Command::Members { room, reply } => {
                let list = match self.session.room_handle(room) {
                    Some(_) => Ok(self.app.members[room.index()].clone()),
                    None if !self.session.is_connected() => Err(ControlError::NotConnected),
                    None => Err(ControlError::NotJoined),
                };
                let _ = reply.try_send(list);
            }
            Command::Bandwidth(bps) => {
                self.outbox.set_bandwidth(bps, now);
                match bps {
                    0 => log::info!("bandwidth limit: none"),
                    _ => log::info!("bandwidth limit: {bps} bytes/s"),
                }
            }
        }
    }

    fn enqueue(&mut self, item: Item, room: RoomId, stream: u32, priority: u8, now: u64) {
        if !self.session.has_room(room) {
            return self.app.drop(Counter::DropsNoRoom, 1);
        }
        if let Some(c) = self.outbox.push(item, room, stream, priority, now) {
            self.app.drop(c, 1);
        }
    }

    /// Hands the session's events to the app.
    pub(crate) fn take_events(&mut self, now: u64) {
        while let Some(ev) = self.session.poll_event() {
            self.app.on_event(now, ev);
        }
        let stats = self.session.stats();
        let (m, b) = self.seen_in;
        self.app
            .monitor
            .record_in_many(now, stats.messages_in - m, stats.bytes_in - b);
        self.seen_in = (stats.messages_in, stats.bytes_in);
        let c = &self.app.shared.counters;
        c.set(Counter::MessagesReceived, stats.messages_in);
        c.set(Counter::BytesReceived, stats.bytes_in);
        c.set(Counter::AudioDuplicates, stats.audio_duplicates);
        c.set(Counter::AudioGaps, stats.audio_gaps);
        let replayed = stats.audio_replayed - self.replayed_seen;
        if replayed > 0 {
            self.replayed_seen = stats.audio_replayed;
            c.add(Counter::AudioReplayed, replayed);
            c.add(Counter::AudioSent, replayed);
        }
    }

    /// Timers, received media due, and sending: everything after the reads.
    pub(crate) fn tick(&mut self, now: u64) {
        self.housekeeping(now);
        self.session.handle_timeout(now);
        self.take_events(now);
        let app = &mut self.app;
        app.playout.release(now, |e| {
            if app.shared.events.force_push(e).is_some() {
                app.shared.counters.add(Counter::EventsDropped, 1);
            }
        });
        if !self.session.is_connected() {
            self.outbox.forgive();
        }
        self.transmit(now);
        self.flush_held(now);
    }

    /// Moves queued items into the session while its transmit buffer is below
    /// the watermark and the bandwidth limit allows.
    fn transmit(&mut self, now: u64) {
        while self.session.can_send() && self.session.transmit_pending() < TX_WATERMARK {
            if !self.outbox.may_send(now) {
                return;
            }
            let mut stale = 0;
            let next = self.outbox.pop(now, &mut stale);
            if stale > 0 {
                self.app.drop(Counter::DropsStale, stale);
            }
            let Some((room, item)) = next else {
                return;
            };
            self.send_item(room, &item, now);
        }
    }

    /// Sends the held audio chunks as a shorter packet once no chunk has
    /// completed their packet in time (or the engine is stopping).
    fn flush_held(&mut self, now: u64) {
        let Some(since) = self.held_since_us else {
            return;
        };
        if !self.session.audio_held() {
            self.held_since_us = None;
            return;
        }
        let due = now >= since + self.hold_us || self.stop_requested();
        if !due || !self.session.can_send() {
            return;
        }
        self.held_since_us = None;
        let Some(room) = self.session.audio_held_for() else {
            return;
        };
        match self.session.flush_audio() {
            Ok(sent) => {
                self.outbox.charge(sent.bytes, now);
                self.app.monitor.record_out(now, sent.bytes);
                self.audio_lost(room, sent.lost);
            }
            Err(SessionSendError::NoRoom) => {}
            Err(e) => log::warn!("held audio was not sent: {e}"),
        }
    }

    fn audio_lost(&mut self, room: RoomId, lost: usize) {
        if lost > 0 {
            self.app.drop(Counter::AudioLost, lost as u64);
            self.app.emit(Event::AudioLost {
                room,
                count: lost as u64,
            });
        }
    }

    fn send_item(&mut self, room: RoomId, item: &Item, now: u64) {
        let sent = match item {
            Item::Pose(frame) => self.session.send_pose(room, frame).map(|n| (n, 0)),
            // `lost`: only what cannot be kept for replay at all; what leaves
            // the window unacknowledged is counted if the connection is lost
            // before its acknowledgement (client::Event::AudioLost).
            Item::Audio(chunk) => self
                .session
                .send_audio(room, chunk)
                .map(|s| (s.bytes, s.lost)),
            Item::Free => return,
        };
        let c = &self.app.shared.counters;
        match sent {
            Ok((n, lost)) => {
                self.outbox.charge(n, now);
                self.app.monitor.record_out(now, n);
                if matches!(item, Item::Pose(_)) {
                    c.add(Counter::PosesSent, 1);
                    c.add(Counter::PoseBytesSent, n as u64);
                    self.app.monitor.record_frame(now);
                } else {
                    c.add(Counter::AudioSent, 1);
                    if self.session.audio_held() {
                        self.held_since_us.get_or_insert(now);
                    }
                }
                self.audio_lost(room, lost);
            }
            // The room was left (or refused on rejoin) while this waited.
            Err(SessionSendError::NoRoom | SessionSendError::NotConnected) => {
                self.app.drop(Counter::DropsNoRoom, 1)
            }
            Err(SessionSendError::TooManyPersons) => self.app.drop(Counter::DropsRefused, 1),
            Err(e) => log::warn!("a frame was not sent: {e}"),
        }
    }

    /// Everything promised has left: the queue and rings are empty, the transmit
    /// buffer is written, and every audio chunk is acknowledged.
    pub(crate) fn drained(&self) -> bool {
        let s = &self.app.shared;
        self.outbox.is_empty()
            && s.poses.is_empty()
            && s.audio.is_empty()
            && self.session.is_idle()
            && !self.session.audio_held()
    }

    /// When the loop must wake next: its timers, and just after the next
    /// frame or chunk the capture rate promises (the [`Pacer`]).
    pub(crate) fn next_wake(&mut self, now: u64) -> u64 {
        let mut until = now + 50_000;
        if let Some(t) = self.pacer.poll_timeout(now) {
            until = until.min(t.max(now));
        }
        if let Some(due) = self.app.playout.next_due_us() {
            until = until.min(due.max(now));
        }
        if let Some(t) = self.session.poll_timeout() {
            until = until.min(t.max(now));
        }
        if let Some(t) = self.held_since_us {
            until = until.min((t + self.hold_us).max(now));
        }
        if self.session.can_send()
            && !self.outbox.is_empty()
            && self.session.transmit_pending() < TX_WATERMARK
        {
            until = until.min(now + self.outbox.wait_us(now).min(50_000));
        }
        until
    }

    /// The loop is about to sleep until `until_us` at the latest (its
    /// timeout, as the timer will really fire): `false` if the app handed
    /// something over or asked something meanwhile, and it must not sleep.
    /// Until [`unpark`](Self::unpark), a send wakes the loop only if that is
    /// more than the hold away.
    pub(crate) fn park(&self, until_us: u64) -> bool {
        self.app.shared.park(until_us)
    }

    /// The loop woke.
    pub(crate) fn unpark(&self) {
        self.app.shared.unpark();
    }

    /// Once a second: the queues into the monitor, and its alerts.
    fn housekeeping(&mut self, now: u64) {
        if now >= self.next_sample_us {
            self.next_sample_us = now + SAMPLE_US;
            self.sample_queues();
            for alert in self.app.monitor.check_alerts(now) {
                self.app.emit(Event::Alert(alert));
            }
        }
    }

    /// The process's CPU and memory and the board's temperature, sampled by
    /// the driver (this core reads no `/proc`), into the monitor.
    pub(super) fn handle_system_sample(&mut self, now: u64, snap: &Snapshot) {
        self.app.monitor.record_system(
            now,
            snap.process_cpu_percent,
            snap.process_rss_bytes,
            snap.soc_temperature_c,
        );
    }

    /// The engine thread's CPU time, as the driver read it, µs.
    pub(super) fn handle_thread_cpu(&mut self, us: u64) {
        self.app.shared.counters.set(Counter::ThreadCpuUs, us);
    }

    /// Brings the send queue's depth and the app thread's ring drops into the
    /// monitor. Allocates nothing.
    fn sample_queues(&mut self) {
        let m = &mut self.app.monitor;
        m.record_queue_depth(self.outbox.len());
        // Counted on the app's thread (which has no monitor): brought in here.
        let ring = self.app.shared.counters.get(Counter::DropsRing);
        m.record_drops("ring", ring.saturating_sub(self.ring_drops_seen));
        self.ring_drops_seen = ring;
    }

    /// Whether the app asked the engine to stop.
    pub(crate) fn stop_requested(&self) -> bool {
        self.app.shared.stop.load(Ordering::Acquire)
    }
}

/// What the session's refusal of a control message means to the app.
fn control_error(e: SessionSendError) -> ControlError {
    match e {
        SessionSendError::NotConnected => ControlError::NotConnected,
        _ => ControlError::NotJoined,
    }
}
