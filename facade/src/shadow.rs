//! Shadow traffic. In `shadow` state legacy answers and a sampled copy of the request goes to
//! the new service; in canary and migrated, optionally, a sampled copy of what the new service
//! answers goes to legacy (reverse shadow). Both answers are compared and the differences
//! counted by signature. The client never waits for the shadow: request and response bodies
//! stream while a copy (up to a cap) is taken on the way; the shadow runs in a task of its own,
//! under a cap on shadows in flight that drops (and counts) instead of queueing.
//!
//! Writes are shadowed only where a route opts in: `dry-run` sends them like reads (the new
//! service promises no side effects for requests marked `X-Strangler-Shadow: 1`), `mirror` hands
//! them to the durable outbox (see [`outbox`]), which replays them at least once.
//!
//! Size: over 600 lines, kept whole on purpose: the plan (sample, skip reasons, rate cap), the
//! launch and the comparison task are one life of a shadow, and the `Pending` guard that counts
//! an unlaunched shadow must sit next to every way out. Comparison (`diff.rs`), redaction
//! (`redact.rs`), the outbox (`outbox.rs`) and the skip reasons (`skip.rs`) are rooms of their own.

pub mod budget;
pub mod diff;
pub mod outbox;
pub mod redact;
pub mod skip;
pub mod wal;

pub use budget::Budget;
pub use skip::Skip;

use std::sync::Arc;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use http_body::Body;
use strangler_catalog::{RouteShadow, ShadowWrites, Side};
use strangler_services::cluster::{Cluster, Replay};
use strangler_services::Upstream;
use tokio::sync::oneshot;

use crate::body::{Copied, RequestBody, ResponseTee, Teed};
use crate::buffers::{Buffers, Held};
use crate::cpu::{Cpu, INLINE_BYTES};
use crate::telemetry::Telemetry;
use crate::translate::Translation;

/// Shadowing settings.
#[derive(Debug, Clone)]
pub struct ShadowConfig {
    /// Share of eligible requests copied, in percent.
    pub sample_percent: u8,
    /// Shadows in flight at most; beyond, requests are not shadowed (and counted).
    pub max_in_flight: usize,
    /// Shadows started per second at most (0: no cap). The in-flight cap bounds memory; this
    /// bounds the CPU shadowing takes from the primary path.
    pub max_per_second: u32,
    /// The share of the workers' time (0 to 1) above which the governor samples compared
    /// shadows down, whatever the other settings (see [`budget`]).
    pub cpu_ceiling: f64,
    /// Largest body (request or answer, either side) copied; a route may set its own request
    /// cap. Larger ones are counted, not compared.
    pub max_body_bytes: usize,
    /// How long the shadow side may take.
    pub timeout: Duration,
    /// Mirrored writes waiting in the local log to be shipped to the catalog's outbox at most;
    /// beyond, mirrored writes are refused (503) before legacy takes them.
    pub outbox_queue: usize,
    /// Where the mirror's write-ahead log lives (local disk).
    pub wal_dir: std::path::PathBuf,
    /// Delivery attempts of a mirrored write before it is given up on (kept, marked dead).
    pub mirror_attempts: u32,
    /// The wait before a failed delivery is tried again, doubled per attempt (at most a
    /// minute).
    pub mirror_retry: Duration,
    /// Shadow results (and dead outbox writes) older than this are deleted.
    pub retention: Duration,
    /// Pairs the id map keeps in memory at most (about 150 bytes each); beyond, requests that
    /// may need a pair this process could not keep are refused (503).
    pub id_map_pairs: usize,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        Self {
            sample_percent: 100,
            max_in_flight: 256,
            max_per_second: 0,
            cpu_ceiling: 0.6,
            max_body_bytes: 1 << 20,
            timeout: Duration::from_secs(10),
            outbox_queue: 100_000,
            wal_dir: std::path::PathBuf::from("strangler-mirror-wal"),
            mirror_attempts: 20,
            mirror_retry: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 24 * 3600),
            id_map_pairs: 1_000_000,
        }
    }
}

/// Where a shadow copy goes: legacy or a new service.
#[derive(Clone)]
pub enum Peer {
    Legacy(Upstream<RequestBody>),
    New(Cluster<RequestBody>),
}

