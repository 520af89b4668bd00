//! A context's page: its state and rollout, routes, objectives, shadow results with example
//! pairs and their differences, its audit trail, and the forms for its actions.

use super::charts::{pair_chart, ratio_chart, share_chart, COLUMN};
use super::{
    html, iso, key, message, ms, percent, see_other, session, sides, split, store_failure,
};
use crate::api::{ApiState, Role};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use std::collections::BTreeMap;
use strangler_catalog::AuditQuery;
use strangler_catalog::{MigrationState, Side, TrafficMinute};
use strangler_store::StoreError;

struct RouteRow {
    methods: String,
    path: String,
    id: String,
    /// Last 24 hours: requests answered by each side, errors, mean time.
    new: i64,
    legacy: i64,
    errors: String,
    mean: String,
}

/// One side's standing against the context's objective.
struct ObjectiveRow {
    side: &'static str,
    requests: i64,
    availability: String,
    /// The error budget left, e.g. `62.0 %` or `exhausted (−40.0 %)`.
    budget: String,
    budget_ok: bool,
    p99: String,
    p99_ok: bool,
}

/// An example pair with the lines that differ marked (HTML the page built and escaped).
struct ExampleView {
    /// Recorded before the context's last change.
    before_change: bool,
    signature: String,
    method: String,
    path: String,
    legacy_status: i64,
    new_status: i64,
    legacy_html: String,
    new_html: String,
}

/// A side's standing against an objective over its window.
fn objective_row(
    side: &'static str,
    t: &TrafficMinute,
    o: &strangler_catalog::Objective,
) -> ObjectiveRow {
    let allowed = (1.0 - o.availability_percent / 100.0) * t.requests as f64;
    let left = (allowed > 0.0).then(|| 1.0 - t.errors as f64 / allowed);
    let p99 = t.quantile_ms(0.99);
    ObjectiveRow {
        side,
        requests: t.requests,
        availability: percent((t.requests > 0).then(|| 1.0 - t.errors as f64 / t.requests as f64)),
        budget: match left {
            None => "— (no requests yet)".to_owned(),
            Some(l) if l < 0.0 => format!("exhausted ({:.1} %)", l * 100.0),
            Some(l) => format!("{:.1} % left", l * 100.0),
        },
        budget_ok: left.is_none_or(|l| l >= 0.0),
        p99: match (p99, t.requests) {
            (_, 0) => "—".to_owned(),
            (Some(ms), _) => format!("≤ {ms} ms"),
            (None, _) => "over 10 s".to_owned(),
        },
        p99_ok: t.requests == 0 || p99.is_some_and(|ms| ms <= o.p99_ms),
    }
}

struct AuditRow {
    at: String,
    actor: String,
    action: String,
    reason: String,
    version: i64,
}

