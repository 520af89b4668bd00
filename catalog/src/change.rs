//! The changes an operator can make, applied to a catalog in memory. The store applies them
//! inside a transaction: load → apply → validate → write → bump the version → audit.

use serde::{Deserialize, Serialize};

use crate::model::{Catalog, Context, Route, RouteSpec, Service};
use crate::rows::ChangeMeta;
use crate::state::{MigrationState, TransitionError};
use crate::state::{Weight, FULL_WEIGHT};
use crate::validate::{validate, TranslatorCheck, ValidationError};

/// A state change of a context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// One step forward (legacy → shadow → canary → migrated → retired).
    Promote,
    /// Back to legacy, from any state.
    Rollback,
    /// The canary weight, in basis points (canary only).
    SetWeight { weight: Weight },
    /// Makes the new service the write owner (canary only): from now on every write goes to it
    /// and legacy gets them as mirrors. Leaving canary forward keeps it; rolling back ends it.
    Cutover,
}

/// One change to the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Change {
    PutService(Service),
    DeleteService {
        name: String,
    },
    PutContext(Context),
    DeleteContext {
        name: String,
    },
    /// Adds a route (its id is derived from the spec).
    AddRoute {
        context: String,
        spec: RouteSpec,
    },
    DeleteRoute {
        id: String,
    },
    /// Replaces a route with another spec (which has another id), possibly of another context.
    ReplaceRoute {
        id: String,
        context: String,
        spec: RouteSpec,
    },
    Transition {
        context: String,
        action: Action,
    },
    /// A transition the autopilot decided (audited as `autopilot-…`); unlike a person's, it
    /// does not pause the autopilot.
    Autopilot {
        context: String,
        action: Action,
    },
    /// Pauses or resumes the autopilot for a context.
    PauseAutopilot {
        context: String,
        paused: bool,
    },
    /// Pauses or resumes a context's shadowing (its sampling share is kept).
    PauseShadow {
        context: String,
        paused: bool,
    },
    /// Accepts a proposed noise rule: the path joins the context's ignored paths.
    AcceptNoise {
        context: String,
        path: String,
    },
    /// Creates a context with its first routes at once (one version, one audit row): the
    /// dashboard's "start a context" from unclaimed path templates.
    Carve {
        context: Context,
        routes: Vec<RouteSpec>,
    },
    /// Replaces the whole catalog (a config import).
    Replace(Box<Catalog>),
}

/// Why a change cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    Transition(#[from] TransitionError),
    #[error("{kind} `{name}` does not exist")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} `{name}` already exists")]
    Exists { kind: &'static str, name: String },
    #[error("{kind} `{name}` is still used by {by}; {fix}")]
    InUse {
        kind: &'static str,
        name: String,
        by: String,
        fix: &'static str,
    },
}

/// An event a change emits about a context (a CloudEvents `type` and its data).
#[derive(Debug, Clone, PartialEq)]
pub struct ContextEvent {
    pub context: String,
    pub kind: &'static str,
    pub data: serde_json::Value,
}

impl Change {
    /// A short verb for the audit log.
    pub fn action_name(&self) -> String {
        match self {
            Change::PutService(_) => "put-service".into(),
            Change::DeleteService { .. } => "delete-service".into(),
            Change::PutContext(_) => "put-context".into(),
            Change::DeleteContext { .. } => "delete-context".into(),
            Change::AddRoute { .. } => "add-route".into(),
            Change::DeleteRoute { .. } => "delete-route".into(),
            Change::ReplaceRoute { .. } => "replace-route".into(),
            Change::Transition { action, .. } => match action {
                Action::Promote => "promote".into(),
                Action::Rollback => "rollback".into(),
                Action::SetWeight { .. } => "set-weight".into(),
                Action::Cutover => "cutover".into(),
            },
            Change::Replace(_) => "import".into(),
            Change::Carve { .. } => "carve".into(),
            Change::Autopilot { action, .. } => match action {
                Action::Promote => "autopilot-promote".into(),
                Action::Rollback => "autopilot-rollback".into(),
                Action::SetWeight { .. } => "autopilot-set-weight".into(),
                Action::Cutover => "autopilot-cutover".into(),
            },
            Change::PauseAutopilot { paused: true, .. } => "pause-autopilot".into(),
            Change::PauseAutopilot { paused: false, .. } => "resume-autopilot".into(),
            Change::PauseShadow { paused: true, .. } => "pause-shadow".into(),
            Change::PauseShadow { paused: false, .. } => "resume-shadow".into(),
            Change::AcceptNoise { .. } => "accept-noise".into(),
        }
    }

