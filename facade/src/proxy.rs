//! One request through the facade: check it, forward it to the legacy app, answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{
    HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_LOCATION, EXPECT, HOST, LOCATION, TE,
    TRANSFER_ENCODING, UPGRADE, VIA,
};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use strangler_catalog::{Catalog, MigrationState, Side};
use strangler_services::cluster::{
    is_failure_status, Cluster, EventSink, Replay, ServiceFailureKind,
};
use strangler_services::{FailureKind, Origin, Upstream, UpstreamError};

use crate::body::{RequestBody, RequestBodyError, ResponseBody};
use crate::compose;
use crate::config::{FacadeConfig, HostHeader};
use crate::framing::Framing;
use crate::headers::{self, Forwarded};
use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::routes::decide_side;
use crate::server::{ConnActive, ConnInfo};
use crate::shadow;
use crate::snapshot::Snapshot;
use crate::telemetry::{Answer, Telemetry};
use crate::traffic::{ContextTraffic, PathCounters};
use crate::translate::{self, Collect, Translation, MAX_TRANSLATED_BODY};
use crate::upgrade;

/// The facade: immutable configuration, the legacy upstream and the telemetry. Cheap to clone.
#[derive(Clone)]
pub struct Facade {
    shared: Arc<Shared>,
}

struct Shared {
    config: FacadeConfig,
    legacy: Upstream<RequestBody>,
    /// The compiled catalog; replaced whole on every change.
    snapshot: ArcSwap<Snapshot>,
    /// Where the services' breaker, ejection and health changes are reported.
    events: std::sync::OnceLock<EventSink>,
    /// Shadows in flight.
    shadow_budget: Arc<shadow::Budget>,
    /// The identity bridge, when configured.
    identity: Option<Arc<crate::identity::Bridge>>,
    /// The mirror outbox's queue, once the outbox runs.
    outbox: std::sync::OnceLock<tokio::sync::mpsc::Sender<shadow::outbox::Queued>>,
    legacy_prefix: String,
    telemetry: Arc<Telemetry>,
    /// Set when shutdown begins: HTTP/1 answers then close their connections.
    draining: AtomicBool,
    /// Bytes of bodies held in memory, process-wide.
    buffers: Arc<crate::buffers::Buffers>,
    /// Where CPU-heavy work runs.
    cpu: Arc<crate::cpu::Cpu>,
    via_10: HeaderValue,
    via_11: HeaderValue,
    via_2: HeaderValue,
}

impl std::fmt::Debug for Facade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facade")
            .field("legacy", &self.shared.legacy_prefix)
            .finish()
    }
}

