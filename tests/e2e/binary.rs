//! The real `strangler` binary as a process: serve, metrics, health, SIGTERM, and `check`.

use std::process::Stdio;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::harness::*;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_strangler");

pub struct Running {
    pub child: tokio::process::Child,
    pub listen: String,
    pub admin: String,
    pub lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// The catalog `start` made, removed with the process's handle.
    pub _catalog: Option<TempCatalog>,
    /// The mirror log's directory made for a process on a catalog that is not a SQLite file.
    pub _wal: Option<Scratch>,
}

impl Running {
    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap();
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("no exit after SIGTERM")
            .unwrap();
        assert!(status.success(), "exit status {status}");
    }
}

pub async fn start(legacy: &str, extra_env: &[(&str, &str)]) -> Running {
    let catalog = temp_catalog();
    let mut env: Vec<(&str, &str)> = vec![("STRANGLER_CATALOG_URL", catalog.as_str())];
    env.extend_from_slice(extra_env);
    let mut running = start_with(legacy, &env).await;
    running._catalog = Some(catalog);
    running
}

/// Starts `strangler serve` with exactly these extra variables (which must name a catalog).
pub async fn start_with(legacy: &str, extra_env: &[(&str, &str)]) -> Running {
    start_under(&[], legacy, extra_env).await
}

/// Like [`start_with`], run by `wrapper` (a command that executes its arguments, such as
/// `prlimit --nofile=N:N`).
pub async fn start_under(wrapper: &[&str], legacy: &str, extra_env: &[(&str, &str)]) -> Running {
    start_full(wrapper, &[], legacy, extra_env).await
}

/// Like [`start`], with `strangler serve --config FILE`.
pub async fn start_configured(
    legacy: &str,
    config: &std::path::Path,
    extra_env: &[(&str, &str)],
) -> Running {
    let catalog = temp_catalog();
    let mut env: Vec<(&str, &str)> = vec![("STRANGLER_CATALOG_URL", catalog.as_str())];
    env.extend_from_slice(extra_env);
    let config = config.to_string_lossy().into_owned();
    let mut running = start_full(&[], &["--config", &config], legacy, &env).await;
    running._catalog = Some(catalog);
    running
}

async fn start_full(
    wrapper: &[&str],
    args: &[&str],
    legacy: &str,
    extra_env: &[(&str, &str)],
) -> Running {
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args([
        "serve",
        "--legacy",
        legacy,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--workers",
        "2",
    ])
    .args(args)
    .env("STRANGLER_LOG_FORMAT", "json")
    // Tests stop at once unless they test the drain.
    .env("STRANGLER_SHUTDOWN_DRAIN_DELAY", "0s")
    // A write owner's move takes effect at once unless the test is about its settling.
    .env("STRANGLER_CATALOG_OWNER_FENCE", "0s")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    // Beside a SQLite catalog the mirror's log goes with it; elsewhere it would land in the
    // working directory, so each process gets one of its own unless the test names one.
    let on_file = extra_env
        .iter()
        .any(|(k, v)| *k == "STRANGLER_CATALOG_URL" && v.starts_with("sqlite:"));
    let named = extra_env
        .iter()
        .any(|(k, _)| *k == "STRANGLER_SHADOW_WAL_DIR");
    let wal = (!on_file && !named).then(|| Scratch::new("wal"));
    if let Some(w) = &wal {
        cmd.env("STRANGLER_SHADOW_WAL_DIR", &w.path);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut r = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = r.next_line().await {
            let _ = tx.send(line);
        }
    });
    let serving = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = lines.recv().await.expect("strangler exited before serving");
            if line.contains("strangler is serving") {
                return line;
            }
        }
    })
    .await
    .expect("strangler did not start");
    let v: serde_json::Value = serde_json::from_str(&serving).unwrap();
    Running {
        child,
        listen: v["fields"]["listen"].as_str().unwrap().to_owned(),
        admin: v["fields"]["admin"].as_str().unwrap().to_owned(),
        lines,
        _catalog: None,
        _wal: wal,
    }
}

/// A catalog file of its own for each process a test starts; its directory goes when the
/// value is dropped.
pub fn temp_catalog() -> TempCatalog {
    let dir = Scratch::new("catalog");
    TempCatalog {
        url: format!("sqlite://{}", dir.path.join("catalog.db").display()),
        _dir: dir,
    }
}

/// A SQLite catalog URL in a directory removed on drop.
pub struct TempCatalog {
    url: String,
    _dir: Scratch,
}

impl TempCatalog {
    pub fn as_str(&self) -> &str {
        &self.url
    }
}

