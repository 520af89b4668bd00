//! Our own HTTP/1.1 exchange for the requests that are most of a facade's traffic, to a plain
//! `http://` upstream: a safe method (GET, HEAD, OPTIONS) with no body, and any method but
//! CONNECT with a body of one declared length (`Content-Length`, agreeing with the body's own
//! size), which `upload` writes while the answer is read.
//!
//! hyper's client runs each connection in a task of its own and hands every request and
//! answer across a channel; for a small GET that machinery costs more than the exchange. Here
//! the request's own task writes the head in one `write`, reads and parses the answer's head
//! (httparse, as hyper does) and reads the body as the client takes it; the connection, its
//! read buffer and its write buffer go back to the pool together when the body ends.
//!
//! Everything else — chunked or unsized bodies, upgrades, TLS, HTTP/2 — goes through hyper. A
//! request that could have been only half understood by this path never takes it: it carries
//! no `Transfer-Encoding`, `Upgrade` or `Connection` field.
//!
//! The answer is read as RFC 9112 §6.3 frames it, with hyper's choices where the RFC leaves
//! room: `Transfer-Encoding` wins over `Content-Length` (the length is dropped and the
//! connection not reused), a `Transfer-Encoding` whose last coding is not `chunked` is read
//! to the close, an HTTP/1.0 answer with `Transfer-Encoding` is invalid, differing or
//! malformed `Content-Length` values are invalid, and 1xx answers before the final one are
//! skipped (101 is invalid: nothing asked to switch).
//!
//! Size: over 600 lines, kept whole for now: the exchange (which request takes the path, the
//! retry rule, writing while reading) and the connection it drives read best together; the
//! body's writer, the answer's framing and its body are already rooms of their own (`upload`,
//! `framing`, `body`, `chunked`). If it grows again, `answer`/`with_body` go to a room of theirs.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::{within, Appended, Opened, SendFailure, Upstream, UpstreamBody};
use crate::error::{BoxError, FailureKind, UpstreamError};

mod body;
mod chunked;
mod framing;
mod timer;
mod upload;

pub use body::Body;
pub(super) use body::Pool;
use framing::{framing, Framing};
use timer::AnswerTimer;
use upload::{Upload, UploadError};

/// The largest answer head read (hyper's default buffer limit, so that what passed before
/// passes now).
pub(super) const MAX_HEAD: usize = 8192 + 4096 * 100;
/// 1xx answers accepted before the final one.
const MAX_INTERIM: usize = 32;
/// The smallest read; reads grow while each fills the space it was given.
const MIN_READ: usize = 8 * 1024;
const MAX_READ: usize = 256 * 1024;
/// Header slots on the stack; more (up to the configured limit) are taken from the heap.
const STACK_HEADERS: usize = 64;

impl<B> Upstream<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// A request on our own HTTP/1.1 path (see `h1`). A pooled connection that turns out
    /// closed (the upstream answered nothing at all) is replaced by a new one for a bodiless
    /// safe request, as hyper's path replaces one that hands the request back unsent: the
    /// method is safe, so sending it again is allowed (RFC 9110 §9.2.2). Only a new connection
    /// is tried then: if the upstream restarted, the other pooled ones are likely closed too.
    /// A request with a body is sent once: it may have been taken before the close.
    ///
    /// An answer's head not read by `deadline` (connecting included) is a timeout. The head
    /// carries `appended` after the request's own fields.
    #[allow(clippy::manual_async_fn)] // on purpose: see `try_send`
    pub(super) fn exchange_own<'a>(
        &'a self,
        req: Request<B>,
        deadline: Option<Deadline>,
        appended: Appended<'a>,
    ) -> impl Future<Output = Result<Response<UpstreamBody<B>>, SendFailure<B>>> + 'a {
        // `req` is used where it was captured (see `try_send`).
        async move {
            let config = &self.inner.config;
            let pool = &self.inner.pool.own;
            let head_request = req.method() == http::Method::HEAD;
            let length = body_length(&req);
            let mut first = true;
            loop {
                let pooled = first
                    .then(|| pool.checkout(config.pool_idle_timeout, config.max_connection_age))
                    .flatten();
                first = false;
                let reused = pooled.is_some();
                let mut conn = match pooled {
                    Some(conn) => conn,
                    None => {
                        match Box::pin(by(deadline, within(config.connect_timeout, self.open())))
                            .await
                        {
                            // Past the deadline: a timeout, as one while waiting for the answer.
                            None => {
                                return Err(SendFailure {
                                    error: UpstreamError::timeout(),
                                    unsent: None,
                                })
                            }
                            Some(Ok(Opened::Tcp(stream))) => Box::new(Conn::new(stream)),
                            Some(Ok(Opened::Tls(_))) => {
                                return Err(SendFailure {
                                    error: UpstreamError::new(
                                        FailureKind::Connect,
                                        Some("TLS where plain TCP was expected".into()),
                                    ),
                                    unsent: Some(req),
                                })
                            }
                            Some(Err(error)) => {
                                return Err(SendFailure {
                                    error,
                                    unsent: Some(req),
                                })
                            }
                        }
                    }
                };
                conn.encode(&req, appended);
                if let Some(length) = length {
                    // Sent once: its body is spent by the first try. Boxed: the state of an
                    // exchange with a body stays out of every request's.
                    let upload = Upload::new(req.into_body(), length);
                    return crate::boxing::in_box(|| {
                        with_body(conn, upload, head_request, config, deadline, pool)
                    })
                    .await;
                }
                match conn
                    .exchange(config.max_response_headers, deadline, None)
                    .await
                {
                    Ok(head) => return answer(conn, head, head_request, None, pool),
                    Err(broke) if broke.silent && reused => continue,
                    Err(broke) => {
                        return Err(SendFailure {
                            error: broke.error,
                            unsent: None,
                        })
                    }
                }
            }
        }
    }
}

