//! TLS links driven in memory: against each other and against rustls' own
//! buffered connections (the reference implementation of the record layer
//! we replace), through key updates, close_notify, corruption and the
//! certificate refusals an engine must name.

use std::io::{Read, Write};

use super::*;

/// (ca PEM, leaf chain PEM, leaf key PEM), valid `days_from..days_to`.
fn ca_and_leaf(names: &[&str], days_from: i64, days_to: i64) -> (String, String, String) {
    let p = private_ca(names, days_from, days_to).unwrap();
    (p.ca_pem, p.cert_pem, p.key_pem)
}

/// Moves what `from` has to send into `to`; true if anything moved.
fn transfer(from: &mut TlsLink, to: &mut TlsLink) -> Result<bool, TlsError> {
    from.process()?;
    let out = from.pending().to_vec();
    from.sent(out.len());
    let mut at = 0;
    while at < out.len() {
        let space = to.read_space();
        let n = space.len().min(out.len() - at);
        assert!(n > 0, "the receiver's buffer is stuck");
        space[..n].copy_from_slice(&out[at..at + n]);
        to.received(n);
        at += n;
        to.process()?;
    }
    Ok(!out.is_empty())
}

/// Moves bytes between two links until neither has anything to send.
fn exchange(a: &mut TlsLink, b: &mut TlsLink) -> Result<(), TlsError> {
    for _ in 0..20 {
        let moved = transfer(a, b)? | transfer(b, a)?;
        if !moved {
            return Ok(());
        }
    }
    Ok(())
}

fn pair() -> (TlsLink, TlsLink) {
    let (cert, key) = self_signed(&["hub.test".to_string()]).unwrap();
    let server = server_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let client = client_config_from_pem(Some(cert.as_bytes()), false).unwrap();
    (
        TlsLink::client(client, "hub.test").unwrap(),
        TlsLink::server(server).unwrap(),
    )
}

/// Sends `data` from `a` to `b` through the links, reading it back whole.
fn send_through(a: &mut TlsLink, b: &mut TlsLink, data: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut at = 0;
    for _ in 0..10_000 {
        if at < data.len() {
            at += a.encrypt(&[&data[at..]]);
        }
        let out = a.pending().to_vec();
        a.sent(out.len());
        let mut i = 0;
        while i < out.len() {
            let space = b.read_space();
            let n = space.len().min(out.len() - i);
            space[..n].copy_from_slice(&out[i..i + n]);
            b.received(n);
            i += n;
            loop {
                b.process().unwrap();
                let p = b.plaintext();
                if p.is_empty() {
                    break;
                }
                got.extend_from_slice(p);
                let n = p.len();
                b.consume(n);
            }
        }
        if at == data.len() && got.len() == data.len() {
            break;
        }
    }
    got
}

#[test]
fn two_links_shake_hands_and_carry_data_both_ways_in_many_records() {
    let (mut c, mut s) = pair();
    exchange(&mut c, &mut s).unwrap();
    assert!(!c.is_handshaking() && !s.is_handshaking());
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(send_through(&mut c, &mut s, &big), big);
    assert_eq!(send_through(&mut s, &mut c, &big[..5000]), &big[..5000]);
}

#[test]
fn gathered_slices_are_sealed_in_order() {
    let (mut c, mut s) = pair();
    exchange(&mut c, &mut s).unwrap();
    let n = c.encrypt(&[b"abc", b"", b"defgh", b"i"]);
    assert_eq!(n, 9);
    let out = c.pending().to_vec();
    c.sent(out.len());
    s.read_space()[..out.len()].copy_from_slice(&out);
    s.received(out.len());
    s.process().unwrap();
    assert_eq!(s.plaintext(), b"abcdefghi");
}

#[test]
fn key_updates_both_ways_keep_the_stream_readable() {
    let (mut c, mut s) = pair();
    exchange(&mut c, &mut s).unwrap();
    c.set_tx_key_limit(3);
    s.set_tx_key_limit(5);
    let data: Vec<u8> = (0..50).collect();
    for round in 0..20 {
        assert_eq!(
            send_through(&mut c, &mut s, &data),
            data,
            "client round {round}"
        );
        assert_eq!(
            send_through(&mut s, &mut c, &data),
            data,
            "server round {round}"
        );
    }
}

