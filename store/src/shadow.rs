//! Shadow rollups: comparisons per minute and context, mismatch signatures, skips, noise
//! learned from legacy answering twice, a few example pairs per signature, and recorded
//! matched exchanges for contract tests.

use std::collections::BTreeMap;

use sqlx::Row;
use strangler_catalog::{ContractPair, NoiseProposal, ShadowExample, ShadowMinute, SignatureCount};

use crate::sql::SqlStore;
use crate::StoreError;

/// Example pairs kept per (context, signature).
const EXAMPLES_PER_SIGNATURE: i64 = 5;

/// Shadow results each replica adds: comparisons, mismatch signatures, skips, learned noise, examples and recorded exchanges.
#[async_trait::async_trait]
pub trait ShadowRollups: Send + Sync {
    /// Adds shadow results (each replica adds its own; the store sums).
    async fn add_shadow(&self, rows: &[ShadowMinute]) -> Result<(), StoreError>;
    /// A context's latest example pairs, newest first (at most `per_signature` per signature).
    async fn shadow_examples(&self, context: &str) -> Result<Vec<ShadowExample>, StoreError>;
    /// A context's shadow results per minute since `since_minute`, oldest first.
    async fn shadow(
        &self,
        context: &str,
        since_minute: i64,
    ) -> Result<Vec<ShadowMinute>, StoreError>;
    /// A context's proposed ignore rules, most seen first (dismissed ones included, marked).
    async fn shadow_noise(&self, context: &str) -> Result<Vec<NoiseProposal>, StoreError>;
    /// Hides a proposed rule (or shows it again); returns whether it exists.
    async fn dismiss_noise(
        &self,
        context: &str,
        path: &str,
        dismissed: bool,
    ) -> Result<bool, StoreError>;
    /// counts only: no signatures, skips or examples).
    async fn shadow_totals(&self, since_minute: i64) -> Result<Vec<ShadowMinute>, StoreError>;
    /// One context's shadow counts since `since_minute` per `bucket_minutes` (`minute` is the
    /// bucket's first; counts only), oldest first.
    async fn shadow_series(
        &self,
        context: &str,
        since_minute: i64,
        bucket_minutes: i64,
    ) -> Result<Vec<ShadowMinute>, StoreError>;
    /// A context's recorded matched exchanges, by route and age (newest first).
    async fn contract_pairs(&self, context: &str) -> Result<Vec<ContractPair>, StoreError>;
}

