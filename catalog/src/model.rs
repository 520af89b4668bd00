//! The domain types of the catalog. Plain data: serde for the admin API, the config file and
//! the store's JSON columns, and nothing of the store itself.
//!
//! Size: over 600 lines, kept whole on purpose: the catalog's types (services, contexts, routes,
//! shadow policy, matches) are one document, serialised as one; their validation is in
//! `validate.rs`, their changes in `change.rs`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::state::{MigrationState, Side, Weight};

/// A name of a service or context: 1–63 characters of `a-z`, `0-9` and `-`, starting with a
/// letter (it appears in URLs, metrics labels and headers).
pub type Name = String;

/// Checks a [`Name`]; the error says what to write instead.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{kind} name `{name}` is invalid; use 1-63 characters of a-z, 0-9 and `-`, starting with a letter"
        ))
    }
}

/// An upstream HTTP service. `legacy` is the monolith.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: Name,
    /// Static instances, `http://host:port` each.
    pub urls: Vec<String>,
    /// How the service is called; every field has a default.
    #[serde(default, skip_serializing_if = "ServicePolicy::is_default")]
    pub policy: ServicePolicy,
}

/// How a service is called: timeouts, balancing, the bulkhead, retries, breaker and ejection.
/// Unset fields take the defaults documented in the README.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicy {
    /// `p2c` (power of two choices on in-flight requests, the default) or `round-robin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    /// How the instances are spoken to: `h1` (HTTP/1.1, the default), `h2c` (HTTP/2 over
    /// cleartext with prior knowledge, one multiplexed connection per instance: gRPC services
    /// and HTTP/2-only servers), and for `https://` instances `h2` (HTTP/2 agreed by ALPN) or
    /// `auto` (whichever the instance chooses by ALPN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// To the response head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// How long an idle pooled connection is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// The bulkhead: requests in flight at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Tries in all for idempotent requests (1 = no retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_attempts: Option<u32>,
    /// Retries as a share of requests, in percent (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget_percent: Option<u32>,
    /// Retry PUT and DELETE too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_put_delete: Option<bool>,
    /// Failure share, in percent, over the breaker's window that opens it (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_failure_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_min_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_window_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_cool_down_ms: Option<u64>,
    /// Consecutive failures that eject an instance (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eject_after_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eject_base_ms: Option<u64>,
    /// Active health checks: `GET` this path on every instance (off when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
    /// Identical concurrent GETs share one upstream call (bodies up to 1 MiB of known length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_requests: Option<bool>,
    /// Also share GETs that carry credentials (`Authorization`, `Cookie`, the identity token,
    /// API keys): only for a service that answers them alike for everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_with_credentials: Option<bool>,
    /// Forwarding or tracing fields the service's answers vary on (e.g. `user-agent`), which
    /// collapsing otherwise leaves out of its key. Every other field is always in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_vary: Option<Vec<String>>,
    /// A batching window: the first of a group waits this long for identical requests to join
    /// (default 0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_window_ms: Option<u64>,
}

impl ServicePolicy {
    pub fn is_default(&self) -> bool {
        self == &ServicePolicy::default()
    }

