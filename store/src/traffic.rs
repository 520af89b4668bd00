//! Traffic rollups: each replica adds its per-minute counts per context and side, and per
//! hour per route and unclaimed path template; reads sum them, from the hourly rollup for
//! long windows.

use sqlx::any::AnyRow;
use sqlx::Row;
use strangler_catalog::{LastSeen, PathTraffic, TrafficMinute, LATENCY_BUCKETS};

use crate::sql::SqlStore;
use crate::StoreError;

/// Per-minute and per-hour traffic each replica adds, summed for the dashboard and the autopilot.
#[async_trait::async_trait]
pub trait TrafficRollups: Send + Sync {
    /// Adds traffic counts (each replica adds its own; the store sums).
    async fn add_traffic(&self, rows: &[TrafficMinute]) -> Result<(), StoreError>;
    /// Traffic per minute since `since_minute`, for one context or (None) all, oldest first.
    async fn traffic(
        &self,
        context: Option<&str>,
        since_minute: i64,
    ) -> Result<Vec<TrafficMinute>, StoreError>;
    /// One context's traffic per hour since `since_minute` (`minute` is the hour's first),
    /// oldest first: the rollup, for windows of days.
    async fn traffic_hourly(
        &self,
        context: &str,
        since_minute: i64,
    ) -> Result<Vec<TrafficMinute>, StoreError>;
    /// Traffic since `since_minute` summed per context and side (`minute` is `since_minute`).
    async fn traffic_totals(&self, since_minute: i64) -> Result<Vec<TrafficMinute>, StoreError>;
    /// Traffic since `since_minute` summed over all contexts per side and per `bucket_minutes`
    /// (`minute` is the bucket's first minute; no latency buckets), oldest first.
    async fn traffic_series(
        &self,
        since_minute: i64,
        bucket_minutes: i64,
    ) -> Result<Vec<TrafficMinute>, StoreError>;
    /// Traffic since `since_minute` summed per side, of one context or (None) of all
    /// (`minute` is `since_minute`; `context` the one asked for, or empty).
    async fn traffic_sum(
        &self,
        context: Option<&str>,
        since_minute: i64,
    ) -> Result<Vec<TrafficMinute>, StoreError>;
    /// Adds per-hour traffic of routes and unclaimed path templates (each replica adds its
    /// own) and moves their last-seen times forward.
    async fn add_path_traffic(&self, rows: &[PathTraffic]) -> Result<(), StoreError>;
    /// Traffic since `since_minute` of one context's routes (or, with `""`, of unclaimed
    /// templates) summed per path and side (`minute` is `since_minute`).
    async fn path_traffic(
        &self,
        context: &str,
        since_minute: i64,
    ) -> Result<Vec<PathTraffic>, StoreError>;
    /// When the routes of `contexts` were last answered by `side`.
    async fn last_seen(&self, side: &str, contexts: &[String])
        -> Result<Vec<LastSeen>, StoreError>;
}

#[async_trait::async_trait]
impl TrafficRollups for SqlStore {
    async fn add_traffic(&self, rows: &[TrafficMinute]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        write_traffic(&mut tx, rows).await?;
        tx.commit().await.map_err(StoreError::from)
    }

