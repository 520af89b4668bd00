//! `bench-upstream`: the upstream of the load benchmarks. A minimal hyper HTTP/1.1 server so
//! that the benchmark measures the proxies, not the app behind them.
//!
//! - `GET /bytes?n=N` streams N bytes (64 KiB chunks), for the large-download memory check;
//! - `POST /sink` reads the whole body without keeping it and answers the byte count;
//! - `GET /stats` answers how many requests it has served (itself not counted);
//! - `GET /hot` answers after 1 ms (a hot key for the request-collapsing run);
//! - anything else answers a 13-byte `hello, world!`.
//!
//! Usage: `bench-upstream 127.0.0.1:18000`.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const CHUNK: usize = 64 * 1024;

/// N bytes of zeros, a chunk at a time, with an exact length.
struct Zeros {
    left: u64,
    chunk: Bytes,
}

enum Out {
    Full(Option<Bytes>),
    Zeros(Zeros),
    /// Frames of unknown total length: hyper sends them chunked, as many dynamic pages are.
    Chunks(Vec<Bytes>),
}

impl Body for Out {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Out::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Out::Chunks(c) => Poll::Ready((!c.is_empty()).then(|| Ok(Frame::data(c.remove(0))))),
            Out::Zeros(z) => {
                if z.left == 0 {
                    return Poll::Ready(None);
                }
                let n = z.left.min(CHUNK as u64) as usize;
                z.left -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(z.chunk.slice(..n)))))
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Out::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Out::Full(None) => SizeHint::with_exact(0),
            Out::Zeros(z) => SizeHint::with_exact(z.left),
            Out::Chunks(_) => SizeHint::default(),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Out::Full(b) => b.is_none(),
            Out::Zeros(z) => z.left == 0,
            Out::Chunks(c) => c.is_empty(),
        }
    }
}

static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Connections accepted, for `/conns`: a proxy that reuses its upstream connections opens few.
static ACCEPTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

async fn handle(req: Request<Incoming>) -> Result<Response<Out>, Infallible> {
    if req.uri().path() == "/stats" {
        let n = SERVED.load(std::sync::atomic::Ordering::Relaxed);
        return Ok(Response::new(Out::Full(Some(Bytes::from(n.to_string())))));
    }
    if req.uri().path() == "/conns" {
        let n = ACCEPTED.load(std::sync::atomic::Ordering::Relaxed);
        return Ok(Response::new(Out::Full(Some(Bytes::from(n.to_string())))));
    }
    SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match req.uri().path() {
        "/chunked" => Ok(Response::new(Out::Chunks(vec![
            Bytes::from_static(b"hello, "),
            Bytes::from_static(b"world!"),
        ]))),
        "/hot" => {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            Ok(Response::new(Out::Full(Some(Bytes::from_static(b"hot")))))
        }
        "/bytes" => {
            let n = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("n="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Ok(Response::new(Out::Zeros(Zeros {
                left: n,
                chunk: Bytes::from(vec![0u8; CHUNK]),
            })))
        }
        // The request body back (bodies up to 1 MiB: the bench sends 16 KiB).
        "/echo" => {
            let limited = http_body_util::Limited::new(req.into_body(), 1 << 20);
            let body = match http_body_util::BodyExt::collect(limited).await {
                Ok(c) => c.to_bytes(),
                Err(_) => Bytes::new(),
            };
            Ok(Response::new(Out::Full(Some(body))))
        }
        "/sink" => {
            let mut body = req.into_body();
            let mut total: u64 = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => total += f.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => break,
                }
            }
            Ok(Response::new(Out::Full(Some(Bytes::from(
                total.to_string(),
            )))))
        }
        _ => Ok(Response::new(Out::Full(Some(Bytes::from_static(
            b"hello, world!",
        ))))),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18000".to_owned())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        ACCEPTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
