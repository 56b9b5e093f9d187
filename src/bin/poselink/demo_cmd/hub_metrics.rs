//! The hub's figures over HTTP: its `/metrics` and `/report` fetched from the port
//! of its WebSocket URL, and the hub's line of the live table made from them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `host:port` of a `ws://host:port/...` URL, for its `/metrics`.
pub(super) fn metrics_addr_of(url: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = url.strip_prefix("ws://")?;
    let hostport = rest.split('/').next()?;
    hostport.to_socket_addrs().ok()?.next()
}

/// `GET path` on the hub's port; the body, or `None` (no hub metrics: an
/// external hub with `metrics = false`, or not reachable).
pub(super) fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(1_000)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

pub(super) fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
/// The hub's line of the table from its `/metrics`: loop CPU since the last
/// second, deliveries and drops so far.
pub(super) fn hub_figures(body: &str, now: u64, prev: &mut Option<(u64, f64)>) -> Option<String> {
    let cpu = metric(body, "poselink_loop_cpu_seconds_total")
        .or_else(|| metric(body, "process_cpu_seconds_total"))?;
    let delivered = metric(body, "poselink_delivered_total").unwrap_or(0.0);
    let drops: f64 = body
        .lines()
        .filter(|l| l.starts_with("poselink_drops_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let pct = prev.map(|(t, c)| (cpu - c) / ((now - t) as f64 / 1e6) * 100.0);
    *prev = Some((now, cpu));
    Some(format!(
        "hub: loop CPU {}  delivered {delivered:.0}  dropped {drops:.0}",
        pct.map_or("–".into(), |p| format!("{p:.1} %")),
    ))
}
