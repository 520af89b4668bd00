//! TLS to `https://` upstreams: the system's trusted CAs and any configured ones, an optional
//! client certificate (mutual TLS), the upstream's name sent (SNI) and verified. Not verifying
//! is possible only through a setting named for what it is (`insecure_skip_verify`).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How upstreams over TLS are trusted, and who the facade is to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificates (PEM) trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain and its key (PEM), for upstreams that ask for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Accept any certificate: for a test bed only; logged at start.
    pub insecure_skip_verify: bool,
}

#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    // *ring*, as at the edge (see the facade's tls module for why).
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted CAs, read once.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "a system CA certificate could not be read");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "system CA certificates");
        roots
    })
}

impl ClientTls {
    /// The client configuration these settings describe; the error names the file and the fix.
    pub fn build(&self) -> Result<Arc<ClientConfig>, String> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS to upstreams cannot be set up: {e}"))?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
        } else {
            let mut roots = system_roots().clone();
            if let Some(ca) = &self.ca_file {
                let certs = CertificateDer::pem_file_iter(ca)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("[upstream_tls] ca_file {}: {e}; point it at a PEM file of CA certificates", ca.display()))?;
                if certs.is_empty() {
                    return Err(format!(
                        "[upstream_tls] ca_file {}: no certificate in it; point it at a PEM file of CA certificates",
                        ca.display()
                    ));
                }
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        format!(
                            "[upstream_tls] ca_file {}: a certificate cannot be trusted ({e})",
                            ca.display()
                        )
                    })?;
                }
            }
            builder.with_root_certificates(roots)
        };
        let config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        format!("[upstream_tls] client_cert_file {}: {e}", cert.display())
                    })?;
                if chain.is_empty() {
                    return Err(format!(
                        "[upstream_tls] client_cert_file {}: no certificate in it",
                        cert.display()
                    ));
                }
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    format!("[upstream_tls] client_key_file {}: {e}", key.display())
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!("[upstream_tls] the client key does not fit its certificate: {e}")
                })?
            }
        };
        Ok(Arc::new(config))
    }

    /// The configuration used when none is given: the system's CAs, no client certificate.
    pub fn system_default() -> Result<Arc<ClientConfig>, String> {
        static DEFAULT: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
        DEFAULT.get_or_init(|| ClientTls::default().build()).clone()
    }
}

/// The name an upstream's certificate must carry: its host.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|_| format!("`{host}` is not a host name TLS can verify"))
}

/// Accepts every certificate (handshake signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
