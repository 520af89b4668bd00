//! The pages over a real SQLite catalog: signing in, what a viewer and an operator may do,
//! CSRF, forged cookies, escaping, stale pages.
//!
//! Size: over 600 lines on purpose: every page's tests share one fixture (a catalog with
//! orders, tokens, users) built once here; each test reads as one visit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use strangler_catalog::ChangeMeta;
use strangler_catalog::{Change, Context, MigrationState, RouteSpec, Service};
use strangler_store::prelude::*;
use strangler_store::SqlStore;
use tower::ServiceExt;

use crate::api::{ApiState, Tokens};

const OPERATOR: &str = "operator-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789ab";
const ALICE: &str = "alice-token-0123456789abcd";
const BOB: &str = "bob-token-0123456789abcdef";
static N: AtomicUsize = AtomicUsize::new(0);

/// Removes a test's catalog directory when the test is done, passed or not.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn app() -> (Router, Arc<SqlStore>, TempDir) {
    app_with(std::time::Duration::from_secs(30 * 86_400)).await
}

async fn app_with(quiet_period: std::time::Duration) -> (Router, Arc<SqlStore>, TempDir) {
    let dir = std::env::temp_dir().join(format!(
        "strangler_pages_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(
        SqlStore::connect(
            &format!("sqlite://{}", dir.join("c.db").display()),
            Arc::new(strangler_catalog::SizeOnly),
        )
        .await
        .unwrap(),
    );
    let meta = ChangeMeta {
        force: false,
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
            cut_over: false,
            owner_move: None,
            name: "orders".into(),
            target: "orders-svc".into(),
            state: MigrationState::Legacy,
            weight: 0,
            sticky: None,
            description: "<script>alert('pwned')</script> the order book".into(),
            fallback: true,
            shadow: Default::default(),
            translator: None,
            objective: None,
            rollout: None,
            fallback_after_ms: None,
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
                reads: false,
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
            users: vec![
                crate::api::User {
                    name: "alice.ops".into(),
                    role: crate::api::Role::Operator,
                    token: ALICE.into(),
                },
                crate::api::User {
                    name: "bob".into(),
                    role: crate::api::Role::Viewer,
                    token: BOB.into(),
                },
            ],
        },
        log: None,
        runtime: None,
        quiet_period,
        catalog: crate::api::CatalogView::new(
            strangler_store::follow::follow(
                (*store).clone(),
                std::time::Duration::from_millis(200),
            )
            .await
            .unwrap()
            .catalog,
        ),
        autopilot: None,
        applied: None,
    };
    (super::router(state), store, TempDir(dir))
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
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn behind_a_tls_proxy_the_session_cookie_is_secure() {
    let (app, _, _dir) = app().await;
    let req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body(Body::from(format!("token={VIEWER}")))
        .unwrap();
    let (status, headers, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.ends_with("; Secure"), "{set}");
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
    let (app, _, _dir) = app().await;
    let (status, headers, _) = send(&app, get("/", None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login");
    let (status, _, page) = send(&app, post("/login", None, "token=wrong-token-0000000")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("none of the configured tokens"), "{page}");

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
    let (app, store, _dir) = app().await;
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
    // Refused on the server too, whatever the form says — even with the viewer's own valid
    // CSRF token (the sign-out form's): the role check refuses it, not the CSRF check.
    let csrf = csrf_of(&page);
    let before = store.version().await.unwrap();
    let (status, _, page) = send(
        &app,
        post(
            "/contexts/orders/actions",
            Some(&cookie),
            &format!("csrf={csrf}&base_version={before}&action=promote&reason=sneaky"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("changes need the operator token"), "{page}");
    assert_eq!(store.version().await.unwrap(), before);
}

/// The CSRF token of any form on a page (every signed-in page has the sign-out form).
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// Signing out revokes the session itself: the same cookie, copied before, no longer works
/// (here, or on another replica sharing the catalog).
#[tokio::test]
async fn signing_out_revokes_the_session() {
    let (app, _, _dir) = app().await;
    let cookie = sign_in(&app, VIEWER).await;
    let other = sign_in(&app, VIEWER).await;
    let (_, _, page) = send(&app, get("/", Some(&cookie))).await;
    let csrf = csrf_of(&page);
    let (status, headers, _) = send(
        &app,
        post("/logout", Some(&cookie), &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login");
    let (status, headers, _) = send(&app, get("/", Some(&cookie))).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a signed-out cookie still works"
    );
    assert_eq!(headers[header::LOCATION], "/login");
    // Another session of the same role is not affected.
    let (status, _, _) = send(&app, get("/", Some(&other))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_operator_promotes_with_a_reason_and_the_audit_shows_it() {
    let (app, store, _dir) = app().await;
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

/// A person signed in with their own token is named on the page and in the audit log; a
/// named viewer sees who did what and changes nothing.
#[tokio::test]
async fn named_people_are_recorded_by_name_and_a_viewer_sees_who_did_what() {
    let (app, store, _dir) = app().await;
    let alice = sign_in(&app, ALICE).await;
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&alice))).await;
    assert!(page.contains("signed in as alice.ops (operator)"), "{page}");
    let (csrf, version) = form_fields(&page);
    let (status, _, _) = send(
        &app,
        post(
            "/contexts/orders/actions",
            Some(&alice),
            &format!("csrf={csrf}&base_version={version}&action=promote&reason=alice+moves+it"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let audit = store.audit(&Default::default()).await.unwrap();
    assert_eq!(audit[0].actor, "alice.ops (dashboard)", "{audit:?}");

    let bob = sign_in(&app, BOB).await;
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&bob))).await;
    assert!(page.contains("signed in as bob (viewer)"), "{page}");
    assert!(
        page.contains("alice.ops (dashboard)") && page.contains("alice moves it"),
        "the viewer sees who did what: {page}"
    );
    let version = store.version().await.unwrap();
    let (status, _, _) = send(
        &app,
        post(
            "/contexts/orders/actions",
            Some(&bob),
            &format!("csrf=x&base_version={version}&action=rollback&reason=bob+tries"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        store.load().await.unwrap().contexts["orders"].state,
        MigrationState::Shadow
    );

    // The audit log page, filtered by who and by kind; a viewer reads it.
    let (status, _, page) = send(&app, get("/audit", Some(&bob))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("alice moves it") && page.contains("<td>test</td>"),
        "{page}"
    );
    assert!(
        page.contains("<option value=\"alice.ops (dashboard)\">"),
        "who can be picked: {page}"
    );
    let (_, _, page) = send(
        &app,
        get("/audit?actor=alice.ops+%28dashboard%29", Some(&bob)),
    )
    .await;
    assert!(page.contains("alice moves it"), "{page}");
    assert!(!page.contains("<td>test</td>"), "only alice's rows: {page}");
    let (_, _, page) = send(&app, get("/audit?action=promote&actor=", Some(&bob))).await;
    assert!(page.contains("alice moves it"), "{page}");
    assert!(
        page.contains("<option value=\"promote\" selected>"),
        "{page}"
    );
    let (_, _, page) = send(&app, get("/audit?actor=nobody", Some(&bob))).await;
    assert!(page.contains("No row matches."), "{page}");
}

#[tokio::test]
async fn the_overview_shows_the_share_new_services_answered_with_a_chart() {
    let (app, store, _dir) = app().await;
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
        fallbacks: 0,
    };
    store
        .add_traffic(&[row("new", 3), row("legacy", 1)])
        .await
        .unwrap();
    let (_, _, page) = send(&app, get("/", Some(&cookie))).await;
    assert!(page.contains("75.0 %"), "{page}");
    // Who owns each context's writes is on the overview too.
    assert!(page.contains("<td class=\"owner\">legacy</td>"), "{page}");
    // The table covers the hour unless another window is chosen, and says which.
    assert!(page.contains("Each figure over the last hour;"), "{page}");
    let (_, _, week) = send(&app, get("/?window=7d", Some(&cookie))).await;
    assert!(week.contains("Each figure over the last 7 days;"), "{week}");
    assert!(week.contains("aria-current=\"true\"><strong>7 d"), "{week}");
    assert!(
        week.contains("in the last 7 days matched no context"),
        "{week}"
    );
    assert!(
        week.contains("<td class=\"num\">4</td>"),
        "the requests: {week}"
    );
    // Since each context's last change (made in this minute, so the traffic counts).
    let (_, _, since) = send(&app, get("/?window=change", Some(&cookie))).await;
    assert!(
        since.contains("Each figure since that context&#39;s last change (at most 7 days);")
            || since.contains("Each figure since that context's last change (at most 7 days);"),
        "{since}"
    );
    assert!(
        since.contains("aria-current=\"true\"><strong>since the last change"),
        "{since}"
    );
    assert!(
        since.contains("<td class=\"num\">4</td>"),
        "the requests: {since}"
    );
    assert!(
        since.contains("in the last hour matched no context"),
        "{since}"
    );
    // One bar, drawn twice: across the page for a laptop, a column wide for a phone.
    assert_eq!(page.matches("<rect class=\"bar\"").count(), 2, "{page}");
    assert!(
        page.contains("<div class=\"wide\"><svg class=\"chart\" viewBox=\"0 0 960 180\""),
        "{page}"
    );
    assert!(
        page.contains("<div class=\"narrow\"><svg class=\"chart\" viewBox=\"0 0 380 114\""),
        "{page}"
    );
    assert!(
        page.contains("<title>75.0 % of 4 requests</title>"),
        "{page}"
    );

    // The context page charts its own match rate and share per hour.
    store
        .add_shadow(&[strangler_catalog::ShadowMinute {
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
        page.contains("The facade&#39;s shadow budget was full"),
        "the reason in words: {page}"
    );
    assert!(
        page.contains(
            "<code class=\"muted\">budget_full</code></td><td>raise [shadow] max_in_flight"
        ),
        "{page}"
    );
    assert!(page.contains("</td><td class=\"num\">7</td>"), "{page}");
}

#[tokio::test]
async fn stored_html_is_escaped_and_unknown_contexts_are_a_clear_page() {
    let (app, _, _dir) = app().await;
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
    let (app, store, _dir) = app().await;
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
    let shadow = &c.contexts["orders"].shadow;
    assert!(shadow.paused, "a typed change, not a rewritten share");
    assert_eq!(
        shadow.sample_percent, None,
        "the share is kept for the resume"
    );
    let last = store
        .audit(&strangler_catalog::AuditQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(last[0].action, "pause-shadow");
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
        .add_shadow(&[strangler_catalog::ShadowMinute {
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

fn now_minute() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 60
}

fn path_row(
    context: &str,
    path: &str,
    side: &str,
    requests: i64,
    errors: i64,
) -> strangler_catalog::PathTraffic {
    strangler_catalog::PathTraffic {
        minute: now_minute(),
        context: context.into(),
        path: path.into(),
        side: side.into(),
        requests,
        errors,
        latency_us: requests * 2000,
    }
}

/// Positions of `needles` in `page`, in the order given (panics on a missing one).
fn order_of(page: &str, needles: &[&str]) -> Vec<usize> {
    needles
        .iter()
        .map(|n| page.find(n).unwrap_or_else(|| panic!("{n} not in {page}")))
        .collect()
}

#[tokio::test]
async fn unclaimed_templates_are_sorted_escaped_and_start_a_context() {
    let (app, store, _dir) = app().await;
    store
        .add_path_traffic(&[
            path_row("", "GET /catalog/{id}", "legacy", 10, 1),
            path_row("", "GET /cart", "legacy", 3, 0),
            path_row("", "GET /<script>alert(1)</script>", "legacy", 5, 5),
            path_row("", "(other paths)", "legacy", 1, 0),
            path_row("orders", "r-claimed", "legacy", 99, 0),
        ])
        .await
        .unwrap();
    let viewer = sign_in(&app, VIEWER).await;
    let (status, _, page) = send(&app, get("/unclaimed", Some(&viewer))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("<script>alert(1)"), "{page}");
    // Every page has an icon (no 404 for /favicon.ico in the log).
    assert!(
        page.contains(r#"<link rel="icon" href="data:image/svg+xml,"#),
        "{page}"
    );
    assert!(
        !page.contains("r-claimed"),
        "claimed routes are not unclaimed: {page}"
    );
    // Busiest first by default, with error rate and mean time.
    let at = order_of(
        &page,
        &["GET /catalog/{id}", "&#60;script&#62;alert(1)", "GET /cart"],
    );
    assert!(at[0] < at[1] && at[1] < at[2], "{page}");
    assert!(page.contains("<td class=\"num\">10</td>\n  <td class=\"num\">10.0 %</td>\n  <td class=\"num\">2.0 ms</td>"), "{page}");
    assert!(page.contains("19 requests"), "{page}");
    assert!(
        !page.contains("type=\"checkbox\""),
        "a viewer gets no selection: {page}"
    );
    // Sorted by error rate, then by name.
    let (_, _, page) = send(&app, get("/unclaimed?sort=errors&dir=desc", Some(&viewer))).await;
    let at = order_of(
        &page,
        &["&#60;script&#62;alert(1)", "GET /catalog/{id}", "GET /cart"],
    );
    assert!(at[0] < at[1] && at[1] < at[2], "{page}");
    assert!(page.contains("aria-sort=\"descending\"><a href=\"/unclaimed?window=day&#38;sort=errors&#38;dir=asc\""), "{page}");
    let (_, _, page) = send(&app, get("/unclaimed?sort=template&dir=asc", Some(&viewer))).await;
    let at = order_of(
        &page,
        &[
            "(other paths)",
            "GET /&#60;script",
            "GET /cart",
            "GET /catalog/{id}",
        ],
    );
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{page}");

    // A viewer cannot start a context, not even with a hand-made form carrying its own valid
    // CSRF token: the role check refuses it.
    let form = format!("csrf={}&base_version=1&name=catalog&target=orders-svc&reason=next+one&template=GET+%2Fcatalog%2F%7Bid%7D", csrf_of(&page));
    let (status, _, refused) = send(&app, post("/unclaimed/claim", Some(&viewer), &form)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        refused.contains("changes need the operator token"),
        "{refused}"
    );

    let operator = sign_in(&app, OPERATOR).await;
    let (_, _, page) = send(&app, get("/unclaimed", Some(&operator))).await;
    assert_eq!(
        page.matches("type=\"checkbox\"").count(),
        3,
        "not the overflow bucket: {page}"
    );
    assert!(page.contains("<option value=\"orders-svc\">"), "{page}");
    // The browser checks a name as the catalog does (a pattern valid with the `v` flag: the
    // `-` escaped).
    assert!(
        page.contains(r#"pattern="[a-z][a-z0-9\-]{0,62}""#),
        "{page}"
    );
    let (csrf, version) = form_fields(&page);
    let claim = |csrf: &str, version: &str, templates: &str| {
        format!("csrf={csrf}&base_version={version}&name=catalog&target=orders-svc&reason=biggest+unclaimed{templates}")
    };
    let (status, _, _) = send(
        &app,
        post(
            "/unclaimed/claim",
            Some(&operator),
            &claim("forged", &version, "&template=GET+%2Fcart"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a wrong CSRF token");
    let (status, _, page) = send(
        &app,
        post(
            "/unclaimed/claim",
            Some(&operator),
            &claim(&csrf, &version, ""),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    let (status, _, page) = send(
        &app,
        post(
            "/unclaimed/claim",
            Some(&operator),
            &claim(&csrf, &version, "&template=%28other+paths%29"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    let both = "&template=GET+%2Fcatalog%2F%7Bid%7D&template=HEAD+%2Fcatalog%2F%7Bid%7D&template=GET+%2Fcart";
    let (status, headers, _) = send(
        &app,
        post(
            "/unclaimed/claim",
            Some(&operator),
            &claim(&csrf, &version, both),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/unclaimed?done=context+catalog+started"
    );
    let catalog = store.load().await.unwrap();
    assert_eq!(catalog.contexts["catalog"].state, MigrationState::Legacy);
    let mut routes: Vec<(Vec<String>, String)> = catalog
        .routes_of("catalog")
        .map(|r| (r.spec.methods.clone(), r.spec.path.clone()))
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            (vec!["GET".to_owned()], "/cart".to_owned()),
            (
                vec!["GET".to_owned(), "HEAD".to_owned()],
                "/catalog/{id}".to_owned()
            )
        ]
    );
    let audit = store
        .audit(&strangler_catalog::AuditQuery {
            target: Some("context:catalog".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (
            audit.len(),
            audit[0].action.as_str(),
            audit[0].reason.as_str()
        ),
        (1, "carve", "biggest unclaimed")
    );
    // The same form again is stale: nothing is applied twice.
    let (status, _, page) = send(
        &app,
        post(
            "/unclaimed/claim",
            Some(&operator),
            &claim(&csrf, &version, both),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("Nothing was applied"), "{page}");
    // What was claimed leaves the list at once (its rows are history); the rest stays.
    let (_, _, page) = send(&app, get("/unclaimed", Some(&viewer))).await;
    assert!(!page.contains("GET /catalog/{id}"), "{page}");
    assert!(!page.contains("GET /cart<"), "{page}");
    assert!(page.contains("GET /&#60;script"), "{page}");
}

async fn retire_orders(store: &SqlStore) {
    let meta = ChangeMeta {
        force: false,
        actor: "test".into(),
        reason: "moving on".into(),
    };
    for _ in 0..4 {
        let v = store.version().await.unwrap();
        store
            .apply(
                &Change::Transition {
                    context: "orders".into(),
                    action: strangler_catalog::Action::Promote,
                },
                v,
                &meta,
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_ledger_shows_state_history_and_marks_quiet_retired_routes_safe_to_delete() {
    // With the default quiet period, a route retired a moment ago is not safe yet.
    let (app, store, _dir) = app().await;
    let viewer = sign_in(&app, VIEWER).await;
    let (_, _, page) = send(&app, get("/ledger", Some(&viewer))).await;
    assert!(page.contains("still legacy"), "{page}");
    assert!(!page.contains("<script>alert"), "{page}");
    retire_orders(&store).await;
    let route = store
        .load()
        .await
        .unwrap()
        .routes_of("orders")
        .next()
        .unwrap()
        .id
        .clone();
    store
        .add_path_traffic(&[path_row("orders", &route, "legacy", 4, 0)])
        .await
        .unwrap();
    let (status, _, page) = send(&app, get("/ledger", Some(&viewer))).await;
    assert_eq!(status, StatusCode::OK);
    let steps = order_of(
        &page,
        &[
            "<td>legacy</td><td><span class=\"state shadow\">",
            "<td>shadow</td><td><span class=\"state canary\">",
            "<td>canary</td><td><span class=\"state migrated\">",
            "<td>migrated</td><td><span class=\"state retired\">",
        ],
    );
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {page}"
    );
    assert!(page.contains("not yet quiet"), "{page}");
    assert!(page.contains("<td class=\"num\">0 d</td>"), "{page}");
    assert!(
        !page.contains("<strong class=\"good\">safe to delete"),
        "{page}"
    );

    // With no quiet period, the same retired route is safe to delete.
    let (app, store, _dir) = app_with(std::time::Duration::ZERO).await;
    retire_orders(&store).await;
    let viewer = sign_in(&app, VIEWER).await;
    let (_, _, page) = send(&app, get("/ledger", Some(&viewer))).await;
    assert!(
        page.contains("<strong class=\"good\">safe to delete"),
        "{page}"
    );
    assert!(page.contains("1 route(s) safe to delete"), "{page}");
}

#[tokio::test]
async fn the_context_page_shows_route_traffic_budgets_and_marked_differences() {
    let (app, store, _dir) = app().await;
    let mut ctx = store.load().await.unwrap().contexts["orders"].clone();
    ctx.objective = Some(strangler_catalog::Objective {
        availability_percent: 99.0,
        p99_ms: 50,
        window_days: 7,
    });
    let v = store.version().await.unwrap();
    let meta = ChangeMeta {
        force: false,
        actor: "test".into(),
        reason: "objective".into(),
    };
    store
        .apply(&Change::PutContext(ctx), v, &meta)
        .await
        .unwrap();
    let route = store
        .load()
        .await
        .unwrap()
        .routes_of("orders")
        .next()
        .unwrap()
        .id
        .clone();
    store
        .add_path_traffic(&[
            path_row("orders", &route, "new", 6, 0),
            path_row("orders", &route, "legacy", 2, 1),
        ])
        .await
        .unwrap();
    let row =
        |side: &str, requests: i64, errors: i64, slow: i64| strangler_catalog::TrafficMinute {
            minute: now_minute(),
            context: "orders".into(),
            side: side.into(),
            requests,
            errors,
            latency_us: 0,
            // Fast ones under 1 ms, slow ones between 100 and 200 ms.
            buckets: vec![requests - slow, 0, 0, 0, 0, 0, 0, slow, 0, 0, 0, 0, 0, 0],
            fallbacks: if side == "legacy" { 3 } else { 0 },
        };
    // New: 1,000 requests, 5 errors (half the 1 % budget), p99 ≤ 1 ms; legacy: 100 requests,
    // 2 errors (over its budget of 1), p99 ≤ 200 ms (over 50).
    store
        .add_traffic(&[row("new", 1000, 5, 0), row("legacy", 100, 2, 5)])
        .await
        .unwrap();
    // Two mirrored writes wait toward the new service, one given up on; none toward legacy.
    let mirrored = |n: i64| strangler_catalog::OutboxItem {
        origin_key: format!("w{n}"),
        context: "orders".into(),
        route: route.clone(),
        idempotency_key: format!("k{n}"),
        method: "POST".into(),
        uri: "/orders".into(),
        created_ms: strangler_catalog::clock::now_ms() - 2_500,
        ..Default::default()
    };
    let ids = store
        .outbox_put(&[mirrored(1), mirrored(2), mirrored(3)])
        .await
        .unwrap();
    store
        .outbox_retry(ids[0], 0, Some("refused"), true)
        .await
        .unwrap();
    // A reconciliation found one order differing and one missing on the new side.
    store
        .record(
            &ChangeMeta {
                force: false,
                actor: "reconcile".into(),
                reason: "5 resources read from both sides".into(),
            },
            "reconcile",
            "context:orders",
            None,
            Some(serde_json::json!({ "checked": 5, "same": 3, "differ": 1, "missing_on_new": 1 })),
        )
        .await
        .unwrap();
    store
        .add_shadow(&[strangler_catalog::ShadowMinute {
            minute: now_minute(),
            context: "orders".into(),
            compared: 1,
            signatures: vec![strangler_catalog::SignatureCount {
                route: route.clone(),
                signature: "value $.total".into(),
                count: 1,
            }],
            examples: vec![strangler_catalog::ShadowExample {
                signature: "value $.total".into(),
                // Just before this minute: before any change the test makes.
                at_ms: now_minute() * 60_000 - 1,
                method: "GET".into(),
                path: "/orders/1".into(),
                legacy_status: 200,
                new_status: 200,
                legacy_body: r#"{"id":1,"total":"10.00","note":"<b>hi</b>"}"#.into(),
                new_body: r#"{"id":1,"total":"9.99","note":"<b>hi</b>"}"#.into(),
            }],
            ..Default::default()
        }])
        .await
        .unwrap();
    let viewer = sign_in(&app, VIEWER).await;
    let (status, _, page) = send(&app, get("/contexts/orders", Some(&viewer))).await;
    assert_eq!(status, StatusCode::OK);
    // Per-route traffic: 6 new, 2 legacy, 1 error in 8, 2 ms mean.
    assert!(page.contains("<td class=\"num\">6</td><td class=\"num\">2</td><td class=\"num opt\">12.5 %</td><td class=\"num opt\">2.0 ms</td>"), "{page}");
    // The objective, each side against it.
    assert!(
        page.contains("99 % of requests answered below 500, p99 ≤ 50 ms, over 7 days"),
        "{page}"
    );
    assert!(
        page.contains("<td class=\"num good\">50.0 % left</td>"),
        "{page}"
    );
    assert!(
        page.contains("<td class=\"num bad\">exhausted (-100.0 %)</td>"),
        "{page}"
    );
    assert!(page.contains("≤ 200 ms (over)"), "{page}");
    // The outbox both ways.
    assert!(
        page.contains("<div class=\"value\" id=\"outbox\">2 waiting, the oldest 2."),
        "{page}"
    );
    assert!(page.contains("; 1 given up on</div>"), "{page}");
    assert!(page.contains("toward legacy: none waiting"), "{page}");
    assert!(
        page.contains("id=\"reconciled\">5 read: 1 differ, 1 missing on the new service</div>"),
        "{page}"
    );
    // Fallbacks, and the latency and error charts with both sides.
    assert!(
        page.contains("Fallbacks to legacy</div><div class=\"value\">3</div>"),
        "{page}"
    );
    assert!(page.contains("<title>legacy: 200 ms</title>"), "{page}");
    assert!(page.contains("<title>new: 0.5 %</title>"), "{page}");
    // The differing line is marked on both sides; the same lines are not; bodies escaped.
    assert!(
        page.contains("<mark>  &quot;total&quot;: &quot;10.00&quot;</mark>"),
        "{page}"
    );
    assert!(
        page.contains("<mark>  &quot;total&quot;: &quot;9.99&quot;</mark>"),
        "{page}"
    );
    assert!(!page.contains("<mark>  &quot;id&quot;"), "{page}");
    assert!(page.contains("&lt;b&gt;hi&lt;/b&gt;"), "{page}");
    // A long body folds the lines far from the difference.
    let long: Vec<String> = (0..40).map(|i| format!("line {i}")).collect();
    let mut changed = long.clone();
    changed[20] = "line twenty".into();
    let (l, n) = super::context::diff_html(&long.join("\n"), &changed.join("\n"));
    assert!(
        l.contains("<mark>line 20</mark>") && n.contains("<mark>line twenty</mark>"),
        "{n}"
    );
    assert!(
        n.contains("⋯ 17 same lines") && n.contains("⋯ 16 same lines"),
        "{n}"
    );
    assert!(n.contains("line 17\n") && !n.contains("line 16\n"), "{n}");
    assert!(!page.contains("<b>hi</b>"), "{page}");

    // The figures cover the window chosen, named on each; by default since the last change.
    assert!(
        page.contains("Match rate, since the last change, "),
        "{page}"
    );
    assert!(
        page.contains("aria-current=\"true\"><strong>since the last change"),
        "{page}"
    );
    let (_, _, page) = send(&app, get("/contexts/orders?window=5m", Some(&viewer))).await;
    for label in [
        "Match rate, last 5 minutes",
        "Requests, last 5 minutes",
        "Top mismatch signatures (last 5 minutes)",
        "Why requests were not shadowed (last 5 minutes)",
    ] {
        assert!(page.contains(label), "{label}: {page}");
    }
    assert!(
        page.contains("aria-current=\"true\"><strong>5 minutes"),
        "{page}"
    );
    // A change now: the example pair recorded before it is marked and the figures since it
    // start empty.
    let v = store.version().await.unwrap();
    let mut ctx = store.load().await.unwrap().contexts["orders"].clone();
    ctx.description = "after the fix".into();
    store
        .apply(
            &Change::PutContext(ctx),
            v,
            &ChangeMeta {
                force: false,
                actor: "test".into(),
                reason: "a fix".into(),
            },
        )
        .await
        .unwrap();
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&viewer))).await;
    assert!(page.contains("[before the last change]"), "{page}");
    assert!(
        page.contains("Match rate, since the last change, "),
        "{page}"
    );
}

#[tokio::test]
async fn the_context_page_shows_the_autopilot_timeline_and_pauses_it() {
    let (app, store, _dir) = app().await;
    let viewer = sign_in(&app, VIEWER).await;
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&viewer))).await;
    assert!(page.contains("No rollout policy"), "{page}");
    let mut ctx = store.load().await.unwrap().contexts["orders"].clone();
    ctx.state = MigrationState::Shadow;
    ctx.rollout = Some(
        serde_json::from_value(serde_json::json!({
            "shadow_gate": { "min_match_rate": 0.99, "min_comparisons": 500, "window_minutes": 30 }
        }))
        .unwrap(),
    );
    let v = store.version().await.unwrap();
    let meta = |actor: &str, reason: &str| ChangeMeta {
        force: false,
        actor: actor.into(),
        reason: reason.into(),
    };
    let v = store
        .apply(&Change::PutContext(ctx), v, &meta("test", "policy"))
        .await
        .unwrap()
        .version;
    store
        .apply(
            &Change::Autopilot {
                context: "orders".into(),
                action: strangler_catalog::Action::Promote,
            },
            v,
            &meta(
                "autopilot",
                "shadow gate passed: 600 of 600 compared matched <i>",
            ),
        )
        .await
        .unwrap();
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&viewer))).await;
    assert!(
        page.contains("<strong class=\"good\">On</strong>"),
        "{page}"
    );
    assert!(
        page.contains("canary steps 1 % → 5 % → 25 % → 50 % → 100 %"),
        "{page}"
    );
    assert!(
        page.contains("<td>autopilot-promote</td><td>shadow gate passed: 600 of 600 compared matched &#60;i&#62;</td>"),
        "{page}"
    );
    let operator = sign_in(&app, OPERATOR).await;
    let (_, _, page) = send(&app, get("/contexts/orders", Some(&operator))).await;
    assert!(
        page.contains("<option value=\"pause-autopilot\">"),
        "{page}"
    );
    let (csrf, version) = form_fields(&page);
    let form = format!("csrf={csrf}&base_version={version}&action=pause-autopilot&reason=hands+on");
    let (status, headers, _) = send(
        &app,
        post("/contexts/orders/actions", Some(&operator), &form),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/contexts/orders?done=autopilot+paused"
    );
    let c = store.load().await.unwrap();
    assert!(c.contexts["orders"].rollout.as_ref().unwrap().paused);
    let (_, _, page) = send(
        &app,
        get("/contexts/orders?done=autopilot+paused", Some(&operator)),
    )
    .await;
    assert!(
        page.contains("Done: autopilot paused")
            && page.contains("<option value=\"resume-autopilot\">"),
        "{page}"
    );
}

/// An instance's health says what the checks and the failed requests say; an open breaker is
/// said in words, not only as a state name.
#[test]
fn instance_health_and_the_breaker_tell_the_truth() {
    use super::context::{breaker_words, instance_health};
    let health = |v: serde_json::Value| instance_health(&v);
    assert_eq!(
        health(
            serde_json::json!({ "healthy": true, "consecutive_failures": 0, "ejected_for_ms": 0 })
        ),
        ("healthy".to_owned(), true)
    );
    // Refusing connections without active checks: failing, not healthy.
    assert_eq!(
        health(
            serde_json::json!({ "healthy": true, "consecutive_failures": 5, "ejected_for_ms": 0 })
        ),
        ("failing: its last 5 requests failed".to_owned(), false)
    );
    assert_eq!(
        health(serde_json::json!({ "healthy": false, "consecutive_failures": 0 })),
        ("failing its health check".to_owned(), false)
    );
    assert_eq!(
        health(
            serde_json::json!({ "healthy": true, "consecutive_failures": 3, "ejected_for_ms": 2500 })
        ),
        (
            "ejected for 3 s more, after 3 failures in a row".to_owned(),
            false
        )
    );
    assert_eq!(breaker_words(Some("closed")), ("closed".to_owned(), true));
    let (open, fine) = breaker_words(Some("open"));
    assert!(
        !fine && open.starts_with("open — requests are not sent"),
        "{open}"
    );
    assert!(!breaker_words(Some("half-open")).1);
}

/// Every reason the facade counts has words and a fix on the page (the list is the facade's
/// `Skip::as_str`; a new reason without words shows as unknown and fails here once listed).
#[test]
fn every_skip_reason_is_explained() {
    use super::context::skip_words;
    for code in [
        "not_sampled",
        "unsafe_method",
        "budget_full",
        "body_too_large",
        "new_unhealthy",
        "shadow_failed",
        "incomplete",
        "fell_back",
        "outbox_full",
        "not_durable",
        "primary_failed",
        "translation_failed",
        "legacy_failed",
        "unredactable",
        "upgraded",
        "id_unmapped",
    ] {
        let (what, fix) = skip_words(code);
        assert!(!what.contains("does not know") && !fix.is_empty(), "{code}");
    }
    assert!(skip_words("something-new").0.contains("does not know"));
}

/// The empty match-rate chart says why there is nothing, by the context's state.
#[test]
fn no_comparisons_says_why() {
    use super::context::no_comparisons;
    assert!(no_comparisons(MigrationState::Legacy, false).contains("once it is in shadow"));
    let in_shadow = no_comparisons(MigrationState::Shadow, false);
    assert!(!in_shadow.contains("once it is in shadow"), "{in_shadow}");
    assert!(in_shadow.contains("listed below"), "{in_shadow}");
    assert!(no_comparisons(MigrationState::Shadow, true).contains("paused"));
}
