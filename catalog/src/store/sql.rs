//! [`SqlStore`]: the store on SQLite or PostgreSQL through sqlx's `Any` driver.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::watch;

use super::{
    now_ms, AuditEntry, AuditQuery, ChangeMeta, ContractPair, Delivery, Event, LastSeen,
    NoiseProposal, OutboxItem, OutboxStats, PathTraffic, ShadowExample, ShadowMinute,
    SignatureCount, SinkStats, Store, StoreError, TrafficMinute, LATENCY_BUCKETS,
};

/// Example pairs kept per (context, signature).
const EXAMPLES_PER_SIGNATURE: i64 = 5;
use crate::change::Change;
use crate::model::{Catalog, Context, Route, Service};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The catalog store on a SQL database.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    backend: Backend,
    url: String,
    /// The version after each change made through this process.
    changed: Arc<watch::Sender<i64>>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel PostgreSQL notifies on after each change (its payload is the new version).
pub const NOTIFY_CHANNEL: &str = "strangler_catalog";

/// A `traffic_minutes` row (or a sum of them, with the same column names); `minute` stands
/// in for a row without a minute column.
fn traffic_row(row: &AnyRow, minute: Option<i64>) -> Result<TrafficMinute, StoreError> {
    Ok(TrafficMinute {
        minute: match minute {
            Some(m) => m,
            None => row.try_get("minute").map_err(unavailable)?,
        },
        context: row.try_get("context").map_err(unavailable)?,
        side: row.try_get("side").map_err(unavailable)?,
        requests: row.try_get("requests").map_err(unavailable)?,
        errors: row.try_get("errors").map_err(unavailable)?,
        latency_us: row.try_get("latency_us").map_err(unavailable)?,
        fallbacks: row.try_get("fallbacks").map_err(unavailable)?,
        buckets: (0..LATENCY_BUCKETS)
            .map(|i| {
                row.try_get::<i64, _>(format!("b{i}").as_str())
                    .map_err(unavailable)
            })
            .collect::<Result<_, _>>()?,
    })
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
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
        let columns: Vec<String> = (0..LATENCY_BUCKETS).map(|i| format!("b{i}")).collect();
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
            "SELECT {key}, side, CAST(SUM(requests) AS BIGINT) AS requests, \
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
        let rows = sqlx::query(&sql)
            .bind(since_minute)
            .bind(whole)
            .bind(whole)
            .bind(if context.is_some() { "one" } else { "" })
            .bind(context.unwrap_or(""))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| traffic_row(row, Some(since_minute)))
            .collect()
    }

    /// Opens (and migrates) the store at `url`: `sqlite://path/to/file.db` (created if missing)
    /// or `postgres://user@host/db`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = if path.contains("mode=") {
                url.to_owned()
            } else {
                format!("{url}{sep}mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::Unavailable(format!(
                "`{url}` is not a store URL; use sqlite://FILE or postgres://USER@HOST/DB"
            )));
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(3));
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets the dashboard read while a change is written; the busy timeout
                    // makes concurrent writers wait instead of failing.
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await.map_err(unavailable)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrating the catalog store: {e}")))?;
        let (changed, _) = watch::channel(0);
        Ok(Self {
            pool,
            backend,
            url,
            changed: Arc::new(changed),
        })
    }

    /// Changes made through this process, as they commit (the in-process notification).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.changed.subscribe()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL the store was opened with (for a PostgreSQL listener).
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn load_from(conn: &mut sqlx::AnyConnection) -> Result<Catalog, StoreError> {
        let version: i64 = sqlx::query_scalar("SELECT version FROM catalog_meta WHERE id = 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
        let services = rows::<Service>(&mut *conn, "SELECT name, body FROM services").await?;
        let contexts = rows::<Context>(&mut *conn, "SELECT name, body FROM contexts").await?;
        let routes = rows::<Route>(&mut *conn, "SELECT id, body FROM routes").await?;
        Ok(Catalog {
            version,
            services,
            contexts,
            routes,
            registered: BTreeMap::new(),
        })
    }
}

