//! A sample legacy monolith — a small shop — for `strangler demo` and for tests.
//!
//! It has the habits of old apps on purpose: camelCase JSON, money as decimal strings, statuses
//! as single letters, its own error envelope, and redirects that name its own origin in full.
//! The state lives in memory for now; the demo issue moves it to SQLite and adds the extracted
//! `orders` service.
#![forbid(unsafe_code)]

mod shop;

pub use shop::{legacy_shop, Shop};

/// Serves the legacy shop on `listener` until `shutdown` resolves.
pub async fn serve_legacy(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let origin = format!("http://{}", listener.local_addr()?);
    axum::serve(listener, legacy_shop(Shop::sample(origin)))
        .with_graceful_shutdown(shutdown)
        .await
}
