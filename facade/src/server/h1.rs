//! The facade's own HTTP/1.1 server for the requests that are most of the traffic: `GET`,
//! `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE` and `OPTIONS` over HTTP/1.1, in origin form, with
//! no body or one of a single plain `Content-Length`, and no `Transfer-Encoding`, `Upgrade`,
//! `Expect` or `Connection` tokens but `keep-alive`. It reads heads with httparse into one
//! buffer kept per connection, hands each request to the request path (which reads a body
//! from the connection as it sends it on, see `body`), and writes the answer's head and its
//! first body bytes in one write, without a connection task between them.
//!
//! Anything else — a chunked body, a length hyper must judge (a list, two fields, a sign), an
//! upgrade, HTTP/1.0, HTTP/2's preface, a head httparse cannot read or one too large for this
//! reader — hands the connection, with the
//! bytes read so far, to hyper's server for the rest of its life ([`Handoff`]). So every error
//! answer about framing, size and syntax is still hyper's, and what this reader serves it
//! serves as hyper's server would: the answer's head is encoded by the same rules (length or
//! chunked framing from the body's size, `Date` when absent, `Connection: close` honoured,
//! no body for `HEAD`, 204 and 304), the head timer closes an idle connection after
//! `header_read_timeout`, and a client that closes its side mid-request cancels the request.

use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::HeaderValue;
use http::{Method, Request, Uri, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::body::ClientBody;
use crate::conn::ConnInfo;
use crate::facade::Facade;

use super::GracefulConn;

mod answer;
mod body;
use answer::write_answer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most fields a head this reader takes may have (more: hyper's server reads it).
const MAX_FIELDS: usize = 64;
/// The most bytes read while waiting for a head; past it the head is hyper's.
const HEAD_CAP: usize = 16 * 1024;
/// The first read's size; reads grow up to `MAX_READ` while each fills its room.
const READ_SIZE: usize = 8 * 1024;
const MAX_READ: usize = 64 * 1024;

/// The connection, handed over to hyper's server with the bytes read from it so far.
pub(super) struct Handoff<IO> {
    pub io: IO,
    pub read: Bytes,
}

/// What the connection's driver and the reader share: whether to finish, and whether the
/// reader is waiting for a head with nothing read (then finishing is closing).
#[derive(Default)]
pub(super) struct Ctl {
    finish: AtomicBool,
    idle: AtomicBool,
}

/// The reader as a connection [`super::drive`] can ask to finish.
pub(super) struct OwnConn<F> {
    serving: Pin<Box<F>>,
    ctl: Arc<Ctl>,
}

impl<F> OwnConn<F> {
    pub(super) fn new(serving: F, ctl: Arc<Ctl>) -> Self {
        Self {
            serving: Box::pin(serving),
            ctl,
        }
    }
}

impl<F, T> Future for OwnConn<F>
where
    F: Future<Output = Result<Option<T>, BoxError>>,
{
    type Output = Result<Option<T>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.ctl.finish.load(Relaxed) && self.ctl.idle.load(Relaxed) {
            return Poll::Ready(Ok(None));
        }
        self.serving.as_mut().poll(cx)
    }
}

impl<F> GracefulConn for OwnConn<F> {
    // HTTP/2 is hyper's: the connection is handed over to it first.
    const MAY_SPEAK_H2: bool = false;

    fn graceful_shutdown(self: Pin<&mut Self>) {
        self.ctl.finish.store(true, Relaxed);
    }
}

/// Serves requests on `io` until the connection ends (`None`) or a request is not this
/// reader's to serve (the connection and the bytes read, for hyper's server).
pub(super) async fn serve<IO>(
    mut io: IO,
    facade: Facade,
    info: Arc<ConnInfo>,
    ctl: Arc<Ctl>,
) -> Result<Option<Handoff<IO>>, BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &facade.config().limits;
    let head_timeout = limits.header_read_timeout;
    let mut heads = Heads::new(limits.max_headers.min(MAX_FIELDS));
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let timer = tokio::time::sleep(head_timeout);
    tokio::pin!(timer);
    let mut timer = HeadTimer {
        sleep: timer,
        due: tokio::time::Instant::now(),
        polled: false,
    };
    let mut first = true;
    let mut read_size = READ_SIZE;
    loop {
        // Asked to finish: no further request is read (as hyper's server does).
        if ctl.finish.load(Relaxed) {
            return Ok(None);
        }
        // Wait for a whole head; the head timer runs from the first wait. (The first head's
        // wait is the driver's: it counts the connections that never sent one.)
        let mut timing = false;
        let head = loop {
            match heads.read(&buf) {
                Read::Head(head) => break head,
                Read::Partial if buf.len() < HEAD_CAP => {}
                Read::Partial | Read::NotOurs => {
                    return Ok(Some(Handoff {
                        io,
                        read: buf.freeze(),
                    }))
                }
            }
            // Waiting for a head: asked to finish, the connection closes now (a head not yet
            // whole is dropped, as hyper's server drops it).
            ctl.idle.store(true, Relaxed);
            if !timing && !first {
                timer.due = tokio::time::Instant::now() + head_timeout;
                timing = true;
            }
            let free = room(&mut buf, read_size);
            let n = tokio::select! {
                biased;
                n = io.read_buf(&mut buf) => n?,
                () = std::future::poll_fn(|cx| timer.poll(cx)), if timing => {
                    tracing::debug!(peer = %info.peer, "no complete request head in time; closing");
                    return Ok(None);
                }
            };
            ctl.idle.store(false, Relaxed);
            if n == 0 {
                return Ok(None);
            }
            // Reads grow while each fills the room it had (a head with a body behind it is
            // then read in one), and shrink back when they are small.
            if n == free {
                read_size = (read_size * 2).min(MAX_READ);
            } else if n < read_size / 4 {
                read_size = (read_size / 2).max(READ_SIZE);
            }
        };
        first = false;
        let Some(req) = head.request(&mut buf, &heads.spans) else {
            // A target the URI parser refuses: hyper's server answers it (400).
            return Ok(Some(Handoff {
                io,
                read: buf.freeze(),
            }));
        };
        let is_head = req.method() == Method::HEAD;
        if head.length > 0 {
            // Boxed: the state of a request with a body stays out of every connection's.
            let served = strangler_services::boxing::in_box(|| {
                body::serve(
                    io,
                    buf,
                    req,
                    head.length,
                    &facade,
                    &info,
                    &mut out,
                    head_timeout,
                )
            })
            .await?;
            match served {
                Some(kept) => (io, buf) = kept,
                None => return Ok(None),
            }
            continue;
        }

        // While the request is answered, a client that closes its side cancels it.
        let answering = facade.handle(req, &info);
        tokio::pin!(answering);
        let mut watching = buf.is_empty();
        let resp = loop {
            if !watching {
                break answering.as_mut().await;
            }
            room(&mut buf, READ_SIZE);
            tokio::select! {
                biased;
                resp = answering.as_mut() => break resp,
                n = io.read_buf(&mut buf) => match n {
                    Ok(0) | Err(_) => return Ok(None),
                    Ok(_) => watching = false,
                },
            }
        };
        if !write_answer(&mut io, resp, is_head, &mut out, Some(&mut buf)).await? {
            let _ = io.shutdown().await;
            return Ok(None);
        }
    }
}

