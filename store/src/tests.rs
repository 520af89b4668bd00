//! The same behaviour tests on SQLite and on PostgreSQL.
//!
//! Size: over 600 lines on purpose: one body of tests that every store backend must pass, run
//! once per backend; splitting it would make a backend easy to leave out.
//!
//! The PostgreSQL half runs when `STRANGLER_TEST_POSTGRES` names a server
//! (`postgres://postgres@127.0.0.1:5432/test`); `.ci/run` sets it, and then a server that
//! cannot be reached fails the tests. Each test gets a database of its own.

use std::sync::atomic::{AtomicU32, Ordering};

use std::sync::Arc;

use strangler_catalog::*;

use super::*;
use strangler_catalog::clock::now_ms;

static N: AtomicU32 = AtomicU32::new(0);

/// Removes what a fresh store was made in when the test is done, passed or not.
enum Cleanup {
    Dir(std::path::PathBuf),
    Database { admin_url: String, name: String },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin_url, name } => {
                let _ = std::process::Command::new("psql")
                    .args([
                        admin_url.as_str(),
                        "-q",
                        "-c",
                        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

/// A fresh, empty store of the given kind; `None` when PostgreSQL tests are not asked for.
async fn fresh(backend: &str) -> Option<(SqlStore, Cleanup)> {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let name = format!("strangler_test_{}_{}", std::process::id(), n);
    match backend {
        "sqlite" => {
            let dir = std::env::temp_dir().join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            let url = format!("sqlite://{}", dir.join("catalog.db").display());
            Some((
                SqlStore::connect(&url, Arc::new(SizeOnly)).await.unwrap(),
                Cleanup::Dir(dir),
            ))
        }
        _ => {
            let admin_url = std::env::var("STRANGLER_TEST_POSTGRES").ok()?;
            sqlx::any::install_default_drivers();
            let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
                .await
                .unwrap_or_else(|e| {
                    panic!("STRANGLER_TEST_POSTGRES={admin_url} is not reachable: {e}")
                });
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(b, _)| b);
            let store = SqlStore::connect(&format!("{base}/{name}"), Arc::new(SizeOnly))
                .await
                .unwrap();
            Some((store, Cleanup::Database { admin_url, name }))
        }
    }
}

fn meta(reason: &str) -> ChangeMeta {
    ChangeMeta {
        force: false,
        actor: "alice".into(),
        reason: reason.into(),
    }
}

fn service(name: &str) -> Change {
    Change::PutService(Service {
        name: name.into(),
        urls: vec!["http://127.0.0.1:9001".into()],
        policy: Default::default(),
    })
}

fn context(name: &str, target: &str) -> Change {
    Change::PutContext(Context {
        cut_over: false,
        owner_move: None,
        name: name.into(),
        target: target.into(),
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
    })
}

fn route(context: &str, path: &str) -> Change {
    Change::AddRoute {
        context: context.into(),
        spec: RouteSpec {
            methods: vec!["GET".into()],
            path: path.into(),
            host: None,
            headers: vec![],
            query: vec![],
            version: None,
            reads: false,
            shadow: Default::default(),
        },
    }
}

async fn changes_bump_the_version_and_are_audited(store: SqlStore) {
    assert_eq!(store.version().await.unwrap(), 0);
    let c = store
        .apply(&service("orders-svc"), 0, &meta("new service"))
        .await
        .unwrap();
    assert_eq!(c.version, 1);
    let c = store
        .apply(&context("orders", "orders-svc"), 1, &meta("carve orders"))
        .await
        .unwrap();
    let c = store
        .apply(&route("orders", "/orders/{id}"), c.version, &meta("claim"))
        .await
        .unwrap();
    let promote = Change::Transition {
        context: "orders".into(),
        action: Action::Promote,
    };
    let c = store
        .apply(&promote, c.version, &meta("shadow it"))
        .await
        .unwrap();
    assert_eq!(c.version, 4);

    let loaded = store.load().await.unwrap();
    assert_eq!(loaded, c, "what was applied is what is stored");
    assert_eq!(loaded.contexts["orders"].state, MigrationState::Shadow);

    let log = store.audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(log.len(), 4);
    let last = &log[0];
    assert_eq!(
        (last.action.as_str(), last.target.as_str(), last.version),
        ("promote", "context:orders", 4)
    );
    assert_eq!(last.actor, "alice");
    assert_eq!(last.reason, "shadow it");
    assert_eq!(last.before.as_ref().unwrap()["state"], "legacy");
    assert_eq!(last.after.as_ref().unwrap()["state"], "shadow");
    let only = store
        .audit(&AuditQuery {
            target: Some("context:orders".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        only.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["promote", "put-context"]
    );
    let page = store
        .audit(&AuditQuery {
            limit: Some(2),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let next = store
        .audit(&AuditQuery {
            limit: Some(2),
            before_id: Some(page[1].id),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(next.len(), 2);
    assert!(next[0].id < page[1].id);
}

async fn a_stale_change_is_refused(store: SqlStore) {
    store.apply(&service("a"), 0, &meta("x")).await.unwrap();
    match store.apply(&service("b"), 0, &meta("based on 0")).await {
        Err(StoreError::Stale {
            based_on: 0,
            current: 1,
        }) => {}
        other => panic!("expected a stale refusal, got {other:?}"),
    }
    assert_eq!(store.version().await.unwrap(), 1);
    assert!(!store.load().await.unwrap().services.contains_key("b"));
}

async fn a_failed_change_leaves_everything_untouched(store: SqlStore) {
    let c = store
        .apply(&service("orders-svc"), 0, &meta("x"))
        .await
        .unwrap();
    let before = store.load().await.unwrap();
    let audit_before = store.audit(&AuditQuery::default()).await.unwrap().len();
    let err = store
        .apply(&context("orders", "ghost"), c.version, &meta("typo"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown service `ghost`"), "{err}");
    assert_eq!(store.load().await.unwrap(), before);
    assert_eq!(store.version().await.unwrap(), before.version);
    assert_eq!(
        store.audit(&AuditQuery::default()).await.unwrap().len(),
        audit_before
    );
}

async fn the_audit_log_is_append_only(store: SqlStore) {
    store.apply(&service("a"), 0, &meta("x")).await.unwrap();
    let update = sqlx::query("UPDATE audit SET reason = 'forged'")
        .execute(&store.pool)
        .await;
    assert!(update.is_err(), "an audit row was rewritten");
    let delete = sqlx::query("DELETE FROM audit").execute(&store.pool).await;
    assert!(delete.is_err(), "an audit row was deleted");
    assert_eq!(
        store.audit(&AuditQuery::default()).await.unwrap()[0].reason,
        "x"
    );
}

async fn concurrent_changes_on_one_version_let_exactly_one_pass(store: SqlStore) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.apply(&service(&format!("s{i}")), 0, &meta("race")).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Stale { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(store.version().await.unwrap(), 1);
}

async fn runtime_changes_are_recorded(store: SqlStore) {
    let e = store
        .record(
            &meta("debugging"),
            "set-log-level",
            "runtime:log-level",
            Some("info".into()),
            Some("debug".into()),
        )
        .await
        .unwrap();
    let log = store.audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(log, vec![e]);
}

async fn shadow_results_from_replicas_add_up(store: SqlStore) {
    let row = |compared, matched, sig: Option<(&str, i64)>| ShadowMinute {
        minute: 29_000_000,
        context: "orders".into(),
        compared,
        matched,
        legacy_us: 1000,
        new_us: 2000,
        signatures: sig
            .into_iter()
            .map(|(s, n)| SignatureCount {
                route: "r1".into(),
                signature: s.to_owned(),
                count: n,
            })
            .collect(),
        skipped: [("budget_full".to_owned(), 2)].into(),
        learned: 1,
        noise: [("$.requestId".to_owned(), 1)].into(),
        examples: Vec::new(),
        pairs: vec![ContractPair {
            route: "r1".into(),
            at_ms: 1,
            method: "GET".into(),
            uri: "/orders/7?x=1".into(),
            request_type: None,
            request_body: String::new(),
            status: 200,
            response_type: Some("application/json".into()),
            response_body: r#"{"id":7}"#.into(),
        }],
    };
    store
        .add_shadow(&[row(10, 9, Some(("type $.total", 1)))])
        .await
        .unwrap();
    store
        .add_shadow(&[row(5, 3, Some(("type $.total", 2)))])
        .await
        .unwrap();
    // The same exchange twice is kept once; other contexts have none.
    let pairs = store.contract_pairs("orders").await.unwrap();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    assert_eq!(
        (
            pairs[0].uri.as_str(),
            pairs[0].status,
            pairs[0].response_body.as_str()
        ),
        ("/orders/7?x=1", 200, r#"{"id":7}"#)
    );
    assert!(store.contract_pairs("carts").await.unwrap().is_empty());
    let got = store.shadow("orders", 28_999_999).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].compared, got[0].matched, got[0].legacy_us),
        (15, 12, 2000)
    );
    assert_eq!(
        got[0].signatures,
        [SignatureCount {
            route: "r1".into(),
            signature: "type $.total".into(),
            count: 3
        }]
    );
    assert_eq!(got[0].skipped["budget_full"], 4);
    assert_eq!(got[0].learned, 2);
    assert!(store.shadow("orders", 29_000_001).await.unwrap().is_empty());
    let noise = store.shadow_noise("orders").await.unwrap();
    assert_eq!(
        (noise[0].path.as_str(), noise[0].count, noise[0].dismissed),
        ("$.requestId", 2, false)
    );
    assert!(store
        .dismiss_noise("orders", "$.requestId", true)
        .await
        .unwrap());
    assert!(!store
        .dismiss_noise("orders", "$.nothing", true)
        .await
        .unwrap());
    assert!(store.shadow_noise("orders").await.unwrap()[0].dismissed);

    // Examples: the latest few per signature are kept.
    let mut with_examples = row(1, 0, Some(("type $.total", 1)));
    for i in 0..8 {
        with_examples.examples.push(ShadowExample {
            signature: "type $.total".into(),
            at_ms: i,
            path: format!("/orders/{i}"),
            ..ShadowExample::default()
        });
    }
    store.add_shadow(&[with_examples]).await.unwrap();
    let kept = store.shadow_examples("orders").await.unwrap();
    let paths: Vec<&str> = kept.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/orders/7",
            "/orders/6",
            "/orders/5",
            "/orders/4",
            "/orders/3"
        ],
        "the five newest, once each"
    );

    // Retention: everything from before the cut goes, newer results stay.
    let mut newer = row(4, 4, None);
    newer.minute = 29_000_100;
    store.add_shadow(&[newer]).await.unwrap();
    assert!(store.prune_shadow(29_000_050).await.unwrap() > 0);
    let left = store.shadow("orders", 0).await.unwrap();
    assert_eq!(
        left.iter().map(|m| m.minute).collect::<Vec<_>>(),
        [29_000_100]
    );
    assert!(store.shadow_examples("orders").await.unwrap().is_empty());
}

async fn the_write_owner_moves_only_once_the_outbox_toward_it_is_drained(store: SqlStore) {
    let step = |action| Change::Transition {
        context: "orders".into(),
        action,
    };
    let mut v = 0;
    for change in [
        service("orders-svc"),
        context("orders", "orders-svc"),
        step(Action::Promote),
        step(Action::Promote),
    ] {
        v = store
            .apply(&change, v, &meta("setup"))
            .await
            .unwrap()
            .version;
    }
    let mirrored = |n: u8, toward: Side| OutboxItem {
        origin_key: format!("w{n}"),
        toward,
        context: "orders".into(),
        route: "r1".into(),
        idempotency_key: format!("k{n}"),
        method: "POST".into(),
        uri: "/orders".into(),
        body: b"{}".to_vec(),
        legacy_status: 201,
        created_ms: now_ms() - 1500,
        ..OutboxItem::default()
    };
    // Two writes toward the new service wait: the cutover is refused, nothing changes.
    let ids = store
        .outbox_put(&[mirrored(1, Side::New), mirrored(2, Side::New)])
        .await
        .unwrap();
    match store
        .apply(&step(Action::Cutover), v, &meta("cut over"))
        .await
    {
        Err(StoreError::NotDrained {
            context,
            toward: Side::New,
            pending: 2,
            oldest_ms: Some(age),
            dead: 0,
        }) => {
            assert_eq!(context, "orders");
            assert!(age >= 1500, "{age}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.version().await.unwrap(), v, "nothing was applied");
    assert_eq!(
        store.load().await.unwrap().contexts["orders"].owner(),
        Side::Legacy
    );
    // A write toward legacy does not hold a move toward new.
    store
        .outbox_put(&[mirrored(3, Side::Legacy)])
        .await
        .unwrap();
    // One delivered, one given up on: nothing pending, the cutover passes, and the audit
    // says what never arrived.
    store.outbox_done(&[ids[0]]).await.unwrap();
    store
        .outbox_retry(ids[1], now_ms(), Some("refused"), true)
        .await
        .unwrap();
    let c = store
        .apply(&step(Action::Cutover), v, &meta("cut over"))
        .await
        .unwrap();
    v = c.version;
    assert_eq!(c.contexts["orders"].owner(), Side::New);
    let audit = store.audit(&AuditQuery::default()).await.unwrap();
    let after = audit[0].after.clone().unwrap();
    assert_eq!(after["left_behind"][0]["dead"], 1, "{after}");
    // Back to legacy: the write toward legacy waits, so the rollback is refused …
    match store
        .apply(&step(Action::Rollback), v, &meta("roll back"))
        .await
    {
        Err(StoreError::NotDrained {
            toward: Side::Legacy,
            pending: 1,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // … unless forced, which records it as left behind.
    let forced = ChangeMeta {
        force: true,
        ..meta("legacy is on fire")
    };
    let c = store
        .apply(&step(Action::Rollback), v, &forced)
        .await
        .unwrap();
    assert_eq!(c.contexts["orders"].owner(), Side::Legacy);
    let audit = store.audit(&AuditQuery::default()).await.unwrap();
    let after = audit[0].after.clone().unwrap();
    assert_eq!(after["left_behind"][0]["pending"], 1, "{after}");
    assert_eq!(after["left_behind"][0]["toward"], "legacy", "{after}");
}

async fn a_write_shipped_twice_is_kept_and_delivered_once(store: SqlStore) {
    let item = |key: &str| OutboxItem {
        origin_key: key.into(),
        context: "orders".into(),
        route: "r1".into(),
        idempotency_key: format!("idem-{key}"),
        method: "POST".into(),
        uri: "/orders".into(),
        body: b"{}".to_vec(),
        legacy_status: 201,
        ..OutboxItem::default()
    };
    let first = store.outbox_put(&[item("a"), item("b")]).await.unwrap();
    assert_eq!(first.len(), 2);
    // The same shipment again (a crash before the log noted it): nothing new.
    let again = store
        .outbox_put(&[item("a"), item("b"), item("c")])
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "only `c` is new");
    let claimed = store.outbox_claim(10, 60_000).await.unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|i| i.origin_key.as_str())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    for i in &claimed {
        store.outbox_done(&[i.id]).await.unwrap();
    }
    assert_eq!(
        store
            .outbox_stats("orders", Side::New)
            .await
            .unwrap()
            .pending,
        0
    );
    // Delivered, then shipped once more: still recognised, not delivered twice.
    assert!(store.outbox_put(&[item("a")]).await.unwrap().is_empty());
    assert!(store.outbox_claim(10, 60_000).await.unwrap().is_empty());
    // Writes without an origin key (none is ever made so now) are each their own.
    assert_eq!(
        store.outbox_put(&[item(""), item("")]).await.unwrap().len(),
        2
    );
}

async fn the_outbox_delivers_each_context_in_order(store: SqlStore) {
    let item = |context: &str, n: u8| OutboxItem {
        context: context.into(),
        route: "r1".into(),
        idempotency_key: format!("k{n}"),
        method: "POST".into(),
        uri: "/orders".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: vec![n, 0, 255],
        legacy_status: 201,
        legacy_headers: vec![],
        legacy_body: (n != 3).then(|| b"{}".to_vec()),
        ..OutboxItem::default()
    };
    let ids = store
        .outbox_put(&[item("orders", 1), item("orders", 2), item("carts", 3)])
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    let claimed = store.outbox_claim(10, 60_000).await.unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|i| i.idempotency_key.as_str())
            .collect::<Vec<_>>(),
        ["k1", "k2", "k3"]
    );
    assert_eq!(
        claimed[0].body,
        [1, 0, 255],
        "bodies are bytes, kept exactly"
    );
    assert_eq!(claimed[2].legacy_body, None);
    assert!(
        store.outbox_claim(10, 60_000).await.unwrap().is_empty(),
        "claimed writes are leased"
    );
    // The first orders write fails and waits; the second must wait behind it.
    let past = now_ms() - 1;
    store
        .outbox_retry(ids[0], now_ms() + 60_000, Some("refused"), false)
        .await
        .unwrap();
    store.outbox_retry(ids[1], past, None, false).await.unwrap();
    store.outbox_done(&[ids[2]]).await.unwrap();
    assert!(
        store.outbox_claim(10, 60_000).await.unwrap().is_empty(),
        "a later write of a context overtook an earlier one"
    );
    let stats = store.outbox_stats("orders", Side::New).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (2, 0));
    assert_eq!(stats.last_error.as_deref(), Some("refused"));
    // Due again: both, in order; the attempt was counted once.
    store.outbox_retry(ids[0], past, None, false).await.unwrap();
    let again = store.outbox_claim(10, 60_000).await.unwrap();
    assert_eq!(
        again.iter().map(|i| (i.id, i.attempts)).collect::<Vec<_>>(),
        [(ids[0], 1), (ids[1], 0)]
    );
    // A dead write no longer holds its context back.
    store
        .outbox_retry(ids[0], past, Some("gave up"), true)
        .await
        .unwrap();
    store.outbox_retry(ids[1], past, None, false).await.unwrap();
    let after = store.outbox_claim(10, 60_000).await.unwrap();
    assert_eq!(after.iter().map(|i| i.id).collect::<Vec<_>>(), [ids[1]]);
    let stats = store.outbox_stats("orders", Side::New).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (1, 1));
    assert_eq!(
        store
            .outbox_stats("carts", Side::New)
            .await
            .unwrap()
            .pending,
        0
    );
}

async fn traffic_from_replicas_adds_up_and_is_pruned(store: SqlStore) {
    let row = |minute: i64, context: &str, side: &str, n: i64, slow: i64| {
        let mut buckets = vec![0; LATENCY_BUCKETS];
        buckets[2] = n - slow; // up to 5 ms
        buckets[8] = slow; // up to 500 ms
        TrafficMinute {
            minute,
            context: context.into(),
            side: side.into(),
            requests: n,
            errors: slow,
            latency_us: n * 3_000,
            buckets,
            fallbacks: 0,
        }
    };
    // Two replicas flush the same minute; a third row is another side, a fourth unclaimed.
    store
        .add_traffic(&[
            row(100, "orders", "new", 90, 1),
            row(100, "orders", "legacy", 10, 0),
        ])
        .await
        .unwrap();
    store
        .add_traffic(&[
            row(100, "orders", "new", 9, 1),
            row(101, "", "legacy", 50, 0),
        ])
        .await
        .unwrap();
    let all = store.traffic(None, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    let new = all
        .iter()
        .find(|r| r.context == "orders" && r.side == "new")
        .unwrap();
    assert_eq!((new.requests, new.errors, new.latency_us), (99, 2, 297_000));
    assert_eq!(new.buckets[2], 97);
    assert_eq!(new.buckets[8], 2);
    // 97 of 99 within 5 ms: the median is 5 ms, the 99th percentile 500 ms.
    assert_eq!(new.quantile_ms(0.5), Some(5));
    assert_eq!(new.quantile_ms(0.99), Some(500));
    assert_eq!(store.traffic(Some("orders"), 0).await.unwrap().len(), 2);
    assert_eq!(store.traffic(Some(""), 0).await.unwrap().len(), 1);
    assert_eq!(store.traffic(None, 101).await.unwrap().len(), 1);
    // Per 60-minute bucket: minutes 100 and 101 are both in the bucket starting at 60.
    let series = store.traffic_series(0, 60).await.unwrap();
    assert_eq!(
        series
            .iter()
            .map(|r| (r.minute, r.side.as_str(), r.requests))
            .collect::<Vec<_>>(),
        vec![(60, "legacy", 60), (60, "new", 99)]
    );
    let totals = store.traffic_totals(0).await.unwrap();
    assert_eq!(totals.len(), 3);
    let t = totals
        .iter()
        .find(|r| r.context == "orders" && r.side == "new")
        .unwrap();
    assert_eq!((t.requests, t.buckets[8]), (99, 2));
    store.prune_shadow(101).await.unwrap();
    assert_eq!(store.traffic(None, 0).await.unwrap().len(), 1);
}

/// One flush with rows that share keys (minutes of one hour, one route seen in several minutes)
/// and more rows than one statement takes: summed before they are written, all of them kept.
async fn a_large_flush_is_compacted_and_written_whole(store: SqlStore) {
    let row = |minute: i64, n: i64| TrafficMinute {
        minute,
        context: "orders".into(),
        side: "new".into(),
        requests: n,
        errors: 0,
        latency_us: n,
        buckets: vec![n; LATENCY_BUCKETS],
        fallbacks: 0,
    };
    store
        .add_traffic(&[row(120, 1), row(121, 2), row(121, 4), row(179, 8)])
        .await
        .unwrap();
    let minutes = store.traffic(Some("orders"), 0).await.unwrap();
    assert_eq!(
        minutes
            .iter()
            .map(|r| (r.minute, r.requests))
            .collect::<Vec<_>>(),
        [(120, 1), (121, 6), (179, 8)]
    );
    let hours = store.traffic_hourly("orders", 0).await.unwrap();
    assert_eq!(
        hours
            .iter()
            .map(|r| (r.minute, r.requests, r.buckets[5]))
            .collect::<Vec<_>>(),
        [(120, 15, 15)]
    );
    // 1,200 routes, each seen in two minutes of the hour: 2,400 rows in, 1,200 per table out,
    // in three statements each.
    let rows: Vec<PathTraffic> = (0..1200)
        .flat_map(|i| {
            [125, 126].map(|minute| PathTraffic {
                minute,
                context: "orders".into(),
                path: format!("r{i}"),
                side: "legacy".into(),
                requests: 1,
                errors: 0,
                latency_us: 10,
            })
        })
        .collect();
    store.add_path_traffic(&rows).await.unwrap();
    let paths = store.path_traffic("orders", 0).await.unwrap();
    assert_eq!(paths.len(), 1200);
    assert!(paths.iter().all(|r| r.requests == 2 && r.latency_us == 20));
    let seen = store
        .last_seen("legacy", &["orders".to_owned()])
        .await
        .unwrap();
    assert_eq!(seen.len(), 1200);
    assert!(seen.iter().all(|s| s.minute == 126), "{:?}", &seen[..1]);
}

async fn hourly_rollups_path_traffic_and_carving(store: SqlStore) {
    let row = |minute: i64, side: &str, n: i64, fallbacks: i64| TrafficMinute {
        minute,
        context: "orders".into(),
        side: side.into(),
        requests: n,
        errors: 1,
        latency_us: n,
        buckets: vec![n; LATENCY_BUCKETS],
        fallbacks,
    };
    store
        .add_traffic(&[row(130, "legacy", 10, 2), row(185, "legacy", 5, 1)])
        .await
        .unwrap();
    store
        .add_traffic(&[row(131, "legacy", 1, 0)])
        .await
        .unwrap();
    // Whole hours come from the rollup, the part before the first whole hour from minutes.
    let sum = |rows: Vec<TrafficMinute>| {
        rows.iter()
            .map(|r| (r.requests, r.errors, r.fallbacks))
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    };
    assert_eq!(sum(store.traffic_totals(100).await.unwrap()), (16, 3, 3));
    assert_eq!(sum(store.traffic_totals(131).await.unwrap()), (6, 2, 1));
    assert_eq!(sum(store.traffic_totals(150).await.unwrap()), (5, 1, 1));
    let per_side = |rows: Vec<TrafficMinute>| {
        rows.iter()
            .map(|r| (r.side.clone(), r.requests, r.fallbacks, r.buckets[0]))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        per_side(store.traffic_sum(Some("orders"), 131).await.unwrap()),
        [("legacy".to_owned(), 6, 1, 6)]
    );
    assert_eq!(
        per_side(store.traffic_sum(None, 0).await.unwrap()),
        [("legacy".to_owned(), 16, 3, 16)]
    );
    assert!(store
        .traffic_sum(Some("carts"), 0)
        .await
        .unwrap()
        .is_empty());
    let hourly = store.traffic_hourly("orders", 0).await.unwrap();
    assert_eq!(
        hourly
            .iter()
            .map(|r| (r.minute, r.requests, r.fallbacks, r.buckets[3]))
            .collect::<Vec<_>>(),
        [(120, 11, 2, 11), (180, 5, 1, 5)]
    );
    assert!(store.traffic_hourly("carts", 0).await.unwrap().is_empty());
    let series = store.traffic_series(120, 60).await.unwrap();
    assert_eq!(
        series
            .iter()
            .map(|r| (r.minute, r.requests, r.fallbacks))
            .collect::<Vec<_>>(),
        [(120, 11, 2), (180, 5, 1)]
    );

    // Routes and unclaimed templates per hour, from two replicas.
    let path = |minute: i64, context: &str, path: &str, side: &str, n: i64| PathTraffic {
        minute,
        context: context.into(),
        path: path.into(),
        side: side.into(),
        requests: n,
        errors: n / 2,
        latency_us: n * 10,
    };
    store
        .add_path_traffic(&[
            path(125, "orders", "r1", "legacy", 4),
            path(126, "", "GET /cart/{id}", "legacy", 6),
        ])
        .await
        .unwrap();
    store
        .add_path_traffic(&[
            path(130, "orders", "r1", "legacy", 2),
            path(250, "orders", "r1", "new", 8),
        ])
        .await
        .unwrap();
    let r1 = store.path_traffic("orders", 0).await.unwrap();
    assert_eq!(
        r1.iter()
            .map(|r| (
                r.path.as_str(),
                r.side.as_str(),
                r.requests,
                r.errors,
                r.latency_us
            ))
            .collect::<Vec<_>>(),
        [("r1", "legacy", 6, 3, 60), ("r1", "new", 8, 4, 80)]
    );
    assert_eq!(store.path_traffic("orders", 240).await.unwrap().len(), 1);
    // A later day: windows that start mid-day read hours, whole days read the daily rows.
    store
        .add_path_traffic(&[path(1440 + 70, "orders", "r1", "new", 1)])
        .await
        .unwrap();
    let new_since = |rows: Vec<PathTraffic>| -> i64 {
        rows.iter()
            .filter(|r| r.side == "new")
            .map(|r| r.requests)
            .sum()
    };
    assert_eq!(new_since(store.path_traffic("orders", 0).await.unwrap()), 9);
    assert_eq!(
        new_since(store.path_traffic("orders", 200).await.unwrap()),
        9
    );
    assert_eq!(
        new_since(store.path_traffic("orders", 300).await.unwrap()),
        1
    );
    assert_eq!(
        new_since(store.path_traffic("orders", 1440).await.unwrap()),
        1
    );
    assert_eq!(
        new_since(store.path_traffic("orders", 1440 + 120).await.unwrap()),
        0
    );
    let unclaimed = store.path_traffic("", 0).await.unwrap();
    assert_eq!(
        (unclaimed.len(), unclaimed[0].path.as_str()),
        (1, "GET /cart/{id}")
    );
    let seen = store
        .last_seen("legacy", &["orders".to_owned(), "carts".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        seen.iter()
            .map(|l| (l.context.as_str(), l.path.as_str(), l.minute))
            .collect::<Vec<_>>(),
        [("orders", "r1", 130)],
        "the latest minute, routes only"
    );
    // Pruning the hours keeps when a route was last served.
    store.prune_shadow(3000).await.unwrap();
    assert!(store.path_traffic("orders", 0).await.unwrap().is_empty());
    assert!(store.traffic_hourly("orders", 0).await.unwrap().is_empty());
    assert_eq!(
        store
            .last_seen("legacy", &["orders".to_owned()])
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .last_seen("legacy", &["carts".to_owned()])
        .await
        .unwrap()
        .is_empty());
    assert!(store.last_seen("legacy", &[]).await.unwrap().is_empty());

    // Shadow totals per context in one query.
    store
        .add_shadow(&[
            ShadowMinute {
                minute: 500,
                context: "orders".into(),
                compared: 4,
                matched: 3,
                ..Default::default()
            },
            ShadowMinute {
                minute: 501,
                context: "orders".into(),
                compared: 2,
                matched: 2,
                ..Default::default()
            },
        ])
        .await
        .unwrap();
    let series = store.shadow_series("orders", 0, 60).await.unwrap();
    assert_eq!(
        series
            .iter()
            .map(|r| (r.minute, r.compared, r.matched))
            .collect::<Vec<_>>(),
        [(480, 6, 5)]
    );
    let totals = store.shadow_totals(500).await.unwrap();
    assert_eq!(
        totals
            .iter()
            .map(|t| (t.context.as_str(), t.compared, t.matched))
            .collect::<Vec<_>>(),
        [("orders", 6, 5)]
    );

    // A context carved with its routes is one version and one audit row; carving it again
    // changes nothing.
    let mut v = store.version().await.unwrap();
    v = store
        .apply(&service("svc"), v, &meta("svc"))
        .await
        .unwrap()
        .version;
    let Change::PutContext(ctx) = context("shop", "svc") else {
        unreachable!()
    };
    let Change::AddRoute { spec, .. } = route("shop", "/shop/{id}") else {
        unreachable!()
    };
    let carve = Change::Carve {
        context: ctx,
        routes: vec![spec],
    };
    let after = store.apply(&carve, v, &meta("carve")).await.unwrap();
    assert_eq!(after.version, v + 1);
    assert_eq!(after.routes_of("shop").count(), 1);
    let again = store.apply(&carve, v + 1, &meta("again")).await;
    assert!(matches!(again, Err(StoreError::Change(_))), "{again:?}");
    assert_eq!(store.version().await.unwrap(), v + 1);
    v = store
        .apply(&context("other", "svc"), v + 1, &meta("second"))
        .await
        .unwrap()
        .version;
    let last = store.last_changes("context:").await.unwrap();
    assert_eq!(
        last.iter()
            .map(|a| (a.target.as_str(), a.action.as_str()))
            .collect::<Vec<_>>(),
        [("context:other", "put-context"), ("context:shop", "carve")]
    );
    let history = store.audit_of("context:", 10).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|a| a.reason.as_str())
            .collect::<Vec<_>>(),
        ["carve", "second"],
        "oldest first"
    );
    assert_eq!(store.audit_of("context:", 1).await.unwrap()[0].version, v);
    assert!(store.audit_of("service:", 10).await.unwrap().len() == 1);
}

async fn a_lease_has_one_holder_until_it_expires(store: SqlStore) {
    assert!(store.lease("autopilot", "a", 60_000).await.unwrap());
    assert!(
        store.lease("autopilot", "a", 60_000).await.unwrap(),
        "renewed"
    );
    assert!(
        !store.lease("autopilot", "b", 60_000).await.unwrap(),
        "held by a"
    );
    assert_eq!(
        store.lease_holder("autopilot").await.unwrap().map(|h| h.0),
        Some("a".to_owned())
    );
    assert!(
        store.lease("other", "b", 60_000).await.unwrap(),
        "another name"
    );
    // a lets it lapse: b takes it.
    assert!(store.lease("autopilot", "a", -1).await.unwrap());
    assert_eq!(store.lease_holder("autopilot").await.unwrap(), None);
    assert!(store.lease("autopilot", "b", 60_000).await.unwrap());
    assert!(!store.lease("autopilot", "a", 60_000).await.unwrap());
}

async fn events_are_delivered_in_order_per_context_with_retries(store: SqlStore) {
    // Two state changes of `orders` (in the change's transaction) and one of `carts`.
    let mut v = store.version().await.unwrap();
    for change in [
        service("svc"),
        context("orders", "svc"),
        context("carts", "svc"),
    ] {
        v = store
            .apply(&change, v, &meta("setup"))
            .await
            .unwrap()
            .version;
    }
    for (ctx, reason) in [
        ("orders", "first"),
        ("carts", "other"),
        ("orders", "second"),
    ] {
        v = store
            .apply(
                &Change::Transition {
                    context: ctx.into(),
                    action: Action::Promote,
                },
                v,
                &meta(reason),
            )
            .await
            .unwrap()
            .version;
    }
    let breaker = store
        .add_event(
            "",
            "io.strangler.breaker.opened",
            &serde_json::json!({"service": "svc"}),
        )
        .await
        .unwrap();
    let due = store.events_due("hook", 10, 60_000).await.unwrap();
    let seen: Vec<(String, String)> = due
        .iter()
        .map(|d| {
            (
                d.event.context.clone(),
                d.event.data["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    // The creations came first, one per context at a time: orders' and carts' creations, and
    // the breaker's event (no context).
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(due[0].event.kind, "io.strangler.context.state.changed");
    assert_eq!(due[2].event.id, breaker);
    for d in &due {
        store.event_delivered("hook", d.event.id).await.unwrap();
    }
    // Next: orders' "first" and carts' "other"; orders' "second" waits behind "first".
    let due = store.events_due("hook", 10, 60_000).await.unwrap();
    let reasons: Vec<&str> = due
        .iter()
        .map(|d| d.event.data["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["first", "other"]);
    assert_eq!(due[0].event.data["to"], "shadow");
    let first = due[0].event.id;
    store
        .event_delivered("hook", due[1].event.id)
        .await
        .unwrap();
    store
        .event_failed(
            "hook",
            first,
            now_ms() + 60_000,
            "connection refused",
            false,
        )
        .await
        .unwrap();
    assert!(
        store
            .events_due("hook", 10, 60_000)
            .await
            .unwrap()
            .is_empty(),
        "second waits"
    );
    let stats = store.sink_stats().await.unwrap();
    assert_eq!(
        (stats[0].pending, stats[0].last_error.as_deref()),
        (2, Some("connection refused"))
    );
    // Retried now: first, then second, in order.
    store
        .event_failed("hook", first, 0, "again", false)
        .await
        .unwrap();
    let due = store.events_due("hook", 10, 60_000).await.unwrap();
    assert_eq!((due[0].event.id, due[0].attempts), (first, 2));
    store
        .event_failed("hook", first, 0, "gave up", true)
        .await
        .unwrap();
    let due = store.events_due("hook", 10, 60_000).await.unwrap();
    assert_eq!(
        due[0].event.data["reason"], "second",
        "a dead event no longer holds its context"
    );
    // Another sink starts with the events of its horizon, independently.
    assert_eq!(
        store.events_due("nats", 100, 60_000).await.unwrap().len(),
        3
    );
    let stats = store.sink_stats().await.unwrap();
    let hook = stats.iter().find(|s| s.sink == "hook").unwrap();
    assert_eq!((hook.pending, hook.delivered, hook.dead), (1, 4, 1));
}

async fn errors_are_told_apart_by_kind(store: SqlStore) {
    let lease = "INSERT INTO leases (name, holder, expires_ms) VALUES ('x', 'a', 1)";
    sqlx::query(lease).execute(&store.pool).await.unwrap();
    let twice = sqlx::query(lease).execute(&store.pool).await.unwrap_err();
    assert!(matches!(StoreError::from(twice), StoreError::Conflict(_)));
    let Err(missing) = sqlx::query("SELECT holder FROM leases WHERE name = 'none'")
        .fetch_one(&store.pool)
        .await
    else {
        panic!("a row that is not there was found")
    };
    assert!(matches!(StoreError::from(missing), StoreError::NotFound(_)));
    let Err(unknown) = sqlx::query("SELECT no_such_column FROM leases")
        .fetch_all(&store.pool)
        .await
    else {
        panic!("a column that does not exist was read")
    };
    let e = StoreError::from(unknown);
    assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
    assert!(!e.is_transient());
    // A catalog row this version cannot read is corrupt, not "unavailable".
    sqlx::query("INSERT INTO services (name, body) VALUES ('broken', '{not json')")
        .execute(&store.pool)
        .await
        .unwrap();
    let e = store.load().await.unwrap_err();
    assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
    assert!(e.to_string().contains("broken"), "{e}");
}

async fn the_translator_check_it_was_built_with_refuses_a_change(store: SqlStore) {
    struct Refuses;
    impl TranslatorCheck for Refuses {
        fn check(&self, text: &str) -> Result<(), String> {
            match text.contains("nonsense") {
                true => Err("line 1: `nonsense` is not a rule; write `[request]`".into()),
                false => Ok(()),
            }
        }
    }
    let strict = SqlStore {
        translators: Arc::new(Refuses),
        ..store.clone()
    };
    let c = strict
        .apply(&service("orders-svc"), 0, &meta("new service"))
        .await
        .unwrap();
    let Change::PutContext(mut ctx) = context("orders", "orders-svc") else {
        unreachable!()
    };
    ctx.translator = Some("nonsense".into());
    let e = strict
        .apply(&Change::PutContext(ctx.clone()), c.version, &meta("bad"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("contexts.orders.translator: line 1"),
        "{e}"
    );
    assert_eq!(strict.version().await.unwrap(), c.version);
    ctx.translator = Some("[request]".into());
    strict
        .apply(&Change::PutContext(ctx), c.version, &meta("good"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    // Nothing listens on port 1.
    let e = SqlStore::connect("postgres://postgres@127.0.0.1:1/none", Arc::new(SizeOnly))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    assert!(e.is_transient());
}

async fn an_id_names_one_resource_per_side_and_pairs_are_read_in_order(store: SqlStore) {
    let pair = |resource: &str, legacy: &str, new: &str, origin| IdPair {
        seq: 0,
        context: "orders".into(),
        resource: resource.into(),
        legacy: legacy.into(),
        new: new.into(),
        origin,
    };
    assert!(store
        .ids_put(&pair("orders", "1001", "7", Side::Legacy))
        .await
        .unwrap());
    assert!(store
        .ids_put(&pair("orders", "1002", "8", Side::Legacy))
        .await
        .unwrap());
    // A second pair for an id either side has already paired is refused; the first stays.
    assert!(!store
        .ids_put(&pair("orders", "1001", "9", Side::Legacy))
        .await
        .unwrap());
    assert!(!store
        .ids_put(&pair("orders", "1003", "8", Side::New))
        .await
        .unwrap());
    // The same ids under another resource are another resource.
    assert!(store
        .ids_put(&pair("customers", "1001", "7", Side::New))
        .await
        .unwrap());
    let all = store.ids_since(0, 100).await.unwrap();
    let seen: Vec<(&str, &str, &str, Side)> = all
        .iter()
        .map(|p| {
            (
                p.resource.as_str(),
                p.legacy.as_str(),
                p.new.as_str(),
                p.origin,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("orders", "1001", "7", Side::Legacy),
            ("orders", "1002", "8", Side::Legacy),
            ("customers", "1001", "7", Side::New),
        ]
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    // Paging from a pair's seq gives what came after it.
    let rest = store.ids_since(all[0].seq, 1).await.unwrap();
    assert_eq!(rest, [all[1].clone()]);
    assert_eq!(
        store.ids_count("orders").await.unwrap(),
        [("customers".to_owned(), 1), ("orders".to_owned(), 2)]
    );
    assert!(store.ids_count("other").await.unwrap().is_empty());
}

async fn a_moved_owner_settles_before_it_takes_effect_and_clients_cannot_set_it(store: SqlStore) {
    let store = store.with_owner_fence(std::time::Duration::from_secs(30));
    let step = |action| Change::Transition {
        context: "orders".into(),
        action,
    };
    let mut c = Catalog::default();
    for change in [
        service("orders-svc"),
        context("orders", "orders-svc"),
        step(Action::Promote),
        step(Action::Promote),
    ] {
        c = store
            .apply(&change, c.version, &meta("setup"))
            .await
            .unwrap();
    }
    // Moves that do not move the owner set nothing.
    assert_eq!(c.contexts["orders"].owner_move, None);
    let before = now_ms();
    c = store
        .apply(&step(Action::Cutover), c.version, &meta("cut"))
        .await
        .unwrap();
    let m = c.contexts["orders"].owner_move.expect("the move settles");
    assert!(m.at_ms >= before && m.at_ms <= now_ms(), "{m:?}");
    assert_eq!(m.from_ms - m.at_ms, 30_000);
    // A client sending its own (or none) with a change that moves nothing changes nothing.
    let mut ctx = c.contexts["orders"].clone();
    ctx.owner_move = Some(OwnerMove {
        at_ms: 0,
        from_ms: i64::MAX,
    });
    ctx.description = "forged".into();
    c = store
        .apply(&Change::PutContext(ctx.clone()), c.version, &meta("forge"))
        .await
        .unwrap();
    assert_eq!(c.contexts["orders"].owner_move, Some(m));
    ctx.owner_move = None;
    c = store
        .apply(&Change::PutContext(ctx), c.version, &meta("drop"))
        .await
        .unwrap();
    assert_eq!(c.contexts["orders"].owner_move, Some(m));
    assert_eq!(
        store.load().await.unwrap().contexts["orders"].owner_move,
        Some(m)
    );
    // Without a fence a move takes effect at once.
    let store = store.with_owner_fence(std::time::Duration::ZERO);
    c = store
        .apply(&step(Action::Rollback), c.version, &meta("back"))
        .await
        .unwrap();
    assert_eq!(c.contexts["orders"].owner(), Side::Legacy);
    assert_eq!(c.contexts["orders"].owner_move, None);
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() {
                let (store, _cleanup) = super::fresh("sqlite").await.unwrap();
                super::$name(store).await
            })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                match super::fresh("postgres").await {
                    Some((store, _cleanup)) => super::$name(store).await,
                    None => eprintln!("STRANGLER_TEST_POSTGRES is not set: PostgreSQL half not run"),
                }
            })*
        }
    };
}

on_both!(
    changes_bump_the_version_and_are_audited,
    a_stale_change_is_refused,
    a_failed_change_leaves_everything_untouched,
    the_audit_log_is_append_only,
    concurrent_changes_on_one_version_let_exactly_one_pass,
    runtime_changes_are_recorded,
    shadow_results_from_replicas_add_up,
    the_outbox_delivers_each_context_in_order,
    a_write_shipped_twice_is_kept_and_delivered_once,
    the_write_owner_moves_only_once_the_outbox_toward_it_is_drained,
    traffic_from_replicas_adds_up_and_is_pruned,
    hourly_rollups_path_traffic_and_carving,
    a_large_flush_is_compacted_and_written_whole,
    a_lease_has_one_holder_until_it_expires,
    events_are_delivered_in_order_per_context_with_retries,
    errors_are_told_apart_by_kind,
    the_translator_check_it_was_built_with_refuses_a_change,
    an_id_names_one_resource_per_side_and_pairs_are_read_in_order,
    a_moved_owner_settles_before_it_takes_effect_and_clients_cannot_set_it,
);

mod staging;
