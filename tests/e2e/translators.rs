//! Anti-corruption translators on the live path, in shadow comparison and on fallback, over
//! real sockets: legacy clients speak the legacy contract, the new service its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use strangler_catalog::{Catalog, MigrationState, RouteSpec};

use crate::harness::*;
use crate::shadow::{catalog, metric, until_metric};

/// The legacy contract: camelCase, money as decimal strings, one-letter statuses, its own
/// error envelope, under /api/orders. The service: snake_case, cents, words, problem+json,
/// under /v2/orders.
const ORDERS: &str = r#"
[[paths]]
from = "/api/orders/{id}"
to = "/v2/orders/{id}"

[[paths]]
from = "/api/orders"
to = "/v2/orders"

[request.headers]
from_capture = { "x-order-id" = "id" }

[[request.body]]
op = "case"
style = "snake"

[[request.body]]
op = "convert"
at = "$.total"
to = "cents"

[[request.body]]
op = "rename"
from = "$.total"
to = "$.total_cents"

[[response.body]]
op = "convert"
at = "$.total_cents"
to = "decimal"

[[response.body]]
op = "rename"
from = "$.total_cents"
to = "$.total"

[[response.body]]
op = "map"
at = "$.status"
values = { open = "O", shipped = "S" }

[[response.body]]
op = "case"
style = "camel"

[response.errors]
body = { errorCode = "$.title", errorMessage = "$.detail" }
"#;

/// The test catalog with `/api/orders` routes and the translator on the context.
fn translated(new: std::net::SocketAddr, state: MigrationState, translator: &str) -> Catalog {
    let mut c = catalog(new, state);
    c.routes.clear();
    for path in ["/api/orders/{id}", "/api/orders", "/api/files/{*rest}"] {
        let spec = RouteSpec {
            methods: vec![],
            path: path.into(),
            host: None,
            headers: vec![],
            query: vec![],
            version: None,
            shadow: Default::default(),
        };
        c.routes.insert(
            spec.id(),
            strangler_catalog::Route {
                id: spec.id(),
                context: "orders".into(),
                spec,
            },
        );
    }
    if let Some(ctx) = c.contexts.get_mut("orders") {
        ctx.translator = Some(translator.to_owned());
    }
    c
}

/// What the new service saw: method, path and query, x-order-id, body.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>, String)>>>;

