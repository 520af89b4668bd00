//! Shadow rollups: comparisons per minute and context, mismatch signatures, skips, noise
//! learned from legacy answering twice, a few example pairs per signature, and recorded
//! matched exchanges for contract tests.

use std::collections::BTreeMap;

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
        let rows: Vec<ExampleRow> = sqlx::query_as(
            "SELECT signature, at_ms, method, path, legacy_status, new_status, legacy_body, new_body \
             FROM shadow_examples WHERE context = $1 ORDER BY id DESC LIMIT 100",
        )
        .bind(context)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ShadowExample::from).collect())
    }

    async fn shadow(
        &self,
        context: &str,
        since_minute: i64,
    ) -> Result<Vec<ShadowMinute>, StoreError> {
        let rows: Vec<CountsRow> = sqlx::query_as(
            "SELECT minute, compared, matched, legacy_us, new_us, learned FROM shadow_minutes \
             WHERE context = $1 AND minute >= $2 ORDER BY minute",
        )
        .bind(context)
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        let mut out: BTreeMap<i64, ShadowMinute> = rows
            .into_iter()
            .map(|r| (r.minute, r.of(context)))
            .collect();
        // Skips are counted for minutes without a comparison, too.
        let skips: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT minute, reason, count FROM shadow_skips WHERE context = $1 AND minute >= $2",
        )
        .bind(context)
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        for (minute, reason, count) in skips {
            out.entry(minute)
                .or_insert_with(|| ShadowMinute {
                    minute,
                    context: context.to_owned(),
                    ..ShadowMinute::default()
                })
                .skipped
                .insert(reason, count);
        }
        let sigs: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT minute, route, signature, count FROM shadow_signatures \
             WHERE context = $1 AND minute >= $2 ORDER BY route, signature",
        )
        .bind(context)
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        for (minute, route, signature, count) in sigs {
            if let Some(m) = out.get_mut(&minute) {
                m.signatures.push(SignatureCount {
                    route,
                    signature,
                    count,
                });
            }
        }
        Ok(out.into_values().collect())
    }

    async fn shadow_noise(&self, context: &str) -> Result<Vec<NoiseProposal>, StoreError> {
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT path, count, first_ms, last_ms, dismissed FROM shadow_noise \
             WHERE context = $1 ORDER BY count DESC, path LIMIT 200",
        )
        .bind(context)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(path, count, first_ms, last_ms, dismissed)| NoiseProposal {
                    path,
                    count,
                    first_ms,
                    last_ms,
                    dismissed: dismissed != 0,
                },
            )
            .collect())
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
        let rows: Vec<ContextCountsRow> = sqlx::query_as(
            "SELECT context, CAST($1 AS BIGINT) AS minute, CAST(SUM(compared) AS BIGINT) AS compared, \
             CAST(SUM(matched) AS BIGINT) AS matched, CAST(SUM(legacy_us) AS BIGINT) AS legacy_us, \
             CAST(SUM(new_us) AS BIGINT) AS new_us, CAST(SUM(learned) AS BIGINT) AS learned \
             FROM shadow_minutes WHERE minute >= $2 GROUP BY context ORDER BY context",
        )
        .bind(since_minute)
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.counts.of(&r.context)).collect())
    }

    async fn shadow_series(
        &self,
        context: &str,
        since_minute: i64,
        bucket_minutes: i64,
    ) -> Result<Vec<ShadowMinute>, StoreError> {
        let rows: Vec<CountsRow> = sqlx::query_as(
            "SELECT bucket AS minute, CAST(SUM(compared) AS BIGINT) AS compared, \
             CAST(SUM(matched) AS BIGINT) AS matched, CAST(SUM(legacy_us) AS BIGINT) AS legacy_us, \
             CAST(SUM(new_us) AS BIGINT) AS new_us, CAST(0 AS BIGINT) AS learned FROM \
             (SELECT CAST((minute / $1) * $1 AS BIGINT) AS bucket, compared, matched, legacy_us, \
              new_us FROM shadow_minutes WHERE context = $2 AND minute >= $3) AS t \
             GROUP BY bucket ORDER BY bucket",
        )
        .bind(bucket_minutes.max(1))
        .bind(context)
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.of(context)).collect())
    }

    async fn contract_pairs(&self, context: &str) -> Result<Vec<ContractPair>, StoreError> {
        let rows: Vec<PairRow> = sqlx::query_as(
            "SELECT route, at_ms, method, uri, request_type, request_body, status, response_type, \
             response_body FROM contract_pairs WHERE context = $1 ORDER BY route, id DESC",
        )
        .bind(context)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ContractPair::from).collect())
    }
}

/// Comparison counts of one minute (or time bucket) of one context.
#[derive(sqlx::FromRow)]
struct CountsRow {
    minute: i64,
    compared: i64,
    matched: i64,
    legacy_us: i64,
    new_us: i64,
    learned: i64,
}

impl CountsRow {
    fn of(self, context: &str) -> ShadowMinute {
        ShadowMinute {
            minute: self.minute,
            context: context.to_owned(),
            compared: self.compared,
            matched: self.matched,
            legacy_us: self.legacy_us,
            new_us: self.new_us,
            learned: self.learned,
            ..ShadowMinute::default()
        }
    }
}

/// Comparison counts summed per context.
#[derive(sqlx::FromRow)]
struct ContextCountsRow {
    context: String,
    #[sqlx(flatten)]
    counts: CountsRow,
}

/// A stored example pair.
#[derive(sqlx::FromRow)]
struct ExampleRow {
    signature: String,
    at_ms: i64,
    method: String,
    path: String,
    legacy_status: i64,
    new_status: i64,
    legacy_body: String,
    new_body: String,
}

impl From<ExampleRow> for ShadowExample {
    fn from(r: ExampleRow) -> Self {
        ShadowExample {
            signature: r.signature,
            at_ms: r.at_ms,
            method: r.method,
            path: r.path,
            legacy_status: r.legacy_status,
            new_status: r.new_status,
            legacy_body: r.legacy_body,
            new_body: r.new_body,
        }
    }
}

/// A recorded matched exchange.
#[derive(sqlx::FromRow)]
struct PairRow {
    route: String,
    at_ms: i64,
    method: String,
    uri: String,
    request_type: Option<String>,
    request_body: String,
    status: i64,
    response_type: Option<String>,
    response_body: String,
}

impl From<PairRow> for ContractPair {
    fn from(r: PairRow) -> Self {
        ContractPair {
            route: r.route,
            at_ms: r.at_ms,
            method: r.method,
            uri: r.uri,
            request_type: r.request_type,
            request_body: r.request_body,
            status: r.status,
            response_type: r.response_type,
            response_body: r.response_body,
        }
    }
}
