//! One TLS connection as a sans-IO state machine: ciphertext in and out of
//! buffers it owns, plaintext in and out for the WebSocket layer above. The
//! handshake runs in rustls' unbuffered API; once it is complete the traffic
//! secrets move to the allocation-free record layer (`record`), and rustls
//! keeps only the key schedule (`KernelConnection`) for key updates.
//!
//! Both buffers are sized once, at creation, for one whole record each: the
//! receive buffer holds ciphertext and, after a record is opened in place, its
//! plaintext until the layer above has taken it; the transmit buffer holds
//! sealed records until the socket takes them.

use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::kernel::KernelConnection;
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, UnbufferedStatus};
use rustls::{ClientConfig, ServerConfig};

use super::TlsError;
use super::record::{
    self, ALERT, APPLICATION_DATA, Direction, HANDSHAKE, HEADER_LEN, MAX_CIPHERTEXT, MAX_PLAINTEXT,
    MAX_RECORD, OVERHEAD,
};

/// Receive buffer: one whole record, and a little more so that a read can
/// bring the next record's start along.
const IN_CAP: usize = MAX_RECORD + 1024;
/// Transmit buffer: one record of the largest plaintext.
const OUT_CAP: usize = MAX_PLAINTEXT + OVERHEAD + 1024;
/// The record buffers one link allocates at its start, bytes.
#[cfg(feature = "hub")]
pub(crate) const BUFFER_BYTES: usize = IN_CAP + OUT_CAP;
/// Records sealed with one key before we move to the next (TLS 1.3 key
/// update). AES-GCM's confidentiality limit is 2^24.5 full records (RFC 8446
/// §5.5); this is well below it.
const TX_KEY_LIMIT: u64 = 1 << 23;

/// TLS handshake message types after the handshake (RFC 8446 §4).
const NEW_SESSION_TICKET: u8 = 4;
const KEY_UPDATE: u8 = 24;

enum Handshake {
    Client(UnbufferedClientConnection),
    Server(UnbufferedServerConnection),
}

enum Kernel {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
}

impl Kernel {
    fn update_tx(&mut self) -> Result<Direction, TlsError> {
        let r = match self {
            Kernel::Client(k) => k.update_tx_secret(),
            Kernel::Server(k) => k.update_tx_secret(),
        };
        let (seq, s) = r.map_err(TlsError::Rustls)?;
        Direction::new(seq, &s).map_err(TlsError::Record)
    }

    fn update_rx(&mut self) -> Result<Direction, TlsError> {
        let r = match self {
            Kernel::Client(k) => k.update_rx_secret(),
            Kernel::Server(k) => k.update_rx_secret(),
        };
        let (seq, s) = r.map_err(TlsError::Rustls)?;
        Direction::new(seq, &s).map_err(TlsError::Record)
    }
}

/// An established connection's keys (boxed: a key schedule is large, and
/// made once per connection).
struct Traffic {
    tx: Direction,
    rx: Direction,
    kernel: Kernel,
}

enum State {
    Handshake(Box<Handshake>),
    Traffic(Box<Traffic>),
    /// Failed or given up: nothing more goes in or out.
    Dead,
}

