//! The public listener: accepts connections, serves HTTP/1.1 and h2c (prior knowledge) on
//! them, and drains them on shutdown.
//!
//! A connection starts on our own HTTP/1.1 reader (`h1.rs`), which serves requests with no
//! body or one of a single plain `Content-Length`; the first request it does not take hands
//! the connection, with the bytes read so far, to hyper-util's auto builder (HTTP/1.1 with upgrades, or h2c) for the rest of
//! its life. Both run under the same driver, its timers and its shutdown phases.
//!
//! Every connection has a timer from its first byte on: a client that has not completed its
//! first request head within `header_read_timeout` of the accept is closed, whatever protocol
//! it might speak (hyper's own head timer only starts once the protocol is known, so a socket
//! that never sends a byte would be held forever). An HTTP/2 connection with no request in
//! flight for `client_idle_timeout` is closed with GOAWAY; idle HTTP/1 connections are closed
//! by hyper's head timer while they wait for their next request.
//!
//! Shutdown has two phases. **Draining** (`drain_delay`): the listener still accepts, answers
//! carry `Connection: close`, HTTP/2 connections get GOAWAY, and the admin listener says
//! "not ready", so that a balancer moves clients away without one of them seeing a refused
//! connection or a request cut off. **Closing** (`shutdown_grace`): the listener is closed,
//! idle keep-alive connections are closed, in-flight requests finish, and a connection accepted
//! that has not sent its first request yet has it answered (its client may be sending it now;
//! the first-request timer bounds the wait); what is left at the end of the grace period is
//! cut.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::body::ClientBody;
use crate::conn::ConnInfo;
use crate::facade::Facade;
use crate::framing::{Framing, Guarded};
use crate::tls::Tls;

mod gate;
mod h1;

/// Where the listener is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Still accepting; answers close their connections; HTTP/2 gets GOAWAY.
    Draining,
    /// Not accepting; every connection is asked to finish.
    Closing,
    /// The grace period is over: connections still open are cut.
    Cut,
}

/// How a shutdown drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Keep accepting for the configured `drain_delay` (an orchestrator's SIGTERM).
    AsConfigured,
    /// Stop accepting at once (a person's Ctrl-C).
    Now,
    /// The configured `drain_delay`, or this long if that is shorter (a successor process
    /// took over the listeners: clients on keep-alive connections are told to close before
    /// the idle ones are cut).
    AtLeast(Duration),
}

impl From<()> for Drain {
    fn from((): ()) -> Self {
        Drain::AsConfigured
    }
}

/// Serves `facade` on `listener` until `shutdown` resolves, then drains (`drain_delay`, unless
/// the shutdown says [`Drain::Now`]) and lets in-flight requests finish for up to the
/// configured grace period.
pub async fn serve<D: Into<Drain>>(
    listener: TcpListener,
    facade: Facade,
    shutdown: impl Future<Output = D>,
) -> std::io::Result<()> {
    serve_tls(listener, facade, None, shutdown).await
}

