//! A request body of a declared length, read from its connection by the request path while
//! the reader writes the answer to the same connection.
//!
//! For the length of such a request the connection and its read buffer live behind a lock
//! shared by the body ([`BodySource`], polled by whoever sends the body on — the upstream
//! exchange) and the reader, which writes the answer through [`Through`]. Both run in the
//! connection's task, one poll at a time, so the lock is never contended and never held
//! across an await. Bytes past the body (a pipelined request) stay in the buffer for the
//! next head.

use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Request;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::body::{BodySource, ClientBody, OwnBody};
use crate::conn::ConnInfo;
use crate::facade::Facade;

use super::answer::write_answer;
use super::BoxError;

/// The most of a request body left unread by the request path that is read past to keep the
/// connection (more, and it closes).
const DRAIN_CAP: u64 = 256 * 1024;

/// Answers `req`, whose body of `length` bytes follows its head on `io` (part of it, maybe,
/// already in `buf`): the connection and its buffer when it may serve another request.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve<IO>(
    io: IO,
    buf: BytesMut,
    req: Request<ClientBody>,
    length: u64,
    facade: &Facade,
    info: &Arc<ConnInfo>,
    out: &mut Vec<u8>,
    head_timeout: Duration,
) -> Result<Option<(IO, BytesMut)>, BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let is_head = req.method() == http::Method::HEAD;
    let link = Arc::new(Link::new(io, buf, length));
    let req = req.map(|_| ClientBody::Own(OwnBody(link.clone())));
    let resp = facade.handle(req, info).await;
    let keep = write_answer(&mut Through(&link), resp, is_head, out, None).await?
        // What the request path left unread is read past (up to a bound) so that the next
        // request can be found; more, and the connection closes.
        && drain(&link, DRAIN_CAP, head_timeout).await;
    let Ok(link) = Arc::try_unwrap(link) else {
        // Still held by the request path (nothing should): the connection closes.
        return Ok(None);
    };
    let mut shared = link.into_inner();
    if !keep || shared.broken {
        let _ = shared.io.shutdown().await;
        return Ok(None);
    }
    Ok(Some((shared.io, shared.buf)))
}

/// The largest read for a body: a large body is read in pieces of this size at most.
const BODY_READ: u64 = 64 * 1024;

/// The connection while a request body is read from it.
struct Shared<IO> {
    io: IO,
    buf: BytesMut,
    /// Bytes of the body not yet handed on.
    left: u64,
    /// The client closed or the connection failed before the body's end.
    broken: bool,
}

struct Link<IO>(Mutex<Shared<IO>>);

impl<IO> Link<IO> {
    fn new(io: IO, buf: BytesMut, left: u64) -> Self {
        Self(Mutex::new(Shared {
            io,
            buf,
            left,
            broken: false,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Shared<IO>> {
        // Poisoned only by a panic in a poll below, which leaves the state whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn into_inner(self) -> Shared<IO> {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl<IO: AsyncRead + Unpin + Send> BodySource for Link<IO> {
    fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let mut guard = self.lock();
        let shared = &mut *guard;
        if shared.left == 0 {
            return Poll::Ready(None);
        }
        if shared.broken {
            return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
        }
        if shared.buf.is_empty() {
            // Room for the rest of the body, up to one large read; no more than that is kept.
            let want = shared.left.min(BODY_READ) as usize;
            if shared.buf.capacity() < want {
                shared.buf.reserve(want);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut shared.io), cx, &mut shared.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    shared.broken = true;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection before the end of the request body",
                    ))));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    shared.broken = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
        let take = (shared.buf.len() as u64).min(shared.left) as usize;
        shared.left -= take as u64;
        Poll::Ready(Some(Ok(shared.buf.split_to(take).freeze())))
    }

    fn left(&self) -> u64 {
        self.lock().left
    }
}

/// Writes to the linked connection (the answer, while the body may still be read).
struct Through<'a, IO>(&'a Link<IO>);

impl<IO: AsyncWrite + Unpin> AsyncWrite for Through<'_, IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0.lock().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0.lock().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.lock().io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0.lock().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0.lock().io).poll_shutdown(cx)
    }
}

/// Never read through: the body is read by [`BodySource`] (the answer's writer is given no
/// read buffer, so it does not read).
impl<IO> AsyncRead for Through<'_, IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
}

/// Reads and drops what is left of the body, at most `cap` bytes within `limit`: whether it
/// ended.
async fn drain<IO: AsyncRead + Unpin + Send>(link: &Link<IO>, cap: u64, limit: Duration) -> bool {
    if link.left() > cap {
        return false;
    }
    let read_past = async {
        loop {
            match std::future::poll_fn(|cx| link.poll_data(cx)).await {
                None => return true,
                Some(Ok(_)) => {}
                Some(Err(_)) => return false,
            }
        }
    };
    tokio::time::timeout(limit, read_past)
        .await
        .unwrap_or(false)
}
