//! `strangler demo`: a sample legacy shop and the facade in front of it, in one process, so a
//! newcomer sees the facade work with one command. (The full migration demo — an extracted
//! service, a catalog, traffic — grows here with the demo issue.)

use std::net::SocketAddr;

use crate::config::{self, Overrides, ProcessEnv};
use crate::serve;

/// Flags of `strangler demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address of the sample legacy shop
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub legacy_listen: SocketAddr,
    /// Address of the facade
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the admin listener
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub admin: SocketAddr,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // The legacy shop is bound first: with port 0 only the bound address tells the facade
        // where to find it.
        let legacy =
            serve::bind(args.legacy_listen, "the sample legacy shop", "--legacy-listen").await?;
        let legacy_addr = legacy.local_addr()?;
        let overrides = Overrides {
            legacy: Some(format!("http://{legacy_addr}")),
            listen: Some(args.listen.to_string()),
            admin: Some(args.admin.to_string()),
            workers: None,
        };
        let mut settings = config::load(None, &ProcessEnv, &overrides)?;
        let dir = std::env::temp_dir().join(format!("strangler-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create the demo's data directory {}: {e}", dir.display()))?;
        settings.catalog.url = format!("sqlite://{}", dir.join("catalog.db").display());
        let log = crate::logging::init(&settings).map(|l| l as std::sync::Arc<dyn strangler_dashboard::api::LogControl>);
        let store = serve::open_store(&settings).await?;
        let public = serve::bind(settings.listen, "the facade", "--listen").await?;
        let admin = serve::bind(settings.admin, "the admin listener", "--admin").await?;
        let public_addr = public.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let stop = serve::stop_on_signal();
        let legacy_task = tokio::spawn(strangler_demo::serve_legacy(
            legacy,
            serve::stopped(stop.clone()),
        ));
        println!(
            "\nStrangler demo\n\
             \x20 legacy shop (direct)   http://{legacy_addr}/\n\
             \x20 through the facade     http://{public_addr}/\n\
             \x20 metrics                http://{admin_addr}/metrics\n\n\
             Try:\n\
             \x20 curl -i http://{public_addr}/api/products\n\
             \x20 curl -i http://{public_addr}/login        # the legacy redirect, rewritten to the facade\n\
             \x20 curl -s http://{admin_addr}/metrics | grep strangler_requests_total\n\n\
             Ctrl-C stops everything.\n"
        );
        serve::run_listeners(public, admin, settings, store, log, stop).await?;
        match legacy_task.await {
            Ok(result) => result?,
            Err(e) => tracing::warn!(error = %e, "the sample legacy shop ended abnormally"),
        }
        Ok(())
    })
}