/// Sends the head `conn` holds and `upload` after it, and reads the answer.
async fn with_body<B>(
    mut conn: Box<Conn>,
    mut upload: Upload,
    head_request: bool,
    config: &crate::upstream::UpstreamConfig,
    deadline: Option<Deadline>,
    pool: &Arc<Pool>,
) -> Result<Response<UpstreamBody<B>>, SendFailure<B>> {
    let head = conn
        .exchange(config.max_response_headers, deadline, Some(&mut upload))
        .await
        .map_err(|broke| SendFailure {
            error: broke.error,
            unsent: None,
        })?;
    answer(conn, head, head_request, Some(upload), pool)
}

/// The answer whose head `head` was read on `conn`, with its body to be read from it (and
/// the rest of the request's body written, if the upstream answered before it had all).
#[allow(clippy::result_large_err)] // as `try_send`'s
fn answer<B>(
    conn: Box<Conn>,
    mut head: Head,
    head_request: bool,
    upload: Option<Upload>,
    pool: &Arc<Pool>,
) -> Result<Response<UpstreamBody<B>>, SendFailure<B>> {
    let (framing, reusable) = framing(&mut head, head_request).map_err(|e| SendFailure {
        error: e.into_upstream(),
        unsent: None,
    })?;
    // An upload the upstream stopped taking leaves the connection in no known state.
    let reusable = reusable && upload.as_ref().is_none_or(|up| up.sent() || !up.over());
    let upload = upload.filter(|up| !up.over()).map(Box::new);
    let body = Body::new(conn, framing, reusable, upload, Arc::downgrade(pool));
    let mut resp = Response::new(UpstreamBody::own(body));
    *resp.status_mut() = head.status;
    *resp.version_mut() = head.version;
    *resp.headers_mut() = head.headers;
    Ok(resp)
}

/// When an answer's head must have been read.
pub(super) type Deadline = tokio::time::Instant;

/// `fut`'s output, or `None` once `deadline` has passed.
async fn by<T>(deadline: Option<Deadline>, fut: impl Future<Output = T>) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// Whether a request can take this path (see the module's documentation).
pub(super) fn applies<B: http_body::Body>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        // A pass over the names rather than a lookup (a hash) for each of the three.
        && !req.headers().keys().any(|name| {
            name == TRANSFER_ENCODING || name == http::header::UPGRADE || name == CONNECTION
        })
        && (matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
            && req.body().is_end_stream()
            || body_length(req).is_some())
}

/// The length of a request's body, when it has one and declares it: a single
/// `Content-Length` of digits that agrees with the body's own exact size.
fn body_length<B: http_body::Body>(req: &Request<B>) -> Option<u64> {
    if req.body().is_end_stream() || *req.method() == Method::CONNECT {
        return None;
    }
    let exact = req.body().size_hint().exact()?;
    let mut values = req.headers().get_all(CONTENT_LENGTH).iter();
    let value = values.next()?.as_bytes();
    if values.next().is_some() || value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let declared = std::str::from_utf8(value).ok()?.parse::<u64>().ok()?;
    (declared == exact && exact > 0).then_some(exact)
}

