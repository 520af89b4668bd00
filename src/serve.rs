//! `strangler serve`: the facade on the public listener, health and metrics on the admin one,
//! both stopped together on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use strangler_catalog::Catalog;
use strangler_control::{autopilot, events, outbox::StoreOutbox, rollups, service_log};
use strangler_dashboard::api::{ApiState, LogControl, Tokens};
use strangler_dashboard::{AdminState, Readiness};
use strangler_facade::Facade;
use strangler_store::follow::follow;
use strangler_store::SqlStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;
use crate::logging;

/// Builds the runtime and serves until a signal arrives.
pub fn run(settings: Settings) -> anyhow::Result<()> {
    let log = logging::init(&settings);
    runtime(&settings)?.block_on(serve(settings, log.map(|l| l as Arc<dyn LogControl>)))
}

/// The async runtime, with the configured worker threads.
fn runtime(settings: &Settings) -> anyhow::Result<tokio::runtime::Runtime> {
    // One worker: a current-thread runtime does the same work without the multi-thread
    // scheduler's cross-thread bookkeeping.
    let mut runtime = if settings.workers == Some(1) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    runtime.enable_all();
    if let Some(n) = settings.workers.filter(|n| *n > 1) {
        runtime.worker_threads(n);
    }
    runtime.build().context("cannot start the async runtime")
}

/// Opens the catalog store named in the settings.
pub async fn open_store(settings: &Settings) -> anyhow::Result<SqlStore> {
    SqlStore::connect_with(
        &settings.catalog.url,
        Arc::new(crate::translators::Check),
        settings.catalog.pool_size,
    )
    .await
    .map(|s| s.with_owner_fence(settings.catalog.owner_fence))
    .with_context(|| {
        format!(
            "cannot open the catalog store `{}`; check [catalog] url (or STRANGLER_CATALOG_URL)",
            settings.catalog.url
        )
    })
}

/// Binds both listeners, opens the store and serves until SIGTERM/SIGINT.
pub async fn serve(mut settings: Settings, log: Option<Arc<dyn LogControl>>) -> anyhow::Result<()> {
    fit_file_descriptors(&mut settings)?;
    let mut inherited = crate::handoff::Inherited::from_env()?;
    let public = inherited.public(settings.listen).await?;
    let admin = inherited.admin(settings.admin).await?;
    drop(inherited);
    let store = open_store(&settings).await?;
    let (stop_tx, stop) = watch::channel(false);
    stop_on_signal(stop_tx.clone());
    match crate::handoff::Handoff::new(&public, &admin) {
        Ok(handoff) => {
            tokio::spawn(crate::handoff::on_signals(handoff, stop_tx));
        }
        Err(e) => {
            tracing::warn!(error = %e, "reloads and upgrades without a restart are not available")
        }
    }
    run_listeners(public, admin, settings, store, log, stop).await
}

/// Binds `addr`, or says which flag picks another.
///
/// The accept queue holds up to 4,096 connections (the kernel caps it at `somaxconn`): with
/// the default of 128 a burst of new connections, or a connection cap reached, has the
/// kernel drop SYNs and clients wait a second or more for a retransmit.
pub async fn bind(addr: SocketAddr, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(4096)
    };
    listen().with_context(|| {
        format!("cannot listen on {addr} for {what}; pick another address with {flag}")
    })
}

/// File descriptors kept for everything but client connections: the store's pool, upstream
/// connections of shadows and health checks, event sinks, log files.
const FD_RESERVE: u64 = 128;

/// Raises the soft limit on open files to the hard one, and makes the connection caps fit in
/// it with a reserve: each client connection may hold an upstream connection too, and the
/// admin listener has its own cap, so that neither listener can take the descriptors the
/// other (or the store) needs. Caps that do not fit are lowered, and said so.
pub fn fit_file_descriptors(settings: &mut Settings) -> anyhow::Result<()> {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit; connection caps stay as configured");
            return Ok(());
        }
    };
    let admin = settings.admin_limits.max_connections as u64;
    let shadows = settings.facade.shadow.max_in_flight as u64;
    let room = limit.saturating_sub(FD_RESERVE + admin + shadows) / 2;
    if room < 16 {
        anyhow::bail!(
            "the open-file limit is {limit}: too low to serve ({admin} admin connections, {shadows} shadows and a reserve of {FD_RESERVE} leave room for {room} client connections); raise it (ulimit -n, or LimitNOFILE= in a systemd unit) or lower [limits] admin_max_connections and [shadow] max_in_flight"
        );
    }
    let wanted = settings.facade.limits.max_connections as u64;
    if wanted > room {
        tracing::warn!(
            open_file_limit = limit,
            configured = wanted,
            lowered_to = room,
            "[limits] max_connections does not fit in the open-file limit (each client connection may need an upstream one); lowered"
        );
        settings.facade.limits.max_connections = usize::try_from(room).unwrap_or(usize::MAX);
    }
    Ok(())
}

