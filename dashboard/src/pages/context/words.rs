//! The context page's figures in words: an instance's health, the breaker, why nothing was
//! compared, why requests were not shadowed (with what to do), the outboxes and the last
//! reconciliation.

use strangler_catalog::MigrationState;

/// An instance's health in words, from the active checks and from the failures of the requests
/// it was sent (passive): whether it is good.
pub(crate) fn instance_health(i: &serde_json::Value) -> (String, bool) {
    let failures = i
        .get("consecutive_failures")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let ejected_ms = i
        .get("ejected_for_ms")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if ejected_ms > 0 {
        let secs = ejected_ms.div_ceil(1000);
        return (
            format!("ejected for {secs} s more, after {failures} failures in a row"),
            false,
        );
    }
    if i.get("healthy").and_then(serde_json::Value::as_bool) == Some(false) {
        return ("failing its health check".to_owned(), false);
    }
    if failures > 0 {
        let s = if failures == 1 { "" } else { "s" };
        return (
            format!("failing: its last {failures} request{s} failed"),
            false,
        );
    }
    ("healthy".to_owned(), true)
}

/// The circuit breaker's state in words, and whether it lets requests through as usual.
pub(crate) fn breaker_words(state: Option<&str>) -> (String, bool) {
    match state {
        Some("closed") => ("closed".to_owned(), true),
        Some("open") => (
            "open — requests are not sent to the service now; legacy answers the safe ones \
             (fallback) and writes get 503 until it closes"
                .to_owned(),
            false,
        ),
        Some("half-open" | "half_open") => (
            "half-open — a few requests test whether the service has recovered".to_owned(),
            false,
        ),
        Some(other) => (other.to_owned(), true),
        None => ("not known to this process".to_owned(), true),
    }
}

/// What the empty match-rate chart says, by the context's state.
pub(crate) fn no_comparisons(state: MigrationState, paused: bool) -> &'static str {
    match state {
        MigrationState::Legacy => {
            "No comparisons: a context compares once it is in shadow; promote it to start"
        }
        _ if paused => "No comparisons: shadowing is paused for this context; resume it below",
        MigrationState::Retired => "No comparisons: a retired context is not compared",
        _ => {
            "No comparisons in these 24 hours: no request of this context was compared; the \
             reasons requests were not shadowed are listed below"
        }
    }
}

/// A skip reason in words, and what to do about it.
pub(crate) fn skip_words(code: &str) -> (&'static str, &'static str) {
    match code {
        "not_sampled" => (
            "Left out by the sampling share",
            "raise the context's shadow sample_percent to compare more",
        ),
        "unsafe_method" => (
            "A write on a route that does not shadow writes",
            "set the route's shadow.writes to mirror or dry-run to compare writes",
        ),
        "budget_full" => (
            "The facade's shadow budget was full (in flight, per second, or buffer memory)",
            "raise [shadow] max_in_flight / max_per_second, or the buffer budget",
        ),
        "body_too_large" => (
            "A body was over the shadow's size cap",
            "raise [shadow] max_body_bytes or the route's shadow.max_body_bytes",
        ),
        "new_unhealthy" => (
            "The new service's breaker was open or no instance was healthy",
            "see the instances below; the service recovers or needs fixing",
        ),
        "shadow_failed" => (
            "The new service did not answer the copy (refused, timed out, broke off)",
            "check the new service; raise [shadow] timeout if it is only slow",
        ),
        "incomplete" => (
            "The client went away before the exchange was complete",
            "nothing to do: there was nothing to compare",
        ),
        "fell_back" => (
            "The new side failed and legacy answered",
            "nothing to compare; see the fallbacks figure and the new service's errors",
        ),
        "outbox_full" => (
            "A mirrored write was refused (503) because the mirror's log was full or failing",
            "check the outbox below and the disk of [shadow] wal_dir; raise [shadow] outbox_queue",
        ),
        "not_durable" => (
            "Legacy took a mirrored write the mirror's log could not keep (a disk error)",
            "check the disk of [shadow] wal_dir and the facade's log: the new side misses it",
        ),
        "primary_failed" => (
            "The answering side gave no answer (the client got a 502/503/504)",
            "see the error figures; nothing to compare",
        ),
        "translation_failed" => (
            "The translator could not translate the copy or the answer",
            "fix the context's translator (the failing rule is in the facade's log)",
        ),
        "legacy_failed" => (
            "The owner refused or failed the write (4xx/5xx), so it was not mirrored",
            "nothing to do: the other side must not take a step the owner did not",
        ),
        "unredactable" => (
            "A mirrored write's body could not be redacted, so it was not stored",
            "send JSON or form bodies, or set the route's shadow.opaque_bodies if they hold no secrets",
        ),
        "upgraded" => (
            "The exchange switched protocols (WebSocket): nothing to compare",
            "nothing to do",
        ),
        "id_unmapped" => (
            "The request's id names two resources, or the id map is full",
            "rename one of the two resources, or raise [shadow] id_map_pairs",
        ),
        _ => ("A reason this page does not know", "see the facade's documentation"),
    }
}

/// An outbox in words: how many writes wait and since when, and how many were given up on.
pub(super) fn waiting(o: &strangler_catalog::OutboxStats) -> String {
    let mut text = match (o.pending, o.oldest_pending_ms) {
        (0, _) => "none waiting".to_owned(),
        (n, Some(ms)) => format!("{n} waiting, the oldest {:.1} s", ms as f64 / 1000.0),
        (n, None) => format!("{n} waiting"),
    };
    if o.dead > 0 {
        text.push_str(&format!("; {} given up on", o.dead));
    }
    text
}

/// A reconciliation's summary (as `strangler reconcile` records it) in words.
pub(super) fn reconciliation(summary: Option<&serde_json::Value>) -> String {
    let n = |k: &str| summary.and_then(|v| v[k].as_i64()).unwrap_or(0);
    let amiss: Vec<String> = [
        ("differ", "differ"),
        ("missing_on_new", "missing on the new service"),
        ("missing_on_legacy", "missing on legacy"),
        ("unreadable", "not read"),
    ]
    .iter()
    .filter(|(k, _)| n(k) > 0)
    .map(|(k, words)| format!("{} {words}", n(k)))
    .collect();
    if amiss.is_empty() {
        format!("{} read: nothing amiss", n("checked"))
    } else {
        format!("{} read: {}", n("checked"), amiss.join(", "))
    }
}
