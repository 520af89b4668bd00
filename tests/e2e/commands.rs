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
sticky = "cookie:sid"

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
    let dir = std::env::temp_dir().join(format!("strangler-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
