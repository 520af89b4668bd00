//! Requests with bodies on our own HTTP/1.1 path, against loopback upstreams that read and
//! answer by hand.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::error::{BoxError, FailureKind};
use crate::upstream::h1::tests::serve;
use crate::upstream::{Origin, Upstream, UpstreamConfig};

/// A request body fed by the test, one frame at a time, that declares `length` bytes.
struct Fed {
    rx: mpsc::UnboundedReceiver<Result<Bytes, BoxError>>,
    length: u64,
}

impl http_body::Body for Fed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx
            .poll_recv(cx)
            .map(|next| next.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.length)
    }
}

type Feed = mpsc::UnboundedSender<Result<Bytes, BoxError>>;

fn fed(length: u64) -> (Feed, Fed) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Fed { rx, length })
}

fn post(body: Fed) -> Request<Fed> {
    Request::post("/orders")
        .header("host", "legacy.internal")
        .header("content-length", body.length.to_string())
        .body(body)
        .unwrap()
}

fn upstream(addr: std::net::SocketAddr) -> Upstream<Fed> {
    Upstream::new(&UpstreamConfig::new(
        Origin::parse(&format!("http://{addr}")).unwrap(),
    ))
}

/// Reads a request head from `s` (into `buf`, which keeps what follows it).
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some(String::from_utf8_lossy(&buf.drain(..end).collect::<Vec<_>>()).into_owned())
}