/// A refusal before anything was sent upstream, or a failed upstream call.
type Refusal = Problem;

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

    /// Starts the mirror outbox on `store`: the writer and the delivery task. Until it runs,
    /// mirrored writes are dropped (and counted).
    pub fn start_outbox(
        &self,
        store: Arc<dyn shadow::outbox::OutboxStore>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let s = &*self.shared;
        let (tx, rx) = tokio::sync::mpsc::channel(s.config.shadow.outbox_queue.max(1));
        if s.outbox.set(tx).is_err() {
            return Vec::new();
        }
        let wake = Arc::new(tokio::sync::Notify::new());
        let facade = self.clone();
        let resolve: Arc<shadow::outbox::Resolve> = Arc::new(move |context: &str| {
            let snapshot = facade.shared.snapshot.load();
            let (_, cluster) = snapshot
                .services
                .get(snapshot.targets.get(context)?.as_str())?;
            let rules = snapshot
                .shadow_rules
                .get(context)
                .cloned()
                .unwrap_or_default();
            let translation = snapshot.translations.get(context).map(|(_, t)| t.clone());
            Some((cluster.clone(), rules, translation))
        });
        vec![
            tokio::spawn(shadow::outbox::write(
                Arc::clone(&store),
                rx,
                Arc::clone(&wake),
                Arc::clone(&s.telemetry),
            )),
            tokio::spawn(shadow::outbox::deliver(
                store,
                resolve,
                s.config.shadow.clone(),
                wake,
                Arc::clone(&s.telemetry),
                self.work(),
            )),
        ]
    }

    /// Waits (at most `limit`) until the mirrored writes queued for the outbox are taken by
    /// its writer, and a moment for the writer to store them.
    pub async fn drain_outbox(&self, limit: std::time::Duration) {
        let Some(tx) = self.shared.outbox.get() else {
            return;
        };
        let until = tokio::time::Instant::now() + limit;
        while tx.capacity() < tx.max_capacity() && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    /// Where shadows' heavy work runs and whose memory it takes.
    fn work(&self) -> shadow::Work {
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
    pub fn apply_catalog(&self, catalog: &Catalog) -> Result<(), String> {
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
        let snapshot = self.shared.snapshot.load();
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

    /// Decides who answers: the matched context's side, or legacy.
    fn route(
        &self,
        req: &Request<Incoming>,
        host: Option<&HeaderValue>,
        conn: &ConnInfo,
    ) -> Routing {
        let s = &*self.shared;
        let snapshot = s.snapshot.load();
        if snapshot.routes.is_empty() {
            return Routing::legacy(s, req);
        }
        let host = host.and_then(|h| h.to_str().ok());
        let folded;
        let path = if s.config.paths.fold_case {
            folded = req.uri().path().to_ascii_lowercase();
            folded.as_str()
        } else {
            req.uri().path()
        };
        let Some(matched) =
            snapshot
                .routes
                .lookup(req.method(), host, path, req.uri().query(), req.headers())
        else {
            return Routing::legacy(s, req);
        };
        let side = decide_side(matched.context, req.headers(), conn.peer.ip());
        let context = Some(Arc::clone(&matched.context.name));
        let translation = snapshot
            .translations
            .get(&matched.context.name)
            .map(|(_, t)| t.clone());
        let traffic = snapshot.traffic.get(&matched.context.name).map(|t| Served {
            context: Some(Arc::clone(t)),
            route: snapshot.route_traffic.get(matched.route_id).cloned(),
            side,
            fell_back: false,
        });
        let target = snapshot.services.get(&matched.context.target);
        let rules = snapshot.shadow_rules.get(&matched.context.name);
        let state = matched.context.state;
        let forward = state == MigrationState::Shadow;
        let reverse = side == Side::New
            && matches!(state, MigrationState::Canary | MigrationState::Migrated)
            && rules.is_some_and(|r| r.reverse_percent > 0);
        let shadow = match (target, rules) {
            (Some((_, cluster)), Some(rules)) if forward || reverse => {
                let (route, route_shadow) = snapshot
                    .route_shadow
                    .get(matched.route_id)
                    .cloned()
                    .unwrap_or_else(|| (Arc::from(matched.route_id), Default::default()));
                Some(Box::new(shadow::Wanted {
                    context: Arc::clone(&matched.context.name),
                    route,
                    route_shadow,
                    rules: Arc::clone(rules),
                    peer: if reverse {
                        shadow::Peer::Legacy(s.legacy.clone())
                    } else {
                        shadow::Peer::New(cluster.clone())
                    },
                    reverse,
                    legacy: s.legacy.clone(),
                    // In reverse the copy goes to legacy untranslated; the primary's answer is
                    // translated on the live path.
                    translation: if reverse { None } else { translation.clone() },
                }))
            }
            _ => None,
        };
        match (side, target) {
            (Side::New, Some((_, cluster))) => Routing {
                target: Target::New {
                    cluster: cluster.clone(),
                    fallback: matched.context.fallback,
                    fallback_after: matched.context.fallback_after,
                },
                side,
                context,
                fell_back: None,
                shadow,
                translation,
                untranslated: None,
                traffic,
            },
            // Legacy, or (validation makes it impossible) a target that is not in the catalog.
            _ => Routing {
                target: Target::Legacy,
                side: Side::Legacy,
                context,
                fell_back: None,
                shadow,
                translation: None,
                untranslated: None,
                traffic,
            },
        }
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

    /// Handles one request; never fails: every failure becomes an answer.
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        conn: &Arc<ConnInfo>,
    ) -> Response<ResponseBody> {
        let s = &*self.shared;
        let start = Instant::now();
        let active = ConnActive::start(conn);
        let http1 = req.version() < Version::HTTP_2;
        let ambiguous = if http1 {
            let n = conn.h1_requests.fetch_add(1, Ordering::Relaxed);
            conn.framing.is_ambiguous(n)
        } else {
            conn.h2.store(true, Ordering::Relaxed);
            false
        };
        let access = s
            .config
            .access_log
            .then(|| (req.method().clone(), req.uri().clone(), req.version()));
        let in_flight = s.telemetry.request_started();
        let mut id = None;
        let mut served = None;
        let forwarded = if ambiguous {
            Err(Problem::new(
                Answer::BadRequest,
                "the request has both Content-Length and Transfer-Encoding, or Content-Length \
                 more than once; send exactly one of them",
            ))
        } else {
            self.forward(req, conn, &mut id, &mut served).await
        };
        let resp = match forwarded {
            Ok(resp) => resp,
            Err(problem) => {
                let id = *id.get_or_insert_with(RequestId::next);
                s.telemetry.record_answer(problem.answer);
                tracing::warn!(
                    request_id = %id,
                    status = problem.answer.status().as_u16(),
                    reason = problem.answer.as_str(),
                    detail = %problem.detail,
                    internal = problem.internal.as_deref().unwrap_or(""),
                    "facade answered"
                );
                problem.into_response(id)
            }
        };
        let elapsed = start.elapsed();
        s.telemetry.record_response(resp.status().as_u16(), elapsed);
        let status = resp.status().as_u16();
        let (side, fell_back) = served
            .as_ref()
            .map_or((Side::Legacy, false), |t| (t.side, t.fell_back));
        match served.as_ref().and_then(|t| t.context.as_ref()) {
            Some(context) => context.record(side, status, elapsed, fell_back),
            None => s
                .telemetry
                .traffic
                .unclaimed()
                .record(side, status, elapsed, false),
        }
        if let Some(route) = served.as_ref().and_then(|t| t.route.as_ref()) {
            route.record(side, status, elapsed);
        }
        if let Some((method, uri, version)) = access {
            let id = id.unwrap_or_else(RequestId::next);
            // Logs reach disk: secret query parameters are blanked there too.
            let uri = shadow::redact::target(uri.path_and_query().map_or("/", |p| p.as_str()), &[]);
            tracing::info!(
                target: "strangler::access",
                request_id = %id,
                peer = %conn.peer,
                method = %method,
                uri = %uri,
                version = ?version,
                status = resp.status().as_u16(),
                micros = elapsed.as_micros() as u64,
            );
        }
        // The request stays in flight while its body streams.
        let (mut parts, body) = resp.into_parts();
        if http1 && s.draining.load(Ordering::Relaxed) {
            parts
                .headers
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        let body = body.with_in_flight(in_flight, active);
        Response::from_parts(parts, body)
    }

    /// Forwards a request. `served` is set to the matched context's traffic counters and the
    /// side that answered (left `None` for requests no context claimed).
    async fn forward(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnInfo,
        id: &mut Option<RequestId>,
        served: &mut Option<Served>,
    ) -> Result<Response<ResponseBody>, Refusal> {
        let s = &*self.shared;
        let internal_headers = self.check(&req)?;
        normalize_target(&mut req, s.config.paths)?;

        let version = req.version();
        let head_request = req.method() == Method::HEAD;
        let public_host = match req.uri().authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => req.headers().get(HOST).cloned(),
        };
        let mut routing = self.route(&req, public_host.as_ref(), conn);
        s.telemetry.record_side(routing.side);
        if let Some(t) = routing.traffic.take() {
            *served = Some(t);
        }
        let wants_upgrade = version == Version::HTTP_11
            && req.headers().contains_key(UPGRADE)
            && headers::connection_has(req.headers(), "upgrade");
        let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));

        let (mut parts, body) = req.into_parts();
        let headers = &mut parts.headers;

        // The public origin, for the forwarding fields and redirect rewriting. An absolute-form
        // target (or HTTP/2's :authority) names it; otherwise the Host header does.
        let client_host = public_host;
        let trailers = headers::te_has_trailers(headers);
        headers::strip_hop_by_hop(headers, wants_upgrade);
        if trailers {
            headers.insert(TE, HeaderValue::from_static("trailers"));
        }
        // hyper has already answered `Expect: 100-continue` to the client when the body is
        // first read; the upstream need not be asked again.
        headers.remove(EXPECT);
        if internal_headers {
            // `X-Strangler-*` is ours to set (shadow marks, identity); a client may not forge it.
            strip_internal(headers);
        }
        match s.config.forwarding.host {
            HostHeader::Preserve => match &client_host {
                Some(h) => {
                    headers.insert(HOST, h.clone());
                }
                // HTTP/1.0 clients may send no Host; HTTP/1.1 upstreams require one.
                None => {
                    if let Ok(h) =
                        HeaderValue::from_str(self.origin_of(&routing).authority.as_str())
                    {
                        headers.insert(HOST, h);
                    }
                }
            },
            HostHeader::Upstream => {
                if let Ok(h) = HeaderValue::from_str(self.origin_of(&routing).authority.as_str()) {
                    headers.insert(HOST, h);
                }
            }
        }
        headers::set_forwarded(
            headers,
            &Forwarded {
                peer: &conn.peer_value,
                trusted: conn.trusted,
                proto: "http",
                host: client_host.as_ref(),
            },
        );
        headers.append(VIA, self.via(version).clone());
        parts.version = Version::HTTP_11;
        parts.extensions = http::Extensions::new();

        // A composed route: several calls, one assembled answer (safe methods only).
        if let Some((t, cluster, composition)) = self.composition(&routing, &parts) {
            match compose::answer(
                &t,
                composition,
                &parts,
                &s.legacy,
                &cluster,
                &s.telemetry,
                &self.work(),
            )
            .await?
            {
                compose::Composed::Answer(resp) => {
                    let mut resp = *resp;
                    resp.headers_mut().append(VIA, s.via_11.clone());
                    if s.config.forwarding.debug_header {
                        routing.debug_header(resp.headers_mut());
                    }
                    return Ok(resp);
                }
                compose::Composed::ToLegacy => {
                    if let Some(served) = served.as_mut() {
                        served.side = Side::Legacy;
                        served.fell_back = true;
                    }
                    s.telemetry
                        .record_fallback(&t.context, "composed_part_failed");
                    routing.fell_back = Some("composed_part_failed".to_owned());
                    routing.side = Side::Legacy;
                    routing.target = Target::Legacy;
                    routing.shadow = None;
                }
            }
        }

        let body = RequestBody::new(
            body,
            s.config.limits.max_body_bytes,
            s.config.limits.body_idle_timeout,
        );
        let mut outgoing = Request::from_parts(parts, body);
        let shadow_plan = match &routing.shadow {
            Some(wanted) => shadow::plan(
                &s.config.shadow,
                wanted,
                &s.shadow_budget,
                &s.buffers,
                &s.telemetry,
                &mut outgoing,
            )
            .map_err(|shadow::MirrorRefused| {
                Problem::new(
                    Answer::Overloaded,
                    format!(
                        "context `{}` mirrors this write, and the facade's buffer budget has no room for its copy now; it was not sent anywhere, try again shortly",
                        wanted.context
                    ),
                )
            })?,
            None => None,
        };
        let outgoing = match self.translate_outgoing(&mut routing, outgoing).await {
            Ok(req) => req,
            Err(problem) => {
                if let Some(plan) = shadow_plan {
                    shadow::abandon(plan, &s.telemetry, shadow::Skip::PrimaryFailed);
                }
                return Err(problem);
            }
        };
        let sent = self.send(&mut routing, outgoing).await;
        // A fallback changed who answered.
        if let Some(served) = served.as_mut() {
            served.side = routing.side;
            served.fell_back = routing.fell_back.is_some();
        }
        let mut resp = match sent {
            Ok(resp) => resp,
            Err(problem) => {
                if let Some(plan) = shadow_plan {
                    shadow::abandon(plan, &s.telemetry, shadow::Skip::PrimaryFailed);
                }
                return Err(problem);
            }
        };
        // In reverse, a fallback means legacy answered: there is nothing to compare.
        let shadow_plan = match shadow_plan {
            Some(plan) if routing.fell_back.is_some() => {
                shadow::abandon(plan, &s.telemetry, shadow::Skip::FellBack);
                None
            }
            plan => plan,
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(Problem::new(
                    Answer::UpstreamBroken,
                    "the upstream switched protocols without being asked to",
                ));
            };
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            s.telemetry.record_upgrade();
            upgrade::spawn_tunnel(
                client_upgrade,
                upstream_upgrade,
                *id.get_or_insert_with(RequestId::next),
            );
            let (mut parts, _) = resp.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers, true);
            parts.headers.append(VIA, s.via_11.clone());
            parts.extensions = http::Extensions::new();
            return Ok(Response::from_parts(parts, ResponseBody::empty()));
        }

        let (mut parts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        let body = match self
            .translate_incoming(
                &routing,
                &mut parts,
                body,
                client_host.as_ref(),
                head_request,
            )
            .await
        {
            Ok(body) => body,
            Err(problem) => {
                if let Some(plan) = shadow_plan {
                    shadow::abandon(plan, &s.telemetry, shadow::Skip::PrimaryFailed);
                }
                return Err(problem);
            }
        };
        if s.config.forwarding.rewrite_redirects {
            if let Some(host) = &client_host {
                rewrite_redirects(
                    &mut parts.headers,
                    &self.origin_of(&routing).to_prefix(),
                    host,
                );
            }
        }
        parts.headers.append(VIA, s.via_11.clone());
        if s.config.forwarding.debug_header {
            routing.debug_header(&mut parts.headers);
        }
        parts.version = Version::HTTP_11;
        parts.extensions = http::Extensions::new();
        let body = match shadow_plan {
            Some(plan) => {
                let sinks = shadow::Sinks {
                    telemetry: Arc::clone(&s.telemetry),
                    outbox: s.outbox.get().cloned(),
                    work: self.work(),
                };
                body.with_tee(shadow::launch(plan, &s.config.shadow, sinks, &parts))
            }
            None => body,
        };
        Ok(Response::from_parts(parts, body))
    }

    /// Checks a request before anything is sent upstream. Returns whether it carries
    /// `X-Strangler-*` fields, which must not pass.
    fn check(&self, req: &Request<Incoming>) -> Result<bool, Refusal> {
        let limits = &self.shared.config.limits;
        if req.method() == Method::CONNECT {
            return Err(Problem::new(
                Answer::MethodNotAllowed,
                "CONNECT is not served: Strangler is a reverse proxy, not a forward proxy",
            ));
        }
        let mut head_bytes = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
        let mut internal = false;
        for (name, value) in req.headers() {
            head_bytes += name.as_str().len() + value.len() + 4;
            internal |= name.as_str().starts_with(INTERNAL_PREFIX);
        }
        if head_bytes > limits.max_header_bytes {
            return Err(Problem::new(
                Answer::HeadersTooLarge,
                format!(
                    "the request target and header fields take {head_bytes} bytes; the limit is {}",
                    limits.max_header_bytes
                ),
            ));
        }
        if req.headers().contains_key(TRANSFER_ENCODING) {
            if req.version() != Version::HTTP_11 {
                return Err(Problem::new(
                    Answer::BadRequest,
                    "Transfer-Encoding is only valid in HTTP/1.1 requests",
                ));
            }
            // hyper decodes `chunked` only; any other coding would reach the upstream still
            // encoded, under framing it no longer describes.
            let mut codings = req.headers().get_all(TRANSFER_ENCODING).iter();
            let only_chunked = codings
                .next()
                .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"))
                && codings.next().is_none();
            if !only_chunked {
                return Err(Problem::new(
                    Answer::NotImplemented,
                    "the request uses a transfer coding other than `chunked`; send the body \
                     with `Transfer-Encoding: chunked` alone (or a Content-Length)",
                ));
            }
        }
        if let Some(limit) = limits.max_body_bytes {
            let declared = req
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(len) = declared.filter(|len| *len > limit) {
                return Err(Problem::new(
                    Answer::BodyTooLarge,
                    format!("the request body declares {len} bytes; the limit is {limit}"),
                ));
            }
        }
        Ok(internal)
    }

    /// The composition that answers this request, if its context's translator has one for the
    /// path and the new side answers.
    fn composition(
        &self,
        routing: &Routing,
        parts: &http::request::Parts,
    ) -> Option<(
        Translation,
        Cluster<RequestBody>,
        strangler_anti_corruption::Composition,
    )> {
        let (Target::New { cluster, .. }, Some(t)) = (&routing.target, &routing.translation) else {
            return None;
        };
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            return None;
        }
        let composition = t.compiled.compose(parts.uri.path())?;
        Some((t.clone(), cluster.clone(), composition))
    }

    /// Translates a request going to the new side (head always; the body when the translator's
    /// rules need it, buffered up to a cap). Keeps the client's request for a fallback.
    async fn translate_outgoing(
        &self,
        routing: &mut Routing,
        req: Request<RequestBody>,
    ) -> Result<Request<RequestBody>, Problem> {
        let s = &*self.shared;
        let (
            Target::New {
                fallback, cluster, ..
            },
            Some(t),
        ) = (&routing.target, &routing.translation)
        else {
            return Ok(req);
        };
        let (mut parts, body) = req.into_parts();
        let (body, buffered) = if t.compiled.needs_request_body() {
            match translate::collect(body, MAX_TRANSLATED_BODY, &s.buffers).await {
                Ok(b) => (None, Some(b)),
                Err(Collect::TooLarge) => {
                    return Err(Problem::new(
                        Answer::BodyTooLarge,
                        format!(
                            "context `{}` translates request bodies of at most {MAX_TRANSLATED_BODY} bytes",
                            t.context
                        ),
                    ))
                }
                Err(Collect::Budget) => return Err(over_budget(&t.context)),
                Err(Collect::Broken(e)) => {
                    let answer = match e {
                        RequestBodyError::TooLarge { .. } => Answer::BodyTooLarge,
                        RequestBodyError::Idle(_) => Answer::ClientTimeout,
                        RequestBodyError::Client(_) => Answer::BadRequest,
                    };
                    return Err(Problem::new(answer, e.to_string()));
                }
            }
        } else {
            (Some(body), None)
        };
        let (buffered, held) = match buffered {
            Some((b, held)) => (Some(b), Some(held)),
            None => (None, None),
        };
        if *fallback {
            let head = Replay {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                version: parts.version,
                headers: parts.headers.clone(),
            };
            routing.untranslated = Some((head, buffered.clone()));
        }
        // After the copy for a fallback: legacy gets the session cookie, the service the token.
        if let (Some(spec), Some(bridge)) = (t.compiled.identity(), &s.identity) {
            bridge
                .apply(
                    spec,
                    &s.legacy,
                    &mut parts.headers,
                    &t.context,
                    cluster.name(),
                )
                .await?;
        }
        let (parts, translated) =
            translate::request_off(&s.cpu, &s.buffers, &t.compiled, parts, buffered)
                .await
                .map_err(|f| f.problem(&s.telemetry, &t.context, "request"))?;
        let body = match (translated, body) {
            (Some(b), _) => RequestBody::full(b).holding(held),
            (None, Some(body)) => body,
            (None, None) => RequestBody::full(bytes::Bytes::new()),
        };
        Ok(Request::from_parts(parts, body))
    }

    /// Translates the new side's answer back into the legacy contract (nothing when legacy
    /// answered, or the context has no translator).
    async fn translate_incoming(
        &self,
        routing: &Routing,
        parts: &mut http::response::Parts,
        body: ResponseBody,
        client_host: Option<&HeaderValue>,
        head_request: bool,
    ) -> Result<ResponseBody, Problem> {
        let s = &*self.shared;
        let (Target::New { .. }, Some(t), None) =
            (&routing.target, &routing.translation, &routing.fell_back)
        else {
            return Ok(body);
        };
        let (body, buffered) = if !head_request && t.compiled.needs_response_body(parts.status) {
            match translate::collect(body, MAX_TRANSLATED_BODY, &s.buffers).await {
                Ok(b) => (None, Some(b)),
                Err(Collect::TooLarge) => {
                    s.telemetry
                        .record_translation_failure(&t.context, "response");
                    return Err(Problem::new(
                        Answer::TranslationFailed,
                        format!(
                            "context `{}`'s answer is over {MAX_TRANSLATED_BODY} bytes, the most its translator buffers",
                            t.context
                        ),
                    ));
                }
                Err(Collect::Budget) => return Err(over_budget(&t.context)),
                Err(Collect::Broken(e)) => {
                    return Err(Problem::new(
                        Answer::UpstreamBroken,
                        format!("context `{}`'s answer broke off: {e}", t.context),
                    ))
                }
            }
        } else {
            (Some(body), None)
        };
        let (buffered, held) = match buffered {
            Some((b, held)) => (Some(b), Some(held)),
            None => (None, None),
        };
        // The public origin, only when there may be a link to rewrite.
        let links_possible = buffered.is_some()
            || parts.headers.contains_key(LOCATION)
            || parts.headers.contains_key(CONTENT_LOCATION)
            || parts.headers.contains_key(http::header::LINK);
        let public = client_host
            .filter(|_| links_possible)
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("http://{h}"));
        let owned = std::mem::replace(parts, Response::new(()).into_parts().0);
        let (translated_parts, translated) = translate::response_off(
            &s.cpu,
            &s.buffers,
            &t.compiled,
            owned,
            buffered,
            &t.upstreams,
            public,
        )
        .await
        .map_err(|f| f.problem(&s.telemetry, &t.context, "response"))?;
        *parts = translated_parts;
        Ok(match (translated, body) {
            (Some(b), _) => ResponseBody::full(b).holding(held),
            (None, Some(body)) => body,
            (None, None) => ResponseBody::empty(),
        })
    }

    fn via(&self, version: Version) -> &HeaderValue {
        let s = &*self.shared;
        match version {
            Version::HTTP_2 | Version::HTTP_3 => &s.via_2,
            Version::HTTP_10 | Version::HTTP_09 => &s.via_10,
            _ => &s.via_11,
        }
    }

    fn upstream_failure(&self, err: &UpstreamError, routing: &Routing) -> Problem {
        let s = &*self.shared;
        if err.kind() == FailureKind::RequestBody {
            if let Some(cause) = err.find_cause::<RequestBodyError>() {
                let answer = match cause {
                    RequestBodyError::TooLarge { .. } => Answer::BodyTooLarge,
                    RequestBodyError::Idle(_) => Answer::ClientTimeout,
                    RequestBodyError::Client(_) => Answer::BadRequest,
                };
                return Problem::new(answer, cause.to_string());
            }
        }
        s.telemetry.record_upstream_error(err.kind());
        let answer = match err.kind() {
            FailureKind::Connect => Answer::UpstreamUnreachable,
            FailureKind::Timeout => Answer::UpstreamTimeout,
            FailureKind::Reset | FailureKind::Protocol | FailureKind::RequestBody => {
                Answer::UpstreamBroken
            }
        };
        let who = match &routing.context {
            Some(ctx) => format!("the {} side of context `{ctx}`", routing.side.as_str()),
            None => "the legacy application".to_owned(),
        };
        // The client learns what failed; the log learns where and why (addresses and OS
        // errors are the operator's business, not the client's).
        Problem::new(answer, format!("{who} {}", public_failure(err.kind()))).internal(format!(
            "{who} ({}): {err}",
            self.origin_of(routing).to_prefix()
        ))
    }

    /// The origin of whoever answers (the first instance of a new service).
    fn origin_of<'a>(&'a self, routing: &'a Routing) -> &'a Origin {
        match &routing.target {
            Target::New { cluster, .. } if routing.fell_back.is_none() => {
                cluster.origin().unwrap_or(self.shared.legacy.origin())
            }
            _ => self.shared.legacy.origin(),
        }
    }

    /// Sends the request to the side the routing chose; on the new side, with fallback to
    /// legacy where the context allows it.
    async fn send(
        &self,
        routing: &mut Routing,
        req: Request<RequestBody>,
    ) -> Result<Response<ResponseBody>, Problem> {
        let s = &*self.shared;
        let (cluster, fallback, fallback_after) = match &routing.target {
            Target::Legacy => {
                return match s.legacy.send(req).await {
                    Ok(resp) => Ok(resp.map(ResponseBody::upstream)),
                    Err(err) => Err(self.upstream_failure(&err, routing)),
                };
            }
            Target::New {
                cluster,
                fallback,
                fallback_after,
            } => (cluster.clone(), *fallback, *fallback_after),
        };
        // A safe request without a body can be sent again to legacy after the new side failed
        // (and the same copy serves the cluster's retries).
        let replay = (fallback
            && matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
            && http_body::Body::is_end_stream(req.body()))
        .then(|| Replay::of(&req));
        // A hung new service must not hold the client for its whole timeout: a safe request
        // that has no answer by the deadline is answered by legacy.
        let deadline = replay
            .as_ref()
            .map(|_| fallback_after.unwrap_or_else(|| cluster.fallback_deadline()));
        match cluster.send_within(req, replay.as_ref(), deadline).await {
            Ok(resp) if replay.is_some() && is_failure_status(resp.status()) => {
                let reason = format!("status_{}", resp.status().as_u16());
                drop(resp);
                match &replay {
                    Some(r) => self.fall_back(routing, r.rebuild(), &reason).await,
                    None => Err(Problem::new(
                        Answer::UpstreamBroken,
                        "no request to fall back with",
                    )),
                }
            }
            Ok(resp) => Ok(resp.map(ResponseBody::cluster)),
            Err(failure) => {
                let reason = failure.kind.as_str();
                if fallback {
                    // A request that never left may go to legacy whatever its method; one that
                    // left only when it is safe to send twice.
                    if let Some(unsent) = failure.unsent {
                        return self.fall_back(routing, unsent, reason).await;
                    }
                    if let Some(r) = &replay {
                        return self.fall_back(routing, r.rebuild(), reason).await;
                    }
                }
                Err(self.service_failure(&failure.kind, failure.error.as_ref(), routing))
            }
        }
    }

    async fn fall_back(
        &self,
        routing: &mut Routing,
        req: Request<RequestBody>,
        reason: &str,
    ) -> Result<Response<ResponseBody>, Problem> {
        let s = &*self.shared;
        // Legacy gets the request as the client sent it, not the new service's translation.
        let req = match routing.untranslated.take() {
            Some((head, buffered)) => {
                let body = match buffered {
                    Some(b) => RequestBody::full(b),
                    None => req.into_body(),
                };
                let mut again: Request<RequestBody> = head.rebuild();
                *again.body_mut() = body;
                again
            }
            None => req,
        };
        let context = routing.context.as_deref().unwrap_or("-");
        s.telemetry.record_fallback(context, reason);
        tracing::debug!(context, reason, "new side failed; legacy answers");
        routing.fell_back = Some(reason.to_owned());
        routing.side = Side::Legacy;
        match s.legacy.send(req).await {
            Ok(resp) => Ok(resp.map(ResponseBody::upstream)),
            Err(err) => Err(self.upstream_failure(&err, routing)),
        }
    }

    fn service_failure(
        &self,
        kind: &ServiceFailureKind,
        error: Option<&UpstreamError>,
        routing: &Routing,
    ) -> Problem {
        match (kind, error) {
            (_, Some(err)) => self.upstream_failure(err, routing),
            (ServiceFailureKind::BreakerOpen, None) => Problem::new(
                Answer::ServiceUnavailable,
                format!(
                    "the circuit breaker of context `{}`'s service is open; try again shortly",
                    routing.context.as_deref().unwrap_or("-")
                ),
            ),
            (_, None) => Problem::new(
                Answer::ServiceUnavailable,
                format!(
                    "context `{}`'s service is at its concurrency limit; try again shortly",
                    routing.context.as_deref().unwrap_or("-")
                ),
            ),
        }
    }
}

