//! The API's handlers, one file per resource (services, contexts, routes, operators' actions,
//! shadow results, traffic, the process beside the catalog). This file holds what they share:
//! the body and change-envelope extractors that turn bad JSON into problem+json naming the
//! field, the change helper (base version, reason, operator) and the answer shapes.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use serde::Deserialize;
use strangler_catalog::ChangeMeta;
use strangler_catalog::{Catalog, Change};

use super::auth::{Operator, Reader};
use super::problem::ApiProblem;
use super::ApiState;

type ApiResult = Result<Response, ApiProblem>;

/// A JSON body whose errors are problem+json naming what is wrong.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiProblem;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiProblem> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiProblem::bad_request(
                "body",
                "send the body as JSON with `Content-Type: application/json`",
            )),
            Err(e) => Err(ApiProblem::bad_request(
                "body",
                format!(
                    "{}; see /api/v1/openapi.json for the expected shape",
                    e.body_text()
                ),
            )),
        }
    }
}

/// The envelope of every change: the version it is based on and why it is made, beside the
/// item's own fields. Parsed in two steps so that the item can refuse unknown fields (serde
/// cannot when the item is flattened).
#[derive(Debug)]
pub struct Envelope<T> {
    pub base_version: Option<i64>,
    pub reason: Option<String>,
    /// A context's `owner` as the client sent it back: read-only (it follows the state and
    /// cutover), so it is taken out before the item is parsed and checked by the handler.
    pub owner: Option<serde_json::Value>,
    /// Move a context's write owner even with mirrored writes toward it still waiting
    /// (recorded in the audit log with what was left behind).
    pub force: bool,
    pub item: T,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Envelope<T> {
    type Rejection = ApiProblem;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiProblem> {
        let Body(value) = Body::<serde_json::Value>::from_request(req, state).await?;
        Envelope::from_value(value)
    }
}

impl<T: DeserializeOwned> Envelope<T> {
    pub fn from_value(value: serde_json::Value) -> Result<Self, ApiProblem> {
        let serde_json::Value::Object(mut fields) = value else {
            return Err(ApiProblem::bad_request(
                "body",
                "the body must be a JSON object",
            ));
        };
        let base_version = match fields.remove("base_version") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                ApiProblem::bad_request("base_version", "`base_version` must be a whole number")
            })?),
        };
        let reason = match fields.remove("reason") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(r)) => Some(r),
            Some(_) => {
                return Err(ApiProblem::bad_request(
                    "reason",
                    "`reason` must be a string",
                ))
            }
        };
        let owner = fields.remove("owner");
        let force = match fields.remove("force") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => {
                return Err(ApiProblem::bad_request(
                    "force",
                    "`force` must be true or false",
                ))
            }
        };
        let item = serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| {
            ApiProblem::bad_request(
                "body",
                format!("{e}; see /api/v1/openapi.json for the expected shape"),
            )
        })?;
        Ok(Self {
            base_version,
            reason,
            owner,
            force,
            item,
        })
    }
}

/// What an envelope says of the change itself: the version it is based on, why, and whether
/// to move a write owner with mirrored writes still waiting.
#[derive(Debug, Clone, Default)]
pub struct Said {
    pub base_version: Option<i64>,
    pub reason: Option<String>,
    pub force: bool,
}

impl<T> Envelope<T> {
    pub fn said(&self) -> Said {
        Said {
            base_version: self.base_version,
            reason: self.reason.clone(),
            force: self.force,
        }
    }
}

