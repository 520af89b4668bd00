//! The dashboard's pages on the admin listener: the overview (how far the strangling has come),
//! a context's page with its actions, and signing in.
//!
//! Signing in with the viewer or the operator token gives a session cookie: the role and an
//! expiry, tagged with HMAC-SHA256 under a key derived from the configured tokens (so every
//! replica with the same tokens accepts it, and changing a token ends every session). The
//! cookie is HttpOnly and SameSite=Strict. Every form carries a CSRF token tied to the session.
//! Actions are refused on the server to viewers, not only hidden. Templates are askama's:
//! checked at compile time, and everything they print is HTML-escaped.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use strangler_catalog::{AuditQuery, ChangeMeta};
use strangler_catalog::{MigrationState, TrafficMinute};
use strangler_store::StoreError;

use crate::actions::{self, ActionError, ContextAction};

use crate::api::{ApiState, Role};

mod inventory;
mod ledger;

/// How long a session lasts.
const SESSION_SECS: i64 = 8 * 3600;
const COOKIE: &str = "strangler_session";

/// The dashboard's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/contexts/{name}", get(context_page))
        .route("/contexts/{name}/actions", post(action))
        .route("/unclaimed", get(inventory::unclaimed_page))
        .route("/unclaimed/claim", post(inventory::claim))
        .route("/ledger", get(ledger::ledger_page))
        .with_state(state)
}

/// The session key: derived from the tokens, so that replicas agree and a new token ends the
/// old sessions.
fn key(s: &ApiState) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"strangler-dashboard-session\0");
    h.update(s.tokens.operator.as_deref().unwrap_or("").as_bytes());
    h.update(b"\0");
    h.update(s.tokens.viewer.as_deref().unwrap_or("").as_bytes());
    h.finalize().into()
}

