//! Graceful shutdown: stop accepting, let in-flight requests finish, then close.

use std::time::Duration;

use axum::routing::get;
use axum::Router;

use crate::harness::*;

#[tokio::test]
async fn in_flight_requests_finish_and_new_connections_are_refused() {
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            "finished"
        }),
    );
    let (up, _) = axum_upstream(app).await;
    let mut f = facade(up, |c| c.shutdown_grace = Duration::from_secs(5)).await;
    let url = f.url("/slow");
    let in_flight = tokio::spawn(async move { fetch(&url).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    f.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(f.addr).await.is_err(),
        "the listener still accepts after shutdown began"
    );
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
    let app = Router::new().route(
        "/hang",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "never"
        }),
    );
    let (up, _) = axum_upstream(app).await;
    let mut f = facade(up, |c| c.shutdown_grace = Duration::from_millis(300)).await;
    let url = f.url("/hang");
    let _hung = tokio::spawn(async move { fetch(&url).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    f.stop();
    tokio::time::timeout(Duration::from_secs(3), &mut f.task)
        .await
        .expect("serve ignored the grace period")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
}
