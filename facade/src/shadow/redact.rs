//! What the facade may write down of a request or an answer. Shadow examples, recorded
//! exchanges (contract tests) and mirrored writes end up in the catalog's store, and from there
//! in backups and exports: nothing secret may reach it.
//!
//! - request header fields are kept only from an allow-list (what a delivery needs, plus the
//!   context's `mirror_headers`), and never one named like a credential;
//! - query parameters named like secrets (`token`, `api_key`, `session` …), or listed in the
//!   context's `redact_query`, have their values blanked;
//! - JSON bodies have the context's `redact` paths and every field named like a secret
//!   blanked; form bodies (`application/x-www-form-urlencoded`) the fields named like secrets;
//! - **fail closed**: a body that cannot be redacted (another media type, invalid or too deep
//!   JSON) is not stored at all.

use serde_json::Value;

use super::diff::Rules;

/// What replaces a blanked value.
pub const BLANK: &str = "[redacted]";
/// The same, as it may appear in a query or a form.
const BLANK_ENCODED: &str = "%5Bredacted%5D";

/// Request header fields a stored request keeps (besides a context's `mirror_headers`).
const KEPT_HEADERS: [&str; 12] = [
    "content-type",
    "content-encoding",
    "content-language",
    "accept",
    "accept-language",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "idempotency-key",
    "traceparent",
    "tracestate",
];

/// Nesting beyond which a body is not stored (it could not be checked cheaply).
const MAX_DEPTH: usize = 64;

/// Whether a field, parameter or header name looks like it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const EXACT: [&str; 19] = [
        "pwd",
        "pass",
        "pin",
        "otp",
        "sid",
        "auth",
        "signature",
        "cvv",
        "cvc",
        "ssn",
        "session",
        "sessionid",
        "jsessionid",
        "phpsessid",
        "cookie",
        "jwt",
        "cardnumber",
        "creditcard",
        "iban",
    ];
    const PARTS: [&str; 9] = [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "credential",
        "authorization",
        "privatekey",
    ];
    EXACT.contains(&n.as_str()) || PARTS.iter().any(|p| n.contains(p))
}

/// The header fields of a request that may be stored, as (name, value) text.
pub fn headers(headers: &http::HeaderMap, extra: &[String]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            (KEPT_HEADERS.contains(&n) || extra.iter().any(|e| e.eq_ignore_ascii_case(n)))
                && !is_secret_name(n)
        })
        .map(|(n, v)| (n.as_str().to_owned(), latin1(v.as_bytes())))
        .collect()
}

/// Header bytes as chars U+0000–U+00FF: any value survives the round trip through text.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(*b)).collect()
}

/// Whether a query parameter looks like it holds a secret: [`is_secret_name`], and the short
/// names APIs use for keys, signatures and one-time codes (`?key=`, `?sig=`, `?code=`).
pub fn is_secret_param(name: &str) -> bool {
    is_secret_name(name) || matches!(name.to_ascii_lowercase().as_str(), "key" | "sig" | "code")
}

/// Blanks the values of secret-looking (or listed) parameters of a query or form text.
fn pairs(text: &str, listed: &[String]) -> String {
    text.split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded: String = form_urlencoded::parse(name.as_bytes())
                .map(|(k, _)| k.into_owned())
                .next()
                .unwrap_or_default();
            if !value.is_empty() && (is_secret_param(&decoded) || listed.contains(&decoded)) {
                format!("{name}={BLANK_ENCODED}")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A request target (`/path?query`) with secret parameters blanked.
pub fn target(path_and_query: &str, listed: &[String]) -> String {
    match path_and_query.split_once('?') {
        Some((path, query)) => format!("{path}?{}", pairs(query, listed)),
        None => path_and_query.to_owned(),
    }
}

/// A body as it may be stored: redacted, or `None` when it cannot be (fail closed). An empty
/// body is stored as it is.
/// Whether a body of this media type could be redacted at all (JSON, a form, or none named):
/// known from the head, before the body is read.
pub fn redactable_type(content_type: Option<&str>) -> bool {
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    media.is_empty()
        || media == "application/json"
        || media.ends_with("+json")
        || media == "application/x-www-form-urlencoded"
}

pub fn body(body: &[u8], content_type: Option<&str>, rules: &Rules) -> Option<Vec<u8>> {
    if body.is_empty() {
        return Some(Vec::new());
    }
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    // JSON by its media type, or without one (clients that leave it out).
    let json = media == "application/json" || media.ends_with("+json");
    if json || media.is_empty() {
        let mut v: Value = serde_json::from_slice(body).ok()?;
        if depth(&v) > MAX_DEPTH {
            return None;
        }
        rules.blank_json(&mut v);
        blank_secret_fields(&mut v);
        return serde_json::to_vec(&v).ok();
    }
    if media == "application/x-www-form-urlencoded" {
        let text = std::str::from_utf8(body).ok()?;
        return Some(pairs(text, &[]).into_bytes());
    }
    None
}

/// A body as text for an example or a recorded exchange (cut at `cap` bytes), or `None` when it
/// cannot be redacted.
pub fn text(body: &[u8], content_type: Option<&str>, rules: &Rules, cap: usize) -> Option<String> {
    let bytes = self::body(body, content_type, rules)?;
    let mut text = String::from_utf8(bytes).ok()?;
    if text.len() > cap {
        let mut cut = cap;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    Some(text)
}

fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        if d > MAX_DEPTH {
            break;
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    max
}

/// Blanks the values of fields named like secrets, at any depth.
fn blank_secret_fields(v: &mut Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if is_secret_name(k) && !child.is_null() {
                        *child = Value::String(BLANK.into());
                    } else {
                        stack.push(child);
                    }
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