#[async_trait::async_trait]
impl ShadowRollups for SqlStore {
    async fn add_shadow(&self, rows: &[ShadowMinute]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO shadow_minutes (minute, context, compared, matched, legacy_us, new_us, learned) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (minute, context) DO UPDATE SET \
                 compared = shadow_minutes.compared + excluded.compared, \
                 matched = shadow_minutes.matched + excluded.matched, \
                 legacy_us = shadow_minutes.legacy_us + excluded.legacy_us, \
                 new_us = shadow_minutes.new_us + excluded.new_us, \
                 learned = shadow_minutes.learned + excluded.learned",
            )
            .bind(r.minute)
            .bind(&r.context)
            .bind(r.compared)
            .bind(r.matched)
            .bind(r.legacy_us)
            .bind(r.new_us)
            .bind(r.learned)
            .execute(&mut *tx)
            .await
            ?;
            for e in &r.examples {
                sqlx::query(
                    "INSERT INTO shadow_examples (context, signature, at_ms, method, path, \
                     legacy_status, new_status, legacy_body, new_body) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&r.context)
                .bind(&e.signature)
                .bind(e.at_ms)
                .bind(&e.method)
                .bind(&e.path)
                .bind(e.legacy_status)
                .bind(e.new_status)
                .bind(&e.legacy_body)
                .bind(&e.new_body)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM shadow_examples WHERE context = $1 AND signature = $2 AND id NOT IN \
                     (SELECT id FROM shadow_examples WHERE context = $1 AND signature = $2 \
                      ORDER BY id DESC LIMIT $3)",
                )
                .bind(&r.context)
                .bind(&e.signature)
                .bind(EXAMPLES_PER_SIGNATURE)
                .execute(&mut *tx)
                .await
                ?;
            }
            for p in &r.pairs {
                // The same exchange again replaces the one kept; the latest few per route stay.
                sqlx::query(
                    "DELETE FROM contract_pairs WHERE context = $1 AND route = $2 AND method = $3 \
                     AND uri = $4 AND request_body = $5",
                )
                .bind(&r.context)
                .bind(&p.route)
                .bind(&p.method)
                .bind(&p.uri)
                .bind(&p.request_body)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO contract_pairs (context, route, at_ms, method, uri, request_type, \
                     request_body, status, response_type, response_body) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&r.context)
                .bind(&p.route)
                .bind(p.at_ms)
                .bind(&p.method)
                .bind(&p.uri)
                .bind(&p.request_type)
                .bind(&p.request_body)
                .bind(p.status)
                .bind(&p.response_type)
                .bind(&p.response_body)
                .execute(&mut *tx)
                .await
                ?;
                sqlx::query(
                    "DELETE FROM contract_pairs WHERE context = $1 AND route = $2 AND id NOT IN \
                     (SELECT id FROM contract_pairs WHERE context = $3 AND route = $4 \
                      ORDER BY id DESC LIMIT 20)",
                )
                .bind(&r.context)
                .bind(&p.route)
                .bind(&r.context)
                .bind(&p.route)
                .execute(&mut *tx)
                .await?;
            }
            for sig in &r.signatures {
                sqlx::query(
                    "INSERT INTO shadow_signatures (minute, context, route, signature, count) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (minute, context, route, signature) \
                     DO UPDATE SET count = shadow_signatures.count + excluded.count",
                )
                .bind(r.minute)
                .bind(&r.context)
                .bind(&sig.route)
                .bind(&sig.signature)
                .bind(sig.count)
                .execute(&mut *tx)
                .await?;
            }
            for (reason, count) in &r.skipped {
                sqlx::query(
                    "INSERT INTO shadow_skips (minute, context, reason, count) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (minute, context, reason) \
                     DO UPDATE SET count = shadow_skips.count + excluded.count",
                )
                .bind(r.minute)
                .bind(&r.context)
                .bind(reason)
                .bind(*count)
                .execute(&mut *tx)
                .await?;
            }
            let at_ms = r.minute.saturating_mul(60_000);
            for (path, count) in &r.noise {
                sqlx::query(
                    "INSERT INTO shadow_noise (context, path, count, first_ms, last_ms) \
                     VALUES ($1, $2, $3, $4, $4) ON CONFLICT (context, path) DO UPDATE SET \
                     count = shadow_noise.count + excluded.count, \
                     last_ms = CASE WHEN excluded.last_ms > shadow_noise.last_ms \
                       THEN excluded.last_ms ELSE shadow_noise.last_ms END",
                )
                .bind(&r.context)
                .bind(path)
                .bind(*count)
                .bind(at_ms)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await.map_err(StoreError::from)
    }

    async fn shadow_examples(&self, context: &str) -> Result<Vec<ShadowExample>, StoreError> {
        let rows = sqlx::query(
            "SELECT signature, at_ms, method, path, legacy_status, new_status, legacy_body, new_body \
             FROM shadow_examples WHERE context = $1 ORDER BY id DESC LIMIT 100",
        )
        .bind(context)
        .fetch_all(&self.pool)
        .await
        ?;
        rows.iter()
            .map(|row| {
                Ok(ShadowExample {
                    signature: row.try_get(0)?,
                    at_ms: row.try_get(1)?,
                    method: row.try_get(2)?,
                    path: row.try_get(3)?,
                    legacy_status: row.try_get(4)?,
                    new_status: row.try_get(5)?,
                    legacy_body: row.try_get(6)?,
                    new_body: row.try_get(7)?,
                })
            })
            .collect()
    }

    async fn shadow(
        &self,
        context: &str,
        since_minute: i64,
    ) -> Result<Vec<ShadowMinute>, StoreError> {
        let rows = sqlx::query(
            "SELECT minute, compared, matched, legacy_us, new_us, learned FROM shadow_minutes \
             WHERE context = $1 AND minute >= $2 ORDER BY minute",
        )
        .bind(context)
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        let mut out: BTreeMap<i64, ShadowMinute> = BTreeMap::new();
        for row in rows {
            let minute: i64 = row.try_get(0)?;
            out.insert(
                minute,
                ShadowMinute {
                    minute,
                    context: context.to_owned(),
                    compared: row.try_get(1)?,
                    matched: row.try_get(2)?,
                    legacy_us: row.try_get(3)?,
                    new_us: row.try_get(4)?,
                    learned: row.try_get(5)?,
                    ..ShadowMinute::default()
                },
            );
        }
        // Skips are counted for minutes without a comparison, too.
        let skips = sqlx::query(
            "SELECT minute, reason, count FROM shadow_skips WHERE context = $1 AND minute >= $2",
        )
        .bind(context)
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        for row in skips {
            let minute: i64 = row.try_get(0)?;
            let reason: String = row.try_get(1)?;
            let count: i64 = row.try_get(2)?;
            out.entry(minute)
                .or_insert_with(|| ShadowMinute {
                    minute,
                    context: context.to_owned(),
                    ..ShadowMinute::default()
                })
                .skipped
                .insert(reason, count);
        }
        let sigs = sqlx::query(
            "SELECT minute, route, signature, count FROM shadow_signatures \
             WHERE context = $1 AND minute >= $2 ORDER BY route, signature",
        )
        .bind(context)
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        for row in sigs {
            let minute: i64 = row.try_get(0)?;
            if let Some(m) = out.get_mut(&minute) {
                m.signatures.push(SignatureCount {
                    route: row.try_get(1)?,
                    signature: row.try_get(2)?,
                    count: row.try_get(3)?,
                });
            }
        }
        Ok(out.into_values().collect())
    }

    async fn shadow_noise(&self, context: &str) -> Result<Vec<NoiseProposal>, StoreError> {
        let rows = sqlx::query(
            "SELECT path, count, first_ms, last_ms, dismissed FROM shadow_noise \
             WHERE context = $1 ORDER BY count DESC, path LIMIT 200",
        )
        .bind(context)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NoiseProposal {
                    path: row.try_get(0)?,
                    count: row.try_get(1)?,
                    first_ms: row.try_get(2)?,
                    last_ms: row.try_get(3)?,
                    dismissed: row.try_get::<i64, _>(4)? != 0,
                })
            })
            .collect()
    }

    async fn dismiss_noise(
        &self,
        context: &str,
        path: &str,
        dismissed: bool,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE shadow_noise SET dismissed = $1 WHERE context = $2 AND path = $3")
                .bind(i64::from(dismissed))
                .bind(context)
                .bind(path)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn shadow_totals(&self, since_minute: i64) -> Result<Vec<ShadowMinute>, StoreError> {
        let rows = sqlx::query(
            "SELECT context, CAST(SUM(compared) AS BIGINT), CAST(SUM(matched) AS BIGINT), \
             CAST(SUM(legacy_us) AS BIGINT), CAST(SUM(new_us) AS BIGINT), \
             CAST(SUM(learned) AS BIGINT) FROM shadow_minutes WHERE minute >= $1 \
             GROUP BY context ORDER BY context",
        )
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ShadowMinute {
                    minute: since_minute,
                    context: row.try_get(0)?,
                    compared: row.try_get(1)?,
                    matched: row.try_get(2)?,
                    legacy_us: row.try_get(3)?,
                    new_us: row.try_get(4)?,
                    learned: row.try_get(5)?,
                    ..ShadowMinute::default()
                })
            })
            .collect()
    }

    async fn shadow_series(
        &self,
        context: &str,
        since_minute: i64,
        bucket_minutes: i64,
    ) -> Result<Vec<ShadowMinute>, StoreError> {
        let rows = sqlx::query(
            "SELECT bucket, CAST(SUM(compared) AS BIGINT), CAST(SUM(matched) AS BIGINT), \
             CAST(SUM(legacy_us) AS BIGINT), CAST(SUM(new_us) AS BIGINT) FROM \
             (SELECT CAST((minute / $1) * $1 AS BIGINT) AS bucket, compared, matched, legacy_us, \
              new_us FROM shadow_minutes WHERE context = $2 AND minute >= $3) AS t \
             GROUP BY bucket ORDER BY bucket",
        )
        .bind(bucket_minutes.max(1))
        .bind(context)
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ShadowMinute {
                    minute: row.try_get(0)?,
                    context: context.to_owned(),
                    compared: row.try_get(1)?,
                    matched: row.try_get(2)?,
                    legacy_us: row.try_get(3)?,
                    new_us: row.try_get(4)?,
                    ..ShadowMinute::default()
                })
            })
            .collect()
    }

    async fn contract_pairs(&self, context: &str) -> Result<Vec<ContractPair>, StoreError> {
        let rows = sqlx::query(
            "SELECT route, at_ms, method, uri, request_type, request_body, status, response_type, \
             response_body FROM contract_pairs WHERE context = $1 ORDER BY route, id DESC",
        )
        .bind(context)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ContractPair {
                    route: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    method: r.try_get(2)?,
                    uri: r.try_get(3)?,
                    request_type: r.try_get(4)?,
                    request_body: r.try_get(5)?,
                    status: r.try_get(6)?,
                    response_type: r.try_get(7)?,
                    response_body: r.try_get(8)?,
                })
            })
            .collect()
    }
}
