//! Bodies on both sides of the facade. Both stream frame by frame; nothing is buffered.
//!
//! Size: over 600 lines, kept whole on purpose: the client's body (limit, idle timer, the
//! shadow's tee) and the answer's (its sources, gathering a small chunked answer, the in-flight
//! guards) share the buffer budget's accounting and the rules for when a body has ended, which
//! read best side by side.

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

use crate::buffers::Held;
use crate::conn::ConnActive;
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
    Client(#[source] BoxError),
}

/// A client's request body as a server hands it to the request path.
#[derive(Debug)]
pub enum ClientBody {
    /// Read by hyper's server (HTTP/2, and HTTP/1 requests the facade's reader hands over).
    Hyper(Incoming),
    /// None: a request read by the facade's own HTTP/1.1 reader that declares no body.
    Empty,
    /// A body of a declared length read from its connection by the facade's own reader.
    Own(OwnBody),
}

/// Where the facade's own HTTP/1.1 reader lets the request path read a body from the
/// connection (see `server::h1`).
pub trait BodySource: Send + Sync {
    /// The next bytes of the body; `None` at its end (its declared length read).
    fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>>;
    /// Bytes of the body not yet read.
    fn left(&self) -> u64;
}

/// A request body read from its connection by the facade's own reader.
pub struct OwnBody(pub std::sync::Arc<dyn BodySource>);

impl std::fmt::Debug for OwnBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnBody")
            .field("left", &self.0.left())
            .finish()
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Hyper(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::Own(own) => own
                .0
                .poll_data(cx)
                .map(|data| data.map(|r| r.map(Frame::data).map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Hyper(body) => body.is_end_stream(),
            ClientBody::Empty => true,
            ClientBody::Own(own) => own.0.left() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Hyper(body) => body.size_hint(),
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::Own(own) => SizeHint::with_exact(own.0.left()),
        }
    }
}

/// The client's request body on its way to the upstream, with a size limit and an idle timeout.
///
/// The idle clock runs only while the facade waits for the client: when the upstream is slow
/// to take data the body is not polled, and that is not the client's fault.
pub struct RequestBody {
    /// `None`: a body made by the facade (a retried, replayed or shadow request).
    inner: Option<ClientBody>,
    /// A body made by the facade: sent once, then the end.
    full: Option<Bytes>,
    limit: Option<u64>,
    seen: u64,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    /// A copy for a shadow, taken as the body streams past.
    /// (Boxed: the shadow's, in every request moved between the request path's steps.)
    tee: Option<Box<RequestTee>>,
    /// The buffer budget's bytes for a body the facade holds, given back with the body.
    held: Option<Held>,
}

/// What a request tee hands over at the body's end: the whole body and its bytes in the
/// buffer budget, or why there is none.
pub type Teed = Result<(Bytes, Held), crate::shadow::skip::Skip>;

/// Copies a request body up to a cap (and as far as the buffer budget allows) and hands it
/// over at its end. Dropped without an end (the client broke off): nothing.
struct RequestTee {
    tx: tokio::sync::oneshot::Sender<Teed>,
    buf: Result<(bytes::BytesMut, Held), crate::shadow::skip::Skip>,
    cap: usize,
}

impl RequestTee {
    fn data(&mut self, data: &Bytes) {
        if let Ok((buf, held)) = self.buf.as_mut() {
            if buf.len() + data.len() > self.cap {
                self.buf = Err(crate::shadow::skip::Skip::BodyTooLarge);
            } else if !held.grow(data.len()) {
                self.buf = Err(crate::shadow::skip::Skip::BudgetFull);
            } else {
                buf.extend_from_slice(data);
            }
        }
    }

    fn finish(self) {
        let _ = self.tx.send(self.buf.map(|(b, held)| (b.freeze(), held)));
    }
}

impl RequestBody {
    pub fn new(inner: ClientBody, limit: Option<u64>, idle: Duration) -> Self {
        let inner = match inner {
            ClientBody::Empty => None,
            body => Some(body),
        };
        Self {
            inner,
            ..Self::empty()
        }
        .with_limits(limit, idle)
    }

    fn with_limits(mut self, limit: Option<u64>, idle: Duration) -> Self {
        self.limit = limit;
        self.idle = idle;
        self
    }

