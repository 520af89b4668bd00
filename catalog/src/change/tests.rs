use super::*;
use crate::model::StickyKey;
use crate::state::Side;
use crate::validate::SizeOnly;

fn base() -> Catalog {
    let mut c = Catalog::default();
    for change in [
        Change::PutService(Service {
            name: "orders-svc".into(),
            urls: vec!["http://127.0.0.1:9001".into()],
            policy: Default::default(),
        }),
        Change::PutContext(Context {
            cut_over: false,
            owner_move: None,
            name: "orders".into(),
            target: "orders-svc".into(),
            state: MigrationState::Legacy,
            weight: 0,
            sticky: Some(StickyKey::Cookie("sid".into())),
            description: String::new(),
            fallback: true,
            shadow: Default::default(),
            translator: None,
            objective: None,
            rollout: None,
            fallback_after_ms: None,
        }),
    ] {
        change.apply(&mut c, &SizeOnly).unwrap();
    }
    c
}

fn spec(path: &str) -> RouteSpec {
    RouteSpec {
        methods: vec![],
        path: path.into(),
        host: None,
        headers: vec![],
        query: vec![],
        version: None,
        reads: false,
        shadow: Default::default(),
    }
}

#[test]
fn promotion_walks_the_states_and_rollback_returns() {
    let mut c = base();
    let promote = Change::Transition {
        context: "orders".into(),
        action: Action::Promote,
    };
    promote.apply(&mut c, &SizeOnly).unwrap();
    assert_eq!(c.contexts["orders"].state, MigrationState::Shadow);
    let weight = Change::Transition {
        context: "orders".into(),
        action: Action::SetWeight { weight: 500 },
    };
    let err = weight.apply(&mut c.clone(), &SizeOnly).unwrap_err();
    assert!(
        err.to_string()
            .contains("promote the context to canary first"),
        "{err}"
    );
    promote.apply(&mut c, &SizeOnly).unwrap();
    weight.apply(&mut c, &SizeOnly).unwrap();
    assert_eq!(c.contexts["orders"].weight, 500);
    let too_much = Change::Transition {
        context: "orders".into(),
        action: Action::SetWeight { weight: 10_001 },
    };
    assert!(too_much
        .apply(&mut c.clone(), &SizeOnly)
        .unwrap_err()
        .to_string()
        .contains("0-10000"));
    promote.apply(&mut c, &SizeOnly).unwrap();
    promote.apply(&mut c, &SizeOnly).unwrap();
    assert_eq!(c.contexts["orders"].state, MigrationState::Retired);
    assert!(promote.apply(&mut c.clone(), &SizeOnly).is_err());
    Change::Transition {
        context: "orders".into(),
        action: Action::Rollback,
    }
    .apply(&mut c, &SizeOnly)
    .unwrap();
    assert_eq!(c.contexts["orders"].state, MigrationState::Legacy);
    assert_eq!(c.contexts["orders"].weight, 0);
}

#[test]
fn unknown_references_are_refused_with_the_field() {
    let mut c = base();
    let err = Change::AddRoute {
        context: "nope".into(),
        spec: spec("/x"),
    }
    .apply(&mut c, &SizeOnly)
    .unwrap_err();
    assert!(err.to_string().contains("unknown context `nope`"), "{err}");
    let mut ctx = c.contexts["orders"].clone();
    ctx.target = "ghost".into();
    let err = Change::PutContext(ctx)
        .apply(&mut c.clone(), &SizeOnly)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("contexts.orders.target: unknown service `ghost`"),
        "{err}"
    );
    let err = Change::DeleteService {
        name: "orders-svc".into(),
    }
    .apply(&mut c.clone(), &SizeOnly)
    .unwrap_err();
    assert!(
        err.to_string().contains("still used by context `orders`"),
        "{err}"
    );
}