    async fn traffic(
        &self,
        context: Option<&str>,
        since_minute: i64,
    ) -> Result<Vec<TrafficMinute>, StoreError> {
        let buckets = BUCKET_COLUMNS;
        let sql = format!(
            "SELECT minute, context, side, requests, errors, latency_us, fallbacks, {} FROM traffic_minutes \
             WHERE minute >= $1 AND ($2 = '' OR context = $3) ORDER BY minute, context, side",
            buckets.join(", ")
        );
        let rows: Vec<TrafficRow> = sqlx::query_as(&sql)
            .bind(since_minute)
            .bind(if context.is_some() { "one" } else { "" })
            .bind(context.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    async fn traffic_hourly(
        &self,
        context: &str,
        since_minute: i64,
    ) -> Result<Vec<TrafficMinute>, StoreError> {
        let buckets = BUCKET_COLUMNS;
        let sql = format!(
            "SELECT minute, context, side, requests, errors, latency_us, fallbacks, {} \
             FROM traffic_hours WHERE context = $1 AND minute >= $2 ORDER BY minute, side",
            buckets.join(", ")
        );
        let rows: Vec<TrafficRow> = sqlx::query_as(&sql)
            .bind(context)
            .bind(since_minute.div_euclid(60) * 60)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    async fn traffic_totals(&self, since_minute: i64) -> Result<Vec<TrafficMinute>, StoreError> {
        self.traffic_sums(since_minute, None, true).await
    }

    async fn traffic_series(
        &self,
        since_minute: i64,
        bucket_minutes: i64,
    ) -> Result<Vec<TrafficMinute>, StoreError> {
        let bucket = bucket_minutes.max(1);
        // Whole hours from a whole hour: the hourly rollup has the same sums in 60 times
        // fewer rows.
        let table = if bucket % 60 == 0 && since_minute % 60 == 0 {
            "traffic_hours"
        } else {
            "traffic_minutes"
        };
        let rows: Vec<SeriesRow> = sqlx::query_as(&format!(
            "SELECT bucket, side, CAST(SUM(requests) AS BIGINT) AS requests, \
             CAST(SUM(errors) AS BIGINT) AS errors, CAST(SUM(latency_us) AS BIGINT) AS latency_us, \
             CAST(SUM(fallbacks) AS BIGINT) AS fallbacks \
             FROM (SELECT CAST((minute / $1) * $1 AS BIGINT) AS bucket, side, requests, errors, \
                   latency_us, fallbacks FROM {table} WHERE minute >= $2) AS t \
             GROUP BY bucket, side ORDER BY bucket, side",
        ))
        .bind(bucket)
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| TrafficMinute {
                minute: r.bucket,
                context: String::new(),
                side: r.side,
                requests: r.requests,
                errors: r.errors,
                latency_us: r.latency_us,
                fallbacks: r.fallbacks,
                buckets: Vec::new(),
            })
            .collect())
    }

    async fn traffic_sum(
        &self,
        context: Option<&str>,
        since_minute: i64,
    ) -> Result<Vec<TrafficMinute>, StoreError> {
        // One context's rows grouped per context and side are its rows per side.
        self.traffic_sums(since_minute, context, context.is_some())
            .await
    }

    async fn add_path_traffic(&self, rows: &[PathTraffic]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        write_paths(&mut tx, rows).await?;
        tx.commit().await.map_err(StoreError::from)
    }

    async fn path_traffic(
        &self,
        context: &str,
        since_minute: i64,
    ) -> Result<Vec<PathTraffic>, StoreError> {
        // Hours up to the first whole day, then days.
        let hour = since_minute.div_euclid(60) * 60;
        let day = (hour + 1439).div_euclid(1440) * 1440;
        let rows: Vec<PathSumRow> = sqlx::query_as(
            "SELECT path, side, CAST(SUM(requests) AS BIGINT) AS requests, \
             CAST(SUM(errors) AS BIGINT) AS errors, CAST(SUM(latency_us) AS BIGINT) AS latency_us FROM \
             (SELECT path, side, requests, errors, latency_us FROM path_traffic \
              WHERE context = $1 AND minute >= $2 AND minute < $3 \
              UNION ALL SELECT path, side, requests, errors, latency_us FROM path_traffic_days \
              WHERE context = $4 AND minute >= $5) AS t \
             GROUP BY path, side ORDER BY path, side",
        )
        .bind(context)
        .bind(hour)
        .bind(day)
        .bind(context)
        .bind(day)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PathTraffic {
                minute: since_minute,
                context: context.to_owned(),
                path: r.path,
                side: r.side,
                requests: r.requests,
                errors: r.errors,
                latency_us: r.latency_us,
            })
            .collect())
    }

    async fn last_seen(
        &self,
        side: &str,
        contexts: &[String],
    ) -> Result<Vec<LastSeen>, StoreError> {
        if contexts.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = (0..contexts.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT context, path, minute FROM path_last_seen \
             WHERE side = $1 AND context IN ({}) ORDER BY context, path",
            list.join(", ")
        );
        let mut q = sqlx::query_as::<_, (String, String, i64)>(&sql).bind(side);
        for c in contexts {
            q = q.bind(c);
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(context, path, minute)| LastSeen {
                context,
                path,
                side: side.to_owned(),
                minute,
            })
            .collect())
    }
}

