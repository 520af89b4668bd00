//! The public listener: accepts connections, serves HTTP/1.1 and h2c (prior knowledge) on
//! them, and drains them on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::framing::Guarded;
use crate::proxy::Facade;

/// Serves `facade` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish for up to the configured grace period.
pub async fn serve(
    listener: TcpListener,
    facade: Facade,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = facade.config().limits.clone();
    let grace = facade.config().shutdown_grace;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        // Room for the configured head size plus slack, so that heads a little over the
        // limit still reach our own check and get a problem+json 431.
        .max_buf_size((limits.max_header_bytes * 2).max(16 * 1024));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);

    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let telemetry = Arc::clone(facade.telemetry());
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let ambiguous = Arc::new(AtomicBool::new(false));
        let info = Arc::new(facade.conn_info(peer, Arc::clone(&ambiguous)));
        let facade = facade.clone();
        let service = service_fn(move |req| {
            let facade = facade.clone();
            let info = Arc::clone(&info);
            async move { Ok::<_, Infallible>(facade.handle(req, &info).await) }
        });
        let io = TokioIo::new(Guarded::new(stream, ambiguous));
        let conn = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let conn = graceful.watch(conn);
        let telemetry = Arc::clone(&telemetry);
        telemetry.connection_opened();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
            }
            telemetry.connection_closed();
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down: draining connections"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing the rest"),
    }
    Ok(())
}
