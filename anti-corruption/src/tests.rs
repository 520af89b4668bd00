//! Translators end to end within the crate: specs compiled and applied to messages.
//!
//! Size: over 600 lines on purpose: one test per translator rule kind and its edge cases,
//! each a spec and a message; grouped by rule, they read as the rules' reference.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use proptest::prelude::*;

use crate::json::Value;
use crate::{Compiled, Failure, Links, Registry, Request, Response, Translator};

fn compile(text: &str) -> Compiled {
    match Compiled::compile(text, &Registry::new()) {
        Ok(c) => c,
        Err(e) => panic!("spec did not compile: {e}"),
    }
}

fn req(method: &str, target: &str, body: &str) -> Request {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    Request {
        method: Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET),
        path,
        query,
        headers: HeaderMap::new(),
        body: Some(Bytes::from(body.to_owned())),
    }
}

fn resp(status: u16, body: &str) -> Response {
    Response {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        headers: HeaderMap::new(),
        body: Some(Bytes::from(body.to_owned())),
    }
}

fn body(b: &Option<Bytes>) -> String {
    String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
}

const ORDERS: &str = r#"
[[paths]]
from = "/api/orders/{id}"
to = "/v2/orders/{id}"
methods = { POST = "PUT" }

[[paths]]
from = "/api/orders"
to = "/v2/orders"

[request.headers]
add = { "x-source" = "facade" }
remove = ["x-legacy-debug"]
rename = { "x-customer" = "x-customer-id" }
from_capture = { "x-order-id" = "id" }

[request.query]
rename = { custId = "customer_id" }
drop = ["debug"]
default = { limit = "20" }
to_body = { note = "$.meta.note" }

[[request.body]]
op = "case"
style = "snake"

[[request.body]]
op = "convert"
at = "$.total"
to = "cents"

[[request.body]]
op = "rename"
from = "$.total"
to = "$.total_cents"

[[request.body]]
op = "map"
at = "$.status"
values = { A = "active", C = "cancelled" }
strict = true

[[request.body]]
op = "convert"
at = "$.items[*].unit_price"
to = "cents"

[[response.body]]
op = "map"
at = "$.status"
values = { active = "A", cancelled = "C" }

[[response.body]]
op = "convert"
at = "$.total_cents"
to = "decimal"

[[response.body]]
op = "rename"
from = "$.total_cents"
to = "$.total"

[[response.body]]
op = "move"
from = "$.items[*].unit_price_cents"
to = "$.items[*].price.amount"

[[response.body]]
op = "case"
style = "camel"

[response.status]
"201" = 200

[response.errors]
body = { error = { code = "$.title", message = "$.detail" }, ok = false }
"#;

#[test]
fn a_request_is_translated_head_and_body() {
    let t = compile(ORDERS);
    let mut r = req(
        "POST",
        "/api/orders/42?custId=7&debug=1&note=call+me%21",
        r#"{"customerId": 7, "total": "19.99", "status": "A", "items": [{"unitPrice": "1.50"}, {"unitPrice": 2}]}"#,
    );
    r.headers
        .insert("x-customer", HeaderValue::from_static("7"));
    r.headers
        .insert("x-legacy-debug", HeaderValue::from_static("on"));
    assert_eq!(t.request(&mut r), Ok(()));
    assert_eq!(r.method, Method::PUT);
    assert_eq!(r.path, "/v2/orders/42");
    assert_eq!(r.query.as_deref(), Some("customer_id=7&limit=20"));
    assert_eq!(
        r.headers.get("x-customer-id").map(|v| v.as_bytes()),
        Some(&b"7"[..])
    );
    assert_eq!(
        r.headers.get("x-order-id").map(|v| v.as_bytes()),
        Some(&b"42"[..])
    );
    assert_eq!(
        r.headers.get("x-source").map(|v| v.as_bytes()),
        Some(&b"facade"[..])
    );
    assert!(r.headers.get("x-legacy-debug").is_none());
    assert_eq!(
        body(&r.body),
        r#"{"customer_id":7,"status":"active","items":[{"unit_price":150},{"unit_price":200}],"meta":{"note":"call me!"},"total_cents":1999}"#
    );
}