#[test]
fn close_notify_ends_the_peers_plaintext() {
    let (mut c, mut s) = pair();
    exchange(&mut c, &mut s).unwrap();
    c.close();
    assert_eq!(c.encrypt(&[b"late"]), 0, "nothing after close_notify");
    exchange(&mut c, &mut s).unwrap();
    assert!(s.peer_closed());
}

#[test]
fn a_corrupted_record_fails_the_link() {
    let (mut c, mut s) = pair();
    exchange(&mut c, &mut s).unwrap();
    c.encrypt(&[b"hello hub"]);
    let mut out = c.pending().to_vec();
    out[8] ^= 1;
    s.read_space()[..out.len()].copy_from_slice(&out);
    s.received(out.len());
    let e = s.process().unwrap_err();
    assert!(
        matches!(e, TlsError::Record(record::RecordError::BadRecordMac)),
        "{e:?}"
    );
    assert!(e.to_string().contains("corrupted"), "{e}");
}

#[test]
fn an_oversized_record_header_is_refused_before_buffering() {
    let (mut c, mut s) = pair();
    exchange(&mut c, &mut s).unwrap();
    let rec = [23u8, 3, 3, 0xff, 0xff];
    s.read_space()[..5].copy_from_slice(&rec);
    s.received(5);
    assert!(matches!(s.process(), Err(TlsError::RecordOverflow)));
}

/// rustls' buffered connection on the other side: the reference record layer.
fn rustls_roundtrip<C, D>(ours: &mut TlsLink, theirs: &mut C)
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
{
    // Handshake.
    for _ in 0..20 {
        ours.process().unwrap();
        let out = ours.pending().to_vec();
        ours.sent(out.len());
        if !out.is_empty() {
            theirs.read_tls(&mut &out[..]).unwrap();
            theirs.process_new_packets().unwrap();
        }
        let mut back = Vec::new();
        while theirs.wants_write() {
            theirs.write_tls(&mut back).unwrap();
        }
        if !back.is_empty() {
            ours.read_space()[..back.len()].copy_from_slice(&back);
            ours.received(back.len());
        }
        if !ours.is_handshaking() && !theirs.is_handshaking() && out.is_empty() && back.is_empty() {
            break;
        }
    }
    assert!(!ours.is_handshaking() && !theirs.is_handshaking());
    // Ours → theirs, 40 000 bytes.
    let data: Vec<u8> = (0..40_000u32).map(|i| (i % 253) as u8).collect();
    let mut at = 0;
    let mut got = Vec::new();
    for _ in 0..100 {
        at += ours.encrypt(&[&data[at..]]);
        let out = ours.pending().to_vec();
        ours.sent(out.len());
        let mut rd = &out[..];
        while !rd.is_empty() {
            theirs.read_tls(&mut rd).unwrap();
            theirs.process_new_packets().unwrap();
            let mut buf = [0u8; 65536];
            while let Ok(n) = theirs.reader().read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        }
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got, data);
    // Theirs → ours, with a key update from them in the middle.
    theirs.writer().write_all(b"first").unwrap();
    theirs.refresh_traffic_keys().unwrap();
    theirs.writer().write_all(b" second").unwrap();
    let mut back = Vec::new();
    while theirs.wants_write() {
        theirs.write_tls(&mut back).unwrap();
    }
    let mut got = Vec::new();
    let mut i = 0;
    while i < back.len() {
        let space = ours.read_space();
        let n = space.len().min(back.len() - i);
        space[..n].copy_from_slice(&back[i..i + n]);
        ours.received(n);
        i += n;
        loop {
            ours.process().unwrap();
            let p = ours.plaintext().to_vec();
            if p.is_empty() {
                break;
            }
            ours.consume(p.len());
            got.extend_from_slice(&p);
        }
    }
    assert_eq!(got, b"first second");
    // Ours after its own key update still opens on their side.
    ours.set_tx_key_limit(0);
    assert_eq!(ours.encrypt(&[b"after update"]), 12);
    let out = ours.pending().to_vec();
    ours.sent(out.len());
    theirs.read_tls(&mut &out[..]).unwrap();
    theirs.process_new_packets().unwrap();
    let mut buf = [0u8; 64];
    let n = theirs.reader().read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after update");
}

