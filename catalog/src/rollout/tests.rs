use super::*;

fn policy() -> RolloutPolicy {
    serde_json::from_value(serde_json::json!({
        "interval_secs": 1,
        "shadow_gate": { "min_match_rate": 0.95, "min_comparisons": 100, "window_minutes": 5 },
        "steps": [1, 5, 25, 50, 100],
        "hold_secs": 2
    }))
    .unwrap()
}

fn side(requests: u64, errors: u64, p99_ms: u64) -> SideFigures {
    SideFigures {
        requests,
        errors,
        p99_ms: Some(p99_ms),
    }
}

#[test]
fn the_wilson_bound_is_below_the_ratio_and_tightens_with_evidence() {
    assert_eq!(wilson_lower(0, 0), 0.0);
    let small = wilson_lower(10, 10);
    let large = wilson_lower(1000, 1000);
    assert!(small < 0.75 && small > 0.65, "{small}");
    assert!(large > 0.996, "{large}");
    let half = wilson_lower(50, 100);
    assert!((0.40..0.41).contains(&half), "{half}");
}

#[test]
fn defaults_and_bad_policies() {
    let p: RolloutPolicy = serde_json::from_value(serde_json::json!({
        "shadow_gate": { "min_match_rate": 0.99, "min_comparisons": 500, "window_minutes": 30 }
    }))
    .unwrap();
    assert_eq!(p.steps, [1.0, 5.0, 25.0, 50.0, 100.0]);
    assert_eq!((p.interval_secs, p.hold_secs), (10, 300));
    assert!(p.check().is_ok());
    let bad = |edit: &dyn Fn(&mut RolloutPolicy), field: &str| {
        let mut p = policy();
        edit(&mut p);
        let (f, m) = p.check().unwrap_err();
        assert_eq!(f, field, "{m}");
    };
    bad(&|p| p.steps = vec![5.0, 1.0], "steps");
    bad(&|p| p.steps = vec![1.0, 1.0], "steps");
    bad(&|p| p.steps = vec![50.0, 150.0], "steps");
    bad(&|p| p.steps = vec![], "steps");
    bad(
        &|p| p.shadow_gate.min_match_rate = 1.5,
        "shadow_gate.min_match_rate",
    );
    bad(
        &|p| p.shadow_gate.min_comparisons = 0,
        "shadow_gate.min_comparisons",
    );
    bad(
        &|p| {
            p.interval_secs = 600;
            p.hold_secs = 600;
        },
        "shadow_gate.window_minutes",
    );
    bad(&|p| p.hold_secs = 0, "hold_secs");
    bad(&|p| p.checks.p99_ratio = 0.5, "checks.p99_ratio");
    bad(
        &|p| p.checks.max_fallback_rate = -0.1,
        "checks.max_fallback_rate",
    );
    bad(&|p| p.interval_secs = 0, "interval_secs");
}

#[test]
fn shadow_leaves_only_on_enough_evidence_and_no_open_signature() {
    let p = policy();
    let decide_shadow = |compared, matched, top: Option<(&str, u64)>| {
        decide(
            &p,
            MigrationState::Shadow,
            0,
            &ShadowEvidence {
                compared,
                matched,
                top_signature: top.map(|(s, n)| (s.to_owned(), n)),
            },
            &CanaryEvidence::default(),
        )
    };
    assert!(
        matches!(decide_shadow(50, 50, None), Decision::Hold { .. }),
        "too few"
    );
    // 100 % of 100 has a lower bound of 96.3 %: passes 95 %.
    assert_eq!(
        std::mem::discriminant(&decide_shadow(100, 100, None)),
        std::mem::discriminant(&Decision::StartCanary {
            weight: 0,
            why: String::new()
        })
    );
    if let Decision::StartCanary { weight, why } = decide_shadow(100, 100, None) {
        assert_eq!(weight, 100, "1 % is 100 basis points");
        assert!(why.contains("100 of 100"), "{why}");
    }
    // 96 of 100 is over 95 % as a ratio, but its lower bound (90.2 %) is not.
    assert!(
        matches!(decide_shadow(100, 96, None), Decision::Hold { why } if why.contains("match rate too low"))
    );
    // A single open signature keeps it in shadow, whatever the rate.
    assert!(matches!(
        decide_shadow(10_000, 9_999, Some(("value $.total", 1))),
        Decision::Hold { why } if why.contains("value $.total")
    ));
}

