//! The resilience stack against real HTTP servers on loopback.
//!
//! Size: over 600 lines on purpose: each resilience mechanism (balancing, breaker, retries,
//! ejection, health, collapsing) against the same loopback servers and helpers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::*;

/// A test request body: empty, rebuildable.
#[derive(Debug, Default)]
struct Nothing(Empty<Bytes>);

impl http_body::Body for Nothing {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().0).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        true
    }
}

impl EmptyBody for Nothing {
    fn empty() -> Self {
        Nothing::default()
    }
}

/// A server whose status can be changed; counts the requests it saw.
struct Server {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    seen: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
}

async fn server(status: u16) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let status = Arc::new(AtomicU16::new(status));
    let seen = Arc::new(AtomicUsize::new(0));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let (st, sn, dl) = (
        Arc::clone(&status),
        Arc::clone(&seen),
        Arc::clone(&delay_ms),
    );
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (st, sn, dl) = (Arc::clone(&st), Arc::clone(&sn), Arc::clone(&dl));
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let (st, sn, dl) = (Arc::clone(&st), Arc::clone(&sn), Arc::clone(&dl));
                    async move {
                        sn.fetch_add(1, SeqCst);
                        let d = dl.load(SeqCst);
                        if d > 0 {
                            tokio::time::sleep(Duration::from_millis(d)).await;
                        }
                        let mut resp = http::Response::new(Full::new(Bytes::from_static(b"ok")));
                        *resp.status_mut() = StatusCode::from_u16(st.load(SeqCst)).unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Server {
        addr,
        status,
        seen,
        delay_ms,
    }
}

fn dead() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn config(addrs: &[SocketAddr]) -> ClusterConfig {
    let origins: Vec<Origin> = addrs
        .iter()
        .map(|a| Origin::parse(&format!("http://{a}")).unwrap())
        .collect();
    ClusterConfig {
        name: "svc".into(),
        upstream: UpstreamConfig::new(origins[0].clone()),
        instances: origins,
        balance: Balance::PowerOfTwoChoices,
        outlier: OutlierConfig::default(),
        breaker: BreakerConfig {
            min_requests: 1_000_000,
            ..BreakerConfig::default()
        },
        max_concurrent: None,
        health: None,
        collapse: None,
        retry: RetryConfig {
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(2),
            ..RetryConfig::default()
        },
    }
}

async fn call(
    c: &Cluster<Nothing>,
    method: http::Method,
) -> Result<StatusCode, ServiceFailureKind> {
    let req = Request::builder()
        .method(method)
        .uri("/x")
        .body(Nothing::default())
        .unwrap();
    match c.send(req).await {
        Ok(resp) => {
            let status = resp.status();
            let _ = resp.into_body().collect().await;
            Ok(status)
        }
        Err(f) => Err(f.kind),
    }
}

#[tokio::test]
async fn balancing_spreads_requests_over_instances() {
    let (a, b) = (server(200).await, server(200).await);
    let mut cfg = config(&[a.addr, b.addr]);
    let p2c: Cluster<Nothing> = Cluster::new(cfg.clone(), None);
    for _ in 0..200 {
        assert_eq!(call(&p2c, http::Method::GET).await, Ok(StatusCode::OK));
    }
    let (sa, sb) = (a.seen.load(SeqCst), b.seen.load(SeqCst));
    assert!(
        sa > 40 && sb > 40,
        "power of two choices left one idle: {sa}/{sb}"
    );
    cfg.balance = Balance::RoundRobin;
    let rr: Cluster<Nothing> = Cluster::new(cfg, None);
    let before = (a.seen.load(SeqCst), b.seen.load(SeqCst));
    for _ in 0..100 {
        call(&rr, http::Method::GET).await.unwrap();
    }
    assert_eq!(
        (
            a.seen.load(SeqCst) - before.0,
            b.seen.load(SeqCst) - before.1
        ),
        (50, 50)
    );
}

