//! The catalog as the request path sees it: the compiled route table and a resilient client per
//! service, swapped in whole when the catalog changes. A request loads it once, without a lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use strangler_catalog::{Catalog, Service};
use strangler_services::cluster::{
    Balance, BreakerConfig, Cluster, ClusterConfig, CollapseConfig, EventSink, HealthCheckConfig,
    OutlierConfig, RetryConfig,
};
use strangler_services::{Origin, UpstreamConfig};

use strangler_anti_corruption::{Compiled, Registry};

use crate::body::RequestBody;
use crate::routes::{ContextEntry, RouteTable};
use crate::shadow::diff::Rules;
use crate::traffic::{ContextTraffic, PathCounters, Traffic};
use crate::translate::Translation;
use crate::CompileError;
use strangler_catalog::RouteShadow;

/// One compiled catalog.
pub(crate) struct Snapshot {
    pub version: i64,
    pub routes: RouteTable,
    /// The new services, by name, with the spec each was built from.
    pub services: HashMap<Arc<str>, (Service, Cluster<RequestBody>)>,
    /// Everything the request path needs of each context, by [`ContextEntry::index`]: one
    /// matched route leads to it without hashing a name.
    pub contexts: Vec<CompiledContext>,
    /// Everything the request path needs of each route, by rank ([`crate::routes::Matched::rank`]).
    pub route_extras: Vec<CompiledRoute>,
    /// Each context's index, by name (off the request path: the outbox resolves by name).
    pub by_name: HashMap<Arc<str>, usize>,
    /// Each context's objective that has one: availability (0 to 1) and p99 (ms), for
    /// `/metrics`, where alert rules read them.
    pub objectives: Vec<(Arc<str>, f64, u64)>,
}

/// A context compiled for the request path: its entry in the route table, the client of its
/// target service, its translator, its comparison rules and its traffic counters.
pub(crate) struct CompiledContext {
    pub entry: Arc<ContextEntry>,
    /// The target service's cluster (`None` only if the catalog names a service it does not
    /// have, which validation prevents).
    pub cluster: Option<Cluster<RequestBody>>,
    /// The translator, with the spec text it was compiled from.
    pub translation: Option<(String, Translation)>,
    /// Shadow sampling and noise rules.
    pub rules: Arc<Rules>,
    /// Traffic counters (kept by the telemetry across snapshots).
    pub traffic: Arc<ContextTraffic>,
}

/// A route compiled for the request path.
pub(crate) struct CompiledRoute {
    pub id: Arc<str>,
    /// The route's own shadow settings (writes opted in, a body cap).
    pub shadow: RouteShadow,
    /// Its requests are reads whatever their method.
    pub reads: bool,
    /// Traffic counters (kept by the telemetry across snapshots).
    pub traffic: Arc<PathCounters>,
    /// Where its requests name a resource, for the id map.
    pub ids: Option<Arc<crate::ids::RouteIds>>,
}

impl Snapshot {
    pub fn empty() -> Self {
        Self {
            version: 0,
            routes: RouteTable::empty(),
            services: HashMap::new(),
            contexts: Vec::new(),
            route_extras: Vec::new(),
            by_name: HashMap::new(),
            objectives: Vec::new(),
        }
    }

    /// The compiled context named `name`.
    pub fn context(&self, name: &str) -> Option<&CompiledContext> {
        self.contexts.get(*self.by_name.get(name)?)
    }

    /// Compiles `catalog`. A service whose spec did not change keeps its cluster — its pools,
    /// breaker, ejections and counters — from `previous`; a changed one keeps its pools. A
    /// translator whose text did not change keeps its compiled form.
    pub fn compile(
        catalog: &Catalog,
        previous: &Snapshot,
        template: &UpstreamConfig,
        events: Option<&EventSink>,
        registry: &Registry,
        traffic: &Traffic,
        fold_case: bool,
    ) -> Result<Self, CompileError> {
        let routes = RouteTable::compile_with(catalog, fold_case)?;
        let mut services = HashMap::new();
        for svc in catalog.services.values() {
            let name: Arc<str> = Arc::from(svc.name.as_str());
            // Static instances and the registered ones that are alive.
            let mut effective = svc.clone();
            effective.urls = catalog.instances_of(&svc.name);
            let cluster = match previous.services.get(&name) {
                Some((spec, cluster)) if spec == &effective => cluster.clone(),
                old => Cluster::with_events(
                    cluster_config(&effective, template)?,
                    old.map(|(_, c)| c),
                    events.cloned(),
                ),
            };
            services.insert(name, (effective, cluster));
        }
        let mut contexts = Vec::with_capacity(routes.contexts().len());
        let mut by_name = HashMap::with_capacity(routes.contexts().len());
        for entry in routes.contexts() {
            let Some(ctx) = catalog.contexts.get(&*entry.name) else {
                return Err(CompileError::Vanished(entry.name.to_string()));
            };
            let translation = match &ctx.translator {
                None => None,
                Some(text) => {
                    let upstreams: Arc<[String]> = catalog
                        .instances_of(&ctx.target)
                        .iter()
                        .filter_map(|u| Origin::parse(u).ok())
                        .map(|o| o.to_prefix().trim_end_matches('/').to_owned())
                        .collect();
                    let compiled = match previous
                        .context(&entry.name)
                        .and_then(|c| c.translation.as_ref())
                    {
                        Some((old, t)) if old == text => Arc::clone(&t.compiled),
                        _ => Arc::new(Compiled::compile(text, registry).map_err(|e| {
                            CompileError::Translator {
                                context: ctx.name.to_string(),
                                why: e,
                            }
                        })?),
                    };
                    Some((
                        text.clone(),
                        Translation {
                            context: Arc::clone(&entry.name),
                            compiled,
                            upstreams,
                        },
                    ))
                }
            };
            by_name.insert(Arc::clone(&entry.name), contexts.len());
            contexts.push(CompiledContext {
                entry: Arc::clone(entry),
                cluster: services.get(&entry.target).map(|(_, c)| c.clone()),
                translation,
                rules: Arc::new(Rules::compile(&ctx.shadow)),
                traffic: traffic.of(&ctx.name),
            });
        }
        let route_extras = routes
            .routes()
            .map(|(id, context)| {
                let spec = catalog.routes.get(id).map(|r| &r.spec);
                CompiledRoute {
                    id: Arc::from(id),
                    shadow: spec.map(|s| s.shadow.clone()).unwrap_or_default(),
                    reads: spec.is_some_and(|s| s.reads),
                    traffic: traffic.route(&context.name, id),
                    ids: spec.and_then(crate::ids::RouteIds::compile).map(Arc::new),
                }
            })
            .collect();
        Ok(Self {
            version: catalog.version,
            routes,
            services,
            contexts,
            route_extras,
            by_name,
            objectives: catalog
                .contexts
                .values()
                .filter_map(|c| {
                    let o = c.objective.as_ref()?;
                    Some((
                        Arc::from(c.name.as_str()),
                        o.availability_percent / 100.0,
                        o.p99_ms,
                    ))
                })
                .collect(),
        })
    }
}

