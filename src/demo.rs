//! `strangler demo`: a whole migration on one machine with one command. A sample legacy shop
//! (SQLite), the `orders` service extracted from it (its own SQLite, its own model, a planted
//! rounding bug unless `--fixed`), the facade with a catalog that describes the migration
//! (`orders` in shadow behind its translator with writes mirrored, `catalog` still legacy, the
//! rest unclaimed), the dashboard, and simulated shoppers, so the dashboard fills within
//! seconds. Ctrl-C stops everything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use strangler_catalog::ChangeMeta;
use strangler_catalog::{
    Catalog, Change, Context, MigrationState, Route, RouteShadow, RouteSpec, Service, ShadowWrites,
};
use strangler_store::CatalogStore;

use crate::config::{self, Overrides, ProcessEnv};
use crate::serve;

/// The orders translator, the same file `strangler translators test` checks.
const ORDERS_TRANSLATOR: &str = include_str!("../translators/orders.toml");

/// Flags of `strangler demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address of the sample legacy shop
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub legacy_listen: SocketAddr,
    /// Address of the extracted orders service
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8001")]
    pub orders_listen: SocketAddr,
    /// Address of the facade
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the admin listener (dashboard and API)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub admin: SocketAddr,
    /// Where the three SQLite databases live (default: a new temporary directory). Run the
    /// demo again with the same directory to continue where it stopped.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Simulated shoppers (0: none)
    #[arg(long, default_value_t = 12)]
    pub users: usize,
    /// Start the orders service without its planted rounding bug
    #[arg(long)]
    pub fixed: bool,
}

/// The demo's catalog: the two services, `orders` in shadow, `catalog` in legacy.
fn demo_catalog(orders_url: &str) -> Catalog {
    let mut c = Catalog::default();
    for (name, url) in [
        ("orders-svc", orders_url),
        // Not built yet: their contexts stay in legacy, so nothing calls them.
        ("catalog-svc", "http://127.0.0.1:9"),
        ("customers-svc", "http://127.0.0.1:9"),
    ] {
        c.services.insert(
            name.into(),
            Service {
                name: name.into(),
                urls: vec![url.into()],
                policy: Default::default(),
            },
        );
    }
    let context = |name: &str, target: &str, state, description: &str, translator| Context {
        cut_over: false,
        owner_move: None,
        name: name.into(),
        target: target.into(),
        state,
        weight: 0,
        sticky: None,
        description: description.into(),
        fallback: true,
        shadow: Default::default(),
        translator,
        objective: Some(strangler_catalog::Objective {
            availability_percent: 99.5,
            p99_ms: 100,
            window_days: 7,
        }),
        rollout: None,
        fallback_after_ms: None,
    };
    let mut orders = context(
        "orders",
        "orders-svc",
        MigrationState::Shadow,
        "Orders, moving to the orders service (snake_case, cents, /v2) behind the orders translator; new orders are mirrored to it.",
        Some(ORDERS_TRANSLATOR.to_owned()),
    );
    // In canary a customer stays on one side, so that the orders it placed there are the
    // ones it reads back.
    orders.sticky = Some(strangler_catalog::StickyKey::Header("x-customer".into()));
    c.contexts.insert("orders".into(), orders);
    c.contexts.insert(
        "catalog".into(),
        context(
            "catalog",
            "catalog-svc",
            MigrationState::Legacy,
            "Products: still served by legacy; their service is not built yet.",
            None,
        ),
    );
    let routes = [
        ("orders", "GET", "/api/orders", None),
        ("orders", "GET", "/api/orders/{id}", None),
        ("orders", "POST", "/api/orders", Some(ShadowWrites::Mirror)),
        ("catalog", "GET", "/api/products", None),
        ("catalog", "GET", "/api/products/{sku}", None),
    ];
    for (context, method, path, writes) in routes {
        // A mirrored create carries legacy's id for the order; the orders service takes it.
        let id = (method == "POST").then(|| strangler_catalog::MirrorId {
            from: "$.orderId".into(),
            to: "$.orderId".into(),
        });
        let spec = RouteSpec {
            methods: vec![method.into()],
            path: path.into(),
            host: None,
            headers: vec![],
            query: vec![],
            version: None,
            reads: false,
            shadow: RouteShadow {
                writes,
                max_body_bytes: None,
                opaque_bodies: false,
                id,
                ids: None,
            },
        };
        let id = spec.id();
        c.routes.insert(
            id.clone(),
            Route {
                id,
                context: context.into(),
                spec,
            },
        );
    }
    c
}

