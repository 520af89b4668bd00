//! Connections: silent sockets are closed on a timer from the accept, idle HTTP/2 connections
//! get GOAWAY, the admin listener has its own cap, and a drain keeps both listeners answering.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::binary;
use crate::harness::*;

/// More silent sockets than the connection cap, and one that sent a single byte of a
/// would-be HTTP/2 preface: each is closed once the head timer (started at the accept)
/// expires, and a real client is served after them.
#[tokio::test]
async fn silent_sockets_are_closed_from_the_accept_and_clients_get_their_turn() {
    let up = named("legacy").await;
    let f = facade(up, |c| {
        c.limits.max_connections = 20;
        c.limits.header_read_timeout = Duration::from_millis(400);
    })
    .await;
    let mut silent = Vec::new();
    for i in 0..30 {
        let mut s = TcpStream::connect(f.addr).await.unwrap();
        if i == 0 {
            s.write_all(b"P").await.unwrap();
        }
        silent.push(s);
    }
    let (status, _, body) = tokio::time::timeout(Duration::from_secs(5), fetch(&f.url("/x")))
        .await
        .expect("a client was never served behind silent sockets");
    assert_eq!((status.as_u16(), &body[..]), (200, &b"legacy"[..]));
    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(5)).await,
            "a silent socket was held open"
        );
    }
    assert!(
        f.metrics().contains("strangler_header_timeouts_total 30"),
        "{}",
        f.metrics()
    );
}

/// An HTTP/2 connection with nothing in flight is closed (GOAWAY) after the idle time; one
/// that keeps asking is not.
#[tokio::test]
async fn idle_http2_connections_are_closed() {
    let up = named("legacy").await;
    let f = facade(up, |c| {
        c.limits.client_idle_timeout = Duration::from_secs(1)
    })
    .await;
    let stream = TcpStream::connect(f.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let ended = tokio::spawn(conn);
    // Busy for longer than the idle time: each request resets it.
    for _ in 0..24 {
        let req = http::Request::get(f.url("/x"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.expect("closed while in use");
        assert_eq!(
            resp.into_body().collect().await.unwrap().to_bytes(),
            "legacy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("an idle HTTP/2 connection was kept open")
        .unwrap()
        .unwrap();
}

/// Idle sockets on the admin port cannot use up the process's file descriptors: the admin
/// listener stops accepting at its cap, the public listener keeps serving, and the idle admin
/// sockets it accepted are closed by its head timer.
#[tokio::test]
async fn idle_admin_sockets_do_not_starve_the_public_listener() {
    let (up, _) = axum_upstream(Router::new().route("/hi", get(|| async { "hi" }))).await;
    let legacy = format!("http://{up}");
    // A process with few descriptors: the caps are fitted into them at start.
    let catalog = binary::temp_catalog();
    let s = binary::start_under(
        &["prlimit", "--nofile=900:900"],
        &legacy,
        &[
            ("STRANGLER_CATALOG_URL", catalog.as_str()),
            ("STRANGLER_LIMITS_ADMIN_MAX_CONNECTIONS", "32"),
            ("STRANGLER_LIMITS_HEADER_READ_TIMEOUT", "2s"),
        ],
    )
    .await;
    let _ = rlimit::increase_nofile_limit(4096);
    // More idle admin sockets than the process has descriptors (the ones beyond the admin
    // cap wait in the kernel's accept queue).
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(&s.admin).await.unwrap());
    }
    for _ in 0..20 {
        let (status, _, body) = tokio::time::timeout(
            Duration::from_secs(5),
            fetch(&format!("http://{}/hi", s.listen)),
        )
        .await
        .expect("the public listener stopped serving");
        assert_eq!((status.as_u16(), &body[..]), (200, &b"hi"[..]));
    }
    // The admin listener itself recovers once its silent sockets are closed.
    drop(idle);
    let (status, _, _) = tokio::time::timeout(
        Duration::from_secs(10),
        fetch(&format!("http://{}/healthz", s.admin)),
    )
    .await
    .expect("the admin listener did not recover");
    assert_eq!(status, 200);
    s.stop().await;
}

/// On SIGTERM the replica drains: /readyz says 503 while the public listener still accepts,
/// an idle keep-alive client's next request is answered (with `Connection: close`), a new
/// client is served, and the process then exits cleanly.
#[tokio::test]
async fn sigterm_drains_with_readyz_503_and_no_lost_request() {
    let (up, _) = axum_upstream(Router::new().route("/hi", get(|| async { "hi" }))).await;
    let mut s = binary::start(
        &format!("http://{up}"),
        &[("STRANGLER_SHUTDOWN_DRAIN_DELAY", "2s")],
    )
    .await;
    let mut keep_alive = TcpStream::connect(&s.listen).await.unwrap();
    let ask = b"GET /hi HTTP/1.1\r\nHost: t\r\n\r\n";
    keep_alive.write_all(ask).await.unwrap();
    let first = read_answer(&mut keep_alive).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");

    let pid = s.child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    // /readyz turns 503 while the admin listener stays up.
    let started = std::time::Instant::now();
    loop {
        let (status, _, _) = fetch(&format!("http://{}/readyz", s.admin)).await;
        if status == 503 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "/readyz never said 503"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The idle keep-alive connection's next request is answered, and told to close.
    keep_alive.write_all(ask).await.unwrap();
    let second = read_answer(&mut keep_alive).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(
        second.to_ascii_lowercase().contains("connection: close"),
        "{second}"
    );
    // A new client during the drain is still served.
    let (status, _, body) = fetch(&format!("http://{}/hi", s.listen)).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"hi"[..]));
    let status = tokio::time::timeout(Duration::from_secs(10), s.child.wait())
        .await
        .expect("no exit after the drain")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

/// Reads one answer with a Content-Length body.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("no answer")
            .unwrap();
        assert_eq!(n, 1, "closed: {}", String::from_utf8_lossy(&buf));
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8_lossy(&body)
}
