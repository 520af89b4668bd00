//! The catalog's durable home: one [`Store`] trait, implemented by [`SqlStore`] on SQLite (a
//! file, WAL mode; the embedded default) or PostgreSQL (for several facade replicas).
//!
//! Both backends run the same queries (sqlx's `Any` driver; `$n` placeholders work on both)
//! and each has its own migrations folder for the few DDL differences. Every change is one
//! transaction: bump the version if it is still the one the change was based on → load →
//! apply and validate in memory → write what differs → append the audit row → commit. A change
//! that fails any step leaves the catalog and its version untouched.

mod sql;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::change::{Change, ChangeError};
use crate::model::Catalog;

pub use sql::{Backend, SqlStore, NOTIFY_CHANNEL};

/// Who makes a change, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeMeta {
    pub actor: String,
    pub reason: String,
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    /// `context:orders`, `service:legacy`, `route:r…`, `catalog`, `runtime:log-level`.
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub reason: String,
    /// The catalog version the change produced (or the current one for runtime changes).
    pub version: i64,
}

/// Filters and paging for the audit log: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    pub target: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only entries older than this id (the `id` of the last entry of the previous page).
    pub before_id: Option<i64>,
    /// At most this many (1–500; default 50).
    pub limit: Option<u32>,
}

/// One minute of shadow results for one context, from one replica (rows add up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowMinute {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub context: String,
    pub compared: i64,
    pub matched: i64,
    /// Sums of both sides' answer times, in microseconds.
    pub legacy_us: i64,
    pub new_us: i64,
    /// Mismatch counts by signature (`type $.total`).
    pub signatures: std::collections::BTreeMap<String, i64>,
    /// A few example pairs (the store keeps the latest few per signature).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<ShadowExample>,
}

/// One mismatching pair, redacted: no request headers, configured JSON paths blanked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowExample {
    pub signature: String,
    pub at_ms: i64,
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    pub legacy_status: i64,
    pub new_status: i64,
    pub legacy_body: String,
    pub new_body: String,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The change was based on an older version of the catalog.
    #[error("the catalog is at version {current}, not {based_on}: reload it and decide again")]
    Stale { based_on: i64, current: i64 },
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// The database cannot be reached (or failed in a way that retrying may fix).
    #[error("the catalog store is unavailable: {0}")]
    Unavailable(String),
    /// The stored data could not be read back.
    #[error("the catalog store holds unreadable data: {0}")]
    Corrupt(String),
}

/// The catalog's store.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
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
    /// Registers (or, as a heartbeat, renews) an instance of `service` for `ttl_ms`. Returns
    /// whether it is new. Unknown services are refused.
    async fn register(&self, service: &str, url: &str, ttl_ms: u64) -> Result<bool, StoreError>;
    /// Removes a registration; returns whether there was one.
    async fn deregister(&self, service: &str, url: &str) -> Result<bool, StoreError>;
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
    /// The registrations that have not expired, by service.
    async fn registered(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError>;
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