#[tokio::test]
async fn safe_requests_are_retried_on_another_instance_writes_are_not() {
    let good = server(200).await;
    let mut cfg = config(&[dead(), good.addr]);
    cfg.balance = Balance::RoundRobin;
    cfg.outlier.consecutive_failures = 1_000; // keep the dead one in rotation for this test
    let c: Cluster<Nothing> = Cluster::new(cfg, None);
    for _ in 0..20 {
        assert_eq!(
            call(&c, http::Method::GET).await,
            Ok(StatusCode::OK),
            "a GET failed despite a healthy instance"
        );
    }
    // POST to the dead instance: not retried, but handed back unsent.
    let mut saw_unsent = false;
    for _ in 0..4 {
        let req = Request::post("/x").body(Nothing::default()).unwrap();
        if let Err(f) = c.send(req).await {
            assert_eq!(f.kind, ServiceFailureKind::Upstream(FailureKind::Connect));
            assert!(
                f.unsent.is_some(),
                "a connect failure must return the request"
            );
            saw_unsent = true;
        }
    }
    assert!(saw_unsent);
}

#[tokio::test]
async fn the_retry_budget_caps_attempts_during_an_outage() {
    let (a, b) = (server(503).await, server(503).await);
    let mut cfg = config(&[a.addr, b.addr]);
    cfg.retry.attempts = 5;
    cfg.retry.budget_reserve = 5;
    cfg.outlier.consecutive_failures = 1_000_000;
    let c: Cluster<Nothing> = Cluster::new(cfg, None);
    for _ in 0..200 {
        assert_eq!(
            call(&c, http::Method::GET).await,
            Ok(StatusCode::SERVICE_UNAVAILABLE)
        );
    }
    let attempts = a.seen.load(SeqCst) + b.seen.load(SeqCst);
    // 200 requests, 20 % budget, 5 in reserve: at most 245 attempts, against 1000 without a budget.
    assert!(
        (200..=245).contains(&attempts),
        "{attempts} upstream attempts for 200 requests"
    );
}

#[tokio::test]
async fn the_breaker_opens_then_probes_and_closes_after_recovery() {
    let s = server(500).await;
    let mut cfg = config(&[s.addr]);
    cfg.retry.attempts = 1;
    cfg.breaker = BreakerConfig {
        window: Duration::from_secs(5),
        min_requests: 10,
        failure_rate: 0.5,
        cool_down: Duration::from_millis(200),
        probes: 2,
    };
    let c: Cluster<Nothing> = Cluster::new(cfg, None);
    for _ in 0..10 {
        assert_eq!(
            call(&c, http::Method::GET).await,
            Ok(StatusCode::INTERNAL_SERVER_ERROR)
        );
    }
    assert_eq!(c.breaker_state(), BreakerState::Open);
    let seen = s.seen.load(SeqCst);
    assert_eq!(
        call(&c, http::Method::GET).await,
        Err(ServiceFailureKind::BreakerOpen)
    );
    assert_eq!(s.seen.load(SeqCst), seen, "an open breaker must not send");
    s.status.store(200, SeqCst);
    until("the breaker half-opens after its cool-down", || {
        c.breaker_state() == BreakerState::HalfOpen
    })
    .await;
    for _ in 0..2 {
        assert_eq!(call(&c, http::Method::GET).await, Ok(StatusCode::OK));
    }
    assert_eq!(c.breaker_state(), BreakerState::Closed);
    let samples = c.samples();
    let has = |metric: &str, labels: &[(&str, &str)], value: u64| {
        samples.iter().any(|s| {
            s.metric == metric
                && s.value == value
                && s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|((k, v), (k2, v2))| k == k2 && v == v2)
        })
    };
    assert!(
        has(
            "strangler_service_breaker_opened_total",
            &[("service", "svc")],
            1
        ),
        "{samples:?}"
    );
    assert!(has(
        "strangler_service_breaker_state",
        &[("service", "svc"), ("state", "closed")],
        1
    ));
}

#[tokio::test]
async fn failing_instances_are_ejected_and_come_back_after_the_back_off() {
    let (bad, good) = (server(500).await, server(200).await);
    let mut cfg = config(&[bad.addr, good.addr]);
    cfg.retry.attempts = 1;
    cfg.balance = Balance::RoundRobin;
    cfg.outlier = OutlierConfig {
        consecutive_failures: 3,
        base_ejection: Duration::from_millis(300),
        max_ejection: Duration::from_secs(5),
        max_ejected_share: 0.5,
    };
    let c: Cluster<Nothing> = Cluster::new(cfg, None);
    for _ in 0..10 {
        let _ = call(&c, http::Method::GET).await;
    }
    assert_eq!(
        bad.seen.load(SeqCst),
        3,
        "the failing instance kept getting traffic"
    );
    assert!(c.instances()[0].ejected_for_ms > 0);
    let before = bad.seen.load(SeqCst);
    for _ in 0..10 {
        assert_eq!(call(&c, http::Method::GET).await, Ok(StatusCode::OK));
    }
    assert_eq!(bad.seen.load(SeqCst), before);
    bad.status.store(200, SeqCst);
    until("the instance's back-off ends", || {
        c.instances()[0].ejected_for_ms == 0
    })
    .await;
    for _ in 0..10 {
        call(&c, http::Method::GET).await.unwrap();
    }
    assert!(
        bad.seen.load(SeqCst) > before,
        "the instance did not come back after its back-off"
    );
}

