//! What a translation costs over a 10 KiB JSON answer, parsing and writing included: the
//! declarative rules (rename, move, value map, conversion) against a jq expression of the same
//! work, and a head-only translator for comparison.
//!
//!   cargo bench -p strangler-anti-corruption --bench translate

/// As the binary runs: jemalloc, not glibc's allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, StatusCode};
use strangler_anti_corruption::{Compiled, Links, Registry, Response};

/// A service's answer of about 10 KiB: an order with 56 lines.
fn body() -> String {
    let lines: Vec<String> = (0..56)
        .map(|i| {
            format!(
                r#"{{"line_id":{i},"sku_code":"SKU-{i:05}","description":"A cup of tea, large, with milk and honey {i}","quantity":{},"unit_price_cents":{},"status":"shipped","tags":["hot","drink"]}}"#,
                i % 4 + 1,
                150 + i * 7
            )
        })
        .collect();
    format!(
        r#"{{"order_id":981,"customer_id":42,"status":"paid","total_cents":123456,"placed_at":"2025-12-24T10:00:00Z","lines":[{}]}}"#,
        lines.join(",")
    )
}

const DECLARATIVE: &str = r#"
[[response.body]]
op = "rename"
from = "$.order_id"
to = "$.orderId"

[[response.body]]
op = "move"
from = "$.customer_id"
to = "$.customer.id"

[[response.body]]
op = "map"
at = "$.status"
values = { new = "N", paid = "P", shipped = "S" }

[[response.body]]
op = "map"
at = "$.lines[*].status"
values = { new = "N", paid = "P", shipped = "S" }

[[response.body]]
op = "rename"
from = "$.lines[*].sku_code"
to = "$.lines[*].sku"

[[response.body]]
op = "convert"
at = "$.lines[*].unit_price_cents"
to = "decimal"
"#;

const JQ: &str = r#"
[[response.body]]
op = "jq"
expr = '''
  {orderId: .order_id, customer: {id: .customer_id},
   status: ({new: "N", paid: "P", shipped: "S"}[.status] // .status),
   total_cents, placed_at,
   lines: [.lines[] | (.sku = .sku_code) | del(.sku_code)
           | .status = ({new: "N", paid: "P", shipped: "S"}[.status] // .status)
           | .unit_price_cents = ((.unit_price_cents / 100) | tostring)]}
'''
"#;

const HEAD_ONLY: &str = r#"
[[paths]]
from = "/api/orders/{id}"
to = "/v2/orders/{id}"

[response.headers]
add = { "x-contract" = "v1" }
remove = ["x-internal"]
"#;

fn run(c: &mut Criterion, name: &str, spec: &str, body: &Bytes) {
    let t = match Compiled::compile(spec, &Registry::new()) {
        Ok(t) => t,
        Err(e) => panic!("{name}: {e}"),
    };
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut resp = Response {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: Some(body.clone()),
            };
            let r = t.response(&mut resp, &Links::default());
            let _ = black_box((r, resp.body));
        })
    });
}

fn benches(c: &mut Criterion) {
    let body = Bytes::from(body());
    assert!(
        body.len() > 9 * 1024 && body.len() < 12 * 1024,
        "{}",
        body.len()
    );
    run(
        c,
        "declarative rename/move/map/convert, 10 KiB",
        DECLARATIVE,
        &body,
    );
    run(c, "jq of the same work, 10 KiB", JQ, &body);
    run(c, "head-only translator", HEAD_ONLY, &body);
    c.bench_function("parse and write only, 10 KiB", |b| {
        b.iter(|| {
            let v = strangler_anti_corruption::json::Value::parse(&body);
            black_box(v.map(|v| v.to_json()))
        })
    });

    // The yardstick on this machine: serde_json's own value, parsed and written.
    c.bench_function("serde_json::Value parse and write, 10 KiB", |b| {
        b.iter(|| {
            let v: Result<serde_json::Value, _> = serde_json::from_slice(&body);
            black_box(v.map(|v| v.to_string()))
        })
    });
}

criterion_group!(translate, benches);
criterion_main!(translate);
