//! `strangler serve`: the facade on the public listener, health and metrics on the admin one,
//! both stopped together on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use strangler_dashboard::AdminState;
use strangler_facade::Facade;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{LogFormat, Settings};

/// Builds the runtime and serves until a signal arrives.
pub fn run(settings: Settings) -> anyhow::Result<()> {
    init_logging(&settings);
    runtime(&settings)?.block_on(serve(settings))
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

pub fn init_logging(settings: &Settings) {
    let mut filter = settings.log.level.clone();
    if settings.facade.access_log {
        filter.push_str(",strangler::access=info");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match settings.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Binds both listeners and serves until SIGTERM/SIGINT.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let public = bind(settings.listen, "the facade", "--listen").await?;
    let admin = bind(settings.admin, "the admin listener", "--admin").await?;
    run_listeners(public, admin, settings, stop_on_signal()).await
}

/// Binds `addr`, or says which flag picks another.
pub async fn bind(addr: SocketAddr, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for {what}; pick another address with {flag}")
    })
}

/// A stop signal that turns true on SIGTERM or SIGINT.
pub fn stop_on_signal() -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// Serves the facade and the admin listener on bound sockets until `stop` turns true.
pub async fn run_listeners(
    public: TcpListener,
    admin: TcpListener,
    settings: Settings,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let facade = Facade::new(settings.facade.clone()).map_err(anyhow::Error::msg)?;
    let draining = Arc::new(AtomicBool::new(false));
    let telemetry = Arc::clone(facade.telemetry());
    let state = AdminState {
        metrics: Arc::new(move |out: &mut String| telemetry.render(out)),
        readiness: {
            let draining = Arc::clone(&draining);
            Arc::new(move || {
                if draining.load(Ordering::Relaxed) {
                    Err("shutting down: draining in-flight requests".to_owned())
                } else {
                    Ok(())
                }
            })
        },
    };
    tracing::info!(
        listen = %public.local_addr()?,
        admin = %admin.local_addr()?,
        legacy = %settings.facade.legacy.origin.to_prefix(),
        "strangler is serving"
    );
    let admin_task = tokio::spawn(strangler_dashboard::serve(
        admin,
        state,
        stopped(stop.clone()),
    ));
    let draining_flag = Arc::clone(&draining);
    let stop_facade = async move {
        stopped(stop).await;
        draining_flag.store(true, Ordering::Relaxed);
    };
    strangler_facade::serve(public, facade, stop_facade)
        .await
        .context("the facade listener failed")?;
    match admin_task.await {
        Ok(result) => result.context("the admin listener failed")?,
        Err(e) => tracing::warn!(error = %e, "the admin listener task ended abnormally"),
    }
    tracing::info!("stopped");
    Ok(())
}

pub async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone: treat it as a stop.
    let _ = stop.wait_for(|s| *s).await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