#[test]
fn bad_names_and_urls_are_refused() {
    let mut c = base();
    let err = Change::PutService(Service {
        name: "Bad Name".into(),
        urls: vec!["http://x:1".into()],
        policy: Default::default(),
    })
    .apply(&mut c, &SizeOnly)
    .unwrap_err();
    assert!(err.to_string().contains("a-z, 0-9"), "{err}");
    let err = Change::PutService(Service {
        name: "ok".into(),
        urls: vec!["ftp://x".into()],
        policy: Default::default(),
    })
    .apply(&mut base(), &SizeOnly)
    .unwrap_err();
    assert!(err.to_string().contains("services.ok.urls[0]"), "{err}");
}

#[test]
fn overlapping_routes_of_two_contexts_name_both() {
    let mut c = base();
    let mut other = c.contexts["orders"].clone();
    other.name = "billing".into();
    Change::PutContext(other).apply(&mut c, &SizeOnly).unwrap();
    Change::AddRoute {
        context: "orders".into(),
        spec: spec("/orders/{id}"),
    }
    .apply(&mut c, &SizeOnly)
    .unwrap();
    let err = Change::AddRoute {
        context: "billing".into(),
        spec: spec("/orders/{id}"),
    }
    .apply(&mut c.clone(), &SizeOnly)
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`orders`") && err.contains("`billing`"),
        "{err}"
    );
    // A differently named parameter is still the same shape.
    let err = Change::AddRoute {
        context: "billing".into(),
        spec: spec("/orders/{order}"),
    }
    .apply(&mut c.clone(), &SizeOnly)
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`orders`") && err.contains("`billing`"),
        "{err}"
    );
    // The same route twice is refused as a duplicate.
    let err = Change::AddRoute {
        context: "orders".into(),
        spec: spec("/orders/{id}"),
    }
    .apply(&mut c, &SizeOnly)
    .unwrap_err();
    assert!(matches!(err, ChangeError::Exists { .. }));
}

#[test]
fn deleting_a_context_takes_its_routes() {
    let mut c = base();
    Change::AddRoute {
        context: "orders".into(),
        spec: spec("/orders"),
    }
    .apply(&mut c, &SizeOnly)
    .unwrap();
    Change::DeleteContext {
        name: "orders".into(),
    }
    .apply(&mut c, &SizeOnly)
    .unwrap();
    assert!(c.routes.is_empty());
}

#[test]
fn replacing_a_route_gives_it_the_new_spec_and_id() {
    let mut c = base();
    Change::AddRoute {
        context: "orders".into(),
        spec: spec("/orders"),
    }
    .apply(&mut c, &SizeOnly)
    .unwrap();
    let old = spec("/orders").id();
    let mut narrower = spec("/orders");
    narrower.methods = vec!["GET".into()];
    Change::ReplaceRoute {
        id: old.clone(),
        context: "orders".into(),
        spec: narrower.clone(),
    }
    .apply(&mut c, &SizeOnly)
    .unwrap();
    assert!(!c.routes.contains_key(&old));
    assert_eq!(c.routes[&narrower.id()].spec, narrower);
    let err = Change::ReplaceRoute {
        id: old,
        context: "orders".into(),
        spec: spec("/x"),
    }
    .apply(&mut c, &SizeOnly)
    .unwrap_err();
    assert!(matches!(err, ChangeError::NotFound { .. }));
}

#[test]
fn pausing_shadowing_keeps_the_sampling_share() {
    let mut c = base();
    c.contexts.get_mut("orders").unwrap().shadow.sample_percent = Some(30);
    let pause = |paused| Change::PauseShadow {
        context: "orders".into(),
        paused,
    };
    pause(true).apply(&mut c, &SizeOnly).unwrap();
    assert!(c.contexts["orders"].shadow.paused);
    assert_eq!(pause(true).action_name(), "pause-shadow");
    pause(false).apply(&mut c, &SizeOnly).unwrap();
    let shadow = &c.contexts["orders"].shadow;
    assert!(!shadow.paused);
    assert_eq!(
        shadow.sample_percent,
        Some(30),
        "the share survives a pause"
    );
    let err = Change::PauseShadow {
        context: "nope".into(),
        paused: true,
    }
    .apply(&mut c.clone(), &SizeOnly)
    .unwrap_err();
    assert!(matches!(err, ChangeError::NotFound { .. }));
}