/// What stopped the wait for an answer's head.
enum Failed {
    Io(io::Error),
    Upload(UploadError),
}

impl UploadError {
    fn into_upstream(self) -> UpstreamError {
        match self {
            // The cause stays findable by the caller (its own body wrapper's error).
            UploadError::Body(e) => UpstreamError::new(FailureKind::RequestBody, Some(e)),
            UploadError::Length(why) => H1Error::RequestLength(why).into_upstream(),
        }
    }

    /// The failure of an answer's body read while its request's body was still sent.
    fn into_h1(self) -> H1Error {
        match self {
            UploadError::Body(e) => H1Error::RequestBody(e),
            UploadError::Length(why) => H1Error::RequestLength(why),
        }
    }
}

/// What went wrong in an exchange on this path.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    #[error("the upstream closed the connection before its answer ended")]
    Incomplete,
    #[error("the connection failed: {0}")]
    Io(#[source] io::Error),
    #[error("the answer is not valid HTTP/1.1: {0}")]
    Invalid(&'static str),
    #[error("{0}")]
    RequestLength(&'static str),
    #[error("the request body failed while the answer was read: {0}")]
    RequestBody(#[source] BoxError),
}

impl H1Error {
    pub(super) fn into_upstream(self) -> UpstreamError {
        let kind = match self {
            H1Error::Invalid(_) => FailureKind::Protocol,
            H1Error::Incomplete | H1Error::Io(_) => FailureKind::Reset,
            H1Error::RequestLength(_) | H1Error::RequestBody(_) => FailureKind::RequestBody,
        };
        UpstreamError::new(kind, Some(Box::new(self)))
    }
}

/// A failed exchange, and whether the upstream had answered anything at all (when it had
/// not, on a connection from the pool, the request is sent again on another).
pub(super) struct Broke {
    pub(super) error: UpstreamError,
    pub(super) silent: bool,
}

impl Broke {
    /// No answer by the deadline (not retried: the upstream may be working on it).
    fn timeout() -> Self {
        Broke {
            error: UpstreamError::timeout(),
            silent: false,
        }
    }
}

/// One connection to the upstream, with its buffers.
pub(super) struct Conn {
    io: TcpStream,
    /// Bytes read and not yet used; kept with the connection so that its memory is reused.
    buf: BytesMut,
    /// How much the next read asks for.
    read_size: usize,
    /// The request head being written.
    out: Vec<u8>,
    /// Where each header of the answer being parsed lies in its head.
    spans: Vec<Span>,
    /// The answer's deadline, one timer for every exchange (see `timer`): a timer made and
    /// dropped per request takes the timer wheel's lock twice.
    timer: AnswerTimer,
    born: Instant,
}

#[derive(Clone, Copy)]
struct Span {
    name: (usize, usize),
    value: (usize, usize),
}

impl Conn {
    pub(super) fn new(io: TcpStream) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            read_size: MIN_READ,
            out: Vec::new(),
            spans: Vec::new(),
            timer: AnswerTimer::new(),
            born: Instant::now(),
        }
    }

    /// Whether the upstream has closed this idle connection (or sent something unasked),
    /// as far as the reactor has seen; a close it has not seen yet shows as a silent failure.
    fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                matches!(self.io.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Takes the waker of the last exchange's task out of the answer's timer. Idle in the
    /// pool, the connection must not keep that task (its memory) alive until the timer fires,
    /// nor wake it then: a pool of idle connections would otherwise hold as many finished
    /// tasks. (The reactor holds no waker here: it gives each up when it wakes it, and the
    /// answer was read to its end.)
    pub(super) fn forget_waker(&mut self) {
        self.timer.forget_waker();
    }

    /// Reads more of the answer into the buffer: the bytes read, 0 at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < self.read_size / 2 {
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        // Through `AsyncRead` rather than `try_read_buf`: tokio takes a short read as the end
        // of what the socket holds and waits for the next readiness, where `try_read_buf`
        // would ask the kernel once more only to hear EAGAIN.
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.buf
        ))?;
        if n == room {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        } else if n < self.read_size / 4 {
            self.read_size = (self.read_size / 2).max(MIN_READ);
        }
        Poll::Ready(Ok(n))
    }

    /// Writes the head given to [`Conn::encode`].
    fn poll_send(&mut self, cx: &mut Context<'_>, written: &mut usize) -> Poll<io::Result<()>> {
        while *written < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Sets the timer to `deadline`; whether there is one.
    fn arm(&mut self, deadline: Option<Deadline>) -> bool {
        let Some(deadline) = deadline else {
            return false;
        };
        self.timer.arm(deadline);
        true
    }

    /// What `step` gives, or `None` once the armed timer fires first.
    async fn by_timer<T>(
        &mut self,
        armed: bool,
        mut step: impl FnMut(&mut Self, &mut Context<'_>) -> Poll<T>,
    ) -> Option<T> {
        std::future::poll_fn(|cx| match step(self, cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending if armed => self.timer.poll_due(cx).map(|()| None),
            Poll::Pending => Poll::Pending,
        })
        .await
    }

    /// Takes `req`'s head (its target in origin form), with `appended` after its fields, to
    /// send with [`Conn::exchange`].
    pub(super) fn encode<B>(&mut self, req: &Request<B>, appended: Appended<'_>) {
        encode(&mut self.out, req, appended);
    }

    /// Sends the head given to [`Conn::encode`] (and the body, with `upload`, which goes on
    /// while the answer is awaited) and reads the final answer's head, by `deadline` if there
    /// is one. An answer may come before the body has all been sent: the caller keeps the
    /// upload going (see `upload`).
    pub(super) async fn exchange(
        &mut self,
        max_headers: usize,
        deadline: Option<Deadline>,
        mut upload: Option<&mut Upload>,
    ) -> Result<Head, Broke> {
        let armed = self.arm(deadline);
        if upload.is_none() {
            let mut written = 0;
            match self
                .by_timer(armed, |conn, cx| conn.poll_send(cx, &mut written))
                .await
            {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    return Err(Broke {
                        error: H1Error::Io(e).into_upstream(),
                        silent: true,
                    })
                }
                None => return Err(Broke::timeout()),
            }
            if self.out.capacity() > MAX_HEAD {
                self.out = Vec::new();
            }
        }
        let mut interim = 0;
        let mut searched = 0;
        loop {
            if let Some(end) = head_end(&self.buf, searched).filter(|end| *end <= MAX_HEAD) {
                let head = self.parse(end, max_headers).map_err(|e| Broke {
                    error: e.into_upstream(),
                    silent: false,
                })?;
                searched = 0;
                match head.status.as_u16() {
                    101 => {
                        return Err(Broke {
                            error: H1Error::Invalid("101 Switching Protocols, unasked")
                                .into_upstream(),
                            silent: false,
                        })
                    }
                    100..=199 if interim < MAX_INTERIM => interim += 1,
                    100..=199 => {
                        return Err(Broke {
                            error: H1Error::Invalid("too many 1xx answers").into_upstream(),
                            silent: false,
                        })
                    }
                    _ => return Ok(head),
                }
                continue;
            }
            // (A head that ends beyond the limit is not looked at either.)
            if self.buf.len() >= MAX_HEAD {
                return Err(Broke {
                    error: H1Error::Invalid("the head is too large").into_upstream(),
                    silent: false,
                });
            }
            searched = self.buf.len().saturating_sub(2);
            // A request with a body is never sent again (its body is spent), so no failure
            // of one is silent.
            let silent = self.buf.is_empty() && interim == 0 && upload.is_none();
            let read = self
                .by_timer(armed, |conn, cx| {
                    // The body goes on while the answer is awaited: the upstream may answer
                    // before it has read it all.
                    if let Some(up) = upload.as_deref_mut().filter(|up| !up.over()) {
                        if let Poll::Ready(Err(e)) = up.poll(&mut conn.io, &conn.out, cx) {
                            return Poll::Ready(Err(Failed::Upload(e)));
                        }
                    }
                    conn.poll_fill(cx).map_err(Failed::Io)
                })
                .await;
            match read {
                None => return Err(Broke::timeout()),
                Some(Ok(0)) => {
                    return Err(Broke {
                        error: H1Error::Incomplete.into_upstream(),
                        silent,
                    })
                }
                Some(Ok(_)) => {}
                Some(Err(Failed::Io(e))) => {
                    return Err(Broke {
                        error: H1Error::Io(e).into_upstream(),
                        silent,
                    })
                }
                Some(Err(Failed::Upload(e))) => {
                    return Err(Broke {
                        error: e.into_upstream(),
                        silent: false,
                    })
                }
            }
        }
    }

    /// Parses the head that ends at `end` and takes it out of the buffer.
    fn parse(&mut self, end: usize, max_headers: usize) -> Result<Head, H1Error> {
        // Slots left uninitialised, as hyper does: httparse writes those it fills, and
        // zeroing them cost more than parsing a small head. More than fit on the stack are
        // taken from the heap only for a head that has more.
        let mut stack =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        let bytes = &self.buf[..end];
        let parsed = match scan(
            bytes,
            &mut stack[..max_headers.min(STACK_HEADERS)],
            &mut self.spans,
        )? {
            Some(parsed) => parsed,
            None if max_headers > STACK_HEADERS => {
                let mut heap = Vec::new();
                heap.resize_with(max_headers, std::mem::MaybeUninit::uninit);
                scan(bytes, &mut heap, &mut self.spans)?
                    .ok_or(H1Error::Invalid("too many header fields"))?
            }
            None => return Err(H1Error::Invalid("too many header fields")),
        };
        let (len, status, version) = parsed;
        // One copy of the head, which the header values share; the read buffer stays ours.
        let head = Bytes::copy_from_slice(&self.buf[..len]);
        self.buf.advance(len);
        // With room for the fields a proxy adds on the way back (Via and the like): a map
        // that grows rehashes every field. A map holds at most 32,768 fields; more (only a
        // limit raised past that lets them through) are refused, not a panic.
        let too_many = |_| H1Error::Invalid("too many header fields");
        let mut headers = HeaderMap::try_with_capacity(self.spans.len() + 4).map_err(too_many)?;
        for span in &self.spans {
            let name = crate::names::header_name(&head[span.name.0..span.name.1])
                .map_err(|_| H1Error::Invalid("a header name is not one"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(span.value.0..span.value.1))
                .map_err(|_| H1Error::Invalid("a header value is not one"))?;
            headers.try_append(name, value).map_err(too_many)?;
        }
        Ok(Head {
            status,
            version,
            headers,
        })
    }
}

/// Parses a response head into `spans` (where each field lies in `bytes`): its length,
/// status and version; `None` when it has more fields than `slots`.
fn scan<'b>(
    bytes: &'b [u8],
    slots: &mut [std::mem::MaybeUninit<httparse::Header<'b>>],
    spans: &mut Vec<Span>,
) -> Result<Option<(usize, StatusCode, Version)>, H1Error> {
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, bytes, slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Err(H1Error::Invalid("the head is cut short")),
        Err(httparse::Error::TooManyHeaders) => return Ok(None),
        Err(_) => return Err(H1Error::Invalid("the head does not parse")),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(H1Error::Invalid("the status code is not one"))?;
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let base = bytes.as_ptr() as usize;
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        (start, start + s.len())
    };
    spans.clear();
    for h in resp.headers.iter() {
        spans.push(Span {
            name: at(h.name.as_bytes()),
            value: at(h.value),
        });
    }
    Ok(Some((len, status, version)))
}

/// The head of a final answer.
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    pub(super) headers: HeaderMap,
}

/// Writes the request head: request line, fields (`appended` after the request's own),
/// blank line.
fn encode<B>(out: &mut Vec<u8>, req: &Request<B>, appended: Appended<'_>) {
    out.clear();
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    match req.uri().path_and_query() {
        Some(target) => out.extend_from_slice(target.as_str().as_bytes()),
        None => out.push(b'/'),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut field = |name: &HeaderName, value: &HeaderValue| {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    for (name, value) in req.headers() {
        field(name, value);
    }
    for (name, value) in appended {
        field(name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Where the head in `buf` ends (after its blank line), looking from `from` on; the blank
/// line may be CRLF or a bare LF, as httparse reads it.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    for i in memchr::memchr_iter(b'\n', buf.get(from..)?) {
        let i = from + i;
        match buf.get(i + 1..i + 3) {
            Some([b'\n', _]) => return Some(i + 2),
            Some([b'\r', b'\n']) => return Some(i + 3),
            None if buf.get(i + 1) == Some(&b'\n') => return Some(i + 2),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
