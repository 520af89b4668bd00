//! The facade's own HTTP/1.1 reader (here `GET`/`HEAD`; bodies in `h1_bodies.rs`) against hyper's server, which serves
//! everything else: the same answers byte for byte, the hand-over mid-connection, and the
//! connection rules (idle timer, a client that leaves mid-request).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(10);

/// Sends `first` and then a request that asks to close, on one connection; returns all the
/// bytes that came back until the facade closed it, dates masked.
async fn exchange(addr: std::net::SocketAddr, first: &str) -> String {
    let req = format!("{first}GET /end HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let (text, closed) = raw(addr, req.as_bytes(), WAIT).await;
    assert!(
        closed,
        "the facade did not close after `Connection: close`:\n{text}"
    );
    mask_dates(&text)
}

/// Every answer shape an upstream may give, to `GET` and `HEAD`, reaches the client in the
/// same bytes whether the facade's own reader served the request or hyper's server did (the
/// `Connection` token no one knows makes the reader hand the connection to hyper).
#[tokio::test]
async fn own_reader_answers_byte_for_byte_as_hypers_server() {
    let answers: &[&'static [u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n2\r\nok\r\n0\r\nx-sum: 9\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nX-B: b\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\nETag: \"x\"\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnah",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 599 Whatever\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    ];
    for answer in answers {
        let up = RawUpstream::start(answer).await;
        let f = facade(up.addr, |_| {}).await;
        for method in ["GET", "HEAD"] {
            let own = exchange(
                f.addr,
                &format!("{method} /a?q=1 HTTP/1.1\r\nHost: t\r\n\r\n"),
            )
            .await;
            let hyper = exchange(
                f.addr,
                &format!("{method} /a?q=1 HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, x-hand-over\r\n\r\n"),
            )
            .await;
            assert_eq!(
                own,
                hyper,
                "{method} answered differently for upstream answer {:?}",
                String::from_utf8_lossy(answer)
            );
            assert!(own.starts_with("HTTP/1."), "{own}");
        }
    }
    // The upstream's own Date is kept, and no second one added.
    let up = RawUpstream::start(
        b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    let f = facade(up.addr, |_| {}).await;
    let (text, _) = raw(
        f.addr,
        b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /end HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    let first = text.split("HTTP/1.1 200").nth(1).unwrap();
    assert_eq!(first.matches("date: ").count(), 1, "{text}");
    assert!(
        first.contains("date: Mon, 01 Jan 2024 00:00:00 GMT"),
        "{text}"
    );
}

/// Requests pipelined in one write are answered in order, the own reader's and then, once a
/// request with a body arrives, hyper's, on the same connection; each reaches the upstream
/// once, the body with its request.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order_across_the_hand_over() {
    let up = RawUpstream::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let f = facade(up.addr, |_| {}).await;
    let (text, closed) = raw(
        f.addr,
        b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /b HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\
          GET /d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(closed, "{text}");
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 4, "{text}");
    // The HEAD answer has no body: the bodies are those of GET, POST and GET.
    assert_eq!(text.matches("\r\n\r\nok").count(), 3, "{text}");
    let heads = up.heads.lock().unwrap().clone();
    let lines: Vec<String> = heads
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        lines,
        [
            "GET /a HTTP/1.1",
            "HEAD /b HTTP/1.1",
            "POST /c HTTP/1.1",
            "GET /d HTTP/1.1"
        ]
    );
}

/// A client that closes its side while its request is being answered cancels the request:
/// the upstream sees its connection closed, as with hyper's server.
#[tokio::test]
async fn a_client_that_leaves_mid_request_cancels_it_upstream() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let head = read_head(&mut s).await;
        // Never answer; wait for the facade to give up the connection.
        let mut rest = [0u8; 64];
        loop {
            match s.read(&mut rest).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = seen_tx.send(head);
    });
    let f = facade(addr, |_| {}).await;
    let mut client = TcpStream::connect(f.addr).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    let head = tokio::time::timeout(WAIT, seen_rx)
        .await
        .expect("the upstream request was not cancelled when the client left")
        .unwrap();
    assert!(head.starts_with(b"GET /slow HTTP/1.1\r\n"));
}

/// A keep-alive connection with no next request is closed after `header_read_timeout`, and
/// one whose next head stops half-way too.
#[tokio::test]
async fn idle_and_stalled_keep_alive_connections_are_closed_by_the_head_timer() {
    let up = named("legacy").await;
    let f = facade(up, |c| {
        c.limits.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    for then in [&b""[..], b"GET /again HTTP/1.1\r\nHo"] {
        let mut s = TcpStream::connect(f.addr).await.unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        read_until(&mut s, b"legacy").await;
        s.write_all(then).await.unwrap();
        assert!(
            closed_within(&mut s, WAIT).await,
            "a keep-alive connection was held open"
        );
    }
}

/// A target the own reader cannot make a URI of, after a request it served, is hyper's to
/// refuse (400, closed), as on a connection hyper's server had from the start.
#[tokio::test]
async fn a_target_the_reader_refuses_gets_hypers_400() {
    let up = named("legacy").await;
    let f = facade(up, |_| {}).await;
    let (text, closed) = raw(
        f.addr,
        b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\nGET /a<b> HTTP/1.1\r\nHost: t\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(closed, "{text}");
    let ok = text
        .find("HTTP/1.1 200 OK\r\n")
        .expect("the first request's answer");
    let refused = text
        .find("HTTP/1.1 400 Bad Request\r\n")
        .expect("hyper's 400");
    assert!(ok < refused, "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 2, "{text}");
}
