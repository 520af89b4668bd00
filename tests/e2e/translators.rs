//! Anti-corruption translators on the live path, in shadow comparison and on fallback, over
//! real sockets: legacy clients speak the legacy contract, the new service its own.
//!
//! Size: over 600 lines on purpose: one story — a contract kept across the split — told
//! through the live path, shadow comparison and fallback with the same two services.

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
            reads: false,
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
            })
            .delete(|| async { http::StatusCode::NO_CONTENT }),
        )
        .route("/v2/orders", post(record(Arc::clone(&seen))))
        .route("/api/files/{*rest}", post(record(Arc::clone(&seen))))
        .route("/v2/files/{*rest}", post(record(seen)))
}

/// What legacy saw of one request: method, target, shadow mark, body.
type Seen4 = (String, String, Option<String>, String);

#[tokio::test]
async fn requests_and_answers_cross_the_translator_on_the_live_path() {
    let seen: Seen = Arc::default();
    let (new, _) = axum_upstream(new_service(Arc::clone(&seen))).await;
    // Legacy answers nobody in migrated; it gets the new owner's writes back as mirrors.
    let legacy_saw: Arc<std::sync::Mutex<Vec<Seen4>>> = Arc::default();
    let saw = Arc::clone(&legacy_saw);
    let (legacy, _) = axum_upstream(Router::new().fallback(
        move |method: http::Method, uri: http::Uri, headers: http::HeaderMap, body: Bytes| {
            let saw = Arc::clone(&saw);
            async move {
                saw.lock().unwrap().push((
                    method.to_string(),
                    uri.to_string(),
                    headers
                        .get("x-strangler-shadow")
                        .map(|v| v.to_str().unwrap_or_default().to_owned()),
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                http::StatusCode::NO_CONTENT
            }
        },
    ))
    .await;
    let f = facade(legacy, |_| {}).await;
    let _outbox = f.with_outbox().await;
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
    // A 204 stays without a body and without Content-Length, though the route has body rules.
    let req = http::Request::delete(f.url("/api/orders/7"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert!(
        resp.headers().get("content-length").is_none(),
        "{:?}",
        resp.headers()
    );
    // The two writes reach legacy as mirrors, in its own contract (the client's request), in
    // order; nothing else does.
    let started = std::time::Instant::now();
    while legacy_saw.lock().unwrap().len() < 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            legacy_saw.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let saw = legacy_saw.lock().unwrap().clone();
    assert_eq!(saw.len(), 2, "{saw:?}");
    assert_eq!(
        (saw[0].0.as_str(), saw[0].1.as_str(), saw[0].2.as_deref()),
        ("POST", "/api/orders?src=web", Some("mirror"))
    );
    // The same JSON (the outbox keeps it redacted, so re-serialized).
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&saw[0].3).unwrap(),
        serde_json::json!({ "customerId": 12, "total": "5.10", "giftWrap": true })
    );
    assert_eq!(
        (saw[1].0.as_str(), saw[1].1.as_str(), saw[1].2.as_deref()),
        ("DELETE", "/api/orders/7", Some("mirror"))
    );
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
    let _outbox = f.with_outbox().await;
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
    // A write never falls back: in migrated the new service owns the writes, and legacy
    // taking one alone would split the data. It is refused as retryable.
    let req = http::Request::post(f.url("/api/orders"))
        .body(Full::new(Bytes::from_static(br#"{"total": "1.00"}"#)))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(
        *legacy_seen.lock().unwrap(),
        vec!["/api/orders/5 ".to_owned()]
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
    let err = f.facade.apply_catalog(&broken).unwrap_err().to_string();
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

const BIN: &str = env!("CARGO_BIN_EXE_strangler");

async fn run(args: &[&str], catalog: Option<&str>) -> (Option<i32>, String, String) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args);
    if let Some(c) = catalog {
        cmd.env("STRANGLER_CATALOG_URL", c);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_admin_api_refuses_a_translator_that_does_not_compile_and_applies_a_good_one() {
    use crate::admin::{token_env, Admin, OPERATOR};
    use serde_json::json;
    let (new, _) = axum_upstream(new_service(Arc::default())).await;
    let (legacy, _) = axum_upstream(Router::new().fallback(|| async { "legacy" })).await;
    let s = crate::binary::start(&format!("http://{legacy}"), &token_env()).await;
    let admin = Admin::new(&s.admin, Some(OPERATOR));
    admin
        .carve(
            "orders-svc",
            &format!("http://{new}"),
            "orders",
            &["/api/orders/{id}"],
            None,
        )
        .await;
    let context = |translator: &str| json!({ "name": "orders", "target": "orders-svc", "state": "migrated", "translator": translator });
    let before = admin.version().await;
    let mut body = context("[[paths]]\nfrom = \"/api/orders/{id}\"\nto = \"/v2/orders/{nope}\"\n");
    body["base_version"] = before.into();
    body["reason"] = "a broken translator".into();
    let (status, _, problem) = admin
        .call(http::Method::PUT, "/api/v1/contexts/orders", Some(body))
        .await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem.to_string();
    assert!(
        detail.contains("contexts.orders.translator")
            && detail.contains("line 1")
            && detail.contains("{nope}"),
        "{detail}"
    );
    assert_eq!(admin.version().await, before, "nothing was written");

    admin
        .change(
            http::Method::PUT,
            "/api/v1/contexts/orders",
            context(ORDERS),
        )
        .await;
    // The running facade follows the catalog: the translated answer arrives within the poll.
    let started = std::time::Instant::now();
    loop {
        let (status, _, body) = fetch(&format!("http://{}/api/orders/7", s.listen)).await;
        if status == 200
            && std::str::from_utf8(&body)
                .unwrap()
                .contains("\"total\":\"19.99\"")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{status} {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn config_files_name_translator_files_and_their_errors_point_into_them() {
    let scratch = crate::harness::Scratch::new("translators");
    let dir = scratch.path.clone();
    std::fs::create_dir_all(dir.join("translators")).unwrap();
    let config = dir.join("strangler.toml");
    std::fs::write(
        &config,
        r#"
[[services]]
name = "orders-svc"
urls = ["http://127.0.0.1:9"]

[[contexts]]
name = "orders"
target = "orders-svc"
translator_file = "translators/orders.toml"
routes = [{ path = "/api/orders/{id}" }]
"#,
    )
    .unwrap();
    let translator = dir.join("translators/orders.toml");
    std::fs::write(
        &translator,
        "[[paths]]\nfrom = \"/api/orders/{id}\"\n\nto = 5\n",
    )
    .unwrap();
    let catalog = crate::binary::temp_catalog();
    let cfg = config.to_str().unwrap();
    let (code, _, err) = run(&["import", "--config", cfg], Some(&catalog)).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("translators/orders.toml:4") && err.contains("invalid type"),
        "{err}"
    );
    std::fs::write(&translator, ORDERS).unwrap();
    let (code, out, err) = run(&["import", "--config", cfg], Some(&catalog)).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("imported"), "{out}");
    // The export carries the translator inline, and imports again as no change.
    let (code, exported, _) = run(&["export"], Some(&catalog)).await;
    assert_eq!(code, Some(0));
    assert!(exported.contains("translator = "), "{exported}");
    let again = dir.join("exported.toml");
    std::fs::write(&again, &exported).unwrap();
    let (_, out, err) = run(
        &["import", "--config", again.to_str().unwrap()],
        Some(&catalog),
    )
    .await;
    assert!(out.contains("no change"), "{out}{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn translators_test_runs_the_examples_and_shows_what_differs() {
    // The repository's own translators pass.
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/translators");
    let (code, out, err) = run(&["translators", "test", "--dir", repo], None).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("ok    orders: response \"a created order\""),
        "{out}"
    );

    let scratch = crate::harness::Scratch::new("examples");
    let dir = scratch.path.clone();
    std::fs::write(dir.join("orders.toml"), ORDERS).unwrap();
    std::fs::write(
        dir.join("orders.tests.toml"),
        r#"
[[response]]
name = "cents"
given = { status = 200, json = '{"total_cents": 250, "status": "open"}' }
expect = { json = '{"total": "2.05", "status": "O"}' }
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("billing.toml"),
        "[[paths]]\nfrom = \"/a\"\nto = \"/b\"\n",
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let (code, out, _) = run(
        &["translators", "test", "--dir", d, "--context", "orders"],
        None,
    )
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL  orders: response \"cents\"")
            && out.contains("$.total: expected \"2.05\", got \"2.50\""),
        "{out}"
    );
    // A translator without examples fails too; an unknown context or directory is a usage error.
    let (code, out, _) = run(
        &["translators", "test", "--dir", d, "--context", "billing"],
        None,
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(out.contains("no examples"), "{out}");
    let (code, _, err) = run(
        &["translators", "test", "--dir", d, "--context", "nope"],
        None,
    )
    .await;
    assert_eq!(code, Some(2));
    assert!(err.contains("no translator `nope.toml`"), "{err}");
    let (code, _, err) = run(&["translators", "test", "--dir", "/nonexistent/dir"], None).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("pass --dir"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_composed_route_assembles_several_answers_with_a_policy_for_failed_parts() {
    let legacy = Router::new()
        .route(
            "/api/customers/{id}",
            get(|Path(id): Path<u64>| async move {
                if id == 9 {
                    // A part that hangs past its time limit.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                axum::Json(serde_json::json!({ "customerId": id, "name": "Ada" }))
            }),
        )
        .fallback(|| async { "legacy answered the whole request" });
    let (legacy, _) = axum_upstream(legacy).await;
    let (new, _) = axum_upstream(new_service(Arc::default())).await;
    let f = facade(legacy, |_| {}).await;
    let spec = |policy: &str| {
        format!(
            r#"
[[compose]]
path = "/api/orders/{{id}}/summary/{{customer}}"
on_failure = "{policy}"
parts = [
  {{ name = "order", side = "new", path = "/v2/orders/{{id}}" }},
  {{ name = "customer", side = "legacy", path = "/api/customers/{{customer}}", timeout_ms = 300 }},
]
body = {{ orderId = "$.order.order_id", cents = "$.order.total_cents", customer = "$.customer.name" }}
"#
        )
    };
    let mut c = translated(new, MigrationState::Migrated, &spec("omit"));
    let route = RouteSpec {
        methods: vec![],
        path: "/api/orders/{id}/summary/{customer}".into(),
        host: None,
        headers: vec![],
        query: vec![],
        version: None,
        reads: false,
        shadow: Default::default(),
    };
    c.routes.insert(
        route.id(),
        strangler_catalog::Route {
            id: route.id(),
            context: "orders".into(),
            spec: route,
        },
    );
    f.facade.apply_catalog(&c).unwrap();
    let started = std::time::Instant::now();
    let (status, headers, body) = fetch(&f.url("/api/orders/7/summary/1")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"cents":1999,"customer":"Ada","orderId":7}"#
    );
    // The customer part times out: omitted, within its own limit.
    let (status, _, body) = fetch(&f.url("/api/orders/7/summary/9")).await;
    assert_eq!(status, 200);
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"cents":1999,"customer":null,"orderId":7}"#
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    for (version, policy) in [(2, "fail"), (3, "legacy")] {
        let ctx = c.contexts.get_mut("orders").unwrap();
        ctx.translator = Some(spec(policy));
        c.version = version;
        f.facade.apply_catalog(&c).unwrap();
        let (status, headers, body) = fetch(&f.url("/api/orders/7/summary/9")).await;
        if policy == "fail" {
            let problem = assert_problem(&headers, &body, 502);
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap()
                    .contains("part `customer`"),
                "{problem}"
            );
        } else {
            assert_eq!(status, 200);
            assert_eq!(&body[..], b"legacy answered the whole request");
        }
    }
}

#[tokio::test]
async fn the_identity_bridge_turns_the_legacy_session_into_a_signed_token() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let resolved = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&resolved);
    let legacy = Router::new().route(
        "/api/session",
        get(move |headers: http::HeaderMap| {
            let r = Arc::clone(&r);
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                let cookie = headers
                    .get("cookie")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if cookie == "SID=good" {
                    (
                        http::StatusCode::OK,
                        r#"{"sub":"u-1","name":"Ada","roles":["clerk"]}"#,
                    )
                } else {
                    (http::StatusCode::UNAUTHORIZED, r#"{"error":"no session"}"#)
                }
            }
        }),
    );
    let (legacy, _) = axum_upstream(legacy).await;
    // The new service answers with what it was given.
    let new = Router::new().route(
        "/v2/orders/{id}",
        get(|headers: http::HeaderMap| async move {
            let h = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned()
            };
            axum::Json(
                serde_json::json!({ "identity": h("x-strangler-identity"), "cookie": h("cookie") }),
            )
        }),
    );
    let (new, _) = axum_upstream(new).await;
    let f = facade(legacy, |cfg| {
        cfg.identity = Some(strangler_facade::IdentityConfig {
            cookie: "SID".into(),
            resolve_path: "/api/session".into(),
            cache_ttl: Duration::from_secs(60),
            token_ttl: Duration::from_secs(300),
            issuer: "shop-facade".into(),
            seed: [9; 32],
        })
    })
    .await;
    let spec = |extra: &str| {
        format!("[[paths]]\nfrom = \"/api/orders/{{id}}\"\nto = \"/v2/orders/{{id}}\"\n[identity]\n{extra}\n")
    };
    f.facade
        .apply_catalog(&translated(new, MigrationState::Migrated, &spec("")))
        .unwrap();
    let public =
        strangler_anti_corruption::identity::public_key_of(&f.facade.identity_jwks().unwrap())
            .unwrap();
    let call = |cookie: Option<&'static str>, forged: bool| {
        let url = f.url("/api/orders/7");
        async move {
            let mut req = http::Request::get(url);
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            if forged {
                req = req.header("x-strangler-identity", "forged.token.here");
            }
            let resp = client()
                .request(req.body(Full::new(Bytes::new())).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (status, parts.headers, body)
        }
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    for _ in 0..3 {
        let (status, _, body) = call(Some("SID=good; theme=dark"), false).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let claims = strangler_anti_corruption::identity::verify(
            v["identity"].as_str().unwrap(),
            &public,
            now(),
        )
        .map(|c| c.to_json())
        .unwrap();
        let claims: serde_json::Value = serde_json::from_str(&claims).unwrap();
        assert_eq!(claims["sub"], "u-1");
        assert_eq!(claims["roles"][0], "clerk");
        assert_eq!(claims["iss"], "shop-facade");
        assert_eq!(
            v["cookie"], "theme=dark",
            "the session cookie stays with legacy"
        );
    }
    assert_eq!(
        resolved.load(Ordering::SeqCst),
        1,
        "the session is resolved once, then cached"
    );

    // No session, or a forged token: the service gets no identity.
    for (cookie, forged) in [(Some("SID=bad"), false), (None, true)] {
        let (status, _, body) = call(cookie, forged).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["identity"], "-", "{v}");
    }

    // Required: no session is a 401 for the client, and the service is not called.
    let mut c = translated(
        new,
        MigrationState::Migrated,
        &spec("required = true\nforward_cookie = true"),
    );
    c.version = 2;
    f.facade.apply_catalog(&c).unwrap();
    let (status, headers, body) = call(Some("SID=bad"), false).await;
    assert_problem(&headers, &body, 401);
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(status, 401);
    let (_, _, body) = call(Some("SID=good"), false).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["cookie"], "SID=good", "forward_cookie passes it on");
}

#[tokio::test]
async fn the_admin_listener_publishes_the_identity_key() {
    let (legacy, _) = axum_upstream(Router::new()).await;
    let key = "0a".repeat(32);
    let s = crate::binary::start(
        &format!("http://{legacy}"),
        &[
            ("STRANGLER_IDENTITY_RESOLVE_PATH", "/api/session"),
            ("STRANGLER_IDENTITY_KEY", key.as_str()),
        ],
    )
    .await;
    let (status, headers, body) = fetch(&format!("http://{}/.well-known/jwks.json", s.admin)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/jwk-set+json");
    let expected = strangler_anti_corruption::identity::Signer::from_seed([0x0a; 32]).jwks();
    assert_eq!(std::str::from_utf8(&body).unwrap(), expected);
    s.stop().await;
    let s = crate::binary::start(&format!("http://{legacy}"), &[]).await;
    let (status, _, _) = fetch(&format!("http://{}/api/v1/identity/jwks", s.admin)).await;
    assert_eq!(status, 404);
    s.stop().await;
}

#[tokio::test]
async fn v1_clients_are_served_by_a_service_that_speaks_only_v2() {
    // The service knows only /v2 paths and the v2 media type and version header; it says
    // which version it answered in.
    let new = Router::new().route(
        "/v2/orders/{id}",
        get(|headers: http::HeaderMap| async move {
            let accept = headers
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let version = headers
                .get("x-api-version")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.contains("vnd.shop.v1") || version == "1" {
                return (
                    http::StatusCode::NOT_ACCEPTABLE,
                    [("content-type", "text/plain")],
                    "v1 is gone".to_owned(),
                );
            }
            (
                http::StatusCode::OK,
                [("content-type", "application/vnd.shop.v2+json")],
                format!(r#"{{"accept":"{accept}","version":"{version}"}}"#),
            )
        }),
    );
    let (new, _) = axum_upstream(new).await;
    let (legacy, _) = axum_upstream(Router::new()).await;
    let f = facade(legacy, |_| {}).await;
    let route = |path: &str, version: Option<strangler_catalog::VersionMatch>| RouteSpec {
        methods: vec![],
        path: path.into(),
        host: None,
        headers: vec![],
        query: vec![],
        version,
        reads: false,
        shadow: Default::default(),
    };
    let with = |spec: &str, route: RouteSpec, v: i64| {
        let mut c = translated(new, MigrationState::Migrated, spec);
        c.routes.clear();
        c.routes.insert(
            route.id(),
            strangler_catalog::Route {
                id: route.id(),
                context: "orders".into(),
                spec: route,
            },
        );
        c.version = v;
        c
    };
    let get_with = |path: &str, header: Option<(&'static str, &'static str)>| {
        let url = f.url(path);
        async move {
            let mut req = http::Request::get(url);
            if let Some((k, v)) = header {
                req = req.header(k, v);
            }
            let resp = client()
                .request(req.body(Full::new(Bytes::new())).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let ct = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, ct, String::from_utf8_lossy(&body).into_owned())
        }
    };

    // Path prefix: /v1/orders/7 reaches /v2/orders/7.
    f.facade
        .apply_catalog(&with(
            "[version]\nstyle = \"prefix\"\nfrom = \"v1\"\nto = \"v2\"\n",
            route("/v1/orders/{id}", None),
            1,
        ))
        .unwrap();
    let (status, _, body) = get_with("/v1/orders/7", None).await;
    assert_eq!(status, 200, "{body}");

    // Media type: the route matches v1 clients by Accept; the service sees v2 and answers v2;
    // the client reads v1.
    f.facade
        .apply_catalog(&with(
            "[[paths]]\nfrom = \"/orders/{id}\"\nto = \"/v2/orders/{id}\"\n[version]\nstyle = \"media-type\"\nvendor = \"shop\"\nfrom = \"v1\"\nto = \"v2\"\n",
            route(
                "/orders/{id}",
                Some(strangler_catalog::VersionMatch::MediaType { version: "v1".into() }),
            ),
            2,
        ))
        .unwrap();
    let (status, ct, body) = get_with(
        "/orders/7",
        Some(("accept", "application/vnd.shop.v1+json")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        r#"{"accept":"application/vnd.shop.v2+json","version":""}"#
    );
    assert_eq!(ct.as_deref(), Some("application/vnd.shop.v1+json"));

    // Header: X-API-Version 1 from the client, 2 to the service.
    f.facade
        .apply_catalog(&with(
            "[[paths]]\nfrom = \"/orders/{id}\"\nto = \"/v2/orders/{id}\"\n[version]\nstyle = \"header\"\nheader = \"X-API-Version\"\nfrom = \"1\"\nto = \"2\"\n",
            route(
                "/orders/{id}",
                Some(strangler_catalog::VersionMatch::Header { name: "x-api-version".into(), version: "1".into() }),
            ),
            3,
        ))
        .unwrap();
    let (status, _, body) = get_with("/orders/7", Some(("x-api-version", "1"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""version":"2""#), "{body}");
}

/// A Rust translator: signs the order id into a header the service checks, and wraps the
/// service's answer in the legacy `{"data": …}` envelope.
struct Envelope;

impl strangler_anti_corruption::Translator for Envelope {
    fn request(
        &self,
        req: &mut strangler_anti_corruption::Request,
    ) -> Result<(), strangler_anti_corruption::Failure> {
        let id = req.path.rsplit('/').next().unwrap_or_default().to_owned();
        req.headers.insert(
            "x-order-ref",
            http::HeaderValue::from_str(&format!("ref-{id}")).unwrap(),
        );
        Ok(())
    }

    fn response(
        &self,
        resp: &mut strangler_anti_corruption::Response,
    ) -> Result<(), strangler_anti_corruption::Failure> {
        if let Some(body) = &resp.body {
            let mut wrapped = b"{\"data\":".to_vec();
            wrapped.extend_from_slice(body);
            wrapped.push(b'}');
            resp.body = Some(Bytes::from(wrapped));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_registered_rust_translator_runs_on_the_live_path() {
    let new = Router::new().route(
        "/v2/orders/{id}",
        get(|headers: http::HeaderMap| async move {
            let r = headers
                .get("x-order-ref")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            axum::Json(serde_json::json!({ "ref": r }))
        }),
    );
    let (new, _) = axum_upstream(new).await;
    let (legacy, _) = axum_upstream(Router::new()).await;
    let f = facade(legacy, |cfg| {
        cfg.translators.register("envelope", Arc::new(Envelope));
    })
    .await;
    let spec =
        "rust = \"envelope\"\n[[paths]]\nfrom = \"/api/orders/{id}\"\nto = \"/v2/orders/{id}\"\n";
    f.facade
        .apply_catalog(&translated(new, MigrationState::Migrated, spec))
        .unwrap();
    let (status, headers, body) = fetch(&f.url("/api/orders/31")).await;
    assert_eq!(status, 200);
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"data":{"ref":"ref-31"}}"#
    );
    assert_eq!(headers["content-length"], body.len().to_string());
    // A spec naming a translator that is not registered does not compile.
    let mut c = translated(new, MigrationState::Migrated, "rust = \"nope\"\n");
    c.version = 2;
    let err = f.facade.apply_catalog(&c).unwrap_err().to_string();
    assert!(
        err.contains("no Rust translator named `nope`") && err.contains("envelope"),
        "{err}"
    );
}

/// A new service that builds its links from the forwarded `Host` puts them on the facade's own
/// origin, in its own path shape: the client gets them back in legacy's shape.
#[tokio::test]
async fn links_built_from_the_forwarded_host_take_legacys_path() {
    let app = Router::new().route(
        "/purchase_orders",
        axum::routing::post(|headers: http::HeaderMap| async move {
            let host = headers["host"].to_str().unwrap_or("").to_owned();
            (
                http::StatusCode::CREATED,
                [("location", format!("http://{host}/purchase_orders/21"))],
                "",
            )
        }),
    );
    let (new, _) = axum_upstream(app).await;
    let (legacy, _) = axum_upstream(Router::new()).await;
    let f = facade(legacy, |_| {}).await;
    // Writes in migrated are mirrored back to legacy: the outbox must run.
    let _outbox = f.with_outbox().await;
    let spec = "[[paths]]\nfrom = \"/api/orders\"\nto = \"/purchase_orders\"\n\n[[paths]]\nfrom = \"/api/orders/{id}\"\nto = \"/purchase_orders/{id}\"\n";
    f.facade
        .apply_catalog(&translated(new, MigrationState::Migrated, spec))
        .unwrap();
    let req = http::Request::post(f.url("/api/orders"))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        resp.headers()["location"],
        format!("http://{}/api/orders/21", f.addr).as_str()
    );
}
