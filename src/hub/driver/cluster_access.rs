//! How a hub gets into its cluster's broker: TLS (the CA that signed the
//! broker's certificate, this hub's own certificate for a broker that checks
//! clients) and credentials (a user and password, or a token), read from their
//! files when the broker thread starts (the certificates again on SIGHUP:
//! [`BrokerCerts`]), and the failures of a connection attempt worded for the
//! operator. async-nats reports a failed attempt only by
//! its kind ("IO error" for a certificate the hub does not trust), so the TLS
//! configuration given to it verifies the broker's certificate through
//! [`Recording`], which keeps rustls' reason for the log line. The broker URL
//! is logged without the password or token it may hold ([`redacted`]).

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::hub::HubConfig;

/// What the broker thread connects with, its files read.
pub(crate) struct Access {
    /// The TLS configuration (always given: a `nats://` broker may ask for
    /// TLS in its greeting, and the reasons of a refusal are kept).
    pub tls: ClientConfig,
    /// TLS whatever the URL says (`cluster_ca_file` or a client certificate
    /// set).
    pub require_tls: bool,
    /// The credentials from the settings (none: the URL's, if any).
    pub auth: Auth,
    /// Where [`Recording`] leaves the last certificate refusal.
    pub refusal: Arc<Mutex<Option<rustls::Error>>>,
    /// The certificates `tls` reads, for a reload.
    pub certs: Arc<BrokerCerts>,
}

/// Credentials given by the settings.
pub(crate) enum Auth {
    /// None (or in the URL).
    None,
    /// `cluster_user` and its password.
    UserPassword(String, String),
    /// `cluster_token`.
    Token(String),
}

/// Reads `path` for `setting`; the error says what to check.
fn read(path: &str, setting: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        format!("cannot read {setting} {path}: {e}: check the path and the file's permissions")
    })
}

/// The broker link's certificates, which its TLS configuration reads at
/// every handshake: the verifier of the broker's certificate (the CAs of
/// `cluster_ca_file`, or the system's roots) and this hub's client
/// certificate. [`BrokerCerts::reload`] (on SIGHUP) reads the files again
/// and swaps them: the next connection to the broker uses them, the open one
/// stays as it is, and async-nats, which clones the same configuration for
/// each attempt, needs no new options. The locks are taken once per
/// handshake, never on the relay's path.
#[derive(Debug)]
pub(crate) struct BrokerCerts {
    provider: Arc<CryptoProvider>,
    verifier: RwLock<Arc<WebPkiServerVerifier>>,
    client: RwLock<Option<Arc<CertifiedKey>>>,
}

impl BrokerCerts {
    /// Reads the files `cfg` names.
    fn load(cfg: &HubConfig, provider: Arc<CryptoProvider>) -> Result<BrokerCerts, String> {
        let (verifier, client) = load_certs(cfg, &provider)?;
        Ok(BrokerCerts {
            provider,
            verifier: RwLock::new(verifier),
            client: RwLock::new(client),
        })
    }

    /// Reads the files `cfg` names again and takes them for the next
    /// connection; when one does not load, nothing changes and the error
    /// says why.
    pub fn reload(&self, cfg: &HubConfig) -> Result<(), String> {
        let (verifier, client) = load_certs(cfg, &self.provider)?;
        // (No code panics while holding these locks; a poisoned one is used
        // as it is.)
        *self
            .verifier
            .write()
            .unwrap_or_else(PoisonError::into_inner) = verifier;
        *self.client.write().unwrap_or_else(PoisonError::into_inner) = client;
        Ok(())
    }

