//! The facade handle: its configuration, the legacy upstream, the compiled catalog it follows,
//! and what the binary asks of it (metrics, views, the outbox). One request's way through it is
//! in `proxy.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::HeaderValue;
use strangler_catalog::Catalog;
use strangler_services::cluster::EventSink;
use strangler_services::Upstream;

use crate::body::RequestBody;
use crate::config::FacadeConfig;
use crate::conn::ConnInfo;
use crate::framing::Framing;
use crate::shadow;
use crate::snapshot::Snapshot;
use crate::telemetry::Telemetry;
use crate::CompileError;

/// The facade: immutable configuration, the legacy upstream and the telemetry. Cheap to clone.
#[derive(Clone)]
pub struct Facade {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: FacadeConfig,
    pub(crate) legacy: Upstream<RequestBody>,
    /// The compiled catalog; replaced whole on every change.
    pub(crate) snapshot: ArcSwap<Snapshot>,
    /// Where the services' breaker, ejection and health changes are reported.
    pub(crate) events: std::sync::OnceLock<EventSink>,
    /// Shadows in flight.
    pub(crate) shadow_budget: Arc<shadow::Budget>,
    /// The identity bridge, when configured.
    pub(crate) identity: Option<Arc<crate::identity::Bridge>>,
    /// The mirror's log, once the outbox runs.
    pub(crate) outbox: std::sync::OnceLock<Arc<shadow::wal::Wal>>,
    /// Clients' last writes in canary, and how far each side has caught up.
    pub(crate) ryw: Arc<crate::ryw::ReadYourWrites>,
    /// Resources the two sides know under different ids.
    pub(crate) ids: Arc<crate::ids::IdMap>,
    pub(crate) legacy_prefix: String,
    pub(crate) telemetry: Arc<Telemetry>,
    /// Set when shutdown begins: HTTP/1 answers then close their connections.
    pub(crate) draining: AtomicBool,
    /// Bytes of bodies held in memory, process-wide.
    pub(crate) buffers: Arc<crate::buffers::Buffers>,
    /// Where CPU-heavy work runs.
    pub(crate) cpu: Arc<crate::cpu::Cpu>,
    pub(crate) via_10: HeaderValue,
    pub(crate) via_11: HeaderValue,
    pub(crate) via_2: HeaderValue,
}

impl std::fmt::Debug for Facade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facade")
            .field("legacy", &self.shared.legacy_prefix)
            .finish()
    }
}

impl Facade {
    /// Builds the facade. Fails only on settings that cannot be turned into header values.
    pub fn new(config: FacadeConfig) -> Result<Self, String> {
        let legacy = Upstream::new(&config.legacy);
        let legacy_prefix = config.legacy.origin.to_prefix();
        let via = |v: &str| {
            HeaderValue::from_str(&format!("{v} {}", config.forwarding.via_name)).map_err(|_| {
                format!(
                    "via name `{}` is not a valid header value; use letters, digits, `-` and `.`",
                    config.forwarding.via_name
                )
            })
        };
        let buffers = crate::buffers::Buffers::new(config.limits.buffer_budget);
        Ok(Self {
            shared: Arc::new(Shared {
                via_10: via("1.0")?,
                via_11: via("1.1")?,
                via_2: via("2")?,
                legacy,
                snapshot: ArcSwap::from_pointee(Snapshot::empty()),
                events: std::sync::OnceLock::new(),
                shadow_budget: Arc::new(shadow::Budget::default()),
                outbox: std::sync::OnceLock::new(),
                ryw: Arc::default(),
                ids: Arc::new(crate::ids::IdMap::new(config.shadow.id_map_pairs)),
                identity: config
                    .identity
                    .clone()
                    .map(|c| Arc::new(crate::identity::Bridge::new(c, Arc::clone(&buffers)))),
                legacy_prefix,
                telemetry: Arc::new(Telemetry::default()),
                draining: AtomicBool::new(false),
                buffers,
                cpu: Arc::new(crate::cpu::Cpu::new(
                    config.limits.cpu_jobs,
                    config.limits.transform_budget,
                )),
                config,
            }),
        })
    }

    /// Starts the shadow governor, which samples compared shadows down while the workers are
    /// busier than `[shadow] cpu_ceiling` (see [`shadow::budget`]).
    pub fn start_shadow_governor(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(shadow::budget::govern(
            Arc::clone(&self.shared.shadow_budget),
            self.shared.config.shadow.cpu_ceiling,
        ))
    }