#[test]
fn a_canary_steps_up_after_its_hold_and_rolls_back_on_a_failed_check() {
    let p = policy();
    let canary = |weight, new: SideFigures, legacy: SideFigures, fallbacks, held_secs| {
        decide(
            &p,
            MigrationState::Canary,
            weight,
            &ShadowEvidence::default(),
            &CanaryEvidence {
                new,
                legacy,
                fallbacks,
                held_secs,
                reverse: ShadowEvidence::default(),
                cut_over: false,
            },
        )
    };
    let good = || side(100, 0, 20);
    assert!(
        matches!(canary(100, good(), good(), 0, 1), Decision::Hold { why } if why.contains("holding"))
    );
    assert!(matches!(
        canary(100, good(), good(), 0, 2),
        Decision::NextStep { weight: 500, .. }
    ));
    assert!(matches!(
        canary(2500, good(), good(), 0, 3),
        Decision::NextStep { weight: 5000, .. }
    ));
    // At 100 % legacy answers nothing: its figures do not count against the new side.
    let none = SideFigures::default();
    assert!(matches!(
        canary(10_000, good(), none.clone(), 0, 3),
        Decision::Migrate { .. }
    ));
    assert!(matches!(
        canary(10_000, good(), side(3, 0, 1), 0, 3),
        Decision::Migrate { .. }
    ));
    // Not enough requests on the new side: hold, never pass.
    assert!(
        matches!(canary(100, side(5, 0, 20), good(), 0, 60), Decision::Hold { why } if why.contains("not enough"))
    );
    // Errors: 5 % on the new side against 0 % on legacy, margin 1 %.
    assert!(
        matches!(canary(2500, side(100, 5, 20), good(), 0, 0), Decision::Rollback { why } if why.contains("error rate"))
    );
    // Buckets: ≤ 2 ms against ≤ 1 ms is not evidence of being slower; ≤ 50 ms against ≤ 20 ms
    // is not over 1.5 × either (its bucket starts at 20), ≤ 100 ms is.
    assert!(matches!(
        canary(2500, side(100, 0, 2), side(100, 0, 1), 0, 3),
        Decision::NextStep { .. }
    ));
    assert!(matches!(
        canary(2500, side(100, 0, 50), good(), 0, 3),
        Decision::NextStep { .. }
    ));
    // p99 of 100 ms against legacy's 20 ms × 1.5.
    assert!(
        matches!(canary(2500, side(100, 0, 100), good(), 0, 0), Decision::Rollback { why } if why.contains("p99"))
    );
    // Fallbacks: 10 of 110 meant for the new side.
    assert!(
        matches!(canary(2500, good(), good(), 10, 0), Decision::Rollback { why } if why.contains("fallback"))
    );
    // Other states: nothing to do.
    assert!(matches!(
        decide(
            &p,
            MigrationState::Migrated,
            0,
            &ShadowEvidence::default(),
            &CanaryEvidence::default()
        ),
        Decision::Hold { .. }
    ));
}

#[test]
fn the_reverse_shadow_match_rate_is_checked_when_asked_for() {
    let mut p = policy();
    p.checks.min_reverse_match_rate = Some(0.9);
    assert!(p.check().is_ok());
    let decide_with = |compared, matched| {
        decide(
            &p,
            MigrationState::Canary,
            2500,
            &ShadowEvidence::default(),
            &CanaryEvidence {
                new: side(100, 0, 20),
                legacy: side(100, 0, 20),
                fallbacks: 0,
                held_secs: 60,
                reverse: ShadowEvidence {
                    compared,
                    matched,
                    top_signature: None,
                },
                cut_over: false,
            },
        )
    };
    assert!(
        matches!(decide_with(50, 40), Decision::Rollback { why } if why.contains("reverse-shadow"))
    );
    assert!(matches!(decide_with(5, 5), Decision::Hold { why } if why.contains("reverse-shadow")));
    assert!(matches!(decide_with(50, 50), Decision::NextStep { .. }));
    p.checks.min_reverse_match_rate = Some(2.0);
    assert_eq!(p.check().unwrap_err().0, "checks.min_reverse_match_rate");
}

#[test]
fn mismatch_spikes() {
    assert!(
        !is_mismatch_spike((100, 95), (400, 380)),
        "5 mismatches: too few to call"
    );
    assert!(is_mismatch_spike((100, 70), (400, 396)), "30 % against 1 %");
    assert!(
        !is_mismatch_spike((100, 70), (400, 280)),
        "as bad as before: not a spike"
    );
    assert!(is_mismatch_spike((20, 5), (0, 0)), "from nothing");
}

#[test]
fn a_policy_with_a_cutover_point_cuts_over_there_once_then_steps_on() {
    let mut p = policy();
    p.cutover_at = Some(25.0);
    assert!(p.check().is_ok());
    let good = || side(100, 0, 20);
    let at = |weight, cut_over| {
        decide(
            &p,
            MigrationState::Canary,
            weight,
            &ShadowEvidence::default(),
            &CanaryEvidence {
                new: good(),
                legacy: good(),
                fallbacks: 0,
                held_secs: 3,
                reverse: ShadowEvidence::default(),
                cut_over,
            },
        )
    };
    // Before the point: steps as usual.
    assert!(matches!(
        at(500, false),
        Decision::NextStep { weight: 2500, .. }
    ));
    // At it, held and passing: the cutover, before the next step.
    assert!(matches!(at(2500, false), Decision::Cutover { why } if why.contains("25 %")));
    // Once cut over: on to the next step, and to migrated at the end.
    assert!(matches!(
        at(2500, true),
        Decision::NextStep { weight: 5000, .. }
    ));
    assert!(matches!(at(10_000, true), Decision::Migrate { .. }));
    // A cutover point out of range is refused with the field.
    p.cutover_at = Some(0.0);
    assert_eq!(p.check().unwrap_err().0, "cutover_at");
}
