//! Malformed and ambiguous requests: a clear 4xx, the connection closed where HTTP requires
//! it, and nothing forwarded to the legacy app.

use std::time::Duration;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(5);

async fn refused(request: &[u8], expect: u16) -> String {
    let up = RawUpstream::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let f = facade(up.addr, |c| c.limits.max_headers = 64).await;
    let (resp, closed) = raw(f.addr, request, WAIT).await;
    let (status, _, _) = parse_raw(&resp);
    assert_eq!(
        status,
        expect,
        "{:?} → {resp}",
        String::from_utf8_lossy(request)
    );
    assert!(closed, "connection left open after {expect}");
    assert_eq!(up.count(), 0, "a bad request reached the legacy app");
    resp
}

#[tokio::test]
async fn malformed_request_line() {
    refused(b"GET\r\n\r\n", 400).await;
    refused(b"GET / HTTP/9.9\r\nHost: h\r\n\r\n", 400).await;
    refused(b"G@T / HTTP/1.1\r\nHost: h\r\n\r\n", 400).await;
}

#[tokio::test]
async fn invalid_uri() {
    refused(b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400).await;
    refused(b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400).await;
}

#[tokio::test]
async fn content_length_with_transfer_encoding() {
    let resp = refused(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
    assert!(resp.contains("application/problem+json"), "{resp}");
    refused(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn duplicate_content_length() {
    refused(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        400,
    )
    .await;
    refused(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    )
    .await;
}

#[tokio::test]
async fn transfer_encoding_that_is_not_chunked() {
    refused(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
    )
    .await;
}

/// A transfer coding the facade does not decode is refused before anything is sent upstream
/// (hyper would decode the chunks and leave the gzip, so the upstream would get a body its
/// framing no longer describes).
#[tokio::test]
async fn transfer_codings_other_than_chunked_alone_are_not_implemented() {
    for te in ["gzip, chunked", "chunked, chunked", "deflate,chunked"] {
        let req = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let resp = refused(req.as_bytes(), 501).await;
        assert!(resp.contains("application/problem+json"), "{resp}");
    }
}

#[tokio::test]
async fn header_flood() {
    let mut req = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..500 {
        req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    refused(&req, 431).await;
}

#[tokio::test]
async fn connect_method() {
    let resp = refused(
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        405,
    )
    .await;
    assert!(resp.contains("reverse proxy"), "{resp}");
}

#[tokio::test]
async fn good_request_after_bad_input_on_another_connection_still_works() {
    let up = RawUpstream::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let f = facade(up.addr, |_| {}).await;
    raw(
        f.addr,
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
        WAIT,
    )
    .await;
    let (resp, _) = raw(
        f.addr,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(parse_raw(&resp).0, 200, "{resp}");
    assert_eq!(up.count(), 1);
}
