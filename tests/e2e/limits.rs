//! The answers the facade makes itself: 431, 413, 408, 504, 502 — each a problem+json with a
//! request id, and counted.

use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn oversized_head_is_431_and_not_forwarded() {
    let up = RawUpstream::start(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    let f = facade(up.addr, |c| c.limits.max_header_bytes = 2048).await;
    let big = "a".repeat(3000);
    let req = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n");
    let (resp, closed) = raw(f.addr, req.as_bytes(), WAIT).await;
    let (status, head, body) = parse_raw(&resp);
    assert_eq!(status, 431, "{resp}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(body.contains("\"request_id\""), "{body}");
    assert!(closed, "the connection must be closed after a 431");
    assert_eq!(up.count(), 0);
    assert!(f
        .metrics()
        .contains("strangler_facade_answers_total{reason=\"headers_too_large\"} 1\n"));
}

#[tokio::test]
async fn body_over_the_limit_is_413_by_length_or_while_streaming() {
    let app = Router::new().route("/up", post(|b: Bytes| async move { b.len().to_string() }));
    let (up, _) = axum_upstream(app).await;
    let f = facade(up, |c| c.limits.max_body_bytes = Some(100)).await;

    let (resp, closed) = raw(
        f.addr,
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n",
        WAIT,
    )
    .await;
    let (status, _, body) = parse_raw(&resp);
    assert_eq!(status, 413, "{resp}");
    assert!(body.contains("limit is 100"), "{body}");
    assert!(closed);

    let chunk = "x".repeat(80);
    let req = format!(
        "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n{chunk}\r\n50\r\n{chunk}\r\n0\r\n\r\n"
    );
    let (resp, _) = raw(f.addr, req.as_bytes(), WAIT).await;
    assert_eq!(parse_raw(&resp).0, 413, "{resp}");

    // Within the limit it passes.
    let (resp, _) = raw(
        f.addr,
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
            .iter()
            .copied()
            .chain([b'y'; 100])
            .collect::<Vec<_>>()
            .as_slice(),
        WAIT,
    )
    .await;
    let (status, _, body) = parse_raw(&resp);
    assert_eq!((status, body.as_str()), (200, "100"));
}

#[tokio::test]
async fn stalled_body_is_408() {
    let app = Router::new().route("/up", post(|b: Bytes| async move { b.len().to_string() }));
    let (up, _) = axum_upstream(app).await;
    let f = facade(up, |c| {
        c.limits.body_idle_timeout = Duration::from_millis(300)
    })
    .await;
    // Promise 10 bytes, send 3, then stall.
    let (resp, closed) = raw(
        f.addr,
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
        WAIT,
    )
    .await;
    let (status, head, body) = parse_raw(&resp);
    assert_eq!(status, 408, "{resp}");
    assert!(head.contains("application/problem+json"));
    assert!(body.contains("client-timeout"), "{body}");
    assert!(closed);
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "late"
        }),
    );
    let (up, _) = axum_upstream(app).await;
    let f = facade(up, |c| {
        c.legacy.response_timeout = Some(Duration::from_millis(200))
    })
    .await;
    let started = std::time::Instant::now();
    let (status, headers, body) = fetch(&f.url("/slow")).await;
    assert_eq!(status, 504);
    assert!(started.elapsed() < Duration::from_secs(2));
    let v = assert_problem(&headers, &body, 504);
    assert_eq!(v["type"], "urn:strangler:problem:upstream-timeout");
    assert!(f
        .metrics()
        .contains("strangler_upstream_errors_total{kind=\"timeout\"} 1\n"));
}

#[tokio::test]
async fn refused_upstream_is_502() {
    let f = facade(dead_port(), |_| {}).await;
    let (status, headers, body) = fetch(&f.url("/")).await;
    assert_eq!(status, 502);
    let v = assert_problem(&headers, &body, 502);
    assert_eq!(v["type"], "urn:strangler:problem:upstream-unreachable");
    assert!(f
        .metrics()
        .contains("strangler_upstream_errors_total{kind=\"connect\"} 1\n"));
}

#[tokio::test]
async fn upstream_reset_is_502() {
    // Reads the request, then closes without a word.
    let up = RawUpstream::start(b"").await;
    let f = facade(up.addr, |_| {}).await;
    let (status, headers, body) = fetch(&f.url("/")).await;
    assert_eq!(status, 502);
    let v = assert_problem(&headers, &body, 502);
    assert_eq!(v["type"], "urn:strangler:problem:upstream-broken");
}

#[tokio::test]
async fn garbage_from_upstream_is_502() {
    let up = RawUpstream::start(b"SMTP ready\r\n\r\n").await;
    let f = facade(up.addr, |_| {}).await;
    let (status, headers, body) = fetch(&f.url("/")).await;
    assert_eq!(status, 502);
    assert_problem(&headers, &body, 502);
    assert!(
        f.metrics()
            .contains("strangler_upstream_errors_total{kind=\"protocol\"} 1\n"),
        "{}",
        f.metrics()
    );
}