#[test]
fn an_answer_is_translated_back() {
    let t = compile(ORDERS);
    let mut r = resp(
        201,
        r#"{"order_id": 42, "total_cents": 1999, "status": "cancelled", "items": [{"unit_price_cents": 150}]}"#,
    );
    assert_eq!(t.response(&mut r, &Links::default()), Ok(()));
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        body(&r.body),
        r#"{"orderId":42,"status":"C","items":[{"price":{"amount":150}}],"total":"19.99"}"#
    );
}

#[test]
fn errors_become_the_legacy_envelope() {
    let t = compile(ORDERS);
    let mut r = resp(
        404,
        r#"{"type": "about:blank", "title": "not-found", "detail": "no order 42", "status": 404}"#,
    );
    r.headers.insert(
        "content-type",
        HeaderValue::from_static("application/problem+json"),
    );
    assert_eq!(t.response(&mut r, &Links::default()), Ok(()));
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        body(&r.body),
        r#"{"error":{"code":"not-found","message":"no order 42"},"ok":false}"#
    );
    assert_eq!(
        r.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    // Not JSON at all (a proxy's page): the text is the detail.
    let mut r = resp(503, "upstream overloaded");
    assert_eq!(t.response(&mut r, &Links::default()), Ok(()));
    assert_eq!(
        body(&r.body),
        r#"{"error":{"code":null,"message":"upstream overloaded"},"ok":false}"#
    );
}

