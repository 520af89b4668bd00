//! Shadowing with bodies and writes: dry-run and mirror routes, the outbox's redelivery,
//! reverse shadow, compared header fields, and noise learned from legacy answering twice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::Method;
use serde_json::json;
use strangler_catalog::{MigrationState, ShadowWrites};

use crate::admin::Admin;
use crate::harness::*;
use crate::shadow::{catalog, metric, shadowed, until_metric};

type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>, Option<String>, Bytes)>>>;

/// A handler that records (shadow mark, idempotency key, authorization, body) and answers
/// `{"got": <body length>}`.
fn recording(seen: &Seen) -> Router {
    let seen = Arc::clone(seen);
    Router::new().route(
        "/orders/{id}",
        post(move |headers: http::HeaderMap, body: Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .map(|v| v.to_str().unwrap_or_default().to_owned())
                };
                let len = body.len();
                seen.lock().unwrap().push((
                    h("x-strangler-shadow"),
                    h("idempotency-key"),
                    h("authorization"),
                    body,
                ));
                (
                    [("cache-control", "no-store")],
                    axum::Json(json!({ "got": len })),
                )
            }
        }),
    )
}

fn post_req(url: &str, body: Vec<u8>) -> http::Request<http_body_util::Full<Bytes>> {
    http::Request::post(url)
        .header("content-type", "application/octet-stream")
        .header("authorization", "Bearer SECRET-MIRROR-TOKEN")
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test]
async fn dry_run_writes_carry_their_bodies_and_over_the_cap_is_counted() {
    let legacy_seen: Seen = Arc::default();
    let new_seen: Seen = Arc::default();
    let (legacy, _) = axum_upstream(recording(&legacy_seen)).await;
    // The new side differs in one compared header field.
    let new_app = recording(&new_seen).layer(axum::middleware::map_response(
        |mut r: axum::response::Response| async move {
            r.headers_mut().insert(
                "cache-control",
                http::HeaderValue::from_static("max-age=60"),
            );
            r
        },
    ));
    let (new, _) = axum_upstream(new_app).await;
    let f = facade(legacy, |_| {}).await;
    let mut c = catalog(new, MigrationState::Shadow);
    for r in c.routes.values_mut() {
        r.spec.shadow.writes = Some(ShadowWrites::DryRun);
        r.spec.shadow.max_body_bytes = Some(4096);
    }
    if let Some(ctx) = c.contexts.get_mut("orders") {
        ctx.shadow.headers = vec!["cache-control".into()];
    }
    f.facade.apply_catalog(&c).unwrap();

    let body: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let resp = client()
        .request(post_req(&f.url("/orders/1"), body.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = until_metric(&f, "strangler_shadow_compared_total{context=\"orders\"}", 1).await;
    assert_eq!(
        metric(
            &m,
            "strangler_shadow_mismatches_total{context=\"orders\",signature=\"header cache-control\"}"
        ),
        Some(1),
        "{m}"
    );
    {
        let seen = new_seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "the dry-run write reached the new side once");
        assert_eq!(seen[0].0.as_deref(), Some("1"), "marked as a shadow");
        assert_eq!(seen[0].3, body, "the body is mirrored byte for byte");
    }
    assert_eq!(
        legacy_seen.lock().unwrap()[0].3,
        body,
        "legacy got it whole"
    );

    // Over the route's cap: legacy still gets all of it, the shadow is skipped and counted.
    let big = vec![b'x'; 10_000];
    let resp = client()
        .request(post_req(&f.url("/orders/2"), big.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    until_metric(
        &f,
        "strangler_shadow_skipped_total{context=\"orders\",reason=\"body_too_large\"}",
        1,
    )
    .await;
    assert_eq!(legacy_seen.lock().unwrap()[1].3.len(), 10_000);
    assert_eq!(new_seen.lock().unwrap().len(), 1, "no shadow over the cap");

    // Chunked with no declared length, over the cap: caught while streaming.
    let chunks =
        futures_util::stream::iter((0..5).map(|_| {
            Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(vec![b'y'; 2000])))
        }));
    let req = http::Request::post(f.url("/orders/3"))
        .body(http_body_util::StreamBody::new(chunks))
        .unwrap();
    let chunked = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::StreamBody<_>>();
    assert_eq!(chunked.request(req).await.unwrap().status(), 200);
    until_metric(
        &f,
        "strangler_shadow_skipped_total{context=\"orders\",reason=\"body_too_large\"}",
        2,
    )
    .await;
    assert_eq!(legacy_seen.lock().unwrap()[2].3.len(), 10_000);
}

#[tokio::test]
async fn reverse_shadow_compares_what_the_new_side_answered_with_legacy() {
    let legacy_hits: Seen = Arc::default();
    let lh = Arc::clone(&legacy_hits);
    let (legacy, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(move |headers: http::HeaderMap| {
            let lh = Arc::clone(&lh);
            async move {
                let mark = headers
                    .get("x-strangler-shadow")
                    .map(|v| v.to_str().unwrap_or_default().to_owned());
                lh.lock().unwrap().push((mark, None, None, Bytes::new()));
                axum::Json(json!({ "v": 1, "same": true }))
            }
        }),
    ))
    .await;
    let (new, _) = axum_upstream(
        Router::new()
            .route(
                "/orders/{id}",
                get(|| async { axum::Json(json!({ "v": 2, "same": true })) }),
            )
            .route("/orders/{id}", post(|| async { "new wrote" })),
    )
    .await;
    let f = facade(legacy, |_| {}).await;
    let mut c = catalog(new, MigrationState::Canary);
    if let Some(ctx) = c.contexts.get_mut("orders") {
        ctx.weight = 10_000;
        // Cut over, so that the new side owns (and answers) the writes too.
        ctx.cut_over = true;
        ctx.shadow.reverse_percent = Some(100);
    }
    // The route opts out of mirroring writes back to legacy (the default after cutover).
    for r in c.routes.values_mut() {
        r.spec.shadow.writes = Some(ShadowWrites::Off);
    }
    f.facade.apply_catalog(&c).unwrap();
    for _ in 0..3 {
        let (status, _, body) = fetch(&f.url("/orders/5")).await;
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["v"],
            2
        );
    }
    let m = until_metric(&f, "strangler_shadow_compared_total{context=\"orders\"}", 3).await;
    assert_eq!(
        metric(
            &m,
            "strangler_shadow_mismatches_total{context=\"orders\",signature=\"value $.v\"}"
        ),
        Some(3),
        "{m}"
    );
    let hits = legacy_hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.0.as_deref() == Some("1")), "{hits:?}");
    // A write answered by the new side, on a route that opts out, is not replayed to legacy.
    let resp = client()
        .request(post_req(&f.url("/orders/5"), b"{}".to_vec()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    until_metric(
        &f,
        "strangler_shadow_skipped_total{context=\"orders\",reason=\"unsafe_method\"}",
        1,
    )
    .await;
    assert_eq!(legacy_hits.lock().unwrap().len(), 3);
}

/// Waits for the shadow results of `orders` to satisfy `done`.
async fn results_until(
    admin: &Admin,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let (_, _, v) = admin
            .call(
                Method::GET,
                "/api/v1/contexts/orders/shadow?minutes=10",
                None,
            )
            .await;
        if done(&v) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} never happened: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn mirrored_writes_wait_in_the_outbox_until_the_new_service_is_back() {
    let legacy_seen: Seen = Arc::default();
    let (legacy, _) = axum_upstream(recording(&legacy_seen)).await;
    let new_addr = dead_port();
    let scratch = crate::harness::Scratch::new("mirror");
    let dir = scratch.path.clone();
    let catalog_url = format!("sqlite://{}", dir.join("catalog.db").display());
    let (s, admin) = shadowed(
        legacy,
        new_addr,
        &catalog_url,
        json!({}),
        json!({ "methods": ["POST"], "path": "/orders/{id}", "shadow": { "writes": "mirror", "opaque_bodies": true } }),
    )
    .await;

    // The new service is down: the writes are answered by legacy and wait in the outbox.
    for n in 1..=3u8 {
        let resp = client()
            .request(post_req(
                &format!("http://{}/orders/{n}", s.listen),
                vec![n; usize::from(n)],
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let waiting = results_until(&admin, "three writes waiting with an error", |v| {
        v["outbox"]["pending"] == 3 && v["outbox"]["last_error"].is_string()
    })
    .await;
    assert_eq!(waiting["compared"], 0, "{waiting}");

    // It comes back (one answer differs): every write arrives once, in order, with its key.
    let new_seen: Seen = Arc::default();
    let ns = Arc::clone(&new_seen);
    let app = Router::new().route(
        "/orders/{id}",
        post(move |headers: http::HeaderMap, body: Bytes| {
            let ns = Arc::clone(&ns);
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .map(|v| v.to_str().unwrap_or_default().to_owned())
                };
                let len = body.len();
                ns.lock().unwrap().push((
                    h("x-strangler-shadow"),
                    h("idempotency-key"),
                    h("authorization"),
                    body,
                ));
                let got = if len == 2 { 20 } else { len };
                axum::Json(json!({ "got": got }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(new_addr).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let done = results_until(&admin, "the outbox emptied and all compared", |v| {
        v["outbox"]["pending"] == 0 && v["compared"] == 3
    })
    .await;
    assert_eq!(done["matched"], 2, "{done}");
    assert_eq!(
        done["top_signatures"][0]["signature"], "value $.got",
        "{done}"
    );
    let seen = new_seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|s| s.3.len()).collect::<Vec<_>>(),
        [1, 2, 3],
        "delivered once each, in order"
    );
    for (mark, key, auth, _) in &seen {
        assert_eq!(mark.as_deref(), Some("mirror"));
        assert!(
            key.as_deref().is_some_and(|k| k.starts_with("strangler-")),
            "{key:?}"
        );
        assert_eq!(auth, &None, "credentials are not mirrored");
    }
    let keys: std::collections::HashSet<_> = seen.iter().map(|s| s.1.clone()).collect();
    assert_eq!(keys.len(), 3, "one key per write");
    s.stop().await;
    // Neither the catalog nor the mirror's log beside it holds the credential.
    let files = files_under(&dir);
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let secret = b"SECRET-MIRROR-TOKEN";
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "the Authorization value reached {}",
            path.display()
        );
    }
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "wal")),
        "the log's segment was searched: {files:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn noise_learned_from_legacy_is_proposed_and_applies_once_accepted() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let n = Arc::new(AtomicU64::new(0));
    let n2 = Arc::clone(&n);
    let (legacy, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(move || {
            let n = n2.fetch_add(1, Ordering::SeqCst);
            async move { axum::Json(json!({ "id": 7, "requestId": format!("req-{n}") })) }
        }),
    ))
    .await;
    let (new, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(|| async { axum::Json(json!({ "id": 7, "requestId": "other" })) }),
    ))
    .await;
    let catalog_url = crate::binary::temp_catalog();
    let (s, admin) = shadowed(
        legacy,
        new,
        &catalog_url,
        json!({ "learn_percent": 100 }),
        json!({ "path": "/orders/{id}" }),
    )
    .await;
    for _ in 0..4 {
        assert_eq!(fetch(&format!("http://{}/orders/7", s.listen)).await.0, 200);
    }
    let started = Instant::now();
    let proposals = loop {
        let (_, _, v) = admin
            .call(Method::GET, "/api/v1/contexts/orders/shadow/noise", None)
            .await;
        if v["items"][0]["count"].as_i64() >= Some(4) {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing learned: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(proposals["items"][0]["path"], "$.requestId", "{proposals}");
    assert_eq!(proposals["items"][0]["accepted"], false);
    assert_eq!(
        proposals["items"].as_array().unwrap().len(),
        1,
        "{proposals}"
    );
    let before = results_until(&admin, "four compared", |v| v["compared"] == 4).await;
    assert_eq!(
        before["matched"], 0,
        "not applied before it is accepted: {before}"
    );

    // Accepting is a catalog change, audited; an unknown path is refused.
    let v = admin.version().await;
    let (status, _, p) = admin
        .call(
            Method::POST,
            "/api/v1/contexts/orders/shadow/noise/accept",
            Some(json!({ "base_version": v, "reason": "request ids differ per call", "path": "$.nope" })),
        )
        .await;
    assert_eq!(status, 404, "{p}");
    let accepted = admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/shadow/noise/accept",
            json!({ "reason": "request ids differ per call", "path": "$.requestId" }),
        )
        .await;
    assert_eq!(
        accepted["item"]["shadow"]["ignore"],
        json!(["$.requestId"]),
        "{accepted}"
    );
    let (_, _, audit) = admin
        .call(Method::GET, "/api/v1/audit?target=context:orders", None)
        .await;
    assert_eq!(
        audit["items"][0]["reason"], "request ids differ per call",
        "{audit}"
    );
    admin.in_effect().await;
    for _ in 0..2 {
        fetch(&format!("http://{}/orders/7", s.listen)).await;
    }
    let after = results_until(&admin, "six compared", |v| v["compared"] == 6).await;
    assert_eq!(after["matched"], 2, "the accepted rule applies: {after}");

    // Pausing shadowing is a typed change too: nothing is copied, the share is kept.
    let paused = admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/shadow/pause",
            json!({ "reason": "the new service is being redeployed", "paused": true }),
        )
        .await;
    assert_eq!(paused["item"]["shadow"]["paused"], true, "{paused}");
    let (_, _, audit) = admin
        .call(Method::GET, "/api/v1/audit?target=context:orders", None)
        .await;
    assert_eq!(audit["items"][0]["action"], "pause-shadow", "{audit}");
    admin.in_effect().await;
    for _ in 0..2 {
        fetch(&format!("http://{}/orders/7", s.listen)).await;
    }
    let skipped = results_until(&admin, "two not sampled", |v| {
        v["skipped"]["not_sampled"] == 2
    })
    .await;
    assert_eq!(
        skipped["compared"], 6,
        "nothing compared while paused: {skipped}"
    );
    s.stop().await;
}