/// The head timer, kept lazily: each wait for a head only sets when it is due (a clock
/// read), and the timer — whose reset and poll cost ~270 instructions, per request — is moved
/// to that time only when it fires before it. Polled once, it holds the task's waker until it
/// fires; a wake that did not come from it finds it not elapsed and costs one load.
struct HeadTimer<'a> {
    sleep: Pin<&'a mut tokio::time::Sleep>,
    /// When the current wait for a head ends.
    due: tokio::time::Instant,
    /// Whether the timer was polled since it was last set (its waker is then registered).
    polled: bool,
}

impl HeadTimer<'_> {
    /// Ready once `due` has passed (never before it).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.polled && !self.sleep.is_elapsed() {
            return Poll::Pending;
        }
        if self.sleep.deadline() < self.due {
            // Set for an earlier wait: moved to this one's end.
            self.sleep.as_mut().reset(self.due);
        }
        self.polled = true;
        self.sleep.as_mut().poll(cx)
    }
}

/// What the buffer holds.
enum Read {
    Head(Head),
    /// Not a whole head yet.
    Partial,
    /// Something hyper's server is to read.
    NotOurs,
}

/// Where a field's name and value lie in the buffer (start and end of each).
type Span = [u32; 4];

/// Where a head's parts lie in the buffer; its fields' in the spans handed to [`read_head`].
struct Head {
    len: usize,
    method: Method,
    target: (usize, usize),
    count: usize,
    /// The body's declared length (`Content-Length`; 0 without one).
    length: u64,
}

/// Reads the heads of one connection from its buffer. A head not yet whole is parsed again only
/// once the bytes read since could end it (an empty line), so that a client sending its head a
/// byte at a time costs time linear in the head, not quadratic.
struct Heads {
    /// How much of the buffer was looked at when it last held no whole head (0: nothing yet).
    checked: usize,
    max_fields: usize,
    spans: [Span; MAX_FIELDS],
    /// Parses so far, for the tests.
    #[cfg(test)]
    parses: usize,
}

impl Heads {
    fn new(max_fields: usize) -> Self {
        Self {
            checked: 0,
            max_fields,
            spans: [[0; 4]; MAX_FIELDS],
            #[cfg(test)]
            parses: 0,
        }
    }

    fn read(&mut self, buf: &[u8]) -> Read {
        if self.checked > 0 && !may_end_head(buf, self.checked) {
            self.checked = buf.len();
            return Read::Partial;
        }
        #[cfg(test)]
        {
            self.parses += 1;
        }
        match read_head(buf, self.max_fields, &mut self.spans) {
            Read::Partial => {
                self.checked = buf.len();
                Read::Partial
            }
            other => {
                self.checked = 0;
                other
            }
        }
    }
}