/// One TLS connection, client or server side.
///
/// ```
/// use std::sync::Arc;
/// use poselink::tls::{self, TlsLink};
///
/// // A server with a self-signed certificate and a client that trusts it,
/// // joined in memory.
/// let (cert, key) = tls::self_signed(&["localhost".to_string()]).unwrap();
/// let server_cfg = tls::server_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
/// let client_cfg = tls::client_config_from_pem(Some(cert.as_bytes()), false).unwrap();
/// let mut client = TlsLink::client(client_cfg, "localhost").unwrap();
/// let mut server = TlsLink::server(server_cfg).unwrap();
/// fn transfer(from: &mut TlsLink, to: &mut TlsLink) {
///     from.process().unwrap();
///     let out = from.pending().to_vec();
///     from.sent(out.len());
///     to.read_space()[..out.len()].copy_from_slice(&out);
///     to.received(out.len());
/// }
/// for _ in 0..4 {
///     transfer(&mut client, &mut server);
///     transfer(&mut server, &mut client);
/// }
/// assert!(!client.is_handshaking() && !server.is_handshaking());
/// assert_eq!(client.encrypt(&[b"hello"]), 5);
/// let out = client.pending().to_vec();
/// server.read_space()[..out.len()].copy_from_slice(&out);
/// server.received(out.len());
/// server.process().unwrap();
/// assert_eq!(server.plaintext(), b"hello");
/// ```
pub struct TlsLink {
    state: State,
    inbuf: Box<[u8]>,
    /// Ciphertext not yet looked at: `inbuf[in_start..in_end]`.
    in_start: usize,
    in_end: usize,
    /// An opened record's plaintext not yet taken: `inbuf[plain_start..plain_end]`
    /// (before `in_start`).
    plain_start: usize,
    plain_end: usize,
    /// Application data that arrived inside the handshake (a client's first
    /// request may come with its Finished): rustls hands it over in its own
    /// buffers, copied here once.
    early: Vec<u8>,
    early_at: usize,
    outbuf: Box<[u8]>,
    out_start: usize,
    out_end: usize,
    peer_closed: bool,
    sent_close: bool,
    /// Records sealed with one key before the next (see [`TX_KEY_LIMIT`]).
    tx_key_limit: u64,
}

impl core::fmt::Debug for TlsLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsLink")
            .field("handshaking", &self.is_handshaking())
            .field("ciphertext_in", &(self.in_end - self.in_start))
            .field("ciphertext_out", &(self.out_end - self.out_start))
            .finish()
    }
}

impl TlsLink {
    fn with(state: State) -> TlsLink {
        TlsLink {
            state,
            inbuf: vec![0; IN_CAP].into_boxed_slice(),
            in_start: 0,
            in_end: 0,
            plain_start: 0,
            plain_end: 0,
            early: Vec::new(),
            early_at: 0,
            outbuf: vec![0; OUT_CAP].into_boxed_slice(),
            out_start: 0,
            out_end: 0,
            peer_closed: false,
            sent_close: false,
            tx_key_limit: TX_KEY_LIMIT,
        }
    }

