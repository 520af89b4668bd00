//! The mirror outbox end to end: mirrored writes are durable before they are acknowledged (a
//! `kill -9` loses none), and the delivery loop holds a context's later writes behind a failed
//! one, retries what the new service asks to have retried, and gives up after the configured
//! attempts — each against a new service that fails in that way.
//!
//! Size: over 600 lines, kept whole on purpose: data across the split is one story (outbox,
//! cutover, rollback, read-your-writes, ids, reconciliation), told with the same orders services
//! and helpers; split by file, each part would need them all again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::admin::Admin;
use crate::harness::*;
use crate::shadow::shadowed_with;

/// Every attempt the new service saw: (the write's `n`, the status it answered).
type Attempts = Arc<Mutex<Vec<(u64, u16)>>>;

/// How the new service answers the `k`-th attempt (from 0) of write `n`.
type Script = Arc<dyn Fn(u64, usize) -> u16 + Send + Sync>;

/// A new service that answers writes `{"n": N}` to `/orders/{id}` as `script` says, after
/// `gate` opens for the first attempt of write 1 (when given).
fn new_service(
    attempts: &Attempts,
    script: Script,
    gate: Option<Arc<tokio::sync::Notify>>,
) -> Router {
    let attempts = Arc::clone(attempts);
    Router::new().route(
        "/orders/{id}",
        post(move |body: Bytes| {
            let attempts = Arc::clone(&attempts);
            let script = Arc::clone(&script);
            let gate = gate.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                let n = v["n"].as_u64().unwrap_or(0);
                let k = attempts
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(m, _)| *m == n)
                    .count();
                if let (Some(gate), 1, 0) = (gate, n, k) {
                    gate.notified().await;
                }
                let status = script(n, k);
                attempts.lock().unwrap().push((n, status));
                (
                    http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(json!({ "n": n })),
                )
            }
        }),
    )
}

/// Legacy: takes every write and answers it 201 with the write's `n`.
fn legacy_service() -> Router {
    Router::new().route(
        "/orders/{id}",
        post(|body: Bytes| async move {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            (
                http::StatusCode::CREATED,
                axum::Json(json!({ "n": v["n"] })),
            )
        }),
    )
}

const ROUTE: &str =
    r#"{ "methods": ["POST"], "path": "/orders/{id}", "shadow": { "writes": "mirror" } }"#;

async fn write(listen: &str, n: u64) -> Result<u16, String> {
    let req = http::Request::post(format!("http://{listen}/orders/{n}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(
            json!({ "n": n }).to_string(),
        )))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

/// The context's outbox and shadow figures once `done` holds (60 s at most).
async fn outbox_until(admin: &Admin, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, _, v) = admin
            .call(
                Method::GET,
                "/api/v1/contexts/orders/shadow?minutes=10",
                None,
            )
            .await;
        if done(&v) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} never happened: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn acknowledged_mirrored_writes_survive_kill_9_and_are_delivered_once() {
    let (legacy, _) = axum_upstream(legacy_service()).await;
    let new_addr = dead_port();
    let scratch = Scratch::new("mirror-kill");
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    let env = [("STRANGLER_SHADOW_MIRROR_RETRY", "50ms")];
    let (mut s, _admin) = shadowed_with(
        legacy,
        new_addr,
        &catalog_url,
        json!({}),
        serde_json::from_str(ROUTE).unwrap(),
        &env,
    )
    .await;

    // Eight clients write while the new service is down; the process is killed mid-stream.
    let next = Arc::new(AtomicU64::new(1));
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (next, acked, stop) = (Arc::clone(&next), Arc::clone(&acked), Arc::clone(&stop));
        let listen = s.listen.clone();
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = next.fetch_add(1, Ordering::SeqCst);
                match write(&listen, n).await {
                    Ok(201) => acked.lock().unwrap().push(n),
                    Ok(other) => panic!("write {n} answered {other}"),
                    // The process is gone: this write was not acknowledged.
                    Err(_) => return,
                }
            }
        }));
    }
    let started = Instant::now();
    while acked.lock().unwrap().len() < 150 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "writes too slow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.child.kill().await.unwrap();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let sent = next.load(Ordering::SeqCst) - 1;

    // A new process on the same catalog (and so the same log), and the new service is up.
    let mut env2 = crate::admin::token_env();
    env2.push(("STRANGLER_CATALOG_URL", catalog_url.as_str()));
    env2.push(("STRANGLER_CATALOG_POLL_INTERVAL", "200ms"));
    env2.extend_from_slice(&env);
    let s2 = crate::binary::start_with(&format!("http://{legacy}"), &env2).await;
    let admin2 = Admin::new(&s2.admin, Some(crate::admin::OPERATOR));
    let attempts: Attempts = Arc::default();
    let app = new_service(&attempts, Arc::new(|_, _| 201), None);
    let listener = tokio::net::TcpListener::bind(new_addr).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let delivered = || -> HashMap<u64, usize> {
        let mut seen = HashMap::new();
        for (n, _) in attempts.lock().unwrap().iter() {
            *seen.entry(*n).or_insert(0) += 1;
        }
        seen
    };
    let started = Instant::now();
    while !acked.iter().all(|n| delivered().contains_key(n)) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{} of {} acknowledged writes delivered",
            acked.iter().filter(|n| delivered().contains_key(n)).count(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    outbox_until(&admin2, "the outbox empty", |v| {
        v["outbox"]["pending"] == 0 && v["outbox"]["dead"] == 0
    })
    .await;
    let seen = delivered();
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert!(
        seen.keys().all(|n| *n >= 1 && *n <= sent),
        "only writes that were sent"
    );
    eprintln!(
        "kill -9: {} writes acknowledged, {} sent, {} delivered after the restart",
        acked.len(),
        sent,
        seen.len()
    );
    s2.stop().await;
}

