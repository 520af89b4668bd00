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
use crate::routes::RouteTable;
use crate::shadow::diff::Rules;
use crate::traffic::{ContextTraffic, FastMap, PathCounters, Traffic};
use crate::translate::Translation;
use strangler_catalog::RouteShadow;

/// One compiled catalog.
pub(crate) struct Snapshot {
    pub version: i64,
    pub routes: RouteTable,
    /// The new services, by name, with the spec each was built from.
    pub services: HashMap<Arc<str>, (Service, Cluster<RequestBody>)>,
    /// Each context's shadow sampling and noise rules.
    pub shadow_rules: HashMap<Arc<str>, Arc<Rules>>,
    /// Each context's target service.
    pub targets: HashMap<String, String>,
    /// Routes with their own shadow settings (writes opted in, a body cap), by id.
    pub route_shadow: HashMap<String, (Arc<str>, RouteShadow)>,
    /// Each context's traffic counters (kept by the telemetry across snapshots).
    pub traffic: HashMap<Arc<str>, Arc<ContextTraffic>>,
    /// Each route's traffic counters, by id (kept by the telemetry across snapshots).
    pub route_traffic: FastMap<Arc<str>, Arc<PathCounters>>,
    /// Each context's translator, with the spec text it was compiled from.
    pub translations: HashMap<Arc<str>, (String, Translation)>,
}

impl Snapshot {
    pub fn empty() -> Self {
        Self {
            version: 0,
            routes: RouteTable::empty(),
            services: HashMap::new(),
            shadow_rules: HashMap::new(),
            route_shadow: HashMap::new(),
            targets: HashMap::new(),
            translations: HashMap::new(),
            traffic: HashMap::new(),
            route_traffic: FastMap::default(),
        }
    }

    /// Compiles `catalog`. A service whose spec did not change keeps its cluster — its pools,
    /// breaker, ejections and counters — from `previous`; a changed one keeps its pools.
    pub fn compile(
        catalog: &Catalog,
        previous: &Snapshot,
        template: &UpstreamConfig,
        events: Option<&EventSink>,
        registry: &Registry,
        traffic: &Traffic,
        fold_case: bool,
    ) -> Result<Self, String> {
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
        let shadow_rules = catalog
            .contexts
            .values()
            .map(|c| {
                (
                    Arc::from(c.name.as_str()),
                    Arc::new(Rules::compile(&c.shadow)),
                )
            })
            .collect();
        let route_shadow = catalog
            .routes
            .values()
            .filter(|r| !r.spec.shadow.is_default())
            .map(|r| {
                (
                    r.id.clone(),
                    (Arc::from(r.id.as_str()), r.spec.shadow.clone()),
                )
            })
            .collect();
        let mut translations = HashMap::new();
        for ctx in catalog.contexts.values() {
            let Some(text) = &ctx.translator else {
                continue;
            };
            let name: Arc<str> = Arc::from(ctx.name.as_str());
            let upstreams: Arc<[String]> = catalog
                .instances_of(&ctx.target)
                .iter()
                .filter_map(|u| Origin::parse(u).ok())
                .map(|o| o.to_prefix().trim_end_matches('/').to_owned())
                .collect();
            let compiled = match previous.translations.get(&name) {
                Some((old, t)) if old == text => Arc::clone(&t.compiled),
                _ => Arc::new(Compiled::compile(text, registry).map_err(|e| {
                    format!(
                        "context `{}`: the translator does not compile: {e}",
                        ctx.name
                    )
                })?),
            };
            translations.insert(
                Arc::clone(&name),
                (
                    text.clone(),
                    Translation {
                        context: name,
                        compiled,
                        upstreams,
                    },
                ),
            );
        }
        Ok(Self {
            route_traffic: catalog
                .routes
                .values()
                .map(|r| (Arc::from(r.id.as_str()), traffic.route(&r.context, &r.id)))
                .collect(),
            traffic: catalog
                .contexts
                .keys()
                .map(|name| (Arc::from(name.as_str()), traffic.of(name)))
                .collect(),
            translations,
            version: catalog.version,
            routes,
            services,
            shadow_rules,
            route_shadow,
            targets: catalog
                .contexts
                .values()
                .map(|c| (c.name.clone(), c.target.clone()))
                .collect(),
        })
    }
}

/// The cluster settings a service's policy asks for, with defaults for what it leaves out.
fn cluster_config(svc: &Service, template: &UpstreamConfig) -> Result<ClusterConfig, String> {
    let p = &svc.policy;
    let instances = svc
        .urls
        .iter()
        .map(|u| Origin::parse(u).map_err(|e| format!("service `{}`: {e}", svc.name)))
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