#[tokio::test]
async fn ejection_never_takes_the_last_instance() {
    let bad = server(500).await;
    let mut cfg = config(&[bad.addr]);
    cfg.retry.attempts = 1;
    cfg.outlier.consecutive_failures = 2;
    let c: Cluster<Nothing> = Cluster::new(cfg, None);
    for _ in 0..10 {
        assert_eq!(
            call(&c, http::Method::GET).await,
            Ok(StatusCode::INTERNAL_SERVER_ERROR)
        );
    }
    assert_eq!(bad.seen.load(SeqCst), 10);
    assert_eq!(c.instances()[0].ejected_for_ms, 0);
}

#[tokio::test]
async fn a_full_bulkhead_refuses_without_sending() {
    let slow = server(200).await;
    slow.delay_ms.store(300, SeqCst);
    let mut cfg = config(&[slow.addr]);
    cfg.max_concurrent = Some(1);
    let c: Cluster<Nothing> = Cluster::new(cfg, None);
    let first = {
        let c = c.clone();
        tokio::spawn(async move { call(&c, http::Method::GET).await })
    };
    until("the first request is in flight", || {
        slow.seen.load(SeqCst) == 1
    })
    .await;
    assert_eq!(
        call(&c, http::Method::GET).await,
        Err(ServiceFailureKind::BulkheadFull)
    );
    assert_eq!(first.await.unwrap(), Ok(StatusCode::OK));
    assert_eq!(slow.seen.load(SeqCst), 1);
    assert_eq!(
        call(&c, http::Method::GET).await,
        Ok(StatusCode::OK),
        "the permit is released with the body"
    );
}

#[tokio::test]
async fn active_health_checks_take_an_instance_out_and_back() {
    let (sick, well) = (server(200).await, server(200).await);
    let mut cfg = config(&[sick.addr, well.addr]);
    cfg.balance = Balance::RoundRobin;
    cfg.health = Some(HealthCheckConfig {
        path: "/health".into(),
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(200),
        healthy_threshold: 2,
        unhealthy_threshold: 2,
    });
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let c: Cluster<Nothing> = Cluster::with_events(
        cfg,
        None,
        Some(Arc::new(move |e| sink.lock().unwrap().push(e))),
    );
    sick.status.store(503, SeqCst);
    until("two failed checks mark it unhealthy", || {
        !c.instances()[0].healthy
    })
    .await;
    let before = sick.seen.load(SeqCst);
    for _ in 0..10 {
        // Only the healthy instance answers now (the checks keep arriving at the sick one).
        let req = Request::get("/x").body(Nothing::default()).unwrap();
        let resp = c.send(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let checks_only = sick.seen.load(SeqCst) - before;
    assert!(
        checks_only <= 4,
        "the unhealthy instance got traffic: {checks_only} requests"
    );
    sick.status.store(200, SeqCst);
    until("two good checks bring it back", || c.instances()[0].healthy).await;
    let events = events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ServiceEvent::Health { healthy: false, .. })),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ServiceEvent::Health { healthy: true, .. })),
        "{events:?}"
    );
}

