//! Requests per context and side, for the catalog's per-minute traffic rows (what the
//! dashboard's share of new traffic, latency and error figures are made of) and for the
//! per-context figures on `/metrics`. Counting is a few relaxed atomic additions on counters the
//! snapshot hands each request; the counters only grow, and a flush sends what they gained
//! since the last one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use strangler_catalog::{PathTraffic, Side, TrafficMinute, LATENCY_BOUNDS_MS, LATENCY_BUCKETS};

/// At most this many path templates of unclaimed requests are counted apart; the rest are
/// counted as [`OTHER`] (a crawler cannot grow the map without bound). Templates that saw no
/// request since the last flush are let go at each flush, so that the cap is per window: new
/// paths appear again once a crawl has passed.
const MAX_TEMPLATES: usize = 2000;
/// The template of unclaimed requests beyond [`MAX_TEMPLATES`].
pub const OTHER: &str = "(other paths)";
/// Templates longer than this are cut (at a character boundary).
const MAX_TEMPLATE_BYTES: usize = 200;

/// One side's counters, counted up for the life of the process (what `/metrics` shows); the
/// catalog's per-minute rows are the differences from what the last flush took.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    latency_us: AtomicU64,
    fallbacks: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS],
    /// The counts as the last flush took them (only flushes touch this).
    taken: std::sync::Mutex<Taken>,
}

/// A side's counts at a flush.
#[derive(Debug, Default, Clone, Copy)]
struct Taken {
    requests: u64,
    errors: u64,
    latency_us: u64,
    fallbacks: u64,
    buckets: [u64; LATENCY_BUCKETS],
}

/// One side's totals since the process started, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub requests: u64,
    /// Answers with a 5xx status.
    pub errors: u64,
    pub latency_us: u64,
    pub fallbacks: u64,
    /// Requests per latency bucket (bounds in [`LATENCY_BOUNDS_MS`], the last one beyond).
    pub buckets: [u64; LATENCY_BUCKETS],
}

impl Counters {
    fn now(&self) -> Taken {
        Taken {
            requests: self.requests.load(Relaxed),
            errors: self.errors.load(Relaxed),
            latency_us: self.latency_us.load(Relaxed),
            fallbacks: self.fallbacks.load(Relaxed),
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
        }
    }
}

/// One side's counters of a route or a path template.
#[derive(Debug, Default)]
struct PathSide {
    requests: AtomicU64,
    errors: AtomicU64,
    latency_us: AtomicU64,
}

/// The counters of one route, or of one path template of unclaimed requests.
#[derive(Debug, Default)]
pub struct PathCounters {
    sides: [PathSide; 2],
}

