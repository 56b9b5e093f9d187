//! A blocking protocol client for the hub's socket tests: tungstenite's client
//! over a real TCP connection to 127.0.0.1, the protocol's own encoders, and
//! receive calls bounded in time.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use poselink::hub::{Hub, HubConfig, HubHandle, HubReport};
use poselink::proto::{
    Compressor, EncoderConfig, Header, Hello, Join, Kind, Message, Packet, PoseEncoder, PoseFrame,
    Role, encode_control,
};
use tungstenite::protocol::WebSocket;
use tungstenite::{Message as WsMessage, client};

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Certificate files made for one test: a private CA and a server
/// certificate it signed, in a directory of their own.
pub struct TlsFiles {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA's certificate file (an engine's `ca_file`).
    pub ca_file: PathBuf,
    pub ca_pem: String,
    /// The server key's SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
}

impl TlsFiles {
    /// A CA and a certificate for `names`, valid from `from` to `to` days from now.
    pub fn make(tag: &str, names: &[&str], from: i64, to: i64) -> TlsFiles {
        let dir = std::env::temp_dir().join(format!(
            "poselink-tls-{}-{tag}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = poselink::tls::private_ca(names, from, to).unwrap();
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            ca_file: dir.join("ca.pem"),
            ca_pem: ca.ca_pem.clone(),
            spki_der: ca.spki_der.clone(),
            dir,
        };
        std::fs::write(&files.cert, &ca.cert_pem).unwrap();
        std::fs::write(&files.key, &ca.key_pem).unwrap();
        std::fs::write(&files.ca_file, &ca.ca_pem).unwrap();
        files
    }

    /// A certificate for 127.0.0.1 and localhost, valid now.
    pub fn local(tag: &str) -> TlsFiles {
        TlsFiles::make(tag, &["127.0.0.1", "localhost"], -1, 30)
    }

    /// `cfg` serving TLS with these files.
    pub fn on(&self, cfg: HubConfig) -> HubConfig {
        HubConfig {
            tls_cert: Some(self.cert.to_string_lossy().into_owned()),
            tls_key: Some(self.key.to_string_lossy().into_owned()),
            ..cfg
        }
    }

    /// The engine's `ca_file` setting.
    pub fn ca(&self) -> Option<String> {
        Some(self.ca_file.to_string_lossy().into_owned())
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A test socket: plain TCP, or rustls' client over it.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    /// A TCP connection to `addr`, with TLS trusting `ca_pem` if given (the
    /// server name is 127.0.0.1); the TLS handshake completes here.
    pub fn open(addr: SocketAddr, ca_pem: Option<&str>) -> Conn {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_nodelay(true).unwrap();
        let Some(pem) = ca_pem else {
            return Conn::Plain(tcp);
        };
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let cfg = poselink::tls::client_config_from_pem(Some(pem.as_bytes()), false).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(cfg, name).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).expect("TLS handshake");
        }
        Conn::Tls(Box::new(s))
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// A hub on a free loopback port, stopped (and joined) on drop.
pub struct TestHub {
    pub addr: SocketAddr,
    pub handle: HubHandle,
    /// For a TLS hub: the CA its clients trust.
    pub ca_pem: Option<String>,
    join: Option<std::thread::JoinHandle<std::io::Result<HubReport>>>,
}

impl TestHub {
    pub fn start(cfg: HubConfig) -> TestHub {
        let _ = env_logger::builder().is_test(true).try_init();
        let (handle, addr, join) = Hub::spawn(cfg).expect("hub starts");
        TestHub {
            addr,
            handle,
            ca_pem: None,
            join: Some(join),
        }
    }

    /// A hub serving TLS with `files`.
    pub fn start_tls(cfg: HubConfig, files: &TlsFiles) -> TestHub {
        let mut hub = TestHub::start(files.on(cfg));
        hub.ca_pem = Some(files.ca_pem.clone());
        hub
    }

    pub fn dev() -> TestHub {
        TestHub::start(HubConfig::local_dev())
    }

    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}/", self.addr)
    }

