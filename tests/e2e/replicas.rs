//! Several replicas on one PostgreSQL store, and a store outage. These run when
//! `STRANGLER_TEST_POSTGRES` names a server (`.ci/run` sets it); each test makes a database of
//! its own.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::admin::{token_env, Admin, OPERATOR};
use crate::binary::start_with;
use crate::harness::*;

/// A database on the test server, dropped (with its connections) when the value is.
pub(crate) struct Database {
    url: String,
    admin_url: String,
    name: String,
}

impl Database {
    pub fn as_str(&self) -> &str {
        &self.url
    }
}

impl std::ops::Deref for Database {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                self.admin_url.as_str(),
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A fresh database on the test server; `None` when PostgreSQL tests are not asked for.
pub(crate) async fn fresh_database() -> Option<Database> {
    let Ok(admin_url) = std::env::var("STRANGLER_TEST_POSTGRES") else {
        eprintln!("STRANGLER_TEST_POSTGRES is not set: PostgreSQL test not run");
        return None;
    };
    let name = format!(
        "strangler_e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    );
    let status = std::process::Command::new("psql")
        .args([
            admin_url.as_str(),
            "-q",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .status()
        .expect("psql is needed for the PostgreSQL tests");
    assert!(status.success(), "cannot create a database on {admin_url}");
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b)
        .to_owned();
    Some(Database {
        url: format!("{base}/{name}"),
        admin_url,
        name,
    })
}

async fn body_of(facade: &str, path: &str) -> String {
    String::from_utf8_lossy(&fetch(&format!("http://{facade}{path}")).await.2).into_owned()
}

#[tokio::test]
async fn a_change_through_one_replica_is_in_effect_on_the_other_within_a_second() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let legacy = named("legacy").await;
    let new = named("new").await;
    let mut env = token_env();
    env.push(("STRANGLER_CATALOG_URL", db.as_str()));
    // A long poll interval: the notification, not the safety net, must carry the change.
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "30s"));
    let a = start_with(&format!("http://{legacy}"), &env).await;
    let b = start_with(&format!("http://{legacy}"), &env).await;
    let api_a = Admin::new(&a.admin, Some(OPERATOR));
    api_a
        .carve(
            "orders-svc",
            &format!("http://{new}"),
            "orders",
            &["/orders/{id}"],
            None,
        )
        .await;
    api_a
        .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
        .await;
    api_a
        .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
        .await;
    assert_eq!(body_of(&b.listen, "/orders/1").await, "legacy");

