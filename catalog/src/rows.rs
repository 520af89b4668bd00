//! The rows the control plane keeps besides the catalog itself: the audit log, per-minute
//! traffic and shadow results (which every replica adds to and the dashboard sums), mirrored
//! writes waiting for delivery, events and their deliveries. Plain data; the `store` crate
//! keeps them.

use serde::{Deserialize, Serialize};

/// Who makes a change, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeMeta {
    pub actor: String,
    pub reason: String,
    /// Apply a change that moves a context's write owner even though mirrored writes toward
    /// the new owner are still waiting; what is left behind is recorded in the audit log.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Unique to this write, given when it is taken: the store keeps a write shipped twice
    /// (after a crash) once.
    #[serde(default)]
    pub origin_key: String,
    /// Where it goes: the new service (a write legacy owns, mirrored) or legacy (a write the
    /// new service owns, mirrored back so that legacy stays complete until retired).
    #[serde(default)]
    pub toward: crate::Side,
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

/// One resource the two sides know under different ids: the side that was not its owner when
/// it was created gave it its own id when the mirror reached it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdPair {
    /// Given by the store: pairs are read in this order.
    #[serde(default)]
    pub seq: i64,
    pub context: String,
    pub resource: String,
    pub legacy: String,
    pub new: String,
    /// The side whose id the clients were given (the owner when the resource was created).
    pub origin: crate::Side,
}

impl IdPair {
    /// The resource's id on `side`.
    pub fn on(&self, side: crate::Side) -> &str {
        match side {
            crate::Side::Legacy => &self.legacy,
            crate::Side::New => &self.new,
        }
    }
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
