//! Test building blocks: upstream servers, the facade on port 0, raw-socket clients.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use strangler_facade::{Facade, FacadeConfig};
use strangler_services::{Origin, UpstreamConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A directory of its own under the system's temporary directory, removed (with everything
/// in it) when dropped, whether the test passed or not.
pub struct Scratch {
    pub path: std::path::PathBuf,
}

impl Scratch {
    pub fn new(what: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "strangler-e2e-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A facade running in this process.
pub struct FacadeHandle {
    pub addr: SocketAddr,
    pub facade: Facade,
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl FacadeHandle {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Starts the mirror outbox as `serve` does: a log under `dir`, shipped to a SQLite
    /// catalog there. Returns the directory's guard.
    pub async fn with_outbox(&self) -> Scratch {
        let dir = Scratch::new("outbox");
        let store = strangler_store::SqlStore::connect(
            &format!("sqlite://{}", dir.path.join("catalog.db").display()),
            Arc::new(strangler_catalog::SizeOnly),
        )
        .await
        .unwrap();
        let wal = strangler_facade::Wal::open(&dir.path.join("wal")).unwrap();
        self.facade
            .start_outbox(Arc::new(strangler_control::outbox::StoreOutbox(store)), wal);
        dir
    }

    /// Starts a graceful shutdown.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// What `/metrics` shows: the telemetry with the facade's own gauges.
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        self.facade.render_metrics(&mut out);
        out
    }
}

impl Drop for FacadeHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn config_for(upstream: SocketAddr) -> FacadeConfig {
    let origin = Origin::parse(&format!("http://{upstream}")).unwrap();
    FacadeConfig::new(UpstreamConfig::new(origin))
}

/// Starts the facade in front of `upstream`, after `tweak` adjusts its configuration.
pub async fn facade(upstream: SocketAddr, tweak: impl FnOnce(&mut FacadeConfig)) -> FacadeHandle {
    let mut cfg = config_for(upstream);
    tweak(&mut cfg);
    let facade = Facade::new(cfg).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(strangler_facade::serve(listener, facade.clone(), async {
        let _ = rx.await;
    }));
    FacadeHandle {
        addr,
        facade,
        stop: Some(tx),
        task,
    }
}

/// Serves an axum router on port 0; returns its address and how many connections it accepted.
pub async fn axum_upstream(app: axum::Router) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let app = app.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let app = app.clone();
                        async move {
                            use tower::ServiceExt;
                            app.oneshot(req.map(axum::body::Body::new)).await
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, accepted)
}

/// A raw upstream: records each request head (bytes up to the blank line) and any body bytes
/// that came with it, then answers with `response` and closes.
pub struct RawUpstream {
    pub addr: SocketAddr,
    pub heads: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RawUpstream {
    pub async fn start(response: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let head = read_head(&mut stream).await;
                    seen.lock().unwrap().push(head);
                    let _ = stream.write_all(response).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { addr, heads }
    }

    pub fn count(&self) -> usize {
        self.heads.lock().unwrap().len()
    }

    /// The only request head received, as text (lossy).
    pub fn only_head(&self) -> String {
        let heads = self.heads.lock().unwrap();
        assert_eq!(heads.len(), 1, "expected exactly one request upstream");
        String::from_utf8_lossy(&heads[0]).into_owned()
    }
}

/// Reads until `\r\n\r\n` (or EOF); returns the bytes read.
pub async fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    buf
}

/// Sends `request` on a new connection and reads until the server closes (or `wait` passes).
/// Returns what was read and whether the server closed the connection.
pub async fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap_or(false);
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// A pooled HTTP/1.1 client.
pub fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `url`; returns status, headers and body.
pub async fn fetch(url: &str) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let req = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// Parses a problem+json body and checks the fields every facade answer must have.
pub fn assert_problem(headers: &http::HeaderMap, body: &[u8], status: u16) -> serde_json::Value {
    assert_eq!(
        headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/problem+json")
    );
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["status"], status, "{v}");
    assert!(
        v["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:strangler:problem:"),
        "{v}"
    );
    assert!(!v["title"].as_str().unwrap().is_empty(), "{v}");
    let id = v["request_id"].as_str().unwrap();
    assert_eq!(headers.get("x-request-id").unwrap(), id);
    v
}

/// Splits a raw HTTP/1 response into status code, head text and body text.
pub fn parse_raw(resp: &str) -> (u16, String, String) {
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// A port nobody listens on.
pub fn dead_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// An upstream that answers every request with its own name.
pub async fn named(name: &'static str) -> SocketAddr {
    axum_upstream(axum::Router::new().fallback(move || async move { name }))
        .await
        .0
}

/// Every file under `dir`, its subdirectories' included.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Signs in to the dashboard at `base` (`http://host:port`) with `token`; the session cookie
/// (`name=value`) to send with the pages' requests.
pub async fn sign_in(base: &str, token: &str) -> String {
    let login = http::Request::post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(Bytes::from(format!(
            "token={token}"
        ))))
        .unwrap();
    let resp = client().request(login).await.unwrap();
    assert_eq!(resp.status(), 303, "signing in failed");
    resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Waits until the peer closes `stream` (EOF or reset), for at most `limit`.
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Reads from `stream` until what it read ends with `suffix`; panics if it closes first.
pub async fn read_until(stream: &mut TcpStream, suffix: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(suffix) {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed before {:?} arrived",
            String::from_utf8_lossy(suffix)
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// An HTTP/1.1 exchange's text with each `date: …` line made `date: *`, so that answers written
/// at different seconds compare equal.
pub fn mask_dates(text: &str) -> String {
    text.split("\r\n")
        .map(|line| {
            if line.starts_with("date: ") {
                "date: *"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}
