//! Structural comparison of a legacy answer with a new one: two 10 KiB JSON bodies of an
//! order list, parsed and walked, with and without noise rules. Target: median ≤ 100 µs.

/// As the binary runs: jemalloc, not glibc's allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use strangler_catalog::ShadowPolicy;
use strangler_facade::shadow_diff::{compare_with, Answer, Rules};

/// An order list of about `bytes` bytes; `drift` changes a total and a timestamp per line.
fn orders(bytes: usize, drift: bool) -> Vec<u8> {
    let mut items = Vec::new();
    let mut i = 0u32;
    loop {
        let total = if drift && i.is_multiple_of(7) {
            1000 + i
        } else {
            1000
        };
        items.push(serde_json::json!({
            "id": i,
            "sku": format!("SKU-{i:05}"),
            "quantity": i % 5 + 1,
            "total": total,
            "currency": "EUR",
            "updatedAt": format!("2026-11-22T05:{:02}:{:02}Z", i % 60, if drift { 9 } else { 0 }),
            "tags": ["a", "b"],
        }));
        let body = serde_json::to_vec(&serde_json::json!({ "items": items, "count": i + 1 }))
            .unwrap_or_default();
        if body.len() >= bytes {
            return body;
        }
        i += 1;
    }
}

fn bench(c: &mut Criterion) {
    let legacy = orders(10 * 1024, false);
    let new = orders(10 * 1024, true);
    let answer = |body: &'static [u8]| Answer {
        status: 200,
        content_type: Some("application/json"),
        headers: &[],
        body,
    };
    let legacy: &'static [u8] = Box::leak(legacy.into_boxed_slice());
    let new: &'static [u8] = Box::leak(new.into_boxed_slice());
    let plain = Rules::default();
    let policy: ShadowPolicy = serde_json::from_value(serde_json::json!({
        "ignore": ["$.items[*].updatedAt"],
        "unordered": ["$.items[*].tags"],
        "tolerance": { "$.items[*].total": 0.5 },
    }))
    .unwrap_or_default();
    let with_rules = Rules::compile(&policy);
    let mut g = c.benchmark_group("shadow_diff_10KiB");
    g.bench_function("parse_both_only", |b| {
        b.iter(|| {
            let a: Result<serde_json::Value, _> = serde_json::from_slice(black_box(legacy));
            let n: Result<serde_json::Value, _> = serde_json::from_slice(black_box(new));
            (a.is_ok(), n.is_ok())
        })
    });
    // What the diff parses into: the translators' value (exact number text, keys in document
    // order), for both bodies; `parse_both_only` above is the yardstick of serde_json's value.
    g.bench_function("parse_both_translator_value", |b| {
        b.iter(|| {
            let a = strangler_anti_corruption::json::Value::parse(black_box(legacy));
            let n = strangler_anti_corruption::json::Value::parse(black_box(new));
            (a.is_ok(), n.is_ok())
        })
    });
    g.bench_function("identical", |b| {
        b.iter(|| {
            compare_with(
                black_box(&answer(legacy)),
                black_box(&answer(legacy)),
                &plain,
            )
        })
    });
    g.bench_function("differing", |b| {
        b.iter(|| compare_with(black_box(&answer(legacy)), black_box(&answer(new)), &plain))
    });
    g.bench_function("differing_with_rules", |b| {
        b.iter(|| {
            compare_with(
                black_box(&answer(legacy)),
                black_box(&answer(new)),
                &with_rules,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
