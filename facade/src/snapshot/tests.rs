use http::{HeaderMap, Method};
use strangler_catalog::{Context, MigrationState, Route, RouteSpec};
use strangler_services::Origin;

use super::*;

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    for (ctx, port, paths) in [
        ("billing", 9001, &["/invoices/{id}", "/invoices"][..]),
        (
            "orders",
            9002,
            &["/orders/{id}", "/orders/{id}/lines", "/orders"],
        ),
        ("quiet", 9003, &[]),
    ] {
        let svc = format!("{ctx}-svc");
        c.services.insert(
            svc.clone(),
            Service {
                name: svc.clone(),
                urls: vec![format!("http://127.0.0.1:{port}")],
                policy: Default::default(),
            },
        );
        c.contexts.insert(
            ctx.into(),
            Context {
                cut_over: false,
                owner_move: None,
                name: ctx.into(),
                target: svc,
                state: MigrationState::Shadow,
                weight: 0,
                sticky: None,
                description: String::new(),
                fallback: true,
                shadow: Default::default(),
                translator: None,
                objective: None,
                rollout: None,
                fallback_after_ms: None,
            },
        );
        for path in paths {
            let spec = RouteSpec {
                methods: vec![],
                path: (*path).into(),
                host: None,
                headers: vec![],
                query: vec![],
                version: None,
                reads: false,
                shadow: Default::default(),
            };
            let id = spec.id();
            c.routes.insert(
                id.clone(),
                Route {
                    id,
                    context: ctx.into(),
                    spec,
                },
            );
        }
    }
    c
}

/// A matched route leads by index to its own context's and route's compiled parts.
#[tokio::test]
async fn a_match_reaches_its_compiled_context_and_route_by_index() {
    let catalog = catalog();
    let template = UpstreamConfig::new(Origin::parse("http://127.0.0.1:9").unwrap());
    let snapshot = Snapshot::compile(
        &catalog,
        &Snapshot::empty(),
        &template,
        None,
        &Registry::new(),
        &Traffic::default(),
        false,
    )
    .unwrap();
    assert_eq!(snapshot.contexts.len(), 3);
    for (path, context) in [
        ("/invoices/7", "billing"),
        ("/invoices", "billing"),
        ("/orders/7", "orders"),
        ("/orders/7/lines", "orders"),
        ("/orders", "orders"),
    ] {
        let m = snapshot
            .routes
            .lookup(&Method::GET, None, path, None, &HeaderMap::new())
            .unwrap();
        let ctx = &snapshot.contexts[m.context.index];
        assert_eq!(&*ctx.entry.name, context, "{path}");
        assert_eq!(&*snapshot.route_extras[m.rank].id, m.route_id, "{path}");
        let cluster = ctx.cluster.as_ref().unwrap();
        assert_eq!(cluster.name(), format!("{context}-svc"), "{path}");
    }
    assert_eq!(&*snapshot.context("quiet").unwrap().entry.name, "quiet");
}