#[tokio::test]
async fn shadow_targets_that_hang_or_answer_garbage_are_counted_and_never_reach_the_client() {
    let (legacy, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(|| async { axum::Json(json!({ "id": 1 })) }),
    ))
    .await;
    let (new, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(
            |axum::extract::Path(id): axum::extract::Path<u32>| async move {
                match id {
                    // Hangs past the shadow timeout.
                    1 => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        axum::response::Response::new(axum::body::Body::from("late"))
                    }
                    // Over the body cap (2 MiB against 1 MiB).
                    2 => axum::response::Response::new(axum::body::Body::from(vec![b'x'; 2 << 20])),
                    // Invalid JSON under a JSON content type.
                    _ => axum::response::Response::builder()
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from("{\"id\": 1,"))
                        .unwrap(),
                }
            },
        ),
    ))
    .await;
    let f = facade(legacy, |c| c.shadow.timeout = Duration::from_millis(300)).await;
    f.facade
        .apply_catalog(&catalog(new, MigrationState::Shadow))
        .unwrap();
    let started = Instant::now();
    for id in [1, 2, 3] {
        let (status, _, body) = fetch(&f.url(&format!("/orders/{id}"))).await;
        assert_eq!((status.as_u16(), &body[..]), (200, &br#"{"id":1}"#[..]));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the client waited"
    );
    until_metric(
        &f,
        "strangler_shadow_skipped_total{context=\"orders\",reason=\"shadow_failed\"}",
        1,
    )
    .await;
    until_metric(
        &f,
        "strangler_shadow_skipped_total{context=\"orders\",reason=\"body_too_large\"}",
        1,
    )
    .await;
    let m = until_metric(
        &f,
        "strangler_shadow_mismatches_total{context=\"orders\",signature=\"body $ (invalid JSON)\"}",
        1,
    )
    .await;
    assert_eq!(
        metric(&m, "strangler_shadow_compared_total{context=\"orders\"}"),
        Some(1),
        "{m}"
    );
}

#[tokio::test]
async fn a_write_legacy_failed_is_not_mirrored() {
    // Legacy fails the write to /orders/bad with a 500, refuses /orders/refused with a 422,
    // takes the others.
    let legacy = Router::new().route(
        "/orders/{id}",
        post(
            |axum::extract::Path(id): axum::extract::Path<String>| async move {
                match id.as_str() {
                    "bad" => (http::StatusCode::INTERNAL_SERVER_ERROR, "legacy broke"),
                    "refused" => (http::StatusCode::UNPROCESSABLE_ENTITY, "not a valid order"),
                    _ => (http::StatusCode::OK, "stored"),
                }
            },
        ),
    );
    let (legacy, _) = axum_upstream(legacy).await;
    let new_seen: Seen = Arc::default();
    let (new, _) = axum_upstream(recording(&new_seen)).await;
    let scratch = crate::harness::Scratch::new("mirror-failed");
    let dir = scratch.path.clone();
    let catalog_url = format!("sqlite://{}", dir.join("catalog.db").display());
    let (s, admin) = shadowed(
        legacy,
        new,
        &catalog_url,
        json!({}),
        json!({ "methods": ["POST"], "path": "/orders/{id}", "shadow": { "writes": "mirror", "opaque_bodies": true } }),
    )
    .await;
    for (id, want) in [("bad", 500), ("refused", 422), ("ok", 200)] {
        let resp = client()
            .request(post_req(
                &format!("http://{}/orders/{id}", s.listen),
                vec![1],
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), want);
    }
    let v = results_until(&admin, "one compared and one skipped", |v| {
        v["compared"] == 1 && v["skipped"]["legacy_failed"] == 2
    })
    .await;
    assert_eq!(v["outbox"]["pending"], 0, "{v}");
    assert_eq!(
        new_seen.lock().unwrap().len(),
        1,
        "only the write legacy took was mirrored"
    );
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
