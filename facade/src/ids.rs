//! The id map in memory: resources the two sides of a context know under different ids, so
//! that a request that goes to a side other than the one that gave the id it carries names the
//! resource as that side knows it.
//!
//! Clients hold the id the owner gave a resource when it was created: legacy's for what was
//! created before the cutover, the new service's after it. A pair remembers both ids and which
//! one the clients hold (its origin). A request toward side S that carries id `v` is mapped
//! when `v` is the client-held id of a pair whose origin is the other side: `v` becomes that
//! resource's id on S. Two resources the clients know by the same id — one from each side —
//! make `v` ambiguous: such a request is refused rather than risk answering with the other
//! resource ([`Mapped::Ambiguous`]).
//!
//! Pairs reach the map from the delivery of mirrored creates (this process's, at once) and from
//! the catalog ([`follow`], every replica's, in the order they were recorded). The map is bounded
//! (`[shadow] id_map_pairs`): once full, a lookup that finds nothing cannot tell "the same id on
//! both sides" from "a pair this process could not keep", and answers [`Mapped::Full`], which
//! the request path turns into a 503 that names the setting. Nothing is dropped silently.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use strangler_catalog::pattern::{effective_path, PathPattern};
use strangler_catalog::{IdPair, RouteSpec, Side};

use crate::shadow::outbox::OutboxStore;

/// Pairs read from the catalog at once.
const PAGE: i64 = 5_000;
/// How often the catalog is asked for new pairs while some route maps ids.
const POLL: Duration = Duration::from_millis(200);
/// How often while none does (no lookup needs the pairs then; the map stays near the catalog
/// for the metric, and a catalog that brings a rule wakes the poll at once).
const IDLE_POLL: Duration = Duration::from_secs(2);

/// What a request toward a side does with the id it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// The side knows the resource by this id (or no pair names it).
    Same,
    /// The side knows the resource by this id instead.
    To(Box<str>),
    /// The clients know two resources by this id (one from each side).
    Ambiguous,
    /// The map is over its bound, so a missing pair cannot be told from a dropped one.
    Full,
}

/// The id maps of every context, bounded in pairs.
#[derive(Debug)]
pub struct IdMap {
    inner: RwLock<Inner>,
    bound: usize,
    full: AtomicBool,
    /// Some route of the catalog served maps ids.
    in_use: AtomicBool,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// The last pair read from the catalog.
    seq: i64,
    pairs: usize,
    /// By context, then resource.
    maps: HashMap<String, HashMap<String, Pairs>>,
}

/// One resource kind's pairs, reached from either side's id.
#[derive(Debug, Default)]
struct Pairs {
    /// Legacy id → (new id, origin).
    by_legacy: HashMap<Box<str>, (Box<str>, Side)>,
    /// New id → (legacy id, origin).
    by_new: HashMap<Box<str>, (Box<str>, Side)>,
}

impl Pairs {
    fn by(&self, side: Side) -> &HashMap<Box<str>, (Box<str>, Side)> {
        match side {
            Side::Legacy => &self.by_legacy,
            Side::New => &self.by_new,
        }
    }
}

