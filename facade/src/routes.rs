//! The route table the facade consults on every request: the catalog's routes compiled once into
//! an immutable snapshot (swapped whole when the catalog changes), so a lookup takes no lock and
//! allocates nothing.
//!
//! The most specific matching route wins, by the catalog's rule (`strangler_catalog::pattern`),
//! and ties go to the smaller route id. The table keeps that rule cheap to apply: routes are
//! sorted best first, so a route's index is its rank, and their paths go into a segment trie per
//! route host (and one for routes without a host). A lookup walks a trie literal first, then
//! parameter, then wildcard — which visits path shapes from the most to the least specific — and
//! stops at the first route whose other conditions hold. Host routes beat the rest, so the
//! host's tries are searched first and the host-less trie only if they have no match.
//!
//! - `trie.rs` — the segment trie and its walk;
//! - `predicate.rs` — methods, headers, query and version conditions;
//! - `sticky.rs` — which side answers: sticky keys and their buckets.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, Method};
use strangler_catalog::pattern::{self, PathPattern};
use strangler_catalog::{Catalog, MigrationState, Side, StickyKey};

mod predicate;
mod sticky;
mod trie;

pub use sticky::{decide_side, sticky_bucket, sticky_identity};

use crate::compile_error::RouteProblem;
use crate::CompileError;
use predicate::Predicates;
use trie::Node;

/// What the facade needs of a bounded context on the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    pub name: Arc<str>,
    /// The service that answers on the new side.
    pub target: Arc<str>,
    pub state: MigrationState,
    /// The canary's share, in basis points.
    pub weight: u16,
    pub sticky: Option<StickyKey>,
    /// The write owner: every write goes to it, whatever the canary split says for reads.
    pub owner: Side,
    /// The owner's last move, while it settles (writes wait until it takes effect and what
    /// the old owner took meanwhile has reached the new one).
    pub owner_move: Option<strangler_catalog::OwnerMove>,
    /// Whether legacy answers when the new side fails (canary and migrated only).
    pub fallback: bool,
    /// How long a safe request waits for the new side before legacy answers (`None`: derived
    /// from the service's observed latency).
    pub fallback_after: Option<std::time::Duration>,
    /// Its place in [`RouteTable::contexts`]: what else was compiled for the context is kept
    /// at the same index, reached without hashing its name.
    pub index: usize,
}

/// The route a request matched and its context.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    pub context: &'a Arc<ContextEntry>,
    pub route_id: &'a str,
    /// The route's rank (its place in [`RouteTable::routes`]).
    pub rank: usize,
}

/// The compiled, immutable route table.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Best first: a route's index is its rank among all routes.
    routes: Vec<CompiledRoute>,
    /// Every context of the catalog (with routes or not), by [`ContextEntry::index`].
    contexts: Vec<Arc<ContextEntry>>,
    /// Routes without a host.
    any_host: Node,
    /// Routes with a host, by the lower-cased host as written (`shop.example.com[:port]`),
    /// sorted for a binary search that needs no lower-cased copy of the request's host.
    hosts: Vec<(Box<str>, Node)>,
}

#[derive(Debug)]
struct CompiledRoute {
    id: Box<str>,
    context: Arc<ContextEntry>,
    predicates: Predicates,
}

impl RouteTable {
    /// A table that matches nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Compiles the catalog's routes: checks each spec, compiles its regular expressions once,
    /// and builds the tries. The error names the route.
    pub fn compile(catalog: &Catalog) -> Result<Self, CompileError> {
        Self::compile_with(catalog, false)
    }

