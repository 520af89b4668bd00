//! The migration autopilot's policy and its decisions: evidence from the shadow comparison
//! decides when a context leaves shadow; evidence from the canary (error rate, p99 and
//! fallbacks, new against legacy) decides each step, and a failed check rolls back.
//!
//! Pure: figures in, a decision out. The evaluator in `strangler serve` reads the figures from
//! the catalog's rollups and applies the decision as an audited catalog change.

use serde::{Deserialize, Serialize};

use crate::state::MigrationState;
use crate::state::FULL_WEIGHT;

/// A context's rollout policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutPolicy {
    /// Set by any manual transition of the context: the autopilot leaves it alone until
    /// resumed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// How often the context is evaluated, in seconds (default 10).
    #[serde(default = "ten")]
    pub interval_secs: u32,
    pub shadow_gate: ShadowGate,
    /// Canary weights in percent, increasing, the last at most 100 (default 1, 5, 25, 50,
    /// 100); after the last the context is promoted to `migrated`.
    #[serde(default = "default_steps")]
    pub steps: Vec<f64>,
    /// How long each step is held, with its checks passing, before the next, in seconds.
    #[serde(default = "default_hold")]
    pub hold_secs: u32,
    #[serde(default)]
    pub checks: CanaryChecks,
    /// The canary weight, in percent, from which the autopilot cuts over (the new service
    /// then owns the writes), once that step has held with its checks passing and the writes
    /// legacy took have reached the new service. Unset: the autopilot never cuts over (a
    /// person does, or the promotion to `migrated` moves the writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover_at: Option<f64>,
}

/// When a context may leave shadow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowGate {
    /// The match rate's lower 95 % confidence bound (Wilson) must reach this (0–1).
    pub min_match_rate: f64,
    /// Over at least this many comparisons…
    pub min_comparisons: u64,
    /// …in this window, in minutes (the shadow results are kept per minute).
    pub window_minutes: u32,
    /// No mismatch signature seen more often than this in the window (default 0: none).
    #[serde(default)]
    pub max_signature_count: u64,
}

/// What each canary step is checked for, new against legacy over the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryChecks {
    /// New error rate ≤ legacy's + this (0–1; default 0.01).
    #[serde(default = "one_percent")]
    pub error_rate_margin: f64,
    /// New p99 ≤ legacy's × this (≥ 1; default 1.5).
    #[serde(default = "one_and_a_half")]
    pub p99_ratio: f64,
    /// Answers legacy gave because the new side failed, per request meant for the new side
    /// (0–1; default 0.05).
    #[serde(default = "five_percent")]
    pub max_fallback_rate: f64,
    /// Requests the new side must have answered in a step before its checks count
    /// (default 20): fewer is "not enough evidence yet", never a pass.
    #[serde(default = "twenty")]
    pub min_requests: u64,
    /// With reverse shadowing on (`shadow.reverse_percent`), the share of the step's reverse
    /// comparisons that must match (0–1; unset: not checked). Needs `min_requests`
    /// comparisons before it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reverse_match_rate: Option<f64>,
}

