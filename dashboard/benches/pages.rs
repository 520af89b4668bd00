//! How long each dashboard page takes to answer, server side, over a catalog the size the
//! dashboard issue sets as its target: 100 contexts, 10,000 routes, 30 days of per-minute
//! traffic and shadow history (and hourly per-route history) on SQLite.
//!
//! `cargo bench -p strangler-dashboard --bench pages` (or `bench/pages.sh`). The database is
//! built once under `target/bench-pages/` (about a minute and a few GB) and reused; delete it to
//! build it again. Each page is requested 30 times after 3 warm-ups; the median, 90th
//! percentile and worst times are printed, from the request entering the router to the last
//! byte of the body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use strangler_catalog::ChangeMeta;
use strangler_catalog::SizeOnly;
use strangler_catalog::{
    Action, Catalog, Change, Context, MigrationState, Objective, Route, RouteSpec, Service,
};
use strangler_dashboard::api::{ApiState, Tokens};
use strangler_store::prelude::*;
use strangler_store::SqlStore;
use tower::ServiceExt;

const CONTEXTS: usize = 100;
const ROUTES_PER_CONTEXT: usize = 100;
const DAYS: i64 = 30;
const TEMPLATES: i64 = 500;
const OPERATOR: &str = "bench-operator-token-0123";

fn now_minute() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64 / 60)
}

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    for i in 0..CONTEXTS {
        let svc = format!("svc-{i:03}");
        c.services.insert(
            svc.clone(),
            Service {
                name: svc.clone(),
                urls: vec![format!("http://127.0.0.1:{}", 20_000 + i)],
                policy: Default::default(),
            },
        );
        let name = format!("ctx-{i:03}");
        c.contexts.insert(
            name.clone(),
            Context {
                cut_over: false,
                owner_move: None,
                name: name.clone(),
                target: svc,
                state: MigrationState::Legacy,
                weight: 0,
                sticky: None,
                description: format!("bounded context number {i}"),
                fallback: true,
                shadow: Default::default(),
                translator: None,
                objective: Some(Objective {
                    availability_percent: 99.9,
                    p99_ms: 200,
                    window_days: 30,
                }),
                rollout: None,
                fallback_after_ms: None,
            },
        );
        for j in 0..ROUTES_PER_CONTEXT {
            let spec = RouteSpec {
                methods: vec!["GET".into()],
                path: format!("/c{i}/r{j}/{{id}}"),
                host: None,
                headers: vec![],
                query: vec![],
                version: None,
                reads: false,
                shadow: Default::default(),
            };
            let id = spec.id();
            c.routes.insert(
                id.clone(),
                Route {
                    id,
                    context: name.clone(),
                    spec,
                },
            );
        }
    }
    c
}

