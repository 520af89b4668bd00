//! Routes: list (by context), read, create, replace, delete.

use super::{base, change, meta, with_version, ApiResult, Envelope, Nothing};
use crate::api::auth::{Operator, Reader};
use crate::api::problem::ApiProblem;
use crate::api::ApiState;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use strangler_catalog::{Change, RouteSpec};

#[derive(Debug, Deserialize)]
pub struct RouteFilter {
    context: Option<String>,
}

pub async fn list_routes(
    _: Reader,
    State(s): State<ApiState>,
    Query(f): Query<RouteFilter>,
) -> ApiResult {
    let c = s.store.load().await?;
    let routes: Vec<_> = c
        .routes
        .values()
        .filter(|r| f.context.as_ref().is_none_or(|ctx| &r.context == ctx))
        .collect();
    Ok(with_version(c.version, routes))
}

pub async fn get_route(_: Reader, State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let c = s.store.load().await?;
    let r = c
        .routes
        .get(&id)
        .ok_or_else(|| ApiProblem::not_found(format!("route `{id}` does not exist")))?;
    Ok(Json(serde_json::json!({ "version": c.version, "item": r })).into_response())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoute {
    pub(super) context: String,
    #[serde(flatten)]
    spec: RouteSpec,
}

pub async fn create_route(
    op: Operator,
    State(s): State<ApiState>,
    e: Envelope<NewRoute>,
) -> ApiResult {
    let said = e.said();
    change(
        &s,
        &op,
        Change::AddRoute {
            context: e.item.context,
            spec: e.item.spec,
        },
        said,
        true,
    )
    .await
}

pub async fn put_route(
    op: Operator,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    e: Envelope<NewRoute>,
) -> ApiResult {
    let NewRoute { context, spec } = e.item;
    let new_id = spec.id();
    let meta = meta(&op, e.reason, e.force)?;
    let based_on = base(e.base_version)?;
    let catalog = s
        .store
        .apply(&Change::ReplaceRoute { id, context, spec }, based_on, &meta)
        .await?;
    let item = catalog
        .routes
        .get(&new_id)
        .map(serde_json::to_value)
        .and_then(Result::ok)
        .unwrap_or_default();
    Ok(Json(serde_json::json!({ "version": catalog.version, "target": format!("route:{new_id}"), "item": item })).into_response())
}

pub async fn delete_route(
    op: Operator,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    e: Envelope<Nothing>,
) -> ApiResult {
    change(&s, &op, Change::DeleteRoute { id }, e.said(), false).await
}
