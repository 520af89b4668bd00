//! The JSON admin API under `/api/v1`: the catalog (services, contexts, routes), state
//! changes, the audit log and the runtime log level, behind bearer tokens.
//!
//! Every change names the catalog version it was based on (`base_version`) and a `reason`;
//! it goes to the store as one audited transaction. Errors are `application/problem+json`
//! naming the field and the fix.

mod auth;
mod handlers;
mod openapi;
mod problem;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use strangler_catalog::Catalog;
use strangler_store::{Store, StoreError};
use tokio::sync::watch;

pub use auth::{Caller, Role, Tokens, User};
pub use problem::ApiProblem;

/// The process's log filter, adjustable at run time.
pub trait LogControl: Send + Sync {
    /// The filter in force.
    fn current(&self) -> String;
    /// Checks a filter without applying it; the error names the bad directive.
    fn check(&self, filter: &str) -> Result<(), String>;
    /// Applies a filter that passed [`LogControl::check`]; returns the previous one.
    fn set(&self, filter: &str) -> Result<String, String>;
}

/// What the API works on.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub tokens: Tokens,
    pub log: Option<Arc<dyn LogControl>>,
    /// The services' instances and breakers as this process sees them (the context page
    /// shows its target's).
    pub runtime: Option<Arc<crate::ServicesFn>>,
    /// How long legacy must not have served a retired route before the ledger marks it
    /// safe to delete from the monolith.
    pub quiet_period: std::time::Duration,
    /// The catalog the process follows, for the pages.
    pub catalog: CatalogView,
    /// This process's autopilot evaluator, as JSON.
    pub autopilot: Option<Arc<crate::ServicesFn>>,
    /// The catalog version this process's facade serves: a change is answered once it is in
    /// effect here (other replicas follow within their propagation time).
    pub applied: Option<watch::Receiver<i64>>,
}

impl ApiState {
    /// Waits until this process serves catalog `version` or a later one — at most
    /// [`IN_EFFECT_WAIT`] (a catalog the facade cannot compile is never served; the change is
    /// committed all the same, and the log says why).
    pub async fn in_effect(&self, version: i64) {
        let Some(mut applied) = self.applied.clone() else {
            return;
        };
        let reached = tokio::time::timeout(IN_EFFECT_WAIT, applied.wait_for(|v| *v >= version));
        if !matches!(reached.await, Ok(Ok(_))) {
            tracing::warn!(
                version,
                "a change was answered before this process served it"
            );
        }
    }
}

/// The longest a change's answer waits for the change to be in effect in this process.
pub const IN_EFFECT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The catalog the process follows, as the pages read it.
#[derive(Clone)]
pub struct CatalogView(watch::Receiver<Arc<Catalog>>);

impl CatalogView {
    /// The follower's catalog (`strangler_store::follow`).
    pub fn new(follower: watch::Receiver<Arc<Catalog>>) -> Self {
        Self(follower)
    }

    /// The current catalog: the follower's, once it has caught up with the store's version
    /// (one cheap query), so that the page after a change shows it. A follower that does not
    /// catch up within two seconds (the store is failing it) is bypassed: the store is read.
    pub async fn current(&self, store: &dyn Store) -> Result<Arc<Catalog>, StoreError> {
        let version = store.version().await?;
        let mut follower = self.0.clone();
        let caught_up: Option<Arc<Catalog>> = match tokio::time::timeout(
            std::time::Duration::from_secs(2),
            follower.wait_for(|c| c.version >= version),
        )
        .await
        {
            Ok(Ok(catalog)) => Some(Arc::clone(&catalog)),
            _ => None,
        };
        match caught_up {
            Some(catalog) => Ok(catalog),
            None => Ok(Arc::new(store.load().await?)),
        }
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("tokens", &self.tokens)
            .finish()
    }
}

/// The `/api/v1` router.
pub fn router(state: ApiState) -> Router {
    use handlers::*;
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/catalog", get(get_catalog))
        .route("/api/v1/services", get(list_services).post(create_service))
        .route(
            "/api/v1/services/{name}",
            get(get_service)
                .put(put_service)
                .patch(patch_service)
                .delete(delete_service),
        )
        .route(
            "/api/v1/services/{name}/instances",
            post(register_instance).delete(deregister_instance),
        )
        .route("/api/v1/contexts", get(list_contexts).post(create_context))
        .route(
            "/api/v1/contexts/{name}",
            get(get_context)
                .put(put_context)
                .patch(patch_context)
                .delete(delete_context),
        )
        .route("/api/v1/contexts/{name}/shadow", get(shadow_results))
        .route("/api/v1/contexts/{name}/traffic", get(context_traffic))
        .route("/api/v1/traffic", get(traffic))
        .route("/api/v1/unclaimed", get(unclaimed))
        .route("/api/v1/autopilot", get(autopilot))
        .route("/api/v1/runtime/services", get(runtime_services))
        .route("/api/v1/events/sinks", get(event_sinks))
        .route("/api/v1/contexts/{name}/autopilot", post(pause_autopilot))
        .route("/api/v1/contexts/{name}/shadow/pause", post(pause_shadow))
        .route("/api/v1/contexts/{name}/shadow/noise", get(shadow_noise))
        .route(
            "/api/v1/contexts/{name}/shadow/noise/accept",
            post(accept_noise),
        )
        .route(
            "/api/v1/contexts/{name}/shadow/noise/dismiss",
            post(dismiss_noise),
        )
        .route("/api/v1/contexts/{name}/promote", post(promote))
        .route("/api/v1/contexts/{name}/cutover", post(cutover))
        .route("/api/v1/contexts/{name}/rollback", post(rollback))
        .route("/api/v1/contexts/{name}/weight", post(set_weight))
        .route("/api/v1/routes", get(list_routes).post(create_route))
        .route(
            "/api/v1/routes/{id}",
            get(get_route).put(put_route).delete(delete_route),
        )
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/log-level", get(get_log_level).put(put_log_level))
        .with_state(state)
}
