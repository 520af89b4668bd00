//! Routes match the RFC 3986 normal form of the path: another spelling of a migrated or retired
//! route never reaches legacy, and what is forwarded is the path the route table decided on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use strangler_catalog::{Catalog, MigrationState, Route, RouteSpec};

use crate::harness::*;
use crate::shadow::catalog;

/// An upstream that answers `name path` and records the paths it saw.
async fn recording(name: &'static str) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let app = Router::new().fallback(move |uri: http::Uri| {
        let log = Arc::clone(&log);
        async move {
            log.lock().unwrap().push(uri.to_string());
            format!("{name} {}", uri.path())
        }
    });
    (axum_upstream(app).await.0, seen)
}

fn me(new: std::net::SocketAddr, state: MigrationState) -> Catalog {
    let mut c = catalog(new, state);
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
    c
}

async fn get(addr: std::net::SocketAddr, target: &str) -> (u16, String) {
    let req = format!("GET {target} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n");
    let (resp, _) = raw(addr, req.as_bytes(), Duration::from_secs(5)).await;
    let (status, _, body) = parse_raw(&resp);
    (status, body)
}

const SPELLINGS: [&str; 7] = [
    "/api/me",
    "/x/../api/me",
    "/api/./me",
    "//api/me",
    "/%61pi/me",
    "/api/x/%2e%2e/me",
    "/api//me?q=1",
];

#[tokio::test]
async fn every_spelling_of_a_migrated_path_reaches_the_new_side() {
    let (legacy, legacy_seen) = recording("legacy").await;
    let (new, new_seen) = recording("new").await;
    let f = facade(legacy, |_| {}).await;
    for state in [MigrationState::Migrated, MigrationState::Retired] {
        f.facade
            .apply_catalog(&{
                let mut c = me(new, state);
                c.version = state as i64 + 10;
                c
            })
            .unwrap();
        for target in SPELLINGS {
            let (status, body) = get(f.addr, target).await;
            assert_eq!(
                (status, body.as_str()),
                (200, "new /api/me"),
                "{state:?} {target}"
            );
        }
    }
    assert!(
        legacy_seen.lock().unwrap().is_empty(),
        "{:?}",
        legacy_seen.lock().unwrap()
    );
    let seen = new_seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|p| p == "/api/me" || p == "/api/me?q=1"),
        "{seen:?}"
    );
    // Other paths are normalised on their way to legacy too, the query untouched.
    let (status, body) = get(f.addr, "/shop/./cart/../basket?x=%2e%2e").await;
    assert_eq!((status, body.as_str()), (200, "legacy /shop/basket"));
    assert_eq!(
        legacy_seen.lock().unwrap().last().unwrap(),
        "/shop/basket?x=%2e%2e"
    );
}

#[tokio::test]
async fn a_path_that_names_nothing_is_refused() {
    let (legacy, legacy_seen) = recording("legacy").await;
    let f = facade(legacy, |_| {}).await;
    for target in ["/../api/me", "/a/../../etc/passwd", "/%2e%2e/x", "/a%zz"] {
        let (status, body) = get(f.addr, target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(body.contains("urn:strangler:problem:bad-request"), "{body}");
    }
    assert!(legacy_seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn case_insensitive_matching_is_an_option() {
    let (legacy, _) = recording("legacy").await;
    let (new, _) = recording("new").await;
    let f = facade(legacy, |c| c.paths.fold_case = true).await;
    f.facade
        .apply_catalog(&me(new, MigrationState::Migrated))
        .unwrap();
    let (status, body) = get(f.addr, "/API/Me").await;
    assert_eq!((status, body.as_str()), (200, "new /API/Me"));
    // Off by default: another case is another path.
    let g = facade(legacy, |_| {}).await;
    g.facade
        .apply_catalog(&me(new, MigrationState::Migrated))
        .unwrap();
    let (_, body) = get(g.addr, "/API/Me").await;
    assert_eq!(body, "legacy /API/Me");
}
