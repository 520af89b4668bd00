//! The demo: a sample legacy monolith (a small shop), the `orders` service extracted from it,
//! and simulated shoppers — for `strangler demo` and for tests.
#![forbid(unsafe_code)]

pub mod data;
pub mod orders;
pub mod shop;
pub mod traffic;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

pub use orders::{orders_service, Orders};
pub use shop::{legacy_shop, Shop};

/// Opens (creating it) an SQLite database file for one of the demo's apps.
pub async fn open_db(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
}

/// Serves the legacy shop on `listener` until `shutdown` resolves.
pub async fn serve_legacy(
    listener: tokio::net::TcpListener,
    db: SqlitePool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let origin = format!("http://{}", listener.local_addr()?);
    let shop = Shop::open(db, origin)
        .await
        .map_err(|e| std::io::Error::other(format!("the shop's database: {e}")))?;
    axum::serve(listener, legacy_shop(Arc::new(shop)))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the orders service on `listener` until `shutdown` resolves.
pub async fn serve_orders(
    listener: tokio::net::TcpListener,
    db: SqlitePool,
    fixed: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let origin = format!("http://{}", listener.local_addr()?);
    let svc = Orders::open(db, origin, fixed)
        .await
        .map_err(|e| std::io::Error::other(format!("the orders service's database: {e}")))?;
    axum::serve(listener, orders_service(Arc::new(svc)))
        .with_graceful_shutdown(shutdown)
        .await
}
