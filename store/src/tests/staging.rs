//! Counts handed in by replicas and merged once for the fleet, on both backends.

use std::sync::Arc;

use strangler_catalog::*;

use super::fresh;
use crate::*;

fn traffic(minute: i64, context: &str, n: i64) -> TrafficMinute {
    TrafficMinute {
        minute,
        context: context.into(),
        side: "new".into(),
        requests: n,
        errors: 0,
        latency_us: n,
        buckets: vec![n; LATENCY_BUCKETS],
        fallbacks: 0,
    }
}

fn route(minute: i64, path: &str, n: i64) -> PathTraffic {
    PathTraffic {
        minute,
        context: "orders".into(),
        path: path.into(),
        side: "legacy".into(),
        requests: n,
        errors: 0,
        latency_us: n,
    }
}

async fn requests(store: &SqlStore) -> i64 {
    store
        .traffic_totals(0)
        .await
        .unwrap()
        .iter()
        .map(|r| r.requests)
        .sum()
}

async fn route_requests(store: &SqlStore) -> i64 {
    store
        .path_traffic("orders", 0)
        .await
        .unwrap()
        .iter()
        .map(|r| r.requests)
        .sum()
}

/// Three replicas' batches become one rollup row per key; a second merge adds nothing; a merge
/// right after another leaves it be; many route rows wait for their minute, few do not.
async fn batches_are_merged_into_one_row_per_key_once(store: SqlStore) {
    for n in [1, 2, 4] {
        store
            .stage_traffic(&[traffic(120, "orders", n), traffic(121, "orders", n)])
            .await
            .unwrap();
        store
            .stage_path_traffic(&[route(120, "r1", n)])
            .await
            .unwrap();
    }
    assert_eq!(store.staged_batches().await.unwrap(), 6);
    // Nothing reaches the rollups before a merge.
    assert_eq!(requests(&store).await, 0);
    let m = store
        .merge_staged(Merge::IfDue { min_gap_ms: 0 })
        .await
        .unwrap();
    // Three route rows wait (≤ the few): they go along.
    assert_eq!(
        (m.ran, m.batches, m.routes, m.unreadable),
        (true, 6, true, 0)
    );
    assert_eq!(store.staged_batches().await.unwrap(), 0);
    let minutes = store.traffic(Some("orders"), 0).await.unwrap();
    assert_eq!(
        minutes
            .iter()
            .map(|r| (r.minute, r.requests, r.buckets[3]))
            .collect::<Vec<_>>(),
        [(120, 7, 7), (121, 7, 7)]
    );
    assert_eq!(route_requests(&store).await, 7);
    let again = store.merge_staged(Merge::Now).await.unwrap();
    assert_eq!((again.ran, again.batches), (true, 0));
    assert_eq!(again.oldest_waiting_ms, None);
    assert_eq!(requests(&store).await, 14);

    // A merge just ran: a replica asking within its gap does nothing.
    store
        .stage_traffic(&[traffic(122, "orders", 1)])
        .await
        .unwrap();
    let skipped = store
        .merge_staged(Merge::IfDue { min_gap_ms: 60_000 })
        .await
        .unwrap();
    assert!(!skipped.ran);
    assert!(skipped.oldest_waiting_ms.is_some(), "{skipped:?}");
    assert_eq!(store.staged_batches().await.unwrap(), 1);

    // More route rows than the few, a minute not yet past since routes were merged: context
    // counts go, route counts wait, none lost.
    let many: Vec<PathTraffic> = (0..=FEW_ROUTE_ROWS)
        .map(|i| route(120, &format!("m{i}"), 1))
        .collect();
    store.stage_path_traffic(&many).await.unwrap();
    let m = store
        .merge_staged(Merge::IfDue { min_gap_ms: 0 })
        .await
        .unwrap();
    assert_eq!((m.ran, m.batches, m.routes), (true, 1, false));
    assert_eq!(requests(&store).await, 15);
    assert_eq!(route_requests(&store).await, 7);
    assert_eq!(store.staged_batches().await.unwrap(), 1);
    // A minute later they are due.
    routes_merged_ago(&store, ROUTES_MERGE_EVERY_MS + 1_000).await;
    let m = store
        .merge_staged(Merge::IfDue { min_gap_ms: 0 })
        .await
        .unwrap();
    assert_eq!((m.batches, m.routes), (1, true));
    assert_eq!(route_requests(&store).await, 7 + FEW_ROUTE_ROWS + 1);

    // Merges that took a few route rows (here none) do not postpone the minute: many rows
    // handed in after them are still taken once it is up.
    let before = routes_merged_ago(&store, ROUTES_MERGE_EVERY_MS - 1_000).await;
    let m = store
        .merge_staged(Merge::IfDue { min_gap_ms: 0 })
        .await
        .unwrap();
    assert!(m.routes);
    let after: i64 = sqlx::query_scalar("SELECT routes_merged_ms FROM traffic_merges")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(
        after, before,
        "a merge of few route rows moved the minute on"
    );
    store.stage_path_traffic(&many).await.unwrap();
    routes_merged_ago(&store, ROUTES_MERGE_EVERY_MS + 1_000).await;
    let m = store
        .merge_staged(Merge::IfDue { min_gap_ms: 0 })
        .await
        .unwrap();
    assert_eq!((m.batches, m.routes), (1, true));
    assert_eq!(route_requests(&store).await, 7 + 2 * (FEW_ROUTE_ROWS + 1));
}