impl IdMap {
    /// A map that keeps at most `bound` pairs.
    pub fn new(bound: usize) -> Self {
        Self {
            inner: RwLock::default(),
            bound,
            full: AtomicBool::new(false),
            in_use: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// Whether some route of the catalog served maps ids; the first catalog that has one
    /// wakes the follower at once.
    pub fn set_in_use(&self, on: bool) {
        if on && !self.in_use.swap(true, Ordering::Relaxed) {
            self.wake.notify_one();
        } else if !on {
            self.in_use.store(false, Ordering::Relaxed);
        }
    }

    /// How a request toward `toward` names the resource the client calls `id`.
    pub fn lookup(&self, context: &str, resource: &str, toward: Side, id: &str) -> Mapped {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let found = inner.maps.get(context).and_then(|m| m.get(resource));
        let Some(pairs) = found else {
            return self.nothing();
        };
        // A client-held id the other side gave, and one the target itself gave.
        let crossing = pairs
            .by(toward.other())
            .get(id)
            .filter(|(_, origin)| *origin != toward);
        let native = pairs
            .by(toward)
            .get(id)
            .is_some_and(|(_, origin)| *origin == toward);
        match (crossing, native) {
            (Some(_), true) => Mapped::Ambiguous,
            (Some((theirs, _)), false) => Mapped::To(theirs.clone()),
            (None, true) => Mapped::Same,
            (None, false) => self.nothing(),
        }
    }

    fn nothing(&self) -> Mapped {
        if self.full.load(Ordering::Relaxed) {
            Mapped::Full
        } else {
            Mapped::Same
        }
    }

    /// Adds a pair (again is harmless). Returns whether the clients now hold its id for two
    /// resources (a collision, logged by the caller), or `Err` when the map is full.
    pub fn insert(&self, pair: &IdPair) -> Result<bool, Full> {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.seq = inner.seq.max(pair.seq);
        let full = inner.pairs >= self.bound;
        let pairs = inner
            .maps
            .entry(pair.context.clone())
            .or_default()
            .entry(pair.resource.clone())
            .or_default();
        if pairs.by_legacy.contains_key(pair.legacy.as_str())
            || pairs.by_new.contains_key(pair.new.as_str())
        {
            // The store keeps the first pair of an id; so does the map.
            return Ok(false);
        }
        if full {
            self.full.store(true, Ordering::Relaxed);
            return Err(Full(self.bound));
        }
        // The id the clients hold, and whether the other side's clients hold it too.
        let held = pair.on(pair.origin);
        let collides = pairs
            .by(pair.origin.other())
            .get(held)
            .is_some_and(|(_, origin)| *origin != pair.origin);
        pairs.by_legacy.insert(
            pair.legacy.as_str().into(),
            (pair.new.as_str().into(), pair.origin),
        );
        pairs.by_new.insert(
            pair.new.as_str().into(),
            (pair.legacy.as_str().into(), pair.origin),
        );
        inner.pairs += 1;
        Ok(collides)
    }

    /// Pairs kept.
    pub fn pairs(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .pairs
    }

    /// Whether a pair was refused for want of room.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// The last pair read from the catalog.
    fn seq(&self) -> i64 {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .seq
    }

    /// Reads the pairs the catalog has that this map has not, in order.
    pub async fn catch_up(&self, store: &dyn OutboxStore) -> Result<(), String> {
        loop {
            let page = store.ids_since(self.seq(), PAGE).await?;
            let last = page.len() < usize::try_from(PAGE).unwrap_or(usize::MAX);
            for pair in &page {
                self.keep(pair);
            }
            if last {
                return Ok(());
            }
        }
    }

    /// Adds a pair, saying so loudly when it collides or, once, when the map fills.
    pub fn keep(&self, pair: &IdPair) {
        let was_full = self.is_full();
        match self.insert(pair) {
            Ok(false) => {}
            Ok(true) => tracing::error!(
                context = %pair.context,
                resource = %pair.resource,
                id = pair.on(pair.origin),
                "two resources are known to clients by the same id (one from each side); \
                 requests that carry it are refused until one of them is renamed"
            ),
            Err(Full(_)) if was_full => {}
            Err(Full(bound)) => tracing::error!(
                context = %pair.context,
                resource = %pair.resource,
                bound,
                "the id map is full; requests that may need it are refused (503) until \
                 `[shadow] id_map_pairs` is raised"
            ),
        }
    }
}

/// Where a route's requests name a resource, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteIds {
    pub resource: Box<str>,
    /// The path segment (after the leading `/`) that holds the id.
    pub segment: Option<usize>,
    /// Object keys from the root of a request body that hold the id.
    pub fields: Vec<Vec<String>>,
}

impl RouteIds {
    /// The route's rule, if it has one (validation refused a catalog whose rule does not fit
    /// its route, so one that does not compile here is not in any catalog).
    pub fn compile(spec: &RouteSpec) -> Option<Self> {
        let refs = spec.shadow.ids.as_ref()?;
        let pattern = PathPattern::parse(&effective_path(spec)).ok()?;
        let segment = refs.check(&pattern).ok()?;
        Some(Self {
            resource: refs.resource.as_str().into(),
            segment,
            fields: refs.field_keys(),
        })
    }

    /// The id the path names, decoded, with its segment's index.
    pub fn in_path<'p>(&self, path: &'p str) -> Option<(usize, String)> {
        let index = self.segment?;
        let raw: &'p str = segment(path, index)?;
        Some((index, decode_segment(raw)?))
    }
}

