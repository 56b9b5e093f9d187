//! The hub's relay cost and added latency on loopback: a hub on its own thread,
//! R rooms of M members (default 10 × 4), every member publishing a pose frame
//! (the real encoder on the hal's synthetic skeleton) at F Hz (default 60) for D
//! seconds (default 10) and receiving the other members' frames — the pose-room
//! workload at a small scale. Prints one table:
//!
//! - hub CPU per delivered message: the hub thread's CPU time
//!   (`CLOCK_THREAD_CPUTIME_ID`) over the messages it delivered;
//! - end-to-end latency (send → receive, same monotonic clock, through two
//!   loopback sockets and the hub): p50 / p99 / max, measured by the receivers;
//! - the hub's own relay latency (read → written to the receiver's socket), p99
//!   as the upper bound of its histogram bucket;
//! - loss (messages sent × (M − 1) vs delivered).
//!
//! Run: `cargo bench --bench relay` (or `-- --rooms 50 --members 4 --hz 60 --secs 10`).

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use poselink::hub::{Hub, HubConfig};
use poselink::proto::{
    EncoderConfig, Header, Hello, Join, Kind, Message, Packet, PoseEncoder, PoseFrame, Role,
    encode_control,
};
use poselink_hal::{Clock, MonotonicClock, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};
use tungstenite::Message as Ws;