#[test]
fn accepting_a_noise_rule_adds_it_once_and_only_if_it_is_a_path() {
    let mut c = base();
    let accept = |path: &str| Change::AcceptNoise {
        context: "orders".into(),
        path: path.into(),
    };
    accept("$.updatedAt").apply(&mut c, &SizeOnly).unwrap();
    assert_eq!(c.contexts["orders"].shadow.ignore, vec!["$.updatedAt"]);
    let again = accept("$.updatedAt").apply(&mut c.clone(), &SizeOnly);
    assert!(
        matches!(again, Err(ChangeError::Exists { .. })),
        "{again:?}"
    );
    let bad = accept("updatedAt").apply(&mut c.clone(), &SizeOnly);
    assert!(matches!(bad, Err(ChangeError::Invalid(_))), "{bad:?}");
}

#[test]
fn the_write_owner_is_legacy_until_cutover_or_migration_and_rollback_returns_it() {
    let mut c = base();
    let go = |c: &mut Catalog, action: Action| {
        Change::Transition {
            context: "orders".into(),
            action,
        }
        .apply(c, &SizeOnly)
    };
    let owner = |c: &Catalog| c.contexts["orders"].owner();
    assert_eq!(owner(&c), Side::Legacy);
    let early = go(&mut c.clone(), Action::Cutover).unwrap_err().to_string();
    assert!(
        early.contains("promote the context to canary first"),
        "{early}"
    );
    go(&mut c, Action::Promote).unwrap();
    go(&mut c, Action::Promote).unwrap();
    go(&mut c, Action::SetWeight { weight: 10_000 }).unwrap();
    assert_eq!(
        owner(&c),
        Side::Legacy,
        "a full canary does not move writes"
    );
    // The cutover is a change of its own, audited as such, with an event naming the owner.
    let cutover = Change::Transition {
        context: "orders".into(),
        action: Action::Cutover,
    };
    let before = c.clone();
    cutover.apply(&mut c, &SizeOnly).unwrap();
    assert_eq!(owner(&c), Side::New);
    assert_eq!(cutover.action_name(), "cutover");
    let meta = ChangeMeta {
        force: false,
        actor: "operator".into(),
        reason: "the outbox is drained".into(),
    };
    let events = cutover.events(&before, &c, &meta);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data["owner_from"], "legacy");
    assert_eq!(events[0].data["owner"], "new");
    let twice = go(&mut c.clone(), Action::Cutover).unwrap_err().to_string();
    assert!(twice.contains("already cut over"), "{twice}");
    // The catalog keeps it: a stored document says so.
    let json = serde_json::to_value(&c.contexts["orders"]).unwrap();
    assert_eq!(json["cut_over"], true);
    assert_eq!(
        serde_json::to_value(c.contexts["orders"].view()).unwrap()["owner"],
        "new"
    );
    go(&mut c, Action::Promote).unwrap();
    assert_eq!(owner(&c), Side::New, "migrated: new owns the writes");
    let done = go(&mut c.clone(), Action::Cutover).unwrap_err().to_string();
    assert!(done.contains("already owns"), "{done}");
    go(&mut c, Action::Rollback).unwrap();
    assert_eq!(owner(&c), Side::Legacy);
    assert!(!c.contexts["orders"].cut_over);
    // Back in canary after a rollback, writes are legacy's again until the next cutover.
    go(&mut c, Action::Promote).unwrap();
    go(&mut c, Action::Promote).unwrap();
    assert_eq!(owner(&c), Side::Legacy);
}

#[test]
fn a_mirror_id_rule_is_checked_with_its_field_and_fix() {
    let with = |from: &str, to: &str| {
        let mut s = spec("/orders");
        s.methods = vec!["POST".into()];
        s.shadow.id = Some(crate::MirrorId {
            from: from.into(),
            to: to.into(),
        });
        Change::AddRoute {
            context: "orders".into(),
            spec: s,
        }
        .apply(&mut base(), &SizeOnly)
    };
    assert!(with("location", "$.id").is_ok());
    assert!(with("$.order.id", "PUT /orders/{id}").is_ok());
    for (from, to, field, says) in [
        ("header", "$.id", "shadow.id.from", "neither `location`"),
        ("$.items[*].id", "$.id", "shadow.id.from", "object keys"),
        ("location", "$", "shadow.id.to", "neither a JSON path"),
        (
            "location",
            "put /orders/{id}",
            "shadow.id.to",
            "PUT /orders/{id}",
        ),
        ("location", "PUT /orders", "shadow.id.to", "one `{id}`"),
    ] {
        let err = with(from, to).unwrap_err().to_string();
        assert!(
            err.contains(field) && err.contains(says),
            "{from} {to}: {err}"
        );
    }
}

