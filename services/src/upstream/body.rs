//! An upstream's response body, which gives its HTTP/1.1 connection back to the pool when it
//! has been read to the end.

use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use super::{lock, Idle, Pool};

/// A connection waiting for its response body to end before it goes back to the pool.
pub(super) struct GiveBack<B> {
    pub(super) sender: SendRequest<B>,
    pub(super) born: Instant,
    pub(super) pool: Weak<Pool<B>>,
}

/// An upstream response body. When it has been read to the end, its connection returns to the
/// pool; dropped early, the connection is closed.
pub struct UpstreamBody<B> {
    pub(super) inner: Incoming,
    pub(super) give_back: Option<GiveBack<B>>,
}

impl<B> std::fmt::Debug for UpstreamBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("pooled_on_end", &self.give_back.is_some())
            .finish()
    }
}

impl<B> UpstreamBody<B> {
    pub(super) fn release(&mut self) {
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
        if self.give_back.is_some() && http_body::Body::is_end_stream(&self.inner) {
            self.release();
        }
    }
}

impl<B: Unpin> http_body::Body for UpstreamBody<B> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Err(_))) => this.give_back = None,
            // The end: for a chunked body the only sign of it, since hyper's `is_end_stream`
            // stays false for a chunked body even once its last chunk is read.
            Poll::Ready(None) => this.release(),
            // A reader that knows the length may stop after the last frame without polling for
            // the end, so the end is checked after every frame.
            Poll::Ready(_) if http_body::Body::is_end_stream(&this.inner) => this.release(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
