//! `bench-bare-proxy`: a reverse proxy made of hyper's HTTP/1.1 server and hyper-util's pooled
//! client and nothing else — no routing, no header rewriting, no limits, no telemetry. It is
//! not a product: `bench/run.sh` measures it beside the facade to show what a request costs in
//! the parts the facade is built on (hyper and tokio), apart from what the facade adds.
//!
//! Usage: `bench-bare-proxy LISTEN_ADDR UPSTREAM_ADDR` (one thread, like `--workers 1`).
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use http::uri::{Authority, Scheme};
use http::{Request, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bench-bare-proxy LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let listen: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-bare-proxy: `{listen}` is not an address: {e}");
            std::process::exit(2);
        }
    };
    let authority: Authority = match upstream.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-bare-proxy: `{upstream}` is not host:port: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench-bare-proxy: no runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(serve(listen, authority)) {
        eprintln!("bench-bare-proxy: {e}");
        std::process::exit(1);
    }
}

async fn serve(listen: SocketAddr, upstream: Authority) -> std::io::Result<()> {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http::<Incoming>();
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let client = client.clone();
                let (mut parts, body) = req.into_parts();
                let mut uri = std::mem::take(&mut parts.uri).into_parts();
                uri.scheme = Some(Scheme::HTTP);
                uri.authority = Some(upstream.clone());
                let target = Uri::from_parts(uri);
                async move {
                    // A concrete error type: hyper's bound on a boxed one trips the compiler's
                    // lifetime inference inside `tokio::spawn`.
                    let answer: Result<_, std::io::Error> = match target {
                        Ok(uri) => {
                            parts.uri = uri;
                            match client.request(Request::from_parts(parts, body)).await {
                                Ok(resp) => Ok(resp),
                                Err(e) => Err(std::io::Error::other(e)),
                            }
                        }
                        Err(e) => Err(std::io::Error::other(e)),
                    };
                    answer
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
