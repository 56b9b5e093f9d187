//! The cluster link's thread: NATS's maintained client (`async-nats`) on a
//! current-thread tokio runtime of its own, so that the hub's loop never waits
//! on the broker, allocates for it or takes a lock for it. The two meet through
//! four bounded lock-free rings (crossbeam's `ArrayQueue`), media and control
//! each way, of fixed-size slots allocated at start-up, plus a wake each way:
//! the loop's `mio::Waker` (only when the loop is not already due to look) and
//! a byte on a Unix socket pair the broker thread waits on (only when it is
//! not already due to look). Each wake is coalesced over a millisecond (the
//! broker thread waits that long before it drains, and before it wakes the
//! loop for what arrived): the threads switch once per millisecond of
//! traffic, not once per message, which halved the link's CPU at the price of
//! up to a millisecond each way (BENCHMARKS.md, "Cluster").
//!
//! Pose and audio have rings of their own, so that a full ring drops by the
//! slow-receiver rule: pose first (a full pose ring drops its oldest pose,
//! which pose alone fills), audio only when its own ring is full (its oldest),
//! each counted (`cluster_ring` decides how much a stall of the broker may
//! hold); control is never dropped
//! silently: out of the loop, a full control ring is counted and logged (and
//! the heartbeat's re-announcements repair it); into the loop, the broker
//! thread waits for room. The broker connection's state reaches the core as
//! [`Core::handle_cluster_link`](crate::hub::core::Core::handle_cluster_link);
//! its TLS and credentials come from `cluster_access`, which also words its
//! failures (logged once per change or per 30 s, counted by reason).

use std::collections::HashMap;
use std::io;
use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use futures_util::StreamExt;
use mio::Waker;

use super::cluster_access::{self, Auth, Failure, FailureLog};
use crate::hub::HubConfig;
use crate::hub::core::{ClusterClass, ClusterOut, ClusterTo, Core, cluster_class, cluster_subject};

/// The subjects' first token.
pub(crate) const PREFIX: &str = "poselink";
/// A slot's payload: the largest cluster message (a media message of the
/// relay's largest size, with its room and node names and header).
const SLOT_BYTES: usize = crate::hub::core::BLOCK + 512;
/// The longest subject (a 64-byte room name in hex, and the prefix).
const SUBJECT_BYTES: usize = 160;
/// Messages the loop takes from the broker per turn before it turns to its
/// sockets again.
const IN_PER_TURN: usize = 1024;

/// One message between the loop and the broker thread.
struct Slot {
    /// Out: what [`ClusterTo`] it is (0 publish, 1 subscribe, 2 unsubscribe);
    /// in: unused.
    op: u8,
    /// The subscription's id (subscribe, unsubscribe; in: the one it came by).
    sid: u16,
    subject_len: u8,
    subject: [u8; SUBJECT_BYTES],
    len: u16,
    bytes: [u8; SLOT_BYTES],
}

impl Slot {
    fn empty() -> Box<Slot> {
        // Built in place: a slot is too big to build on the stack and move
        // without care in debug builds.
        Box::new(Slot {
            op: 0,
            sid: 0,
            subject_len: 0,
            subject: [0; SUBJECT_BYTES],
            len: 0,
            bytes: [0; SLOT_BYTES],
        })
    }

    fn subject(&self) -> &str {
        core::str::from_utf8(&self.subject[..self.subject_len as usize]).unwrap_or("")
    }