/// The cluster settings a service's policy asks for, with defaults for what it leaves out.
fn cluster_config(svc: &Service, template: &UpstreamConfig) -> Result<ClusterConfig, CompileError> {
    let p = &svc.policy;
    let instances = svc
        .urls
        .iter()
        .map(|u| {
            Origin::parse(u).map_err(|e| CompileError::Service {
                service: svc.name.to_string(),
                why: e,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // With no instance yet (one that only registers itself), the template's origin stands in;
    // the cluster answers "no instance" until one registers.
    let first = instances
        .first()
        .cloned()
        .unwrap_or_else(|| template.origin.clone());
    let ms = Duration::from_millis;
    let mut upstream = template.clone();
    upstream.origin = first;
    if let Some(v) = p.connect_timeout_ms {
        upstream.connect_timeout = ms(v);
    }
    if let Some(v) = p.request_timeout_ms {
        upstream.response_timeout = Some(ms(v));
    }
    if let Some(v) = p.idle_timeout_ms {
        upstream.pool_idle_timeout = ms(v);
    }
    upstream.protocol = match p.protocol.as_deref() {
        Some("h2c") => strangler_services::Protocol::H2c,
        Some("h2") => strangler_services::Protocol::H2,
        Some("auto") => strangler_services::Protocol::Auto,
        _ => strangler_services::Protocol::Http1,
    };
    // Static URLs are checked against the protocol when stored; an instance that registered
    // itself with the wrong scheme is left out rather than holding the whole catalog back.
    let protocol = upstream.protocol;
    let instances: Vec<Origin> = instances
        .into_iter()
        .filter(|origin| match protocol.check(origin) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(service = %svc.name, %why, "instance left out");
                false
            }
        })
        .collect();
    let mut breaker = BreakerConfig::default();
    if let Some(v) = p.breaker_failure_percent {
        breaker.failure_rate = f64::from(v) / 100.0;
    }
    if let Some(v) = p.breaker_min_requests {
        breaker.min_requests = v;
    }
    if let Some(v) = p.breaker_window_ms {
        breaker.window = ms(v);
    }
    if let Some(v) = p.breaker_cool_down_ms {
        breaker.cool_down = ms(v);
    }
    let mut outlier = OutlierConfig::default();
    if let Some(v) = p.eject_after_failures {
        outlier.consecutive_failures = v;
    }
    if let Some(v) = p.eject_base_ms {
        outlier.base_ejection = ms(v);
    }
    let mut retry = RetryConfig::default();
    if let Some(v) = p.retry_attempts {
        retry.attempts = v;
    }
    if let Some(v) = p.retry_budget_percent {
        retry.budget_ratio = f64::from(v) / 100.0;
    }
    if let Some(v) = p.retry_put_delete {
        retry.put_and_delete = v;
    }
    Ok(ClusterConfig {
        name: svc.name.clone(),
        instances,
        upstream,
        balance: match p.balance.as_deref() {
            Some("round-robin") => Balance::RoundRobin,
            _ => Balance::PowerOfTwoChoices,
        },
        outlier,
        breaker,
        max_concurrent: p.max_concurrent.map(|n| n as usize),
        retry,
        collapse: p
            .collapse_requests
            .unwrap_or(false)
            .then(|| CollapseConfig {
                with_credentials: p.collapse_with_credentials.unwrap_or(false),
                vary: p.collapse_vary.clone().unwrap_or_default(),
                max_body: 1 << 20,
                window: p.collapse_window_ms.map_or(Duration::ZERO, ms),
            }),
        health: p.health_path.as_ref().map(|path| HealthCheckConfig {
            path: path.clone(),
            interval: p.health_interval_ms.map_or(Duration::from_secs(5), ms),
            timeout: p.health_timeout_ms.map_or(Duration::from_secs(2), ms),
            healthy_threshold: p.healthy_threshold.unwrap_or(2),
            unhealthy_threshold: p.unhealthy_threshold.unwrap_or(3),
        }),
    })
}

#[cfg(test)]
mod tests;
