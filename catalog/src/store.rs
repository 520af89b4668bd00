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
    /// Pairs of legacy answers compared to learn noise.
    #[serde(default)]
    pub learned: i64,
    /// Mismatch counts by route and signature (`type $.total`).
    pub signatures: Vec<SignatureCount>,
    /// Requests of the context not shadowed, by reason (`not_sampled`, `budget_full` …).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub skipped: std::collections::BTreeMap<String, i64>,
    /// JSON paths whose values differed between two legacy answers to one request.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub noise: std::collections::BTreeMap<String, i64>,
    /// A few example pairs (the store keeps the latest few per signature).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<ShadowExample>,
    /// A few matched exchanges (the store keeps the latest distinct ones per route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<ContractPair>,
}

/// A request and legacy's answer to it, which the new service matched, redacted: the
/// material of a contract test.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractPair {
    pub route: String,
    pub at_ms: i64,
    pub method: String,
    /// Path and query as the client sent them.
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_type: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_body: String,
    pub status: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
    pub response_body: String,
}

/// Upper bounds of the latency histogram's buckets, in milliseconds; a last bucket holds the
/// rest. Fixed, so that every replica's counts add up.
pub const LATENCY_BOUNDS_MS: [u64; 13] =
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

/// Buckets of the latency histogram.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// One minute of traffic of one context (empty: requests no context claimed) answered by one
/// side, from one replica (rows add up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficMinute {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub context: String,
    /// `legacy` or `new`.
    pub side: String,
    pub requests: i64,
    /// Answers of 500 and above (the facade's own included).
    pub errors: i64,
    /// Sum of the times to the response head, in microseconds.
    pub latency_us: i64,
    /// Requests per latency bucket ([`LATENCY_BOUNDS_MS`]).
    pub buckets: Vec<i64>,
    /// Requests legacy answered because the new side failed (counted on the legacy side).
    #[serde(default)]
    pub fallbacks: i64,
}

/// Traffic of one route (`context` and the route's id as `path`) or of one path template no
/// context claimed (`context` empty, `path` like `GET /orders/{id}`), answered by one side,
/// in one hour, from one replica (rows add up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathTraffic {
    /// The hour's first minute since the Unix epoch (or a window's first minute in sums).
    pub minute: i64,
    pub context: String,
    pub path: String,
    /// `legacy` or `new`.
    pub side: String,
    pub requests: i64,
    /// Answers of 500 and above.
    pub errors: i64,
    /// Sum of the times to the response head, in microseconds.
    pub latency_us: i64,
}

/// When a route or template was last answered by a side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeen {
    pub context: String,
    pub path: String,
    pub side: String,
    /// Minutes since the Unix epoch.
    pub minute: i64,
}

impl TrafficMinute {
    /// The latency under which `q` (0–1) of the requests were answered, in milliseconds: the
    /// upper bound of the bucket it falls in (None when there were none, or it is in the last,
    /// open bucket).
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let total: i64 = self.buckets.iter().sum();
        if total <= 0 {
            return None;
        }
        let want = (q * total as f64).ceil().max(1.0) as i64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return LATENCY_BOUNDS_MS.get(i).copied();
            }
        }
        None
    }

    /// Adds `other`'s counts to this one's.
    pub fn absorb(&mut self, other: &TrafficMinute) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency_us += other.latency_us;
        self.fallbacks += other.fallbacks;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }
}

/// How often one mismatch signature was seen on one route.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SignatureCount {
    /// The route's id (empty for counts from before routes were recorded).
    pub route: String,
    pub signature: String,
    pub count: i64,
}

/// A JSON path proposed as an ignore rule: its values differed between two legacy answers to
/// the same request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseProposal {
    pub path: String,
    /// Pairs of legacy answers in which it differed.
    pub count: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub dismissed: bool,
}

/// A write to replay to the new service (mirror mode), with legacy's answer to compare with.
/// Credentials (`Authorization`, `Cookie`, `Proxy-Authorization`) are never part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Given by the store.
    pub id: i64,
    pub context: String,
    pub route: String,
    pub idempotency_key: String,
    pub method: String,
    pub uri: String,
    /// Header fields in order; values are bytes as chars U+0000–U+00FF, so any value survives.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub legacy_status: i64,
    /// Legacy's content type and compared header fields.
    pub legacy_headers: Vec<(String, String)>,
    /// `None`: legacy's body was over the cap, so only status and headers are compared.
    pub legacy_body: Option<Vec<u8>>,
    pub legacy_us: i64,
    pub created_ms: i64,
    /// Delivery attempts made so far.
    pub attempts: i64,
}

/// The outbox of one context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStats {
    /// Waiting for (re)delivery.
    pub pending: i64,
    /// Given up on after the last attempt.
    pub dead: i64,
    /// The oldest pending write's age, in milliseconds.
    pub oldest_pending_ms: Option<i64>,
    /// The latest error of a pending or dead write.
    pub last_error: Option<String>,
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