async fn rows<'c, T: DeserializeOwned>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    sql: &'static str,
) -> Result<BTreeMap<String, T>, StoreError> {
    let found: Vec<AnyRow> = sqlx::query(sql)
        .fetch_all(executor)
        .await
        .map_err(unavailable)?;
    let mut out = BTreeMap::new();
    for row in found {
        let key: String = row.try_get(0).map_err(unavailable)?;
        let body: String = row.try_get(1).map_err(unavailable)?;
        let value = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("{sql}: row `{key}`: {e}")))?;
        out.insert(key, value);
    }
    Ok(out)
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl SqlStore {
    /// Tells other replicas that the registrations changed (PostgreSQL only; on commit).
    async fn notify_registrations(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, 'registrations')")
                .bind(NOTIFY_CHANNEL)
                .execute(&mut **tx)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

/// The entity a change targets, as JSON, in a catalog (for the audit's before/after).
fn snapshot_of(catalog: &Catalog, target: &str) -> Option<serde_json::Value> {
    let (kind, name) = target.split_once(':').unwrap_or((target, ""));
    match kind {
        "service" => catalog
            .services
            .get(name)
            .and_then(|v| serde_json::to_value(v).ok()),
        "context" => catalog
            .contexts
            .get(name)
            .and_then(|v| serde_json::to_value(v).ok()),
        "route" => catalog
            .routes
            .get(name)
            .and_then(|v| serde_json::to_value(v).ok()),
        _ => Some(serde_json::json!({
            "services": catalog.services.len(),
            "contexts": catalog.contexts.len(),
            "routes": catalog.routes.len(),
        })),
    }
}

fn entry_from(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    let parse = |s: Option<String>| -> Option<serde_json::Value> {
        s.and_then(|s| serde_json::from_str(&s).ok())
    };
    Ok(AuditEntry {
        id: row.try_get("id").map_err(unavailable)?,
        at_ms: row.try_get("at_ms").map_err(unavailable)?,
        actor: row.try_get("actor").map_err(unavailable)?,
        action: row.try_get("action").map_err(unavailable)?,
        target: row.try_get("target").map_err(unavailable)?,
        before: parse(row.try_get("before").map_err(unavailable)?),
        after: parse(row.try_get("after").map_err(unavailable)?),
        reason: row.try_get("reason").map_err(unavailable)?,
        version: row.try_get("version").map_err(unavailable)?,
    })
}

#[async_trait::async_trait]
impl Store for SqlStore {
    async fn load(&self) -> Result<Catalog, StoreError> {
        // One transaction, so that the version and the rows agree.
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let catalog = Self::load_from(&mut tx).await;
        tx.rollback().await.map_err(unavailable)?;
        let mut catalog = catalog?;
        catalog.registered = self.registered().await?;
        Ok(catalog)
    }

    async fn version(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT version FROM catalog_meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn apply(
        &self,
        change: &Change,
        based_on: i64,
        meta: &ChangeMeta,
    ) -> Result<Catalog, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // Bumping first takes the write lock (SQLite) or the row lock (PostgreSQL), so two
        // changes based on the same version cannot both pass.
        let bumped = sqlx::query(
            "UPDATE catalog_meta SET version = version + 1 WHERE id = 1 AND version = $1",
        )
        .bind(based_on)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if bumped.rows_affected() != 1 {
            let current: i64 = sqlx::query_scalar("SELECT version FROM catalog_meta WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
            tx.rollback().await.map_err(unavailable)?;
            return Err(StoreError::Stale { based_on, current });
        }
        let old = Self::load_from(&mut tx).await?;
        let mut new = old.clone();
        if let Err(e) = change.apply(&mut new) {
            tx.rollback().await.map_err(unavailable)?;
            return Err(e.into());
        }
        new.version = old.version;

        write_diff(&mut tx, &old.services, &new.services, "services", "name").await?;
        write_diff(&mut tx, &old.contexts, &new.contexts, "contexts", "name").await?;
        write_routes(&mut tx, &old.routes, &new.routes).await?;

        let target = change.target();
        sqlx::query(
            "INSERT INTO audit (at_ms, actor, action, target, before, after, reason, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(now_ms())
        .bind(&meta.actor)
        .bind(change.action_name())
        .bind(&target)
        .bind(snapshot_of(&old, &target).map(|v| v.to_string()))
        .bind(snapshot_of(&new, &target).map(|v| v.to_string()))
        .bind(&meta.reason)
        .bind(new.version)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        // What changed for each context's traffic becomes an event, in this transaction.
        for (name, ctx) in &new.contexts {
            let before = old.contexts.get(name);
            if before.is_some_and(|b| b.state == ctx.state && b.weight == ctx.weight) {
                continue;
            }
            let action = change.action_name();
            let kind = match (action.as_str(), before.map(|b| b.state)) {
                ("autopilot-rollback", _) => "io.strangler.autopilot.rollback",
                ("autopilot-promote", Some(crate::MigrationState::Shadow)) => {
                    "io.strangler.autopilot.gate.passed"
                }
                (a, _) if a.starts_with("autopilot-") => "io.strangler.autopilot.step",
                _ => "io.strangler.context.state.changed",
            };
            let data = serde_json::json!({
                "context": name,
                "from": before.map(|b| b.state.as_str()),
                "to": ctx.state.as_str(),
                "weight_from": before.map(|b| b.weight),
                "weight_to": ctx.weight,
                "actor": meta.actor,
                "action": action,
                "reason": meta.reason,
                "version": new.version,
            });
            sqlx::query(
                "INSERT INTO events (context, type, data, created_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(kind)
            .bind(data.to_string())
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        if self.backend == Backend::Postgres {
            // Delivered to listeners when (and only if) the transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(new.version.to_string())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        self.changed.send_replace(new.version);
        // `load_from` read the bumped version; the catalog we return carries it.
        Ok(new)
    }

    async fn record(
        &self,
        meta: &ChangeMeta,
        action: &str,
        target: &str,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Result<AuditEntry, StoreError> {
        let version = self.version().await?;
        let at_ms = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit (at_ms, actor, action, target, before, after, reason, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(at_ms)
        .bind(&meta.actor)
        .bind(action)
        .bind(target)
        .bind(before.as_ref().map(|v| v.to_string()))
        .bind(after.as_ref().map(|v| v.to_string()))
        .bind(&meta.reason)
        .bind(version)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(AuditEntry {
            id,
            at_ms,
            actor: meta.actor.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            before,
            after,
            reason: meta.reason.clone(),
            version,
        })
    }

    async fn register(&self, service: &str, url: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let known: Option<String> = sqlx::query_scalar("SELECT name FROM services WHERE name = $1")
            .bind(service)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        if known.is_none() {
            return Err(StoreError::Change(crate::change::ChangeError::NotFound {
                kind: "service",
                name: service.to_owned(),
            }));
        }
        let now = now_ms();
        let expires = now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX / 2));
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT expires_at_ms FROM registrations WHERE service = $1 AND url = $2",
        )
        .bind(service)
        .bind(url)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO registrations (service, url, expires_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (service, url) DO UPDATE SET expires_at_ms = excluded.expires_at_ms",
        )
        .bind(service)
        .bind(url)
        .bind(expires)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let new = live.is_none_or(|at| at <= now);
        if new {
            self.notify_registrations(&mut tx).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        if new {
            self.changed.send_modify(|_| {});
        }
        Ok(new)
    }

    async fn deregister(&self, service: &str, url: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let gone = sqlx::query("DELETE FROM registrations WHERE service = $1 AND url = $2")
            .bind(service)
            .bind(url)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected()
            > 0;
        if gone {
            self.notify_registrations(&mut tx).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        if gone {
            self.changed.send_modify(|_| {});
        }
        Ok(gone)
    }

    async fn add_shadow(&self, rows: &[ShadowMinute]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
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
            .map_err(unavailable)?;
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
                .await
                .map_err(unavailable)?;
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
                .map_err(unavailable)?;
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
                .await
                .map_err(unavailable)?;
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
                .map_err(unavailable)?;
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
                .await
                .map_err(unavailable)?;
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
                .await
                .map_err(unavailable)?;
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
                .await
                .map_err(unavailable)?;
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
                .await
                .map_err(unavailable)?;
            }
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn shadow_examples(&self, context: &str) -> Result<Vec<ShadowExample>, StoreError> {
        let rows = sqlx::query(
            "SELECT signature, at_ms, method, path, legacy_status, new_status, legacy_body, new_body \
             FROM shadow_examples WHERE context = $1 ORDER BY id DESC LIMIT 100",
        )
        .bind(context)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(ShadowExample {
                    signature: row.try_get(0).map_err(unavailable)?,
                    at_ms: row.try_get(1).map_err(unavailable)?,
                    method: row.try_get(2).map_err(unavailable)?,
                    path: row.try_get(3).map_err(unavailable)?,
                    legacy_status: row.try_get(4).map_err(unavailable)?,
                    new_status: row.try_get(5).map_err(unavailable)?,
                    legacy_body: row.try_get(6).map_err(unavailable)?,
                    new_body: row.try_get(7).map_err(unavailable)?,
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
        .await
        .map_err(unavailable)?;
        let mut out: BTreeMap<i64, ShadowMinute> = BTreeMap::new();
        for row in rows {
            let minute: i64 = row.try_get(0).map_err(unavailable)?;
            out.insert(
                minute,
                ShadowMinute {
                    minute,
                    context: context.to_owned(),
                    compared: row.try_get(1).map_err(unavailable)?,
                    matched: row.try_get(2).map_err(unavailable)?,
                    legacy_us: row.try_get(3).map_err(unavailable)?,
                    new_us: row.try_get(4).map_err(unavailable)?,
                    learned: row.try_get(5).map_err(unavailable)?,
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
        .await
        .map_err(unavailable)?;
        for row in skips {
            let minute: i64 = row.try_get(0).map_err(unavailable)?;
            let reason: String = row.try_get(1).map_err(unavailable)?;
            let count: i64 = row.try_get(2).map_err(unavailable)?;
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
        .await
        .map_err(unavailable)?;
        for row in sigs {
            let minute: i64 = row.try_get(0).map_err(unavailable)?;
            if let Some(m) = out.get_mut(&minute) {
                m.signatures.push(SignatureCount {
                    route: row.try_get(1).map_err(unavailable)?,
                    signature: row.try_get(2).map_err(unavailable)?,
                    count: row.try_get(3).map_err(unavailable)?,
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
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(NoiseProposal {
                    path: row.try_get(0).map_err(unavailable)?,
                    count: row.try_get(1).map_err(unavailable)?,
                    first_ms: row.try_get(2).map_err(unavailable)?,
                    last_ms: row.try_get(3).map_err(unavailable)?,
                    dismissed: row.try_get::<i64, _>(4).map_err(unavailable)? != 0,
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
                .await
                .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_traffic(&self, rows: &[TrafficMinute]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let buckets: Vec<String> = (0..LATENCY_BUCKETS).map(|i| format!("b{i}")).collect();
        let upsert = |table: &str| {
            format!(
                "INSERT INTO {table} (minute, context, side, requests, errors, latency_us, fallbacks, {}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, {}) ON CONFLICT (minute, context, side) DO UPDATE SET \
                 requests = {table}.requests + excluded.requests, \
                 errors = {table}.errors + excluded.errors, \
                 latency_us = {table}.latency_us + excluded.latency_us, \
                 fallbacks = {table}.fallbacks + excluded.fallbacks, {}",
                buckets.join(", "),
                (0..LATENCY_BUCKETS)
                    .map(|i| format!("${}", i + 8))
                    .collect::<Vec<_>>()
                    .join(", "),
                buckets
                    .iter()
                    .map(|b| format!("{b} = {table}.{b} + excluded.{b}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let (minutes, hours) = (upsert("traffic_minutes"), upsert("traffic_hours"));
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        for r in rows {
            for (sql, minute) in [(&minutes, r.minute), (&hours, r.minute.div_euclid(60) * 60)] {
                let mut q = sqlx::query(sql)
                    .bind(minute)
                    .bind(&r.context)
                    .bind(&r.side)
                    .bind(r.requests)
                    .bind(r.errors)
                    .bind(r.latency_us)
                    .bind(r.fallbacks);
                for i in 0..LATENCY_BUCKETS {
                    q = q.bind(r.buckets.get(i).copied().unwrap_or(0));
                }
                q.execute(&mut *tx).await.map_err(unavailable)?;
            }
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn traffic(
        &self,
        context: Option<&str>,
        since_minute: i64,
    ) -> Result<Vec<TrafficMinute>, StoreError> {
        let buckets: Vec<String> = (0..LATENCY_BUCKETS).map(|i| format!("b{i}")).collect();
        let sql = format!(
            "SELECT minute, context, side, requests, errors, latency_us, fallbacks, {} FROM traffic_minutes \
             WHERE minute >= $1 AND ($2 = '' OR context = $3) ORDER BY minute, context, side",
            buckets.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(since_minute)
            .bind(if context.is_some() { "one" } else { "" })
            .bind(context.unwrap_or(""))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(|row| traffic_row(row, None)).collect()
    }

    async fn traffic_hourly(
        &self,
        context: &str,
        since_minute: i64,
    ) -> Result<Vec<TrafficMinute>, StoreError> {
        let buckets: Vec<String> = (0..LATENCY_BUCKETS).map(|i| format!("b{i}")).collect();
        let sql = format!(
            "SELECT minute, context, side, requests, errors, latency_us, fallbacks, {} \
             FROM traffic_hours WHERE context = $1 AND minute >= $2 ORDER BY minute, side",
            buckets.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(context)
            .bind(since_minute.div_euclid(60) * 60)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(|row| traffic_row(row, None)).collect()
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
        let rows = sqlx::query(&format!(
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
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(TrafficMinute {
                    minute: row.try_get("bucket").map_err(unavailable)?,
                    context: String::new(),
                    side: row.try_get("side").map_err(unavailable)?,
                    requests: row.try_get("requests").map_err(unavailable)?,
                    errors: row.try_get("errors").map_err(unavailable)?,
                    latency_us: row.try_get("latency_us").map_err(unavailable)?,
                    fallbacks: row.try_get("fallbacks").map_err(unavailable)?,
                    buckets: Vec::new(),
                })
            })
            .collect()
    }

    async fn prune_shadow(&self, before_minute: i64) -> Result<u64, StoreError> {
        let before_ms = before_minute.saturating_mul(60_000);
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
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
        ] {
            deleted += sqlx::query(sql)
                .bind(bound)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(deleted)
    }

    async fn outbox_put(&self, items: &[OutboxItem]) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let mut ids = Vec::with_capacity(items.len());
        let now = now_ms();
        for i in items {
            let headers = serde_json::to_string(&i.headers)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let legacy_headers = serde_json::to_string(&i.legacy_headers)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let row = sqlx::query(
                "INSERT INTO shadow_outbox (context, route, idempotency_key, method, uri, headers, \
                 body, legacy_status, legacy_headers, legacy_body, legacy_us, created_ms, next_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
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
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
            ids.push(row.try_get(0).map_err(unavailable)?);
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(ids)
    }

    async fn outbox_claim(&self, limit: i64, lease_ms: i64) -> Result<Vec<OutboxItem>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT id, context, route, idempotency_key, method, uri, headers, body, legacy_status, \
             legacy_headers, legacy_body, legacy_us, created_ms, attempts, next_at_ms \
             FROM shadow_outbox o WHERE dead = 0 AND next_at_ms <= $1 AND NOT EXISTS \
             (SELECT 1 FROM shadow_outbox e WHERE e.context = o.context AND e.dead = 0 \
              AND e.id < o.id AND e.next_at_ms > $1) ORDER BY id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0).map_err(unavailable)?;
            let due: i64 = row.try_get(14).map_err(unavailable)?;
            // Another replica may have claimed it since the select: the update decides.
            let claimed = sqlx::query(
                "UPDATE shadow_outbox SET next_at_ms = $1 WHERE id = $2 AND next_at_ms = $3 AND dead = 0",
            )
            .bind(now + lease_ms)
            .bind(id)
            .bind(due)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?
            .rows_affected()
                == 1;
            if !claimed {
                continue;
            }
            let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("outbox {id}: {e}"));
            out.push(OutboxItem {
                id,
                context: row.try_get(1).map_err(unavailable)?,
                route: row.try_get(2).map_err(unavailable)?,
                idempotency_key: row.try_get(3).map_err(unavailable)?,
                method: row.try_get(4).map_err(unavailable)?,
                uri: row.try_get(5).map_err(unavailable)?,
                headers: serde_json::from_str(&row.try_get::<String, _>(6).map_err(unavailable)?)
                    .map_err(corrupt)?,
                body: row.try_get(7).map_err(unavailable)?,
                legacy_status: row.try_get(8).map_err(unavailable)?,
                legacy_headers: serde_json::from_str(
                    &row.try_get::<String, _>(9).map_err(unavailable)?,
                )
                .map_err(corrupt)?,
                legacy_body: row.try_get(10).map_err(unavailable)?,
                legacy_us: row.try_get(11).map_err(unavailable)?,
                created_ms: row.try_get(12).map_err(unavailable)?,
                attempts: row.try_get(13).map_err(unavailable)?,
            });
        }
        Ok(out)
    }

    async fn outbox_done(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM shadow_outbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
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
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn outbox_stats(&self, context: &str) -> Result<OutboxStats, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN dead = 0 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(dead), 0) AS BIGINT), MIN(CASE WHEN dead = 0 THEN created_ms END) \
             FROM shadow_outbox WHERE context = $1",
        )
        .bind(context)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        let last_error = sqlx::query(
            "SELECT last_error FROM shadow_outbox WHERE context = $1 AND last_error IS NOT NULL \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(context)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .map(|r| r.try_get::<String, _>(0))
        .transpose()
        .map_err(unavailable)?;
        let oldest: Option<i64> = row.try_get(2).map_err(unavailable)?;
        Ok(OutboxStats {
            pending: row.try_get(0).map_err(unavailable)?,
            dead: row.try_get(1).map_err(unavailable)?,
            oldest_pending_ms: oldest.map(|t| (now_ms() - t).max(0)),
            last_error,
        })
    }

    async fn registered(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let rows = sqlx::query(
            "SELECT service, url FROM registrations WHERE expires_at_ms > $1 ORDER BY service, url",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in rows {
            let service: String = row.try_get(0).map_err(unavailable)?;
            let url: String = row.try_get(1).map_err(unavailable)?;
            out.entry(service).or_default().push(url);
        }
        Ok(out)
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
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(ShadowMinute {
                    minute: since_minute,
                    context: row.try_get(0).map_err(unavailable)?,
                    compared: row.try_get(1).map_err(unavailable)?,
                    matched: row.try_get(2).map_err(unavailable)?,
                    legacy_us: row.try_get(3).map_err(unavailable)?,
                    new_us: row.try_get(4).map_err(unavailable)?,
                    learned: row.try_get(5).map_err(unavailable)?,
                    ..ShadowMinute::default()
                })
            })
            .collect()
    }

    async fn last_changes(&self, prefix: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, actor, action, target, before, after, reason, version FROM audit \
             WHERE id IN (SELECT MAX(id) FROM audit WHERE substr(target, 1, CAST($1 AS INTEGER)) = $2 \
                          GROUP BY target) ORDER BY id DESC",
        )
        .bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
        .bind(prefix)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(entry_from).collect()
    }

    async fn audit_of(&self, prefix: &str, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, actor, action, target, before, after, reason, version FROM \
             (SELECT * FROM audit WHERE substr(target, 1, CAST($1 AS INTEGER)) = $2 ORDER BY id DESC LIMIT $3) AS a \
             ORDER BY id",
        )
        .bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
        .bind(prefix)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(entry_from).collect()
    }

    async fn add_path_traffic(&self, rows: &[PathTraffic]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        for r in rows {
            let hour = r.minute.div_euclid(60) * 60;
            let day = r.minute.div_euclid(1440) * 1440;
            for (table, at) in [("path_traffic", hour), ("path_traffic_days", day)] {
                sqlx::query(&format!(
                    "INSERT INTO {table} (context, minute, path, side, requests, errors, latency_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (context, minute, path, side) \
                     DO UPDATE SET requests = {table}.requests + excluded.requests, \
                     errors = {table}.errors + excluded.errors, \
                     latency_us = {table}.latency_us + excluded.latency_us"
                ))
                .bind(&r.context)
                .bind(at)
                .bind(&r.path)
                .bind(&r.side)
                .bind(r.requests)
                .bind(r.errors)
                .bind(r.latency_us)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            }
            sqlx::query(
                "INSERT INTO path_last_seen (context, path, side, minute) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (context, path, side) DO UPDATE SET minute = \
                 CASE WHEN excluded.minute > path_last_seen.minute THEN excluded.minute \
                 ELSE path_last_seen.minute END",
            )
            .bind(&r.context)
            .bind(&r.path)
            .bind(&r.side)
            .bind(r.minute)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn path_traffic(
        &self,
        context: &str,
        since_minute: i64,
    ) -> Result<Vec<PathTraffic>, StoreError> {
        // Hours up to the first whole day, then days.
        let hour = since_minute.div_euclid(60) * 60;
        let day = (hour + 1439).div_euclid(1440) * 1440;
        let rows = sqlx::query(
            "SELECT path, side, CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT), \
             CAST(SUM(latency_us) AS BIGINT) FROM \
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
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(PathTraffic {
                    minute: since_minute,
                    context: context.to_owned(),
                    path: row.try_get(0).map_err(unavailable)?,
                    side: row.try_get(1).map_err(unavailable)?,
                    requests: row.try_get(2).map_err(unavailable)?,
                    errors: row.try_get(3).map_err(unavailable)?,
                    latency_us: row.try_get(4).map_err(unavailable)?,
                })
            })
            .collect()
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
        let mut q = sqlx::query(&sql).bind(side);
        for c in contexts {
            q = q.bind(c);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(LastSeen {
                    context: row.try_get(0).map_err(unavailable)?,
                    path: row.try_get(1).map_err(unavailable)?,
                    side: side.to_owned(),
                    minute: row.try_get(2).map_err(unavailable)?,
                })
            })
            .collect()
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
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(ShadowMinute {
                    minute: row.try_get(0).map_err(unavailable)?,
                    context: context.to_owned(),
                    compared: row.try_get(1).map_err(unavailable)?,
                    matched: row.try_get(2).map_err(unavailable)?,
                    legacy_us: row.try_get(3).map_err(unavailable)?,
                    new_us: row.try_get(4).map_err(unavailable)?,
                    ..ShadowMinute::default()
                })
            })
            .collect()
    }

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
        .map_err(unavailable)
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
        .await
        .map_err(unavailable)?;
        let rows = sqlx::query(
            "SELECT e.id, e.context, e.type, e.data, e.created_ms, d.attempts \
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
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                let data: String = r.try_get(3).map_err(unavailable)?;
                Ok(Delivery {
                    event: Event {
                        id: r.try_get(0).map_err(unavailable)?,
                        context: r.try_get(1).map_err(unavailable)?,
                        kind: r.try_get(2).map_err(unavailable)?,
                        data: serde_json::from_str(&data)
                            .map_err(|e| StoreError::Corrupt(format!("event data: {e}")))?,
                        created_ms: r.try_get(4).map_err(unavailable)?,
                    },
                    attempts: r.try_get(5).map_err(unavailable)?,
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
        .map_err(unavailable)?;
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
        .map_err(unavailable)?;
        Ok(())
    }

    async fn sink_stats(&self) -> Result<Vec<SinkStats>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.sink, \
             CAST(SUM(CASE WHEN d.state = 'pending' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN d.state = 'done' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN d.state = 'dead' THEN 1 ELSE 0 END) AS BIGINT), \
             MIN(CASE WHEN d.state = 'pending' THEN e.created_ms END) \
             FROM event_deliveries d JOIN events e ON e.id = d.event_id GROUP BY d.sink ORDER BY d.sink",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let now = now_ms();
        let mut out = Vec::new();
        for r in rows {
            let sink: String = r.try_get(0).map_err(unavailable)?;
            let last_error: Option<String> = sqlx::query_scalar(
                "SELECT last_error FROM event_deliveries WHERE sink = $1 AND last_error IS NOT NULL \
                 ORDER BY event_id DESC LIMIT 1",
            )
            .bind(&sink)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .flatten();
            let oldest: Option<i64> = r.try_get(4).map_err(unavailable)?;
            out.push(SinkStats {
                sink,
                pending: r.try_get(1).map_err(unavailable)?,
                delivered: r.try_get(2).map_err(unavailable)?,
                dead: r.try_get(3).map_err(unavailable)?,
                last_error,
                oldest_pending_ms: oldest.map(|c| now - c),
            });
        }
        Ok(out)
    }

    async fn contract_pairs(&self, context: &str) -> Result<Vec<ContractPair>, StoreError> {
        let rows = sqlx::query(
            "SELECT route, at_ms, method, uri, request_type, request_body, status, response_type, \
             response_body FROM contract_pairs WHERE context = $1 ORDER BY route, id DESC",
        )
        .bind(context)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(ContractPair {
                    route: r.try_get(0).map_err(unavailable)?,
                    at_ms: r.try_get(1).map_err(unavailable)?,
                    method: r.try_get(2).map_err(unavailable)?,
                    uri: r.try_get(3).map_err(unavailable)?,
                    request_type: r.try_get(4).map_err(unavailable)?,
                    request_body: r.try_get(5).map_err(unavailable)?,
                    status: r.try_get(6).map_err(unavailable)?,
                    response_type: r.try_get(7).map_err(unavailable)?,
                    response_body: r.try_get(8).map_err(unavailable)?,
                })
            })
            .collect()
    }

    async fn lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms \
             WHERE leases.holder = excluded.holder OR leases.expires_ms < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(ttl_ms))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT holder, expires_ms FROM leases WHERE name = $1 AND expires_ms >= $2",
        )
        .bind(name)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|r| {
            Ok((
                r.try_get(0).map_err(unavailable)?,
                r.try_get(1).map_err(unavailable)?,
            ))
        })
        .transpose()
    }

    async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::from(q.limit.unwrap_or(50).clamp(1, 500));
        let rows = sqlx::query(
            "SELECT id, at_ms, actor, action, target, before, after, reason, version FROM audit \
             WHERE ($1 IS NULL OR target = $1) AND ($2 IS NULL OR actor = $2) \
               AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5",
        )
        .bind(q.target.clone())
        .bind(q.actor.clone())
        .bind(q.action.clone())
        .bind(q.before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(entry_from).collect()
    }
}

async fn write_diff<T: Serialize + PartialEq>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    table: &'static str,
    key: &'static str,
) -> Result<(), StoreError> {
    for name in old.keys().filter(|k| !new.contains_key(*k)) {
        sqlx::query(&format!("DELETE FROM {table} WHERE {key} = $1"))
            .bind(name)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
    }
    for (name, value) in new {
        if old.get(name) == Some(value) {
            continue;
        }
        let body = json(value);
        sqlx::query(&format!(
            "INSERT INTO {table} ({key}, body) VALUES ($1, $2) \
             ON CONFLICT ({key}) DO UPDATE SET body = excluded.body"
        ))
        .bind(name)
        .bind(body)
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

async fn write_routes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    old: &BTreeMap<String, Route>,
    new: &BTreeMap<String, Route>,
) -> Result<(), StoreError> {
    for id in old.keys().filter(|k| !new.contains_key(*k)) {
        sqlx::query("DELETE FROM routes WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
    }
    for (id, route) in new {
        if old.get(id) == Some(route) {
            continue;
        }
        sqlx::query(
            "INSERT INTO routes (id, context, body) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET context = excluded.context, body = excluded.body",
        )
        .bind(id)
        .bind(&route.context)
        .bind(json(route))
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}
