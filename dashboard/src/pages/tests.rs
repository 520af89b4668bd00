//! The pages over a real SQLite catalog: signing in, what a viewer and an operator may do,
//! CSRF, forged cookies, escaping, stale pages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use strangler_catalog::store::SqlStore;
use strangler_catalog::store::{ChangeMeta, Store};
use strangler_catalog::{Change, Context, MigrationState, RouteSpec, Service};
use tower::ServiceExt;

use crate::api::{ApiState, Tokens};

const OPERATOR: &str = "operator-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789ab";
static N: AtomicUsize = AtomicUsize::new(0);

async fn app() -> (Router, Arc<SqlStore>) {
    let dir = std::env::temp_dir().join(format!(
        "strangler_pages_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(
        SqlStore::connect(&format!("sqlite://{}", dir.join("c.db").display()))
            .await
            .unwrap(),
    );
    let meta = ChangeMeta {
        actor: "test".into(),
        reason: "setup".into(),
    };
    let mut v = store.version().await.unwrap();
    for change in [
        Change::PutService(Service {
            name: "orders-svc".into(),
            urls: vec!["http://127.0.0.1:9".into()],
            policy: Default::default(),
        }),
        Change::PutContext(Context {
            name: "orders".into(),
            target: "orders-svc".into(),
            state: MigrationState::Legacy,
            weight: 0,
            sticky: None,
            description: "<script>alert('pwned')</script> the order book".into(),
            fallback: true,
            shadow: Default::default(),
            translator: None,
        }),
        Change::AddRoute {
            context: "orders".into(),
            spec: RouteSpec {
                methods: vec!["GET".into()],
                path: "/orders/{id}".into(),
                host: None,
                headers: vec![],
                query: vec![],
                version: None,
                shadow: Default::default(),
            },
        },
    ] {
        v = store.apply(&change, v, &meta).await.unwrap().version;
    }
    let state = ApiState {
        store: store.clone(),
        tokens: Tokens {
            operator: Some(OPERATOR.into()),
            viewer: Some(VIEWER.into()),
        },
        log: None,
    };
    (super::router(state), store)
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path);
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::empty()).unwrap()
}

fn post(path: &str, cookie: Option<&str>, form: &str) -> Request<Body> {
    let mut r =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::from(form.to_owned())).unwrap()
}

