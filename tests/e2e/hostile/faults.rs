//! Faults under load: a policy changed during an incident applies at once, a hung new service
//! does not hold clients (legacy answers by a deadline, the breaker opens), answers do not tell
//! clients internal addresses, and readiness follows a hung store within the poll interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use strangler_catalog::MigrationState;

use crate::harness::*;
use crate::shadow::{catalog, metric};

/// A new service whose answers take `delay`.
async fn slow(delay: Duration) -> std::net::SocketAddr {
    axum_upstream(Router::new().route(
        "/orders/{id}",
        get(move || async move {
            tokio::time::sleep(delay).await;
            "new"
        }),
    ))
    .await
    .0
}

#[tokio::test]
async fn a_policy_change_applies_to_the_next_request() {
    let new = slow(Duration::from_millis(800)).await;
    let legacy = named("legacy").await;
    let f = facade(legacy, |_| {}).await;
    let mut c = catalog(new, MigrationState::Migrated);
    c.contexts.get_mut("orders").unwrap().fallback = false;
    c.services
        .get_mut("orders-svc")
        .unwrap()
        .policy
        .request_timeout_ms = Some(10_000);
    f.facade.apply_catalog(&c).unwrap();
    let (status, _, body) = fetch(&f.url("/orders/1")).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"new"[..]));
    // During an incident the timeout is cut: the very next request has the new one.
    c.version = 2;
    c.services
        .get_mut("orders-svc")
        .unwrap()
        .policy
        .request_timeout_ms = Some(100);
    f.facade.apply_catalog(&c).unwrap();
    let (status, headers, body) = fetch(&f.url("/orders/1")).await;
    assert_problem(&headers, &body, 504);
    assert_eq!(status, 504);
}

#[tokio::test]
async fn a_hung_new_service_is_answered_around_by_legacy_and_its_breaker_opens() {
    let new = slow(Duration::from_secs(30)).await;
    let legacy = named("legacy").await;
    let f = facade(legacy, |_| {}).await;
    let mut c = catalog(new, MigrationState::Migrated);
    let policy = &mut c.services.get_mut("orders-svc").unwrap().policy;
    policy.breaker_min_requests = Some(3);
    policy.retry_attempts = Some(1);
    f.facade.apply_catalog(&c).unwrap();
    // Concurrent clients: each is answered by legacy at the deadline (two seconds without a
    // latency seen yet), not after the service's 60 s timeout.
    let started = Instant::now();
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let url = f.url(&format!("/orders/{i}"));
            tokio::spawn(async move { fetch(&url).await })
        })
        .collect();
    for call in calls {
        let (status, _, body) = tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .expect("a client was held by the hung service")
            .unwrap();
        assert_eq!((status.as_u16(), &body[..]), (200, &b"legacy"[..]));
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    let mut m = String::new();
    f.facade.render_metrics(&mut m);
    assert_eq!(
        metric(
            &m,
            "strangler_fallbacks_total{context=\"orders\",reason=\"timeout\"} "
        ),
        Some(4),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "strangler_service_deadline_passed_total{service=\"orders-svc\"} "
        ),
        Some(4),
        "{m}"
    );
    // The deadlines counted as failures: the breaker is open, and legacy answers at once.
    assert_eq!(
        metric(
            &m,
            "strangler_service_breaker_state{service=\"orders-svc\",state=\"open\"} "
        ),
        Some(1),
        "{m}"
    );
    let (status, _, body) = fetch(&f.url("/orders/9")).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"legacy"[..]));
    let mut m = String::new();
    f.facade.render_metrics(&mut m);
    assert_eq!(
        metric(
            &m,
            "strangler_fallbacks_total{context=\"orders\",reason=\"breaker_open\"} "
        ),
        Some(1),
        "{m}"
    );
}

#[tokio::test]
async fn a_502_tells_the_client_what_failed_not_where() {
    let dead = dead_port();
    let f = facade(dead, |_| {}).await;
    let (status, headers, body) = fetch(&f.url("/x")).await;
    let v = assert_problem(&headers, &body, 502);
    assert_eq!(status, 502);
    let detail = v["detail"].as_str().unwrap();
    assert_eq!(detail, "the legacy application could not be reached");
    let text = String::from_utf8_lossy(&body);
    for leak in [dead.to_string(), "os error".into(), "refused".into()] {
        assert!(!text.contains(&leak), "{leak} in {text}");
    }
}

/// A TCP relay to PostgreSQL that can be frozen: connections stay open, nothing passes.
async fn relay(to: String, frozen: Arc<AtomicBool>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = tokio::net::TcpStream::connect(&to).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let pipe = |mut r: tokio::net::tcp::OwnedReadHalf,
                        mut w: tokio::net::tcp::OwnedWriteHalf,
                        frozen: Arc<AtomicBool>| async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match r.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    while frozen.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if w.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            };
            tokio::spawn(pipe(cr, sw, Arc::clone(&frozen)));
            tokio::spawn(pipe(sr, cw, Arc::clone(&frozen)));
        }
    });
    addr
}

#[tokio::test]
async fn readiness_follows_a_hung_store_within_the_poll_interval() {
    let Some(db) = crate::replicas::fresh_database().await else {
        return;
    };
    // postgres://user@host:port/name → the relay in place of host:port.
    let (scheme_user, rest) = db.split_once('@').unwrap();
    let (server, name) = rest.split_once('/').unwrap();
    let frozen = Arc::new(AtomicBool::new(false));
    let via = relay(server.to_owned(), Arc::clone(&frozen)).await;
    let url = format!("{scheme_user}@{via}/{name}");
    let legacy = named("legacy").await;
    let s = crate::binary::start_with(
        &format!("http://{legacy}"),
        &[
            ("STRANGLER_CATALOG_URL", url.as_str()),
            ("STRANGLER_CATALOG_POLL_INTERVAL", "500ms"),
        ],
    )
    .await;
    let readyz = || async {
        let (status, _, body) = fetch(&format!("http://{}/readyz", s.admin)).await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (
            status.as_u16(),
            v["status"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(readyz().await, (200, "ready".to_owned()));
    frozen.store(true, Ordering::SeqCst);
    let started = Instant::now();
    loop {
        if readyz().await.1 == "degraded" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still ready {:?} after the store stopped answering",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The facade keeps serving from its last catalog meanwhile.
    let (status, _, body) = fetch(&format!("http://{}/x", s.listen)).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"legacy"[..]));
    frozen.store(false, Ordering::SeqCst);
    let started = Instant::now();
    while readyz().await.1 != "ready" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}
