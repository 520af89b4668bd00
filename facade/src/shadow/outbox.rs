//! The mirror outbox: writes on `mirror` routes are replayed to the new service at least once,
//! in order per context, from a table in the catalog, so that the new service's data keeps step
//! with legacy during shadow.
//!
//! The request path never touches the store: a mirrored write (with legacy's answer) is made
//! durable in the local log ([`super::wal`]) before the client's answer is released, and
//! shipped from there to the catalog in batches; the delivery task claims due writes
//! (a lease keeps other replicas off them), sends each with an `Idempotency-Key` and
//! `X-Strangler-Shadow: mirror`, and on a transport failure or a 429/502/503/504 tries again
//! later with exponential backoff, until the attempts run out and the write is kept as dead.
//! A delivered write's answer is compared with legacy's; a difference is a divergence, counted
//! like any shadow mismatch. Nothing acknowledged is lost when the process dies: the log keeps it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use strangler_catalog::{IdFrom, MirrorId, OutboxItem, Side};
use strangler_services::cluster::Replay;
use tokio::sync::Notify;

use super::redact::latin1;
use super::{diff, redact, Read, Wanted};
use crate::body::RequestBody;
use crate::ids::{IdMap, RouteIds};
use crate::telemetry::Telemetry;
use crate::translate::Translation;
use strangler_catalog::clock::now_ms;

/// How long a claimed write is someone's before another replica may take it.
const LEASE_MS: i64 = 30_000;

/// Writes claimed at once.
const BATCH: i64 = 32;

