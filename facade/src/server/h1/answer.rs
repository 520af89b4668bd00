//! Writing an answer on the own HTTP/1.1 path by the rules of hyper's server: the head's
//! framing from the body's size (`Content-Length` when known, chunked when not, none for
//! `HEAD`, 204 and 304), `Date` when absent, `Connection: close` honoured, trailers only when
//! `Trailer` names them; the head and the body's first bytes in one write.

use std::io::Write as _;
use std::task::Poll;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode, Version};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::body::ResponseBody;

use super::{room, BoxError};

/// Body data smaller than this is copied behind the head (one write); larger, written apart.
const COALESCE: usize = 16 * 1024;

/// How an answer's body is delimited on the wire.
enum Framing {
    Length(u64),
    Chunked {
        trailers: Option<Vec<HeaderName>>,
    },
    /// Until the connection closes.
    Close,
}

/// Writes the answer; whether the connection may serve another request. With `read` (the
/// connection's read buffer), a client closing its side while the body streams cancels it;
/// without, nothing is read from `io` (a request body is being read from it).
//
// A plain function returning a future rather than an `async fn`: an `async fn` keeps the
// answer twice in its state (as passed, and as moved into its body), a copy per request.
#[allow(clippy::manual_async_fn)]
pub(super) fn write_answer<'a, IO>(
    io: &'a mut IO,
    resp: Response<ResponseBody>,
    is_head: bool,
    out: &'a mut Vec<u8>,
    read: Option<&'a mut BytesMut>,
) -> impl std::future::Future<Output = Result<bool, BoxError>> + 'a
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    async move {
        let mut read = read;
        let (mut parts, body) = resp.into_parts();
        let length = if body.is_end_stream() {
            None
        } else {
            Some(body.size_hint().exact())
        };
        out.clear();
        let Some((mut framing, last)) = encode_head(
            &mut parts.headers,
            parts.status,
            parts.version,
            length,
            is_head,
            out,
        ) else {
            // What hyper's server would refuse to send (a 1xx final answer, conflicting lengths).
            tracing::warn!(
                status = parts.status.as_u16(),
                "an answer that cannot be framed; closing"
            );
            return Ok(false);
        };
        if matches!(framing, Framing::Length(0)) {
            // No body to send (a HEAD, 204 or 304 answer, or an empty one): dropped unread.
            drop(body);
            io.write_all(out).await?;
            io.flush().await?;
            return Ok(!last);
        }
        let mut body = std::pin::pin!(body);
        // A client closing its side while the body streams cancels it too.
        let mut watching = read.as_ref().is_some_and(|read| read.is_empty());
        loop {
            // What is ready now goes behind what is waiting in `out`; otherwise `out` is written
            // before waiting for more.
            let mut frame =
                std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await;
            if frame.is_pending() {
                if !out.is_empty() {
                    io.write_all(out).await?;
                    io.flush().await?;
                    out.clear();
                }
                let next = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx));
                tokio::pin!(next);
                let polled = loop {
                    let Some(read) = read.as_deref_mut().filter(|_| watching) else {
                        break next.as_mut().await;
                    };
                    room(read, super::READ_SIZE);
                    tokio::select! {
                        biased;
                        f = next.as_mut() => break f,
                        n = io.read_buf(read) => match n {
                            Ok(0) | Err(_) => return Ok(false),
                            Ok(_) => watching = false,
                        },
                    }
                };
                frame = Poll::Ready(polled);
            }
            let Poll::Ready(frame) = frame else {
                continue;
            };
            match frame {
                None => {
                    match framing {
                        Framing::Length(0) | Framing::Close => {}
                        // Shorter than its length: the connection closes (the client must not take
                        // the body as whole); what was not written yet is dropped, as hyper's server
                        // drops what it holds unflushed.
                        Framing::Length(_) => return Ok(false),
                        Framing::Chunked { .. } => out.extend_from_slice(b"0\r\n\r\n"),
                    }
                    if !out.is_empty() {
                        io.write_all(out).await?;
                        io.flush().await?;
                        out.clear();
                    }
                    return Ok(!last && !matches!(framing, Framing::Close));
                }
                // A broken body: the connection closes without the end a whole body would have (no
                // last chunk), so the client sees it broken; unwritten bytes are dropped (hyper's).
                Some(Err(_)) => return Ok(false),
                Some(Ok(frame)) => {
                    let frame = match frame.into_data() {
                        Ok(data) => {
                            put_data(io, &mut framing, data, out).await?;
                            continue;
                        }
                        Err(frame) => frame,
                    };
                    let Ok(trailers) = frame.into_trailers() else {
                        continue;
                    };
                    if let Framing::Chunked {
                        trailers: Some(allowed),
                    } = &framing
                    {
                        let start = out.len();
                        out.extend_from_slice(b"0\r\n");
                        let mut any = false;
                        for (name, value) in &trailers {
                            if allowed.contains(name) && trailer_allowed(name) {
                                put_field(out, name.as_str().as_bytes(), value.as_bytes());
                                any = true;
                            }
                        }
                        if any {
                            out.extend_from_slice(b"\r\n");
                            framing = Framing::Length(0);
                        } else {
                            out.truncate(start);
                        }
                    }
                }
            }
        }
    }
}