/// Whether the bytes of `buf` from `from` on — and the three before, where a line end may have
/// been split between reads — hold an empty line (`\n\n` or `\n\r\n`), which every head ends with.
fn may_end_head(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(3).min(buf.len());
    memchr::memchr_iter(b'\n', &buf[start..]).any(|i| {
        let after = &buf[start + i + 1..];
        after.starts_with(b"\n") || after.starts_with(b"\r\n")
    })
}

/// Reads a head from `buf`, noting where its fields lie in `spans` (kept by the connection,
/// so that a head's 64 spans are not moved with it).
fn read_head(buf: &[u8], max_fields: usize, spans: &mut [Span; MAX_FIELDS]) -> Read {
    if buf.is_empty() {
        return Read::Partial;
    }
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut fields[..max_fields]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Read::Partial,
        Err(_) => return Read::NotOurs,
    };
    let method = match req.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        Some("POST") => Method::POST,
        Some("PUT") => Method::PUT,
        Some("PATCH") => Method::PATCH,
        Some("DELETE") => Method::DELETE,
        Some("OPTIONS") => Method::OPTIONS,
        _ => return Read::NotOurs,
    };
    let Some(path) = req.path.filter(|p| p.starts_with('/')) else {
        return Read::NotOurs;
    };
    if req.version != Some(1) {
        return Read::NotOurs;
    }
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| {
        (
            s.as_ptr() as usize - base,
            s.as_ptr() as usize - base + s.len(),
        )
    };
    let mut head = Head {
        len,
        method,
        target: at(path.as_bytes()),
        count: req.headers.len(),
        length: 0,
    };
    let mut lengths = 0;
    for (slot, f) in spans.iter_mut().zip(req.headers.iter()) {
        let name = f.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            // One length of digits only; anything else (a list, a sign, two fields, a
            // length past 64 bits) is hyper's to judge.
            lengths += 1;
            match parse_length(f.value) {
                Some(n) if lengths == 1 => head.length = n,
                _ => return Read::NotOurs,
            }
        // Fields that mean another framing, an upgrade, an interim answer or a connection
        // rule: hyper's.
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"expect")
            || (name.eq_ignore_ascii_case(b"connection")
                && !f.value.eq_ignore_ascii_case(b"keep-alive"))
        {
            return Read::NotOurs;
        }
        let (ns, ne) = at(name);
        let (vs, ve) = at(f.value);
        // The buffer holds at most a few times `HEAD_CAP` bytes: offsets fit.
        *slot = [ns as u32, ne as u32, vs as u32, ve as u32];
    }
    Read::Head(head)
}

/// A `Content-Length` value of 1 to 18 digits (so that it fits without overflow checks).
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

impl Head {
    /// The request, its head taken out of `buf` (left as it was when the target is refused).
    fn request(&self, buf: &mut BytesMut, spans: &[Span]) -> Option<Request<ClientBody>> {
        let bytes = buf.split_to(self.len).freeze();
        let uri = match Uri::from_maybe_shared(bytes.slice(self.target.0..self.target.1)) {
            Ok(uri) => uri,
            Err(_) => {
                let mut whole = BytesMut::with_capacity(bytes.len() + buf.len());
                whole.extend_from_slice(&bytes);
                whole.extend_from_slice(buf);
                *buf = whole;
                return None;
            }
        };
        // Filled in place (a map made apart and moved in drops the request's own).
        let mut req = Request::new(ClientBody::Empty);
        let headers = req.headers_mut();
        // Room for what the request path adds (the forwarding fields and `Via`). It cannot
        // fail: a head here has at most `MAX_FIELDS` fields.
        let _ = headers.try_reserve(self.count + 5);
        for &[ns, ne, vs, ve] in &spans[..self.count] {
            let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
            // httparse let through only token names and visible values, which both parsers
            // take; a failure here would be a bug, and is answered as hyper would (by hyper).
            let (Ok(name), Ok(value)) = (
                strangler_services::names::header_name(&bytes[ns..ne]),
                HeaderValue::from_maybe_shared(bytes.slice(vs..ve)),
            ) else {
                let mut whole = BytesMut::with_capacity(bytes.len() + buf.len());
                whole.extend_from_slice(&bytes);
                whole.extend_from_slice(buf);
                *buf = whole;
                return None;
            };
            headers.append(name, value);
        }
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        Some(req)
    }
}

/// Keeps room in the read buffer for one read of `size` bytes (at least half of it; a read
/// into a full buffer would read 0 bytes, which means the end of the stream): the room there
/// is. With nothing held, the buffer's own space is reused.
fn room(buf: &mut BytesMut, size: usize) -> usize {
    if buf.capacity() - buf.len() < size / 2 {
        buf.reserve(size);
    }
    buf.capacity() - buf.len()
}

/// A connection whose first reads give back bytes already read from it.
pub(super) struct Rewind<T> {
    read: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    pub(super) fn new(inner: T, read: Bytes) -> Self {
        Self { read, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            let bytes = self.read.split_to(n);
            buf.put_slice(&bytes);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