#[tokio::test]
async fn identical_concurrent_gets_share_one_upstream_call() {
    let slow = server(200).await;
    slow.delay_ms.store(200, SeqCst);
    let mut cfg = config(&[slow.addr]);
    cfg.collapse = Some(CollapseConfig {
        with_credentials: false,
        vary: Vec::new(),
        max_body: 1 << 20,
        window: Duration::ZERO,
    });
    let c: Cluster<Nothing> = Cluster::new(cfg, None);
    let mut calls = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        calls.push(tokio::spawn(async move {
            let mut req = Request::get("/hot").body(Nothing::default()).unwrap();
            if i == 19 {
                // Credentials are not shared unless configured: this one goes on its own.
                req.headers_mut()
                    .insert("authorization", "Bearer x".parse().unwrap());
            }
            let resp = c.send(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }));
        if i == 0 {
            // The others join a flight that is in the air.
            until("the leader is in flight", || slow.seen.load(SeqCst) == 1).await;
        }
    }
    for call in calls {
        assert_eq!(
            call.await.unwrap(),
            (StatusCode::OK, Bytes::from_static(b"ok"))
        );
    }
    assert_eq!(
        slow.seen.load(SeqCst),
        2,
        "19 identical GETs should have made one call, the credentialed one its own"
    );
    assert!(c
        .samples()
        .iter()
        .any(|s| s.metric == "strangler_service_collapsed_total"
            && s.labels == [("service", "svc".to_owned())]
            && s.value == 18));
    // Later, a new flight.
    call(&c, http::Method::GET).await.unwrap();
    assert_eq!(slow.seen.load(SeqCst), 3);
}

#[tokio::test]
async fn a_batching_window_gathers_requests_that_do_not_overlap_the_call() {
    let fast = server(200).await;
    let mut cfg = config(&[fast.addr]);
    cfg.collapse = Some(CollapseConfig {
        with_credentials: false,
        vary: Vec::new(),
        max_body: 1 << 20,
        window: Duration::from_millis(100),
    });
    let c: Cluster<Nothing> = Cluster::new(cfg, None);
    let mut calls = Vec::new();
    for _ in 0..5 {
        let c = c.clone();
        calls.push(tokio::spawn(
            async move { call(&c, http::Method::GET).await },
        ));
        // Spread over 40 ms: without the window a fast upstream would answer each on its own.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), Ok(StatusCode::OK));
    }
    assert_eq!(fast.seen.load(SeqCst), 1);
}

/// A server that answers each GET with what it was asked (the identity header) and the extra
/// headers it was configured with; counts calls.
async fn mirror(extra: &'static [(&'static str, &'static str)]) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        seen.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let who = req
                            .headers()
                            .get("x-user")
                            .map(|v| v.to_str().unwrap_or("?").to_owned())
                            .unwrap_or_default();
                        let mut resp =
                            http::Response::new(http_body_util::Full::new(Bytes::from(who)));
                        for (k, v) in extra {
                            resp.headers_mut().insert(*k, v.parse().unwrap());
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, calls)
}

fn collapsing(addr: SocketAddr, with_credentials: bool) -> Cluster<Nothing> {
    let mut cfg = config(&[addr]);
    cfg.collapse = Some(CollapseConfig {
        with_credentials,
        vary: Vec::new(),
        max_body: 1 << 20,
        window: Duration::from_millis(100),
    });
    Cluster::new(cfg, None)
}

/// Concurrent identical GETs, each with its own headers; returns each one's answer.
async fn flight(c: &Cluster<Nothing>, headers: &[&[(&'static str, &'static str)]]) -> Vec<String> {
    let calls: Vec<_> = headers
        .iter()
        .map(|h| {
            let c = c.clone();
            let mut req = Request::get("/api/me").body(Nothing::default()).unwrap();
            for (k, v) in h.iter() {
                req.headers_mut().append(*k, v.parse().unwrap());
            }
            tokio::spawn(async move {
                let resp = c.send(req).await.unwrap();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                String::from_utf8(body.to_vec()).unwrap()
            })
        })
        .collect();
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await.unwrap());
    }
    out
}