#[tokio::test]
async fn a_failed_write_holds_back_its_context_and_is_retried_on_429_502_503_504() {
    let (legacy, _) = axum_upstream(legacy_service()).await;
    let attempts: Attempts = Arc::default();
    // Write 1 is answered 503 (after the test has sent all three), 429, 502, 504, then 201.
    let script: Script = Arc::new(|n, k| match (n, k) {
        (1, 0) => 503,
        (1, 1) => 429,
        (1, 2) => 502,
        (1, 3) => 504,
        _ => 201,
    });
    let gate = Arc::new(tokio::sync::Notify::new());
    let (new, _) = axum_upstream(new_service(&attempts, script, Some(Arc::clone(&gate)))).await;
    let scratch = Scratch::new("mirror-order");
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    let (s, admin) = shadowed_with(
        legacy,
        new,
        &catalog_url,
        json!({}),
        serde_json::from_str(ROUTE).unwrap(),
        &[("STRANGLER_SHADOW_MIRROR_RETRY", "30ms")],
    )
    .await;
    for n in 1..=3 {
        assert_eq!(write(&s.listen, n).await, Ok(201));
    }
    // All three are in the outbox before write 1's first attempt is answered.
    outbox_until(&admin, "three writes pending", |v| {
        v["outbox"]["pending"] == 3
    })
    .await;
    gate.notify_one();
    outbox_until(&admin, "the outbox empty", |v| {
        v["outbox"]["pending"] == 0 && v["outbox"]["dead"] == 0
    })
    .await;
    assert_eq!(
        *attempts.lock().unwrap(),
        [
            (1, 503),
            (1, 429),
            (1, 502),
            (1, 504),
            (1, 201),
            (2, 201),
            (3, 201)
        ],
        "write 1 retried on each status, and 2 and 3 held back until it went through"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_write_is_given_up_after_the_configured_attempts_and_the_next_one_goes() {
    let (legacy, _) = axum_upstream(legacy_service()).await;
    let attempts: Attempts = Arc::default();
    // Write 1 is refused for good (503 forever); write 2 is fine.
    let (new, _) = axum_upstream(new_service(
        &attempts,
        Arc::new(|n, _| if n == 1 { 503 } else { 201 }),
        None,
    ))
    .await;
    let scratch = Scratch::new("mirror-give-up");
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    let (s, admin) = shadowed_with(
        legacy,
        new,
        &catalog_url,
        json!({}),
        serde_json::from_str(ROUTE).unwrap(),
        &[
            ("STRANGLER_SHADOW_MIRROR_RETRY", "30ms"),
            ("STRANGLER_SHADOW_MIRROR_ATTEMPTS", "3"),
        ],
    )
    .await;
    for n in 1..=2 {
        assert_eq!(write(&s.listen, n).await, Ok(201));
    }
    let v = outbox_until(&admin, "one dead, none pending", |v| {
        v["outbox"]["pending"] == 0 && v["outbox"]["dead"] == 1
    })
    .await;
    assert!(
        v["outbox"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{v}"
    );
    assert_eq!(
        *attempts.lock().unwrap(),
        [(1, 503), (1, 503), (1, 503), (2, 201)],
        "three attempts, then the next write"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_write_the_new_service_fails_with_500_is_delivered_once_and_counted_as_a_difference() {
    let (legacy, _) = axum_upstream(legacy_service()).await;
    let attempts: Attempts = Arc::default();
    let (new, _) = axum_upstream(new_service(&attempts, Arc::new(|_, _| 500), None)).await;
    let scratch = Scratch::new("mirror-500");
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    let (s, admin) = shadowed_with(
        legacy,
        new,
        &catalog_url,
        json!({}),
        serde_json::from_str(ROUTE).unwrap(),
        &[("STRANGLER_SHADOW_MIRROR_RETRY", "30ms")],
    )
    .await;
    assert_eq!(write(&s.listen, 7).await, Ok(201));
    let v = outbox_until(&admin, "compared, the outbox empty", |v| {
        v["compared"] == 1 && v["outbox"]["pending"] == 0
    })
    .await;
    assert_eq!(v["matched"], 0, "{v}");
    assert_eq!(v["outbox"]["dead"], 0, "{v}");
    // Delivered (its row is done): a 500 is an answer to compare, not a reason to repeat the
    // write.
    assert_eq!(*attempts.lock().unwrap(), [(7, 500)]);
    s.stop().await;
}

#[tokio::test]
async fn a_full_log_refuses_writes_before_legacy_and_a_stop_keeps_what_is_not_shipped() {
    use sqlx::Connection as _;
    let taken = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&taken);
    let legacy_app = legacy_service().layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                next.run(req).await
            }
        },
    ));
    let (legacy, _) = axum_upstream(legacy_app).await;
    let attempts: Attempts = Arc::default();
    let (new, _) = axum_upstream(new_service(&attempts, Arc::new(|_, _| 201), None)).await;
    let scratch = Scratch::new("mirror-full");
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    let env = [
        ("STRANGLER_SHADOW_OUTBOX_QUEUE", "3"),
        ("STRANGLER_SHADOW_MIRROR_RETRY", "30ms"),
    ];
    let (mut s, _admin) = shadowed_with(
        legacy,
        new,
        &catalog_url,
        json!({}),
        serde_json::from_str(ROUTE).unwrap(),
        &env,
    )
    .await;

    // Another writer holds the catalog: nothing can be shipped to it.
    let mut lock = sqlx::SqliteConnection::connect(&catalog_url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut lock)
        .await
        .unwrap();
    for n in 1..=3 {
        assert_eq!(write(&s.listen, n).await, Ok(201));
    }
    // The log holds its bound: the next write is refused before legacy sees it.
    let req = http::Request::post(format!("http://{}/orders/4", s.listen))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(r#"{"n":4}"#)))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("3 mirrored writes wait"), "{text}");
    assert_eq!(
        taken.load(Ordering::SeqCst),
        3,
        "legacy never saw the refused write"
    );

    // A stop while the catalog is still held keeps the three in the log, and says so.
    let pid = s.child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let said = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = s.lines.recv().await {
            if line.contains("kept in the mirror's log") {
                return Some(line);
            }
        }
        None
    })
    .await
    .unwrap()
    .expect("no word of the writes left in the log");
    let v: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(v["fields"]["writes"], 3, "{said}");
    let status = tokio::time::timeout(Duration::from_secs(30), s.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    drop(lock);

    // The next process on this catalog ships them; each arrives once.
    let mut env2 = crate::admin::token_env();
    env2.push(("STRANGLER_CATALOG_URL", catalog_url.as_str()));
    env2.extend_from_slice(&env);
    let s2 = crate::binary::start_with(&format!("http://{legacy}"), &env2).await;
    let admin2 = Admin::new(&s2.admin, Some(crate::admin::OPERATOR));
    outbox_until(&admin2, "three delivered", |v| {
        v["outbox"]["pending"] == 0 && v["compared"] == 3
    })
    .await;
    assert_eq!(*attempts.lock().unwrap(), [(1, 201), (2, 201), (3, 201)]);
    s2.stop().await;
}

