//! The migration autopilot's evaluator, inside `strangler serve`. One replica evaluates at a
//! time: it holds the catalog's `autopilot` lease (renewed every second, lapsing after five),
//! and another takes it over within seconds when it dies. For each context with a rollout
//! policy that is not paused, in `shadow` or `canary`, every policy interval it reads the
//! evidence from the catalog's rollups and applies the decision (`strangler_catalog::rollout`)
//! as an audited catalog change, with the figures as the reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use strangler_catalog::rollout::{self, CanaryEvidence, Decision, ShadowEvidence, SideFigures};
use strangler_catalog::{clock, Action, Catalog, Change, MigrationState};
use strangler_catalog::{AuditQuery, ChangeMeta};
use strangler_store::{
    CatalogStore, EventOutbox, Leases, ShadowRollups, SqlStore, StoreError, TrafficRollups,
};
use tokio::sync::watch;

/// The lease's name and how long it lasts without renewal.
pub const LEASE: &str = "autopilot";
const LEASE_MS: i64 = 5_000;
const TICK: Duration = Duration::from_secs(1);

/// What this process's evaluator knows, for `GET /api/v1/autopilot`.
#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default)]
struct StatusInner {
    /// Changes applied, per (context, action), for `/metrics`.
    applied: BTreeMap<(String, &'static str), u64>,
    holder: String,
    leader: bool,
    /// Per context: when it was last evaluated (ms) and the decision.
    last: BTreeMap<String, (i64, Value)>,
    /// Per context: the last minute checked for a mismatch spike.
    spikes: BTreeMap<String, i64>,
}

impl Status {
    /// Appends `strangler_autopilot_actions_total{context, action}` in the Prometheus text
    /// format: the changes this process's autopilot applied (context names are the catalog's:
    /// lower-case letters, digits and `-`, nothing to escape).
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP strangler_autopilot_actions_total Changes the autopilot applied, by context and action (promote, set_weight, cutover, rollback).\n");
        out.push_str("# TYPE strangler_autopilot_actions_total counter\n");
        for ((context, action), n) in &s.applied {
            let _ = writeln!(
                out,
                "strangler_autopilot_actions_total{{context=\"{context}\",action=\"{action}\"}} {n}"
            );
        }
    }

    fn count(&self, context: &str, action: &'static str) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *s.applied.entry((context.to_owned(), action)).or_default() += 1;
    }

    /// The status as JSON.
    pub fn view(&self) -> Value {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        json!({
            "this_process": s.holder,
            "evaluating": s.leader,
            "contexts": s.last.iter().map(|(name, (at, d))| {
                (name.clone(), json!({ "at_ms": at, "last": d }))
            }).collect::<serde_json::Map<_, _>>(),
        })
    }

    /// Whether this process holds the lease now.
    pub fn is_leader(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).leader
    }

    fn set_leader(&self, holder: &str, leader: bool) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.holder = holder.to_owned();
        if s.leader != leader {
            tracing::info!(holder, leader, "autopilot evaluator lease");
        }
        s.leader = leader;
        if !leader {
            s.last.clear();
        }
    }

    /// Records a decision; returns the previous one.
    fn record(&self, context: &str, at_ms: i64, decision: &Decision) -> Option<Value> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.last
            .insert(
                context.to_owned(),
                (at_ms, serde_json::to_value(decision).unwrap_or(Value::Null)),
            )
            .map(|(_, v)| v)
    }

    /// Whether `minute` is new for the spike check of `context` (and marks it seen).
    fn spike_minute(&self, context: &str, minute: i64) -> bool {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let seen = s.spikes.insert(context.to_owned(), minute);
        seen != Some(minute)
    }

    fn due(&self, context: &str, now_ms: i64, interval_ms: i64) -> bool {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.last
            .get(context)
            .is_none_or(|(at, _)| now_ms - at >= interval_ms)
    }
}

/// Runs the evaluator until `stop` turns true.
pub async fn run(
    store: SqlStore,
    catalog: watch::Receiver<Arc<Catalog>>,
    holder: String,
    status: Arc<Status>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let leader = match store.lease(LEASE, &holder, LEASE_MS).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "autopilot: the lease cannot be renewed; not evaluating");
                false
            }
        };
        status.set_leader(&holder, leader);
        if !leader {
            continue;
        }
        // The catalog the process follows: a change made since it loaded is refused as stale
        // and decided again next tick.
        let catalog = Arc::clone(&catalog.borrow());
        if let Err(e) = evaluate(&store, &catalog, &status).await {
            tracing::warn!(error = %e, "autopilot: evaluation failed; trying again next tick");
        }
    }
    // Hand the lease over at once rather than after it lapses.
    let _ = store.lease(LEASE, &holder, -1).await;
}

