//! The route table: matching by path, method, host, headers, query and version, precedence,
//! the canary's sticky split, and ten thousand routes.
//!
//! Size: over 600 lines on purpose: the cases of each matching dimension and of the split
//! share the route and request builders at the top.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::header::{HeaderName, HeaderValue};
use strangler_catalog::{
    Context, HeaderMatch, QueryMatch, Route, RouteSpec, Service, Side, ValueMatch, VersionMatch,
};

use super::sticky::{base64url_decode, jwt_sub};
use super::*;
use crate::CompileError;
use strangler_catalog::pattern::RouteSpecError;

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

fn with_methods(mut s: RouteSpec, m: &[&str]) -> RouteSpec {
    s.methods = m.iter().map(|m| (*m).to_owned()).collect();
    s
}

fn with_host(mut s: RouteSpec, h: &str) -> RouteSpec {
    s.host = Some(h.into());
    s
}

fn with_header(mut s: RouteSpec, name: &str, value: ValueMatch) -> RouteSpec {
    s.headers.push(HeaderMatch {
        name: name.into(),
        value,
    });
    s
}

fn with_query(mut s: RouteSpec, name: &str, value: ValueMatch) -> RouteSpec {
    s.query.push(QueryMatch {
        name: name.into(),
        value,
    });
    s
}

fn with_version(mut s: RouteSpec, v: VersionMatch) -> RouteSpec {
    s.version = Some(v);
    s
}

fn context(name: &str) -> Context {
    Context {
        cut_over: false,
        owner_move: None,
        name: name.into(),
        target: format!("{name}-svc"),
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
    }
}

/// A catalog of `(context, spec)` routes; each context's target is `<context>-svc`.
fn catalog(routes: &[(&str, RouteSpec)]) -> Catalog {
    let mut c = Catalog::default();
    for (ctx, s) in routes {
        let svc = format!("{ctx}-svc");
        c.services.insert(
            svc.clone(),
            Service {
                name: svc,
                urls: vec!["http://127.0.0.1:9".into()],
                policy: Default::default(),
            },
        );
        c.contexts.insert((*ctx).into(), context(ctx));
        let id = s.id();
        c.routes.insert(
            id.clone(),
            Route {
                id,
                context: (*ctx).into(),
                spec: s.clone(),
            },
        );
    }
    c
}

fn table(routes: &[(&str, RouteSpec)]) -> RouteTable {
    RouteTable::compile(&catalog(routes)).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// A request, as `lookup` sees it.
struct Req<'a> {
    method: Method,
    host: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    headers: HeaderMap,
}

fn get(path: &str) -> Req<'_> {
    Req {
        method: Method::GET,
        host: None,
        path,
        query: None,
        headers: HeaderMap::new(),
    }
}

impl<'a> Req<'a> {
    fn method(mut self, m: Method) -> Self {
        self.method = m;
        self
    }
    fn host(mut self, h: &'a str) -> Self {
        self.host = Some(h);
        self
    }
    fn headers(mut self, pairs: &[(&str, &str)]) -> Self {
        self.headers = headers(pairs);
        self
    }
}

/// The context that answers, or `-` for no match.
fn ctx_of(t: &RouteTable, r: &Req<'_>) -> String {
    t.lookup(&r.method, r.host, r.path, r.query, &r.headers)
        .map_or_else(|| "-".to_owned(), |m| m.context.name.to_string())
}

#[test]
fn paths_match_by_segment_as_written() {
    let t = table(&[
        ("root", spec("/")),
        ("list", spec("/orders")),
        ("slash", spec("/orders/")),
        ("one", spec("/orders/{id}")),
        ("lines", spec("/orders/{id}/lines/{line}")),
        ("files", spec("/files/{*rest}")),
        ("enc", spec("/a%2Fb")),
    ]);
    let cases = [
        ("/", "root"),
        ("/orders", "list"),
        ("/orders/", "slash"),
        ("/orders/7", "one"),
        ("/orders/7/lines/2", "lines"),
        ("/orders/7/lines", "-"),
        ("/orders/7/lines/2/x", "-"),
        ("/orders//lines/2", "-"),
        ("/files", "files"),
        ("/files/", "files"),
        ("/files/a/b//c", "files"),
        ("/a%2Fb", "enc"),
        ("/a/b", "-"),
        ("/ORDERS", "-"),
        ("", "-"),
        ("*", "-"),
    ];
    for (path, want) in cases {
        assert_eq!(ctx_of(&t, &get(path)), want, "{path}");
    }
}