fn new_service(seen: Seen) -> Router {
    let record = move |seen: Seen| {
        move |req: axum::extract::Request| {
            let seen = Arc::clone(&seen);
            async move {
                let method = req.method().to_string();
                let target = req.uri().to_string();
                let order = req
                    .headers()
                    .get("x-order-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let body = String::from_utf8_lossy(&body).into_owned();
                seen.lock()
                    .unwrap()
                    .push((method, target, order, body.clone()));
                body
            }
        }
    };
    Router::new()
        .route(
            "/v2/orders/{id}",
            get(|Path(id): Path<u64>| async move {
                if id == 404 {
                    return (
                        http::StatusCode::NOT_FOUND,
                        [("content-type", "application/problem+json")],
                        r#"{"type":"about:blank","title":"order-missing","status":404,"detail":"no order 404"}"#.to_owned(),
                    );
                }
                // Order 13's total is not an amount: the translator cannot convert it.
                let total = if id == 13 { r#""lots""# } else { "1999" };
                (
                    http::StatusCode::OK,
                    [("content-type", "application/json")],
                    format!(r#"{{"order_id":{id},"total_cents":{total},"status":"shipped","line_items":[{{"sku_code":"a"}}]}}"#),
                )
            }),
        )
        .route("/v2/orders", post(record(Arc::clone(&seen))))
        .route("/api/files/{*rest}", post(record(Arc::clone(&seen))))
        .route("/v2/files/{*rest}", post(record(seen)))
}

#[tokio::test]
async fn requests_and_answers_cross_the_translator_on_the_live_path() {
    let seen: Seen = Arc::default();
    let (new, _) = axum_upstream(new_service(Arc::clone(&seen))).await;
    let (legacy, legacy_hits) = axum_upstream(Router::new()).await;
    let f = facade(legacy, |_| {}).await;
    f.facade
        .apply_catalog(&translated(new, MigrationState::Migrated, ORDERS))
        .unwrap();

    // A read: path rewritten, the answer back in the legacy shape.
    let (status, headers, body) = fetch(&f.url("/api/orders/7")).await;
    assert_eq!(status, 200);
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"orderId":7,"status":"S","lineItems":[{"skuCode":"a"}],"total":"19.99"}"#
    );
    assert_eq!(
        headers
            .get("content-length")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some(body.len().to_string()),
        "the translated body has its own length"
    );

    // A write: the body in the service's model, the path capture in a header.
    let req = http::Request::post(f.url("/api/orders?src=web"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"customerId": 12, "total": "5.10", "giftWrap": true}"#,
        )))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(got.0, "POST");
    assert_eq!(got.1, "/v2/orders?src=web");
    assert_eq!(
        got.3,
        r#"{"customer_id":12,"gift_wrap":true,"total_cents":510}"#
    );

    // The service's problem+json becomes the legacy error envelope, status kept.
    let (status, headers, body) = fetch(&f.url("/api/orders/404")).await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"errorCode":"order-missing","errorMessage":"no order 404"}"#
    );
    assert_eq!(legacy_hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_failed_translation_is_a_clear_answer_counted_per_context() {
    let seen: Seen = Arc::default();
    let (new, _) = axum_upstream(new_service(Arc::clone(&seen))).await;
    let (legacy, _) = axum_upstream(Router::new()).await;
    let f = facade(legacy, |_| {}).await;
    f.facade
        .apply_catalog(&translated(new, MigrationState::Retired, ORDERS))
        .unwrap();

    // The service's answer has a total that is not an amount: 502 naming the rule and path.
    let (_, headers, body) = fetch(&f.url("/api/orders/13")).await;
    let problem = assert_problem(&headers, &body, 502);
    assert_eq!(problem["rule"], "response.body[0] (convert, line 27)");
    assert_eq!(problem["path"], "$.total_cents");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("context `orders`"),
        "{problem}"
    );
    assert!(
        !String::from_utf8_lossy(&body).contains("order_id"),
        "the untranslated answer is not passed on"
    );

    // The client's body is not JSON: 400, and the service never sees it.
    let before = seen.lock().unwrap().len();
    let req = http::Request::post(f.url("/api/orders"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"total\": ")))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let problem = assert_problem(&parts.headers, &body, 400);
    assert_eq!(problem["rule"], "request.body");
    assert_eq!(seen.lock().unwrap().len(), before);

    // Invalid UTF-8 and absurd nesting: refused, never passed on.
    for bad in [
        b"{\"total\": \"\xff\"}".to_vec(),
        ("[".repeat(100_000) + &"]".repeat(100_000)).into_bytes(),
    ] {
        let req = http::Request::post(f.url("/api/orders"))
            .body(Full::new(Bytes::from(bad)))
            .unwrap();
        let resp = client().request(req).await.unwrap();
        assert_eq!(resp.status(), 400);
    }
    assert_eq!(seen.lock().unwrap().len(), before);
    let m = f.metrics();
    assert_eq!(
        metric(
            &m,
            "strangler_translation_failures_total{context=\"orders\",direction=\"response\"}"
        ),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "strangler_translation_failures_total{context=\"orders\",direction=\"request\"}"
        ),
        Some(3),
        "{m}"
    );
}

#[tokio::test]
async fn a_head_only_translator_streams_bodies_untouched() {
    let seen: Seen = Arc::default();
    let (new, _) = axum_upstream(new_service(Arc::clone(&seen))).await;
    let (legacy, _) = axum_upstream(Router::new()).await;
    let f = facade(legacy, |_| {}).await;
    let spec = "[[paths]]\nfrom = \"/api/files/{*rest}\"\nto = \"/v2/files/{rest}\"\n";
    f.facade
        .apply_catalog(&translated(new, MigrationState::Migrated, spec))
        .unwrap();
    // Not JSON, chunked, 3 MiB: it passes byte for byte with only the path changed.
    let payload: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 94 + 33) as u8).collect();
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = payload
        .chunks(64 * 1024)
        .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
    let req = http::Request::post(f.url("/api/files/a/b.bin"))
        .body(http_body_util::combinators::BoxBody::new(body))
        .unwrap();
    let resp = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http()
        .request(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echoed = resp.into_body().collect().await.unwrap().to_bytes();
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(got.1, "/v2/files/a/b.bin");
    assert!(got.3.as_bytes() == payload, "the body changed on the way");
    assert!(echoed == payload, "the answer changed on the way");
}

