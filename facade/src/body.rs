//! Bodies on both sides of the facade. Both stream frame by frame; nothing is buffered.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use strangler_services::cluster::{ClusterBody, EmptyBody};
use strangler_services::UpstreamBody;
use tokio::time::{Instant, Sleep};

use crate::telemetry::InFlight;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a client's request body could not be passed on.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("the request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the client sent no body data for {0:?}")]
    Idle(Duration),
    #[error("the client's request body broke off: {0}")]
    Client(#[source] hyper::Error),
}

/// The client's request body on its way to the upstream, with a size limit and an idle timeout.
///
/// The idle clock runs only while the facade waits for the client: when the upstream is slow
/// to take data the body is not polled, and that is not the client's fault.
pub struct RequestBody {
    /// `None`: an empty body made by the facade (a retried or replayed request).
    inner: Option<Incoming>,
    limit: Option<u64>,
    seen: u64,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl RequestBody {
    pub fn new(inner: Incoming, limit: Option<u64>, idle: Duration) -> Self {
        Self {
            inner: Some(inner),
            limit,
            seen: 0,
            idle,
            timer: None,
            waiting: false,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                if let (Some(data), Some(limit)) = (frame.data_ref(), this.limit) {
                    this.seen += data.len() as u64;
                    if this.seen > limit {
                        return Poll::Ready(Some(Err(RequestBodyError::TooLarge { limit })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(RequestBodyError::Client(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = Instant::now() + this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.waiting {
                    this.waiting = true;
                    timer.as_mut().reset(deadline);
                }
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(RequestBodyError::Idle(this.idle))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl EmptyBody for RequestBody {
    fn empty() -> Self {
        Self {
            inner: None,
            limit: None,
            seen: 0,
            idle: Duration::ZERO,
            timer: None,
            waiting: false,
        }
    }
}

/// What the facade sends back to the client: a body it made itself, or the upstream's, streamed.
pub struct ResponseBody {
    kind: Kind,
    /// A copy for the shadow comparison, taken as the body streams past.
    tee: Option<crate::shadow::Tee>,
    /// Keeps the request counted as in flight until the body is done or dropped.
    _in_flight: Option<InFlight>,
}

enum Kind {
    Full(Option<Bytes>),
    Upstream(UpstreamBody<RequestBody>),
    Cluster(ClusterBody<RequestBody>),
}

impl ResponseBody {
    pub fn full(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Full(Some(bytes)),
            tee: None,
            _in_flight: None,
        }
    }

    pub fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
            tee: None,
            _in_flight: None,
        }
    }

    pub fn upstream(inner: UpstreamBody<RequestBody>) -> Self {
        Self {
            kind: Kind::Upstream(inner),
            tee: None,
            _in_flight: None,
        }
    }

    pub fn cluster(inner: ClusterBody<RequestBody>) -> Self {
        Self {
            kind: Kind::Cluster(inner),
            tee: None,
            _in_flight: None,
        }
    }

    pub(crate) fn with_tee(mut self, mut tee: crate::shadow::Tee) -> Self {
        if self.is_end_stream() {
            tee.finish();
        } else {
            self.tee = Some(tee);
        }
        self
    }

    pub(crate) fn with_in_flight(mut self, in_flight: InFlight) -> Self {
        self._in_flight = Some(in_flight);
        self
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(inner) => Pin::new(inner)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BoxError),
            Kind::Cluster(inner) => Pin::new(inner)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BoxError),
        };
        if this.tee.is_some() {
            let ended = this.is_end_stream();
            crate::shadow::tee_poll(&mut this.tee, &polled, ended);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(inner) => inner.is_end_stream(),
            Kind::Cluster(inner) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream(inner) => inner.size_hint(),
            Kind::Cluster(inner) => inner.size_hint(),
        }
    }
}
