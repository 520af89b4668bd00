//! No secret at rest: whatever clients send (credentials in headers, the query or bodies) and
//! whatever legacy answers, nothing secret reaches any table of the store, its WAL, or what
//! `strangler tests export` writes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::Method;
use serde_json::json;

use crate::harness::*;
use crate::shadow::shadowed;

const SECRETS: [&str; 9] = [
    "SECRET-QUERY-KEY",
    "SECRET-HEADER-KEY",
    "SECRET-AUTH-TOKEN",
    "SECRET-QUERY-TOKEN",
    "SECRET-PASSWORD",
    "SECRET-CARD",
    "SECRET-ANSWER-TOKEN",
    "SECRET-BEARER",
    "SECRET-PLAIN",
];

fn assert_clean(what: &str, bytes: &[u8]) {
    for secret in SECRETS {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} reached {what}"
        );
    }
}

#[tokio::test]
async fn no_secret_reaches_the_store_or_an_export() {
    // Both sides answer reads alike (so the exchange is recorded for contract tests), except
    // order 2 (so an example is stored); legacy takes writes.
    let answer = |id: u32, total: &str| json!({ "id": id, "session_token": "SECRET-ANSWER-TOKEN", "card": "SECRET-CARD", "total": total });
    let (legacy, _) = axum_upstream(
        Router::new().route(
            "/orders/{id}",
            get(
                move |axum::extract::Path(id): axum::extract::Path<u32>| async move {
                    axum::Json(answer(id, "1.00"))
                },
            )
            .post(|| async { axum::Json(json!({ "stored": true })) }),
        ),
    )
    .await;
    let delivered: Arc<Mutex<Vec<(http::HeaderMap, String, Bytes)>>> = Arc::default();
    let seen = Arc::clone(&delivered);
    let (new, _) = axum_upstream(
        Router::new().route(
            "/orders/{id}",
            get(
                move |axum::extract::Path(id): axum::extract::Path<u32>| async move {
                    axum::Json(answer(id, if id == 2 { "2.00" } else { "1.00" }))
                },
            )
            .post(
                move |headers: http::HeaderMap, uri: http::Uri, body: Bytes| {
                    seen.lock().unwrap().push((headers, uri.to_string(), body));
                    async { axum::Json(json!({ "stored": true })) }
                },
            ),
        ),
    )
    .await;
    let scratch = crate::harness::Scratch::new("secrets");
    let dir = scratch.path.clone();
    let catalog = format!("sqlite://{}", dir.join("catalog.db").display());
    let (s, admin) = shadowed(
        legacy,
        new,
        &catalog,
        json!({ "redact": ["$.card"], "mirror_headers": ["x-tenant"] }),
        json!({ "path": "/orders/{id}", "shadow": { "writes": "mirror" } }),
    )
    .await;
    let send = |method: Method, target: &str, headers: &[(&str, &str)], body: &str| {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{target}", s.listen));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(http_body_util::Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        async move { client().request(req).await.unwrap().status() }
    };
    for id in [1, 2] {
        let status = send(
            Method::GET,
            &format!("/orders/{id}?api_key=SECRET-QUERY-KEY&page=2"),
            &[("authorization", "Bearer SECRET-BEARER")],
            "",
        )
        .await;
        assert_eq!(status, 200);
    }
    let status = send(
        Method::POST,
        "/orders/3?token=SECRET-QUERY-TOKEN&dry=no",
        &[
            ("content-type", "application/json"),
            ("x-api-key", "SECRET-HEADER-KEY"),
            ("x-auth-token", "SECRET-AUTH-TOKEN"),
            ("x-tenant", "acme"),
        ],
        r#"{"qty": 2, "password": "SECRET-PASSWORD", "card": "SECRET-CARD"}"#,
    )
    .await;
    assert_eq!(status, 200);
    // A body that cannot be redacted is not stored (so not mirrored): it is counted.
    let status = send(
        Method::POST,
        "/orders/4",
        &[("content-type", "text/plain")],
        "note SECRET-PLAIN",
    )
    .await;
    assert_eq!(status, 200);

    // The mirrored write arrives with what its delivery needs, secrets blanked.
    let started = Instant::now();
    while delivered.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the write was never delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (headers, uri, body) = delivered.lock().unwrap()[0].clone();
    assert_eq!(headers.get("x-tenant").unwrap(), "acme");
    assert!(headers.get("x-api-key").is_none() && headers.get("x-auth-token").is_none());
    assert_eq!(uri, "/orders/3?token=%5Bredacted%5D&dry=no");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        json!({ "qty": 2, "password": "[redacted]", "card": "[redacted]" })
    );
    assert_eq!(
        delivered.lock().unwrap().len(),
        1,
        "the text body was mirrored"
    );

    // Every table is written: comparisons, an example, a recorded exchange, the outbox.
    let started = Instant::now();
    let results = loop {
        let (_, _, v) = admin
            .call(Method::GET, "/api/v1/contexts/orders/shadow", None)
            .await;
        if v["examples"].as_array().is_some_and(|e| !e.is_empty())
            && v["outbox"]["pending"] == 0
            && v["compared"].as_i64().unwrap_or(0) >= 3
        {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        results["skipped"].to_string().contains("unredactable"),
        "{results}"
    );
    let export = |format: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_strangler"))
            .args([
                "tests",
                "export",
                "--context",
                "orders",
                "--include-writes",
                "--format",
                format,
            ])
            .env("STRANGLER_CATALOG_URL", &catalog)
            .output()
            .unwrap()
    };
    let started = Instant::now();
    let suite = loop {
        let out = export("json");
        let suite: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if suite["pairs"].as_array().is_some_and(|p| !p.is_empty()) {
            break out.stdout;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exchange recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let text = String::from_utf8_lossy(&suite);
    assert!(text.contains("api_key=%5Bredacted%5D&page=2"), "{text}");
    assert_clean("the JSON export", &suite);
    assert_clean("the Hurl export", &export("hurl").stdout);
    s.stop().await;
    // Every byte the store wrote: the database, its WAL and shared memory, and the mirror's
    // write-ahead log beside it.
    for path in files_under(&dir) {
        assert_clean(&path.display().to_string(), &std::fs::read(&path).unwrap());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