    /// Checks the ranges; the error names the field and the fix.
    pub fn check(&self) -> Result<(), (String, String)> {
        let ms =
            |field: &str, v: Option<u64>, min: u64, max: u64| -> Result<(), (String, String)> {
                match v {
                    Some(v) if v < min || v > max => Err((
                        field.to_owned(),
                        format!("{v} ms is out of range; choose {min}-{max} ms"),
                    )),
                    _ => Ok(()),
                }
            };
        let n = |field: &str, v: Option<u32>, min: u32, max: u32| -> Result<(), (String, String)> {
            match v {
                Some(v) if v < min || v > max => Err((
                    field.to_owned(),
                    format!("{v} is out of range; choose {min}-{max}"),
                )),
                _ => Ok(()),
            }
        };
        if let Some(b) = &self.balance {
            if b != "p2c" && b != "round-robin" {
                return Err((
                    "balance".into(),
                    format!("`{b}` is not a balancing rule; use p2c or round-robin"),
                ));
            }
        }
        if let Some(p) = &self.protocol {
            if !["h1", "h2c", "h2", "auto"].contains(&p.as_str()) {
                return Err((
                    "protocol".into(),
                    format!("`{p}` is not a protocol Strangler speaks to services; use h1 (HTTP/1.1), h2c (HTTP/2 without TLS), h2 or auto (over TLS, agreed by ALPN)"),
                ));
            }
        }
        ms("connect_timeout_ms", self.connect_timeout_ms, 1, 60_000)?;
        ms("request_timeout_ms", self.request_timeout_ms, 1, 3_600_000)?;
        ms("idle_timeout_ms", self.idle_timeout_ms, 100, 3_600_000)?;
        n("max_concurrent", self.max_concurrent, 1, 1_000_000)?;
        n("retry_attempts", self.retry_attempts, 1, 10)?;
        n("retry_budget_percent", self.retry_budget_percent, 0, 100)?;
        n(
            "breaker_failure_percent",
            self.breaker_failure_percent,
            1,
            100,
        )?;
        n(
            "breaker_min_requests",
            self.breaker_min_requests,
            1,
            1_000_000,
        )?;
        ms("breaker_window_ms", self.breaker_window_ms, 100, 3_600_000)?;
        ms(
            "breaker_cool_down_ms",
            self.breaker_cool_down_ms,
            10,
            3_600_000,
        )?;
        n(
            "eject_after_failures",
            self.eject_after_failures,
            1,
            1_000_000,
        )?;
        ms("eject_base_ms", self.eject_base_ms, 10, 3_600_000)?;
        if let Some(p) = &self.health_path {
            if !p.starts_with('/') || p.contains(char::is_whitespace) {
                return Err((
                    "health_path".into(),
                    format!("`{p}` is not a path; write it like /healthz"),
                ));
            }
        }
        ms(
            "health_interval_ms",
            self.health_interval_ms,
            100,
            3_600_000,
        )?;
        ms("health_timeout_ms", self.health_timeout_ms, 10, 60_000)?;
        n("healthy_threshold", self.healthy_threshold, 1, 100)?;
        n("unhealthy_threshold", self.unhealthy_threshold, 1, 100)?;
        ms("collapse_window_ms", self.collapse_window_ms, 0, 10_000)?;
        for field in self.collapse_vary.iter().flatten() {
            if !http_token(field) {
                return Err((
                    "collapse_vary".into(),
                    format!("`{field}` is not a header field name; write it like user-agent"),
                ));
            }
        }
        Ok(())
    }
}

/// What keeps a user on one side during a canary.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StickyKey {
    /// A cookie's value.
    Cookie(String),
    /// A request header's value.
    Header(String),
    /// The `sub` claim of a bearer JWT (decoded for bucketing only, never trusted).
    JwtSub,
    /// The client's address.
    Ip,
}

impl fmt::Display for StickyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StickyKey::Cookie(n) => write!(f, "cookie:{n}"),
            StickyKey::Header(n) => write!(f, "header:{n}"),
            StickyKey::JwtSub => f.write_str("jwt:sub"),
            StickyKey::Ip => f.write_str("ip"),
        }
    }
}

impl std::str::FromStr for StickyKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("sticky key `{s}` is invalid; use cookie:NAME, header:NAME, jwt:sub or ip");
        match s.split_once(':') {
            Some(("cookie", n)) if !n.is_empty() => Ok(StickyKey::Cookie(n.to_owned())),
            Some(("header", n)) if http_token(n) => Ok(StickyKey::Header(n.to_ascii_lowercase())),
            Some(("jwt", "sub")) => Ok(StickyKey::JwtSub),
            None if s == "ip" => Ok(StickyKey::Ip),
            _ => Err(bad()),
        }
    }
}