    /// What the change is about: `context:orders`, `service:legacy`, `route:r…`, `catalog`.
    pub fn target(&self) -> String {
        match self {
            Change::PutService(s) => format!("service:{}", s.name),
            Change::DeleteService { name } => format!("service:{name}"),
            Change::PutContext(c) => format!("context:{}", c.name),
            Change::DeleteContext { name } => format!("context:{name}"),
            Change::AddRoute { spec, .. } => format!("route:{}", spec.id()),
            Change::DeleteRoute { id } => format!("route:{id}"),
            Change::ReplaceRoute { id, .. } => format!("route:{id}"),
            Change::Transition { context, .. } => format!("context:{context}"),
            Change::Replace(_) => "catalog".into(),
            Change::Carve { context, .. } => format!("context:{}", context.name),
            Change::Autopilot { context, .. }
            | Change::PauseAutopilot { context, .. }
            | Change::PauseShadow { context, .. }
            | Change::AcceptNoise { context, .. } => format!("context:{context}"),
        }
    }

    /// The entity the change targets as it is in `catalog`, as JSON: the audit's before and
    /// after (counts for the whole catalog).
    pub fn snapshot(&self, catalog: &Catalog) -> Option<serde_json::Value> {
        let target = self.target();
        let (kind, name) = target.split_once(':').unwrap_or((target.as_str(), ""));
        match kind {
            "service" => catalog
                .services
                .get(name)
                .and_then(|v| serde_json::to_value(v).ok()),
            "context" => catalog
                .contexts
                .get(name)
                .and_then(|v| serde_json::to_value(v).ok()),
            "route" => catalog
                .routes
                .get(name)
                .and_then(|v| serde_json::to_value(v).ok()),
            _ => Some(serde_json::json!({
                "services": catalog.services.len(),
                "contexts": catalog.contexts.len(),
                "routes": catalog.routes.len(),
            })),
        }
    }

    /// What the change did to contexts' traffic, as events for the outbox: one per context
    /// whose state, canary weight or write owner differs between `before` and `after` (the catalog the
    /// change made, at its new version).
    pub fn events(
        &self,
        before: &Catalog,
        after: &Catalog,
        meta: &ChangeMeta,
    ) -> Vec<ContextEvent> {
        let mut out = Vec::new();
        for (name, ctx) in &after.contexts {
            let was = before.contexts.get(name);
            if was.is_some_and(|b| {
                b.state == ctx.state && b.weight == ctx.weight && b.owner() == ctx.owner()
            }) {
                continue;
            }
            // Every move is a state change, whoever made it; the autopilot's also say which
            // of its moves it was, as a type of their own.
            let autopilot = match self {
                Change::Autopilot {
                    action: Action::Rollback,
                    ..
                } => Some("io.strangler.autopilot.rollback"),
                Change::Autopilot {
                    action: Action::Promote,
                    ..
                } if was.map(|b| b.state) == Some(MigrationState::Shadow) => {
                    Some("io.strangler.autopilot.gate.passed")
                }
                Change::Autopilot { .. } => Some("io.strangler.autopilot.step"),
                _ => None,
            };
            let data = serde_json::json!({
                    "context": name,
                    "from": was.map(|b| b.state.as_str()),
                    "to": ctx.state.as_str(),
                    "weight_from": was.map(|b| b.weight),
                    "weight_to": ctx.weight,
                    "owner_from": was.map(|b| b.owner().as_str()),
                    "owner": ctx.owner().as_str(),
                    "actor": meta.actor,
                    "action": self.action_name(),
                    "reason": meta.reason,
                    "version": after.version,
            });
            for kind in std::iter::once("io.strangler.context.state.changed").chain(autopilot) {
                out.push(ContextEvent {
                    context: name.clone(),
                    kind,
                    data: data.clone(),
                });
            }
        }
        out
    }

