use super::*;

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
        ("https://x:1", "only http://"),
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