impl Serialize for StickyKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StickyKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for StickyKey {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StickyKey".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(cookie:.+|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|jwt:sub|ip)$",
            "description": "What keeps a user on one side during a canary: cookie:NAME, header:NAME, jwt:sub or ip.",
            "examples": ["cookie:sid"]
        })
    }
}

/// Whether `s` is an HTTP token (a valid header name).
pub(crate) fn http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A bounded context: a slice of the domain with one target service and a migration state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub name: Name,
    /// The service that answers once the context has moved (never `legacy`).
    pub target: Name,
    pub state: MigrationState,
    /// The canary's share of sticky keys, in basis points (meaningful in `canary`).
    #[serde(default)]
    pub weight: Weight,
    /// What keeps a user on one side in `canary`; without one, requests are split one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickyKey>,
    /// In `canary`: whether the context has been cut over, so that the new service owns its
    /// writes (see [`Context::owner`]). Meaningful in canary only, like the weight.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cut_over: bool,
    /// The write owner's last move, while it settles: writes wait (503) until it takes
    /// effect, so that every replica has learned of it before the new owner takes one. Set by
    /// the store when a change moves the owner; what a client sends is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_move: Option<OwnerMove>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// In canary and migrated, a safe request the new service fails (connect error, timeout,
    /// 5xx, open breaker, full bulkhead) is answered by legacy instead; a write only when it was
    /// never sent. Off in retired, whatever this says.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub fallback: bool,
    /// With fallback on: a safe request the new service has not answered (head) within this
    /// many milliseconds is answered by legacy, and counts as a failure for the breaker.
    /// Unset: derived from the service's observed latency (ten times its running mean, at
    /// least two seconds), so that a hung service never holds clients for its whole timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_after_ms: Option<u64>,
    /// How shadow answers are sampled and compared.
    #[serde(default, skip_serializing_if = "ShadowPolicy::is_default")]
    pub shadow: ShadowPolicy,
    /// The anti-corruption translator between the legacy contract and the target's, as the
    /// text of its TOML spec (see the README's "Translators"). It applies to every request the
    /// target answers or is shadowed with, and to the target's answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translator: Option<String>,
    /// The operational objective both sides are held to: the dashboard shows each side's
    /// error budget left against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<Objective>,
    /// The autopilot's policy: when the context leaves shadow and how its canary steps up
    /// (see [`crate::rollout`]). Without one, only people move it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::RolloutPolicy>,
}

/// A context as the admin API shows it: its fields and its write owner (read-only).
#[derive(Debug, Serialize)]
pub struct ContextView<'a> {
    #[serde(flatten)]
    pub context: &'a Context,
    pub owner: Side,
}

impl Context {
    pub fn view(&self) -> ContextView<'_> {
        ContextView {
            context: self,
            owner: self.owner(),
        }
    }

    /// The write owner: the one side that takes the context's writes, the other getting them
    /// only as mirrors. Legacy until the context is cut over (in canary) or migrated; new from
    /// then on.
    pub fn owner(&self) -> Side {
        owner(self.state, self.cut_over)
    }
}

/// When a context's write owner moved, and when the move takes effect (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerMove {
    pub at_ms: i64,
    pub from_ms: i64,
}

/// The contexts whose write owner differs between two catalogs: (context, its new owner).
/// A context that appears or disappears moves nothing.
pub fn owner_moves(old: &Catalog, new: &Catalog) -> Vec<(String, Side)> {
    new.contexts
        .iter()
        .filter_map(|(name, c)| {
            let before = old.contexts.get(name)?.owner();
            (before != c.owner()).then(|| (name.clone(), c.owner()))
        })
        .collect()
}

/// The write owner of a context in `state`, cut over or not (see [`Context::owner`]).
fn owner(state: MigrationState, cut_over: bool) -> Side {
    match state {
        MigrationState::Legacy | MigrationState::Shadow => Side::Legacy,
        MigrationState::Canary if cut_over => Side::New,
        MigrationState::Canary => Side::Legacy,
        MigrationState::Migrated | MigrationState::Retired => Side::New,
    }
}

