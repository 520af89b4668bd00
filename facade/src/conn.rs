//! One client connection as the request path sees it: who the peer is, what the framing guard
//! saw, and how many of its requests are still being answered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use http::HeaderValue;

use crate::framing::Framing;

/// What the facade knows about one client connection.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    /// Whether the peer is a trusted proxy (decided once per connection).
    pub trusted: bool,
    /// The peer's address as a header value, for `X-Forwarded-For`.
    pub peer_value: HeaderValue,
    /// What the framing guard saw of this connection's heads.
    pub framing: Arc<Framing>,
    /// HTTP/1 requests so far (their numbers match the framing guard's heads).
    pub h1_requests: AtomicU64,
    /// Requests so far, any protocol.
    pub requests: AtomicU64,
    /// Requests whose answer is not done yet.
    pub active: AtomicUsize,
    /// Whether the connection speaks HTTP/2.
    pub h2: AtomicBool,
    /// The edge's TLS, when the connection came over it.
    pub tls: Option<Arc<crate::tls::Tls>>,
}

impl ConnInfo {
    pub(crate) fn new(
        peer: SocketAddr,
        trusted: bool,
        peer_value: HeaderValue,
        framing: Arc<Framing>,
    ) -> Self {
        Self {
            peer,
            trusted,
            peer_value,
            framing,
            h1_requests: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            h2: AtomicBool::new(false),
            tls: None,
        }
    }
}

/// Keeps a request counted as active on its connection until its answer is done or dropped.
pub(crate) struct ConnActive(Arc<ConnInfo>);

impl ConnActive {
    pub(crate) fn start(conn: &Arc<ConnInfo>) -> Self {
        conn.requests.fetch_add(1, Relaxed);
        conn.active.fetch_add(1, Relaxed);
        Self(Arc::clone(conn))
    }
}

impl Drop for ConnActive {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}
