//! Events over real connections: CloudEvents POSTed to a webhook (signed, in order per
//! context, redelivered after the receiver was down) and published to the NATS server on this
//! machine; a sink that is down is retried and shown failing, and the facade keeps serving.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use http::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::admin::{token_env, Admin, OPERATOR};
use crate::binary::start;
use crate::harness::*;

/// What the webhook receiver got: each request's headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

const SECRET: &str = "webhook-secret-0123456789";
const NATS: &str = "127.0.0.1:4222";

/// A subscriber on the NATS server: its messages' payloads as they arrive.
async fn nats_subscribe(subject: &str) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    nats_subscribe_at(NATS, subject).await
}

async fn nats_subscribe_at(
    server: &str,
    subject: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let stream = TcpStream::connect(server)
        .await
        .unwrap_or_else(|e| panic!("a NATS server at {server} is needed: {e}"));
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut info = String::new();
    reader.read_line(&mut info).await.unwrap();
    assert!(info.starts_with("INFO"), "{info}");
    write
        .write_all(
            format!("CONNECT {{\"verbose\":false}}\r\nSUB {subject} 1\r\nPING\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _keep = write;
        let mut ready = Some(ready_tx);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line.starts_with("PONG") {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            } else if line.starts_with("PING") {
                // Keep-alive from the server.
            } else if let Some(rest) = line.strip_prefix("MSG ") {
                let len: usize = rest.split_whitespace().last().unwrap().parse().unwrap();
                let mut payload = vec![0; len + 2];
                reader.read_exact(&mut payload).await.unwrap();
                let _ = tx.send(serde_json::from_slice(&payload[..len]).unwrap());
            }
        }
    });
    ready_rx.await.unwrap();
    rx
}

fn hmac_hex(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn sinks(admin: &Admin) -> Vec<Value> {
    let (status, _, v) = admin.call(Method::GET, "/api/v1/events/sinks", None).await;
    assert_eq!(status, 200, "{v}");
    v["sinks"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn state_changes_reach_a_webhook_in_order_signed_and_after_it_was_down_and_nats() {
    let mut nats = nats_subscribe("strangler.events.orders").await;
    let (legacy, _) = axum_upstream(Router::new().fallback(|| async { "legacy" })).await;
    let (new, _) = axum_upstream(Router::new().fallback(|| async { "new" })).await;
    let hook = dead_port();
    let url = format!("http://{hook}/hook");
    let mut env = token_env();
    env.push(("STRANGLER_CATALOG_POLL_INTERVAL", "200ms"));
    env.push(("STRANGLER_EVENTS_WEBHOOKS", url.as_str()));
    env.push(("STRANGLER_EVENTS_WEBHOOK_SECRET", SECRET));
    env.push(("STRANGLER_EVENTS_NATS_URL", "nats://127.0.0.1:4222"));
    let s = start(&format!("http://{legacy}"), &env).await;
    let admin = Admin::new(&s.admin, Some(OPERATOR));
    admin
        .carve(
            "orders-svc",
            &format!("http://{new}"),
            "orders",
            &["/orders/{id}"],
            None,
        )
        .await;
    for _ in 0..3 {
        admin
            .change(Method::POST, "/api/v1/contexts/orders/promote", json!({}))
            .await;
    }
    // The webhook is down: its deliveries wait, failing, and the facade serves on.
    let started = Instant::now();
    loop {
        let all = sinks(&admin).await;
        let webhook = all.iter().find(|s| s["sink"] == format!("webhook:{url}"));
        if let Some(w) = webhook.filter(|w| w["last_error"].as_str().is_some()) {
            assert!(w["pending"].as_i64().unwrap() >= 1, "{w}");
            assert!(
                w["last_error"].as_str().unwrap().contains("cannot reach"),
                "{w}"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{all:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, body) = fetch(&format!("http://{}/orders/1", s.listen)).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"new"[..]));

    // NATS got them meanwhile, in order.
    let mut from_nats = Vec::new();
    while from_nats.len() < 4 {
        let ce = tokio::time::timeout(Duration::from_secs(10), nats.recv())
            .await
            .expect("no event from NATS")
            .unwrap();
        from_nats.push(ce);
    }
    let to: Vec<&str> = from_nats
        .iter()
        .map(|c| c["data"]["to"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["legacy", "shadow", "canary", "migrated"]);
    assert_eq!(from_nats[0]["specversion"], "1.0");
    assert_eq!(from_nats[1]["type"], "io.strangler.context.state.changed");
    assert_eq!(from_nats[1]["subject"], "orders");

    // The receiver comes up: everything arrives, in order, signed.
    let got: Received = Arc::default();
    let seen = Arc::clone(&got);
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push((headers, body.to_vec()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(hook).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let started = Instant::now();
    while got.lock().unwrap().len() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "only {} delivered",
            got.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = got.lock().unwrap().clone();
    let events: Vec<Value> = got
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect();
    let to: Vec<&str> = events
        .iter()
        .map(|c| c["data"]["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        to,
        ["legacy", "shadow", "canary", "migrated"],
        "in order after redelivery"
    );
    for (headers, body) in &got {
        assert_eq!(headers["content-type"], "application/cloudevents+json");
        assert_eq!(
            headers["x-strangler-signature"].to_str().unwrap(),
            format!("sha256={}", hmac_hex(body))
        );
    }
    let ids: Vec<i64> = events
        .iter()
        .map(|c| c["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let webhook = sinks(&admin)
        .await
        .into_iter()
        .find(|s| s["sink"] == format!("webhook:{url}"))
        .unwrap();
    assert_eq!(
        (webhook["pending"].as_i64(), webhook["delivered"].as_i64()),
        (Some(0), Some(4)),
        "{webhook}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_nats_server_that_is_down_is_retried_shown_failing_and_delivered_to_once_up() {
    let (legacy, _) = axum_upstream(Router::new().fallback(|| async { "legacy" })).await;
    let port = dead_port();
    let down = format!("nats://{port}");
    let mut env = token_env();
    env.push(("STRANGLER_EVENTS_NATS_URL", down.as_str()));
    let s = start(&format!("http://{legacy}"), &env).await;
    let admin = Admin::new(&s.admin, Some(OPERATOR));
    admin
        .carve(
            "orders-svc",
            &format!("http://{legacy}"),
            "orders",
            &["/orders/{id}"],
            None,
        )
        .await;
    let started = Instant::now();
    loop {
        let all = sinks(&admin).await;
        if let Some(n) = all
            .iter()
            .find(|s| s["last_error"].as_str().is_some_and(|e| e.contains("NATS")))
        {
            assert!(n["pending"].as_i64().unwrap() >= 1, "{n}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{all:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, _) = fetch(&format!("http://{}/", s.listen)).await;
    assert_eq!(status, 200, "the facade serves whatever the sinks do");

    // A NATS server of its own comes up on that port: the event is delivered.
    let mut server = tokio::process::Command::new("/usr/sbin/nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.port().to_string()])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server is needed (Debian's nats-server package)");
    let started = Instant::now();
    while TcpStream::connect(port).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nats-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut sub = nats_subscribe_at(&port.to_string(), "strangler.events.orders").await;
    let ce = tokio::time::timeout(Duration::from_secs(30), sub.recv())
        .await
        .expect("the event was not redelivered once NATS was up")
        .unwrap();
    assert_eq!(
        (ce["type"].as_str(), ce["data"]["to"].as_str()),
        (Some("io.strangler.context.state.changed"), Some("legacy"))
    );
    let _ = server.kill().await;
    s.stop().await;
}