/// A context's operational objective over a rolling window: the share of requests answered
/// without a server error, and the 99th-percentile time to the response head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// Percent of requests answered below 500 (e.g. 99.9).
    pub availability_percent: f64,
    /// The 99th percentile of the time to the response head, in milliseconds.
    pub p99_ms: u64,
    /// The rolling window, in days (default 30).
    #[serde(default = "thirty")]
    pub window_days: u16,
}

fn thirty() -> u16 {
    30
}

impl Eq for Objective {}

impl Objective {
    /// Checks the figures; the error names the field and the fix.
    pub fn check(&self) -> Result<(), (String, String)> {
        let a = self.availability_percent;
        if !a.is_finite() || a <= 0.0 || a >= 100.0 {
            return Err((
                "availability_percent".into(),
                format!(
                    "{a} is out of range; choose a percentage above 0 and below 100, e.g. 99.9"
                ),
            ));
        }
        if self.p99_ms == 0 || self.p99_ms > 600_000 {
            return Err((
                "p99_ms".into(),
                format!(
                    "{} is out of range; choose 1 to 600000 milliseconds",
                    self.p99_ms
                ),
            ));
        }
        if self.window_days == 0 || self.window_days > 90 {
            return Err((
                "window_days".into(),
                format!("{} is out of range; choose 1 to 90 days", self.window_days),
            ));
        }
        Ok(())
    }
}

/// How a context's shadow copies are sampled and compared. Paths are JSON paths over the
/// legacy contract: `$`, then `.key` or `.*` (any key) segments, `[*]` for array elements
/// (`$.items[*].updatedAt`, `$.*.id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowPolicy {
    /// Shadowing is paused: nothing is copied, whatever the share (an operator's switch that
    /// keeps the share for when it resumes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Share of eligible requests copied, in percent (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_percent: Option<u8>,
    /// Differences at or under these paths are ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Arrays at these paths are compared as multisets (order ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unordered: Vec<String>,
    /// Numbers at these paths may differ by this much.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tolerance: BTreeMap<String, f64>,
    /// Values at these paths are normalised before comparing: `timestamp`, `uuid`,
    /// `whitespace` or `case`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub normalize: BTreeMap<String, String>,
    /// Values at these paths are blanked in every body the facade stores (examples, recorded
    /// exchanges, mirrored writes), besides fields named like secrets (`password`, `token`,
    /// `api_key` …), which always are. Request headers are stored only from an allow-list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// Query parameters blanked in stored requests, besides those named like secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact_query: Vec<String>,
    /// Request header fields a mirrored write keeps for its delivery, besides the standard
    /// ones (`content-type`, `accept`, `if-match`, `idempotency-key` …); fields named like
    /// credentials are never kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror_headers: Vec<String>,
    /// Response header fields compared besides status and body (`content-type`, `cache-control`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// In canary and migrated: share of the safe requests the new service answers that are also
    /// sent to legacy and compared (reverse shadow), in percent (default 0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse_percent: Option<u8>,
    /// Share of shadowed safe requests also sent to legacy a second time; JSON paths whose
    /// values differ between two legacy answers are proposed as ignore rules (default 0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learn_percent: Option<u8>,
}

impl Eq for ShadowPolicy {}

impl ShadowPolicy {
    pub fn is_default(&self) -> bool {
        self == &ShadowPolicy::default()
    }