    fn verifier(&self) -> Arc<WebPkiServerVerifier> {
        Arc::clone(&self.verifier.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn client(&self) -> Option<Arc<CertifiedKey>> {
        self.client
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesClientCert for BrokerCerts {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.client()
    }

    fn has_certs(&self) -> bool {
        self.client().is_some()
    }
}

/// The verifier of the broker's certificate, and this hub's client
/// certificate if it has one.
type Loaded = (Arc<WebPkiServerVerifier>, Option<Arc<CertifiedKey>>);

/// The verifier of the broker's certificate and this hub's client
/// certificate, from the files `cfg` names; the error names the setting and
/// says what to do.
fn load_certs(cfg: &HubConfig, provider: &Arc<CryptoProvider>) -> Result<Loaded, String> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = &cfg.cluster_ca_file {
        let pem = read(ca, "cluster_ca_file")?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                format!("cluster_ca_file {ca} is not PEM ({e}): give the CA certificate that signed the broker's, PEM-encoded")
            })?;
            roots.add(cert).map_err(|e| {
                format!("cluster_ca_file {ca} holds a certificate that cannot be a trust anchor ({e}): give the CA's certificate, not the broker's key or a damaged file")
            })?;
        }
        if roots.is_empty() {
            return Err(format!(
                "cluster_ca_file {ca} holds no certificate (expected \"BEGIN CERTIFICATE\" blocks): give the PEM of the CA that signed the broker's certificate"
            ));
        }
    } else {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
    }
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
            .build()
            .map_err(|e| format!("cannot build the broker's certificate verifier: {e}"))?;
    let client = match (&cfg.cluster_cert_file, &cfg.cluster_key_file) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_slice_iter(&read(cert, "cluster_cert_file")?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cluster_cert_file {cert} is not PEM ({e}): give this hub's certificate chain, PEM, leaf first"))?;
            if certs.is_empty() {
                return Err(format!(
                    "cluster_cert_file {cert} holds no certificate (expected \"BEGIN CERTIFICATE\" blocks)"
                ));
            }
            let key_der = PrivateKeyDer::from_pem_slice(&read(key, "cluster_key_file")?)
                .map_err(|e| format!("cluster_key_file {key} holds no usable private key ({e}): give the PEM key (PKCS#8, PKCS#1 or SEC1) of cluster_cert_file"))?;
            let certified = CertifiedKey::from_der(certs, key_der, provider).map_err(|e| {
                format!("cluster_cert_file and cluster_key_file do not go together ({e}): give the key of that certificate")
            })?;
            Some(Arc::new(certified))
        }
        _ => None,
    };
    Ok((verifier, client))
}

/// Reads every file the cluster settings name and builds the TLS
/// configuration; the error names the setting and says what to do.
pub(crate) fn prepare(cfg: &HubConfig) -> Result<Access, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = Arc::new(BrokerCerts::load(cfg, Arc::clone(&provider))?);
    let refusal = Arc::new(Mutex::new(None));
    let verifier = Arc::new(Recording {
        certs: Arc::clone(&certs),
        refusal: Arc::clone(&refusal),
    });
    let mut tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS for the broker: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesClientCert>);
    // No session resumption: a resumed session skips both certificates, so
    // a CA or client certificate reloaded on SIGHUP would wait for the
    // ticket's end. The broker link reconnects seldom; a full handshake is
    // a millisecond.
    tls.resumption = Resumption::disabled();
    let secret = |inline: &Option<String>, file: &Option<String>, setting: &str| {
        Ok::<_, String>(match (inline, file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(path)) => {
                let text = String::from_utf8(read(path, setting)?)
                    .map_err(|_| format!("{setting} {path} is not UTF-8 text"))?;
                let text = text.trim();
                if text.is_empty() {
                    return Err(format!("{setting} {path} is empty"));
                }
                Some(text.to_string())
            }
            (None, None) => None,
        })
    };
    let password = secret(
        &cfg.cluster_password,
        &cfg.cluster_password_file,
        "cluster_password_file",
    )?;
    let token = secret(
        &cfg.cluster_token,
        &cfg.cluster_token_file,
        "cluster_token_file",
    )?;
    let auth = match (&cfg.cluster_user, password, token) {
        (Some(user), Some(pass), _) => Auth::UserPassword(user.clone(), pass),
        (_, _, Some(token)) => Auth::Token(token),
        _ => Auth::None,
    };
    Ok(Access {
        tls,
        require_tls: cfg.cluster_ca_file.is_some() || cfg.cluster_cert_file.is_some(),
        auth,
        refusal,
        certs,
    })
}

