//! CPU and memory: hostile bodies cost linear time off the async workers, within a time budget
//! per request, and bodies held in memory stay within one process-wide budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use strangler_catalog::{MigrationState, ShadowWrites};

use crate::harness::*;
use crate::shadow::{catalog, metric};

/// `/orders/{id}` migrated with `translator`; the new service echoes request bodies and
/// answers GETs with a small object.
async fn translated(
    translator: &str,
    tweak: impl FnOnce(&mut strangler_facade::FacadeConfig),
) -> FacadeHandle {
    let new = Router::new().route(
        "/orders/{id}",
        get(|| async { axum::Json(serde_json::json!({"id": 1})) })
            .post(|body: Bytes| async move { ([("content-type", "application/json")], body) }),
    );
    let (new, _) = axum_upstream(new).await;
    let legacy = named("legacy").await;
    let f = facade(legacy, tweak).await;
    let mut c = catalog(new, MigrationState::Migrated);
    c.contexts.get_mut("orders").unwrap().translator = Some(translator.to_owned());
    f.facade.apply_catalog(&c).unwrap();
    f
}

async fn post_body(url: String, body: Vec<u8>) -> (u16, http::HeaderMap, Bytes) {
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// Objects of 120,000 keys (a scan per key made each take ~50 s, and four of them starved every
/// client): translated whole, each repeat resolved, while other clients are served.
#[tokio::test]
async fn bodies_with_many_keys_are_translated_without_stalling_anyone() {
    let f = translated(
        "[[request.body]]\nop = \"default\"\nat = \"$.added\"\nvalue = true\n",
        |_| {},
    )
    .await;
    let mut body = String::from("{");
    for i in 0..120_000 {
        body.push_str(&format!("\"k{}\":{i},", i % 60_000));
    }
    body.push_str("\"last\":1}");
    let posts: Vec<_> = (0..4)
        .map(|_| tokio::spawn(post_body(f.url("/orders/1"), body.clone().into_bytes())))
        .collect();
    let (status, _, answer) = fetch(&f.url("/elsewhere")).await;
    assert_eq!((status.as_u16(), &answer[..]), (200, &b"legacy"[..]));
    for p in posts {
        let (status, _, echoed) = tokio::time::timeout(Duration::from_secs(60), p)
            .await
            .expect("a many-key body was not translated in time")
            .unwrap();
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&echoed).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(
            o.len(),
            60_002,
            "each repeated key once, plus last and added"
        );
        assert_eq!(o["k0"], 60_000, "a repeated key keeps its last value");
        assert_eq!(o["added"], true);
    }
}

const SLOW_JQ: &str =
    "[[response.body]]\nop = \"jq\"\nexpr = \"[limit(5000000; repeat(1))] | length | {n: .}\"\n";

/// A translation that would run for seconds: the client gets a 503 when its time budget is
/// spent (which could not happen if it ran on the worker that answers), the next one that
/// finds no free CPU gets a 503 too, and other clients are served meanwhile.
#[tokio::test]
async fn work_over_its_time_budget_or_without_a_free_cpu_is_a_503() {
    let f = translated(SLOW_JQ, |c| {
        c.limits.cpu_jobs = 1;
        c.limits.transform_budget = Duration::from_millis(300);
    })
    .await;
    let first = tokio::spawn({
        let url = f.url("/orders/1");
        async move { fetch(&url).await }
    });
    let second = tokio::spawn({
        let url = f.url("/orders/2");
        async move { fetch(&url).await }
    });
    let (status, _, body) = fetch(&f.url("/elsewhere")).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"legacy"[..]));
    for call in [first, second] {
        let (status, headers, body) = call.await.unwrap();
        let v = assert_problem(&headers, &body, 503);
        assert_eq!(v["type"], "urn:strangler:problem:overloaded", "{v}");
        assert_eq!(headers.get("retry-after").unwrap(), "1");
        assert_eq!(status, 503);
    }
    let mut out = String::new();
    f.facade.render_metrics(&mut out);
    assert_eq!(
        metric(&out, "strangler_cpu_too_slow_total "),
        Some(1),
        "{out}"
    );
    assert_eq!(metric(&out, "strangler_cpu_busy_total "), Some(1), "{out}");
}

/// Many large bodies at once: each is translated or refused with 503 and `Retry-After`, the
/// bytes held never pass the budget, and all of them are given back.
#[tokio::test]
async fn buffered_bodies_stay_within_one_budget() {
    let budget = 48 << 20;
    let f = translated(
        "[[request.body]]\nop = \"default\"\nat = \"$.added\"\nvalue = true\n",
        |c| c.limits.buffer_budget = budget,
    )
    .await;
    // 1 MiB of small numbers: the worst text-to-value ratio; each needs ~17 MiB to translate.
    let mut big = String::from("{\"xs\":[");
    while big.len() < 1 << 20 {
        big.push_str("1,");
    }
    big.push_str("1]}");
    let posts: Vec<_> = (0..12)
        .map(|_| tokio::spawn(post_body(f.url("/orders/1"), big.clone().into_bytes())))
        .collect();
    let held = |f: &FacadeHandle| {
        let mut out = String::new();
        f.facade.render_metrics(&mut out);
        metric(&out, "strangler_buffer_held_bytes ").unwrap()
    };
    let mut results = Vec::new();
    for p in posts {
        while !p.is_finished() {
            assert!(held(&f) <= budget as u64);
            tokio::task::yield_now().await;
        }
        results.push(p.await.unwrap());
    }
    for (status, headers, body) in &results {
        match status {
            200 => assert!(body.ends_with(b",\"added\":true}")),
            503 => {
                let v = assert_problem(headers, body, 503);
                assert!(
                    v["detail"].as_str().unwrap().contains("buffer budget"),
                    "{v}"
                );
                assert_eq!(headers.get("retry-after").unwrap(), "1");
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(body)),
        }
    }
    assert_eq!(held(&f), 0, "bytes were not given back");
    // Alone, one fits.
    let (status, _, _) = post_body(f.url("/orders/1"), big.into_bytes()).await;
    assert_eq!(status, 200);
}

/// A mirrored write whose copy the budget cannot keep is refused before legacy sees it: the
/// two sides never drift apart over memory.
#[tokio::test]
async fn a_mirrored_write_the_budget_cannot_keep_reaches_neither_side() {
    let writes = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&writes);
    let (legacy, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        post(move |_body: Bytes| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { "stored" }
        }),
    ))
    .await;
    let new = named("new").await;
    let f = facade(legacy, |c| {
        c.limits.buffer_budget = 1 << 20;
        c.shadow.max_body_bytes = 4 << 20;
    })
    .await;
    let mut c = catalog(new, MigrationState::Shadow);
    for r in c.routes.values_mut() {
        r.spec.shadow.writes = Some(ShadowWrites::Mirror);
    }
    f.facade.apply_catalog(&c).unwrap();
    let _outbox = f.with_outbox().await;
    let (status, headers, body) = post_body(f.url("/orders/1"), vec![b'x'; 3 << 19]).await;
    let v = assert_problem(&headers, &body, 503);
    assert!(
        v["detail"].as_str().unwrap().contains("mirrors this write"),
        "{v}"
    );
    assert_eq!(status, 503);
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "legacy took a write its mirror could not keep"
    );
    // A small write goes through.
    let (status, _, _) = post_body(f.url("/orders/1"), b"{}".to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!(writes.load(Ordering::SeqCst), 1);
}