/// Makes the last merge of route counts `ms` ago, as if that time had passed; returns it.
async fn routes_merged_ago(store: &SqlStore, ms: i64) -> i64 {
    let at = strangler_catalog::clock::now_ms() - ms;
    sqlx::query("UPDATE traffic_merges SET routes_merged_ms = $1")
        .bind(at)
        .execute(&store.pool)
        .await
        .unwrap();
    at
}

/// A batch in a format this build does not know is left in place, not lost and not blocking
/// the others.
async fn an_unreadable_batch_is_left_for_a_newer_replica(store: SqlStore) {
    sqlx::query(
        "INSERT INTO traffic_batches (kind, pairs, body, created_ms) \
         VALUES ('traffic', 1, '{\"v\":99,\"rows\":[]}', 0)",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    store
        .stage_traffic(&[traffic(120, "orders", 3)])
        .await
        .unwrap();
    let m = store.merge_staged(Merge::Now).await.unwrap();
    assert_eq!((m.batches, m.unreadable), (1, 1));
    // It is reported as waiting since it was handed in (here: at the epoch).
    assert!(
        m.oldest_waiting_ms > Some(1_000_000_000_000),
        "{:?}",
        m.oldest_waiting_ms
    );
    assert_eq!(requests(&store).await, 3);
    assert_eq!(store.staged_batches().await.unwrap(), 1);
    // The retention removes it once it is older than what is kept.
    store.prune_shadow(1).await.unwrap();
    assert_eq!(store.staged_batches().await.unwrap(), 0);
}

/// Eight replicas hand in and merge at once, over separate connections: every count lands once.
async fn concurrent_replicas_merge_every_count_exactly_once(store: SqlStore) {
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for replica in 0..8i64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for flush in 0..10i64 {
                let rows = [
                    traffic(100 + flush, "orders", replica + 1),
                    traffic(100 + flush, "billing", 1),
                ];
                // As the flush loop does: what the store refuses is tried again.
                while store.stage_traffic(&rows).await.is_err() {
                    tokio::task::yield_now().await;
                }
                while store
                    .stage_path_traffic(&[route(60, "r1", 1)])
                    .await
                    .is_err()
                {
                    tokio::task::yield_now().await;
                }
                let _ = store.merge_staged(Merge::IfDue { min_gap_ms: 0 }).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    while store.staged_batches().await.unwrap() > 0 {
        store.merge_staged(Merge::Now).await.unwrap();
    }
    // Orders: each flush minute gets 1 + 2 + … + 8 = 36; billing 8 a minute.
    let minutes = store.traffic(None, 0).await.unwrap();
    assert_eq!(minutes.len(), 20);
    for m in &minutes {
        let want = if m.context == "orders" { 36 } else { 8 };
        assert_eq!((m.requests, m.buckets[0]), (want, want), "{m:?}");
    }
    assert_eq!(route_requests(&store).await, 80);
}

/// More route batches than one page: one merge takes them all and writes each key once.
async fn route_batches_beyond_a_page_go_in_one_merge(store: SqlStore) {
    for _ in 0..120 {
        store
            .stage_path_traffic(&[route(60, "a", 1), route(60, "b", 1), route(61, "c", 1)])
            .await
            .unwrap();
    }
    let m = store.merge_staged(Merge::Now).await.unwrap();
    assert_eq!((m.batches, m.routes), (120, true));
    assert_eq!(store.staged_batches().await.unwrap(), 0);
    let rows = store.path_traffic("orders", 0).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.path.as_str(), r.requests))
            .collect::<Vec<_>>(),
        [("a", 120), ("b", 120), ("c", 120)]
    );
    let seen = store
        .last_seen("legacy", &["orders".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        seen.iter()
            .map(|s| (s.path.as_str(), s.minute))
            .collect::<Vec<_>>(),
        [("a", 60), ("b", 60), ("c", 61)]
    );
}

on_both!(
    batches_are_merged_into_one_row_per_key_once,
    route_batches_beyond_a_page_go_in_one_merge,
    an_unreadable_batch_is_left_for_a_newer_replica,
    concurrent_replicas_merge_every_count_exactly_once,
);
