//! Requests per context and side, for the catalog's per-minute traffic rows (what the
//! dashboard's share of new traffic, latency and error figures are made of). Counting is a few
//! relaxed atomic additions on counters the snapshot hands each request; the flush swaps them
//! to zero.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use strangler_catalog::{Side, TrafficMinute, LATENCY_BOUNDS_MS, LATENCY_BUCKETS};

/// One side's counters.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    latency_us: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS],
}

/// The counters of one context (or of requests no context claimed), by side.
#[derive(Debug, Default)]
pub struct ContextTraffic {
    sides: [Counters; 2],
}

impl ContextTraffic {
    /// Counts one answered request.
    pub fn record(&self, side: Side, status: u16, elapsed: Duration) {
        let c = &self.sides[usize::from(side == Side::New)];
        c.requests.fetch_add(1, Relaxed);
        if status >= 500 {
            c.errors.fetch_add(1, Relaxed);
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        c.latency_us.fetch_add(us, Relaxed);
        let ms = us / 1000;
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|bound| ms < *bound || (ms == *bound && us % 1000 == 0))
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        c.buckets[bucket].fetch_add(1, Relaxed);
    }
}

/// Every context's counters, kept across catalog versions.
#[derive(Debug, Default)]
pub struct Traffic {
    contexts: RwLock<HashMap<Arc<str>, Arc<ContextTraffic>>>,
    unclaimed: Arc<ContextTraffic>,
}

impl Traffic {
    /// The counters of `context`, made on first use (when a snapshot is compiled, not per
    /// request).
    pub fn of(&self, context: &str) -> Arc<ContextTraffic> {
        if let Some(t) = self
            .contexts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(context)
        {
            return Arc::clone(t);
        }
        let mut map = self.contexts.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(Arc::from(context)).or_default())
    }

    /// The counters of requests no context claimed.
    pub fn unclaimed(&self) -> &Arc<ContextTraffic> {
        &self.unclaimed
    }

    /// Takes the counts since the last call as rows of `minute` (only non-zero ones).
    pub fn take(&self, minute: i64) -> Vec<TrafficMinute> {
        let mut out = Vec::new();
        let mut one = |context: &str, t: &ContextTraffic| {
            for (i, c) in t.sides.iter().enumerate() {
                let requests = c.requests.swap(0, Relaxed);
                if requests == 0 {
                    continue;
                }
                let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                out.push(TrafficMinute {
                    minute,
                    context: context.to_owned(),
                    side: if i == 1 { "new" } else { "legacy" }.to_owned(),
                    requests: n(requests),
                    errors: n(c.errors.swap(0, Relaxed)),
                    latency_us: n(c.latency_us.swap(0, Relaxed)),
                    buckets: c.buckets.iter().map(|b| n(b.swap(0, Relaxed))).collect(),
                });
            }
        };
        one("", &self.unclaimed);
        let map = self.contexts.read().unwrap_or_else(|e| e.into_inner());
        for (name, t) in map.iter() {
            one(name, t);
        }
        out
    }

    /// Puts rows back (a flush that failed), to be taken again next time.
    pub fn restore(&self, rows: &[TrafficMinute]) {
        for r in rows {
            let t = if r.context.is_empty() {
                Arc::clone(&self.unclaimed)
            } else {
                self.of(&r.context)
            };
            let c = &t.sides[usize::from(r.side == "new")];
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            c.requests.fetch_add(n(r.requests), Relaxed);
            c.errors.fetch_add(n(r.errors), Relaxed);
            c.latency_us.fetch_add(n(r.latency_us), Relaxed);
            for (b, v) in c.buckets.iter().zip(&r.buckets) {
                b.fetch_add(n(*v), Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_taken_once_and_bucketed_by_latency() {
        let t = Traffic::default();
        let orders = t.of("orders");
        orders.record(Side::New, 200, Duration::from_micros(800));
        orders.record(Side::New, 503, Duration::from_millis(2));
        orders.record(Side::New, 200, Duration::from_millis(30));
        orders.record(Side::Legacy, 200, Duration::from_secs(20));
        t.unclaimed()
            .record(Side::Legacy, 404, Duration::from_millis(1));
        assert!(Arc::ptr_eq(&orders, &t.of("orders")));
        let mut rows = t.take(7);
        rows.sort_by(|a, b| (&a.context, &a.side).cmp(&(&b.context, &b.side)));
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (
                rows[0].context.as_str(),
                rows[0].side.as_str(),
                rows[0].requests
            ),
            ("", "legacy", 1)
        );
        let new = &rows[2];
        assert_eq!((new.side.as_str(), new.requests, new.errors), ("new", 3, 1));
        // 0.8 ms → ≤1, 2 ms → ≤2, 30 ms → ≤50.
        assert_eq!((new.buckets[0], new.buckets[1], new.buckets[5]), (1, 1, 1));
        assert_eq!(
            rows[1].buckets[LATENCY_BOUNDS_MS.len()],
            1,
            "20 s is in the open bucket"
        );
        assert!(t.take(8).is_empty(), "taken once");
        t.restore(&rows);
        assert_eq!(t.take(9).iter().map(|r| r.requests).sum::<i64>(), 5);
    }
}
