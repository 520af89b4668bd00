//! Named leases with an expiry: one holder at a time across replicas (the autopilot's and
//! the deliverers' locks, signed-out sessions).

use crate::sql::SqlStore;
use crate::StoreError;
use strangler_catalog::clock::now_ms;

/// Named leases with an expiry: one holder at a time across replicas.
#[async_trait::async_trait]
pub trait Leases: Send + Sync {
    /// Takes or renews the lease `name` for `holder` until `ttl_ms` from now; false when
    /// another holder has it and it has not expired.
    async fn lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError>;
    /// Who holds the lease `name` and until when (ms since the epoch), if anyone does.
    async fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>, StoreError>;
}

#[async_trait::async_trait]
impl Leases for SqlStore {
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
        ?;
        Ok(done.rows_affected() > 0)
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT holder, expires_ms FROM leases WHERE name = $1 AND expires_ms >= $2",
        )
        .bind(name)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?)
    }
}
