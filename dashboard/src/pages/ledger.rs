//! The ledger: every context's state history and, for every route, when legacy last served
//! it — a retired route legacy has not served for the configured quiet period is marked safe
//! to delete from the monolith.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use strangler_catalog::MigrationState;
use strangler_store::StoreError;

use super::{html, iso, key, see_other, session, store_failure};
use crate::api::ApiState;

/// How many audit rows of contexts the history is made of (the newest).
const HISTORY_ROWS: u32 = 10_000;

struct Step {
    at: String,
    from: String,
    to: String,
    actor: String,
    reason: String,
}

struct LedgerRoute {
    methods: String,
    path: String,
    id: String,
    last_legacy: Option<String>,
    /// Whole days since legacy last served it.
    days: Option<i64>,
    safe: bool,
}

struct LedgerContext {
    name: String,
    state: &'static str,
    history: Vec<Step>,
    routes: Vec<LedgerRoute>,
    safe: usize,
}

#[derive(Template)]
#[template(path = "ledger.html")]
struct LedgerPage {
    role: Option<String>,
    csrf: Option<String>,
    quiet_days: u64,
    contexts: Vec<LedgerContext>,
    routes: usize,
    safe: usize,
    retired: usize,
}

fn state_in(v: Option<&serde_json::Value>) -> Option<String> {
    Some(v?.get("state")?.as_str()?.to_owned())
}

pub(super) async fn ledger_page(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(viewer) = session(&s, &headers).await else {
        return see_other("/login");
    };
    let loaded = async {
        let catalog = s.catalog.current(&*s.store).await?;
        let audit = s.store.audit_of("context:", HISTORY_ROWS).await?;
        // Days since legacy served a route matter once its context is retired.
        let retired: Vec<String> = catalog
            .contexts
            .values()
            .filter(|c| c.state == MigrationState::Retired)
            .map(|c| c.name.clone())
            .collect();
        let seen = s.store.last_seen("legacy", &retired).await?;
        Ok::<_, StoreError>((catalog, audit, seen))
    };
    let (catalog, audit, seen) = match loaded.await {
        Ok(x) => x,
        Err(e) => return store_failure(&s, Some(&viewer), e),
    };
    let now_ms = crate::now_secs() * 1000;
    let now = crate::now_minute();
    let quiet_minutes = i64::try_from(s.quiet_period.as_secs() / 60).unwrap_or(i64::MAX);
    // Each context's steps, oldest first: a row counts when the state it records changed.
    let mut history: BTreeMap<&str, Vec<(i64, Step)>> = BTreeMap::new();
    for a in &audit {
        let Some(name) = a.target.strip_prefix("context:") else {
            continue;
        };
        let (before, after) = (state_in(a.before.as_ref()), state_in(a.after.as_ref()));
        if before == after {
            continue;
        }
        history.entry(name).or_default().push((
            a.at_ms,
            Step {
                at: iso(a.at_ms),
                from: before.unwrap_or_else(|| "—".into()),
                to: after.unwrap_or_else(|| "deleted".into()),
                actor: a.actor.clone(),
                reason: a.reason.clone(),
            },
        ));
    }
    let last_legacy: BTreeMap<(&str, &str), i64> = seen
        .iter()
        .map(|l| ((l.context.as_str(), l.path.as_str()), l.minute))
        .collect();
    let mut contexts = Vec::new();
    let (mut total_safe, mut total_routes, mut retired) = (0, 0, 0);
    for ctx in catalog.contexts.values() {
        let steps = history.remove(ctx.name.as_str()).unwrap_or_default();
        // Retired since the last step into `retired`; unknown (e.g. imported) counts as not
        // long enough.
        let retired_at = (ctx.state == MigrationState::Retired)
            .then(|| {
                steps
                    .iter()
                    .rev()
                    .find(|(_, st)| st.to == "retired")
                    .map(|(at, _)| *at)
            })
            .flatten();
        let quiet_since_retired =
            retired_at.is_some_and(|at| (now_ms - at) / 60_000 >= quiet_minutes);
        let routes: Vec<LedgerRoute> = catalog
            .routes_of(&ctx.name)
            .map(|r| {
                let last = last_legacy
                    .get(&(ctx.name.as_str(), r.id.as_str()))
                    .copied();
                let quiet = last.is_none_or(|m| now - m >= quiet_minutes);
                LedgerRoute {
                    methods: if r.spec.methods.is_empty() {
                        "any".into()
                    } else {
                        r.spec.methods.join(", ")
                    },
                    path: r.spec.path.clone(),
                    id: r.id.clone(),
                    last_legacy: last.map(|m| iso(m * 60_000)),
                    days: last.map(|m| (now - m) / 1440),
                    safe: quiet_since_retired && quiet,
                }
            })
            .collect();
        let safe = routes.iter().filter(|r| r.safe).count();
        total_safe += safe;
        total_routes += routes.len();
        retired += usize::from(ctx.state == MigrationState::Retired);
        contexts.push(LedgerContext {
            name: ctx.name.clone(),
            state: ctx.state.as_str(),
            history: steps.into_iter().map(|(_, st)| st).collect(),
            routes,
            safe,
        });
    }
    let page = LedgerPage {
        role: viewer.cookie.is_some().then(|| viewer.role_name()),
        csrf: viewer.csrf(&key(&s)),
        quiet_days: s.quiet_period.as_secs() / 86_400,
        contexts,
        routes: total_routes,
        safe: total_safe,
        retired,
    };
    html(StatusCode::OK, page.render())
}
