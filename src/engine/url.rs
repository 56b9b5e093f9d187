//! The hub's address as the engine takes it: `ws://host[:port]/path` (port
//! 7700 by default) or `wss://host[:port]/path` (TLS; port 443 by default, as
//! a URL without a port means everywhere else), resolved when a connection is
//! made.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed `ws://host[:port]/path` or `wss://…`.
pub(super) struct HubUrl {
    pub(super) host_port: String,
    /// The host alone (the name a TLS certificate must carry).
    pub(super) host: String,
    pub(super) path: String,
    pub(super) tls: bool,
}

impl HubUrl {
    pub(super) fn parse(url: &str) -> io::Result<HubUrl> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("hub URL {url:?}: {why}"),
            )
        };
        let (rest, tls) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
            (Some(r), _) => (r, false),
            (_, Some(r)) => (r, true),
            _ => return Err(bad("must start with ws:// or wss://")),
        };
        let (host_port, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host_port.is_empty() {
            return Err(bad("no host"));
        }
        let (host, host_port) = match host_port.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, host_port.to_string()),
            _ => (
                host_port,
                format!("{host_port}:{}", if tls { 443 } else { 7700 }),
            ),
        };
        // An IPv6 literal is bracketed in a URL, not in a TLS server name.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(HubUrl {
            host_port,
            host: host.to_string(),
            path: path.to_string(),
            tls,
        })
    }

    pub(super) fn resolve(&self) -> io::Result<SocketAddr> {
        self.host_port.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} did not resolve", self.host_port),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_urls() {
        let u = HubUrl::parse("ws://example.org:9000/hub").unwrap();
        assert_eq!(
            (u.host_port.as_str(), u.path.as_str()),
            ("example.org:9000", "/hub")
        );
        let u = HubUrl::parse("ws://10.0.0.2").unwrap();
        assert_eq!(
            (u.host_port.as_str(), u.path.as_str()),
            ("10.0.0.2:7700", "/")
        );
        let u = HubUrl::parse("wss://hub.example.org/room").unwrap();
        assert_eq!(
            (
                u.host_port.as_str(),
                u.host.as_str(),
                u.path.as_str(),
                u.tls
            ),
            ("hub.example.org:443", "hub.example.org", "/room", true)
        );
        let u = HubUrl::parse("wss://[::1]:7701").unwrap();
        assert_eq!(
            (u.host_port.as_str(), u.host.as_str()),
            ("[::1]:7701", "::1")
        );
        assert!(!HubUrl::parse("ws://x/").unwrap().tls);
        assert!(HubUrl::parse("http://x/").is_err());
        assert!(HubUrl::parse("wss:///").is_err());
    }
}
