//! A read-side guard for HTTP/1 framing that hyper accepts but a careful proxy refuses.
//!
//! hyper follows RFC 9112 to the letter: a request with both `Content-Length` and
//! `Transfer-Encoding` is read by `Transfer-Encoding` alone (the length is dropped), and a
//! repeated `Content-Length` with one value is merged. Both are classic request-smuggling
//! shapes: the facade and the legacy app behind it could disagree on where the request ends.
//! We refuse them with 400 and close the connection, as nginx does, which hyper's parsed
//! request no longer lets us see.
//!
//! So the connection's bytes are watched as hyper reads them. The scanner follows the
//! messages' own framing — a head line by line, then a body of `Content-Length` bytes or
//! chunks — so that it looks at heads only: a body that happens to contain header-like lines
//! is data, whatever read it arrives in. It notes the number of the first ambiguous head on the
//! connection; the request path compares that with its own count of requests. Once the scanner
//! cannot follow the framing (an HTTP/2 preface, a value it cannot read, an ambiguous head) it
//! stops: hyper answers or closes such connections itself, and an ambiguous one is closed.
//!
//! The cost is one `memchr` per head line, a skip over body bytes, and a few byte compares.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const CONTENT_LENGTH: &[u8] = b"content-length:";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding:";
/// The start of HTTP/2's connection preface (prior knowledge, h2c).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
/// The longest head or chunk-size line kept across reads. Longer lines are still followed;
/// only their first bytes are looked at, and a framing field that long is not understood.
const LINE_CAP: usize = 256;

/// What the connection's reader shares with its requests.
#[derive(Debug)]
pub struct Framing {
    /// The number (from 0) of the first head with ambiguous framing; `u64::MAX`: none.
    first_ambiguous: AtomicU64,
}

impl Default for Framing {
    fn default() -> Self {
        Self {
            first_ambiguous: AtomicU64::new(u64::MAX),
        }
    }
}

