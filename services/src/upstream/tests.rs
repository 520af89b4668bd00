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
        let err = Origin::parse(bad).unwrap_err();
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