    fn payload(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// What the loop and the broker thread share.
struct Shared {
    out_pose: ArrayQueue<Box<Slot>>,
    out_audio: ArrayQueue<Box<Slot>>,
    out_ctrl: ArrayQueue<Box<Slot>>,
    in_pose: ArrayQueue<Box<Slot>>,
    in_audio: ArrayQueue<Box<Slot>>,
    in_ctrl: ArrayQueue<Box<Slot>>,
    /// Empty slots, so neither side allocates once running.
    spare: ArrayQueue<Box<Slot>>,
    /// The broker connection is up.
    up: AtomicBool,
    /// The loop was woken and has not looked yet.
    loop_woken: AtomicBool,
    /// The broker thread is to stop.
    stop: AtomicBool,
    /// Media the rings dropped (full), each way.
    dropped_out: AtomicU64,
    dropped_in: AtomicU64,
    /// Messages published to the broker.
    published: AtomicU64,
    /// Failed connection attempts, by [`Failure`].
    failures: [AtomicU64; 4],
    waker: Arc<Waker>,
    /// Wakes the broker thread: a byte written here.
    wake_tx: UnixStream,
    /// The broker thread was woken and has not looked yet.
    broker_woken: AtomicBool,
    /// The broker link's certificates, once the broker thread has read them
    /// (never, when its settings failed): what SIGHUP reloads.
    certs: OnceLock<Arc<cluster_access::BrokerCerts>>,
    /// The broker thread is to read the certificates' files again.
    reload: AtomicBool,
}

impl Shared {
    fn wake_broker(&self) {
        if !self.broker_woken.swap(true, Ordering::AcqRel) {
            // Non-blocking: a full socket buffer means a wake is pending anyway.
            let _ = (&self.wake_tx).write(&[1]);
        }
    }

    fn wake_loop(&self) {
        if !self.loop_woken.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    fn slot(&self) -> Option<Box<Slot>> {
        self.spare.pop()
    }
}

/// The loop's side of the cluster link.
pub(super) struct ClusterLink {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The broker connection's state as last given to the core.
    told_up: bool,
    subject: String,
}

/// Bytes the link's rings hold, for the memory ceiling.
pub(crate) fn table_bytes(cfg: &HubConfig) -> usize {
    if cfg.cluster.is_none() {
        return 0;
    }
    slots(cfg) * (size_of::<Slot>() + 5 * size_of::<usize>())
}

fn slots(cfg: &HubConfig) -> usize {
    // Each ring full at once, plus the few in the broker thread's hands.
    let r = cfg.cluster_ring;
    2 * (r + (r / 2).max(16) + (r / 4).max(16)) + 16
}

impl ClusterLink {
    /// Starts the broker thread for `cfg.cluster`; it connects (and reconnects)
    /// on its own, so a broker that is not there yet is no error here.
    pub fn start(cfg: &HubConfig, waker: Arc<Waker>) -> io::Result<Option<ClusterLink>> {
        if cfg.cluster.is_none() {
            return Ok(None);
        }
        let node = cfg.node.clone().unwrap_or_else(|| "hub".into());
        let (media, audio, ctrl) = (
            cfg.cluster_ring,
            (cfg.cluster_ring / 2).max(16),
            (cfg.cluster_ring / 4).max(16),
        );
        let total = slots(cfg);
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            out_pose: ArrayQueue::new(media),
            out_audio: ArrayQueue::new(audio),
            out_ctrl: ArrayQueue::new(ctrl),
            in_pose: ArrayQueue::new(media),
            in_audio: ArrayQueue::new(audio),
            in_ctrl: ArrayQueue::new(ctrl),
            spare: ArrayQueue::new(total),
            up: AtomicBool::new(false),
            loop_woken: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            dropped_out: AtomicU64::new(0),
            dropped_in: AtomicU64::new(0),
            published: AtomicU64::new(0),
            failures: Default::default(),
            waker,
            wake_tx,
            broker_woken: AtomicBool::new(false),
            certs: OnceLock::new(),
            reload: AtomicBool::new(false),
        });
        for _ in 0..total {
            let _ = shared.spare.push(Slot::empty());
        }
        let s = Arc::clone(&shared);
        let cfg = cfg.clone();
        let thread = std::thread::Builder::new()
            .name("poselink-cluster".into())
            .spawn(move || broker_thread(cfg, node, s, wake_rx))?;
        Ok(Some(ClusterLink {
            shared,
            thread: Some(thread),
            told_up: false,
            subject: String::with_capacity(SUBJECT_BYTES),
        }))
    }

    /// Media dropped by the rings (out of the loop, into it), and messages
    /// published.
    pub fn counts(&self) -> (u64, u64, u64) {
        let s = &self.shared;
        (
            s.dropped_out.load(Ordering::Relaxed),
            s.dropped_in.load(Ordering::Relaxed),
            s.published.load(Ordering::Relaxed),
        )
    }

    /// Failed connection attempts to the broker, by [`Failure`] (tls, auth,
    /// other, config).
    pub fn failures(&self) -> [u64; 4] {
        let f = &self.shared.failures;
        core::array::from_fn(|i| f[i].load(Ordering::Relaxed))
    }

    /// Tells the core the broker connection's state when it changed; the
    /// start of a turn's receiving.
    pub fn begin(&mut self, core: &mut Core, now: u64) {
        let s = &*self.shared;
        s.loop_woken.store(false, Ordering::Release);
        let up = s.up.load(Ordering::Acquire);
        if up != self.told_up {
            self.told_up = up;
            core.handle_cluster_link(now, up);
        }
    }

    /// Hands the core the next message from the broker (control first):
    /// `None` when there is none, `Some(true)` when the output due must be
    /// written before the next.
    pub fn receive_one(&mut self, core: &mut Core, now: u64) -> Option<bool> {
        let s = &*self.shared;
        let slot = s
            .in_ctrl
            .pop()
            .or_else(|| s.in_audio.pop())
            .or_else(|| s.in_pose.pop())?;
        let due = core.handle_cluster(now, slot.sid, slot.payload());
        let _ = s.spare.push(slot);
        Some(due)
    }

    /// Messages the loop takes per turn at most; when that many were taken,
    /// [`more`](Self::more) has the loop look again at once.
    pub const PER_TURN: usize = IN_PER_TURN;

    /// Wakes the loop for another turn (more messages wait).
    pub fn more(&self) {
        self.shared.wake_loop();
    }

    /// Moves what the core has for the broker into the rings, and wakes the
    /// broker thread when it did.
    pub fn send(&mut self, core: &mut Core) {
        let s = &*self.shared;
        let mut any = false;
        let mut lost_control = false;
        while let Some(out) = core.poll_cluster() {
            any = true;
            let ClusterOut { to, bytes } = out;
            cluster_subject(PREFIX, to, &mut self.subject);
            let Some(mut slot) = s.slot() else {
                // Cannot happen by the spare ring's sizing; count, never block.
                s.dropped_out.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let (op, sid) = match to {
                ClusterTo::Subscribe { sid, .. } => (1, sid),
                ClusterTo::Unsubscribe { sid, .. } => (2, sid),
                _ => (0, 0),
            };
            slot.op = op;
            slot.sid = sid;
            let n = self.subject.len().min(SUBJECT_BYTES);
            slot.subject[..n].copy_from_slice(&self.subject.as_bytes()[..n]);
            slot.subject_len = n as u8;
            let n = bytes.len().min(SLOT_BYTES);
            slot.bytes[..n].copy_from_slice(&bytes[..n]);
            slot.len = n as u16;
            let media = match cluster_class(bytes) {
                ClusterClass::Pose => Some(&s.out_pose),
                ClusterClass::Audio => Some(&s.out_audio),
                ClusterClass::Control => None,
            };
            if let Some(ring) = media {
                if let Some(old) = ring.force_push(slot) {
                    s.dropped_out.fetch_add(1, Ordering::Relaxed);
                    let _ = s.spare.push(old);
                }
            } else if let Err(slot) = s.out_ctrl.push(slot) {
                s.dropped_out.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "cluster: the control ring to the broker is full (cluster_ring); a message to {} is lost; this hub announces its members again",
                    slot.subject()
                );
                let _ = s.spare.push(slot);
                lost_control = true;
            }
        }
        if any {
            s.wake_broker();
        }
        if lost_control {
            core.handle_cluster_lost_control();
        }
    }

    /// Has the broker thread read the link's CA and client certificate
    /// files again (what SIGHUP does) for its next connection to the
    /// broker, and log how it went; the open connection stays. The broker
    /// thread reads them, not the loop: without `cluster_ca_file` that is
    /// the system's whole store of roots. `false` when the link has no
    /// certificates to reload: its settings failed at start, or the broker
    /// thread has not read them yet.
    pub fn reload_tls(&self) -> bool {
        let s = &*self.shared;
        if s.certs.get().is_none() {
            return false;
        }
        s.reload.store(true, Ordering::Release);
        s.wake_broker();
        true
    }

    /// Stops the broker thread (after the core's last words were sent).
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake_broker();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ClusterLink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The broker thread: connects, then moves messages both ways until told to
/// stop.
fn broker_thread(cfg: HubConfig, node: String, s: Arc<Shared>, wake_rx: UnixStream) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!(
                "cluster: cannot start the broker thread's runtime: {e}; this hub runs alone"
            );
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(cfg, node, s, wake_rx));
    // Tasks still held drop their subscriptions, which spawn their
    // unsubscribe: inside the runtime's context.
    let _context = rt.enter();
    drop(local);
}