#[test]
fn failures_name_the_rule_the_path_and_the_side_at_fault() {
    let t = compile(ORDERS);
    let mut r = req(
        "POST",
        "/api/orders",
        r#"{"total": "19.999", "status": "A"}"#,
    );
    let e = t.request(&mut r).err();
    assert_eq!(
        e.as_ref()
            .map(|e| (e.rule.as_str(), e.path.as_str(), e.client)),
        Some(("request.body[1] (convert, line 27)", "$.total", true))
    );
    let mut r = req("POST", "/api/orders", r#"{"total": "1", "status": "Z"}"#);
    let e = t.request(&mut r).err();
    assert!(
        e.as_ref()
            .is_some_and(|e| e.path == "$.status" && e.reason.contains("`Z` has no mapping")),
        "{e:?}"
    );
    let mut r = req("POST", "/api/orders", "not json");
    assert!(t
        .request(&mut r)
        .is_err_and(|e| e.client && e.reason.contains("not JSON")));
    let mut r = resp(200, r#"{"total_cents": "lots"}"#);
    let e = t.response(&mut r, &Links::default()).err();
    assert!(
        e.as_ref()
            .is_some_and(|e| !e.client && e.path == "$.total_cents" && e.rule.contains("convert")),
        "{e:?}"
    );
    let mut r = resp(200, &("[".repeat(100_000) + &"]".repeat(100_000)));
    assert!(t
        .response(&mut r, &Links::default())
        .is_err_and(|e| e.reason.contains("deeper")));
    let mut r = Response {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: Some(Bytes::from_static(b"{\"a\":\"\xff\"}")),
    };
    assert!(t
        .response(&mut r, &Links::default())
        .is_err_and(|e| e.reason.contains("UTF-8")));
}

#[test]
fn a_required_field_that_is_missing_is_an_error_naming_it() {
    let t = compile(
        "[[response.body]]\nop = \"rename\"\nfrom = \"$.items[*].sku_code\"\nto = \"$.items[*].sku\"\nrequired = true\n",
    );
    let mut r = resp(
        200,
        r#"{"items": [{"sku_code": "a"}, {"name": "no code"}]}"#,
    );
    let e = t.response(&mut r, &Links::default()).err();
    assert_eq!(
        e.map(|e| (e.path, e.reason)),
        Some((
            "$.items[1]".to_owned(),
            "$.items[*].sku_code is missing and the rule requires it".to_owned()
        ))
    );
    // Without `required`, a missing field is left alone.
    let t = compile("[[response.body]]\nop = \"rename\"\nfrom = \"$.a\"\nto = \"$.b\"\n");
    let mut r = resp(200, r#"{"c": 1}"#);
    assert_eq!(t.response(&mut r, &Links::default()), Ok(()));
    assert_eq!(body(&r.body), r#"{"c":1}"#);
}

#[test]
fn spec_errors_give_the_line() {
    let cases = [
        (
            "[[paths]]\nfrom = \"/a/{id}\"\nto = \"/b/{other}\"\n",
            1,
            "does not capture",
        ),
        (
            "\n\n[[response.body]]\nop = \"convert\"\nat = \"$.x\"\nto = \"money\"\n",
            3,
            "not a conversion",
        ),
        (
            "[[request.body]]\nop = \"jq\"\nexpr = \"{a: .b\"\n",
            1,
            "jq: expected",
        ),
        ("[[request.body]]\nop = \"spin\"\n", 1, "unknown variant"),
        ("[request]\nbogus = 1\n", 2, "unknown field"),
        (
            "rust = \"nobody\"\n",
            1,
            "no Rust translator named `nobody`",
        ),
        (
            "[version]\nstyle = \"media-type\"\nfrom = \"v1\"\nto = \"v2\"\n",
            1,
            "needs vendor",
        ),
        (
            "[[request.body]]\nop = \"rename\"\nfrom = \"$.a[*].b\"\nto = \"$.c\"\n",
            1,
            "share the part",
        ),
        ("[response.status]\n\"abc\" = 200\n", 1, "not a status code"),
        ("paths = 3", 1, "invalid type"),
    ];
    for (text, line, what) in cases {
        match Compiled::compile(text, &Registry::new()) {
            Ok(_) => panic!("{text:?} compiled"),
            Err(e) => {
                assert_eq!(e.line, line, "{text:?}: {e}");
                assert!(e.message.contains(what), "{text:?}: {e}");
            }
        }
    }
}

#[test]
fn links_point_back_at_the_facade_in_the_legacy_shape() {
    let t = compile(
        r#"
[[paths]]
from = "/api/orders/{id}"
to = "/v2/orders/{id}"
[links]
body = true
"#,
    );
    let ups = vec!["http://10.0.0.5:8081".to_owned()];
    let links = Links {
        upstreams: &ups,
        public: Some("https://shop.example"),
    };
    let mut r = resp(
        201,
        r#"{"self": "http://10.0.0.5:8081/v2/orders/7?x=1", "other": "http://elsewhere/v2/orders/7", "n": 1}"#,
    );
    r.headers.insert(
        "location",
        HeaderValue::from_static("http://10.0.0.5:8081/v2/orders/7"),
    );
    r.headers.insert(
        "link",
        HeaderValue::from_static("</v2/orders/8>; rel=\"next\", <http://x/y>; rel=\"up\""),
    );
    assert_eq!(t.response(&mut r, &links), Ok(()));
    assert_eq!(
        body(&r.body),
        r#"{"self":"https://shop.example/api/orders/7?x=1","other":"http://elsewhere/v2/orders/7","n":1}"#
    );
    assert_eq!(
        r.headers.get("location").map(|v| v.as_bytes()),
        Some(&b"https://shop.example/api/orders/7"[..])
    );
    assert_eq!(
        r.headers.get("link").map(|v| v.as_bytes()),
        Some(&b"</api/orders/8>; rel=\"next\", <http://x/y>; rel=\"up\""[..])
    );
}

/// A link the new service built from the forwarded `Host` is on the facade's own origin, in
/// the new service's path shape: it goes back to legacy's shape on that origin.
#[test]
fn links_on_the_public_origin_take_legacys_path_too() {
    let t = compile(
        r#"
[[paths]]
from = "/orders/{id}"
to = "/purchase_orders/{id}"
[links]
body = true
"#,
    );
    let ups = vec!["http://10.0.0.5:8081".to_owned()];
    let links = Links {
        upstreams: &ups,
        public: Some("http://shop.example"),
    };
    let mut r = resp(
        201,
        r#"{"self":"http://shop.example/purchase_orders/21?x=1","legacy":"http://shop.example/orders/2","near":"http://shop.example.evil/purchase_orders/21"}"#,
    );
    r.headers.insert(
        "location",
        HeaderValue::from_static("http://shop.example/purchase_orders/21"),
    );
    assert_eq!(t.response(&mut r, &links), Ok(()));
    assert_eq!(
        r.headers.get("location").map(|v| v.as_bytes()),
        Some(&b"http://shop.example/orders/21"[..])
    );
    // Mapped on the public origin; one already in legacy's shape, or on another host that
    // merely starts alike, unchanged.
    assert_eq!(
        body(&r.body),
        r#"{"self":"http://shop.example/orders/21?x=1","legacy":"http://shop.example/orders/2","near":"http://shop.example.evil/purchase_orders/21"}"#
    );
}

#[test]
fn version_styles_keep_v1_clients_served_by_a_v2_service() {
    let prefix = compile("[version]\nstyle = \"prefix\"\nfrom = \"v1\"\nto = \"v2\"\n");
    let mut r = req("GET", "/v1/orders/3", "");
    assert_eq!(prefix.request(&mut r), Ok(()));
    assert_eq!(r.path, "/v2/orders/3");
    let mut a = resp(201, "");
    a.headers
        .insert("location", HeaderValue::from_static("/v2/orders/4"));
    assert_eq!(prefix.response(&mut a, &Links::default()), Ok(()));
    assert_eq!(
        a.headers.get("location").map(|v| v.as_bytes()),
        Some(&b"/v1/orders/4"[..])
    );

    let media = compile(
        "[version]\nstyle = \"media-type\"\nvendor = \"shop\"\nfrom = \"v1\"\nto = \"v2\"\n",
    );
    let mut r = req("GET", "/orders/3", "");
    r.headers.insert(
        "accept",
        HeaderValue::from_static("application/vnd.shop.v1+json"),
    );
    assert_eq!(media.request(&mut r), Ok(()));
    assert_eq!(
        r.headers.get("accept").map(|v| v.as_bytes()),
        Some(&b"application/vnd.shop.v2+json"[..])
    );
    let mut a = resp(200, "{}");
    a.headers.insert(
        "content-type",
        HeaderValue::from_static("application/vnd.shop.v2+json"),
    );
    assert_eq!(media.response(&mut a, &Links::default()), Ok(()));
    assert_eq!(
        a.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/vnd.shop.v1+json"[..])
    );

    let header = compile(
        "[version]\nstyle = \"header\"\nheader = \"X-API-Version\"\nfrom = \"1\"\nto = \"2\"\n",
    );
    let mut r = req("GET", "/orders/3", "");
    assert_eq!(header.request(&mut r), Ok(()));
    assert_eq!(
        r.headers.get("x-api-version").map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
    let mut a = resp(200, "{}");
    a.headers
        .insert("x-api-version", HeaderValue::from_static("2"));
    assert_eq!(header.response(&mut a, &Links::default()), Ok(()));
    assert_eq!(
        a.headers.get("x-api-version").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
}

#[test]
fn jq_rules_and_defaults_and_flatten() {
    let t = compile(
        r#"
[[response.body]]
op = "jq"
expr = '.lines |= map({sku, qty: .quantity})'

[[response.body]]
op = "default"
at = "$.lines[*].qty"
value = 1

[[response.body]]
op = "flatten"
at = "$.address"
prefix = "address_"

[[response.body]]
op = "drop"
at = "$.internal"
"#,
    );
    let mut r = resp(
        200,
        r#"{"lines":[{"sku":"a","quantity":2,"x":1},{"sku":"b"}],"address":{"city":"Oslo"},"internal":true}"#,
    );
    assert_eq!(t.response(&mut r, &Links::default()), Ok(()));
    assert_eq!(
        body(&r.body),
        r#"{"lines":[{"sku":"a","qty":2},{"sku":"b","qty":1}],"address_city":"Oslo"}"#
    );
}

struct Upper;

impl Translator for Upper {
    fn request(&self, req: &mut Request) -> Result<(), Failure> {
        req.path = req.path.to_uppercase();
        Ok(())
    }

    fn response(&self, resp: &mut Response) -> Result<(), Failure> {
        if resp.status == StatusCode::IM_A_TEAPOT {
            return Err(Failure {
                rule: "rust:upper".into(),
                path: "$".into(),
                reason: "no tea".into(),
                client: false,
            });
        }
        resp.headers
            .insert("x-upper", HeaderValue::from_static("yes"));
        Ok(())
    }
}

#[test]
fn rust_translators_are_found_by_name_and_run_after_the_rules() {
    let mut reg = Registry::new();
    reg.register("upper", Arc::new(Upper));
    let t = Compiled::compile(
        "rust = \"upper\"\n[[paths]]\nfrom = \"/a/{x}\"\nto = \"/b/{x}\"\n",
        &reg,
    );
    let Ok(t) = t else { panic!("did not compile") };
    assert!(t.needs_request_body());
    let mut r = req("GET", "/a/q", "");
    assert_eq!(t.request(&mut r), Ok(()));
    assert_eq!(r.path, "/B/Q");
    let mut a = resp(200, "");
    assert_eq!(t.response(&mut a, &Links::default()), Ok(()));
    assert!(a.headers.contains_key("x-upper"));
    let mut a = resp(418, "");
    assert!(t
        .response(&mut a, &Links::default())
        .is_err_and(|e| e.rule == "rust:upper"));
}

#[test]
fn compositions_fill_paths_and_assemble_answers() {
    let t = compile(
        r#"
[[compose]]
path = "/api/orders/{id}/summary"
on_failure = "omit"
parts = [
  { name = "order", side = "new", path = "/v2/orders/{id}", timeout_ms = 300 },
  { name = "customer", side = "legacy", path = "/api/orders/{id}/customer" },
]
body = { id = "$.order.id", customer = "$.customer.name", kind = "summary" }
"#,
    );
    assert!(t.compose("/api/orders/9").is_none());
    let Some(c) = t.compose("/api/orders/9/summary") else {
        panic!("no composition")
    };
    assert_eq!(c.parts.len(), 2);
    assert_eq!(c.parts[0].path, "/v2/orders/9");
    assert_eq!(c.parts[1].path, "/api/orders/9/customer");
    assert_eq!(c.on_failure, crate::OnFailure::Omit);
    let order = Value::parse(br#"{"id": 9}"#).ok();
    let out = t.assemble(&c, vec![("order".into(), order), ("customer".into(), None)]);
    assert_eq!(
        out.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Ok(r#"{"customer":null,"id":9,"kind":"summary"}"#.to_owned())
    );
}

#[test]
fn a_head_only_translator_leaves_bodies_alone() {
    let t = compile("[[paths]]\nfrom = \"/a\"\nto = \"/b\"\n");
    assert!(t.head_only());
    assert!(!t.needs_request_body());
    assert!(!t.needs_response_body(StatusCode::OK));
    let mut r = req("POST", "/a", "not json at all");
    assert_eq!(t.request(&mut r), Ok(()));
    assert_eq!(body(&r.body), "not json at all");
}

#[test]
fn contract_examples_report_readable_differences() {
    let t = compile(ORDERS);
    let fixtures = r#"
[[request]]
name = "a new order"
given = { method = "POST", path = "/api/orders?custId=3", json = '{"total": "2.50", "status": "A"}' }
expect = { method = "POST", path = "/v2/orders?customer_id=3&limit=20", json = '{"total_cents": 250, "status": "active"}' }

[[response]]
name = "wrong on purpose"
given = { status = 200, json = '{"total_cents": 250}' }
expect = { status = 201, json = '{"total": "2.5", "extra": 1}' }

[[response]]
name = "expected failure"
given = { status = 200, json = '{"total_cents": "x"}' }
expect = { error = "convert" }
"#;
    let out = crate::contract::run(&t, fixtures).unwrap_or_default();
    assert_eq!(out.len(), 3);
    assert!(out[0].passed(), "{:?}", out[0]);
    assert_eq!(
        out[1].differences,
        vec![
            "status: expected \"201\", got \"200\"".to_owned(),
            "$.total: expected \"2.5\", got \"2.50\"".to_owned(),
            "$.extra: expected 1, but it is missing".to_owned(),
        ]
    );
    assert!(out[2].passed(), "{:?}", out[2]);
    let (text, ok) = crate::contract::report("orders", &out);
    assert!(!ok);
    assert!(
        text.contains("FAIL  orders: response \"wrong on purpose\""),
        "{text}"
    );
    assert!(crate::contract::run(&t, "[[request]]\nname = 1\n").is_err_and(|e| e.line == 2));
}

fn arb_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "(0|[1-9][0-9]{0,39})(\\.[0-9]{1,6})?".prop_map(|s| s),
        "\\PC{0,12}".prop_map(|s| Value::str(s).to_json()),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-zA-Z_]{1,8}", inner), 0..5).prop_map(|v| {
                let fields: Vec<String> = v
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", Value::str(k).to_json()))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

proptest! {
    // STRANGLER_FUZZ_CASES runs longer (the README gives the command and what it found).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("STRANGLER_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    /// Any spec text compiles or is refused; it never panics.
    #[test]
    fn fuzz_spec_text(text in "\\PC{0,200}") {
        let _ = Compiled::compile(&text, &Registry::new());
    }

    /// Specs with plausible shapes but random paths, ops and values.
    #[test]
    fn fuzz_spec_rules(
        op in prop_oneof![Just("rename"), Just("move"), Just("copy"), Just("drop"), Just("default"),
                          Just("map"), Just("convert"), Just("case"), Just("flatten")],
        a in "\\$(\\.[a-z*]{1,3}|\\[[0-9*]\\]){0,4}",
        b in "\\$(\\.[a-z*]{1,3}|\\[[0-9*]\\]){0,4}",
        to in prop_oneof![Just("cents"), Just("decimal"), Just("string"), Just("number"), Just("boolean")],
        doc in arb_json(),
    ) {
        let text = format!(
            "[[response.body]]\nop = \"{op}\"\nfrom = \"{a}\"\nto = \"{b}\"\nat = \"{a}\"\n"
        );
        // Most combinations have fields the op does not take; also try the minimal forms.
        let variants = [
            text,
            format!("[[response.body]]\nop = \"{op}\"\nfrom = \"{a}\"\nto = \"{b}\"\n"),
            format!("[[response.body]]\nop = \"{op}\"\nat = \"{a}\"\n"),
            format!("[[response.body]]\nop = \"{op}\"\nat = \"{a}\"\nto = \"{to}\"\n"),
            format!("[[response.body]]\nop = \"{op}\"\nat = \"{a}\"\nvalue = 1\n"),
            format!("[[response.body]]\nop = \"{op}\"\nat = \"{a}\"\nstyle = \"snake\"\n"),
            format!("[[response.body]]\nop = \"{op}\"\nat = \"{a}\"\nvalues = {{ a = 1 }}\nstrict = true\n"),
        ];
        for v in variants {
            if let Ok(t) = Compiled::compile(&v, &Registry::new()) {
                let mut r = resp(200, &doc);
                if t.response(&mut r, &Links::default()).is_ok() {
                    // Whatever came out is JSON.
                    prop_assert!(Value::parse(r.body.as_deref().unwrap_or_default()).is_ok());
                }
            }
        }
    }

    /// Arbitrary bytes as a body: parsed or refused, never a panic, never half-written: a
    /// translation that fails leaves the message exactly as it was, one that succeeds leaves
    /// JSON (or no body).
    #[test]
    fn fuzz_bodies(bytes in prop::collection::vec(any::<u8>(), 0..300), doc in arb_json()) {
        let t = compile(ORDERS);
        let mut r = Response { status: StatusCode::OK, headers: HeaderMap::new(), body: Some(Bytes::from(bytes)) };
        let before = r.clone();
        match t.response(&mut r, &Links::default()) {
            Ok(()) => prop_assert!(json_or_empty(r.body.as_deref())),
            Err(_) => prop_assert_eq!(&r, &before, "a failed translation changed the answer"),
        }
        let mut r = resp(200, &doc);
        prop_assert!(Value::parse(doc.as_bytes()).is_ok(), "generator made bad JSON: {}", doc);
        let before = r.clone();
        match t.response(&mut r, &Links::default()) {
            Ok(()) => prop_assert!(json_or_empty(r.body.as_deref())),
            Err(_) => prop_assert_eq!(&r, &before, "a failed translation changed the answer"),
        }
        let mut q = req("POST", "/api/orders?note=%ff", &doc);
        let before = q.clone();
        match t.request(&mut q) {
            Ok(()) => prop_assert!(json_or_empty(q.body.as_deref())),
            Err(_) => prop_assert_eq!(&q, &before, "a failed translation changed the request"),
        }
    }
}

fn json_or_empty(body: Option<&[u8]>) -> bool {
    body.is_none_or(|b| b.is_empty() || Value::parse(b).is_ok())
}
