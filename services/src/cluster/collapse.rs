//! Request collapsing: identical GETs in flight at the same time share one upstream call. The
//! first (the leader) goes upstream and reads the response whole, up to a size cap; the others
//! wait for it and get a copy. A response over the cap, a failure, or a leader that gives up
//! sends each follower on its own way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use tokio::sync::watch;

/// The headers that can change a response for the same URL, and so are part of the key.
const VARY: [&str; 3] = ["accept", "accept-encoding", "accept-language"];

/// A response shared by a collapsed flight.
#[derive(Debug, Clone)]
pub struct Shared {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Outcome = Option<Result<Shared, ()>>;

/// The flights in the air, by key.
type Flights = Arc<Mutex<HashMap<String, watch::Receiver<Outcome>>>>;

#[derive(Debug, Default)]
pub struct Collapser {
    flights: Flights,
    /// Share requests that carry credentials (`Authorization`, `Cookie`) too.
    pub with_credentials: bool,
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
    pub fn new(with_credentials: bool, max_body: usize) -> Self {
        Self {
            flights: Flights::default(),
            with_credentials,
            max_body,
        }
    }

    /// The key of a request that may be collapsed, or `None`.
    pub fn key<B: http_body::Body>(&self, req: &Request<B>) -> Option<String> {
        if req.method() != Method::GET || !req.body().is_end_stream() {
            return None;
        }
        let h = req.headers();
        let mut key = format!("{} {}", req.method(), req.uri());
        for name in VARY {
            for v in h.get_all(name) {
                key.push('\n');
                key.push_str(name);
                key.push(':');
                key.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
        }
        for name in ["authorization", "cookie"] {
            if h.contains_key(name) {
                if !self.with_credentials {
                    return None;
                }
                for v in h.get_all(name) {
                    key.push('\n');
                    key.push_str(name);
                    key.push(':');
                    key.push_str(&String::from_utf8_lossy(v.as_bytes()));
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