/// An orders service with its own data: `POST /orders/{id}` stores the body (201), `GET`
/// answers it (or 404). While `refusing` holds, writes get 503 and nothing is stored.
#[derive(Clone, Default)]
struct Orders {
    data: Arc<Mutex<HashMap<String, Value>>>,
    refusing: Arc<AtomicBool>,
    /// Mirrored writes taken (marked `X-Strangler-Shadow: mirror`).
    mirrored: Arc<AtomicU64>,
    /// Writes taken, in order: (a tick of `clock`, the id, whether it was a mirror).
    log: Arc<Mutex<Vec<(u64, String, bool)>>>,
    /// Shared by services whose logs are compared.
    clock: Arc<AtomicU64>,
}

impl Orders {
    fn app(&self, name: &'static str) -> Router {
        let (w, r) = (self.clone(), self.clone());
        Router::new().route(
            "/orders/{id}",
            post(
                move |axum::extract::Path(id): axum::extract::Path<String>,
                      headers: http::HeaderMap,
                      body: Bytes| {
                    let w = w.clone();
                    async move {
                        if w.refusing.load(Ordering::SeqCst) {
                            return (http::StatusCode::SERVICE_UNAVAILABLE, "busy".to_owned());
                        }
                        let mirror = headers
                            .get("x-strangler-shadow")
                            .is_some_and(|v| v == "mirror");
                        if mirror {
                            w.mirrored.fetch_add(1, Ordering::SeqCst);
                        }
                        let tick = w.clock.fetch_add(1, Ordering::SeqCst);
                        w.log.lock().unwrap().push((tick, id.clone(), mirror));
                        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                        w.data.lock().unwrap().insert(id, v);
                        (http::StatusCode::CREATED, name.to_owned())
                    }
                },
            )
            .get(
                move |axum::extract::Path(id): axum::extract::Path<String>| {
                    let r = r.clone();
                    async move {
                        match r.data.lock().unwrap().get(&id) {
                            Some(v) => (http::StatusCode::OK, format!("{name} {v}")),
                            None => (http::StatusCode::NOT_FOUND, format!("{name}: no {id}")),
                        }
                    }
                },
            ),
        )
    }
}

async fn get(listen: &str, path: &str) -> (u16, String) {
    let req = http::Request::get(format!("http://{listen}{path}"))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A context `orders` in canary (reads all to the new service) on `/orders/{id}`, writes
/// mirrored by default; the process and its admin client.
async fn canary(
    legacy: std::net::SocketAddr,
    new: std::net::SocketAddr,
    catalog_url: &str,
) -> (crate::binary::Running, Admin) {
    let (s, admin) = shadowed_with(
        legacy,
        new,
        catalog_url,
        json!({}),
        json!({ "methods": ["GET", "POST"], "path": "/orders/{id}" }),
        &[("STRANGLER_SHADOW_MIRROR_RETRY", "30ms")],
    )
    .await;
    admin
        .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
        .await;
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/weight",
            json!({ "weight": 10_000 }),
        )
        .await;
    admin.in_effect().await;
    (s, admin)
}

#[tokio::test]
async fn a_cutover_waits_until_the_writes_legacy_took_have_reached_the_new_service_or_is_forced() {
    let (old, new) = (Orders::default(), Orders::default());
    let (legacy, _) = axum_upstream(old.app("legacy")).await;
    let (new_addr, _) = axum_upstream(new.app("new")).await;
    let scratch = Scratch::new("cutover-wait");
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    let (s, admin) = canary(legacy, new_addr, &catalog_url).await;
    // Legacy owns the writes in canary; the new service is not taking them yet.
    new.refusing.store(true, Ordering::SeqCst);
    for n in 1..=3 {
        assert_eq!(write(&s.listen, n).await, Ok(201));
    }
    outbox_until(&admin, "three writes toward new waiting", |v| {
        v["outbox"]["pending"] == 3
    })
    .await;
    let base = admin.version().await;
    let (status, _, problem) = admin
        .call(
            Method::POST,
            "/api/v1/contexts/orders/cutover",
            Some(json!({ "base_version": base, "reason": "try" })),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["type"], "urn:strangler:problem:outbox-not-drained");
    assert_eq!(problem["pending"], 3, "{problem}");
    assert_eq!(problem["toward"], "new", "{problem}");
    assert!(problem["oldest_pending_ms"].as_i64().is_some(), "{problem}");
    assert_eq!(admin.version().await, base, "nothing changed");
    // `ctl` says the same and exits non-zero …
    let ctl = |force: bool| {
        let admin_addr = s.admin.clone();
        async move {
            let mut cmd = tokio::process::Command::new(crate::binary::BIN);
            cmd.args([
                "ctl",
                "--admin",
                &format!("http://{admin_addr}"),
                "--token",
                crate::admin::OPERATOR,
                "cutover",
                "orders",
                "--reason",
                "the service must take the writes now",
            ]);
            if force {
                cmd.arg("--force");
            }
            let out = cmd.output().await.unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            )
        }
    };
    let (code, said) = ctl(false).await;
    assert_ne!(code, Some(0), "{said}");
    assert!(
        said.contains("3 mirrored writes still wait to reach new"),
        "{said}"
    );
    // … and with --force cuts over, recording what it left behind.
    let (code, said) = ctl(true).await;
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("new owns its writes"), "{said}");
    let (_, _, audit) = admin
        .call(Method::GET, "/api/v1/audit?target=context:orders", None)
        .await;
    let cut = &audit["items"][0];
    assert_eq!(cut["action"], "cutover", "{audit}");
    assert_eq!(cut["after"]["left_behind"][0]["pending"], 3, "{audit}");
    assert_eq!(cut["after"]["left_behind"][0]["toward"], "new", "{audit}");

    // The new service takes the three it was owed; they are all there.
    new.refusing.store(false, Ordering::SeqCst);
    admin.drained("orders").await;
    for n in 1..=3 {
        let (status, body) = get(&s.listen, &format!("/orders/{n}")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("new "), "{body}");
    }
    s.stop().await;
}