    /// Starts the mirror outbox: mirrored writes are made durable in `wal` and shipped from
    /// there to `store`, and the delivery task sends them on. Until it runs, mirrored writes
    /// are refused (503) before legacy takes them.
    pub fn start_outbox(
        &self,
        store: Arc<dyn shadow::outbox::OutboxStore>,
        wal: Arc<shadow::wal::Wal>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let s = &*self.shared;
        if s.outbox.set(Arc::clone(&wal)).is_err() {
            return Vec::new();
        }
        let wake = Arc::new(tokio::sync::Notify::new());
        let facade = self.clone();
        let resolve: Arc<shadow::outbox::Resolve> =
            Arc::new(move |context: &str, route: &str, toward| {
                let snapshot = facade.shared.snapshot.load();
                let ctx = snapshot.context(context)?;
                // Off the request path, once per delivered write: a scan is fine.
                let route = snapshot.route_extras.iter().find(|r| &*r.id == route);
                let (peer, translation) = match toward {
                    strangler_catalog::Side::New => (
                        shadow::Peer::New(ctx.cluster.clone()?),
                        ctx.translation.as_ref().map(|(_, t)| t.clone()),
                    ),
                    // Back to legacy in the client's own contract: untranslated.
                    strangler_catalog::Side::Legacy => {
                        (shadow::Peer::Legacy(facade.shared.legacy.clone()), None)
                    }
                };
                Some(shadow::outbox::Resolved {
                    peer,
                    rules: Arc::clone(&ctx.rules),
                    translation,
                    carry: route.and_then(|r| r.shadow.id.clone()),
                    ids: route.and_then(|r| r.ids.clone()),
                    owner: (ctx.entry.owner, ctx.entry.owner_move),
                })
            });
        vec![
            tokio::spawn(crate::ids::follow(Arc::clone(&s.ids), Arc::clone(&store))),
            tokio::spawn(crate::ryw::marks(
                Arc::clone(&s.ryw),
                Arc::clone(&store),
                Arc::clone(&wal),
            )),
            tokio::spawn(shadow::wal::ship(
                wal,
                Arc::clone(&store),
                Arc::clone(&wake),
                Arc::clone(&s.telemetry),
            )),
            tokio::spawn(shadow::outbox::deliver(
                store,
                resolve,
                Arc::clone(&s.ids),
                s.config.shadow.clone(),
                wake,
                Arc::clone(&s.telemetry),
                self.work(),
            )),
        ]
    }

    /// Waits (at most `limit`) until the mirrored writes in the local log are in the catalog;
    /// returns how many are still only in the log (shipped when a process next starts on it).
    pub async fn drain_outbox(&self, limit: std::time::Duration) -> u64 {
        match self.shared.outbox.get() {
            Some(wal) => wal.drain(limit).await,
            None => 0,
        }
    }

    /// Where shadows' heavy work runs and whose memory it takes.
    pub(crate) fn work(&self) -> shadow::Work {
        shadow::Work {
            buffers: Arc::clone(&self.shared.buffers),
            cpu: Arc::clone(&self.shared.cpu),
            identity: self.shared.identity.clone(),
            legacy: self.shared.legacy.clone(),
        }
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.shared.telemetry
    }

    pub fn config(&self) -> &FacadeConfig {
        &self.shared.config
    }

    /// Compiles `catalog` and makes it the one requests follow. On error the previous one stays.
    pub fn apply_catalog(&self, catalog: &Catalog) -> Result<(), CompileError> {
        let s = &*self.shared;
        let previous = s.snapshot.load();
        match Snapshot::compile(
            catalog,
            &previous,
            &s.config.legacy,
            s.events.get(),
            &s.config.translators,
            &s.telemetry.traffic,
            s.config.paths.fold_case,
        ) {
            Ok(next) => {
                s.ids
                    .set_in_use(next.route_extras.iter().any(|r| r.ids.is_some()));
                s.snapshot.store(Arc::new(next));
                s.telemetry.record_catalog(catalog.version, true);
                Ok(())
            }
            Err(e) => {
                s.telemetry.record_catalog(previous.version, false);
                Err(e)
            }
        }
    }

    /// Reports the services' breaker, ejection and health changes to `sink` (set once, before
    /// the first catalog is applied).
    pub fn report_events(&self, sink: EventSink) {
        let _ = self.shared.events.set(sink);
    }