#[test]
fn our_client_interoperates_with_the_rustls_server() {
    let (cert, key) = self_signed(&["hub.test".to_string()]).unwrap();
    let server = server_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let client = client_config_from_pem(Some(cert.as_bytes()), false).unwrap();
    let mut ours = TlsLink::client(client, "hub.test").unwrap();
    let mut theirs = rustls::ServerConnection::new(server).unwrap();
    rustls_roundtrip(&mut ours, &mut theirs);
}

#[test]
fn our_server_interoperates_with_the_rustls_client() {
    let (cert, key) = self_signed(&["hub.test".to_string()]).unwrap();
    let server = server_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let client = client_config_from_pem(Some(cert.as_bytes()), false).unwrap();
    let mut ours = TlsLink::server(server).unwrap();
    let name = rustls::pki_types::ServerName::try_from("hub.test").unwrap();
    let mut theirs = rustls::ClientConnection::new(client, name).unwrap();
    // The client speaks first.
    let mut hello = Vec::new();
    theirs.write_tls(&mut hello).unwrap();
    ours.read_space()[..hello.len()].copy_from_slice(&hello);
    ours.received(hello.len());
    rustls_roundtrip(&mut ours, &mut theirs);
}

/// The error a client gets from a server with this chain and key.
fn client_error(ca: Option<&str>, chain: &str, key: &str, host: &str) -> TlsError {
    let server = server_config_from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
    let client = client_config_from_pem(ca.map(str::as_bytes), ca.is_none()).unwrap();
    let mut c = TlsLink::client(client, host).unwrap();
    let mut s = TlsLink::server(server).unwrap();
    exchange(&mut c, &mut s).unwrap_err()
}

#[test]
fn an_untrusted_ca_a_wrong_name_and_an_expired_certificate_are_named() {
    let (ca, chain, key) = ca_and_leaf(&["hub.test"], -1, 30);
    let (other_ca, _, _) = ca_and_leaf(&["hub.test"], -1, 30);
    let e = client_error(Some(&other_ca), &chain, &key, "hub.test").to_string();
    assert!(e.contains("unknown issuer") && e.contains("ca_file"), "{e}");
    let e = client_error(Some(&ca), &chain, &key, "other.test").to_string();
    assert!(e.contains("not valid for the host name"), "{e}");
    let (ca, chain, key) = ca_and_leaf(&["hub.test"], -30, -1);
    let e = client_error(Some(&ca), &chain, &key, "hub.test").to_string();
    assert!(e.contains("expired"), "{e}");
    // And the right CA, name and dates work.
    let (ca, chain, key) = ca_and_leaf(&["hub.test"], -1, 30);
    let server = server_config_from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
    let client = client_config_from_pem(Some(ca.as_bytes()), false).unwrap();
    let mut c = TlsLink::client(client, "hub.test").unwrap();
    let mut s = TlsLink::server(server).unwrap();
    exchange(&mut c, &mut s).unwrap();
    assert!(!c.is_handshaking() && !s.is_handshaking());
}

#[test]
fn plain_bytes_to_a_tls_server_are_refused() {
    let (cert, key) = self_signed(&["hub.test".to_string()]).unwrap();
    let server = server_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let mut s = TlsLink::server(server).unwrap();
    let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    s.read_space()[..req.len()].copy_from_slice(req);
    s.received(req.len());
    assert!(s.process().is_err());
}

#[test]
fn bad_configuration_files_are_worded() {
    let e = server_config_from_pem(b"not pem", b"nor this")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no certificate"), "{e}");
    let (cert, _) = self_signed(&["a".to_string()]).unwrap();
    let (_, other_key) = self_signed(&["a".to_string()]).unwrap();
    let e = server_config_from_pem(cert.as_bytes(), b"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("private key"), "{e}");
    let e = server_config_from_pem(cert.as_bytes(), other_key.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not go together"), "{e}");
    let e = client_config_from_pem(Some(b"junk"), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no certificate"), "{e}");
}