/// The new service owns the writes (after `to_new`: a cutover or a promotion to migrated) and
/// takes 50 while legacy refuses their copies: a rollback is refused while they wait, then,
/// once legacy has them, returns the writes to legacy with every one readable there.
async fn a_rollback_loses_none(scratch: &str, to_new: &str) {
    let (old, new) = (Orders::default(), Orders::default());
    let (legacy, _) = axum_upstream(old.app("legacy")).await;
    let (new_addr, _) = axum_upstream(new.app("new")).await;
    let scratch = Scratch::new(scratch);
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    let (s, admin) = canary(legacy, new_addr, &catalog_url).await;
    let moved = admin
        .change(
            Method::POST,
            &format!("/api/v1/contexts/orders/{to_new}"),
            json!({ "reason": "nothing written yet" }),
        )
        .await;
    assert_eq!(moved["item"]["owner"], "new", "{moved}");
    admin.in_effect().await;

    // The new service owns the writes; legacy is not taking its copies for now.
    old.refusing.store(true, Ordering::SeqCst);
    for n in 1..=50 {
        assert_eq!(write(&s.listen, n).await, Ok(201), "write {n}");
    }
    assert_eq!(new.data.lock().unwrap().len(), 50);
    assert!(old.data.lock().unwrap().is_empty());
    outbox_until(&admin, "writes waiting toward legacy", |v| {
        v["reverse_outbox"]["pending"]
            .as_i64()
            .is_some_and(|n| n > 0)
    })
    .await;

    // A rollback now would leave them behind: refused, with what waits.
    let base = admin.version().await;
    let (status, _, problem) = admin
        .call(
            Method::POST,
            "/api/v1/contexts/orders/rollback",
            Some(json!({ "base_version": base, "reason": "try" })),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["toward"], "legacy", "{problem}");
    assert_eq!(problem["pending"], 50, "{problem}");

    // Legacy comes back, takes the copies, and the rollback passes.
    old.refusing.store(false, Ordering::SeqCst);
    admin.drained("orders").await;
    let back = admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/rollback",
            json!({ "reason": "back to legacy" }),
        )
        .await;
    assert_eq!(back["item"]["owner"], "legacy", "{back}");
    admin.in_effect().await;
    // Every write the new service took is readable through legacy, exactly as written.
    assert_eq!(old.mirrored.load(Ordering::SeqCst), 50, "each copy once");
    for n in 1..=50 {
        let (status, body) = get(&s.listen, &format!("/orders/{n}")).await;
        assert_eq!(status, 200, "order {n}: {body}");
        assert_eq!(body, format!("legacy {}", json!({ "n": n })));
    }
    s.stop().await;
}

#[tokio::test]
async fn after_cutover_writes_go_back_to_legacy_and_a_rollback_loses_none() {
    a_rollback_loses_none("rollback-lossless", "cutover").await;
}

#[tokio::test]
async fn a_rollback_from_migrated_loses_none_of_the_new_sides_writes() {
    a_rollback_loses_none("rollback-migrated", "promote").await;
}