fn tag(key: &[u8; 32], message: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(message.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn verify(key: &[u8; 32], message: &str, hex_tag: &str) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(message.as_bytes());
    let bytes: Option<Vec<u8>> = (0..hex_tag.len() / 2)
        .map(|i| u8::from_str_radix(hex_tag.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    match bytes {
        Some(b) if hex_tag.len() == 64 => mac.verify_slice(&b).is_ok(),
        _ => false,
    }
}

/// Who is looking: a signed-in role with its cookie value, or the open mode (no token is
/// configured: everyone may look, nobody may change).
struct Viewer {
    role: Role,
    cookie: Option<String>,
}

impl Viewer {
    fn role_name(&self) -> &'static str {
        match self.role {
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    fn csrf(&self, key: &[u8; 32]) -> Option<String> {
        self.cookie.as_ref().map(|c| tag(key, &format!("csrf:{c}")))
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The lease name under which a signed-out session is remembered until it would expire (the
/// catalog's `leases` table: one row per sign-out, shared by every replica).
fn revoked_name(sid: &str) -> String {
    format!("revoked-session:{sid}")
}

/// The session of a request: None when it must sign in (no cookie, a forged or expired one,
/// or one signed out — on any replica).
async fn session(s: &ApiState, headers: &HeaderMap) -> Option<Viewer> {
    if s.tokens.operator.is_none() && s.tokens.viewer.is_none() {
        return Some(Viewer {
            role: Role::Viewer,
            cookie: None,
        });
    }
    let value = cookie_value(headers)?;
    let mut parts = value.splitn(4, '.');
    let (role, expires, sid, sig) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let expires: i64 = expires.parse().ok()?;
    if expires <= crate::now_secs() || !verify(&key(s), &format!("{role}.{expires}.{sid}"), sig) {
        return None;
    }
    // Signed out: refused. The store unreachable: refused too (fail closed).
    match s.store.lease_holder(&revoked_name(sid)).await {
        Ok(None) => {}
        Ok(Some(_)) | Err(_) => return None,
    }
    let role = match role {
        "operator" if s.tokens.operator.is_some() => Role::Operator,
        "viewer" if s.tokens.viewer.is_some() => Role::Viewer,
        _ => return None,
    };
    Some(Viewer {
        role,
        cookie: Some(value.to_owned()),
    })
}

fn html(status: StatusCode, page: Result<String, askama::Error>) -> Response {
    match page {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("the page could not be rendered: {e}"),
        )
            .into_response(),
    }
}

fn see_other(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
        )],
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    role: Option<&'a str>,
    csrf: Option<String>,
    title: &'a str,
    detail: String,
    back: String,
}

fn message(
    status: StatusCode,
    viewer: Option<&Viewer>,
    s: &ApiState,
    title: &str,
    detail: String,
    back: String,
) -> Response {
    let page = MessagePage {
        role: viewer.map(Viewer::role_name),
        csrf: viewer.and_then(|v| v.csrf(&key(s))),
        title,
        detail,
        back,
    };
    html(status, page.render())
}

/// The page refusing a change, unless `viewer` is a signed-in operator and `csrf` is the
/// form's token: the server's check, whatever the page showed.
fn refuse_change(s: &ApiState, viewer: &Viewer, csrf: &str, back: &str) -> Option<Response> {
    let (title, detail) = if viewer.role != Role::Operator || viewer.cookie.is_none() {
        (
            "Not allowed",
            "signed in as a viewer: changes need the operator token",
        )
    } else if viewer.csrf(&key(s)).is_none_or(|t| t != csrf) {
        (
            "Not applied",
            "the form's CSRF token is missing or wrong; reload the page and try again",
        )
    } else {
        return None;
    };
    Some(message(
        StatusCode::FORBIDDEN,
        Some(viewer),
        s,
        title,
        detail.into(),
        back.into(),
    ))
}

fn store_failure(s: &ApiState, viewer: Option<&Viewer>, e: StoreError) -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        viewer,
        s,
        "The catalog cannot be read",
        format!("{e}; the facade keeps serving from its last catalog. Try again shortly."),
        "/".into(),
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    role: Option<&'static str>,
    csrf: Option<String>,
    error: Option<&'static str>,
}

async fn login_page() -> Response {
    html(
        StatusCode::OK,
        LoginPage {
            role: None,
            csrf: None,
            error: None,
        }
        .render(),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let role = match s.tokens.role_of(Some(f.token.trim())) {
        Ok(role) if s.tokens.operator.is_some() || s.tokens.viewer.is_some() => role,
        _ => {
            return html(
                StatusCode::UNAUTHORIZED,
                LoginPage {
                    role: None,
                    csrf: None,
                    error: Some("That token is neither the viewer nor the operator token."),
                }
                .render(),
            )
        }
    };
    let name = match role {
        Role::Operator => "operator",
        Role::Viewer => "viewer",
    };
    let expires = crate::now_secs() + SESSION_SECS;
    // A random id names the session, so that signing out can revoke this one alone.
    let mut sid = [0u8; 16];
    if getrandom::getrandom(&mut sid).is_err() {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            &s,
            "Not signed in",
            "the system's random source failed; try again".into(),
            "/login".into(),
        );
    }
    let sid: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    let value = format!(
        "{name}.{expires}.{sid}.{}",
        tag(&key(&s), &format!("{name}.{expires}.{sid}"))
    );
    // Behind a TLS-terminating proxy the browser spoke HTTPS: the cookie must never travel
    // over plain HTTP then (a forged header only makes the cookie stricter).
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{}",
        if tls { "; Secure" } else { "" }
    );
    let mut resp = see_other("/");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let Some(viewer) = session(&s, &headers).await else {
        return see_other("/login");
    };
    if viewer.csrf(&key(&s)).is_none_or(|t| t != f.csrf) {
        return message(
            StatusCode::FORBIDDEN,
            Some(&viewer),
            &s,
            "Not signed out",
            "the form's CSRF token is missing or wrong; reload the page and try again".into(),
            "/".into(),
        );
    }
    // Revoked for every replica until it would have expired: a copied cookie stops working.
    if let Some(cookie) = &viewer.cookie {
        let mut parts = cookie.split('.');
        let (Some(_), Some(expires), Some(sid)) = (parts.next(), parts.next(), parts.next()) else {
            return see_other("/login");
        };
        let left_ms = expires
            .parse::<i64>()
            .map_or(SESSION_SECS, |e| e - crate::now_secs())
            .max(1)
            * 1000;
        if let Err(e) = s.store.lease(&revoked_name(sid), "revoked", left_ms).await {
            return store_failure(&s, Some(&viewer), e);
        }
    }
    let mut resp = see_other("/login");
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "strangler_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

fn percent(x: Option<f64>) -> String {
    x.map_or("—".to_owned(), |x| format!("{:.1} %", x * 100.0))
}

fn ms(x: Option<u64>) -> String {
    x.map_or("—".to_owned(), |x| format!("≤ {x} ms"))
}

/// A bar chart of ratios (0 to 1) as inline SVG: one bar per bucket, `None` for a bucket with
/// nothing to show. Only numbers the server computed, and the escaped tooltips, go into it.
fn ratio_chart(label: &str, bars: &[(Option<f64>, String)], color: &str, empty: &str) -> String {
    use std::fmt::Write;
    let (w, h, left, top, bottom) = (720.0, 160.0, 40.0, 8.0, 20.0);
    let plot_h = h - top - bottom;
    let bar_w = (w - left) / bars.len().max(1) as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{}">"#,
        escape(label)
    );
    for (pct, y) in [(100, top), (50, top + plot_h / 2.0), (0, top + plot_h)] {
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{w}" y1="{y}" y2="{y}" stroke="#d0d7de"/><text x="{}" y="{}" font-size="10" text-anchor="end" fill="#57606a">{pct} %</text>"##,
            left - 4.0,
            y + 3.0
        );
    }
    let mut drawn = 0;
    for (i, (value, tip)) in bars.iter().enumerate() {
        let Some(v) = value.filter(|v| v.is_finite()) else {
            continue;
        };
        drawn += 1;
        let bh = (v.clamp(0.0, 1.0) * plot_h).max(1.0);
        let _ = write!(
            out,
            r##"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"><title>{}</title></rect>"##,
            left + i as f64 * bar_w + 1.0,
            top + plot_h - bh,
            (bar_w - 2.0).max(1.0),
            escape(tip)
        );
    }
    if drawn == 0 {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" font-size="12" text-anchor="middle" fill="#57606a">{}</text>"##,
            left + (w - left) / 2.0,
            top + plot_h / 2.0,
            escape(empty)
        );
    }
    out.push_str("</svg>");
    out
}

