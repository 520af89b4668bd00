//! Traffic counts handed in by replicas and merged into the rollups once for the whole fleet.
//!
//! Written straight to the rollups, every replica upserts one row per context, side and minute
//! on every flush, and one per route, side and hour every minute: the rows written grow with
//! replicas × routes (≈ 110 rows/s a replica with 1,000 busy routes). Here a replica writes one
//! row per flush holding all its counts (`traffic_batches`), and one merge for the whole fleet
//! sums the rows waiting and upserts the sums — each rollup row once per merge, however many
//! replicas counted into it. Context counts are merged every flush interval; route counts
//! once a minute, or on every merge while only a few are waiting (a small install sees them
//! as soon as before).
//!
//! **Exactly once:** a merge adds the batches it read and deletes them in one transaction, and
//! only one merge runs at a time: it starts by setting `traffic_merges.merged_ms` on condition
//! that it still holds the value read before (PostgreSQL makes a second merge wait for the row
//! and then find it changed; SQLite has one writer at a time). A batch this build cannot read
//! (a newer format, in the middle of an upgrade) is left for a replica that can.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strangler_catalog::clock::now_ms;
use strangler_catalog::{PathTraffic, TrafficMinute};

use crate::sql::SqlStore;
use crate::traffic::{write_paths, write_traffic};
use crate::StoreError;

/// Route counts are merged at most this often once more than [`FEW_ROUTE_ROWS`] wait.
pub const ROUTES_MERGE_EVERY_MS: i64 = 60_000;
/// While at most this many route rows wait, every merge takes them.
pub const FEW_ROUTE_ROWS: i64 = 32;
/// Context batches one merge takes at most (the rest wait for the next).
const TRAFFIC_BATCHES_PER_MERGE: i64 = 1_000;
/// Route batches read at a time: each can hold thousands of rows.
const PATH_BATCHES_PER_PAGE: i64 = 50;
/// Pages of route batches one merge takes at most (the rest go with the next merges).
const PATH_PAGES_PER_MERGE: usize = 40;
/// Batch ids per DELETE statement.
const DELETE_CHUNK: usize = 500;
/// The batches' format; a batch of another is left alone.
const FORMAT: u32 = 1;

/// Whether a merge should run even if another ran lately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Only if no merge ran in the last `min_gap_ms` (the flush loop of every replica asks;
    /// one of them merges), with route counts when due.
    IfDue { min_gap_ms: i64 },
    /// Now, with everything waiting (a replica's last flush, tests).
    Now,
}

/// What one merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// False when another merge ran lately (or was running) and this one did nothing.
    pub ran: bool,
    /// Batches added to the rollups (and deleted).
    pub batches: usize,
    /// Batches left because this build cannot read them.
    pub unreadable: usize,
    /// Route counts were merged.
    pub routes: bool,
    /// How long the oldest batch still waiting has waited, after this call (None: none).
    pub oldest_waiting_ms: Option<i64>,
}

/// Traffic counts handed in per flush and merged for the whole fleet.
#[async_trait::async_trait]
pub trait StagedRollups: Send + Sync {
    /// Hands in a flush's context counts as one row (nothing when empty).
    async fn stage_traffic(&self, rows: &[TrafficMinute]) -> Result<(), StoreError>;
    /// Hands in a flush's route counts as one row (nothing when empty).
    async fn stage_path_traffic(&self, rows: &[PathTraffic]) -> Result<(), StoreError>;
    /// Adds the waiting batches to the rollups and deletes them, in one transaction.
    async fn merge_staged(&self, when: Merge) -> Result<Merged, StoreError>;
    /// Batches waiting for a merge.
    async fn staged_batches(&self) -> Result<i64, StoreError>;
}

#[derive(Serialize, Deserialize)]
struct Batch<T> {
    v: u32,
    rows: Vec<T>,
}

#[derive(Deserialize)]
struct Version {
    v: u32,
}