    /// Applies the change to `catalog` and validates the result (its translators with
    /// `translators`). On error `catalog` may be partly changed: callers work on a copy.
    pub fn apply(
        &self,
        catalog: &mut Catalog,
        translators: &dyn TranslatorCheck,
    ) -> Result<(), ChangeError> {
        match self {
            Change::PutService(s) => {
                catalog.services.insert(s.name.clone(), s.clone());
            }
            Change::DeleteService { name } => {
                if !catalog.services.contains_key(name) {
                    return Err(ChangeError::NotFound {
                        kind: "service",
                        name: name.clone(),
                    });
                }
                if let Some(ctx) = catalog.contexts.values().find(|c| &c.target == name) {
                    return Err(ChangeError::InUse {
                        kind: "service",
                        name: name.clone(),
                        by: format!("context `{}`", ctx.name),
                        fix: "point the context at another service or delete it first",
                    });
                }
                catalog.services.remove(name);
            }
            Change::PutContext(c) => {
                catalog.contexts.insert(c.name.clone(), c.clone());
            }
            Change::DeleteContext { name } => {
                if catalog.contexts.remove(name).is_none() {
                    return Err(ChangeError::NotFound {
                        kind: "context",
                        name: name.clone(),
                    });
                }
                catalog.routes.retain(|_, r| &r.context != name);
            }
            Change::Carve { context, routes } => {
                if catalog.contexts.contains_key(&context.name) {
                    return Err(ChangeError::Exists {
                        kind: "context",
                        name: context.name.clone(),
                    });
                }
                catalog
                    .contexts
                    .insert(context.name.clone(), context.clone());
                for spec in routes {
                    Change::AddRoute {
                        context: context.name.clone(),
                        spec: spec.clone(),
                    }
                    .apply(catalog, translators)?;
                }
            }
            Change::AddRoute { context, spec } => {
                let id = spec.id();
                if let Some(existing) = catalog.routes.get(&id) {
                    if &existing.context != context {
                        return Err(ChangeError::Invalid(ValidationError {
                            field: format!("routes.{id}"),
                            message: format!(
                                "route `{}` of context `{context}` is the same as route {id} of context `{}`; a route belongs to one context",
                                spec.path, existing.context
                            ),
                        }));
                    }
                    return Err(ChangeError::Exists {
                        kind: "route",
                        name: id,
                    });
                }
                catalog.routes.insert(
                    id.clone(),
                    Route {
                        id,
                        context: context.clone(),
                        spec: spec.clone(),
                    },
                );
            }
            Change::DeleteRoute { id } => {
                if catalog.routes.remove(id).is_none() {
                    return Err(ChangeError::NotFound {
                        kind: "route",
                        name: id.clone(),
                    });
                }
            }
            Change::ReplaceRoute { id, context, spec } => {
                if catalog.routes.remove(id).is_none() {
                    return Err(ChangeError::NotFound {
                        kind: "route",
                        name: id.clone(),
                    });
                }
                let new_id = spec.id();
                if catalog.routes.contains_key(&new_id) {
                    return Err(ChangeError::Exists {
                        kind: "route",
                        name: new_id,
                    });
                }
                catalog.routes.insert(
                    new_id.clone(),
                    Route {
                        id: new_id,
                        context: context.clone(),
                        spec: spec.clone(),
                    },
                );
            }
            Change::Transition { context, action } => {
                let ctx = context_mut(catalog, context)?;
                transition(ctx, action)?;
                // A person moved it: the autopilot leaves it alone until resumed.
                if let Some(r) = ctx.rollout.as_mut() {
                    r.paused = true;
                }
            }
            Change::Autopilot { context, action } => {
                let ctx = context_mut(catalog, context)?;
                transition(ctx, action)?;
            }
            Change::PauseAutopilot { context, paused } => {
                let ctx = context_mut(catalog, context)?;
                match ctx.rollout.as_mut() {
                    Some(r) => r.paused = *paused,
                    None => {
                        return Err(ChangeError::NotFound {
                            kind: "rollout policy of context",
                            name: context.clone(),
                        })
                    }
                }
            }
            Change::PauseShadow { context, paused } => {
                context_mut(catalog, context)?.shadow.paused = *paused;
            }
            Change::AcceptNoise { context, path } => {
                let ctx = context_mut(catalog, context)?;
                if ctx.shadow.ignore.contains(path) {
                    return Err(ChangeError::Exists {
                        kind: "ignore rule",
                        name: path.clone(),
                    });
                }
                ctx.shadow.ignore.push(path.clone());
            }
            Change::Replace(new) => {
                let version = catalog.version;
                *catalog = (**new).clone();
                catalog.version = version;
            }
        }
        validate(catalog, translators)?;
        Ok(())
    }
}

