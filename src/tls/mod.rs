//! TLS for both drivers (`wss://` and `https://`): the layer between a socket
//! and the WebSocket bytes above it. rustls (with the `ring` provider; TLS 1.3
//! only) runs the handshake and verifies certificates; once a connection is
//! established its records are sealed and opened in place, in buffers sized
//! at creation, so the hub's relay and the engine's send path stay
//! allocation-free with TLS on.
//!
//! - `record`: the TLS 1.3 record layer on `ring`'s AEADs (why it is ours is
//!   said there);
//! - `link`: one connection as a sans-IO state machine ([`TlsLink`]);
//! - `stream`: [`Stream`], a socket with or without TLS, as `Read + Write`
//!   for the drivers;
//! - this file: configurations (the system's roots plus a CA file for
//!   clients; certificate and key files for servers), a self-signed
//!   certificate for tests and `poselink bench --tls` (with the `hub`
//!   feature), and the errors, each
//!   worded for the person who has to fix it.

mod link;
pub mod record;
mod stream;

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};

// The hub's memory estimate counts it.
#[cfg(feature = "hub")]
pub(crate) use link::BUFFER_BYTES;
pub use link::TlsLink;
pub use stream::Stream;

/// The one TLS protocol version spoken: 1.3 (the record layer is TLS 1.3's).
static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client's provider: ring's, without its private-key loader. The engine
/// presents no certificate of its own, so a board's build links no RSA,
/// ECDSA or Ed25519 signing code (targets/README.md, "Figures").
fn client_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::CryptoProvider {
        key_provider: &NoPrivateKeys,
        ..rustls::crypto::ring::default_provider()
    })
}

/// The key loader of a client that never signs.
#[derive(Debug)]
struct NoPrivateKeys;

impl rustls::crypto::KeyProvider for NoPrivateKeys {
    fn load_private_key(
        &self,
        _key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "this client presents no certificate: it loads no private key".into(),
        ))
    }
}

/// What went wrong with a TLS connection or configuration.
#[derive(Debug)]
pub enum TlsError {
    /// From rustls: the handshake or a certificate.
    Rustls(rustls::Error),
    /// A record could not be opened.
    Record(record::RecordError),
    /// The peer sent a fatal alert.
    Alert(rustls::AlertDescription),
    /// A record longer than TLS allows.
    RecordOverflow,
    /// A handshake message we do not take after the handshake.
    UnexpectedHandshake(u8),
    /// Our handshake flight did not fit the transmit buffer.
    HandshakeTooLarge,
    /// The host name cannot be a TLS server name.
    BadName(String),
    /// The first bytes on a TLS port are not a TLS handshake.
    NotTls,
    /// A configuration problem (files, keys, roots), worded.
    Config(String),
}

