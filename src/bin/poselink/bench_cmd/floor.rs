//! The floor the hub is measured against: what one delivery cannot cost less
//! than on the machine the bench runs on. A delivery is, at the least, one
//! `write()` of the message to the receiver's loopback TCP socket, and on
//! loopback that call also runs the receiver's side of TCP. So the bench
//! measures, before the load and with the same placement (the writer on the
//! hub's CPU, a reader on the load generator's), the writer thread's CPU time
//! per `write()` of one message-sized WebSocket frame:
//!
//! - **single**: back to back into one socket (the plainest form of the
//!   figure: everything the kernel touches stays in the cache);
//! - **spread**: one write per socket in turn over as many sockets as the run
//!   has receivers (the shape of the hub's deliveries: each goes to another
//!   connection), back to back;
//! - **paced**: the same, one write every 50 µs, each timed on its own
//!   (the writer spins between writes on its own CPU, so a write's wall time
//!   is its CPU time): the reader has gone back to sleep before each write, as
//!   a load generator may between the messages of a run, so every write also
//!   wakes it.
//!
//! The reader drains every socket with large reads on its own `mio` poll, so
//! the writer never waits on a full buffer. Back to back, the reader is busy
//! and seldom needs a wake-up; paced, every write pays one. A hub's
//! deliveries lie between the two (its receivers are sometimes awake), so the
//! report's ratio is taken against **spread**, the strict one.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::hub_process::set_affinity;

/// Writes measured per figure (after a warm-up of a tenth as many), and the
/// time one figure may take at most: a bound for slow machines.
const WRITES: u64 = 100_000;
const MAX_TIME: Duration = Duration::from_secs(2);
/// Sockets at most in the spread figure (the run's receivers, capped).
pub(super) const MAX_SOCKETS: usize = 512;
/// The paced figure's interval between writes.
const PACE: Duration = Duration::from_micros(50);

/// The floor's figures, µs of the writer's CPU per write.
#[derive(Clone, Copy, Debug)]
pub(super) struct Floor {
    /// Back to back into one socket.
    pub single_us: f64,
    /// One write per socket in turn over `sockets` sockets.
    pub spread_us: f64,
    /// As `spread_us`, one write every [`PACE`], the reader idle before each.
    pub paced_us: f64,
    /// Sockets of the spread figure.
    pub sockets: usize,
    /// Bytes per write (a WebSocket frame of the run's mean message).
    pub bytes: usize,
}

impl Floor {
    /// Measures both figures for messages of `payload` bytes (the envelope,
    /// payload and CRC; the 2-byte WebSocket header is added) over up to
    /// `receivers` sockets; the writer runs on `writer_cpu` when given (the
    /// hub's), the reader where this thread may run.
    pub(super) fn measure(
        payload: usize,
        receivers: usize,
        writer_cpu: Option<usize>,
    ) -> io::Result<Floor> {
        let sockets = receivers.clamp(1, MAX_SOCKETS);
        let frame = ws_frame(payload);
        let single_us = per_write_us(&frame, 1, writer_cpu, None)?;
        let spread_us = per_write_us(&frame, sockets, writer_cpu, None)?;
        let paced_us = per_write_us(&frame, sockets, writer_cpu, Some(PACE))?;
        Ok(Floor {
            single_us,
            spread_us,
            paced_us,
            sockets,
            bytes: frame.len(),
        })
    }
}

/// A binary WebSocket frame (server to client: unmasked) of `payload` bytes.
fn ws_frame(payload: usize) -> Vec<u8> {
    let payload = payload.clamp(1, 65_535);
    let mut f = Vec::with_capacity(payload + 4);
    f.push(0x82);
    if payload < 126 {
        f.push(payload as u8);
    } else {
        f.push(126);
        f.extend_from_slice(&(payload as u16).to_be_bytes());
    }
    f.resize(f.len() + payload, 0x5a);
    f
}

