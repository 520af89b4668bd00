use super::tls::ClientTls;
use super::*;
use hyper_util::rt::TokioExecutor;

#[test]
fn origin_accepts_http_host_port() {
    let o = Origin::parse("http://127.0.0.1:8000").unwrap();
    assert_eq!(o.to_prefix(), "http://127.0.0.1:8000");
    let o = Origin::parse("http://legacy.internal/").unwrap();
    assert_eq!(o.authority.as_str(), "legacy.internal");
}

#[test]
fn origin_rejects_what_is_not_an_origin() {
    for (bad, says) in [
        ("127.0.0.1:8000", "scheme"),
        ("ftp://x:1", "write http:// or https://"),
        ("http://x:1/app", "path"),
        ("http://x:1/?a=b", "query"),
        ("http://", "not a URL"),
    ] {
        let err = Origin::parse(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[tokio::test]
async fn refused_connection_is_a_connect_failure() {
    // Bind and drop to get a port that nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let origin = Origin::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let up: Upstream<http_body_util::Empty<Bytes>> = Upstream::new(&UpstreamConfig::new(origin));
    let req = Request::get("/x")
        .body(http_body_util::Empty::new())
        .unwrap();
    let err = up.send(req).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Connect);
}

#[tokio::test]
async fn silent_upstream_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and hold connections without ever answering.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut cfg = UpstreamConfig::new(Origin::parse(&format!("http://{addr}")).unwrap());
    cfg.response_timeout = Some(Duration::from_millis(200));
    let up: Upstream<http_body_util::Empty<Bytes>> = Upstream::new(&cfg);
    let req = Request::get("/")
        .body(http_body_util::Empty::new())
        .unwrap();
    let err = up.send(req).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Timeout);
    holder.abort();
}

/// A raw HTTP/1.1 server: answers every request on a connection with `ok`, and closes the
/// connection after `per_conn` answers (without announcing it). Counts connections.
async fn counting_server(
    per_conn: usize,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    counting_server_with(per_conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await
}

/// Like [`counting_server`], answering with `answer` (whose body must be `ok`).
async fn counting_server_with(
    per_conn: usize,
    answer: &'static [u8],
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&conns);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                for _ in 0..per_conn {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, conns)
}

async fn get_ok(up: &Upstream<http_body_util::Empty<Bytes>>) {
    use http_body_util::BodyExt;
    let req = Request::get("/")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = up.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let (addr, conns) = counting_server(usize::MAX).await;
    let up: Upstream<http_body_util::Empty<Bytes>> = Upstream::new(&UpstreamConfig::new(
        Origin::parse(&format!("http://{addr}")).unwrap(),
    ));
    for _ in 0..10 {
        get_ok(&up).await;
    }
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(up.idle_connections(), 1);
}

/// A chunked answer read to its last chunk returns its connection too (hyper never reports a
/// chunked body as ended; the end of the frames does).
#[tokio::test]
async fn a_chunked_answer_read_to_its_end_returns_its_connection() {
    let (addr, conns) = counting_server_with(
        usize::MAX,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\no\r\n1\r\nk\r\n0\r\n\r\n",
    )
    .await;
    let up: Upstream<http_body_util::Empty<Bytes>> = Upstream::new(&UpstreamConfig::new(
        Origin::parse(&format!("http://{addr}")).unwrap(),
    ));
    for _ in 0..10 {
        get_ok(&up).await;
    }
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(up.idle_connections(), 1);
}

