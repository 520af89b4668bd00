//! Traffic figures: how far the strangling has come, per context, per minute, and the
//! requests no context claims.

use super::{ApiResult, Window};
use crate::api::auth::Reader;
use crate::api::problem::ApiProblem;
use crate::api::ApiState;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use std::collections::BTreeMap;

/// One side's figures over a window.
fn side_figures(t: &strangler_catalog::TrafficMinute) -> serde_json::Value {
    serde_json::json!({
        "requests": t.requests,
        "errors": t.errors,
        "error_rate": (t.requests > 0).then(|| t.errors as f64 / t.requests as f64),
        "mean_ms": (t.requests > 0).then(|| t.latency_us as f64 / t.requests as f64 / 1000.0),
        "p50_ms": t.quantile_ms(0.5),
        "p99_ms": t.quantile_ms(0.99),
        "fallbacks": t.fallbacks,
    })
}

/// A route's or a template's figures.
fn path_figures(t: &strangler_catalog::PathTraffic) -> serde_json::Value {
    serde_json::json!({
        "side": t.side,
        "requests": t.requests,
        "errors": t.errors,
        "mean_ms": (t.requests > 0).then(|| t.latency_us as f64 / t.requests as f64 / 1000.0),
    })
}

fn window(minutes: Option<i64>) -> Result<(i64, i64), ApiProblem> {
    let minutes = minutes.unwrap_or(60);
    if !(1..=43_200).contains(&minutes) {
        return Err(ApiProblem::bad_request(
            "minutes",
            format!("{minutes} is out of range; ask for 1-43200 minutes (30 days)"),
        ));
    }
    let now = crate::now_minute();
    Ok((minutes, now - minutes + 1))
}

/// Requests answered by legacy and by the new services over the last `minutes`, per context
/// (`""`: requests no context claimed), with the share the new services answered: how far the
/// strangling has come.
pub async fn traffic(_: Reader, State(s): State<ApiState>, Query(q): Query<Window>) -> ApiResult {
    let (minutes, since) = window(q.minutes)?;
    let rows = s.store.traffic(None, since).await?;
    let mut by: BTreeMap<(&str, &str), strangler_catalog::TrafficMinute> = BTreeMap::new();
    for r in &rows {
        by.entry((&r.context, &r.side)).or_default().absorb(r);
    }
    let (mut total, mut new_total) = (0i64, 0i64);
    let mut contexts: BTreeMap<&str, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    let mut unclaimed = strangler_catalog::TrafficMinute::default();
    for ((context, side), t) in &by {
        total += t.requests;
        if *side == "new" {
            new_total += t.requests;
        }
        if context.is_empty() {
            unclaimed.absorb(t);
            continue;
        }
        contexts
            .entry(context)
            .or_default()
            .insert((*side).to_owned(), side_figures(t));
    }
    let share = |new: i64, all: i64| (all > 0).then(|| new as f64 / all as f64);
    let contexts: Vec<_> = contexts
        .into_iter()
        .map(|(name, mut sides)| {
            let n = |side: &str| {
                sides
                    .get(side)
                    .and_then(|v| v["requests"].as_i64())
                    .unwrap_or(0)
            };
            let (new, legacy) = (n("new"), n("legacy"));
            sides.insert("context".into(), name.into());
            sides.insert("new_share".into(), share(new, new + legacy).into());
            serde_json::Value::Object(sides)
        })
        .collect();
    Ok(Json(serde_json::json!({
        "minutes": minutes,
        "since_minute": since,
        "requests": total,
        "new_share": share(new_total, total),
        "contexts": contexts,
        "unclaimed": side_figures(&unclaimed),
    }))
    .into_response())
}

/// One context's traffic per minute and side.
/// Requests no context claims, by path template, busiest first (`minutes` defaults to a day;
/// counted per hour, so the window is rounded out to whole hours).
pub async fn unclaimed(_: Reader, State(s): State<ApiState>, Query(q): Query<Window>) -> ApiResult {
    let (minutes, since) = window(Some(q.minutes.unwrap_or(1440)))?;
    let mut rows = s.store.path_traffic("", since).await?;
    // What a route has claimed since is no longer unclaimed.
    let catalog = s.catalog.current(&*s.store).await?;
    rows.retain(|r| !catalog.claims_template(&r.path));
    rows.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.path.cmp(&b.path)));
    let templates: Vec<_> = rows
        .iter()
        .map(|r| {
            let mut v = path_figures(r);
            v["template"] = r.path.clone().into();
            v
        })
        .collect();
    Ok(Json(serde_json::json!({
        "minutes": minutes,
        "since_minute": since,
        "templates": templates,
    }))
    .into_response())
}

pub async fn context_traffic(
    _: Reader,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<Window>,
) -> ApiResult {
    let (minutes, since) = window(q.minutes)?;
    if !s.store.load().await?.contexts.contains_key(&name) {
        return Err(ApiProblem::not_found(format!(
            "context `{name}` does not exist"
        )));
    }
    let rows = s.store.traffic(Some(&name), since).await?;
    let series: Vec<_> = rows
        .iter()
        .map(|r| {
            let mut v = side_figures(r);
            v["minute"] = r.minute.into();
            v["side"] = r.side.clone().into();
            v
        })
        .collect();
    // Routes are counted per hour: the window is rounded out to whole hours.
    let routes: Vec<_> = s
        .store
        .path_traffic(&name, since)
        .await?
        .iter()
        .map(|r| {
            let mut v = path_figures(r);
            v["route"] = r.path.clone().into();
            v
        })
        .collect();
    Ok(Json(serde_json::json!({
        "context": name,
        "minutes": minutes,
        "since_minute": since,
        "series": series,
        "routes": routes,
    }))
    .into_response())
}
