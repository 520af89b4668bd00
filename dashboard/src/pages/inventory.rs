//! Unclaimed routes: legacy traffic no context claims, by path template (`GET /orders/{id}`),
//! sortable — the inventory from which the next extraction is picked — and "start a context"
//! from the selected templates (one catalog change, audited).

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use strangler_catalog::ChangeMeta;
use strangler_catalog::{Change, Context, MigrationState, RouteSpec};
use strangler_store::StoreError;

use super::{html, key, message, percent, see_other, session, store_failure, Viewer};
use crate::api::{ApiState, Role};

/// The template the facade counts requests beyond its template cap under.
const OTHER: &str = "(other paths)";

pub(super) struct TemplateRow {
    template: String,
    requests: i64,
    errors: String,
    mean: String,
    /// Share of all unclaimed requests in the window.
    share: String,
    /// Can become a route (not the overflow bucket, not cut short).
    claimable: bool,
}

pub(super) struct SortLink {
    label: &'static str,
    href: String,
    /// `ascending`, `descending` or `none`, for `aria-sort`.
    aria: &'static str,
    numeric: bool,
}

#[derive(Template)]
#[template(path = "unclaimed.html")]
struct UnclaimedPage {
    role: Option<String>,
    csrf: Option<String>,
    csrf_value: String,
    operator: bool,
    notice: Option<String>,
    window: &'static str,
    windows: Vec<(&'static str, String, bool)>,
    columns: Vec<SortLink>,
    rows: Vec<TemplateRow>,
    total: i64,
    services: Vec<String>,
    version: i64,
}

#[derive(Deserialize)]
pub(super) struct UnclaimedQuery {
    window: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    done: Option<String>,
}

const WINDOWS: [(&str, i64); 3] = [("hour", 60), ("day", 1440), ("week", 10_080)];
const COLUMNS: [(&str, &str, bool); 4] = [
    ("template", "Path template", false),
    ("requests", "Requests", true),
    ("errors", "Error rate", true),
    ("latency", "Mean time", true),
];

pub(super) async fn unclaimed_page(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<UnclaimedQuery>,
) -> Response {
    let Some(viewer) = session(&s, &headers).await else {
        return see_other("/login");
    };
    let (window, minutes) = WINDOWS
        .iter()
        .copied()
        .find(|(w, _)| Some(*w) == q.window.as_deref())
        .unwrap_or(WINDOWS[1]);
    let sort = COLUMNS
        .iter()
        .map(|c| c.0)
        .find(|c| Some(*c) == q.sort.as_deref())
        .unwrap_or("requests");
    let ascending = match q.dir.as_deref() {
        Some("asc") => true,
        Some("desc") => false,
        _ => sort == "template",
    };
    let now = crate::now_minute();
    let loaded = async {
        let rows = s.store.path_traffic("", now - minutes + 1).await?;
        let catalog = s.catalog.current(&*s.store).await?;
        Ok::<_, StoreError>((rows, catalog))
    };
    let (rows, catalog) = match loaded.await {
        Ok(x) => x,
        Err(e) => return store_failure(&s, Some(&viewer), e),
    };
    // Sum both sides (unclaimed requests are legacy's, but a replica may say otherwise). A
    // template a route has claimed since (its rows are history) is no longer unclaimed.
    let mut by: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for r in rows
        .into_iter()
        .filter(|r| !catalog.claims_template(&r.path))
    {
        let e = by.entry(r.path).or_default();
        e.0 += r.requests;
        e.1 += r.errors;
        e.2 += r.latency_us;
    }
    let total: i64 = by.values().map(|v| v.0).sum();
    let mut sorted: Vec<(String, (i64, i64, i64))> = by.into_iter().collect();
    let error_rate = |v: &(i64, i64, i64)| v.1 as f64 / v.0.max(1) as f64;
    let mean = |v: &(i64, i64, i64)| v.2 as f64 / v.0.max(1) as f64;
    sorted.sort_by(|a, b| {
        let order = match sort {
            "template" => a.0.cmp(&b.0),
            "errors" => error_rate(&a.1).total_cmp(&error_rate(&b.1)),
            "latency" => mean(&a.1).total_cmp(&mean(&b.1)),
            _ => a.1 .0.cmp(&b.1 .0),
        };
        let order = if ascending { order } else { order.reverse() };
        order.then_with(|| a.0.cmp(&b.0))
    });
    let k = key(&s);
    let page = UnclaimedPage {
        role: viewer.cookie.is_some().then(|| viewer.role_name()),
        csrf: viewer.csrf(&k),
        csrf_value: viewer.csrf(&k).unwrap_or_default(),
        operator: viewer.role == Role::Operator && viewer.cookie.is_some(),
        notice: q
            .done
            .filter(|d| d.starts_with("context ") && d.ends_with(" started"))
            .filter(|d| {
                d.trim_start_matches("context ")
                    .trim_end_matches(" started")
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
            .map(|d| {
                format!("Done: {d}, in legacy state. Open it from the overview to shadow it.")
            }),
        window,
        windows: WINDOWS
            .iter()
            .map(|(w, _)| {
                (
                    *w,
                    format!("/unclaimed?window={w}&sort={sort}&dir={}", dir(ascending)),
                    *w == window,
                )
            })
            .collect(),
        columns: COLUMNS
            .iter()
            .map(|(name, label, numeric)| {
                let this = *name == sort;
                // A click on the sorted column turns it around; another column starts at its
                // natural order (names A→Z, figures largest first).
                let next_ascending = if this { !ascending } else { !numeric };
                SortLink {
                    label,
                    href: format!(
                        "/unclaimed?window={window}&sort={name}&dir={}",
                        dir(next_ascending)
                    ),
                    aria: match (this, ascending) {
                        (false, _) => "none",
                        (true, true) => "ascending",
                        (true, false) => "descending",
                    },
                    numeric: *numeric,
                }
            })
            .collect(),
        rows: sorted
            .into_iter()
            .map(|(template, v)| TemplateRow {
                claimable: route_spec_parts(&template).is_some(),
                share: percent((total > 0).then(|| v.0 as f64 / total as f64)),
                errors: percent((v.0 > 0).then(|| error_rate(&v))),
                mean: if v.0 > 0 {
                    format!("{:.1} ms", mean(&v) / 1000.0)
                } else {
                    "—".into()
                },
                requests: v.0,
                template,
            })
            .collect(),
        total,
        services: catalog
            .services
            .keys()
            .filter(|n| n.as_str() != "legacy")
            .cloned()
            .collect(),
        version: catalog.version,
    };
    html(StatusCode::OK, page.render())
}

fn dir(ascending: bool) -> &'static str {
    if ascending {
        "asc"
    } else {
        "desc"
    }
}

/// The method and route pattern of a template: `GET /invoices/{id}.pdf` → (`GET`,
/// `/invoices/{id}`): a segment with an id in it becomes a whole-segment parameter, named
/// `id`, `id2`, `id3` … in order. None for the overflow bucket or a template cut short.
fn route_spec_parts(template: &str) -> Option<(String, String)> {
    if template == OTHER || template.ends_with('…') {
        return None;
    }
    let (method, path) = template.split_once(' ')?;
    if !path.starts_with('/') || method.is_empty() {
        return None;
    }
    let mut n = 0;
    let segments: Vec<String> = path
        .split('/')
        .map(|seg| {
            if seg.contains("{id}") {
                n += 1;
                if n == 1 {
                    "{id}".to_owned()
                } else {
                    format!("{{id{n}}}")
                }
            } else {
                seg.to_owned()
            }
        })
        .collect();
    Some((method.to_owned(), segments.join("/")))
}

/// Starts a context from selected templates: one `carve` change (the context in `legacy`
/// state and its routes, one version, one audit row).
pub(super) async fn claim(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let back = "/unclaimed".to_owned();
    let Some(viewer) = session(&s, &headers).await else {
        return see_other("/login");
    };
    let refuse = |status, title: &str, detail: String, viewer: &Viewer| {
        message(status, Some(viewer), &s, title, detail, back.clone())
    };
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut templates = Vec::new();
    for (k, v) in form_urlencoded::parse(&body) {
        if k == "template" {
            templates.push(v.into_owned());
        } else {
            fields.insert(k.into_owned(), v.into_owned());
        }
    }
    let field = |name: &str| fields.get(name).map(|v| v.trim()).unwrap_or("");
    if let Some(refused) = super::refuse_change(&s, &viewer, field("csrf"), &back) {
        return refused;
    }
    let Ok(base_version) = field("base_version").parse::<i64>() else {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not applied",
            "the form lacks the catalog version it was made from; reload the page".into(),
            &viewer,
        );
    };
    if field("reason").len() < 3 {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not applied",
            "give a reason of at least 3 characters: it goes into the audit log".into(),
            &viewer,
        );
    }
    if templates.is_empty() {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not applied",
            "select at least one path template for the new context".into(),
            &viewer,
        );
    }
    // One route per path, with the methods selected for it.
    let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &templates {
        let Some((method, path)) = route_spec_parts(t) else {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not applied",
                format!("`{t}` is not a path template that can become a route"),
                &viewer,
            );
        };
        let methods = paths.entry(path).or_default();
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    let name = field("name").to_owned();
    let context = Context {
        cut_over: false,
        owner_move: None,
        name: name.clone(),
        target: field("target").to_owned(),
        state: MigrationState::Legacy,
        weight: 0,
        sticky: None,
        description: format!("Started from unclaimed traffic: {}", templates.join(", ")),
        fallback: true,
        shadow: Default::default(),
        translator: None,
        objective: None,
        rollout: None,
        fallback_after_ms: None,
    };
    let routes = paths
        .into_iter()
        .map(|(path, methods)| RouteSpec {
            methods,
            path,
            host: None,
            headers: vec![],
            query: vec![],
            version: None,
            reads: false,
            shadow: Default::default(),
        })
        .collect();
    let meta = ChangeMeta {
        force: false,
        actor: format!("{} (dashboard)", viewer.actor),
        reason: field("reason").to_owned(),
    };
    match s
        .store
        .apply(&Change::Carve { context, routes }, base_version, &meta)
        .await
    {
        Ok(_) => see_other(&format!(
            "/unclaimed?done=context+{}+started",
            name.replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                ""
            )
        )),
        Err(StoreError::Stale { based_on, current }) => refuse(
            StatusCode::CONFLICT,
            "The catalog changed while you looked",
            format!(
                "your page showed version {based_on}; the catalog is at {current}. Nothing was \
                 applied: reload the page (the templates may have been claimed meanwhile) and \
                 decide again."
            ),
            &viewer,
        ),
        Err(StoreError::Change(e)) => {
            refuse(StatusCode::CONFLICT, "Not applied", e.to_string(), &viewer)
        }
        Err(e) => store_failure(&s, Some(&viewer), e),
    }
}

#[cfg(test)]
mod tests;
