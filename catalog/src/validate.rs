//! The rules a whole catalog must satisfy before it is written or served.

use std::collections::{BTreeMap, HashMap};

use crate::model::{check_name, Catalog, Route, RouteSpec};
use crate::pattern;
use crate::state::MigrationState;
use crate::state::FULL_WEIGHT;

/// A rule the catalog breaks: which field, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Where: `contexts.orders.target`, `routes.r0123….path` …
    pub field: String,
    /// What is wrong and what to do instead.
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        message: message.into(),
    }
}

/// Compiles a translator's spec text: `Err("line N: what and how to fix it")`. The catalog does
/// not know the translators (the anti-corruption crate does), so whoever validates a catalog
/// passes the check in: the store is built with one, and the binary's checks compile the spec.
pub trait TranslatorCheck: Send + Sync {
    fn check(&self, text: &str) -> Result<(), String>;
}

/// Checks only a translator's size: for tools and tests that have no translators. The facade
/// still refuses a snapshot whose translator does not compile.
#[derive(Debug, Clone, Copy, Default)]
pub struct SizeOnly;

impl TranslatorCheck for SizeOnly {
    fn check(&self, _text: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Largest translator spec, in bytes.
pub const MAX_TRANSLATOR_BYTES: usize = 256 * 1024;

/// Checks the whole catalog, its translators with `translators`.
pub fn validate(c: &Catalog, translators: &dyn TranslatorCheck) -> Result<(), ValidationError> {
    for (key, s) in &c.services {
        let field = format!("services.{key}");
        if key != &s.name {
            return Err(err(
                &field,
                format!("the service is stored as `{key}` but named `{}`", s.name),
            ));
        }
        check_name("service", &s.name).map_err(|m| err(format!("{field}.name"), m))?;
        // No static URL is allowed: the instances may register themselves
        // (POST /api/v1/services/NAME/instances).
        for (i, url) in s.urls.iter().enumerate() {
            check_url(url).map_err(|m| err(format!("{field}.urls[{i}]"), m))?;
        }
        s.policy
            .check()
            .map_err(|(f, m)| err(format!("{field}.policy.{f}"), m))?;
        // HTTP/2 by ALPN needs TLS; h2c is HTTP/2 without it.
        let tls_only = matches!(s.policy.protocol.as_deref(), Some("h2" | "auto"));
        let plain_only = s.policy.protocol.as_deref() == Some("h2c");
        for (i, url) in s.urls.iter().enumerate() {
            let https = url.starts_with("https://");
            if (tls_only && !https) || (plain_only && https) {
                return Err(err(
                    format!("{field}.urls[{i}]"),
                    format!("`{url}` does not fit the protocol `{}`: h2 and auto need https:// URLs, h2c http:// ones", s.policy.protocol.as_deref().unwrap_or_default()),
                ));
            }
        }
    }
    for (key, ctx) in &c.contexts {
        let field = format!("contexts.{key}");
        if key != &ctx.name {
            return Err(err(
                &field,
                format!("the context is stored as `{key}` but named `{}`", ctx.name),
            ));
        }
        check_name("context", &ctx.name).map_err(|m| err(format!("{field}.name"), m))?;
        if let Some(text) = &ctx.translator {
            if text.len() > MAX_TRANSLATOR_BYTES {
                return Err(err(
                    format!("{field}.translator"),
                    format!(
                        "the spec is {} bytes; the limit is {MAX_TRANSLATOR_BYTES}; split rules \
                         into a Rust translator",
                        text.len()
                    ),
                ));
            }
            translators
                .check(text)
                .map_err(|m| err(format!("{field}.translator"), m))?;
        }
        if let Some(r) = &ctx.rollout {
            r.check()
                .map_err(|(f, m)| err(format!("{field}.rollout.{f}"), m))?;
        }
        if let Some(o) = &ctx.objective {
            o.check()
                .map_err(|(f, m)| err(format!("{field}.objective.{f}"), m))?;
        }
        if let Some(ms) = ctx
            .fallback_after_ms
            .filter(|ms| !(10..=3_600_000).contains(ms))
        {
            return Err(err(
                format!("{field}.fallback_after_ms"),
                format!("{ms} ms is out of range; choose 10-3600000 ms"),
            ));
        }
        if ctx.target == "legacy" {
            return Err(err(
                format!("{field}.target"),
                "the target is the new service that takes the context over, not `legacy`",
            ));
        }
        if !c.services.contains_key(&ctx.target) {
            return Err(err(
                format!("{field}.target"),
                format!(
                    "unknown service `{}`; create it first (POST /api/v1/services)",
                    ctx.target
                ),
            ));
        }
        if ctx.weight > FULL_WEIGHT {
            return Err(err(
                format!("{field}.weight"),
                format!(
                    "{} is out of range; a weight is 0-10000 basis points",
                    ctx.weight
                ),
            ));
        }
        ctx.shadow
            .check()
            .map_err(|(f, m)| err(format!("{field}.shadow.{f}"), m))?;
        if ctx.state != MigrationState::Canary && ctx.weight != 0 {
            return Err(err(
                format!("{field}.weight"),
                "a weight only applies in canary; set it to 0 or move the context to canary",
            ));
        }
    }
    // Routes: each valid on its own, owned by a known context, and no two of different
    // contexts that the specificity rule cannot tell apart.
    let mut by_id = BTreeMap::new();
    for (key, r) in &c.routes {
        let field = format!("routes.{key}");
        if !c.contexts.contains_key(&r.context) {
            return Err(err(
                format!("{field}.context"),
                format!("unknown context `{}`; create it first", r.context),
            ));
        }
        pattern::check_spec(&r.spec).map_err(|m| err(format!("{field}.path"), m.to_string()))?;
        if let Some(id) = &r.spec.shadow.id {
            id.parse_from()
                .map_err(|m| err(format!("{field}.shadow.id.from"), m))?;
            id.parse_to()
                .map_err(|m| err(format!("{field}.shadow.id.to"), m))?;
        }
        if let Some(ids) = &r.spec.shadow.ids {
            let path = pattern::PathPattern::parse(&pattern::effective_path(&r.spec))
                .map_err(|m| err(format!("{field}.path"), m.to_string()))?;
            ids.check(&path)
                .map_err(|m| err(format!("{field}.shadow.ids"), m))?;
        }
        let id = r.spec.id();
        if &id != key || r.id != id {
            return Err(err(
                format!("{field}.id"),
                format!("the route's id must be derived from its spec: {id}"),
            ));
        }
        by_id.insert(key, (r, pattern::specificity(&r.spec)));
    }
    // Only routes of equal specificity can be ambiguous. Equal specificity means paths of the
    // same shape (literal, parameter, wildcard at the same places), so two of them can meet only
    // if their literals are the same too: bucket by both and compare pairs inside a bucket only,
    // which keeps a catalog of many routes linear rather than quadratic.
    let mut buckets: HashMap<(pattern::Specificity, String), Vec<&Route>> = HashMap::new();
    for (r, s) in by_id.into_values() {
        buckets
            .entry((s, literal_shape(&r.spec)))
            .or_default()
            .push(r);
    }
    // Buckets fill in id order; report the first pair in id order, as a full scan would.
    let mut first: Option<(&Route, &Route)> = None;
    for bucket in buckets.values() {
        let found = bucket.iter().enumerate().find_map(|(i, a)| {
            let b = bucket[i + 1..]
                .iter()
                .find(|b| a.context != b.context && pattern::may_overlap(&a.spec, &b.spec))?;
            Some((*a, *b))
        });
        if let Some((a, b)) = found {
            if first.is_none_or(|(fa, fb)| (&a.id, &b.id) < (&fa.id, &fb.id)) {
                first = Some((a, b));
            }
        }
    }
    if let Some((a, b)) = first {
        return Err(err(
            format!("routes.{}", b.id),
            format!(
                "route {} `{}` of context `{}` overlaps route {} `{}` of context `{}` with the same specificity; make one of them narrower (a method, host, header or a literal segment)",
                b.id, b.spec.path, b.context, a.id, a.spec.path, a.context
            ),
        ));
    }
    Ok(())
}

/// The effective path with every parameter and wildcard blanked out: `/orders/{}`. Literals
/// never hold `{`, so the blanks cannot be mistaken for one.
fn literal_shape(spec: &RouteSpec) -> String {
    let Ok(p) = pattern::PathPattern::parse(&pattern::effective_path(spec)) else {
        return String::new();
    };
    let mut shape = String::new();
    for s in p.segments() {
        shape.push('/');
        match s {
            pattern::Segment::Literal(l) => shape.push_str(l),
            pattern::Segment::Param(_) => shape.push_str("{}"),
            pattern::Segment::Wildcard(_) => shape.push_str("{*}"),
        }
    }
    shape
}

/// Checks an instance URL: an `http://host:port` origin.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{url}` must start with http:// or https://"))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') || host.contains('?') || host.contains('@') {
        return Err(format!(
            "`{url}` must be an origin: http://host:port or https://host:port"
        ));
    }
    Ok(())
}
