//! The catalog drives the facade, through the real binary: contexts move through their states
//! at run time, canaries split by sticky key, and the admin API refuses bad changes clearly.
//!
//! Size: over 600 lines, kept whole on purpose: every test here drives the same shop through the
//! admin API and reads which side answered, with the helpers at the top.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use serde_json::json;

use crate::admin::{token_env, Admin, OPERATOR, VIEWER};
use crate::binary::{start, Running};
use crate::harness::*;

/// GET through the facade: (body, the debug route header).
async fn answer(facade: &str, path: &str, cookie: Option<&str>) -> (String, String) {
    let mut req = http::Request::get(format!("http://{facade}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = client()
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let route = resp
        .headers()
        .get("x-strangler-route")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (String::from_utf8_lossy(&body).into_owned(), route)
}

/// Waits (up to 3 s) until `path` is answered by `who`.
async fn until_answered_by(facade: &str, path: &str, who: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (body, route) = answer(facade, path, None).await;
        if body == who {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} still answered by {body} ({route}), expected {who}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) async fn shop() -> (SocketAddr, SocketAddr, Running, Admin) {
    let legacy = named("legacy").await;
    let new = named("new").await;
    let env = token_env();
    let s = start(&format!("http://{legacy}"), &env).await;
    let admin = Admin::new(&s.admin, Some(OPERATOR));
    (legacy, new, s, admin)
}

#[tokio::test]
async fn a_context_moves_through_its_states_without_restart() {
    let (_, new, s, admin) = shop().await;
    admin
        .carve(
            "orders-svc",
            &format!("http://{new}"),
            "orders",
            &["/orders/{id}"],
            None,
        )
        .await;
    let f = s.listen.as_str();
    // The API answers when the change is stored; the facade follows within moments.
    let started = Instant::now();
    while answer(f, "/orders/1", None).await.1 != "context=orders; side=legacy" {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the new route never took effect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(answer(f, "/orders/1", None).await.0, "legacy");
    assert_eq!(
        answer(f, "/products/1", None).await,
        ("legacy".to_owned(), "context=-; side=legacy".to_owned())
    );

    let promote = |admin: &'static str| format!("/api/v1/contexts/{admin}/promote");
    admin
        .change(
            Method::POST,
            &promote("orders"),
            json!({ "reason": "compare answers" }),
        )
        .await;
    until_answered_by(f, "/orders/1", "legacy").await; // shadow: legacy still answers
    admin
        .change(
            Method::POST,
            &promote("orders"),
            json!({ "reason": "canary" }),
        )
        .await;
    until_answered_by(f, "/orders/1", "legacy").await; // canary at 0 bp
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/weight",
            json!({ "weight": 10000, "reason": "everyone" }),
        )
        .await;
    until_answered_by(f, "/orders/2", "new").await;
    admin
        .change(
            Method::POST,
            &promote("orders"),
            json!({ "reason": "migrated" }),
        )
        .await;
    until_answered_by(f, "/orders/3", "new").await;
    assert_eq!(
        answer(f, "/orders/3", None).await.1,
        "context=orders; side=new"
    );
    assert_eq!(
        answer(f, "/products/1", None).await.0,
        "legacy",
        "unmatched requests stay on legacy"
    );
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/rollback",
            json!({ "reason": "incident 42" }),
        )
        .await;
    until_answered_by(f, "/orders/4", "legacy").await;

    let (_, _, audit) = admin
        .call(Method::GET, "/api/v1/audit?target=context:orders", None)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "rollback",
            "promote",
            "set-weight",
            "promote",
            "promote",
            "put-context"
        ]
    );
    assert_eq!(audit["items"][0]["reason"], "incident 42");
    s.stop().await;
}