impl Default for CanaryChecks {
    fn default() -> Self {
        Self {
            error_rate_margin: one_percent(),
            p99_ratio: one_and_a_half(),
            max_fallback_rate: five_percent(),
            min_requests: twenty(),
            min_reverse_match_rate: None,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn ten() -> u32 {
    10
}
fn default_steps() -> Vec<f64> {
    vec![1.0, 5.0, 25.0, 50.0, 100.0]
}
fn default_hold() -> u32 {
    300
}
fn one_percent() -> f64 {
    0.01
}
fn one_and_a_half() -> f64 {
    1.5
}
fn five_percent() -> f64 {
    0.05
}
fn twenty() -> u64 {
    20
}

impl Eq for RolloutPolicy {}

impl RolloutPolicy {
    /// Checks the policy; the error names the field and the fix.
    pub fn check(&self) -> Result<(), (String, String)> {
        let ratio = |field: &str, v: f64| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err((
                    field.to_owned(),
                    format!("{v} is out of range; choose 0 to 1"),
                ))
            }
        };
        if !(1..=3600).contains(&self.interval_secs) {
            return Err((
                "interval_secs".into(),
                format!(
                    "{} is out of range; evaluate every 1 to 3600 seconds",
                    self.interval_secs
                ),
            ));
        }
        let g = &self.shadow_gate;
        ratio("shadow_gate.min_match_rate", g.min_match_rate)?;
        if g.min_comparisons == 0 {
            return Err((
                "shadow_gate.min_comparisons".into(),
                "0 would pass on no evidence; ask for at least 1 comparison (hundreds are usual)"
                    .into(),
            ));
        }
        if g.window_minutes == 0 || g.window_minutes > 10_080 {
            return Err((
                "shadow_gate.window_minutes".into(),
                format!(
                    "{} is out of range; choose 1 to 10080 minutes",
                    g.window_minutes
                ),
            ));
        }
        if u64::from(g.window_minutes) * 60 < u64::from(self.interval_secs) {
            return Err((
                "shadow_gate.window_minutes".into(),
                format!(
                    "a window of {} minutes is shorter than the evaluation interval ({} s); widen the window or evaluate more often",
                    g.window_minutes, self.interval_secs
                ),
            ));
        }
        if self.steps.is_empty() || self.steps.len() > 20 {
            return Err((
                "steps".into(),
                "give 1 to 20 canary steps, e.g. [1, 5, 25, 50, 100]".into(),
            ));
        }
        let mut last = 0.0;
        for s in &self.steps {
            if !s.is_finite() || *s <= last || *s > 100.0 {
                return Err((
                    "steps".into(),
                    format!(
                        "{:?} must increase, each above 0 and at most 100 percent, e.g. [1, 5, 25, 50, 100]",
                        self.steps
                    ),
                ));
            }
            last = *s;
        }
        if let Some(at) = self.cutover_at {
            if !at.is_finite() || at <= 0.0 || at > 100.0 {
                return Err((
                    "cutover_at".into(),
                    format!("{at} is out of range; give a canary weight in percent, above 0 and at most 100 (e.g. 50)"),
                ));
            }
        }
        if self.hold_secs < self.interval_secs {
            return Err((
                "hold_secs".into(),
                format!(
                    "a step held {} s is shorter than the evaluation interval ({} s): it would pass unchecked",
                    self.hold_secs, self.interval_secs
                ),
            ));
        }
        let c = &self.checks;
        ratio("checks.error_rate_margin", c.error_rate_margin)?;
        ratio("checks.max_fallback_rate", c.max_fallback_rate)?;
        if let Some(r) = c.min_reverse_match_rate {
            ratio("checks.min_reverse_match_rate", r)?;
        }
        if !c.p99_ratio.is_finite() || c.p99_ratio < 1.0 || c.p99_ratio > 100.0 {
            return Err((
                "checks.p99_ratio".into(),
                format!("{} is out of range; choose 1 to 100 (1.5: new p99 at most half again legacy's)", c.p99_ratio),
            ));
        }
        Ok(())
    }

    /// A step's weight in basis points.
    pub fn weight_of(step: f64) -> u16 {
        let w = (step * 100.0).round().clamp(1.0, f64::from(FULL_WEIGHT));
        w as u16
    }
}

/// The lower bound of the Wilson score interval for `matched` of `compared` at 95 %.
pub fn wilson_lower(matched: u64, compared: u64) -> f64 {
    if compared == 0 {
        return 0.0;
    }
    let n = compared as f64;
    let p = matched as f64 / n;
    let z = 1.959_963_984_540_054_f64;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

/// The shadow evidence over the gate's window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShadowEvidence {
    pub compared: u64,
    pub matched: u64,
    /// The most frequent mismatch signature and its count.
    pub top_signature: Option<(String, u64)>,
}

/// One side's figures over a canary step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SideFigures {
    pub requests: u64,
    pub errors: u64,
    /// The 99th percentile in ms (a histogram bucket's upper bound); None: no requests, or
    /// over the last bound.
    pub p99_ms: Option<u64>,
}

