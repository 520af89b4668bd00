//! Operators' actions on a context (promote, roll back, weight, pause, noise): each is a typed
//! catalog change performed by `crate::actions`; these handlers only read the request and
//! answer what the action did.

use super::{base, item_of, meta, ApiResult, Envelope, Nothing, Said};
use crate::actions::{self, ContextAction, Outcome};
use crate::api::auth::Operator;
use crate::api::problem::ApiProblem;
use crate::api::ApiState;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoisePath {
    path: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissNoise {
    path: String,
    /// `false` shows a dismissed proposal again.
    #[serde(default = "yes")]
    dismissed: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    paused: bool,
}

/// Performs an operator's action on a context.
async fn act(
    s: &ApiState,
    op: &Operator,
    name: &str,
    action: ContextAction,
    said: Said,
) -> Result<Outcome, ApiProblem> {
    let meta = meta(op, said.reason, said.force)?;
    // Dismissing a proposal changes no catalog: it needs no version.
    let based_on = match action {
        ContextAction::DismissNoise { .. } => said.base_version.unwrap_or_default(),
        _ => base(said.base_version)?,
    };
    let outcome = actions::perform(&*s.store, name, action, based_on, &meta).await?;
    if let Outcome::Changed { catalog, .. } = &outcome {
        s.in_effect(catalog.version).await;
    }
    Ok(outcome)
}

/// What an action did, as the API answers it.
fn done(outcome: Outcome) -> ApiResult {
    match outcome {
        Outcome::Changed { change, catalog } => {
            let target = change.target();
            Ok(Json(serde_json::json!({
                "version": catalog.version,
                "target": target,
                "item": item_of(&catalog, &target),
            }))
            .into_response())
        }
        Outcome::Recorded { audit_id } => {
            Ok(Json(serde_json::json!({ "audit_id": audit_id })).into_response())
        }
    }
}

/// Cuts the context over: the new service becomes the owner of its writes (canary only).
pub async fn cutover(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<Nothing>,
) -> ApiResult {
    done(act(&s, &op, &name, ContextAction::Cutover, e.said()).await?)
}

pub async fn promote(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<Nothing>,
) -> ApiResult {
    done(act(&s, &op, &name, ContextAction::Promote, e.said()).await?)
}

pub async fn rollback(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<Nothing>,
) -> ApiResult {
    done(act(&s, &op, &name, ContextAction::Rollback, e.said()).await?)
}

/// Pauses (`{"paused": true}`) or resumes the autopilot for a context.
pub async fn pause_autopilot(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<PauseBody>,
) -> ApiResult {
    let action = ContextAction::PauseAutopilot(e.item.paused);
    done(act(&s, &op, &name, action, e.said()).await?)
}

/// Pauses (`{"paused": true}`) or resumes a context's shadowing; its sampling share is kept.
pub async fn pause_shadow(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<PauseBody>,
) -> ApiResult {
    let action = ContextAction::PauseShadow(e.item.paused);
    done(act(&s, &op, &name, action, e.said()).await?)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightBody {
    /// Basis points, 0-10000.
    weight: i64,
}

pub async fn set_weight(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<WeightBody>,
) -> ApiResult {
    // Out of `u16`: as out of range as 10001.
    let weight = u16::try_from(e.item.weight.clamp(0, i64::from(u16::MAX))).unwrap_or(u16::MAX);
    if i64::from(weight) != e.item.weight {
        return Err(ApiProblem::bad_request(
            "weight",
            format!(
                "{} is out of range; a weight is 0-10000 basis points (2500 = 25 %)",
                e.item.weight
            ),
        ));
    }
    let action = ContextAction::SetWeight(weight);
    done(act(&s, &op, &name, action, e.said()).await?)
}

/// Accepts a proposed ignore rule: a catalog change (versioned, audited) adding the path to
/// the context's `shadow.ignore`.
pub async fn accept_noise(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<NoisePath>,
) -> ApiResult {
    let said = e.said();
    let action = ContextAction::AcceptNoise(e.item.path);
    done(act(&s, &op, &name, action, said).await?)
}

/// Dismisses a proposed ignore rule, or (`"dismissed": false`) shows it again: audited; the
/// catalog does not change.
pub async fn dismiss_noise(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<DismissNoise>,
) -> ApiResult {
    let said = e.said();
    let DismissNoise { path, dismissed } = e.item;
    let action = ContextAction::DismissNoise {
        path: path.clone(),
        dismissed,
    };
    match act(&s, &op, &name, action, said).await? {
        Outcome::Recorded { audit_id } => Ok(Json(
            serde_json::json!({ "path": path, "dismissed": dismissed, "audit_id": audit_id }),
        )
        .into_response()),
        other => done(other),
    }
}