    /// Every figure of the facade and of the services it calls, as Prometheus text.
    pub fn render_metrics(&self, out: &mut String) {
        let mut e = crate::exposition::Exposition::default();
        self.shared.telemetry.expose(&mut e);
        let b = &self.shared.buffers;
        let (busy, too_slow) = self.shared.cpu.counts();
        e.gauge(
            "strangler_buffer_budget_bytes",
            "Bytes of bodies the facade may hold in memory at once.",
            &[],
            b.limit() as f64,
        );
        e.gauge(
            "strangler_buffer_held_bytes",
            "Bytes of bodies held in memory now (translations, shadow copies, mirrored writes).",
            &[],
            b.used() as f64,
        );
        // Mirrored writes waiting (as of the last watermark poll, every 100 ms).
        let marks = self.shared.ryw.marks();
        if marks.polled_ms > 0 {
            let mut waiting: Vec<_> = marks.waiting.iter().collect();
            waiting.sort_by(|a, b| (&a.0 .0, a.0 .1.as_str()).cmp(&(&b.0 .0, b.0 .1.as_str())));
            for ((context, toward), since) in waiting {
                e.gauge(
                    "strangler_outbox_oldest_waiting_seconds",
                    "Age of the oldest mirrored write waiting in the catalog's outbox, by context and the side it goes toward (none: nothing waits).",
                    &[("context", context), ("toward", toward.as_str())],
                    (marks.polled_ms - since).max(0) as f64 / 1000.0,
                );
            }
            e.gauge(
                "strangler_mirror_log_oldest_unshipped_seconds",
                "Age of the oldest mirrored write still only in this process's local log (0: none).",
                &[],
                marks
                    .unshipped
                    .map_or(0.0, |t| (marks.polled_ms - t).max(0) as f64 / 1000.0),
            );
        }
        let snapshot = self.shared.snapshot.load();
        for (context, availability, p99_ms) in &snapshot.objectives {
            e.gauge(
                "strangler_context_objective_availability",
                "A context's availability objective (share of requests answered below 500), for error-budget alerts.",
                &[("context", context)],
                *availability,
            );
            e.gauge(
                "strangler_context_objective_p99_seconds",
                "A context's objective for the 99th percentile of the time to the response head.",
                &[("context", context)],
                *p99_ms as f64 / 1000.0,
            );
        }
        let budget = &self.shared.shadow_budget;
        e.gauge(
            "strangler_shadow_governed_per_second",
            "Compared shadows the governor lets start per second now: cut while the workers are busier than `[shadow] cpu_ceiling`, else at most twice what started (at least 1,000).",
            &[],
            f64::from(budget.governed()),
        );
        e.gauge(
            "strangler_worker_busy_ratio",
            "Share of the last tenth of a second the facade's workers were busy (what the shadow governor reads).",
            &[],
            budget.busy_share(),
        );
        e.gauge(
            "strangler_id_map_pairs",
            "Resources the two sides know under different ids, held by this facade's id map.",
            &[],
            self.shared.ids.pairs() as f64,
        );
        e.gauge(
            "strangler_id_map_full",
            "1 when the id map holds its bound (`[shadow] id_map_pairs`) and refuses requests that may need a pair it could not keep.",
            &[],
            if self.shared.ids.is_full() { 1.0 } else { 0.0 },
        );
        for (name, help, value) in [
            (
                "strangler_buffer_refused_total",
                "Bodies not held because the buffer budget was spent (503, or a shadow skipped).",
                b.refused(),
            ),
            (
                "strangler_cpu_busy_total",
                "CPU-heavy work refused because no CPU was free within its time budget.",
                busy,
            ),
            (
                "strangler_cpu_too_slow_total",
                "CPU-heavy work given up on because it overran its time budget.",
                too_slow,
            ),
        ] {
            e.counter(name, help, &[], value as f64);
        }
        for (_, cluster) in snapshot.services.values() {
            for s in cluster.samples() {
                let labels: Vec<(&str, &str)> =
                    s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                if s.counter {
                    e.counter(s.metric, s.help, &labels, s.value as f64);
                } else {
                    e.gauge(s.metric, s.help, &labels, s.value as f64);
                }
            }
        }
        e.encode(out);
    }

    /// The services' instances and breakers now, for the admin API.
    pub fn services_view(&self) -> serde_json::Value {
        let snapshot = self.shared.snapshot.load();
        let mut out = serde_json::Map::new();
        for (name, (_, cluster)) in &snapshot.services {
            let instances: Vec<_> = cluster
                .instances()
                .into_iter()
                .map(|i| {
                    serde_json::json!({
                        "origin": i.origin,
                        "healthy": i.healthy,
                        "in_flight": i.in_flight,
                        "consecutive_failures": i.consecutive_failures,
                        "ejected": i.ejected_for_ms > 0,
                        "ejected_for_ms": i.ejected_for_ms,
                    })
                })
                .collect();
            out.insert(
                name.to_string(),
                serde_json::json!({ "breaker": cluster.breaker_state().as_str(), "instances": instances }),
            );
        }
        serde_json::Value::Object(out)
    }

    /// The identity bridge's public key as a JWKS, when the bridge is configured.
    pub fn identity_jwks(&self) -> Option<String> {
        self.shared.identity.as_ref().map(|b| b.jwks())
    }

    /// The catalog version the facade follows now.
    pub fn catalog_version(&self) -> i64 {
        self.shared.snapshot.load().version
    }

    /// What the request path needs to know about a new client connection.
    pub(crate) fn conn_info(&self, peer: SocketAddr, framing: Arc<Framing>) -> ConnInfo {
        let trusted = self
            .shared
            .config
            .forwarding
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.ip()));
        let peer_value = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnInfo::new(peer, trusted, peer_value, framing)
    }

    /// Shutdown has begun: answers close their (HTTP/1) connections from now on.
    pub(crate) fn set_draining(&self) {
        self.shared.draining.store(true, Ordering::Relaxed);
    }
}
