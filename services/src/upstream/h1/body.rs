//! The body of an answer on our own HTTP/1.1 path, read from its connection as the client
//! takes it, and the pool its connection returns to at the body's end.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, Weak};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{chunked, Conn, Framing, H1Error, Upload, MAX_READ, MIN_READ};

/// Idle connections of this path: the most recently used at the back.
pub(in crate::upstream) struct Pool {
    idle: Mutex<VecDeque<Idle>>,
    pub(in crate::upstream) max_idle: AtomicUsize,
    /// Connections given back so far (see `give_back`).
    returns: AtomicU32,
}

/// Every how many returns the oldest idle connection is looked at.
const LOOK_EVERY: u32 = 8;

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

impl Pool {
    pub(in crate::upstream) fn new(max_idle: usize) -> Self {
        Self {
            idle: Mutex::new(VecDeque::new()),
            max_idle: AtomicUsize::new(max_idle),
            returns: AtomicU32::new(0),
        }
    }

    pub(in crate::upstream) fn len(&self) -> usize {
        crate::upstream::lock(&self.idle).len()
    }

    /// The most recently used idle connection that is still open and young enough.
    pub(in crate::upstream) fn checkout(
        &self,
        idle_timeout: Duration,
        max_age: Duration,
    ) -> Option<Box<Conn>> {
        let now = Instant::now();
        loop {
            let Idle { mut conn, since } = crate::upstream::lock(&self.idle).pop_back()?;
            if now.saturating_duration_since(since) <= idle_timeout
                && now.saturating_duration_since(conn.born) <= max_age
                && conn.still_open()
            {
                return Some(conn);
            }
        }
    }

    fn give_back(&self, mut conn: Box<Conn>) {
        conn.forget_waker();
        if conn.buf.capacity() > MAX_READ {
            conn.buf = BytesMut::new();
            conn.read_size = MIN_READ;
        }
        let look = self
            .returns
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(LOOK_EVERY);
        let mut idle = crate::upstream::lock(&self.idle);
        // The least recently used connection is the one the upstream most likely closed, and
        // checkouts take from the other end: a look every few returns keeps closed ones from
        // holding their sockets (hyper's connection tasks close theirs when the upstream does).
        // (Not every return: each look asks the reactor, ~160 instructions, and a busy pool's
        // oldest connection was most likely used a moment ago.)
        if look
            && idle
                .front_mut()
                .is_some_and(|oldest| !oldest.conn.still_open())
        {
            idle.pop_front();
        }
        if idle.len() < self.max_idle.load(Ordering::Relaxed) {
            idle.push_back(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// An answer's body read from its connection, which goes back to the pool at the body's end
/// (dropped before it, the connection is closed).
pub struct Body {
    /// Boxed: moved with the answer from step to step, and in and out of the pool.
    conn: Option<Box<Conn>>,
    state: State,
    reusable: bool,
    /// The rest of the request's body, when the upstream answered before it had it all.
    upload: Option<Box<Upload>>,
    pool: Weak<Pool>,
}

enum State {
    Length(u64),
    Chunked(chunked::Decoder),
    Close,
    Done,
}

impl Body {
    pub(super) fn new(
        conn: Box<Conn>,
        framing: Framing,
        reusable: bool,
        upload: Option<Box<Upload>>,
        pool: Weak<Pool>,
    ) -> Self {
        let mut body = Self {
            conn: Some(conn),
            state: match framing {
                Framing::Empty => State::Done,
                Framing::Length(n) => State::Length(n),
                Framing::Chunked => State::Chunked(chunked::Decoder::default()),
                Framing::Close => State::Close,
            },
            reusable,
            upload,
            pool,
        };
        if matches!(body.state, State::Done) {
            body.finish();
        }
        body
    }

    /// The body has ended: the connection goes back to the pool if it may carry another
    /// request, nothing beyond the answer was sent on it and the request was sent whole.
    fn finish(&mut self) {
        self.state = State::Done;
        let Some(conn) = self.conn.take() else {
            return;
        };
        let sent = self.upload.take().is_none_or(|up| up.sent());
        if self.reusable && sent && conn.buf.is_empty() {
            if let Some(pool) = self.pool.upgrade() {
                pool.give_back(conn);
            }
        }
    }

    fn fail(&mut self, e: H1Error) -> Poll<Option<Result<http_body::Frame<Bytes>, H1Error>>> {
        self.state = State::Done;
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, H1Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // The request's body goes on as long as the upstream takes it.
            if let Some(up) = this.upload.as_mut().filter(|up| !up.over()) {
                if let Poll::Ready(Err(e)) = up.poll(&mut conn.io, &conn.out, cx) {
                    return this.fail(e.into_h1());
                }
            }
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    if !conn.buf.is_empty() {
                        let take = conn
                            .buf
                            .len()
                            .min(usize::try_from(*left).unwrap_or(usize::MAX));
                        let data = conn.buf.split_to(take).freeze();
                        *left -= take as u64;
                        if *left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
                    }
                }
                State::Close => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
                    }
                }
                State::Chunked(decoder) => match decoder.step(&mut conn.buf) {
                    Err(e) => return this.fail(e),
                    Ok(chunked::Step::Data(data)) => {
                        return Poll::Ready(Some(Ok(http_body::Frame::data(data))))
                    }
                    Ok(chunked::Step::Trailers(trailers)) => {
                        this.finish();
                        return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
                    }
                    Ok(chunked::Step::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(chunked::Step::More) => {}
                },
            }
            // The buffer holds nothing more of the body: read.
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(this.state, State::Close) => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(H1Error::Incomplete),
                Ok(_) => {}
                Err(e) => return this.fail(H1Error::Io(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.state {
            State::Done => http_body::SizeHint::with_exact(0),
            State::Length(n) => http_body::SizeHint::with_exact(n),
            State::Chunked(_) | State::Close => http_body::SizeHint::default(),
        }
    }
}