/// rustls' verifier of the broker's certificate, which keeps the reason of
/// its last refusal for the log line.
#[derive(Debug)]
struct Recording {
    certs: Arc<BrokerCerts>,
    refusal: Arc<Mutex<Option<rustls::Error>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.certs
            .verifier()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|e| {
                if let Ok(mut r) = self.refusal.lock() {
                    *r = Some(e.clone());
                }
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.certs
            .verifier()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.certs
            .verifier()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.certs.verifier().supported_verify_schemes()
    }
}

/// Why a connection attempt failed: the index of the metric's `reason`
/// label (`poselink_cluster_broker_failures_total`, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The TLS handshake: the broker's certificate refused, or TLS set up
    /// wrong.
    Tls = 0,
    /// The broker refused the credentials.
    Auth = 1,
    /// Anything else: not reachable, closed, timed out.
    Other = 2,
    /// A setting's file unreadable or unusable: the hub runs alone.
    Config = 3,
}

/// A failed attempt's kind and the sentence the operator reads. `kind` is
/// async-nats' (`ConnectErrorKind`'s text); `refusal` is the certificate
/// refusal [`Recording`] kept during that attempt, if any.
pub(crate) fn explain(
    kind: &str,
    refusal: Option<rustls::Error>,
    cfg: &HubConfig,
    url: &str,
) -> (Failure, String) {
    if let Some(e) = refusal {
        let what = match &e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => match &cfg.cluster_ca_file {
                Some(ca) => format!(
                    "the broker's certificate is not signed by the CA in cluster_ca_file {ca} (unknown issuer): give the CA that signed the broker's certificate"
                ),
                None => "the broker's certificate is not signed by a CA this system trusts (unknown issuer): for a private CA, set cluster_ca_file (--cluster-ca-file) to its certificate (PEM)".to_string(),
            },
            rustls::Error::InvalidCertificate(
                c @ (CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. }),
            ) => format!(
                "the broker's certificate is not valid for the host in the cluster URL ({c:?}): connect by a name or address the certificate lists"
            ),
            rustls::Error::InvalidCertificate(
                c @ (CertificateError::Expired | CertificateError::ExpiredContext { .. }),
            ) => format!(
                "the broker's certificate has expired ({c:?}): the broker's operator must renew it"
            ),
            rustls::Error::InvalidCertificate(
                c @ (CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }),
            ) => format!(
                "the broker's certificate is not valid yet ({c:?}): check this machine's clock"
            ),
            other => format!(
                "the broker's certificate was refused ({other}): check cluster_ca_file and the broker's certificate"
            ),
        };
        return (Failure::Tls, format!("TLS handshake failed: {what}"));
    }
    use async_nats::ConnectErrorKind as K;
    let creds = "check cluster_user and cluster_password (or cluster_token, or the credentials in the cluster URL) against the broker's authorization settings";
    let is = |k: K| kind == k.to_string();
    match () {
        () if is(K::AuthorizationViolation) => (
            Failure::Auth,
            format!("the broker refused this hub's credentials (authorization violation): {creds}"),
        ),
        () if is(K::Authentication) => (
            Failure::Auth,
            format!("the broker's authentication could not be completed: {creds}"),
        ),
        () if is(K::Tls) => (
            Failure::Tls,
            "TLS could not be set up for the broker (the URL's host cannot be a TLS server name, or the TLS settings are unusable): check the cluster URL and cluster_ca_file".to_string(),
        ),
        () if is(K::TimedOut) => (
            Failure::Other,
            format!("the broker at {url} did not answer within 2 s: check the address and the firewall"),
        ),
        () => {
            let hint = if cfg.cluster_cert_file.is_some() {
                ", and that the broker trusts the CA that signed cluster_cert_file"
            } else {
                ", and, if it requires client certificates, set cluster_cert_file and cluster_key_file"
            };
            (
                Failure::Other,
                format!(
                    "cannot reach the broker at {url}, or it closed the connection ({kind}): check that nats-server runs there, that the URL's scheme matches its TLS setting (tls:// for a TLS broker){hint}"
                ),
            )
        }
    }
}