#[test]
fn the_matched_route_id_is_the_catalog_id() {
    let s = spec("/orders/{id}");
    let t = table(&[("orders", s.clone())]);
    let h = HeaderMap::new();
    let m = t.lookup(&Method::GET, None, "/orders/1", None, &h).unwrap();
    assert_eq!(m.route_id, s.id());
    assert_eq!(&*m.context.target, "orders-svc");
    assert_eq!(t.len(), 1);
    assert!(!t.is_empty());
    assert!(RouteTable::empty().is_empty());
    assert!(RouteTable::empty()
        .lookup(&Method::GET, None, "/", None, &h)
        .is_none());
}

#[test]
fn methods_restrict_a_route() {
    let t = table(&[("w", with_methods(spec("/o"), &["POST", "PURGE"]))]);
    assert_eq!(ctx_of(&t, &get("/o")), "-");
    assert_eq!(ctx_of(&t, &get("/o").method(Method::POST)), "w");
    let purge = Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(ctx_of(&t, &get("/o").method(purge)), "w");
}

#[test]
fn hosts_compare_without_case_and_with_the_port_only_if_written() {
    let t = table(&[
        ("any-port", with_host(spec("/a"), "Shop.Example.com")),
        ("port", with_host(spec("/b"), "shop.example.com:8443")),
        ("v6", with_host(spec("/c"), "[::1]:8080")),
    ]);
    let cases = [
        ("shop.example.com", "/a", "any-port"),
        ("SHOP.example.COM:8080", "/a", "any-port"),
        ("other.example.com", "/a", "-"),
        ("shop.example.com:8443", "/b", "port"),
        ("SHOP.EXAMPLE.COM:8443", "/b", "port"),
        ("shop.example.com", "/b", "-"),
        ("shop.example.com:80", "/b", "-"),
        ("[::1]:8080", "/c", "v6"),
        ("[::1]", "/c", "-"),
    ];
    for (host, path, want) in cases {
        assert_eq!(ctx_of(&t, &get(path).host(host)), want, "{host}{path}");
    }
    assert_eq!(ctx_of(&t, &get("/a")), "-", "no host, no host route");
}

#[test]
fn header_conditions_hold_on_any_value_of_the_field() {
    let t = table(&[
        (
            "exact",
            with_header(spec("/e"), "X-Tenant", ValueMatch::Exact("acme".into())),
        ),
        (
            "regex",
            with_header(
                spec("/r"),
                "X-Tenant",
                ValueMatch::Regex("ac(me|ne)".into()),
            ),
        ),
        (
            "present",
            with_header(spec("/p"), "X-Debug", ValueMatch::Present),
        ),
    ]);
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 9] = [
        ("/e", &[("x-tenant", "acme")], "exact"),
        (
            "/e",
            &[("X-Tenant", "other"), ("X-Tenant", "acme")],
            "exact",
        ),
        ("/e", &[("X-Tenant", "ACME")], "-"),
        ("/e", &[], "-"),
        ("/r", &[("X-Tenant", "acne")], "regex"),
        ("/r", &[("X-Tenant", "acme-2")], "-"),
        ("/r", &[("X-Tenant", "my-acme")], "-"),
        ("/p", &[("X-Debug", "")], "present"),
        ("/p", &[("X-Other", "1")], "-"),
    ];
    for (path, h, want) in cases {
        assert_eq!(ctx_of(&t, &get(path).headers(h)), want, "{path} {h:?}");
    }
}

