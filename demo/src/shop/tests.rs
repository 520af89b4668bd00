use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

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

#[tokio::test]
async fn orders_have_legacy_habits() {
    let app = legacy_shop(Shop::sample("http://legacy:8000".into()));
    let req = Request::post("/api/orders")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"customerId":3,"lines":[{"productId":2,"quantity":3},{"productId":1,"quantity":1}]}"#))
        .unwrap();
    let (status, headers, order) = call(&app, req).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(order["totalAmount"], "62.40");
    assert_eq!(order["status"], "N");
    let id = order["orderId"].as_u64().unwrap();
    assert_eq!(
        headers["location"],
        format!("http://legacy:8000/api/orders/{id}").as_str()
    );
    let (status, _, fetched) = call(
        &app,
        Request::get(format!("/api/orders/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, order);
}

#[tokio::test]
async fn errors_use_the_legacy_envelope() {
    let app = legacy_shop(Shop::sample("http://legacy:8000".into()));
    let (status, _, body) = call(
        &app,
        Request::get("/api/products/99")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "E404");
    let req = Request::post("/api/orders")
        .body(Body::from(
            r#"{"customerId":1,"lines":[{"productId":42,"quantity":1}]}"#,
        ))
        .unwrap();
    let (status, _, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["message"], "unknown product 42");
}

#[test]
fn prices_parse_as_cents() {
    assert_eq!(price_cents("24.90"), 2490);
    assert_eq!(price_cents("149"), 14900);
    assert_eq!(price_cents("0.5"), 50);
}