async fn as_client(listen: &str, method: Method, path: &str, sid: &str) -> (u16, String) {
    let body = if method == Method::POST {
        Bytes::from(json!({ "by": sid }).to_string())
    } else {
        Bytes::new()
    };
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{listen}{path}"))
        .header("cookie", format!("sid={sid}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(body))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_client_reads_its_own_writes_in_canary_whichever_side_its_reads_go_to() {
    let (old, new) = (Orders::default(), Orders::default());
    let (legacy, _) = axum_upstream(old.app("legacy")).await;
    let (new_addr, _) = axum_upstream(new.app("new")).await;
    let scratch = Scratch::new("ryw");
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    let (s, admin) = canary(legacy, new_addr, &catalog_url).await;
    let mut ctx = admin
        .call(Method::GET, "/api/v1/contexts/orders", None)
        .await
        .2["item"]
        .clone();
    ctx["sticky"] = "cookie:sid".into();
    admin
        .change(Method::PUT, "/api/v1/contexts/orders", ctx)
        .await;
    admin.in_effect().await;

    // Legacy owns the writes; every read goes to the new service, which is slow to take the
    // mirrored copies.
    new.refusing.store(true, Ordering::SeqCst);
    let (status, body) = as_client(&s.listen, Method::POST, "/orders/1", "alice").await;
    assert_eq!((status, body.as_str()), (201, "legacy"));
    for _ in 0..20 {
        let (status, body) = as_client(&s.listen, Method::GET, "/orders/1", "alice").await;
        assert_eq!(status, 200, "alice must see her write: {body}");
        assert!(body.starts_with("legacy "), "{body}");
    }
    // Someone else reads from the new service, which does not have it yet.
    let (status, body) = as_client(&s.listen, Method::GET, "/orders/1", "bob").await;
    assert_eq!((status, body.as_str()), (404, "new: no 1"));

    // Once the new service has it, alice reads from there again.
    new.refusing.store(false, Ordering::SeqCst);
    admin.drained("orders").await;
    let started = Instant::now();
    loop {
        let (status, body) = as_client(&s.listen, Method::GET, "/orders/1", "alice").await;
        assert_eq!(status, 200, "{body}");
        if body.starts_with("new ") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // After the cutover the new service owns the writes and reads go to legacy: alice's next
    // write is read from the new service until legacy has its copy.
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/cutover",
            json!({ "reason": "drained" }),
        )
        .await;
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/weight",
            json!({ "weight": 0 }),
        )
        .await;
    admin.in_effect().await;
    old.refusing.store(true, Ordering::SeqCst);
    let (status, body) = as_client(&s.listen, Method::POST, "/orders/2", "alice").await;
    assert_eq!((status, body.as_str()), (201, "new"));
    for _ in 0..20 {
        let (status, body) = as_client(&s.listen, Method::GET, "/orders/2", "alice").await;
        assert_eq!(status, 200, "alice must see her write: {body}");
        assert!(body.starts_with("new "), "{body}");
    }
    let (status, _) = as_client(&s.listen, Method::GET, "/orders/2", "bob").await;
    assert_eq!(status, 404, "bob reads legacy, which has no copy yet");
    old.refusing.store(false, Ordering::SeqCst);
    s.stop().await;
}

#[tokio::test]
async fn no_replica_hands_a_write_to_the_old_owner_after_the_new_one_took_one() {
    let clock = Arc::new(AtomicU64::new(0));
    let old = Orders {
        clock: Arc::clone(&clock),
        ..Orders::default()
    };
    let new = Orders {
        clock,
        ..Orders::default()
    };
    let (legacy, _) = axum_upstream(old.app("legacy")).await;
    let (new_addr, _) = axum_upstream(new.app("new")).await;
    let scratch = Scratch::new("owner-fence");
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    // Two replicas on one catalog; B learns of changes only by polling, every second.
    let fence = [("STRANGLER_CATALOG_OWNER_FENCE", "4s")];
    let (a, admin) = shadowed_with(
        legacy,
        new_addr,
        &catalog_url,
        json!({}),
        json!({ "methods": ["GET", "POST"], "path": "/orders/{id}" }),
        &[fence[0], ("STRANGLER_SHADOW_MIRROR_RETRY", "30ms")],
    )
    .await;
    admin
        .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
        .await;
    let mut env = crate::admin::token_env();
    env.push(("STRANGLER_CATALOG_URL", catalog_url.as_str()));
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "1s"));
    env.push(fence[0]);
    let b = crate::binary::start_with(&format!("http://{legacy}"), &env).await;
    crate::admin::Admin::new(&b.admin, Some(crate::admin::OPERATOR))
        .in_effect()
        .await;
    assert_eq!(write(&b.listen, 1).await, Ok(201));
    // B acknowledged the write from its local log; it reaches the shared outbox when B ships
    // the log, and only then does the outbox show it. Wait for the new side to have it.
    let started = std::time::Instant::now();
    while new.mirrored.load(Ordering::SeqCst) < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "write 1 never mirrored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.drained("orders").await;

    // The cutover through A: at once, writes wait on A (the move settles) while B may still
    // hand them to legacy until it polls.
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/cutover",
            json!({ "reason": "drained" }),
        )
        .await;
    admin.in_effect().await;
    assert_eq!(
        write(&a.listen, 2).await,
        Ok(503),
        "A holds writes while the move settles"
    );
    let b_took = write(&b.listen, 3).await;
    assert!(matches!(b_took, Ok(201 | 503)), "{b_took:?}");
    // Once settled, writes go to the new owner, from either replica.
    let started = Instant::now();
    for (n, f) in [(4, &a.listen), (5, &b.listen)] {
        while write(f, n).await != Ok(201) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "write {n} never taken"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    admin.drained("orders").await;
    // Whatever legacy took reached the new service before the new service took a write of its
    // own, and legacy took nothing after that.
    let first_own = new
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|(_, _, mirror)| !mirror)
        .map(|(t, _, _)| *t)
        .unwrap();
    let on_new = new.log.lock().unwrap().clone();
    // (What legacy took as mirrors of the new owner's writes comes after, as it should.)
    for (t, id, _) in old.log.lock().unwrap().iter().filter(|(_, _, m)| !m) {
        assert!(
            *t < first_own,
            "legacy took {id} after the new owner took one"
        );
        let mirrored = on_new.iter().find(|(_, i, m)| i == id && *m);
        assert!(
            mirrored.is_some_and(|(tm, _, _)| *tm < first_own),
            "{id} reached the new service after its own writes: {on_new:?}"
        );
    }
    let own: Vec<&str> = on_new
        .iter()
        .filter(|(_, _, m)| !m)
        .map(|(_, i, _)| i.as_str())
        .collect();
    assert_eq!(own, ["4", "5"], "{on_new:?}");
    a.stop().await;
    b.stop().await;
}