#[test]
fn query_conditions_read_the_raw_query() {
    let t = table(&[
        (
            "exact",
            with_query(spec("/e"), "expand", ValueMatch::Exact("lines".into())),
        ),
        (
            "regex",
            with_query(spec("/r"), "page", ValueMatch::Regex("[0-9]+".into())),
        ),
        (
            "present",
            with_query(spec("/p"), "debug", ValueMatch::Present),
        ),
        (
            "empty",
            with_query(spec("/z"), "flag", ValueMatch::Exact(String::new())),
        ),
    ]);
    let cases = [
        ("/e", Some("expand=lines"), "exact"),
        ("/e", Some("a=1&expand=x&expand=lines"), "exact"),
        ("/e", Some("expand=lines%20"), "-"),
        ("/e", Some("xexpand=lines"), "-"),
        ("/e", None, "-"),
        ("/r", Some("page=12"), "regex"),
        ("/r", Some("page=12a"), "-"),
        ("/p", Some("debug"), "present"),
        ("/p", Some("a&debug=&b"), "present"),
        ("/p", Some("debugging=1"), "-"),
        ("/z", Some("flag"), "empty"),
        ("/z", Some("flag="), "empty"),
        ("/z", Some("flag=1"), "-"),
    ];
    for (path, q, want) in cases {
        let mut r = get(path);
        r.query = q;
        assert_eq!(ctx_of(&t, &r), want, "{path}?{q:?}");
    }
}

#[test]
fn version_conditions_in_each_style() {
    let v = |s: &str| s.to_owned();
    let t = table(&[
        (
            "prefix",
            with_version(spec("/orders"), VersionMatch::Prefix { version: v("v2") }),
        ),
        (
            "media",
            with_version(spec("/m"), VersionMatch::MediaType { version: v("v3") }),
        ),
        (
            "header",
            with_version(
                spec("/h"),
                VersionMatch::Header {
                    name: v("X-API-Version"),
                    version: v("2"),
                },
            ),
        ),
    ]);
    assert_eq!(ctx_of(&t, &get("/v2/orders")), "prefix");
    assert_eq!(ctx_of(&t, &get("/orders")), "-");
    assert_eq!(ctx_of(&t, &get("/v3/orders")), "-");
    let accept = [
        ("application/vnd.acme.v3+json", "media"),
        ("application/vnd.acme.v3", "media"),
        ("application/VND.Acme.V3+JSON; q=0.9", "media"),
        ("text/html, application/vnd.github.v3+json;q=0.5", "media"),
        ("application/json; version=v3", "media"),
        ("application/json;version=\"v3\"", "media"),
        ("application/vnd.acme.v2+json", "-"),
        ("application/vnd.v3+json", "-"),
        ("application/vnd.acme.xv3+json", "-"),
        ("application/json", "-"),
        ("application/json; version=v33", "-"),
    ];
    for (value, want) in accept {
        let r = get("/m").headers(&[("Accept", value)]);
        assert_eq!(ctx_of(&t, &r), want, "Accept: {value}");
    }
    assert_eq!(ctx_of(&t, &get("/m")), "-");
    assert_eq!(
        ctx_of(&t, &get("/h").headers(&[("x-api-version", "2")])),
        "header"
    );
    assert_eq!(
        ctx_of(&t, &get("/h").headers(&[("x-api-version", "3")])),
        "-"
    );
    assert_eq!(ctx_of(&t, &get("/h")), "-");
}

#[test]
fn literal_beats_parameter_beats_wildcard() {
    let t = table(&[
        ("new", spec("/orders/new")),
        ("one", spec("/orders/{id}")),
        ("rest", spec("/orders/{*rest}")),
        ("all", spec("/{*all}")),
        ("kind", spec("/{kind}/{id}")),
    ]);
    let cases = [
        ("/orders/new", "new"),
        ("/orders/7", "one"),
        ("/orders", "rest"),
        ("/orders/7/lines", "rest"),
        ("/users/7", "kind"),
        ("/users", "all"),
        ("/", "all"),
    ];
    for (path, want) in cases {
        assert_eq!(ctx_of(&t, &get(path)), want, "{path}");
    }
}