impl SqlStore {
    async fn stage<T: Serialize + Clone>(&self, kind: &str, rows: &[T]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_string(&Batch {
            v: FORMAT,
            rows: rows.to_vec(),
        })
        .map_err(|e| StoreError::Unavailable(format!("encoding a traffic batch: {e}")))?;
        sqlx::query(
            "INSERT INTO traffic_batches (kind, pairs, body, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(kind)
        .bind(i64::try_from(rows.len()).unwrap_or(i64::MAX))
        .bind(body)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Route rows summed per (minute, context, route, side): requests, errors, latency.
type PathSums = BTreeMap<(i64, String, String, String), (i64, i64, i64)>;

/// Adds a route row to the sums (its strings become the key; nothing is copied).
fn add_path(sums: &mut PathSums, r: PathTraffic) {
    let sum = sums
        .entry((r.minute, r.context, r.path, r.side))
        .or_insert((0, 0, 0));
    sum.0 += r.requests;
    sum.1 += r.errors;
    sum.2 += r.latency_us;
}

/// Reads a batch of this build's format; None for any other.
fn decode<T: for<'de> Deserialize<'de>>(body: &str) -> Option<Vec<T>> {
    match serde_json::from_str::<Version>(body) {
        Ok(Version { v: FORMAT }) => serde_json::from_str::<Batch<T>>(body).ok().map(|b| b.rows),
        _ => None,
    }
}

#[async_trait::async_trait]
impl StagedRollups for SqlStore {
    async fn stage_traffic(&self, rows: &[TrafficMinute]) -> Result<(), StoreError> {
        self.stage("traffic", rows).await
    }

    async fn stage_path_traffic(&self, rows: &[PathTraffic]) -> Result<(), StoreError> {
        self.stage("paths", rows).await
    }

    async fn merge_staged(&self, when: Merge) -> Result<Merged, StoreError> {
        // A replica's last flush may meet another's merge: it tries again on the fresh value.
        let tries = if when == Merge::Now { 5 } else { 1 };
        for _ in 0..tries {
            if let Some(merged) = self.merge_once(when).await? {
                return Ok(merged);
            }
        }
        Ok(Merged {
            oldest_waiting_ms: self.oldest_waiting_ms().await?,
            ..Merged::default()
        })
    }

    async fn staged_batches(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM traffic_batches")
            .fetch_one(&self.pool)
            .await?)
    }
}

impl SqlStore {
    /// One merge; None when another took the turn between the read and the claim.
    async fn merge_once(&self, when: Merge) -> Result<Option<Merged>, StoreError> {
        let now = now_ms();
        // Read first, outside a transaction: most replicas stop here, writing nothing.
        let (merged_ms, routes_merged_ms, oldest): (i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT merged_ms, routes_merged_ms, \
             (SELECT created_ms FROM traffic_batches ORDER BY id LIMIT 1) AS oldest \
             FROM traffic_merges WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        let skipped = Merged {
            oldest_waiting_ms: waited(oldest),
            ..Merged::default()
        };
        // A time ahead of this clock (another replica's clock runs fast) counts as long ago:
        // a skewed replica that stopped must not hold the merges up by its skew.
        let since = |at: i64| match now.checked_sub(at) {
            Some(d) if d >= 0 => d,
            _ => i64::MAX,
        };
        if let Merge::IfDue { min_gap_ms } = when {
            if since(merged_ms) < min_gap_ms {
                return Ok(Some(skipped));
            }
        }
        let mut tx = self.pool.begin().await?;
        let claimed =
            sqlx::query("UPDATE traffic_merges SET merged_ms = $1 WHERE id = 1 AND merged_ms = $2")
                .bind(now.max(merged_ms.saturating_add(1)))
                .bind(merged_ms)
                .execute(&mut *tx)
                .await?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(match when {
                Merge::Now => None,
                Merge::IfDue { .. } => Some(skipped),
            });
        }
        // Route counts are due once a minute (or now); while few wait, every merge takes them
        // without moving the minute on — else merges taking nothing would keep postponing the
        // minute, and a large batch would never be due.
        let due = when == Merge::Now || since(routes_merged_ms) >= ROUTES_MERGE_EVERY_MS;
        let routes = due || {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(pairs), 0) AS BIGINT) FROM traffic_batches \
                 WHERE kind = 'paths'",
            )
            .fetch_one(&mut *tx)
            .await?;
            waiting <= FEW_ROUTE_ROWS
        };
        let mut merged = Merged {
            ran: true,
            ..Merged::default()
        };
        let mut done: Vec<i64> = Vec::new();
        let batches: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, body FROM traffic_batches WHERE kind = 'traffic' ORDER BY id LIMIT $1",
        )
        .bind(TRAFFIC_BATCHES_PER_MERGE)
        .fetch_all(&mut *tx)
        .await?;
        let mut rows: Vec<TrafficMinute> = Vec::new();
        for (id, body) in batches {
            match decode::<TrafficMinute>(&body) {
                Some(batch) => {
                    rows.extend(batch);
                    done.push(id);
                }
                None => merged.unreadable += 1,
            }
        }
        write_traffic(&mut tx, &rows).await?;
        let mut routes_all_taken = true;
        if routes {
            // Read a page at a time and summed per key as read, so that memory holds one page
            // of bodies and the distinct keys, not every replica's rows; every batch waiting
            // (up to a bound) goes in this merge, so each key is written once a minute however
            // many replicas handed it in.
            let mut sums = PathSums::new();
            let mut after = 0i64;
            let mut pages = 0;
            loop {
                let batches: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT id, body FROM traffic_batches WHERE kind = 'paths' AND id > $1 \
                     ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(PATH_BATCHES_PER_PAGE)
                .fetch_all(&mut *tx)
                .await?;
                let last_page =
                    i64::try_from(batches.len()).unwrap_or(i64::MAX) < PATH_BATCHES_PER_PAGE;
                for (id, body) in batches {
                    after = id;
                    match decode::<PathTraffic>(&body) {
                        Some(batch) => {
                            for r in batch {
                                add_path(&mut sums, r);
                            }
                            done.push(id);
                        }
                        None => merged.unreadable += 1,
                    }
                }
                pages += 1;
                if last_page {
                    break;
                }
                if pages == PATH_PAGES_PER_MERGE {
                    // A backlog: the rest goes with the next merges rather than a minute later.
                    routes_all_taken = false;
                    break;
                }
            }
            let rows: Vec<PathTraffic> = sums
                .into_iter()
                .map(
                    |((minute, context, path, side), (requests, errors, latency_us))| PathTraffic {
                        minute,
                        context,
                        path,
                        side,
                        requests,
                        errors,
                        latency_us,
                    },
                )
                .collect();
            write_paths(&mut tx, &rows).await?;
            merged.routes = true;
        }
        for chunk in done.chunks(DELETE_CHUNK) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "DELETE FROM traffic_batches WHERE id IN ({})",
                list.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        if due && routes_all_taken {
            sqlx::query("UPDATE traffic_merges SET routes_merged_ms = $1 WHERE id = 1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        merged.batches = done.len();
        merged.oldest_waiting_ms = self.oldest_waiting_ms().await?;
        Ok(Some(merged))
    }

    /// How long the oldest batch still waiting has waited (None: none waits).
    async fn oldest_waiting_ms(&self) -> Result<Option<i64>, StoreError> {
        let oldest: Option<i64> =
            sqlx::query_scalar("SELECT created_ms FROM traffic_batches ORDER BY id LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(waited(oldest))
    }
}

/// How long ago a batch handed in at `created_ms` was, if there is one.
fn waited(created_ms: Option<i64>) -> Option<i64> {
    created_ms.map(|at| now_ms().saturating_sub(at).max(0))
}
