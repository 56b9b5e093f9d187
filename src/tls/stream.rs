//! A socket as the drivers use it: plain, or with a [`TlsLink`] between it and
//! the bytes above. Both are non-blocking `Read + Write` (`WouldBlock` when
//! the socket has nothing or takes nothing), so the WebSocket handshake, the
//! hub's reads and `writev`s and the engine's reads and writes are the same
//! code with TLS on or off. With TLS, reading also moves the handshake on and
//! sends what it answers; writing seals into the link's transmit buffer and
//! sends what the socket takes: [`Stream::pending`] says whether sealed bytes
//! still wait (keep WRITABLE interest until they are gone).

use std::io::{self, IoSlice, Read, Write};

use super::{TlsError, TlsLink};

/// A plain or TLS stream over `S`.
pub enum Stream<S> {
    /// Bytes as they are.
    Plain(S),
    /// TLS over the socket.
    Tls(Box<(S, TlsLink)>),
}

impl<S> core::fmt::Debug for Stream<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Stream::Plain(_) => f.write_str("Stream::Plain"),
            Stream::Tls(b) => write!(f, "Stream::Tls({:?})", b.1),
        }
    }
}

impl<S: Read + Write> Stream<S> {
    /// A TLS stream over `sock`.
    pub fn tls(sock: S, link: TlsLink) -> Stream<S> {
        Stream::Tls(Box::new((sock, link)))
    }

    /// The socket and the TLS state apart (to move a connection set up on a
    /// blocking socket onto a non-blocking one: [`from_parts`](Self::from_parts)).
    pub fn into_parts(self) -> (S, Option<TlsLink>) {
        match self {
            Stream::Plain(s) => (s, None),
            Stream::Tls(b) => {
                let (s, l) = *b;
                (s, Some(l))
            }
        }
    }

    /// A stream from a socket and, for TLS, its established link.
    pub fn from_parts(sock: S, link: Option<TlsLink>) -> Stream<S> {
        match link {
            None => Stream::Plain(sock),
            Some(l) => Stream::tls(sock, l),
        }
    }

    /// The socket.
    pub fn socket(&mut self) -> &mut S {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(b) => &mut b.0,
        }
    }

    /// The socket, shared.
    pub fn socket_ref(&self) -> &S {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(b) => &b.0,
        }
    }

    /// TLS is on.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Sealed bytes wait for the socket.
    pub fn pending(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(b) => !b.1.pending().is_empty(),
        }
    }

    /// The TLS handshake is still running.
    pub fn handshaking(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(b) => b.1.is_handshaking(),
        }
    }

    /// Sends what is sealed, until the socket takes no more; `Ok` when it
    /// would block (see [`pending`](Self::pending)).
    pub fn send_pending(&mut self) -> io::Result<()> {
        let Stream::Tls(b) = self else {
            return Ok(());
        };
        let (sock, link) = &mut **b;
        send(sock, link)
    }

    /// Queues close_notify and sends what it can.
    pub fn close_tls(&mut self) {
        if let Stream::Tls(b) = self {
            b.1.close();
            let _ = self.send_pending();
        }
    }
}

fn send<S: Write>(sock: &mut S, link: &mut TlsLink) -> io::Result<()> {
    while !link.pending().is_empty() {
        match sock.write(link.pending()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => link.sent(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads ciphertext from the socket and moves the link on until plaintext is
/// there, the peer closed, or the socket would block.
fn pump<S: Read + Write>(sock: &mut S, link: &mut TlsLink) -> io::Result<()> {
    loop {
        link.process().map_err(io::Error::from)?;
        send(sock, link)?;
        if !link.plaintext().is_empty() || link.peer_closed() {
            return Ok(());
        }
        let space = link.read_space();
        if space.is_empty() {
            // A whole record waits and could not be opened: cannot happen
            // after `process`; refuse rather than spin.
            return Err(TlsError::RecordOverflow.into());
        }
        match sock.read(space) {
            Ok(0) if link.mid_record() || link.is_handshaking() => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection ended in the middle of a TLS record or handshake",
                ));
            }
            Ok(0) => return Ok(()),
            Ok(n) => link.received(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Moves the TLS handshake on until it is done (`Ok`), or the socket would
/// block. Reads no further than the handshake: on a blocking socket, the peer
/// may say nothing more until we write.
fn handshake<S: Read + Write>(sock: &mut S, link: &mut TlsLink) -> io::Result<()> {
    loop {
        link.process().map_err(io::Error::from)?;
        send(sock, link)?;
        if !link.is_handshaking() {
            return Ok(());
        }
        let space = link.read_space();
        match sock.read(space) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection ended during the TLS handshake",
                ));
            }
            Ok(n) => link.received(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl<S: Read + Write> Read for Stream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Stream::Tls(b) = self else {
            let Stream::Plain(s) = self else {
                unreachable!()
            };
            return s.read(buf);
        };
        let (sock, link) = &mut **b;
        if link.plaintext().is_empty() {
            pump(sock, link)?;
        }
        // Plaintext, or none: the peer closed or the socket ended cleanly.
        let p = link.plaintext();
        let n = p.len().min(buf.len());
        buf[..n].copy_from_slice(&p[..n]);
        link.consume(n);
        Ok(n)
    }
}

impl<S: Read + Write> Write for Stream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let Stream::Tls(b) = self else {
            let Stream::Plain(s) = self else {
                unreachable!()
            };
            return s.write_vectored(bufs);
        };
        let (sock, link) = &mut **b;
        if link.is_handshaking() {
            // The WebSocket handshake writes first: move TLS on meanwhile
            // (`WouldBlock` until it is done).
            handshake(sock, link)?;
        }
        send(sock, link)?;
        // IoSlice derefs to [u8]; a fixed array of them keeps this
        // allocation-free (the hub lends at most 32 slices).
        let mut slices: [&[u8]; 64] = [&[]; 64];
        let n = bufs.len().min(slices.len());
        for (d, s) in slices.iter_mut().zip(bufs) {
            *d = s;
        }
        let taken = link.encrypt(&slices[..n]);
        send(sock, link)?;
        if taken == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(b) => {
                let (sock, link) = &mut **b;
                send(sock, link)?;
                if link.pending().is_empty() {
                    Ok(())
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                }
            }
        }
    }
}