/// Escapes text for HTML (for the SVG the pages build themselves).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A bar chart of two series side by side per bucket (new, legacy) as inline SVG, scaled to
/// the largest value; `fmt` writes a value with its unit for the axis and the tooltips.
fn pair_chart(
    label: &str,
    bars: &[(Option<f64>, Option<f64>)],
    fmt: &dyn Fn(f64) -> String,
    empty: &str,
) -> String {
    use std::fmt::Write;
    let (w, h, left, top, bottom) = (720.0, 160.0, 56.0, 8.0, 20.0);
    let plot_h = h - top - bottom;
    let slot = (w - left) / bars.len().max(1) as f64;
    let max = bars
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{}">"#,
        escape(label)
    );
    let scale = if max > 0.0 { max } else { 1.0 };
    for (frac, y) in [(1.0, top), (0.5, top + plot_h / 2.0), (0.0, top + plot_h)] {
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{w}" y1="{y}" y2="{y}" stroke="#d0d7de"/><text x="{}" y="{}" font-size="10" text-anchor="end" fill="#57606a">{}</text>"##,
            left - 4.0,
            y + 3.0,
            escape(&fmt(scale * frac))
        );
    }
    let mut drawn = 0;
    for (i, (new, legacy)) in bars.iter().enumerate() {
        for (j, (value, color, side)) in [(new, "#1a7f37", "new"), (legacy, "#8c959f", "legacy")]
            .into_iter()
            .enumerate()
        {
            let Some(v) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            drawn += 1;
            let bh = (v.max(0.0) / scale * plot_h).max(1.0);
            let bw = ((slot - 2.0) / 2.0).max(0.5);
            let _ = write!(
                out,
                r##"<rect class="bar {side}" x="{:.1}" y="{:.1}" width="{bw:.1}" height="{bh:.1}" fill="{color}"><title>{side}: {}</title></rect>"##,
                left + i as f64 * slot + 1.0 + j as f64 * bw,
                top + plot_h - bh,
                escape(&fmt(v))
            );
        }
    }
    if drawn == 0 {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" font-size="12" text-anchor="middle" fill="#57606a">{}</text>"##,
            left + (w - left) / 2.0,
            top + plot_h / 2.0,
            escape(empty)
        );
    }
    out.push_str("</svg>");
    out
}

/// The share of requests the new services answered per bucket.
fn share_chart(series: &[TrafficMinute], first: i64, buckets: i64, bucket_minutes: i64) -> String {
    let bars: Vec<(Option<f64>, String)> = (0..buckets)
        .map(|i| {
            let start = first + i * bucket_minutes;
            let (new, total) = series
                .iter()
                .filter(|r| r.minute / bucket_minutes * bucket_minutes == start)
                .fold((0i64, 0i64), |(n, t), r| {
                    (
                        n + if r.side == "new" { r.requests } else { 0 },
                        t + r.requests,
                    )
                });
            let share = (total > 0).then(|| new as f64 / total as f64);
            let tip = match share {
                Some(x) => format!("{:.1} % of {total} requests", x * 100.0),
                None => String::new(),
            };
            (share, tip)
        })
        .collect();
    ratio_chart(
        &format!("Share of requests answered by new services, per {bucket_minutes} minutes"),
        &bars,
        "#1a7f37",
        "No traffic recorded yet",
    )
}

struct Window {
    label: &'static str,
    share: String,
    requests: i64,
}

struct LastChange {
    at: String,
    actor: String,
    reason: String,
}

