//! `strangler ctl`, `import` and `export` as a shell user runs them.

use std::process::Stdio;

use axum::Router;
use tokio::process::Command;

use crate::admin::{token_env, Admin, OPERATOR, VIEWER};
use crate::binary::{start, temp_catalog};
use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_strangler");

async fn ctl(admin: &str, token: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args([
            "ctl",
            "--admin",
            &format!("http://{admin}"),
            "--token",
            token,
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn ctl_drives_the_api_with_readable_output_and_exit_codes() {
    let (legacy, _) = axum_upstream(Router::new().fallback(|| async { "legacy" })).await;
    let s = start(&format!("http://{legacy}"), &token_env()).await;
    Admin::new(&s.admin, Some(OPERATOR))
        .carve(
            "orders-svc",
            "http://127.0.0.1:9",
            "orders",
            &["/orders/{id}"],
            Some("cookie:sid"),
        )
        .await;

    let (code, out, err) = ctl(
        &s.admin,
        OPERATOR,
        &["promote", "orders", "--reason", "start shadowing"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("orders is now shadow"), "{out}");
    let (code, out, _) = ctl(&s.admin, VIEWER, &["status"]).await;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("orders") && out.contains("shadow") && out.contains("orders-svc"),
        "{out}"
    );
    let (code, out, _) = ctl(&s.admin, VIEWER, &["audit", "--limit", "1"]).await;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("promote context:orders") && out.contains("start shadowing"),
        "{out}"
    );

    // Refusals exit 3 and say why.
    let (code, _, err) = ctl(&s.admin, VIEWER, &["promote", "orders", "--reason", "x"]).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("403"), "{err}");
    let (code, _, err) = ctl(
        &s.admin,
        OPERATOR,
        &["weight", "orders", "500", "--reason", "x"],
    )
    .await;
    assert_eq!(code, Some(3));
    assert!(err.contains("canary"), "{err}");
    // An unreachable API exits 1.
    let (code, _, err) = ctl(&dead_port().to_string(), OPERATOR, &["status"]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("unreachable"), "{err}");

    let (code, out, _) = ctl(
        &s.admin,
        OPERATOR,
        &["log-level", "debug", "--reason", "chasing a bug"],
    )
    .await;
    assert_eq!(code, Some(0));
    assert!(out.contains("log level debug (was info)"), "{out}");
    let (_, out, _) = ctl(&s.admin, VIEWER, &["audit", "--limit", "1"]).await;
    assert!(
        out.contains("set-log-level runtime:log-level") && out.contains("chasing a bug"),
        "{out}"
    );
    s.stop().await;
}

const DECLARED: &str = r#"
[legacy]
url = "http://127.0.0.1:8000"

[[services]]
name = "orders-svc"
urls = ["http://127.0.0.1:9001"]

[[contexts]]
name = "orders"
target = "orders-svc"
state = "canary"
weight = 2500
cut_over = true
sticky = "cookie:sid"
fallback_after_ms = 800
objective = { availability_percent = 99.5, p99_ms = 100, window_days = 7 }

[[contexts.routes]]
methods = ["GET"]
path = "/orders/{id}"

[[contexts.routes]]
path = "/v2/orders/{id}"
headers = [{ name = "x-tenant", match = { exact = "acme" } }]
version = { style = "media-type", version = "v2" }
"#;

async fn run(args: &[&str], catalog: &str) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("STRANGLER_CATALOG_URL", catalog)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn import_is_idempotent_and_export_round_trips() {
    let scratch = crate::harness::Scratch::new("import");
    let dir = scratch.path.clone();
    let file = dir.join("strangler.toml");
    std::fs::write(&file, DECLARED).unwrap();
    let file = file.to_str().unwrap();
    let catalog = temp_catalog();

    let (code, out, err) = run(&["import", "--config", file], &catalog).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("imported: 1 services, 1 contexts, 2 routes (catalog version 1)"),
        "{out}"
    );
    let (code, out, _) = run(&["import", "--config", file], &catalog).await;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("no change") && out.contains("version 1"),
        "{out}"
    );

    let exported = dir.join("exported.toml");
    let (code, _, err) = run(&["export", "--out", exported.to_str().unwrap()], &catalog).await;
    assert_eq!(code, Some(0), "{err}");
    // Everything the file declared is in the export: the cutover (who owns the writes)
    // above all.
    let text = std::fs::read_to_string(&exported).unwrap();
    for declared in [
        "cut_over = true",
        "fallback_after_ms = 800",
        "availability_percent = 99.5",
    ] {
        assert!(text.contains(declared), "{declared} missing from {text}");
    }
    // The export imports into a fresh store as the same catalog…
    let other = temp_catalog();
    let (code, out, err) = run(&["import", "--config", exported.to_str().unwrap()], &other).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("imported: 1 services, 1 contexts, 2 routes"),
        "{out}"
    );
    // …and exporting both gives the same text (apart from nothing: both are at version 1).
    let (_, a, _) = run(&["export"], &catalog).await;
    let (_, b, _) = run(&["export"], &other).await;
    assert_eq!(a, b);
    // …and importing the export over the original is no change.
    let (_, out, _) = run(
        &["import", "--config", exported.to_str().unwrap()],
        &catalog,
    )
    .await;
    assert!(out.contains("no change"), "{out}");

    // A file whose catalog is invalid is refused with where and why, and nothing is written.
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        DECLARED.replace("target = \"orders-svc\"", "target = \"nope\""),
    )
    .unwrap();
    let (code, _, err) = run(&["import", "--config", bad.to_str().unwrap()], &catalog).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("contexts.orders.target") && err.contains("nope"),
        "{err}"
    );
    let (_, out, _) = run(&["import", "--config", file], &catalog).await;
    assert!(
        out.contains("no change") && out.contains("version 1"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_import_reaches_a_running_facade_and_routes_can_be_replaced() {
    let (legacy, _) = axum_upstream(Router::new().fallback(|| async { "legacy" })).await;
    let (new, _) = axum_upstream(Router::new().fallback(|| async { "new" })).await;
    let catalog = temp_catalog();
    let mut env = token_env();
    env.push(("STRANGLER_CATALOG_URL", catalog.as_str()));
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "200ms"));
    let s = crate::binary::start_with(&format!("http://{legacy}"), &env).await;

    let scratch = crate::harness::Scratch::new("live-import");
    let dir = scratch.path.clone();
    let file = dir.join("strangler.toml");
    std::fs::write(
        &file,
        format!(
            "[[services]]\nname = \"orders-svc\"\nurls = [\"http://{new}\"]\n\n[[contexts]]\nname = \"orders\"\ntarget = \"orders-svc\"\nstate = \"migrated\"\n\n[[contexts.routes]]\nmethods = [\"GET\"]\npath = \"/orders/{{id}}\"\n"
        ),
    )
    .unwrap();
    // Another process writes the store; the running facade finds out by polling.
    let (code, _, err) = run(&["import", "--config", file.to_str().unwrap()], &catalog).await;
    assert_eq!(code, Some(0), "{err}");
    let body = |path: &'static str| {
        let url = format!("http://{}{path}", s.listen);
        async move { String::from_utf8_lossy(&fetch(&url).await.2).into_owned() }
    };
    let started = std::time::Instant::now();
    while body("/orders/1").await != "new" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "the import never took effect"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let admin = Admin::new(&s.admin, Some(OPERATOR));
    let (_, _, routes) = admin
        .call(http::Method::GET, "/api/v1/routes?context=orders", None)
        .await;
    let id = routes["items"][0]["id"].as_str().unwrap().to_owned();
    let v = admin
        .change(http::Method::PUT, &format!("/api/v1/routes/{id}"), serde_json::json!({ "context": "orders", "methods": ["GET"], "path": "/orders/{id}/detail" }))
        .await;
    assert_ne!(v["item"]["id"], id.as_str(), "a new spec has a new id");
    let started = std::time::Instant::now();
    while body("/orders/1").await != "legacy" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "the replaced route still matches"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(body("/orders/1/detail").await, "new");

    let wrong = Admin {
        base: admin.base.clone(),
        token: Some("not-the-token-at-all-000"),
    };
    let (status, _, p) = wrong.call(http::Method::GET, "/api/v1/catalog", None).await;
    assert_eq!(status, 401, "{p}");
    s.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without a token, a refused `ctl` says how to give one.
#[tokio::test]
async fn ctl_without_a_token_says_how_to_give_one() {
    let (legacy, _) = axum_upstream(Router::new().fallback(|| async { "legacy" })).await;
    let s = start(&format!("http://{legacy}"), &token_env()).await;
    let out = Command::new(BIN)
        .args(["ctl", "--admin", &format!("http://{}", s.admin), "status"])
        .env_remove("STRANGLER_TOKEN")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("refused (401)"), "{err}");
    assert!(
        err.contains("pass --token TOKEN or set STRANGLER_TOKEN"),
        "{err}"
    );
    s.stop().await;
}