async fn evaluate(
    store: &SqlStore,
    catalog: &strangler_catalog::Catalog,
    status: &Status,
) -> Result<(), StoreError> {
    let now = clock::now_ms();
    // Mismatch spikes, for every context whose answers are compared: the last whole minute
    // against the four before it, once a minute.
    let last_minute = now / 60_000 - 1;
    for ctx in catalog.contexts.values() {
        if !matches!(
            ctx.state,
            MigrationState::Shadow | MigrationState::Canary | MigrationState::Migrated
        ) || !status.spike_minute(&ctx.name, last_minute)
        {
            continue;
        }
        let (mut last, mut before) = ((0u64, 0u64), (0u64, 0u64));
        for m in store.shadow(&ctx.name, last_minute - 4).await? {
            let (c, k) = (
                u64::try_from(m.compared).unwrap_or(0),
                u64::try_from(m.matched).unwrap_or(0),
            );
            if m.minute == last_minute {
                last = (c, k);
            } else if m.minute < last_minute {
                before = (before.0 + c, before.1 + k);
            }
        }
        if rollout::is_mismatch_spike(last, before) {
            let data = json!({
                "context": ctx.name,
                "minute": last_minute,
                "compared": last.0,
                "mismatched": last.0 - last.1,
                "compared_before": before.0,
                "mismatched_before": before.0 - before.1,
            });
            store
                .add_event(&ctx.name, "io.strangler.shadow.mismatch.spike", &data)
                .await?;
        }
    }
    for ctx in catalog.contexts.values() {
        let Some(policy) = ctx.rollout.as_ref().filter(|p| !p.paused) else {
            continue;
        };
        if !matches!(ctx.state, MigrationState::Shadow | MigrationState::Canary)
            || !status.due(&ctx.name, now, i64::from(policy.interval_secs) * 1000)
        {
            continue;
        }
        let now_minute = now / 60_000;
        let mut shadow = ShadowEvidence::default();
        let mut canary = CanaryEvidence {
            cut_over: ctx.cut_over,
            ..CanaryEvidence::default()
        };
        if ctx.state == MigrationState::Shadow {
            let since = now_minute - i64::from(policy.shadow_gate.window_minutes) + 1;
            let mut signatures: BTreeMap<String, u64> = BTreeMap::new();
            for m in store.shadow(&ctx.name, since).await? {
                shadow.compared += u64::try_from(m.compared).unwrap_or(0);
                shadow.matched += u64::try_from(m.matched).unwrap_or(0);
                for s in m.signatures {
                    *signatures.entry(s.signature).or_default() +=
                        u64::try_from(s.count).unwrap_or(0);
                }
            }
            shadow.top_signature = signatures.into_iter().max_by_key(|(_, n)| *n);
        } else {
            // The step began with the context's last change.
            let last = store
                .audit(&AuditQuery {
                    target: Some(format!("context:{}", ctx.name)),
                    limit: Some(1),
                    ..AuditQuery::default()
                })
                .await?;
            let started = last.first().map_or(now, |a| a.at_ms);
            canary.held_secs = u64::try_from((now - started) / 1000).unwrap_or(0);
            for m in store.shadow(&ctx.name, started / 60_000).await? {
                canary.reverse.compared += u64::try_from(m.compared).unwrap_or(0);
                canary.reverse.matched += u64::try_from(m.matched).unwrap_or(0);
            }
            for t in store.traffic_sum(Some(&ctx.name), started / 60_000).await? {
                let figures = SideFigures {
                    requests: u64::try_from(t.requests).unwrap_or(0),
                    errors: u64::try_from(t.errors).unwrap_or(0),
                    p99_ms: t.quantile_ms(0.99),
                };
                if t.side == "new" {
                    canary.new = figures;
                } else {
                    canary.fallbacks = u64::try_from(t.fallbacks).unwrap_or(0);
                    canary.legacy = figures;
                }
            }
        }
        let decision = rollout::decide(policy, ctx.state, ctx.weight, &shadow, &canary);
        let previous = status.record(&ctx.name, now, &decision);
        // A gate that fails on the evidence (not for want of it) is an event, once per reason.
        if let Decision::Hold { why } = &decision {
            let kind = |w: &str| w.split(':').next().unwrap_or("").to_owned();
            let failing =
                why.starts_with("match rate too low") || why.starts_with("mismatch signature");
            let before = previous.as_ref().and_then(|p| p["why"].as_str()).map(kind);
            if ctx.state == MigrationState::Shadow && failing && before != Some(kind(why)) {
                let data = json!({ "context": ctx.name, "why": why });
                store
                    .add_event(&ctx.name, "io.strangler.autopilot.gate.failed", &data)
                    .await?;
            }
        }
        let (changes, why): (Vec<Action>, &str) = match &decision {
            Decision::Hold { .. } => continue,
            Decision::StartCanary { weight, why } => (
                vec![Action::Promote, Action::SetWeight { weight: *weight }],
                why,
            ),
            Decision::NextStep { weight, why } => {
                (vec![Action::SetWeight { weight: *weight }], why)
            }
            Decision::Cutover { why } => (vec![Action::Cutover], why),
            Decision::Migrate { why } => (vec![Action::Promote], why),
            Decision::Rollback { why } => (vec![Action::Rollback], why),
        };
        let meta = ChangeMeta {
            force: false,
            actor: "autopilot".into(),
            reason: why.to_owned(),
        };
        let mut version = catalog.version;
        for action in changes {
            let kind = match &action {
                Action::Promote => "promote",
                Action::SetWeight { .. } => "set_weight",
                Action::Cutover => "cutover",
                Action::Rollback => "rollback",
            };
            let change = Change::Autopilot {
                context: ctx.name.clone(),
                action,
            };
            match store.apply(&change, version, &meta).await {
                Ok(c) => {
                    version = c.version;
                    status.count(&ctx.name, kind);
                }
                Err(StoreError::Stale { .. }) => {
                    // Someone changed the catalog meanwhile: decide again next time.
                    break;
                }
                Err(e) => {
                    tracing::warn!(context = %ctx.name, error = %e, "autopilot: the decision was not applied");
                    break;
                }
            }
        }
        tracing::info!(context = %ctx.name, decision = ?decision, "autopilot decided");
        // Later contexts see this version; reload before the next one changes anything.
        return Ok(());
    }
    Ok(())
}