/// A request to `listen` with these cookies (`name=value; …`); status, the answer's
/// `Set-Cookie` values, and body.
async fn with_cookies(
    listen: &str,
    method: Method,
    path: &str,
    cookies: &str,
) -> (u16, Vec<String>, String) {
    let body = if method == Method::POST {
        Bytes::from(json!({ "n": 1 }).to_string())
    } else {
        Bytes::new()
    };
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{listen}{path}"))
        .header("content-type", "application/json");
    if !cookies.is_empty() {
        req = req.header("cookie", cookies);
    }
    let resp = client()
        .request(req.body(http_body_util::Full::new(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let set: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, set, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_client_reads_its_own_writes_through_another_replica() {
    let Some(db) = crate::replicas::fresh_database().await else {
        return;
    };
    let (old, new) = (Orders::default(), Orders::default());
    let (legacy, _) = axum_upstream(old.app("legacy")).await;
    let (new_addr, _) = axum_upstream(new.app("new")).await;
    let (a, admin) = canary(legacy, new_addr, db.as_str()).await;
    let mut env = crate::admin::token_env();
    env.push(("STRANGLER_CATALOG_URL", db.as_str()));
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "200ms"));
    let b = crate::binary::start_with(&format!("http://{legacy}"), &env).await;
    crate::admin::Admin::new(&b.admin, Some(crate::admin::OPERATOR))
        .in_effect()
        .await;

    // Replica A takes a write (legacy owns them) that the new service does not have yet; its
    // answer tells the client when the write was made.
    new.refusing.store(true, Ordering::SeqCst);
    let (status, set, _) = with_cookies(&a.listen, Method::POST, "/orders/1", "").await;
    assert_eq!(status, 201);
    let mark = set
        .iter()
        .find(|c| c.starts_with("strangler-wrote-orders="))
        .unwrap_or_else(|| panic!("no read-your-writes cookie: {set:?}"));
    assert!(
        mark.contains("HttpOnly") && mark.contains("Max-Age=600"),
        "{mark}"
    );
    let cookie = mark.split(';').next().unwrap().to_owned();
    // Replica B never saw the write, yet the client reads it there, from legacy, 20 times.
    for _ in 0..20 {
        let (status, _, body) = with_cookies(&b.listen, Method::GET, "/orders/1", &cookie).await;
        assert_eq!(
            status, 200,
            "the client must see its write through B: {body}"
        );
        assert!(body.starts_with("legacy "), "{body}");
    }
    // Without the cookie B reads from the new service, which does not have it; a cookie that is
    // not a time is ignored.
    let (status, _, body) = with_cookies(&b.listen, Method::GET, "/orders/1", "").await;
    assert_eq!((status, body.as_str()), (404, "new: no 1"));
    let forged = "strangler-wrote-orders=soon; strangler-wrote-orders=1e99";
    let (status, _, _) = with_cookies(&b.listen, Method::GET, "/orders/1", forged).await;
    assert_eq!(status, 404);

    // Once the new service has it, B reads it from there, cookie or not.
    new.refusing.store(false, Ordering::SeqCst);
    admin.drained("orders").await;
    let started = Instant::now();
    loop {
        let (status, _, body) = with_cookies(&b.listen, Method::GET, "/orders/1", &cookie).await;
        assert_eq!(status, 200, "{body}");
        if body.starts_with("new ") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.stop().await;
    b.stop().await;
}

/// Promotes `orders` from shadow to canary at `weight`, split by the `sid` cookie, in effect.
async fn sticky_canary(admin: &Admin, weight: u16) {
    admin
        .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
        .await;
    let mut ctx = admin
        .call(Method::GET, "/api/v1/contexts/orders", None)
        .await
        .2["item"]
        .clone();
    ctx["sticky"] = "cookie:sid".into();
    ctx["weight"] = weight.into();
    admin
        .change(Method::PUT, "/api/v1/contexts/orders", ctx)
        .await;
    admin.in_effect().await;
}

/// Allocating's answers are JSON.
const JSON: [(&str, &str); 1] = [("content-type", "application/json")];

/// A service that gives ids to created orders (from `first`), or takes the one a create
/// carries in `$.id` when `accepts_given` (the new service). `PUT /orders/{id}` replaces an
/// order that exists; reads answer 503 while `failing`.
#[derive(Clone)]
struct Allocating {
    data: Arc<Mutex<HashMap<u64, Value>>>,
    next: Arc<AtomicU64>,
    accepts_given: bool,
    failing: Arc<AtomicBool>,
}

impl Allocating {
    fn new(first: u64, accepts_given: bool) -> Self {
        Self {
            data: Arc::default(),
            next: Arc::new(AtomicU64::new(first)),
            accepts_given,
            failing: Arc::default(),
        }
    }

    fn app(&self) -> Router {
        let (w, r, u) = (self.clone(), self.clone(), self.clone());
        Router::new()
            .route(
                "/orders",
                post(move |body: Bytes| {
                    let w = w.clone();
                    async move {
                        let mut v: Value = serde_json::from_slice(&body).unwrap_or_default();
                        let id = match v["id"].as_u64() {
                            Some(id) if w.accepts_given => id,
                            _ => w.next.fetch_add(1, Ordering::SeqCst),
                        };
                        v["id"] = id.into();
                        let mut data = w.data.lock().unwrap();
                        if data.contains_key(&id) {
                            return (
                                http::StatusCode::CONFLICT,
                                [("location", String::new())],
                                "taken".to_owned(),
                            );
                        }
                        data.insert(id, v.clone());
                        (
                            http::StatusCode::CREATED,
                            [("location", format!("/orders/{id}"))],
                            v.to_string(),
                        )
                    }
                }),
            )
            .route(
                "/orders/{id}",
                axum::routing::get(move |axum::extract::Path(id): axum::extract::Path<u64>| {
                    let r = r.clone();
                    async move {
                        if r.failing.load(Ordering::SeqCst) {
                            return (http::StatusCode::SERVICE_UNAVAILABLE, JSON, String::new());
                        }
                        match r.data.lock().unwrap().get(&id) {
                            Some(v) => (http::StatusCode::OK, JSON, v.to_string()),
                            None => (http::StatusCode::NOT_FOUND, JSON, String::new()),
                        }
                    }
                })
                .put(
                    move |axum::extract::Path(id): axum::extract::Path<u64>, body: Bytes| {
                        let u = u.clone();
                        async move {
                            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                            let mut data = u.data.lock().unwrap();
                            match data.get_mut(&id) {
                                Some(old) => {
                                    *old = v.clone();
                                    (http::StatusCode::OK, JSON, v.to_string())
                                }
                                None => (http::StatusCode::NOT_FOUND, JSON, String::new()),
                            }
                        }
                    },
                ),
            )
    }
}

#[tokio::test]
async fn creates_in_canary_carry_legacys_ids_so_both_sides_name_each_order_alike() {
    let old = Allocating::new(1422, false);
    let new = Allocating::new(1, true);
    let (legacy, _) = axum_upstream(old.app()).await;
    let (new_addr, _) = axum_upstream(new.app()).await;
    let scratch = Scratch::new("ids");
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    let (s, admin) = shadowed_with(
        legacy,
        new_addr,
        &catalog_url,
        json!({}),
        json!({ "methods": ["GET"], "path": "/orders/{id}" }),
        &[("STRANGLER_SHADOW_MIRROR_RETRY", "30ms")],
    )
    .await;
    admin
        .change(
            Method::POST,
            "/api/v1/routes",
            json!({ "context": "orders", "methods": ["POST"], "path": "/orders",
                    "shadow": { "id": { "from": "$.id", "to": "$.id" } } }),
        )
        .await;
    sticky_canary(&admin, 5000).await;

    // Eight clients create ten orders each, at once.
    let mut tasks = Vec::new();
    for c in 0..8 {
        let listen = s.listen.clone();
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for i in 0..10 {
                let req = http::Request::post(format!("http://{listen}/orders"))
                    .header("cookie", format!("sid=client-{c}"))
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(Bytes::from(
                        json!({ "client": c, "item": i }).to_string(),
                    )))
                    .unwrap();
                let resp = client().request(req).await.unwrap();
                assert_eq!(resp.status(), 201);
                let location = resp.headers()["location"].to_str().unwrap().to_owned();
                made.push(location);
            }
            made
        }));
    }
    let mut locations = Vec::new();
    for t in tasks {
        locations.extend(t.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = locations.iter().collect();
    assert_eq!(unique.len(), 80, "legacy gave each order its own id");
    admin.drained("orders").await;

    // Both sides hold the same 80 orders under the same ids.
    let (a, b) = (
        old.data.lock().unwrap().clone(),
        new.data.lock().unwrap().clone(),
    );
    assert_eq!(a.len(), 80);
    assert_eq!(a, b, "the new side names each order as legacy does");
    // And any client reads any order the same, whichever side its reads go to.
    for location in &locations {
        let mut seen = std::collections::HashSet::new();
        for c in 0..8 {
            let (status, body) =
                as_client(&s.listen, Method::GET, location, &format!("reader-{c}")).await;
            assert_eq!(status, 200, "{location}: {body}");
            seen.insert(body);
        }
        assert_eq!(seen.len(), 1, "{location}: {seen:?}");
    }
    s.stop().await;
}

/// A create on the owner, as `client` (its sticky key): the id the answer's Location names.
async fn create(listen: &str, who: &str, body: Value) -> u64 {
    let req = http::Request::post(format!("http://{listen}/orders"))
        .header("cookie", format!("sid={who}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    location.trim_start_matches("/orders/").parse().unwrap()
}

#[tokio::test]
async fn a_side_that_insists_on_its_own_ids_is_reached_through_the_id_map() {
    // Legacy numbers orders from 1422, the new service from 1; neither takes a given id.
    let old = Allocating::new(1422, false);
    let new = Allocating::new(1, false);
    let (legacy, _) = axum_upstream(old.app()).await;
    let (new_addr, _) = axum_upstream(new.app()).await;
    let scratch = Scratch::new("id-map");
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    let ids = json!({ "resource": "orders", "param": "id", "fields": ["$.id"] });
    let (s, admin) = shadowed_with(
        legacy,
        new_addr,
        &catalog_url,
        json!({}),
        json!({ "methods": ["GET", "PUT"], "path": "/orders/{id}", "shadow": { "ids": ids } }),
        &[("STRANGLER_SHADOW_MIRROR_RETRY", "30ms")],
    )
    .await;
    admin
        .change(
            Method::POST,
            "/api/v1/routes",
            json!({ "context": "orders", "methods": ["POST"], "path": "/orders",
                    "shadow": { "id": { "from": "$.id", "to": "$.id" },
                                "ids": { "resource": "orders", "fields": ["$.id"] } } }),
        )
        .await;
    sticky_canary(&admin, 10_000).await;

    // Canary, legacy owns the writes: ten creates get legacy's ids; their mirrors get the new
    // service's own, and the facade pairs them.
    let mut made = Vec::new();
    for i in 0..10 {
        made.push(create(&s.listen, "writer", json!({ "item": i })).await);
    }
    assert_eq!(made, (1422..1432).collect::<Vec<u64>>());
    admin.drained("orders").await;
    let (_, _, figures) = admin
        .call(
            Method::GET,
            "/api/v1/contexts/orders/shadow?minutes=10",
            None,
        )
        .await;
    assert_eq!(figures["id_map"], json!({ "orders": 10 }), "{figures}");
    // Reads go to the new service, which knows order 1422 as 1.
    for (i, id) in made.iter().enumerate() {
        let (status, body) =
            as_client(&s.listen, Method::GET, &format!("/orders/{id}"), "reader").await;
        assert_eq!(status, 200, "order {id}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["item"], i,
            "order {id} is the one created as item {i}: {v}"
        );
        // The answer names it as the client knows it, not as the new service does.
        assert_eq!(v["id"], *id, "{v}");
    }
    // An update names legacy's id: legacy takes it, and its mirror reaches the new service's
    // order under the new service's id, in the path and in the body.
    let req = http::Request::put(format!("http://{}/orders/1425", s.listen))
        .header("cookie", "sid=writer")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(
            json!({ "id": 1425, "item": 3, "note": "gift" }).to_string(),
        )))
        .unwrap();
    assert_eq!(client().request(req).await.unwrap().status(), 200);
    admin.drained("orders").await;
    assert_eq!(old.data.lock().unwrap()[&1425]["note"], "gift");
    let renamed = new.data.lock().unwrap()[&4].clone();
    assert_eq!(renamed, json!({ "id": 4, "item": 3, "note": "gift" }));
    // Reconciliation reads each order from each side under that side's id: all alike.
    let mut cmd = tokio::process::Command::new(crate::binary::BIN);
    cmd.args(["reconcile", "--legacy", &format!("http://{legacy}")])
        .args(["--context", "orders", "--json"])
        .env("STRANGLER_CATALOG_URL", &catalog_url);
    for id in &made {
        cmd.args(["--path", &format!("/orders/{id}")]);
    }
    let out = cmd.output().await.unwrap();
    let findings: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{findings:#} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(findings.as_array().map(Vec::len), Some(10), "{findings:#}");

    // After the cutover the new service owns the writes: its ids go to clients, and legacy's
    // copies get legacy's own ids, paired the other way.
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/cutover",
            json!({ "reason": "ids are mapped" }),
        )
        .await;
    admin.in_effect().await;
    let fresh = create(&s.listen, "writer", json!({ "item": 10 })).await;
    assert_eq!(fresh, 11);
    admin.drained("orders").await;
    assert_eq!(old.data.lock().unwrap()[&1432]["item"], 10);
    // The new service fails a read of it: legacy answers, for its own id.
    new.failing.store(true, Ordering::SeqCst);
    let (status, body) = as_client(&s.listen, Method::GET, "/orders/11", "reader").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["id"],
        11,
        "{body}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["item"],
        10,
        "{body}"
    );
    new.failing.store(false, Ordering::SeqCst);
    // An update of an order created before the cutover goes to the new owner under its id
    // there, in the path and the body, and its answer names it as the client does.
    let req = http::Request::put(format!("http://{}/orders/1425", s.listen))
        .header("cookie", "sid=writer")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(
            json!({ "id": 1425, "item": 3, "note": "wrapped" }).to_string(),
        )))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&answer).unwrap(),
        json!({ "id": 1425, "item": 3, "note": "wrapped" })
    );
    assert_eq!(
        new.data.lock().unwrap()[&4],
        json!({ "id": 4, "item": 3, "note": "wrapped" })
    );
    admin.drained("orders").await;
    assert_eq!(old.data.lock().unwrap()[&1425]["note"], "wrapped");

    // The new service hands out 1422 for another order: clients now hold 1422 for two orders,
    // and a request that carries it is refused rather than answered with either.
    new.next.store(1422, Ordering::SeqCst);
    assert_eq!(
        create(&s.listen, "writer", json!({ "item": 11 })).await,
        1422
    );
    admin.drained("orders").await;
    let (status, body) = as_client(&s.listen, Method::GET, "/orders/1422", "reader").await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("names two resources"), "{body}");

    // Back to legacy: every order is there under the id its clients hold.
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/rollback",
            json!({ "reason": "back" }),
        )
        .await;
    admin.in_effect().await;
    let (status, body) = as_client(&s.listen, Method::GET, "/orders/11", "reader").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["item"], 10);
    let (status, body) = as_client(&s.listen, Method::GET, "/orders/1425", "reader").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["note"],
        "wrapped"
    );
    s.stop().await;
}

