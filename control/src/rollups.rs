//! The facade's rollups into the store, and the store's retention: every replica flushes its
//! per-minute traffic, route traffic and shadow results (which add up across replicas), and
//! deletes what is older than the retention once an hour.

use std::sync::Arc;
use std::time::Duration;

use strangler_facade::Telemetry;
use strangler_store::{Retention, ShadowRollups, TrafficRollups};

use strangler_catalog::clock;

/// Flushes the rollups every `every`. A failed flush is kept for the next one.
pub async fn flush_every(
    telemetry: Arc<Telemetry>,
    store: impl TrafficRollups + ShadowRollups,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        flush(&telemetry, &store).await;
    }
}

/// Flushes what the facade counted since the last flush; what the store refuses goes back to
/// the facade, so an outage loses nothing.
pub async fn flush(telemetry: &Telemetry, store: &(impl TrafficRollups + ShadowRollups)) {
    let traffic = telemetry.take_traffic();
    if let Err(e) = store.add_traffic(&traffic).await {
        tracing::warn!(error = %e, "traffic counts not flushed; kept for the next try");
        telemetry.restore_traffic(&traffic);
    }
    let paths = telemetry.take_path_traffic();
    if let Err(e) = store.add_path_traffic(&paths).await {
        tracing::warn!(error = %e, "route traffic counts not flushed; kept for the next try");
        telemetry.restore_path_traffic(&paths);
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
