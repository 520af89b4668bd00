//! `[tls]` and `[upstream_tls]`: certificates loaded and checked when the configuration is, so
//! that a missing, unreadable or mismatched file stops the start with its name.

use super::ConfigError;

/// `[tls]`: both files or neither, every certificate loaded now so that a missing, unreadable
/// or mismatched file stops the start with its name.
pub(super) fn edge_tls(
    s: super::file::TlsSection,
) -> Result<Option<strangler_facade::tls::TlsConfig>, ConfigError> {
    use strangler_facade::tls::{CertFiles, TlsConfig};
    let at = |key: &str, message: String| ConfigError {
        location: format!("tls.{key}"),
        message,
    };
    let default = match (s.cert_file, s.key_file) {
        (Some(cert), Some(key)) => CertFiles {
            cert: cert.into(),
            key: key.into(),
        },
        (None, None) => {
            if !s.sni.is_empty() || s.hsts.is_some() {
                return Err(at(
                    "cert_file",
                    "[tls] sni and hsts need the default certificate: set cert_file and key_file"
                        .into(),
                ));
            }
            return Ok(None);
        }
        (Some(_), None) => {
            return Err(at(
                "key_file",
                "a certificate needs its private key: set key_file (PEM) beside cert_file".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(at(
                "cert_file",
                "a private key needs its certificate: set cert_file (PEM chain) beside key_file"
                    .into(),
            ))
        }
    };
    let mut certificates = vec![default];
    certificates.extend(s.sni.into_iter().map(|c| CertFiles {
        cert: c.cert_file.into(),
        key: c.key_file.into(),
    }));
    for (i, files) in certificates.iter().enumerate() {
        let key = if i == 0 {
            "cert_file".to_owned()
        } else {
            format!("sni[{}]", i - 1)
        };
        strangler_facade::tls::load(files).map_err(|m| at(&key, m))?;
    }
    let config = TlsConfig {
        certificates,
        hsts: s.hsts,
    };
    strangler_facade::tls::Tls::new(&config).map_err(|m| at("hsts", m))?;
    Ok(Some(config))
}

/// `[upstream_tls]`: how `https://` upstreams are trusted; `None` leaves the system's CAs.
pub(super) fn upstream_tls(
    s: super::file::UpstreamTlsSection,
) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, ConfigError> {
    let client_cert = match (s.client_cert_file, s.client_key_file) {
        (Some(c), Some(k)) => Some((c.into(), k.into())),
        (None, None) => None,
        _ => {
            return Err(ConfigError {
                location: "upstream_tls.client_cert_file".into(),
                message: "a client certificate needs both client_cert_file and client_key_file"
                    .into(),
            })
        }
    };
    let settings = strangler_services::ClientTls {
        ca_file: s.ca_file.map(Into::into),
        client_cert,
        insecure_skip_verify: s.insecure_skip_verify.unwrap_or(false),
    };
    if settings == strangler_services::ClientTls::default() {
        return Ok(None);
    }
    if settings.insecure_skip_verify {
        tracing::warn!("[upstream_tls] insecure_skip_verify: upstream certificates are not verified; anyone on the path can read and change the traffic");
    }
    settings.build().map(Some).map_err(|message| ConfigError {
        location: "upstream_tls".into(),
        message,
    })
}
