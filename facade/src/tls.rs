//! TLS at the edge: certificates from PEM files, one chosen per connection by the name the
//! client asks for (SNI), ALPN `h2` and `http/1.1`, TLS 1.2 and 1.3 with rustls's defaults
//! (forward-secret AEAD suites only), and certificates read again when their files change.
//!
//! The first certificate configured is the default: it answers clients that send no name or a
//! name no certificate covers. A change to any file is noticed within [`WATCH_EVERY`]; the new
//! set is loaded whole and swapped in for the next handshake — connections already open keep
//! theirs. A set that does not load (a half-copied file, a key that does not match) is refused
//! with a log line and the previous one stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate files are looked at.
pub const WATCH_EVERY: Duration = Duration::from_secs(5);

/// One certificate: its chain and its private key, each a PEM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate first, then the intermediates.
    pub cert: PathBuf,
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
}

/// The edge's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The default certificate first; the others are chosen by SNI.
    pub certificates: Vec<CertFiles>,
    /// `Strict-Transport-Security` for answers on TLS connections, if set.
    pub hsts: Option<String>,
}

/// The crypto every TLS configuration of the process uses: *ring*'s (X25519, P-256 and P-384
/// key exchange; AES-GCM and ChaCha20-Poly1305). rustls marks it deprecated because *ring* has
/// no post-quantum key exchange; aws-lc-rs has one but needs several times the build.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads one certificate and its key, checking that they belong together. The error names
/// the file and says what to do.
pub fn load(files: &CertFiles) -> Result<CertifiedKey, String> {
    let cert = &files.cert;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_problem(cert, "certificate", &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_problem(cert, "certificate", &e))?;
    if chain.is_empty() {
        return Err(format!(
            "{} holds no certificate (no `-----BEGIN CERTIFICATE-----` block); point it at the PEM file of the certificate chain",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| pem_problem(&files.key, "private key", &e))?;
    let signing = provider().key_provider.load_private_key(key).map_err(|e| {
        format!(
            "{}: the private key cannot be used ({e}); give an RSA, ECDSA or Ed25519 key",
            files.key.display()
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(format!(
            "the private key in {} does not belong to the certificate in {}; give the key the certificate was issued for",
            files.key.display(),
            cert.display()
        )),
        Err(e) => Err(format!("{}: {e}", cert.display())),
    }
}

fn pem_problem(path: &Path, what: &str, e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(io) if io.kind() == std::io::ErrorKind::NotFound => format!(
            "{}: no such file; point the setting at the PEM file of the {what}",
            path.display()
        ),
        E::Io(io) => format!(
            "{}: cannot be read ({io}); make it readable by the user strangler runs as",
            path.display()
        ),
        E::NoItemsFound => format!(
            "{}: no {what} in it (a PEM block such as `-----BEGIN PRIVATE KEY-----` was expected)",
            path.display()
        ),
        other => format!("{}: not a PEM {what} ({other:?})", path.display()),
    }
}

/// Picks the certificate for a handshake.
#[derive(Debug)]
struct Resolver {
    certs: ArcSwap<Vec<Arc<CertifiedKey>>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        if let Some(name) = hello
            .server_name()
            .and_then(|n| ServerName::try_from(n).ok())
        {
            for certified in certs.iter() {
                let covers = certified.end_entity_cert().ok().is_some_and(|der| {
                    webpki::EndEntityCert::try_from(der)
                        .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
                });
                if covers {
                    return Some(Arc::clone(certified));
                }
            }
        }
        certs.first().cloned()
    }
}

/// The edge's TLS: the acceptor and what it needs to reload.
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<Resolver>,
    config: TlsConfig,
    hsts: Option<http::HeaderValue>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("config", &self.config).finish()
    }
}

impl Tls {
    /// Loads every certificate; the first error is returned, naming its file.
    pub fn new(config: &TlsConfig) -> Result<Arc<Self>, String> {
        if config.certificates.is_empty() {
            return Err("TLS needs a certificate: set [tls] cert_file and key_file".into());
        }
        let hsts = match &config.hsts {
            Some(v) => Some(http::HeaderValue::from_str(v).map_err(|_| {
                format!(
                    "[tls] hsts `{v}` is not a header value; write it like \"max-age=31536000\""
                )
            })?),
            None => None,
        };
        let certs = load_all(&config.certificates)?;
        let resolver = Arc::new(Resolver {
            certs: ArcSwap::from_pointee(certs),
        });
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS cannot be set up: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            resolver,
            config: config.clone(),
            hsts,
        }))
    }

    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }

    /// `Strict-Transport-Security`, if configured.
    pub(crate) fn hsts(&self) -> Option<&http::HeaderValue> {
        self.hsts.as_ref()
    }

    /// Loads the files again and swaps the new set in; on an error the old set stays.
    pub fn reload(&self) -> Result<(), String> {
        let certs = load_all(&self.config.certificates)?;
        self.resolver.certs.store(Arc::new(certs));
        Ok(())
    }

    /// Reloads whenever a file's size or modification time changes; runs until the process
    /// ends.
    pub async fn watch(self: Arc<Self>) {
        let mut seen = self.stamps();
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let now = self.stamps();
            if now == seen {
                continue;
            }
            seen = now;
            match self.reload() {
                Ok(()) => tracing::info!("TLS certificates reloaded: their files changed"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificates not reloaded; the previous ones stay")
                }
            }
        }
    }

    fn stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.config
            .certificates
            .iter()
            .flat_map(|c| [&c.cert, &c.key])
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }
}

fn load_all(files: &[CertFiles]) -> Result<Vec<Arc<CertifiedKey>>, String> {
    files.iter().map(|f| load(f).map(Arc::new)).collect()
}