impl std::ops::Deref for TempCatalog {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Display for TempCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl AsRef<std::ffi::OsStr> for TempCatalog {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.url.as_ref()
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

#[tokio::test]
async fn serves_reports_and_stops_on_sigterm() {
    let (up, _) =
        axum_upstream(Router::new().route("/hi", get(|| async { "hello from legacy" }))).await;
    let mut s = start(
        &format!("http://{up}"),
        &[("STRANGLER_LOG_ACCESS_LOG", "true")],
    )
    .await;

    let (status, _, body) = fetch(&format!("http://{}/hi", s.listen)).await;
    assert_eq!(
        (status.as_u16(), &body[..]),
        (200, &b"hello from legacy"[..])
    );

    let (status, _, body) = fetch(&format!("http://{}/metrics", s.admin)).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(
        metric(&text, "strangler_requests_total{class=\"2xx\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "strangler_request_duration_seconds_count"),
        1.0
    );
    assert!(metric(&text, "strangler_open_connections") >= 0.0);
    // The shadow governor runs: it reads how busy the workers are.
    let started = std::time::Instant::now();
    loop {
        let _ = fetch(&format!("http://{}/hi", s.listen)).await;
        let text = fetch(&format!("http://{}/metrics", s.admin)).await.2;
        let text = String::from_utf8_lossy(&text);
        if metric(&text, "strangler_worker_busy_ratio ") > 0.0 {
            assert!(metric(&text, "strangler_shadow_governed_per_second ") >= 10.0);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the workers' busy share never read:\n{text}"
        );
    }
    let (status, _, _) = fetch(&format!("http://{}/healthz", s.admin)).await;
    assert_eq!(status, 200);
    let (status, _, _) = fetch(&format!("http://{}/readyz", s.admin)).await;
    assert_eq!(status, 200);

    // The access log line carries the request.
    let access = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let line = s.lines.recv().await.unwrap();
            if line.contains("strangler::access") {
                return line;
            }
        }
    })
    .await
    .expect("no access log line");
    let v: serde_json::Value = serde_json::from_str(&access).unwrap();
    assert_eq!(v["fields"]["uri"], "/hi");
    assert_eq!(v["fields"]["status"], 200);

    let pid = s.child.id().unwrap();
    let rc = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(rc.success());
    let status = tokio::time::timeout(Duration::from_secs(10), s.child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn facade_errors_are_logged_with_the_request_id() {
    let mut s = start(&format!("http://{}", dead_port()), &[]).await;
    let (status, headers, body) = fetch(&format!("http://{}/x", s.listen)).await;
    assert_eq!(status, 502);
    let v = assert_problem(&headers, &body, 502);
    let id = v["request_id"].as_str().unwrap().to_owned();
    let logged = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let line = s.lines.recv().await.unwrap();
            if line.contains("facade answered") {
                return line;
            }
        }
    })
    .await
    .expect("no log line for the 502");
    assert!(logged.contains(&id), "{logged} lacks {id}");
}

#[tokio::test]
async fn check_accepts_good_and_rejects_bad_configuration() {
    let scratch = crate::harness::Scratch::new("check");
    let dir = scratch.path.clone();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "listen = \"127.0.0.1:8080\"\n[legacy]\nurl = \"http://127.0.0.1:8000\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[legacy]\nurl = \"http://127.0.0.1:8000\"\n\n[limits]\nheader_read_timeout = \"forever\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:5:", bad.display())), "{err}");
    assert!(err.contains("30s"), "the fix is missing: {err}");

    // serve refuses the same file without binding anything.
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--legacy",
            "http://127.0.0.1:1",
            "--listen",
            &addr,
            "--admin",
            "127.0.0.1:0",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("--listen"), "{err}");
}

#[tokio::test]
async fn a_mirror_log_directory_that_cannot_be_used_is_a_clear_error() {
    let dir = Scratch::new("bad-wal");
    // A file where the log's directory should be.
    let file = dir.path.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let catalog = temp_catalog();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--legacy",
            "http://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .env("STRANGLER_CATALOG_URL", catalog.url.as_str())
        .env("STRANGLER_SHADOW_WAL_DIR", &file)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not-a-dir") && err.contains("wal_dir"),
        "names the directory and the setting: {err}"
    );
}

/// Under a service manager (systemd's `Type=notify`), the facade says `READY=1` once it serves
/// and `STOPPING=1` when its drain begins — to a socket path or an abstract socket.
#[tokio::test]
async fn a_service_manager_is_told_when_the_facade_serves_and_when_it_stops() {
    let (up, _) = axum_upstream(Router::new().route("/hi", get(|| async { "hi" }))).await;
    async fn recv(sock: &tokio::net::UnixDatagram) -> String {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
            .await
            .expect("nothing was sent to the notify socket")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
    let dir = Scratch::new("notify");
    let path = dir.path.join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&path).unwrap();
    let target = path.to_string_lossy().into_owned();
    let s = start(&format!("http://{up}"), &[("NOTIFY_SOCKET", &target)]).await;
    let ready = recv(&sock).await;
    assert!(
        ready.starts_with(&format!("READY=1\nSTATUS=serving on {}", s.listen)),
        "{ready}"
    );
    let (status, _, _) = fetch(&format!("http://{}/hi", s.listen)).await;
    assert_eq!(status, 200, "ready means serving");
    s.stop().await;
    let stopping = recv(&sock).await;
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping}");

    // Linux's abstract namespace, as systemd hands it out (`@name`).
    use std::os::linux::net::SocketAddrExt;
    let name = format!("strangler-e2e-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let std_sock = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
    std_sock.set_nonblocking(true).unwrap();
    let sock = tokio::net::UnixDatagram::from_std(std_sock).unwrap();
    let target = format!("@{name}");
    let s = start(&format!("http://{up}"), &[("NOTIFY_SOCKET", &target)]).await;
    assert!(recv(&sock).await.starts_with("READY=1\n"));
    s.stop().await;
    assert!(recv(&sock).await.starts_with("STOPPING=1\n"));
}
