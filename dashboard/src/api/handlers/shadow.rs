//! A context's shadow comparison results and the noise the comparison learned.

use super::{ApiResult, Window};
use crate::api::auth::Reader;
use crate::api::problem::ApiProblem;
use crate::api::ApiState;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use std::collections::BTreeMap;
use strangler_catalog::Side;

/// A context's shadow comparison results: per minute, totals, and the top mismatch signatures.
pub async fn shadow_results(
    _: Reader,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<Window>,
) -> ApiResult {
    let minutes = q.minutes.unwrap_or(60);
    if !(1..=10_080).contains(&minutes) {
        return Err(ApiProblem::bad_request(
            "minutes",
            format!("{minutes} is out of range; ask for 1-10080 minutes"),
        ));
    }
    if !s.store.load().await?.contexts.contains_key(&name) {
        return Err(ApiProblem::not_found(format!(
            "context `{name}` does not exist"
        )));
    }
    let now = crate::now_minute();
    let rows = s.store.shadow(&name, now - minutes + 1).await?;
    let mut compared = 0i64;
    let mut matched = 0i64;
    let mut legacy_us = 0i64;
    let mut new_us = 0i64;
    let mut learned = 0i64;
    let mut signatures: BTreeMap<&str, (i64, BTreeMap<&str, i64>)> = BTreeMap::new();
    let mut skipped: BTreeMap<&str, i64> = BTreeMap::new();
    for r in &rows {
        compared += r.compared;
        matched += r.matched;
        legacy_us += r.legacy_us;
        new_us += r.new_us;
        learned += r.learned;
        for c in &r.signatures {
            let entry = signatures.entry(&c.signature).or_default();
            entry.0 += c.count;
            *entry.1.entry(&c.route).or_insert(0) += c.count;
        }
        for (why, n) in &r.skipped {
            *skipped.entry(why).or_insert(0) += n;
        }
    }
    let mut top: Vec<_> = signatures.into_iter().collect();
    top.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    top.truncate(20);
    let examples = s.store.shadow_examples(&name).await?;
    let outbox = s.store.outbox_stats(&name, Side::New).await?;
    let reverse_outbox = s.store.outbox_stats(&name, Side::Legacy).await?;
    let id_map: BTreeMap<String, i64> = s.store.ids_count(&name).await?.into_iter().collect();
    let mean_ms = |us: i64| (compared > 0).then(|| us as f64 / compared as f64 / 1000.0);
    Ok(Json(serde_json::json!({
        "examples": examples,
        "context": name,
        "compared": compared,
        "matched": matched,
        "match_rate": if compared > 0 { Some(matched as f64 / compared as f64) } else { None },
        "latency_ms": { "legacy_mean": mean_ms(legacy_us), "new_mean": mean_ms(new_us) },
        "skipped": skipped,
        "learned": learned,
        "outbox": outbox,
        "reverse_outbox": reverse_outbox,
        "id_map": id_map,
        "top_signatures": top.iter().map(|(sig, (n, routes))| serde_json::json!({
            "signature": sig,
            "count": n,
            "routes": routes.iter().map(|(r, n)| serde_json::json!({ "route": r, "count": n })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "minutes": rows,
    }))
    .into_response())
}

/// Proposed ignore rules learned from two legacy answers to the same request, with whether
/// each is already a rule of the context.
pub async fn shadow_noise(
    _: Reader,
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult {
    let c = s.store.load().await?;
    let ctx = c
        .contexts
        .get(&name)
        .ok_or_else(|| ApiProblem::not_found(format!("context `{name}` does not exist")))?;
    let proposals = s.store.shadow_noise(&name).await?;
    let items: Vec<_> = proposals
        .iter()
        .map(|p| {
            serde_json::json!({
                "path": p.path,
                "count": p.count,
                "first_ms": p.first_ms,
                "last_ms": p.last_ms,
                "dismissed": p.dismissed,
                "accepted": ctx.shadow.ignore.contains(&p.path),
            })
        })
        .collect();
    Ok(
        Json(serde_json::json!({ "version": c.version, "context": name, "items": items }))
            .into_response(),
    )
}
