//! No answer reaches the wrong user: request collapsing keys on the request as the facade
//! rewrote it (the identity bridge's token included), and credentialed requests are not
//! shared unless the service says its answers are the same for everyone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use strangler_catalog::{Catalog, MigrationState, Route, RouteSpec};

use crate::harness::*;
use crate::shadow::catalog;

/// Legacy resolves `SID=<name>` to the claims `{"sub": "<name>"}`.
pub(crate) fn legacy_sessions() -> Router {
    Router::new().route(
        "/api/session",
        get(|headers: http::HeaderMap| async move {
            let sid = headers
                .get("cookie")
                .and_then(|v| v.to_str().ok())
                .and_then(|c| c.strip_prefix("SID="))
                .unwrap_or("")
                .to_owned();
            if sid.is_empty() {
                (http::StatusCode::UNAUTHORIZED, String::new())
            } else {
                (http::StatusCode::OK, format!(r#"{{"sub":"{sid}"}}"#))
            }
        }),
    )
}

pub(crate) fn bridge() -> strangler_facade::IdentityConfig {
    strangler_facade::IdentityConfig {
        cookie: "SID".into(),
        resolve_path: "/api/session".into(),
        cache_ttl: Duration::from_secs(60),
        token_ttl: Duration::from_secs(300),
        issuer: "facade".into(),
        seed: [7; 32],
    }
}

/// `/api/me` migrated to a service behind the identity bridge, with collapsing on.
fn me_catalog(new: std::net::SocketAddr, with_credentials: bool) -> Catalog {
    let mut c = catalog(new, MigrationState::Migrated);
    c.routes.clear();
    let spec = RouteSpec {
        methods: vec![],
        path: "/api/me".into(),
        host: None,
        headers: vec![],
        query: vec![],
        version: None,
        reads: false,
        shadow: Default::default(),
    };
    c.routes.insert(
        spec.id(),
        Route {
            id: spec.id(),
            context: "orders".into(),
            spec,
        },
    );
    let ctx = c.contexts.get_mut("orders").unwrap();
    ctx.translator = Some("[[paths]]\nfrom = \"/api/me\"\nto = \"/v2/me\"\n[identity]\n".into());
    let svc = c.services.get_mut("orders-svc").unwrap();
    svc.policy.collapse_requests = Some(true);
    svc.policy.collapse_with_credentials = Some(with_credentials);
    svc.policy.collapse_window_ms = Some(100);
    c
}

/// The new service answers who the identity token says the caller is, slowly enough for
/// concurrent requests to overlap.
fn me_service(calls: Arc<AtomicUsize>, public: Arc<std::sync::OnceLock<[u8; 32]>>) -> Router {
    Router::new().route(
        "/v2/me",
        get(move |headers: http::HeaderMap| {
            let calls = Arc::clone(&calls);
            let public = Arc::clone(&public);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                let token = headers
                    .get("x-strangler-identity")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                match strangler_anti_corruption::identity::verify(token, public.get().unwrap(), now)
                {
                    Ok(claims) => claims
                        .get("sub")
                        .and_then(|s| s.as_str())
                        .unwrap_or("?")
                        .to_owned(),
                    Err(_) => "anonymous".to_owned(),
                }
            }
        }),
    )
}

#[tokio::test]
async fn concurrent_users_behind_the_identity_bridge_each_get_their_own_answer() {
    for with_credentials in [false, true] {
        let (legacy, _) = axum_upstream(legacy_sessions()).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let public = Arc::new(std::sync::OnceLock::new());
        let (new, _) = axum_upstream(me_service(Arc::clone(&calls), Arc::clone(&public))).await;
        let f = facade(legacy, |cfg| cfg.identity = Some(bridge())).await;
        let _ = public.set(
            strangler_anti_corruption::identity::public_key_of(&f.facade.identity_jwks().unwrap())
                .unwrap(),
        );
        f.facade
            .apply_catalog(&me_catalog(new, with_credentials))
            .unwrap();
        let users = ["ada", "bob", "cy", "ada"];
        let asks: Vec<_> = users
            .iter()
            .map(|user| {
                let req = http::Request::get(f.url("/api/me"))
                    .header("cookie", format!("SID={user}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                tokio::spawn(async move {
                    let resp = client().request(req).await.unwrap();
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    String::from_utf8(body.to_vec()).unwrap()
                })
            })
            .collect();
        for (user, ask) in users.iter().zip(asks) {
            assert_eq!(
                ask.await.unwrap(),
                *user,
                "with_credentials = {with_credentials}: a user got another's answer"
            );
        }
        // Shared only where the requests were the same as the service saw them.
        let made = calls.load(Ordering::SeqCst);
        assert!(
            (3..=4).contains(&made),
            "with_credentials = {with_credentials}: {made} calls"
        );
    }
}
