//! Mirrored writes waiting for delivery to the new service: claimed with a lease, so several
//! replicas deliver each write once, and in order per context.

use strangler_catalog::{OutboxItem, OutboxStats, Side};

use crate::sql::SqlStore;
use crate::StoreError;
use strangler_catalog::clock::now_ms;

/// Mirrored writes waiting for delivery to the new service, in order per context.
#[async_trait::async_trait]
pub trait MirrorOutbox: Send + Sync {
    /// Stores mirrored writes for delivery; returns the ids of those it did not have (a write
    /// whose non-empty origin key is stored already is kept once).
    async fn outbox_put(&self, items: &[OutboxItem]) -> Result<Vec<i64>, StoreError>;
    /// Claims up to `limit` writes due now for `lease_ms` (another replica sees them again
    /// only after that), oldest first; a write waits while an earlier live write of its
    /// context is not due, so each context's writes are delivered in order.
    async fn outbox_claim(&self, limit: i64, lease_ms: i64) -> Result<Vec<OutboxItem>, StoreError>;
    /// Writes were delivered: each is kept, emptied, only to recognise a second shipment of it.
    async fn outbox_done(&self, ids: &[i64]) -> Result<(), StoreError>;
    /// A delivery failed (`error`, counted as an attempt) or must wait for an earlier write
    /// (`None`): try again at `next_at_ms`, or never (`dead`).
    async fn outbox_retry(
        &self,
        id: i64,
        next_at_ms: i64,
        error: Option<&str>,
        dead: bool,
    ) -> Result<(), StoreError>;
    /// For each context and side with writes waiting toward it: the oldest one's creation
    /// time.
    async fn outbox_waiting_since(&self) -> Result<Vec<(String, Side, i64)>, StoreError>;
    /// The outbox of one context, toward one side.
    async fn outbox_stats(&self, context: &str, toward: Side) -> Result<OutboxStats, StoreError>;
}

