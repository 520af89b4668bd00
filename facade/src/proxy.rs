//! One request through the facade: admit it, decide who answers, translate and forward it,
//! fall back when the new side fails, and answer.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::Either;
use futures_util::FutureExt;
use http::header::{HeaderValue, EXPECT, HOST, TE, VIA};
use http::{Method, Request, Response, StatusCode, Version};
use strangler_catalog::Side;
use strangler_services::boxing::in_box;
use strangler_services::cluster::{effective_status, is_failure_status, Replay};
use strangler_services::Appended;

use crate::admission::{normalize_target, strip_internal, Refusal};
use crate::body::{ClientBody, RequestBody, ResponseBody};
use crate::compose;
use crate::config::HostHeader;
use crate::conn::{ConnActive, ConnInfo};
use crate::decision::{Routing, Served, Target};
use crate::facade::Facade;
use crate::headers::{self, Forwarded};
use crate::ids::{self, id_problem};
use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::shadow;
use crate::telemetry::Answer;
use crate::upgrade;

mod answer;
use answer::Answering;

impl Facade {
    /// Handles one request; never fails: every failure becomes an answer.
    #[allow(clippy::manual_async_fn)] // on purpose: see `forward`
    pub(crate) fn handle<'a>(
        &'a self,
        req: Request<ClientBody>,
        conn: &'a Arc<ConnInfo>,
    ) -> impl Future<Output = Response<ResponseBody>> + 'a {
        async move {
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
                // Boxed: inline, this future (several KiB: every step a request may take) would
                // double this one's size and be moved whole into the connection's, per request.
                in_box(|| self.forward(req, conn, &mut id, &mut served)).await
            };
            // Changed in place below: a response moved is a copy of ~400 bytes.
            let mut resp = match forwarded {
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
            // A gRPC call that failed before its first message counts as the error it is.
            let status = effective_status(resp.status(), resp.headers()).as_u16();
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
                let uri =
                    shadow::redact::target(uri.path_and_query().map_or("/", |p| p.as_str()), &[]);
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
            if http1 && s.draining.load(Ordering::Relaxed) {
                resp.headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Some(hsts) = conn.tls.as_ref().and_then(|t| t.hsts()) {
                resp.headers_mut()
                    .entry(http::header::STRICT_TRANSPORT_SECURITY)
                    .or_insert_with(|| hsts.clone());
            }
            // The request stays in flight while its body streams.
            resp.body_mut().hold_in_flight(in_flight, active);
            resp
        }
    }

    /// Forwards a request. `served` is set to the matched context's traffic counters and the
    /// side that answered (left `None` for requests no context claimed).
    //
    // This and `send` are plain functions returning futures rather than `async fn`s: an
    // `async fn` keeps each argument twice in its state (as passed, and as moved into its
    // body), and the state is part of every request's future, moved whole per request.
    #[allow(clippy::manual_async_fn)]
    fn forward<'a>(
        &'a self,
        mut req: Request<ClientBody>,
        conn: &'a ConnInfo,
        id: &'a mut Option<RequestId>,
        served: &'a mut Option<Served>,
    ) -> impl Future<Output = Result<Response<ResponseBody>, Refusal>> + 'a {
        async move {
            let s = &*self.shared;
            // Which of the fields edited below the request carries: only those are looked up.
            let present = self.check(&req)?;
            normalize_target(&mut req, s.config.paths)?;

            let version = req.version();
            let head_request = req.method() == Method::HEAD;
            // Whether the public host is the request's one `Host` field as it stands.
            let host_as_sent = req.uri().authority().is_none() && present.hosts == 1;
            // The public origin, for the route, the forwarding fields and redirect rewriting.
            // An absolute-form target (or HTTP/2's :authority) names it; otherwise the Host
            // header does.
            let client_host = match req.uri().authority() {
                Some(a) => HeaderValue::from_str(a.as_str()).ok(),
                None if present.hosts == 0 => None,
                None => req.headers().get(HOST).cloned(),
            };
            let mut routing = self.route(&req, client_host.as_ref(), conn);
            s.telemetry.record_side(routing.side);
            if let Some(t) = routing.traffic.take() {
                *served = Some(t);
            }
            if routing.owner_moving {
                let context = routing.context.as_deref().unwrap_or("-");
                return Err(Problem::new(
                    Answer::ServiceUnavailable,
                    format!(
                        "the write owner of context `{context}` is moving to the other side; \
                     nothing was written, try again in a moment"
                    ),
                ));
            }
            let wants_upgrade = version == Version::HTTP_11
                && present.upgrade
                && headers::connection_has(req.headers(), "upgrade");
            let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));

            let mut shadow_plan: Option<Box<shadow::Pending>>;
            let via = self.via(version);
            // A request from an untrusted peer that carries no forwarding field, to legacy and
            // nothing else, gets its forwarding fields and `Via` written straight into the head
            // the upstream is sent (see `Upstream::try_send_appending`), not appended to its
            // map. Every other request has them in its map, for every step that reads it.
            let mut appended = [(&headers::VIA, via); 4];
            let mut appending = 0;
            let defer_forwarding = !conn.trusted
                && !present.forwarding
                && matches!(routing.target, Target::Legacy)
                && routing.shadow.is_none()
                && routing.ids.is_none()
                && routing.translation.is_none();
            // The request's head and body live in this block, which ends before the send's
            // await: their state is then not part of the request's future.
            let sending = {
                let (mut parts, body) = req.into_parts();
                let headers = &mut parts.headers;
                // Room for the fields added below (the three forwarding fields, Via, TE), so
                // that the map grows once if at all, not once per field. (It cannot fail: a
                // request has at most `max_headers` fields, 10,000 at most; a map holds 32,768.)
                let _ = headers.try_reserve(5);

                if present.hop_by_hop || wants_upgrade {
                    let trailers = present.te && headers::te_has_trailers(headers);
                    headers::strip_hop_by_hop(headers, wants_upgrade);
                    if trailers {
                        headers.insert(TE, HeaderValue::from_static("trailers"));
                    }
                }
                // hyper has already answered `Expect: 100-continue` to the client when the body is
                // first read; the upstream need not be asked again.
                if present.expect {
                    headers.remove(EXPECT);
                }
                if present.internal {
                    // `X-Strangler-*` is ours to set (shadow marks, identity); a client may not forge it.
                    strip_internal(headers);
                }
                match s.config.forwarding.host {
                    HostHeader::Preserve => match &client_host {
                        // The one `Host` field already says it (no edit above removes `Host`).
                        Some(_) if host_as_sent => {}
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
                        if let Ok(h) =
                            HeaderValue::from_str(self.origin_of(&routing).authority.as_str())
                        {
                            headers.insert(HOST, h);
                        }
                    }
                }
                let forwarded = Forwarded {
                    peer: &conn.peer_value,
                    trusted: conn.trusted,
                    proto: if conn.tls.is_some() {
                        &headers::HTTPS
                    } else {
                        &headers::HTTP
                    },
                    host: client_host.as_ref(),
                };
                if defer_forwarding {
                    appending = headers::appended_forwarding(&forwarded, via, &mut appended);
                } else {
                    headers::set_forwarded(headers, &forwarded, present.forwarding);
                    headers.append(VIA, via.clone());
                }
                parts.version = Version::HTTP_11;
                parts.extensions = http::Extensions::new();

                // A composed route: several calls, one assembled answer (safe methods only).
                if let Some((t, cluster, composition)) = self.composition(&routing, &parts) {
                    match Box::pin(compose::answer(
                        &t,
                        composition,
                        &parts,
                        &s.legacy,
                        &cluster,
                        &s.telemetry,
                        &self.work(),
                    ))
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
                // Boxed: ~570 bytes that only shadowed requests use, in every request's state.
                shadow_plan = match &routing.shadow {
                Some(wanted) => shadow::plan(
                    &s.config.shadow,
                    wanted,
                    &s.shadow_budget,
                    &s.buffers,
                    s.outbox.get().map(|w| &**w),
                    &s.telemetry,
                    &mut outgoing,
                )
                .map_err(|refused| {
                    let why = match refused {
                        shadow::MirrorRefused::Budget => "the facade's buffer budget has no room for its copy now".to_owned(),
                        shadow::MirrorRefused::NoLog => "the mirror's log is not running".to_owned(),
                        shadow::MirrorRefused::Log(shadow::wal::Refusal::Backlog(n)) => format!("{n} mirrored writes wait to reach the catalog (the bound)"),
                        shadow::MirrorRefused::Log(shadow::wal::Refusal::Broken) => "the mirror's log could not write to disk a moment ago".to_owned(),
                    };
                    Problem::new(
                        Answer::Overloaded,
                        format!(
                            "context `{}` mirrors this write, and {why}; it was not sent anywhere, try again shortly",
                            wanted.context
                        ),
                    )
                })?
                .map(Box::new),
                None => None,
            };
                // Named as the side it goes to knows the resource (after the shadow's copy was taken:
                // a copy is mapped for its own side).
                // The steps only some routes take are boxed (here and below): inline, each one's state
                // would be part of every request's future, which is moved whole at each await.
                if let Some(rule) = routing.ids.clone() {
                    outgoing = Box::pin(self.map_ids(&rule, &mut routing, outgoing)).await?;
                }
                if routing.translation.is_some() {
                    outgoing = Box::pin(self.translate_outgoing(&mut routing, outgoing)).await?;
                }
                // The new side's way (retries, fallback, collapsing: ~2.5 KiB of state) is boxed,
                // so that a request to legacy does not carry it.
                if matches!(routing.target, Target::Legacy) {
                    Either::Left(self.to_legacy(&routing, outgoing, &appended[..appending]))
                } else {
                    Either::Right(in_box(|| self.send(&mut routing, outgoing)))
                }
            };
            let sent = sending.await;
            // A fallback changed who answered.
            if let Some(served) = served.as_mut() {
                served.side = routing.side;
                served.fell_back = routing.fell_back.is_some();
            }
            // In reverse, a fallback means legacy answered: there is nothing to compare. (A
            // failed one drops its plan below, counted as skipped because the primary failed.)
            if routing.fell_back.is_some() && sent.is_ok() {
                if let Some(plan) = shadow_plan.take() {
                    plan.skip_as(shadow::Skip::FellBack);
                }
            }
            // The answer's locals live in this block, which ends before the one await below:
            // their state is then not part of the request's future.
            let with_body = {
                // A planned shadow dropped here counts as skipped (primary failed).
                let mut resp = sent?;
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                    let Some(client_upgrade) = client_upgrade else {
                        return Err(Problem::new(
                            Answer::UpstreamBroken,
                            "the upstream switched protocols without being asked to",
                        ));
                    };
                    if let Some(plan) = shadow_plan {
                        plan.skip_as(shadow::Skip::Upgraded);
                    }
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

                headers::strip_hop_by_hop(resp.headers_mut(), false);
                // A small answer of unknown length (chunked) goes out whole, with its length.
                let status = resp.status();
                let bodiless = head_request
                    || status.is_informational()
                    || matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
                let coalesce =
                    !bodiless && http_body::Body::size_hint(resp.body()).exact().is_none();
                if !coalesce
                    && routing.translation.is_none()
                    && routing.ids.is_none()
                    && !shadow_plan.as_ref().is_some_and(|plan| plan.is_mirror())
                {
                    self.finish_answer(&routing, &mut resp, client_host.as_ref());
                    if let Some(plan) = shadow_plan {
                        let (parts, body) = resp.into_parts();
                        let tee = plan.launch(&s.config.shadow, self.sinks(), &parts);
                        return Ok(Response::from_parts(parts, body.with_tee(tee)));
                    }
                    return Ok(resp);
                }
                let (parts, body) = resp.into_parts();
                // Boxed: the steps that wait on the answer's body stay out of the state of
                // an answer passed through.
                let answer = Answering {
                    routing: &routing,
                    client_host: client_host.as_ref(),
                    head_request,
                    coalesce,
                };
                in_box(|| self.answer_with_body(answer, parts, body, shadow_plan))
            };
            with_body.await
        }
    }

    fn via(&self, version: Version) -> &HeaderValue {
        let s = &*self.shared;
        match version {
            Version::HTTP_2 | Version::HTTP_3 => &s.via_2,
            Version::HTTP_10 | Version::HTTP_09 => &s.via_10,
            _ => &s.via_11,
        }
    }

    /// Sends the request to legacy, with `appended` after its fields.
    #[allow(clippy::manual_async_fn)] // on purpose: see `forward`
    fn to_legacy<'a>(
        &'a self,
        routing: &'a Routing,
        req: Request<RequestBody>,
        appended: Appended<'a>,
    ) -> impl Future<Output = Result<Response<ResponseBody>, Problem>> + 'a {
        // `try_send` rather than `send`: one adapter less, and each moves the whole future.
        self.shared
            .legacy
            .try_send_appending(req, appended)
            .map(move |sent| match sent {
                Ok(resp) => Ok(resp.map(ResponseBody::upstream)),
                Err(failure) => Err(self.upstream_failure(&failure.error, routing)),
            })
    }

    /// Sends the request to the side the routing chose; on the new side, with fallback to
    /// legacy where the context allows it.
    #[allow(clippy::manual_async_fn)] // on purpose: see `forward`
    fn send<'a>(
        &'a self,
        routing: &'a mut Routing,
        req: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<ResponseBody>, Problem>> + 'a {
        async move {
            let (cluster, fallback, fallback_after) = match &routing.target {
                Target::Legacy => return self.to_legacy(routing, req, &[]).await,
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
                Ok(resp)
                    if replay.is_some()
                        && is_failure_status(effective_status(resp.status(), resp.headers())) =>
                {
                    let reason = format!(
                        "status_{}",
                        effective_status(resp.status(), resp.headers()).as_u16()
                    );
                    drop(resp);
                    match &replay {
                        Some(r) => Box::pin(self.fall_back(routing, r.rebuild(), &reason)).await,
                        None => Err(Problem::new(
                            Answer::UpstreamBroken,
                            "no request to fall back with",
                        )),
                    }
                }
                Ok(resp) => Ok(resp.map(ResponseBody::cluster)),
                Err(failure) => {
                    let reason = failure.kind.as_str();
                    // A write goes only to the context's owner: legacy taking it alone would split
                    // the data. One that never left is refused as retryable, nothing written.
                    if failure.unsent.is_some() && routing.write {
                        let context = routing.context.as_deref().unwrap_or("-");
                        return Err(Problem::new(
                            Answer::ServiceUnavailable,
                            format!(
                            "the new service of context `{context}` owns its writes and cannot \
                             take this one now; nothing was written, try again shortly"
                        ),
                        )
                        .internal(format!("write not sent to the owner: {reason}")));
                    }
                    if fallback {
                        // A safe request that never left may go to legacy, and one that left when
                        // it is safe to send twice.
                        if let Some(unsent) = failure.unsent {
                            return Box::pin(self.fall_back(routing, unsent, reason)).await;
                        }
                        if let Some(r) = &replay {
                            return Box::pin(self.fall_back(routing, r.rebuild(), reason)).await;
                        }
                    }
                    Err(self.service_failure(&failure.kind, failure.error.as_ref(), routing))
                }
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
        let req = match routing.untranslated.take().map(|kept| *kept) {
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
        // Legacy gets the resource's id as legacy knows it.
        let mut req = req;
        if let Some(rule) = routing.ids.clone() {
            let client = routing
                .client_uri
                .take()
                .map_or_else(|| req.uri().clone(), |uri| *uri);
            let context = routing.context.clone().unwrap_or_else(|| "-".into());
            routing.swap = None;
            match ids::map_uri(&s.ids, &context, &rule, Side::Legacy, &client) {
                Ok(Some((uri, swap))) => {
                    *req.uri_mut() = uri;
                    routing.swap = Some(swap);
                }
                Ok(None) => *req.uri_mut() = client,
                Err(refused) => return Err(id_problem(&context, &rule, refused)),
            }
        }
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
}

/// The largest answer of unknown length sent whole with a `Content-Length`.
const COALESCE_BYTES: usize = 16 * 1024;
