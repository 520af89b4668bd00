//! Services and their instances: the catalog's services, registrations (heartbeats) and what
//! this process sees of them at run time.

use super::{change, patched, with_version, ApiResult, Body, Envelope, Nothing};
use crate::api::auth::{Operator, Reader};
use crate::api::problem::ApiProblem;
use crate::api::ApiState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use strangler_catalog::ChangeMeta;
use strangler_catalog::{Change, Service};

pub async fn list_services(_: Reader, State(s): State<ApiState>) -> ApiResult {
    let c = s.store.load().await?;
    Ok(with_version(
        c.version,
        c.services.values().collect::<Vec<_>>(),
    ))
}

pub async fn get_service(
    _: Reader,
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult {
    let c = s.store.load().await?;
    let svc = c
        .services
        .get(&name)
        .ok_or_else(|| ApiProblem::not_found(format!("service `{name}` does not exist")))?;
    let registered = c.registered.get(&name).cloned().unwrap_or_default();
    Ok(
        Json(serde_json::json!({ "version": c.version, "item": svc, "registered": registered }))
            .into_response(),
    )
}

pub async fn create_service(
    op: Operator,
    State(s): State<ApiState>,
    e: Envelope<Service>,
) -> ApiResult {
    let c = s.store.load().await?;
    if c.services.contains_key(&e.item.name) {
        return Err(ApiProblem::new(
            StatusCode::CONFLICT,
            "conflict",
            "The service exists",
            format!(
                "service `{}` already exists; PUT /api/v1/services/{} to change it",
                e.item.name, e.item.name
            ),
        ));
    }
    check_service_hosts(&e.item).await?;
    change(&s, &op, Change::PutService(e.item.clone()), e.said(), true).await
}

pub async fn put_service(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<Service>,
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
    check_service_hosts(&e.item).await?;
    change(&s, &op, Change::PutService(e.item.clone()), e.said(), false).await
}

/// Changes the fields a JSON merge patch names and keeps the others (`PUT` replaces the
/// whole service).
pub async fn patch_service(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Body(patch): Body<serde_json::Value>,
) -> ApiResult {
    let c = s.store.load().await?;
    let e = patched("service", &name, c.services.get(&name), |s| &s.name, patch)?;
    check_service_hosts(&e.item).await?;
    change(&s, &op, Change::PutService(e.item.clone()), e.said(), false).await
}

pub async fn delete_service(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<Nothing>,
) -> ApiResult {
    change(&s, &op, Change::DeleteService { name }, e.said(), false).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    url: String,
    /// Seconds the registration lives without a heartbeat (1-3600).
    ttl_s: i64,
}

/// Registers an instance, or renews it (a heartbeat): send the same request again before the
/// TTL runs out. Only a new registration is audited.
pub async fn register_instance(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Body(r): Body<Registration>,
) -> ApiResult {
    strangler_catalog::check_url(&r.url).map_err(|why| ApiProblem::bad_request("url", why))?;
    if !(1..=3600).contains(&r.ttl_s) {
        return Err(ApiProblem::bad_request(
            "ttl_s",
            format!(
                "{} is out of range; a registration lives 1-3600 s between heartbeats",
                r.ttl_s
            ),
        ));
    }
    check_resolves(&format!("services.{name}.instances"), &r.url).await?;
    let ttl_ms = u64::try_from(r.ttl_s).unwrap_or(1) * 1000;
    let new = s.store.register(&name, &r.url, ttl_ms).await?;
    if new {
        let meta = ChangeMeta {
            force: false,
            actor: op.actor.clone(),
            reason: format!("{} registered itself", r.url),
        };
        s.store
            .record(
                &meta,
                "instance-registered",
                &format!("service:{name}"),
                None,
                Some(serde_json::json!({ "url": r.url, "ttl_s": r.ttl_s })),
            )
            .await?;
    }
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(serde_json::json!({ "service": name, "url": r.url, "new": new, "ttl_s": r.ttl_s })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct InstanceQuery {
    url: String,
}

pub async fn deregister_instance(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<InstanceQuery>,
) -> ApiResult {
    if !s.store.deregister(&name, &q.url).await? {
        return Err(ApiProblem::not_found(format!(
            "`{}` is not registered for service `{name}`",
            q.url
        )));
    }
    let meta = ChangeMeta {
        force: false,
        actor: op.actor.clone(),
        reason: format!("{} deregistered", q.url),
    };
    s.store
        .record(
            &meta,
            "instance-deregistered",
            &format!("service:{name}"),
            Some(serde_json::json!({ "url": q.url })),
            None,
        )
        .await?;
    Ok(Json(serde_json::json!({ "service": name, "url": q.url, "removed": true })).into_response())
}

/// A host name that does not resolve is refused when it is configured, not at the first request.
async fn check_resolves(field: &str, url: &str) -> Result<(), ApiProblem> {
    let Some(authority) = url.strip_prefix("http://").map(|a| a.trim_end_matches('/')) else {
        return Ok(());
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse().unwrap_or(80),
        ),
        _ => (authority, 80u16),
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let lookup = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::lookup_host((host, port)),
    )
    .await;
    let resolved = match lookup {
        Ok(Ok(addrs)) => addrs.count() > 0,
        _ => false,
    };
    match resolved {
        true => Ok(()),
        false => {
            let mut p = ApiProblem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unresolvable-host",
                "The host name does not resolve",
                format!(
                    "`{host}` does not resolve to an address; check the name or use an IP address"
                ),
            );
            p.field = Some(field.to_owned());
            Err(p)
        }
    }
}

async fn check_service_hosts(svc: &Service) -> Result<(), ApiProblem> {
    for (i, url) in svc.urls.iter().enumerate() {
        if strangler_catalog::check_url(url).is_ok() {
            check_resolves(&format!("services.{}.urls[{i}]", svc.name), url).await?;
        }
    }
    Ok(())
}

/// The services' instances (their internal addresses, health, in-flight) and breakers, as
/// this process sees them: for viewers and operators.
pub async fn runtime_services(_: Reader, State(s): State<ApiState>) -> Response {
    match &s.runtime {
        Some(view) => axum::Json(view()).into_response(),
        None => axum::Json(serde_json::json!({})).into_response(),
    }
}
