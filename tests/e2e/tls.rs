//! TLS at the edge, through the real binary: the certificate chosen by the name the client asks
//! for, ALPN `h2` and `http/1.1`, `X-Forwarded-Proto: https` to the legacy app, HSTS, a
//! certificate reloaded when its files change while open connections go on, and files that
//! cannot be used refused at start with their names — and a legacy app behind `https://`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::binary::{start_configured, BIN};
use crate::harness::*;

/// A CA made for the test and the certificates it signs, as PEM files in `dir`.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    dir: std::path::PathBuf,
}

impl Pki {
    fn new(dir: &std::path::Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "e2e CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self {
            ca,
            ca_key,
            dir: dir.to_owned(),
        }
    }

    /// Writes NAME.pem and NAME.key for `names`; the certificate's DER.
    fn leaf(&self, file: &str, names: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.ca, &self.ca_key)
            .unwrap();
        // Whole files only: written aside, then renamed over.
        for (ext, text) in [("pem", cert.pem()), ("key", key.serialize_pem())] {
            let tmp = self.dir.join(format!("{file}.{ext}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, self.dir.join(format!("{file}.{ext}"))).unwrap();
        }
        cert.der().clone()
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    fn connector(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn handshake(addr: &str, connector: &tokio_rustls::TlsConnector, name: &str) -> Tls {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    connector.connect(name, tcp).await.unwrap()
}

fn peer_cert(tls: &Tls) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// One request on a connection: status, headers, body.
async fn get_on<B>(
    send: &mut hyper::client::conn::http1::SendRequest<B>,
) -> (u16, HeaderMap, String)
where
    B: http_body::Body + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let req = http::Request::get("/")
        .header("host", "a.test")
        .body(B::from(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn the_edge_terminates_tls_by_sni_and_alpn_and_reloads_its_certificates() {
    let dir = Scratch::new("tls-edge");
    let pki = Pki::new(&dir.path);
    let a = pki.leaf("a", &["a.test", "127.0.0.1"]);
    let b = pki.leaf("b", &["b.test"]);
    // The legacy app says which protocol the facade told it the client used.
    let app = Router::new().route(
        "/",
        get(|h: HeaderMap| async move {
            h.get("x-forwarded-proto")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        }),
    );
    let (up, _) = axum_upstream(app).await;
    let config = dir.path.join("strangler.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nhsts = \"max-age=600\"\n\n[[tls.sni]]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            pki.path("a.pem"),
            pki.path("a.key"),
            pki.path("b.pem"),
            pki.path("b.key")
        ),
    )
    .unwrap();
    let s = start_configured(&format!("http://{up}"), &config, &[]).await;
    let addr = s.listen.as_str();

    // The certificate is picked by the name asked for; without a name, the first one.
    let h1 = pki.connector(&[b"http/1.1"]);
    assert_eq!(peer_cert(&handshake(addr, &h1, "b.test").await), b);
    assert_eq!(peer_cert(&handshake(addr, &h1, "a.test").await), a);
    assert_eq!(peer_cert(&handshake(addr, &h1, "127.0.0.1").await), a);

    // ALPN h2: HTTP/2 over TLS.
    let tls = handshake(addr, &pki.connector(&[b"h2", b"http/1.1"]), "a.test").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://a.test/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.headers()["strict-transport-security"], "max-age=600");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"https", "X-Forwarded-Proto");

    // ALPN http/1.1, on a connection kept open across the reload below.
    let tls = handshake(addr, &h1, "a.test").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut kept, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (status, headers, body) = get_on(&mut kept).await;
    assert_eq!((status, body.as_str()), (200, "https"));
    assert_eq!(headers["strict-transport-security"], "max-age=600");

    // Plain HTTP to the TLS port gets no answer, and is counted.
    let (said, _) = raw(
        addr.parse().unwrap(),
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(!said.contains("HTTP/1.1 200"), "{said}");

    // A new certificate for a.test: new handshakes get it within the watch interval, the open
    // connection goes on with the one it has.
    let renewed = pki.leaf("a", &["a.test", "127.0.0.1"]);
    assert_ne!(renewed, a);
    let deadline = Instant::now() + Duration::from_secs(30);
    while peer_cert(&handshake(addr, &h1, "a.test").await) != renewed {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, body) = get_on(&mut kept).await;
    assert_eq!((status, body.as_str()), (200, "https"));

    let metrics = reqwest_text(&format!("http://{}/metrics", s.admin)).await;
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("strangler_tls_handshake_failures_total "))
        .unwrap_or_default()
        .to_owned();
    assert!(!failures.ends_with(" 0"), "{failures}");
    s.stop().await;
}

async fn reqwest_text(url: &str) -> String {
    let (_, _, body) = fetch(url).await;
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn certificate_files_that_cannot_be_used_stop_the_start_with_their_names() {
    let dir = Scratch::new("tls-bad");
    let pki = Pki::new(&dir.path);
    pki.leaf("a", &["a.test"]);
    pki.leaf("b", &["b.test"]);
    let cases = [
        (pki.path("a.pem"), pki.path("missing.key"), "no such file"),
        (
            pki.path("a.pem"),
            pki.path("b.key"),
            "does not belong to the certificate",
        ),
        (pki.path("a.key"), pki.path("a.key"), "no certificate"),
    ];
    for (cert, key, says) in cases {
        let config = dir.path.join("bad.toml");
        std::fs::write(
            &config,
            format!("[legacy]\nurl = \"http://127.0.0.1:1\"\n\n[tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n"),
        )
        .unwrap();
        for command in ["check", "serve"] {
            let out = Command::new(BIN)
                .args([command, "--config"])
                .arg(&config)
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{command} {cert} {key}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(says), "{command}: {err}");
            assert!(
                err.contains("tls."),
                "{command}: the setting is not named: {err}"
            );
        }
    }
}

#[tokio::test]
async fn a_legacy_app_behind_https_is_verified_against_the_configured_ca() {
    let dir = Scratch::new("tls-upstream");
    let pki = Pki::new(&dir.path);
    pki.leaf("legacy", &["localhost"]);
    // The legacy app over TLS (HTTP/1.1).
    let certs: Vec<CertificateDer<'static>> =
        rustls::pki_types::pem::PemObject::pem_file_iter(pki.path("legacy.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key: rustls::pki_types::PrivateKeyDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_file(pki.path("legacy.key")).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let app = Router::new().fallback(|| async { "legacy over tls" });
                let svc = hyper::service::service_fn(move |req| {
                    tower::ServiceExt::oneshot(app.clone(), req)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    let legacy = format!("https://localhost:{port}");
    let config = dir.path.join("strangler.toml");
    // Without the CA the legacy app's certificate is not trusted: 502, nothing else.
    std::fs::write(&config, "").unwrap();
    let s = start_configured(&legacy, &config, &[]).await;
    let (status, _, _) = fetch(&format!("http://{}/", s.listen)).await;
    assert_eq!(status, 502);
    s.stop().await;
    std::fs::write(
        &config,
        format!("[upstream_tls]\nca_file = \"{}\"\n", pki.path("ca.pem")),
    )
    .unwrap();
    let s = start_configured(&legacy, &config, &[]).await;
    let (status, _, body) = fetch(&format!("http://{}/", s.listen)).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"legacy over tls"[..]));
    s.stop().await;
}
