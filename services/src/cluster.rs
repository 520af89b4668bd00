//! A service of one or more instances, reached through the resilience stack: a circuit breaker,
//! a bulkhead (concurrency limit), load balancing across instances that are not ejected
//! (power of two choices on in-flight requests, or round robin), passive outlier ejection with
//! a growing back-off, and retries of idempotent requests to another instance under a retry
//! budget, with exponential backoff and full jitter.
//!
//! A retry happens only before any response has reached the caller: the response head is the
//! point of no return.
//!
//! Size: over 600 lines, kept whole on purpose. The breaker lives in `cluster/breaker.rs` and the
//! retry budget in `cluster/budget.rs`; what stays is the one `impl Cluster` whose parts (pick an
//! instance, count in-flight, eject, retry, collapse) share the instance table and must be read
//! together to see that a retry never happens after the response head has gone out.

mod breaker;
mod budget;
mod collapse;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::Either;
use http::{Method, Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use breaker::{Admit, Breaker};
pub use breaker::{BreakerConfig, BreakerState};
use budget::RetryBudget;

use crate::error::{BoxError, FailureKind, UpstreamError};
use crate::upstream::{Origin, Upstream, UpstreamBody, UpstreamConfig};

/// How an instance is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Two instances at random; the one with fewer requests in flight.
    #[default]
    PowerOfTwoChoices,
    RoundRobin,
}

/// Passive outlier ejection.
#[derive(Debug, Clone)]
pub struct OutlierConfig {
    /// Consecutive failures (connect errors, resets, timeouts, 5xx) that eject an instance.
    pub consecutive_failures: u32,
    /// The first ejection's length; each further one doubles it, up to `max_ejection`.
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    /// At most this share of the instances is ejected at once (never all).
    pub max_ejected_share: f64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(120),
            max_ejected_share: 0.5,
        }
    }
}

/// Retries.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Tries in all, the first included (1 = no retries).
    pub attempts: u32,
    /// Retries per request at most, over time (0.2 = 20 %).
    pub budget_ratio: f64,
    /// Retries allowed before traffic has paid for them.
    pub budget_reserve: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Also retry PUT and DELETE (idempotent by the HTTP spec, not always in practice).
    pub put_and_delete: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: 2,
            budget_ratio: 0.2,
            budget_reserve: 10,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(200),
            put_and_delete: false,
        }
    }
}

/// Active health checks: each instance is asked `GET path` every `interval`.
#[derive(Debug, Clone)]
pub struct HealthCheckConfig {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that mark an unhealthy instance healthy again.
    pub healthy_threshold: u32,
    /// Consecutive failures that mark a healthy instance unhealthy.
    pub unhealthy_threshold: u32,
}

/// Something that happened to a service, for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceEvent {
    Breaker {
        service: String,
        state: BreakerState,
    },
    Ejected {
        service: String,
        instance: String,
        for_ms: u64,
    },
    Health {
        service: String,
        instance: String,
        healthy: bool,
    },
}

/// Where service events go.
pub type EventSink = Arc<dyn Fn(ServiceEvent) + Send + Sync>;

/// Everything about one service.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub name: String,
    pub instances: Vec<Origin>,
    /// Timeouts and pool settings for every instance (its origin is replaced).
    pub upstream: UpstreamConfig,
    pub balance: Balance,
    pub outlier: OutlierConfig,
    pub breaker: BreakerConfig,
    /// The bulkhead: requests in flight at most (`None`: unlimited).
    pub max_concurrent: Option<usize>,
    pub retry: RetryConfig,
    pub health: Option<HealthCheckConfig>,
    /// Request collapsing for identical concurrent GETs (`None`: off).
    pub collapse: Option<CollapseConfig>,
}

/// Request collapsing.
#[derive(Debug, Clone)]
pub struct CollapseConfig {
    /// Also share requests carrying credentials (`Authorization`, `Cookie`, the identity
    /// token, API keys; only when the service answers them the same for everyone).
    pub with_credentials: bool,
    /// Forwarding or tracing fields (normally left out of the key) the service's answers vary
    /// on, e.g. `user-agent`.
    pub vary: Vec<String>,
    /// The largest response body shared (its length must be known in advance).
    pub max_body: usize,
    /// How long a leader waits for identical requests to join before it goes upstream
    /// (zero: it goes at once, and only requests that overlap its call share it).
    pub window: Duration,
}

