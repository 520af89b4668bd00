//! The admin API as a client sees it: PATCH with JSON merge patches, the OpenAPI document.

use http::Method;
use serde_json::json;

use crate::admin::{Admin, OPERATOR};
use crate::harness::axum_upstream;
use crate::migration::shop;

/// PATCH changes what the merge patch names and keeps the rest — where PUT drops every field
/// it is not sent — and refuses what PUT refuses.
#[tokio::test]
async fn a_patch_changes_only_what_it_names() {
    let (_legacy, new, s, api) = shop().await;
    api.carve(
        "orders-svc",
        &format!("http://{new}"),
        "orders",
        &["/orders/{id}"],
        Some("cookie:sid"),
    )
    .await;
    api.change(
        Method::PATCH,
        "/api/v1/contexts/orders",
        json!({ "shadow": { "ignore": ["$.updatedAt"], "sample_percent": 50 } }),
    )
    .await;
    let patch = |version: i64, fields: serde_json::Value| {
        let mut body = json!({ "base_version": version, "reason": "patch test" });
        if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
            b.extend(f.clone());
        }
        Some(body)
    };
    let context = |v: &serde_json::Value| v["item"].clone();

    // The media type of RFC 7396; only `description` changes.
    let version = api.version().await;
    let (status, _, v) = api
        .call_as(
            Method::PATCH,
            "/api/v1/contexts/orders",
            patch(version, json!({ "description": "orders and carts" })),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let c = context(&v);
    assert_eq!(c["description"], "orders and carts", "{v}");
    assert_eq!(c["sticky"], "cookie:sid", "kept: {v}");
    assert_eq!(c["shadow"]["ignore"], json!(["$.updatedAt"]), "kept: {v}");
    assert_eq!(c["shadow"]["sample_percent"], 50, "kept: {v}");
    assert_eq!(c["owner"], "legacy");

    // Nested objects merge member by member; `null` removes.
    let (status, _, v) = api
        .call(
            Method::PATCH,
            "/api/v1/contexts/orders",
            patch(
                api.version().await,
                json!({ "sticky": null, "shadow": { "sample_percent": null } }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let c = context(&v);
    assert!(c.get("sticky").is_none(), "removed: {v}");
    assert!(c["shadow"].get("sample_percent").is_none(), "removed: {v}");
    assert_eq!(c["shadow"]["ignore"], json!(["$.updatedAt"]), "kept: {v}");
    assert_eq!(c["description"], "orders and carts", "kept: {v}");

    // What PUT refuses, PATCH refuses, and changes nothing.
    let version = api.version().await;
    let refused = [
        (json!({ "name": "carts" }), 400, "name"),
        (json!({ "colour": "red" }), 400, "body"),
        (json!({ "weight": 20000 }), 422, "contexts.orders.weight"),
        (json!({ "owner": "new" }), 400, "owner"),
    ];
    for (fields, want, field) in refused {
        let (status, headers, problem) = api
            .call(
                Method::PATCH,
                "/api/v1/contexts/orders",
                patch(version, fields.clone()),
            )
            .await;
        assert_eq!(status, want, "{fields}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem["field"], field, "{fields}: {problem}");
    }
    // Based on a version that is no longer current: 409, as for PUT.
    let (status, _, problem) = api
        .call(
            Method::PATCH,
            "/api/v1/contexts/orders",
            patch(version - 1, json!({ "description": "stale" })),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    // Without a reason: refused (the audit log needs one).
    let (status, _, problem) = api
        .call(
            Method::PATCH,
            "/api/v1/contexts/orders",
            Some(json!({ "base_version": version, "description": "why?" })),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &problem["field"]),
        (400, &json!("reason"))
    );
    assert_eq!(api.version().await, version, "nothing changed");

    // Services too: the policy stays when only the instances change.
    api.change(
        Method::PATCH,
        "/api/v1/services/orders-svc",
        json!({ "policy": { "max_concurrent": 7 } }),
    )
    .await;
    let v = api
        .change(
            Method::PATCH,
            "/api/v1/services/orders-svc",
            json!({ "urls": [format!("http://{new}"), format!("http://{new}")] }),
        )
        .await;
    assert_eq!(v["item"]["urls"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["item"]["policy"]["max_concurrent"], 7, "kept: {v}");

    // The audit log says who patched what, with the reason.
    let (_, _, audit) = api
        .call(Method::GET, "/api/v1/audit?target=context:orders", None)
        .await;
    assert!(
        audit.to_string().contains("patch test"),
        "the patch is audited: {audit}"
    );
    s.stop().await;
}

/// People named in `[[auth.users]]` sign their changes: the audit log records the person, a
/// named viewer reads it and changes nothing, and the shared operator token still works (as
/// `operator`). A token file is read at start; a user's token is never written anywhere.
#[tokio::test]
async fn named_operators_sign_their_changes() {
    let (legacy, _) = axum_upstream(axum::Router::new()).await;
    let dir = crate::harness::Scratch::new("users");
    std::fs::write(
        dir.path.join("carol.token"),
        "carol-token-0123456789abcdef\n",
    )
    .unwrap();
    let config = dir.path.join("strangler.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\noperator_token = \"{OPERATOR}\"\n\n\
             [[auth.users]]\nname = \"alice@example.com\"\nrole = \"operator\"\ntoken = \"alice-token-0123456789abcd\"\n\n\
             [[auth.users]]\nname = \"bob\"\nrole = \"viewer\"\ntoken = \"bob-token-0123456789abcdef\"\n\n\
             [[auth.users]]\nname = \"carol\"\nrole = \"operator\"\ntoken_file = \"{}\"\n",
            dir.path.join("carol.token").display()
        ),
    )
    .unwrap();
    let s = crate::binary::start_configured(&format!("http://{legacy}"), &config, &[]).await;
    let as_user = |token: &'static str| Admin::new(&s.admin, Some(token));
    let alice = as_user("alice-token-0123456789abcd");
    let bob = as_user("bob-token-0123456789abcdef");
    let carol = as_user("carol-token-0123456789abcdef");
    let shared = as_user(OPERATOR);

    alice
        .change(
            Method::POST,
            "/api/v1/services",
            json!({ "name": "orders-svc", "urls": ["http://127.0.0.1:9"], "reason": "alice adds it" }),
        )
        .await;
    carol
        .change(
            Method::PATCH,
            "/api/v1/services/orders-svc",
            json!({ "urls": ["http://127.0.0.1:10"], "reason": "carol moves it" }),
        )
        .await;
    shared
        .change(
            Method::PATCH,
            "/api/v1/services/orders-svc",
            json!({ "urls": ["http://127.0.0.1:11"], "reason": "someone with the shared token" }),
        )
        .await;
    let version = bob.version().await;
    let (status, _, problem) = bob
        .call(
            Method::PATCH,
            "/api/v1/services/orders-svc",
            Some(json!({ "base_version": version, "reason": "bob tries", "urls": [] })),
        )
        .await;
    assert_eq!(status, 403, "{problem}");

    // The viewer sees who did what.
    let (status, _, audit) = bob.call(Method::GET, "/api/v1/audit", None).await;
    assert_eq!(status, 200, "{audit}");
    let rows: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap_or_default().to_owned(),
                r["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for (actor, reason) in [
        ("alice@example.com", "alice adds it"),
        ("carol", "carol moves it"),
        ("operator", "someone with the shared token"),
    ] {
        assert!(
            rows.iter().any(|(a, r)| a == actor && r == reason),
            "{actor}: {rows:?}"
        );
    }
    assert!(!rows.iter().any(|(a, _)| a == "bob"), "{rows:?}");
    // And filters by the person.
    let (_, _, audit) = bob
        .call(Method::GET, "/api/v1/audit?actor=carol", None)
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1), "{audit}");
    // An unknown token is refused.
    let (status, _, _) = as_user("nobody-token-0123456789ab")
        .call(Method::GET, "/api/v1/audit", None)
        .await;
    assert_eq!(status, 401);
    s.stop().await;
}

/// `/metrics` counts requests, 5xx answers and latency per context and side (the label sets
/// are the catalog's contexts, `-` for unclaimed requests), beside the autopilot's actions.
#[tokio::test]
async fn metrics_count_each_context_and_side() {
    let (_legacy, new, s, api) = shop().await;
    api.carve(
        "orders-svc",
        &format!("http://{new}"),
        "orders",
        &["/orders/{id}"],
        None,
    )
    .await;
    api.promote_to_canary("orders", 10_000).await;
    for path in ["/orders/1", "/orders/2", "/orders/3", "/products/1"] {
        let (status, _, _) = crate::harness::fetch(&format!("http://{}{path}", s.listen)).await;
        assert_eq!(status, 200);
    }
    let text = crate::harness::fetch(&format!("http://{}/metrics", s.admin))
        .await
        .2;
    let text = String::from_utf8_lossy(&text);
    let value = |line: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    assert_eq!(
        value("strangler_context_requests_total{context=\"orders\",side=\"new\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value("strangler_context_requests_total{context=\"-\",side=\"legacy\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("strangler_context_errors_total{context=\"orders\",side=\"new\"}"),
        Some(0.0)
    );
    assert_eq!(
        value("strangler_context_request_duration_seconds_count{context=\"orders\",side=\"new\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            "strangler_context_request_duration_seconds_bucket{context=\"orders\",side=\"new\",le=\"+Inf\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE strangler_autopilot_actions_total counter"),
        "{text}"
    );
    s.stop().await;
}
