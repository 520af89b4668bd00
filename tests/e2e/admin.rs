//! A small client for the admin API, for tests.

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use crate::harness::client;

pub const OPERATOR: &str = "operator-token-for-tests-0001";
pub const VIEWER: &str = "viewer-token-for-tests-00001";

/// The environment that gives a process both tokens.
pub fn token_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("STRANGLER_AUTH_OPERATOR_TOKEN", OPERATOR),
        ("STRANGLER_AUTH_VIEWER_TOKEN", VIEWER),
        ("STRANGLER_FORWARDING_DEBUG_HEADER", "true"),
    ]
}

pub struct Admin {
    pub base: String,
    pub token: Option<&'static str>,
}

impl Admin {
    pub fn new(addr: &str, token: Option<&'static str>) -> Self {
        Self {
            base: format!("http://{addr}"),
            token,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, http::HeaderMap, Value) {
        self.call_as(method, path, body, "application/json").await
    }

    /// [`Admin::call`] with the body sent as `content_type`.
    pub async fn call_as(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        content_type: &str,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", content_type);
                Full::new(Bytes::from(b.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let resp = client().request(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn version(&self) -> i64 {
        let (status, _, v) = self.call(Method::GET, "/api/v1/catalog", None).await;
        assert_eq!(status, 200, "{v}");
        v["version"].as_i64().unwrap()
    }

    /// Waits until the facade behind this admin listener serves the catalog's current version
    /// (the API answers when a change is stored; the facade follows moments later).
    pub async fn in_effect(&self) {
        let want = self.version().await;
        let started = std::time::Instant::now();
        loop {
            let resp = client()
                .request(
                    http::Request::get(format!("{}/metrics", self.base))
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                )
                .await
                .unwrap();
            let text = resp.into_body().collect().await.unwrap().to_bytes();
            let served = String::from_utf8_lossy(&text)
                .lines()
                .find_map(|l| l.strip_prefix("strangler_catalog_version "))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0);
            if served >= want {
                return;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "the facade still serves version {served}, not {want}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Waits until no mirrored write of `context` is waiting, either way: a change that moves
    /// the write owner is refused until then.
    pub async fn drained(&self, context: &str) {
        let started = std::time::Instant::now();
        loop {
            let (_, _, v) = self
                .call(
                    Method::GET,
                    &format!("/api/v1/contexts/{context}/shadow?minutes=1"),
                    None,
                )
                .await;
            if v["outbox"]["pending"] == 0 && v["reverse_outbox"]["pending"] == 0 {
                return;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the outbox of {context} never drained: {v}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// A change based on the current version, which must succeed.
    pub async fn change(&self, method: Method, path: &str, mut body: Value) -> Value {
        body["base_version"] = self.version().await.into();
        if body.get("reason").is_none() {
            body["reason"] = "test".into();
        }
        let (status, _, v) = self.call(method, path, Some(body)).await;
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Promotes `context` from legacy through shadow into canary and sets its `weight`.
    pub async fn promote_to_canary(&self, context: &str, weight: u16) {
        let promote = format!("/api/v1/contexts/{context}/promote");
        for _ in 0..2 {
            self.change(Method::POST, &promote, json!({})).await;
        }
        self.change(
            Method::POST,
            &format!("/api/v1/contexts/{context}/weight"),
            json!({ "weight": weight }),
        )
        .await;
    }

    /// A service `name` at `url`, a context `context` targeting it, and GET routes.
    pub async fn carve(
        &self,
        service: &str,
        url: &str,
        context: &str,
        paths: &[&str],
        sticky: Option<&str>,
    ) {
        self.change(
            Method::POST,
            "/api/v1/services",
            json!({ "name": service, "urls": [url] }),
        )
        .await;
        let mut ctx = json!({ "name": context, "target": service, "state": "legacy" });
        if let Some(s) = sticky {
            ctx["sticky"] = s.into();
        }
        self.change(Method::POST, "/api/v1/contexts", ctx).await;
        for p in paths {
            self.change(
                Method::POST,
                "/api/v1/routes",
                json!({ "context": context, "methods": ["GET"], "path": p }),
            )
            .await;
        }
    }
}
