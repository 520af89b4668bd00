//! Instances that register themselves: heartbeats keep them, silence removes them.

use std::time::{Duration, Instant};

use axum::Router;
use http::Method;
use serde_json::json;

use crate::admin::{token_env, Admin, OPERATOR};
use crate::binary::start_with;
use crate::binary::temp_catalog;
use crate::harness::*;

async fn body(facade: &str) -> String {
    String::from_utf8_lossy(&fetch(&format!("http://{facade}/orders/1")).await.2).into_owned()
}

async fn until(facade: &str, who: &str, within: Duration) {
    let started = Instant::now();
    while body(facade).await != who {
        assert!(
            started.elapsed() < within,
            "not answered by {who} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_registered_instance_serves_while_it_heartbeats_and_is_dropped_after() {
    let (legacy, _) = axum_upstream(Router::new().fallback(|| async { "legacy" })).await;
    let (new, _) = axum_upstream(Router::new().fallback(|| async { "new" })).await;
    let catalog = temp_catalog();
    let mut env = token_env();
    env.push(("STRANGLER_CATALOG_URL", catalog.as_str()));
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "200ms"));
    let s = start_with(&format!("http://{legacy}"), &env).await;
    let admin = Admin::new(&s.admin, Some(OPERATOR));
    admin
        .change(
            Method::POST,
            "/api/v1/services",
            json!({ "name": "orders-svc", "urls": [] }),
        )
        .await;
    admin
        .change(
            Method::POST,
            "/api/v1/contexts",
            json!({ "name": "orders", "target": "orders-svc", "state": "legacy" }),
        )
        .await;
    admin
        .change(
            Method::POST,
            "/api/v1/routes",
            json!({ "context": "orders", "path": "/orders/{id}" }),
        )
        .await;
    for _ in 0..3 {
        admin
            .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
            .await;
    }
    // No instance yet: legacy answers (fallback, the request never left).
    until(&s.listen, "legacy", Duration::from_secs(3)).await;

    let register = json!({ "url": format!("http://{new}"), "ttl_s": 1 });
    let (status, _, v) = admin
        .call(
            Method::POST,
            "/api/v1/services/orders-svc/instances",
            Some(register.clone()),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    until(&s.listen, "new", Duration::from_secs(2)).await;
    let (_, _, svc) = admin
        .call(Method::GET, "/api/v1/services/orders-svc", None)
        .await;
    assert_eq!(
        svc["registered"][0],
        format!("http://{new}").as_str(),
        "{svc}"
    );

    // Heartbeats keep it for longer than its TTL.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (status, _, v) = admin
            .call(
                Method::POST,
                "/api/v1/services/orders-svc/instances",
                Some(register.clone()),
            )
            .await;
        assert_eq!(status, 200, "a heartbeat is not a new registration: {v}");
        assert_eq!(body(&s.listen).await, "new");
    }
    // Silence: gone after the TTL.
    until(&s.listen, "legacy", Duration::from_secs(3)).await;
    let (_, _, log) = admin
        .call(
            Method::GET,
            "/api/v1/audit?target=service:orders-svc&action=instance-registered",
            None,
        )
        .await;
    assert_eq!(
        log["items"].as_array().unwrap().len(),
        1,
        "heartbeats must not fill the audit log: {log}"
    );

    // Registered again, then removed explicitly.
    admin
        .call(
            Method::POST,
            "/api/v1/services/orders-svc/instances",
            Some(json!({ "url": format!("http://{new}"), "ttl_s": 60 })),
        )
        .await;
    until(&s.listen, "new", Duration::from_secs(2)).await;
    let (status, _, _) = admin
        .call(
            Method::DELETE,
            &format!("/api/v1/services/orders-svc/instances?url=http://{new}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    until(&s.listen, "legacy", Duration::from_secs(2)).await;
    s.stop().await;
}

#[tokio::test]
async fn bad_registrations_and_unresolvable_hosts_are_refused() {
    let (legacy, _) = axum_upstream(Router::new().fallback(|| async { "legacy" })).await;
    let s = crate::binary::start(&format!("http://{legacy}"), &token_env()).await;
    let admin = Admin::new(&s.admin, Some(OPERATOR));
    admin
        .change(
            Method::POST,
            "/api/v1/services",
            json!({ "name": "orders-svc", "urls": [] }),
        )
        .await;
    let path = "/api/v1/services/orders-svc/instances";
    for (body, status, field) in [
        (
            json!({ "url": "http://127.0.0.1:9", "ttl_s": 0 }),
            400,
            "ttl_s",
        ),
        (
            json!({ "url": "http://127.0.0.1:9", "ttl_s": 99999 }),
            400,
            "ttl_s",
        ),
        (json!({ "url": "ftp://x", "ttl_s": 5 }), 400, "url"),
        (
            json!({ "url": "http://no-such-host.invalid:80", "ttl_s": 5 }),
            422,
            "services.orders-svc.instances",
        ),
    ] {
        let (got, _, p) = admin.call(Method::POST, path, Some(body)).await;
        assert_eq!(
            (got.as_u16(), p["field"].as_str()),
            (status, Some(field)),
            "{p}"
        );
    }
    let (got, _, p) = admin
        .call(
            Method::POST,
            "/api/v1/services/ghost/instances",
            Some(json!({ "url": "http://127.0.0.1:9", "ttl_s": 5 })),
        )
        .await;
    assert_eq!(got, 404, "{p}");
    let v = admin.version().await;
    let (got, _, p) = admin
        .call(Method::POST, "/api/v1/services", Some(json!({ "base_version": v, "reason": "x", "name": "dns", "urls": ["http://no-such-host.invalid:8080"] })))
        .await;
    assert_eq!(
        (got.as_u16(), p["field"].as_str()),
        (422, Some("services.dns.urls[0]")),
        "{p}"
    );
    s.stop().await;
}
