//! The id map: resources the two sides of a context know under different ids, recorded when a
//! mirrored create reached a side that insisted on its own id, and read by every replica in the
//! order they were recorded.

use strangler_catalog::{IdPair, Side};

use crate::sql::SqlStore;
use crate::StoreError;
use strangler_catalog::clock::now_ms;

/// The id map of every context.
#[async_trait::async_trait]
pub trait IdMaps: Send + Sync {
    /// Records a pair; `false` when either id was paired already (the first pair stays: an id
    /// on one side names one resource).
    async fn ids_put(&self, pair: &IdPair) -> Result<bool, StoreError>;
    /// Pairs recorded after `after` (a pair's `seq`), in that order, at most `limit`.
    async fn ids_since(&self, after: i64, limit: i64) -> Result<Vec<IdPair>, StoreError>;
    /// How many pairs a context has, per resource.
    async fn ids_count(&self, context: &str) -> Result<Vec<(String, i64)>, StoreError>;
}

#[async_trait::async_trait]
impl IdMaps for SqlStore {
    async fn ids_put(&self, pair: &IdPair) -> Result<bool, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar(
            "INSERT INTO id_map (context, resource, legacy_id, new_id, origin, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING seq",
        )
        .bind(&pair.context)
        .bind(&pair.resource)
        .bind(&pair.legacy)
        .bind(&pair.new)
        .bind(pair.origin.as_str())
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(seq.is_some())
    }

    async fn ids_since(&self, after: i64, limit: i64) -> Result<Vec<IdPair>, StoreError> {
        let rows: Vec<IdRow> = sqlx::query_as(
            "SELECT seq, context, resource, legacy_id, new_id, origin FROM id_map \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(IdPair::try_from).collect()
    }

    async fn ids_count(&self, context: &str) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT resource, COUNT(*) FROM id_map WHERE context = $1 \
             GROUP BY resource ORDER BY resource",
        )
        .bind(context)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[derive(sqlx::FromRow)]
struct IdRow {
    seq: i64,
    context: String,
    resource: String,
    legacy_id: String,
    new_id: String,
    origin: String,
}

impl TryFrom<IdRow> for IdPair {
    type Error = StoreError;

    fn try_from(r: IdRow) -> Result<Self, StoreError> {
        let origin = Side::parse(&r.origin).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "id map {}: origin `{}` is neither legacy nor new",
                r.seq, r.origin
            ))
        })?;
        Ok(IdPair {
            seq: r.seq,
            context: r.context,
            resource: r.resource,
            legacy: r.legacy_id,
            new: r.new_id,
            origin,
        })
    }
}