/// How long the same failure is said once: repeated attempts (every 250 ms
/// at most) are counted, and the count said with the next line.
const REPEAT: Duration = Duration::from_secs(30);

/// The broker's failed attempts, logged without flooding: a failure is
/// logged when it differs from the last one said, and then once per
/// [`REPEAT`] with the attempts in between.
pub(crate) struct FailureLog {
    last: Option<(String, Instant)>,
    repeated: u64,
}

impl FailureLog {
    pub fn new() -> FailureLog {
        FailureLog {
            last: None,
            repeated: 0,
        }
    }

    /// The line to log for this failure now, if any.
    pub fn failed(&mut self, sentence: &str, now: Instant) -> Option<String> {
        match &self.last {
            Some((said, at)) if said == sentence && now.duration_since(*at) < REPEAT => {
                self.repeated += 1;
                None
            }
            _ => {
                let line = if self.repeated > 0 {
                    format!(
                        "{sentence} ({} more failed attempts since the last line); this hub relays between its own members meanwhile",
                        self.repeated
                    )
                } else {
                    format!("{sentence}; this hub relays between its own members meanwhile")
                };
                self.last = Some((sentence.to_string(), now));
                self.repeated = 0;
                Some(line)
            }
        }
    }

    /// Connected: the next failure is said at once.
    pub fn connected(&mut self) {
        self.last = None;
        self.repeated = 0;
    }
}

