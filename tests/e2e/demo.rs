//! `strangler demo` as a real process: the shop, the orders service, the facade, the
//! dashboard and simulated shoppers; the planted bug shows as the top mismatch signature,
//! `--fixed` matches every answer, a promotion goes through, Ctrl-C stops it all — and the
//! demo's own bad input (a taken port, a directory another demo uses, one it cannot write).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::admin::Admin;
use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_strangler");

struct Demo {
    child: Child,
    /// What the banner printed: `dashboard`, `operator token`, `facade`, `orders`.
    urls: HashMap<&'static str, String>,
    dir: PathBuf,
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("strangler_e2e_demo_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn demo_command(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["demo", "--data-dir"]).arg(dir).args(extra);
    // Every address on port 0 and 10 shoppers, unless the test says otherwise.
    for (flag, default) in [
        ("--legacy-listen", "127.0.0.1:0"),
        ("--orders-listen", "127.0.0.1:0"),
        ("--listen", "127.0.0.1:0"),
        ("--admin", "127.0.0.1:0"),
        ("--users", "10"),
    ] {
        if !extra.contains(&flag) {
            cmd.args([flag, default]);
        }
    }
    cmd.env("STRANGLER_LOG_LEVEL", "warn")
        .env_remove("STRANGLER_AUTH_OPERATOR_TOKEN")
        .env_remove("STRANGLER_AUTH_VIEWER_TOKEN")
        .kill_on_drop(true);
    cmd
}

async fn start(name: &str, extra: &[&str]) -> Demo {
    start_in(temp_dir(name), extra).await
}

async fn start_in(dir: PathBuf, extra: &[&str]) -> Demo {
    let mut child = demo_command(&dir, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut urls = HashMap::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = out.next_line().await.unwrap() {
            let line = line.trim();
            let value = || line.rsplit(' ').next().unwrap_or("").to_owned();
            if line.starts_with("dashboard ") {
                urls.insert("dashboard", value().trim_end_matches('/').to_owned());
            } else if line.starts_with("operator token ") {
                urls.insert("operator token", value());
            } else if line.starts_with("the shop, through the facade") {
                urls.insert("facade", value().trim_end_matches('/').to_owned());
            } else if line.starts_with("the legacy shop (direct)") {
                urls.insert("legacy", value().trim_end_matches('/').to_owned());
            } else if line.starts_with("the orders service (direct)") {
                urls.insert("orders", value().trim_end_matches("/v2/orders").to_owned());
            } else if line.starts_with("`orders` is") {
                urls.insert("standing", line.to_owned());
            } else if line.starts_with("Ctrl-C stops everything") {
                return;
            }
        }
        panic!("the demo ended before printing its banner");
    })
    .await
    .expect("the demo did not start");
    // Keep reading stdout so the demo never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    Demo { child, urls, dir }
}

impl Demo {
    fn admin(&self) -> Admin {
        let token: &'static str = Box::leak(self.urls["operator token"].clone().into_boxed_str());
        Admin::new(
            self.urls["dashboard"].trim_start_matches("http://"),
            Some(token),
        )
    }

