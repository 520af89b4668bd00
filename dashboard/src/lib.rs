//! The admin listener: `/healthz`, `/readyz` and `/metrics`, the migration dashboard's pages
//! (`pages`), and the JSON admin API under `/api/v1` with its OpenAPI document (`api`).
//! Operators' actions are typed catalog changes performed in one place (`actions`), which the
//! API and the pages both call; `server` holds the listener's limits and timers.
//!
//! **Invariant:** the dashboard never calls the facade. It reads and changes the catalog through
//! the store, reads the catalog the process follows (the facade follows the same one), and sees
//! the data plane's figures only through the [`AdminState`] the binary wires up.
#![forbid(unsafe_code)]

pub mod actions;
pub mod api;
pub mod pages;
mod server;

pub use server::{protected, serve_app, AdminLimits};

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Renders Prometheus text for `/metrics`.
pub type MetricsFn = dyn Fn(&mut String) + Send + Sync;
/// Says whether the process is ready for traffic.
pub type ReadinessFn = dyn Fn() -> Readiness + Send + Sync;

/// The answer of `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Serving, but something is wrong (e.g. the catalog store is unreachable and the last
    /// catalog stays in force). Still 200: taking the replica out of rotation would not help.
    Degraded(String),
    /// Not taking traffic (e.g. draining). 503.
    NotReady(String),
}

pub(crate) use strangler_catalog::clock::{now_minute, now_secs};

/// Describes the services' instances and breakers as JSON.
pub type ServicesFn = dyn Fn() -> serde_json::Value + Send + Sync;

/// What the admin listener can see of the running process.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<MetricsFn>,
    pub readiness: Arc<ReadinessFn>,
    pub services: Arc<ServicesFn>,
    /// The identity bridge's public keys as a JWKS, when the bridge is on.
    pub jwks: Option<Arc<str>>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminState")
    }
}

/// The admin router: health, metrics, and the API when a catalog store is wired in.
pub fn router(state: AdminState, api: Option<api::ApiState>) -> Router {
    let base = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/identity/jwks", get(jwks))
        .route("/.well-known/jwks.json", get(jwks));
    match api {
        // With the API, the services' runtime view (internal addresses) needs a token.
        Some(api) => base
            .with_state(state)
            .merge(pages::router(api.clone()))
            .merge(api::router(api)),
        // Without it there are no tokens: the listener is only ever bound locally then.
        None => base
            .route("/api/v1/runtime/services", get(runtime_services))
            .with_state(state),
    }
    .fallback(not_found)
}

/// Serves the admin router on `listener` until `shutdown` resolves, with the default
/// [`AdminLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    api: Option<api::ApiState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, api, AdminLimits::default(), shutdown).await
}

/// Serves the admin router on `listener`, capped and timed by `limits`, until `shutdown`
/// resolves.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AdminState,
    api: Option<api::ApiState>,
    limits: AdminLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = protected(router(state, api), &limits);
    serve_app(listener, app, limits, shutdown).await
}

async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match (state.readiness)() {
        Readiness::Ready => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"ready"}"#,
        )
            .into_response(),
        Readiness::Degraded(reason) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "status": "degraded", "reason": reason }).to_string(),
        )
            .into_response(),
        Readiness::NotReady(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "status": "not ready", "reason": reason }).to_string(),
        )
            .into_response(),
    }
}

/// The services' instances (health, ejection, in-flight) and breakers, as this process sees
/// them (without the API: no tokens exist, so none is asked for).
async fn runtime_services(State(state): State<AdminState>) -> impl IntoResponse {
    axum::Json((state.services)())
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    (state.metrics)(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// The identity bridge's public key, for new services to verify `X-Strangler-Identity`
/// (public: no token needed).
async fn jwks(State(state): State<AdminState>) -> Response {
    match &state.jwks {
        Some(keys) => (
            [(header::CONTENT_TYPE, "application/jwk-set+json")],
            keys.to_string(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::json!({
                "type": "urn:strangler:problem:not-found",
                "title": "The identity bridge is off",
                "status": 404,
                "detail": "set [identity] resolve_path (and key_file) in the configuration to sign identities for new services",
            })
            .to_string(),
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/problem+json")],
        serde_json::json!({
            "type": "urn:strangler:problem:not-found",
            "title": "No such admin resource",
            "status": 404,
            "detail": "the admin listener serves /healthz, /readyz, /metrics and the API under /api/v1 (see /api/v1/openapi.json)",
        })
        .to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
