use super::*;
use crate::model::{Catalog, Context, HeaderMatch, QueryMatch, Route, Service};
use crate::state::MigrationState;

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

fn methods(path: &str, m: &[&str]) -> RouteSpec {
    RouteSpec {
        methods: m.iter().map(|m| (*m).to_owned()).collect(),
        ..spec(path)
    }
}

fn host(path: &str, h: &str) -> RouteSpec {
    RouteSpec {
        host: Some(h.into()),
        ..spec(path)
    }
}

fn header(path: &str, name: &str, value: ValueMatch) -> RouteSpec {
    RouteSpec {
        headers: vec![HeaderMatch {
            name: name.into(),
            value,
        }],
        ..spec(path)
    }
}

fn query(path: &str, name: &str, value: ValueMatch) -> RouteSpec {
    RouteSpec {
        query: vec![QueryMatch {
            name: name.into(),
            value,
        }],
        ..spec(path)
    }
}

fn version(path: &str, v: VersionMatch) -> RouteSpec {
    RouteSpec {
        version: Some(v),
        ..spec(path)
    }
}

fn prefix(v: &str) -> VersionMatch {
    VersionMatch::Prefix { version: v.into() }
}

fn media(v: &str) -> VersionMatch {
    VersionMatch::MediaType { version: v.into() }
}

fn vheader(name: &str, v: &str) -> VersionMatch {
    VersionMatch::Header {
        name: name.into(),
        version: v.into(),
    }
}

fn exact(v: &str) -> ValueMatch {
    ValueMatch::Exact(v.into())
}

fn lit(s: &str) -> Segment {
    Segment::Literal(s.into())
}

#[test]
fn good_patterns_parse_into_segments() {
    let cases: &[(&str, Vec<Segment>)] = &[
        ("/", vec![]),
        ("/orders", vec![lit("orders")]),
        ("/orders/", vec![lit("orders"), lit("")]),
        (
            "/orders/{id}",
            vec![lit("orders"), Segment::Param("id".into())],
        ),
        (
            "/static/{*rest}",
            vec![lit("static"), Segment::Wildcard("rest".into())],
        ),
        ("/{*all}", vec![Segment::Wildcard("all".into())]),
        (
            "/a%2Fb/{_x1}",
            vec![lit("a%2Fb"), Segment::Param("_x1".into())],
        ),
        ("/v1.2/~me;x=1", vec![lit("v1.2"), lit("~me;x=1")]),
    ];
    for (pattern, want) in cases {
        let got = PathPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(got.segments(), want.as_slice(), "{pattern}");
    }
}

#[test]
fn bad_patterns_are_refused_with_the_pattern_and_the_fix() {
    let cases = [
        ("orders", "must start with `/`"),
        ("", "must start with `/`"),
        ("//orders", "empty segment"),
        ("/orders//{id}", "remove the extra `/`"),
        ("/orders//", "empty segment"),
        ("/orders/{id", "does not end with `}`"),
        ("/orders/id}", "a literal cannot hold `{` or `}`"),
        ("/orders/x{id}", "a parameter is a whole segment"),
        ("/orders/{}", "parameter name `` is invalid"),
        ("/orders/{1d}", "not starting with a digit"),
        ("/orders/{a-b}", "parameter name `a-b` is invalid"),
        ("/files/{*rest}/x", "must be the last segment"),
        ("/files/{*rest}/", "must be the last segment"),
        ("/files/{*}", "parameter name `` is invalid"),
        ("/a/{id}/b/{id}", "`id` twice"),
        ("/a/{id}/{*id}", "`id` twice"),
        ("/orders?x=1", "match query parameters with `query`"),
        ("/orders#top", "fragment"),
        ("/my orders", "percent-encoded"),
    ];
    for (pattern, want) in cases {
        let err = PathPattern::parse(pattern).expect_err(pattern).to_string();
        assert!(
            err.contains(&format!("`{pattern}`")),
            "names the pattern: {err}"
        );
        assert!(err.contains(want), "{pattern}: {err}");
    }
}

