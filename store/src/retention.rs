//! How long the rollups and logs are kept: everything older than the retention is deleted in
//! one transaction (the audit log and the catalog are kept forever).

use crate::sql::SqlStore;
use crate::StoreError;

/// How long rollups, examples, events and leases are kept.
#[async_trait::async_trait]
pub trait Retention: Send + Sync {
    /// Deletes shadow results from before `before_minute` (examples and dead outbox writes by
    /// the same time). Returns the rows deleted.
    async fn prune_shadow(&self, before_minute: i64) -> Result<u64, StoreError>;
}

#[async_trait::async_trait]
impl Retention for SqlStore {
    async fn prune_shadow(&self, before_minute: i64) -> Result<u64, StoreError> {
        let before_ms = before_minute.saturating_mul(60_000);
        let mut tx = self.pool.begin().await?;
        let mut deleted = 0;
        for (sql, bound) in [
            (
                "DELETE FROM shadow_minutes WHERE minute < $1",
                before_minute,
            ),
            (
                "DELETE FROM shadow_signatures WHERE minute < $1",
                before_minute,
            ),
            ("DELETE FROM shadow_skips WHERE minute < $1", before_minute),
            (
                "DELETE FROM traffic_minutes WHERE minute < $1",
                before_minute,
            ),
            (
                "DELETE FROM traffic_hours WHERE minute < $1",
                before_minute.div_euclid(60) * 60,
            ),
            (
                "DELETE FROM path_traffic WHERE minute < $1",
                before_minute.div_euclid(60) * 60,
            ),
            (
                "DELETE FROM path_traffic_days WHERE minute < $1",
                before_minute.div_euclid(1440) * 1440,
            ),
            ("DELETE FROM shadow_examples WHERE at_ms < $1", before_ms),
            // Batches no merge could read (a format no replica running knows).
            (
                "DELETE FROM traffic_batches WHERE created_ms < $1",
                before_ms,
            ),
            // Leases long expired: signed-out sessions (held until they would have expired)
            // and locks of processes gone.
            ("DELETE FROM leases WHERE expires_ms < $1", before_ms),
            (
                "DELETE FROM event_deliveries WHERE event_id IN \
                 (SELECT id FROM events WHERE created_ms < $1)",
                before_ms,
            ),
            ("DELETE FROM events WHERE created_ms < $1", before_ms),
            ("DELETE FROM shadow_noise WHERE last_ms < $1", before_ms),
            (
                "DELETE FROM shadow_outbox WHERE dead = 1 AND created_ms < $1",
                before_ms,
            ),
            // Delivered writes are kept an hour only to recognise a late second shipment.
            (
                "DELETE FROM shadow_outbox WHERE delivered_ms < $1",
                before_ms.max(strangler_catalog::clock::now_ms() - 3_600_000),
            ),
        ] {
            deleted += sqlx::query(sql)
                .bind(bound)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }
}
