//! The process beside the catalog: the audit log, event sinks, the autopilot's lease and
//! decisions, the log level.

use super::{meta, ApiResult, Envelope};
use crate::api::auth::{Operator, Reader};
use crate::api::problem::ApiProblem;
use crate::api::ApiState;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use strangler_catalog::AuditQuery;

/// Every event sink's deliveries: pending, delivered, given up, the last error.
pub async fn event_sinks(_: Reader, State(s): State<ApiState>) -> ApiResult {
    let sinks = s.store.sink_stats().await?;
    Ok(Json(serde_json::json!({ "sinks": sinks })).into_response())
}

/// Which replica evaluates the rollout policies, and what this one decided last.
pub async fn autopilot(_: Reader, State(s): State<ApiState>) -> ApiResult {
    let holder = s.store.lease_holder("autopilot").await?;
    let mut v = match &s.autopilot {
        Some(view) => view(),
        None => serde_json::json!({ "evaluating": false }),
    };
    v["lease"] = match holder {
        Some((holder, expires_ms)) => {
            serde_json::json!({ "holder": holder, "expires_ms": expires_ms })
        }
        None => serde_json::Value::Null,
    };
    Ok(Json(v).into_response())
}

pub async fn audit(
    _: Reader,
    State(s): State<ApiState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiProblem::bad_request("query", e.body_text()))?;
    if let Some(limit) = q.limit {
        if !(1..=500).contains(&limit) {
            return Err(ApiProblem::bad_request(
                "limit",
                format!("{limit} is out of range; ask for 1-500 entries"),
            ));
        }
    }
    let entries = s.store.audit(&q).await?;
    let next = entries
        .last()
        .filter(|_| entries.len() == q.limit.unwrap_or(50) as usize)
        .map(|e| e.id);
    Ok(Json(serde_json::json!({ "items": entries, "next_before_id": next })).into_response())
}

pub async fn get_log_level(_: Reader, State(s): State<ApiState>) -> ApiResult {
    let log = s
        .log
        .as_ref()
        .ok_or_else(|| ApiProblem::not_found("this process has no adjustable log level"))?;
    Ok(Json(serde_json::json!({ "level": log.current() })).into_response())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelBody {
    level: String,
}

pub async fn put_log_level(
    op: Operator,
    State(s): State<ApiState>,
    e: Envelope<LevelBody>,
) -> ApiResult {
    let log = s
        .log
        .as_ref()
        .ok_or_else(|| ApiProblem::not_found("this process has no adjustable log level"))?;
    let meta = meta(&op, e.reason, false)?;
    if e.item.level.trim().is_empty() {
        return Err(ApiProblem::bad_request(
            "level",
            "give a level (trace, debug, info, warn, error) or tracing directives",
        ));
    }
    log.check(&e.item.level)
        .map_err(|why| ApiProblem::bad_request("level", why))?;
    // Audit first: a change that cannot be recorded is not made.
    let entry = s
        .store
        .record(
            &meta,
            "set-log-level",
            "runtime:log-level",
            Some(log.current().into()),
            Some(e.item.level.clone().into()),
        )
        .await?;
    let before = log
        .set(&e.item.level)
        .map_err(|why| ApiProblem::bad_request("level", why))?;
    Ok(
        Json(
            serde_json::json!({ "level": e.item.level, "previous": before, "audit_id": entry.id }),
        )
        .into_response(),
    )
}