    /// Stops the hub and returns its report.
    pub fn stop(mut self) -> HubReport {
        self.handle.shutdown();
        self.join.take().unwrap().join().unwrap().unwrap()
    }

    /// `GET path` over HTTP (HTTPS for a TLS hub); (status, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get_at(self.addr, self.ca_pem.as_deref(), path)
    }

    /// The value of one metric line (`name` with its labels, exactly as rendered).
    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.http_get("/metrics");
        metric_in(&body, name).unwrap_or_else(|| panic!("metric {name} not found in:\n{body}"))
    }
}

/// `GET path` of the hub at `addr` (HTTPS with `ca_pem`); (status, body).
pub fn http_get_at(addr: SocketAddr, ca_pem: Option<&str>, path: &str) -> (u16, String) {
    let mut s = Conn::open(addr, ca_pem);
    s.tcp()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of one metric line (`name` with its labels, exactly as rendered)
/// in a `/metrics` body; `None` if absent or not a number.
pub fn metric_in(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(j) = self.join.take() {
            self.handle.shutdown();
            let _ = j.join();
        }
    }
}

/// A received protocol message (owned bytes).
#[derive(Clone, Debug)]
pub struct Got {
    pub bytes: Vec<u8>,
}

impl Got {
    pub fn header(&self) -> Header {
        Packet::new_checked(&self.bytes[..])
            .expect("the hub sent a valid message")
            .header()
    }

    pub fn kind(&self) -> Kind {
        self.header().kind
    }

    /// Parses and hands the message to `f`.
    pub fn with<R>(&self, f: impl FnOnce(Message<'_>) -> R) -> R {
        let p = Packet::new_checked(&self.bytes[..]).unwrap();
        let mut scratch = vec![0u8; 70_000];
        f(Message::parse(&p, &mut scratch).expect("the hub sent a valid message"))
    }

    /// The error code and reason, if this is an error message.
    pub fn error(&self) -> Option<(u16, String)> {
        self.with(|m| match m {
            Message::Error(e) => Some((e.code.0, e.reason.to_string())),
            _ => None,
        })
    }
}

pub struct Client {
    pub ws: WebSocket<Conn>,
    pub member: u16,
    pub seq: u32,
    pub closed: Option<(u16, String)>,
}

impl Client {
    /// Connects and upgrades (no hello yet).
    pub fn connect(addr: SocketAddr) -> Client {
        Client::connect_to(addr, None)
    }

    /// Connects (over TLS trusting `ca_pem`, if given) and upgrades.
    pub fn connect_to(addr: SocketAddr, ca_pem: Option<&str>) -> Client {
        let stream = Conn::open(addr, ca_pem);
        stream
            .tcp()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let (ws, _) = client(format!("ws://{addr}/"), stream).expect("upgrade");
        Client {
            ws,
            member: 0,
            seq: 0,
            closed: None,
        }
    }

    /// Connects and says hello with `token`; panics unless welcomed.
    pub fn session(addr: SocketAddr, token: &str) -> Client {
        let mut c = Client::connect(addr);
        c.hello(token).expect("welcome");
        c
    }

    /// A session with `hub`, over TLS when it serves TLS.
    pub fn session_with(hub: &TestHub, token: &str) -> Client {
        let mut c = Client::connect_to(hub.addr, hub.ca_pem.as_deref());
        c.hello(token).expect("welcome");
        c
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.ws
            .send(WsMessage::Binary(bytes.to_vec().into()))
            .expect("send");
    }

    pub fn send(&mut self, room: u16, msg: &Message<'_>) {
        let mut buf = vec![0u8; 70_000];
        self.seq += 1;
        let h = Header::new(msg.kind(), room, self.member, self.seq, 0);
        let n = encode_control(&h, msg, &mut buf).expect("encode");
        self.send_bytes(&buf[..n]);
    }