/// Puts one data frame on the wire (behind `out` when small).
async fn put_data<IO>(
    io: &mut IO,
    framing: &mut Framing,
    mut data: Bytes,
    out: &mut Vec<u8>,
) -> std::io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    if data.is_empty() {
        return Ok(());
    }
    match framing {
        // Past its length: what is owed only (as hyper's server does).
        Framing::Length(left) => {
            if (data.len() as u64) > *left {
                data.truncate(*left as usize);
            }
            *left -= data.len() as u64;
        }
        Framing::Chunked { .. } => {
            let _ = write!(out, "{:X}\r\n", data.len());
        }
        Framing::Close => {}
    }
    if out.len() + data.len() <= COALESCE {
        out.extend_from_slice(&data);
    } else {
        // What waits in `out` (the head, a chunk's size) and the data in one write.
        let mut head = &out[..];
        while !head.is_empty() {
            let n = io
                .write_vectored(&[std::io::IoSlice::new(head), std::io::IoSlice::new(&data)])
                .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            let of_head = n.min(head.len());
            head = &head[of_head..];
            data.advance(n - of_head);
        }
        out.clear();
        io.write_all(&data).await?;
        io.flush().await?;
    }
    if let Framing::Chunked { .. } = framing {
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// Writes a value of a field whose values share one line (`name: a, b`): starting the line
/// (`start`, the name and colon) unless `continuing` it. Whether it started the line.
fn join_value(out: &mut Vec<u8>, continuing: bool, start: &[u8], value: &HeaderValue) -> bool {
    out.extend_from_slice(if continuing { b", " } else { start });
    out.extend_from_slice(value.as_bytes());
    !continuing
}

fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Trailer fields hyper's server never sends.
fn trailer_allowed(name: &HeaderName) -> bool {
    !matches!(
        *name,
        header::AUTHORIZATION
            | header::CACHE_CONTROL
            | header::CONTENT_ENCODING
            | header::CONTENT_LENGTH
            | header::CONTENT_RANGE
            | header::CONTENT_TYPE
            | header::HOST
            | header::MAX_FORWARDS
            | header::SET_COOKIE
            | header::TRAILER
            | header::TRANSFER_ENCODING
            | header::TE
    )
}

/// Encodes an answer's head to a `GET` or `HEAD` (`is_head`) over HTTP/1.1 by the rules of
/// hyper's server: the framing the body needs, and whether the connection ends after it.
/// `length`: `None` for a body already at its end, else its exact length when known. `None`
/// back: an answer that cannot be sent (hyper's server would close the connection).
fn encode_head(
    headers: &mut HeaderMap,
    status: StatusCode,
    version: Version,
    length: Option<Option<u64>>,
    is_head: bool,
    out: &mut Vec<u8>,
) -> Option<(Framing, bool)> {
    if status.is_informational() {
        return None;
    }
    let no_content = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let can_chunk = !is_head && !no_content && version != Version::HTTP_10;
    let mut last = false;
    if version == Version::HTTP_11 && status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(if version == Version::HTTP_10 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let mut framing = Framing::Length(0);
    let mut wrote_len = false;
    let mut wrote_date = false;
    let mut trailers: Option<Vec<HeaderName>> = None;
    // A field whose values are being joined on one line, and whether `chunked` must end it.
    let mut open_line: Option<bool> = None;
    let mut prev: Option<&HeaderName> = None;
    let mut prev_len: Option<u64> = None;
    for (name, value) in headers.iter() {
        let same = prev == Some(name);
        if !same {
            if let Some(chunked) = open_line.take() {
                out.extend_from_slice(if chunked { b", chunked\r\n" } else { b"\r\n" });
            }
        }
        prev = Some(name);
        match *name {
            header::CONTENT_LENGTH => {
                if wrote_len && !same {
                    return None;
                }
                match length {
                    Some(Some(known)) => {
                        if !same {
                            framing = Framing::Length(known);
                            out.extend_from_slice(b"content-length: ");
                            out.extend_from_slice(value.as_bytes());
                            wrote_len = true;
                            open_line = Some(false);
                        }
                        continue;
                    }
                    Some(None) => {
                        let len = std::str::from_utf8(value.as_bytes())
                            .ok()
                            .and_then(|v| v.parse::<u64>().ok())?;
                        match prev_len {
                            Some(p) if p != len => return None,
                            Some(_) => {}
                            None => {
                                framing = Framing::Length(len);
                                out.extend_from_slice(b"content-length: ");
                                out.extend_from_slice(value.as_bytes());
                                wrote_len = true;
                                open_line = Some(false);
                                prev_len = Some(len);
                            }
                        }
                        continue;
                    }
                    None => {
                        if !is_head {
                            continue;
                        }
                        wrote_len = true;
                    }
                }
            }
            header::TRANSFER_ENCODING => {
                if wrote_len && !same {
                    return None;
                }
                if !can_chunk {
                    continue;
                }
                wrote_len = true;
                let chunked = value
                    .as_bytes()
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                if join_value(
                    out,
                    same && open_line.is_some(),
                    b"transfer-encoding: ",
                    value,
                ) {
                    framing = Framing::Chunked { trailers: None };
                }
                open_line = Some(!chunked);
                continue;
            }
            header::CONNECTION => {
                if value
                    .as_bytes()
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
                {
                    last = true;
                }
                join_value(out, same && open_line.is_some(), b"connection: ", value);
                open_line = Some(false);
                continue;
            }
            header::DATE => wrote_date = true,
            header::TRAILER => {
                if !can_chunk {
                    continue;
                }
                join_value(out, same && open_line.is_some(), b"trailer: ", value);
                open_line = Some(false);
                if let Ok(v) = value.to_str() {
                    trailers.get_or_insert_with(Vec::new).extend(
                        v.split(',')
                            .filter_map(|s| HeaderName::from_bytes(s.trim().as_bytes()).ok()),
                    );
                }
                continue;
            }
            _ => {}
        }
        put_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(chunked) = open_line.take() {
        out.extend_from_slice(if chunked { b", chunked\r\n" } else { b"\r\n" });
    }
    if !wrote_len {
        framing = match length {
            Some(None) => {
                if can_chunk {
                    out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                    Framing::Chunked { trailers: None }
                } else if version == Version::HTTP_10 && !is_head && !no_content {
                    Framing::Close
                } else {
                    Framing::Length(0)
                }
            }
            None | Some(Some(0)) => {
                if !no_content && !is_head {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::Length(0)
            }
            Some(Some(len)) => {
                if no_content {
                    Framing::Length(0)
                } else {
                    let _ = write!(out, "content-length: {len}\r\n");
                    Framing::Length(len)
                }
            }
        };
    }
    if is_head || no_content {
        framing = Framing::Length(0);
    }
    if let (Framing::Chunked { trailers: t }, Some(allowed)) = (&mut framing, trailers) {
        *t = Some(allowed);
    }
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if matches!(framing, Framing::Close) {
        last = true;
    }
    Some((framing, last))
}

thread_local! {
    /// The `Date` value, formatted once a second per thread.
    static DATE: std::cell::RefCell<(u64, [u8; 29])> = const { std::cell::RefCell::new((0, [0; 29])) };
}

fn date(out: &mut Vec<u8>) {
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs || cached.1[0] == 0 {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                cached.1.copy_from_slice(text.as_bytes());
                cached.0 = secs;
            } else {
                out.extend_from_slice(text.as_bytes());
                return;
            }
        }
        out.extend_from_slice(&cached.1);
    });
}
