//! The hub's address as the engine takes it: `ws://host[:port]/path` (port
//! 7700 by default) or `wss://host[:port]/path` (TLS; port 443 by default, as
//! a URL without a port means everywhere else), resolved when a connection is
//! made; and the list of them the engine fails over across, checked once at
//! start-up.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use super::config::MAX_HUBS;

/// A parsed `ws://host[:port]/path` or `wss://…`.
#[derive(Debug)]
pub(super) struct HubUrl {
    /// The URL as given, for the logs.
    pub(super) text: String,
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
            text: url.to_string(),
            host_port,
            host: host.to_string(),
            path: path.to_string(),
            tls,
        })
    }

    /// The comma-separated list of [`EngineConfig::hub`](super::EngineConfig::hub),
    /// in order: 1 to [`MAX_HUBS`] URLs, all `ws://` or all `wss://`, none
    /// twice.
    pub(super) fn parse_list(list: &str) -> io::Result<Vec<HubUrl>> {
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        let mut urls: Vec<HubUrl> = Vec::with_capacity(MAX_HUBS);
        for (i, text) in list.split(',').map(str::trim).enumerate() {
            if text.is_empty() {
                return Err(bad(format!(
                    "hub URL list {list:?}: entry {} is empty (give one URL, or several separated by commas)",
                    i + 1
                )));
            }
            if i == MAX_HUBS {
                return Err(bad(format!(
                    "hub URL list {list:?}: more than {MAX_HUBS} URLs"
                )));
            }
            let url = HubUrl::parse(text)?;
            if let Some(first) = urls.first()
                && first.tls != url.tls
            {
                return Err(bad(format!(
                    "hub URL list {list:?} mixes ws:// and wss://: use one scheme for every hub \
                     (a board would send in the clear after a failover)"
                )));
            }
            if urls
                .iter()
                .any(|u| u.host_port == url.host_port && u.path == url.path)
            {
                return Err(bad(format!("hub URL list {list:?} names {text:?} twice")));
            }
            urls.push(url);
        }
        Ok(urls)
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

    #[test]
    fn hub_lists() {
        let l = HubUrl::parse_list("ws://a:1/, ws://b:2/x ,ws://c").unwrap();
        let got: Vec<(&str, &str, &str)> = l
            .iter()
            .map(|u| (u.text.as_str(), u.host_port.as_str(), u.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("ws://a:1/", "a:1", "/"),
                ("ws://b:2/x", "b:2", "/x"),
                ("ws://c", "c:7700", "/")
            ]
        );
        assert_eq!(HubUrl::parse_list("wss://a/").unwrap().len(), 1);
        let err = |list: &str| HubUrl::parse_list(list).unwrap_err().to_string();
        assert!(err("").contains("entry 1 is empty"), "{}", err(""));
        assert!(err("ws://a/,").contains("entry 2 is empty"));
        assert!(err("ws://a/,,ws://b/").contains("entry 2 is empty"));
        assert!(err("ws://a/,http://b/").contains("must start with ws:// or wss://"));
        assert!(err("wss://a/,ws://b/").contains("mixes ws:// and wss://"));
        assert!(err("ws://a/,ws://a:7700/").contains("twice"));
        let eight = (0..8).map(|i| format!("ws://h{i}/")).collect::<Vec<_>>();
        assert_eq!(HubUrl::parse_list(&eight.join(",")).unwrap().len(), 8);
        let nine = (0..9).map(|i| format!("ws://h{i}/")).collect::<Vec<_>>();
        assert!(err(&nine.join(",")).contains("more than 8"));
    }
}
