//! Shadow traffic: legacy answers, a copy goes to the new service, the answers are compared.
//!
//! Size: just over 600 lines: the life of a compared shadow (sampling, budget, governor,
//! results in the catalog, noise rules) with one shared catalog fixture.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use strangler_catalog::{Catalog, Context, MigrationState, Route, RouteSpec, Service};

use crate::harness::*;

pub(crate) fn catalog(new: std::net::SocketAddr, state: MigrationState) -> Catalog {
    let mut c = Catalog {
        version: 1,
        ..Catalog::default()
    };
    c.services.insert(
        "orders-svc".into(),
        Service {
            name: "orders-svc".into(),
            urls: vec![format!("http://{new}")],
            policy: Default::default(),
        },
    );
    c.contexts.insert(
        "orders".into(),
        Context {
            cut_over: false,
            owner_move: None,
            name: "orders".into(),
            target: "orders-svc".into(),
            state,
            weight: 0,
            sticky: None,
            description: String::new(),
            fallback: true,
            shadow: Default::default(),
            translator: None,
            objective: None,
            rollout: None,
            fallback_after_ms: None,
        },
    );
    let spec = RouteSpec {
        methods: vec![],
        path: "/orders/{id}".into(),
        host: None,
        headers: vec![],
        query: vec![],
        version: None,
        reads: false,
        shadow: Default::default(),
    };
    c.routes.insert(
        spec.id(),
        Route {
            id: spec.id(),
            context: "orders".into(),
            spec,
        },
    );
    c
}

pub(crate) fn metric(text: &str, line_start: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(line_start)
            .and_then(|v| v.trim().parse().ok())
    })
}

pub(crate) async fn until_metric(f: &FacadeHandle, line: &str, want: u64) -> String {
    let started = Instant::now();
    loop {
        let m = f.metrics();
        if metric(&m, line) == Some(want) {
            return m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{line} never reached {want}:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shadow_copies_are_compared_and_mismatches_grouped_by_signature() {
    let legacy = Router::new().route(
        "/orders/{id}",
        get(|axum::extract::Path(id): axum::extract::Path<u32>| async move {
            axum::Json(serde_json::json!({ "orderId": id, "total": "49.80", "lines": [{"sku": "a"}, {"sku": "b"}] }))
        }),
    );
    let shadow_marks = Arc::new(AtomicU64::new(0));
    let marks = Arc::clone(&shadow_marks);
    let writes = Arc::new(AtomicU64::new(0));
    let w = Arc::clone(&writes);
    let new = Router::new().route(
        "/orders/{id}",
        get(move |axum::extract::Path(id): axum::extract::Path<u32>, headers: http::HeaderMap| {
            let marks = Arc::clone(&marks);
            async move {
                if headers.get("x-strangler-shadow").is_some_and(|v| v == "1") {
                    marks.fetch_add(1, Ordering::SeqCst);
                }
                // Order 2 has the planted difference: the total as a number.
                let total = if id == 2 { serde_json::json!(4980) } else { serde_json::json!("49.80") };
                axum::Json(serde_json::json!({ "lines": [{"sku": "a"}, {"sku": "b"}], "total": total, "orderId": id }))
            }
        })
        .post(move || {
            let w = Arc::clone(&w);
            async move {
                w.fetch_add(1, Ordering::SeqCst);
                "written"
            }
        }),
    );
    let (legacy, _) = axum_upstream(legacy).await;
    let (new, _) = axum_upstream(new).await;
    let f = facade(legacy, |_| {}).await;
    f.facade
        .apply_catalog(&catalog(new, MigrationState::Shadow))
        .unwrap();

    for id in [1, 1, 2, 3] {
        let (status, _, body) = fetch(&f.url(&format!("/orders/{id}"))).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["total"], "49.80", "the client must get legacy's answer");
    }
    let m = until_metric(&f, "strangler_shadow_compared_total{context=\"orders\"}", 4).await;
    assert_eq!(
        metric(&m, "strangler_shadow_matched_total{context=\"orders\"}"),
        Some(3),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "strangler_shadow_mismatches_total{context=\"orders\",signature=\"type $.total\"}"
        ),
        Some(1),
        "{m}"
    );
    assert_eq!(
        shadow_marks.load(Ordering::SeqCst),
        4,
        "shadow copies must carry X-Strangler-Shadow: 1"
    );

    // Writes are not shadowed by default.
    let req = http::Request::post(f.url("/orders/1"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 405, "legacy has no POST route");
    // Deciding is synchronous: by the answer, the write was counted as not shadowed.
    assert_eq!(
        metric(
            &f.metrics(),
            "strangler_shadow_skipped_total{context=\"orders\",reason=\"unsafe_method\"} "
        ),
        Some(1)
    );
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "a write reached the new service in shadow"
    );
    let m = f.metrics();
    assert_eq!(
        metric(
            &m,
            "strangler_shadow_skipped_total{context=\"orders\",reason=\"unsafe_method\"}"
        ),
        Some(1),
        "{m}"
    );
}

#[tokio::test]
async fn a_slow_or_failing_shadow_never_touches_the_client_and_the_budget_drops() {
    let (legacy, _) =
        axum_upstream(Router::new().route("/orders/{id}", get(|| async { "legacy" }))).await;
    let (new, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "late"
        }),
    ))
    .await;
    let f = facade(legacy, |c| c.shadow.max_in_flight = 2).await;
    f.facade
        .apply_catalog(&catalog(new, MigrationState::Shadow))
        .unwrap();
    let started = Instant::now();
    for _ in 0..10 {
        let (status, _, body) = fetch(&f.url("/orders/1")).await;
        assert_eq!((status.as_u16(), &body[..]), (200, &b"legacy"[..]));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the client waited for the shadow"
    );
    let m = f.metrics();
    assert_eq!(
        metric(
            &m,
            "strangler_shadow_skipped_total{context=\"orders\",reason=\"budget_full\"}"
        ),
        Some(8),
        "{m}"
    );

    // A new service that is down: counted, the client unaffected.
    let f = facade(legacy, |_| {}).await;
    f.facade
        .apply_catalog(&catalog(dead_port(), MigrationState::Shadow))
        .unwrap();
    for _ in 0..3 {
        assert_eq!(fetch(&f.url("/orders/1")).await.2, "legacy");
    }
    until_metric(
        &f,
        "strangler_shadow_skipped_total{context=\"orders\",reason=\"shadow_failed\"}",
        3,
    )
    .await;
}