    /// The orders context's shadow results once at least `n` answers were compared.
    async fn compared(&self, n: i64) -> Value {
        let admin = self.admin();
        let started = Instant::now();
        loop {
            let (status, _, v) = admin
                .call(
                    Method::GET,
                    "/api/v1/contexts/orders/shadow?minutes=10",
                    None,
                )
                .await;
            assert_eq!(status, 200, "{v}");
            if v["compared"].as_i64().unwrap_or(0) >= n {
                return v;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "too few comparisons: {v}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Ctrl-C: the demo stops, cleanly, and lets go of its directory.
    async fn interrupt(self) {
        let dir = self.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Ctrl-C, keeping the directory to start again from.
    async fn stop(mut self) -> PathBuf {
        let pid = self.child.id().unwrap();
        std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the demo ignored Ctrl-C")
            .unwrap();
        assert!(status.success(), "{status}");
        assert!(
            !self.dir.join("demo.pid").exists(),
            "the lock was left behind"
        );
        self.dir
    }
}

#[tokio::test]
async fn the_demo_surfaces_the_planted_bug_and_the_context_can_be_promoted() {
    let demo = start("bug", &[]).await;
    assert!(
        demo.urls["standing"].starts_with("`orders` is in shadow"),
        "{}",
        demo.urls["standing"]
    );
    let facade = &demo.urls["facade"];
    // Clients keep the legacy contract through the facade; the service has its own model.
    let (status, _, body) = fetch(&format!("{facade}/api/orders/1001")).await;
    assert_eq!(status, 200);
    let legacy: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (legacy["orderId"].as_i64(), legacy["status"].as_str()),
        (Some(1001), Some("S"))
    );
    let (_, _, body) = fetch(&format!("{}/v2/orders/1001", demo.urls["orders"])).await;
    let new: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(new["status"], "shipped");
    assert_eq!(
        new["total_cents"], 2227,
        "the planted bug: 22.275 cut to 22.27"
    );
    assert_eq!(legacy["total"], "22.28");

    // The shoppers' traffic is compared; the bug is the top mismatch signature.
    let v = demo.compared(30).await;
    let rate = v["match_rate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate < 1.0, "{v}");
    assert_eq!(v["top_signatures"][0]["signature"], "value $.total", "{v}");
    assert!(
        v["outbox"]["dead"] == 0,
        "mirrored writes are delivered: {v}"
    );

    // The dashboard shows it, to a signed-in operator.
    let cookie = sign_in(&demo.urls["dashboard"], &demo.urls["operator token"]).await;
    let page = http::Request::get(format!("{}/contexts/orders", demo.urls["dashboard"]))
        .header("cookie", &cookie)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = client().request(page).await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains("<code>value $.total</code>"), "{html}");
    assert!(
        html.contains("<mark>"),
        "an example pair with its difference marked"
    );

    // Unclaimed traffic is there to pick the next extraction from.
    let (_, _, unclaimed) = demo
        .admin()
        .call(Method::GET, "/api/v1/unclaimed", None)
        .await;
    let templates: Vec<&str> = unclaimed["templates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["template"].as_str())
        .collect();
    assert!(
        templates.contains(&"GET /api/customers/{id}"),
        "{templates:?}"
    );

    // The fix: the demo again on the same data, with the bug removed (and the totals it cut
    // repaired): from then on every answer matches.
    // The fixed demo starts without shoppers, so that the figures read first hold exactly what
    // the buggy run left (its last interval is saved as it stops); the test then sends the
    // traffic itself.
    let dir = demo.stop().await;
    let demo = start_in(dir, &["--fixed", "--users", "0"]).await;
    let before = demo.compared(0).await;
    let (compared, matched) = (
        before["compared"].as_i64().unwrap(),
        before["matched"].as_i64().unwrap(),
    );
    let facade = demo.urls["facade"].clone();
    let shopper = client();
    let mut sent = 0usize;
    let started = Instant::now();
    let after = loop {
        for _ in 0..10 {
            let id = strangler_demo::data::FIRST_ORDER
                + (sent % strangler_demo::data::ORDERS.len()) as i64;
            let req = http::Request::get(format!("{facade}/api/orders/{id}"))
                .header("x-customer", "1")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            let resp = shopper.request(req).await.unwrap();
            let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
            sent += 1;
        }
        let now = demo.compared(0).await;
        if now["compared"].as_i64().unwrap() >= compared + 30 {
            break now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "too few comparisons after {sent} requests: {now}"
        );
        // Paces the shoppers' traffic (the comparisons reach the API at each flush).
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        after["compared"].as_i64().unwrap() - compared,
        after["matched"].as_i64().unwrap() - matched,
        "a mismatch after the fix: {after}"
    );

    // Promotion works.
    let after = demo
        .admin()
        .change(
            Method::POST,
            "/api/v1/contexts/orders/promote",
            json!({ "reason": "demo test" }),
        )
        .await;
    assert_eq!(after["item"]["state"], "canary", "{after}");
    // Continued once more, the banner says where `orders` stands now.
    let dir = demo.stop().await;
    let demo = start_in(dir, &["--fixed", "--users", "0"]).await;
    assert!(
        demo.urls["standing"].starts_with("`orders` is in canary: the orders service answers 0.00 % of shoppers; legacy owns the writes."),
        "{}",
        demo.urls["standing"]
    );
    demo.interrupt().await;
}

#[tokio::test]
async fn with_fixed_every_answer_matches() {
    let demo = start("fixed", &["--fixed"]).await;
    let v = demo.compared(30).await;
    assert_eq!(v["match_rate"], 1.0, "{v}");
    assert_eq!(v["top_signatures"], json!([]), "{v}");
    demo.interrupt().await;
}

#[tokio::test]
async fn a_second_demo_in_the_same_directory_a_taken_port_and_an_unwritable_directory_are_told() {
    let demo = start("twice", &["--users", "0"]).await;
    let out = demo_command(&demo.dir, &[]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another demo") && err.contains("--data-dir"),
        "{err}"
    );

    let taken = demo.urls["facade"].trim_start_matches("http://").to_owned();
    let other = temp_dir("port");
    let out = demo_command(&other, &["--listen", &taken])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&taken) && err.contains("--listen"), "{err}");
    assert!(
        !other.join("demo.pid").exists(),
        "a failed start leaves no lock"
    );
    let _ = std::fs::remove_dir_all(&other);

    let out = demo_command(Path::new("/proc/strangler-demo"), &[])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--data-dir") && err.contains("/proc/strangler-demo"),
        "{err}"
    );
    demo.interrupt().await;
}

#[tokio::test]
async fn recorded_traffic_becomes_contract_tests_that_replay_against_the_orders_service() {
    let demo = start("contract", &["--fixed"]).await;
    demo.compared(40).await;
    let catalog = format!("sqlite://{}", demo.dir.join("catalog.db").display());
    let tests = |args: &[&str]| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("tests")
            .args(args)
            .env("STRANGLER_CATALOG_URL", &catalog);
        cmd.output().unwrap()
    };
    let suite_path = demo.dir.join("orders-suite.json");
    // The matched exchanges reach the catalog with a flush of their own: wait for them.
    let started = Instant::now();
    loop {
        let out = tests(&[
            "export",
            "--context",
            "orders",
            "--out",
            suite_path.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let suite: Value =
            serde_json::from_str(&std::fs::read_to_string(&suite_path).unwrap()).unwrap();
        if suite["pairs"].as_array().is_some_and(|p| !p.is_empty()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no exchange recorded: {suite}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let suite: Value =
        serde_json::from_str(&std::fs::read_to_string(&suite_path).unwrap()).unwrap();
    let pairs = suite["pairs"].as_array().unwrap();
    assert!(!pairs.is_empty(), "{suite}");
    assert!(
        pairs.iter().all(|p| p["method"] == "GET"),
        "reads only by default: {suite}"
    );
    assert!(
        pairs
            .iter()
            .any(|p| p["uri"].as_str().unwrap().starts_with("/api/orders/")),
        "{suite}"
    );
    assert!(
        suite["translator"].as_str().unwrap().contains("[[paths]]"),
        "self-contained"
    );

    let out = tests(&["export", "--context", "orders", "--format", "hurl"]);
    let hurl = String::from_utf8_lossy(&out.stdout);
    assert!(hurl.contains("GET {{base}}/api/orders"), "{hurl}");
    assert!(hurl.contains("jsonpath \"$.orderId\" == "), "{hurl}");

    // Against the orders service, without the facade: the translator is applied by replay.
    let out = tests(&[
        "replay",
        "--file",
        suite_path.to_str().unwrap(),
        "--target",
        &demo.urls["orders"],
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} passed, 0 failed", pairs.len())),
        "{stdout}"
    );
    // Against something else, it fails and says what differs.
    let out = tests(&[
        "replay",
        "--context",
        "orders",
        "--target",
        &demo.urls["legacy"],
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL"));
    demo.interrupt().await;
}

/// `strangler reconcile` of `paths` on the demo's `orders`: exit code and what it said.
async fn reconcile(demo: &Demo, paths: &[String]) -> (Option<i32>, String) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "reconcile",
        "--legacy",
        &demo.urls["legacy"],
        "--context",
        "orders",
    ])
    .env(
        "STRANGLER_CATALOG_URL",
        format!("sqlite://{}", demo.dir.join("catalog.db").display()),
    )
    .env("STRANGLER_LOG_LEVEL", "warn");
    for p in paths {
        cmd.args(["--path", p]);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Places an order through the facade as `customer`; its id. While a write owner's move
/// settles the facade answers 503 with `Retry-After`: tried again, as a client would.
async fn place(demo: &Demo, customer: i64) -> i64 {
    let started = std::time::Instant::now();
    let (status, body) = loop {
        let req = http::Request::post(format!("{}/api/orders", demo.urls["facade"]))
            .header("content-type", "application/json")
            .header("x-customer", customer.to_string())
            .body(http_body_util::Full::new(bytes::Bytes::from(
                json!({ "customerId": customer, "lines": [{ "sku": "TEA-1", "qty": 2 }] })
                    .to_string(),
            )))
            .unwrap();
        let resp = client().request(req).await.unwrap();
        let status = resp.status();
        let moving = status == 503 && resp.headers().contains_key("retry-after");
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        if moving && started.elapsed() < std::time::Duration::from_secs(15) {
            assert!(
                String::from_utf8_lossy(&body).contains("is moving"),
                "{}",
                String::from_utf8_lossy(&body)
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        break (status, body);
    };
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice::<Value>(&body).unwrap()["orderId"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn orders_keep_one_id_on_both_sides_through_canary_cutover_and_rollback() {
    let demo = start("ids", &["--fixed", "--users", "0"]).await;
    let admin = demo.admin();
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/promote",
            json!({ "reason": "canary" }),
        )
        .await;
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/weight",
            json!({ "weight": 5000, "reason": "half" }),
        )
        .await;
    admin.in_effect().await;
    // The service has an order of its own, numbered far ahead: its own numbering no longer
    // agrees with legacy's, so only the mirrors' ids can make both sides agree.
    let req = http::Request::post(format!("{}/v2/orders", demo.urls["orders"]))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({ "order_id": 9000, "customer_id": 8, "lines": [{ "sku": "MUG-3", "qty": 1 }] })
                .to_string(),
        )))
        .unwrap();
    assert_eq!(client().request(req).await.unwrap().status(), 201);

    // In canary legacy takes the orders and numbers them; the service gets them with those
    // numbers.
    let mut ids = Vec::new();
    for customer in 1..=6 {
        ids.push(place(&demo, customer).await);
    }
    admin.drained("orders").await;
    for id in &ids {
        let (status, _, body) = fetch(&format!("{}/v2/orders/{id}", demo.urls["orders"])).await;
        assert_eq!(status, 200, "order {id} on the service");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["order_id"], *id, "{v}");
    }
    let paths: Vec<String> = ids.iter().map(|id| format!("/api/orders/{id}")).collect();
    let (code, said) = reconcile(&demo, &paths).await;
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("nothing amiss"), "{said}");

    // Cut over: the service takes the next order; legacy gets it back; a rollback once
    // legacy has it loses nothing.
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/cutover",
            json!({ "reason": "the service owns orders" }),
        )
        .await;
    admin.in_effect().await;
    let taken_by_service = place(&demo, 7).await;
    assert_eq!(taken_by_service, 9001, "the service numbers its own");
    admin.drained("orders").await;
    admin
        .change(
            Method::POST,
            "/api/v1/contexts/orders/rollback",
            json!({ "reason": "try the way back" }),
        )
        .await;
    let path = format!("/api/orders/{taken_by_service}");
    let (status, _, _) = fetch(&format!("{}{path}", demo.urls["legacy"])).await;
    assert_eq!(status, 200, "legacy has the order the service took");
    let mut all = paths.clone();
    all.push(path);
    let (code, said) = reconcile(&demo, &all).await;
    assert_eq!(code, Some(0), "{said}");
    demo.interrupt().await;
}