    /// A body the facade made (a shadow's copy of a client's body).
    pub fn full(bytes: Bytes) -> Self {
        Self {
            full: (!bytes.is_empty()).then_some(bytes),
            ..Self::empty()
        }
    }

    /// Keeps `held` (the budget's bytes for this body) until the body is dropped.
    pub fn holding(mut self, held: Option<Held>) -> Self {
        self.held = held;
        self
    }

    /// Copies the body (up to `cap` bytes, held in the budget `held` started) as it streams
    /// to the upstream; the receiver gets it at the end. A body already at its end is handed
    /// over at once.
    pub fn tee(&mut self, cap: usize, held: Held) -> tokio::sync::oneshot::Receiver<Teed> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tee = RequestTee {
            tx,
            buf: Ok((bytes::BytesMut::new(), held)),
            cap,
        };
        if self.is_end_stream() {
            tee.finish();
        } else {
            self.tee = Some(Box::new(tee));
        }
        rx
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
        if let Some(bytes) = this.full.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                if let (Some(data), Some(limit)) = (frame.data_ref(), this.limit) {
                    this.seen += data.len() as u64;
                    if this.seen > limit {
                        this.tee = None;
                        return Poll::Ready(Some(Err(RequestBodyError::TooLarge { limit })));
                    }
                }
                if let Some(tee) = this.tee.as_mut() {
                    if let Some(data) = frame.data_ref() {
                        tee.data(data);
                    }
                    if this.inner.as_ref().is_none_or(Body::is_end_stream) {
                        if let Some(tee) = this.tee.take() {
                            tee.finish();
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.tee = None;
                Poll::Ready(Some(Err(RequestBodyError::Client(e))))
            }
            Poll::Ready(None) => {
                if let Some(tee) = this.tee.take() {
                    tee.finish();
                }
                Poll::Ready(None)
            }
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
        self.full.is_none() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        if let Some(b) = &self.full {
            return SizeHint::with_exact(b.len() as u64);
        }
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl EmptyBody for RequestBody {
    fn empty() -> Self {
        Self {
            inner: None,
            full: None,
            limit: None,
            seen: 0,
            idle: Duration::ZERO,
            timer: None,
            waiting: false,
            tee: None,
            held: None,
        }
    }
}

/// What a response tee hands over at the body's end.
pub(crate) struct Copied {
    /// `None`: over the cap, or over the buffer budget (`over_budget`).
    pub body: Option<Bytes>,
    /// The body's bytes in the buffer budget (given back when this is dropped).
    pub held: Option<Held>,
    /// The body was not kept because the buffer budget was spent.
    pub over_budget: bool,
    /// From the exchange's start to the body's end.
    pub elapsed: Duration,
}

/// Copies a response body as it streams to the client, up to a cap and as far as the buffer
/// budget allows, and hands it over at the body's end. Dropped without an end (the client went
/// away, the upstream broke off): nothing is handed over.
pub(crate) struct ResponseTee {
    tx: Option<tokio::sync::oneshot::Sender<Copied>>,
    buf: Option<bytes::BytesMut>,
    held: Option<Held>,
    over_budget: bool,
    cap: usize,
    started: std::time::Instant,
}

impl ResponseTee {
    /// A tee keeping up to `cap` bytes in `held` (`None`: the budget had no room at all),
    /// timing from `started`, and where its copy will arrive.
    pub(crate) fn new(
        cap: usize,
        held: Option<Held>,
        started: std::time::Instant,
    ) -> (Self, tokio::sync::oneshot::Receiver<Copied>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tee = Self {
            tx: Some(tx),
            buf: Some(bytes::BytesMut::new()),
            over_budget: held.is_none(),
            held,
            cap,
            started,
        };
        (tee, rx)
    }

    fn data(&mut self, data: &Bytes) {
        let Some(buf) = self.buf.as_mut() else {
            return;
        };
        if buf.len() + data.len() > self.cap {
            self.buf = None;
        } else if !self.held.as_mut().is_some_and(|h| h.grow(data.len())) {
            self.buf = None;
            self.held = None;
            self.over_budget = true;
        } else {
            buf.extend_from_slice(data);
        }
    }

    fn finish(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Copied {
                body: self.buf.take().map(bytes::BytesMut::freeze),
                held: self.held.take(),
                over_budget: self.over_budget,
                elapsed: self.started.elapsed(),
            });
        }
    }
}

/// How many turns [`ResponseBody::coalesce`] gives an upstream to hand over a small answer.
pub(crate) const COALESCE_YIELDS: usize = 4;

/// What the facade sends back to the client: a body it made itself, or the upstream's, streamed.
pub struct ResponseBody {
    kind: Kind,
    /// The buffer budget's bytes for a body the facade holds, given back with the body.
    held: Option<Held>,
    /// A copy for the shadow comparison, taken as the body streams past.
    /// (Boxed: the shadow's, in every answer moved between the request path's steps.)
    tee: Option<Box<ResponseTee>>,
    /// Keeps the request counted as in flight (in the process and on its connection) until
    /// the body is done or dropped.
    _in_flight: Option<(InFlight, ConnActive)>,
}

enum Kind {
    Full(Option<Bytes>),
    Upstream(UpstreamBody<RequestBody>),
    Cluster(ClusterBody<RequestBody>),
    /// Frames read ahead (see [`ResponseBody::read_ahead`]), then the rest of the body, or the
    /// error that ended it.
    Replay {
        frames: std::collections::VecDeque<Frame<Bytes>>,
        rest: Option<Box<ResponseBody>>,
        failed: Option<BoxError>,
    },
}

impl ResponseBody {
    pub fn full(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Full(Some(bytes)),
            held: None,
            tee: None,
            _in_flight: None,
        }
    }

