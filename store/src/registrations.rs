//! Instances that register themselves (and renew by heartbeat) for a time to live; the
//! follower reads the live ones into the catalog it serves.

use std::collections::BTreeMap;

use strangler_catalog::ChangeError;

use crate::sql::{Backend, SqlStore, NOTIFY_CHANNEL};
use crate::StoreError;
use strangler_catalog::clock::now_ms;

/// Service instances that registered themselves, with a time to live.
#[async_trait::async_trait]
pub trait Registrations: Send + Sync {
    /// Registers (or, as a heartbeat, renews) an instance of `service` for `ttl_ms`. Returns
    /// whether it is new. Unknown services are refused.
    async fn register(&self, service: &str, url: &str, ttl_ms: u64) -> Result<bool, StoreError>;
    /// Removes a registration; returns whether there was one.
    async fn deregister(&self, service: &str, url: &str) -> Result<bool, StoreError>;
    /// The registrations that have not expired, by service.
    async fn registered(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError>;
}

#[async_trait::async_trait]
impl Registrations for SqlStore {
    async fn register(&self, service: &str, url: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let known: Option<String> = sqlx::query_scalar("SELECT name FROM services WHERE name = $1")
            .bind(service)
            .fetch_optional(&self.pool)
            .await?;
        if known.is_none() {
            return Err(StoreError::Change(ChangeError::NotFound {
                kind: "service",
                name: service.to_owned(),
            }));
        }
        let now = now_ms();
        let expires = now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX / 2));
        let mut tx = self.pool.begin().await?;
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT expires_at_ms FROM registrations WHERE service = $1 AND url = $2",
        )
        .bind(service)
        .bind(url)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO registrations (service, url, expires_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (service, url) DO UPDATE SET expires_at_ms = excluded.expires_at_ms",
        )
        .bind(service)
        .bind(url)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        let new = live.is_none_or(|at| at <= now);
        if new {
            self.notify_registrations(&mut tx).await?;
        }
        tx.commit().await?;
        if new {
            self.changed.send_modify(|_| {});
        }
        Ok(new)
    }

    async fn deregister(&self, service: &str, url: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM registrations WHERE service = $1 AND url = $2")
            .bind(service)
            .bind(url)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if gone {
            self.notify_registrations(&mut tx).await?;
        }
        tx.commit().await?;
        if gone {
            self.changed.send_modify(|_| {});
        }
        Ok(gone)
    }

    async fn registered(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT service, url FROM registrations WHERE expires_at_ms > $1 ORDER BY service, url",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (service, url) in rows {
            out.entry(service).or_default().push(url);
        }
        Ok(out)
    }
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
                .await?;
        }
        Ok(())
    }
}