/// Something that happened, in the event outbox.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Given by the store; increasing.
    pub id: i64,
    /// The context it is about (empty: none, e.g. a service's breaker).
    pub context: String,
    /// `io.strangler.context.state.changed`, `io.strangler.autopilot.rollback` …
    pub kind: String,
    pub data: serde_json::Value,
    pub created_ms: i64,
}

/// A pending delivery of an event to a sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub event: Event,
    /// Failed attempts so far.
    pub attempts: i64,
}

/// A sink's deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkStats {
    pub sink: String,
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
    pub last_error: Option<String>,
    /// The oldest pending event's age, in milliseconds.
    pub oldest_pending_ms: Option<i64>,
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
    /// A context's proposed ignore rules, most seen first (dismissed ones included, marked).
    async fn shadow_noise(&self, context: &str) -> Result<Vec<NoiseProposal>, StoreError>;
    /// Hides a proposed rule (or shows it again); returns whether it exists.
    async fn dismiss_noise(
        &self,
        context: &str,
        path: &str,
        dismissed: bool,
    ) -> Result<bool, StoreError>;
    /// Deletes shadow results from before `before_minute` (examples and dead outbox writes by
    /// the same time). Returns the rows deleted.
    async fn prune_shadow(&self, before_minute: i64) -> Result<u64, StoreError>;
    /// Stores mirrored writes for delivery; returns their ids.
    async fn outbox_put(&self, items: &[OutboxItem]) -> Result<Vec<i64>, StoreError>;
    /// Claims up to `limit` writes due now for `lease_ms` (another replica sees them again
    /// only after that), oldest first; a write waits while an earlier live write of its
    /// context is not due, so each context's writes are delivered in order.
    async fn outbox_claim(&self, limit: i64, lease_ms: i64) -> Result<Vec<OutboxItem>, StoreError>;
    /// A write was delivered: forget it.
    async fn outbox_done(&self, id: i64) -> Result<(), StoreError>;
    /// A delivery failed (`error`, counted as an attempt) or must wait for an earlier write
    /// (`None`): try again at `next_at_ms`, or never (`dead`).
    async fn outbox_retry(
        &self,
        id: i64,
        next_at_ms: i64,
        error: Option<&str>,
        dead: bool,
    ) -> Result<(), StoreError>;
    /// The outbox of one context.
    async fn outbox_stats(&self, context: &str) -> Result<OutboxStats, StoreError>;
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
    /// Shadow results since `since_minute` summed per context (`minute` is `since_minute`;
    /// counts only: no signatures, skips or examples).
    async fn shadow_totals(&self, since_minute: i64) -> Result<Vec<ShadowMinute>, StoreError>;
    /// The latest audit row of every target that starts with `prefix` (e.g. `context:`).
    async fn last_changes(&self, prefix: &str) -> Result<Vec<AuditEntry>, StoreError>;
    /// Audit rows whose target starts with `prefix`, oldest first, at most `limit`, newest
    /// kept.
    async fn audit_of(&self, prefix: &str, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
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
    /// Traffic since `since_minute` summed per side, of one context or (None) of all
    /// (`minute` is `since_minute`; `context` the one asked for, or empty).
    async fn traffic_sum(
        &self,
        context: Option<&str>,
        since_minute: i64,
    ) -> Result<Vec<TrafficMinute>, StoreError>;
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
    /// Takes or renews the lease `name` for `holder` until `ttl_ms` from now; false when
    /// another holder has it and it has not expired.
    async fn lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError>;
    /// Who holds the lease `name` and until when (ms since the epoch), if anyone does.
    async fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>, StoreError>;
    /// Adds an event to the outbox (changes of a context's state add theirs themselves, in
    /// the change's transaction).
    async fn add_event(
        &self,
        context: &str,
        kind: &str,
        data: &serde_json::Value,
    ) -> Result<i64, StoreError>;
    /// The deliveries to `sink` due now, oldest first, at most one per context (a context's
    /// next event waits until the one before it is delivered or dead). A sink seen for the
    /// first time starts with the events of the last `horizon_ms`.
    async fn events_due(
        &self,
        sink: &str,
        limit: i64,
        horizon_ms: i64,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// A delivery succeeded.
    async fn event_delivered(&self, sink: &str, event_id: i64) -> Result<(), StoreError>;
    /// A delivery failed: try again at `next_at_ms`, or never (`dead`).
    async fn event_failed(
        &self,
        sink: &str,
        event_id: i64,
        next_at_ms: i64,
        error: &str,
        dead: bool,
    ) -> Result<(), StoreError>;
    /// Every sink's deliveries.
    async fn sink_stats(&self) -> Result<Vec<SinkStats>, StoreError>;
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
