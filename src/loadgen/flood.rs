//! Flooders beside the load (`LoadConfig::flooders`, `poselink bench
//! --flooders N`): each one a plain connection that says hello, then writes
//! protocol pings as fast as its socket takes them, on a thread of its own,
//! until the load ends or the hub closes it. They measure what a flood costs
//! the honest members (their latency and loss, measured as usual) and how soon
//! the hub closes a flooder. Not for TLS hubs (a flooder is about the hub's
//! rate limits, not its TLS layer). Set-up and flooding allocate freely: the
//! flooders are the load's adversary, not part of what is measured.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{LoadError, LoadErrorKind};
use crate::proto::{Header, Hello, Kind, Message, Ping, encode_control};
use crate::ws::{FrameKind, mask_payload, write_client_header};

/// Pings written per `write_all`.
const BATCH: usize = 512;

/// What one flooder did.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Flooded {
    /// Pings written (the hub may not have read them all).
    pub messages: u64,
    /// The hub closed the connection, this long after the flood began.
    pub closed_after: Option<Duration>,
}

/// The running flooders.
pub(super) struct Flooders {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Flooded>>,
}

/// One masked binary frame of `msg`.
fn frame(msg: &mut [u8], k: u32, out: &mut Vec<u8>) {
    let mut head = [0u8; 14];
    let mask = k.wrapping_mul(0x9e37_79b9).to_le_bytes();
    let hl = write_client_header(&mut head, FrameKind::Binary, true, msg.len(), mask)
        .expect("a small frame");
    mask_payload(msg, mask);
    out.extend_from_slice(&head[..hl]);
    out.extend_from_slice(msg);
}

/// The hello with `token`, then a batch of pings, as masked frames.
fn messages(token: &str) -> (Vec<u8>, Vec<u8>) {
    let mut buf = vec![0u8; 4096];
    let hello = Message::Hello(Hello {
        minor: 0,
        token,
        resume: 0,
        client: "poselink-flooder",
        stream: 0,
    });
    let n = encode_control(&Header::new(Kind::Hello, 0, 0, 0, 0), &hello, &mut buf)
        .expect("a hello fits");
    let mut first = Vec::new();
    frame(&mut buf[..n], 0, &mut first);
    let mut batch = Vec::new();
    for k in 1..=BATCH as u32 {
        let ping = Message::Ping(Ping { t0_us: k.into() });
        let n = encode_control(&Header::new(Kind::Ping, 0, 0, k, 0), &ping, &mut buf)
            .expect("a ping fits");
        frame(&mut buf[..n], k, &mut batch);
    }
    (first, batch)
}

impl Flooders {
    /// Connects `n` flooders to `addr` (upgrade and hello), ready to flood.
    pub(super) fn connect(addr: SocketAddr, n: usize, token: &str) -> Result<Flooders, LoadError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (hello, batch) = messages(token);
        let batch = Arc::new(batch);
        let mut threads = Vec::with_capacity(n);
        let err = |kind, what: String| LoadError::new(kind, format!("flooder: {what}"));
        for f in 0..n {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| {
                err(
                    LoadErrorKind::Connect,
                    format!("cannot connect to {addr}: {e}"),
                )
            })?;
            s.set_write_timeout(Some(Duration::from_millis(100)))
                .map_err(|e| err(LoadErrorKind::Io, e.to_string()))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| err(LoadErrorKind::Io, e.to_string()))?;
            let (ws, _) = tungstenite::client(format!("ws://{addr}/"), s).map_err(|e| {
                err(
                    LoadErrorKind::Handshake,
                    format!("the WebSocket upgrade failed: {e}"),
                )
            })?;
            let mut s = ws.into_inner();
            s.write_all(&hello)
                .map_err(|e| err(LoadErrorKind::Io, e.to_string()))?;
            let (stop, batch) = (stop.clone(), batch.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("poselink-flood-{f}"))
                .spawn(move || flood(s, &batch, &stop));
            threads.push(spawned.map_err(|e| err(LoadErrorKind::Io, e.to_string()))?);
        }
        Ok(Flooders { stop, threads })
    }

    /// Stops the flooders; what each did.
    pub(super) fn finish(self) -> Vec<Flooded> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .collect()
    }
}

/// Writes `batch` until `stop`, or until the hub closes the connection: its
/// side ends (it shuts its write half right after its close frame) or a write
/// fails. Between batches, what the hub sent is read and dropped.
fn flood(mut s: TcpStream, batch: &[u8], stop: &AtomicBool) -> Flooded {
    let start = Instant::now();
    let mut out = Flooded::default();
    let mut sink = vec![0u8; 16 * 1024];
    let _ = s.set_read_timeout(Some(Duration::from_millis(1)));
    let quiet = |e: &std::io::Error| {
        matches!(
            e.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
        )
    };
    while !stop.load(Ordering::Relaxed) {
        match s.write_all(batch) {
            Ok(()) => out.messages += BATCH as u64,
            Err(e) if quiet(&e) => {}
            Err(_) => break,
        }
        match s.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if quiet(&e) => {}
            Err(_) => break,
        }
    }
    if !stop.load(Ordering::Relaxed) {
        out.closed_after = Some(start.elapsed());
    }
    out
}