/// An answer as the comparison sees it: read whole (a shadow's), or copied as it streamed to
/// the client (the primary's), up to the cap.
#[derive(Debug)]
pub struct Read {
    pub status: u16,
    pub content_type: Option<String>,
    pub headers: Vec<Option<String>>,
    /// `None`: over the cap, or over the buffer budget (`over_budget`).
    pub body: Option<Bytes>,
    pub elapsed: Duration,
    /// The body's bytes in the buffer budget (kept for its drop, which gives them back).
    #[allow(dead_code)]
    pub held: Option<Held>,
    /// The body was not kept because the buffer budget was spent.
    pub over_budget: bool,
}

/// Why a shadow exchange gave nothing to compare.
#[derive(Debug)]
pub enum ExchangeError {
    /// The peer failed: connect error, timeout, a broken answer.
    Failed(String),
    /// The context's translator could not translate the copy (it was not sent).
    Request(String),
    /// The context's translator could not translate the answer.
    Answer(String),
    /// The buffer budget had no room for a body.
    Budget,
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Failed(why) => f.write_str(why),
            ExchangeError::Request(why) => write!(f, "the copy could not be translated: {why}"),
            ExchangeError::Answer(why) => write!(f, "the answer could not be translated: {why}"),
            ExchangeError::Budget => f.write_str("the buffer budget had no room for a body"),
        }
    }
}

impl Peer {
    /// Sends `req` and reads the answer whole, up to `cap` bytes, within `timeout`. With a
    /// translation (a new service's peer), the request is translated on the way out and the
    /// answer back into the legacy contract, so that it compares with legacy's.
    #[allow(clippy::too_many_arguments)]
    pub async fn exchange(
        &self,
        req: http::Request<RequestBody>,
        chosen: &[http::HeaderName],
        cap: usize,
        timeout: Duration,
        translation: Option<&Translation>,
        work_on: &Work,
    ) -> Result<Read, ExchangeError> {
        let started = Instant::now();
        let failed = |e: String| ExchangeError::Failed(e);
        let work = async {
            match self {
                Peer::Legacy(u) => {
                    let resp = u.send(req).await.map_err(|e| failed(e.to_string()))?;
                    read(resp, chosen, cap, started, None, work_on).await
                }
                Peer::New(c) => {
                    let req = match translation {
                        Some(t) => translate_copy(t, req, work_on, c.name()).await?,
                        None => req,
                    };
                    let resp = c
                        .send(req)
                        .await
                        .map_err(|e| failed(e.kind.as_str().to_owned()))?;
                    read(resp, chosen, cap, started, translation, work_on).await
                }
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| failed(format!("no complete answer within {timeout:?}")))?
    }
}

/// Where a shadow's CPU-heavy work runs and whose memory it takes.
#[derive(Clone)]
pub struct Work {
    pub buffers: Arc<Buffers>,
    pub cpu: Arc<Cpu>,
    /// The identity bridge, for copies to a context whose translator asks for it, and
    /// legacy, which resolves the sessions.
    pub identity: Option<Arc<crate::identity::Bridge>>,
    pub legacy: Upstream<RequestBody>,
}

/// A translation failure in a shadow: the translator's (compared apart from the service) or
/// the process's budgets (the shadow is skipped).
fn copy_failed(f: crate::translate::Failed, answer: bool) -> ExchangeError {
    match f {
        crate::translate::Failed::Rule(f) if answer => ExchangeError::Answer(f.to_string()),
        crate::translate::Failed::Rule(f) => ExchangeError::Request(f.to_string()),
        crate::translate::Failed::Budget => ExchangeError::Budget,
        crate::translate::Failed::Overrun(why) => ExchangeError::Failed(why.to_string()),
    }
}

/// A shadow's copy (its body already whole) translated for the new service.
async fn translate_copy(
    t: &Translation,
    req: http::Request<RequestBody>,
    work: &Work,
    service: &str,
) -> Result<http::Request<RequestBody>, ExchangeError> {
    let (mut parts, body) = req.into_parts();
    // A copy gets what the live request gets: the identity token, not the session cookie.
    if let (Some(spec), Some(bridge)) = (t.compiled.identity(), &work.identity) {
        bridge
            .apply(spec, &work.legacy, &mut parts.headers, &t.context, service)
            .await
            .map_err(|p| ExchangeError::Failed(p.detail))?;
    }
    let (body, held) =
        crate::translate::collect(body, crate::translate::MAX_TRANSLATED_BODY, &work.buffers)
            .await
            .map_err(|e| match e {
                crate::translate::Collect::Budget => ExchangeError::Budget,
                _ => ExchangeError::Failed("the copy's body could not be read again".into()),
            })?;
    let (parts, body) =
        crate::translate::request_off(&work.cpu, &work.buffers, &t.compiled, parts, Some(body))
            .await
            .map_err(|f| copy_failed(f, false))?;
    Ok(http::Request::from_parts(
        parts,
        RequestBody::full(body.unwrap_or_default()).holding(Some(held)),
    ))
}

/// Reads an answer whole, up to `cap` body bytes (beyond, the rest is not read) and as far as
/// the buffer budget allows, translated back into the legacy contract when a translation is
/// given.
async fn read<B>(
    resp: http::Response<B>,
    chosen: &[http::HeaderName],
    cap: usize,
    started: Instant,
    translation: Option<&Translation>,
    work: &Work,
) -> Result<Read, ExchangeError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (head, mut body) = resp.into_parts();
    let mut buf = BytesMut::new();
    let mut held = work.buffers.hold(0);
    let mut over = false;
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let frame = frame
            .map_err(|e| ExchangeError::Failed(format!("the answer's body broke off: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > cap {
                over = true;
                break;
            }
            if !held.as_mut().is_some_and(|h| h.grow(data.len())) {
                held = None;
                break;
            }
            buf.extend_from_slice(data);
        }
    }
    let over_budget = held.is_none();
    let mut buf = buf.freeze();
    let mut head = head;
    if let (Some(t), false, false) = (translation, over, over_budget) {
        let (parts, translated) = crate::translate::response_off(
            &work.cpu,
            &work.buffers,
            &t.compiled,
            head,
            Some(buf),
            &t.upstreams,
            None,
        )
        .await
        .map_err(|f| copy_failed(f, true))?;
        head = parts;
        buf = translated.unwrap_or_default();
    }
    Ok(Read {
        status: head.status.as_u16(),
        content_type: header_text(&head.headers, &http::header::CONTENT_TYPE),
        headers: chosen
            .iter()
            .map(|h| header_text(&head.headers, h))
            .collect(),
        body: (!over && !over_budget).then_some(buf),
        elapsed: started.elapsed(),
        held,
        over_budget,
    })
}