/// Applies a JSON merge patch (RFC 7396) to `target`: a member set to `null` is removed, an
/// object merges member by member, anything else replaces what was there.
pub fn merge_patch(target: &mut serde_json::Value, patch: serde_json::Value) {
    let serde_json::Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(fields) = target {
        for (k, v) in patch {
            if v.is_null() {
                fields.remove(&k);
            } else {
                merge_patch(fields.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
    }
}

/// A PATCH's envelope, with the stored item (`kind` `name`, `current` if it exists) as the
/// merge patch in its body changes it: what is left out stays as it was. The result must still
/// be a valid item of the same name (`name_of` reads it).
pub fn patched<T: serde::Serialize + DeserializeOwned>(
    kind: &str,
    name: &str,
    current: Option<&T>,
    name_of: fn(&T) -> &str,
    patch: serde_json::Value,
) -> Result<Envelope<T>, ApiProblem> {
    let current =
        current.ok_or_else(|| ApiProblem::not_found(format!("{kind} `{name}` does not exist")))?;
    let e = Envelope::<serde_json::Value>::from_value(patch)?;
    let mut doc = serde_json::to_value(current).map_err(|err| {
        ApiProblem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The stored item could not be read",
            err.to_string(),
        )
    })?;
    merge_patch(&mut doc, e.item);
    let item = serde_json::from_value(doc).map_err(|err| {
        ApiProblem::bad_request(
            "body",
            format!("{err} once the patch is applied; see /api/v1/openapi.json for the shape"),
        )
    })?;
    let renamed: &str = name_of(&item);
    if renamed != name {
        return Err(ApiProblem::bad_request(
            "name",
            format!(
                "a {kind} cannot be renamed (the patch names `{renamed}`); create `{renamed}` and delete `{name}`"
            ),
        ));
    }
    Ok(Envelope {
        base_version: e.base_version,
        reason: e.reason,
        owner: e.owner,
        force: e.force,
        item,
    })
}

/// A change with no payload beyond the envelope.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

fn meta(op: &Operator, reason: Option<String>, force: bool) -> Result<ChangeMeta, ApiProblem> {
    match reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
    {
        Some(reason) => Ok(ChangeMeta {
            force,
            actor: op.actor.clone(),
            reason,
        }),
        None => Err(ApiProblem::bad_request(
            "reason",
            "every change needs a `reason`: say why, for the audit log",
        )),
    }
}

fn base(version: Option<i64>) -> Result<i64, ApiProblem> {
    version.ok_or_else(|| {
        let mut p = ApiProblem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "base-version-required",
            "The change must name the catalog version it is based on",
            "add `base_version`: the `version` of the catalog you read (GET /api/v1/catalog)",
        );
        p.field = Some("base_version".into());
        p
    })
}

async fn change(
    state: &ApiState,
    op: &Operator,
    change: Change,
    said: Said,
    created: bool,
) -> ApiResult {
    let meta = meta(op, said.reason, said.force)?;
    let based_on = base(said.base_version)?;
    let catalog = state.store.apply(&change, based_on, &meta).await?;
    // The answer means "in effect here".
    state.in_effect(catalog.version).await;
    let target = change.target();
    let body = serde_json::json!({
        "version": catalog.version,
        "target": target,
        "item": item_of(&catalog, &target),
    });
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(body)).into_response())
}

fn item_of(catalog: &Catalog, target: &str) -> serde_json::Value {
    let (kind, name) = target.split_once(':').unwrap_or((target, ""));
    let v = match kind {
        "service" => catalog.services.get(name).map(serde_json::to_value),
        "context" => catalog
            .contexts
            .get(name)
            .map(|c| serde_json::to_value(c.view())),
        "route" => catalog.routes.get(name).map(serde_json::to_value),
        _ => None,
    };
    v.and_then(Result::ok).unwrap_or(serde_json::Value::Null)
}

fn with_version<T: serde::Serialize>(version: i64, items: T) -> Response {
    Json(serde_json::json!({ "version": version, "items": items })).into_response()
}

pub async fn get_catalog(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.load().await?).into_response())
}

/// How far back a read looks: `?minutes=N`.
#[derive(Debug, Deserialize)]
pub struct Window {
    /// How many minutes back (each read checks its own range and default).
    pub minutes: Option<i64>,
}

mod contexts;
mod operations;
mod routes;
mod services;
mod shadow;
mod system;
mod traffic;

pub use contexts::*;
pub use operations::*;
pub use routes::*;
pub use services::*;
pub use shadow::*;
pub use system::*;
pub use traffic::*;

#[cfg(test)]
mod tests;