/// When legacy (the primary in shadow) gives no answer, the shadow planned for the request is
/// counted as skipped — before the client gets its 502 — and no copy goes out.
#[tokio::test]
async fn a_shadow_whose_primary_failed_is_counted_not_lost() {
    let hits = Arc::new(AtomicU64::new(0));
    let h = Arc::clone(&hits);
    let (new, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(move || {
            let h = Arc::clone(&h);
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                "new"
            }
        }),
    ))
    .await;
    let f = facade(dead_port(), |_| {}).await;
    f.facade
        .apply_catalog(&catalog(new, MigrationState::Shadow))
        .unwrap();
    for _ in 0..2 {
        let (status, _, _) = fetch(&f.url("/orders/1")).await;
        assert_eq!(status.as_u16(), 502);
    }
    let m = f.metrics();
    assert_eq!(
        metric(
            &m,
            "strangler_shadow_skipped_total{context=\"orders\",reason=\"primary_failed\"}"
        ),
        Some(2),
        "{m}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no copy of a request legacy never answered"
    );
}

#[tokio::test]
async fn only_the_shadow_state_shadows() {
    let hits = Arc::new(AtomicU64::new(0));
    let h = Arc::clone(&hits);
    let (legacy, _) =
        axum_upstream(Router::new().route("/orders/{id}", get(|| async { "legacy" }))).await;
    let (new, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(move || {
            let h = Arc::clone(&h);
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                "new"
            }
        }),
    ))
    .await;
    let f = facade(legacy, |_| {}).await;
    f.facade
        .apply_catalog(&catalog(new, MigrationState::Legacy))
        .unwrap();
    fetch(&f.url("/orders/1")).await;
    // Deciding is synchronous: by the answer, a context in legacy planned no shadow at all.
    let m = f.metrics();
    assert!(
        !m.contains("strangler_shadow_skipped_total{context=\"orders\""),
        "{m}"
    );
    assert!(
        !m.contains("strangler_shadow_compared_total{context=\"orders\""),
        "{m}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn shadow_results_reach_the_catalog_and_the_api() {
    use crate::admin::{token_env, Admin, OPERATOR};
    use http::Method;
    use serde_json::json;
    let (legacy, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(|| async { axum::Json(json!({ "status": "N", "total": "10.00" })) }),
    ))
    .await;
    let (new, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(|| async { axum::Json(json!({ "status": "new", "total": "10.00" })) }),
    ))
    .await;
    let catalog = crate::binary::temp_catalog();
    let mut env = token_env();
    env.push(("STRANGLER_CATALOG_URL", catalog.as_str()));
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "200ms"));
    let s = crate::binary::start_with(&format!("http://{legacy}"), &env).await;
    let admin = Admin::new(&s.admin, Some(OPERATOR));
    admin
        .carve(
            "orders-svc",
            &format!("http://{new}"),
            "orders",
            &["/orders/{id}"],
            None,
        )
        .await;
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/promote",
            json!({ "reason": "compare" }),
        )
        .await;
    admin.in_effect().await;
    for _ in 0..10 {
        assert_eq!(fetch(&format!("http://{}/orders/7", s.listen)).await.0, 200);
    }
    let started = Instant::now();
    let results = loop {
        let (_, _, v) = admin
            .call(
                Method::GET,
                "/api/v1/contexts/orders/shadow?minutes=5",
                None,
            )
            .await;
        // Every request compared — or, on a machine so loaded that the facade's workers are
        // busier than its ceiling (a debug build beside the whole suite on two cores), the
        // rest sampled away by the governor and counted as such; either way accounted for.
        let compared = v["compared"].as_i64().unwrap_or(0);
        let governed = v["skipped"]["budget_full"].as_i64().unwrap_or(0);
        if compared >= 1 && compared + governed == 10 {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "shadow results never reached the catalog: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(results["matched"], 0, "{results}");
    assert_eq!(
        results["top_signatures"][0]["signature"], "value $.status",
        "{results}"
    );
    assert_eq!(
        results["top_signatures"][0]["count"], results["compared"],
        "{results}"
    );
    s.stop().await;
}

#[tokio::test]
async fn noise_rules_apply_to_live_comparisons_and_bad_ones_are_refused() {
    let (legacy, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(|| async {
            axum::Json(serde_json::json!({ "id": 1, "updatedAt": "2026-11-22T05:00:00Z" }))
        }),
    ))
    .await;
    let (new, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(|| async {
            axum::Json(serde_json::json!({ "id": 1, "updatedAt": "2026-11-22T05:00:09Z" }))
        }),
    ))
    .await;
    let f = facade(legacy, |_| {}).await;
    let mut c = catalog(new, MigrationState::Shadow);
    if let Some(ctx) = c.contexts.get_mut("orders") {
        ctx.shadow.ignore = vec!["$.updatedAt".into()];
    }
    f.facade.apply_catalog(&c).unwrap();
    for _ in 0..3 {
        fetch(&f.url("/orders/1")).await;
    }
    let m = until_metric(&f, "strangler_shadow_compared_total{context=\"orders\"}", 3).await;
    assert_eq!(
        metric(&m, "strangler_shadow_matched_total{context=\"orders\"}"),
        Some(3),
        "{m}"
    );

    // Through the API, a bad rule is a 422 naming it.
    use crate::admin::{token_env, Admin, OPERATOR};
    let s = crate::binary::start(&format!("http://{legacy}"), &token_env()).await;
    let admin = Admin::new(&s.admin, Some(OPERATOR));
    admin
        .change(
            http::Method::POST,
            "/api/v1/services",
            serde_json::json!({ "name": "orders-svc", "urls": [] }),
        )
        .await;
    let v = admin.version().await;
    let (status, _, p) = admin
        .call(
            http::Method::POST,
            "/api/v1/contexts",
            Some(serde_json::json!({ "base_version": v, "reason": "x", "name": "orders", "target": "orders-svc", "state": "legacy", "shadow": { "ignore": ["updatedAt"] } })),
        )
        .await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(
        p["field"], "contexts.orders.shadow.ignore[updatedAt]",
        "{p}"
    );
    s.stop().await;
}

