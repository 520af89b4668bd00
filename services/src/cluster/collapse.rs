//! Request collapsing: identical GETs in flight at the same time share one upstream call. The
//! first (the leader) goes upstream and reads the response whole, up to a size cap; the others
//! wait for it and get a copy. A response over the cap, a failure, or a leader that gives up
//! sends each follower on its own way.
//!
//! Identical means identical as the upstream sees it, after the facade rewrote the request: the
//! method, the target, and **every** header field except a short list that says nothing about
//! who asks or which answer fits (forwarding and tracing fields, `User-Agent`, `Referer`). So a
//! token the identity bridge added, a header a translator set from the session, or any header
//! a service might answer differently to is part of the key. Requests that carry credentials
//! (`Authorization`, `Cookie`, the identity token, API keys, anything named like a token or a
//! session) are not collapsed at all unless the service says its answers are the same for
//! everyone. An answer that is personal or varies on a field outside the key is not shared:
//! `Set-Cookie`, `Cache-Control: private` or `no-store`, or `Vary` naming such a field.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use tokio::sync::watch;

/// Fields left out of the key: transport, forwarding and tracing fields that differ per client
/// and do not choose the answer. A service that answers differently to one of them says so
/// with `Vary`, and then the answer is not shared (or it is configured as a vary field).
const NOT_KEYED: [&str; 16] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
    "via",
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "user-agent",
    "referer",
];

/// Whether a field carries credentials: sharing an answer across them would hand one user
/// another's answer.
pub fn is_credential(name: &str) -> bool {
    const EXACT: [&str; 4] = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-strangler-identity",
    ];
    const PARTS: [&str; 9] = [
        "token",
        "session",
        "auth",
        "api-key",
        "apikey",
        "secret",
        "credential",
        "password",
        "jwt",
    ];
    EXACT.contains(&name) || PARTS.iter().any(|p| name.contains(p))
}

/// A response shared by a collapsed flight.
#[derive(Debug, Clone)]
pub struct Shared {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Shared {
    /// Whether the answer may go to the other members of the flight: not personal, and not
    /// varying on a field that is not in the key.
    pub fn shareable(&self, keyed_extra: &[String]) -> bool {
        let h = &self.headers;
        if h.contains_key(http::header::SET_COOKIE) {
            return false;
        }
        let tokens = |name: http::header::HeaderName| {
            h.get_all(name)
                .iter()
                .flat_map(|v| v.to_str().unwrap_or("*").split(','))
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        };
        if tokens(http::header::CACHE_CONTROL)
            .iter()
            .any(|t| t == "private" || t == "no-store" || t.starts_with("private="))
        {
            return false;
        }
        tokens(http::header::VARY).iter().all(|field| {
            field != "*"
                && (!NOT_KEYED.contains(&field.as_str()) || keyed_extra.iter().any(|k| k == field))
        })
    }
}

type Outcome = Option<Result<Shared, ()>>;

/// The flights in the air, by key.
type Flights = Arc<Mutex<HashMap<String, watch::Receiver<Outcome>>>>;

#[derive(Debug, Default)]
pub struct Collapser {
    flights: Flights,
    /// Share requests that carry credentials too (the service answers them alike for all).
    pub with_credentials: bool,
    /// Fields of [`NOT_KEYED`] the service varies on: put back into the key.
    pub vary: Vec<String>,
    /// The largest body shared; a larger one is not shared.
    pub max_body: usize,
}

/// What the caller should do.
pub enum Role {
    /// Go upstream, then call [`Leader::land`].
    Leader(Leader),
    /// Wait for the leader with [`follow`].
    Follower(watch::Receiver<Outcome>),
}

/// The leader's duty: land the flight for everyone. Dropped without landing (the leader's
/// client went away), it lets the followers go on their own.
pub struct Leader {
    key: String,
    tx: watch::Sender<Outcome>,
    flights: Flights,
    landed: bool,
}

impl Leader {
    fn finish(&mut self, outcome: Result<Shared, ()>) {
        if self.landed {
            return;
        }
        self.landed = true;
        lock(&self.flights).remove(&self.key);
        let _ = self.tx.send(Some(outcome));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.finish(Err(()));
    }
}

fn lock(f: &Flights) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<Outcome>>> {
    f.lock().unwrap_or_else(|e| e.into_inner())
}

impl Collapser {
    pub fn new(with_credentials: bool, vary: Vec<String>, max_body: usize) -> Self {
        Self {
            flights: Flights::default(),
            with_credentials,
            vary: vary.into_iter().map(|v| v.to_ascii_lowercase()).collect(),
            max_body,
        }
    }

    /// The key of a request that may be collapsed, or `None` (not a bodiless GET, or it
    /// carries credentials and the service does not share those).
    pub fn key<B: http_body::Body>(&self, req: &Request<B>) -> Option<String> {
        if req.method() != Method::GET || !req.body().is_end_stream() {
            return None;
        }
        let mut fields: Vec<(&str, &[u8])> = Vec::with_capacity(req.headers().len());
        for (name, value) in req.headers() {
            let name = name.as_str();
            if is_credential(name) && !self.with_credentials {
                return None;
            }
            if NOT_KEYED.contains(&name) && !self.vary.iter().any(|v| v == name) {
                continue;
            }
            fields.push((name, value.as_bytes()));
        }
        // The order of different fields does not change the answer; the order of one
        // field's values may, so the sort is stable.
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let mut key = format!("{} {}", req.method(), req.uri());
        for (name, value) in fields {
            key.push('\n');
            key.push_str(name);
            key.push(':');
            // Bytes kept exactly: two values that differ only in bytes that are not UTF-8
            // must not meet in one key.
            for b in value {
                if b.is_ascii() && *b != b'%' {
                    key.push(char::from(*b));
                } else {
                    key.push_str(&format!("%{b:02x}"));
                }
            }
        }
        Some(key)
    }

    pub fn join(&self, key: String) -> Role {
        let mut flights = lock(&self.flights);
        if let Some(rx) = flights.get(&key) {
            return Role::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(key.clone(), rx);
        Role::Leader(Leader {
            key,
            tx,
            flights: Arc::clone(&self.flights),
            landed: false,
        })
    }

    /// Lands a flight: followers get `outcome` (`Err`: go on your own).
    pub fn land(&self, mut leader: Leader, outcome: Result<Shared, ()>) {
        leader.finish(outcome);
    }
}

/// Waits for the leader; `None` means: send your own request.
pub async fn follow(mut rx: watch::Receiver<Outcome>) -> Option<Shared> {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().and_then(Result::ok),
        Err(_) => None,
    }
}