/// Adds traffic rows to the per-minute and per-hour rollups in `tx`.
pub(crate) async fn write_traffic(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[TrafficMinute],
) -> Result<(), StoreError> {
    // Rows that land on one key (the minutes of an hour, in the hourly table) are summed
    // first: one statement may not touch a row twice, and fewer rows are written.
    let minutes = compact_traffic(rows.iter().map(|r| (r.minute, r)));
    let hours = compact_traffic(rows.iter().map(|r| (r.minute.div_euclid(60) * 60, r)));
    for (table, rows) in [("traffic_minutes", minutes), ("traffic_hours", hours)] {
        for chunk in rows.chunks(UPSERT_ROWS) {
            let buckets = BUCKET_COLUMNS;
            let sql = format!(
                    "INSERT INTO {table} (minute, context, side, requests, errors, latency_us, fallbacks, {}) \
                     VALUES {} ON CONFLICT (minute, context, side) DO UPDATE SET \
                     requests = {table}.requests + excluded.requests, \
                     errors = {table}.errors + excluded.errors, \
                     latency_us = {table}.latency_us + excluded.latency_us, \
                     fallbacks = {table}.fallbacks + excluded.fallbacks, {}",
                    buckets.join(", "),
                    placeholders(chunk.len(), 7 + LATENCY_BUCKETS),
                    buckets
                        .iter()
                        .map(|b| format!("{b} = {table}.{b} + excluded.{b}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(r.minute)
                    .bind(r.context.clone())
                    .bind(r.side.clone())
                    .bind(r.requests)
                    .bind(r.errors)
                    .bind(r.latency_us)
                    .bind(r.fallbacks);
                for i in 0..LATENCY_BUCKETS {
                    q = q.bind(r.buckets.get(i).copied().unwrap_or(0));
                }
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Adds route rows to the per-hour and per-day rollups in `tx` and moves their last-seen
/// times forward.
pub(crate) async fn write_paths(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[PathTraffic],
) -> Result<(), StoreError> {
    let hours = compact_paths(rows, 60);
    let days = compact_paths(rows, 1440);
    // The latest minute each route was seen, per side.
    let mut seen: std::collections::BTreeMap<(&str, &str, &str), i64> =
        std::collections::BTreeMap::new();
    for r in rows {
        let at = seen
            .entry((r.context.as_str(), r.path.as_str(), r.side.as_str()))
            .or_insert(r.minute);
        *at = (*at).max(r.minute);
    }
    let seen: Vec<_> = seen.into_iter().collect();
    for (table, rows) in [("path_traffic", hours), ("path_traffic_days", days)] {
        for chunk in rows.chunks(UPSERT_ROWS) {
            let sql = format!(
                "INSERT INTO {table} (context, minute, path, side, requests, errors, latency_us) \
                     VALUES {} ON CONFLICT (context, minute, path, side) \
                     DO UPDATE SET requests = {table}.requests + excluded.requests, \
                     errors = {table}.errors + excluded.errors, \
                     latency_us = {table}.latency_us + excluded.latency_us",
                placeholders(chunk.len(), 7)
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(r.context.clone())
                    .bind(r.minute)
                    .bind(r.path.clone())
                    .bind(r.side.clone())
                    .bind(r.requests)
                    .bind(r.errors)
                    .bind(r.latency_us);
            }
            q.execute(&mut **tx).await?;
        }
    }
    for chunk in seen.chunks(UPSERT_ROWS) {
        let sql = format!(
            "INSERT INTO path_last_seen (context, path, side, minute) VALUES {} \
                 ON CONFLICT (context, path, side) DO UPDATE SET minute = \
                 CASE WHEN excluded.minute > path_last_seen.minute THEN excluded.minute \
                 ELSE path_last_seen.minute END",
            placeholders(chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for ((context, path, side), minute) in chunk {
            q = q
                .bind((*context).to_owned())
                .bind((*path).to_owned())
                .bind((*side).to_owned())
                .bind(*minute);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl SqlStore {
    /// Traffic since `since_minute` summed per context and side (`per_context`) or per side
    /// only (`context` empty), of one context or all. Minutes up to the first whole hour, then
    /// the hourly rollup: a week is 168 rows per context and side, not 10,080. SUM over BIGINT
    /// is NUMERIC on PostgreSQL: cast back, so both backends give i64.
    async fn traffic_sums(
        &self,
        since_minute: i64,
        context: Option<&str>,
        per_context: bool,
    ) -> Result<Vec<TrafficMinute>, StoreError> {
        let columns = BUCKET_COLUMNS;
        let picked = format!(
            "context, side, requests, errors, latency_us, fallbacks, {}",
            columns.join(", ")
        );
        let (key, group) = if per_context {
            ("context", "context, side")
        } else {
            ("CAST('' AS TEXT) AS context", "side")
        };
        let sql = format!(
            "SELECT CAST($6 AS BIGINT) AS minute, {key}, side, CAST(SUM(requests) AS BIGINT) AS requests, \
             CAST(SUM(errors) AS BIGINT) AS errors, CAST(SUM(latency_us) AS BIGINT) AS latency_us, \
             CAST(SUM(fallbacks) AS BIGINT) AS fallbacks, {} \
             FROM (SELECT {picked} FROM traffic_minutes WHERE minute >= $1 AND minute < $2 \
                     AND ($4 = '' OR context = $5) \
                   UNION ALL SELECT {picked} FROM traffic_hours WHERE minute >= $3 \
                     AND ($4 = '' OR context = $5)) AS t \
             GROUP BY {group} ORDER BY {group}",
            columns
                .iter()
                .map(|b| format!("CAST(SUM({b}) AS BIGINT) AS {b}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let whole = (since_minute + 59).div_euclid(60) * 60;
        let rows: Vec<TrafficRow> = sqlx::query_as(&sql)
            .bind(since_minute)
            .bind(whole)
            .bind(whole)
            .bind(if context.is_some() { "one" } else { "" })
            .bind(context.unwrap_or(""))
            .bind(since_minute)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

/// A `traffic_minutes` or `traffic_hours` row, or a sum of them with the same column names
/// (the latency buckets are the columns `b0` … `b13`).
struct TrafficRow(TrafficMinute);

impl<'r> sqlx::FromRow<'r, AnyRow> for TrafficRow {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(TrafficRow(TrafficMinute {
            minute: row.try_get("minute")?,
            context: row.try_get("context")?,
            side: row.try_get("side")?,
            requests: row.try_get("requests")?,
            errors: row.try_get("errors")?,
            latency_us: row.try_get("latency_us")?,
            fallbacks: row.try_get("fallbacks")?,
            buckets: BUCKET_COLUMNS
                .iter()
                .map(|b| row.try_get::<i64, _>(*b))
                .collect::<Result<_, _>>()?,
        }))
    }
}

/// The latency buckets' columns.
/// Rows per upsert statement: 21 parameters a traffic row, under SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters.
const UPSERT_ROWS: usize = 500;

/// `($1, …, $width), ($width+1, …), …` for `rows` rows.
fn placeholders(rows: usize, width: usize) -> String {
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * width + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

/// Traffic rows summed per (minute key, context, side), in key order.
fn compact_traffic<'a>(rows: impl Iterator<Item = (i64, &'a TrafficMinute)>) -> Vec<TrafficMinute> {
    let mut sums: std::collections::BTreeMap<(i64, &str, &str), TrafficMinute> =
        std::collections::BTreeMap::new();
    for (minute, r) in rows {
        let sum = sums
            .entry((minute, r.context.as_str(), r.side.as_str()))
            .or_insert_with(|| TrafficMinute {
                minute,
                context: r.context.clone(),
                side: r.side.clone(),
                buckets: vec![0; LATENCY_BUCKETS],
                ..TrafficMinute::default()
            });
        sum.requests += r.requests;
        sum.errors += r.errors;
        sum.latency_us += r.latency_us;
        sum.fallbacks += r.fallbacks;
        for (i, b) in sum.buckets.iter_mut().enumerate() {
            *b += r.buckets.get(i).copied().unwrap_or(0);
        }
    }
    sums.into_values().collect()
}

/// Route rows summed per (period of `minutes`, context, path, side).
fn compact_paths(rows: &[PathTraffic], minutes: i64) -> Vec<PathTraffic> {
    let mut sums: std::collections::BTreeMap<(i64, &str, &str, &str), PathTraffic> =
        std::collections::BTreeMap::new();
    for r in rows {
        let at = r.minute.div_euclid(minutes) * minutes;
        let sum = sums
            .entry((at, r.context.as_str(), r.path.as_str(), r.side.as_str()))
            .or_insert_with(|| PathTraffic {
                minute: at,
                context: r.context.clone(),
                path: r.path.clone(),
                side: r.side.clone(),
                requests: 0,
                errors: 0,
                latency_us: 0,
            });
        sum.requests += r.requests;
        sum.errors += r.errors;
        sum.latency_us += r.latency_us;
    }
    sums.into_values().collect()
}

const BUCKET_COLUMNS: [&str; LATENCY_BUCKETS] = [
    "b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9", "b10", "b11", "b12", "b13",
];

/// Traffic of all contexts per time bucket and side.
#[derive(sqlx::FromRow)]
struct SeriesRow {
    bucket: i64,
    side: String,
    requests: i64,
    errors: i64,
    latency_us: i64,
    fallbacks: i64,
}

/// Traffic of one route or template per side.
#[derive(sqlx::FromRow)]
struct PathSumRow {
    path: String,
    side: String,
    requests: i64,
    errors: i64,
    latency_us: i64,
}