    /// Sends the hello; Ok(member) on welcome, Err(code, reason) on an error.
    pub fn hello(&mut self, token: &str) -> Result<u16, (u16, String)> {
        let hello = Message::Hello(Hello {
            minor: 0,
            token,
            resume: 0,
            client: "test",
            stream: 0,
        });
        self.send(0, &hello);
        let got = self.recv_until(Duration::from_secs(5), |g| {
            matches!(g.kind(), Kind::Welcome | Kind::Error)
        });
        let got = got.ok_or((0, "no answer to the hello".to_string()))?;
        if let Some(e) = got.error() {
            return Err(e);
        }
        self.member = got.with(|m| match m {
            Message::Welcome(w) => w.member,
            _ => unreachable!(),
        });
        Ok(self.member)
    }

    /// Joins a room; Ok(handle) on the snapshot, Err(code, reason) on an error.
    pub fn join(&mut self, room: &str, role: Role) -> Result<u16, (u16, String)> {
        self.send(0, &Message::Join(Join { room, role }));
        let got = self
            .recv_until(Duration::from_secs(5), |g| {
                matches!(g.kind(), Kind::RoomSnapshot | Kind::Error)
            })
            .ok_or((0, "no answer to the join".to_string()))?;
        if let Some(e) = got.error() {
            return Err(e);
        }
        Ok(got.header().room)
    }

    /// The next protocol message within `timeout`, or None (also on close).
    pub fn recv(&mut self, timeout: Duration) -> Option<Got> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(WsMessage::Binary(b)) => return Some(Got { bytes: b.to_vec() }),
                Ok(WsMessage::Close(f)) => {
                    self.closed = Some(
                        f.map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((1005, String::new())),
                    );
                    return None;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    if self.closed.is_none() {
                        self.closed = Some((1006, "connection lost".into()));
                    }
                    return None;
                }
            }
        }
        None
    }

    /// Receives until `pred` holds (skipping others), within `timeout`.
    pub fn recv_until(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Got) -> bool,
    ) -> Option<Got> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let g = self.recv(left)?;
            if pred(&g) {
                return Some(g);
            }
        }
    }

    /// Waits for the hub's close frame; returns its (code, reason).
    pub fn expect_close(&mut self, timeout: Duration) -> (u16, String) {
        let deadline = Instant::now() + timeout;
        while self.closed.is_none() && Instant::now() < deadline {
            let _ = self.recv(Duration::from_millis(100));
        }
        self.closed.clone().expect("the hub closed the connection")
    }
}

/// A pose stream for a publisher: the synthetic skeleton through the real encoder.
pub struct PoseStream {
    pub encoder: PoseEncoder,
    pub source: poselink_hal::SyntheticPose,
    pub seq: u32,
    pub buf: Vec<u8>,
}

impl PoseStream {
    pub fn new(seed: u64) -> PoseStream {
        PoseStream {
            encoder: PoseEncoder::new(EncoderConfig::default()),
            source: poselink_hal::SyntheticPose::new(poselink_hal::SyntheticConfig {
                seed,
                ..Default::default()
            }),
            seq: 0,
            buf: vec![0u8; 4096],
        }
    }

    /// Encodes the next frame for `room` from `sender`; returns the message.
    pub fn next(&mut self, room: u16, sender: u16) -> &[u8] {
        use poselink_hal::PoseSource;
        self.seq += 1;
        let mut sample = poselink_hal::PoseSample::zeroed();
        self.source.next_pose(&mut sample).expect("synthetic pose");
        let mut f = PoseFrame::from_arrays(self.seq, 0, sample.capture_ts_us, &sample.landmarks);
        f.clamp_to_range();
        let n = self
            .encoder
            .encode(&f, room, sender, &mut self.buf)
            .expect("encode");
        &self.buf[..n]
    }
}

