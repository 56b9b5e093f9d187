//! The hub's address as the engine takes it: `ws://host[:port]/path` (port
//! 7700 by default; TLS is left to a proxy), resolved when a connection is made.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed `ws://host[:port]/path`.
pub(super) struct HubUrl {
    pub(super) host_port: String,
    pub(super) path: String,
}

impl HubUrl {
    pub(super) fn parse(url: &str) -> io::Result<HubUrl> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("hub URL {url:?}: {why}"),
            )
        };
        let rest = url.strip_prefix("ws://").ok_or_else(|| {
            bad("must start with ws:// (for TLS, put a proxy in front of the hub)")
        })?;
        let (host_port, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host_port.is_empty() {
            return Err(bad("no host"));
        }
        let host_port = if host_port
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host_port.to_string()
        } else {
            format!("{host_port}:7700")
        };
        Ok(HubUrl {
            host_port,
            path: path.to_string(),
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
        assert!(HubUrl::parse("wss://x/").is_err());
        assert!(HubUrl::parse("http://x/").is_err());
    }
}
