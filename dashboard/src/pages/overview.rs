//! The overview: how far the strangling has come, per context and over time.

use super::charts::{share_chart, COLUMN, PAGE};
use super::{html, iso, key, ms, percent, see_other, session, sides, split, store_failure, Viewer};
use crate::api::ApiState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::collections::BTreeMap;
use strangler_catalog::TrafficMinute;
use strangler_store::StoreError;

struct Window {
    label: &'static str,
    share: String,
    requests: i64,
}

struct LastChange {
    at: String,
    actor: String,
    reason: String,
}

struct ContextRow {
    name: String,
    state: &'static str,
    /// Who owns the context's writes: `legacy` or `new`.
    owner: &'static str,
    target: String,
    split: String,
    /// The share the new service answered in the last hour.
    realized: String,
    requests: i64,
    /// Requests legacy answered because the new side failed, last hour.
    fallbacks: i64,
    match_rate: String,
    errors: String,
    p99: String,
    /// The target's circuit breaker as this process sees it.
    breaker: String,
    last_change: Option<LastChange>,
}

/// The windows the contexts table can cover: `?window=`, its name in the selector, what the
/// table's caption says, the unclaimed traffic's window ("in the last …"), and minutes (0:
/// since each context's last change; the unclaimed traffic is then the hour's).
const TABLE_WINDOWS: [(&str, &str, &str, &str, i64); 5] = [
    (
        "change",
        "since the last change",
        "since that context's last change (at most 7 days)",
        "hour",
        0,
    ),
    ("5m", "5 min", "over the last 5 minutes", "5 minutes", 5),
    ("1h", "1 h", "over the last hour", "hour", 60),
    ("24h", "24 h", "over the last 24 hours", "24 hours", 1440),
    ("7d", "7 d", "over the last 7 days", "7 days", 7 * 1440),
];

/// The window shown unless one is chosen: the hour.
const DEFAULT_WINDOW: usize = 2;

/// The longest window, and the cap of "since the last change".
const WEEK: i64 = 7 * 1440;

