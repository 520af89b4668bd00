//! Traffic counts per context and side reach the catalog and the admin API, summed over the
//! window: how far the strangling has come.

use std::time::{Duration, Instant};

use axum::Router;
use http::Method;
use serde_json::json;

use crate::admin::{token_env, Admin, OPERATOR};
use crate::harness::*;

#[tokio::test]
async fn the_api_reports_who_answered_how_much_per_context() {
    let (legacy, _) = axum_upstream(Router::new().fallback(|| async { "legacy" })).await;
    let (new, _) = axum_upstream(Router::new().fallback(|| async { "new" })).await;
    let mut env = token_env();
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "200ms"));
    let s = crate::binary::start(&format!("http://{legacy}"), &env).await;
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
    for _ in 0..3 {
        admin
            .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
            .await;
    }
    // The facade follows the catalog: wait until the new side answers.
    let started = Instant::now();
    loop {
        let (_, _, body) = fetch(&format!("http://{}/orders/1", s.listen)).await;
        if &body[..] == b"new" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 2..6 {
        let (_, _, body) = fetch(&format!("http://{}/orders/{i}", s.listen)).await;
        assert_eq!(&body[..], b"new");
    }
    for path in ["/", "/about", "/cart"] {
        let (_, _, body) = fetch(&format!("http://{}{path}", s.listen)).await;
        assert_eq!(&body[..], b"legacy");
    }
    // Counts reach the catalog within a flush (every second here).
    let started = Instant::now();
    let v = loop {
        let (status, _, v) = admin
            .call(Method::GET, "/api/v1/traffic?minutes=5", None)
            .await;
        assert_eq!(status, 200, "{v}");
        let orders_new = v["contexts"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["context"] == "orders"))
            .and_then(|c| c["new"]["requests"].as_i64())
            .unwrap_or(0);
        if orders_new >= 5 && v["unclaimed"]["requests"].as_i64() >= Some(3) {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let orders = v["contexts"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["context"] == "orders"))
        .cloned()
        .unwrap();
    assert_eq!(orders["new"]["requests"], 5, "{v}");
    assert_eq!(orders["new"]["errors"], 0, "{v}");
    assert!(orders["new"]["p99_ms"].as_u64().is_some(), "{v}");
    // Before the promotion took effect, legacy answered /orders/1 (perhaps several times).
    let before = orders["legacy"]["requests"].as_i64().unwrap_or(0);
    assert_eq!(v["unclaimed"]["requests"], 3, "{v}");
    let total = v["requests"].as_i64().unwrap();
    assert_eq!(total, 5 + 3 + before);
    let share = v["new_share"].as_f64().unwrap();
    assert!((share - 5.0 / total as f64).abs() < 1e-9, "{v}");

    let (status, _, series) = admin
        .call(
            Method::GET,
            "/api/v1/contexts/orders/traffic?minutes=5",
            None,
        )
        .await;
    assert_eq!(status, 200);
    let new_requests: i64 = series["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["side"] == "new")
        .map(|r| r["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(new_requests, 5, "{series}");
    // Per route, too.
    let routes = series["routes"].as_array().cloned().unwrap_or_default();
    let on_new: i64 = routes
        .iter()
        .filter(|r| r["side"] == "new")
        .map(|r| r["requests"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(on_new, 5, "{series}");
    assert!(
        routes
            .iter()
            .all(|r| r["route"].as_str().is_some_and(|id| !id.is_empty())),
        "{series}"
    );
    // Unclaimed requests by path template: ids fold into `{id}`.
    for id in [7, 8, 9] {
        fetch(&format!("http://{}/catalog/{id}?q=1", s.listen)).await;
    }
    let started = Instant::now();
    let templates = loop {
        let (status, _, v) = admin.call(Method::GET, "/api/v1/unclaimed", None).await;
        assert_eq!(status, 200, "{v}");
        let t = v["templates"].as_array().cloned().unwrap_or_default();
        if t.iter()
            .any(|t| t["template"] == "GET /catalog/{id}" && t["requests"] == 3)
        {
            break t;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let names: Vec<&str> = templates
        .iter()
        .filter_map(|t| t["template"].as_str())
        .collect();
    assert_eq!(names[0], "GET /catalog/{id}", "busiest first: {names:?}");
    for t in ["GET /", "GET /about", "GET /cart"] {
        assert!(names.contains(&t), "{t} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains("/orders")),
        "claimed: {names:?}"
    );
    let (status, _, _) = admin
        .call(Method::GET, "/api/v1/contexts/nope/traffic", None)
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = admin
        .call(Method::GET, "/api/v1/traffic?minutes=0", None)
        .await;
    assert_eq!(status, 400);
    s.stop().await;
}
