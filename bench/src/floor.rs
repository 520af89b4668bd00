//! `bench-floor-proxy`: the least a keep-alive HTTP/1.1 reverse proxy on tokio can do per
//! request — parse the client's head (httparse), write it to an upstream connection the client
//! connection's own task holds, parse the answer's head, copy a `Content-Length` body, one write
//! each way. No hyper, no routing, no header edits, no limits, no timers. It is not a product
//! and refuses what it does not handle (chunked, upgrades, pipelining past one buffer);
//! `bench/run.sh` measures it beside the facade and nginx to show the floor of the design the
//! facade is built on (a tokio task per connection, httparse), apart from hyper and the facade.
//!
//! Usage: `bench-floor-proxy LISTEN_ADDR UPSTREAM_ADDR` (one thread, like `--workers 1`).
#![forbid(unsafe_code)]

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HEADERS: usize = 64;
const BUF: usize = 16 * 1024;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bench-floor-proxy LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let (listen, upstream): (SocketAddr, SocketAddr) = match (listen.parse(), upstream.parse()) {
        (Ok(l), Ok(u)) => (l, u),
        _ => {
            eprintln!("bench-floor-proxy: both arguments are ip:port");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench-floor-proxy: no runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(serve(listen, upstream)) {
        eprintln!("bench-floor-proxy: {e}");
        std::process::exit(1);
    }
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = client(stream, upstream).await;
        });
    }
}

/// Where a head ends and how long the body after it is.
fn head(buf: &[u8], request: bool) -> io::Result<Option<(usize, usize)>> {
    let mut fields = [httparse::EMPTY_HEADER; HEADERS];
    let status = if request {
        httparse::Request::new(&mut fields).parse(buf)
    } else {
        httparse::Response::new(&mut fields).parse(buf)
    };
    let end = match status.map_err(io::Error::other)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let mut length = 0;
    for f in &fields {
        if f.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(io::Error::other("chunked is not handled"));
        }
        if f.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(f.value)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| io::Error::other("bad length"))?;
        }
    }
    Ok(Some((end, length)))
}

/// Reads into `buf` until it holds a head and its body; returns the message's length.
async fn message(s: &mut TcpStream, buf: &mut Vec<u8>, request: bool) -> io::Result<usize> {
    loop {
        if let Some((end, length)) = head(buf, request)? {
            let total = end + length;
            while buf.len() < total {
                read(s, buf).await?;
            }
            return Ok(total);
        }
        read(s, buf).await?;
    }
}

async fn read(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(BUF);
    }
    if s.read_buf(buf).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

async fn client(mut c: TcpStream, upstream: SocketAddr) -> io::Result<()> {
    let mut u: Option<TcpStream> = None;
    let mut cbuf = Vec::with_capacity(BUF);
    let mut ubuf = Vec::with_capacity(BUF);
    loop {
        let n = message(&mut c, &mut cbuf, true).await?;
        let up = match &mut u {
            Some(up) => up,
            None => {
                let s = TcpStream::connect(upstream).await?;
                let _ = s.set_nodelay(true);
                u.insert(s)
            }
        };
        up.write_all(&cbuf[..n]).await?;
        cbuf.drain(..n);
        let m = message(up, &mut ubuf, false).await?;
        c.write_all(&ubuf[..m]).await?;
        ubuf.drain(..m);
    }
}