/// `url` (one NATS URL, or several separated by commas) with the password or
/// token of each replaced by `***`, for the log.
pub(crate) fn redacted(url: &str) -> String {
    url.split(',')
        .map(|one| match userinfo(one) {
            Some((start, end)) => {
                let info = &one[start..end];
                let shown = match info.split_once(':') {
                    Some((user, _)) => format!("{user}:***"),
                    None => "***".to_string(),
                };
                format!("{}{shown}{}", &one[..start], &one[end..])
            }
            None => one.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether any of the URLs carries credentials (`user:pass@` or `token@`).
pub(crate) fn has_credentials(url: &str) -> bool {
    url.split(',').any(|one| userinfo(one).is_some())
}

/// The byte range of one URL's credentials (between `://` and the last `@`
/// of its authority), if it has some.
fn userinfo(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = url[start..authority_end].rfind('@')?;
    Some((start, start + at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_never_reach_the_log() {
        for (url, shown) in [
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            ("nats://hub:s3cret@b:4222", "nats://hub:***@b:4222"),
            ("tls://t0ken@b:4222", "tls://***@b:4222"),
            ("tls://u:p@ss@b:4222/x", "tls://u:***@b:4222/x"),
            ("nats://a:1@x:1,nats://y:2", "nats://a:***@x:1,nats://y:2"),
            ("b:4222", "b:4222"),
        ] {
            assert_eq!(redacted(url), shown, "{url}");
            assert!(!redacted(url).contains("s3cret") && !redacted(url).contains("t0ken"));
        }
        assert!(has_credentials("nats://x:4222,tls://u:p@y:4222"));
        assert!(!has_credentials("nats://x:4222/a@b"));
    }

    #[test]
    fn failures_are_said_once_then_counted() {
        let mut log = FailureLog::new();
        let t = Instant::now();
        let first = log.failed("bad", t).expect("said at once");
        assert!(first.contains("own members"), "{first}");
        assert_eq!(log.failed("bad", t + Duration::from_secs(1)), None);
        assert_eq!(log.failed("bad", t + Duration::from_secs(2)), None);
        // Another failure is said at once; the same one after REPEAT, counted.
        assert!(log.failed("worse", t + Duration::from_secs(3)).is_some());
        assert!(log.failed("worse", t + Duration::from_secs(4)).is_none());
        let again = log.failed("worse", t + Duration::from_secs(40)).unwrap();
        assert!(again.contains("(1 more failed attempts"), "{again}");
        log.connected();
        assert!(log.failed("worse", t + Duration::from_secs(41)).is_some());
    }

    #[test]
    fn each_failure_names_what_to_set() {
        let cfg = HubConfig::default();
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let (f, s) = explain("IO error", Some(unknown.clone()), &cfg, "tls://b:4222");
        assert_eq!(f, Failure::Tls);
        assert!(s.contains("--cluster-ca-file"), "{s}");
        let with_ca = HubConfig {
            cluster_ca_file: Some("/etc/ca.pem".into()),
            ..HubConfig::default()
        };
        let (_, s) = explain("IO error", Some(unknown), &with_ca, "tls://b:4222");
        assert!(
            s.contains("not signed by the CA in cluster_ca_file /etc/ca.pem"),
            "{s}"
        );
        let auth = async_nats::ConnectErrorKind::AuthorizationViolation.to_string();
        let (f, s) = explain(&auth, None, &cfg, "nats://b:4222");
        assert_eq!(f, Failure::Auth);
        assert!(s.contains("cluster_password"), "{s}");
        let (f, s) = explain("IO error", None, &cfg, "nats://b:4222");
        assert_eq!(f, Failure::Other);
        assert!(s.contains("nats://b:4222") && s.contains("tls://"), "{s}");
    }

    #[test]
    fn bad_files_are_refused_naming_the_setting() {
        let dir = std::env::temp_dir().join(format!("poselink-access-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let path = |p: &std::path::Path| Some(p.to_string_lossy().into_owned());
        let base = HubConfig {
            cluster: Some("tls://b:4222".into()),
            ..HubConfig::default()
        };
        for (cfg, want) in [
            (
                HubConfig {
                    cluster_ca_file: Some("/nonexistent/ca.pem".into()),
                    ..base.clone()
                },
                "cannot read cluster_ca_file /nonexistent/ca.pem",
            ),
            (
                HubConfig {
                    cluster_ca_file: path(&garbage),
                    ..base.clone()
                },
                "holds no certificate",
            ),
            (
                HubConfig {
                    cluster_user: Some("hub".into()),
                    cluster_password_file: path(&empty),
                    ..base.clone()
                },
                "cluster_password_file",
            ),
        ] {
            let e = prepare(&cfg).err().expect("refused");
            assert!(e.contains(want), "{e}");
        }
        let ok = prepare(&HubConfig {
            cluster_token: Some("t".into()),
            ..base
        })
        .unwrap();
        assert!(matches!(ok.auth, Auth::Token(ref t) if t == "t") && !ok.require_tls);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_reload_that_fails_keeps_the_certificates_in_use() {
        let dir = std::env::temp_dir().join(format!("poselink-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = crate::tls::private_ca(&["hub"], -1, 1).unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            Some(p.to_string_lossy().into_owned())
        };
        let cfg = HubConfig {
            cluster: Some("tls://b:4222".into()),
            cluster_ca_file: file("ca.pem", &ca.ca_pem),
            cluster_cert_file: file("cert.pem", &ca.cert_pem),
            cluster_key_file: file("key.pem", &ca.key_pem),
            ..HubConfig::default()
        };
        let access = prepare(&cfg).unwrap();
        let certs = &access.certs;
        let (verifier, client) = (certs.verifier(), certs.client().unwrap());
        assert!(certs.has_certs());
        // A damaged CA file: refused, and both stay as they were.
        file("ca.pem", "not a certificate\n");
        let e = certs.reload(&cfg).unwrap_err();
        assert!(e.contains("cluster_ca_file"), "{e}");
        assert!(Arc::ptr_eq(&certs.verifier(), &verifier));
        assert!(Arc::ptr_eq(&certs.client().unwrap(), &client));
        // Good files again: both replaced.
        file("ca.pem", &ca.ca_pem);
        certs.reload(&cfg).unwrap();
        assert!(!Arc::ptr_eq(&certs.verifier(), &verifier));
        assert!(!Arc::ptr_eq(&certs.client().unwrap(), &client));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