    pub fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
            held: None,
            tee: None,
            _in_flight: None,
        }
    }

    pub fn upstream(inner: UpstreamBody<RequestBody>) -> Self {
        Self {
            kind: Kind::Upstream(inner),
            held: None,
            tee: None,
            _in_flight: None,
        }
    }

    pub fn cluster(inner: ClusterBody<RequestBody>) -> Self {
        Self {
            kind: Kind::Cluster(inner),
            held: None,
            tee: None,
            _in_flight: None,
        }
    }

    /// Keeps `held` (the budget's bytes for this body) until the body is dropped.
    pub fn holding(mut self, held: Option<Held>) -> Self {
        self.held = held;
        self
    }

    pub(crate) fn with_tee(mut self, mut tee: ResponseTee) -> Self {
        if self.is_end_stream() {
            tee.finish();
        } else {
            self.tee = Some(Box::new(tee));
        }
        self
    }

    fn kind_ended(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(inner) => inner.is_end_stream(),
            Kind::Cluster(inner) => inner.is_end_stream(),
            Kind::Replay {
                frames,
                rest,
                failed,
            } => {
                frames.is_empty()
                    && failed.is_none()
                    && rest.as_ref().is_none_or(|r| r.is_end_stream())
            }
        }
    }

    /// Reads the body ahead, up to `cap` data bytes, each taken from `held` (the buffer
    /// budget): the whole body when it ends within that (`Some`), and the body to send on,
    /// which gives the client every frame read, then the rest.
    pub(crate) async fn read_ahead(
        mut self,
        cap: usize,
        held: &mut Option<Held>,
    ) -> (Option<Bytes>, ResponseBody) {
        use http_body_util::BodyExt as _;
        let mut frames = std::collections::VecDeque::new();
        let mut copy = bytes::BytesMut::new();
        let mut whole = true;
        let mut failed = None;
        let mut ended = self.is_end_stream();
        while !ended {
            match self.frame().await {
                None => ended = true,
                Some(Ok(frame)) => {
                    let fits = frame.data_ref().is_none_or(|d| {
                        copy.len() + d.len() <= cap
                            && held.as_mut().is_some_and(|h| h.grow(d.len()))
                    });
                    if let Some(d) = frame.data_ref().filter(|_| fits) {
                        copy.extend_from_slice(d);
                    }
                    frames.push_back(frame);
                    if !fits {
                        whole = false;
                        break;
                    }
                    ended = self.is_end_stream();
                }
                Some(Err(e)) => {
                    whole = false;
                    failed = Some(e);
                    break;
                }
            }
        }
        let in_flight = self._in_flight.take();
        let body = ResponseBody {
            kind: Kind::Replay {
                frames,
                rest: (!ended && failed.is_none()).then(|| Box::new(self)),
                failed,
            },
            held: None,
            tee: None,
            _in_flight: in_flight,
        };
        (whole.then(|| copy.freeze()), body)
    }

    /// A body of unknown length (an upstream's chunked answer) read whole when it is small
    /// and arrives at once — up to `cap` bytes, giving the upstream's connection task at most
    /// [`COALESCE_YIELDS`] turns to hand over its frames — so that the client gets it with a
    /// `Content-Length` (its length is returned), in one write, as nginx does. Otherwise every
    /// frame read is sent first, then the rest as it comes: a stream is never held back
    /// longer than those turns.
    pub(crate) async fn coalesce(
        mut self,
        cap: usize,
        buffers: &std::sync::Arc<crate::buffers::Buffers>,
    ) -> (ResponseBody, Option<usize>) {
        let mut frames: std::collections::VecDeque<Frame<Bytes>> =
            std::collections::VecDeque::new();
        let mut len = 0usize;
        let mut turns = 0;
        let mut failed = None;
        let mut held = buffers.hold(0);
        let ended = loop {
            let polled =
                std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut self).poll_frame(cx))).await;
            match polled {
                Poll::Ready(None) => break true,
                Poll::Ready(Some(Ok(frame))) => {
                    let fits = frame.data_ref().is_some_and(|d| {
                        len + d.len() <= cap && held.as_mut().is_some_and(|h| h.grow(d.len()))
                    });
                    if let Some(d) = frame.data_ref() {
                        len += d.len();
                    }
                    frames.push_back(frame);
                    if !fits {
                        break false;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    failed = Some(e);
                    break false;
                }
                Poll::Pending if turns < COALESCE_YIELDS => {
                    turns += 1;
                    tokio::task::yield_now().await;
                }
                Poll::Pending => break false,
            }
        };
        let in_flight = self._in_flight.take();
        if ended && failed.is_none() {
            let mut whole = bytes::BytesMut::with_capacity(len);
            for f in frames {
                if let Some(d) = f.data_ref() {
                    whole.extend_from_slice(d);
                }
            }
            let mut body = ResponseBody::full(whole.freeze()).holding(held);
            body._in_flight = in_flight;
            return (body, Some(len));
        }
        let body = ResponseBody {
            kind: Kind::Replay {
                frames,
                rest: (!ended && failed.is_none()).then(|| Box::new(self)),
                failed,
            },
            held,
            tee: None,
            _in_flight: in_flight,
        };
        (body, None)
    }

    /// Keeps the request counted as in flight until this body is done or dropped.
    pub(crate) fn hold_in_flight(&mut self, in_flight: InFlight, conn: ConnActive) {
        self._in_flight = Some((in_flight, conn));
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
            Kind::Upstream(inner) => Pin::new(inner).poll_frame(cx),
            Kind::Cluster(inner) => Pin::new(inner).poll_frame(cx),
            Kind::Replay {
                frames,
                rest,
                failed,
            } => match frames.pop_front() {
                Some(frame) => Poll::Ready(Some(Ok(frame))),
                None => match (failed.take(), rest.as_mut()) {
                    (Some(e), _) => Poll::Ready(Some(Err(e))),
                    (None, Some(rest)) => Pin::new(&mut **rest).poll_frame(cx),
                    (None, None) => Poll::Ready(None),
                },
            },
        };
        let ended = this.tee.is_some() && this.kind_ended();
        if let Some(tee) = this.tee.as_mut() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        tee.data(data);
                    }
                    if ended {
                        tee.finish();
                    }
                }
                Poll::Ready(None) => tee.finish(),
                // A broken body is no answer to compare.
                Poll::Ready(Some(Err(_))) => this.tee = None,
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.kind_ended()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream(inner) => inner.size_hint(),
            Kind::Cluster(inner) => inner.size_hint(),
            Kind::Replay {
                frames,
                rest,
                failed,
            } => {
                let read: u64 = frames
                    .iter()
                    .filter_map(|f| f.data_ref())
                    .map(|d| d.len() as u64)
                    .sum();
                match rest {
                    // A body that broke off has no length: told as exact, the server would
                    // frame it by that length and the client would take the part as whole.
                    None if failed.is_some() => {
                        let mut hint = SizeHint::new();
                        hint.set_lower(read);
                        hint
                    }
                    None => SizeHint::with_exact(read),
                    Some(rest) => {
                        let r = rest.size_hint();
                        let mut hint = SizeHint::new();
                        hint.set_lower(read + r.lower());
                        if let Some(upper) = r.upper() {
                            hint.set_upper(read + upper);
                        }
                        hint
                    }
                }
            }
        }
    }
}
