//! Bodies stream both ways: the upstream sees the first bytes of an upload before the client
//! has sent the rest, and the client sees the first bytes of a download before the upstream has
//! produced the rest. Nothing is held whole in the facade.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::{mpsc, Notify};

use crate::harness::*;

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn upload_streams_to_the_upstream() {
    let first_seen = Arc::new(Notify::new());
    let seen = Arc::clone(&first_seen);
    let app = Router::new().route(
        "/sink",
        post(move |req: axum::extract::Request| {
            let seen = Arc::clone(&seen);
            async move {
                let mut body = req.into_body();
                let mut total = 0usize;
                let mut first = true;
                while let Some(frame) = body.frame().await {
                    if let Some(d) = frame.unwrap().data_ref() {
                        total += d.len();
                        if first {
                            first = false;
                            seen.notify_one();
                        }
                    }
                }
                total.to_string()
            }
        }),
    );
    let (up, _) = axum_upstream(app).await;
    let f = facade(up, |_| {}).await;

    let (tx, rx) = mpsc::channel::<Result<http_body::Frame<Bytes>, std::convert::Infallible>>(4);
    let body = StreamBody::new(tokio_stream_from(rx));
    let req = http::Request::post(f.url("/sink")).body(body).unwrap();
    let client: hyper_util::client::legacy::Client<_, StreamBody<_>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let call = tokio::spawn(async move { client.request(req).await });

    tx.send(Ok(http_body::Frame::data(Bytes::from(vec![1u8; 1024]))))
        .await
        .unwrap();
    // The upstream must see this first chunk while the client still holds the rest.
    tokio::time::timeout(Duration::from_secs(5), first_seen.notified())
        .await
        .expect("the first chunk did not reach the upstream: the facade buffers uploads");
    // Then 32 MiB more, a chunk at a time.
    let chunk = Bytes::from(vec![7u8; MIB]);
    for _ in 0..32 {
        tx.send(Ok(http_body::Frame::data(chunk.clone())))
            .await
            .unwrap();
    }
    drop(tx);
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, (1024 + 32 * MIB).to_string());
}

#[tokio::test]
async fn download_streams_to_the_client() {
    let release = Arc::new(Notify::new());
    let gate = Arc::clone(&release);
    let app = Router::new().route(
        "/big",
        get(move || {
            let gate = Arc::clone(&gate);
            async move {
                let stream = async_stream(gate);
                axum::body::Body::from_stream(stream)
            }
        }),
    );
    let (up, _) = axum_upstream(app).await;
    let f = facade(up, |_| {}).await;
    let req = http::Request::get(f.url("/big"))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first chunk did not reach the client: the facade buffers downloads")
        .unwrap()
        .unwrap();
    assert_eq!(first.data_ref().unwrap().len(), 1024);
    release.notify_one();
    let mut total = 1024;
    while let Some(frame) = body.frame().await {
        total += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(total, 1024 + 32 * MIB);
}

/// A small answer of unknown length that the upstream sends at once (chunked) reaches the
/// client whole, with its length, as nginx sends it; one that keeps coming is streamed (above).
#[tokio::test]
async fn a_small_chunked_answer_is_sent_whole_with_its_length() {
    let app = Router::new().route(
        "/page",
        get(|| async {
            let parts = ["<html>", "hello, ", "world!", "</html>"]
                .map(|p| Ok::<_, std::io::Error>(Bytes::from(p)));
            axum::body::Body::from_stream(futures_util::stream::iter(parts))
        }),
    );
    let (up, _) = axum_upstream(app).await;
    let f = facade(up, |_| {}).await;
    for _ in 0..3 {
        let req = http::Request::get(f.url("/page"))
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let resp = client().request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()
                .get("content-length")
                .map(|v| v.to_str().unwrap()),
            Some("26"),
            "{:?}",
            resp.headers()
        );
        assert!(!resp.headers().contains_key("transfer-encoding"));
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "<html>hello, world!</html>".as_bytes());
    }
}

/// 1 KiB, then (once `gate` is notified) 32 chunks of 1 MiB.
fn async_stream(
    gate: Arc<Notify>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let first = futures_util::stream::once(async { Ok(Bytes::from(vec![0u8; 1024])) });
    let rest = futures_util::stream::once(async move {
        gate.notified().await;
    })
    .flat_map(|()| futures_util::stream::iter((0..32).map(|_| Ok(Bytes::from(vec![1u8; MIB])))));
    first.chain(rest)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A write the route mirrors, with a body that cannot be redacted (so it is never stored): its
/// answer is not held back until the client's whole body has arrived. (A bidirectional gRPC
/// stream, which waits for answers before it sends more, hung until its deadline before.)
#[tokio::test]
async fn a_streaming_write_that_cannot_be_mirrored_is_answered_while_it_streams() {
    // Legacy answers each chunk as it comes: the answer streams while the request does.
    let app = Router::new().route(
        "/feed/{id}",
        post(|req: axum::extract::Request| async move {
            let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(4);
            tokio::spawn(async move {
                let mut body = req.into_body();
                while let Some(Ok(frame)) = body.frame().await {
                    if let Some(d) = frame.data_ref() {
                        let _ = tx.send(Ok(Bytes::from(format!("got {}\n", d.len())))).await;
                    }
                }
            });
            axum::body::Body::from_stream(tokio_stream_from(rx))
        }),
    );
    let (legacy, _) = axum_upstream(app).await;
    let new = named("new").await;
    let dir = Scratch::new("unmirrorable");
    let catalog_url = format!("sqlite://{}", dir.path.join("catalog.db").display());
    let (s, _admin) = crate::shadow::shadowed(
        legacy,
        new,
        &catalog_url,
        serde_json::json!({}),
        serde_json::json!({ "methods": ["POST"], "path": "/feed/{id}", "shadow": { "writes": "mirror" } }),
    )
    .await;

    let (tx, rx) = mpsc::channel::<Result<http_body::Frame<Bytes>, std::convert::Infallible>>(4);
    let req = http::Request::post(format!("http://{}/feed/1", s.listen))
        .header("content-type", "application/octet-stream")
        .body(StreamBody::new(tokio_stream_from(rx)))
        .unwrap();
    let client: hyper_util::client::legacy::Client<_, StreamBody<_>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let call = tokio::spawn(async move { client.request(req).await });
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"hello"))))
        .await
        .unwrap();
    // The answer's head and first line arrive while the client still holds its body open.
    let resp = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the answer waited for the whole request body")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("no first answer line")
        .unwrap()
        .unwrap();
    assert_eq!(first.data_ref().map(|d| &d[..]), Some(&b"got 5\n"[..]));
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"more"))))
        .await
        .unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"got 4\n");
    // Counted as a write that could not be mirrored.
    let (_, _, m) = fetch(&format!("http://{}/metrics", s.admin)).await;
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.lines()
            .any(|l| l.starts_with("strangler_shadow_skipped_total{")
                && l.contains("reason=\"unredactable\"")
                && !l.ends_with(" 0")),
        "{m}"
    );
    s.stop().await;
}