/// [`serve`], with TLS on every connection when `tls` is given (the handshake counts against
/// the connection's first-request timer).
pub async fn serve_tls<D: Into<Drain>>(
    listener: TcpListener,
    facade: Facade,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = D>,
) -> std::io::Result<()> {
    let limits = facade.config().limits.clone();
    let grace = facade.config().shutdown_grace;
    let drain_delay = facade.config().drain_delay;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        // Room for the configured head size plus slack, so that heads a little over the
        // limit still reach our own check and get a problem+json 431.
        .max_buf_size((limits.max_header_bytes * 2).max(16 * 1024));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);

    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let telemetry = Arc::clone(facade.telemetry());
    let (tracker_tx, mut tracker_rx) = tokio::sync::mpsc::channel::<Infallible>(1);
    tokio::pin!(shutdown);
    let mut drain_until: Option<tokio::time::Instant> = None;

    loop {
        let drain_over = async {
            match drain_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            how = &mut shutdown, if drain_until.is_none() => {
                drain_until = Some(start_draining(&facade, &phase_tx, drain_delay, how.into()));
                continue;
            }
            () = drain_over => break,
        };
        let drain_over = async {
            match drain_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            how = &mut shutdown, if drain_until.is_none() => {
                drain_until = Some(start_draining(&facade, &phase_tx, drain_delay, how.into()));
                continue;
            }
            () = drain_over => break,
        };
        let _ = stream.set_nodelay(true);
        let facade = facade.clone();
        let builder = Arc::clone(&builder);
        let telemetry = Arc::clone(&telemetry);
        let phase = phase_rx.clone();
        let tracker = tracker_tx.clone();
        let tls = tls.clone();
        telemetry.connection_opened();
        let timers = ConnTimers {
            first_request: limits.header_read_timeout,
            idle: limits.client_idle_timeout,
        };
        tokio::spawn(async move {
            let accepted = tokio::time::Instant::now();
            let mut conn = Conn {
                facade,
                builder,
                phase,
                timers,
                telemetry: &telemetry,
                peer,
                tls: None,
            };
            match tls {
                None => conn.run(stream).await,
                Some(tls) => {
                    // The handshake is part of the wait for the first request.
                    let handshake = tls.acceptor().accept(stream);
                    match tokio::time::timeout(timers.first_request, handshake).await {
                        Ok(Ok(stream)) => {
                            conn.timers.first_request =
                                timers.first_request.saturating_sub(accepted.elapsed());
                            conn.tls = Some(tls);
                            conn.run(stream).await;
                        }
                        Ok(Err(e)) => {
                            telemetry.record_tls_failure();
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            telemetry.record_tls_failure();
                            telemetry.record_header_timeout();
                            tracing::debug!(%peer, "no TLS handshake in time; closing");
                        }
                    }
                }
            }
            telemetry.connection_closed();
            drop(permit);
            drop(tracker);
        });
    }

    drop(listener);
    let _ = phase_tx.send(Phase::Closing);
    drop(tracker_tx);
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down: closing idle connections, letting in-flight requests finish"
    );
    tokio::select! {
        _ = tracker_rx.recv() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over; closing the rest");
            let _ = phase_tx.send(Phase::Cut);
        }
    }
    Ok(())
}

fn start_draining(
    facade: &Facade,
    phase: &watch::Sender<Phase>,
    delay: Duration,
    how: Drain,
) -> tokio::time::Instant {
    let delay = match how {
        Drain::AsConfigured => delay,
        Drain::Now => Duration::ZERO,
        Drain::AtLeast(least) => delay.max(least),
    };
    facade.set_draining();
    let _ = phase.send(Phase::Draining);
    tracing::info!(
        drain_secs = delay.as_secs_f64(),
        "draining: answers close their connections; still accepting"
    );
    tokio::time::Instant::now() + delay
}

/// One accepted connection, over TCP or TLS, before its protocol is known.
struct Conn<'a> {
    facade: Facade,
    builder: Arc<auto::Builder<TokioExecutor>>,
    phase: watch::Receiver<Phase>,
    timers: ConnTimers,
    telemetry: &'a crate::telemetry::Telemetry,
    peer: SocketAddr,
    tls: Option<Arc<Tls>>,
}

impl Conn<'_> {
    /// Serves HTTP/1.1 or HTTP/2 on `io` until the connection ends.
    async fn run<IO>(self, io: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let framing = Arc::new(Framing::default());
        let mut info = self.facade.conn_info(self.peer, Arc::clone(&framing));
        info.tls = self.tls;
        let info = Arc::new(info);
        let first_deadline = tokio::time::Instant::now() + self.timers.first_request;
        // Our own reader serves what it can; the rest of the connection is hyper's.
        let ctl = Arc::new(h1::Ctl::default());
        let serving = h1::serve(io, self.facade.clone(), Arc::clone(&info), Arc::clone(&ctl));
        let own = h1::OwnConn::new(serving, ctl);
        let phase = self.phase.clone();
        let Some(Some(handoff)) = drive(
            own,
            &info,
            phase,
            first_deadline,
            self.timers,
            self.telemetry,
            self.peer,
        )
        .await
        else {
            return;
        };
        // The framing guard numbers the heads it reads from here on, from 0.
        info.h1_requests.store(0, Relaxed);
        let io = h1::Rewind::new(handoff.io, handoff.read);
        let service = {
            let facade = self.facade.clone();
            let info = Arc::clone(&info);
            service_fn(move |req| {
                let facade = facade.clone();
                let info = Arc::clone(&info);
                async move {
                    let req = req.map(ClientBody::Hyper);
                    Ok::<_, Infallible>(facade.handle(req, &info).await)
                }
            })
        };
        let io = TokioIo::new(Guarded::new(io, framing));
        let conn = self.builder.serve_connection_with_upgrades(io, service);
        drive(
            conn,
            &info,
            self.phase,
            first_deadline,
            self.timers,
            self.telemetry,
            self.peer,
        )
        .await;
    }
}