/// Signs in; returns the cookie pair to send back.
async fn sign_in(app: &Router, token: &str) -> String {
    let (status, headers, _) = send(app, post("/login", None, &format!("token={token}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Max-Age=28800", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token and catalog version in a context page's form.
fn form_fields(page: &str) -> (String, String) {
    let field = |name: &str| {
        let at = page.find(&format!("name=\"{name}\" value=\"")).unwrap() + name.len() + 15;
        page[at..at + page[at..].find('"').unwrap()].to_owned()
    };
    (field("csrf"), field("base_version"))
}

#[tokio::test]
async fn pages_need_a_session_and_bad_tokens_and_forged_cookies_get_none() {
    let (app, _) = app().await;
    let (status, headers, _) = send(&app, get("/", None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login");
    let (status, _, page) = send(&app, post("/login", None, "token=wrong-token-0000000")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        page.contains("neither the viewer nor the operator token"),
        "{page}"
    );

    let cookie = sign_in(&app, VIEWER).await;
    let (status, _, page) = send(&app, get("/", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("href=\"/contexts/orders\"") && page.contains("signed in as viewer"),
        "{page}"
    );
    // A viewer's cookie edited to say operator, or with its tag changed, or expired: no session.
    let forged = cookie.replacen("viewer", "operator", 1);
    let mut flipped = cookie.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    let expired = format!("strangler_session=viewer.1.{}", "0".repeat(64));
    for bad in [
        forged,
        flipped,
        expired,
        "strangler_session=garbage".to_owned(),
    ] {
        let (status, headers, _) = send(&app, get("/", Some(&bad))).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{bad}");
        assert_eq!(headers[header::LOCATION], "/login");
    }
}

#[tokio::test]
async fn a_viewer_sees_everything_and_changes_nothing() {
    let (app, store) = app().await;
    let cookie = sign_in(&app, VIEWER).await;
    let (status, _, page) = send(&app, get("/contexts/orders", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("/orders/{id}") && page.contains("changes need the operator token"),
        "{page}"
    );
    assert!(
        !page.contains("name=\"action\""),
        "no action form for a viewer"
    );
    // Refused on the server too, whatever the form says.
    let before = store.version().await.unwrap();
    let (status, _, page) = send(
        &app,
        post(
            "/contexts/orders/actions",
            Some(&cookie),
            &format!("csrf=x&base_version={before}&action=promote&reason=sneaky"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert_eq!(store.version().await.unwrap(), before);
}

#[tokio::test]
async fn an_operator_promotes_with_a_reason_and_the_audit_shows_it() {
    let (app, store) = app().await;
    let cookie = sign_in(&app, OPERATOR).await;
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&cookie))).await;
    assert!(page.contains("Promote to shadow"), "{page}");
    let (csrf, version) = form_fields(&page);
    // Without the CSRF token, or with another session's: refused, nothing changes.
    for bad in ["", "0000"] {
        let (status, _, _) = send(
            &app,
            post(
                "/contexts/orders/actions",
                Some(&cookie),
                &format!("csrf={bad}&base_version={version}&action=promote&reason=go+on"),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    assert_eq!(store.version().await.unwrap().to_string(), version);
    let (status, headers, _) = send(
        &app,
        post(
            "/contexts/orders/actions",
            Some(&cookie),
            &format!("csrf={csrf}&base_version={version}&action=promote&reason=shadow+it+now"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let to = headers[header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(to, "/contexts/orders?done=promoted");
    let (_, _, page) = send(&app, get(&to, Some(&cookie))).await;
    assert!(page.contains("Done: promoted"), "{page}");
    assert!(page.contains("state shadow\">shadow"), "{page}");
    assert!(
        page.contains("shadow it now") && page.contains("operator (dashboard)"),
        "the audit row: {page}"
    );
    let c = store.load().await.unwrap();
    assert_eq!(c.contexts["orders"].state, MigrationState::Shadow);

    // The same (now stale) form again: told what changed, nothing applied.
    let (status, _, page) = send(
        &app,
        post(
            "/contexts/orders/actions",
            Some(&cookie),
            &format!("csrf={csrf}&base_version={version}&action=rollback&reason=oops"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(
        page.contains("changed while you looked") && page.contains("shadow it now"),
        "{page}"
    );
    assert_eq!(
        store.load().await.unwrap().contexts["orders"].state,
        MigrationState::Shadow
    );
}

#[tokio::test]
async fn the_overview_shows_the_share_new_services_answered_with_a_chart() {
    let (app, store) = app().await;
    let cookie = sign_in(&app, VIEWER).await;
    let (_, _, page) = send(&app, get("/", Some(&cookie))).await;
    assert!(page.contains("No traffic recorded yet"), "{page}");
    let minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 60;
    let row = |side: &str, n: i64| strangler_catalog::TrafficMinute {
        minute,
        context: "orders".into(),
        side: side.into(),
        requests: n,
        errors: 0,
        latency_us: n * 1000,
        buckets: vec![n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    store
        .add_traffic(&[row("new", 3), row("legacy", 1)])
        .await
        .unwrap();
    let (_, _, page) = send(&app, get("/", Some(&cookie))).await;
    assert!(page.contains("75.0 %"), "{page}");
    assert_eq!(page.matches("<rect class=\"bar\"").count(), 1, "{page}");
    assert!(
        page.contains("<title>75.0 % of 4 requests</title>"),
        "{page}"
    );

    // The context page charts its own match rate and share per hour.
    store
        .add_shadow(&[strangler_catalog::store::ShadowMinute {
            minute,
            context: "orders".into(),
            compared: 4,
            matched: 2,
            skipped: [("budget_full".to_owned(), 7)].into_iter().collect(),
            ..Default::default()
        }])
        .await
        .unwrap();
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&cookie))).await;
    assert!(
        page.contains("<title>50.0 % of 4 compared</title>"),
        "{page}"
    );
    assert!(
        page.contains("<title>75.0 % of 4 requests</title>"),
        "{page}"
    );
    assert!(page.contains("4 compared</div>"), "{page}");
    assert!(
        page.contains("<code>budget_full</code></td><td class=\"num\">7</td>"),
        "{page}"
    );
}

#[tokio::test]
async fn stored_html_is_escaped_and_unknown_contexts_are_a_clear_page() {
    let (app, _) = app().await;
    let cookie = sign_in(&app, VIEWER).await;
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&cookie))).await;
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("&#60;script&#62;alert") || page.contains("&lt;script&gt;alert"),
        "{page}"
    );
    // The confirmation line takes only the actions' own words.
    let (_, _, page) = send(
        &app,
        get(
            "/contexts/orders?done=your+account+is+locked",
            Some(&cookie),
        ),
    )
    .await;
    assert!(!page.contains("account is locked"), "{page}");
    let (status, _, page) = send(&app, get("/contexts/%3Cb%3Enope", Some(&cookie))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        page.contains("no context named") && !page.contains("<b>nope"),
        "{page}"
    );
}

#[tokio::test]
async fn an_operator_pauses_shadowing_and_decides_on_noise_rules() {
    let (app, store) = app().await;
    let cookie = sign_in(&app, OPERATOR).await;
    let act = |form: String| post("/contexts/orders/actions", Some(&cookie), &form);
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&cookie))).await;
    let (csrf, version) = form_fields(&page);
    let (status, headers, _) = send(
        &app,
        act(format!(
            "csrf={csrf}&base_version={version}&action=pause-shadow&reason=too+much+load"
        )),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/contexts/orders?done=shadowing+paused"
    );
    let c = store.load().await.unwrap();
    assert_eq!(c.contexts["orders"].shadow.sample_percent, Some(0));
    let (_, _, page) = send(
        &app,
        get("/contexts/orders?done=shadowing+paused", Some(&cookie)),
    )
    .await;
    assert!(
        page.contains("Resume shadowing") && page.contains("Done: shadowing paused"),
        "{page}"
    );

    // A proposal learned from legacy: accepted as an ignore rule, through the catalog.
    let minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 60;
    store
        .add_shadow(&[strangler_catalog::store::ShadowMinute {
            minute,
            context: "orders".into(),
            noise: [("$.requestId".to_owned(), 3), ("$.servedBy".to_owned(), 2)]
                .into_iter()
                .collect(),
            ..Default::default()
        }])
        .await
        .unwrap();
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&cookie))).await;
    assert!(page.contains("<option value=\"$.requestId\">"), "{page}");
    let (csrf, version) = form_fields(&page);
    let (status, _, _) = send(
        &app,
        act(format!(
            "csrf={csrf}&base_version={version}&action=accept-noise&path=%24.requestId&reason=differs+per+request"
        )),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let c = store.load().await.unwrap();
    assert_eq!(
        c.contexts["orders"].shadow.ignore,
        vec!["$.requestId".to_owned()]
    );
    // Dismissing another is audited; an unknown one is refused.
    let (status, _, _) = send(
        &app,
        act(format!(
            "csrf={csrf}&base_version={}&action=dismiss-noise&path=%24.servedBy&reason=a+real+difference",
            c.version
        )),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&cookie))).await;
    assert!(
        page.contains("dismiss-noise") && page.contains("a real difference"),
        "{page}"
    );
    assert!(
        page.contains("<td>dismissed</td>") && page.contains("<td>accepted</td>"),
        "{page}"
    );
    let (status, _, _) = send(
        &app,
        act(format!(
            "csrf={csrf}&base_version={}&action=accept-noise&path=%24.nope&reason=why+not",
            c.version
        )),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
