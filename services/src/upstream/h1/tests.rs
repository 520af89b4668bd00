use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::header::CONTENT_LENGTH;
use http::HeaderName;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::upstream::{Origin, Upstream, UpstreamConfig};

fn head(status: u16, version: Version, fields: &[(&str, &str)]) -> Head {
    let mut headers = HeaderMap::new();
    for (n, v) in fields {
        headers.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    Head {
        status: StatusCode::from_u16(status).unwrap(),
        version,
        headers,
    }
}

#[test]
fn framing_follows_rfc_9112() {
    use Framing::*;
    let v11 = Version::HTTP_11;
    let v10 = Version::HTTP_10;
    for (status, version, fields, head_request, want) in [
        (
            200,
            v11,
            &[("content-length", "5")][..],
            false,
            (Length(5), true),
        ),
        (200, v11, &[("content-length", "5")], true, (Empty, true)),
        (204, v11, &[], false, (Empty, true)),
        (304, v11, &[("content-length", "9")], false, (Empty, true)),
        (200, v11, &[("content-length", "0")], false, (Empty, true)),
        (
            200,
            v11,
            &[("content-length", "3, 3"), ("content-length", "3")],
            false,
            (Length(3), true),
        ),
        (
            200,
            v11,
            &[("transfer-encoding", "chunked")],
            false,
            (Chunked, true),
        ),
        (
            200,
            v11,
            &[("transfer-encoding", "gzip, Chunked ")],
            false,
            (Chunked, true),
        ),
        (
            200,
            v11,
            &[("transfer-encoding", "chunked, gzip")],
            false,
            (Close, false),
        ),
        (200, v11, &[], false, (Close, false)),
        (
            200,
            v11,
            &[("content-length", "2"), ("connection", "close")],
            false,
            (Length(2), false),
        ),
        (
            200,
            v10,
            &[("content-length", "2")],
            false,
            (Length(2), false),
        ),
        (
            200,
            v10,
            &[("content-length", "2"), ("connection", "Keep-Alive")],
            false,
            (Length(2), true),
        ),
    ] {
        let mut h = head(status, version, fields);
        assert_eq!(
            framing(&mut h, head_request).unwrap(),
            want,
            "{status} {fields:?}"
        );
    }
    // Framed two ways: chunked wins, the length goes, the connection is not reused.
    let mut h = head(
        200,
        v11,
        &[("content-length", "5"), ("transfer-encoding", "chunked")],
    );
    assert_eq!(framing(&mut h, false).unwrap(), (Chunked, false));
    assert!(!h.headers.contains_key(CONTENT_LENGTH));
    // Also when the answer has no body (HEAD): the length does not travel on.
    let mut h = head(
        200,
        v11,
        &[("content-length", "5"), ("transfer-encoding", "chunked")],
    );
    assert_eq!(framing(&mut h, true).unwrap(), (Empty, false));
    assert!(!h.headers.contains_key(CONTENT_LENGTH));
}

#[test]
fn ambiguous_framing_is_invalid() {
    for (version, fields) in [
        (Version::HTTP_10, &[("transfer-encoding", "chunked")][..]),
        (
            Version::HTTP_11,
            &[("content-length", "3"), ("content-length", "4")],
        ),
        (Version::HTTP_11, &[("content-length", "3, 4")]),
        (Version::HTTP_11, &[("content-length", "+3")]),
        (Version::HTTP_11, &[("content-length", "")]),
        (Version::HTTP_11, &[("content-length", "0x10")]),
        (
            Version::HTTP_11,
            &[("content-length", "99999999999999999999")],
        ),
    ] {
        let mut h = head(200, version, fields);
        assert!(
            matches!(framing(&mut h, false), Err(H1Error::Invalid(_))),
            "{fields:?}"
        );
    }
}

#[test]
fn the_head_ends_at_its_first_blank_line() {
    assert_eq!(
        head_end(b"HTTP/1.1 200 OK\r\n\r\nbody\r\n\r\n", 0),
        Some(19)
    );
    assert_eq!(head_end(b"HTTP/1.1 200 OK\nA: b\n\nbody", 0), Some(22));
    assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0), None);
    assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r", 0), None);
    // Searching on from where the last search stopped finds a blank line split by a read.
    assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", 22), Some(25));
}

