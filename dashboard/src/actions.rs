//! What an operator can do to a context, once: the JSON API and the pages are adapters that
//! parse their input into a [`ContextAction`] and render its [`Outcome`] (or its
//! [`ActionError`]) their own way. Every action but dismissing a noise proposal is a typed
//! catalog change, versioned and audited by the store.

use strangler_catalog::{Action, Catalog, Change, ChangeMeta, Weight, FULL_WEIGHT};
use strangler_store::{Store, StoreError};

/// An operator's action on one context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextAction {
    Promote,
    Rollback,
    /// Makes the new service the write owner (canary only).
    Cutover,
    /// The canary's share, in basis points.
    SetWeight(Weight),
    PauseAutopilot(bool),
    PauseShadow(bool),
    /// Accepts a proposed noise rule (a JSON path).
    AcceptNoise(String),
    /// Hides a noise proposal (`true`) or shows it again; audited, not a catalog change.
    DismissNoise {
        path: String,
        dismissed: bool,
    },
}

impl ContextAction {
    /// What was done, in words, for a confirmation.
    pub fn done(&self) -> String {
        match self {
            ContextAction::Promote => "promoted".into(),
            ContextAction::Rollback => "rolled back to legacy".into(),
            ContextAction::Cutover => "cut over: the new service owns the writes".into(),
            ContextAction::SetWeight(w) => format!("canary weight set to {w}"),
            ContextAction::PauseAutopilot(true) => "autopilot paused".into(),
            ContextAction::PauseAutopilot(false) => "autopilot resumed".into(),
            ContextAction::PauseShadow(true) => "shadowing paused".into(),
            ContextAction::PauseShadow(false) => "shadowing resumed".into(),
            ContextAction::AcceptNoise(_) => "noise rule accepted".into(),
            ContextAction::DismissNoise {
                dismissed: true, ..
            } => "noise rule dismissed".into(),
            ContextAction::DismissNoise {
                dismissed: false, ..
            } => "noise rule shown again".into(),
        }
    }
}

/// What an action did.
#[derive(Debug)]
pub enum Outcome {
    /// The catalog change it made, and the catalog it made.
    Changed {
        change: Box<Change>,
        catalog: Catalog,
    },
    /// A noise proposal was dismissed (or shown again): the audit entry's id.
    Recorded { audit_id: i64 },
}

/// Why an action was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The input does not make an action (a weight out of range …): which field, and how.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A noise path that is not a proposal of the context.
    #[error("`{path}` is not a proposed noise rule of context `{context}`")]
    NotProposed { context: String, path: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Performs `action` on `context`, based on catalog version `base_version`.
pub async fn perform(
    store: &dyn Store,
    context: &str,
    action: ContextAction,
    base_version: i64,
    meta: &ChangeMeta,
) -> Result<Outcome, ActionError> {
    let transition = |action| Change::Transition {
        context: context.to_owned(),
        action,
    };
    let change = match action {
        ContextAction::Promote => transition(Action::Promote),
        ContextAction::Rollback => transition(Action::Rollback),
        ContextAction::Cutover => transition(Action::Cutover),
        ContextAction::SetWeight(weight) if weight <= FULL_WEIGHT => {
            transition(Action::SetWeight { weight })
        }
        ContextAction::SetWeight(weight) => {
            return Err(ActionError::Invalid {
                field: "weight",
                message: format!(
                "{weight} is out of range; a weight is 0-{FULL_WEIGHT} basis points (2500 = 25 %)"
            ),
            })
        }
        ContextAction::PauseAutopilot(paused) => Change::PauseAutopilot {
            context: context.to_owned(),
            paused,
        },
        ContextAction::PauseShadow(paused) => Change::PauseShadow {
            context: context.to_owned(),
            paused,
        },
        ContextAction::AcceptNoise(path) => {
            proposed(store, context, &path).await?;
            Change::AcceptNoise {
                context: context.to_owned(),
                path,
            }
        }
        ContextAction::DismissNoise { path, dismissed } => {
            if !store.dismiss_noise(context, &path, dismissed).await? {
                return Err(ActionError::NotProposed {
                    context: context.to_owned(),
                    path,
                });
            }
            let entry = store
                .record(
                    meta,
                    if dismissed {
                        "dismiss-noise"
                    } else {
                        "restore-noise"
                    },
                    &format!("context:{context}"),
                    None,
                    Some(serde_json::json!({ "path": path, "dismissed": dismissed })),
                )
                .await?;
            return Ok(Outcome::Recorded { audit_id: entry.id });
        }
    };
    let catalog = store.apply(&change, base_version, meta).await?;
    Ok(Outcome::Changed {
        change: Box::new(change),
        catalog,
    })
}

/// Refuses a path that the comparisons never proposed.
async fn proposed(store: &dyn Store, context: &str, path: &str) -> Result<(), ActionError> {
    let known = store
        .shadow_noise(context)
        .await?
        .iter()
        .any(|p| p.path == path);
    match known {
        true => Ok(()),
        false => Err(ActionError::NotProposed {
            context: context.to_owned(),
            path: path.to_owned(),
        }),
    }
}