#[async_trait::async_trait]
impl MirrorOutbox for SqlStore {
    async fn outbox_put(&self, items: &[OutboxItem]) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(items.len());
        let now = now_ms();
        for i in items {
            let headers = serde_json::to_string(&i.headers)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let legacy_headers = serde_json::to_string(&i.legacy_headers)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO shadow_outbox (context, route, idempotency_key, method, uri, headers, \
                 body, legacy_status, legacy_headers, legacy_body, legacy_us, created_ms, next_at_ms, \
                 origin_key, toward) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14) \
                 ON CONFLICT (origin_key) DO NOTHING RETURNING id",
            )
            .bind(&i.context)
            .bind(&i.route)
            .bind(&i.idempotency_key)
            .bind(&i.method)
            .bind(&i.uri)
            .bind(headers)
            .bind(i.body.clone())
            .bind(i.legacy_status)
            .bind(legacy_headers)
            .bind(i.legacy_body.clone())
            .bind(i.legacy_us)
            .bind(if i.created_ms > 0 { i.created_ms } else { now })
            .bind((!i.origin_key.is_empty()).then_some(i.origin_key.as_str()))
            .bind(i.toward.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            ids.extend(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn outbox_claim(&self, limit: i64, lease_ms: i64) -> Result<Vec<OutboxItem>, StoreError> {
        let now = now_ms();
        // One statement claims the batch: one sync, and no read lock to upgrade. The outer
        // conditions are checked again on each row as it is updated, so a replica claiming
        // at the same moment cannot take a row this one took.
        let mut rows: Vec<OutboxRow> = sqlx::query_as(
            "UPDATE shadow_outbox SET next_at_ms = $3 \
             WHERE dead = 0 AND delivered_ms IS NULL AND next_at_ms <= $1 AND id IN \
             (SELECT id FROM shadow_outbox o WHERE dead = 0 AND delivered_ms IS NULL \
              AND next_at_ms <= $1 \
              AND NOT EXISTS (SELECT 1 FROM shadow_outbox e WHERE e.context = o.context \
               AND e.toward = o.toward AND e.dead = 0 AND e.delivered_ms IS NULL \
               AND e.id < o.id AND e.next_at_ms > $1) \
              ORDER BY id LIMIT $2) \
             RETURNING id, origin_key, toward, context, route, idempotency_key, method, uri, \
             headers, body, legacy_status, legacy_headers, legacy_body, legacy_us, created_ms, \
             attempts",
        )
        .bind(now)
        .bind(limit)
        .bind(now + lease_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.sort_by_key(|r| r.id);
        rows.into_iter().map(OutboxItem::try_from).collect()
    }

    async fn outbox_done(&self, ids: &[i64]) -> Result<(), StoreError> {
        // One transaction for a delivery batch: one sync, not one per write.
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        for id in ids {
            sqlx::query(
                "UPDATE shadow_outbox SET delivered_ms = $2, headers = '[]', body = $3, \
                 legacy_headers = '[]', legacy_body = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .bind(Vec::<u8>::new())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn outbox_retry(
        &self,
        id: i64,
        next_at_ms: i64,
        error: Option<&str>,
        dead: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE shadow_outbox SET attempts = attempts + $5, next_at_ms = $1, \
             last_error = COALESCE($2, last_error), dead = $3 WHERE id = $4",
        )
        .bind(next_at_ms)
        .bind(error.map(str::to_owned))
        .bind(i64::from(dead))
        .bind(id)
        .bind(i64::from(error.is_some()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn outbox_waiting_since(&self) -> Result<Vec<(String, Side, i64)>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT context, toward, MIN(created_ms) FROM shadow_outbox \
             WHERE dead = 0 AND delivered_ms IS NULL GROUP BY context, toward",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(context, toward, at)| match Side::parse(&toward) {
                Some(side) => Ok((context, side, at)),
                None => Err(StoreError::Corrupt(format!(
                    "outbox of `{context}`: toward `{toward}` is neither legacy nor new"
                ))),
            })
            .collect()
    }

    async fn outbox_stats(&self, context: &str, toward: Side) -> Result<OutboxStats, StoreError> {
        let (pending, dead, oldest) = {
            let mut conn = self.pool.acquire().await?;
            undelivered(&mut conn, context, toward).await?
        };
        let last_error: Option<String> = sqlx::query_scalar(
            "SELECT last_error FROM shadow_outbox WHERE context = $1 AND toward = $2 \
             AND last_error IS NOT NULL AND delivered_ms IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(context)
        .bind(toward.as_str())
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        Ok(OutboxStats {
            pending,
            dead,
            oldest_pending_ms: oldest.map(|t| (now_ms() - t).max(0)),
            last_error,
        })
    }
}

/// Of a context's writes toward a side not delivered: how many wait, how many were given up on,
/// and when the oldest waiting one was made.
pub(crate) async fn undelivered(
    conn: &mut sqlx::AnyConnection,
    context: &str,
    toward: Side,
) -> Result<(i64, i64, Option<i64>), StoreError> {
    Ok(sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(CASE WHEN dead = 0 THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(dead), 0) AS BIGINT), MIN(CASE WHEN dead = 0 THEN created_ms END) \
         FROM shadow_outbox WHERE context = $1 AND toward = $2 AND delivered_ms IS NULL",
    )
    .bind(context)
    .bind(toward.as_str())
    .fetch_one(conn)
    .await?)
}

/// A stored mirrored write, as selected for a claim.
#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    origin_key: Option<String>,
    toward: String,
    context: String,
    route: String,
    idempotency_key: String,
    method: String,
    uri: String,
    headers: String,
    body: Vec<u8>,
    legacy_status: i64,
    legacy_headers: String,
    legacy_body: Option<Vec<u8>>,
    legacy_us: i64,
    created_ms: i64,
    attempts: i64,
}

impl TryFrom<OutboxRow> for OutboxItem {
    type Error = StoreError;

    fn try_from(r: OutboxRow) -> Result<Self, StoreError> {
        let id = r.id;
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("outbox {id}: {e}"));
        Ok(OutboxItem {
            id,
            origin_key: r.origin_key.unwrap_or_default(),
            toward: Side::parse(&r.toward).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "outbox {id}: toward `{}` is neither legacy nor new",
                    r.toward
                ))
            })?,
            context: r.context,
            route: r.route,
            idempotency_key: r.idempotency_key,
            method: r.method,
            uri: r.uri,
            headers: serde_json::from_str(&r.headers).map_err(corrupt)?,
            body: r.body,
            legacy_status: r.legacy_status,
            legacy_headers: serde_json::from_str(&r.legacy_headers).map_err(corrupt)?,
            legacy_body: r.legacy_body,
            legacy_us: r.legacy_us,
            created_ms: r.created_ms,
            attempts: r.attempts,
        })
    }
}
