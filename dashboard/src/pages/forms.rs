//! The context page's forms: each posts one operator action, performed by `crate::actions`
//! like the JSON API's; this only reads the form, checks the session and CSRF token, and
//! answers with the page again or a message.

use super::{message, refuse_change, see_other, session, store_failure};
use crate::actions::{self, ActionError, ContextAction};
use crate::api::ApiState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use strangler_catalog::{AuditQuery, ChangeMeta};
use strangler_store::StoreError;

#[derive(Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
    base_version: i64,
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    weight: Option<u16>,
    /// The JSON path of a noise rule to accept or dismiss.
    #[serde(default)]
    path: Option<String>,
    /// Present: move the write owner even with mirrored writes still waiting.
    #[serde(default)]
    force: Option<String>,
}

pub(super) async fn action(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    let back = format!("/contexts/{name}");
    let Some(viewer) = session(&s, &headers).await else {
        return see_other("/login");
    };
    let refuse = |status, title: &str, detail: String| {
        message(status, Some(&viewer), &s, title, detail, back.clone())
    };
    if let Some(refused) = refuse_change(&s, &viewer, &f.csrf, &back) {
        return refused;
    }
    if f.reason.trim().len() < 3 {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not applied",
            "give a reason of at least 3 characters: it goes into the audit log".into(),
        );
    }
    let meta = ChangeMeta {
        force: f.force.is_some(),
        actor: format!("{} (dashboard)", viewer.actor),
        reason: f.reason.trim().to_owned(),
    };
    let path = f.path.as_deref().unwrap_or("").trim().to_owned();
    let action = match (f.action.as_str(), f.weight) {
        ("promote", _) => ContextAction::Promote,
        ("rollback", _) => ContextAction::Rollback,
        ("cutover", _) => ContextAction::Cutover,
        ("set-weight", Some(weight)) => ContextAction::SetWeight(weight),
        ("pause-autopilot", _) => ContextAction::PauseAutopilot(true),
        ("resume-autopilot", _) => ContextAction::PauseAutopilot(false),
        ("pause-shadow", _) => ContextAction::PauseShadow(true),
        ("resume-shadow", _) => ContextAction::PauseShadow(false),
        ("accept-noise", _) => ContextAction::AcceptNoise(path),
        ("dismiss-noise", _) => ContextAction::DismissNoise {
            path,
            dismissed: true,
        },
        _ => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not applied",
                "choose promote, rollback, cutover, set-weight (0-10000), pause-shadow, resume-shadow, pause-autopilot, resume-autopilot, accept-noise or dismiss-noise".into(),
            )
        }
    };
    let what = action.done();
    match actions::perform(&*s.store, &name, action, f.base_version, &meta).await {
        Ok(outcome) => {
            if let actions::Outcome::Changed { catalog, .. } = &outcome {
                s.in_effect(catalog.version).await;
            }
            see_other(&format!("{back}?done={}", what.replace(' ', "+")))
        }
        Err(ActionError::Store(StoreError::Stale { based_on, current })) => {
            let since = s
                .store
                .audit(&AuditQuery {
                    limit: Some(10),
                    ..AuditQuery::default()
                })
                .await
                .unwrap_or_default();
            let changes: Vec<String> = since
                .iter()
                .filter(|a| a.version > based_on)
                .map(|a| format!("{} by {} on {} ({})", a.action, a.actor, a.target, a.reason))
                .collect();
            refuse(
                StatusCode::CONFLICT,
                "The catalog changed while you looked",
                format!(
                    "your page showed version {based_on}; the catalog is at {current}. Changed since: {}. Nothing was applied: reload the page and decide again.",
                    if changes.is_empty() { "—".to_owned() } else { changes.join("; ") }
                ),
            )
        }
        Err(ActionError::Store(StoreError::Change(e))) => {
            refuse(StatusCode::CONFLICT, "Not applied", e.to_string())
        }
        Err(ActionError::Store(e @ StoreError::NotDrained { .. })) => refuse(
            StatusCode::CONFLICT,
            "Not applied: mirrored writes are still on their way",
            format!("{e}. To move it anyway, tick \"move the write owner even with mirrored writes still waiting\"."),
        ),
        Err(e @ (ActionError::Invalid { .. } | ActionError::NotProposed { .. })) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not applied",
            e.to_string(),
        ),
        Err(ActionError::Store(e)) => store_failure(&s, Some(&viewer), e),
    }
}