pub fn audio_message(room: u16, sender: u16, seq: u32) -> Vec<u8> {
    let mut chunk = poselink::proto::AudioChunk::silence(48_000, 1, 960);
    chunk.seq = seq;
    chunk.capture_ts_us = seq as u64 * 20_000;
    let mut c = Compressor::new(usize::MAX);
    let mut buf = vec![0u8; 4096];
    let n = poselink::proto::encode_audio(&chunk, room, sender, &mut c, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

pub fn token(user: &str, grants: &[(&str, Role, bool)], ttl_secs: i64) -> String {
    use poselink::token::{Claims, Grant, TokenKey};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let key = TokenKey::hs256(SECRET.as_bytes()).unwrap();
    key.mint(&Claims {
        sub: user.into(),
        exp: (now + ttl_secs).max(0) as u64,
        rooms: grants
            .iter()
            .map(|&(r, role, create)| Grant {
                room: r.into(),
                role,
                create,
            })
            .collect(),
    })
    .unwrap()
}

pub fn secured() -> HubConfig {
    HubConfig {
        dev: false,
        secret: Some(SECRET.into()),
        ..HubConfig::local_dev()
    }
}

/// Asserts that JSON landmarks (`[{x, y, z, visibility, presence}; 33]`) equal a
/// frame's within the codec's quantisation bounds.
pub fn assert_close(json_lm: &serde_json::Value, f: &PoseFrame) {
    use poselink::proto::{COORD_MAX_ERROR, SCORE_MAX_ERROR};
    let arr = json_lm.as_array().expect("landmarks");
    assert_eq!(arr.len(), 33);
    for (j, l) in arr.iter().zip(&f.landmarks) {
        let g = |k: &str| j[k].as_f64().unwrap() as f32;
        for (got, want, bound) in [
            (g("x"), l.x, COORD_MAX_ERROR),
            (g("y"), l.y, COORD_MAX_ERROR),
            (g("z"), l.z, COORD_MAX_ERROR),
            (g("visibility"), l.visibility, SCORE_MAX_ERROR),
            (g("presence"), l.presence, SCORE_MAX_ERROR),
        ] {
            assert!(
                (got - want).abs() <= bound + 1e-6,
                "{got} vs {want} (bound {bound})"
            );
        }
    }
}

/// A TCP forwarder the test can hold shut: while `open` is false, connections are
/// accepted and closed at once (like a hub that is not there yet).
pub fn forwarder(
    upstream: SocketAddr,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for down in l.incoming().take(200) {
            let Ok(down) = down else { continue };
            if !open.load(std::sync::atomic::Ordering::Acquire) {
                continue; // dropped: closed at once
            }
            let Ok(up) = TcpStream::connect(upstream) else {
                continue;
            };
            let _ = up.set_nodelay(true);
            let _ = down.set_nodelay(true);
            for (mut from, mut to) in [
                (down.try_clone().unwrap(), up.try_clone().unwrap()),
                (up, down),
            ] {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                    let _ = from.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    addr
}

/// `poselink hub --dev --listen 127.0.0.1:0 ARGS`, its stderr as lines on a
/// channel, and the lines up to the one with its address.
pub fn spawn_hub(
    args: &[&std::ffi::OsStr],
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    Vec<String>,
) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_poselink"))
        .args(["hub", "--dev", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the hub did not log its address: {log:?}");
        };
        let done = line.contains("hub listening on ");
        log.push(line);
        if done {
            return (child, rx, log);
        }
    }
}

/// The address in the hub's "listening on" line (the last of `log`).
pub fn address(log: &[String]) -> std::net::SocketAddr {
    let line = log.last().unwrap();
    let rest = line.split("hub listening on ").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// The `poselink` binary running `hub --dev` as a process of its own on a
/// loopback port it picks ([`spawn_hub`]), its log read on a thread (the last
/// lines kept for a failure's message); killed on drop.
pub struct HubProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// The log's last lines (at most 200).
    pub log: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

impl HubProcess {
    /// Starts `poselink hub --dev --listen 127.0.0.1:0` with `args` after, and
    /// waits (up to 10 s) for the line that names its address.
    pub fn start(args: &[&str]) -> HubProcess {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let (child, lines, first) = spawn_hub(&args);
        let addr = address(&first);
        let log = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
            first,
        )));
        let keep = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            // Ends when the hub's stderr closes (it exited or was killed).
            for line in lines {
                let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
                if k.len() >= 200 {
                    k.pop_front();
                }
                k.push_back(line);
            }
        });
        HubProcess { child, addr, log }
    }

    /// The hub's resident memory now (`VmRSS` of `/proc/PID/status`), bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the hub process is running");
        poselink_hal::stats::parse_kb_field(&status, "VmRSS").expect("a VmRSS line")
    }

    /// The log's last `n` lines, for a failure's message.
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let k = self.log.lock().unwrap_or_else(|e| e.into_inner());
        k.iter().skip(k.len().saturating_sub(n)).cloned().collect()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `nats-server` on a free loopback port, the cluster tests' broker; killed