fn header_text(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    Some(
        values
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// What the routing found for a request that may be shadowed.
#[derive(Clone)]
pub struct Wanted {
    pub context: Arc<str>,
    pub route: Arc<str>,
    pub route_shadow: RouteShadow,
    pub rules: Arc<diff::Rules>,
    /// Where the copy goes.
    pub peer: Peer,
    /// The primary is the new service and the copy goes to legacy.
    pub reverse: bool,
    /// A write mirrored through the outbox to the side that does not own it (the route and
    /// the context's state say so).
    pub mirror: bool,
    /// The route says its requests only read, whatever their method: compared like GETs.
    pub reads: bool,
    /// In canary, the writing client (its sticky key's hash), for read-your-writes.
    pub writer: Option<u64>,
    /// In canary: the client is told when its write was made (a cookie), so that any replica
    /// can send its reads to the owner until the other side has the write.
    pub remember: bool,
    /// Legacy, for a second legacy call that learns noise.
    pub legacy: Upstream<RequestBody>,
    /// The context's translator, for a copy that goes to the new service.
    pub translation: Option<Translation>,
    /// Where the route's requests name a resource, and the id map: a compared copy names it as
    /// its side knows it (a mirrored write is mapped when it is delivered).
    pub ids: Option<(Arc<crate::ids::RouteIds>, Arc<crate::ids::IdMap>)>,
}

enum Mode {
    /// Send the copy now, compare its answer with the primary's.
    Compare,
    /// Hand the write to the outbox once the primary has answered.
    Mirror,
}

/// A planned shadow: what to send, where, for which context.
pub struct Plan {
    wanted: Wanted,
    mode: Mode,
    replay: Replay,
    /// The request body's copy, when the request has one.
    body: Option<oneshot::Receiver<Teed>>,
    learn: bool,
    slot: budget::Slot,
    started: Instant,
}

/// Decides whether a request is shadowed (counting why not), and if so takes a copy of its
/// body as it streams to the primary.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    config: &ShadowConfig,
    wanted: &Wanted,
    budget: &Arc<Budget>,
    buffers: &Arc<Buffers>,
    wal: Option<&wal::Wal>,
    telemetry: &Arc<Telemetry>,
    req: &mut http::Request<RequestBody>,
) -> Result<Option<Pending>, MirrorRefused> {
    let skip = |why: Skip| {
        telemetry.record_shadow_skip(&wanted.context, why);
        Ok(None)
    };
    let rules = &wanted.rules;
    let safe = wanted.reads
        || matches!(
            *req.method(),
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
    let mode = match (
        safe,
        wanted.mirror,
        wanted.reverse,
        wanted.route_shadow.writes,
    ) {
        (true, ..) => Mode::Compare,
        (false, true, ..) => Mode::Mirror,
        (false, false, false, Some(ShadowWrites::DryRun)) => Mode::Compare,
        (false, ..) => return skip(Skip::UnsafeMethod),
    };
    // A write whose body cannot be redacted is not mirrored, and that is known from its head:
    // its answer is not held back for a copy that would be thrown away (a gRPC stream or an
    // upload would otherwise wait for the client's whole body before its first answer).
    if matches!(mode, Mode::Mirror)
        && !wanted.route_shadow.opaque_bodies
        && !http_body::Body::is_end_stream(req.body())
        && !redact::redactable_type(
            req.headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        )
    {
        tracing::error!(context = %wanted.context, method = %req.method(), path = req.uri().path(), "a mirrored write was not stored: its body cannot be redacted (only JSON and form bodies can; a route whose bodies hold no secrets may say `shadow.opaque_bodies`); the new side misses it");
        return skip(Skip::Unredactable);
    }
    // A mirror keeps the new side's data in step: every write goes, whatever the sampling.
    let percent = if wanted.reverse {
        rules.reverse_percent
    } else {
        config.sample_percent.min(rules.sample_percent)
    };
    if matches!(mode, Mode::Compare) && fastrand::u8(..100) >= percent {
        return skip(Skip::NotSampled);
    }
    // A mirrored write waits in the outbox for the new side to come back.
    if let (Mode::Compare, Peer::New(cluster)) = (&mode, &wanted.peer) {
        if !cluster.available() {
            return skip(Skip::NewUnhealthy);
        }
    }
    // A compared copy names the resource as its side knows it (decided before anything is
    // taken from the budgets).
    let mapped_uri = match (&mode, &wanted.ids) {
        (Mode::Compare, Some((rule, map))) => {
            let toward = if wanted.reverse {
                Side::Legacy
            } else {
                Side::New
            };
            match crate::ids::map_uri(map, &wanted.context, rule, toward, req.uri()) {
                Ok(found) => found.map(|(uri, _)| uri),
                Err(_) => return skip(Skip::IdUnmapped),
            }
        }
        _ => None,
    };
    let cap = wanted
        .route_shadow
        .max_body_bytes
        .map_or(config.max_body_bytes, |c| {
            usize::try_from(c).unwrap_or(usize::MAX)
        });
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return skip(Skip::BodyTooLarge);
    }
    // A mirrored write must not reach legacy unless it can be made durable for the new side:
    // the log must have room, and its declared length is taken from the buffer budget before
    // anything is sent (else 503).
    if matches!(mode, Mode::Mirror) {
        let admitted = match wal {
            Some(wal) => wal
                .admits(config.outbox_queue as u64)
                .map_err(MirrorRefused::Log),
            None => Err(MirrorRefused::NoLog),
        };
        if let Err(refused) = admitted {
            telemetry.record_shadow_skip(&wanted.context, Skip::OutboxFull);
            return Err(refused);
        }
    }
    let held = match mode {
        Mode::Mirror => match buffers.hold(declared.map_or(0, |n| n as usize)) {
            Some(h) => h,
            None => {
                telemetry.record_shadow_skip(&wanted.context, Skip::BudgetFull);
                return Err(MirrorRefused::Budget);
            }
        },
        Mode::Compare => match buffers.hold(0) {
            Some(h) => h,
            None => return skip(Skip::BudgetFull),
        },
    };
    // A mirror is not a sample: every write must reach the outbox, whose queue bounds it.
    let slot = match mode {
        Mode::Compare => match budget.take(config.max_in_flight, config.max_per_second) {
            Some(slot) => slot,
            None => return skip(Skip::BudgetFull),
        },
        Mode::Mirror => budget.take_mirror(),
    };
    let body = (!req.body().is_end_stream()).then(|| req.body_mut().tee(cap, held));
    let mut replay = Replay::of(req);
    replay
        .headers
        .insert("x-strangler-shadow", HeaderValue::from_static("1"));
    let mapped = match mapped_uri {
        Some(uri) => {
            replay.uri = uri;
            true
        }
        None => false,
    };
    let learn = safe
        && !mapped
        && !wanted.reverse
        && rules.learn_percent > 0
        && fastrand::u8(..100) < rules.learn_percent;
    Ok(Some(Pending {
        plan: Some(Plan {
            wanted: wanted.clone(),
            mode,
            replay,
            body,
            learn,
            slot,
            started: Instant::now(),
        }),
        telemetry: Arc::clone(telemetry),
        why: Skip::PrimaryFailed,
    }))
}

/// A mirrored write refused (503) before legacy takes it, so that the two sides do not drift
/// apart: its copy cannot be kept, or made durable, now.
#[derive(Debug)]
pub enum MirrorRefused {
    /// The buffer budget has no room for its copy.
    Budget,
    /// No mirror log runs in this process.
    NoLog,
    /// The log is full or failing.
    Log(wal::Refusal),
}

/// Where shadow tasks report.
#[derive(Clone)]
pub struct Sinks {
    pub telemetry: Arc<Telemetry>,
    /// The mirror's log, once the outbox runs.
    pub outbox: Option<Arc<wal::Wal>>,
    /// Where a canary client's durable write is remembered.
    pub ryw: Arc<crate::ryw::ReadYourWrites>,
    /// Where the comparison's heavy work runs and whose memory it takes.
    pub work: Work,
}

/// A planned shadow that has not started. Dropped without [`Pending::launch`] it counts as
/// skipped — `primary_failed`, unless [`Pending::skip_as`] says why — so that no way out of the
/// request path can lose it uncounted.
pub struct Pending {
    plan: Option<Plan>,
    telemetry: Arc<Telemetry>,
    why: Skip,
}

impl Pending {
    /// Nothing will be compared, for this reason.
    pub fn skip_as(mut self, why: Skip) {
        self.why = why;
    }

    /// Whether this is a mirrored write, to be made durable with [`Pending::persist`] before
    /// the answer is released (instead of launched).
    pub fn is_mirror(&self) -> bool {
        self.plan
            .as_ref()
            .is_some_and(|p| matches!(p.mode, Mode::Mirror))
    }

    /// Makes a mirrored write durable in the log before its answer goes to the client: legacy's
    /// answer is read ahead (up to the cap, for the comparison after delivery), the write is
    /// synced to disk, and the body returned gives the client the whole answer. A write legacy
    /// failed (5xx) is not mirrored. A write the log cannot keep is reported loudly: legacy has
    /// taken it, so its answer still goes to the client. A write the owner refused or failed
    /// (4xx, 5xx) changed nothing there, so it is not mirrored — and its answer is not held
    /// back waiting for a request body the owner may not have read.
    pub async fn persist(
        mut self,
        config: &ShadowConfig,
        sinks: &Sinks,
        head: &http::response::Parts,
        body: crate::body::ResponseBody,
    ) -> (crate::body::ResponseBody, Option<i64>) {
        let Some(plan) = self.plan.take() else {
            return (body, None);
        };
        let telemetry = &sinks.telemetry;
        let wanted = &plan.wanted;
        let skip = |why: Skip| telemetry.record_shadow_skip(&wanted.context, why);
        if head.status.as_u16() >= 400 {
            skip(Skip::LegacyFailed);
            return (body, None);
        }
        let mut held = sinks.work.buffers.hold(0);
        let (copy, body) = body.read_ahead(config.max_body_bytes, &mut held).await;
        let legacy = Read {
            status: head.status.as_u16(),
            content_type: header_text(&head.headers, &http::header::CONTENT_TYPE),
            headers: wanted
                .rules
                .headers
                .iter()
                .map(|h| header_text(&head.headers, h))
                .collect(),
            over_budget: copy.is_none() && held.is_none(),
            body: copy,
            elapsed: plan.started.elapsed(),
            held,
        };
        let request = match plan.body {
            None => Bytes::new(),
            Some(rx) => match tokio::time::timeout(config.timeout, rx).await {
                Ok(Ok(Ok((b, _held)))) => b,
                Ok(Ok(Err(why))) => {
                    tracing::error!(context = %wanted.context, method = %plan.replay.method, path = plan.replay.uri.path(), reason = why.as_str(), "a mirrored write was not kept: its body could not be copied; the new side misses it");
                    skip(why);
                    return (body, None);
                }
                _ => {
                    tracing::error!(context = %wanted.context, method = %plan.replay.method, path = plan.replay.uri.path(), "a mirrored write was not kept: legacy answered before its body was read; the new side misses it");
                    skip(Skip::Incomplete);
                    return (body, None);
                }
            },
        };
        let Some(mut item) = outbox::item(wanted, &plan.replay, request, &legacy) else {
            tracing::error!(
                context = %wanted.context,
                method = %plan.replay.method,
                path = plan.replay.uri.path(),
                "a mirrored write was not stored: its body cannot be redacted (only JSON and form bodies can); the new side misses it"
            );
            skip(Skip::Unredactable);
            return (body, None);
        };
        if let Some(rule) = &wanted.route_shadow.id {
            if let Err(why) = outbox::carry_id(&mut item, rule, head, legacy.body.as_deref()) {
                tracing::warn!(context = %wanted.context, route = %wanted.route, %why, "a mirrored create goes without the owner's id");
            }
        }
        let kept = match &sinks.outbox {
            Some(wal) => wal.append(&item).await,
            None => Err(wal::WalError::Stopped),
        };
        match kept {
            Ok(()) => {
                telemetry.record_mirror_queued(&wanted.context);
                if let Some(who) = wanted.writer {
                    sinks
                        .ryw
                        .wrote(&wanted.context, who, item.toward, item.created_ms);
                }
                (body, Some(item.created_ms))
            }
            Err(e) => {
                tracing::error!(context = %wanted.context, method = %plan.replay.method, path = plan.replay.uri.path(), error = %e, "a mirrored write taken by legacy could not be made durable; the new side misses it");
                skip(Skip::NotDurable);
                (body, None)
            }
        }
    }

    /// Starts the shadow once the primary's response head is known; returns the tee to put
    /// on the primary's body.
    pub fn launch(
        mut self,
        config: &ShadowConfig,
        sinks: Sinks,
        head: &http::response::Parts,
    ) -> ResponseTee {
        let held = sinks.work.buffers.hold(0);
        let Some(plan) = self.plan.take() else {
            // Launched twice cannot happen (launch takes the plan by value); a tee that hands
            // nothing over is the harmless answer.
            return ResponseTee::new(0, held, Instant::now()).0;
        };
        let (tee, body) = ResponseTee::new(config.max_body_bytes, held, plan.started);
        let primary = Primary {
            status: head.status.as_u16(),
            content_type: header_text(&head.headers, &http::header::CONTENT_TYPE),
            headers: plan
                .wanted
                .rules
                .headers
                .iter()
                .map(|h| header_text(&head.headers, h))
                .collect(),
            body,
        };
        tokio::spawn(run(plan, primary, config.clone(), sinks));
        tee
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(plan) = self.plan.take() {
            self.telemetry
                .record_shadow_skip(&plan.wanted.context, self.why);
        }
    }
}

/// The primary's answer as it will be compared: its head at once, its body when it has
/// streamed to the client.
struct Primary {
    status: u16,
    content_type: Option<String>,
    headers: Vec<Option<String>>,
    body: oneshot::Receiver<Copied>,
}

impl Primary {
    /// The whole answer once its body ended; `None` when the client went away first (or the
    /// body took longer than [`PRIMARY_WAIT`]).
    async fn read(self) -> Option<Read> {
        let copied = tokio::time::timeout(PRIMARY_WAIT, self.body)
            .await
            .ok()?
            .ok()?;
        Some(Read {
            status: self.status,
            content_type: self.content_type,
            headers: self.headers,
            body: copied.body,
            elapsed: copied.elapsed,
            held: copied.held,
            over_budget: copied.over_budget,
        })
    }
}

/// How long a shadow waits for the primary's exchange to complete.
const PRIMARY_WAIT: Duration = Duration::from_secs(60);

async fn run(plan: Plan, primary: Primary, config: ShadowConfig, sinks: Sinks) {
    let _slot = plan.slot;
    let telemetry = &sinks.telemetry;
    let wanted = plan.wanted;
    let skip = |why: Skip| telemetry.record_shadow_skip(&wanted.context, why);
    let (body, held) = match plan.body {
        None => (Bytes::new(), None),
        Some(rx) => match tokio::time::timeout(PRIMARY_WAIT, rx).await {
            Ok(Ok(Ok((b, held)))) => (b, Some(held)),
            Ok(Ok(Err(why))) => return skip(why),
            _ => return skip(Skip::Incomplete),
        },
    };
    match plan.mode {
        // Persisted before the answer was released (`Pending::persist`), never launched.
        Mode::Mirror => skip(Skip::Incomplete),
        Mode::Compare => {
            compare(
                &wanted,
                &plan.replay,
                body,
                plan.learn,
                primary,
                &config,
                &sinks,
            )
            .await;
            drop(held);
        }
    }
}

async fn compare(
    wanted: &Wanted,
    replay: &Replay,
    body: Bytes,
    learn: bool,
    primary: Primary,
    config: &ShadowConfig,
    sinks: &Sinks,
) {
    let telemetry = &sinks.telemetry;
    let work = &sinks.work;
    let skip = |why: Skip| telemetry.record_shadow_skip(&wanted.context, why);
    let rules = &wanted.rules;
    let request = |body: Bytes| {
        let mut req: http::Request<RequestBody> = replay.rebuild();
        *req.body_mut() = RequestBody::full(body);
        req
    };
    let shadow = wanted
        .peer
        .exchange(
            request(body.clone()),
            &rules.headers,
            config.max_body_bytes,
            config.timeout,
            wanted.translation.as_ref(),
            work,
        )
        .await;
    let shadow = match shadow {
        Ok(read) => read,
        Err(ExchangeError::Budget) => return skip(Skip::BudgetFull),
        Err(why @ (ExchangeError::Request(_) | ExchangeError::Answer(_))) => {
            tracing::debug!(context = %wanted.context, %why, "shadow translation failed");
            telemetry.record_translation_failure(&wanted.context, "shadow");
            return skip(Skip::TranslationFailed);
        }
        Err(why) => {
            tracing::debug!(context = %wanted.context, %why, "shadow failed");
            return skip(Skip::ShadowFailed);
        }
    };
    let Some(primary) = primary.read().await else {
        return skip(Skip::Incomplete);
    };
    // Legacy is the reference either way.
    let (legacy, new) = if wanted.reverse {
        (&shadow, &primary)
    } else {
        (&primary, &shadow)
    };
    if legacy.over_budget || new.over_budget {
        return skip(Skip::BudgetFull);
    }
    let signatures = match diff_off(legacy, new, rules, work).await {
        Ok(Some(s)) => s,
        Ok(None) => return skip(Skip::BodyTooLarge),
        Err(why) => return skip(why),
    };
    tracing::debug!(
        target: "strangler::shadow",
        context = %wanted.context,
        route = %wanted.route,
        method = %replay.method,
        path = replay.uri.path(),
        reverse = wanted.reverse,
        legacy_status = legacy.status,
        new_status = new.status,
        legacy_ms = legacy.elapsed.as_secs_f64() * 1000.0,
        new_ms = new.elapsed.as_secs_f64() * 1000.0,
        mismatches = signatures.len(),
        "shadow leg"
    );
    let example = (!signatures.is_empty()).then(|| example(replay, legacy, new, rules));
    let pair = signatures
        .is_empty()
        .then(|| contract_pair(&wanted.route, replay, &body, legacy, rules))
        .flatten();
    telemetry.record_shadow(
        &wanted.context,
        &wanted.route,
        &signatures,
        legacy.elapsed,
        new.elapsed,
        (example, pair),
    );
    if learn {
        let again = Peer::Legacy(wanted.legacy.clone())
            .exchange(
                request(body),
                &[],
                config.max_body_bytes,
                config.timeout,
                None,
                work,
            )
            .await;
        if let Ok(again) = again {
            if let (Some(a), Some(b)) = (&legacy.body, &again.body) {
                let first = answer(legacy.status, legacy.content_type.as_deref(), &[], a);
                let second = answer(again.status, again.content_type.as_deref(), &[], b);
                telemetry.record_noise(&wanted.context, &diff::noise_paths(&first, &second));
            }
        }
    }
}

fn answer<'a>(
    status: u16,
    content_type: Option<&'a str>,
    headers: &'a [Option<String>],
    body: &'a [u8],
) -> diff::Answer<'a> {
    diff::Answer {
        status,
        content_type,
        headers,
        body,
    }
}