/// The writer thread's CPU µs per write of `frame`, round robin over `n`
/// loopback connections whose other ends a reader thread drains: back to
/// back (the thread's CPU clock), or one write every `pace` (each write's
/// own time).
fn per_write_us(
    frame: &[u8],
    n: usize,
    writer_cpu: Option<usize>,
    pace: Option<Duration>,
) -> io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut readers = Vec::with_capacity(n);
    let mut writers = Vec::with_capacity(n);
    for _ in 0..n {
        let r = TcpStream::connect(addr)?;
        let (w, _) = listener.accept()?;
        // As the hub's sockets.
        w.set_nodelay(true)?;
        r.set_nonblocking(true)?;
        readers.push(r);
        writers.push(w);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("floor-reader".into())
            .spawn(move || drain(readers, &stop))?
    };
    let frame = frame.to_vec();
    let writer = std::thread::Builder::new()
        .name("floor-writer".into())
        .spawn(move || -> io::Result<f64> {
            if let Some(cpu) = writer_cpu {
                set_affinity(&[cpu]);
            }
            if let Some(pace) = pace {
                let us = write_paced(&mut writers, &frame, pace)?;
                for w in &writers {
                    let _ = w.shutdown(Shutdown::Both);
                }
                return Ok(us);
            }
            write_round_robin(&mut writers, &frame, WRITES / 10, MAX_TIME / 10)?;
            let cpu0 = poselink_hal::clock::thread_cpu_us().unwrap_or(0);
            let done = write_round_robin(&mut writers, &frame, WRITES, MAX_TIME)?;
            let cpu1 = poselink_hal::clock::thread_cpu_us().unwrap_or(0);
            for w in &writers {
                let _ = w.shutdown(Shutdown::Both);
            }
            Ok(cpu1.saturating_sub(cpu0) as f64 / done.max(1) as f64)
        })?;
    let result = writer
        .join()
        .map_err(|_| io::Error::other("the floor's writer panicked"))?;
    stop.store(true, Ordering::Release);
    let _ = reader.join();
    result
}

/// Writes `frame` to each stream in turn, `count` writes or until `limit`
/// has passed; returns the writes made.
fn write_round_robin(
    streams: &mut [TcpStream],
    frame: &[u8],
    count: u64,
    limit: Duration,
) -> io::Result<u64> {
    let start = Instant::now();
    let mut k = 0usize;
    for done in 0..count {
        if done % 1024 == 0 && start.elapsed() > limit {
            return Ok(done);
        }
        streams[k].write_all(frame)?;
        k = if k + 1 == streams.len() { 0 } else { k + 1 };
    }
    Ok(count)
}

/// Writes `frame` to each stream in turn, one write every `pace` (spinning
/// in between), `WRITES / 10` timed writes after a tenth as many for
/// warm-up, or until `MAX_TIME / 2`; returns the mean time one write took, µs.
fn write_paced(streams: &mut [TcpStream], frame: &[u8], pace: Duration) -> io::Result<f64> {
    let (warm, count) = (WRITES / 100, WRITES / 10);
    let start = Instant::now();
    let (mut k, mut spent, mut timed) = (0usize, Duration::ZERO, 0u64);
    for done in 0..warm + count {
        let due = start + pace * done as u32;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        if start.elapsed() > MAX_TIME / 2 {
            break;
        }
        let t0 = Instant::now();
        streams[k].write_all(frame)?;
        if done >= warm {
            spent += t0.elapsed();
            timed += 1;
        }
        k = if k + 1 == streams.len() { 0 } else { k + 1 };
    }
    Ok(spent.as_secs_f64() * 1e6 / timed.max(1) as f64)
}

/// Reads every stream until `stop` (or every stream has ended).
fn drain(streams: Vec<TcpStream>, stop: &AtomicBool) {
    let Ok(mut poll) = mio::Poll::new() else {
        return;
    };
    let mut streams: Vec<mio::net::TcpStream> = streams
        .into_iter()
        .map(mio::net::TcpStream::from_std)
        .collect();
    for (k, s) in streams.iter_mut().enumerate() {
        if poll
            .registry()
            .register(s, mio::Token(k), mio::Interest::READABLE)
            .is_err()
        {
            return;
        }
    }
    let mut events = mio::Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut open = streams.len();
    while open > 0 && !stop.load(Ordering::Acquire) {
        if poll
            .poll(&mut events, Some(Duration::from_millis(50)))
            .is_err()
        {
            return;
        }
        for ev in events.iter() {
            let s = &mut streams[ev.token().0];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        open -= 1;
                        let _ = poll.registry().deregister(s);
                        break;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_websocket_header() {
        let f = ws_frame(110);
        assert_eq!(f.len(), 112);
        assert_eq!(&f[..2], &[0x82, 110]);
        let f = ws_frame(1944);
        assert_eq!(f.len(), 1948);
        assert_eq!(&f[..4], &[0x82, 126, 0x07, 0x98]);
    }

    #[test]
    fn the_floor_is_measured_over_loopback() {
        let floor = Floor::measure(110, 8, None).unwrap();
        assert_eq!((floor.sockets, floor.bytes), (8, 112));
        // A write to a loopback socket costs something and far less than a
        // millisecond of CPU; zero would mean nothing was measured.
        for us in [floor.single_us, floor.spread_us, floor.paced_us] {
            assert!(us > 0.0 && us < 1000.0, "{floor:?}");
        }
    }
}