#[test]
fn an_id_map_rule_names_a_parameter_of_its_route_and_key_paths() {
    let with = |path: &str, resource: &str, param: Option<&str>, fields: &[&str]| {
        let mut s = spec(path);
        s.shadow.ids = Some(crate::IdRefs {
            resource: resource.into(),
            param: param.map(Into::into),
            fields: fields.iter().map(|f| (*f).into()).collect(),
        });
        Change::AddRoute {
            context: "orders".into(),
            spec: s,
        }
        .apply(&mut base(), &SizeOnly)
    };
    assert!(with("/orders/{id}", "orders", Some("id"), &["$.id"]).is_ok());
    assert!(with("/orders", "orders", None, &["$.order.id"]).is_ok());
    for (path, resource, param, fields, says) in [
        (
            "/orders/{id}",
            "orders",
            Some("orderId"),
            &[][..],
            "no parameter `{orderId}`",
        ),
        ("/orders/{id}", "or ders", Some("id"), &[], "is not a name"),
        ("/orders/{id}", "", Some("id"), &[], "is not a name"),
        ("/orders", "orders", None, &["$.items[*].id"], "object keys"),
        ("/orders", "orders", None, &[], "name the path parameter"),
    ] {
        let err = with(path, resource, param, fields).unwrap_err().to_string();
        assert!(
            err.contains("shadow.ids") && err.contains(says),
            "{path} {resource}: {err}"
        );
    }
    // The segment that holds the id, after the leading `/`.
    let pattern = crate::pattern::PathPattern::parse("/api/orders/{id}/lines").unwrap();
    let refs = crate::IdRefs {
        resource: "orders".into(),
        param: Some("id".into()),
        fields: vec![],
    };
    assert_eq!(refs.check(&pattern), Ok(Some(2)));
}

/// A subscriber to state changes sees every move, the autopilot's included; the autopilot's
/// also arrive under a type that says which move it was.
#[test]
fn every_move_is_a_state_change_and_the_autopilots_say_which_move() {
    let mut c = base();
    Change::Transition {
        context: "orders".into(),
        action: Action::Promote,
    }
    .apply(&mut c, &SizeOnly)
    .unwrap();
    let meta = ChangeMeta {
        force: false,
        actor: "autopilot".into(),
        reason: "gate".into(),
    };
    let kinds = |change: &Change, c: &mut Catalog| {
        let before = c.clone();
        change.apply(c, &SizeOnly).unwrap();
        let events = change.events(&before, c, &meta);
        assert!(events.iter().all(|e| e.data["actor"] == "autopilot"));
        events.iter().map(|e| e.kind).collect::<Vec<_>>()
    };
    let by_autopilot = |action| Change::Autopilot {
        context: "orders".into(),
        action,
    };
    assert_eq!(
        kinds(&by_autopilot(Action::Promote), &mut c),
        [
            "io.strangler.context.state.changed",
            "io.strangler.autopilot.gate.passed"
        ]
    );
    assert_eq!(
        kinds(&by_autopilot(Action::SetWeight { weight: 2_500 }), &mut c),
        [
            "io.strangler.context.state.changed",
            "io.strangler.autopilot.step"
        ]
    );
    assert_eq!(
        kinds(&by_autopilot(Action::Rollback), &mut c),
        [
            "io.strangler.context.state.changed",
            "io.strangler.autopilot.rollback"
        ]
    );
    let by_hand = Change::Transition {
        context: "orders".into(),
        action: Action::Promote,
    };
    assert_eq!(
        kinds(&by_hand, &mut c),
        ["io.strangler.context.state.changed"]
    );
}
