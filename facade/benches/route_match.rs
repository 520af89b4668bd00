//! Route lookup against catalogs of 100, 1,000 and 10,000 routes over 100 contexts: one hit and
//! one miss per size. The figure to watch is that the time stays flat as the table grows.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderValue, Method};
use strangler_catalog::{
    Catalog, Context, HeaderMatch, MigrationState, Route, RouteSpec, Service, ValueMatch,
};
use strangler_facade::RouteTable;

const CONTEXTS: usize = 100;

/// Route `k` of context `n`, in shapes a real catalog has: collections, items, nested items,
/// some per method, some behind a header.
fn route_spec(n: usize, k: usize) -> RouteSpec {
    let base = RouteSpec {
        methods: vec![],
        path: String::new(),
        host: None,
        headers: vec![],
        query: vec![],
        version: None,
        reads: false,
        shadow: Default::default(),
    };
    // Shapes rotate with the context too, so that a catalog of one route per context has them all.
    let group = k / 4;
    match (n + k) % 4 {
        0 => RouteSpec {
            path: format!("/ctx{n}/items{group}"),
            methods: vec!["GET".into(), "POST".into()],
            ..base
        },
        1 => RouteSpec {
            path: format!("/ctx{n}/items{group}/{{id}}"),
            ..base
        },
        2 => RouteSpec {
            path: format!("/ctx{n}/items{group}/{{id}}/lines/{{line}}"),
            methods: vec!["GET".into()],
            ..base
        },
        _ => RouteSpec {
            path: format!("/ctx{n}/items{group}/{{id}}/lines/{{line}}"),
            methods: vec!["PUT".into()],
            headers: vec![HeaderMatch {
                name: "X-Tenant".into(),
                value: ValueMatch::Exact("acme".into()),
            }],
            ..base
        },
    }
}

/// A request path and method that the route `spec` matches.
fn request_for(spec: &RouteSpec) -> (Method, String) {
    let path = spec.path.replace("{id}", "123").replace("{line}", "4");
    let method = match spec.methods.first().map(String::as_str) {
        Some("PUT") => Method::PUT,
        Some("POST") => Method::POST,
        _ => Method::GET,
    };
    (method, path)
}

fn catalog(routes: usize) -> Catalog {
    let mut c = Catalog::default();
    c.services.insert(
        "svc".into(),
        Service {
            name: "svc".into(),
            urls: vec!["http://127.0.0.1:9".into()],
            policy: Default::default(),
        },
    );
    for n in 0..CONTEXTS {
        let name = format!("ctx{n}");
        c.contexts.insert(
            name.clone(),
            Context {
                cut_over: false,
                owner_move: None,
                name: name.clone(),
                target: "svc".into(),
                state: MigrationState::Canary,
                weight: 2500,
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
        for k in 0..routes / CONTEXTS {
            let spec = route_spec(n, k);
            let id = spec.id();
            c.routes.insert(
                id.clone(),
                Route {
                    id,
                    context: name.clone(),
                    spec,
                },
            );
        }
    }
    c
}

fn lookups(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", HeaderValue::from_static("acme"));
    headers.insert("accept", HeaderValue::from_static("application/json"));
    let mut group = c.benchmark_group("route_match");
    for size in [100, 1_000, 10_000] {
        let Ok(table) = RouteTable::compile(&catalog(size)) else {
            panic!("the benchmark catalog compiles");
        };
        // The last route of a middle context.
        let (method, hit) = request_for(&route_spec(57, size / CONTEXTS - 1));
        assert!(table.lookup(&method, None, &hit, None, &headers).is_some());
        let miss = "/ctx57/nothing/123/lines/4";
        assert!(table.lookup(&method, None, miss, None, &headers).is_none());
        for (name, path) in [("hit", hit.as_str()), ("miss", miss)] {
            group.bench_with_input(BenchmarkId::new(name, size), &path, |b, path| {
                b.iter(|| {
                    table
                        .lookup(
                            black_box(&method),
                            black_box(Some("shop.example.com")),
                            black_box(path),
                            black_box(Some("page=2")),
                            black_box(&headers),
                        )
                        .map(|m| m.route_id.len())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