/// Who a request goes to.
enum Target {
    Legacy,
    New {
        cluster: Cluster<RequestBody>,
        /// Whether legacy answers when the new side fails.
        fallback: bool,
        /// How long a safe request waits for the new side (`None`: the service's own figure).
        fallback_after: Option<std::time::Duration>,
    },
}

/// Where one request goes, and where it ended up.
struct Routing {
    target: Target,
    side: Side,
    /// The matched context, if any.
    context: Option<Arc<str>>,
    /// Why legacy answered instead of the new side, if it did.
    fell_back: Option<String>,
    /// In `shadow` state (or reverse shadow in canary and migrated): where a copy may go.
    shadow: Option<Box<shadow::Wanted>>,
    /// The context's translator, applied when the new side answers.
    translation: Option<Translation>,
    /// The matched context's traffic counters (taken by `forward`).
    traffic: Option<Served>,
    /// The request as the client sent it (head, and body when it was buffered), for a
    /// fallback to legacy after it was translated for the new side.
    untranslated: Option<(Replay, Option<bytes::Bytes>)>,
}

/// The traffic counters a request counts in, and who answered it.
struct Served {
    /// None: no context claimed it.
    context: Option<Arc<ContextTraffic>>,
    route: Option<Arc<PathCounters>>,
    side: Side,
    fell_back: bool,
}