#[tokio::test]
async fn a_body_dropped_early_does_not_return_its_connection() {
    let (addr, conns) = counting_server(usize::MAX).await;
    let up: Upstream<http_body_util::Empty<Bytes>> = Upstream::new(&UpstreamConfig::new(
        Origin::parse(&format!("http://{addr}")).unwrap(),
    ));
    let req = Request::get("/")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = up.send(req).await.unwrap();
    drop(resp);
    assert_eq!(up.idle_connections(), 0);
    get_ok(&up).await;
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connections_the_upstream_closed_are_replaced_without_failing() {
    // The server closes each connection after one answer, silently: the pooled connection is
    // dead by the time it is reused.
    let (addr, conns) = counting_server(1).await;
    let up: Upstream<http_body_util::Empty<Bytes>> = Upstream::new(&UpstreamConfig::new(
        Origin::parse(&format!("http://{addr}")).unwrap(),
    ));
    for _ in 0..5 {
        get_ok(&up).await;
        // Let the connection task notice the close.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 5);
}

#[tokio::test]
async fn old_connections_are_retired_so_names_are_resolved_again() {
    let (addr, conns) = counting_server(usize::MAX).await;
    let mut cfg =
        UpstreamConfig::new(Origin::parse(&format!("http://localhost:{}", addr.port())).unwrap());
    cfg.max_connection_age = Duration::from_millis(100);
    let up: Upstream<http_body_util::Empty<Bytes>> = Upstream::new(&cfg);
    get_ok(&up).await;
    get_ok(&up).await;
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    get_ok(&up).await;
    assert_eq!(
        conns.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "an old connection was reused"
    );
}

/// An HTTP/2 (prior knowledge) server that answers each request with the `:authority` and path
/// it saw, then a trailer; counts the connections it accepted.
async fn h2_server(connections: Arc<std::sync::atomic::AtomicUsize>) -> std::net::SocketAddr {
    use http_body::Frame;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let said = format!(
                        "{} {}",
                        req.uri().authority().map_or("-", |a| a.as_str()),
                        req.uri().path()
                    );
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let frames = vec![
                        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(said))),
                        Ok(Frame::trailers(trailers)),
                    ];
                    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
                    Ok::<_, std::convert::Infallible>(Response::new(body))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn h2c_multiplexes_on_one_connection_and_passes_trailers() {
    use http_body_util::BodyExt;
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let addr = h2_server(Arc::clone(&connections)).await;
    let mut cfg = UpstreamConfig::new(Origin::parse(&format!("http://{addr}")).unwrap());
    cfg.protocol = Protocol::H2c;
    let up: Upstream<http_body_util::Empty<Bytes>> = Upstream::new(&cfg);
    let calls = (0..20).map(|i| {
        let up = up.clone();
        async move {
            let req = Request::post(format!("/demo.Echo/Call{i}"))
                .header("host", "echo.internal:50051")
                .body(http_body_util::Empty::new())
                .unwrap();
            let resp = up.send(req).await.unwrap();
            assert_eq!(resp.version(), http::Version::HTTP_2);
            let collected = resp.into_body().collect().await.unwrap();
            let trailers = collected.trailers().cloned();
            (collected.to_bytes(), trailers)
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    for (i, (body, trailers)) in answers.into_iter().enumerate() {
        // The Host the facade chose became `:authority`.
        assert_eq!(body, format!("echo.internal:50051 /demo.Echo/Call{i}"));
        assert_eq!(trailers.expect("no trailers")["grpc-status"], "0");
    }
    // Twenty concurrent first requests shared one connection.
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A CA made for one test, and certificates it signs, as PEM files under a directory of their
/// own (removed on drop).
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    dir: std::path::PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "strangler-services-tls-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Self { ca, ca_key, dir };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).unwrap();
        pki
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.dir.join(file)
    }

    /// A certificate for `names` signed by the CA: (chain, key) as rustls takes them, and
    /// written to NAME.pem and NAME.key.
    fn leaf(
        &self,
        file: &str,
        names: &[&str],
    ) -> (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.ca, &self.ca_key)
            .unwrap();
        std::fs::write(self.path(&format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{file}.key")), key.serialize_pem()).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (vec![cert.der().clone()], der)
    }

    fn roots(&self) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        Arc::new(roots)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[allow(deprecated)]
fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An HTTPS server (HTTP/1.1 and HTTP/2 by ALPN, `alpn` says which it offers) answering
/// "VERSION PATH", asking for a client certificate signed by `clients` if given; counts
/// accepted connections.
async fn https_server(
    pki: &Pki,
    alpn: &[&[u8]],
    clients: Option<Arc<rustls::RootCertStore>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
) -> std::net::SocketAddr {
    let (chain, key) = pki.leaf("server", &["localhost"]);
    let builder = rustls::ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match clients {
        Some(roots) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, ring())
                .build()
                .unwrap(),
        ),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let said = format!("{:?} {}", req.version(), req.uri().path());
                    Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                        Bytes::from(said),
                    )))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

async fn get_text(
    up: &Upstream<http_body_util::Empty<Bytes>>,
    path: &str,
) -> Result<String, UpstreamError> {
    use http_body_util::BodyExt;
    let req = Request::get(path)
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = up.send(req).await?;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn https_upstream(
    addr: std::net::SocketAddr,
    protocol: Protocol,
    tls: &ClientTls,
) -> Upstream<http_body_util::Empty<Bytes>> {
    let mut cfg =
        UpstreamConfig::new(Origin::parse(&format!("https://localhost:{}", addr.port())).unwrap());
    cfg.protocol = protocol;
    cfg.tls = Some(tls.build().unwrap());
    Upstream::new(&cfg)
}

#[tokio::test]
async fn https_upstreams_are_verified_and_speak_what_alpn_agrees() {
    let pki = Pki::new("verify");
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let both = https_server(&pki, &[b"h2", b"http/1.1"], None, Arc::clone(&conns)).await;
    let trusted = ClientTls {
        ca_file: Some(pki.path("ca.pem")),
        ..ClientTls::default()
    };
    // Verified against the configured CA, by the name in the URL.
    let up = https_upstream(both, Protocol::Http1, &trusted);
    assert_eq!(get_text(&up, "/one").await.unwrap(), "HTTP/1.1 /one");
    // The system's CAs alone do not know this one: a connect failure, nothing sent.
    let err = get_text(
        &https_upstream(both, Protocol::Http1, &ClientTls::default()),
        "/x",
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Connect);
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    // Only when told, by the setting's name, does it go without verifying.
    let insecure = ClientTls {
        insecure_skip_verify: true,
        ..ClientTls::default()
    };
    assert_eq!(
        get_text(&https_upstream(both, Protocol::Http1, &insecure), "/i")
            .await
            .unwrap(),
        "HTTP/1.1 /i"
    );
    // `auto` takes HTTP/2 when offered, on one connection for many requests.
    let before = conns.load(std::sync::atomic::Ordering::SeqCst);
    let auto = https_upstream(both, Protocol::Auto, &trusted);
    for i in 0..5 {
        assert_eq!(
            get_text(&auto, &format!("/a{i}")).await.unwrap(),
            format!("HTTP/2.0 /a{i}")
        );
    }
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst) - before, 1);
    // An upstream that only speaks HTTP/1.1: `auto` takes that, `h2` refuses to connect.
    let h1_only = https_server(&pki, &[b"http/1.1"], None, Arc::clone(&conns)).await;
    assert_eq!(
        get_text(&https_upstream(h1_only, Protocol::Auto, &trusted), "/b")
            .await
            .unwrap(),
        "HTTP/1.1 /b"
    );
    let err = get_text(&https_upstream(h1_only, Protocol::H2, &trusted), "/c")
        .await
        .unwrap_err();
    // (A server that enforces ALPN refuses the handshake; one that ignores it is refused here.)
    assert_eq!(err.kind(), FailureKind::Connect);
    let said = format!("{err:?}");
    assert!(
        said.contains("NoApplicationProtocol") || said.contains("did not agree to HTTP/2"),
        "{said}"
    );
}

#[tokio::test]
async fn an_upstream_that_asks_for_a_client_certificate_gets_the_configured_one() {
    let pki = Pki::new("mtls");
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = https_server(&pki, &[b"http/1.1"], Some(pki.roots()), conns).await;
    pki.leaf("client", &["strangler.test"]);
    let without = ClientTls {
        ca_file: Some(pki.path("ca.pem")),
        ..ClientTls::default()
    };
    assert!(
        get_text(&https_upstream(server, Protocol::Http1, &without), "/x")
            .await
            .is_err()
    );
    let with = ClientTls {
        client_cert: Some((pki.path("client.pem"), pki.path("client.key"))),
        ..without
    };
    assert_eq!(
        get_text(&https_upstream(server, Protocol::Http1, &with), "/y")
            .await
            .unwrap(),
        "HTTP/1.1 /y"
    );
}
