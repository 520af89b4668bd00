//! The dashboard's pages on the admin listener, one file per page: the overview (how far the
//! strangling has come, `overview.rs`), a context's page (`context.rs`) and its forms
//! (`forms.rs`), the unclaimed requests (`inventory.rs`), the audit ledger (`ledger.rs`), and
//! signing in (`session.rs`); `charts.rs` draws their SVG. This file holds the router and what
//! every page shares: the layout, messages, redirects and figure formatting.
//!
//! Signing in with the viewer or the operator token gives a session cookie: the role and an
//! expiry, tagged with HMAC-SHA256 under a key derived from the configured tokens (so every
//! replica with the same tokens accepts it, and changing a token ends every session). The
//! cookie is HttpOnly and SameSite=Strict. Every form carries a CSRF token tied to the session.
//! Actions are refused on the server to viewers, not only hidden; they are the same typed
//! catalog changes the JSON API performs (`crate::actions`). Pages read the catalog the process
//! follows. Templates are askama's: checked at compile time, and everything they print is
//! HTML-escaped.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use strangler_catalog::{MigrationState, TrafficMinute};
use strangler_store::StoreError;

use crate::api::{ApiState, Role};

mod audit;
mod charts;
mod context;
mod forms;
mod inventory;
mod ledger;
mod overview;
mod session;

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
        .route("/audit", get(audit::audit_page))
        .with_state(state)
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
    role: Option<String>,
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

fn percent(x: Option<f64>) -> String {
    x.map_or("—".to_owned(), |x| format!("{:.1} %", x * 100.0))
}

fn ms(x: Option<u64>) -> String {
    x.map_or("—".to_owned(), |x| format!("≤ {x} ms"))
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

#[cfg(test)]
mod tests;
use context::context_page;
use forms::action;
use overview::overview;
use session::{key, login, login_page, logout, session, Viewer};
