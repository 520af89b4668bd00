use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{legacy_shop, open_db, orders_service, Orders, Shop};

async fn call(
    app: &Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn post(path: &str, json: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(json.to_owned()))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// Removes a test's databases when the test is done, passed or not.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn apps(fixed: bool) -> (Router, Router, TempDir) {
    let dir = std::env::temp_dir().join(format!(
        "strangler_demo_{}_{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let shop = Shop::open(
        open_db(&dir.join("shop.db")).await.unwrap(),
        "http://legacy:8000".into(),
    )
    .await
    .unwrap();
    let orders = Orders::open(
        open_db(&dir.join("orders.db")).await.unwrap(),
        "http://orders:8001".into(),
        fixed,
    )
    .await
    .unwrap();
    (
        legacy_shop(Arc::new(shop)),
        orders_service(Arc::new(orders)),
        TempDir(dir),
    )
}

#[tokio::test]
async fn the_shop_has_legacy_habits() {
    let (shop, _, _dir) = apps(false).await;
    // Tea at 12.75 for customer 2 (10 % off): 11.475 rounds up to 11.48.
    let (status, headers, order) = call(
        &shop,
        post(
            "/api/orders",
            r#"{"customerId": 2, "lines": [{"sku": "TEA-1", "qty": 1}]}"#,
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the old app answers 200 to a new order"
    );
    assert_eq!(order["total"], "11.48");
    assert_eq!(order["status"], "N");
    assert_eq!(order["lines"][0]["unitPrice"], "12.75");
    assert!(order["placedOn"].as_str().unwrap().contains('/'), "{order}");
    let id = order["orderId"].as_i64().unwrap();
    assert_eq!(id, 1000 + crate::data::ORDERS.len() as i64);
    assert_eq!(
        headers["location"],
        format!("http://legacy:8000/api/orders/{id}").as_str()
    );
    let (status, _, fetched) = call(&shop, get(&format!("/api/orders/{id}"))).await;
    assert_eq!((status, &fetched), (StatusCode::OK, &order));
    let (status, _, missing) = call(&shop, get("/api/orders/77")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"]["code"], "order-not-found");
    let (status, _, bad) = call(
        &shop,
        post(
            "/api/orders",
            r#"{"customerId": 2, "lines": [{"sku": "NOPE", "qty": 1}]}"#,
        ),
    )
    .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid-order"))
    );
    let (_, _, list) = call(&shop, get("/api/orders?custId=2&pageSize=1")).await;
    assert_eq!(list["orders"].as_array().unwrap().len(), 1);
    assert_eq!(list["orders"][0], order);
    // Login gives a session cookie and an absolute redirect; the session names the customer.
    let login = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("email=brian%40example.com&password=demo"))
        .unwrap();
    let (status, headers, _) = call(&shop, login).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(headers["location"], "http://legacy:8000/account");
    let cookie = headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (status, _, claims) = call(
        &shop,
        Request::get("/api/session")
            .header("cookie", &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, claims["sub"].as_str()),
        (StatusCode::OK, Some("2"))
    );
}

#[tokio::test]
async fn the_orders_service_has_its_own_model_and_the_planted_bug() {
    let (_, orders, _dir) = apps(false).await;
    let (status, headers, order) = call(
        &orders,
        post(
            "/v2/orders",
            r#"{"customer_id": 2, "lines": [{"sku": "TEA-1", "qty": 1}]}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(order["status"], "new");
    assert_eq!(order["lines"][0]["unit_price_cents"], 1275);
    assert_eq!(
        order["total_cents"], 1147,
        "the planted bug cuts 11.475 to 11.47"
    );
    assert!(order["placed_at"].as_str().unwrap().ends_with('Z'));
    let id = order["order_id"].as_i64().unwrap();
    assert_eq!(
        id,
        1000 + crate::data::ORDERS.len() as i64,
        "ids agree with the shop's"
    );
    assert_eq!(
        headers["location"],
        format!("http://orders:8001/v2/orders/{id}").as_str()
    );
    let resp = orders.clone().oneshot(get("/v2/orders/77")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let (_, _, list) = call(&orders, get("/v2/orders?customer_id=2&limit=1")).await;
    assert_eq!(list["orders"][0], order);

    let (_, fixed, _dir) = apps(true).await;
    let (_, _, order) = call(
        &fixed,
        post(
            "/v2/orders",
            r#"{"customer_id": 2, "lines": [{"sku": "TEA-1", "qty": 1}]}"#,
        ),
    )
    .await;
    assert_eq!(
        order["total_cents"], 1148,
        "fixed: rounded like the monolith"
    );
}

#[tokio::test]
async fn both_apps_start_with_the_same_orders() {
    let (shop, orders, _dir) = apps(true).await;
    for i in 0..crate::data::ORDERS.len() as i64 {
        let id = 1000 + i;
        let (_, _, legacy) = call(&shop, get(&format!("/api/orders/{id}"))).await;
        let (_, _, new) = call(&orders, get(&format!("/v2/orders/{id}"))).await;
        assert_eq!(legacy["customerId"], new["customer_id"], "{id}");
        assert_eq!(
            legacy["total"]
                .as_str()
                .unwrap()
                .replace('.', "")
                .parse::<i64>()
                .unwrap(),
            new["total_cents"].as_i64().unwrap(),
            "order {id}"
        );
    }
}

#[tokio::test]
async fn the_fix_repairs_the_totals_the_bug_cut() {
    let dir = std::env::temp_dir().join(format!("strangler_demo_repair_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = TempDir(dir.clone());
    let path = dir.join("orders.db");
    let buggy = Orders::open(open_db(&path).await.unwrap(), "http://o".into(), false)
        .await
        .unwrap();
    let app = orders_service(Arc::new(buggy));
    let (_, _, order) = call(&app, get("/v2/orders/1001")).await;
    assert_eq!(order["total_cents"], 2227, "22.275 cut by the bug");
    let fixed = Orders::open(open_db(&path).await.unwrap(), "http://o".into(), true)
        .await
        .unwrap();
    let app = orders_service(Arc::new(fixed));
    let (_, _, order) = call(&app, get("/v2/orders/1001")).await;
    assert_eq!(
        order["total_cents"], 2228,
        "repaired when the fixed service starts"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn concurrent_orders_all_succeed_with_distinct_ids() {
    let (shop, orders, _dir) = apps(false).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (shop, orders) = (shop.clone(), orders.clone());
        tasks.push(tokio::spawn(async move {
            let (a, _, legacy) = call(
                &shop,
                post(
                    "/api/orders",
                    &format!(
                        r#"{{"customerId": {}, "lines": [{{"sku": "TEA-1", "qty": 1}}]}}"#,
                        i % 8 + 1
                    ),
                ),
            )
            .await;
            let (b, _, new) = call(
                &orders,
                post(
                    "/v2/orders",
                    &format!(
                        r#"{{"customer_id": {}, "lines": [{{"sku": "TEA-1", "qty": 1}}]}}"#,
                        i % 8 + 1
                    ),
                ),
            )
            .await;
            assert_eq!(
                (a, b),
                (StatusCode::OK, StatusCode::CREATED),
                "{legacy} {new}"
            );
            (
                legacy["orderId"].as_i64().unwrap(),
                new["order_id"].as_i64().unwrap(),
            )
        }));
    }
    let mut legacy_ids = std::collections::BTreeSet::new();
    let mut new_ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (l, n) = t.await.unwrap();
        legacy_ids.insert(l);
        new_ids.insert(n);
    }
    assert_eq!((legacy_ids.len(), new_ids.len()), (24, 24));
}