#[test]
fn a_deeper_match_after_a_dead_end_is_found() {
    // The literal branch `/a/b` leads nowhere for `/a/b/c`; the parameter branch does.
    let t = table(&[("lit", spec("/a/b")), ("param", spec("/a/{x}/c"))]);
    assert_eq!(ctx_of(&t, &get("/a/b/c")), "param");
    assert_eq!(ctx_of(&t, &get("/a/b")), "lit");
}

#[test]
fn a_host_beats_no_host_and_a_method_set_beats_any() {
    let t = table(&[
        ("exact", spec("/orders/7")),
        ("host", with_host(spec("/{*all}"), "shop.example.com")),
        ("any", spec("/items/{id}")),
        ("get", with_methods(spec("/items/{id}"), &["GET"])),
        (
            "get-head",
            with_methods(spec("/items/{id}"), &["GET", "HEAD"]),
        ),
    ]);
    assert_eq!(ctx_of(&t, &get("/orders/7")), "exact");
    assert_eq!(
        ctx_of(&t, &get("/orders/7").host("shop.example.com")),
        "host"
    );
    assert_eq!(
        ctx_of(&t, &get("/orders/7").host("other.example.com")),
        "exact"
    );
    assert_eq!(ctx_of(&t, &get("/items/1")), "get");
    assert_eq!(
        ctx_of(&t, &get("/items/1").method(Method::HEAD)),
        "get-head"
    );
    assert_eq!(ctx_of(&t, &get("/items/1").method(Method::DELETE)), "any");
}

#[test]
fn a_host_with_its_port_and_one_without_compete_on_the_rest() {
    let t = table(&[
        ("host", with_host(spec("/orders/{id}"), "shop.example.com")),
        (
            "port",
            with_host(spec("/orders/{*rest}"), "shop.example.com:8443"),
        ),
    ]);
    assert_eq!(
        ctx_of(&t, &get("/orders/1").host("shop.example.com:8443")),
        "host"
    );
    assert_eq!(
        ctx_of(&t, &get("/orders").host("shop.example.com:8443")),
        "port"
    );
}

#[test]
fn when_the_specific_route_fails_a_condition_the_next_one_answers() {
    let t = table(&[
        (
            "tenant",
            with_header(
                spec("/orders/{id}"),
                "X-Tenant",
                ValueMatch::Exact("acme".into()),
            ),
        ),
        ("plain", spec("/orders/{id}")),
        (
            "new",
            with_header(spec("/orders/new"), "X-Beta", ValueMatch::Present),
        ),
        ("rest", spec("/orders/{*rest}")),
    ]);
    assert_eq!(
        ctx_of(&t, &get("/orders/1").headers(&[("X-Tenant", "acme")])),
        "tenant"
    );
    assert_eq!(
        ctx_of(&t, &get("/orders/1").headers(&[("X-Tenant", "other")])),
        "plain"
    );
    assert_eq!(
        ctx_of(&t, &get("/orders/new").headers(&[("X-Beta", "1")])),
        "new"
    );
    // `/orders/new` fails its header; the parameter route is next.
    assert_eq!(ctx_of(&t, &get("/orders/new")), "plain");
    let t = table(&[
        ("get", with_methods(spec("/orders/{id}"), &["GET"])),
        ("rest", spec("/orders/{*rest}")),
    ]);
    assert_eq!(ctx_of(&t, &get("/orders/1").method(Method::POST)), "rest");
}

#[test]
fn equal_specificity_in_one_context_goes_to_the_smaller_route_id() {
    let a = with_header(spec("/o"), "X-A", ValueMatch::Present);
    let b = with_header(spec("/o"), "X-B", ValueMatch::Present);
    let t = table(&[("c", a.clone()), ("c", b.clone())]);
    let h = headers(&[("X-A", "1"), ("X-B", "1")]);
    let m = t.lookup(&Method::GET, None, "/o", None, &h).unwrap();
    assert_eq!(m.route_id, a.id().min(b.id()));
}