/// Why a service call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceFailureKind {
    Upstream(FailureKind),
    /// The breaker is open: the request was not sent.
    BreakerOpen,
    /// The bulkhead is full: the request was not sent.
    BulkheadFull,
}

impl ServiceFailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceFailureKind::Upstream(k) => k.as_str(),
            ServiceFailureKind::BreakerOpen => "breaker_open",
            ServiceFailureKind::BulkheadFull => "bulkhead_full",
        }
    }
}

/// A failed call; `unsent` holds the request when it never reached any instance.
#[derive(Debug)]
pub struct ServiceFailure<B> {
    pub kind: ServiceFailureKind,
    pub error: Option<UpstreamError>,
    pub unsent: Option<Request<B>>,
}

impl<B> std::fmt::Display for ServiceFailure<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.kind, &self.error) {
            (_, Some(e)) => write!(f, "{e}"),
            (ServiceFailureKind::BreakerOpen, None) => f.write_str("the circuit breaker is open"),
            (ServiceFailureKind::BulkheadFull, None) => {
                f.write_str("the service's concurrency limit is reached")
            }
            (ServiceFailureKind::Upstream(k), None) => f.write_str(k.as_str()),
        }
    }
}

/// A body an empty request can be rebuilt with (for retries).
pub trait EmptyBody {
    fn empty() -> Self;
}

/// What it takes to send a bodiless request again: its head.
#[derive(Debug, Clone)]
pub struct Replay {
    pub method: Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub headers: http::HeaderMap,
}

impl Replay {
    pub fn of<B>(req: &Request<B>) -> Self {
        Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
        }
    }

    /// The request again, with an empty body.
    pub fn rebuild<B: EmptyBody>(&self) -> Request<B> {
        let mut again = Request::new(B::empty());
        *again.method_mut() = self.method.clone();
        *again.uri_mut() = self.uri.clone();
        *again.version_mut() = self.version;
        *again.headers_mut() = self.headers.clone();
        again
    }
}

struct Endpoint<B> {
    upstream: Upstream<B>,
    in_flight: AtomicUsize,
    consecutive_failures: AtomicU32,
    ejections: AtomicU32,
    /// Milliseconds since the process clock's start; 0 = not ejected.
    ejected_until: AtomicU64,
    /// The active health check's verdict (true without checks).
    healthy: std::sync::atomic::AtomicBool,
    /// Consecutive check results in the other direction.
    streak: AtomicU32,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    retries_denied: AtomicU64,
    breaker_rejected: AtomicU64,
    bulkhead_rejected: AtomicU64,
    ejections: AtomicU64,
    breaker_opened: AtomicU64,
    /// Requests answered from another request's upstream call.
    collapsed: AtomicU64,
    /// Requests given up on at their caller's deadline (the caller answers otherwise).
    deadline_passed: AtomicU64,
}

struct Inner<B> {
    config: ClusterConfig,
    events: Option<EventSink>,
    collapser: Option<collapse::Collapser>,
    endpoints: Vec<Endpoint<B>>,
    breaker: Breaker,
    budget: RetryBudget,
    bulkhead: Option<Arc<Semaphore>>,
    next: AtomicUsize,
    counters: Counters,
    /// Running mean of the time to a response head, in microseconds (0: none seen yet).
    mean_us: AtomicU64,
}

/// A service with its resilience stack. Cheap to clone.
pub struct Cluster<B> {
    inner: Arc<Inner<B>>,
}

impl<B> Clone for Cluster<B> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B> std::fmt::Debug for Cluster<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.inner.config.name)
            .finish()
    }
}

fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A 5xx that says the instance, not the request, is at fault (what counts as a failure for
/// breakers, ejection, retries and fallback).
pub fn is_failure_status(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// The HTTP status an answer stands for: its own, or for a gRPC answer that carries its
/// `grpc-status` in the head (a call that failed before any message, "Trailers-Only"), the
/// status that gRPC code maps to, so that breakers, ejection, fallback and the error counts
/// treat UNAVAILABLE like a 503. A gRPC status that only arrives in the trailers, after the
/// head has been passed on, is not seen here.
pub fn effective_status(status: http::StatusCode, headers: &http::HeaderMap) -> http::StatusCode {
    use http::StatusCode as S;
    // The first `Content-Type`, found by a pass over the names (standard ones compare as
    // tags): cheaper than a lookup, which hashes, for the few fields most answers have.
    let grpc = || {
        headers
            .iter()
            .find(|(name, _)| *name == http::header::CONTENT_TYPE)
            .is_some_and(|(_, v)| v.as_bytes().starts_with(b"application/grpc"))
    };
    if status != S::OK || !grpc() {
        return status;
    }
    // The gRPC codes and the HTTP statuses they correspond to (gRPC's own table of HTTP to
    // gRPC codes, read backwards, as proxies such as Envoy do).
    match headers.get("grpc-status").map(http::HeaderValue::as_bytes) {
        Some(b"1") => S::from_u16(499).unwrap_or(S::BAD_REQUEST),
        Some(b"2" | b"13" | b"15") => S::INTERNAL_SERVER_ERROR,
        Some(b"3" | b"9" | b"11") => S::BAD_REQUEST,
        Some(b"4") => S::GATEWAY_TIMEOUT,
        Some(b"5") => S::NOT_FOUND,
        Some(b"6" | b"10") => S::CONFLICT,
        Some(b"7") => S::FORBIDDEN,
        Some(b"8") => S::TOO_MANY_REQUESTS,
        Some(b"12") => S::NOT_IMPLEMENTED,
        Some(b"14") => S::SERVICE_UNAVAILABLE,
        Some(b"16") => S::UNAUTHORIZED,
        _ => status,
    }
}

/// One instance as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    pub origin: String,
    /// The active health check's verdict (true without checks).
    pub healthy: bool,
    pub in_flight: usize,
    pub consecutive_failures: u32,
    pub ejected_for_ms: u64,
}

impl<B> Cluster<B>
where
    B: http_body::Body<Data = Bytes> + EmptyBody + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// Builds the cluster; instances whose origin appears in `reuse` keep its pool. With health
    /// checks configured, a task checks the instances for as long as the cluster lives (so this
    /// must run inside a Tokio runtime).
    pub fn new(config: ClusterConfig, reuse: Option<&Cluster<B>>) -> Self {
        Self::with_events(config, reuse, None)
    }

    /// Like [`Cluster::new`], reporting breaker changes, ejections and health changes to `events`.
    pub fn with_events(
        config: ClusterConfig,
        reuse: Option<&Cluster<B>>,
        events: Option<EventSink>,
    ) -> Self {
        let endpoints = config
            .instances
            .iter()
            .map(|origin| {
                let mut u = config.upstream.clone();
                u.origin = origin.clone();
                // An instance seen before keeps its pool; its timeouts are the new policy's.
                let upstream = reuse
                    .and_then(|c| {
                        c.inner
                            .endpoints
                            .iter()
                            .find(|e| e.upstream.origin() == origin)
                    })
                    .map_or_else(|| Upstream::new(&u), |e| e.upstream.reconfigured(&u));
                Endpoint {
                    upstream,
                    in_flight: AtomicUsize::new(0),
                    consecutive_failures: AtomicU32::new(0),
                    ejections: AtomicU32::new(0),
                    ejected_until: AtomicU64::new(0),
                    healthy: std::sync::atomic::AtomicBool::new(true),
                    streak: AtomicU32::new(0),
                }
            })
            .collect();
        let cluster = Self {
            inner: Arc::new(Inner {
                events,
                collapser: config.collapse.as_ref().map(|c| {
                    collapse::Collapser::new(c.with_credentials, c.vary.clone(), c.max_body)
                }),
                breaker: Breaker::new(config.breaker.clone()),
                budget: RetryBudget::new(config.retry.budget_ratio, config.retry.budget_reserve),
                bulkhead: config
                    .max_concurrent
                    .map(|n| Arc::new(Semaphore::new(n.max(1)))),
                next: AtomicUsize::new(0),
                counters: Counters::default(),
                mean_us: AtomicU64::new(0),
                endpoints,
                config,
            }),
        };
        if let Some(health) = cluster.inner.config.health.clone() {
            tokio::spawn(check_health(Arc::downgrade(&cluster.inner), health));
        }
        cluster
    }

    fn emit(&self, event: ServiceEvent) {
        if let Some(sink) = &self.inner.events {
            sink(event);
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Whether a request could be sent now: the breaker is not open and some instance is
    /// healthy and not ejected.
    pub fn available(&self) -> bool {
        if self.inner.breaker.state() == BreakerState::Open {
            return false;
        }
        let now = clock_ms();
        self.inner
            .endpoints
            .iter()
            .any(|e| e.healthy.load(Relaxed) && e.ejected_until.load(Relaxed) <= now)
    }

    /// The instances and their health now.
    pub fn instances(&self) -> Vec<InstanceView> {
        let now = clock_ms();
        self.inner
            .endpoints
            .iter()
            .map(|e| InstanceView {
                origin: e.upstream.origin().to_prefix(),
                healthy: e.healthy.load(Relaxed),
                in_flight: e.in_flight.load(Relaxed),
                consecutive_failures: e.consecutive_failures.load(Relaxed),
                ejected_for_ms: e.ejected_until.load(Relaxed).saturating_sub(now),
            })
            .collect()
    }

    /// The first instance's origin (for redirect rewriting).
    pub fn origin(&self) -> Option<&Origin> {
        self.inner.endpoints.first().map(|e| e.upstream.origin())
    }

    fn retryable(&self, method: &Method) -> bool {
        matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
            || (self.inner.config.retry.put_and_delete
                && matches!(*method, Method::PUT | Method::DELETE))
    }

    /// Picks an instance that is not ejected (and not `avoid`, when another exists).
    fn pick(&self, avoid: Option<usize>) -> usize {
        let endpoints = &self.inner.endpoints;
        if endpoints.len() == 1 {
            return 0;
        }
        let now = clock_ms();
        let usable = |i: usize| {
            endpoints[i].ejected_until.load(Relaxed) <= now && endpoints[i].healthy.load(Relaxed)
        };
        // Candidates as a bit set (no allocation on the request path): usable and not the one
        // that just failed; failing that, usable; failing that, all.
        let n = endpoints.len().min(64);
        let mut set: u64 = (0..n)
            .filter(|&i| usable(i) && Some(i) != avoid)
            .fold(0, |m, i| m | 1 << i);
        if set == 0 {
            set = (0..n).filter(|&i| usable(i)).fold(0, |m, i| m | 1 << i);
        }
        if set == 0 {
            // Ejection never takes all instances, but ejections can outlast the share rule
            // when instances change; an instance that may fail beats none.
            set = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        }
        let count = set.count_ones() as usize;
        let nth = |k: usize| {
            let mut rest = set;
            for _ in 0..k {
                rest &= rest - 1;
            }
            rest.trailing_zeros() as usize
        };
        match (self.inner.config.balance, count) {
            (_, 1) => nth(0),
            (Balance::RoundRobin, c) => nth(self.inner.next.fetch_add(1, Relaxed) % c),
            (Balance::PowerOfTwoChoices, c) => {
                let a = fastrand::usize(..c);
                let mut b = fastrand::usize(..c - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (nth(a), nth(b));
                if endpoints[b].in_flight.load(Relaxed) < endpoints[a].in_flight.load(Relaxed) {
                    b
                } else {
                    a
                }
            }
        }
    }

    fn outcome(&self, i: usize, ok: bool) {
        let e = &self.inner.endpoints[i];
        if ok {
            e.consecutive_failures.store(0, Relaxed);
            e.ejections.store(0, Relaxed);
            return;
        }
        let failures = e.consecutive_failures.fetch_add(1, Relaxed) + 1;
        let cfg = &self.inner.config.outlier;
        if failures < cfg.consecutive_failures {
            return;
        }
        let now = clock_ms();
        let n = self.inner.endpoints.len();
        let ejected = self
            .inner
            .endpoints
            .iter()
            .filter(|e| e.ejected_until.load(Relaxed) > now)
            .count();
        let allowed = ((n as f64) * cfg.max_ejected_share).floor() as usize;
        if ejected + 1 > allowed.min(n - 1) {
            return; // never all instances, never more than the share
        }
        let times = e.ejections.fetch_add(1, Relaxed);
        let length = cfg
            .base_ejection
            .saturating_mul(1u32 << times.min(16))
            .min(cfg.max_ejection);
        e.ejected_until.store(
            now + u64::try_from(length.as_millis()).unwrap_or(u64::MAX / 2),
            Relaxed,
        );
        e.consecutive_failures.store(0, Relaxed);
        self.inner.counters.ejections.fetch_add(1, Relaxed);
        tracing::warn!(service = %self.inner.config.name, instance = %e.upstream.origin().to_prefix(), ?length, "instance ejected");
        self.emit(ServiceEvent::Ejected {
            service: self.inner.config.name.clone(),
            instance: e.upstream.origin().to_prefix(),
            for_ms: u64::try_from(length.as_millis()).unwrap_or(u64::MAX),
        });
    }

    fn breaker_moved(&self, to: Option<BreakerState>) {
        if let Some(state) = to {
            if state == BreakerState::Open {
                self.inner.counters.breaker_opened.fetch_add(1, Relaxed);
            }
            tracing::warn!(service = %self.inner.config.name, state = state.as_str(), "circuit breaker changed");
            self.emit(ServiceEvent::Breaker {
                service: self.inner.config.name.clone(),
                state,
            });
        }
    }

    /// Sends `req` through the stack; identical concurrent GETs share one call when collapsing
    /// is on.
    pub fn send(
        &self,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<ClusterBody<B>>, ServiceFailure<B>>> + '_ {
        self.send_with(req, None)
    }

    /// Like [`Cluster::send`], with the caller's own replayable copy of the request (so that it
    /// is made once, when the caller needs one too).
    pub fn send_with<'a>(
        &'a self,
        req: Request<B>,
        given: Option<&'a Replay>,
    ) -> impl Future<Output = Result<Response<ClusterBody<B>>, ServiceFailure<B>>> + 'a {
        self.send_within(req, given, None)
    }

    /// How long a caller that can answer otherwise should wait for this service's answer: ten
    /// times its running mean time to a response head, at least two seconds (so that load on
    /// the machine or a slower endpoint of a fast service does not trip it), at most its own
    /// timeout.
    pub fn fallback_deadline(&self) -> Duration {
        let mean = Duration::from_micros(self.inner.mean_us.load(Relaxed));
        let cap = self
            .inner
            .config
            .upstream
            .response_timeout
            .unwrap_or(Duration::from_secs(3600));
        (mean * 10).max(Duration::from_secs(2)).min(cap)
    }

    /// Like [`Cluster::send_with`]; a safe request (one with a replay) that has no answer head
    /// by `deadline` is given up on — counted as a timeout for the breaker and the instance —
    /// so that its caller can answer from elsewhere.
    //
    // The steps of a request's way out are plain functions returning futures rather than
    // `async fn`s where they can be: an `async fn` keeps each argument twice in its state (as
    // passed, and as moved into its body), and a request is 440 bytes.
    pub fn send_within<'a>(
        &'a self,
        req: Request<B>,
        given: Option<&'a Replay>,
        deadline: Option<Duration>,
    ) -> impl Future<Output = Result<Response<ClusterBody<B>>, ServiceFailure<B>>> + 'a {
        let collapsing = self
            .inner
            .collapser
            .as_ref()
            .and_then(|c| c.key(&req).map(|key| (c, key)));
        match collapsing {
            None => Either::Left(self.send_direct(req, given, deadline)),
            // Collapsing is boxed: its state would otherwise be part of every request's future.
            Some((collapser, key)) => Either::Right(crate::boxing::in_box(|| {
                self.send_collapsed(collapser, key, req, given, deadline)
            })),
        }
    }

    /// [`Cluster::send_within`] for a request collapsing may share.
    async fn send_collapsed(
        &self,
        collapser: &collapse::Collapser,
        key: String,
        req: Request<B>,
        given: Option<&Replay>,
        deadline: Option<Duration>,
    ) -> Result<Response<ClusterBody<B>>, ServiceFailure<B>> {
        let inner = &*self.inner;
        match collapser.join(key) {
            collapse::Role::Follower(rx) => match collapse::follow(rx).await {
                Some(shared) => {
                    inner.counters.collapsed.fetch_add(1, Relaxed);
                    Ok(shared_response(shared))
                }
                None => self.send_direct(req, given, deadline).await,
            },
            collapse::Role::Leader(leader) => {
                let window = inner
                    .config
                    .collapse
                    .as_ref()
                    .map_or(Duration::ZERO, |c| c.window);
                if !window.is_zero() {
                    tokio::time::sleep(window).await;
                }
                let resp = match self.send_direct(req, given, deadline).await {
                    Ok(resp) => resp,
                    Err(f) => {
                        collapser.land(leader, Err(()));
                        return Err(f);
                    }
                };
                let exact = http_body::Body::size_hint(resp.body()).exact();
                if exact.is_none_or(|n| n > collapser.max_body as u64) {
                    // Unknown or too large: stream it; the followers go on their own.
                    collapser.land(leader, Err(()));
                    return Ok(resp);
                }
                let (parts, body) = resp.into_parts();
                match http_body_util::BodyExt::collect(body).await {
                    Ok(collected) => {
                        let shared = collapse::Shared {
                            status: parts.status,
                            version: parts.version,
                            headers: parts.headers,
                            body: collected.to_bytes(),
                        };
                        if shared.shareable(&collapser.vary) {
                            collapser.land(leader, Ok(shared.clone()));
                        } else {
                            // Personal, or varying on what the key leaves out: each follower
                            // asks for its own.
                            collapser.land(leader, Err(()));
                        }
                        Ok(shared_response(shared))
                    }
                    Err(e) => {
                        collapser.land(leader, Err(()));
                        Err(ServiceFailure {
                            kind: ServiceFailureKind::Upstream(FailureKind::Reset),
                            error: Some(UpstreamError::new(FailureKind::Reset, Some(e))),
                            unsent: None,
                        })
                    }
                }
            }
        }
    }

    #[allow(clippy::manual_async_fn)] // on purpose: see `send_within`
    fn send_direct<'a>(
        &'a self,
        mut req: Request<B>,
        given: Option<&'a Replay>,
        deadline: Option<Duration>,
    ) -> impl Future<Output = Result<Response<ClusterBody<B>>, ServiceFailure<B>>> + 'a {
        // `req` is used where it was captured (see `send_within`).
        async move {
            let inner = &*self.inner;
            inner.counters.requests.fetch_add(1, Relaxed);
            if inner.endpoints.is_empty() {
                return Err(ServiceFailure {
                    kind: ServiceFailureKind::Upstream(FailureKind::Connect),
                    error: Some(UpstreamError::new(
                        FailureKind::Connect,
                        Some(
                            format!(
                                "service `{}` has no instance (none configured or registered)",
                                inner.config.name
                            )
                            .into(),
                        ),
                    )),
                    unsent: Some(req),
                });
            }
            inner.budget.deposit();
            let (admit, moved) = inner.breaker.admit();
            self.breaker_moved(moved);
            if admit == Admit::No {
                inner.counters.breaker_rejected.fetch_add(1, Relaxed);
                return Err(ServiceFailure {
                    kind: ServiceFailureKind::BreakerOpen,
                    error: None,
                    unsent: Some(req),
                });
            }
            let permit = match &inner.bulkhead {
                Some(sem) => match Arc::clone(sem).try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        inner.counters.bulkhead_rejected.fetch_add(1, Relaxed);
                        // Not sent: the breaker must not count it either way.
                        if admit == Admit::Probe {
                            self.breaker_moved(inner.breaker.record(admit, true));
                        }
                        return Err(ServiceFailure {
                            kind: ServiceFailureKind::BulkheadFull,
                            error: None,
                            unsent: Some(req),
                        });
                    }
                },
                None => None,
            };
            // A replayable copy for retries: idempotent and without a body.
            // The caller's copy if it made one, else our own when the request may be retried.
            let own;
            let replay = match given {
                Some(r) => Some(r),
                None => {
                    own = (self.retryable(req.method())
                        && http_body::Body::is_end_stream(req.body()))
                    .then(|| Replay::of(&req));
                    own.as_ref()
                }
            };
            // Only a request that can be sent again elsewhere may be given up on mid-way.
            let until = deadline
                .filter(|_| replay.is_some())
                .map(|d| tokio::time::Instant::now() + d);
            let mut avoid = None;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let i = self.pick(avoid);
                let endpoint = &inner.endpoints[i];
                endpoint.in_flight.fetch_add(1, Relaxed);
                let guard = InFlight {
                    cluster: Arc::clone(&self.inner),
                    index: i,
                };
                let started = Instant::now();
                let sending = endpoint.upstream.try_send(req);
                let result = match until {
                    Some(until) => match tokio::time::timeout_at(until, sending).await {
                        Ok(result) => result,
                        Err(_) => {
                            inner.counters.deadline_passed.fetch_add(1, Relaxed);
                            Err(crate::upstream::SendFailure {
                                error: UpstreamError::new(
                                    FailureKind::Timeout,
                                    Some("no answer by the caller's deadline".into()),
                                ),
                                unsent: None,
                            })
                        }
                    },
                    None => sending.await,
                };
                let ok = matches!(&result, Ok(resp) if !is_failure_status(effective_status(resp.status(), resp.headers())));
                if result.is_ok() {
                    self.observe(started.elapsed());
                }
                self.outcome(i, ok);
                let in_time = until.is_none_or(|u| tokio::time::Instant::now() < u);
                let replayable = if attempt < inner.config.retry.attempts && !ok && in_time {
                    replay
                } else {
                    None
                };
                if let Some(replay) = replayable {
                    if inner.budget.try_spend() {
                        inner.counters.retries.fetch_add(1, Relaxed);
                        // Exponential backoff with full jitter.
                        let cap = inner
                            .config
                            .retry
                            .backoff_base
                            .saturating_mul(1 << (attempt - 1).min(16))
                            .min(inner.config.retry.backoff_max);
                        tokio::time::sleep(cap.mul_f64(fastrand::f64())).await;
                        req = replay.rebuild();
                        avoid = Some(i);
                        drop(guard);
                        continue;
                    }
                    inner.counters.retries_denied.fetch_add(1, Relaxed);
                }
                self.breaker_moved(inner.breaker.record(admit, ok));
                return match result {
                    Ok(resp) => {
                        let (parts, body) = resp.into_parts();
                        Ok(Response::from_parts(
                            parts,
                            ClusterBody {
                                inner: BodyKind::Upstream(body),
                                _permit: permit,
                                _in_flight: Some(guard),
                            },
                        ))
                    }
                    Err(f) => Err(ServiceFailure {
                        kind: ServiceFailureKind::Upstream(f.error.kind()),
                        error: Some(f.error),
                        unsent: f.unsent,
                    }),
                };
            }
        }
    }

    /// Folds one time to a response head into the running mean (weight 1/16).
    fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self.inner.mean_us.fetch_update(Relaxed, Relaxed, |m| {
            Some(if m == 0 { us } else { m - m / 16 + us / 16 })
        });
    }

    /// This service's figures, for `/metrics`.
    pub fn samples(&self) -> Vec<Sample> {
        let c = &self.inner.counters;
        let name = &self.inner.config.name;
        let state = self.breaker_state();
        let service = |metric: &'static str, help: &'static str, value: u64| Sample {
            metric,
            help,
            counter: metric.ends_with("_total"),
            labels: vec![("service", name.clone())],
            value,
        };
        let mut out: Vec<Sample> = vec![
            service(
                "strangler_service_requests_total",
                "Requests sent to the service.",
                c.requests.load(Relaxed),
            ),
            service(
                "strangler_service_retries_total",
                "Retries sent to another instance.",
                c.retries.load(Relaxed),
            ),
            service(
                "strangler_service_retries_denied_total",
                "Retries the retry budget refused.",
                c.retries_denied.load(Relaxed),
            ),
            service(
                "strangler_service_breaker_rejected_total",
                "Requests not sent because the breaker was open.",
                c.breaker_rejected.load(Relaxed),
            ),
            service(
                "strangler_service_bulkhead_rejected_total",
                "Requests not sent because the bulkhead was full.",
                c.bulkhead_rejected.load(Relaxed),
            ),
            service(
                "strangler_service_ejections_total",
                "Instances ejected for failing.",
                c.ejections.load(Relaxed),
            ),
            service(
                "strangler_service_breaker_opened_total",
                "Times the breaker opened.",
                c.breaker_opened.load(Relaxed),
            ),
            service(
                "strangler_service_collapsed_total",
                "Requests answered from another request's call.",
                c.collapsed.load(Relaxed),
            ),
            service(
                "strangler_service_deadline_passed_total",
                "Safe requests given up on at their fallback deadline (answered by legacy).",
                c.deadline_passed.load(Relaxed),
            ),
        ];
        for s in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ] {
            out.push(Sample {
                metric: "strangler_service_breaker_state",
                help: "The breaker's state (1 for the current one).",
                counter: false,
                labels: vec![("service", name.clone()), ("state", s.as_str().to_owned())],
                value: u64::from(s == state),
            });
        }
        for e in self.instances() {
            let labels = vec![("service", name.clone()), ("instance", e.origin.clone())];
            out.push(Sample {
                metric: "strangler_service_instance_ejected",
                help: "Whether the instance is ejected now.",
                counter: false,
                labels: labels.clone(),
                value: u64::from(e.ejected_for_ms > 0),
            });
            out.push(Sample {
                metric: "strangler_service_instance_in_flight",
                help: "Requests in flight to the instance.",
                counter: false,
                labels,
                value: e.in_flight as u64,
            });
        }
        out
    }
}

