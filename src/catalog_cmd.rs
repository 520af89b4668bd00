//! `strangler import` and `strangler export`: the catalog declared in a config file, in and out
//! of the store. Importing the same file twice changes nothing the second time; exporting
//! writes a file that imports to the same catalog.

use serde::Serialize;
use strangler_catalog::ChangeMeta;
use strangler_catalog::{Catalog, Change, RouteSpec, Service, ShadowPolicy, StickyKey};
use strangler_store::CatalogStore;

use crate::config::Settings;
use crate::serve::open_store;

/// Imports the catalog the configuration declares. Returns a line for the operator.
pub async fn import(settings: &Settings, reason: &str) -> anyhow::Result<String> {
    let Some(declared) = &settings.catalog.declared else {
        anyhow::bail!("the configuration declares no catalog: add [[services]] and [[contexts]] (with [[contexts.routes]]) to the file");
    };
    let store = open_store(settings).await?;
    let current = store.load().await?;
    if same_content(&current, declared) {
        return Ok(format!(
            "no change: the catalog already matches the file (version {})",
            current.version
        ));
    }
    let meta = ChangeMeta {
        force: false,
        actor: "config-import".into(),
        reason: reason.to_owned(),
    };
    let applied = store
        .apply(
            &Change::Replace(Box::new(declared.clone())),
            current.version,
            &meta,
        )
        .await?;
    Ok(format!(
        "imported: {} services, {} contexts, {} routes (catalog version {})",
        applied.services.len(),
        applied.contexts.len(),
        applied.routes.len(),
        applied.version
    ))
}

fn same_content(a: &Catalog, b: &Catalog) -> bool {
    a.services == b.services && a.contexts == b.contexts && a.routes == b.routes
}

#[derive(Serialize)]
struct ExportFile {
    services: Vec<Service>,
    contexts: Vec<ExportContext>,
}

#[derive(Serialize)]
struct ExportContext {
    name: String,
    target: String,
    state: strangler_catalog::MigrationState,
    #[serde(skip_serializing_if = "is_zero")]
    weight: u16,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cut_over: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sticky: Option<StickyKey>,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "is_true")]
    fallback: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "ShadowPolicy::is_default")]
    shadow: ShadowPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    translator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    objective: Option<strangler_catalog::Objective>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout: Option<strangler_catalog::rollout::RolloutPolicy>,
    routes: Vec<RouteSpec>,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(w: &u16) -> bool {
    *w == 0
}

/// The catalog in the store, as the catalog part of a config file.
pub async fn export(settings: &Settings) -> anyhow::Result<String> {
    let store = open_store(settings).await?;
    let c = store.load().await?;
    Ok(to_toml(&c)?)
}

/// Renders a catalog as config-file TOML.
pub fn to_toml(c: &Catalog) -> Result<String, toml::ser::Error> {
    let file = ExportFile {
        services: c.services.values().cloned().collect(),
        contexts: c
            .contexts
            .values()
            .map(|ctx| ExportContext {
                name: ctx.name.clone(),
                target: ctx.target.clone(),
                state: ctx.state,
                weight: ctx.weight,
                cut_over: ctx.cut_over,
                sticky: ctx.sticky.clone(),
                description: ctx.description.clone(),
                fallback: ctx.fallback,
                fallback_after_ms: ctx.fallback_after_ms,
                shadow: ctx.shadow.clone(),
                translator: ctx.translator.clone(),
                objective: ctx.objective.clone(),
                rollout: ctx.rollout.clone(),
                routes: c.routes_of(&ctx.name).map(|r| r.spec.clone()).collect(),
            })
            .collect(),
    };
    let body = toml::to_string(&file)?;
    Ok(format!(
        "# Exported from the Strangler catalog at version {}.\n# `strangler import --config THIS_FILE` restores it.\n\n{body}",
        c.version
    ))
}
