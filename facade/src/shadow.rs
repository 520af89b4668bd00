//! Shadow traffic: in `shadow` state legacy answers, and a sampled copy of the request goes to
//! the new service; both answers are compared and the differences counted by signature. The
//! client never waits for the shadow: the legacy body streams to it while a copy (up to a cap)
//! is taken on the way; the comparison runs in a task of its own, under a cap on shadows in
//! flight that drops (and counts) instead of queueing.

pub mod diff;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use strangler_services::cluster::{Cluster, Replay};
use tokio::sync::oneshot;

use crate::body::RequestBody;
use crate::telemetry::Telemetry;

/// Shadowing settings.
#[derive(Debug, Clone)]
pub struct ShadowConfig {
    /// Share of eligible requests copied, in percent.
    pub sample_percent: u8,
    /// Shadows in flight at most; beyond, requests are not shadowed (and counted).
    pub max_in_flight: usize,
    /// Largest body (either side) compared; larger ones are counted, not compared.
    pub max_body_bytes: usize,
    /// How long the new side may take.
    pub timeout: Duration,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        Self {
            sample_percent: 100,
            max_in_flight: 256,
            max_body_bytes: 1 << 20,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a request in a shadowed context was not shadowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NotSampled,
    UnsafeMethod,
    /// Bodies are not mirrored yet.
    HasBody,
    BudgetFull,
    BodyTooLarge,
    /// The new side failed (connect, timeout, 5xx from the stack, open breaker …).
    NewFailed,
    /// The client went away before legacy's answer was complete.
    LegacyIncomplete,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotSampled => "not_sampled",
            Skip::UnsafeMethod => "unsafe_method",
            Skip::HasBody => "has_body",
            Skip::BudgetFull => "budget_full",
            Skip::BodyTooLarge => "body_too_large",
            Skip::NewFailed => "new_failed",
            Skip::LegacyIncomplete => "legacy_incomplete",
        }
    }
}

/// The shadows in flight.
#[derive(Debug, Default)]
pub struct Budget {
    in_flight: AtomicUsize,
}

struct Slot(Arc<Budget>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Budget {
    fn take(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.in_flight
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Slot(Arc::clone(self)))
    }
}

/// Legacy's answer as the comparison sees it.
#[derive(Debug)]
pub struct Captured {
    pub status: u16,
    pub content_type: Option<String>,
    /// `None`: over the cap.
    pub body: Option<Bytes>,
    pub elapsed: Duration,
}

/// Takes a copy of a body as it streams past, up to a cap, and hands it over at the end.
pub struct Tee {
    tx: Option<oneshot::Sender<Captured>>,
    status: u16,
    content_type: Option<String>,
    buf: Option<BytesMut>,
    cap: usize,
    started: Instant,
}

impl Tee {
    pub fn frame(&mut self, frame: &Frame<Bytes>) {
        if let (Some(buf), Some(data)) = (self.buf.as_mut(), frame.data_ref()) {
            if buf.len() + data.len() > self.cap {
                self.buf = None;
            } else {
                buf.extend_from_slice(data);
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Captured {
                status: self.status,
                content_type: self.content_type.take(),
                body: self.buf.take().map(BytesMut::freeze),
                elapsed: self.started.elapsed(),
            });
        }
    }
}

/// A planned shadow: what to send, where, for which context.
pub struct Plan {
    pub replay: Replay,
    pub rules: Arc<diff::Rules>,
    pub cluster: Cluster<RequestBody>,
    pub context: Arc<str>,
    slot: Slot,
    started: Instant,
}

/// Decides whether a request is shadowed; counts why not.
pub fn plan(
    config: &ShadowConfig,
    rules: &Arc<diff::Rules>,
    budget: &Arc<Budget>,
    telemetry: &Telemetry,
    context: &Arc<str>,
    cluster: &Cluster<RequestBody>,
    req: &http::Request<RequestBody>,
) -> Option<Plan> {
    let skip = |why: Skip| {
        telemetry.record_shadow_skip(context, why);
        None
    };
    if !matches!(
        *req.method(),
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    ) {
        return skip(Skip::UnsafeMethod);
    }
    if !req.body().is_end_stream() {
        return skip(Skip::HasBody);
    }
    if fastrand::u8(..100) >= config.sample_percent.min(rules.sample_percent) {
        return skip(Skip::NotSampled);
    }
    let Some(slot) = budget.take(config.max_in_flight) else {
        return skip(Skip::BudgetFull);
    };
    let mut replay = Replay::of(req);
    replay
        .headers
        .insert("x-strangler-shadow", http::HeaderValue::from_static("1"));
    Some(Plan {
        replay,
        rules: Arc::clone(rules),
        cluster: cluster.clone(),
        context: Arc::clone(context),
        slot,
        started: Instant::now(),
    })
}