#[test]
fn the_request_head_is_written_as_given() {
    let req = Request::get("/a/b?c=d")
        .header("host", "legacy.internal")
        .header("x-two", "1")
        .header("x-two", "2")
        .body(())
        .unwrap();
    let mut out = Vec::new();
    encode(&mut out, &req, &[]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET /a/b?c=d HTTP/1.1\r\nhost: legacy.internal\r\nx-two: 1\r\nx-two: 2\r\n\r\n"
    );
}

#[test]
fn appended_fields_are_written_after_the_requests_own_in_order() {
    static VIA: http::HeaderName = http::header::VIA;
    static X_TWO: http::HeaderName = http::HeaderName::from_static("x-two");
    let mut req = Request::get("/").header("x-two", "1").body(()).unwrap();
    let (two, via) = (
        http::HeaderValue::from_static("2"),
        http::HeaderValue::from_static("1.1 s"),
    );
    let mut out = Vec::new();
    encode(&mut out, &req, &[(&X_TWO, &two), (&VIA, &via)]);
    let direct = String::from_utf8(out.clone()).unwrap();
    assert_eq!(
        direct,
        "GET / HTTP/1.1\r\nx-two: 1\r\nx-two: 2\r\nvia: 1.1 s\r\n\r\n"
    );
    // The same head as the fields appended to the map (a name already there included).
    req.headers_mut().append(&X_TWO, two.clone());
    req.headers_mut().append(&VIA, via.clone());
    encode(&mut out, &req, &[]);
    assert_eq!(String::from_utf8(out).unwrap(), direct);
}

/// A loopback upstream that runs `conn(stream, n)` in a task of its own for the `n`th
/// connection it accepts (from 0): its address, and how many connections it has accepted.
pub(super) async fn serve<F, Fut>(conn: F) -> (std::net::SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream, usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&conns);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(conn(s, counted.fetch_add(1, Ordering::SeqCst)));
        }
    });
    (addr, conns)
}

/// An upstream that answers the requests on each connection with the next of `answers`
/// (written in pieces of `piece` bytes), then closes. Records each request head and counts
/// connections.
struct Scripted {
    addr: std::net::SocketAddr,
    conns: Arc<AtomicUsize>,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn scripted(answers: Vec<Vec<u8>>, piece: usize) -> Scripted {
    scripted_with(answers, piece, false).await
}

/// Like [`scripted`]; with `close`, each connection is closed after its first answer.
async fn scripted_with(answers: Vec<Vec<u8>>, piece: usize, close: bool) -> Scripted {
    let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
    let recorded = Arc::clone(&requests);
    let (addr, conns) = serve(move |mut s, _| {
        let (answers, recorded) = (Arc::clone(&answers), Arc::clone(&recorded));
        async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let req: Vec<u8> = buf.drain(..end).collect();
                recorded
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&req).into_owned());
                let Some(answer) = answers.lock().unwrap().next() else {
                    return;
                };
                for p in answer.chunks(piece) {
                    if s.write_all(p).await.is_err() {
                        return;
                    }
                }
                if close {
                    return;
                }
            }
        }
    })
    .await;
    Scripted {
        addr,
        conns,
        requests,
    }
}

fn upstream(addr: std::net::SocketAddr) -> Upstream<Empty<Bytes>> {
    Upstream::new(&UpstreamConfig::new(
        Origin::parse(&format!("http://{addr}")).unwrap(),
    ))
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header("host", "legacy.internal")
        .body(Empty::new())
        .unwrap()
}

/// Sends a GET and reads the whole answer: status, body, trailers.
async fn fetch(
    up: &Upstream<Empty<Bytes>>,
    path: &str,
) -> Result<(http::response::Parts, Vec<u8>, Option<HeaderMap>), String> {
    let resp = up.send(get(path)).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.map_err(|e| e.to_string())?;
    let trailers = collected.trailers().cloned();
    Ok((parts, collected.to_bytes().to_vec(), trailers))
}

#[tokio::test]
async fn interim_answers_are_skipped_and_the_request_goes_out_as_given() {
    let s = scripted(
        vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nok".to_vec()],
        usize::MAX,
    )
    .await;
    let (parts, body, _) = fetch(&upstream(s.addr), "/p?q=1").await.unwrap();
    assert_eq!(parts.status, 201);
    assert_eq!(parts.headers["x-a"], "1");
    assert!(!parts.headers.contains_key("link"));
    assert_eq!(body, b"ok");
    assert_eq!(
        s.requests.lock().unwrap()[0],
        "GET /p?q=1 HTTP/1.1\r\nhost: legacy.internal\r\n\r\n"
    );
}