/// Reads exactly `n` body bytes from `s` after what `buf` holds.
async fn read_body(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    while buf.len() < n {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    Some(buf.drain(..n).collect())
}

/// An upstream that reads each request whole and answers 200 with what it read; each
/// request's head and body are sent to `seen`.
async fn echo_whole(
    seen: mpsc::UnboundedSender<(String, Vec<u8>)>,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    serve(move |mut s, _| {
        let seen = seen.clone();
        async move {
            let mut buf = Vec::new();
            while let Some(head) = read_head(&mut s, &mut buf).await {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let Some(body) = read_body(&mut s, &mut buf, length).await else {
                    return;
                };
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
                let _ = seen.send((head, body.clone()));
                if s.write_all(answer.as_bytes()).await.is_err()
                    || s.write_all(&body).await.is_err()
                {
                    return;
                }
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_body_goes_out_after_its_head_and_the_connection_is_reused() {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let (addr, conns) = echo_whole(tx).await;
    let up = upstream(addr);
    for n in 0..3u8 {
        let payload: Vec<u8> = (0..40_000u32).map(|i| (i as u8) ^ n).collect();
        let (feed, body) = fed(payload.len() as u64);
        // In three pieces, the first there before the exchange starts.
        for piece in payload.chunks(15_000) {
            feed.send(Ok(Bytes::copy_from_slice(piece))).unwrap();
        }
        drop(feed);
        let resp = up.send(post(body)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let got = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(got == payload, "request {n}: the echo differs");
        let (head, sent) = seen.recv().await.unwrap();
        assert!(head.starts_with("POST /orders HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("content-length: 40000\r\n"), "{head}");
        assert!(
            sent == payload,
            "request {n}: the upstream read another body"
        );
    }
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "one connection for all three"
    );
}

#[tokio::test]
async fn an_answer_before_the_body_ends_reaches_the_caller_and_the_connection_is_not_reused() {
    // The upstream refuses after the head, without reading the body, and keeps the
    // connection open (as many servers do for a 413 or a 401).
    let (addr, conns) = serve(|mut s, n| async move {
        let mut buf = Vec::new();
        if read_head(&mut s, &mut buf).await.is_none() {
            return;
        }
        let answer = if n == 0 {
            "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!"
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        let _ = s.write_all(answer.as_bytes()).await;
        let _ = s.read(&mut [0u8; 16]).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let up = upstream(addr);
    let (feed, body) = fed(1 << 20);
    feed.send(Ok(Bytes::from_static(b"the first bytes")))
        .unwrap();
    // The rest of the body never comes: the answer must not wait for it.
    let resp = up.send(post(body)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let got = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&got[..], b"big!");
    // Half a request went out on that connection: the next request takes another.
    let (feed2, body2) = fed(2);
    feed2.send(Ok(Bytes::from_static(b"hi"))).unwrap();
    let resp = up.send(post(body2)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    drop(feed);
}

#[tokio::test]
async fn an_upstream_that_answers_while_reading_gets_the_body_as_its_answer_is_read() {
    // An echo that streams: it answers as soon as the head is in and sends back each piece
    // of the body as it comes. The test sends the next piece only once the last one came
    // back, so the exchange ends only if the body keeps going while the answer is read.
    let (addr, conns) = serve(|mut s, _| async move {
        let mut buf = Vec::new();
        while let Some(head) = read_head(&mut s, &mut buf).await {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
            if s.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            let mut left = length;
            let mut chunk = [0u8; 4096];
            while left > 0 {
                if !buf.is_empty() {
                    let take = buf.len().min(left);
                    let piece: Vec<u8> = buf.drain(..take).collect();
                    left -= take;
                    if s.write_all(&piece).await.is_err() {
                        return;
                    }
                    continue;
                }
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        }
    })
    .await;
    let up = upstream(addr);
    for round in 0..2 {
        let pieces: Vec<Bytes> = (0..5u8)
            .map(|i| Bytes::from(vec![b'a' + i; 1000]))
            .collect();
        let (feed, body) = fed(5000);
        feed.send(Ok(pieces[0].clone())).unwrap();
        let resp = up.send(post(body)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        let mut got = Vec::new();
        let mut next = 1;
        // Without the body going on, the next frame would never come.
        while let Some(frame) = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .expect("the echo goes on")
        {
            let data = frame.unwrap().into_data().unwrap();
            got.extend_from_slice(&data);
            if got.len() == next * 1000 && next < pieces.len() {
                feed.send(Ok(pieces[next].clone())).unwrap();
                next += 1;
            }
        }
        assert_eq!(got, pieces.concat(), "round {round}");
    }
    // The body went out whole each time: the connection was reused.
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

/// An upstream that reads a head and then everything until the close, and reports what it
/// read after the head (`None`: no head came).
async fn swallowing() -> (std::net::SocketAddr, Reports) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (addr, _) = serve(move |mut s, _| {
        let tx = tx.clone();
        async move {
            let mut buf = Vec::new();
            if read_head(&mut s, &mut buf).await.is_none() {
                let _ = tx.send(None);
                return;
            }
            let _ = s.read_to_end(&mut buf).await;
            let _ = tx.send(Some(buf));
        }
    })
    .await;
    (addr, Reports(rx))
}

struct Reports(mpsc::UnboundedReceiver<Option<Vec<u8>>>);

impl Reports {
    /// The next connection's report; a test that would wait forever fails instead.
    async fn next(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(Duration::from_secs(20), self.0.recv())
            .await
            .expect("the upstream saw its connection close")
            .expect("the upstream runs")
    }
}

#[tokio::test]
async fn a_client_body_that_fails_ends_the_exchange_and_closes_the_connection() {
    #[derive(Debug, thiserror::Error)]
    #[error("the client went away")]
    struct Gone;
    let (addr, mut read) = swallowing().await;
    let up = upstream(addr);
    let (feed, body) = fed(100);
    feed.send(Ok(Bytes::from_static(b"0123456789"))).unwrap();
    feed.send(Err(Box::new(Gone))).unwrap();
    let err = up.send(post(body)).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::RequestBody);
    assert!(err.find_cause::<Gone>().is_some(), "{err}");
    // The upstream saw part of the body and then the close: it cannot take it as whole.
    assert_eq!(read.next().await.unwrap(), b"0123456789");
}

#[tokio::test]
async fn a_body_that_breaks_its_declared_length_is_refused_and_never_sent_past_it() {
    let (addr, mut read) = swallowing().await;
    let up = upstream(addr);
    // Longer than declared: nothing of it leaves (it is refused before the head is sent).
    let (feed, body) = fed(4);
    feed.send(Ok(Bytes::from_static(b"abcdefgh"))).unwrap();
    let err = up.send(post(body)).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::RequestBody);
    assert!(
        err.to_string().contains("longer than its Content-Length"),
        "{err}"
    );
    assert_eq!(read.next().await, None);
    // Shorter than declared.
    let (feed, body) = fed(10);
    feed.send(Ok(Bytes::from_static(b"abc"))).unwrap();
    drop(feed);
    let err = up.send(post(body)).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::RequestBody);
    assert!(
        err.to_string().contains("ended before its Content-Length"),
        "{err}"
    );
    assert_eq!(read.next().await.unwrap(), b"abc");
}

#[tokio::test]
async fn a_request_with_a_body_is_never_sent_twice() {
    // The first request is answered; the second reaches the upstream, which then closes
    // without a word: what a client sees when the upstream closes an idle connection just
    // as the request arrives — or when it took the request and crashed. A bodiless GET is
    // sent again on a new connection then; a request with a body must not be.
    let (tx, mut seen) = mpsc::unbounded_channel();
    let (addr, conns) = serve(move |mut s, _| {
        let tx = tx.clone();
        async move {
            let mut buf = Vec::new();
            let mut answered = false;
            while let Some(head) = read_head(&mut s, &mut buf).await {
                let Some(body) = read_body(&mut s, &mut buf, 2).await else {
                    return;
                };
                let _ = tx.send((head, body));
                if answered {
                    return;
                }
                answered = true;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            }
        }
    })
    .await;
    let up = upstream(addr);
    for expect_ok in [true, false] {
        let (feed, body) = fed(2);
        feed.send(Ok(Bytes::from_static(b"hi"))).unwrap();
        let sent = up.send(post(body)).await;
        match sent {
            Ok(resp) => {
                assert!(expect_ok);
                let _ = resp.into_body().collect().await.unwrap();
            }
            Err(e) => {
                assert!(!expect_ok, "{e}");
                assert_eq!(e.kind(), FailureKind::Reset);
            }
        }
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1, "not sent again elsewhere");
    let mut received = 0;
    while seen.try_recv().is_ok() {
        received += 1;
    }
    assert_eq!(received, 2, "each request reached the upstream once");
}

#[test]
fn only_a_body_of_one_agreeing_declared_length_takes_this_path() {
    use crate::upstream::h1::applies;
    let with = |fields: &[(&str, &str)], length: u64| {
        let (_feed, body) = fed(length);
        let mut req = Request::post("/").body(body).unwrap();
        for (n, v) in fields {
            req.headers_mut().append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        applies(&req)
    };
    assert!(with(&[("content-length", "5")], 5));
    assert!(
        !with(&[("content-length", "6")], 5),
        "disagrees with the body"
    );
    assert!(!with(
        &[("content-length", "5"), ("content-length", "5")],
        5
    ));
    assert!(!with(&[("content-length", "+5")], 5));
    assert!(!with(&[("content-length", " 5")], 5));
    assert!(!with(&[], 5), "no length declared");
    assert!(!with(
        &[("content-length", "5"), ("transfer-encoding", "chunked")],
        5
    ));
    assert!(!with(
        &[("content-length", "5"), ("connection", "close")],
        5
    ));
    assert!(!with(
        &[("content-length", "5"), ("upgrade", "websocket")],
        5
    ));
    let mut connect = Request::connect("legacy:80")
        .header("content-length", "5")
        .body(fed(5).1)
        .unwrap();
    assert!(!applies(&connect));
    *connect.method_mut() = http::Method::PUT;
    assert!(applies(&connect));
}