    /// A client connection to `host` (the name its certificate must carry).
    pub fn client(config: Arc<ClientConfig>, host: &str) -> Result<TlsLink, TlsError> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| TlsError::BadName(host.to_string()))?;
        let conn = UnbufferedClientConnection::new(config, name).map_err(TlsError::Rustls)?;
        Ok(TlsLink::with(State::Handshake(Box::new(
            Handshake::Client(conn),
        ))))
    }

    /// A server connection.
    pub fn server(config: Arc<ServerConfig>) -> Result<TlsLink, TlsError> {
        let conn = UnbufferedServerConnection::new(config).map_err(TlsError::Rustls)?;
        Ok(TlsLink::with(State::Handshake(Box::new(
            Handshake::Server(conn),
        ))))
    }

    /// Moves to a new transmit key after `records` records (tests).
    #[cfg(test)]
    pub(crate) fn set_tx_key_limit(&mut self, records: u64) {
        self.tx_key_limit = records;
    }

    /// The handshake is not complete yet.
    pub fn is_handshaking(&self) -> bool {
        matches!(self.state, State::Handshake(_))
    }

    /// The peer sent close_notify: no more plaintext will come.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Ciphertext is waiting for more bytes to make a whole record (a
    /// connection that ends now was cut mid-record).
    pub fn mid_record(&self) -> bool {
        self.in_end > self.in_start
    }

    /// Where the next ciphertext read goes (empty only while a whole record
    /// waits to be opened, or its plaintext to be taken).
    pub fn read_space(&mut self) -> &mut [u8] {
        if self.in_end == IN_CAP && self.plain_start == self.plain_end && self.in_start > 0 {
            self.inbuf.copy_within(self.in_start..self.in_end, 0);
            self.in_end -= self.in_start;
            self.in_start = 0;
            self.plain_start = 0;
            self.plain_end = 0;
        }
        &mut self.inbuf[self.in_end..]
    }

    /// `n` bytes were read into [`read_space`](Self::read_space).
    pub fn received(&mut self, n: usize) {
        self.in_end += n;
    }

    /// Plaintext ready for the layer above.
    pub fn plaintext(&self) -> &[u8] {
        if self.early_at < self.early.len() {
            &self.early[self.early_at..]
        } else {
            &self.inbuf[self.plain_start..self.plain_end]
        }
    }

    /// The layer above took `n` bytes of [`plaintext`](Self::plaintext).
    pub fn consume(&mut self, n: usize) {
        if self.early_at < self.early.len() {
            self.early_at += n;
            if self.early_at == self.early.len() {
                self.early.clear();
                self.early_at = 0;
            }
        } else {
            self.plain_start += n;
        }
    }

    /// Sealed records waiting for the socket.
    pub fn pending(&self) -> &[u8] {
        &self.outbuf[self.out_start..self.out_end]
    }

    /// The socket took `n` bytes of [`pending`](Self::pending).
    pub fn sent(&mut self, n: usize) {
        self.out_start += n;
        if self.out_start == self.out_end {
            self.out_start = 0;
            self.out_end = 0;
        }
    }

    /// Moves the connection on with the ciphertext received so far: the
    /// handshake's next steps (their records land in [`pending`](Self::pending)),
    /// or, once it is done, the next record opened (its plaintext lands in
    /// [`plaintext`](Self::plaintext)). Call again after taking the plaintext.
    pub fn process(&mut self) -> Result<(), TlsError> {
        if matches!(self.state, State::Handshake(_)) {
            self.handshake()?;
        }
        while matches!(self.state, State::Traffic(_)) && self.plaintext().is_empty() {
            if !self.open_record()? {
                break;
            }
        }
        Ok(())
    }

    fn fail<T>(&mut self, e: TlsError) -> Result<T, TlsError> {
        self.state = State::Dead;
        Err(e)
    }

    fn handshake(&mut self) -> Result<(), TlsError> {
        loop {
            let State::Handshake(hs) = &mut self.state else {
                return Ok(());
            };
            let incoming = &mut self.inbuf[self.in_start..self.in_end];
            let out = &mut self.outbuf[self.out_end..];
            let early = &mut self.early;
            let step = match &mut **hs {
                Handshake::Client(c) => {
                    let UnbufferedStatus { discard, state } = c.process_tls_records(incoming);
                    (discard, step(state, out, early))
                }
                Handshake::Server(s) => {
                    let UnbufferedStatus { discard, state } = s.process_tls_records(incoming);
                    (discard, step(state, out, early))
                }
            };
            let (discard, mut step) = step;
            if let Ok(Step::Done) = step {
                // A server may send after its own flight; it is done (for the
                // record layer) only when the client's Finished is in.
                let handshaking = match &**hs {
                    Handshake::Client(c) => c.is_handshaking(),
                    Handshake::Server(s) => s.is_handshaking(),
                };
                if handshaking {
                    step = Ok(Step::Blocked);
                }
            }
            self.in_start += discard;
            if self.in_start == self.in_end {
                self.in_start = 0;
                self.in_end = 0;
            }
            match step {
                Err(e) => return self.fail(e),
                Ok(Step::Again) => {}
                Ok(Step::Wrote(n)) => self.out_end += n,
                Ok(Step::Blocked) => return Ok(()),
                Ok(Step::Done) => return self.start_traffic(),
                Ok(Step::Closed) => {
                    self.peer_closed = true;
                    return Ok(());
                }
            }
        }
    }

    fn start_traffic(&mut self) -> Result<(), TlsError> {
        let State::Handshake(hs) = std::mem::replace(&mut self.state, State::Dead) else {
            return Ok(());
        };
        let (secrets, kernel) = match *hs {
            Handshake::Client(c) => c
                .dangerous_into_kernel_connection()
                .map(|(s, k)| (s, Kernel::Client(k))),
            Handshake::Server(s) => s
                .dangerous_into_kernel_connection()
                .map(|(s, k)| (s, Kernel::Server(k))),
        }
        .map_err(TlsError::Rustls)?;
        let tx = Direction::new(secrets.tx.0, &secrets.tx.1).map_err(TlsError::Record)?;
        let rx = Direction::new(secrets.rx.0, &secrets.rx.1).map_err(TlsError::Record)?;
        self.state = State::Traffic(Box::new(Traffic { tx, rx, kernel }));
        Ok(())
    }

    /// Opens the next whole record, if there is one; false when more
    /// ciphertext is needed.
    fn open_record(&mut self) -> Result<bool, TlsError> {
        let buf = &self.inbuf[self.in_start..self.in_end];
        let Some(len) = record::record_len(buf) else {
            return Ok(false);
        };
        if len > HEADER_LEN + MAX_CIPHERTEXT {
            return self.fail(TlsError::RecordOverflow);
        }
        if buf.len() < len {
            return Ok(false);
        }
        let State::Traffic(t) = &mut self.state else {
            return Ok(false);
        };
        let rx = &mut t.rx;
        let start = self.in_start;
        let rec = &mut self.inbuf[start..start + len];
        let (kind, plain_len) = match rx.open(rec) {
            Ok(r) => r,
            Err(e) => return self.fail(TlsError::Record(e)),
        };
        self.in_start += len;
        match kind {
            APPLICATION_DATA => {
                self.plain_start = start + HEADER_LEN;
                self.plain_end = start + HEADER_LEN + plain_len;
            }
            HANDSHAKE => {
                let body = start + HEADER_LEN..start + HEADER_LEN + plain_len;
                self.post_handshake(body)?;
            }
            ALERT => {
                let a = &self.inbuf[start + HEADER_LEN..start + HEADER_LEN + plain_len];
                match a {
                    [_, 0] => self.peer_closed = true,
                    [_, d] => {
                        let d = *d;
                        return self.fail(TlsError::Alert(rustls::AlertDescription::from(d)));
                    }
                    _ => return self.fail(TlsError::Record(record::RecordError::Malformed)),
                }
            }
            _ => return self.fail(TlsError::Record(record::RecordError::Malformed)),
        }
        if self.in_start == self.in_end && self.plain_start == self.plain_end {
            self.in_start = 0;
            self.in_end = 0;
        }
        Ok(true)
    }

    /// Handshake messages after the handshake: session tickets (ignored: we
    /// do not resume sessions) and key updates.
    fn post_handshake(&mut self, body: core::ops::Range<usize>) -> Result<(), TlsError> {
        let mut at = body.start;
        while at < body.end {
            if body.end - at < 4 {
                return self.fail(TlsError::Record(record::RecordError::Malformed));
            }
            let m = &self.inbuf[at..body.end];
            let typ = m[0];
            let len = u32::from_be_bytes([0, m[1], m[2], m[3]]) as usize;
            if m.len() < 4 + len {
                // A message split over records: not sent by rustls or the
                // browsers for these two kinds; refused rather than buffered.
                return self.fail(TlsError::Record(record::RecordError::Malformed));
            }
            match (typ, &m[4..4 + len]) {
                (NEW_SESSION_TICKET, _) => {}
                (KEY_UPDATE, [requested]) => {
                    let requested = *requested == 1;
                    let State::Traffic(t) = &mut self.state else {
                        return Ok(());
                    };
                    let Traffic { rx, kernel, .. } = &mut **t;
                    *rx = kernel.update_rx()?;
                    if requested {
                        self.update_tx_key()?;
                    }
                }
                _ => return self.fail(TlsError::UnexpectedHandshake(typ)),
            }
            at += 4 + len;
        }
        Ok(())
    }

    /// Sends a key update (not requesting one back) and moves to the next
    /// transmit key.
    fn update_tx_key(&mut self) -> Result<(), TlsError> {
        let State::Traffic(t) = &mut self.state else {
            return Ok(());
        };
        let Traffic { tx, kernel, .. } = &mut **t;
        let at = self.out_end;
        let msg = [KEY_UPDATE, 0, 0, 1, 0];
        if self.outbuf.len() - at < msg.len() + OVERHEAD {
            // Never: the caller keeps room for a record of control bytes.
            return Err(TlsError::Record(record::RecordError::Malformed));
        }
        self.outbuf[at + HEADER_LEN..at + HEADER_LEN + msg.len()].copy_from_slice(&msg);
        self.out_end += tx.seal(&mut self.outbuf[at..], msg.len(), HANDSHAKE);
        *tx = kernel.update_tx()?;
        Ok(())
    }

    /// Seals as much of `data` (the slices in order) as the transmit buffer
    /// takes into records; returns the plaintext bytes taken (0 while the
    /// handshake runs or the buffer is full).
    pub fn encrypt(&mut self, data: &[&[u8]]) -> usize {
        let mut taken = 0;
        let mut slice = 0;
        let mut offset = 0;
        loop {
            let State::Traffic(t) = &mut self.state else {
                return taken;
            };
            let tx = &mut t.tx;
            if self.sent_close {
                return taken;
            }
            // Room for a key update record too, always.
            let room = (self.outbuf.len() - self.out_end).saturating_sub(2 * OVERHEAD + 8);
            let want = room.min(MAX_PLAINTEXT);
            if want == 0 {
                return taken;
            }
            let at = self.out_end;
            let mut len = 0;
            while len < want && slice < data.len() {
                let s = &data[slice][offset..];
                let n = s.len().min(want - len);
                self.outbuf[at + HEADER_LEN + len..at + HEADER_LEN + len + n]
                    .copy_from_slice(&s[..n]);
                len += n;
                offset += n;
                if offset == data[slice].len() {
                    slice += 1;
                    offset = 0;
                }
            }
            if len == 0 {
                return taken;
            }
            self.out_end += tx.seal(&mut self.outbuf[at..], len, APPLICATION_DATA);
            taken += len;
            if tx.seq() >= self.tx_key_limit && self.update_tx_key().is_err() {
                self.state = State::Dead;
                return taken;
            }
        }
    }

    /// Queues close_notify (once); nothing is sealed after it.
    pub fn close(&mut self) {
        let State::Traffic(t) = &mut self.state else {
            return;
        };
        let tx = &mut t.tx;
        if self.sent_close || self.outbuf.len() - self.out_end < 2 + OVERHEAD {
            return;
        }
        let at = self.out_end;
        self.outbuf[at + HEADER_LEN..at + HEADER_LEN + 2].copy_from_slice(&[1, 0]);
        self.out_end += tx.seal(&mut self.outbuf[at..], 2, ALERT);
        self.sent_close = true;
    }
}