/// The key covers every field the facade may have set after rewriting the request: the
/// identity bridge's token, a header a translator set from the session, any custom field.
#[tokio::test]
async fn requests_that_differ_in_any_keyed_field_never_share_an_answer() {
    let (addr, calls) = mirror(&[]).await;
    // Credentials shared (a service that answers alike for all), so only the key separates.
    let c = collapsing(addr, true);
    let answers = flight(
        &c,
        &[
            &[("x-user", "ada"), ("x-strangler-identity", "token-ada")],
            &[("x-user", "bob"), ("x-strangler-identity", "token-bob")],
            &[("x-user", "ada"), ("x-customer-id", "1")],
            &[("x-user", "cy"), ("x-customer-id", "2")],
        ],
    )
    .await;
    assert_eq!(answers, ["ada", "bob", "ada", "cy"]);
    assert_eq!(calls.load(SeqCst), 4);
    // Only fields that do not choose the answer are left out: these share one call.
    calls.store(0, SeqCst);
    let answers = flight(
        &c,
        &[
            &[
                ("x-user", "ada"),
                ("x-forwarded-for", "10.0.0.1"),
                ("user-agent", "a"),
            ],
            &[
                ("x-user", "ada"),
                ("x-forwarded-for", "10.0.0.2"),
                ("traceparent", "00-1-2-01"),
            ],
        ],
    )
    .await;
    assert_eq!(answers, ["ada", "ada"]);
    assert_eq!(calls.load(SeqCst), 1);
}

/// By default a credentialed request is not collapsed at all, whatever carries the credential.
#[tokio::test]
async fn credentialed_requests_go_on_their_own_by_default() {
    let (addr, calls) = mirror(&[]).await;
    let c = collapsing(addr, false);
    for field in [
        "authorization",
        "cookie",
        "x-strangler-identity",
        "x-api-key",
        "x-session-id",
    ] {
        calls.store(0, SeqCst);
        let headers: [&[(&str, &str)]; 2] = [&[(field, "same")], &[(field, "same")]];
        flight(&c, &headers).await;
        assert_eq!(calls.load(SeqCst), 2, "{field} was collapsed");
    }
}

/// A personal answer, or one that varies on a field the key leaves out, is not shared: the
/// followers ask for their own.
#[tokio::test]
async fn personal_or_varying_answers_are_not_shared() {
    for extra in [
        &[("set-cookie", "sid=1")][..],
        &[("cache-control", "private, max-age=10")][..],
        &[("cache-control", "no-store")][..],
        &[("vary", "User-Agent")][..],
        &[("vary", "*")][..],
    ] {
        let (addr, calls) = mirror(extra).await;
        let c = collapsing(addr, false);
        let headers: [&[(&str, &str)]; 3] =
            [&[("x-user", "a")], &[("x-user", "a")], &[("x-user", "a")]];
        let answers = flight(&c, &headers).await;
        assert_eq!(answers, ["a", "a", "a"]);
        assert_eq!(calls.load(SeqCst), 3, "{extra:?} was shared");
    }
    // A Vary on a keyed field is fine: everyone in the flight has the same value.
    let (addr, calls) = mirror(&[("vary", "Accept-Language")]).await;
    let c = collapsing(addr, false);
    let headers: [&[(&str, &str)]; 3] = [&[("accept-language", "nb")]; 3];
    flight(&c, &headers).await;
    assert_eq!(calls.load(SeqCst), 1);
}

/// Waits for `cond`, checking every 10 ms; fails after 5 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: never happened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_grpc_answer_counts_as_the_status_its_code_maps_to() {
    use http::header::CONTENT_TYPE;
    use http::{HeaderMap, HeaderValue, StatusCode};
    let answer = |fields: &[(&str, &str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in fields {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    };
    let ok = StatusCode::OK;
    let grpc = |code: &str| answer(&[("content-type", "application/grpc"), ("grpc-status", code)]);
    assert_eq!(
        effective_status(ok, &grpc("14")),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        effective_status(ok, &grpc("4")),
        StatusCode::GATEWAY_TIMEOUT
    );
    assert_eq!(effective_status(ok, &grpc("0")), ok);
    let proto = answer(&[
        ("server", "x"),
        ("content-type", "application/grpc+proto"),
        ("grpc-status", "13"),
    ]);
    assert_eq!(
        effective_status(ok, &proto),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    // Not gRPC: the status stands.
    assert_eq!(effective_status(ok, &answer(&[("grpc-status", "14")])), ok);
    let json = answer(&[("content-type", "application/json"), ("grpc-status", "14")]);
    assert_eq!(effective_status(ok, &json), ok);
    // The first `Content-Type` decides, as a lookup would.
    let mut two = answer(&[("content-type", "text/plain"), ("grpc-status", "14")]);
    two.append(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    assert_eq!(effective_status(ok, &two), ok);
    // Only a 200 is read for a gRPC code.
    assert_eq!(
        effective_status(StatusCode::BAD_GATEWAY, &grpc("0")),
        StatusCode::BAD_GATEWAY
    );
}