impl Framing {
    /// Whether the HTTP/1 request numbered `n` (from 0, in the order they arrived on the
    /// connection) had ambiguous framing.
    pub fn is_ambiguous(&self, n: u64) -> bool {
        self.first_ambiguous.load(Ordering::Acquire) == n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The connection's first bytes: HTTP/2's preface or an HTTP/1 head.
    Start,
    /// Inside a head (request line and fields).
    Head,
    /// A body of known length: bytes still to come.
    Body(u64),
    /// A chunk-size line.
    ChunkSize,
    /// Chunk data still to come, then its line end.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// The trailer section after the last chunk.
    Trailers,
    /// Not followed any further.
    Off,
}

/// Follows HTTP/1 request framing over the bytes read and reports ambiguous heads.
#[derive(Debug)]
pub struct HeadScanner {
    state: State,
    /// The current line's first bytes, when it began in an earlier read.
    line: [u8; LINE_CAP],
    line_len: usize,
    /// Whether the current line is longer than what `line` holds.
    line_long: bool,
    /// Lines in the current head so far (0: waiting for the request line).
    head_lines: u32,
    content_length: u8,
    transfer_encoding: u8,
    /// The body length the head declares (when it declares one we can read).
    length: Option<u64>,
    /// Whether the last transfer coding is `chunked`.
    chunked: bool,
    /// A framing value we could not read: stop following after this head.
    unreadable: bool,
    /// Heads completed on this connection.
    heads: u64,
}

impl Default for HeadScanner {
    fn default() -> Self {
        Self {
            state: State::Start,
            line: [0; LINE_CAP],
            line_len: 0,
            line_long: false,
            head_lines: 0,
            content_length: 0,
            transfer_encoding: 0,
            length: None,
            chunked: false,
            unreadable: false,
            heads: 0,
        }
    }
}

impl HeadScanner {
    /// Feeds bytes in the order they were read. Returns the number of a head that just ended
    /// with ambiguous framing (both fields, or `Content-Length` twice).
    pub fn feed(&mut self, buf: &[u8]) -> Option<u64> {
        let mut pos = 0;
        while pos < buf.len() {
            match self.state {
                State::Off => return None,
                State::Start => {
                    // Gather enough of the first line to tell HTTP/2's preface from a head.
                    let take = (H2_PREFACE.len() - self.line_len).min(buf.len() - pos);
                    self.line[self.line_len..self.line_len + take]
                        .copy_from_slice(&buf[pos..pos + take]);
                    self.line_len += take;
                    pos += take;
                    let seen = &self.line[..self.line_len];
                    if !H2_PREFACE.starts_with(seen) {
                        // An HTTP/1 head: replay what was gathered as head bytes.
                        let gathered = self.line;
                        let n = self.line_len;
                        self.line_len = 0;
                        self.state = State::Head;
                        if let Some(found) = self.feed(&gathered[..n]) {
                            // Only possible with a one-line head, which cannot be ambiguous.
                            return Some(found);
                        }
                    } else if self.line_len == H2_PREFACE.len() {
                        self.state = State::Off;
                    }
                }
                State::Body(left) => {
                    let take = left.min((buf.len() - pos) as u64);
                    pos += take as usize;
                    self.state = if take == left {
                        State::Head
                    } else {
                        State::Body(left - take)
                    };
                }
                State::ChunkData(left) => {
                    let take = left.min((buf.len() - pos) as u64);
                    pos += take as usize;
                    self.state = if take == left {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left - take)
                    };
                }
                State::Head | State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let rest = &buf[pos..];
                    match memchr::memchr(b'\n', rest) {
                        None => {
                            self.keep(rest);
                            pos = buf.len();
                        }
                        Some(i) => {
                            pos += i + 1;
                            let found = if self.line_len == 0 && !self.line_long {
                                self.line_ended(&rest[..i])
                            } else {
                                self.keep(&rest[..i]);
                                let line = self.line;
                                let n = self.line_len;
                                self.line_ended(&line[..n])
                            };
                            self.line_len = 0;
                            self.line_long = false;
                            if found.is_some() {
                                return found;
                            }
                        }
                    }
                }
            }
        }
        None
    }

    /// Keeps the start of a line that continues in the next read.
    fn keep(&mut self, part: &[u8]) {
        let room = LINE_CAP - self.line_len;
        let take = part.len().min(room);
        self.line[self.line_len..self.line_len + take].copy_from_slice(&part[..take]);
        self.line_len += take;
        self.line_long |= part.len() > room;
    }

    /// A whole line (without its `\n`; `line` holds at most `LINE_CAP` bytes of it).
    fn line_ended(&mut self, line: &[u8]) -> Option<u64> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self.state {
            State::Head => self.head_line(line),
            State::ChunkSize => {
                // `1a;ext=v`: hex digits, then optional extensions.
                let mut size = Some(0u64);
                let mut digits = 0;
                for d in line.iter().map_while(|b| (*b as char).to_digit(16)) {
                    digits += 1;
                    size = size.filter(|_| digits <= 15).map(|n| n * 16 + u64::from(d));
                }
                let size = size.filter(|_| digits > 0);
                self.state = match size {
                    Some(0) => State::Trailers,
                    Some(n) => State::ChunkData(n),
                    None => State::Off,
                };
                None
            }
            State::ChunkEnd => {
                self.state = if line.is_empty() {
                    State::ChunkSize
                } else {
                    State::Off
                };
                None
            }
            State::Trailers => {
                if line.is_empty() {
                    self.state = State::Head;
                }
                None
            }
            _ => None,
        }
    }

    fn head_line(&mut self, line: &[u8]) -> Option<u64> {
        if line.is_empty() {
            if self.head_lines == 0 {
                // Empty lines before a request line are ignored (RFC 9112 §2.2).
                return None;
            }
            return self.head_ended();
        }
        self.head_lines += 1;
        if self.head_lines == 1 {
            return None;
        }
        if starts_with_ci(line, CONTENT_LENGTH) {
            self.content_length = self.content_length.saturating_add(1);
            let value = trim(&line[CONTENT_LENGTH.len()..]);
            self.length = match std::str::from_utf8(value).ok().map(str::parse::<u64>) {
                Some(Ok(n)) if !self.line_long => Some(n),
                _ => {
                    self.unreadable = true;
                    None
                }
            };
        } else if starts_with_ci(line, TRANSFER_ENCODING) {
            self.transfer_encoding = self.transfer_encoding.saturating_add(1);
            let value = trim(&line[TRANSFER_ENCODING.len()..]);
            let last = value
                .rsplit(|b| *b == b',')
                .next()
                .map(trim)
                .unwrap_or_default();
            self.chunked = last.eq_ignore_ascii_case(b"chunked");
            self.unreadable |= self.line_long;
        }
        None
    }

    fn head_ended(&mut self) -> Option<u64> {
        let number = self.heads;
        self.heads += 1;
        let ambiguous =
            self.content_length >= 2 || (self.content_length >= 1 && self.transfer_encoding >= 1);
        self.state = if ambiguous || self.unreadable {
            // hyper refuses what it cannot frame, and an ambiguous head closes the connection:
            // nothing after it needs following.
            State::Off
        } else if self.transfer_encoding > 0 {
            if self.chunked {
                State::ChunkSize
            } else {
                State::Off
            }
        } else {
            match self.length {
                Some(0) | None => State::Head,
                Some(n) => State::Body(n),
            }
        };
        self.head_lines = 0;
        self.content_length = 0;
        self.transfer_encoding = 0;
        self.length = None;
        self.chunked = false;
        self.unreadable = false;
        ambiguous.then_some(number)
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &v[start..end.max(start)]
}

fn starts_with_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A client connection whose reads pass through a [`HeadScanner`].
pub struct Guarded<T> {
    inner: T,
    scanner: HeadScanner,
    framing: Arc<Framing>,
}

impl<T> Guarded<T> {
    pub fn new(inner: T, framing: Arc<Framing>) -> Self {
        Self {
            inner,
            scanner: HeadScanner::default(),
            framing,
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
            if let Some(n) = this.scanner.feed(&buf.filled()[before..]) {
                // Only the first is kept: the connection closes after answering it.
                let _ = this.framing.first_ambiguous.compare_exchange(
                    u64::MAX,
                    n,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
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