impl PathCounters {
    /// Counts one answered request.
    pub fn record(&self, side: Side, status: u16, elapsed: Duration) {
        let c = &self.sides[usize::from(side == Side::New)];
        c.requests.fetch_add(1, Relaxed);
        if status >= 500 {
            c.errors.fetch_add(1, Relaxed);
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        c.latency_us.fetch_add(us, Relaxed);
    }

    fn take(&self, minute: i64, context: &str, path: &str, out: &mut Vec<PathTraffic>) {
        for (i, c) in self.sides.iter().enumerate() {
            let requests = c.requests.swap(0, Relaxed);
            if requests == 0 {
                continue;
            }
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            out.push(PathTraffic {
                minute,
                context: context.to_owned(),
                path: path.to_owned(),
                side: if i == 1 { "new" } else { "legacy" }.to_owned(),
                requests: n(requests),
                errors: n(c.errors.swap(0, Relaxed)),
                latency_us: n(c.latency_us.swap(0, Relaxed)),
            });
        }
    }

    fn restore(&self, r: &PathTraffic) {
        let c = &self.sides[usize::from(r.side == "new")];
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        c.requests.fetch_add(n(r.requests), Relaxed);
        c.errors.fetch_add(n(r.errors), Relaxed);
        c.latency_us.fetch_add(n(r.latency_us), Relaxed);
    }
}

/// Whether a path segment names one thing among many (an id, a UUID, a hash, a token) rather
/// than a kind of thing: `123`, `550e8400-e29b-41d4-a716-446655440000`, `9f86d081884c7d65`.
pub(crate) fn is_id(segment: &str) -> bool {
    let b = segment.as_bytes();
    if b.is_empty() {
        return false;
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if digits == b.len() {
        return true;
    }
    let hex_or_dash = b.iter().all(|c| c.is_ascii_hexdigit() || *c == b'-');
    if hex_or_dash && digits > 0 && b.len() >= 8 {
        return true;
    }
    // Long tokens with digits in them (`a1B2c3…`, `ord_8f3k2j1…`).
    b.len() >= 16
        && digits > 0
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

/// The path template of a request: `GET /orders/123/items` → `GET /orders/{id}/items`. A
/// segment's extension is kept (`/invoices/42.pdf` → `/invoices/{id}.pdf`); the query is not
/// part of the path.
pub fn template(method: &str, path: &str) -> String {
    let mut out = String::with_capacity(method.len() + 1 + path.len());
    template_into(&mut out, method, path);
    out
}

/// Cuts a template longer than the bound at it (on a char boundary), marked with `…`.
fn cut_template(out: &mut String) {
    let mut cut = MAX_TEMPLATE_BYTES;
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    out.push('…');
}

/// [`template`], written into `out` (emptied first).
fn template_into(out: &mut String, method: &str, path: &str) {
    out.clear();
    out.push_str(method);
    out.push(' ');
    // Every id has a digit in it: a path without one (most of a site's pages, and all of the
    // assets not named by hash) is its own template, and its segments need no walk.
    if !path.bytes().any(|b| b.is_ascii_digit()) {
        // Only as much of a long path as the bound keeps is copied: past it by a byte, to a
        // char boundary, so that the cut falls where it would in the whole.
        let room = MAX_TEMPLATE_BYTES.saturating_sub(out.len());
        let mut end = path.len();
        if end > room {
            end = room + 1;
            while !path.is_char_boundary(end) {
                end += 1;
            }
        }
        out.push_str(&path[..end]);
        if out.len() > MAX_TEMPLATE_BYTES {
            cut_template(out);
        }
        return;
    }
    // Segments are found by bytes ('/' and '.' are ASCII, so every cut is a char boundary):
    // `str::split` and `rsplit_once` search by char and cost several times more per request.
    let bytes = path.as_bytes();
    let mut start = 0;
    loop {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(bytes.len(), |i| start + i);
        let segment = &path[start..end];
        let dot = segment.bytes().rposition(|b| b == b'.');
        let (stem, ext) = match dot {
            Some(dot) if dot > 0 && segment.len() - dot - 1 <= 5 => {
                (&segment[..dot], Some(&segment[dot..]))
            }
            _ => (segment, None),
        };
        if is_id(stem) {
            out.push_str("{id}");
            if let Some(ext) = ext {
                out.push_str(ext);
            }
        } else {
            out.push_str(segment);
        }
        if out.len() > MAX_TEMPLATE_BYTES {
            cut_template(out);
            break;
        }
        if end == bytes.len() {
            break;
        }
        out.push('/');
        start = end + 1;
    }
}

/// The counters of one context (or of requests no context claimed), by side.
#[derive(Debug, Default)]
pub struct ContextTraffic {
    sides: [Counters; 2],
}

impl ContextTraffic {
    /// One side's totals since the process started.
    pub fn totals(&self, side: Side) -> Totals {
        let t = self.sides[usize::from(side == Side::New)].now();
        Totals {
            requests: t.requests,
            errors: t.errors,
            latency_us: t.latency_us,
            fallbacks: t.fallbacks,
            buckets: t.buckets,
        }
    }

    /// Counts one answered request.
    pub fn record(&self, side: Side, status: u16, elapsed: Duration, fell_back: bool) {
        let c = &self.sides[usize::from(side == Side::New)];
        c.requests.fetch_add(1, Relaxed);
        if status >= 500 {
            c.errors.fetch_add(1, Relaxed);
        }
        if fell_back {
            c.fallbacks.fetch_add(1, Relaxed);
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

/// A map looked up on the request path: foldhash (seeded per process) costs a fraction of
/// SipHash for short keys.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A route by (context, id).
type RouteKey = (Arc<str>, Arc<str>);

/// Every context's counters, kept across catalog versions.
#[derive(Debug, Default)]
pub struct Traffic {
    contexts: RwLock<HashMap<Arc<str>, Arc<ContextTraffic>>>,
    unclaimed: Arc<ContextTraffic>,
    /// Routes' counters by (context, route id).
    routes: RwLock<HashMap<RouteKey, Arc<PathCounters>>>,
    /// Unclaimed requests' counters by template.
    templates: RwLock<FastMap<Box<str>, Arc<PathCounters>>>,
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

    /// The counters of a route (made when a snapshot is compiled).
    pub fn route(&self, context: &str, id: &str) -> Arc<PathCounters> {
        let mut map = self.routes.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry((Arc::from(context), Arc::from(id))).or_default())
    }

    /// The counters of a request no context claimed: those of its path template.
    pub fn unclaimed_path(&self, method: &str, path: &str) -> Arc<PathCounters> {
        thread_local! {
            // The template of each request is written here: a known template (most of them)
            // then costs no allocation.
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with(|key| match key.try_borrow_mut() {
            Ok(mut key) => {
                template_into(&mut key, method, path);
                let counters = self.template_counters(&key);
                // A long path leaves no large buffer behind.
                if key.capacity() > 1024 {
                    *key = String::new();
                }
                counters
            }
            Err(_) => self.template_counters(&template(method, path)),
        })
    }

    fn template_counters(&self, key: &str) -> Arc<PathCounters> {
        let counters = self
            .templates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned();
        counters.unwrap_or_else(|| {
            let mut map = self.templates.write().unwrap_or_else(|e| e.into_inner());
            let key = if map.len() >= MAX_TEMPLATES && !map.contains_key(key) {
                OTHER
            } else {
                key
            };
            Arc::clone(map.entry(Box::from(key)).or_default())
        })
    }

    /// Takes the counts of routes and templates since the last call as rows of `minute`.
    pub fn take_paths(&self, minute: i64) -> Vec<PathTraffic> {
        let mut out = Vec::new();
        for ((context, id), c) in self.routes.read().unwrap_or_else(|e| e.into_inner()).iter() {
            c.take(minute, context, id, &mut out);
        }
        let before = out.len();
        for (key, c) in self
            .templates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            c.take(minute, "", key, &mut out);
        }
        // Let go of the templates that were idle this window (none of them is held by a
        // request in flight: those hold a clone of its counters).
        let active: std::collections::HashSet<&str> =
            out[before..].iter().map(|r| r.path.as_str()).collect();
        self.templates
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, c| active.contains(&**key) || Arc::strong_count(c) > 1);
        out
    }

    /// How many rows [`Traffic::take_paths`] would give now (routes and templates, per side,
    /// that saw requests), without taking them.
    pub fn paths_pending(&self) -> usize {
        let busy = |c: &PathCounters| {
            c.sides
                .iter()
                .filter(|s| s.requests.load(Relaxed) > 0)
                .count()
        };
        let routes: usize = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|c| busy(c))
            .sum();
        let templates: usize = self
            .templates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|c| busy(c))
            .sum();
        routes + templates
    }

    /// Puts path rows back (a flush that failed).
    pub fn restore_paths(&self, rows: &[PathTraffic]) {
        for r in rows {
            if r.context.is_empty() {
                let mut map = self.templates.write().unwrap_or_else(|e| e.into_inner());
                map.entry(Box::from(r.path.as_str()))
                    .or_default()
                    .restore(r);
            } else {
                self.route(&r.context, &r.path).restore(r);
            }
        }
    }

    /// Every context's counters (the unclaimed requests' under `""`), for `/metrics`. The
    /// names are the catalog's contexts (every one this process has served), never client data.
    pub fn contexts(&self) -> Vec<(Arc<str>, Arc<ContextTraffic>)> {
        let mut out: Vec<_> = self
            .contexts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (Arc::clone(k), Arc::clone(v)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.push((Arc::from(""), Arc::clone(&self.unclaimed)));
        out
    }

    /// Takes the counts since the last call as rows of `minute` (only non-zero ones).
    pub fn take(&self, minute: i64) -> Vec<TrafficMinute> {
        let mut out = Vec::new();
        let mut one = |context: &str, t: &ContextTraffic| {
            for (i, c) in t.sides.iter().enumerate() {
                let now = c.now();
                let mut taken = c.taken.lock().unwrap_or_else(|e| e.into_inner());
                let requests = now.requests.saturating_sub(taken.requests);
                if requests == 0 {
                    continue;
                }
                let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                out.push(TrafficMinute {
                    minute,
                    context: context.to_owned(),
                    side: if i == 1 { "new" } else { "legacy" }.to_owned(),
                    requests: n(requests),
                    errors: n(now.errors.saturating_sub(taken.errors)),
                    latency_us: n(now.latency_us.saturating_sub(taken.latency_us)),
                    fallbacks: n(now.fallbacks.saturating_sub(taken.fallbacks)),
                    buckets: now
                        .buckets
                        .iter()
                        .zip(&taken.buckets)
                        .map(|(b, t)| n(b.saturating_sub(*t)))
                        .collect(),
                });
                *taken = now;
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
            let mut taken = c.taken.lock().unwrap_or_else(|e| e.into_inner());
            taken.requests = taken.requests.saturating_sub(n(r.requests));
            taken.errors = taken.errors.saturating_sub(n(r.errors));
            taken.latency_us = taken.latency_us.saturating_sub(n(r.latency_us));
            taken.fallbacks = taken.fallbacks.saturating_sub(n(r.fallbacks));
            for (b, v) in taken.buckets.iter_mut().zip(&r.buckets) {
                *b = b.saturating_sub(n(*v));
            }
        }
    }
}

#[cfg(test)]
mod tests;
