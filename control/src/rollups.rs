//! The facade's rollups into the store, and the store's retention: every replica flushes its
//! per-minute traffic, route traffic and shadow results (which add up across replicas), and
//! deletes what is older than the retention once an hour.

use std::sync::Arc;
use std::time::Duration;

use strangler_facade::Telemetry;
use strangler_store::{Retention, ShadowRollups, TrafficRollups};

use strangler_catalog::clock;

/// Route counts are kept per hour and per day in the store: a replica with many busy routes
/// writes them at most this often rather than on every flush, so that the catalog's write load
/// does not grow with routes × flush rate. A few rows go with every flush.
pub const ROUTES_EVERY: Duration = Duration::from_secs(60);
/// Route rows that go with every flush regardless.
pub const ROUTE_ROWS_ALWAYS: usize = 32;

/// Flushes the rollups every `every`. A failed flush is kept for the next one.
pub async fn flush_every(
    telemetry: Arc<Telemetry>,
    store: impl TrafficRollups + ShadowRollups,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    let mut routes_due = tokio::time::Instant::now() + ROUTES_EVERY;
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        let routes = if now >= routes_due {
            routes_due = now + ROUTES_EVERY;
            Routes::All
        } else {
            Routes::IfFew
        };
        flush_some(&telemetry, &store, routes).await;
    }
}

/// Which route counts a flush writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routes {
    All,
    /// Only if there are at most [`ROUTE_ROWS_ALWAYS`] of them.
    IfFew,
}

/// Flushes what the facade counted since the last flush; what the store refuses goes back to
/// the facade, so an outage loses nothing.
pub async fn flush(telemetry: &Telemetry, store: &(impl TrafficRollups + ShadowRollups)) {
    flush_some(telemetry, store, Routes::All).await;
}

async fn flush_some(
    telemetry: &Telemetry,
    store: &(impl TrafficRollups + ShadowRollups),
    routes: Routes,
) {
    let traffic = telemetry.take_traffic();
    if let Err(e) = store.add_traffic(&traffic).await {
        tracing::warn!(error = %e, "traffic counts not flushed; kept for the next try");
        telemetry.restore_traffic(&traffic);
    }
    // Counted first: many rows stay where they are until their minute, not taken and put back.
    if routes == Routes::All || telemetry.path_traffic_pending() <= ROUTE_ROWS_ALWAYS {
        let paths = telemetry.take_path_traffic();
        if let Err(e) = store.add_path_traffic(&paths).await {
            tracing::warn!(error = %e, "route traffic counts not flushed; kept for the next try");
            telemetry.restore_path_traffic(&paths);
        }
    }
    let shadow = telemetry.take_shadow_rollup();
    if shadow.is_empty() {
        return;
    }
    if let Err(e) = store.add_shadow(&shadow).await {
        tracing::warn!(error = %e, "shadow results not flushed; kept for the next try");
        telemetry.restore_shadow_rollup(shadow);
    }
}

/// Deletes rollups older than `retention`, hourly (and once at start).
pub async fn prune_hourly(store: impl Retention, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let keep_minutes = i64::try_from(retention.as_secs() / 60).unwrap_or(i64::MAX);
        match store
            .prune_shadow(clock::now_minute().saturating_sub(keep_minutes))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "old rollups deleted"),
            Err(e) => tracing::warn!(error = %e, "old rollups not deleted; next hour"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strangler_catalog::Side;
    use strangler_store::SqlStore;

    async fn store(name: &str) -> (SqlStore, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("strangler-rollups-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let url = format!("sqlite://{}", dir.join("catalog.db").display());
        let store = SqlStore::connect(&url, Arc::new(strangler_catalog::SizeOnly))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (store, dir)
    }

    fn count_routes(telemetry: &Telemetry, n: usize) {
        for i in 0..n {
            telemetry.traffic.route("orders", &format!("r{i}")).record(
                Side::Legacy,
                200,
                Duration::from_millis(1),
            );
        }
    }

    /// A few route rows go with every flush; many wait for the minute's flush (and none is
    /// lost meanwhile); a final flush takes everything.
    #[tokio::test]
    async fn many_route_rows_wait_for_their_minute_and_none_is_lost() {
        let (store, dir) = store("routes").await;
        let telemetry = Telemetry::default();
        let rows = |store: &SqlStore| {
            let store = store.clone();
            async move { store.path_traffic("orders", 0).await.map(|r| r.len()) }
        };
        count_routes(&telemetry, 10);
        flush_some(&telemetry, &store, Routes::IfFew).await;
        assert_eq!(rows(&store).await.ok(), Some(10));
        count_routes(&telemetry, ROUTE_ROWS_ALWAYS + 1);
        flush_some(&telemetry, &store, Routes::IfFew).await;
        flush_some(&telemetry, &store, Routes::IfFew).await;
        // Still only the first ten routes: the rest is held, not dropped.
        assert_eq!(rows(&store).await.ok(), Some(10));
        flush(&telemetry, &store).await;
        assert_eq!(rows(&store).await.ok(), Some(ROUTE_ROWS_ALWAYS + 1));
        let r0 = store
            .path_traffic("orders", 0)
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.path == "r0")
            .map(|r| r.requests);
        assert_eq!(r0, Some(2), "r0 counted once in each round");
        let _ = std::fs::remove_dir_all(dir);
    }
}