#[tokio::test]
async fn canary_keeps_each_user_on_one_side_and_raising_only_moves_users_to_new() {
    let (_, new, s, admin) = shop().await;
    admin
        .carve(
            "orders-svc",
            &format!("http://{new}"),
            "orders",
            &["/orders/{id}"],
            Some("cookie:sid"),
        )
        .await;
    admin
        .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
        .await;
    admin
        .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
        .await;
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/weight",
            json!({ "weight": 3000 }),
        )
        .await;
    admin.in_effect().await;
    let f = s.listen.as_str();
    let mut on_new = Vec::new();
    for user in 0..200 {
        let cookie = format!("theme=dark; sid=user-{user}");
        let first = answer(f, "/orders/1", Some(&cookie)).await.0;
        for _ in 0..2 {
            assert_eq!(
                answer(f, "/orders/1", Some(&cookie)).await.0,
                first,
                "user {user} switched sides"
            );
        }
        if first == "new" {
            on_new.push(user);
        }
    }
    assert!(
        (30..=90).contains(&on_new.len()),
        "{} of 200 users on new at 30 %",
        on_new.len()
    );
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/weight",
            json!({ "weight": 7000 }),
        )
        .await;
    admin.in_effect().await;
    let mut now_new = 0;
    for user in 0..200 {
        let side = answer(f, "/orders/1", Some(&format!("sid=user-{user}")))
            .await
            .0;
        if on_new.contains(&user) {
            assert_eq!(
                side, "new",
                "raising the weight moved user {user} back to legacy"
            );
        }
        now_new += usize::from(side == "new");
    }
    assert!(
        now_new > on_new.len() + 40,
        "{now_new} users on new at 70 %"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_api_refuses_bad_changes_clearly_and_writes_nothing() {
    let (_, new, s, admin) = shop().await;
    admin
        .carve(
            "orders-svc",
            &format!("http://{new}"),
            "orders",
            &["/orders/{id}"],
            None,
        )
        .await;
    let version = admin.version().await;

    let anonymous = Admin::new(&s.admin, None);
    let (status, headers, p) = anonymous.call(Method::GET, "/api/v1/catalog", None).await;
    assert_eq!(status, 401, "{p}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let viewer = Admin::new(&s.admin, Some(VIEWER));
    assert_eq!(
        viewer.call(Method::GET, "/api/v1/contexts", None).await.0,
        200
    );
    let body = json!({ "base_version": version, "reason": "x" });
    let (status, _, p) = viewer
        .call(
            Method::POST,
            "/api/v1/contexts/orders/promote",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 403, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("operator token"),
        "{p}"
    );

    let (status, _, p) = admin
        .call(
            Method::POST,
            "/api/v1/contexts/orders/promote",
            Some(json!({ "reason": "x" })),
        )
        .await;
    assert_eq!(status, 428, "{p}");
    assert_eq!(p["field"], "base_version");
    let (status, _, p) = admin
        .call(
            Method::POST,
            "/api/v1/contexts/orders/promote",
            Some(json!({ "base_version": version })),
        )
        .await;
    assert_eq!(
        (status.as_u16(), p["field"].as_str()),
        (400, Some("reason")),
        "{p}"
    );
    let (status, _, p) = admin
        .call(
            Method::POST,
            "/api/v1/contexts/orders/promote",
            Some(json!({ "base_version": version - 1, "reason": "x" })),
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["current_version"], version);

    let (status, _, p) = admin
        .call(
            Method::POST,
            "/api/v1/contexts/orders/weight",
            Some(json!({ "base_version": version, "reason": "x", "weight": 20000 })),
        )
        .await;
    assert_eq!(
        (status.as_u16(), p["field"].as_str()),
        (400, Some("weight")),
        "{p}"
    );
    let (status, _, p) = admin
        .call(
            Method::POST,
            "/api/v1/contexts/orders/weight",
            Some(json!({ "base_version": version, "reason": "x", "weight": 100 })),
        )
        .await;
    assert_eq!(status, 409, "weights need canary: {p}");
    assert_eq!(p["type"], "urn:strangler:problem:illegal-transition");

    let (status, _, p) = admin
        .call(Method::POST, "/api/v1/routes", Some(json!({ "base_version": version, "reason": "x", "context": "orders", "path": "orders/{id" })))
        .await;
    assert_eq!(status, 422, "{p}");
    assert!(p["field"].as_str().unwrap().starts_with("routes."), "{p}");
    let (status, _, p) = admin
        .call(Method::POST, "/api/v1/contexts", Some(json!({ "base_version": version, "reason": "x", "name": "billing", "target": "ghost", "state": "legacy" })))
        .await;
    assert_eq!(
        (status.as_u16(), p["field"].as_str()),
        (422, Some("contexts.billing.target")),
        "{p}"
    );
    let (status, _, p) = admin
        .call(
            Method::POST,
            "/api/v1/contexts/nope/promote",
            Some(json!({ "base_version": version, "reason": "x" })),
        )
        .await;
    assert_eq!(status, 404, "{p}");

    // Malformed JSON.
    let req = http::Request::post(format!("{}/api/v1/contexts", admin.base))
        .header("authorization", format!("Bearer {OPERATOR}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"name\": ")))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    assert_eq!(
        admin.version().await,
        version,
        "a refused change moved the version"
    );
    let (_, _, audit) = admin.call(Method::GET, "/api/v1/audit", None).await;
    assert_eq!(
        audit["items"][0]["version"], version,
        "a refused change was audited"
    );
    s.stop().await;
}

#[tokio::test]
async fn without_an_operator_token_changes_are_refused_with_the_fix() {
    let legacy = named("legacy").await;
    let s = start(&format!("http://{legacy}"), &[]).await;
    let admin = Admin::new(&s.admin, None);
    let (status, _, _) = admin.call(Method::GET, "/api/v1/catalog", None).await;
    assert_eq!(status, 200, "reads are open when no token is configured");
    let (status, _, p) = admin.call(Method::POST, "/api/v1/services", Some(json!({ "base_version": 0, "reason": "x", "name": "a", "urls": ["http://127.0.0.1:1"] }))).await;
    assert_eq!(status, 403);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("STRANGLER_AUTH_OPERATOR_TOKEN"),
        "{p}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_hundred_changes_under_load_fail_no_request() {
    let (_, new, s, admin) = shop().await;
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
        .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
        .await;
    admin
        .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
        .await;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (ok, failed, stop) = (Arc::clone(&ok), Arc::clone(&failed), Arc::clone(&stop));
        let url = format!("http://{}/orders/7", s.listen);
        load.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get(&url)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                match c.request(req).await {
                    Ok(r) if r.status() == 200 => {
                        let body = r.into_body().collect().await.map(|b| b.to_bytes());
                        match body {
                            Ok(b) if b == "legacy" || b == "new" => {
                                ok.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for i in 0..100 {
        let weight = if i % 2 == 0 { 10000 } else { 0 };
        admin
            .change(
                Method::POST,
                "/api/v1/contexts/orders/weight",
                json!({ "weight": weight, "reason": format!("flip {i}") }),
            )
            .await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed, 0,
        "{failed} failed requests during 100 changes ({ok} succeeded)"
    );
    assert!(ok > 100, "the load was too light to mean anything: {ok}");
    let metrics = fetch(&format!("http://{}/metrics", s.admin)).await.2;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("strangler_catalog_rejected_total 0\n"),
        "{metrics}"
    );
    s.stop().await;
}

/// POST through the facade: who answered.
async fn write(facade: &str, path: &str, cookie: &str) -> String {
    let req = http::Request::post(format!("http://{facade}{path}"))
        .header("cookie", cookie)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn writes_go_to_the_owner_legacy_until_cutover_whatever_the_canary_split() {
    let (_, new, s, admin) = shop().await;
    admin
        .carve(
            "orders-svc",
            &format!("http://{new}"),
            "orders",
            &["/orders/{id}"],
            Some("cookie:sid"),
        )
        .await;
    admin
        .change(
            Method::POST,
            "/api/v1/routes",
            json!({ "context": "orders", "methods": ["POST"], "path": "/orders/{id}" }),
        )
        .await;
    for _ in 0..2 {
        admin
            .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
            .await;
    }
    let weight = |w: u32| json!({ "weight": w });
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/weight",
            weight(10_000),
        )
        .await;
    admin.in_effect().await;
    let f = s.listen.as_str();
    // Every user reads from new, but legacy owns the writes until the cutover.
    for user in 0..20 {
        let cookie = format!("sid=user-{user}");
        assert_eq!(answer(f, "/orders/1", Some(&cookie)).await.0, "new");
        assert_eq!(
            write(f, "/orders/1", &cookie).await,
            "legacy",
            "user {user}"
        );
    }
    let (_, _, ctx) = admin
        .call(Method::GET, "/api/v1/contexts/orders", None)
        .await;
    assert_eq!(ctx["item"]["owner"], "legacy", "{ctx}");
    // The context read back and sent again keeps working: `owner` is read-only, not unknown.
    let mut item = ctx["item"].clone();
    item["description"] = "orders, cut over soon".into();
    admin
        .change(Method::PUT, "/api/v1/contexts/orders", item.clone())
        .await;
    item["owner"] = "new".into();
    item["base_version"] = admin.version().await.into();
    let (status, _, problem) = admin
        .call(Method::PUT, "/api/v1/contexts/orders", Some(item))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("cutover"),
        "{problem}"
    );

    // The writes legacy took reach the new service (mirrored by default in canary) first.
    admin.drained("orders").await;
    let cut = admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/cutover",
            json!({ "reason": "drained" }),
        )
        .await;
    assert_eq!(cut["item"]["owner"], "new", "{cut}");
    admin
        .change(Method::POST, "/api/v1/contexts/orders/weight", weight(0))
        .await;
    admin.in_effect().await;
    // Now every user reads from legacy, and every write goes to the new owner.
    for user in 0..20 {
        let cookie = format!("sid=user-{user}");
        assert_eq!(answer(f, "/orders/1", Some(&cookie)).await.0, "legacy");
        assert_eq!(write(f, "/orders/1", &cookie).await, "new", "user {user}");
    }
    let (status, _, again) = admin
        .call(
            Method::POST,
            "/api/v1/contexts/orders/cutover",
            Some(json!({ "base_version": admin.version().await, "reason": "again" })),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    // The audit says who cut over and why.
    let (_, _, audit) = admin
        .call(Method::GET, "/api/v1/audit?target=context:orders", None)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"cutover"), "{audit}");
    // A rollback returns the writes to legacy, once the new side's are mirrored back.
    admin.drained("orders").await;
    admin
        .change(Method::POST, "/api/v1/contexts/orders/rollback", json!({}))
        .await;
    admin.in_effect().await;
    assert_eq!(write(f, "/orders/1", "sid=user-1").await, "legacy");
    s.stop().await;
}

/// The admin API answers a change once it is in effect on its own replica: the very next
/// request there follows it, every time.
#[tokio::test]
async fn a_change_is_in_effect_on_its_replica_when_it_is_answered() {
    let legacy = named("legacy").await;
    let new = named("new").await;
    let catalog = crate::binary::temp_catalog();
    let mut env = token_env();
    env.push(("STRANGLER_CATALOG_URL", catalog.as_str()));
    // A long poll: only the in-process notification can carry the change in time.
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "30s"));
    let s = crate::binary::start_with(&format!("http://{legacy}"), &env).await;
    let api = Admin::new(&s.admin, Some(OPERATOR));
    api.carve(
        "orders-svc",
        &format!("http://{new}"),
        "orders",
        &["/orders/{id}"],
        None,
    )
    .await;
    for _ in 0..2 {
        api.change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
            .await;
    }
    for round in 0..10 {
        for (weight, side) in [(10_000, "new"), (0, "legacy")] {
            api.change(
                Method::POST,
                "/api/v1/contexts/orders/weight",
                json!({ "weight": weight }),
            )
            .await;
            let (_, _, body) = fetch(&format!("http://{}/orders/1", s.listen)).await;
            assert_eq!(body, side.as_bytes(), "round {round}: weight {weight}");
        }
    }
    s.stop().await;
}

