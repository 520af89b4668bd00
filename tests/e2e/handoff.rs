//! Reloads (SIGHUP) and binary upgrades (SIGUSR2) of the real binary: the listening sockets go
//! to a successor process and the old one drains, so that under a steady load of keep-alive and
//! new connections no request fails.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpStream;

use crate::binary::start_configured;
use crate::harness::*;

/// Kills, when dropped, the process that serves last: successors are not this test's children.
struct Last(Arc<Mutex<u32>>);

impl Drop for Last {
    fn drop(&mut self) {
        let pid = *self.0.lock().unwrap();
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

fn signal(pid: u32, which: &str) {
    let ok = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {which} {pid} failed");
}

/// Writes the configuration file whole (a reader never sees half of it).
fn write_config(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config(via: &str) -> String {
    format!("[forwarding]\nvia_name = \"{via}\"\n")
}

/// The next log line of `message` from a process that satisfies `pid_ok`, and that pid.
async fn wait_line(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    message: &str,
    pid_ok: impl Fn(u64) -> bool,
) -> u64 {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let line = lines.recv().await.expect("every strangler process exited");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == message {
                if let Some(pid) = v["fields"]["pid"].as_u64().filter(|p| pid_ok(*p)) {
                    return pid;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no `{message}` line"))
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.lock().unwrap().push(what);
    }
}

/// One client on one keep-alive connection, a new one only when an answer says
/// `Connection: close`; every request is checked, none is retried.
async fn keep_alive(addr: String, stop: Arc<AtomicBool>, tally: Arc<Tally>, posts: bool) {
    let mut n = 0u64;
    'connections: while !stop.load(Ordering::Relaxed) {
        let stream = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(e) => return tally.fail(format!("connect: {e}")),
        };
        let (mut send, conn) =
            match hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
            {
                Ok(x) => x,
                Err(e) => return tally.fail(format!("handshake: {e}")),
            };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let body = format!("request {n}");
            let req = http::Request::builder()
                .method(if posts { "POST" } else { "GET" })
                .uri(if posts { "/echo" } else { "/" })
                .header("host", "facade")
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap();
            let resp = match send.send_request(req).await {
                Ok(r) => r,
                Err(e) => return tally.fail(format!("keep-alive request {n}: {e}")),
            };
            let status = resp.status();
            let closing = resp
                .headers()
                .get("connection")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let got = match resp.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return tally.fail(format!("keep-alive body {n}: {e}")),
            };
            let want: &[u8] = if posts { body.as_bytes() } else { b"ok" };
            if status != 200 || got != want {
                return tally.fail(format!("keep-alive {n}: {status} {got:?}"));
            }
            tally.ok.fetch_add(1, Ordering::Relaxed);
            // Paced, so that the machine has room to start successors.
            tokio::time::sleep(Duration::from_millis(2)).await;
            if closing {
                continue 'connections;
            }
        }
    }
}

/// One request per connection.
async fn new_connections(addr: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let url = format!("http://{addr}/");
        match tokio::time::timeout(Duration::from_secs(10), fetch_once(&url)).await {
            Ok(Ok((200, body))) if body == "ok" => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok((status, body))) => return tally.fail(format!("new {n}: {status} {body}")),
            Ok(Err(e)) => return tally.fail(format!("new {n}: {e}")),
            Err(_) => return tally.fail(format!("new {n}: no answer in 10 s")),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn fetch_once(url: &str) -> Result<(u16, String), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(uri.path())
        .header("host", authority)
        .header("connection", "close")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn via(addr: &str) -> String {
    let (_, headers, _) = fetch(&format!("http://{addr}/")).await;
    headers
        .get("via")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_reloads_and_upgrades_under_load_fail_no_request() {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/echo", post(|body: Bytes| async move { body }));
    let (up, _) = axum_upstream(app).await;
    let dir = Scratch::new("handoff");
    let file = dir.path.join("strangler.toml");
    write_config(&file, &config("gen-0"));
    // The harness sets `drain_delay` to 0: a hand-off drains for a second all the same, so that
    // keep-alive clients are told to close before idle connections are cut.
    let running = start_configured(&format!("http://{up}"), &file, &[]).await;
    let (listen, mut lines) = (running.listen.clone(), running.lines);
    let current = Arc::new(Mutex::new(running.child.id().unwrap()));
    let _last = Last(Arc::clone(&current));
    let mut first = Some(running.child);
    assert!(via(&listen).await.ends_with("gen-0"));

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut load = Vec::new();
    for i in 0..6 {
        let (addr, stop, tally) = (listen.clone(), Arc::clone(&stop), Arc::clone(&tally));
        load.push(if i < 4 {
            tokio::spawn(keep_alive(addr, stop, tally, i % 2 == 1))
        } else {
            tokio::spawn(new_connections(addr, stop, tally))
        });
    }
    let before = |tally: &Tally| tally.ok.load(Ordering::Relaxed);
    while before(&tally) < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    for round in 1..=10u32 {
        let old = *current.lock().unwrap();
        let via_name = format!("gen-{round}");
        write_config(&file, &config(&via_name));
        let which = if round % 2 == 1 { "-HUP" } else { "-USR2" };
        let served_before = before(&tally);
        signal(old, which);
        let new = wait_line(&mut lines, "strangler is serving", |p| p != u64::from(old)).await;
        *current.lock().unwrap() = u32::try_from(new).unwrap();
        wait_line(&mut lines, "stopped", |p| p == u64::from(old)).await;
        if let Some(mut child) = first.take() {
            assert!(child.wait().await.unwrap().success());
        }
        // The new process read the file again, and the load went on through the change.
        assert!(
            via(&listen).await.ends_with(&via_name),
            "round {round} ({which}): the successor did not apply the new configuration"
        );
        while before(&tally) < served_before + 50 {
            assert!(
                tally.failed.lock().unwrap().is_empty(),
                "{:?}",
                tally.failed
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // A reload with a mistake in the file: the successor says where and exits; the running
    // process keeps serving with what it had.
    let pid = *current.lock().unwrap();
    write_config(&file, "[forwarding]\nvia_name = 5\n");
    signal(pid, "-HUP");
    let said = tokio::time::timeout(Duration::from_secs(60), async {
        let mut error_seen = None;
        loop {
            let line = lines.recv().await.unwrap();
            if line.contains("strangler.toml") && error_seen.is_none() {
                error_seen = Some(line.clone());
            }
            if line.contains("the reload or upgrade failed") {
                return (error_seen, line);
            }
        }
    })
    .await
    .expect("the failed reload was not reported");
    assert!(said.0.is_some(), "the successor did not name the file");
    assert!(said.1.contains("exited"), "{}", said.1);
    assert!(via(&listen).await.ends_with("gen-10"));

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let failed = tally.failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(before(&tally) > 600, "only {} requests", before(&tally));
    eprintln!("{} requests answered across 10 hand-offs", before(&tally));

    signal(pid, "-TERM");
    wait_line(&mut lines, "stopped", |p| p == u64::from(pid)).await;
}
