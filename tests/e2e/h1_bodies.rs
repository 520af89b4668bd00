//! Request bodies of a declared length on the facade's own HTTP/1.1 reader and its own
//! upstream path: read as they come, answered as hyper's server answers them, never taken
//! for a request head, and the connection kept only when the body was read to its end.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(10);

/// An upstream that answers every request with its body (200, `Content-Length`).
async fn echo() -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move { body });
    axum_upstream(app).await.0
}

/// The bytes `n`: a pattern that shows a shifted or cut body.
fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

fn post(path: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Bodies of every size — empty, small, larger than a read, larger than the reader's
/// largest read — pipelined with the requests around them, come back whole and in order,
/// byte for byte as when hyper's server reads the same requests (an unknown `Connection`
/// token hands the connection to hyper).
#[tokio::test]
async fn bodies_pipelined_come_back_whole_as_through_hypers_server() {
    let f = facade(echo().await, |_| {}).await;
    let sizes = [0, 5, 20_000, 200_000];
    let mut sent = Vec::new();
    for n in sizes {
        sent.extend_from_slice(&post(&format!("/n{n}"), &payload(n), ""));
    }
    sent.extend_from_slice(b"GET /end HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let (own, closed) = raw(f.addr, &sent, WAIT).await;
    assert!(closed, "not closed after `Connection: close`");
    let mut handed = post("/first", b"x", "Connection: keep-alive, x-hand-over\r\n");
    handed.extend_from_slice(&sent);
    let (hyper, closed) = raw(f.addr, &handed, WAIT).await;
    assert!(closed);
    // The hyper run has one more answer in front (the request that handed it over).
    let hyper = &hyper[hyper.find("HTTP/1.1 200 OK\r\n").unwrap() + 1..];
    let hyper = &hyper[hyper.find("HTTP/1.1 ").unwrap()..];
    assert_eq!(mask_dates(&own), mask_dates(hyper));
    assert_eq!(
        own.matches("HTTP/1.1 200 OK\r\n").count(),
        5,
        "{}",
        &own[..own.len().min(400)]
    );
    for n in sizes {
        assert!(
            own.contains(&format!("content-length: {n}\r\n"))
                && (n == 0 || own.contains(std::str::from_utf8(&payload(n)).unwrap())),
            "the {n}-byte body did not come back whole"
        );
    }
}

/// A body sent in small pieces, its last piece together with the next request, is read as
/// it comes; the bytes after it are the next request, not more body.
#[tokio::test]
async fn a_body_in_pieces_ends_where_its_length_says() {
    let f = facade(echo().await, |_| {}).await;
    let body = payload(30_000);
    let mut all = post("/pieces", &body, "");
    all.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    for piece in all.chunks(997) {
        s.write_all(piece).await.unwrap();
        tokio::task::yield_now().await;
    }
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .expect("closed after the second request")
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert_eq!(
        text.matches("HTTP/1.1 200 OK\r\n").count(),
        2,
        "{}",
        &text[..400]
    );
    assert!(text.contains(std::str::from_utf8(&body).unwrap()));
}

/// A body whose bytes look like requests is a body: the upstream gets one request with it,
/// the client one answer for it.
#[tokio::test]
async fn a_body_that_looks_like_a_request_is_only_a_body() {
    let up = RawUpstream::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let f = facade(up.addr, |_| {}).await;
    let inner = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut req = post("/outer", inner, "");
    req.extend_from_slice(b"GET /end HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let (text, closed) = raw(f.addr, &req, WAIT).await;
    assert!(closed, "{text}");
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
    let heads: Vec<String> = up
        .heads
        .lock()
        .unwrap()
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(
        heads[0].starts_with("POST /outer HTTP/1.1\r\n"),
        "{heads:?}"
    );
    assert!(heads[1].starts_with("GET /end HTTP/1.1\r\n"), "{heads:?}");
    assert!(!heads.iter().any(|h| h.contains("/smuggled")));
}

/// The `content-length` a request head declares (0 without one).
fn declared(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// An upstream that answers each request as soon as its head is in, and only then reads its
/// body.
async fn answers_early() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                loop {
                    let head = read_head(&mut s).await;
                    if !head.ends_with(b"\r\n\r\n") {
                        return;
                    }
                    let answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nno!!";
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                    let mut left = declared(&head);
                    let mut sink = [0u8; 8192];
                    while left > 0 {
                        match s.read(&mut sink[..left.min(8192)]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => left -= n,
                        }
                    }
                }
            });
        }
    });
    addr
}

/// An upstream's answer that comes before the body reaches the client at once; then the rest
/// of a small body is read past and the connection serves the next request, while a large
/// one closes it (its bytes are not waited for).
#[tokio::test]
async fn an_early_answer_reaches_the_client_and_the_rest_of_the_body_is_read_past_or_closed() {
    let f = facade(answers_early().await, |_| {}).await;
    for (declared, kept) in [(100_000usize, true), (50_000_000, false)] {
        let mut s = TcpStream::connect(f.addr).await.unwrap();
        let head = format!("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: {declared}\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&payload(1000)).await.unwrap();
        let answer = read_until(&mut s, b"no!!").await;
        assert!(answer.starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
        if kept {
            s.write_all(&payload(declared - 1000)).await.unwrap();
            s.write_all(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let next = read_until(&mut s, b"no!!").await;
            assert!(
                next.starts_with(b"HTTP/1.1 403 Forbidden\r\n"),
                "{}",
                String::from_utf8_lossy(&next)
            );
        } else {
            assert!(
                closed_within(&mut s, WAIT).await,
                "a connection with 50 MB of body unread was kept"
            );
        }
    }
}

/// An upstream that echoes each piece of the body as it comes, after answering at once: the
/// client sends the next piece only when the last came back, so the exchange ends only if
/// the body keeps going while the answer is written — through both of the facade's sides.
#[tokio::test]
async fn a_streaming_echo_goes_both_ways_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let length = declared(&read_head(&mut s).await);
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
                let _ = s.write_all(answer.as_bytes()).await;
                let mut left = length;
                let mut buf = [0u8; 4096];
                while left > 0 {
                    match s.read(&mut buf[..left.min(4096)]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            left -= n;
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    let f = facade(addr, |_| {}).await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"POST /duplex HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    for i in 0..5u8 {
        s.write_all(&[b'a' + i; 1000]).await.unwrap();
        let want = [b'a' + i; 1000];
        let echoed = tokio::time::timeout(WAIT, async {
            while !got.ends_with(&want) {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            true
        })
        .await;
        assert_eq!(
            echoed,
            Ok(true),
            "piece {i} did not come back while the body went on"
        );
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with(&"e".repeat(1000)));
}

/// A client that closes its side before its body ends: the upstream never gets a whole
/// request (its connection closes short of the length), and the facade serves on.
#[tokio::test]
async fn a_body_cut_short_by_the_client_never_reaches_the_upstream_whole() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = read_head(&mut s).await;
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
                let _ = tx.send(rest.len());
            });
        }
    });
    let f = facade(addr, |_| {}).await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"POST /cut HTTP/1.1\r\nHost: t\r\nContent-Length: 10000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&payload(4000)).await.unwrap();
    s.shutdown().await.unwrap();
    let seen = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the upstream connection was closed")
        .unwrap();
    assert!(
        seen < 10_000,
        "the upstream got {seen} bytes of a 10,000-byte body"
    );
}