/// One figure of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub metric: &'static str,
    pub help: &'static str,
    /// A counter (else a gauge).
    pub counter: bool,
    pub labels: Vec<(&'static str, String)>,
    pub value: u64,
}

/// Checks every instance each interval until the cluster is gone.
async fn check_health<B>(cluster: std::sync::Weak<Inner<B>>, config: HealthCheckConfig)
where
    B: http_body::Body<Data = Bytes> + EmptyBody + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = cluster.upgrade() else {
            return;
        };
        let checks = inner.endpoints.iter().map(|e| {
            let upstream = e.upstream.clone();
            let path = config.path.clone();
            let timeout = config.timeout;
            async move {
                let mut req = Request::new(B::empty());
                *req.uri_mut() = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
                match tokio::time::timeout(timeout, upstream.send(req)).await {
                    Ok(Ok(resp)) => {
                        let ok = resp.status().is_success() || resp.status().is_redirection();
                        // Read the (small) body so the connection goes back to the pool.
                        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                        ok
                    }
                    _ => false,
                }
            }
        });
        let results = futures_util::future::join_all(checks).await;
        for (e, ok) in inner.endpoints.iter().zip(results) {
            let healthy = e.healthy.load(Relaxed);
            if ok == healthy {
                e.streak.store(0, Relaxed);
                continue;
            }
            let streak = e.streak.fetch_add(1, Relaxed) + 1;
            let threshold = if healthy {
                config.unhealthy_threshold
            } else {
                config.healthy_threshold
            };
            if streak >= threshold.max(1) {
                e.healthy.store(ok, Relaxed);
                e.streak.store(0, Relaxed);
                tracing::warn!(service = %inner.config.name, instance = %e.upstream.origin().to_prefix(), healthy = ok, "health check verdict changed");
                if let Some(sink) = &inner.events {
                    sink(ServiceEvent::Health {
                        service: inner.config.name.clone(),
                        instance: e.upstream.origin().to_prefix(),
                        healthy: ok,
                    });
                }
            }
        }
    }
}