#[derive(serde::Deserialize)]
pub(super) struct OverviewQuery {
    window: Option<String>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    role: Option<String>,
    csrf: Option<String>,
    /// The contexts table's window as its caption says it, and the unclaimed traffic's (the
    /// hour when the table is "since the last change").
    window: (&'static str, &'static str),
    /// The selector: `?window=` value, short name, chosen.
    table_windows: Vec<(&'static str, &'static str, bool)>,
    windows: Vec<Window>,
    by_state: Vec<(&'static str, usize)>,
    routes_by_state: Vec<(&'static str, usize)>,
    contexts: Vec<ContextRow>,
    unclaimed: i64,
    /// The busiest unclaimed path templates of the last hour.
    top_unclaimed: Vec<(String, i64)>,
    /// Event sinks and their deliveries.
    sinks: Vec<strangler_catalog::SinkStats>,
    /// The last 24 hours, per hour (SVG).
    chart: String,
}

pub(super) async fn overview(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let Some(viewer) = session(&s, &headers).await else {
        return see_other("/login");
    };
    // An unknown window is the hour.
    let window = TABLE_WINDOWS
        .iter()
        .position(|w| Some(w.0) == q.window.as_deref())
        .unwrap_or(DEFAULT_WINDOW);
    match overview_page(&s, &viewer, window).await {
        Ok(page) => html(StatusCode::OK, page.render()),
        Err(e) => store_failure(&s, Some(&viewer), e),
    }
}

async fn overview_page(
    s: &ApiState,
    viewer: &Viewer,
    window: usize,
) -> Result<OverviewPage, StoreError> {
    let catalog = s.catalog.current(&*s.store).await?;
    let now = crate::now_minute();
    let (_, _, caption, unclaimed_window, minutes) =
        TABLE_WINDOWS[window.min(TABLE_WINDOWS.len() - 1)];
    let last: BTreeMap<String, strangler_catalog::AuditEntry> = s
        .store
        .last_changes("context:")
        .await?
        .into_iter()
        .filter_map(|a| Some((a.target.strip_prefix("context:")?.to_owned(), a)))
        .collect();
    // "Since the last change" is a window per context, read context by context; the others
    // one query for all. The unclaimed traffic is then the hour's.
    let from = if minutes == 0 {
        now - 59
    } else {
        now - minutes + 1
    };
    let hour = s.store.traffic_totals(now - 59).await?;
    let (table, shadow) = if minutes == 0 {
        let mut table = hour
            .iter()
            .filter(|r| r.context.is_empty())
            .cloned()
            .collect::<Vec<_>>();
        let mut shadow: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for name in catalog.contexts.keys() {
            let since = last
                .get(name)
                .map_or(now - 59, |a| a.at_ms.div_euclid(60_000).max(now - WEEK + 1));
            table.extend(s.store.traffic_sum(Some(name), since).await?);
            let rows = s.store.shadow(name, since).await?;
            shadow.insert(
                name.clone(),
                rows.iter()
                    .fold((0, 0), |(c, m), r| (c + r.compared, m + r.matched)),
            );
        }
        (table, shadow)
    } else {
        let shadow = s
            .store
            .shadow_totals(from)
            .await?
            .into_iter()
            .map(|r| (r.context, (r.compared, r.matched)))
            .collect();
        (s.store.traffic_totals(from).await?, shadow)
    };
    // The day, the week and the chart from one hourly series (whole hours, the current one
    // included).
    let first_hour = (now / 60 - 23) * 60;
    let series = s.store.traffic_series(first_hour - 144 * 60, 60).await?;
    let share = |rows: &mut dyn Iterator<Item = &TrafficMinute>| {
        let (new, total) = rows.fold((0i64, 0i64), |(n, t), r| {
            (
                n + if r.side == "new" { r.requests } else { 0 },
                t + r.requests,
            )
        });
        (
            percent((total > 0).then(|| new as f64 / total as f64)),
            total,
        )
    };
    let windows = [
        ("hour", share(&mut hour.iter())),
        (
            "day",
            share(&mut series.iter().filter(|r| r.minute >= first_hour)),
        ),
        ("week", share(&mut series.iter())),
    ]
    .into_iter()
    .map(|(label, (share, requests))| Window {
        label,
        share,
        requests,
    })
    .collect();
    let runtime = s.runtime.as_ref().map(|f| f());
    let mut by_state: BTreeMap<u8, (&'static str, usize)> = BTreeMap::new();
    let mut contexts = Vec::new();
    for ctx in catalog.contexts.values() {
        let state = ctx.state.as_str();
        by_state.entry(ctx.state as u8).or_insert((state, 0)).1 += 1;
        let (legacy, new) = sides(&table, &ctx.name);
        let (compared, matched) = shadow.get(&ctx.name).copied().unwrap_or((0, 0));
        let rate =
            |t: &TrafficMinute| (t.requests > 0).then(|| t.errors as f64 / t.requests as f64);
        contexts.push(ContextRow {
            name: ctx.name.clone(),
            state,
            owner: ctx.owner().as_str(),
            target: ctx.target.clone(),
            split: split(ctx.state, ctx.weight),
            realized: percent(
                (legacy.requests + new.requests > 0)
                    .then(|| new.requests as f64 / (legacy.requests + new.requests) as f64),
            ),
            requests: legacy.requests + new.requests,
            fallbacks: legacy.fallbacks,
            match_rate: percent((compared > 0).then(|| matched as f64 / compared as f64)),
            errors: format!("{} / {}", percent(rate(&new)), percent(rate(&legacy))),
            p99: format!(
                "{} / {}",
                ms(new.quantile_ms(0.99)),
                ms(legacy.quantile_ms(0.99))
            ),
            breaker: runtime
                .as_ref()
                .and_then(|v| v.get(&ctx.target)?.get("breaker")?.as_str())
                .unwrap_or("—")
                .to_owned(),
            last_change: last.get(&ctx.name).map(|a| LastChange {
                at: iso(a.at_ms),
                actor: a.actor.clone(),
                reason: a.reason.clone(),
            }),
        });
    }
    let (unclaimed, _) = sides(&table, "");
    let mut templates = s.store.path_traffic("", from).await?;
    templates.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.path.cmp(&b.path)));
    templates.truncate(5);
    let routes_by_state = {
        let mut m: BTreeMap<u8, (&'static str, usize)> = BTreeMap::new();
        for r in catalog.routes.values() {
            if let Some(c) = catalog.contexts.get(&r.context) {
                m.entry(c.state as u8).or_insert((c.state.as_str(), 0)).1 += 1;
            }
        }
        m.into_values().collect()
    };
    Ok(OverviewPage {
        // Across the page on a laptop, a column's width on a phone (CSS shows one).
        chart: format!(
            "<div class=\"wide\">{}</div><div class=\"narrow\">{}</div>",
            share_chart(&series, first_hour, 24, 60, PAGE),
            share_chart(&series, first_hour, 24, 60, COLUMN)
        ),
        role: (viewer.cookie.is_some()).then(|| viewer.role_name()),
        csrf: viewer.csrf(&key(s)),
        window: (caption, unclaimed_window),
        table_windows: TABLE_WINDOWS
            .iter()
            .enumerate()
            .map(|(i, w)| (w.0, w.1, i == window))
            .collect(),
        windows,
        by_state: by_state.into_values().collect(),
        routes_by_state,
        contexts,
        unclaimed: unclaimed.requests,
        sinks: s.store.sink_stats().await?,
        top_unclaimed: templates
            .into_iter()
            .map(|t| (t.path, t.requests))
            .collect(),
    })
}