struct Args {
    rooms: usize,
    members: usize,
    hz: u64,
    secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        rooms: 10,
        members: 4,
        hz: 60,
        secs: 10,
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        let next = v.get(i + 1).and_then(|s| s.parse::<u64>().ok());
        match (v[i].as_str(), next) {
            ("--rooms", Some(n)) => a.rooms = n as usize,
            ("--members", Some(n)) => a.members = n as usize,
            ("--hz", Some(n)) => a.hz = n,
            ("--secs", Some(n)) => a.secs = n,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn send_control(ws: &mut tungstenite::WebSocket<TcpStream>, member: u16, msg: &Message<'_>) {
    let mut buf = [0u8; 512];
    let n = encode_control(&Header::new(msg.kind(), 0, member, 0, 0), msg, &mut buf).unwrap();
    ws.send(Ws::Binary(buf[..n].to_vec().into())).unwrap();
}

fn read_until(ws: &mut tungstenite::WebSocket<TcpStream>, kind: Kind) -> Vec<u8> {
    loop {
        if let Ok(Ws::Binary(b)) = ws.read()
            && Packet::new_checked(&b[..]).unwrap().header().kind == kind
        {
            return b.to_vec();
        }
    }
}

/// One member: joins, then publishes at `hz` and receives until `end`; returns
/// (sent, received, latencies in µs).
fn member(
    addr: SocketAddr,
    room: String,
    seed: u64,
    hz: u64,
    start: Instant,
    end: Instant,
) -> (u64, u64, Vec<u32>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/"), stream).unwrap();
    send_control(
        &mut ws,
        0,
        &Message::Hello(Hello {
            minor: 0,
            token: "",
            resume: 0,
            client: "relay-bench",
        }),
    );
    let welcome = read_until(&mut ws, Kind::Welcome);
    let me = {
        let p = Packet::new_checked(&welcome[..]).unwrap();
        match p.message(&mut []).unwrap() {
            Message::Welcome(w) => w.member,
            _ => unreachable!(),
        }
    };
    send_control(
        &mut ws,
        me,
        &Message::Join(Join {
            room: &room,
            role: Role::Member,
        }),
    );
    let snap = read_until(&mut ws, Kind::RoomSnapshot);
    let handle = Packet::new_checked(&snap[..]).unwrap().header().room;

    let clock = MonotonicClock::new();
    let mut source = SyntheticPose::new(SyntheticConfig {
        seed,
        ..SyntheticConfig::default()
    });
    let mut encoder = PoseEncoder::new(EncoderConfig::default());
    let mut sample = PoseSample::zeroed();
    let mut buf = vec![0u8; 2048];
    let period = Duration::from_nanos(1_000_000_000 / hz);
    // Members start spread over one period, as independent cameras would.
    let mut next = start + period.mul_f64((seed % 97) as f64 / 97.0);
    let (mut sent, mut got) = (0u64, 0u64);
    let mut lat = Vec::with_capacity((hz * 4 * 60) as usize);
    let mut seq = 0u32;
    while Instant::now() < end + Duration::from_millis(500) {
        let now = Instant::now();
        if now >= next && now < end {
            source.next_pose(&mut sample).unwrap();
            seq += 1;
            let f = PoseFrame::from_arrays(seq, 0, clock.now_us(), &sample.landmarks);
            let n = encoder.encode(&f, handle, me, &mut buf).unwrap();
            ws.send(Ws::Binary(buf[..n].to_vec().into())).unwrap();
            sent += 1;
            next += period;
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_micros(200));
        ws.get_ref().set_read_timeout(Some(wait)).unwrap();
        match ws.read() {
            Ok(Ws::Binary(b)) => {
                let h = Packet::new_checked(&b[..]).unwrap().header();
                if h.kind == Kind::Pose && h.sender != me {
                    got += 1;
                    lat.push(clock.now_us().saturating_sub(h.ts_us) as u32);
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("member {me}: {e}"),
        }
    }
    (sent, got, lat)
}

fn main() {
    let a = args();
    if std::env::args().any(|x| x == "--list" || x == "--test") {
        return; // `cargo test --benches` and `cargo bench -- --list` probe bench binaries
    }
    let n = a.rooms * a.members;
    let cfg = HubConfig {
        max_connections: n + 16,
        max_rooms: a.rooms + 16,
        heartbeat_ms: 60_000,
        ..HubConfig::local_dev()
    };
    let (handle, addr, join) = Hub::spawn(cfg).unwrap();
    let start = Instant::now() + Duration::from_millis(200 + n as u64 * 2);
    let end = start + Duration::from_secs(a.secs);
    let threads: Vec<_> = (0..n)
        .map(|k| {
            let room = format!("bench-{}", k / a.members);
            let hz = a.hz;
            std::thread::spawn(move || member(addr, room, k as u64 + 1, hz, start, end))
        })
        .collect();
    let mut sent = 0;
    let mut got = 0;
    let mut lat: Vec<u32> = Vec::new();
    for t in threads {
        let (s, g, l) = t.join().unwrap();
        sent += s;
        got += g;
        lat.extend(l);
    }
    handle.shutdown();
    let report = join.join().unwrap().unwrap();
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    let expected = sent * (a.members as u64 - 1);
    let delivered = report.stats.delivered;
    let cpu = report.thread_cpu.unwrap_or_default();
    println!(
        "relay bench: {} rooms x {} members, {} Hz pose, {} s, hub on its own thread",
        a.rooms, a.members, a.hz, a.secs
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| frames published | {sent} |");
    println!(
        "| deliveries expected / received | {expected} / {got} (loss {:.4} %) |",
        100.0 * (expected.saturating_sub(got)) as f64 / expected.max(1) as f64
    );
    println!(
        "| hub CPU per delivered message | {:.2} µs ({:.3} s CPU for {delivered} deliveries) |",
        cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64,
        cpu.as_secs_f64()
    );
    println!(
        "| end-to-end latency p50 / p99 / max | {} / {} / {} µs |",
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0)
    );
    let h = &report.stats.relay_latency;
    println!(
        "| hub relay latency (read → written to the receiver's socket) p50 / p99 / max | {} / {} / {} µs |",
        h.quantile_us(0.5),
        h.quantile_us(0.99),
        h.max_us()
    );
    println!(
        "| drops (all reasons) | {} |",
        report.stats.drops.iter().sum::<u64>()
    );
}
