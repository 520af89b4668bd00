//! The admin listener's own server loop, apart from the public one: operators reach it
//! through a separate port, and it must stay reachable (and harmless) whatever arrives there.
//!
//! - a cap on connections, so that idle admin sockets cannot use up the process's file
//!   descriptors and starve the public listener;
//! - a timer from the accept: a connection without a complete request head within
//!   `header_read_timeout` is closed (idle keep-alive ones too, by hyper's head timer);
//! - tower-http's layers made for the rest: a time limit per request, a request body limit,
//!   credentials kept out of traces (sensitive headers), panics answered as 500 instead of
//!   killing the connection's task, and tower's concurrency limit across all requests.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// The admin listener's limits.
#[derive(Debug, Clone)]
pub struct AdminLimits {
    /// Open connections at most; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Requests handled at once at most; further ones wait (within `request_timeout`).
    pub max_concurrent: usize,
    /// The first request head must be complete this long after the accept (and each later
    /// head this long after the previous answer).
    pub header_read_timeout: Duration,
    /// One request, from its head to its answer.
    pub request_timeout: Duration,
    /// Largest request body.
    pub max_body_bytes: usize,
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_concurrent: 64,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 4 << 20,
        }
    }
}

/// The router with the admin listener's protective layers around it.
pub fn protected(app: Router, limits: &AdminLimits) -> Router {
    use tower_http::catch_panic::CatchPanicLayer;
    use tower_http::limit::RequestBodyLimitLayer;
    use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
    use tower_http::timeout::TimeoutLayer;
    // Layers run outside in: the last added sees the request first.
    app.layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.max_concurrent.max(1),
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(panicked))
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("an admin request handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/problem+json")],
        serde_json::json!({
            "type": "urn:strangler:problem:internal",
            "title": "The admin listener failed to answer",
            "status": 500,
            "detail": "the request failed inside Strangler; the log has the details",
        })
        .to_string(),
    )
        .into_response()
}

/// Serves `app` (already [`protected`]) on `listener` until `shutdown` resolves, then lets
/// requests in flight finish (at most `request_timeout`).
pub async fn serve_app(
    listener: TcpListener,
    app: Router,
    limits: AdminLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (tracker_tx, mut tracker_rx) = tokio::sync::mpsc::channel::<Infallible>(1);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&connections).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let builder = Arc::clone(&builder);
        let mut stop = stop_rx.clone();
        let tracker = tracker_tx.clone();
        let first_head = limits.header_read_timeout;
        tokio::spawn(async move {
            let started = Arc::new(AtomicBool::new(false));
            let service = {
                let started = Arc::clone(&started);
                hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    started.store(true, Ordering::Relaxed);
                    app.clone().oneshot(req.map(Body::new))
                })
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let deadline = tokio::time::sleep(first_head);
            tokio::pin!(deadline);
            let mut waiting_first = true;
            let mut finishing = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "admin connection ended with an error");
                        }
                        break;
                    }
                    () = &mut deadline, if waiting_first => {
                        waiting_first = false;
                        if !started.load(Ordering::Relaxed) {
                            tracing::debug!(%peer, "admin connection sent no request head in time; closing");
                            break;
                        }
                    }
                    _ = stop.wait_for(|s| *s), if !finishing => {
                        finishing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(permit);
            drop(tracker);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(tracker_tx);
    let _ = tokio::time::timeout(limits.request_timeout, tracker_rx.recv()).await;
    Ok(())
}