/// The context named `name`, to change.
fn context_mut<'a>(catalog: &'a mut Catalog, name: &str) -> Result<&'a mut Context, ChangeError> {
    catalog
        .contexts
        .get_mut(name)
        .ok_or_else(|| ChangeError::NotFound {
            kind: "context",
            name: name.to_owned(),
        })
}

fn transition(ctx: &mut Context, action: &Action) -> Result<(), TransitionError> {
    let refuse = |action: &'static str, fix: String| TransitionError {
        context: ctx.name.clone(),
        action,
        from: ctx.state,
        fix,
    };
    match action {
        Action::Promote => {
            let Some(next) = ctx.state.next() else {
                return Err(refuse(
                    "promote",
                    "a retired context is the end of the road; roll back to start over".into(),
                ));
            };
            ctx.state = next;
            // Entering canary starts with nobody on the new side; leaving it drops the weight.
            // Leaving canary for migrated makes new the owner whether or not it was cut over.
            ctx.weight = 0;
            ctx.cut_over = false;
        }
        Action::Rollback => {
            if ctx.state == MigrationState::Legacy {
                return Err(refuse(
                    "roll back",
                    "the context is already served by legacy".into(),
                ));
            }
            ctx.state = MigrationState::Legacy;
            ctx.weight = 0;
            ctx.cut_over = false;
        }
        Action::SetWeight { weight } => {
            if ctx.state != MigrationState::Canary {
                return Err(refuse(
                    "set the weight",
                    "weights apply in canary; promote the context to canary first".into(),
                ));
            }
            if *weight > FULL_WEIGHT {
                return Err(refuse(
                    "set the weight",
                    format!("{weight} is out of range; use 0-10000 basis points"),
                ));
            }
            ctx.weight = *weight;
        }
        Action::Cutover => {
            if ctx.state != MigrationState::Canary {
                return Err(refuse(
                    "cut over",
                    match ctx.state {
                        MigrationState::Migrated | MigrationState::Retired => {
                            "the new service already owns the context's writes".into()
                        }
                        _ => {
                            "cutover happens in canary; promote the context to canary first".into()
                        }
                    },
                ));
            }
            if ctx.cut_over {
                return Err(refuse(
                    "cut over",
                    "the context is already cut over: the new service owns its writes".into(),
                ));
            }
            ctx.cut_over = true;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
