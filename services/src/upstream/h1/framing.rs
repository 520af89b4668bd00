//! How an answer's body is delimited (RFC 9112 §6.3, with hyper's choices where the RFC
//! leaves room; see the parent module), and whether its connection may carry another request.

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderValue, Version};

use super::{H1Error, Head};

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (HEAD, 204, 304, or a length of 0).
    Empty,
    Length(u64),
    Chunked,
    /// Read to the close.
    Close,
}

/// How the body of an answer is framed, and whether its connection may carry another
/// request afterwards. Drops a `Content-Length` that a `Transfer-Encoding` overrides.
pub(super) fn framing(head: &mut Head, head_request: bool) -> Result<(Framing, bool), H1Error> {
    // One pass over the fields (a lookup per name hashes it; most answers have few fields).
    let mut last_coding_chunked = None;
    let mut has_length = false;
    let mut length = Ok(None);
    let (mut close, mut keep_alive) = (false, false);
    for (name, value) in &head.headers {
        if name == TRANSFER_ENCODING {
            // The last field's last coding decides.
            last_coding_chunked = Some(
                value
                    .as_bytes()
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked")),
            );
        } else if name == CONTENT_LENGTH {
            has_length = true;
            length = length.and_then(|known| merge_length(known, value));
        } else if name == CONNECTION {
            close |= has_token(value, b"close");
            keep_alive |= has_token(value, b"keep-alive");
        }
    }
    let mut reusable = match head.version {
        Version::HTTP_11 => !close,
        _ => keep_alive,
    };
    if last_coding_chunked.is_some() && has_length {
        // Framed two ways: the length is wrong and must not travel on, and an upstream that
        // frames this ambiguously is not trusted with another request.
        head.headers.remove(CONTENT_LENGTH);
        reusable = false;
    }
    if head_request || matches!(head.status.as_u16(), 204 | 304) {
        return Ok((Framing::Empty, reusable));
    }
    if let Some(chunked) = last_coding_chunked {
        if head.version != Version::HTTP_11 {
            return Err(H1Error::Invalid("Transfer-Encoding in an HTTP/1.0 answer"));
        }
        return Ok(if chunked {
            (Framing::Chunked, reusable)
        } else {
            (Framing::Close, false)
        });
    }
    Ok(match length.map_err(H1Error::Invalid)? {
        Some(0) => (Framing::Empty, reusable),
        Some(n) => (Framing::Length(n), reusable),
        None => (Framing::Close, false),
    })
}

/// The length `known` so far, with a `Content-Length` field's values (a list of equal ones
/// is one length) added.
fn merge_length(known: Option<u64>, value: &HeaderValue) -> Result<Option<u64>, &'static str> {
    let mut length = known;
    for part in value.as_bytes().split(|b| *b == b',') {
        let n = parse_length(part.trim_ascii()).ok_or("Content-Length is not a length")?;
        if length.is_some_and(|l| l != n) {
            return Err("Content-Length values differ");
        }
        length = Some(n);
    }
    Ok(length)
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

fn has_token(value: &HeaderValue, token: &[u8]) -> bool {
    value
        .as_bytes()
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}