impl Routing {
    /// No context claimed the request: legacy answers, and it is counted by path template.
    fn legacy(s: &Shared, req: &Request<Incoming>) -> Self {
        let counters = s
            .telemetry
            .traffic
            .unclaimed_path(req.method().as_str(), req.uri().path());
        Self {
            target: Target::Legacy,
            side: Side::Legacy,
            context: None,
            fell_back: None,
            shadow: None,
            translation: None,
            untranslated: None,
            traffic: Some(Served {
                context: None,
                route: Some(counters),
                side: Side::Legacy,
                fell_back: false,
            }),
        }
    }

    fn debug_header(&self, headers: &mut http::HeaderMap) {
        let mut value = match &self.context {
            Some(ctx) => format!("context={ctx}; side={}", self.side.as_str()),
            None => "context=-; side=legacy".to_owned(),
        };
        if let Some(why) = &self.fell_back {
            value.push_str(&format!("; fallback={why}"));
        }
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static("x-strangler-route"), v);
        }
    }
}

/// Replaces the request's path with its normal form (the query stays as sent), so that the
/// route table and every upstream see one spelling of it; a path that names nothing is 400.
fn normalize_target(
    req: &mut Request<Incoming>,
    rules: crate::path::PathRules,
) -> Result<(), Problem> {
    let normal = match crate::path::normalize(req.uri().path(), rules) {
        Ok(std::borrow::Cow::Borrowed(_)) => return Ok(()),
        Ok(std::borrow::Cow::Owned(p)) => p,
        Err(e) => {
            return Err(Problem::new(
                Answer::BadRequest,
                format!("the request path cannot be routed: {e}"),
            ))
        }
    };
    let target = match req.uri().query() {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(
        target
            .parse()
            .map_err(|_| Problem::new(Answer::BadRequest, "the request path cannot be routed"))?,
    );
    *req.uri_mut() = http::Uri::from_parts(parts)
        .map_err(|_| Problem::new(Answer::BadRequest, "the request path cannot be routed"))?;
    Ok(())
}

fn rewrite_redirects(headers: &mut http::HeaderMap, upstream: &str, host: &HeaderValue) {
    if !headers.contains_key(LOCATION) && !headers.contains_key(CONTENT_LOCATION) {
        return;
    }
    let Ok(host) = host.to_str() else { return };
    let public = format!("http://{host}");
    for name in [LOCATION, CONTENT_LOCATION] {
        rewrite_one(headers, &name, upstream, &public);
    }
}

/// What a client is told of an upstream failure.
pub(crate) fn public_failure(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Connect => "could not be reached",
        FailureKind::Timeout => "did not answer in time",
        FailureKind::Reset | FailureKind::Protocol | FailureKind::RequestBody => {
            "broke off the exchange"
        }
    }
}

/// The answer when the buffer budget has no room for a body.
fn over_budget(context: &str) -> Problem {
    Problem::new(
        Answer::Overloaded,
        format!(
            "context `{context}`: the facade holds as many bodies in memory as its buffer budget allows; try again shortly"
        ),
    )
}

/// Header names the facade reserves for itself.
const INTERNAL_PREFIX: &str = "x-strangler-";

fn strip_internal(headers: &mut http::HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(INTERNAL_PREFIX))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

fn rewrite_one(headers: &mut http::HeaderMap, name: &HeaderName, upstream: &str, public: &str) {
    if let Some(value) = headers.get(name) {
        if let Some(new) = headers::rewrite_origin(value, upstream, public) {
            headers.insert(name, new);
        }
    }
}
