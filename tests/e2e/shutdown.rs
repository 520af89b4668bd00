//! Graceful shutdown: stop accepting, let in-flight requests finish, then close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use tokio::sync::Notify;

use crate::harness::*;

/// An upstream whose `/slow` tells `started` when a request arrives and answers once `release`
/// is notified.
async fn held(started: Arc<Notify>, release: Arc<Notify>) -> std::net::SocketAddr {
    let app = Router::new().route(
        "/slow",
        get(move || {
            let (started, release) = (Arc::clone(&started), Arc::clone(&release));
            async move {
                started.notify_one();
                release.notified().await;
                "finished"
            }
        }),
    );
    axum_upstream(app).await.0
}

#[tokio::test]
async fn in_flight_requests_finish_and_new_connections_are_refused() {
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let up = held(Arc::clone(&started), Arc::clone(&release)).await;
    let mut f = facade(up, |c| c.shutdown_grace = Duration::from_secs(5)).await;
    let url = f.url("/slow");
    let in_flight = tokio::spawn(async move { fetch(&url).await });
    started.notified().await;
    f.stop();
    // The listener closes (a connect is refused) while the request is still in flight.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(f.addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the listener still accepts after shutdown began"
        );
        tokio::task::yield_now().await;
    }
    assert!(!in_flight.is_finished());
    release.notify_one();
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"finished"[..]));
    tokio::time::timeout(Duration::from_secs(3), &mut f.task)
        .await
        .expect("serve did not return after draining")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn grace_period_bounds_the_wait() {
    // The request never gets its answer: the grace period ends the wait.
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let up = held(Arc::clone(&started), release).await;
    let mut f = facade(up, |c| c.shutdown_grace = Duration::from_millis(300)).await;
    let url = f.url("/slow");
    let _hung = tokio::spawn(async move { fetch(&url).await });
    started.notified().await;
    let stopped_at = Instant::now();
    f.stop();
    tokio::time::timeout(Duration::from_secs(3), &mut f.task)
        .await
        .expect("serve ignored the grace period")
        .unwrap()
        .unwrap();
    assert!(stopped_at.elapsed() >= Duration::from_millis(250));
}

/// A keep-alive connection that has sent part of its next head when shutdown begins is closed
/// then, not held until its head timer or the grace period ends (hyper's server closes such a
/// connection the same way; the facade's own HTTP/1.1 reader served its first request).
#[tokio::test]
async fn a_connection_with_half_a_head_is_closed_at_shutdown() {
    use tokio::io::AsyncWriteExt;
    let up = named("legacy").await;
    let mut f = facade(up, |c| {
        c.shutdown_grace = Duration::from_secs(60);
        c.limits.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut s, b"legacy").await;
    s.write_all(b"GET /next HTTP/1.1\r\nHo").await.unwrap();
    f.stop();
    assert!(
        closed_within(&mut s, Duration::from_secs(10)).await,
        "held open after shutdown began"
    );
    tokio::time::timeout(Duration::from_secs(10), &mut f.task)
        .await
        .expect("serve waited for a head that was never finished")
        .unwrap()
        .unwrap();
}

/// A connection accepted just before shutdown began, with no request yet, may carry a request
/// already on its way: its first request is answered, with `Connection: close`, and the
/// connection is then closed (the driver no longer ticks for the facade's own HTTP/1.1 reader;
/// the answer's `Connection: close` ends such a connection).
#[tokio::test]
async fn a_connection_accepted_before_shutdown_has_its_first_request_answered_then_closed() {
    use tokio::io::AsyncWriteExt;
    let up = named("legacy").await;
    let mut f = facade(up, |c| {
        c.shutdown_grace = Duration::from_secs(60);
        c.limits.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    let accepted = Instant::now();
    while !f.metrics().contains("strangler_connections_total 1\n") {
        assert!(
            accepted.elapsed() < Duration::from_secs(10),
            "never accepted"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f.stop();
    // The request may reach the facade after shutdown began; it is still answered.
    s.write_all(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let head = String::from_utf8_lossy(&read_until(&mut s, b"legacy").await).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        closed_within(&mut s, Duration::from_secs(10)).await,
        "held open after its request was served"
    );
    tokio::time::timeout(Duration::from_secs(10), &mut f.task)
        .await
        .expect("serve did not end after the last connection closed")
        .unwrap()
        .unwrap();
}