#[tokio::test]
async fn more_fields_than_fit_on_the_stack_are_read_up_to_the_limit() {
    let fields: String = (0..200).map(|i| format!("X-{i}: v{i}\r\n")).collect();
    let answer = format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 2\r\n\r\nok");
    let s = scripted(vec![answer.into_bytes()], usize::MAX).await;
    let (parts, body, _) = fetch(&upstream(s.addr), "/").await.unwrap();
    assert_eq!(parts.headers.len(), 201);
    assert_eq!(parts.headers["x-199"], "v199");
    assert_eq!(body, b"ok");
}

#[tokio::test]
async fn a_chunked_answer_with_trailers_is_read_and_its_connection_reused() {
    let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\nChecksum: abc\r\n\r\n".to_vec();
    // Written a byte at a time: every split of head, sizes and trailers is met.
    let s = scripted(vec![answer.clone(), answer], 1).await;
    let up = upstream(s.addr);
    for _ in 0..2 {
        let (parts, body, trailers) = fetch(&up, "/").await.unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(body, b"wikipedia");
        assert_eq!(trailers.unwrap()["checksum"], "abc");
    }
    assert_eq!(s.conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_answer_read_to_the_close_is_whole_and_its_connection_not_reused() {
    let (addr, conns) = serve(|mut s, _| async move {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil ").await;
        let _ = s.write_all(b"the end").await;
        // Dropped: the close ends the body.
    })
    .await;
    let up = upstream(addr);
    for _ in 0..2 {
        let (parts, body, _) = fetch(&up, "/").await.unwrap();
        assert_eq!(parts.version, Version::HTTP_10);
        assert_eq!(body, b"until the end");
    }
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_pooled_connection_closed_unanswered_is_replaced_by_a_new_one() {
    // Each connection answers one request and closes when the next one arrives, without an
    // answer: what a client sees when the upstream closes an idle connection just as the
    // request is sent.
    let (addr, conns) = serve(|mut s, _| async move {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await;
        let _ = s.read(&mut buf).await;
    })
    .await;
    let up = upstream(addr);
    for n in 1..=3 {
        assert_eq!(fetch(&up, "/").await.unwrap().1, b"ok", "request {n}");
    }
    assert_eq!(conns.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closed_does_not_keep_its_socket() {
    // The first connection answers once, then closes when told; the second stays.
    let close_first = Arc::new(tokio::sync::Notify::new());
    let told = Arc::clone(&close_first);
    let (addr, conns) = serve(move |mut s, n| {
        let told = Arc::clone(&told);
        async move {
            let mut buf = [0u8; 1024];
            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if s.write_all(ok).await.is_err() {
                    return;
                }
                if n == 0 {
                    told.notified().await;
                    return;
                }
            }
        }
    })
    .await;
    let up = upstream(addr);
    // Two answers held at once: two connections, both back in the pool once read.
    let a = up.send(get("/")).await.unwrap();
    let b = up.send(get("/")).await.unwrap();
    assert_eq!(a.into_body().collect().await.unwrap().to_bytes(), "ok");
    assert_eq!(b.into_body().collect().await.unwrap().to_bytes(), "ok");
    assert_eq!(up.idle_connections(), 2);
    close_first.notify_one();
    // Each exchange takes the warm connection and, returning it, looks at the oldest: once
    // the close has reached the reactor, the closed one is let go.
    let mut tries = 0;
    while up.idle_connections() == 2 {
        tries += 1;
        assert!(tries < 10_000, "the closed connection stayed in the pool");
        assert_eq!(fetch(&up, "/").await.unwrap().1, b"ok");
        tokio::task::yield_now().await;
    }
    assert_eq!(up.idle_connections(), 1);
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bytes_beyond_the_answer_keep_the_connection_out_of_the_pool() {
    let s = scripted(
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ],
        usize::MAX,
    )
    .await;
    let up = upstream(s.addr);
    assert_eq!(fetch(&up, "/").await.unwrap().1, b"ok");
    assert_eq!(up.idle_connections(), 0);
    assert_eq!(fetch(&up, "/").await.unwrap().1, b"ok");
    assert_eq!(s.conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn invalid_answers_are_protocol_failures() {
    let too_many: String = (0..600).map(|i| format!("X-{i}: v\r\n")).collect();
    let huge = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD));
    for answer in [
        b"SPDY/3 200 OK\r\n\r\n".to_vec(),
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nFolded: a\r\n b\r\nContent-Length: 0\r\n\r\n".to_vec(),
        format!("HTTP/1.1 200 OK\r\n{too_many}Content-Length: 0\r\n\r\n").into_bytes(),
        huge.into_bytes(),
        b"HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 1),
    ] {
        let s = scripted(vec![answer.clone()], usize::MAX).await;
        let err = match upstream(s.addr).send(get("/")).await {
            Ok(resp) => panic!("answered {}", resp.status()),
            Err(e) => e,
        };
        assert_eq!(
            err.kind(),
            FailureKind::Protocol,
            "{}: {err}",
            String::from_utf8_lossy(&answer[..answer.len().min(60)])
        );
    }
}

#[tokio::test]
async fn a_body_cut_short_fails_and_a_fresh_connection_closed_unanswered_is_not_retried() {
    let s = scripted_with(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf".to_vec()],
        usize::MAX,
        true,
    )
    .await;
    let up = upstream(s.addr);
    let err = fetch(&up, "/").await.unwrap_err();
    assert!(err.contains("before its answer ended"), "{err}");
    // The script has run out: the next connection is closed without an answer.
    let err = up.send(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Reset);
    assert_eq!(s.conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_large_body_streams_through_whole() {
    let body: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut answer =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    answer.extend_from_slice(&body);
    let s = scripted(vec![answer], 64 * 1024).await;
    let (_, got, _) = fetch(&upstream(s.addr), "/").await.unwrap();
    assert!(
        got == body,
        "the body arrived changed ({} bytes)",
        got.len()
    );
}

#[tokio::test]
async fn the_answer_deadline_holds_on_a_reused_connection_and_after_its_timer_fired_idle() {
    // Each connection answers its first two requests at once and never the third.
    let (addr, conns) = serve(|mut s, _| async move {
        let mut buf = [0u8; 1024];
        for _ in 0..2 {
            if matches!(s.read(&mut buf).await, Ok(0) | Err(_)) {
                return;
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
        while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    let mut config = UpstreamConfig::new(Origin::parse(&format!("http://{addr}")).unwrap());
    config.response_timeout = Some(std::time::Duration::from_millis(100));
    let up = Upstream::new(&config);
    assert_eq!(fetch(&up, "/").await.unwrap().1, b"ok");
    // Idle past the first exchange's deadline: the connection's timer fires in the pool, and
    // the next exchange on the connection must set it again, not find it fired.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(fetch(&up, "/").await.unwrap().1, b"ok");
    // Unanswered: the timer, moved on from the second exchange's deadline, still fires.
    let err = up.send(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Timeout);
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

/// A future that polls `inner` with a waker of its own, which holds a count of itself:
/// whatever keeps one of its wakers keeps the count up.
struct Tracked<F> {
    inner: Pin<Box<F>>,
    count: Arc<()>,
}

struct TrackedWaker {
    _count: Arc<()>,
    outer: std::task::Waker,
}

impl std::task::Wake for TrackedWaker {
    fn wake(self: Arc<Self>) {
        self.outer.wake_by_ref();
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = std::task::Waker::from(Arc::new(TrackedWaker {
            _count: Arc::clone(&self.count),
            outer: cx.waker().clone(),
        }));
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

#[tokio::test]
async fn an_idle_pooled_connection_holds_no_waker_of_the_task_that_used_it() {
    let s = scripted(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()],
        usize::MAX,
    )
    .await;
    let mut config = UpstreamConfig::new(Origin::parse(&format!("http://{}", s.addr)).unwrap());
    config.response_timeout = Some(std::time::Duration::from_secs(60));
    let up = Upstream::new(&config);
    let count = Arc::new(());
    let fetched = Tracked {
        inner: Box::pin(fetch(&up, "/")),
        count: Arc::clone(&count),
    }
    .await;
    assert_eq!(fetched.unwrap().1, b"ok");
    assert_eq!(up.idle_connections(), 1);
    // Neither the socket's registration nor the answer's timer holds a waker of the task.
    assert_eq!(Arc::strong_count(&count), 1);
}

#[tokio::test]
async fn more_fields_than_a_header_map_holds_are_refused_not_a_panic() {
    // Only a limit raised past what a map holds (32,768 fields) lets such a head be parsed.
    let fields = "a:b\r\n".repeat(33_000);
    let answer = format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 0\r\n\r\n");
    let s = scripted(vec![answer.into_bytes()], usize::MAX).await;
    let mut config = UpstreamConfig::new(Origin::parse(&format!("http://{}", s.addr)).unwrap());
    config.max_response_headers = 40_000;
    let up = Upstream::new(&config);
    let err = up.send(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Protocol, "{err}");
}
