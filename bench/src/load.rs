//! A constant-rate (open-loop) HTTP/1.1 load generator for the shadow-cost run: wrk keeps a
//! fixed number of requests in flight, so it measures saturation; this sends at a fixed rate
//! whatever the answers' speed, and times each request from when it was due, so a stall shows
//! in the percentiles instead of lowering the rate (no coordinated omission).
//!
//!     bench-load URL RATE SECONDS CONNECTIONS [POST_BYTES]
//!
//! With `POST_BYTES`, each request is a POST of a JSON body of about that size (a write).
//!
//! Prints one line: `sent=N errors=N rps=R p50_ms=X p99_ms=Y`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

fn arg<T: std::str::FromStr>(n: usize, what: &str) -> Result<T, String> {
    std::env::args()
        .nth(n)
        .ok_or_else(|| format!("missing {what}; usage: bench-load URL RATE SECONDS CONNECTIONS"))?
        .parse()
        .map_err(|_| format!("{what} is not a number"))
}

/// One connection's share: requests due every `every`, from `start`, for `count` requests.
async fn connection(
    uri: http::Uri,
    start: Instant,
    every: Duration,
    count: u64,
    post: Option<Bytes>,
) -> Result<(Vec<u32>, u64), String> {
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or("URL has no host")?;
    let stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    // The request target in origin form (`/path?query`), as a client sends it to an origin
    // server; hyper's client sends the URI as given, and an absolute-form target is one the
    // facade's own HTTP/1.1 reader leaves to hyper's server, so the load would measure that
    // path instead of the one real clients take.
    let target: http::Uri = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| "URL has no valid path".to_owned())?;
    let mut micros = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut errors = 0;
    for i in 0..count {
        let due = start + every * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due.into()).await;
        let req = match &post {
            None => http::Request::get(target.clone())
                .header(http::header::HOST, authority.as_str())
                .body(Full::new(Bytes::new())),
            Some(body) => http::Request::post(target.clone())
                .header(http::header::HOST, authority.as_str())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone())),
        }
        .map_err(|e| e.to_string())?;
        let ok = match send.send_request(req).await {
            Ok(resp) => resp.status().is_success() && resp.into_body().collect().await.is_ok(),
            Err(_) => false,
        };
        if ok {
            micros.push(u32::try_from(due.elapsed().as_micros()).unwrap_or(u32::MAX));
        } else {
            errors += 1;
        }
    }
    Ok((micros, errors))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let uri: http::Uri = arg::<String>(1, "URL")?
        .parse()
        .map_err(|_| "URL is not a URL".to_owned())?;
    let rate: f64 = arg(2, "RATE")?;
    let seconds: f64 = arg(3, "SECONDS")?;
    let connections: u32 = arg(4, "CONNECTIONS")?;
    if rate <= 0.0 || seconds <= 0.0 || connections == 0 {
        return Err("RATE, SECONDS and CONNECTIONS must be positive".into());
    }
    let post = match std::env::args().nth(5) {
        None => None,
        Some(n) => {
            let n: usize = n.parse().map_err(|_| "POST_BYTES is not a number")?;
            Some(Bytes::from(format!(
                "{{\"note\":\"{}\"}}",
                "x".repeat(n.saturating_sub(11))
            )))
        }
    };
    let per_connection = rate / f64::from(connections);
    let every = Duration::from_secs_f64(1.0 / per_connection);
    let count = (per_connection * seconds) as u64;
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for c in 0..connections {
        // Spread the connections' schedules over one interval.
        let offset = every.mul_f64(f64::from(c) / f64::from(connections));
        tasks.push(tokio::spawn(connection(
            uri.clone(),
            start + offset,
            every,
            count,
            post.clone(),
        )));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (micros, e) = t.await.map_err(|e| e.to_string())??;
        all.extend(micros);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        all.get(i).map_or(0.0, |m| f64::from(*m) / 1000.0)
    };
    println!(
        "sent={} errors={errors} rps={:.0} p50_ms={:.3} p99_ms={:.3}",
        all.len() as u64 + errors,
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