/// The canary evidence over the current step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CanaryEvidence {
    pub new: SideFigures,
    pub legacy: SideFigures,
    /// Requests meant for the new side that legacy answered.
    pub fallbacks: u64,
    /// How long the current step has been held, in seconds.
    pub held_secs: u64,
    /// Reverse-shadow comparisons over the step (new answered, legacy's copy compared).
    #[serde(default)]
    pub reverse: ShadowEvidence,
    /// The context is cut over already: the new service owns its writes.
    #[serde(default)]
    pub cut_over: bool,
}

/// Whether the last minute's mismatches are a spike against the minutes before it: at least
/// 10 mismatches, at a rate over twice the earlier one plus 5 points.
pub fn is_mismatch_spike(last: (u64, u64), before: (u64, u64)) -> bool {
    let (compared, matched) = last;
    let mismatched = compared.saturating_sub(matched);
    if mismatched < 10 || compared == 0 {
        return false;
    }
    let rate = mismatched as f64 / compared as f64;
    let earlier = if before.0 == 0 {
        0.0
    } else {
        before.0.saturating_sub(before.1) as f64 / before.0 as f64
    };
    rate > earlier * 2.0 + 0.05
}

/// What the autopilot does with a context now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Nothing to do, or not enough evidence: why.
    Hold { why: String },
    /// Shadow gate passed: into canary at the first step.
    StartCanary { weight: u16, why: String },
    /// The step held and passed: the next weight.
    NextStep { weight: u16, why: String },
    /// The step the policy cuts over at held and passed: the new service takes the writes.
    Cutover { why: String },
    /// The last step held and passed: promote to migrated.
    Migrate { why: String },
    /// A check failed: back to legacy.
    Rollback { why: String },
}

fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