async fn seed(url: &str, store: &SqlStore) -> anyhow_free::Result<()> {
    let meta = ChangeMeta {
        force: false,
        actor: "bench".into(),
        reason: "seed".into(),
    };
    let v = store.version().await?;
    store
        .apply(&Change::Replace(Box::new(catalog())), v, &meta)
        .await?;
    // Move contexts along so that the ledger has history and every state is present.
    for i in 0..CONTEXTS {
        for _ in 0..(i % 5) {
            let v = store.version().await?;
            store
                .apply(
                    &Change::Transition {
                        context: format!("ctx-{i:03}"),
                        action: Action::Promote,
                    },
                    v,
                    &meta,
                )
                .await?;
        }
    }
    let first = now_minute() - DAYS * 1440;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await?;
    let buckets = (0..14)
        .map(|i| format!("b{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let values = "7, 3, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0";
    let statements = [
        // 30 days × 1,440 minutes × 100 contexts × 2 sides.
        format!(
            "WITH RECURSIVE m(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM m WHERE x < {first} + {DAYS} * 1440), \
             c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {CONTEXTS} - 1), \
             s(side) AS (SELECT 'legacy' UNION ALL SELECT 'new') \
             INSERT INTO traffic_minutes (minute, context, side, requests, errors, latency_us, fallbacks, {buckets}) \
             SELECT x, printf('ctx-%03d', i), side, 14, 0, 28000, 0, {values} FROM m, c, s"
        ),
        format!(
            "INSERT INTO traffic_hours (minute, context, side, requests, errors, latency_us, fallbacks, {buckets}) \
             SELECT (minute / 60) * 60, context, side, SUM(requests), SUM(errors), SUM(latency_us), 0, \
             {} FROM traffic_minutes GROUP BY (minute / 60) * 60, context, side",
            (0..14).map(|i| format!("SUM(b{i})")).collect::<Vec<_>>().join(", ")
        ),
        format!(
            "WITH RECURSIVE m(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM m WHERE x < {first} + {DAYS} * 1440), \
             c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {CONTEXTS} - 1) \
             INSERT INTO shadow_minutes (minute, context, compared, matched, legacy_us, new_us, learned) \
             SELECT x, printf('ctx-%03d', i), 10, 9, 20000, 25000, 0 FROM m, c"
        ),
        format!(
            "WITH RECURSIVE m(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM m WHERE x < {first} + {DAYS} * 1440), \
             c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {CONTEXTS} - 1) \
             INSERT INTO shadow_signatures (minute, context, route, signature, count) \
             SELECT x, printf('ctx-%03d', i), '', 'value $.total', 1 FROM m, c"
        ),
        // Every route every hour, legacy side.
        format!(
            "WITH RECURSIVE h(x) AS (SELECT {first} / 60 * 60 UNION ALL SELECT x + 60 FROM h WHERE x < {first} + {DAYS} * 1440) \
             INSERT INTO path_traffic (context, minute, path, side, requests, errors, latency_us) \
             SELECT r.context, x, r.id, 'legacy', 840, 1, 1680000 FROM h, routes AS r"
        ),
        format!(
            "INSERT INTO path_last_seen (context, path, side, minute) \
             SELECT context, id, 'legacy', {} FROM routes",
            now_minute() - 5
        ),
        // Unclaimed templates every hour.
        format!(
            "WITH RECURSIVE h(x) AS (SELECT {first} / 60 * 60 UNION ALL SELECT x + 60 FROM h WHERE x < {first} + {DAYS} * 1440), \
             t(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM t WHERE i < {TEMPLATES} - 1) \
             INSERT INTO path_traffic (context, minute, path, side, requests, errors, latency_us) \
             SELECT '', x, printf('GET /legacy/area%d/{{id}}', i), 'legacy', 60 + i, i % 3, 120000 FROM h, t"
        ),
    ];
    for sql in statements {
        let started = Instant::now();
        let done = sqlx::query(&sql).execute(&pool).await?;
        eprintln!(
            "  {} rows in {:.1} s",
            done.rows_affected(),
            started.elapsed().as_secs_f64()
        );
    }
    sqlx::query("ANALYZE").execute(&pool).await?;
    Ok(())
}

/// Errors of any kind, printed (a benchmark, not a library).
mod anyhow_free {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
}

#[tokio::main]
async fn main() -> anyhow_free::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-pages");
    std::fs::create_dir_all(&dir)?;
    let done = dir.join("seeded");
    let url = format!("sqlite://{}", dir.join("catalog.db").display());
    if !done.exists() {
        let _ = std::fs::remove_file(dir.join("catalog.db"));
        eprintln!("building the database (once): {url}");
        let store = SqlStore::connect(&url, Arc::new(SizeOnly)).await?;
        seed(&url, &store).await?;
        std::fs::write(&done, b"")?;
    }
    let store = Arc::new(SqlStore::connect(&url, Arc::new(SizeOnly)).await?);
    let catalog = store.load().await?;
    eprintln!(
        "{} contexts, {} routes; history from {} days ago",
        catalog.contexts.len(),
        catalog.routes.len(),
        DAYS
    );
    // What each page's reads cost on their own.
    let now = now_minute();
    let first_hour = (now / 60 - 23) * 60;
    let mut reads: Vec<(&str, Duration)> = Vec::new();
    macro_rules! time {
        ($name:expr, $call:expr) => {{
            let mut times = Vec::new();
            for _ in 0..11 {
                let started = Instant::now();
                let _ = $call.await?;
                times.push(started.elapsed());
            }
            times.sort();
            reads.push(($name, times[5]));
        }};
    }
    time!("load (the whole catalog)", store.load());
    time!("traffic_totals 1 h", store.traffic_totals(now - 59));
    time!(
        "traffic_series 7 d per hour",
        store.traffic_series(first_hour - 144 * 60, 60)
    );
    time!("shadow_totals 1 h", store.shadow_totals(now - 59));
    time!("last_changes", store.last_changes("context:"));
    time!(
        "traffic (context, 1 h)",
        store.traffic(Some("ctx-042"), now - 59)
    );
    time!(
        "traffic_hourly (context, 24 h)",
        store.traffic_hourly("ctx-042", first_hour)
    );
    time!("shadow (context, 1 h)", store.shadow("ctx-042", now - 59));
    time!(
        "shadow_series (context, 24 h)",
        store.shadow_series("ctx-042", first_hour, 60)
    );
    time!(
        "traffic_sum (context, 30 d)",
        store.traffic_sum(Some("ctx-042"), now - 43_199)
    );
    time!(
        "path_traffic (context, 24 h)",
        store.path_traffic("ctx-042", first_hour)
    );
    time!(
        "path_traffic (unclaimed, 1 d)",
        store.path_traffic("", now - 1439)
    );
    time!(
        "path_traffic (unclaimed, 1 w)",
        store.path_traffic("", now - 10_079)
    );
    time!("audit_of context:", store.audit_of("context:", 10_000));
    let retired: Vec<String> = catalog
        .contexts
        .values()
        .filter(|c| c.state == MigrationState::Retired)
        .map(|c| c.name.clone())
        .collect();
    time!(
        "last_seen (retired contexts)",
        store.last_seen("legacy", &retired)
    );
    println!("| read | median |");
    println!("|---|---:|");
    for (name, t) in reads {
        println!("| {name} | {:.2} ms |", t.as_secs_f64() * 1000.0);
    }
    println!();
    let follower =
        strangler_store::follow::follow((*store).clone(), Duration::from_secs(2)).await?;
    let app = strangler_dashboard::pages::router(ApiState {
        store,
        tokens: Tokens {
            operator: Some(OPERATOR.into()),
            viewer: None,
            users: Vec::new(),
        },
        log: None,
        runtime: None,
        quiet_period: Duration::from_secs(30 * 86_400),
        catalog: strangler_dashboard::api::CatalogView::new(follower.catalog),
        autopilot: None,
        applied: None,
    });
    let login = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={OPERATOR}")))?;
    let resp = app.clone().oneshot(login).await?;
    let cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("no session cookie")?
        .to_owned();
    println!("| page | median | p90 | worst | body |");
    println!("|---|---:|---:|---:|---:|");
    for page in [
        "/",
        "/contexts/ctx-042",
        "/unclaimed",
        "/unclaimed?window=week&sort=errors&dir=desc",
        "/ledger",
    ] {
        let mut times = Vec::new();
        let mut size = 0;
        for i in 0..33 {
            let req = Request::get(page)
                .header(header::COOKIE, &cookie)
                .body(Body::empty())?;
            let started = Instant::now();
            let resp = app.clone().oneshot(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            let took = started.elapsed();
            if status != StatusCode::OK {
                return Err(format!("{page}: {status}: {}", String::from_utf8_lossy(&body)).into());
            }
            size = body.len();
            if i >= 3 {
                times.push(took);
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| `{page}` | {:.1} ms | {:.1} ms | {:.1} ms | {} KiB |",
            ms(times[times.len() / 2]),
            ms(times[times.len() * 9 / 10]),
            ms(times[times.len() - 1]),
            size / 1024
        );
    }
    Ok(())
}
