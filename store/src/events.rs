//! The event outbox: events about contexts and, per sink, their deliveries — each context's
//! events in order, retried with back-off, dead after too many failures.

use strangler_catalog::{Delivery, Event, SinkStats};

use crate::sql::SqlStore;
use crate::StoreError;
use strangler_catalog::clock::now_ms;

/// Events about contexts and their deliveries to each sink, in order per context.
#[async_trait::async_trait]
pub trait EventOutbox: Send + Sync {
    /// Adds an event to the outbox (changes of a context's state add theirs themselves, in
    /// the change's transaction).
    async fn add_event(
        &self,
        context: &str,
        kind: &str,
        data: &serde_json::Value,
    ) -> Result<i64, StoreError>;
    /// The deliveries to `sink` due now, oldest first, at most one per context (a context's
    /// next event waits until the one before it is delivered or dead). A sink seen for the
    /// first time starts with the events of the last `horizon_ms`.
    async fn events_due(
        &self,
        sink: &str,
        limit: i64,
        horizon_ms: i64,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// A delivery succeeded.
    async fn event_delivered(&self, sink: &str, event_id: i64) -> Result<(), StoreError>;
    /// A delivery failed: try again at `next_at_ms`, or never (`dead`).
    async fn event_failed(
        &self,
        sink: &str,
        event_id: i64,
        next_at_ms: i64,
        error: &str,
        dead: bool,
    ) -> Result<(), StoreError>;
    /// Every sink's deliveries.
    async fn sink_stats(&self) -> Result<Vec<SinkStats>, StoreError>;
}

#[async_trait::async_trait]
impl EventOutbox for SqlStore {
    async fn add_event(
        &self,
        context: &str,
        kind: &str,
        data: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO events (context, type, data, created_ms) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(context)
        .bind(kind)
        .bind(data.to_string())
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::from)
    }

    async fn events_due(
        &self,
        sink: &str,
        limit: i64,
        horizon_ms: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = now_ms();
        // New events become this sink's pending deliveries.
        sqlx::query(
            "INSERT INTO event_deliveries (sink, event_id, context, attempts, next_at_ms, state) \
             SELECT $1, id, context, 0, 0, 'pending' FROM events \
             WHERE id > COALESCE((SELECT MAX(event_id) FROM event_deliveries WHERE sink = $2), 0) \
               AND created_ms >= $3 ORDER BY id",
        )
        .bind(sink)
        .bind(sink)
        .bind(now.saturating_sub(horizon_ms))
        .execute(&self.pool)
        .await?;
        let rows: Vec<DueRow> = sqlx::query_as(
            "SELECT e.id, e.context, e.type AS kind, e.data, e.created_ms, d.attempts \
             FROM event_deliveries d JOIN events e ON e.id = d.event_id \
             WHERE d.sink = $1 AND d.state = 'pending' AND d.next_at_ms <= $2 \
               AND NOT EXISTS (SELECT 1 FROM event_deliveries p WHERE p.sink = d.sink \
                   AND p.context = d.context AND p.state = 'pending' AND p.event_id < d.event_id) \
             ORDER BY e.id LIMIT $3",
        )
        .bind(sink)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Delivery {
                    event: Event {
                        id: r.id,
                        context: r.context,
                        kind: r.kind,
                        data: serde_json::from_str(&r.data).map_err(|e| {
                            StoreError::Corrupt(format!("event {}: data: {e}", r.id))
                        })?,
                        created_ms: r.created_ms,
                    },
                    attempts: r.attempts,
                })
            })
            .collect()
    }

    async fn event_delivered(&self, sink: &str, event_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE event_deliveries SET state = 'done', last_error = NULL WHERE sink = $1 AND event_id = $2",
        )
        .bind(sink)
        .bind(event_id)
        .execute(&self.pool)
        .await
        ?;
        Ok(())
    }

    async fn event_failed(
        &self,
        sink: &str,
        event_id: i64,
        next_at_ms: i64,
        error: &str,
        dead: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE event_deliveries SET attempts = attempts + 1, next_at_ms = $1, last_error = $2, \
             state = $3 WHERE sink = $4 AND event_id = $5",
        )
        .bind(next_at_ms)
        .bind(error)
        .bind(if dead { "dead" } else { "pending" })
        .bind(sink)
        .bind(event_id)
        .execute(&self.pool)
        .await
        ?;
        Ok(())
    }

    async fn sink_stats(&self) -> Result<Vec<SinkStats>, StoreError> {
        let rows: Vec<SinkRow> = sqlx::query_as(
            "SELECT d.sink, \
             CAST(SUM(CASE WHEN d.state = 'pending' THEN 1 ELSE 0 END) AS BIGINT) AS pending, \
             CAST(SUM(CASE WHEN d.state = 'done' THEN 1 ELSE 0 END) AS BIGINT) AS delivered, \
             CAST(SUM(CASE WHEN d.state = 'dead' THEN 1 ELSE 0 END) AS BIGINT) AS dead, \
             MIN(CASE WHEN d.state = 'pending' THEN e.created_ms END) AS oldest_ms \
             FROM event_deliveries d JOIN events e ON e.id = d.event_id GROUP BY d.sink ORDER BY d.sink",
        )
        .fetch_all(&self.pool)
        .await?;
        let now = now_ms();
        let mut out = Vec::new();
        for r in rows {
            let last_error: Option<String> = sqlx::query_scalar(
                "SELECT last_error FROM event_deliveries WHERE sink = $1 AND last_error IS NOT NULL \
                 ORDER BY event_id DESC LIMIT 1",
            )
            .bind(&r.sink)
            .fetch_optional(&self.pool)
            .await?
            .flatten();
            out.push(SinkStats {
                sink: r.sink,
                pending: r.pending,
                delivered: r.delivered,
                dead: r.dead,
                last_error,
                oldest_pending_ms: r.oldest_ms.map(|c| now - c),
            });
        }
        Ok(out)
    }
}

/// A delivery due, with its event.
#[derive(sqlx::FromRow)]
struct DueRow {
    id: i64,
    context: String,
    kind: String,
    data: String,
    created_ms: i64,
    attempts: i64,
}

/// One sink's deliveries by state.
#[derive(sqlx::FromRow)]
struct SinkRow {
    sink: String,
    pending: i64,
    delivered: i64,
    dead: i64,
    oldest_ms: Option<i64>,
}