impl core::fmt::Display for TlsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use rustls::Error as E;
        match self {
            TlsError::Rustls(E::InvalidCertificate(c)) => match c {
                CertificateError::UnknownIssuer => f.write_str(
                    "the hub's certificate is not signed by a certificate authority this engine trusts (unknown issuer): for a private CA give its certificate file (ca_file / --ca-file)",
                ),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => write!(
                    f,
                    "the hub's certificate is not valid for the host name in the URL ({c:?}): connect with a name the certificate lists"
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => write!(
                    f,
                    "the hub's certificate has expired ({c:?}): the hub's operator must renew it"
                ),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    write!(
                        f,
                        "the hub's certificate is not valid yet ({c:?}): check this device's clock"
                    )
                }
                CertificateError::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => f.write_str(
                    "the hub's certificate is a CA certificate used as the server's own (CaUsedAsEndEntity): give the hub a leaf certificate (without CA:TRUE) signed by that CA, and trust the CA",
                ),
                other => write!(f, "the hub's certificate was refused: {other:?}"),
            },
            TlsError::Rustls(E::AlertReceived(a)) => {
                write!(f, "the peer refused the TLS handshake (alert {a:?})")
            }
            TlsError::Rustls(E::InvalidMessage(m)) => write!(
                f,
                "the peer does not speak TLS ({m:?}): is this a plain ws:// or http:// port?"
            ),
            TlsError::Rustls(e) => write!(f, "TLS failed: {e}"),
            TlsError::Record(e) => write!(
                f,
                "a TLS record could not be opened ({e:?}): the connection's bytes were corrupted or forged"
            ),
            TlsError::Alert(a) => write!(f, "the peer ended TLS with the alert {a:?}"),
            TlsError::RecordOverflow => f.write_str("the peer sent a TLS record longer than TLS allows"),
            TlsError::UnexpectedHandshake(t) => {
                write!(f, "the peer sent a TLS handshake message of type {t} after the handshake")
            }
            TlsError::HandshakeTooLarge => f.write_str("the TLS handshake flight did not fit its buffer"),
            TlsError::BadName(n) => write!(f, "{n:?} cannot be a TLS server name"),
            TlsError::NotTls => f.write_str(
                "these bytes are not a TLS handshake: this port speaks TLS (use https:// or wss://)",
            ),
            TlsError::Config(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for std::io::Error {
    fn from(e: TlsError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// A client configuration trusting the system's root certificates
/// (`system_roots`) and the certificates of the PEM file `ca_pem`.
pub fn client_config_from_pem(
    ca_pem: Option<&[u8]>,
    system_roots: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    if system_roots {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 && ca_pem.is_none() {
            return Err(TlsError::Config(
                "no trusted root certificates found on this system: install the ca-certificates package, or give the hub's CA certificate file (ca_file / --ca-file)".into(),
            ));
        }
    }
    if let Some(pem) = ca_pem {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert =
                cert.map_err(|e| TlsError::Config(format!("the CA file is not PEM: {e}")))?;
            roots.add(cert).map_err(|e| {
                TlsError::Config(format!("a certificate in the CA file is unusable: {e}"))
            })?;
            n += 1;
        }
        if n == 0 {
            return Err(TlsError::Config(
                "the CA file holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)"
                    .into(),
            ));
        }
    }
    let mut cfg = ClientConfig::builder_with_provider(client_provider())
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.enable_secret_extraction = true;
    cfg.resumption = rustls::client::Resumption::disabled();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A client configuration: the system's roots, and the CA file at `ca_file`
/// if given.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let pem = match ca_file {
        Some(p) => Some(std::fs::read(p).map_err(|e| {
            TlsError::Config(format!("cannot read the CA file {}: {e}", p.display()))
        })?),
        None => None,
    };
    client_config_from_pem(pem.as_deref(), true)
}

/// A server configuration from a PEM certificate chain and a PEM private key.
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Config(format!("the certificate file is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Config(
            "the certificate file holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)"
                .into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::Config(format!("the key file holds no usable private key: {e}")))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError::Config(format!(
                "the certificate and the key do not go together: {e}"
            ))
        })?;
    cfg.enable_secret_extraction = true;
    // No resumption: a ticket would arrive after the handshake, and a
    // reconnecting board pays one full handshake, not a round trip more.
    cfg.send_tls13_tickets = 0;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A server configuration from a certificate chain file and a key file (PEM).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |p: &Path, what: &str| {
        std::fs::read(p).map_err(|e| {
            TlsError::Config(format!(
                "cannot read the TLS {what} file {}: {e}",
                p.display()
            ))
        })
    };
    server_config_from_pem(&read(cert, "certificate")?, &read(key, "key")?)
}

/// A private certificate authority and a server certificate it signed, PEM.
/// (With the `hub` feature: an engine-only build links no certificate maker.)
#[cfg(feature = "hub")]
#[derive(Clone, derive_more::Debug)]
pub struct PrivateCa {
    /// The CA's certificate: what clients trust (`ca_file`).
    pub ca_pem: String,
    /// The server's certificate chain (`tls_cert`).
    pub cert_pem: String,
    /// The server's private key (`tls_key`).
    #[debug("{:?}", crate::redact::text(key_pem))]
    pub key_pem: String,
    /// The server key's SubjectPublicKeyInfo (DER): what certificate pinning
    /// hashes (e.g. Chromium's `--ignore-certificate-errors-spki-list`).
    pub spki_der: Vec<u8>,
}

/// Makes a private CA (with a name of its own) and a server certificate for
/// `names` (DNS names or IP addresses) valid from `valid_from_days` to
/// `valid_to_days` days from now (negative: in the past) — for a studio
/// network without a public name, and for the tests' untrusted, expired and
/// wrongly named certificates.
#[cfg(feature = "hub")]
pub fn private_ca(
    names: &[&str],
    valid_from_days: i64,
    valid_to_days: i64,
) -> Result<PrivateCa, TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let fail = |e: rcgen::Error| TlsError::Config(format!("cannot make a certificate: {e}"));
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("poselink private CA {unique:x}"),
    );
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(fail)?;
    let mut leaf = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .map_err(fail)?;
    leaf.not_before = now + time::Duration::days(valid_from_days);
    leaf.not_after = now + time::Duration::days(valid_to_days);
    let cert = leaf.signed_by(&key, &issuer).map_err(fail)?;
    Ok(PrivateCa {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        spki_der: rcgen::PublicKeyData::subject_public_key_info(&key),
    })
}

/// A self-signed certificate for `names` and its key, both PEM.
#[cfg(feature = "hub")]
pub fn self_signed(names: &[String]) -> Result<(String, String), TlsError> {
    let c = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Config(format!("cannot make a certificate: {e}")))?;
    Ok((c.cert.pem(), c.signing_key.serialize_pem()))
}

// The tests make their certificates with `private_ca` and `self_signed`.
#[cfg(all(test, feature = "hub"))]
mod tests;