/// Where the outbox keeps its writes. The facade knows no store: the binary implements this
/// on the catalog's.
#[async_trait::async_trait]
pub trait OutboxStore: Send + Sync {
    /// Stores writes for delivery.
    async fn put(&self, items: &[OutboxItem]) -> Result<(), String>;
    /// Claims up to `limit` due writes for `lease_ms`, oldest first, each context in order.
    async fn claim(&self, limit: i64, lease_ms: i64) -> Result<Vec<OutboxItem>, String>;
    /// Marks delivered writes (a batch's, together).
    async fn done(&self, ids: &[i64]) -> Result<(), String>;
    /// For each context and side with writes waiting toward it: the oldest one's creation
    /// time (for read-your-writes).
    async fn waiting_since(&self) -> Result<Vec<(String, strangler_catalog::Side, i64)>, String>;
    /// Records that one resource has different ids on the two sides (a second pair for an id
    /// already paired is ignored).
    async fn ids_put(&self, pair: &strangler_catalog::IdPair) -> Result<(), String>;
    /// Pairs recorded after `after` (a pair's `seq`), in order, at most `limit`.
    async fn ids_since(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<strangler_catalog::IdPair>, String>;
    /// Tries a write again at `next_at_ms` (`error`: a failed attempt; `None`: it waits for an
    /// earlier one), or never (`dead`).
    async fn retry(
        &self,
        id: i64,
        next_at_ms: i64,
        error: Option<&str>,
        dead: bool,
    ) -> Result<(), String>;
}

/// A mirrored write with legacy's answer, ready for the outbox: only what its delivery needs
/// and nothing secret (see [`super::redact`]); `None` when its body cannot be redacted.
pub fn item(wanted: &Wanted, replay: &Replay, body: Bytes, legacy: &Read) -> Option<OutboxItem> {
    let rules = &wanted.rules;
    let headers = redact::headers(&replay.headers, &rules.mirror_headers);
    let request_type = replay
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body = match redact::body(&body, request_type, rules) {
        Some(b) => b,
        None if wanted.route_shadow.opaque_bodies => body.to_vec(),
        None => return None,
    };
    let idempotency_key = replay
        .headers
        .get("idempotency-key")
        .map(|v| latin1(v.as_bytes()))
        .unwrap_or_else(|| {
            format!(
                "strangler-{:016x}{:016x}",
                fastrand::u64(..),
                fastrand::u64(..)
            )
        });
    let mut legacy_headers = Vec::new();
    if let Some(ct) = &legacy.content_type {
        legacy_headers.push(("content-type".to_owned(), ct.clone()));
    }
    for (name, value) in rules.headers.iter().zip(&legacy.headers) {
        if let Some(v) = value
            .as_ref()
            .filter(|_| !redact::is_secret_name(name.as_str()))
        {
            legacy_headers.push((name.as_str().to_owned(), v.clone()));
        }
    }
    Some(OutboxItem {
        id: 0,
        origin_key: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
        // In reverse the new service owns the write and legacy gets the mirror.
        toward: if wanted.reverse {
            Side::Legacy
        } else {
            Side::New
        },
        context: wanted.context.to_string(),
        route: wanted.route.to_string(),
        idempotency_key,
        method: replay.method.to_string(),
        uri: redact::target(
            replay.uri.path_and_query().map_or("/", |p| p.as_str()),
            &rules.redact_query,
        ),
        headers,
        body,
        legacy_status: i64::from(legacy.status),
        legacy_headers,
        // Legacy's answer, for the comparison after delivery: left out when it cannot be
        // redacted (that comparison is then skipped).
        legacy_body: legacy.body.as_ref().and_then(|b| {
            redact::body(b, legacy.content_type.as_deref(), rules)
                .or_else(|| wanted.route_shadow.opaque_bodies.then(|| b.to_vec()))
        }),
        legacy_us: i64::try_from(legacy.elapsed.as_micros()).unwrap_or(i64::MAX),
        created_ms: now_ms(),
        attempts: 0,
    })
}

fn from_latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// Where a context's mirrored writes toward a side go now, its rules, the translation they
/// take on the way (toward the new service only), and the route's id rules.
pub struct Resolved {
    pub peer: super::Peer,
    pub rules: Arc<diff::Rules>,
    pub translation: Option<Translation>,
    /// How the route's creates carry the owner's id (to pair it with the other side's).
    pub carry: Option<MirrorId>,
    /// Where the route's requests name a resource (to map its id).
    pub ids: Option<Arc<RouteIds>>,
    /// The context's write owner and its last move, if it is settling.
    pub owner: (Side, Option<strangler_catalog::OwnerMove>),
}

/// Resolves a context, route and side to where and how its mirrored writes go now.
pub type Resolve = dyn Fn(&str, &str, Side) -> Option<Resolved> + Send + Sync;

/// Delivers due writes, oldest first, one context's in order.
pub async fn deliver(
    store: Arc<dyn OutboxStore>,
    resolve: Arc<Resolve>,
    ids: Arc<IdMap>,
    config: super::ShadowConfig,
    wake: Arc<Notify>,
    telemetry: Arc<Telemetry>,
    work: super::Work,
) {
    loop {
        let items = match store.claim(BATCH, LEASE_MS).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "outbox not readable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if items.is_empty() {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            continue;
        }
        // The pairs recorded for the writes delivered before these (by any replica): a write
        // that names a resource is mapped with them. Unread, nothing is sent.
        if let Err(e) = ids.catch_up(&*store).await {
            tracing::warn!(error = %e, "id map not readable; mirrored writes wait");
            let at = now_ms() + 1_000;
            for item in &items {
                if let Err(e) = store.retry(item.id, at, None, false).await {
                    tracing::warn!(error = %e, "outbox write not deferred; its lease will expire");
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // A context whose write toward a side must wait holds back its later writes toward
        // that side in this batch.
        let mut held: std::collections::HashMap<(String, Side), i64> =
            std::collections::HashMap::new();
        // Delivered writes are marked together at the batch's end (one store transaction); a
        // crash before then delivers them again after their lease, with the same key.
        let mut delivered = Vec::new();
        for item in items {
            if let Some(at) = held.get(&(item.context.clone(), item.toward)) {
                if let Err(e) = store.retry(item.id, *at, None, false).await {
                    tracing::warn!(error = %e, "outbox write not deferred; its lease will expire");
                }
                continue;
            }
            let outcome =
                deliver_one(&item, &resolve, &ids, &*store, &config, &telemetry, &work).await;
            let result = match outcome {
                Outcome::Done => {
                    delivered.push(item.id);
                    Ok(())
                }
                Outcome::Retry(why) => {
                    let attempts = item.attempts + 1;
                    let dead = attempts >= i64::from(config.mirror_attempts);
                    let at = now_ms() + backoff_ms(config.mirror_retry, attempts);
                    if dead {
                        telemetry.record_mirror_dead(&item.context);
                        tracing::warn!(context = %item.context, id = item.id, %why, "mirrored write given up on");
                    } else {
                        held.insert((item.context.clone(), item.toward), at);
                    }
                    store.retry(item.id, at, Some(&why), dead).await
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, id = item.id, "outbox not updated; the write may be delivered again");
            }
        }
        if !delivered.is_empty() {
            if let Err(e) = store.done(&delivered).await {
                tracing::warn!(error = %e, writes = delivered.len(), "delivered writes not marked; they may be delivered again");
            }
        }
    }
}

/// `first` after the first attempt, doubling per attempt, at most a minute, with a fifth of
/// jitter.
fn backoff_ms(first: Duration, attempts: i64) -> i64 {
    let exp = u32::try_from((attempts - 1).clamp(0, 16)).unwrap_or(16);
    let first = i64::try_from(first.as_millis()).unwrap_or(60_000).max(1);
    let base = first.saturating_mul(1 << exp).min(60_000);
    base + i64::try_from(fastrand::u64(..=u64::try_from(base / 5).unwrap_or(0))).unwrap_or(0)
}

enum Outcome {
    Done,
    Retry(String),
}

async fn deliver_one(
    item: &OutboxItem,
    resolve: &Arc<Resolve>,
    ids: &IdMap,
    store: &dyn OutboxStore,
    config: &super::ShadowConfig,
    telemetry: &Telemetry,
    work: &super::Work,
) -> Outcome {
    let Some(Resolved {
        peer,
        rules,
        translation,
        carry,
        ids: route_ids,
        owner: (owner, moved),
    }) = resolve(&item.context, &item.route, item.toward)
    else {
        return Outcome::Retry(format!("context `{}` has no new service now", item.context));
    };
    // Taken by the old owner after the move took effect: a replica cut off from the catalog
    // for longer than the move's settling time. Delivered (it was acknowledged), and said.
    if let Some(m) = moved.filter(|m| item.toward == owner && item.created_ms >= m.from_ms) {
        tracing::error!(
            context = %item.context,
            route = %item.route,
            late_ms = item.created_ms - m.from_ms,
            "a write reached the old owner after the write owner's move took effect; its \
             mirror reaches the new owner late and may overwrite a later write there"
        );
    }
    // Named as the target knows the resource.
    let mapped;
    let item = match &route_ids {
        Some(rule) => match map_item(item, rule, ids) {
            Ok(Some(m)) => {
                mapped = m;
                &mapped
            }
            Ok(None) => item,
            Err(why) => return Outcome::Retry(why),
        },
        None => item,
    };
    // A create's answer names the target's id, in its Location when the owner's did.
    let from = carry.as_ref().and_then(|c| c.parse_from().ok());
    let mut chosen = rules.headers.clone();
    if from == Some(IdFrom::Location) {
        chosen.push(http::header::LOCATION);
    }
    let req = match request(item) {
        Ok(r) => r,
        // Not sendable now, not sendable later: spend the attempts quickly.
        Err(why) => return Outcome::Retry(why),
    };
    // What an example may say of the request (method and path).
    let replay = Replay::of(&req);
    let read = peer
        .exchange(
            req,
            &chosen,
            config.max_body_bytes,
            config.timeout,
            translation.as_ref(),
            work,
        )
        .await;
    let new = match read {
        Ok(r) if matches!(r.status, 429 | 502 | 503 | 504) => {
            return Outcome::Retry(format!("{} answered {}", item.toward.as_str(), r.status))
        }
        Ok(r) => r,
        // The request could not be translated: it was not sent; a fixed translator (hot
        // reloaded with the catalog) may send it on a later attempt.
        Err(why @ super::ExchangeError::Request(_)) => {
            telemetry.record_translation_failure(&item.context, "shadow");
            return Outcome::Retry(why.to_string());
        }
        Err(why @ super::ExchangeError::Answer(_)) => {
            // Delivered, but its answer cannot be compared.
            telemetry.record_mirror_delivered(&item.context);
            telemetry.record_translation_failure(&item.context, "shadow");
            telemetry.record_shadow_skip(&item.context, super::Skip::TranslationFailed);
            tracing::debug!(context = %item.context, %why, "mirror answer not translated");
            return Outcome::Done;
        }
        Err(why) => return Outcome::Retry(why.to_string()),
    };
    // The target gave the resource its own id: pair it with the owner's, before any later write
    // that names it is delivered (they wait behind this one).
    if let (Some(carry), Some(from), Some(rule)) = (&carry, &from, &route_ids) {
        if (200..300).contains(&new.status) {
            if let Some(pair) = pair_of(item, carry, from, rule, &new) {
                if let Err(e) = store.ids_put(&pair).await {
                    return Outcome::Retry(format!("the id pair was not recorded: {e}"));
                }
                ids.keep(&pair);
            }
        }
    }
    telemetry.record_mirror_delivered(&item.context);
    tracing::debug!(
        target: "strangler::shadow",
        context = %item.context,
        route = %item.route,
        method = %item.method,
        attempts = item.attempts + 1,
        new_status = new.status,
        "mirror leg delivered"
    );
    let header = |name: &str| {
        item.legacy_headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .next()
    };
    // The stored answer is the owner's (legacy's, or in reverse the new service's as the
    // client got it); the comparison always takes legacy as the reference.
    let stored = Read {
        status: u16::try_from(item.legacy_status).unwrap_or(0),
        content_type: header("content-type"),
        headers: rules.headers.iter().map(|h| header(h.as_str())).collect(),
        body: item.legacy_body.clone().map(Bytes::from),
        elapsed: Duration::from_micros(u64::try_from(item.legacy_us).unwrap_or(0)),
        held: None,
        over_budget: false,
    };
    let (legacy, new) = match item.toward {
        Side::New => (stored, new),
        Side::Legacy => (new, stored),
    };
    match super::diff_reads(&legacy, &new, &rules) {
        Some(signatures) => {
            let example =
                (!signatures.is_empty()).then(|| super::example(&replay, &legacy, &new, &rules));
            let pair = signatures
                .is_empty()
                .then(|| super::contract_pair(&item.route, &replay, &item.body, &legacy, &rules))
                .flatten();
            telemetry.record_shadow(
                &item.context,
                &item.route,
                &signatures,
                legacy.elapsed,
                new.elapsed,
                (example, pair),
            );
        }
        None => telemetry.record_shadow_skip(&item.context, super::Skip::BodyTooLarge),
    }
    Outcome::Done
}

/// The stored write as a request again, with its idempotency key and the mirror mark.
fn request(item: &OutboxItem) -> Result<http::Request<RequestBody>, String> {
    let mut req = http::Request::new(RequestBody::full(Bytes::from(item.body.clone())));
    *req.method_mut() = http::Method::from_bytes(item.method.as_bytes())
        .map_err(|_| format!("stored method `{}` is not a method", item.method))?;
    *req.uri_mut() = item
        .uri
        .parse()
        .map_err(|_| format!("stored target `{}` is not a request target", item.uri))?;
    let headers = req.headers_mut();
    for (name, value) in &item.headers {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&from_latin1(value)),
        ) else {
            continue;
        };
        headers.append(n, v);
    }
    if let Ok(key) = HeaderValue::from_bytes(&from_latin1(&item.idempotency_key)) {
        headers.insert("idempotency-key", key);
    }
    headers.insert("x-strangler-shadow", HeaderValue::from_static("mirror"));
    Ok(req)
}

mod ids;
pub use ids::carry_id;
use ids::{map_item, pair_of};

#[cfg(test)]
mod tests;