#[test]
fn effective_path_puts_a_prefix_version_in_front() {
    assert_eq!(
        effective_path(&version("/orders/", prefix("v2"))),
        "/v2/orders/"
    );
    assert_eq!(
        effective_path(&version("/orders", prefix("v2"))),
        "/v2/orders"
    );
    assert_eq!(effective_path(&version("/", prefix("v2"))), "/v2");
    assert_eq!(effective_path(&version("/orders", media("v2"))), "/orders");
}

#[test]
fn check_spec_refuses_what_cannot_match_and_says_the_fix() {
    let ok = [
        methods("/orders", &["GET", "PURGE", "M-SEARCH"]),
        host("/orders", "Shop.Example.com"),
        host("/orders", "shop.example.com:8443"),
        host("/orders", "127.0.0.1:80"),
        host("/orders", "[::1]:8080"),
        header("/orders", "X-Tenant", ValueMatch::Regex("a|b[0-9]+".into())),
        header("/orders", "X-Tenant", ValueMatch::Present),
        query("/orders", "expand", exact("lines")),
        version("/orders", prefix("v2")),
        version("/orders", media("2.1")),
        version("/orders", vheader("X-API-Version", "2")),
    ];
    for s in &ok {
        check_spec(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    }
    let bad = [
        (spec("/orders/{id"), "does not end with `}`"),
        (
            methods("/orders", &["get"]),
            "must be upper case; write `GET`",
        ),
        (methods("/orders", &["GET POST"]), "is not an HTTP method"),
        (methods("/orders", &[""]), "is not an HTTP method"),
        (
            host("/orders", "shop_example.com"),
            "e.g. `shop.example.com`",
        ),
        (host("/orders", "-shop.com"), "host `-shop.com` is invalid"),
        (host("/orders", "shop.com:0"), "is invalid"),
        (host("/orders", "shop.com:99999"), "is invalid"),
        (host("/orders", "shop.com:"), "is invalid"),
        (host("/orders", "[::g]:80"), "is invalid"),
        (host("/orders", ""), "is invalid"),
        (
            header("/orders", "X Tenant", ValueMatch::Present),
            "not an HTTP token",
        ),
        (
            header("/orders", "X-Tenant", ValueMatch::Regex("(".into())),
            "does not compile; fix it",
        ),
        (
            header("/orders", "X-Tenant", exact(" a")),
            "surrounding spaces",
        ),
        (
            query("/orders", "a=b", ValueMatch::Present),
            "query parameter name `a=b`",
        ),
        (
            query("/orders", "", ValueMatch::Present),
            "query parameter name ``",
        ),
        (
            query("/orders", "a", exact("1&b=2")),
            "can never be received",
        ),
        (
            query("/orders", "a", ValueMatch::Regex("[".into())),
            "does not compile",
        ),
        (version("/orders", prefix("")), "version `` is invalid"),
        (
            version("/orders", prefix("v/2")),
            "version `v/2` is invalid",
        ),
        (version("/orders", media("v 2")), "is invalid"),
        (
            version("/orders", vheader("X API", "2")),
            "version header name",
        ),
        (
            version("/orders", vheader("X-API", "")),
            "version `` is invalid",
        ),
        (version("/orders", prefix("v#2")), "fragment"),
    ];
    for (s, want) in &bad {
        let err = check_spec(s).expect_err(want).to_string();
        assert!(
            err.contains(&format!("`{}`", s.path)),
            "names the route: {err}"
        );
        assert!(err.contains(want), "{s:?}: {err}");
    }
}

/// Pairs `(more specific, less specific)`.
#[test]
fn specificity_orders_routes_by_the_documented_rule() {
    let pairs = [
        // 1. a host beats no host, whatever the path.
        (host("/{*all}", "shop.example.com"), spec("/orders/1")),
        // 2. the path, from the left: literal > param > wildcard …
        (spec("/orders/new"), spec("/orders/{id}")),
        (spec("/orders/{id}"), spec("/orders/{*rest}")),
        (spec("/orders/{id}"), spec("/{kind}/1")),
        (spec("/orders/{id}/lines"), spec("/orders/{id}/{part}")),
        // … the longer path wins where it goes on with a literal or a parameter …
        (spec("/orders/{id}"), spec("/orders")),
        (spec("/orders/"), spec("/orders")),
        (spec("/orders"), spec("/")),
        (spec("/a/{b}/{*c}"), spec("/a")),
        // … and the shorter where the longer goes on with its wildcard.
        (spec("/static"), spec("/static/{*rest}")),
        (spec("/"), spec("/{*all}")),
        // the prefix version is part of the path.
        (version("/orders", prefix("v2")), spec("/{v}/orders")),
        (version("/orders", prefix("v2")), spec("/orders/{id}")),
        // 3. a version beats none.
        (version("/orders", media("2")), spec("/orders")),
        (
            version("/orders", vheader("X-V", "2")),
            methods("/orders", &["GET"]),
        ),
        // 4. a method set beats any, a smaller set beats a larger.
        (methods("/orders", &["GET"]), spec("/orders")),
        (
            methods("/orders", &["GET"]),
            methods("/orders", &["GET", "HEAD"]),
        ),
        (
            methods("/orders", &["GET", "GET"]),
            methods("/orders", &["GET", "HEAD"]),
        ),
        (
            methods("/orders", &["GET", "HEAD"]),
            header("/orders", "X-A", exact("1")),
        ),
        // 5. more header and query conditions beat fewer.
        (
            header("/orders", "X-A", ValueMatch::Present),
            spec("/orders"),
        ),
        (query("/orders", "a", ValueMatch::Present), spec("/orders")),
        (
            RouteSpec {
                query: vec![QueryMatch {
                    name: "b".into(),
                    value: ValueMatch::Present,
                }],
                ..header("/orders", "X-A", ValueMatch::Present)
            },
            header("/orders", "X-A", exact("1")),
        ),
    ];
    for (more, less) in &pairs {
        assert!(
            specificity(more) > specificity(less),
            "{more:?} should beat {less:?}"
        );
    }
    let ties = [
        (spec("/orders/{id}"), spec("/orders/{order}")),
        (spec("/orders/{id}"), spec("/users/{id}")),
        (methods("/a", &["GET"]), methods("/a", &["POST"])),
        (host("/a", "x.com"), host("/a", "y.com:8080")),
        (
            header("/a", "X-A", exact("1")),
            query("/a", "b", ValueMatch::Present),
        ),
        (
            version("/a", media("1")),
            version("/a", vheader("X-V", "1")),
        ),
    ];
    for (a, b) in &ties {
        assert_eq!(specificity(a), specificity(b), "{a:?} vs {b:?}");
    }
}

#[test]
fn overlap_is_refused_only_when_provably_disjoint() {
    let cases = [
        // paths
        (spec("/orders/{id}"), spec("/orders/{order}"), true),
        (spec("/orders/{id}"), spec("/orders/1"), true),
        (spec("/orders/{id}"), spec("/orders"), false),
        (spec("/orders/{id}"), spec("/orders/"), false),
        (spec("/orders/"), spec("/orders/{*rest}"), true),
        (spec("/orders"), spec("/orders/{*rest}"), true),
        (spec("/orders/1"), spec("/orders/2"), false),
        (spec("/{a}/x"), spec("/y/{b}"), true),
        (spec("/{*all}"), spec("/anything/at/all"), true),
        (spec("/"), spec("/{*all}"), true),
        (spec("/"), spec("/{id}"), false),
        (spec("/a/b/c"), spec("/a/{x}"), false),
        // methods
        (methods("/a", &["GET"]), methods("/a", &["POST"]), false),
        (
            methods("/a", &["GET", "POST"]),
            methods("/a", &["POST"]),
            true,
        ),
        (methods("/a", &["GET"]), spec("/a"), true),
        // hosts
        (host("/a", "X.com"), host("/a", "x.COM"), true),
        (host("/a", "x.com"), host("/a", "y.com"), false),
        (host("/a", "x.com"), spec("/a"), true),
        (host("/a", "x.com"), host("/a", "x.com:8080"), true),
        (host("/a", "x.com:80"), host("/a", "x.com:8080"), false),
        // versions
        (version("/a", media("1")), version("/a", media("2")), false),
        (version("/a", media("v1")), version("/a", media("V1")), true),
        (
            version("/a", vheader("X-V", "1")),
            version("/a", vheader("x-v", "2")),
            false,
        ),
        (
            version("/a", vheader("X-V", "1")),
            version("/a", vheader("X-W", "2")),
            true,
        ),
        (
            version("/a", media("1")),
            version("/a", vheader("X-V", "2")),
            true,
        ),
        (
            version("/a", prefix("v1")),
            version("/a", prefix("v2")),
            false,
        ),
        (version("/a", prefix("v1")), spec("/v1/a"), true),
        (version("/a", prefix("v1")), spec("/a"), false),
        (version("/a", media("1")), spec("/a"), true),
        // headers and query
        (
            header("/a", "X-T", exact("1")),
            header("/a", "x-t", exact("2")),
            false,
        ),
        (
            header("/a", "X-T", exact("1")),
            header("/a", "X-T", exact("1")),
            true,
        ),
        (
            header("/a", "X-T", exact("1")),
            header("/a", "X-U", exact("2")),
            true,
        ),
        (
            header("/a", "X-T", exact("1")),
            header("/a", "X-T", ValueMatch::Regex("2".into())),
            true,
        ),
        (
            query("/a", "t", exact("1")),
            query("/a", "t", exact("2")),
            false,
        ),
        (
            query("/a", "t", exact("1")),
            query("/a", "T", exact("2")),
            true,
        ),
        (
            query("/a", "t", ValueMatch::Present),
            query("/a", "t", exact("2")),
            true,
        ),
    ];
    for (a, b, want) in &cases {
        assert_eq!(may_overlap(a, b), *want, "{a:?} vs {b:?}");
        assert_eq!(may_overlap(b, a), *want, "symmetric: {b:?} vs {a:?}");
    }
}

fn big_catalog(contexts: usize, per_context: usize) -> Catalog {
    let mut c = Catalog::default();
    c.services.insert(
        "svc".into(),
        Service {
            name: "svc".into(),
            urls: vec!["http://127.0.0.1:9001".into()],
            policy: Default::default(),
        },
    );
    for n in 0..contexts {
        let name = format!("ctx{n}");
        c.contexts.insert(
            name.clone(),
            Context {
                cut_over: false,
                owner_move: None,
                name: name.clone(),
                target: "svc".into(),
                state: MigrationState::Legacy,
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
        for k in 0..per_context {
            let mut s = match k % 4 {
                0 => spec(&format!("/{name}/items{k}/{{id}}")),
                1 => methods(&format!("/{name}/items{k}/{{id}}/lines/{{line}}"), &["GET"]),
                2 => header(&format!("/{name}/items{k}"), "X-Tenant", exact("t1")),
                _ => spec(&format!("/{name}/files{k}/{{*rest}}")),
            };
            if k == 0 {
                // The same shape in every context, told apart by a version header: one bucket
                // that holds a route of each context.
                s = version("/shared/{id}", vheader("X-V", &n.to_string()));
            }
            let id = s.id();
            c.routes.insert(
                id.clone(),
                Route {
                    id,
                    context: name.clone(),
                    spec: s,
                },
            );
        }
    }
    c
}

#[test]
fn ten_thousand_routes_validate() {
    let c = big_catalog(100, 100);
    assert_eq!(c.routes.len(), 10_000);
    crate::validate(&c, &crate::SizeOnly).unwrap();
}

#[test]
fn an_overlap_in_a_large_catalog_names_both_routes_and_contexts() {
    let mut c = big_catalog(100, 20);
    let s = spec("/ctx7/items4/{other}");
    let id = s.id();
    c.routes.insert(
        id.clone(),
        Route {
            id: id.clone(),
            context: "ctx8".into(),
            spec: s,
        },
    );
    let err = crate::validate(&c, &crate::SizeOnly)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&id), "{err}");
    assert!(err.contains("`ctx7`") && err.contains("`ctx8`"), "{err}");
    assert!(err.contains("`/ctx7/items4/{id}`"), "{err}");
}
