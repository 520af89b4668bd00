//! What passes through unchanged, and what the facade adds or removes on the way.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::header::HeaderValue;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use strangler_facade::HostHeader;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn status_headers_and_body_pass_through() {
    let app = Router::new().route(
        "/orders/{id}",
        get(
            |axum::extract::Path(id): axum::extract::Path<String>| async move {
                (
                    http::StatusCode::CREATED,
                    [
                        ("x-order", id.clone()),
                        ("content-type", "application/json".into()),
                    ],
                    format!("{{\"id\":\"{id}\"}}"),
                )
            },
        ),
    );
    let (up, _) = axum_upstream(app).await;
    let f = facade(up, |_| {}).await;
    let (status, headers, body) = fetch(&f.url("/orders/42?x=1")).await;
    assert_eq!(status, 201);
    assert_eq!(headers["x-order"], "42");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, "{\"id\":\"42\"}");
    assert_eq!(headers["via"], "1.1 strangler");
}

#[tokio::test]
async fn client_keep_alive_and_pooled_upstream_connections() {
    let (up, accepted) = axum_upstream(Router::new().route("/", get(|| async { "ok" }))).await;
    let f = facade(up, |_| {}).await;
    let client = client();
    for _ in 0..20 {
        let req = http::Request::get(f.url("/"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
    }
    // Sequential requests reuse one upstream connection, and the client kept one too.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let m = f.metrics();
    assert!(m.contains("strangler_connections_total 1\n"), "{m}");
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let app = Router::new().route(
        "/v",
        get(|req: axum::extract::Request| async move {
            let host = req
                .headers()
                .get("host")
                .map(|h| h.to_str().unwrap().to_owned());
            format!("{:?} {}", req.version(), host.unwrap_or_default())
        }),
    );
    let (up, _) = axum_upstream(app).await;
    let f = facade(up, |_| {}).await;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let req = http::Request::get(f.url("/v"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.headers()["via"], "1.1 strangler");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    // The upstream is spoken to over HTTP/1.1, with :authority as its Host.
    assert_eq!(body, format!("HTTP/1.1 {}", f.addr));
}

#[tokio::test]
async fn hop_by_hop_fields_are_removed_both_ways() {
    let up = RawUpstream::start(
        b"HTTP/1.1 200 OK\r\nConnection: close, X-Resp-Hop\r\nKeep-Alive: timeout=5\r\nX-Resp-Hop: 1\r\nX-Resp-End: 2\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    let f = facade(up.addr, |_| {}).await;
    let (resp, _) = raw(
        f.addr,
        b"GET /p HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: 300\r\nProxy-Connection: keep-alive\r\nX-Hop: secret\r\nTE: gzip\r\nX-End: 1\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    let head = up.only_head().to_ascii_lowercase();
    for gone in [
        "\r\nkeep-alive:",
        "proxy-connection:",
        "x-hop:",
        "\r\nte:",
        "connection: keep-alive",
    ] {
        assert!(!head.contains(gone), "{gone} reached the upstream:\n{head}");
    }
    assert!(head.contains("\r\nx-end: 1\r\n"), "{head}");
    let (status, rhead, body) = parse_raw(&resp);
    assert_eq!(status, 200);
    assert_eq!(body, "ok");
    let rhead = rhead.to_ascii_lowercase();
    assert!(!rhead.contains("x-resp-hop"), "{rhead}");
    assert!(!rhead.contains("keep-alive: timeout"), "{rhead}");
    assert!(rhead.contains("x-resp-end: 2"), "{rhead}");
}

#[tokio::test]
async fn host_is_preserved_or_set_to_the_upstream() {
    let up = RawUpstream::start(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    let f = facade(up.addr, |_| {}).await;
    raw(
        f.addr,
        b"GET / HTTP/1.1\r\nHost: shop.example:8443\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(
        up.only_head().contains("\r\nhost: shop.example:8443\r\n"),
        "{}",
        up.only_head()
    );

    // On a kept-alive connection (the facade's own reader), a `Host` sent after other fields
    // reaches the upstream once, as sent.
    let up = RawUpstream::start(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    let f = facade(up.addr, |_| {}).await;
    let mut client = TcpStream::connect(f.addr).await.unwrap();
    client
        .write_all(b"GET /k HTTP/1.1\r\nAccept: */*\r\nHost: Shop.Example:8443\r\nX-A: 1\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&read_head(&mut client).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    let head = up.only_head();
    assert_eq!(head.matches("\r\nhost: ").count(), 1, "{head}");
    assert!(
        head.contains("\r\naccept: */*\r\nhost: Shop.Example:8443\r\nx-a: 1\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\nx-forwarded-host: Shop.Example:8443\r\n"),
        "{head}"
    );

    let up = RawUpstream::start(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    let f = facade(up.addr, |c| c.forwarding.host = HostHeader::Upstream).await;
    raw(
        f.addr,
        b"GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    let head = up.only_head();
    assert!(
        head.contains(&format!("\r\nhost: {}\r\n", up.addr)),
        "{head}"
    );
    assert!(
        head.contains("\r\nx-forwarded-host: shop.example\r\n"),
        "{head}"
    );
}

#[tokio::test]
async fn forwarding_fields_replace_untrusted_and_extend_trusted() {
    let request = b"GET / HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nVia: 1.1 edge\r\nConnection: close\r\n\r\n";
    let up = RawUpstream::start(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    let f = facade(up.addr, |_| {}).await;
    raw(f.addr, request, WAIT).await;
    let head = up.only_head();
    assert!(
        head.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nx-forwarded-proto: http\r\n"), "{head}");
    assert!(head.contains("\r\nx-forwarded-host: shop\r\n"), "{head}");
    assert!(
        head.contains("\r\nvia: 1.1 edge\r\nvia: 1.1 strangler\r\n"),
        "{head}"
    );

    let up = RawUpstream::start(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    let f = facade(up.addr, |c| {
        c.forwarding.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]
    })
    .await;
    raw(f.addr, request, WAIT).await;
    let head = up.only_head();
    assert!(
        head.contains("\r\nx-forwarded-for: 6.6.6.6, 127.0.0.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nx-forwarded-proto: https\r\n"), "{head}");
}

/// A request that carries no forwarding field gets them and `Via` once each, after its own
/// fields, on either way to the upstream: written straight into the head on the own HTTP/1.1
/// path (a GET), appended to the request's map on hyper's (a chunked body).
#[tokio::test]
async fn forwarding_fields_follow_the_requests_own_on_either_upstream_path() {
    let up = RawUpstream::start(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    let f = facade(up.addr, |_| {}).await;
    let get = b"GET /a HTTP/1.1\r\nHost: shop\r\nAccept: */*\r\nVia: 1.1 edge\r\nConnection: close\r\n\r\n";
    raw(f.addr, get, WAIT).await;
    assert_eq!(
        up.only_head(),
        "GET /a HTTP/1.1\r\nhost: shop\r\naccept: */*\r\nvia: 1.1 edge\r\n\
         x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: shop\r\n\
         via: 1.1 strangler\r\n\r\n"
    );

    let up = RawUpstream::start(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    let f = facade(up.addr, |_| {}).await;
    let chunked = b"POST /b HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    raw(f.addr, chunked, WAIT).await;
    let head = up.only_head();
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );
    for field in [
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: shop",
        "via: 1.1 strangler",
    ] {
        assert_eq!(
            head.matches(&format!("\r\n{field}\r\n")).count(),
            1,
            "{head}"
        );
    }
    let name = |n: &str| head.matches(&format!("\r\n{n}: ")).count();
    assert_eq!(
        [
            name("x-forwarded-for"),
            name("x-forwarded-proto"),
            name("x-forwarded-host"),
            name("via")
        ],
        [1, 1, 1, 1],
        "{head}"
    );
}

#[tokio::test]
async fn repeated_headers_keep_their_order_and_bytes() {
    let up = RawUpstream::start(
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Bin: \xff\xfe\r\nSet-Cookie: b=2\r\nSet-Cookie: c=3\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let f = facade(up.addr, |_| {}).await;
    let (resp, _) = raw(
        f.addr,
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Multi: one\r\nAccept: */*\r\nX-Multi: two\r\nX-Raw: caf\xe9\r\nX-Multi: three\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    let heads = up.heads.lock().unwrap();
    let head = &heads[0];
    let find = |needle: &[u8]| {
        head.windows(needle.len())
            .position(|w| w == needle)
            .unwrap_or_else(|| panic!("{} missing", String::from_utf8_lossy(needle)))
    };
    assert!(find(b"x-multi: one") < find(b"x-multi: two"));
    assert!(find(b"x-multi: two") < find(b"x-multi: three"));
    find(b"x-raw: caf\xe9\r\n");
    let a = resp.find("set-cookie: a=1").unwrap();
    let b = resp.find("set-cookie: b=2").unwrap();
    let c = resp.find("set-cookie: c=3").unwrap();
    assert!(a < b && b < c, "{resp}");
    assert!(
        resp.contains("x-bin: \u{fffd}\u{fffd}"),
        "non-UTF-8 response value lost: {resp}"
    );
}

#[tokio::test]
async fn traceparent_passes_untouched() {
    let up = RawUpstream::start(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    let f = facade(up.addr, |_| {}).await;
    raw(
        f.addr,
        b"GET / HTTP/1.1\r\nHost: h\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\ntracestate: congo=t61rcWkgMzE\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    let head = up.only_head();
    assert!(
        head.contains(
            "\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
        ),
        "{head}"
    );
    assert!(
        head.contains("\r\ntracestate: congo=t61rcWkgMzE\r\n"),
        "{head}"
    );
}

#[tokio::test]
async fn client_strangler_headers_are_stripped() {
    let up = RawUpstream::start(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    let f = facade(up.addr, |_| {}).await;
    raw(
        f.addr,
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Strangler-Shadow: 1\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(
        !up.only_head()
            .to_ascii_lowercase()
            .contains("x-strangler-shadow"),
        "{}",
        up.only_head()
    );
}

#[tokio::test]
async fn redirects_to_the_upstream_origin_are_rewritten() {
    // The upstream must name its own origin: build it with the real port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let location = format!("http://{addr}/login?next=%2F");
    let app = Router::new().route(
        "/go",
        get(move || {
            let location = location.clone();
            async move {
                http::Response::builder()
                    .status(302)
                    .header("location", location)
                    .header("content-location", "/relative")
                    .body(axum::body::Body::empty())
                    .unwrap()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let f = facade(addr, |_| {}).await;
    let (status, headers, _) = fetch(&f.url("/go")).await;
    assert_eq!(status, 302);
    assert_eq!(
        headers["location"],
        format!("http://{}/login?next=%2F", f.addr).as_str()
    );
    assert_eq!(headers["content-location"], "/relative");

    let f = facade(addr, |c| c.forwarding.rewrite_redirects = false).await;
    let (_, headers, _) = fetch(&f.url("/go")).await;
    assert_eq!(
        headers["location"],
        format!("http://{addr}/login?next=%2F").as_str()
    );
}

#[tokio::test]
async fn head_and_not_modified_keep_content_length() {
    let up = RawUpstream::start(
        b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n",
    )
    .await;
    let f = facade(up.addr, |_| {}).await;
    let (resp, _) = raw(
        f.addr,
        b"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"v1\"\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    let (status, head, body) = parse_raw(&resp);
    assert_eq!(status, 304);
    assert!(head.contains("etag: \"v1\""), "{head}");
    assert_eq!(body, "");

    let up = RawUpstream::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nContent-Type: text/plain\r\n\r\n",
    )
    .await;
    let f = facade(up.addr, |_| {}).await;
    let (resp, _) = raw(
        f.addr,
        b"HEAD /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    let (status, head, body) = parse_raw(&resp);
    assert_eq!(status, 200);
    assert!(head.contains("content-length: 5000"), "{head}");
    assert_eq!(body, "");
}

#[tokio::test]
async fn expect_100_continue_is_honoured() {
    let app = Router::new().route(
        "/up",
        axum::routing::post(|body: Bytes| async move { format!("got {}", body.len()) }),
    );
    let (up, _) = axum_upstream(app).await;
    let f = facade(up, |_| {}).await;
    let mut s = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("no 100 Continue")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue\r\n"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(b"hello").await.unwrap();
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.ends_with("got 5"), "{text}");
}

#[tokio::test]
async fn trailers_pass_both_ways() {
    // The upstream echoes the request trailer back as a response trailer.
    let app = Router::new().route(
        "/t",
        axum::routing::post(|req: axum::extract::Request| async move {
            let mut body = req.into_body();
            let mut got = None;
            let mut data = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.unwrap();
                if let Some(d) = frame.data_ref() {
                    data.extend_from_slice(d);
                }
                if let Some(t) = frame.trailers_ref() {
                    got = t.get("x-checksum").cloned();
                }
            }
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-echo", got.unwrap_or(HeaderValue::from_static("none")));
            let frames = vec![
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(data))),
                Ok(http_body::Frame::trailers(trailers)),
            ];
            http::Response::builder()
                .header("trailer", "x-echo")
                .body(axum::body::Body::new(http_body_util::StreamBody::new(
                    futures_util::stream::iter(frames),
                )))
                .unwrap()
        }),
    );
    let (up, _) = axum_upstream(app).await;
    let f = facade(up, |_| {}).await;
    let (resp, _) = raw(
        f.addr,
        b"POST /t HTTP/1.1\r\nHost: h\r\nTE: trailers\r\nTrailer: x-checksum\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: abc123\r\n\r\n",
        WAIT,
    )
    .await;
    let (status, _, body) = parse_raw(&resp);
    assert_eq!(status, 200, "{resp}");
    assert!(body.contains("hello"), "{body}");
    assert!(
        body.contains("x-echo: abc123"),
        "trailer did not make the round trip: {resp:?}"
    );
}

#[tokio::test]
async fn http_1_0_clients_are_served() {
    let up = RawUpstream::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let f = facade(up.addr, |_| {}).await;
    let (resp, closed) = raw(f.addr, b"GET /old HTTP/1.0\r\n\r\n", WAIT).await;
    let (status, head, body) = parse_raw(&resp);
    assert_eq!((status, body.as_str()), (200, "ok"), "{resp}");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(closed, "an HTTP/1.0 exchange without keep-alive must close");
    let upstream_head = up.only_head();
    assert!(
        upstream_head.starts_with("GET /old HTTP/1.1\r\n"),
        "{upstream_head}"
    );
    assert!(
        upstream_head.contains(&format!("\r\nhost: {}\r\n", up.addr)),
        "{upstream_head}"
    );
    assert!(
        upstream_head.contains("\r\nvia: 1.0 strangler\r\n"),
        "{upstream_head}"
    );
}