/// [`diff_reads`], on the CPU pool when the bodies are large, with what parsing them takes held
/// in the buffer budget.
async fn diff_off(
    legacy: &Read,
    new: &Read,
    rules: &Arc<diff::Rules>,
    work: &Work,
) -> Result<Option<Vec<diff::Signature>>, Skip> {
    let (Some(lb), Some(nb)) = (&legacy.body, &new.body) else {
        return Ok(None);
    };
    let size = lb.len() + nb.len();
    let _parsing = work
        .buffers
        .hold(size * strangler_anti_corruption::json::PARSED_BYTES_PER_BYTE + 1024)
        .ok_or(Skip::BudgetFull)?;
    if size <= INLINE_BYTES {
        return Ok(diff_reads(legacy, new, rules));
    }
    let owned = |r: &Read| Read {
        status: r.status,
        content_type: r.content_type.clone(),
        headers: r.headers.clone(),
        body: r.body.clone(),
        elapsed: r.elapsed,
        held: None,
        over_budget: false,
    };
    let (l, n, rules) = (owned(legacy), owned(new), Arc::clone(rules));
    work.cpu
        .run(move || diff_reads(&l, &n, &rules))
        .await
        .map_err(|_| Skip::BudgetFull)
}

/// The differences of two answers; `None` when a body is over the cap.
pub fn diff_reads(legacy: &Read, new: &Read, rules: &diff::Rules) -> Option<Vec<diff::Signature>> {
    let (Some(lb), Some(nb)) = (&legacy.body, &new.body) else {
        return None;
    };
    Some(diff::compare_with(
        &answer(
            legacy.status,
            legacy.content_type.as_deref(),
            &legacy.headers,
            lb,
        ),
        &answer(new.status, new.content_type.as_deref(), &new.headers, nb),
        rules,
    ))
}

