//! HTTP/1 framing both ways: the smuggling guard looks at heads only, an upstream that frames
//! its answer twice is read by Transfer-Encoding and not reused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::*;

/// Reads one HTTP/1 response with a Content-Length body from `stream`.
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("no answer")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed mid-head: {}",
            String::from_utf8_lossy(&buf)
        );
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
    let (status, _, _) = parse_raw(&head);
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// An echo upstream: answers each request with its body.
async fn echo() -> std::net::SocketAddr {
    use axum::routing::any;
    axum_upstream(axum::Router::new().fallback(any(|body: axum::body::Bytes| async move { body })))
        .await
        .0
}

/// A body that holds a smuggling head is data: it reaches the upstream byte for byte and the
/// next request on the connection is served, whether the body arrives with the head or in a
/// later read, by length or chunked.
#[tokio::test]
async fn a_smuggling_shape_inside_a_body_is_data() {
    let up = echo().await;
    let f = facade(up, |_| {}).await;
    let payload = "a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nb";
    for (chunked, split) in [(false, false), (false, true), (true, false), (true, true)] {
        let mut stream = TcpStream::connect(f.addr).await.unwrap();
        let (head, body) = if chunked {
            (
                "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
                format!("{:x}\r\n{payload}\r\n0\r\n\r\n", payload.len()),
            )
        } else {
            (
                format!(
                    "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
                    payload.len()
                ),
                payload.to_owned(),
            )
        };
        if split {
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
            stream.write_all(body.as_bytes()).await.unwrap();
        } else {
            stream
                .write_all(format!("{head}{body}").as_bytes())
                .await
                .unwrap();
        }
        let (status, head, body) = read_response(&mut stream).await;
        assert_eq!(status, 200, "chunked={chunked} split={split}: {head}{body}");
        assert_eq!(body, payload);
        // The next request on the same connection is not blamed for the body.
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok")
            .await
            .unwrap();
        let (status, head, body) = read_response(&mut stream).await;
        assert_eq!(status, 200, "chunked={chunked} split={split}: {head}");
        assert_eq!(body, "ok");
    }
}

/// Pipelined: a good request and an ambiguous one in one write. The first is served, the
/// second refused, and the connection closed after it.
#[tokio::test]
async fn the_ambiguous_request_is_refused_not_the_one_before_it() {
    let up = echo().await;
    let f = facade(up, |_| {}).await;
    let mut stream = TcpStream::connect(f.addr).await.unwrap();
    stream
        .write_all(
            b"POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\none\
              POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\ntwo",
        )
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut stream).await;
    assert_eq!((status, body.as_str()), (200, "one"));
    let (status, head, _) = read_response(&mut stream).await;
    assert_eq!(status, 400, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the connection stays open after a smuggling attempt")
        .unwrap_or(0);
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&rest));
}

/// The same after two `GET`s the facade's own HTTP/1.1 reader served: the connection is handed
/// to hyper's server at the ambiguous head, and the framing guard, which starts there, names
/// that head (not the one two requests later). Both smuggling shapes.
#[tokio::test]
async fn the_ambiguous_request_after_own_served_gets_is_refused() {
    let up = echo().await;
    let f = facade(up, |_| {}).await;
    for shape in [
        &b"Content-Length: 3\r\nContent-Length: 3\r\n"[..],
        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let mut stream = TcpStream::connect(f.addr).await.unwrap();
        let mut req = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n\
                        POST /3 HTTP/1.1\r\nHost: h\r\n"
            .to_vec();
        req.extend_from_slice(shape);
        req.extend_from_slice(b"\r\n3\r\ntwo\r\n0\r\n\r\n");
        stream.write_all(&req).await.unwrap();
        for _ in 0..2 {
            let (status, head, _) = read_response(&mut stream).await;
            assert_eq!(status, 200, "{head}");
        }
        let (status, head, _) = read_response(&mut stream).await;
        assert_eq!(status, 400, "{head}");
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .expect("the connection stays open after a smuggling attempt")
            .unwrap_or(0);
        assert_eq!(n, 0, "{}", String::from_utf8_lossy(&rest));
    }
}

/// An upstream that answers with both `Content-Length` and `Transfer-Encoding: chunked`: the
/// chunked body arrives whole without the wrong length, and that upstream connection is not
/// used again.
#[tokio::test]
async fn an_upstream_answer_framed_twice_is_read_by_its_chunks_and_its_connection_dropped() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    {
        let connections = Arc::clone(&connections);
        let heads = Arc::clone(&heads);
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let heads = Arc::clone(&heads);
                tokio::spawn(async move {
                    loop {
                        let head = read_head(&mut s).await;
                        if head.is_empty() {
                            return;
                        }
                        heads.lock().unwrap().push(head);
                        // 5 bytes declared, 26 sent in chunks: a client that believed the
                        // length would cut the body and read the rest as the next answer.
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
                                       d\r\nabcdefghijklm\r\nd\r\nnopqrstuvwxyz\r\n0\r\n\r\n";
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    let f = facade(addr, |_| {}).await;
    for _ in 0..3 {
        let (status, headers, body) = fetch(&f.url("/twice")).await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"abcdefghijklmnopqrstuvwxyz");
        assert_ne!(
            headers.get("content-length").map(|v| v.to_str().unwrap()),
            Some("5"),
            "the wrong length travelled on"
        );
    }
    assert_eq!(heads.lock().unwrap().len(), 3);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        3,
        "an upstream connection with ambiguous framing was reused"
    );
}