/// A token nobody can guess, for this run.
fn token(prefix: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!(
        "{prefix}-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Makes the data directory and takes its lock; refuses a directory another demo is using.
fn prepare(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the demo's data directory {}; pick a writable one with --data-dir",
            dir.display()
        )
    })?;
    let lock = dir.join("demo.pid");
    if let Ok(text) = std::fs::read_to_string(&lock) {
        let pid = text.trim();
        if !pid.is_empty()
            && Path::new("/proc").join(pid).exists()
            && pid != std::process::id().to_string()
        {
            anyhow::bail!(
                "another demo (pid {pid}) is using {}; stop it (Ctrl-C in its terminal), or give this one its own --data-dir",
                dir.display()
            );
        }
    }
    std::fs::write(&lock, std::process::id().to_string()).with_context(|| {
        format!(
            "cannot write in the demo's data directory {}; pick a writable one with --data-dir",
            dir.display()
        )
    })?;
    Ok(lock)
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("strangler-demo-{}", std::process::id()))
    });
    let lock = prepare(&dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(demo(args, &dir));
    let _ = std::fs::remove_file(&lock);
    result
}

async fn demo(args: DemoArgs, dir: &Path) -> anyhow::Result<()> {
    // Every listener is bound first: a taken port is reported before anything starts.
    let legacy = serve::bind(
        args.legacy_listen,
        "the sample legacy shop",
        "--legacy-listen",
    )
    .await?;
    let orders = serve::bind(args.orders_listen, "the orders service", "--orders-listen").await?;
    let legacy_addr = legacy.local_addr()?;
    let orders_addr = orders.local_addr()?;
    let overrides = Overrides {
        legacy: Some(format!("http://{legacy_addr}")),
        listen: Some(args.listen.to_string()),
        admin: Some(args.admin.to_string()),
        workers: None,
    };
    let mut settings = config::load(None, &ProcessEnv, &overrides)?;
    let public = serve::bind(settings.listen, "the facade", "--listen").await?;
    let admin = serve::bind(settings.admin, "the admin listener", "--admin").await?;
    let public_addr = public.local_addr()?;
    let admin_addr = admin.local_addr()?;
    settings.catalog.url = format!("sqlite://{}", dir.join("catalog.db").display());
    // The mirror's log lives with the demo's data, so that a run on the same directory ships
    // what the last one left.
    settings.facade.shadow.wal_dir = dir.join("catalog.db.mirror-wal");
    let operator = match settings.auth.operator_token.clone() {
        Some(t) => t,
        None => token("operator")?,
    };
    let viewer = match settings.auth.viewer_token.clone() {
        Some(t) => t,
        None => token("viewer")?,
    };
    settings.auth.operator_token = Some(operator.clone());
    settings.auth.viewer_token = Some(viewer.clone());
    // A shorter poll: the dashboard moves within a second of a change.
    settings.catalog.poll_interval = Duration::from_secs(1);
    // One process: a cutover settles within two polls.
    settings.catalog.owner_fence = Duration::from_secs(2);

    let open = |name: &'static str| {
        let path = dir.join(name);
        async move {
            strangler_demo::open_db(&path).await.with_context(|| {
                format!("cannot open {}; pick a writable --data-dir", path.display())
            })
        }
    };
    let shop_db = open("shop.db").await?;
    let orders_db = open("orders.db").await?;
    let log =
        crate::logging::init(&settings).map(|l| l as Arc<dyn strangler_dashboard::api::LogControl>);
    let store = serve::open_store(&settings).await?;
    let fresh = store.version().await? == 0;
    if fresh {
        let meta = ChangeMeta {
            force: false,
            actor: "strangler demo".into(),
            reason: "the demo's starting point: orders in shadow, catalog in legacy".into(),
        };
        store
            .apply(
                &Change::Replace(Box::new(demo_catalog(&format!("http://{orders_addr}")))),
                0,
                &meta,
            )
            .await
            .context("cannot write the demo's catalog")?;
    } else {
        // Continued: the orders service may listen elsewhere this time.
        let catalog = store.load().await?;
        let url = format!("http://{orders_addr}");
        if let Some(svc) = catalog
            .services
            .get("orders-svc")
            .filter(|s| s.urls != [url.clone()])
        {
            let mut svc = svc.clone();
            svc.urls = vec![url];
            let meta = ChangeMeta {
                force: false,
                actor: "strangler demo".into(),
                reason: "the demo's orders service listens at a new address".into(),
            };
            store
                .apply(&Change::PutService(svc), catalog.version, &meta)
                .await
                .context("cannot point the catalog at the orders service")?;
        }
    }

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    serve::stop_on_signal(stop_tx);
    let legacy_task = tokio::spawn(strangler_demo::serve_legacy(
        legacy,
        shop_db,
        serve::stopped(stop.clone()),
    ));
    let orders_task = tokio::spawn(strangler_demo::serve_orders(
        orders,
        orders_db,
        args.fixed,
        serve::stopped(stop.clone()),
    ));
    let counts = Arc::new(strangler_demo::traffic::Counts::default());
    let shoppers = tokio::spawn(strangler_demo::traffic::run(
        public_addr,
        args.users,
        Duration::from_millis(400),
        Arc::clone(&counts),
        serve::stopped(stop.clone()),
    ));
    // What the banner says of `orders`: as the catalog has it now (a continued run may find it
    // promoted, cut over or rolled back).
    let standing = match store.load().await?.contexts.get("orders") {
        None => "`orders` is no longer in the catalog (deleted in an earlier run).".to_owned(),
        Some(c) => {
            let owner = c.owner().as_str();
            match c.state {
                MigrationState::Legacy => "`orders` is in legacy: legacy answers everything; promote it to compare.".to_owned(),
                MigrationState::Shadow => "`orders` is in shadow: legacy answers, the orders service gets a translated copy\nand its answers are compared.".to_owned(),
                MigrationState::Canary => format!(
                    "`orders` is in canary: the orders service answers {:.2} % of shoppers; {owner} owns the writes.",
                    f64::from(c.weight) / 100.0
                ),
                MigrationState::Migrated | MigrationState::Retired => format!(
                    "`orders` is {}: the orders service answers every shopper; {owner} owns the writes.",
                    c.state.as_str()
                ),
            }
        }
    };
    let bug = if args.fixed {
        "without the planted bug (--fixed): the match rate climbs to 100 %"
    } else {
        "with a planted rounding bug on discounted totals (restart with --fixed to remove it)"
    };
    println!(
        "\nStrangler demo — a legacy shop being strangled, {shoppers} simulated shoppers\n\n\
         \x20 dashboard              http://{admin_addr}/\n\
         \x20   operator token       {operator}\n\
         \x20   viewer token         {viewer}\n\
         \x20 the shop, through the facade   http://{public_addr}/\n\
         \x20 the legacy shop (direct)       http://{legacy_addr}/\n\
         \x20 the orders service (direct)    http://{orders_addr}/v2/orders\n\
         \x20 data                   {data}{again}\n\n\
         {standing} The service runs {bug}.\n\n\
         Try next:\n\
         \x20 1. Open the dashboard, sign in with the operator token, open `orders`: the match\n\
         \x20    rate and the top mismatch signature `value $.total` fill within seconds.\n\
         \x20 2. curl -s http://{public_addr}/api/orders/1001        (the legacy contract)\n\
         \x20    curl -s http://{orders_addr}/v2/orders/1001        (the service's own model)\n\
         \x20 3. Fix the bug: Ctrl-C, then run the demo again with --fixed --data-dir {data}\n\
         \x20    and watch the match rate climb to 100 %; then promote `orders` to canary.\n\
         \x20    New orders still go to legacy and reach the service with legacy's numbers;\n\
         \x20    `strangler reconcile --context orders --legacy http://{legacy_addr}\n\
         \x20    --path /api/orders/1001` (STRANGLER_CATALOG_URL=sqlite://{data}/catalog.db)\n\
         \x20    reads an order from both sides. *Cut over* hands the writes to the service;\n\
         \x20    *Roll back* then waits until legacy has every order the service took.\n\
         \x20 4. Pick the next extraction from Unclaimed routes (the README's walkthrough\n\
         \x20    tells the whole story).\n\n\
         Ctrl-C stops everything.\n",
        shoppers = args.users,
        data = dir.display(),
        again = if fresh { "" } else { " (continued)" },
    );
    let served = serve::run_listeners(public, admin, settings, store, log, stop).await;
    // The facade has drained (or failed to start): the shoppers go, and the two apps get a
    // few seconds to finish what they are answering.
    shoppers.abort();
    for (name, mut task) in [
        ("the legacy shop", legacy_task),
        ("the orders service", orders_task),
    ] {
        let wait = if served.is_ok() { 5 } else { 0 };
        match tokio::time::timeout(Duration::from_secs(wait), &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "{name} stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "{name} ended abnormally"),
            Err(_) => task.abort(),
        }
    }
    served
}