#[derive(Debug, Clone, Copy)]
struct ConnTimers {
    /// The first request head must be complete this long after the accept.
    first_request: Duration,
    /// An HTTP/2 connection without a request in flight this long is closed.
    idle: Duration,
}

/// Drives one connection to its end, applying the connection's timers and the listener's
/// shutdown phases; what the connection's future gave, when it ended by itself.
async fn drive<C, T>(
    conn: C,
    info: &ConnInfo,
    mut phase: watch::Receiver<Phase>,
    first_deadline: tokio::time::Instant,
    timers: ConnTimers,
    telemetry: &crate::telemetry::Telemetry,
    peer: SocketAddr,
) -> Option<T>
where
    C: Future<Output = Result<T, Box<dyn std::error::Error + Send + Sync>>> + GracefulConn,
{
    tokio::pin!(conn);
    let first_deadline = tokio::time::sleep_until(first_deadline);
    tokio::pin!(first_deadline);
    let mut waiting_first = true;
    // Idleness is judged per tick: no request in flight and none started since the last one.
    let tick_every = (timers.idle / 4).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    let mut idle_for = Duration::ZERO;
    let mut last_requests = 0;
    let mut asked_to_finish = false;
    let mut finish_when_served = false;
    // A phase already past `Serving` when the connection was accepted (accepted while draining).
    let mut seen = Phase::Serving;
    // The phase watch is polled only when it woke the task (see `gate`).
    let gate = gate::Gate::new();
    loop {
        let now_phase = *phase.borrow_and_update();
        if now_phase != seen {
            seen = now_phase;
            match now_phase {
                Phase::Serving => {}
                Phase::Draining => {
                    // HTTP/1 answers carry `Connection: close`; HTTP/2 gets GOAWAY now.
                    if info.h2.load(Relaxed) && !asked_to_finish {
                        asked_to_finish = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
                Phase::Closing => {
                    if waiting_first && info.requests.load(Relaxed) == 0 {
                        // Accepted but no request yet: its first request may be on its way
                        // (a successor process serves the listener now, and this client
                        // connected just before). It is answered, with `Connection: close`;
                        // the first-request timer bounds the wait.
                        finish_when_served = true;
                    } else if !asked_to_finish {
                        asked_to_finish = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
                Phase::Cut => return None,
            }
        }
        // The tick only serves HTTP/2's idle close and a connection to finish once served: a
        // connection that can need neither does not poll it (twice per request otherwise).
        let ticking = C::MAY_SPEAK_H2 || finish_when_served;
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                return match result {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "client connection ended with an error");
                        None
                    }
                };
            }
            // Once a request came, the first-request deadline has nothing left to end: it is not
            // polled then (it was, on every wake of a young connection: ~120 instructions).
            () = std::future::poll_fn(|cx| {
                if info.requests.load(Relaxed) > 0 {
                    std::task::Poll::Pending
                } else {
                    first_deadline.as_mut().poll(cx)
                }
            }), if waiting_first => {
                waiting_first = false;
                if info.requests.load(Relaxed) == 0 {
                    telemetry.record_header_timeout();
                    tracing::debug!(%peer, "no complete request head in time; closing");
                    return None;
                }
            }
            _ = tick.tick(), if ticking => {
                let requests = info.requests.load(Relaxed);
                if info.active.load(Relaxed) > 0 || requests != last_requests {
                    idle_for = Duration::ZERO;
                    last_requests = requests;
                } else {
                    idle_for += tick_every;
                }
                if finish_when_served && requests > 0 && !asked_to_finish {
                    asked_to_finish = true;
                    conn.as_mut().graceful_shutdown();
                }
                if idle_for >= timers.idle && info.h2.load(Relaxed) && !asked_to_finish {
                    asked_to_finish = true;
                    tracing::debug!(%peer, "HTTP/2 connection idle; closing with GOAWAY");
                    conn.as_mut().graceful_shutdown();
                }
            }
            changed = gate.guard(phase.changed()) => {
                if changed.is_err() {
                    // The listener is gone without a goodbye: finish what is in flight.
                    if !asked_to_finish {
                        conn.as_mut().graceful_shutdown();
                    }
                    return conn.as_mut().await.ok();
                }
            }
        }
    }
}

/// A connection that can be asked to finish (hyper-util's connection futures).
pub(crate) trait GracefulConn {
    /// Whether the connection may come to speak HTTP/2 (whose idle connections the driver
    /// closes on its tick).
    const MAY_SPEAK_H2: bool = true;

    fn graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E> GracefulConn for auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: http_body::Body + Send + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        auto::UpgradeableConnection::graceful_shutdown(self);
    }
}
