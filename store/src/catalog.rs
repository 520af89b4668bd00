//! The catalog and its audit log. A change is one transaction: bump the version if it is still
//! the one the change was based on → load → apply and validate in memory → write what differs
//! → append the audit row and the change's events → commit (and notify other replicas). A
//! change that fails any step leaves the catalog and its version untouched.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use strangler_catalog::{
    AuditEntry, AuditQuery, Catalog, Change, ChangeMeta, Context, Route, Service,
};

use crate::sql::{Backend, SqlStore, NOTIFY_CHANNEL};
use crate::{Registrations, StoreError};
use strangler_catalog::clock::now_ms;

/// The catalog, its version and its audit log.
#[async_trait::async_trait]
pub trait CatalogStore: Send + Sync {
    /// The whole catalog at its current version.
    async fn load(&self) -> Result<Catalog, StoreError>;
    /// The current version only (cheap; used by polling).
    async fn version(&self) -> Result<i64, StoreError>;
    /// Applies `change` if the catalog is still at `based_on`; returns the new catalog.
    async fn apply(
        &self,
        change: &Change,
        based_on: i64,
        meta: &ChangeMeta,
    ) -> Result<Catalog, StoreError>;
    /// Appends an audit row for a change outside the catalog (e.g. the log level).
    async fn record(
        &self,
        meta: &ChangeMeta,
        action: &str,
        target: &str,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Result<AuditEntry, StoreError>;
    /// The audit log, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
    /// The latest audit row of every target that starts with `prefix` (e.g. `context:`).
    async fn last_changes(&self, prefix: &str) -> Result<Vec<AuditEntry>, StoreError>;
    /// Audit rows whose target starts with `prefix`, oldest first, at most `limit`, newest
    /// kept.
    async fn audit_of(&self, prefix: &str, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}

#[async_trait::async_trait]
impl CatalogStore for SqlStore {
    async fn load(&self) -> Result<Catalog, StoreError> {
        // One transaction, so that the version and the rows agree.
        let mut tx = self.pool.begin().await?;
        let catalog = load_from(&mut tx).await;
        tx.rollback().await?;
        let mut catalog = catalog?;
        catalog.registered = self.registered().await?;
        Ok(catalog)
    }

    async fn version(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT version FROM catalog_meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from)
    }

    async fn apply(
        &self,
        change: &Change,
        based_on: i64,
        meta: &ChangeMeta,
    ) -> Result<Catalog, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Bumping first takes the write lock (SQLite) or the row lock (PostgreSQL), so two
        // changes based on the same version cannot both pass.
        let bumped = sqlx::query(
            "UPDATE catalog_meta SET version = version + 1 WHERE id = 1 AND version = $1",
        )
        .bind(based_on)
        .execute(&mut *tx)
        .await?;
        if bumped.rows_affected() != 1 {
            let current: i64 = sqlx::query_scalar("SELECT version FROM catalog_meta WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
            tx.rollback().await?;
            return Err(StoreError::Stale { based_on, current });
        }
        let old = load_from(&mut tx).await?;
        let mut new = old.clone();
        if let Err(e) = change.apply(&mut new, &*self.translators) {
            tx.rollback().await?;
            return Err(e.into());
        }
        new.version = old.version;
        // A context's writes change hands only once the mirrored writes toward the new owner
        // have arrived (or the change is forced, and what it leaves behind is recorded).
        let mut left_behind = Vec::new();
        let moves = strangler_catalog::owner_moves(&old, &new);
        // A move settles before it takes effect; the last one is kept a minute past that, for
        // replicas to see what still has to arrive before the new owner takes writes. Clients
        // cannot set it.
        let now = now_ms();
        for (name, ctx) in new.contexts.iter_mut() {
            ctx.owner_move = if moves.iter().any(|(c, _)| c == name) {
                (self.owner_fence_ms > 0).then(|| strangler_catalog::OwnerMove {
                    at_ms: now,
                    from_ms: now.saturating_add(self.owner_fence_ms),
                })
            } else {
                old.contexts
                    .get(name)
                    .and_then(|c| c.owner_move)
                    .filter(|m| m.from_ms.saturating_add(60_000) > now)
            };
        }
        for (context, owner) in moves {
            let (pending, dead, oldest) =
                crate::outbox::undelivered(&mut tx, &context, owner).await?;
            if pending == 0 && dead == 0 {
                continue;
            }
            if pending > 0 && !meta.force {
                tx.rollback().await?;
                return Err(StoreError::NotDrained {
                    context,
                    toward: owner,
                    pending,
                    oldest_ms: oldest.map(|t| (now_ms() - t).max(0)),
                    dead,
                });
            }
            left_behind.push(serde_json::json!({
                "context": context,
                "toward": owner,
                "pending": pending,
                "dead": dead,
                "oldest_ms": oldest.map(|t| (now_ms() - t).max(0)),
            }));
        }

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
        .bind(change.snapshot(&old).map(|v| v.to_string()))
        .bind(
            change
                .snapshot(&new)
                .map(|mut v| {
                    if !left_behind.is_empty() {
                        if let Some(o) = v.as_object_mut() {
                            o.insert("left_behind".into(), left_behind.clone().into());
                        }
                    }
                    v
                })
                .map(|v| v.to_string()),
        )
        .bind(&meta.reason)
        .bind(new.version)
        .execute(&mut *tx)
        .await?;
        // What the change did to contexts' traffic becomes events, in this transaction.
        for event in change.events(&old, &new, meta) {
            sqlx::query(
                "INSERT INTO events (context, type, data, created_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(&event.context)
            .bind(event.kind)
            .bind(event.data.to_string())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        if self.backend == Backend::Postgres {
            // Delivered to listeners when (and only if) the transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(new.version.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
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
        .await?;
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

    async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::from(q.limit.unwrap_or(50).clamp(1, 500));
        let rows: Vec<AuditRow> = sqlx::query_as(
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
        .await?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    async fn last_changes(&self, prefix: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at_ms, actor, action, target, before, after, reason, version FROM audit \
             WHERE id IN (SELECT MAX(id) FROM audit WHERE substr(target, 1, CAST($1 AS INTEGER)) = $2 \
                          GROUP BY target) ORDER BY id DESC",
        )
        .bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
        .bind(prefix)
        .fetch_all(&self.pool)
        .await
        ?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    async fn audit_of(&self, prefix: &str, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at_ms, actor, action, target, before, after, reason, version FROM \
             (SELECT * FROM audit WHERE substr(target, 1, CAST($1 AS INTEGER)) = $2 ORDER BY id DESC LIMIT $3) AS a \
             ORDER BY id",
        )
        .bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
        .bind(prefix)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        ?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}

/// The catalog as one connection (or transaction) sees it.
async fn load_from(conn: &mut sqlx::AnyConnection) -> Result<Catalog, StoreError> {
    let version: i64 = sqlx::query_scalar("SELECT version FROM catalog_meta WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    let services =
        documents::<Service>(&mut *conn, "SELECT name AS key, body FROM services").await?;
    let contexts =
        documents::<Context>(&mut *conn, "SELECT name AS key, body FROM contexts").await?;
    let routes = documents::<Route>(&mut *conn, "SELECT id AS key, body FROM routes").await?;
    Ok(Catalog {
        version,
        services,
        contexts,
        routes,
        registered: BTreeMap::new(),
    })
}

/// An entity stored as a JSON document under its key.
#[derive(sqlx::FromRow)]
struct Document {
    key: String,
    body: String,
}

/// The documents `sql` selects (as `key, body`), parsed.
async fn documents<'c, T: DeserializeOwned>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    sql: &'static str,
) -> Result<BTreeMap<String, T>, StoreError> {
    let found: Vec<Document> = sqlx::query_as(sql).fetch_all(executor).await?;
    let mut out = BTreeMap::new();
    for Document { key, body } in found {
        let value = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("{sql}: row `{key}`: {e}")))?;
        out.insert(key, value);
    }
    Ok(out)
}

/// An entity as the JSON document it is stored as.
fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(value)?)
}

/// A row of the audit log.
#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at_ms: i64,
    actor: String,
    action: String,
    target: String,
    before: Option<String>,
    after: Option<String>,
    reason: String,
    version: i64,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        // A snapshot that no longer parses is shown as missing, not as a failed page.
        let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
        AuditEntry {
            id: r.id,
            at_ms: r.at_ms,
            actor: r.actor,
            action: r.action,
            target: r.target,
            before: parse(r.before),
            after: parse(r.after),
            reason: r.reason,
            version: r.version,
        }
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
            .await?;
    }
    for (name, value) in new {
        if old.get(name) == Some(value) {
            continue;
        }
        let body = json(value)?;
        sqlx::query(&format!(
            "INSERT INTO {table} ({key}, body) VALUES ($1, $2) \
             ON CONFLICT ({key}) DO UPDATE SET body = excluded.body"
        ))
        .bind(name)
        .bind(body)
        .execute(&mut **tx)
        .await?;
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
            .await?;
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
        .bind(json(route)?)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
