//! Signing in and out: the session cookie (a role and an expiry, tagged with
//! HMAC-SHA256 under a key derived from the configured tokens), the CSRF token every form
//! carries, and the sign-in page.

use super::{html, message, see_other, store_failure};
use crate::api::{ApiState, Role};
use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How long a session lasts.
const SESSION_SECS: i64 = 8 * 3600;
const COOKIE: &str = "strangler_session";

/// The session key: derived from the tokens, so that replicas agree and a new token ends the
/// old sessions.
pub(super) fn key(s: &ApiState) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"strangler-dashboard-session\0");
    h.update(s.tokens.operator.as_deref().unwrap_or("").as_bytes());
    h.update(b"\0");
    h.update(s.tokens.viewer.as_deref().unwrap_or("").as_bytes());
    for u in &s.tokens.users {
        h.update(b"\0");
        h.update(u.name.as_bytes());
        h.update(b"\0");
        h.update(u.token.as_bytes());
    }
    h.finalize().into()
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
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
pub(super) struct Viewer {
    pub(super) role: Role,
    /// Who, for the audit log: a user's name, or the shared token's role.
    pub(super) actor: String,
    pub(super) cookie: Option<String>,
}

impl Viewer {
    /// How the page header names who is signed in: the role, and a user's name before it.
    pub(super) fn role_name(&self) -> String {
        let role = match self.role {
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        };
        if self.actor == role {
            role.to_owned()
        } else {
            format!("{} ({role})", self.actor)
        }
    }

    pub(super) fn csrf(&self, key: &[u8; 32]) -> Option<String> {
        self.cookie.as_ref().map(|c| tag(key, &format!("csrf:{c}")))
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    let fields = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes);
    std::str::from_utf8(strangler_catalog::cookie::find(fields, COOKIE)?).ok()
}

/// The lease name under which a signed-out session is remembered until it would expire (the
/// catalog's `leases` table: one row per sign-out, shared by every replica).
fn revoked_name(sid: &str) -> String {
    format!("revoked-session:{sid}")
}

/// The session of a request: None when it must sign in (no cookie, a forged or expired one,
/// or one signed out — on any replica).
pub(super) async fn session(s: &ApiState, headers: &HeaderMap) -> Option<Viewer> {
    if !s.tokens.any() {
        return Some(Viewer {
            role: Role::Viewer,
            actor: "viewer".into(),
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
    // A user's role is read from the configuration now: a changed role or a removed user
    // takes effect on their open sessions too.
    let (role, actor) = match role {
        "operator" if s.tokens.operator.is_some() => (Role::Operator, "operator".to_owned()),
        "viewer" if s.tokens.viewer.is_some() => (Role::Viewer, "viewer".to_owned()),
        who => {
            let name = unhex(who.strip_prefix("u-")?)?;
            let user = s.tokens.user(&name)?;
            (user.role, user.name.clone())
        }
    };
    Some(Viewer {
        role,
        actor,
        cookie: Some(value.to_owned()),
    })
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    role: Option<String>,
    csrf: Option<String>,
    error: Option<&'static str>,
}

pub(super) async fn login_page() -> Response {
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
pub(super) struct LoginForm {
    token: String,
}

pub(super) async fn login(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let caller = match s.tokens.identify(Some(f.token.trim())) {
        Ok(caller) if s.tokens.any() => caller,
        _ => {
            return html(
                StatusCode::UNAUTHORIZED,
                LoginPage {
                    role: None,
                    csrf: None,
                    error: Some("That token is none of the configured tokens."),
                }
                .render(),
            )
        }
    };
    // The cookie names the shared token's role, or the user (hex: names may hold dots).
    let name = match (&caller.role, caller.actor.as_str()) {
        (Role::Operator, "operator") if s.tokens.user("operator").is_none() => "operator".into(),
        (Role::Viewer, "viewer") if s.tokens.user("viewer").is_none() => "viewer".into(),
        (_, person) => format!("u-{}", hex(person)),
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
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(
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