#[tokio::test]
async fn stored_examples_are_redacted_and_secrets_never_reach_the_store() {
    use http::Method;
    use serde_json::json;
    let (legacy, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(|| async { axum::Json(json!({ "card": "4111-SECRET-CARD", "total": "10.00" })) }),
    ))
    .await;
    let (new, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(|| async { axum::Json(json!({ "card": "4111-SECRET-CARD", "total": 1000 })) }),
    ))
    .await;
    let scratch = crate::harness::Scratch::new("redact");
    let dir = scratch.path.clone();
    let catalog = format!("sqlite://{}", dir.join("catalog.db").display());
    let (s, admin) = shadowed(
        legacy,
        new,
        &catalog,
        json!({ "redact": ["$.card"] }),
        json!({ "path": "/orders/{id}" }),
    )
    .await;
    for _ in 0..3 {
        let req = http::Request::get(format!("http://{}/orders/9?session=SECRET-QUERY", s.listen))
            .header("authorization", "Bearer SECRET-BEARER-TOKEN")
            .header("cookie", "sid=SECRET-COOKIE")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        assert_eq!(client().request(req).await.unwrap().status(), 200);
    }
    let started = Instant::now();
    let results = loop {
        let (_, _, v) = admin
            .call(Method::GET, "/api/v1/contexts/orders/shadow", None)
            .await;
        if v["examples"].as_array().is_some_and(|e| !e.is_empty()) {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no example stored: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let e = &results["examples"][0];
    assert_eq!(e["signature"], "type $.total", "{results}");
    assert_eq!(e["path"], "/orders/9");
    assert!(
        e["legacy_body"].as_str().unwrap().contains("[redacted]"),
        "{e}"
    );
    s.stop().await;
    // Search every byte the store and the mirror's log wrote.
    for path in crate::harness::files_under(&dir) {
        let bytes = std::fs::read(&path).unwrap();
        for secret in [
            "SECRET-BEARER-TOKEN",
            "SECRET-COOKIE",
            "SECRET-QUERY",
            "4111-SECRET-CARD",
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} reached the store"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The binary on `catalog_url` in front of `legacy`, with context `orders` (in `shadow` state,
/// `policy` as its shadow policy) moving to `new`, and `route` added to it; once the catalog
/// has been picked up.
pub(crate) async fn shadowed(
    legacy: std::net::SocketAddr,
    new: std::net::SocketAddr,
    catalog_url: &str,
    policy: serde_json::Value,
    route: serde_json::Value,
) -> (crate::binary::Running, crate::admin::Admin) {
    shadowed_with(legacy, new, catalog_url, policy, route, &[]).await
}

/// [`shadowed`], with more environment for the process.
pub(crate) async fn shadowed_with(
    legacy: std::net::SocketAddr,
    new: std::net::SocketAddr,
    catalog_url: &str,
    policy: serde_json::Value,
    mut route: serde_json::Value,
    extra_env: &[(&str, &str)],
) -> (crate::binary::Running, crate::admin::Admin) {
    use crate::admin::{token_env, Admin, OPERATOR};
    use http::Method;
    use serde_json::json;
    let mut env = token_env();
    env.push(("STRANGLER_CATALOG_URL", catalog_url));
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "200ms"));
    env.extend_from_slice(extra_env);
    let s = crate::binary::start_with(&format!("http://{legacy}"), &env).await;
    let admin = Admin::new(&s.admin, Some(OPERATOR));
    admin
        .change(
            Method::POST,
            "/api/v1/services",
            json!({ "name": "orders-svc", "urls": [format!("http://{new}")] }),
        )
        .await;
    admin
        .change(
            Method::POST,
            "/api/v1/contexts",
            json!({ "name": "orders", "target": "orders-svc", "state": "shadow", "shadow": policy }),
        )
        .await;
    route["context"] = "orders".into();
    admin.change(Method::POST, "/api/v1/routes", route).await;
    admin.in_effect().await;
    (s, admin)
}

/// Shadows yield to the clients: while the workers are busier than `cpu_ceiling`, the governor
/// samples compared shadows down (counted `budget_full`, a few still compared), and lets them
/// grow back once the load is gone. Here the test's own single-threaded runtime serves everything, so
/// sending requests back to back keeps it busier than a ceiling of 10 %.
#[tokio::test]
async fn a_busy_facade_samples_shadows_down_by_itself_and_lets_go_after() {
    let (legacy, _) =
        axum_upstream(Router::new().route("/orders/{id}", get(|| async { "legacy" }))).await;
    let (new, _) =
        axum_upstream(Router::new().route("/orders/{id}", get(|| async { "new" }))).await;
    let f = facade(legacy, |c| c.shadow.cpu_ceiling = 0.1).await;
    f.facade
        .apply_catalog(&catalog(new, MigrationState::Shadow))
        .unwrap();
    let governor = f.facade.start_shadow_governor();
    let governed = |m: &str| metric(m, "strangler_shadow_governed_per_second").unwrap_or(0);
    let budget_full = "strangler_shadow_skipped_total{context=\"orders\",reason=\"budget_full\"}";
    let started = Instant::now();
    let mut sent = 0u64;
    let m = loop {
        let (status, _, body) = fetch(&f.url("/orders/1")).await;
        assert_eq!((status.as_u16(), &body[..]), (200, &b"legacy"[..]));
        sent += 1;
        let m = f.metrics();
        // Under the idle cap (1,000 a second): cut because the workers are busy.
        if (1..1000).contains(&governed(&m)) && metric(&m, budget_full).unwrap_or(0) > 0 {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "after {sent} requests the governor never limited shadows:\n{m}"
        );
    };
    assert!(
        m.lines()
            .any(|l| l.starts_with("strangler_worker_busy_ratio ")),
        "the busy share is exposed:\n{m}"
    );
    // Sampled down, not off: some were compared.
    until_compared_some(&f).await;
    // Idle, the workers are no longer busy: the cap is back at the idle one.
    let idle = Instant::now();
    loop {
        let m = f.metrics();
        if governed(&m) >= 1000 {
            break;
        }
        assert!(
            idle.elapsed() < Duration::from_secs(30),
            "the governor never let go:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    governor.abort();
}

async fn until_compared_some(f: &FacadeHandle) {
    let started = Instant::now();
    loop {
        let m = f.metrics();
        if metric(&m, "strangler_shadow_compared_total{context=\"orders\"}").unwrap_or(0) > 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing compared:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