/// Every path that names a context, a service or a route answers 404 (problem+json) for a name
/// that does not exist — reads and changes alike — and changes nothing.
#[tokio::test]
async fn unknown_names_answer_404_everywhere() {
    let (_legacy, _new, s, api) = shop().await;
    let version = api.version().await;
    let change = |extra: serde_json::Value| {
        let mut body = json!({ "base_version": version, "reason": "probe" });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        Some(body)
    };
    let probes: Vec<(Method, &str, Option<serde_json::Value>)> = vec![
        (Method::GET, "/api/v1/contexts/nope", None),
        (Method::GET, "/api/v1/contexts/nope/shadow", None),
        (Method::GET, "/api/v1/contexts/nope/traffic", None),
        (Method::GET, "/api/v1/contexts/nope/shadow/noise", None),
        (
            Method::POST,
            "/api/v1/contexts/nope/promote",
            change(json!({})),
        ),
        (
            Method::POST,
            "/api/v1/contexts/nope/cutover",
            change(json!({})),
        ),
        (
            Method::POST,
            "/api/v1/contexts/nope/rollback",
            change(json!({})),
        ),
        (
            Method::POST,
            "/api/v1/contexts/nope/weight",
            change(json!({ "weight": 10 })),
        ),
        (
            Method::POST,
            "/api/v1/contexts/nope/autopilot",
            change(json!({ "paused": true })),
        ),
        (
            Method::POST,
            "/api/v1/contexts/nope/shadow/pause",
            change(json!({ "paused": true })),
        ),
        (Method::DELETE, "/api/v1/contexts/nope", change(json!({}))),
        (
            Method::PATCH,
            "/api/v1/contexts/nope",
            change(json!({ "weight": 1 })),
        ),
        (Method::GET, "/api/v1/services/nope", None),
        (
            Method::PATCH,
            "/api/v1/services/nope",
            change(json!({ "urls": [] })),
        ),
        (Method::DELETE, "/api/v1/services/nope", change(json!({}))),
        (Method::GET, "/api/v1/routes/rnope", None),
        (Method::DELETE, "/api/v1/routes/rnope", change(json!({}))),
    ];
    for (method, path, body) in probes {
        let (status, headers, problem) = api.call(method.clone(), path, body).await;
        assert_eq!(status, 404, "{method} {path}: {problem}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{method} {path}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("nope")),
            "{method} {path}: {problem}"
        );
    }
    assert_eq!(api.version().await, version, "nothing changed");
    s.stop().await;
}
