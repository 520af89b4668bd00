//! An upstream's response body, which gives its HTTP/1.1 connection back to the pool when it
//! has been read to the end: hyper's, or our own path's (see `h1`, whose body returns its
//! connection itself).

use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use super::{h1, lock, Idle, Pool};
use crate::error::BoxError;

/// A connection waiting for its response body to end before it goes back to the pool.
pub(super) struct GiveBack<B> {
    pub(super) sender: SendRequest<B>,
    pub(super) born: Instant,
    pub(super) pool: Weak<Pool<B>>,
}

/// An upstream response body. When it has been read to the end, its connection returns to the
/// pool; dropped early, the connection is closed.
pub struct UpstreamBody<B> {
    source: Source,
    give_back: Option<GiveBack<B>>,
}

enum Source {
    Hyper(Incoming),
    Own(h1::Body),
}

impl<B> std::fmt::Debug for UpstreamBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("pooled_on_end", &self.give_back.is_some())
            .finish()
    }
}

impl<B> UpstreamBody<B> {
    /// hyper's body; `give_back` is its connection, for the pool when the body has ended.
    pub(super) fn hyper(inner: Incoming, give_back: Option<GiveBack<B>>) -> Self {
        let mut body = Self {
            source: Source::Hyper(inner),
            give_back,
        };
        if body.source_ended() {
            body.release();
        }
        body
    }

    pub(super) fn own(body: h1::Body) -> Self {
        Self {
            source: Source::Own(body),
            give_back: None,
        }
    }

    fn source_ended(&self) -> bool {
        match &self.source {
            Source::Hyper(inner) => http_body::Body::is_end_stream(inner),
            Source::Own(own) => http_body::Body::is_end_stream(own),
        }
    }

    fn release(&mut self) {
        let Some(give_back) = self.give_back.take() else {
            return;
        };
        let Some(pool) = give_back.pool.upgrade() else {
            return;
        };
        let mut idle = lock(&pool.idle);
        if idle.len() < pool.max_idle.load(std::sync::atomic::Ordering::Relaxed) {
            idle.push(Idle {
                sender: give_back.sender,
                since: Instant::now(),
                born: give_back.born,
            });
        }
    }
}

impl<B> Drop for UpstreamBody<B> {
    fn drop(&mut self) {
        if self.give_back.is_some() && self.source_ended() {
            self.release();
        }
    }
}

impl<B: Unpin> http_body::Body for UpstreamBody<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let inner = match &mut this.source {
            Source::Own(own) => return Pin::new(own).poll_frame(cx).map_err(BoxError::from),
            Source::Hyper(inner) => inner,
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Err(_))) => this.give_back = None,
            // The end: for a chunked body the only sign of it, since hyper's `is_end_stream`
            // stays false for a chunked body even once its last chunk is read.
            Poll::Ready(None) => this.release(),
            // A reader that knows the length may stop after the last frame without polling for
            // the end, so the end is checked after every frame.
            Poll::Ready(_) if this.source_ended() => this.release(),
            _ => {}
        }
        polled.map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.source_ended()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.source {
            Source::Hyper(inner) => http_body::Body::size_hint(inner),
            Source::Own(own) => http_body::Body::size_hint(own),
        }
    }
}