/// Which signal stopped the process: SIGINT (a person's Ctrl-C) stops at once, SIGTERM (an
/// orchestrator) drains first.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Turns `stop` true on SIGTERM or SIGINT.
pub fn stop_on_signal(stop: watch::Sender<bool>) {
    tokio::spawn(async move {
        if wait_for_signal().await {
            INTERRUPTED.store(true, Ordering::Relaxed);
        }
        let _ = stop.send(true);
    });
}

/// Serves the facade and the admin listener on bound sockets, following the catalog in
/// `store`, until `stop` turns true.
pub async fn run_listeners(
    public: TcpListener,
    admin: TcpListener,
    settings: Settings,
    store: SqlStore,
    log: Option<Arc<dyn LogControl>>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let facade = Facade::new(settings.facade.clone()).map_err(anyhow::Error::msg)?;
    facade.report_events(service_log::service_log(store.clone()));
    let follower = follow(store.clone(), settings.catalog.poll_interval)
        .await
        .context("cannot read the catalog")?;
    let first = Arc::clone(&follower.catalog.borrow());
    facade.apply_catalog(&first).map_err(|e| {
        anyhow::anyhow!(
            "the catalog (version {}) cannot be served: {e}",
            first.version
        )
    })?;
    // The version the facade serves, for the admin API's "in effect here".
    let (applied_tx, applied) = watch::channel(first.version);
    tokio::spawn(apply_changes(
        facade.clone(),
        follower.catalog.clone(),
        applied_tx,
    ));
    let flush_every = settings
        .catalog
        .poll_interval
        .max(std::time::Duration::from_secs(1));
    tokio::spawn(rollups::flush_every(
        Arc::clone(facade.telemetry()),
        store.clone(),
        flush_every,
    ));
    tokio::spawn(rollups::prune_hourly(
        store.clone(),
        settings.facade.shadow.retention,
    ));
    let wal = strangler_facade::Wal::open(&settings.facade.shadow.wal_dir)?;
    tracing::info!(dir = %wal.dir().display(), unshipped = wal.backlog(), "mirror log open");
    facade.start_outbox(Arc::new(StoreOutbox(store.clone())), wal);
    facade.start_shadow_governor();
    let autopilot = Arc::new(autopilot::Status::default());
    tokio::spawn(events::run(
        store.clone(),
        settings.events.clone(),
        Arc::clone(&autopilot),
        stop.clone(),
    ));
    tokio::spawn(autopilot::run(
        store.clone(),
        follower.catalog.clone(),
        format!("{}:{}", admin.local_addr()?, std::process::id()),
        Arc::clone(&autopilot),
        stop.clone(),
    ));

    let draining = Arc::new(AtomicBool::new(false));
    let for_metrics = facade.clone();
    let for_services = facade.clone();
    let services: Arc<strangler_dashboard::ServicesFn> =
        Arc::new(move || for_services.services_view());
    let state = AdminState {
        jwks: facade.identity_jwks().map(Arc::from),
        metrics: {
            let autopilot = Arc::clone(&autopilot);
            Arc::new(move |out: &mut String| {
                for_metrics.render_metrics(out);
                autopilot.render_metrics(out);
            })
        },
        services: Arc::clone(&services),
        readiness: {
            let draining = Arc::clone(&draining);
            let health = Arc::clone(&follower.health);
            Arc::new(move || {
                if draining.load(Ordering::Relaxed) {
                    Readiness::NotReady("shutting down: draining in-flight requests".to_owned())
                } else if let Some(problem) = health.problem() {
                    Readiness::Degraded(problem)
                } else {
                    Readiness::Ready
                }
            })
        },
    };
    let api = ApiState {
        store: Arc::new(store.clone()),
        tokens: Tokens {
            operator: settings.auth.operator_token.clone(),
            viewer: settings.auth.viewer_token.clone(),
            users: settings.auth.users.clone(),
        },
        log,
        runtime: Some(services),
        quiet_period: settings.quiet_period,
        catalog: strangler_dashboard::api::CatalogView::new(follower.catalog.clone()),
        autopilot: Some(Arc::new(move || autopilot.view())),
        applied: Some(applied),
    };
    // TLS at the edge, its certificates read again when their files change.
    let tls = match &settings.tls {
        Some(config) => {
            let tls = strangler_facade::tls::Tls::new(config).map_err(anyhow::Error::msg)?;
            tokio::spawn(std::sync::Arc::clone(&tls).watch());
            Some(tls)
        }
        None => None,
    };
    tracing::info!(
        listen = %public.local_addr()?,
        tls = tls.is_some(),
        admin = %admin.local_addr()?,
        legacy = %settings.facade.legacy.origin.to_prefix(),
        catalog = %settings.catalog.url,
        version = first.version,
        pid = std::process::id(),
        "strangler is serving"
    );
    let status = format!(
        "serving on {} (catalog version {})",
        public.local_addr()?,
        first.version
    );
    // A successor tells its predecessor, which tells the service manager.
    if !crate::handoff::tell_predecessor(&status) {
        crate::notify::notify(&format!("READY=1\nSTATUS={status}"));
    }
    // The admin listener outlives the facade's drain, answering "not ready" on /readyz, so
    // that a balancer sees the replica leave before its connections are closed — unless a
    // successor took the listeners over: it answers on the same admin socket.
    let (admin_stop_tx, mut admin_stop) = watch::channel(false);
    let admin_task = tokio::spawn(strangler_dashboard::serve_with(
        admin,
        state,
        Some(api),
        settings.admin_limits.clone(),
        async move {
            let _ = admin_stop.wait_for(|s| *s).await;
        },
    ));
    let draining_flag = Arc::clone(&draining);
    let admin_stop_early = admin_stop_tx.clone();
    let stop_facade = async move {
        stopped(stop).await;
        draining_flag.store(true, Ordering::Relaxed);
        if crate::handoff::HANDED_OFF.load(Ordering::Relaxed) {
            let _ = admin_stop_early.send(true);
        } else {
            crate::notify::notify("STOPPING=1\nSTATUS=draining: answering what is in flight");
        }
        if crate::handoff::HANDED_OFF.load(Ordering::Relaxed) {
            strangler_facade::Drain::AtLeast(crate::handoff::HANDOFF_DRAIN)
        } else if INTERRUPTED.load(Ordering::Relaxed) {
            strangler_facade::Drain::Now
        } else {
            strangler_facade::Drain::AsConfigured
        }
    };
    let served = strangler_facade::serve_tls(public, facade.clone(), tls, stop_facade).await;
    let _ = admin_stop_tx.send(true);
    served.context("the facade listener failed")?;
    // What the last interval gathered, and the mirrored writes still queued, go to the store.
    let left = facade.drain_outbox(std::time::Duration::from_secs(2)).await;
    if left > 0 {
        tracing::warn!(
            writes = left,
            "mirrored writes are not in the catalog yet; they are kept in the mirror's log and shipped when strangler next starts on it"
        );
    }
    rollups::flush(facade.telemetry(), &store).await;
    match admin_task.await {
        Ok(result) => result.context("the admin listener failed")?,
        Err(e) => tracing::warn!(error = %e, "the admin listener task ended abnormally"),
    }
    tracing::info!(pid = std::process::id(), "stopped");
    Ok(())
}

/// Compiles each new catalog into the facade. One that does not compile is reported and the
/// previous one keeps serving.
async fn apply_changes(
    facade: Facade,
    mut catalog: watch::Receiver<Arc<Catalog>>,
    applied: watch::Sender<i64>,
) {
    while catalog.changed().await.is_ok() {
        let next = Arc::clone(&catalog.borrow_and_update());
        match facade.apply_catalog(&next) {
            Ok(()) => {
                applied.send_replace(next.version);
            }
            Err(e) => {
                tracing::error!(version = next.version, error = %e, "catalog not applied; the previous one keeps serving")
            }
        }
    }
}

pub async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone: treat it as a stop.
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits for SIGTERM or SIGINT; true for SIGINT.
async fn wait_for_signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {
                        tracing::info!("SIGTERM received");
                        false
                    }
                    _ = tokio::signal::ctrl_c() => {
                        tracing::info!("SIGINT received");
                        true
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
                true
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        true
    }
}