    /// Like [`RouteTable::compile`]; with `fold_case`, paths match without regard to ASCII
    /// case (lookups then pass lower-cased paths).
    pub fn compile_with(catalog: &Catalog, fold_case: bool) -> Result<Self, CompileError> {
        let contexts: HashMap<&str, Arc<ContextEntry>> = catalog
            .contexts
            .values()
            .enumerate()
            .map(|(index, c)| {
                let entry = ContextEntry {
                    name: c.name.as_str().into(),
                    target: c.target.as_str().into(),
                    state: c.state,
                    weight: c.weight,
                    sticky: c.sticky.clone(),
                    owner: c.owner(),
                    owner_move: c.owner_move,
                    fallback: c.fallback
                        && matches!(c.state, MigrationState::Canary | MigrationState::Migrated),
                    fallback_after: c.fallback_after_ms.map(std::time::Duration::from_millis),
                    index,
                };
                (c.name.as_str(), Arc::new(entry))
            })
            .collect();
        let mut ranked = Vec::with_capacity(catalog.routes.len());
        for (id, route) in &catalog.routes {
            let fail = |why: RouteProblem| CompileError::Route {
                id: id.clone(),
                context: route.context.to_string(),
                why: Box::new(why),
            };
            pattern::check_spec(&route.spec).map_err(|e| fail(e.into()))?;
            let context = contexts
                .get(route.context.as_str())
                .ok_or_else(|| fail(RouteProblem::UnknownContext))?;
            let mut effective = pattern::effective_path(&route.spec);
            if fold_case {
                effective = effective.to_ascii_lowercase();
            }
            let path = PathPattern::parse(&effective).map_err(|e| fail(e.into()))?;
            let compiled = CompiledRoute {
                id: id.as_str().into(),
                context: Arc::clone(context),
                predicates: Predicates::compile(&route.spec).map_err(|e| fail(e.into()))?,
            };
            let host = route.spec.host.as_deref().map(str::to_ascii_lowercase);
            ranked.push((pattern::specificity(&route.spec), compiled, host, path));
        }
        ranked.sort_by(|a, b| (Reverse(&a.0), &a.1.id).cmp(&(Reverse(&b.0), &b.1.id)));

        let mut table = Self::empty();
        table.contexts = contexts.into_values().collect();
        table.contexts.sort_by_key(|c| c.index);
        let mut hosts: HashMap<String, Node> = HashMap::new();
        for (rank, (_, compiled, host, path)) in ranked.into_iter().enumerate() {
            let rank = u32::try_from(rank).map_err(|_| CompileError::TooManyRoutes(u32::MAX))?;
            let node = match host {
                Some(h) => hosts.entry(h).or_default(),
                None => &mut table.any_host,
            };
            // Inserted in rank order, so every list in the trie is best first.
            node.insert(path.segments(), rank);
            table.routes.push(compiled);
        }
        table.hosts = hosts.into_iter().map(|(h, n)| (h.into(), n)).collect();
        table.hosts.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(table)
    }

    /// Every context, by [`ContextEntry::index`].
    pub fn contexts(&self) -> &[Arc<ContextEntry>] {
        &self.contexts
    }

    /// Every route as (id, context), best first: by rank ([`Matched::rank`]).
    pub fn routes(&self) -> impl Iterator<Item = (&str, &Arc<ContextEntry>)> {
        self.routes.iter().map(|r| (&*r.id, &r.context))
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The most specific route that matches the request, if any. `host` is the request's
    /// authority (`shop.example.com[:port]`); `path` is the raw path, not decoded, without the
    /// query; `query` is the raw query, without `?`.
    pub fn lookup(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<Matched<'_>> {
        // `*` (OPTIONS) and other non-path targets match no route.
        let rest = path.strip_prefix('/')?;
        let rest = (!rest.is_empty()).then_some(rest);
        let mut accept = |i: u32| {
            self.routes
                .get(i as usize)
                .is_some_and(|r| r.predicates.matches(method, query, headers))
        };
        let mut best: Option<u32> = None;
        if let Some(host) = host.filter(|h| !h.is_empty()) {
            // A route host with a port matches that host:port, one without matches the host on
            // any port: both tries may hold the answer, and the better rank wins.
            let (name, port) = pattern::split_host_port(host);
            let keys = [port.map(|_| host), Some(name)];
            for key in keys.into_iter().flatten() {
                if let Some(i) = self.host_node(key).and_then(|n| n.find(rest, &mut accept)) {
                    best = Some(best.map_or(i, |b| b.min(i)));
                }
            }
        }
        let best = match best {
            Some(i) => i,
            None => self.any_host.find(rest, &mut accept)?,
        };
        let route = self.routes.get(best as usize)?;
        Some(Matched {
            context: &route.context,
            route_id: &route.id,
            rank: best as usize,
        })
    }

    fn host_node(&self, host: &str) -> Option<&Node> {
        let lower = |b: u8| b.to_ascii_lowercase();
        self.hosts
            .binary_search_by(|(k, _)| k.bytes().cmp(host.bytes().map(lower)))
            .ok()
            .and_then(|i| self.hosts.get(i))
            .map(|(_, n)| n)
    }
}

#[cfg(test)]
mod tests;