#[test]
fn compile_names_the_route_that_fails() {
    let mut c = catalog(&[("orders", spec("/orders"))]);
    let bad = with_methods(spec("/x"), &["get"]);
    let id = bad.id();
    c.routes.insert(
        id.clone(),
        Route {
            id: id.clone(),
            context: "orders".into(),
            spec: bad,
        },
    );
    let err = RouteTable::compile(&c).unwrap_err();
    assert!(
        matches!(&err, CompileError::Route { id: at, why, .. } if *at == id && matches!(&**why, RouteProblem::Spec(RouteSpecError::MethodCase { method, .. }) if method == "get"))
            && err.to_string().contains("write `GET`"),
        "{err}"
    );
    let mut c = catalog(&[("orders", spec("/orders"))]);
    c.contexts.clear();
    let err = RouteTable::compile(&c).unwrap_err();
    assert!(
        matches!(&err, CompileError::Route { why, .. } if **why == RouteProblem::UnknownContext),
        "{err}"
    );
}

#[test]
fn sticky_buckets_are_fixed_numbers() {
    // FNV-1a 64 of `context \0 key`, modulo 10000, worked out independently.
    assert_eq!(sticky_bucket("orders", b"alice"), 1588);
    assert_eq!(sticky_bucket("orders", b"bob"), 8143);
    assert_eq!(sticky_bucket("billing", b"alice"), 7796);
    assert_eq!(sticky_bucket("orders", b""), 2820);
    // A key too long for the stack buffer hashes the same way.
    assert_eq!(sticky_bucket("orders", &[b'x'; 300]), 6516);
    let mut joined = b"orders\0".to_vec();
    joined.extend_from_slice(b"alice");
    assert_eq!(
        u64::from(sticky_bucket("orders", b"alice")),
        strangler_catalog::fnv1a64(&joined) % 10_000
    );
}

fn canary(weight: u16, sticky: Option<StickyKey>) -> ContextEntry {
    ContextEntry {
        name: "orders".into(),
        target: "orders-svc".into(),
        state: MigrationState::Canary,
        weight,
        sticky,
        owner: strangler_catalog::Side::Legacy,
        owner_move: None,
        fallback: true,
        fallback_after: None,
        index: 0,
    }
}

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn raising_the_weight_only_moves_keys_to_new() {
    let on_new = |weight: u16| -> Vec<bool> {
        let ctx = canary(weight, Some(StickyKey::Header("x-user".into())));
        (0..10_000)
            .map(|k| {
                let h = headers(&[("X-User", &format!("user-{k}"))]);
                decide_side(&ctx, &h, PEER) == Side::New
            })
            .collect()
    };
    let weights = [0, 100, 2500, 2501, 5000, 9999, 10_000];
    let sides: Vec<Vec<bool>> = weights.iter().map(|&w| on_new(w)).collect();
    for pair in sides.windows(2) {
        let moved_back = pair[0].iter().zip(&pair[1]).any(|(&lo, &hi)| lo && !hi);
        assert!(!moved_back, "a key on new went back to legacy");
    }
    let share = |s: &[bool]| s.iter().filter(|&&n| n).count();
    assert_eq!(share(&sides[0]), 0);
    assert_eq!(share(&sides[6]), 10_000);
    let quarter = share(&sides[2]);
    assert!(
        (2250..=2750).contains(&quarter),
        "{quarter} keys of 10000 at 2500 bp"
    );
}

#[test]
fn the_state_decides_outside_canary() {
    let h = HeaderMap::new();
    for (state, want) in [
        (MigrationState::Legacy, Side::Legacy),
        (MigrationState::Shadow, Side::Legacy),
        (MigrationState::Migrated, Side::New),
        (MigrationState::Retired, Side::New),
    ] {
        let ctx = ContextEntry {
            state,
            ..canary(10_000, None)
        };
        assert_eq!(decide_side(&ctx, &h, PEER), want, "{state}");
    }
}

/// Whether the context's key in `h` (from `peer`) sends the request to new at a weight just
/// above the key's bucket, and to legacy at the bucket itself: the key is what decided.
fn key_decides(sticky: StickyKey, key: &[u8], h: &HeaderMap, peer: IpAddr) -> bool {
    let bucket = sticky_bucket("orders", key);
    (0..20).all(|_| {
        decide_side(&canary(bucket + 1, Some(sticky.clone())), h, peer) == Side::New
            && decide_side(&canary(bucket, Some(sticky.clone())), h, peer) == Side::Legacy
    })
}

