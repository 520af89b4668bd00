//! The audit log as people read it: every change, who made it (a person's name, the autopilot,
//! a reconciliation) and why, newest first, filtered by who and by kind of change, a page at a
//! time. Viewers see it too.

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use strangler_catalog::AuditQuery;
use strangler_store::StoreError;

use super::{html, iso, key, see_other, session, store_failure};
use crate::api::ApiState;

/// Rows a page shows.
const PAGE: u32 = 100;
/// Recent rows the filters' choices are read from.
const CHOICES_FROM: u32 = 500;

#[derive(Deserialize)]
pub(super) struct Filter {
    /// Who (exact, as the log records it); empty: everyone.
    #[serde(default)]
    actor: String,
    /// The kind of change (the log's action); empty: every kind.
    #[serde(default)]
    action: String,
    /// What it changed (`context:orders`, `service:orders-svc`); empty: anything.
    #[serde(default)]
    target: String,
    /// The page after the row with this id.
    before: Option<i64>,
}

struct Row {
    at: String,
    actor: String,
    action: String,
    target: String,
    /// The context page, for a context's rows.
    link: Option<String>,
    reason: String,
    version: i64,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    role: Option<String>,
    csrf: Option<String>,
    actor: String,
    action: String,
    target: String,
    actors: Vec<String>,
    actions: Vec<String>,
    rows: Vec<Row>,
    /// The query string of the next page, when there is one.
    next: Option<String>,
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

pub(super) async fn audit_page(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> Response {
    let Some(viewer) = session(&s, &headers).await else {
        return see_other("/login");
    };
    let query = AuditQuery {
        target: some(&f.target),
        actor: some(&f.actor),
        action: some(&f.action),
        before_id: f.before,
        limit: Some(PAGE),
    };
    let loaded = async {
        let rows = s.store.audit(&query).await?;
        let recent = s
            .store
            .audit(&AuditQuery {
                limit: Some(CHOICES_FROM),
                ..AuditQuery::default()
            })
            .await?;
        Ok::<_, StoreError>((rows, recent))
    };
    let (rows, recent) = match loaded.await {
        Ok(x) => x,
        Err(e) => return store_failure(&s, Some(&viewer), e),
    };
    let actors: BTreeSet<String> = recent.iter().map(|a| a.actor.clone()).collect();
    let actions: BTreeSet<String> = recent.iter().map(|a| a.action.clone()).collect();
    let next = (rows.len() == PAGE as usize)
        .then(|| rows.last().map(|a| a.id))
        .flatten()
        .map(|id| {
            form_urlencoded::Serializer::new(String::new())
                .append_pair("actor", f.actor.trim())
                .append_pair("action", f.action.trim())
                .append_pair("target", f.target.trim())
                .append_pair("before", &id.to_string())
                .finish()
        });
    let page = AuditPage {
        role: viewer.cookie.is_some().then(|| viewer.role_name()),
        csrf: viewer.csrf(&key(&s)),
        actor: f.actor.trim().to_owned(),
        action: f.action.trim().to_owned(),
        target: f.target.trim().to_owned(),
        actors: actors.into_iter().collect(),
        actions: actions.into_iter().collect(),
        rows: rows
            .into_iter()
            .map(|a| Row {
                at: iso(a.at_ms),
                link: a
                    .target
                    .strip_prefix("context:")
                    .map(|c| format!("/contexts/{c}")),
                actor: a.actor,
                action: a.action,
                target: a.target,
                reason: a.reason,
                version: a.version,
            })
            .collect(),
        next,
    };
    html(StatusCode::OK, page.render())
}