struct ContextRow {
    name: String,
    state: &'static str,
    target: String,
    split: String,
    /// The share the new service answered in the last hour.
    realized: String,
    requests: i64,
    /// Requests legacy answered because the new side failed, last hour.
    fallbacks: i64,
    match_rate: String,
    errors: String,
    p99: String,
    /// The target's circuit breaker as this process sees it.
    breaker: String,
    last_change: Option<LastChange>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    role: Option<&'static str>,
    csrf: Option<String>,
    windows: Vec<Window>,
    by_state: Vec<(&'static str, usize)>,
    routes_by_state: Vec<(&'static str, usize)>,
    contexts: Vec<ContextRow>,
    unclaimed: i64,
    /// The busiest unclaimed path templates of the last hour.
    top_unclaimed: Vec<(String, i64)>,
    /// Event sinks and their deliveries.
    sinks: Vec<strangler_catalog::SinkStats>,
    /// The last 24 hours, per hour (SVG).
    chart: String,
}

fn iso(ms: i64) -> String {
    strangler_catalog::clock::rfc3339(ms, false)
}

fn split(state: MigrationState, weight: u16) -> String {
    match state {
        MigrationState::Legacy | MigrationState::Shadow => "legacy 100 %".into(),
        MigrationState::Canary => format!("new {:.2} %", f64::from(weight) / 100.0),
        MigrationState::Migrated | MigrationState::Retired => "new 100 %".into(),
    }
}

/// Sums rows per side of one context.
fn sides(rows: &[TrafficMinute], context: &str) -> (TrafficMinute, TrafficMinute) {
    let (mut legacy, mut new) = (TrafficMinute::default(), TrafficMinute::default());
    for r in rows.iter().filter(|r| r.context == context) {
        if r.side == "new" {
            new.absorb(r);
        } else {
            legacy.absorb(r);
        }
    }
    (legacy, new)
}

async fn overview(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(viewer) = session(&s, &headers).await else {
        return see_other("/login");
    };
    match overview_page(&s, &viewer).await {
        Ok(page) => html(StatusCode::OK, page.render()),
        Err(e) => store_failure(&s, Some(&viewer), e),
    }
}

async fn overview_page(s: &ApiState, viewer: &Viewer) -> Result<OverviewPage, StoreError> {
    let catalog = s.catalog.current(&*s.store).await?;
    let now = crate::now_minute();
    // The last hour per context (the context rows are made of it); the day, the week and the
    // chart from one hourly series (whole hours, the current one included).
    let hour = s.store.traffic_totals(now - 59).await?;
    let first_hour = (now / 60 - 23) * 60;
    let series = s.store.traffic_series(first_hour - 144 * 60, 60).await?;
    let share = |rows: &mut dyn Iterator<Item = &TrafficMinute>| {
        let (new, total) = rows.fold((0i64, 0i64), |(n, t), r| {
            (
                n + if r.side == "new" { r.requests } else { 0 },
                t + r.requests,
            )
        });
        (
            percent((total > 0).then(|| new as f64 / total as f64)),
            total,
        )
    };
    let windows = [
        ("hour", share(&mut hour.iter())),
        (
            "day",
            share(&mut series.iter().filter(|r| r.minute >= first_hour)),
        ),
        ("week", share(&mut series.iter())),
    ]
    .into_iter()
    .map(|(label, (share, requests))| Window {
        label,
        share,
        requests,
    })
    .collect();
    // One query each for every context's shadow results and last change.
    let shadow: BTreeMap<String, (i64, i64)> = s
        .store
        .shadow_totals(now - 59)
        .await?
        .into_iter()
        .map(|r| (r.context, (r.compared, r.matched)))
        .collect();
    let last: BTreeMap<String, strangler_catalog::AuditEntry> = s
        .store
        .last_changes("context:")
        .await?
        .into_iter()
        .filter_map(|a| Some((a.target.strip_prefix("context:")?.to_owned(), a)))
        .collect();
    let runtime = s.runtime.as_ref().map(|f| f());
    let mut by_state: BTreeMap<u8, (&'static str, usize)> = BTreeMap::new();
    let mut contexts = Vec::new();
    for ctx in catalog.contexts.values() {
        let state = ctx.state.as_str();
        by_state.entry(ctx.state as u8).or_insert((state, 0)).1 += 1;
        let (legacy, new) = sides(&hour, &ctx.name);
        let (compared, matched) = shadow.get(&ctx.name).copied().unwrap_or((0, 0));
        let rate =
            |t: &TrafficMinute| (t.requests > 0).then(|| t.errors as f64 / t.requests as f64);
        contexts.push(ContextRow {
            name: ctx.name.clone(),
            state,
            target: ctx.target.clone(),
            split: split(ctx.state, ctx.weight),
            realized: percent(
                (legacy.requests + new.requests > 0)
                    .then(|| new.requests as f64 / (legacy.requests + new.requests) as f64),
            ),
            requests: legacy.requests + new.requests,
            fallbacks: legacy.fallbacks,
            match_rate: percent((compared > 0).then(|| matched as f64 / compared as f64)),
            errors: format!("{} / {}", percent(rate(&new)), percent(rate(&legacy))),
            p99: format!(
                "{} / {}",
                ms(new.quantile_ms(0.99)),
                ms(legacy.quantile_ms(0.99))
            ),
            breaker: runtime
                .as_ref()
                .and_then(|v| v.get(&ctx.target)?.get("breaker")?.as_str())
                .unwrap_or("—")
                .to_owned(),
            last_change: last.get(&ctx.name).map(|a| LastChange {
                at: iso(a.at_ms),
                actor: a.actor.clone(),
                reason: a.reason.clone(),
            }),
        });
    }
    let (unclaimed, _) = sides(&hour, "");
    let mut templates = s.store.path_traffic("", now - 59).await?;
    templates.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.path.cmp(&b.path)));
    templates.truncate(5);
    let routes_by_state = {
        let mut m: BTreeMap<u8, (&'static str, usize)> = BTreeMap::new();
        for r in catalog.routes.values() {
            if let Some(c) = catalog.contexts.get(&r.context) {
                m.entry(c.state as u8).or_insert((c.state.as_str(), 0)).1 += 1;
            }
        }
        m.into_values().collect()
    };
    Ok(OverviewPage {
        chart: share_chart(&series, first_hour, 24, 60),
        role: (viewer.cookie.is_some()).then(|| viewer.role_name()),
        csrf: viewer.csrf(&key(s)),
        windows,
        by_state: by_state.into_values().collect(),
        routes_by_state,
        contexts,
        unclaimed: unclaimed.requests,
        sinks: s.store.sink_stats().await?,
        top_unclaimed: templates
            .into_iter()
            .map(|t| (t.path, t.requests))
            .collect(),
    })
}

struct RouteRow {
    methods: String,
    path: String,
    id: String,
    /// Last 24 hours: requests answered by each side, errors, mean time.
    new: i64,
    legacy: i64,
    errors: String,
    mean: String,
}

/// One side's standing against the context's objective.
struct ObjectiveRow {
    side: &'static str,
    requests: i64,
    availability: String,
    /// The error budget left, e.g. `62.0 %` or `exhausted (−40.0 %)`.
    budget: String,
    budget_ok: bool,
    p99: String,
    p99_ok: bool,
}

/// An example pair with the lines that differ marked (HTML the page built and escaped).
struct ExampleView {
    signature: String,
    method: String,
    path: String,
    legacy_status: i64,
    new_status: i64,
    legacy_html: String,
    new_html: String,
}

/// A body as lines: JSON pretty-printed (so that one-line answers diff by field), anything
/// else as it is.
fn body_lines(body: &str) -> Vec<String> {
    let pretty = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    pretty
        .as_deref()
        .unwrap_or(body)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Both bodies as escaped HTML with the lines only one side has wrapped in `<mark>` (a
/// longest-common-subsequence diff of lines; past 400 lines a side, line by line).
fn diff_html(legacy: &str, new: &str) -> (String, String) {
    let (a, b) = (body_lines(legacy), body_lines(new));
    let (mut keep_a, mut keep_b) = (vec![false; a.len()], vec![false; b.len()]);
    if a.len() <= 400 && b.len() <= 400 {
        let mut lcs = vec![vec![0u16; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i][j] = if a[i] == b[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if a[i] == b[j] {
                keep_a[i] = true;
                keep_b[j] = true;
                i += 1;
                j += 1;
            } else if lcs[i + 1][j] >= lcs[i][j + 1] {
                i += 1;
            } else {
                j += 1;
            }
        }
    } else {
        for (i, line) in a.iter().enumerate() {
            let same = b.get(i) == Some(line);
            keep_a[i] = same;
            if let Some(k) = keep_b.get_mut(i) {
                *k = same;
            }
        }
    }
    // Long bodies show the differing lines with three lines around them; the runs of same
    // lines in between are folded to one line saying how many.
    let render = |lines: &[String], keep: &[bool]| {
        const AROUND: usize = 3;
        let near = |i: usize| {
            lines.len() <= 12
                || (i.saturating_sub(AROUND)..=(i + AROUND).min(lines.len() - 1)).any(|j| !keep[j])
        };
        let mut out = String::new();
        let mut folded = 0;
        for (i, (line, same)) in lines.iter().zip(keep).enumerate() {
            if !near(i) {
                folded += 1;
                continue;
            }
            if folded > 0 {
                out.push_str(&format!(
                    "<span class=\"muted\">⋯ {folded} same lines</span>\n"
                ));
                folded = 0;
            }
            if *same {
                out.push_str(&escape(line));
            } else {
                out.push_str("<mark>");
                out.push_str(&escape(line));
                out.push_str("</mark>");
            }
            out.push('\n');
        }
        if folded > 0 {
            out.push_str(&format!(
                "<span class=\"muted\">⋯ {folded} same lines</span>\n"
            ));
        }
        out
    };
    (render(&a, &keep_a), render(&b, &keep_b))
}

/// A side's standing against an objective over its window.
fn objective_row(
    side: &'static str,
    t: &TrafficMinute,
    o: &strangler_catalog::Objective,
) -> ObjectiveRow {
    let allowed = (1.0 - o.availability_percent / 100.0) * t.requests as f64;
    let left = (allowed > 0.0).then(|| 1.0 - t.errors as f64 / allowed);
    let p99 = t.quantile_ms(0.99);
    ObjectiveRow {
        side,
        requests: t.requests,
        availability: percent((t.requests > 0).then(|| 1.0 - t.errors as f64 / t.requests as f64)),
        budget: match left {
            None => "— (no requests yet)".to_owned(),
            Some(l) if l < 0.0 => format!("exhausted ({:.1} %)", l * 100.0),
            Some(l) => format!("{:.1} % left", l * 100.0),
        },
        budget_ok: left.is_none_or(|l| l >= 0.0),
        p99: match (p99, t.requests) {
            (_, 0) => "—".to_owned(),
            (Some(ms), _) => format!("≤ {ms} ms"),
            (None, _) => "over 10 s".to_owned(),
        },
        p99_ok: t.requests == 0 || p99.is_some_and(|ms| ms <= o.p99_ms),
    }
}

struct AuditRow {
    at: String,
    actor: String,
    action: String,
    reason: String,
    version: i64,
}

#[derive(Template)]
#[template(path = "context.html")]
struct ContextPage {
    role: Option<&'static str>,
    csrf: Option<String>,
    csrf_value: String,
    operator: bool,
    notice: Option<String>,
    name: String,
    description: String,
    state: &'static str,
    next_state: Option<&'static str>,
    /// Shadow sampling is set to 0.
    shadow_paused: bool,
    target: String,
    split: String,
    weight: u16,
    version: i64,
    match_rate: String,
    compared: i64,
    requests: i64,
    errors: String,
    p99: String,
    routes: Vec<RouteRow>,
    /// The target's circuit breaker and instances as this process sees them.
    breaker: String,
    instances: Vec<(String, &'static str)>,
    /// Requests legacy answered because the new side failed: last hour, last 24 hours.
    fallbacks: (i64, i64),
    /// The objective in words, and each side's standing against it.
    objective: Option<String>,
    objective_rows: Vec<ObjectiveRow>,
    /// p99 and error rate per hour over 24 hours, new vs legacy (SVG).
    latency_chart: String,
    error_chart: String,
    /// Match rate per hour over 24 hours (SVG).
    match_chart: String,
    /// Share answered by the new service per hour over 24 hours (SVG).
    share_chart: String,
    signatures: Vec<(String, i64)>,
    /// Why requests were not shadowed in the last hour, most frequent first.
    skipped: Vec<(String, i64)>,
    /// Proposed ignore rules: path, pairs seen, state.
    noise: Vec<(String, i64, &'static str)>,
    examples: Vec<ExampleView>,
    audit: Vec<AuditRow>,
    /// The autopilot's policy in words, whether it is paused, and its last word here.
    rollout: Option<(String, bool, Option<String>)>,
    /// The autopilot's decisions, newest first, with the figures behind each.
    timeline: Vec<AuditRow>,
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

async fn context_page(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let Some(viewer) = session(&s, &headers).await else {
        return see_other("/login");
    };
    let catalog = match s.catalog.current(&*s.store).await {
        Ok(c) => c,
        Err(e) => return store_failure(&s, Some(&viewer), e),
    };
    let Some(ctx) = catalog.contexts.get(&name) else {
        return message(
            StatusCode::NOT_FOUND,
            Some(&viewer),
            &s,
            "No such context",
            format!("there is no context named `{name}`; the overview lists them all"),
            "/".into(),
        );
    };
    let now = crate::now_minute();
    let first_hour = (now / 60 - 23) * 60;
    let loaded = async {
        // The day per hour (the rollup), the last hour per minute.
        let day = s.store.traffic_hourly(&ctx.name, first_hour).await?;
        let hour = s.store.traffic(Some(&ctx.name), now - 59).await?;
        let shadow_day = s.store.shadow_series(&ctx.name, first_hour, 60).await?;
        let shadow = s.store.shadow(&ctx.name, now - 59).await?;
        let examples = s.store.shadow_examples(&ctx.name).await?;
        let audit = s
            .store
            .audit(&AuditQuery {
                target: Some(format!("context:{}", ctx.name)),
                limit: Some(20),
                ..AuditQuery::default()
            })
            .await?;
        let noise = s.store.shadow_noise(&ctx.name).await?;
        let timeline = s
            .store
            .audit(&AuditQuery {
                target: Some(format!("context:{}", ctx.name)),
                actor: Some("autopilot".into()),
                limit: Some(30),
                ..AuditQuery::default()
            })
            .await?;
        let routes = s.store.path_traffic(&ctx.name, first_hour).await?;
        let window = match &ctx.objective {
            Some(o) => {
                s.store
                    .traffic_sum(Some(&ctx.name), now - i64::from(o.window_days) * 1440 + 1)
                    .await?
            }
            None => Vec::new(),
        };
        Ok::<_, StoreError>((
            (day, hour),
            (shadow_day, shadow),
            examples,
            (audit, timeline),
            noise,
            routes,
            window,
        ))
    };
    let (
        (day, hour),
        (shadow_day, shadow),
        examples,
        (audit, timeline),
        noise,
        route_traffic,
        window,
    ) = match loaded.await {
        Ok(x) => x,
        Err(e) => return store_failure(&s, Some(&viewer), e),
    };
    let match_bars: Vec<(Option<f64>, String)> = (0..24)
        .map(|i| {
            let start = first_hour + i * 60;
            let (c, m) = shadow_day
                .iter()
                .filter(|r| r.minute == start)
                .fold((0i64, 0i64), |(c, m), r| (c + r.compared, m + r.matched));
            let rate = (c > 0).then(|| m as f64 / c as f64);
            let tip = rate.map_or(String::new(), |r| {
                format!("{:.1} % of {c} compared", r * 100.0)
            });
            (rate, tip)
        })
        .collect();
    let (legacy, new) = sides(&hour, &ctx.name);
    let (compared, matched) = shadow
        .iter()
        .fold((0, 0), |(c, m), r| (c + r.compared, m + r.matched));
    let mut signatures: BTreeMap<String, i64> = BTreeMap::new();
    for r in &shadow {
        for c in &r.signatures {
            *signatures.entry(c.signature.clone()).or_insert(0) += c.count;
        }
    }
    let mut skipped: BTreeMap<String, i64> = BTreeMap::new();
    for r in &shadow {
        for (why, n) in &r.skipped {
            *skipped.entry(why.clone()).or_insert(0) += n;
        }
    }
    let mut skipped: Vec<(String, i64)> = skipped.into_iter().collect();
    skipped.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let noise: Vec<(String, i64, &'static str)> = noise
        .into_iter()
        .map(|p| {
            let state = if ctx.shadow.ignore.contains(&p.path) {
                "accepted"
            } else if p.dismissed {
                "dismissed"
            } else {
                "proposed"
            };
            (p.path, p.count, state)
        })
        .collect();
    let mut signatures: Vec<(String, i64)> = signatures.into_iter().collect();
    signatures.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    signatures.truncate(10);
    let rate = |t: &TrafficMinute| (t.requests > 0).then(|| t.errors as f64 / t.requests as f64);
    // Per hour and side over the day: p99 and error rate, new vs legacy.
    let per_hour: Vec<(TrafficMinute, TrafficMinute)> = (0..24)
        .map(|i| {
            let start = first_hour + i * 60;
            let rows: Vec<TrafficMinute> = day
                .iter()
                .filter(|r| r.minute / 60 * 60 == start)
                .cloned()
                .collect();
            sides(&rows, &ctx.name)
        })
        .collect();
    let latency_bars: Vec<(Option<f64>, Option<f64>)> = per_hour
        .iter()
        .map(|(l, n)| {
            let p = |t: &TrafficMinute| t.quantile_ms(0.99).map(|v| v as f64);
            (p(n), p(l))
        })
        .collect();
    let error_bars: Vec<(Option<f64>, Option<f64>)> =
        per_hour.iter().map(|(l, n)| (rate(n), rate(l))).collect();
    let (day_legacy, _) = sides(&day, &ctx.name);
    let runtime = s.runtime.as_ref().map(|f| f());
    let target_view = runtime.as_ref().and_then(|v| v.get(&ctx.target));
    let instances = target_view
        .and_then(|v| v.get("instances")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|i| {
            let origin = i.get("origin").and_then(|o| o.as_str()).unwrap_or("?");
            let status = if i.get("ejected").and_then(serde_json::Value::as_bool) == Some(true) {
                "ejected"
            } else if i.get("healthy").and_then(serde_json::Value::as_bool) == Some(false) {
                "unhealthy"
            } else {
                "healthy"
            };
            (origin.to_owned(), status)
        })
        .collect();
    let mut by_route: BTreeMap<&str, (i64, i64, i64, i64)> = BTreeMap::new();
    for r in &route_traffic {
        let e = by_route.entry(r.path.as_str()).or_default();
        if r.side == "new" {
            e.0 += r.requests;
        } else {
            e.1 += r.requests;
        }
        e.2 += r.errors;
        e.3 += r.latency_us;
    }
    let objective_rows = match &ctx.objective {
        Some(o) => {
            let (l, n) = sides(&window, &ctx.name);
            vec![objective_row("new", &n, o), objective_row("legacy", &l, o)]
        }
        None => Vec::new(),
    };
    let k = key(&s);
    let page = ContextPage {
        role: viewer.cookie.is_some().then(|| viewer.role_name()),
        csrf: viewer.csrf(&k),
        csrf_value: viewer.csrf(&k).unwrap_or_default(),
        operator: viewer.role == Role::Operator && viewer.cookie.is_some(),
        // Only the confirmations the actions produce: a link cannot put other words here.
        notice: done
            .done
            .filter(|d| {
                [
                    "promoted",
                    "rolled back to legacy",
                    "shadowing paused",
                    "shadowing resumed",
                    "noise rule accepted",
                    "noise rule dismissed",
                    "autopilot paused",
                    "autopilot resumed",
                ]
                .contains(&d.as_str())
                    || d.strip_prefix("canary weight set to ")
                        .is_some_and(|w| w.parse::<u16>().is_ok())
            })
            .map(|d| format!("Done: {d}. The facade follows within its poll interval.")),
        name: ctx.name.clone(),
        description: ctx.description.clone(),
        state: ctx.state.as_str(),
        next_state: ctx.state.next().map(MigrationState::as_str),
        shadow_paused: ctx.shadow.paused || ctx.shadow.sample_percent == Some(0),
        target: ctx.target.clone(),
        split: split(ctx.state, ctx.weight),
        weight: ctx.weight,
        version: catalog.version,
        match_rate: percent((compared > 0).then(|| matched as f64 / compared as f64)),
        compared,
        requests: legacy.requests + new.requests,
        errors: format!(
            "new {} / legacy {}",
            percent(rate(&new)),
            percent(rate(&legacy))
        ),
        p99: format!(
            "new {} / legacy {}",
            ms(new.quantile_ms(0.99)),
            ms(legacy.quantile_ms(0.99))
        ),
        breaker: target_view
            .and_then(|v| v.get("breaker")?.as_str())
            .unwrap_or("—")
            .to_owned(),
        instances,
        fallbacks: (legacy.fallbacks, day_legacy.fallbacks),
        objective: ctx.objective.as_ref().map(|o| {
            format!(
                "{} % of requests answered below 500, p99 ≤ {} ms, over {} days",
                o.availability_percent, o.p99_ms, o.window_days
            )
        }),
        objective_rows,
        latency_chart: pair_chart(
            "p99 per hour, new (green) and legacy (grey), last 24 hours",
            &latency_bars,
            &|v| format!("{v:.0} ms"),
            "No requests recorded yet",
        ),
        error_chart: pair_chart(
            "Error rate (5xx) per hour, new (green) and legacy (grey), last 24 hours",
            &error_bars,
            &|v| format!("{:.1} %", v * 100.0),
            "No requests recorded yet",
        ),
        match_chart: ratio_chart(
            "Shadow match rate per hour, last 24 hours",
            &match_bars,
            "#0b5fae",
            "No comparisons yet: the context compares once it is in shadow",
        ),
        share_chart: share_chart(&day, first_hour, 24, 60),
        routes: catalog
            .routes_of(&ctx.name)
            .map(|r| RouteRow {
                methods: if r.spec.methods.is_empty() {
                    "any".into()
                } else {
                    r.spec.methods.join(", ")
                },
                path: r.spec.path.clone(),
                id: r.id.clone(),
                new: by_route.get(r.id.as_str()).map_or(0, |t| t.0),
                legacy: by_route.get(r.id.as_str()).map_or(0, |t| t.1),
                errors: percent(
                    by_route
                        .get(r.id.as_str())
                        .and_then(|t| (t.0 + t.1 > 0).then(|| t.2 as f64 / (t.0 + t.1) as f64)),
                ),
                mean: by_route
                    .get(r.id.as_str())
                    .filter(|t| t.0 + t.1 > 0)
                    .map_or("—".to_owned(), |t| {
                        format!("{:.1} ms", t.3 as f64 / 1000.0 / (t.0 + t.1) as f64)
                    }),
            })
            .collect(),
        signatures,
        skipped,
        noise,
        examples: examples
            .into_iter()
            .take(3)
            .map(|e| {
                let (legacy_html, new_html) = diff_html(&e.legacy_body, &e.new_body);
                ExampleView {
                    signature: e.signature,
                    method: e.method,
                    path: e.path,
                    legacy_status: e.legacy_status,
                    new_status: e.new_status,
                    legacy_html,
                    new_html,
                }
            })
            .collect(),
        rollout: ctx.rollout.as_ref().map(|r| {
            let steps: Vec<String> = r.steps.iter().map(|s| format!("{s} %")).collect();
            let summary = format!(
                "leaves shadow when the match rate's lower 95 % bound reaches {:.1} % over at least {} comparisons in {} min with no mismatch signature seen more than {} times; then canary steps {}, each held {} s with new errors ≤ legacy's + {:.1} %, p99 ≤ legacy's × {}, fallbacks ≤ {:.1} %; evaluated every {} s",
                r.shadow_gate.min_match_rate * 100.0,
                r.shadow_gate.min_comparisons,
                r.shadow_gate.window_minutes,
                r.shadow_gate.max_signature_count,
                steps.join(" → "),
                r.hold_secs,
                r.checks.error_rate_margin * 100.0,
                r.checks.p99_ratio,
                r.checks.max_fallback_rate * 100.0,
                r.interval_secs
            );
            let last = s.autopilot.as_ref().and_then(|view| {
                let v = view();
                let last = &v["contexts"][ctx.name.as_str()]["last"];
                Some(format!(
                    "{}: {}",
                    last["decision"].as_str()?,
                    last["why"].as_str()?
                ))
            });
            (summary, r.paused, last)
        }),
        timeline: timeline
            .iter()
            .map(|a| AuditRow {
                at: iso(a.at_ms),
                actor: a.actor.clone(),
                action: a.action.clone(),
                reason: a.reason.clone(),
                version: a.version,
            })
            .collect(),
        audit: audit
            .iter()
            .map(|a| AuditRow {
                at: iso(a.at_ms),
                actor: a.actor.clone(),
                action: a.action.clone(),
                reason: a.reason.clone(),
                version: a.version,
            })
            .collect(),
    };
    html(StatusCode::OK, page.render())
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    base_version: i64,
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    weight: Option<u16>,
    /// The JSON path of a noise rule to accept or dismiss.
    #[serde(default)]
    path: Option<String>,
}

async fn action(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    let back = format!("/contexts/{name}");
    let Some(viewer) = session(&s, &headers).await else {
        return see_other("/login");
    };
    let refuse = |status, title: &str, detail: String| {
        message(status, Some(&viewer), &s, title, detail, back.clone())
    };
    if let Some(refused) = refuse_change(&s, &viewer, &f.csrf, &back) {
        return refused;
    }
    if f.reason.trim().len() < 3 {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not applied",
            "give a reason of at least 3 characters: it goes into the audit log".into(),
        );
    }
    let meta = ChangeMeta {
        actor: "operator (dashboard)".into(),
        reason: f.reason.trim().to_owned(),
    };
    let path = f.path.as_deref().unwrap_or("").trim().to_owned();
    let action = match (f.action.as_str(), f.weight) {
        ("promote", _) => ContextAction::Promote,
        ("rollback", _) => ContextAction::Rollback,
        ("set-weight", Some(weight)) => ContextAction::SetWeight(weight),
        ("pause-autopilot", _) => ContextAction::PauseAutopilot(true),
        ("resume-autopilot", _) => ContextAction::PauseAutopilot(false),
        ("pause-shadow", _) => ContextAction::PauseShadow(true),
        ("resume-shadow", _) => ContextAction::PauseShadow(false),
        ("accept-noise", _) => ContextAction::AcceptNoise(path),
        ("dismiss-noise", _) => ContextAction::DismissNoise {
            path,
            dismissed: true,
        },
        _ => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not applied",
                "choose promote, rollback, set-weight (0-10000), pause-shadow, resume-shadow, pause-autopilot, resume-autopilot, accept-noise or dismiss-noise".into(),
            )
        }
    };
    let what = action.done();
    match actions::perform(&*s.store, &name, action, f.base_version, &meta).await {
        Ok(_) => see_other(&format!("{back}?done={}", what.replace(' ', "+"))),
        Err(ActionError::Store(StoreError::Stale { based_on, current })) => {
            let since = s
                .store
                .audit(&AuditQuery {
                    limit: Some(10),
                    ..AuditQuery::default()
                })
                .await
                .unwrap_or_default();
            let changes: Vec<String> = since
                .iter()
                .filter(|a| a.version > based_on)
                .map(|a| format!("{} by {} on {} ({})", a.action, a.actor, a.target, a.reason))
                .collect();
            refuse(
                StatusCode::CONFLICT,
                "The catalog changed while you looked",
                format!(
                    "your page showed version {based_on}; the catalog is at {current}. Changed since: {}. Nothing was applied: reload the page and decide again.",
                    if changes.is_empty() { "—".to_owned() } else { changes.join("; ") }
                ),
            )
        }
        Err(ActionError::Store(StoreError::Change(e))) => {
            refuse(StatusCode::CONFLICT, "Not applied", e.to_string())
        }
        Err(e @ (ActionError::Invalid { .. } | ActionError::NotProposed { .. })) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not applied",
            e.to_string(),
        ),
        Err(ActionError::Store(e)) => store_failure(&s, Some(&viewer), e),
    }
}

#[cfg(test)]
mod tests;
