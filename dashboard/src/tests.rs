use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

fn state(ready: Arc<AtomicBool>) -> AdminState {
    AdminState {
        metrics: Arc::new(|out: &mut String| out.push_str("strangler_up 1\n")),
        services: Arc::new(|| serde_json::json!({})),
        jwks: None,
        readiness: Arc::new(move || {
            if ready.load(Ordering::SeqCst) {
                Readiness::Ready
            } else {
                Readiness::NotReady("draining".to_owned())
            }
        }),
    }
}

async fn get(app: Router, path: &str) -> (StatusCode, String, String) {
    let resp = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn readiness_follows_the_process() {
    let ready = Arc::new(AtomicBool::new(true));
    let app = router(state(Arc::clone(&ready)), None);
    let (status, _, body) = get(app.clone(), "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("ready"));
    ready.store(false, Ordering::SeqCst);
    let (status, _, body) = get(app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("draining"), "{body}");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = router(state(Arc::new(AtomicBool::new(true))), None);
    let (status, ct, body) = get(app.clone(), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/plain; version=0.0.4"));
    assert_eq!(body, "strangler_up 1\n");
    let (status, ct, _) = get(app, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ct, "application/problem+json");
}
