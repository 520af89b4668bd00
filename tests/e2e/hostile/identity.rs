//! Identity on every copy: a shadow copy and a composed part of a context behind the identity
//! bridge get what the live request gets — the identity token (with `aud` naming the service),
//! never the legacy session cookie.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::Full;
use strangler_catalog::{MigrationState, Route, RouteSpec};

use super::shared_answers::{bridge, legacy_sessions};
use crate::harness::*;
use crate::shadow::catalog;

type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

/// A new service that records (identity token, cookie) of what it is sent.
fn recording(seen: Seen) -> Router {
    let record = move |headers: http::HeaderMap| {
        let seen = Arc::clone(&seen);
        async move {
            let h = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            seen.lock()
                .unwrap()
                .push((h("x-strangler-identity"), h("cookie")));
            axum::Json(serde_json::json!({ "id": 1 }))
        }
    };
    Router::new()
        .route("/v2/me", get(record.clone()))
        .route("/v2/part", get(record))
}

fn route(path: &str) -> (String, Route) {
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
    (
        spec.id(),
        Route {
            id: spec.id(),
            context: "orders".into(),
            spec,
        },
    )
}

fn claims_of(token: &str, f: &FacadeHandle) -> serde_json::Value {
    let public =
        strangler_anti_corruption::identity::public_key_of(&f.facade.identity_jwks().unwrap())
            .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = strangler_anti_corruption::identity::verify(token, &public, now).unwrap();
    serde_json::from_str(&claims.to_json()).unwrap()
}

#[tokio::test]
async fn shadow_copies_and_composed_parts_carry_the_identity_not_the_session() {
    let (legacy, _) = axum_upstream(legacy_sessions().fallback(|| async { "legacy" })).await;
    let seen: Seen = Arc::default();
    let (new, _) = axum_upstream(recording(Arc::clone(&seen))).await;
    let f = facade(legacy, |cfg| cfg.identity = Some(bridge())).await;
    let mut c = catalog(new, MigrationState::Shadow);
    c.routes.clear();
    c.routes.extend([route("/api/me")]);
    c.contexts.get_mut("orders").unwrap().translator =
        Some("[[paths]]\nfrom = \"/api/me\"\nto = \"/v2/me\"\n[identity]\n".into());
    f.facade.apply_catalog(&c).unwrap();
    let req = http::Request::get(f.url("/api/me"))
        .header("cookie", "SID=ada; theme=dark")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client().request(req).await.unwrap().status(), 200);
    let started = Instant::now();
    while seen.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no shadow copy arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (token, cookie) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        cookie.as_deref(),
        Some("theme=dark"),
        "the session stays with legacy"
    );
    let claims = claims_of(&token.expect("the shadow copy has no identity"), &f);
    assert_eq!(
        (claims["sub"].as_str(), claims["aud"].as_str()),
        (Some("ada"), Some("orders-svc"))
    );

    // A composed route in migrated: the new part gets the token, the legacy part the session.
    seen.lock().unwrap().clear();
    let mut c = catalog(new, MigrationState::Migrated);
    c.version = 2;
    c.routes.clear();
    c.routes.extend([route("/api/summary")]);
    c.contexts.get_mut("orders").unwrap().translator = Some(
        r#"
[[compose]]
path = "/api/summary"
parts = [
  { name = "mine", side = "new", path = "/v2/part" },
  { name = "who", side = "legacy", path = "/api/session" },
]
body = { id = "$.mine.id", sub = "$.who.sub" }
[identity]
"#
        .into(),
    );
    f.facade.apply_catalog(&c).unwrap();
    let req = http::Request::get(f.url("/api/summary"))
        .header("cookie", "SID=bob")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({ "id": 1, "sub": "bob" }),
        "the legacy part had the session"
    );
    let (token, cookie) = seen.lock().unwrap()[0].clone();
    assert_eq!(cookie, None, "the new part got the session cookie");
    let claims = claims_of(&token.expect("the new part has no identity"), &f);
    assert_eq!(
        (claims["sub"].as_str(), claims["aud"].as_str()),
        (Some("bob"), Some("orders-svc"))
    );
}
