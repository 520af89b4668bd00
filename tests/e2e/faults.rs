//! Faults of a new service, through the real binary: killed mid-load, hanging, answering 500s,
//! slow. With fallback on, GET clients never see them; writes fall back only when they were never
//! sent; without fallback the breaker opens and closes again after recovery.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use serde_json::json;

use crate::admin::{token_env, Admin, OPERATOR};
use crate::binary::{start, Running};
use crate::harness::*;

const OK: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;
const SLOW: u8 = 3;

/// A new service whose behaviour can be switched, and which can be killed (listener and every
/// open connection closed).
struct NewService {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    seen: Arc<AtomicU64>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl NewService {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(OK));
        let seen = Arc::new(AtomicU64::new(0));
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let (m, sn, t) = (Arc::clone(&mode), Arc::clone(&seen), Arc::clone(&tasks));
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (m, sn) = (Arc::clone(&m), Arc::clone(&sn));
                let conn = tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |_req: http::Request<hyper::body::Incoming>| {
                            let (m, sn) = (Arc::clone(&m), Arc::clone(&sn));
                            async move {
                                sn.fetch_add(1, Ordering::SeqCst);
                                let (status, body) = match m.load(Ordering::SeqCst) {
                                    FAIL => (500, "broken"),
                                    HANG => {
                                        tokio::time::sleep(Duration::from_secs(30)).await;
                                        (200, "late")
                                    }
                                    SLOW => {
                                        tokio::time::sleep(Duration::from_millis(50)).await;
                                        (200, "new")
                                    }
                                    _ => (200, "new"),
                                };
                                let mut resp = http::Response::new(Full::new(Bytes::from_static(
                                    body.as_bytes(),
                                )));
                                *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                                // No connection is kept for reuse, so once `kill` returns every
                                // request the facade sends must connect, and is refused: which
                                // requests "never left" does not depend on whether the facade
                                // noticed a pooled connection closing.
                                resp.headers_mut().insert(
                                    http::header::CONNECTION,
                                    http::HeaderValue::from_static("close"),
                                );
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
                t.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self {
            addr,
            mode,
            seen,
            tasks,
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// Closes the listener and every connection, and returns once they are closed.
    async fn kill(&self) {
        let tasks: Vec<_> = self.tasks.lock().unwrap().drain(..).collect();
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// A legacy app that counts writes.
async fn legacy() -> (SocketAddr, Arc<AtomicU64>) {
    let writes = Arc::new(AtomicU64::new(0));
    let w = Arc::clone(&writes);
    let app = Router::new().fallback(move |method: Method| {
        let w = Arc::clone(&w);
        async move {
            if method == Method::POST {
                w.fetch_add(1, Ordering::SeqCst);
            }
            "legacy"
        }
    });
    (axum_upstream(app).await.0, writes)
}

async fn migrated(
    new: &NewService,
    policy: serde_json::Value,
    fallback: bool,
) -> (Running, Admin, Arc<AtomicU64>) {
    let (legacy, writes) = legacy().await;
    let s = start(&format!("http://{legacy}"), &token_env()).await;
    let admin = Admin::new(&s.admin, Some(OPERATOR));
    admin
        .change(Method::POST, "/api/v1/services", json!({ "name": "orders-svc", "urls": [format!("http://{}", new.addr)], "policy": policy }))
        .await;
    admin
        .change(Method::POST, "/api/v1/contexts", json!({ "name": "orders", "target": "orders-svc", "state": "legacy", "fallback": fallback }))
        .await;
    admin
        .change(
            Method::POST,
            "/api/v1/routes",
            json!({ "context": "orders", "path": "/orders/{*rest}" }),
        )
        .await;
    for _ in 0..3 {
        admin
            .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
            .await;
    }
    let started = Instant::now();
    while send(&s.listen, Method::GET).await.1 != "new" {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the context never migrated"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (s, admin, writes)
}

async fn send(facade: &str, method: Method) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{facade}/orders/1"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn get_clients_never_see_a_failing_new_service() {
    let new = NewService::start().await;
    let (s, admin, _) = migrated(
        &new,
        json!({ "request_timeout_ms": 300, "breaker_min_requests": 1000000 }),
        true,
    )
    .await;
    let f = s.listen.clone();
    for (mode, name) in [
        (FAIL, "500s"),
        (HANG, "hanging"),
        (SLOW, "slow"),
        (OK, "healthy"),
    ] {
        new.set(mode);
        for _ in 0..(if mode == HANG { 3 } else { 20 }) {
            let (status, body) = send(&f, Method::GET).await;
            assert_eq!(status, 200, "a GET saw the new service {name}: {body}");
            let expected = if mode == SLOW || mode == OK {
                "new"
            } else {
                "legacy"
            };
            assert_eq!(body, expected, "while the new service was {name}");
        }
    }

    // Killed in the middle of a load: every GET still answered.
    let failed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (failed, done, f) = (Arc::clone(&failed), Arc::clone(&done), f.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..100 {
                let (status, _) = send(&f, Method::GET).await;
                done.fetch_add(1, Ordering::SeqCst);
                if status != 200 {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // The new service dies in the middle of the load.
    let started = std::time::Instant::now();
    while done.load(Ordering::SeqCst) < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the load never started"
        );
        tokio::task::yield_now().await;
    }
    new.kill().await;
    for t in load {
        t.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "GETs failed when the new service was killed mid-load"
    );
    let metrics = String::from_utf8_lossy(&fetch(&format!("http://{}/metrics", s.admin)).await.2)
        .into_owned();
    assert!(
        metrics.contains("strangler_fallbacks_total{context=\"orders\",reason=\"status_500\"} 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("strangler_fallbacks_total{context=\"orders\",reason=\"timeout\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("strangler_fallbacks_total{context=\"orders\",reason=\"connect\"}"),
        "{metrics}"
    );
    // The traffic rows count the same fallbacks, as answers legacy gave for the context.
    let connect: i64 = metrics
        .lines()
        .find(|l| l.starts_with("strangler_fallbacks_total{context=\"orders\",reason=\"connect\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    let started = Instant::now();
    loop {
        let (status, _, v) = admin
            .call(Method::GET, "/api/v1/traffic?minutes=10", None)
            .await;
        assert_eq!(status, 200, "{v}");
        let legacy = v["contexts"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["context"] == "orders"))
            .map(|c| c["legacy"].clone())
            .unwrap_or_default();
        if legacy["fallbacks"].as_i64() == Some(20 + 3 + connect) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn a_write_goes_only_to_its_owner_and_is_refused_when_the_owner_cannot_take_it() {
    let new = NewService::start().await;
    let (s, _admin, legacy_writes) =
        migrated(&new, json!({ "breaker_min_requests": 1000000 }), true).await;
    new.set(FAIL);
    let (status, body) = send(&s.listen, Method::POST).await;
    assert_eq!(
        (status, body.as_str()),
        (500, "broken"),
        "a sent write must not be repeated on legacy"
    );
    assert_eq!(legacy_writes.load(Ordering::SeqCst), 0);
    new.kill().await;
    // In migrated the new service owns the writes: one it cannot take is refused as
    // retryable, and legacy (which does not own them) never takes it alone.
    let req = http::Request::post(format!("http://{}/orders/1", s.listen))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 503, "a write the owner cannot take");
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("owns its writes") && d.contains("nothing was written")),
        "{problem}"
    );
    assert_eq!(
        legacy_writes.load(Ordering::SeqCst),
        0,
        "legacy took a write it does not own"
    );
    // A read still falls back: reads do not split the data.
    assert_eq!(
        send(&s.listen, Method::GET).await,
        (200, "legacy".to_owned())
    );
    s.stop().await;
}

#[tokio::test]
async fn without_fallback_the_breaker_opens_and_closes_after_recovery() {
    let new = NewService::start().await;
    let policy = json!({ "retry_attempts": 1, "breaker_min_requests": 5, "breaker_failure_percent": 50, "breaker_cool_down_ms": 300 });
    let (s, _admin, _) = migrated(&new, policy, false).await;
    new.set(FAIL);
    // Without fallback the client sees the 500s, until the breaker opens (5 requests at least
    // in the window, half of them failed).
    let mut failures = 0;
    loop {
        let (status, _) = send(&s.listen, Method::GET).await;
        if status == 503 {
            break;
        }
        assert_eq!(status, 500);
        failures += 1;
        assert!(
            failures <= 10,
            "the breaker did not open after {failures} failures"
        );
    }
    assert!(
        failures >= 3,
        "the breaker opened after only {failures} failures"
    );
    let seen = new.seen.load(Ordering::SeqCst);
    let req = http::Request::get(format!("http://{}/orders/1", s.listen))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 503, "the breaker did not open");
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(
        new.seen.load(Ordering::SeqCst),
        seen,
        "an open breaker sent the request"
    );
    let (_, _, runtime) = Admin::new(&s.admin, Some(crate::admin::VIEWER))
        .call(Method::GET, "/api/v1/runtime/services", None)
        .await;
    assert_eq!(runtime["orders-svc"]["breaker"], "open", "{runtime}");
    // The context page says so: the instance is failing, not "healthy", and the open breaker
    // stands out, in words.
    let html = context_page(&s.admin, "orders").await;
    assert!(html.contains("failing: its last"), "{html}");
    assert!(!html.contains(">healthy<"), "{html}");
    assert!(
        html.contains(r#"<p class="notice error" id="breaker">Circuit breaker: "#),
        "{html}"
    );

    new.set(OK);
    // After the breaker's cool-down its probes succeed and it closes.
    let started = std::time::Instant::now();
    while send(&s.listen, Method::GET).await != (200, "new".to_owned()) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the breaker never let a probe through"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..5 {
        assert_eq!(send(&s.listen, Method::GET).await, (200, "new".to_owned()));
    }
    let (_, _, runtime) = Admin::new(&s.admin, Some(crate::admin::VIEWER))
        .call(Method::GET, "/api/v1/runtime/services", None)
        .await;
    assert_eq!(runtime["orders-svc"]["breaker"], "closed", "{runtime}");
    s.stop().await;
}

#[tokio::test]
async fn absurd_policies_are_refused_naming_the_field() {
    let (legacy, _) = legacy().await;
    let s = start(&format!("http://{legacy}"), &token_env()).await;
    let admin = Admin::new(&s.admin, Some(OPERATOR));
    let v = admin.version().await;
    for (policy, field) in [
        (json!({ "connect_timeout_ms": 0 }), "connect_timeout_ms"),
        (
            json!({ "request_timeout_ms": 99999999999u64 }),
            "request_timeout_ms",
        ),
        (json!({ "retry_attempts": 50 }), "retry_attempts"),
        (json!({ "balance": "random" }), "balance"),
    ] {
        let (status, _, p) = admin
            .call(Method::POST, "/api/v1/services", Some(json!({ "base_version": v, "reason": "x", "name": "a", "urls": ["http://127.0.0.1:1"], "policy": policy })))
            .await;
        assert_eq!(status, 422, "{p}");
        assert_eq!(
            p["field"],
            format!("services.a.policy.{field}").as_str(),
            "{p}"
        );
    }
    let (status, _, p) = admin
        .call(Method::POST, "/api/v1/services", Some(json!({ "base_version": v, "reason": "x", "name": "a", "urls": ["http://127.0.0.1:1"], "policy": { "timeout": 5 } })))
        .await;
    assert_eq!(status, 400, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `timeout`"),
        "{p}"
    );
    s.stop().await;
}

/// The context page as a signed-in viewer sees it.
async fn context_page(admin: &str, context: &str) -> String {
    let cookie = sign_in(&format!("http://{admin}"), crate::admin::VIEWER).await;
    let page = http::Request::get(format!("http://{admin}/contexts/{context}"))
        .header("cookie", cookie)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(page).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// A chunked answer the upstream cuts off after a whole chunk reaches the client broken, never
/// as a whole answer: small chunked answers are gathered to be sent with a length, and a
/// gathered part that broke off used to report its size as exact, so the client got
/// `content-length: 5` and the part as the whole body. Over both of the facade's HTTP/1.1
/// servers (its own reader, and hyper's for a request with `Connection: close`).
#[tokio::test]
async fn a_chunked_answer_cut_off_upstream_never_reaches_the_client_whole() {
    let up =
        RawUpstream::start(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            .await;
    let f = facade(up.addr, |_| {}).await;
    for req in [
        &b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ] {
        let (text, closed) = raw(f.addr, req, Duration::from_secs(10)).await;
        assert!(closed, "{text}");
        let lower = text.to_ascii_lowercase();
        assert!(
            !lower.contains("content-length"),
            "a broken body was given a length: {text:?}"
        );
        assert!(
            !text.ends_with("0\r\n\r\n"),
            "a broken body was ended as whole: {text:?}"
        );
    }
}