#[tokio::test]
async fn shadow_answers_are_compared_in_the_legacy_contract() {
    // Legacy answers in its own contract; the service in its own. Translated, they agree,
    // except for order 13, which the translator cannot convert: counted as a translation
    // failure, not as the service's mismatch.
    let legacy = Router::new().route(
        "/api/orders/{id}",
        get(|Path(id): Path<u64>| async move {
            axum::Json(serde_json::json!({
                "orderId": id, "status": "S", "lineItems": [{"skuCode": "a"}], "total": "19.99"
            }))
        }),
    );
    let (legacy, _) = axum_upstream(legacy).await;
    let (new, _) = axum_upstream(new_service(Arc::default())).await;
    let f = facade(legacy, |_| {}).await;
    f.facade
        .apply_catalog(&translated(new, MigrationState::Shadow, ORDERS))
        .unwrap();
    for id in [1, 2, 3, 13] {
        let (status, _, body) = fetch(&f.url(&format!("/api/orders/{id}"))).await;
        assert_eq!(status, 200);
        assert!(std::str::from_utf8(&body)
            .unwrap()
            .contains("\"total\":\"19.99\""));
    }
    let m = until_metric(&f, "strangler_shadow_compared_total{context=\"orders\"}", 3).await;
    assert_eq!(
        metric(&m, "strangler_shadow_matched_total{context=\"orders\"}"),
        Some(3),
        "{m}"
    );
    let m = until_metric(
        &f,
        "strangler_shadow_skipped_total{context=\"orders\",reason=\"translation_failed\"}",
        1,
    )
    .await;
    assert_eq!(
        metric(
            &m,
            "strangler_translation_failures_total{context=\"orders\",direction=\"shadow\"}"
        ),
        Some(1),
        "{m}"
    );
}

#[tokio::test]
async fn a_fallback_sends_legacy_the_request_the_client_sent() {
    let legacy_seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let ls = Arc::clone(&legacy_seen);
    let legacy = Router::new().fallback(move |req: axum::extract::Request| {
        let ls = Arc::clone(&ls);
        async move {
            let target = req.uri().to_string();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            ls.lock()
                .unwrap()
                .push(format!("{target} {}", String::from_utf8_lossy(&body)));
            "from legacy"
        }
    });
    let (legacy, _) = axum_upstream(legacy).await;
    let f = facade(legacy, |_| {}).await;
    // The new service is down; the context falls back to legacy.
    f.facade
        .apply_catalog(&translated(dead_port(), MigrationState::Migrated, ORDERS))
        .unwrap();
    let (status, _, body) = fetch(&f.url("/api/orders/5")).await;
    assert_eq!(status, 200);
    assert_eq!(
        &body[..],
        b"from legacy",
        "legacy's answer is not translated"
    );
    // A write that never left goes to legacy with the body the client sent.
    let req = http::Request::post(f.url("/api/orders"))
        .body(Full::new(Bytes::from_static(br#"{"total": "1.00"}"#)))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        *legacy_seen.lock().unwrap(),
        vec![
            "/api/orders/5 ".to_owned(),
            r#"/api/orders {"total": "1.00"}"#.to_owned()
        ]
    );
}

#[tokio::test]
async fn a_translator_that_does_not_compile_is_refused_and_the_old_one_serves() {
    let (new, _) = axum_upstream(new_service(Arc::default())).await;
    let (legacy, _) = axum_upstream(Router::new()).await;
    let f = facade(legacy, |_| {}).await;
    f.facade
        .apply_catalog(&translated(new, MigrationState::Migrated, ORDERS))
        .unwrap();
    let mut broken = translated(
        new,
        MigrationState::Migrated,
        "[[request.body]]\nop = \"jq\"\nexpr = \"{a: \"\n",
    );
    broken.version = 2;
    let err = f.facade.apply_catalog(&broken).unwrap_err();
    assert!(err.contains("line 1") && err.contains("jq"), "{err}");
    assert_eq!(f.facade.catalog_version(), 1);
    let (status, _, body) = fetch(&f.url("/api/orders/7")).await;
    assert_eq!(status, 200);
    assert!(std::str::from_utf8(&body)
        .unwrap()
        .contains("\"total\":\"19.99\""));
    // A good change applies at once.
    let mut changed = translated(
        new,
        MigrationState::Migrated,
        "[[paths]]\nfrom = \"/api/orders/{id}\"\nto = \"/v2/orders/{id}\"\n",
    );
    changed.version = 3;
    f.facade.apply_catalog(&changed).unwrap();
    let (_, _, body) = fetch(&f.url("/api/orders/7")).await;
    assert!(std::str::from_utf8(&body)
        .unwrap()
        .contains("\"total_cents\":1999"));
}