/// What one handshake step asks for.
enum Step {
    /// Call again.
    Again,
    /// `n` bytes of handshake records were written to the transmit buffer.
    Wrote(usize),
    /// More ciphertext is needed.
    Blocked,
    /// The handshake is complete.
    Done,
    /// The peer closed during the handshake.
    Closed,
}

fn step<Data>(
    state: Result<ConnectionState<'_, '_, Data>, rustls::Error>,
    out: &mut [u8],
    early: &mut Vec<u8>,
) -> Result<Step, TlsError> {
    match state.map_err(TlsError::Rustls)? {
        ConnectionState::ReadTraffic(mut r) => {
            while let Some(rec) = r.next_record() {
                let rec = rec.map_err(TlsError::Rustls)?;
                early.extend_from_slice(rec.payload);
            }
            Ok(Step::Again)
        }
        ConnectionState::EncodeTlsData(mut e) => match e.encode(out) {
            Ok(n) => Ok(Step::Wrote(n)),
            Err(_) => Err(TlsError::HandshakeTooLarge),
        },
        // The records are in the transmit buffer; the driver sends them in
        // order before anything sealed later.
        ConnectionState::TransmitTlsData(t) => {
            t.done();
            Ok(Step::Again)
        }
        ConnectionState::BlockedHandshake => Ok(Step::Blocked),
        ConnectionState::WriteTraffic(_) => Ok(Step::Done),
        ConnectionState::PeerClosed | ConnectionState::Closed => Ok(Step::Closed),
        ConnectionState::ReadEarlyData(_) => Err(TlsError::UnexpectedHandshake(0)),
        _ => Ok(Step::Blocked),
    }
}