/// Counts a request in flight on one instance until dropped.
struct InFlight<B> {
    cluster: Arc<Inner<B>>,
    index: usize,
}

impl<B> Drop for InFlight<B> {
    fn drop(&mut self) {
        self.cluster.endpoints[self.index]
            .in_flight
            .fetch_sub(1, Relaxed);
    }
}

fn shared_response<B>(shared: collapse::Shared) -> Response<ClusterBody<B>> {
    let mut resp = Response::new(ClusterBody {
        inner: BodyKind::Bytes(Some(shared.body)),
        _permit: None,
        _in_flight: None,
    });
    *resp.status_mut() = shared.status;
    *resp.version_mut() = shared.version;
    *resp.headers_mut() = shared.headers;
    resp
}

enum BodyKind<B> {
    Upstream(UpstreamBody<B>),
    /// A collapsed response's copy.
    Bytes(Option<Bytes>),
}

/// A response body from a cluster: holds the bulkhead permit and the in-flight count until done.
pub struct ClusterBody<B> {
    inner: BodyKind<B>,
    _permit: Option<OwnedSemaphorePermit>,
    _in_flight: Option<InFlight<B>>,
}

impl<B> std::fmt::Debug for ClusterBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBody").finish()
    }
}

impl<B: Unpin> http_body::Body for ClusterBody<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().inner {
            BodyKind::Upstream(body) => Pin::new(body).poll_frame(cx),
            BodyKind::Bytes(bytes) => {
                Poll::Ready(bytes.take().map(|b| Ok(http_body::Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            BodyKind::Upstream(body) => body.is_end_stream(),
            BodyKind::Bytes(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.inner {
            BodyKind::Upstream(body) => body.size_hint(),
            BodyKind::Bytes(Some(b)) => http_body::SizeHint::with_exact(b.len() as u64),
            BodyKind::Bytes(None) => http_body::SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests;