#[test]
fn each_sticky_key_is_read_from_the_request() {
    let h = headers(&[("Cookie", "a=1; sid=s-42"), ("X-User", "u-7")]);
    assert!(key_decides(
        StickyKey::Cookie("sid".into()),
        b"s-42",
        &h,
        PEER
    ));
    assert!(key_decides(
        StickyKey::Header("x-user".into()),
        b"u-7",
        &h,
        PEER
    ));
    assert!(key_decides(StickyKey::Ip, b"127.0.0.1", &h, PEER));
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
    assert!(key_decides(StickyKey::Ip, b"10.0.0.1", &h, mapped));
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    assert!(key_decides(StickyKey::Ip, b"2001:db8::1", &h, v6));
    let jwt = "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiAidXNlci00MiIsICJuYW1lIjogIkFubiJ9.sig";
    let h = headers(&[("Authorization", jwt)]);
    assert!(key_decides(StickyKey::JwtSub, b"user-42", &h, PEER));
}

#[test]
fn without_a_key_each_request_is_split_at_random() {
    let h = HeaderMap::new();
    for sticky in [
        None,
        Some(StickyKey::Cookie("sid".into())),
        Some(StickyKey::JwtSub),
    ] {
        let ctx = canary(5000, sticky);
        let new = (0..2000)
            .filter(|_| decide_side(&ctx, &h, PEER) == Side::New)
            .count();
        // Half on average; far from both ends for any random sequence worth the name.
        assert!((700..=1300).contains(&new), "{new} of 2000 on new");
    }
    // An empty value is no key either.
    let ctx = canary(5000, Some(StickyKey::Cookie("sid".into())));
    let h = headers(&[("Cookie", "sid=")]);
    let new = (0..2000)
        .filter(|_| decide_side(&ctx, &h, PEER) == Side::New)
        .count();
    assert!((700..=1300).contains(&new), "{new} of 2000 on new");
}

#[test]
fn the_jwt_sub_claim_is_decoded_without_verification() {
    let sub = |auth: &str| jwt_sub(&headers(&[("Authorization", auth)]));
    assert_eq!(
        sub("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiAidXNlci00MiIsICJuYW1lIjogIkFubiJ9.x"),
        Some("user-42".into())
    );
    // `-` in the payload is base64url; a lower-case scheme is fine.
    assert_eq!(
        sub("bearer h.eyJzdWIiOiLDqXTDqT8-In0.s"),
        Some("été?>".into())
    );
    // Padding is tolerated, a numeric sub is used as text.
    assert_eq!(sub("Bearer h.eyJzdWIiOjQyfQ==.s"), Some("42".into()));
    assert_eq!(sub("Bearer h.eyJuYW1lIjoiQW5uIn0.s"), None, "no sub claim");
    assert_eq!(sub("Basic dXNlcjpwYXNz"), None);
    assert_eq!(sub("Bearer not-a-jwt"), None);
    assert_eq!(sub("Bearer h.!!!.s"), None);
    assert_eq!(jwt_sub(&HeaderMap::new()), None);
    assert_eq!(base64url_decode(b"aGk"), Some(b"hi".to_vec()));
    assert_eq!(base64url_decode(b"aGVsbG8"), Some(b"hello".to_vec()));
    assert_eq!(base64url_decode(b"a"), None);
}

#[test]
fn ten_thousand_routes_compile_and_match() {
    // 10,000 routes over 100 contexts (the timings are in benches/route_match.rs).
    let mut routes = Vec::new();
    let names: Vec<String> = (0..100).map(|n| format!("ctx{n}")).collect();
    for (n, name) in names.iter().enumerate() {
        for k in 0..100 {
            routes.push((name.as_str(), spec(&format!("/ctx{n}/items{k}/{{id}}"))));
        }
    }
    let t = table(&routes);
    assert_eq!(t.len(), 10_000);
    assert_eq!(ctx_of(&t, &get("/ctx57/items12/99")), "ctx57");
    assert_eq!(ctx_of(&t, &get("/ctx57/items100/99")), "-");
}