/// What an example keeps of a body that cannot be redacted.
const NOT_STORED: &str = "(not stored: only JSON and form bodies can be redacted)";

/// The longest body text kept in an example or a recorded exchange.
const EXAMPLE_BYTES: usize = 4096;

/// A redacted example: method and path, never request headers or the query.
pub fn example(
    replay: &Replay,
    legacy: &Read,
    new: &Read,
    rules: &diff::Rules,
) -> strangler_catalog::ShadowExample {
    let text = |r: &Read| {
        redact::text(
            r.body.as_deref().unwrap_or_default(),
            r.content_type.as_deref(),
            rules,
            EXAMPLE_BYTES,
        )
        .unwrap_or_else(|| NOT_STORED.to_owned())
    };
    strangler_catalog::ShadowExample {
        signature: String::new(),
        at_ms: strangler_catalog::clock::now_ms(),
        method: replay.method.to_string(),
        path: replay.uri.path().to_owned(),
        legacy_status: i64::from(legacy.status),
        new_status: i64::from(new.status),
        legacy_body: text(legacy),
        new_body: text(new),
    }
}

/// A matched exchange as material for a contract test: the client's request (secret query
/// parameters blanked) and legacy's answer, redacted; `None` when a body is too large to keep
/// whole or cannot be redacted.
pub fn contract_pair(
    route: &str,
    replay: &Replay,
    request_body: &[u8],
    legacy: &Read,
    rules: &diff::Rules,
) -> Option<strangler_catalog::ContractPair> {
    const KEEP: usize = 4000;
    let answer = legacy.body.as_deref()?;
    if request_body.len() > KEEP || answer.len() > KEEP {
        return None;
    }
    let request_type = replay
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request_body = redact::text(request_body, request_type.as_deref(), rules, usize::MAX)?;
    let response_body = redact::text(answer, legacy.content_type.as_deref(), rules, usize::MAX)?;
    Some(strangler_catalog::ContractPair {
        route: route.to_owned(),
        at_ms: strangler_catalog::clock::now_ms(),
        method: replay.method.to_string(),
        uri: redact::target(
            replay
                .uri
                .path_and_query()
                .map_or_else(|| replay.uri.path(), |pq| pq.as_str()),
            &rules.redact_query,
        ),
        request_body,
        request_type,
        status: i64::from(legacy.status),
        response_type: legacy.content_type.clone(),
        response_body,
    })
}