async fn run(cfg: HubConfig, node: String, s: Arc<Shared>, wake_rx: UnixStream) {
    let url = cfg.cluster.clone().unwrap_or_default();
    // The URL as logged: without its password or token.
    let shown = cluster_access::redacted(&url);
    let access = match cluster_access::prepare(&cfg) {
        Ok(a) => a,
        Err(e) => {
            s.failures[Failure::Config as usize].fetch_add(1, Ordering::Relaxed);
            log::error!(
                "cluster: {e}; this hub does not connect to the broker at {shown} and relays between its own members only (fix the setting and restart the hub)"
            );
            return;
        }
    };
    let _ = s.certs.set(Arc::clone(&access.certs));
    let events = Arc::clone(&s);
    let refusal = Arc::clone(&access.refusal);
    let said = Arc::new(Mutex::new(FailureLog::new()));
    let (cfg, shown_ev) = (Arc::new(cfg), shown.clone());
    let settings = Arc::clone(&cfg);
    let options = async_nats::ConnectOptions::new()
        .name(format!("poselink hub {node}"))
        .no_echo()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        // Back within a fraction of a second of the broker's return.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 50).clamp(50, 250))
        })
        .client_capacity(4096)
        .subscription_capacity(4096)
        .tls_client_config(access.tls)
        .require_tls(access.require_tls)
        .event_callback(move |ev| {
            let s = Arc::clone(&events);
            let (refusal, said) = (Arc::clone(&refusal), Arc::clone(&said));
            let (cfg, shown) = (Arc::clone(&cfg), shown_ev.clone());
            async move {
                match ev {
                    async_nats::Event::Connected => {
                        s.up.store(true, Ordering::Release);
                        s.wake_loop();
                        if let Ok(mut said) = said.lock() {
                            said.connected();
                        }
                        log::info!("cluster: connected to the broker at {shown}");
                    }
                    async_nats::Event::Disconnected | async_nats::Event::Closed => {
                        s.up.store(false, Ordering::Release);
                        s.wake_loop();
                        log::warn!(
                            "cluster: lost the broker at {shown}; this hub relays between its own members until it is back"
                        );
                    }
                    async_nats::Event::ClientError(async_nats::ClientError::Other(kind)) => {
                        // A failed attempt: its kind from async-nats, its
                        // certificate refusal (if any) from our verifier.
                        let refused = refusal.lock().ok().and_then(|mut r| r.take());
                        let (failure, sentence) =
                            cluster_access::explain(&kind, refused, &cfg, &shown);
                        s.failures[failure as usize].fetch_add(1, Ordering::Relaxed);
                        let line = said
                            .lock()
                            .ok()
                            .and_then(|mut l| l.failed(&sentence, Instant::now()));
                        if let Some(line) = line {
                            log::error!("cluster: broker {shown}: {line}");
                        }
                    }
                    other => log::warn!("cluster: broker {shown}: {other}"),
                }
            }
        });
    let options = match access.auth {
        Auth::UserPassword(user, pass) => options.user_and_password(user, pass),
        Auth::Token(token) => options.token(token),
        Auth::None => options,
    };
    let client = match options.connect(url.as_str()).await {
        Ok(c) => c,
        Err(e) => {
            log::error!(
                "cluster: cannot use the broker at {shown}: {e}; this hub runs alone (check the cluster URL)"
            );
            return;
        }
    };
    log::info!("cluster: node {node}, broker {shown}");
    // The loop is woken once per batch of arrivals, not once per message: the
    // subscriptions note an arrival; this task wakes the loop after the
    // runtime has run every task that was ready (more arrivals among them).
    let arrived = Arc::new(tokio::sync::Notify::new());
    let waker_task = {
        let (arrived, s) = (Arc::clone(&arrived), Arc::clone(&s));
        tokio::task::spawn_local(async move {
            loop {
                arrived.notified().await;
                // A millisecond's arrivals per wake of the loop (it looks
                // at the rings on every turn anyway, so a busy loop takes
                // them sooner): fewer switches between the threads.
                tokio::time::sleep(Duration::from_millis(1)).await;
                s.wake_loop();
            }
        })
    };
    // Every hub's subject and this hub's own.
    let mut subs: HashMap<u16, tokio::task::JoinHandle<()>> = HashMap::new();
    for (sid, subject) in [
        (0u16, format!("{PREFIX}.nodes")),
        (0u16, format!("{PREFIX}.node.{node}")),
    ] {
        let key = if subject.ends_with(".nodes") {
            u16::MAX
        } else {
            u16::MAX - 1
        };
        subs.insert(key, forward(&client, subject, sid, &s, &arrived).await);
    }
    let wake = match tokio::net::UnixStream::from_std(wake_rx) {
        Ok(w) => w,
        Err(e) => {
            log::error!("cluster: cannot wait on the wake descriptor: {e}; this hub runs alone");
            return;
        }
    };
    loop {
        let stopping = s.stop.load(Ordering::Acquire);
        // Control first, then media, each in the order the loop queued it.
        while let Some(slot) = s
            .out_ctrl
            .pop()
            .or_else(|| s.out_audio.pop())
            .or_else(|| s.out_pose.pop())
        {
            match slot.op {
                1 => {
                    let subject = slot.subject().to_string();
                    if let Some(old) = subs.insert(
                        slot.sid,
                        forward(&client, subject, slot.sid, &s, &arrived).await,
                    ) {
                        old.abort();
                    }
                }
                2 => {
                    if let Some(old) = subs.remove(&slot.sid) {
                        old.abort();
                    }
                }
                _ => {
                    let subject = slot.subject().to_string();
                    let payload = slot.payload().to_vec();
                    match client.publish(subject, payload.into()).await {
                        Ok(()) => {
                            s.published.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => log::debug!("cluster: publish failed: {e}"),
                    }
                }
            }
            let _ = s.spare.push(slot);
        }
        if s.reload.swap(false, Ordering::AcqRel) {
            reload_certs(&s, &settings);
        }
        // No flush here: the client writes as soon as its connection task
        // has taken what was published, batching what came together (a
        // flush per drain cost a round trip through that task each time).
        if stopping {
            // Bounded: a flush waits for a connection, and a hub whose
            // broker never took it (refused, unreachable) must still stop.
            let _ = tokio::time::timeout(Duration::from_secs(1), client.flush()).await;
            break;
        }
        // Wait for the loop's wake, or look again shortly (the stop flag).
        s.broker_woken.store(false, Ordering::Release);
        if !s.out_ctrl.is_empty() || !s.out_audio.is_empty() || !s.out_pose.is_empty() {
            continue;
        }
        if let Ok(Ok(())) = tokio::time::timeout(Duration::from_millis(100), wake.readable()).await
        {
            let mut buf = [0u8; 64];
            let _ = wake.try_read(&mut buf);
            // A millisecond's messages per drain: the client then writes
            // them to the broker together.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for (_, t) in subs.drain() {
        t.abort();
    }
    waker_task.abort();
    // Let the aborted tasks go (and unsubscribe) while the runtime runs.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

/// Reads the broker link's certificate files again (SIGHUP) and logs how
/// it went.
fn reload_certs(s: &Shared, cfg: &HubConfig) {
    let Some(certs) = s.certs.get() else {
        return;
    };
    match certs.reload(cfg) {
        Ok(()) => log::info!(
            "cluster: the broker link's TLS files reloaded (cluster_ca_file {}, cluster_cert_file {}); its next connection to the broker uses them, the open one stays",
            cfg.cluster_ca_file
                .as_deref()
                .unwrap_or("none: the system's roots"),
            cfg.cluster_cert_file.as_deref().unwrap_or("none"),
        ),
        Err(e) => log::error!(
            "cluster: reloading the broker link's TLS files failed, the previous ones stay: {e}"
        ),
    }
}

/// Subscribes to `subject` and forwards its messages to the loop, tagged
/// with `sid`, until aborted. Control (every message but media) waits for
/// room in its ring; media drops the oldest when its ring is full, counted.
async fn forward(
    client: &async_nats::Client,
    subject: String,
    sid: u16,
    s: &Arc<Shared>,
    arrived: &Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    let sub = client.subscribe(subject.clone()).await;
    let (s, arrived) = (Arc::clone(s), Arc::clone(arrived));
    tokio::task::spawn_local(async move {
        let mut sub = match sub {
            Ok(sub) => sub,
            Err(e) => {
                log::error!("cluster: cannot subscribe to {subject}: {e}");
                return;
            }
        };
        while let Some(msg) = sub.next().await {
            let Some(mut slot) = s.slot() else {
                s.dropped_in.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let n = msg.payload.len().min(SLOT_BYTES);
            slot.bytes[..n].copy_from_slice(&msg.payload[..n]);
            slot.len = n as u16;
            slot.sid = sid;
            let media = match cluster_class(&msg.payload) {
                ClusterClass::Pose => Some(&s.in_pose),
                ClusterClass::Audio => Some(&s.in_audio),
                ClusterClass::Control => None,
            };
            if let Some(ring) = media {
                if let Some(old) = ring.force_push(slot) {
                    s.dropped_in.fetch_add(1, Ordering::Relaxed);
                    let _ = s.spare.push(old);
                }
            } else {
                // Control waits for room (the loop drains it first), up to a
                // second; then it is counted and logged, never lost unsaid.
                let mut slot = Some(slot);
                for _ in 0..1000 {
                    match s.in_ctrl.push(slot.take().expect("held")) {
                        Ok(()) => break,
                        Err(back) => {
                            slot = Some(back);
                            s.wake_loop();
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
                if let Some(slot) = slot {
                    s.dropped_in.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "cluster: the hub's loop took no control message for a second; one from {subject} is lost"
                    );
                    let _ = s.spare.push(slot);
                }
            }
            arrived.notify_one();
        }
    })
}