/// on drop. It must be installed (`cargo xtask setup` installs Debian's).
/// [`start_with`](Self::start_with) adds options (credentials);
/// [`start_tls`](Self::start_tls) serves TLS with a test's certificate.
pub struct NatsServer {
    pub port: u16,
    /// Options after the address and port (TLS, credentials).
    args: Vec<String>,
    /// `nats` or `tls`, for [`url`](Self::url).
    scheme: &'static str,
    child: Option<std::process::Child>,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        NatsServer::start_with(&[])
    }

    /// A server with more command-line options, e.g. `--user U --pass P` or
    /// `--auth TOKEN`.
    pub fn start_with(args: &[&str]) -> NatsServer {
        NatsServer::launch(args.iter().map(|a| a.to_string()).collect(), "nats")
    }

    /// A server that speaks TLS only, with `files`' certificate (signed by
    /// their private CA), and `args` after (e.g. `--tlsverify --tlscacert F`
    /// to require a client certificate).
    pub fn start_tls(files: &TlsFiles, args: &[&str]) -> NatsServer {
        let mut all = vec![
            "--tls".to_string(),
            "--tlscert".to_string(),
            files.cert.to_string_lossy().into_owned(),
            "--tlskey".to_string(),
            files.key.to_string_lossy().into_owned(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        NatsServer::launch(all, "tls")
    }

    fn launch(args: Vec<String>, scheme: &'static str) -> NatsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = NatsServer {
            port,
            args,
            scheme,
            child: None,
        };
        s.restart();
        s
    }

    /// `nats://127.0.0.1:PORT` (`tls://` for a TLS server).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on the same port, and waits until it takes connections.
    pub fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nats-server ({e}): install it with `cargo xtask setup` (Debian: apt-get install nats-server)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A capture app's publishing loop on a thread of its own: `total` audio
/// chunks (20 ms, 48 kHz mono, the chunk's sequence number in its first
/// sample) one every 20 ms into `room`, each followed by a pose frame of the
/// same sequence number and capture time when `with_pose`; `sent` (when
/// given) holds the last sequence number handed to the engine.
pub fn publish_every_20_ms(
    engine: poselink::engine::EngineHandle,
    room: poselink::engine::RoomId,
    total: u32,
    with_pose: bool,
    sent: Option<std::sync::Arc<std::sync::atomic::AtomicU32>>,
) -> std::thread::JoinHandle<()> {
    use poselink::engine::Priority;
    use poselink::proto::AudioChunk;
    use poselink_hal::{Clock, MonotonicClock};
    std::thread::spawn(move || {
        let clock = MonotonicClock::new();
        for seq in 1..=total {
            let mut c = AudioChunk::silence(48_000, 1, 960);
            c.seq = seq;
            c.capture_ts_us = clock.now_us();
            c.samples[0] = seq as i16;
            engine.send_audio(&c, room, Priority::NORMAL).unwrap();
            if with_pose {
                let mut f = PoseFrame::zeroed();
                f.seq = seq;
                f.capture_ts_us = c.capture_ts_us;
                engine.send_pose(&f, room, Priority::NORMAL).unwrap();
            }
            if let Some(sent) = &sent {
                sent.store(seq, std::sync::atomic::Ordering::Release);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}