/// An id the request path changed: as the client wrote it, and as the side it went to knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub client: String,
    pub side: Box<str>,
}

/// `uri` with the id its path names as `toward` knows the resource, and the swap made;
/// `Ok(None)` when that is the id it carries (or it names none).
pub fn map_uri(
    map: &IdMap,
    context: &str,
    rule: &RouteIds,
    toward: Side,
    uri: &http::Uri,
) -> Result<Option<(http::Uri, Swap)>, Mapped> {
    let Some((index, id)) = rule.in_path(uri.path()) else {
        return Ok(None);
    };
    match map.lookup(context, &rule.resource, toward, &id) {
        Mapped::Same => Ok(None),
        Mapped::To(theirs) => {
            let mut target = with_segment(uri.path(), index, &theirs);
            if let Some(q) = uri.query() {
                target.push('?');
                target.push_str(q);
            }
            // Written percent-encoded, so it always parses; if it did not, the request must
            // not go out with the other side's id.
            let mut parts = uri.clone().into_parts();
            parts.path_and_query = Some(target.parse().map_err(|_| Mapped::To(theirs.clone()))?);
            let uri = http::Uri::from_parts(parts).map_err(|_| Mapped::To(theirs.clone()))?;
            Ok(Some((
                uri,
                Swap {
                    client: id,
                    side: theirs,
                },
            )))
        }
        refused => Err(refused),
    }
}

/// A JSON body with each of `fields` that holds `from` (as a string or a number) set to `to`
/// (a number stays a number where `to` is one); `None` when no field holds it or the body is
/// not JSON. Parsed with the translators' value, so every other number keeps its text.
pub fn swap_in_body(body: &[u8], fields: &[Vec<String>], from: &str, to: &str) -> Option<Vec<u8>> {
    use strangler_anti_corruption::json::{is_number, Value};
    let mut doc = Value::parse(body).ok()?;
    let mut changed = false;
    for keys in fields {
        let mut at = Some(&mut doc);
        for k in keys {
            at = at.and_then(|v| v.get_mut(k));
        }
        let Some(at) = at else { continue };
        let holds = match &*at {
            Value::Str(s) | Value::Num(s) => s.as_str() == from,
            _ => false,
        };
        if holds {
            *at = match (&*at, is_number(to)) {
                (Value::Num(_), true) => Value::Num(to.into()),
                _ => Value::str(to),
            };
            changed = true;
        }
    }
    changed.then(|| doc.to_json_sized(body.len() + 16).into_bytes())
}

/// The map holds its bound of pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full(pub usize);

/// Keeps `map` up with the catalog's pairs, beside the request path: every [`POLL`] while a
/// route maps ids, every [`IDLE_POLL`] while none does.
pub async fn follow(map: Arc<IdMap>, store: Arc<dyn OutboxStore>) {
    loop {
        if let Err(e) = map.catch_up(&*store).await {
            tracing::warn!(error = %e, "id map not readable; retrying");
        }
        if map.in_use.load(Ordering::Relaxed) {
            tokio::time::sleep(POLL).await;
        } else {
            // A catalog applied between the check and the wait leaves a permit: not missed.
            tokio::select! {
                () = tokio::time::sleep(IDLE_POLL) => {}
                () = map.wake.notified() => {}
            }
        }
    }
}

/// The id in one path segment (index after the leading `/`), if the path has that segment.
pub fn segment(path: &str, index: usize) -> Option<&str> {
    path.strip_prefix('/')?.split('/').nth(index)
}

/// `path` with segment `index` replaced by `id` written as a segment (percent-encoded where
/// it must be); the rest unchanged.
pub fn with_segment(path: &str, index: usize, id: &str) -> String {
    let mut out = String::with_capacity(path.len() + id.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if i == index + 1 {
            push_segment(&mut out, id);
        } else {
            out.push_str(seg);
        }
    }
    out
}

/// Unreserved characters as they are, every other byte `%XX`.
pub fn push_segment(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// A path segment decoded (`%XX` to bytes); `None` when it does not decode to UTF-8.
pub fn decode_segment(seg: &str) -> Option<String> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

mod glue;
pub(crate) use glue::id_problem;

#[cfg(test)]
mod tests;