    let changed = Instant::now();
    api_a
        .change(
            Method::POST,
            "/api/v1/contexts/orders/weight",
            json!({ "weight": 10000 }),
        )
        .await;
    loop {
        if body_of(&b.listen, "/orders/1").await == "new" {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "replica B did not follow within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("replica B followed in {:?}", changed.elapsed());
    a.stop().await;
    b.stop().await;
}

async fn post_to(facade: &str, path: &str) -> String {
    let req = http::Request::post(format!("http://{facade}{path}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn replicas_agree_on_the_write_owner() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let legacy = named("legacy").await;
    let new = named("new").await;
    let mut env = token_env();
    env.push(("STRANGLER_CATALOG_URL", db.as_str()));
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "30s"));
    let a = start_with(&format!("http://{legacy}"), &env).await;
    let b = start_with(&format!("http://{legacy}"), &env).await;
    let (api_a, api_b) = (
        Admin::new(&a.admin, Some(OPERATOR)),
        Admin::new(&b.admin, Some(OPERATOR)),
    );
    api_a
        .carve(
            "orders-svc",
            &format!("http://{new}"),
            "orders",
            &["/orders/{id}"],
            None,
        )
        .await;
    api_a
        .change(
            Method::POST,
            "/api/v1/routes",
            json!({ "context": "orders", "methods": ["POST"], "path": "/orders/{id}" }),
        )
        .await;
    for _ in 0..2 {
        api_a
            .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
            .await;
    }
    api_b.in_effect().await;
    // In canary legacy owns the writes, on both replicas; each replica's mirror of them
    // reaches the new service through the shared outbox.
    for f in [&a.listen, &b.listen] {
        assert_eq!(post_to(f, "/orders/1").await, "legacy");
    }
    api_a.drained("orders").await;
    let cut = api_a
        .change(
            Method::POST,
            "/api/v1/contexts/orders/cutover",
            json!({ "reason": "drained" }),
        )
        .await;
    assert_eq!(cut["item"]["owner"], "new");
    // B learns it from the store's notification and sends its writes to the new owner.
    let changed = Instant::now();
    while post_to(&b.listen, "/orders/2").await != "new" {
        assert!(
            changed.elapsed() < Duration::from_secs(2),
            "replica B still sends writes to legacy"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_, _, seen_by_b) = api_b
        .call(Method::GET, "/api/v1/contexts/orders", None)
        .await;
    assert_eq!(seen_by_b["item"]["owner"], "new", "{seen_by_b}");
    a.stop().await;
    b.stop().await;
}

/// A TCP relay to PostgreSQL that can be cut and restored, to take the store away.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (flag, gen) = (Arc::clone(&up), Arc::clone(&generation));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the store is "down"
                }
                let (flag, gen) = (Arc::clone(&flag), Arc::clone(&gen));
                let born = gen.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let pipe = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while flag.load(Ordering::SeqCst) && gen.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = pipe => {}, () = cut => {} }
                });
            }
        });
        Self {
            addr,
            up,
            generation,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_store_outage_keeps_traffic_flowing_refuses_changes_and_recovers() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let relay = Relay::start("127.0.0.1:5432".parse().unwrap()).await;
    let through_relay = db.replacen("127.0.0.1:5432", &relay.addr.to_string(), 1);
    assert_ne!(
        through_relay,
        db.as_str(),
        "the test server must be at 127.0.0.1:5432"
    );
    let legacy = named("legacy").await;
    let new = named("new").await;
    let mut env = token_env();
    env.push(("STRANGLER_CATALOG_URL", through_relay.as_str()));
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "200ms"));
    let s = start_with(&format!("http://{legacy}"), &env).await;
    let api = Admin::new(&s.admin, Some(OPERATOR));
    api.carve(
        "orders-svc",
        &format!("http://{new}"),
        "orders",
        &["/orders/{id}"],
        None,
    )
    .await;
    api.promote_to_canary("orders", 10_000).await;
    let version = api.version().await;
    api.in_effect().await;
    assert_eq!(body_of(&s.listen, "/orders/1").await, "new");

    relay.cut();
    let readyz = format!("http://{}/readyz", s.admin);
    let started = Instant::now();
    let reason = loop {
        let (_, _, body) = fetch(&readyz).await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v["status"] == "degraded" {
            break v["reason"].as_str().unwrap().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "readyz never reported the outage: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(reason.contains("unavailable"), "{reason}");
    for _ in 0..20 {
        assert_eq!(
            body_of(&s.listen, "/orders/1").await,
            "new",
            "traffic changed during the outage"
        );
    }
    let (status, _, p) = api
        .call(
            Method::POST,
            "/api/v1/contexts/orders/rollback",
            Some(json!({ "base_version": version, "reason": "during outage" })),
        )
        .await;
    assert_eq!(status, 503, "{p}");
    assert_eq!(p["type"], "urn:strangler:problem:store-unavailable");

    relay.restore();
    let started = Instant::now();
    loop {
        let (_, _, body) = fetch(&readyz).await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v["status"] == "ready" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "readyz never recovered: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.change(
        Method::POST,
        "/api/v1/contexts/orders/rollback",
        json!({ "reason": "after outage" }),
    )
    .await;
    let started = Instant::now();
    while body_of(&s.listen, "/orders/1").await != "legacy" {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the change after recovery did not take effect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
}