/// Starts the shadow once legacy's response head is known; returns the tee to put on legacy's
/// body.
pub fn launch(
    plan: Plan,
    config: &ShadowConfig,
    telemetry: Arc<Telemetry>,
    status: u16,
    content_type: Option<String>,
) -> Tee {
    let (tx, rx) = oneshot::channel();
    let tee = Tee {
        tx: Some(tx),
        status,
        content_type,
        buf: Some(BytesMut::new()),
        cap: config.max_body_bytes,
        started: plan.started,
    };
    tokio::spawn(run(plan, rx, config.clone(), telemetry));
    tee
}

async fn run(
    plan: Plan,
    legacy: oneshot::Receiver<Captured>,
    config: ShadowConfig,
    telemetry: Arc<Telemetry>,
) {
    let _slot = plan.slot;
    let context = plan.context;
    let rules = plan.rules;
    // What an example may say of the request: method and path, never headers or the query.
    let plan_method = plan.replay.method.clone();
    let plan_path = plan.replay.uri.path().to_owned();
    let started = Instant::now();
    let sent = tokio::time::timeout(config.timeout, plan.cluster.send(plan.replay.rebuild())).await;
    let resp = match sent {
        Ok(Ok(resp)) => resp,
        _ => {
            telemetry.record_shadow_skip(&context, Skip::NewFailed);
            return;
        }
    };
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limited = http_body_util::Limited::new(resp.into_body(), config.max_body_bytes);
    let body = match tokio::time::timeout(config.timeout, http_body_util::BodyExt::collect(limited))
        .await
    {
        Ok(Ok(c)) => Some(c.to_bytes()),
        Ok(Err(_)) => None,
        Err(_) => {
            telemetry.record_shadow_skip(&context, Skip::NewFailed);
            return;
        }
    };
    let new_elapsed = started.elapsed();
    let Ok(Ok(legacy)) = tokio::time::timeout(Duration::from_secs(60), legacy).await else {
        telemetry.record_shadow_skip(&context, Skip::LegacyIncomplete);
        return;
    };
    let (Some(legacy_body), Some(new_body)) = (legacy.body.as_ref(), body.as_ref()) else {
        telemetry.record_shadow_skip(&context, Skip::BodyTooLarge);
        return;
    };
    let signatures = diff::compare_with(
        &diff::Answer {
            status: legacy.status,
            content_type: legacy.content_type.as_deref(),
            body: legacy_body,
        },
        &diff::Answer {
            status,
            content_type: content_type.as_deref(),
            body: new_body,
        },
        &rules,
    );
    let example = (!signatures.is_empty()).then(|| crate::telemetry::ShadowExampleRow {
        signature: String::new(),
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or_default(),
        method: plan_method.to_string(),
        path: plan_path.clone(),
        legacy_status: legacy.status,
        new_status: status,
        legacy_body: rules.redacted(legacy_body, legacy.content_type.as_deref()),
        new_body: rules.redacted(new_body, content_type.as_deref()),
    });
    telemetry.record_shadow(&context, &signatures, legacy.elapsed, new_elapsed, example);
}

/// A body wrapper with a tee (used by the response body).
pub fn tee_poll(
    tee: &mut Option<Tee>,
    polled: &Poll<Option<Result<Frame<Bytes>, crate::body::BoxError>>>,
    ended: bool,
) {
    let Some(t) = tee.as_mut() else { return };
    match polled {
        Poll::Ready(Some(Ok(frame))) => {
            t.frame(frame);
            if ended {
                t.finish();
            }
        }
        Poll::Ready(None) => t.finish(),
        Poll::Ready(Some(Err(_))) => *tee = None,
        Poll::Pending => {}
    }
}