#[derive(Template)]
#[template(path = "context.html")]
struct ContextPage {
    role: Option<String>,
    csrf: Option<String>,
    csrf_value: String,
    operator: bool,
    notice: Option<String>,
    name: String,
    description: String,
    state: &'static str,
    next_state: Option<&'static str>,
    /// Who owns the context's writes: `legacy` or `new`.
    owner: &'static str,
    /// Mirrored writes waiting, toward the new service and toward legacy, in words.
    outbox: (String, String),
    /// The last `strangler reconcile`: what it found, and when.
    reconciled: Option<(String, String)>,
    /// The id map: pairs in all, and per resource in words (`None`: the sides agree on every
    /// id).
    id_map: Option<(i64, String)>,
    /// Shadow sampling is set to 0.
    shadow_paused: bool,
    target: String,
    split: String,
    weight: u16,
    version: i64,
    match_rate: String,
    compared: i64,
    requests: i64,
    errors: String,
    p99: String,
    routes: Vec<RouteRow>,
    /// The target's circuit breaker, in words, and whether it is closed; its instances as
    /// this process sees them: health in words, and whether it is good.
    breaker: (String, bool),
    instances: Vec<(String, (String, bool))>,
    /// Requests legacy answered because the new side failed: last hour, last 24 hours.
    fallbacks: (i64, i64),
    /// The objective in words, and each side's standing against it.
    objective: Option<String>,
    objective_rows: Vec<ObjectiveRow>,
    /// p99 and error rate per hour over 24 hours, new vs legacy (SVG).
    latency_chart: String,
    error_chart: String,
    /// Match rate per hour over 24 hours (SVG).
    match_chart: String,
    /// Share answered by the new service per hour over 24 hours (SVG).
    share_chart: String,
    signatures: Vec<(String, i64)>,
    /// Why requests were not shadowed in the last hour, most frequent first.
    /// Why requests were not shadowed: the reason's code, what it means and what to do, and
    /// how many.
    skipped: Vec<(String, (&'static str, &'static str), i64)>,
    /// Proposed ignore rules: path, pairs seen, state.
    noise: Vec<(String, i64, &'static str)>,
    examples: Vec<ExampleView>,
    /// What the headline figures cover, as every one of them is labelled.
    window: String,
    /// The window selector: `?window=` value, name, chosen.
    windows: Vec<(&'static str, &'static str, bool)>,
    audit: Vec<AuditRow>,
    /// The autopilot's policy in words, whether it is paused, and its last word here.
    rollout: Option<(String, bool, Option<String>)>,
    /// The autopilot's decisions, newest first, with the figures behind each.
    timeline: Vec<AuditRow>,
}

#[derive(Deserialize)]
pub(super) struct Done {
    done: Option<String>,
    /// The headline figures' window (`change`, `5m`, `1h`, `24h`, `7d`).
    window: Option<String>,
}

pub(super) async fn context_page(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let Some(viewer) = session(&s, &headers).await else {
        return see_other("/login");
    };
    let catalog = match s.catalog.current(&*s.store).await {
        Ok(c) => c,
        Err(e) => return store_failure(&s, Some(&viewer), e),
    };
    let Some(ctx) = catalog.contexts.get(&name) else {
        return message(
            StatusCode::NOT_FOUND,
            Some(&viewer),
            &s,
            "No such context",
            format!("there is no context named `{name}`; the overview lists them all"),
            "/".into(),
        );
    };
    let now = crate::now_minute();
    let first_hour = (now / 60 - 23) * 60;
    let window = Window::parse(done.window.as_deref());
    let loaded = async {
        let audit = s
            .store
            .audit(&AuditQuery {
                target: Some(format!("context:{}", ctx.name)),
                limit: Some(20),
                ..AuditQuery::default()
            })
            .await?;
        // The headline figures cover the chosen window; the charts the day, per hour.
        // A reconciliation reads both sides and changes nothing: not a change. An import or a
        // whole-catalog replace (target `catalog`) may have changed the context too.
        let whole = s
            .store
            .audit(&AuditQuery {
                target: Some("catalog".into()),
                limit: Some(1),
                ..AuditQuery::default()
            })
            .await?;
        let last_change_ms = audit
            .iter()
            .find(|a| a.action != "reconcile")
            .into_iter()
            .chain(whole.first())
            .map(|a| a.at_ms)
            .max();
        let (from, label) = window.span(now, last_change_ms);
        let day = s.store.traffic_hourly(&ctx.name, first_hour).await?;
        let hour = s.store.traffic_sum(Some(&ctx.name), from).await?;
        let shadow_day = s.store.shadow_series(&ctx.name, first_hour, 60).await?;
        let shadow = s.store.shadow(&ctx.name, from).await?;
        let examples = s.store.shadow_examples(&ctx.name).await?;
        let noise = s.store.shadow_noise(&ctx.name).await?;
        let timeline = s
            .store
            .audit(&AuditQuery {
                target: Some(format!("context:{}", ctx.name)),
                actor: Some("autopilot".into()),
                limit: Some(30),
                ..AuditQuery::default()
            })
            .await?;
        let routes = s.store.path_traffic(&ctx.name, first_hour).await?;
        let outboxes = (
            s.store.outbox_stats(&ctx.name, Side::New).await?,
            s.store.outbox_stats(&ctx.name, Side::Legacy).await?,
            s.store
                .audit(&AuditQuery {
                    target: Some(format!("context:{}", ctx.name)),
                    actor: Some("reconcile".into()),
                    limit: Some(1),
                    ..AuditQuery::default()
                })
                .await?,
            s.store.ids_count(&ctx.name).await?,
        );
        let objective_window = match &ctx.objective {
            Some(o) => {
                s.store
                    .traffic_sum(Some(&ctx.name), now - i64::from(o.window_days) * 1440 + 1)
                    .await?
            }
            None => Vec::new(),
        };
        Ok::<_, StoreError>((
            (day, hour),
            (shadow_day, shadow),
            examples,
            (audit, timeline),
            noise,
            (routes, outboxes),
            objective_window,
            (label, last_change_ms),
        ))
    };
    let (
        (day, hour),
        (shadow_day, shadow),
        examples,
        (audit, timeline),
        noise,
        (route_traffic, (to_new, to_legacy, reconciled, id_counts)),
        objective_window,
        (label, last_change_ms),
    ) = match loaded.await {
        Ok(x) => x,
        Err(e) => return store_failure(&s, Some(&viewer), e),
    };
    let match_bars: Vec<(Option<f64>, String)> = (0..24)
        .map(|i| {
            let start = first_hour + i * 60;
            let (c, m) = shadow_day
                .iter()
                .filter(|r| r.minute == start)
                .fold((0i64, 0i64), |(c, m), r| (c + r.compared, m + r.matched));
            let rate = (c > 0).then(|| m as f64 / c as f64);
            let tip = rate.map_or(String::new(), |r| {
                format!("{:.1} % of {c} compared", r * 100.0)
            });
            (rate, tip)
        })
        .collect();
    let (legacy, new) = sides(&hour, &ctx.name);
    let (compared, matched) = shadow
        .iter()
        .fold((0, 0), |(c, m), r| (c + r.compared, m + r.matched));
    let mut signatures: BTreeMap<String, i64> = BTreeMap::new();
    for r in &shadow {
        for c in &r.signatures {
            *signatures.entry(c.signature.clone()).or_insert(0) += c.count;
        }
    }
    let mut skipped: BTreeMap<String, i64> = BTreeMap::new();
    for r in &shadow {
        for (why, n) in &r.skipped {
            *skipped.entry(why.clone()).or_insert(0) += n;
        }
    }
    let mut skipped: Vec<(String, i64)> = skipped.into_iter().collect();
    skipped.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let skipped: Vec<(String, (&'static str, &'static str), i64)> = skipped
        .into_iter()
        .map(|(why, n)| {
            let words = skip_words(&why);
            (why, words, n)
        })
        .collect();
    let noise: Vec<(String, i64, &'static str)> = noise
        .into_iter()
        .map(|p| {
            let state = if ctx.shadow.ignore.contains(&p.path) {
                "accepted"
            } else if p.dismissed {
                "dismissed"
            } else {
                "proposed"
            };
            (p.path, p.count, state)
        })
        .collect();
    let mut signatures: Vec<(String, i64)> = signatures.into_iter().collect();
    signatures.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    signatures.truncate(10);
    let rate = |t: &TrafficMinute| (t.requests > 0).then(|| t.errors as f64 / t.requests as f64);
    // Per hour and side over the day: p99 and error rate, new vs legacy.
    let per_hour: Vec<(TrafficMinute, TrafficMinute)> = (0..24)
        .map(|i| {
            let start = first_hour + i * 60;
            let rows: Vec<TrafficMinute> = day
                .iter()
                .filter(|r| r.minute / 60 * 60 == start)
                .cloned()
                .collect();
            sides(&rows, &ctx.name)
        })
        .collect();
    let latency_bars: Vec<(Option<f64>, Option<f64>)> = per_hour
        .iter()
        .map(|(l, n)| {
            let p = |t: &TrafficMinute| t.quantile_ms(0.99).map(|v| v as f64);
            (p(n), p(l))
        })
        .collect();
    let error_bars: Vec<(Option<f64>, Option<f64>)> =
        per_hour.iter().map(|(l, n)| (rate(n), rate(l))).collect();
    let (day_legacy, _) = sides(&day, &ctx.name);
    let runtime = s.runtime.as_ref().map(|f| f());
    let target_view = runtime.as_ref().and_then(|v| v.get(&ctx.target));
    let instances = target_view
        .and_then(|v| v.get("instances")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|i| {
            let origin = i.get("origin").and_then(|o| o.as_str()).unwrap_or("?");
            (origin.to_owned(), instance_health(i))
        })
        .collect();
    let mut by_route: BTreeMap<&str, (i64, i64, i64, i64)> = BTreeMap::new();
    for r in &route_traffic {
        let e = by_route.entry(r.path.as_str()).or_default();
        if r.side == "new" {
            e.0 += r.requests;
        } else {
            e.1 += r.requests;
        }
        e.2 += r.errors;
        e.3 += r.latency_us;
    }
    let objective_rows = match &ctx.objective {
        Some(o) => {
            let (l, n) = sides(&objective_window, &ctx.name);
            vec![objective_row("new", &n, o), objective_row("legacy", &l, o)]
        }
        None => Vec::new(),
    };
    let k = key(&s);
    let page = ContextPage {
        role: viewer.cookie.is_some().then(|| viewer.role_name()),
        csrf: viewer.csrf(&k),
        csrf_value: viewer.csrf(&k).unwrap_or_default(),
        operator: viewer.role == Role::Operator && viewer.cookie.is_some(),
        // Only the confirmations the actions produce: a link cannot put other words here.
        notice: done
            .done
            .filter(|d| {
                [
                    "promoted",
                    "rolled back to legacy",
                    "cut over: the new service owns the writes",
                    "shadowing paused",
                    "shadowing resumed",
                    "noise rule accepted",
                    "noise rule dismissed",
                    "autopilot paused",
                    "autopilot resumed",
                ]
                .contains(&d.as_str())
                    || d.strip_prefix("canary weight set to ")
                        .is_some_and(|w| w.parse::<u16>().is_ok())
            })
            .map(|d| format!("Done: {d}. The facade follows within its poll interval.")),
        name: ctx.name.clone(),
        description: ctx.description.clone(),
        state: ctx.state.as_str(),
        next_state: ctx.state.next().map(MigrationState::as_str),
        owner: ctx.owner().as_str(),
        outbox: (waiting(&to_new), waiting(&to_legacy)),
        reconciled: reconciled.first().map(|a| (reconciliation(a.after.as_ref()), iso(a.at_ms))),
        id_map: (!id_counts.is_empty()).then(|| {
            let total = id_counts.iter().map(|(_, n)| n).sum();
            let each: Vec<String> = id_counts.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            (total, each.join(", "))
        }),
        shadow_paused: ctx.shadow.paused || ctx.shadow.sample_percent == Some(0),
        target: ctx.target.clone(),
        split: split(ctx.state, ctx.weight),
        weight: ctx.weight,
        version: catalog.version,
        match_rate: percent((compared > 0).then(|| matched as f64 / compared as f64)),
        compared,
        requests: legacy.requests + new.requests,
        errors: format!(
            "new {} / legacy {}",
            percent(rate(&new)),
            percent(rate(&legacy))
        ),
        p99: format!(
            "new {} / legacy {}",
            ms(new.quantile_ms(0.99)),
            ms(legacy.quantile_ms(0.99))
        ),
        breaker: breaker_words(target_view.and_then(|v| v.get("breaker")?.as_str())),
        instances,
        fallbacks: (legacy.fallbacks, day_legacy.fallbacks),
        objective: ctx.objective.as_ref().map(|o| {
            format!(
                "{} % of requests answered below 500, p99 ≤ {} ms, over {} days",
                o.availability_percent, o.p99_ms, o.window_days
            )
        }),
        objective_rows,
        latency_chart: pair_chart(
            "p99 per hour, new (green) and legacy (grey), last 24 hours",
            &latency_bars,
            &|v| format!("{v:.0} ms"),
            "No requests recorded yet",
            COLUMN,
        ),
        error_chart: pair_chart(
            "Error rate (5xx) per hour, new (green) and legacy (grey), last 24 hours",
            &error_bars,
            &|v| format!("{:.1} %", v * 100.0),
            "No requests recorded yet",
            COLUMN,
        ),
        match_chart: ratio_chart(
            "Shadow match rate per hour, last 24 hours",
            &match_bars,
            "#0b5fae",
            no_comparisons(ctx.state, ctx.shadow.paused || ctx.shadow.sample_percent == Some(0)),
            COLUMN,
        ),
        share_chart: share_chart(&day, first_hour, 24, 60, COLUMN),
        routes: catalog
            .routes_of(&ctx.name)
            .map(|r| RouteRow {
                methods: if r.spec.methods.is_empty() {
                    "any".into()
                } else {
                    r.spec.methods.join(", ")
                },
                path: r.spec.path.clone(),
                id: r.id.clone(),
                new: by_route.get(r.id.as_str()).map_or(0, |t| t.0),
                legacy: by_route.get(r.id.as_str()).map_or(0, |t| t.1),
                errors: percent(
                    by_route
                        .get(r.id.as_str())
                        .and_then(|t| (t.0 + t.1 > 0).then(|| t.2 as f64 / (t.0 + t.1) as f64)),
                ),
                mean: by_route
                    .get(r.id.as_str())
                    .filter(|t| t.0 + t.1 > 0)
                    .map_or("—".to_owned(), |t| {
                        format!("{:.1} ms", t.3 as f64 / 1000.0 / (t.0 + t.1) as f64)
                    }),
            })
            .collect(),
        signatures,
        skipped,
        noise,
        window: label,
        windows: Window::ALL
            .iter()
            .map(|w| (w.key(), w.choice(), *w == window))
            .collect(),
        // Pairs from before the last change (a translator or noise rule since fixed) go
        // below the recent ones, marked.
        examples: {
            let mut examples = examples;
            let before = |at: i64| last_change_ms.is_some_and(|c| at < c);
            examples.sort_by_key(|e| before(e.at_ms));
            examples
        }
            .into_iter()
            .take(3)
            .map(|e| {
                let (legacy_html, new_html) = diff_html(&e.legacy_body, &e.new_body);
                ExampleView {
                    before_change: last_change_ms.is_some_and(|c| e.at_ms < c),
                    signature: e.signature,
                    method: e.method,
                    path: e.path,
                    legacy_status: e.legacy_status,
                    new_status: e.new_status,
                    legacy_html,
                    new_html,
                }
            })
            .collect(),
        rollout: ctx.rollout.as_ref().map(|r| {
            let steps: Vec<String> = r.steps.iter().map(|s| format!("{s} %")).collect();
            let summary = format!(
                "leaves shadow when the match rate's lower 95 % bound reaches {:.1} % over at least {} comparisons in {} min with no mismatch signature seen more than {} times; then canary steps {}, each held {} s with new errors ≤ legacy's + {:.1} %, p99 ≤ legacy's × {}, fallbacks ≤ {:.1} %; evaluated every {} s",
                r.shadow_gate.min_match_rate * 100.0,
                r.shadow_gate.min_comparisons,
                r.shadow_gate.window_minutes,
                r.shadow_gate.max_signature_count,
                steps.join(" → "),
                r.hold_secs,
                r.checks.error_rate_margin * 100.0,
                r.checks.p99_ratio,
                r.checks.max_fallback_rate * 100.0,
                r.interval_secs
            );
            let last = s.autopilot.as_ref().and_then(|view| {
                let v = view();
                let last = &v["contexts"][ctx.name.as_str()]["last"];
                Some(format!(
                    "{}: {}",
                    last["decision"].as_str()?,
                    last["why"].as_str()?
                ))
            });
            (summary, r.paused, last)
        }),
        timeline: timeline
            .iter()
            .map(|a| AuditRow {
                at: iso(a.at_ms),
                actor: a.actor.clone(),
                action: a.action.clone(),
                reason: a.reason.clone(),
                version: a.version,
            })
            .collect(),
        audit: audit
            .iter()
            .map(|a| AuditRow {
                at: iso(a.at_ms),
                actor: a.actor.clone(),
                action: a.action.clone(),
                reason: a.reason.clone(),
                version: a.version,
            })
            .collect(),
    };
    html(StatusCode::OK, page.render())
}

mod diff;
mod window;
mod words;
pub(super) use diff::diff_html;
use window::Window;
pub(crate) use words::{breaker_words, instance_health, no_comparisons, skip_words};
use words::{reconciliation, waiting};
