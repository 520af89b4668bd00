//! A request's body on our own HTTP/1.1 path: a body of a declared length (`Content-Length`),
//! written after the head as the client's side gives it, while the answer is read.
//!
//! Writing and reading go on together, as in hyper's client: an upstream may answer before it
//! has read the whole body (a 413, a 401) and close, and an upstream that streams (an echo)
//! answers while the body still comes. The upload is driven by whoever waits on the exchange:
//! the wait for the answer's head, then the answer's body, until it has all been written.
//! A connection whose upload did not end is never reused.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use crate::error::BoxError;

/// A request body on its way to the upstream.
pub(in crate::upstream) struct Upload {
    body: Pin<Box<dyn http_body::Body<Data = Bytes, Error = BoxError> + Send>>,
    /// Bytes the body still owes to its `Content-Length`.
    left: u64,
    /// Taken from the body, not yet written.
    chunk: Bytes,
    /// How much of the request's head (the connection's `out`) has been written.
    written: usize,
    /// The body has given its last byte and its end.
    ended: bool,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Sending,
    /// All written, the body's end seen.
    Sent,
    /// The upstream stopped taking it (it may still answer); the connection is not reused.
    Refused,
}

/// Why an upload failed.
pub(in crate::upstream) enum UploadError {
    /// The client's side of the body failed (its cause, for the caller to find).
    Body(BoxError),
    /// The body gave more or fewer bytes than its `Content-Length`.
    Length(&'static str),
}

impl Upload {
    pub(in crate::upstream) fn new<B>(body: B, length: u64) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            body: Box::pin(http_body_util::BodyExt::map_err(body, Into::into)),
            left: length,
            chunk: Bytes::new(),
            written: 0,
            ended: false,
            state: State::Sending,
        }
    }

    /// Whether the whole body has been written (the connection may carry another request).
    pub(in crate::upstream) fn sent(&self) -> bool {
        self.state == State::Sent
    }

    /// Whether there is nothing more to write (sent, or the upstream stopped taking it).
    pub(in crate::upstream) fn over(&self) -> bool {
        self.state != State::Sending
    }

    /// Writes the rest of `head` and as much of the body as can go now. `Ready(Ok)` once
    /// nothing more is to be written: all of it, or a write failed (the upstream closed or
    /// reset; its answer may still be read — the caller reads on, and the connection is not
    /// reused). `Pending` with the task woken when the body or the socket can go on.
    pub(in crate::upstream) fn poll(
        &mut self,
        io: &mut TcpStream,
        head: &[u8],
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), UploadError>> {
        while self.state == State::Sending {
            // Take what the body has ready before writing, so that a head and a body that
            // is there already leave in one write.
            if self.chunk.is_empty() && !self.ended {
                // All the declared bytes taken: the body's end is not waited for (nothing
                // more may be sent; a body that had more would be cut off anyway).
                if self.left == 0 {
                    self.ended = true;
                } else {
                    match self.body.as_mut().poll_frame(cx) {
                        Poll::Pending => {}
                        Poll::Ready(None) => {
                            return Poll::Ready(Err(UploadError::Length(
                                "the request body ended before its Content-Length",
                            )))
                        }
                        Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(UploadError::Body(e))),
                        Poll::Ready(Some(Ok(frame))) => {
                            // Trailers cannot follow a body framed by its length: dropped,
                            // as hyper's client drops them.
                            if let Ok(data) = frame.into_data() {
                                if data.len() as u64 > self.left {
                                    return Poll::Ready(Err(UploadError::Length(
                                        "the request body is longer than its Content-Length",
                                    )));
                                }
                                self.left -= data.len() as u64;
                                self.chunk = data;
                            }
                            continue;
                        }
                    }
                }
            }
            let rest = &head[self.written..];
            if rest.is_empty() && self.chunk.is_empty() {
                if self.ended {
                    self.state = State::Sent;
                    break;
                }
                // The body has nothing ready; it wakes the task when it has.
                return Poll::Pending;
            }
            let wrote = if rest.is_empty() {
                Pin::new(&mut *io).poll_write(cx, &self.chunk)
            } else if self.chunk.is_empty() {
                Pin::new(&mut *io).poll_write(cx, rest)
            } else {
                let parts = [io::IoSlice::new(rest), io::IoSlice::new(&self.chunk)];
                Pin::new(&mut *io).poll_write_vectored(cx, &parts)
            };
            match wrote {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(n)) if n > 0 => {
                    let of_head = n.min(rest.len());
                    self.written += of_head;
                    self.chunk.advance(n - of_head);
                }
                // Written nothing, or failed: the upstream takes no more. What it answered,
                // if anything, is still to be read.
                Poll::Ready(_) => {
                    self.state = State::Refused;
                    self.chunk = Bytes::new();
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests;
