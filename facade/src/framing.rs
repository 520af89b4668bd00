//! A read-side guard for HTTP/1 framing that hyper accepts but a careful proxy refuses.
//!
//! hyper follows RFC 9112 to the letter: a request with both `Content-Length` and
//! `Transfer-Encoding` is read by `Transfer-Encoding` alone (the length is dropped), and a
//! repeated `Content-Length` with one value is merged. Both are classic request-smuggling
//! shapes: the facade and the legacy app behind it could disagree on where the request ends.
//! We refuse them with 400, as nginx does, which hyper's parsed request no longer lets us see.
//!
//! So the connection's bytes are watched as hyper reads them: at the start of each line we
//! look for those two field names, and at each blank line (the end of a head) we note whether
//! one head held an ambiguous pair. The cost is one `memchr` over the bytes read and a few
//! byte compares per line.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const CONTENT_LENGTH: &[u8] = b"content-length:";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding:";
/// The longest prefix we need to see at a line start.
const PREFIX: usize = 18;

/// Counts framing fields line by line and reports ambiguous heads.
#[derive(Debug, Default)]
pub struct HeadScanner {
    /// The start of a line that began at the end of the previous read.
    partial: [u8; PREFIX],
    partial_len: usize,
    /// Whether the previous read ended right after a `\n` (a line start with no bytes yet).
    at_line_start: bool,
    content_length: u8,
    transfer_encoding: u8,
}

impl HeadScanner {
    /// Feeds bytes in the order they were read. Returns true when a head just ended that had
    /// both framing fields, or `Content-Length` twice.
    pub fn feed(&mut self, buf: &[u8]) -> bool {
        let mut found = false;
        let mut pos = 0;
        if self.at_line_start || self.partial_len > 0 {
            let mut line = [0u8; PREFIX];
            let have = self.partial_len;
            line[..have].copy_from_slice(&self.partial[..have]);
            let take = (PREFIX - have).min(buf.len());
            line[have..have + take].copy_from_slice(&buf[..take]);
            self.partial_len = 0;
            self.at_line_start = false;
            found |= self.line_start(
                &line[..have + take],
                have + take < PREFIX && take == buf.len(),
            );
        }
        while let Some(i) = memchr::memchr(b'\n', &buf[pos..]) {
            let start = pos + i + 1;
            let end = (start + PREFIX).min(buf.len());
            found |= self.line_start(&buf[start..end], end - start < PREFIX && end == buf.len());
            pos = start;
        }
        found
    }

    /// Looks at the first bytes of a line. `truncated`: the read ended before `PREFIX` bytes,
    /// so the line continues in the next read (unless it already ended).
    fn line_start(&mut self, line: &[u8], truncated: bool) -> bool {
        let line_ended = line.contains(&b'\n');
        if truncated && !line_ended && !starts_blank(line) {
            self.partial[..line.len()].copy_from_slice(line);
            self.partial_len = line.len();
            self.at_line_start = line.is_empty();
            return false;
        }
        if starts_blank(line) {
            if line == b"\r" && truncated {
                // `\r` alone at the end of a read: wait for the `\n`.
                self.partial[0] = b'\r';
                self.partial_len = 1;
                return false;
            }
            let ambiguous = self.content_length >= 2
                || (self.content_length >= 1 && self.transfer_encoding >= 1);
            self.content_length = 0;
            self.transfer_encoding = 0;
            return ambiguous;
        }
        if starts_with_ci(line, CONTENT_LENGTH) {
            self.content_length = self.content_length.saturating_add(1);
        } else if starts_with_ci(line, TRANSFER_ENCODING) {
            self.transfer_encoding = self.transfer_encoding.saturating_add(1);
        }
        false
    }
}

fn starts_blank(line: &[u8]) -> bool {
    line.first() == Some(&b'\n') || line.starts_with(b"\r\n") || line == b"\r"
}

fn starts_with_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A client connection whose reads pass through a [`HeadScanner`].
pub struct Guarded<T> {
    inner: T,
    scanner: HeadScanner,
    ambiguous: Arc<AtomicBool>,
}

impl<T> Guarded<T> {
    pub fn new(inner: T, ambiguous: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            scanner: HeadScanner::default(),
            ambiguous,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            if this.scanner.feed(&buf.filled()[before..]) {
                this.ambiguous.store(true, Ordering::Release);
            }
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
