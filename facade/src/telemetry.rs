//! Counters and a latency histogram for the facade, lock-free on the request path and rendered
//! in the Prometheus text format on demand.
//!
//! Hand-written rather than taken from a metrics crate: the request path does only relaxed
//! atomic adds on a fixed set of cells, the exposition is a few lines, and the common Prometheus
//! clients either lock per histogram observation or pull in a registry we do not need.
//!
//! Size: over 600 lines, kept whole on purpose: the cells the request path adds to and the
//! exposition that reads them are one layout, and keeping them together keeps every series'
//! name, help text and cell in one place.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strangler_catalog::{ContractPair, ShadowExample, ShadowMinute, Side, SignatureCount};

use crate::exposition::Exposition;
use strangler_services::FailureKind;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Answers the facade made itself, by reason (a label of `strangler_facade_answers_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    BadRequest,
    HeadersTooLarge,
    BodyTooLarge,
    ClientTimeout,
    UpstreamTimeout,
    UpstreamUnreachable,
    UpstreamBroken,
    MethodNotAllowed,
    ServiceUnavailable,
    /// The new service's answer could not be translated to the legacy contract (502).
    TranslationFailed,
    /// The client's request does not fit the translator's rules (400).
    Untranslatable,
    /// A context's new service needs a legacy session and the request has none (401).
    Unauthenticated,
    /// The request uses a transfer coding the facade does not decode (501).
    NotImplemented,
    /// The buffer budget or the CPU pool has no room for the request's work now (503).
    Overloaded,
    /// The request's id names two resources, one from each side (409; see the id map).
    AmbiguousId,
}

impl Answer {
    const ALL: [Answer; 15] = [
        Answer::BadRequest,
        Answer::HeadersTooLarge,
        Answer::BodyTooLarge,
        Answer::ClientTimeout,
        Answer::UpstreamTimeout,
        Answer::UpstreamUnreachable,
        Answer::UpstreamBroken,
        Answer::MethodNotAllowed,
        Answer::ServiceUnavailable,
        Answer::TranslationFailed,
        Answer::Untranslatable,
        Answer::Unauthenticated,
        Answer::NotImplemented,
        Answer::Overloaded,
        Answer::AmbiguousId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Answer::BadRequest => "bad_request",
            Answer::HeadersTooLarge => "headers_too_large",
            Answer::BodyTooLarge => "body_too_large",
            Answer::ClientTimeout => "client_timeout",
            Answer::UpstreamTimeout => "upstream_timeout",
            Answer::UpstreamUnreachable => "upstream_unreachable",
            Answer::UpstreamBroken => "upstream_broken",
            Answer::MethodNotAllowed => "method_not_allowed",
            Answer::ServiceUnavailable => "service_unavailable",
            Answer::TranslationFailed => "translation_failed",
            Answer::Untranslatable => "untranslatable_request",
            Answer::Unauthenticated => "unauthenticated",
            Answer::NotImplemented => "not_implemented",
            Answer::Overloaded => "overloaded",
            Answer::AmbiguousId => "ambiguous_id",
        }
    }
}

/// The facade's live figures. One per facade, shared by all connections.
#[derive(Debug, Default)]
pub struct Telemetry {
    by_class: [AtomicU64; 5],
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    upstream_errors: [AtomicU64; FailureKind::ALL.len()],
    answers: [AtomicU64; Answer::ALL.len()],
    in_flight: AtomicI64,
    open_connections: AtomicI64,
    connections_total: AtomicU64,
    upgrades_total: AtomicU64,
    /// Connections closed because no request head was complete in time after the accept.
    header_timeouts: AtomicU64,
    /// TLS handshakes that failed or did not finish in time.
    tls_failures: AtomicU64,
    /// Requests by the side that answered: legacy, new.
    by_side: [AtomicU64; 2],
    catalog_version: AtomicI64,
    catalog_rejected: AtomicU64,
    /// Age of the oldest traffic count handed to the catalog and not yet merged into its
    /// rollups, as of this replica's last flush (0: none waiting).
    unmerged_traffic_ms: AtomicI64,
    /// Fallbacks to legacy by (context, reason). Locked only on that exceptional path.
    fallbacks: Mutex<BTreeMap<(String, String), u64>>,
    /// Failed translations by (context, direction: request, response, shadow).
    translation_failures: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Requests per context and side, for the catalog's traffic rows.
    pub traffic: crate::traffic::Traffic,
    /// Shadow comparisons and their outcomes, off the request path (the shadow's own task).
    shadow: Mutex<ShadowFigures>,
}

/// Shadow figures by context.
#[derive(Debug, Default)]
struct ShadowFigures {
    /// (compared, matched, legacy µs sum, new µs sum) by context.
    compared: BTreeMap<String, (u64, u64, u64, u64)>,
    /// Mismatches by (context, signature).
    mismatches: BTreeMap<(String, String), u64>,
    /// Distinct signatures in `mismatches` per context (bounded by [`SIGNATURES_PER_CONTEXT`]).
    signature_counts: BTreeMap<String, usize>,
    /// Requests not shadowed by (context, reason).
    skipped: BTreeMap<String, [u64; crate::shadow::skip::Skip::ALL.len()]>,
    /// The part of `skipped` already handed to the catalog flush.
    skipped_flushed: BTreeMap<String, [u64; crate::shadow::skip::Skip::ALL.len()]>,
    /// Mirrored writes by (context, outcome: queued, delivered, dead).
    mirrored: BTreeMap<(String, &'static str), u64>,
    /// Mirrored writes stored in the outbox.
    mirror_stored: u64,
    /// Pairs of legacy answers compared to learn noise, by context.
    learned: BTreeMap<String, u64>,
    /// Not yet flushed to the catalog, by (minute, context).
    pending: BTreeMap<(i64, String), ShadowRollup>,
}

/// One minute of shadow results of one context, waiting to be flushed to the catalog (as a
/// [`ShadowMinute`]); counted here in the shape that adds up cheaply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ShadowRollup {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub context: String,
    pub compared: u64,
    pub matched: u64,
    pub legacy_us: u64,
    pub new_us: u64,
    /// Mismatches by (route, signature).
    pub signatures: BTreeMap<(String, String), u64>,
    /// Requests not shadowed, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Pairs of legacy answers compared to learn noise, and the paths that differed.
    pub learned: u64,
    pub noise: BTreeMap<String, u64>,
    /// A few redacted example pairs (at most three per signature per minute).
    pub examples: Vec<ShadowExample>,
    /// A few matched exchanges, redacted (at most two per route per minute): the material of
    /// contract tests.
    pub pairs: Vec<ContractPair>,
}

/// Matched exchanges kept per route per minute before flushing.
const PAIRS_PER_MINUTE: usize = 2;

/// Examples kept per signature per minute before flushing.
const EXAMPLES_PER_MINUTE: usize = 3;

impl ShadowFigures {
    /// Adds `one` to this minute's rollup of `context`.
    fn pend(&mut self, context: &str, one: &ShadowRollup) {
        let minute = strangler_catalog::clock::now_minute();
        self.pending
            .entry((minute, context.to_owned()))
            .or_insert_with(|| ShadowRollup {
                minute,
                context: context.to_owned(),
                ..ShadowRollup::default()
            })
            .absorb(one);
    }
}

impl ShadowRollup {
    fn absorb(&mut self, other: &ShadowRollup) {
        self.compared += other.compared;
        self.matched += other.matched;
        self.legacy_us += other.legacy_us;
        self.new_us += other.new_us;
        for ((route, sig), n) in &other.signatures {
            // A minute keeps at most so many signatures per context; the rest count as one.
            let key = if self.signatures.len() >= SIGNATURES_PER_CONTEXT
                && !self.signatures.contains_key(&(route.clone(), sig.clone()))
            {
                (route.clone(), OTHER_SIGNATURE.to_owned())
            } else {
                (route.clone(), sig.clone())
            };
            *self.signatures.entry(key).or_insert(0) += n;
        }
        for (why, n) in &other.skipped {
            *self.skipped.entry(why.clone()).or_insert(0) += n;
        }
        self.learned += other.learned;
        for (path, n) in &other.noise {
            if self.noise.len() < SIGNATURES_PER_CONTEXT || self.noise.contains_key(path) {
                *self.noise.entry(path.clone()).or_insert(0) += n;
            }
        }
        for p in &other.pairs {
            let same = self.pairs.iter().filter(|x| x.route == p.route).count();
            if same < PAIRS_PER_MINUTE {
                self.pairs.push(p.clone());
            }
        }
        for e in &other.examples {
            let same = self
                .examples
                .iter()
                .filter(|x| x.signature == e.signature)
                .count();
            if same < EXAMPLES_PER_MINUTE && self.examples.len() < EXAMPLES_PER_CONTEXT_MINUTE {
                self.examples.push(e.clone());
            }
        }
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uncount(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl From<ShadowRollup> for ShadowMinute {
    fn from(r: ShadowRollup) -> Self {
        ShadowMinute {
            minute: r.minute,
            context: r.context,
            compared: count(r.compared),
            matched: count(r.matched),
            legacy_us: count(r.legacy_us),
            new_us: count(r.new_us),
            learned: count(r.learned),
            signatures: r
                .signatures
                .into_iter()
                .map(|((route, signature), n)| SignatureCount {
                    route,
                    signature,
                    count: count(n),
                })
                .collect(),
            skipped: r.skipped.into_iter().map(|(k, n)| (k, count(n))).collect(),
            noise: r.noise.into_iter().map(|(k, n)| (k, count(n))).collect(),
            examples: r.examples,
            pairs: r.pairs,
        }
    }
}

impl From<ShadowMinute> for ShadowRollup {
    fn from(m: ShadowMinute) -> Self {
        ShadowRollup {
            minute: m.minute,
            context: m.context,
            compared: uncount(m.compared),
            matched: uncount(m.matched),
            legacy_us: uncount(m.legacy_us),
            new_us: uncount(m.new_us),
            learned: uncount(m.learned),
            signatures: m
                .signatures
                .into_iter()
                .map(|s| ((s.route, s.signature), uncount(s.count)))
                .collect(),
            skipped: m
                .skipped
                .into_iter()
                .map(|(k, n)| (k, uncount(n)))
                .collect(),
            noise: m.noise.into_iter().map(|(k, n)| (k, uncount(n))).collect(),
            examples: m.examples,
            pairs: m.pairs,
        }
    }
}

/// Examples kept per context and minute, whatever their signatures.
const EXAMPLES_PER_CONTEXT_MINUTE: usize = 20;

/// Distinct mismatch signatures kept per context (for its lifetime in `/metrics`, per minute in
/// the catalog's rows); beyond, mismatches count as [`OTHER_SIGNATURE`].
pub const SIGNATURES_PER_CONTEXT: usize = 100;
/// The signature of mismatches beyond [`SIGNATURES_PER_CONTEXT`].
pub const OTHER_SIGNATURE: &str = "other (more distinct signatures than are kept)";

impl Telemetry {
    /// Records a finished response head: its status and the time to it.
    pub fn record_response(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        // Cumulative buckets are built at render time; here only the first fitting one counts.
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    pub fn record_upstream_error(&self, kind: FailureKind) {
        self.upstream_errors[kind.index()].fetch_add(1, Relaxed);
    }

    pub fn record_answer(&self, answer: Answer) {
        if let Some(i) = Answer::ALL.iter().position(|a| *a == answer) {
            self.answers[i].fetch_add(1, Relaxed);
        }
    }

    pub fn record_side(&self, side: Side) {
        self.by_side[usize::from(side == Side::New)].fetch_add(1, Relaxed);
    }

    /// A catalog was applied (`ok`) or refused (then `version` is the one still serving).
    pub fn record_catalog(&self, version: i64, ok: bool) {
        self.catalog_version.store(version, Relaxed);
        if !ok {
            self.catalog_rejected.fetch_add(1, Relaxed);
        }
    }

    /// The age of the oldest traffic count waiting for the catalog's merge (None: none).
    pub fn record_unmerged_traffic(&self, age_ms: Option<i64>) {
        self.unmerged_traffic_ms
            .store(age_ms.unwrap_or(0).max(0), Relaxed);
    }

    /// What [`Telemetry::record_unmerged_traffic`] last recorded, in ms (0: none waiting).
    pub fn unmerged_traffic_ms(&self) -> i64 {
        self.unmerged_traffic_ms.load(Relaxed)
    }

    /// Legacy answered for `context` because the new side failed with `reason`.
    pub fn record_fallback(&self, context: &str, reason: &str) {
        let mut map = self.fallbacks.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((context.to_owned(), reason.to_owned()))
            .or_insert(0) += 1;
    }

    /// Takes the traffic counts since the last call, as rows of the current minute.
    pub fn take_traffic(&self) -> Vec<strangler_catalog::TrafficMinute> {
        self.traffic.take(strangler_catalog::clock::now_minute())
    }

    /// Takes the traffic counts of routes and unclaimed path templates since the last call.
    pub fn take_path_traffic(&self) -> Vec<strangler_catalog::PathTraffic> {
        self.traffic
            .take_paths(strangler_catalog::clock::now_minute())
    }

    /// Route and template rows waiting for a flush (counted, not taken).
    pub fn path_traffic_pending(&self) -> usize {
        self.traffic.paths_pending()
    }

    /// Puts back path traffic rows a flush could not store.
    pub fn restore_path_traffic(&self, rows: &[strangler_catalog::PathTraffic]) {
        self.traffic.restore_paths(rows);
    }

    /// Puts back traffic rows a flush could not store.
    pub fn restore_traffic(&self, rows: &[strangler_catalog::TrafficMinute]) {
        self.traffic.restore(rows);
    }

    /// A translator of `context` failed on a request, an answer or a shadow's answer.
    pub fn record_translation_failure(&self, context: &str, direction: &'static str) {
        let mut map = self
            .translation_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *map.entry((context.to_owned(), direction)).or_insert(0) += 1;
    }

    /// Failed translations of `context` (all directions), for the admin API.
    pub fn translation_failures(&self, context: &str) -> u64 {
        let map = self
            .translation_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|((c, _), _)| c == context)
            .map(|(_, n)| n)
            .sum()
    }

    /// A request of a shadowed context was not shadowed, and why.
    pub fn record_shadow_skip(&self, context: &str, why: crate::shadow::skip::Skip) {
        // On the request path for every request of a shadowed context: no allocation once the
        // context is known; the catalog's per-minute counts are taken from these at flush time.
        let mut f = self.shadow.lock().unwrap_or_else(|e| e.into_inner());
        let i = why.index();
        if let Some(counts) = f.skipped.get_mut(context) {
            counts[i] += 1;
        } else {
            let mut counts = [0; crate::shadow::skip::Skip::ALL.len()];
            counts[i] = 1;
            f.skipped.insert(context.to_owned(), counts);
        }
    }

    /// Two legacy answers to one request were compared; `paths` differed.
    pub fn record_noise(&self, context: &str, paths: &[String]) {
        let mut f = self.shadow.lock().unwrap_or_else(|e| e.into_inner());
        *f.learned.entry(context.to_owned()).or_insert(0) += 1;
        let mut one = ShadowRollup {
            learned: 1,
            ..ShadowRollup::default()
        };
        for p in paths {
            *one.noise.entry(p.clone()).or_insert(0) += 1;
        }
        f.pend(context, &one);
    }

    fn record_mirror(&self, context: &str, outcome: &'static str) {
        let mut f = self.shadow.lock().unwrap_or_else(|e| e.into_inner());
        *f.mirrored.entry((context.to_owned(), outcome)).or_insert(0) += 1;
    }

    /// A write was queued for the outbox.
    pub fn record_mirror_queued(&self, context: &str) {
        self.record_mirror(context, "queued");
    }

    /// A mirrored write reached the new service.
    pub fn record_mirror_delivered(&self, context: &str) {
        self.record_mirror(context, "delivered");
    }

    /// A mirrored write ran out of attempts.
    pub fn record_mirror_dead(&self, context: &str) {
        self.record_mirror(context, "dead");
    }

    /// Mirrored writes were stored in the outbox.
    pub fn record_mirror_stored(&self, n: usize) {
        let mut f = self.shadow.lock().unwrap_or_else(|e| e.into_inner());
        f.mirror_stored += n as u64;
    }

    /// A shadow comparison: its mismatch signatures (none: a match) and both latencies.
    pub fn record_shadow(
        &self,
        context: &str,
        route: &str,
        signatures: &[crate::shadow::diff::Signature],
        legacy: Duration,
        new: Duration,
        (example, pair): (Option<ShadowExample>, Option<ContractPair>),
    ) {
        let mut f = self.shadow.lock().unwrap_or_else(|e| e.into_inner());
        let entry = f.compared.entry(context.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(signatures.is_empty());
        entry.2 += u64::try_from(legacy.as_micros()).unwrap_or(u64::MAX);
        entry.3 += u64::try_from(new.as_micros()).unwrap_or(u64::MAX);
        for sig in signatures {
            let sig = sig.to_string();
            let known = f
                .mismatches
                .contains_key(&(context.to_owned(), sig.clone()));
            let kept = f.signature_counts.get(context).copied().unwrap_or(0);
            let key = if known || kept < SIGNATURES_PER_CONTEXT {
                if !known {
                    *f.signature_counts.entry(context.to_owned()).or_insert(0) += 1;
                }
                (context.to_owned(), sig)
            } else {
                (context.to_owned(), OTHER_SIGNATURE.to_owned())
            };
            *f.mismatches.entry(key).or_insert(0) += 1;
        }
        let mut one = ShadowRollup {
            compared: 1,
            matched: u64::from(signatures.is_empty()),
            legacy_us: u64::try_from(legacy.as_micros()).unwrap_or(u64::MAX),
            new_us: u64::try_from(new.as_micros()).unwrap_or(u64::MAX),
            ..ShadowRollup::default()
        };
        if signatures.is_empty() {
            one.pairs.extend(pair);
        }
        for sig in signatures {
            *one.signatures
                .entry((route.to_owned(), sig.to_string()))
                .or_insert(0) += 1;
        }
        // One example per comparison, under its first signature.
        if let (Some(e), Some(first)) = (example, signatures.first()) {
            one.examples.push(ShadowExample {
                signature: first.to_string(),
                ..e
            });
        }
        f.pend(context, &one);
    }

    /// Takes the shadow results not yet flushed to the catalog, as the catalog's rows.
    pub fn take_shadow_rollup(&self) -> Vec<ShadowMinute> {
        let mut f = self.shadow.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh = Vec::new();
        for (ctx, counts) in &f.skipped {
            let before = f.skipped_flushed.get(ctx).copied().unwrap_or_default();
            let mut one = ShadowRollup::default();
            for (i, why) in crate::shadow::skip::Skip::ALL.iter().enumerate() {
                let n = counts[i] - before[i];
                if n > 0 {
                    one.skipped.insert(why.as_str().to_owned(), n);
                }
            }
            if !one.skipped.is_empty() {
                fresh.push((ctx.clone(), one, *counts));
            }
        }
        for (ctx, one, counts) in fresh {
            f.pend(&ctx, &one);
            f.skipped_flushed.insert(ctx, counts);
        }
        std::mem::take(&mut f.pending)
            .into_values()
            .map(ShadowMinute::from)
            .collect()
    }

    /// Puts back results whose flush failed, so that an outage loses nothing.
    pub fn restore_shadow_rollup(&self, rows: Vec<ShadowMinute>) {
        let mut f = self.shadow.lock().unwrap_or_else(|e| e.into_inner());
        for row in rows.into_iter().map(ShadowRollup::from) {
            f.pending
                .entry((row.minute, row.context.clone()))
                .or_insert_with(|| ShadowRollup {
                    minute: row.minute,
                    context: row.context.clone(),
                    ..ShadowRollup::default()
                })
                .absorb(&row);
        }
    }

    pub fn record_upgrade(&self) {
        self.upgrades_total.fetch_add(1, Relaxed);
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Relaxed)
    }

    pub fn open_connections(&self) -> i64 {
        self.open_connections.load(Relaxed)
    }

    pub(crate) fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(Arc::clone(self))
    }

    pub(crate) fn record_tls_failure(&self) {
        self.tls_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_header_timeout(&self) {
        self.header_timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_total.fetch_add(1, Relaxed);
        self.open_connections.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Relaxed);
    }

    /// Appends the Prometheus text exposition of every figure to `out`.
    pub fn render(&self, out: &mut String) {
        let mut e = Exposition::default();
        self.expose(&mut e);
        e.encode(out);
    }

    /// Requests, 5xx answers, fallbacks and latency per context and side: the label sets are
    /// the catalog's contexts (`-` for requests no context claimed) × two sides, never client
    /// data. A side that has answered nothing is left out.
    fn expose_contexts(&self, e: &mut Exposition) {
        let n = |v: u64| v as f64;
        for (name, t) in self.traffic.contexts() {
            let context = if name.is_empty() { "-" } else { &*name };
            for (side, label) in [(Side::Legacy, "legacy"), (Side::New, "new")] {
                let tot = t.totals(side);
                if tot.requests == 0 {
                    continue;
                }
                let labels = [("context", context), ("side", label)];
                e.counter(
                    "strangler_context_requests_total",
                    "Requests answered, by context (`-`: claimed by none) and the side that answered.",
                    &labels,
                    n(tot.requests),
                );
                e.counter(
                    "strangler_context_errors_total",
                    "Answers with a 5xx status, by context and side.",
                    &labels,
                    n(tot.errors),
                );
                e.counter(
                    "strangler_context_fallbacks_total",
                    "Requests legacy answered after the new side failed, by context (counted on the side first chosen).",
                    &labels,
                    n(tot.fallbacks),
                );
                let mut cumulative = 0;
                let buckets: Vec<(f64, u64)> = strangler_catalog::LATENCY_BOUNDS_MS
                    .iter()
                    .zip(&tot.buckets)
                    .map(|(ms, count)| {
                        cumulative += count;
                        (*ms as f64 / 1000.0, cumulative)
                    })
                    .collect();
                e.histogram(
                    "strangler_context_request_duration_seconds",
                    "Time from request head to response head, by context and side.",
                    &labels,
                    &buckets,
                    tot.requests,
                    tot.latency_us as f64 / 1e6,
                );
            }
        }
    }

    /// Adds every figure to a scrape.
    pub fn expose(&self, e: &mut Exposition) {
        let n = |v: u64| v as f64;
        for (i, cell) in self.by_class.iter().enumerate() {
            let class = format!("{}xx", i + 1);
            e.counter(
                "strangler_requests_total",
                "Requests answered by the facade, by status class.",
                &[("class", &class)],
                n(cell.load(Relaxed)),
            );
        }
        let mut cumulative = 0;
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&self.latency_buckets)
            .map(|(bound, cell)| {
                cumulative += cell.load(Relaxed);
                (*bound, cumulative)
            })
            .collect();
        e.histogram(
            "strangler_request_duration_seconds",
            "Time from request head to response head.",
            &[],
            &buckets,
            self.latency_count.load(Relaxed),
            self.latency_sum_micros.load(Relaxed) as f64 / 1e6,
        );
        for kind in FailureKind::ALL {
            e.counter(
                "strangler_upstream_errors_total",
                "Failed upstream calls, by kind.",
                &[("kind", kind.as_str())],
                n(self.upstream_errors[kind.index()].load(Relaxed)),
            );
        }
        for (answer, cell) in Answer::ALL.iter().zip(&self.answers) {
            e.counter(
                "strangler_facade_answers_total",
                "Answers the facade made itself, by reason.",
                &[("reason", answer.as_str())],
                n(cell.load(Relaxed)),
            );
        }
        e.gauge(
            "strangler_requests_in_flight",
            "Requests being handled now.",
            &[],
            self.in_flight.load(Relaxed) as f64,
        );
        e.gauge(
            "strangler_open_connections",
            "Client connections open now.",
            &[],
            self.open_connections.load(Relaxed) as f64,
        );
        for (name, help, cell) in [
            ("strangler_connections_total", "Client connections accepted.", &self.connections_total),
            (
                "strangler_header_timeouts_total",
                "Client connections closed because no request head was complete in time after the accept.",
                &self.header_timeouts,
            ),
            (
                "strangler_tls_handshake_failures_total",
                "TLS handshakes that failed or did not finish within the first-request timeout.",
                &self.tls_failures,
            ),
            (
                "strangler_upgrades_total",
                "Upgraded connections (WebSocket and others) tunnelled.",
                &self.upgrades_total,
            ),
            (
                "strangler_catalog_rejected_total",
                "Catalog versions that did not compile and were not served.",
                &self.catalog_rejected,
            ),
        ] {
            e.counter(name, help, &[], n(cell.load(Relaxed)));
        }
        for (i, side) in ["legacy", "new"].iter().enumerate() {
            e.counter(
                "strangler_requests_by_side_total",
                "Requests by the side chosen to answer.",
                &[("side", side)],
                n(self.by_side[i].load(Relaxed)),
            );
        }
        self.expose_contexts(e);
        e.gauge(
            "strangler_catalog_version",
            "The catalog version the facade serves.",
            &[],
            self.catalog_version.load(Relaxed) as f64,
        );
        e.gauge(
            "strangler_traffic_unmerged_oldest_seconds",
            "Age of the oldest traffic count handed to the catalog but not yet in the rollups the dashboard and the autopilot read, as of the last flush (route counts wait up to a minute by design; 0: none).",
            &[],
            self.unmerged_traffic_ms.load(Relaxed) as f64 / 1000.0,
        );
        let map = self.fallbacks.lock().unwrap_or_else(|e| e.into_inner());
        for ((context, reason), v) in map.iter() {
            e.counter(
                "strangler_fallbacks_total",
                "Requests legacy answered because the new side failed, by context and reason.",
                &[("context", context), ("reason", reason)],
                n(*v),
            );
        }
        drop(map);
        let map = self
            .translation_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for ((context, direction), v) in map.iter() {
            e.counter(
                "strangler_translation_failures_total",
                "Messages a context's translator could not translate, by context and direction (request, response, shadow).",
                &[("context", context), ("direction", direction)],
                n(*v),
            );
        }
        drop(map);
        let f = self.shadow.lock().unwrap_or_else(|e| e.into_inner());
        for (ctx, (compared, matched, legacy_us, new_us)) in &f.compared {
            e.counter(
                "strangler_shadow_compared_total",
                "Shadow pairs compared, by context.",
                &[("context", ctx)],
                n(*compared),
            );
            e.counter(
                "strangler_shadow_matched_total",
                "Shadow pairs that matched, by context.",
                &[("context", ctx)],
                n(*matched),
            );
            for (side, us) in [("legacy", legacy_us), ("new", new_us)] {
                e.counter(
                    "strangler_shadow_latency_seconds_sum",
                    "Time to answer for shadowed pairs, by context and side.",
                    &[("context", ctx), ("side", side)],
                    *us as f64 / 1e6,
                );
            }
        }
        for ((ctx, sig), v) in &f.mismatches {
            e.counter(
                "strangler_shadow_mismatches_total",
                "Mismatches by context and signature (kind and JSON path; at most 100 signatures per context, the rest as `other`).",
                &[("context", ctx), ("signature", sig)],
                n(*v),
            );
        }
        for (ctx, counts) in &f.skipped {
            for (why, v) in crate::shadow::skip::Skip::ALL.iter().zip(counts) {
                if *v > 0 {
                    e.counter(
                        "strangler_shadow_skipped_total",
                        "Requests of shadowed contexts not shadowed, by reason.",
                        &[("context", ctx), ("reason", why.as_str())],
                        n(*v),
                    );
                }
            }
        }
        for ((ctx, outcome), v) in &f.mirrored {
            e.counter(
                "strangler_shadow_mirror_total",
                "Mirrored writes by context and outcome (queued, delivered, dead).",
                &[("context", ctx), ("outcome", outcome)],
                n(*v),
            );
        }
        e.counter(
            "strangler_shadow_mirror_stored_total",
            "Mirrored writes stored in the outbox.",
            &[],
            n(f.mirror_stored),
        );
        for (ctx, v) in &f.learned {
            e.counter(
                "strangler_shadow_learned_total",
                "Pairs of legacy answers compared to learn noise, by context.",
                &[("context", ctx)],
                n(*v),
            );
        }
    }
}

/// Counts a request as in flight until dropped.
pub(crate) struct InFlight(Arc<Telemetry>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests;