/// Orders as JSON: `GET /orders/{id}` answers the stored value, or 404.
fn json_orders(data: &Arc<Mutex<HashMap<String, Value>>>) -> Router {
    let data = Arc::clone(data);
    Router::new().route(
        "/orders/{id}",
        axum::routing::get(
            move |axum::extract::Path(id): axum::extract::Path<String>| {
                let data = Arc::clone(&data);
                async move {
                    match data.lock().unwrap().get(&id) {
                        Some(v) => Ok(axum::Json(v.clone())),
                        None => Err(http::StatusCode::NOT_FOUND),
                    }
                }
            },
        ),
    )
}

#[tokio::test]
async fn reconcile_reports_what_differs_or_is_missing_and_records_it() {
    let old: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
    let new: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
    let (legacy, _) = axum_upstream(json_orders(&old)).await;
    let (new_addr, _) = axum_upstream(json_orders(&new)).await;
    let scratch = Scratch::new("reconcile");
    let catalog_url = format!("sqlite://{}", scratch.path.join("catalog.db").display());
    let (s, admin) = canary(legacy, new_addr, &catalog_url).await;
    let order = |n: u64, total: u64| json!({ "n": n, "total": total });
    for (side, orders) in [
        (&old, [(1, 9), (2, 5), (3, 9)]),
        (&new, [(1, 9), (2, 6), (4, 9)]),
    ] {
        let mut d = side.lock().unwrap();
        for (n, total) in orders {
            d.insert(n.to_string(), order(n, total));
        }
    }
    let run = || {
        let catalog_url = catalog_url.clone();
        async move {
            let mut cmd = tokio::process::Command::new(crate::binary::BIN);
            cmd.args([
                "reconcile",
                "--legacy",
                &format!("http://{legacy}"),
                "--context",
                "orders",
                "--json",
            ])
            .env("STRANGLER_CATALOG_URL", &catalog_url);
            for n in 1..=5 {
                cmd.args(["--path", &format!("/orders/{n}")]);
            }
            let out = cmd.output().await.unwrap();
            (
                out.status.code(),
                serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, findings, stderr) = run().await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("3 of 5 resources differ or are missing"),
        "{stderr}"
    );
    let verdicts: Vec<(&str, &str)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("/orders/1", "same"),
            ("/orders/2", "differs"),
            ("/orders/3", "missing_on_new"),
            ("/orders/4", "missing_on_legacy"),
            ("/orders/5", "same"),
        ],
        "{findings:#}"
    );
    assert_eq!(
        findings[1]["differences"][0], "value $.total",
        "{findings:#}"
    );

    // Put right, it finds nothing amiss and exits 0; both runs are in the audit log.
    new.lock().unwrap().insert("2".into(), order(2, 5));
    new.lock().unwrap().insert("3".into(), order(3, 9));
    old.lock().unwrap().insert("4".into(), order(4, 9));
    let (code, _, stderr) = run().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("5 resources read from both sides: nothing amiss"),
        "{stderr}"
    );
    let (_, _, audit) = admin
        .call(Method::GET, "/api/v1/audit?target=context:orders", None)
        .await;
    let runs: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "reconcile")
        .collect();
    assert_eq!(runs.len(), 2, "{audit}");
    assert_eq!(runs[0]["after"]["checked"], 5, "{audit}");
    assert_eq!(runs[0]["after"]["same"], 5, "the newest first: {audit}");
    assert_eq!(runs[1]["after"]["missing_on_new"], 1, "{audit}");
    s.stop().await;
}