    /// Checks the rules; the error names the rule and the fix.
    pub fn check(&self) -> Result<(), (String, String)> {
        for (rule, p) in [
            ("sample_percent", self.sample_percent),
            ("reverse_percent", self.reverse_percent),
            ("learn_percent", self.learn_percent),
        ] {
            if let Some(p) = p.filter(|p| *p > 100) {
                return Err((rule.into(), format!("{p} is out of range; choose 0-100")));
            }
        }
        for (rule, h) in self
            .headers
            .iter()
            .map(|h| ("headers", h))
            .chain(self.mirror_headers.iter().map(|h| ("mirror_headers", h)))
        {
            if !http_token(h) {
                return Err((
                    format!("{rule}[{h}]"),
                    "not a header field name; use letters, digits and -".into(),
                ));
            }
        }
        for q in &self.redact_query {
            if q.is_empty() || q.contains(['&', '=', '#', ' ']) {
                return Err((
                    format!("redact_query[{q}]"),
                    "not a query parameter name; write it as it appears before `=`".into(),
                ));
            }
        }
        let paths = self
            .ignore
            .iter()
            .map(|p| ("ignore", p))
            .chain(self.unordered.iter().map(|p| ("unordered", p)))
            .chain(self.tolerance.keys().map(|p| ("tolerance", p)))
            .chain(self.normalize.keys().map(|p| ("normalize", p)))
            .chain(self.redact.iter().map(|p| ("redact", p)));
        for (rule, path) in paths {
            crate::JsonPath::parse(path)
                .map_err(|why| (format!("{rule}[{path}]"), why.to_string()))?;
        }
        for (path, tol) in &self.tolerance {
            if !tol.is_finite() || *tol < 0.0 {
                return Err((
                    format!("tolerance[{path}]"),
                    format!("{tol} is not a tolerance; use a number ≥ 0"),
                ));
            }
        }
        for (path, n) in &self.normalize {
            if !matches!(n.as_str(), "timestamp" | "uuid" | "whitespace" | "case") {
                return Err((
                    format!("normalize[{path}]"),
                    format!("`{n}` is not a normaliser; use timestamp, uuid, whitespace or case"),
                ));
            }
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How a header or query value must look.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ValueMatch {
    /// Exactly this value.
    Exact(String),
    /// A regular expression over the whole value.
    Regex(String),
    /// Any value, as long as the field is present.
    Present,
}

/// A condition on a request header.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub name: String,
    #[serde(rename = "match")]
    pub value: ValueMatch,
}

/// A condition on a query parameter.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct QueryMatch {
    pub name: String,
    #[serde(rename = "match")]
    pub value: ValueMatch,
}

/// An API-version condition, in one of the three styles the field uses.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(tag = "style", rename_all = "kebab-case", deny_unknown_fields)]
pub enum VersionMatch {
    /// The path starts with `/{version}` (`/v2/orders/1`); the route's path pattern is matched
    /// after it.
    Prefix { version: String },
    /// `Accept` names the version: `application/vnd.{vendor}.{version}+json`, or a media type
    /// with the parameter `version={version}`.
    MediaType { version: String },
    /// A header carries the version (`X-API-Version: 2`).
    Header { name: String, version: String },
}

/// What a route matches. The route's id is derived from it, so the same spec always has the
/// same id.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Upper-case methods; empty matches any method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// `/orders/{id}`, `/static/{*rest}`; see [`crate::pattern`].
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<QueryMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionMatch>,
    /// The route's requests are reads whatever their method: a `POST` that changes nothing
    /// (gRPC query methods, GraphQL queries, search forms). They follow the canary split
    /// instead of going to the write owner, are shadowed as reads, and a call that never
    /// reached the new service may go to legacy. Not part of what the route matches, so not
    /// part of its id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reads: bool,
    /// How the route's requests are shadowed. Not part of what the route matches, so not part
    /// of its id.
    #[serde(default, skip_serializing_if = "RouteShadow::is_default")]
    pub shadow: RouteShadow,
}

/// How writes on a route are shadowed (safe methods always are, in `shadow` state).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ShadowWrites {
    /// Writes are not shadowed.
    #[default]
    Off,
    /// The write goes to the new service marked `X-Strangler-Shadow: 1`; the new service
    /// promises no side effects for it, and its answer is compared.
    DryRun,
    /// The write is replayed to the new service from a durable outbox with an
    /// `Idempotency-Key`, at least once, so its data keeps step with legacy.
    Mirror,
}

