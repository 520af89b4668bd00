//! The facade's rollups into the store, and the store's retention: every replica hands in its
//! per-minute traffic and route traffic as one row per flush, and then offers to merge what
//! every replica handed in into the rollups (one replica a flush interval does; see the store's
//! `staging.rs`); it flushes its shadow results, and deletes what is older than the retention
//! once an hour.

use std::sync::Arc;
use std::time::Duration;

use strangler_facade::Telemetry;
use strangler_store::{Merge, Retention, ShadowRollups, StagedRollups};

use strangler_catalog::clock;

/// Route counts are kept per hour and per day in the store: a replica with many busy routes
/// hands them in at most this often rather than on every flush, so that the rows handed in do
/// not grow with routes × flush rate. A few rows go with every flush.
pub const ROUTES_EVERY: Duration = Duration::from_secs(60);
/// Route rows that go with every flush regardless.
pub const ROUTE_ROWS_ALWAYS: usize = 32;

/// Flushes the rollups every `every`. A failed flush is kept for the next one.
pub async fn flush_every(
    telemetry: Arc<Telemetry>,
    store: impl StagedRollups + ShadowRollups,
    every: Duration,
) {
    // Every replica offers to merge on each flush; one that finds a merge newer than this
    // leaves it to that one. The same interval on every replica makes one merge per interval.
    let min_gap_ms = i64::try_from(every.as_millis() * 3 / 4).unwrap_or(i64::MAX);
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
        flush_some(&telemetry, &store, routes, Merge::IfDue { min_gap_ms }).await;
    }
}

/// Which route counts a flush writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routes {
    All,
    /// Only if there are at most [`ROUTE_ROWS_ALWAYS`] of them.
    IfFew,
}

/// Flushes what the facade counted since the last flush and merges everything waiting; what
/// the store refuses goes back to the facade, so an outage loses nothing.
pub async fn flush(telemetry: &Telemetry, store: &(impl StagedRollups + ShadowRollups)) {
    flush_some(telemetry, store, Routes::All, Merge::Now).await;
}

async fn flush_some(
    telemetry: &Telemetry,
    store: &(impl StagedRollups + ShadowRollups),
    routes: Routes,
    merge: Merge,
) {
    let traffic = telemetry.take_traffic();
    if let Err(e) = store.stage_traffic(&traffic).await {
        tracing::warn!(error = %e, "traffic counts not flushed; kept for the next try");
        telemetry.restore_traffic(&traffic);
    }
    // Counted first: many rows stay where they are until their minute, not taken and put back.
    if routes == Routes::All || telemetry.path_traffic_pending() <= ROUTE_ROWS_ALWAYS {
        let paths = telemetry.take_path_traffic();
        if let Err(e) = store.stage_path_traffic(&paths).await {
            tracing::warn!(error = %e, "route traffic counts not flushed; kept for the next try");
            telemetry.restore_path_traffic(&paths);
        }
    }
    // What was handed in stays in the store until a merge takes it: a failed merge loses
    // nothing, and the next (here or on another replica) takes it.
    match store.merge_staged(merge).await {
        Ok(m) => {
            if m.unreadable > 0 {
                tracing::warn!(
                    batches = m.unreadable,
                    "traffic batches in a format this build cannot read were left for a newer replica"
                );
            }
            telemetry.record_unmerged_traffic(m.oldest_waiting_ms);
        }
        Err(e) => tracing::warn!(error = %e, "traffic counts not merged; next flush"),
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
    use strangler_store::{SqlStore, TrafficRollups};

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
        flush_some(&telemetry, &store, Routes::IfFew, Merge::Now).await;
        assert_eq!(rows(&store).await.ok(), Some(10));
        count_routes(&telemetry, ROUTE_ROWS_ALWAYS + 1);
        flush_some(&telemetry, &store, Routes::IfFew, Merge::Now).await;
        flush_some(&telemetry, &store, Routes::IfFew, Merge::Now).await;
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

    /// Counts handed in but not merged show on the replica's gauge until a merge takes them.
    #[tokio::test]
    async fn counts_waiting_for_a_merge_show_their_age() {
        let (store, dir) = store("unmerged").await;
        let telemetry = Telemetry::default();
        count_routes(&telemetry, 1);
        // Another replica merged just now (as far as this one can tell): it only hands in.
        let skip = Merge::IfDue {
            min_gap_ms: i64::MAX,
        };
        flush_some(&telemetry, &store, Routes::All, skip).await;
        while telemetry.unmerged_traffic_ms() == 0 {
            tokio::task::yield_now().await;
            flush_some(&telemetry, &store, Routes::All, skip).await;
        }
        flush(&telemetry, &store).await;
        assert_eq!(telemetry.unmerged_traffic_ms(), 0);
        assert_eq!(
            store.path_traffic("orders", 0).await.map(|r| r.len()).ok(),
            Some(1)
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
