//! Contexts: list, read, create, replace, patch, delete.

use super::{change, patched, with_version, ApiResult, Body, Envelope, Nothing};
use crate::api::auth::{Operator, Reader};
use crate::api::problem::ApiProblem;
use crate::api::ApiState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use strangler_catalog::{Change, Context};

pub async fn list_contexts(_: Reader, State(s): State<ApiState>) -> ApiResult {
    let c = s.store.load().await?;
    Ok(with_version(
        c.version,
        c.contexts.values().map(Context::view).collect::<Vec<_>>(),
    ))
}

pub async fn get_context(
    _: Reader,
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult {
    let c = s.store.load().await?;
    let ctx = c
        .contexts
        .get(&name)
        .ok_or_else(|| ApiProblem::not_found(format!("context `{name}` does not exist")))?;
    let routes: Vec<_> = c.routes_of(&name).collect();
    Ok(
        Json(serde_json::json!({ "version": c.version, "item": ctx.view(), "routes": routes }))
            .into_response(),
    )
}

pub async fn create_context(
    op: Operator,
    State(s): State<ApiState>,
    e: Envelope<Context>,
) -> ApiResult {
    let c = s.store.load().await?;
    if c.contexts.contains_key(&e.item.name) {
        return Err(ApiProblem::new(
            StatusCode::CONFLICT,
            "conflict",
            "The context exists",
            format!(
                "context `{}` already exists; PUT /api/v1/contexts/{} to change it",
                e.item.name, e.item.name
            ),
        ));
    }
    change(
        &s,
        &op,
        Change::PutContext(checked_owner(&e)?),
        e.said(),
        true,
    )
    .await
}

pub async fn put_context(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<Context>,
) -> ApiResult {
    if e.item.name != name {
        return Err(ApiProblem::bad_request(
            "name",
            format!(
                "the body names `{}` but the URL names `{name}`",
                e.item.name
            ),
        ));
    }
    change(
        &s,
        &op,
        Change::PutContext(checked_owner(&e)?),
        e.said(),
        false,
    )
    .await
}

/// Changes the fields a JSON merge patch names and keeps the others (where `PUT` replaces
/// the whole context, so that a field left out of it is dropped).
pub async fn patch_context(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Body(patch): Body<serde_json::Value>,
) -> ApiResult {
    let c = s.store.load().await?;
    let e = patched("context", &name, c.contexts.get(&name), |c| &c.name, patch)?;
    change(
        &s,
        &op,
        Change::PutContext(checked_owner(&e)?),
        e.said(),
        false,
    )
    .await
}

pub async fn delete_context(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<Nothing>,
) -> ApiResult {
    change(&s, &op, Change::DeleteContext { name }, e.said(), false).await
}

/// The context of a create or replace, once its `owner` (if sent back) agrees with what its
/// state and `cut_over` say: the owner changes only by cutover, promotion and rollback.
fn checked_owner(e: &Envelope<Context>) -> Result<Context, ApiProblem> {
    let derived = e.item.owner();
    match &e.owner {
        None | Some(serde_json::Value::Null) => Ok(e.item.clone()),
        Some(serde_json::Value::String(s)) if s == derived.as_str() => Ok(e.item.clone()),
        Some(_) => Err(ApiProblem::bad_request(
            "owner",
            format!(
                "`owner` is read-only: with this state it is `{}`; the owner changes by \
                 POST /api/v1/contexts/{}/cutover, promotion and rollback",
                derived.as_str(),
                e.item.name
            ),
        )),
    }
}
