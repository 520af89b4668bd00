//! The API's handlers: reads from the store, changes through it.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

use serde::Deserialize;
use strangler_catalog::{AuditQuery, ChangeMeta};
use strangler_catalog::{Catalog, Change, Context, RouteSpec, Service};

use super::auth::{Operator, Reader};
use super::problem::ApiProblem;
use super::ApiState;
use crate::actions::{self, ContextAction, Outcome};

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
        let item = serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| {
            ApiProblem::bad_request(
                "body",
                format!("{e}; see /api/v1/openapi.json for the expected shape"),
            )
        })?;
        Ok(Self {
            base_version,
            reason,
            item,
        })
    }
}

/// A change with no payload beyond the envelope.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

fn meta(op: &Operator, reason: Option<String>) -> Result<ChangeMeta, ApiProblem> {
    match reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
    {
        Some(reason) => Ok(ChangeMeta {
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
    base_version: Option<i64>,
    reason: Option<String>,
    created: bool,
) -> ApiResult {
    let meta = meta(op, reason)?;
    let based_on = base(base_version)?;
    let catalog = state.store.apply(&change, based_on, &meta).await?;
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
        "context" => catalog.contexts.get(name).map(serde_json::to_value),
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
    change(
        &s,
        &op,
        Change::PutService(e.item),
        e.base_version,
        e.reason,
        true,
    )
    .await
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
    change(
        &s,
        &op,
        Change::PutService(e.item),
        e.base_version,
        e.reason,
        false,
    )
    .await
}

pub async fn delete_service(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<Nothing>,
) -> ApiResult {
    change(
        &s,
        &op,
        Change::DeleteService { name },
        e.base_version,
        e.reason,
        false,
    )
    .await
}

#[derive(Debug, Deserialize)]
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

pub async fn list_contexts(_: Reader, State(s): State<ApiState>) -> ApiResult {
    let c = s.store.load().await?;
    Ok(with_version(
        c.version,
        c.contexts.values().collect::<Vec<_>>(),
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
        Json(serde_json::json!({ "version": c.version, "item": ctx, "routes": routes }))
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
        Change::PutContext(e.item),
        e.base_version,
        e.reason,
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
        Change::PutContext(e.item),
        e.base_version,
        e.reason,
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
    change(
        &s,
        &op,
        Change::DeleteContext { name },
        e.base_version,
        e.reason,
        false,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct ShadowQuery {
    /// How many minutes back (1-10080; default 60).
    minutes: Option<i64>,
}

/// A context's shadow comparison results: per minute, totals, and the top mismatch signatures.
pub async fn shadow_results(
    _: Reader,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<ShadowQuery>,
) -> ApiResult {
    let minutes = q.minutes.unwrap_or(60);
    if !(1..=10_080).contains(&minutes) {
        return Err(ApiProblem::bad_request(
            "minutes",
            format!("{minutes} is out of range; ask for 1-10080 minutes"),
        ));
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
    let outbox = s.store.outbox_stats(&name).await?;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoisePath {
    path: String,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
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
    base_version: Option<i64>,
    reason: Option<String>,
) -> Result<Outcome, ApiProblem> {
    let meta = meta(op, reason)?;
    // Dismissing a proposal changes no catalog: it needs no version.
    let based_on = match action {
        ContextAction::DismissNoise { .. } => base_version.unwrap_or_default(),
        _ => base(base_version)?,
    };
    Ok(actions::perform(&*s.store, name, action, based_on, &meta).await?)
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

pub async fn promote(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<Nothing>,
) -> ApiResult {
    done(
        act(
            &s,
            &op,
            &name,
            ContextAction::Promote,
            e.base_version,
            e.reason,
        )
        .await?,
    )
}

pub async fn rollback(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<Nothing>,
) -> ApiResult {
    done(
        act(
            &s,
            &op,
            &name,
            ContextAction::Rollback,
            e.base_version,
            e.reason,
        )
        .await?,
    )
}

/// Pauses (`{"paused": true}`) or resumes the autopilot for a context.
pub async fn pause_autopilot(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<PauseBody>,
) -> ApiResult {
    let action = ContextAction::PauseAutopilot(e.item.paused);
    done(act(&s, &op, &name, action, e.base_version, e.reason).await?)
}

/// Pauses (`{"paused": true}`) or resumes a context's shadowing; its sampling share is kept.
pub async fn pause_shadow(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<PauseBody>,
) -> ApiResult {
    let action = ContextAction::PauseShadow(e.item.paused);
    done(act(&s, &op, &name, action, e.base_version, e.reason).await?)
}

#[derive(Debug, Deserialize)]
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
    done(act(&s, &op, &name, action, e.base_version, e.reason).await?)
}

/// Accepts a proposed ignore rule: a catalog change (versioned, audited) adding the path to
/// the context's `shadow.ignore`.
pub async fn accept_noise(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<NoisePath>,
) -> ApiResult {
    let action = ContextAction::AcceptNoise(e.item.path);
    done(act(&s, &op, &name, action, e.base_version, e.reason).await?)
}

/// Dismisses a proposed ignore rule, or (`"dismissed": false`) shows it again: audited; the
/// catalog does not change.
pub async fn dismiss_noise(
    op: Operator,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    e: Envelope<DismissNoise>,
) -> ApiResult {
    let DismissNoise { path, dismissed } = e.item;
    let action = ContextAction::DismissNoise {
        path: path.clone(),
        dismissed,
    };
    match act(&s, &op, &name, action, e.base_version, e.reason).await? {
        Outcome::Recorded { audit_id } => Ok(Json(
            serde_json::json!({ "path": path, "dismissed": dismissed, "audit_id": audit_id }),
        )
        .into_response()),
        other => done(other),
    }
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoute {
    context: String,
    #[serde(flatten)]
    spec: RouteSpec,
}

pub async fn create_route(
    op: Operator,
    State(s): State<ApiState>,
    e: Envelope<NewRoute>,
) -> ApiResult {
    change(
        &s,
        &op,
        Change::AddRoute {
            context: e.item.context,
            spec: e.item.spec,
        },
        e.base_version,
        e.reason,
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
    let meta = meta(&op, e.reason)?;
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
    change(
        &s,
        &op,
        Change::DeleteRoute { id },
        e.base_version,
        e.reason,
        false,
    )
    .await
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

#[derive(Debug, Deserialize)]
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
    let meta = meta(&op, e.reason)?;
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
pub async fn traffic(
    _: Reader,
    State(s): State<ApiState>,
    Query(q): Query<ShadowQuery>,
) -> ApiResult {
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
pub async fn unclaimed(
    _: Reader,
    State(s): State<ApiState>,
    Query(q): Query<ShadowQuery>,
) -> ApiResult {
    let (minutes, since) = window(Some(q.minutes.unwrap_or(1440)))?;
    let mut rows = s.store.path_traffic("", since).await?;
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
    Query(q): Query<ShadowQuery>,
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

/// The services' instances (their internal addresses, health, in-flight) and breakers, as
/// this process sees them: for viewers and operators.
pub async fn runtime_services(_: Reader, State(s): State<ApiState>) -> Response {
    match &s.runtime {
        Some(view) => axum::Json(view()).into_response(),
        None => axum::Json(serde_json::json!({})).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_envelope_parses() {
        let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        let v = Envelope::<NewRoute>::from_value(parse(r#"{"base_version":1,"reason":"x","context":"orders","methods":["GET"],"path":"/o/{id}"}"#)).unwrap();
        assert_eq!(
            (v.item.context.as_str(), v.base_version, v.reason.as_deref()),
            ("orders", Some(1), Some("x"))
        );
        let e = Envelope::<NewRoute>::from_value(parse(
            r#"{"base_version":1,"reason":"x","context":"o","path":"/","colour":1}"#,
        ))
        .unwrap_err();
        assert!(e.detail.contains("unknown field `colour`"), "{e:?}");
        let e = Envelope::<Service>::from_value(parse(
            r#"{"base_version":1,"name":"a","urls":[],"colour":1}"#,
        ))
        .unwrap_err();
        assert!(e.detail.contains("unknown field `colour`"), "{e:?}");
        let e = Envelope::<Nothing>::from_value(parse(r#"{"base_version":"one"}"#)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("base_version"));
    }
}