/// A route's shadow settings.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RouteShadow {
    /// How the route's writes reach the side that does not own them. Unset, the context's
    /// state decides: off in shadow (a route opts in), mirrored from canary on — toward the
    /// new service while legacy owns the writes, back to legacy once the new service does —
    /// unless the route opts out with `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<ShadowWrites>,
    /// Largest request body copied for a shadow, in bytes (default: the facade's
    /// `[shadow] max_body_bytes`). A larger request is not shadowed, and counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Store mirrored bodies that cannot be redacted (binary uploads, plain text) as they
    /// are. Off by default: such a write is then not mirrored (and counted), because nothing
    /// secret may reach the store; turn it on for routes whose bodies hold no secrets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub opaque_bodies: bool,
    /// For a create: how its mirror carries the id the owner gave the new resource, so that
    /// both sides name it alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<crate::mirror_id::MirrorId>,
    /// Where the route's requests name a resource by id, for the id map (see
    /// [`crate::IdRefs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<crate::mirror_id::IdRefs>,
}

impl RouteShadow {
    pub fn is_default(&self) -> bool {
        self == &RouteShadow::default()
    }

    /// Whether a write on this route, in a context in `state`, is mirrored to the side that
    /// does not own it.
    pub fn mirrors_writes(&self, state: MigrationState) -> bool {
        match state {
            MigrationState::Shadow => self.writes == Some(ShadowWrites::Mirror),
            MigrationState::Canary | MigrationState::Migrated => {
                self.writes != Some(ShadowWrites::Off)
            }
            MigrationState::Legacy | MigrationState::Retired => false,
        }
    }
}

impl RouteSpec {
    /// A stable id: `r` and 16 hex digits of the FNV-1a hash of the spec's canonical JSON.
    pub fn id(&self) -> String {
        let mut canonical = self.clone();
        canonical.shadow = RouteShadow::default();
        canonical.reads = false;
        canonical.methods.sort();
        canonical.methods.dedup();
        canonical.headers.sort();
        canonical.query.sort();
        if let Some(h) = &mut canonical.host {
            *h = h.to_ascii_lowercase();
        }
        let json = serde_json::to_string(&canonical).unwrap_or_default();
        format!("r{:016x}", fnv1a64(json.as_bytes()))
    }
}

/// FNV-1a, 64 bit: fixed and documented, so ids and buckets agree on every replica and
/// version.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A route: a spec owned by one context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub id: String,
    pub context: Name,
    #[serde(flatten)]
    pub spec: RouteSpec,
}

/// The whole catalog at one version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Catalog {
    pub version: i64,
    pub services: BTreeMap<Name, Service>,
    pub contexts: BTreeMap<Name, Context>,
    pub routes: BTreeMap<String, Route>,
    /// Instances that registered themselves and have not expired, by service (not part of the
    /// versioned catalog: heartbeats do not change the version).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registered: BTreeMap<Name, Vec<String>>,
}

impl Catalog {
    /// A service's instances: its static URLs, then the registered ones.
    pub fn instances_of(&self, service: &str) -> Vec<String> {
        let mut urls: Vec<String> = self
            .services
            .get(service)
            .map(|s| s.urls.clone())
            .unwrap_or_default();
        for url in self.registered.get(service).into_iter().flatten() {
            if !urls.contains(url) {
                urls.push(url.clone());
            }
        }
        urls
    }

    /// Whether a route now claims an unclaimed-traffic template (`GET /orders/{id}`, as the
    /// facade counts unclaimed requests): one with that path, no host, and that method or any.
    pub fn claims_template(&self, template: &str) -> bool {
        let (method, path) = template.split_once(' ').unwrap_or(("", template));
        self.routes.values().any(|r| {
            r.spec.path == path
                && r.spec.host.is_none()
                && (r.spec.methods.is_empty() || r.spec.methods.iter().any(|m| m == method))
        })
    }

    /// The routes of one context, in id order.
    pub fn routes_of<'a>(&'a self, context: &'a str) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes.values().filter(move |r| r.context == context)
    }
}