/// Decides for a context in `state` at `weight` (basis points).
pub fn decide(
    policy: &RolloutPolicy,
    state: MigrationState,
    weight: u16,
    shadow: &ShadowEvidence,
    canary: &CanaryEvidence,
) -> Decision {
    match state {
        MigrationState::Shadow => {
            let g = &policy.shadow_gate;
            let lower = wilson_lower(shadow.matched, shadow.compared);
            let figures = format!(
                "{} of {} compared matched in {} min (lower 95 % bound {}, gate {}, at least {} comparisons)",
                shadow.matched,
                shadow.compared,
                g.window_minutes,
                pct(lower),
                pct(g.min_match_rate),
                g.min_comparisons
            );
            if shadow.compared < g.min_comparisons {
                return Decision::Hold {
                    why: format!("not enough comparisons yet: {figures}"),
                };
            }
            if let Some((sig, n)) = shadow
                .top_signature
                .as_ref()
                .filter(|(_, n)| *n > g.max_signature_count)
            {
                return Decision::Hold {
                    why: format!(
                        "mismatch signature `{sig}` seen {n} times (at most {} allowed): {figures}",
                        g.max_signature_count
                    ),
                };
            }
            if lower < g.min_match_rate {
                return Decision::Hold {
                    why: format!("match rate too low: {figures}"),
                };
            }
            let first = policy.steps.first().copied().unwrap_or(100.0);
            Decision::StartCanary {
                weight: RolloutPolicy::weight_of(first),
                why: format!("shadow gate passed: {figures}; canary at {first} %"),
            }
        }
        MigrationState::Canary if weight == 0 => {
            let first = policy.steps.first().copied().unwrap_or(100.0);
            Decision::NextStep {
                weight: RolloutPolicy::weight_of(first),
                why: format!("the canary starts at its first step, {first} %"),
            }
        }
        MigrationState::Canary => {
            let c = &policy.checks;
            let (n, l) = (&canary.new, &canary.legacy);
            let rate = |s: &SideFigures| {
                if s.requests == 0 {
                    0.0
                } else {
                    s.errors as f64 / s.requests as f64
                }
            };
            let meant = n.requests + canary.fallbacks;
            let fallback_rate = if meant == 0 {
                0.0
            } else {
                canary.fallbacks as f64 / meant as f64
            };
            let figures = format!(
                "new {} requests, {} errors, p99 {}; legacy {} requests, {} errors, p99 {}; {} fallbacks; held {} s",
                n.requests,
                pct(rate(n)),
                n.p99_ms.map_or("—".into(), |v| format!("≤ {v} ms")),
                l.requests,
                pct(rate(l)),
                l.p99_ms.map_or("—".into(), |v| format!("≤ {v} ms")),
                canary.fallbacks,
                canary.held_secs
            );
            // Failures count as soon as they are seen; passes need enough evidence.
            if meant >= c.min_requests.clamp(1, 10) && fallback_rate > c.max_fallback_rate {
                return Decision::Rollback {
                    why: format!(
                        "fallback rate {} over {}: {figures}",
                        pct(fallback_rate),
                        pct(c.max_fallback_rate)
                    ),
                };
            }
            if n.requests >= c.min_requests.clamp(1, 10) && rate(n) > rate(l) + c.error_rate_margin
            {
                return Decision::Rollback {
                    why: format!(
                        "new error rate {} over legacy's {} + {}: {figures}",
                        pct(rate(n)),
                        pct(rate(l)),
                        pct(c.error_rate_margin)
                    ),
                };
            }
            if let Some(min) = c.min_reverse_match_rate {
                let r = &canary.reverse;
                if r.compared >= c.min_requests.clamp(1, 10)
                    && (r.matched as f64 / r.compared as f64) < min
                {
                    return Decision::Rollback {
                        why: format!(
                            "reverse-shadow match rate {} under {}: {} of {} matched; {figures}",
                            pct(r.matched as f64 / r.compared as f64),
                            pct(min),
                            r.matched,
                            r.compared
                        ),
                    };
                }
                if r.compared < c.min_requests {
                    return Decision::Hold {
                        why: format!(
                            "not enough reverse-shadow comparisons yet ({} of {}): {figures}",
                            r.compared, c.min_requests
                        ),
                    };
                }
            }
            // Latency is compared only when both sides answered enough to have a p99.
            if n.requests >= c.min_requests && l.requests >= c.min_requests {
                // p99s are histogram buckets: the new side is over only when even the low end
                // of its bucket is (≤ 2 ms against ≤ 1 ms proves nothing).
                let low_end = |upper: u64| {
                    crate::rows::LATENCY_BOUNDS_MS
                        .iter()
                        .rev()
                        .find(|b| **b < upper)
                        .copied()
                        .unwrap_or(0)
                };
                let p99_over = match (n.p99_ms, l.p99_ms) {
                    (None, Some(_)) => true,
                    (Some(new), Some(old)) => low_end(new) as f64 > old as f64 * c.p99_ratio,
                    _ => false,
                };
                if p99_over {
                    return Decision::Rollback {
                        why: format!("new p99 over legacy's × {}: {figures}", c.p99_ratio),
                    };
                }
            }
            if n.requests < c.min_requests {
                return Decision::Hold {
                    why: format!("not enough requests on the new side yet: {figures}"),
                };
            }
            if canary.held_secs < u64::from(policy.hold_secs) {
                return Decision::Hold {
                    why: format!(
                        "checks pass; holding the step for {} s: {figures}",
                        policy.hold_secs
                    ),
                };
            }
            if let Some(at) = policy.cutover_at {
                if !canary.cut_over && weight >= RolloutPolicy::weight_of(at) {
                    return Decision::Cutover {
                        why: format!(
                            "step {:.2} % held {} s with checks passing, at or past the cutover point {at} %: {figures}; the new service takes the writes",
                            f64::from(weight) / 100.0,
                            canary.held_secs,
                        ),
                    };
                }
            }
            match policy
                .steps
                .iter()
                .map(|s| RolloutPolicy::weight_of(*s))
                .find(|w| *w > weight)
            {
                Some(next) => Decision::NextStep {
                    weight: next,
                    why: format!(
                        "step {:.2} % held {} s with checks passing: {figures}; next {:.2} %",
                        f64::from(weight) / 100.0,
                        canary.held_secs,
                        f64::from(next) / 100.0
                    ),
                },
                None => Decision::Migrate {
                    why: format!(
                        "the last step held {} s with checks passing: {figures}",
                        canary.held_secs
                    ),
                },
            }
        }
        other => Decision::Hold {
            why: format!("nothing to do in {}", other.as_str()),
        },
    }
}

#[cfg(test)]
mod tests;
