//! The request path as routes see it: RFC 3986 normalised, so that one resource has one
//! spelling. `/x/../api/me`, `/api/./me`, `//api/me` and `/%61pi/me` are all `/api/me`; a route
//! migrated (or retired) for `/api/me` must not be reachable on legacy by another spelling.
//!
//! - percent-encoded unreserved characters (`ALPHA DIGIT - . _ ~`) are decoded, and the hex
//!   digits of the other percent-encodings upper-cased (RFC 3986 §6.2.2.1–2);
//! - dot segments are removed (§5.2.4), encoded ones (`%2e%2e`) included; a path that climbs
//!   above the root is refused, as it names nothing;
//! - runs of slashes are merged (configurable, on by default, as nginx does);
//! - optionally, the path is matched without regard to case (for monoliths that ignore it);
//! - an encoded slash (`%2F`) stays encoded: it is data inside a segment, not a separator.
//!
//! The facade forwards the normalised path (with the query as sent), so that every side sees
//! the path the route table decided on. The work is a scan for the bytes that can need it; a
//! path without `%`, `//` or a dot segment is left alone without an allocation.

use std::borrow::Cow;

/// How paths are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRules {
    /// `//a///b` is `/a/b`.
    pub merge_slashes: bool,
    /// Routes match without regard to ASCII case.
    pub fold_case: bool,
}

impl Default for PathRules {
    fn default() -> Self {
        Self {
            merge_slashes: true,
            fold_case: false,
        }
    }
}

/// Why a path cannot be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path climbs above the root with `..`")]
    AboveRoot,
    #[error("the path has a `%` that is not followed by two hex digits")]
    BadEscape,
}

/// Whether `path` may need normalising (a cheap scan; false means it is already normal).
fn may_need(path: &[u8], rules: PathRules) -> bool {
    let mut prev = 0u8;
    for (i, &b) in path.iter().enumerate() {
        match b {
            b'%' => return true,
            b'/' if prev == b'/' && rules.merge_slashes => return true,
            b'.' if prev == b'/' => {
                // `/.` then `/`, end, or `.` then `/` or end.
                let rest = &path[i + 1..];
                if rest.is_empty()
                    || rest[0] == b'/'
                    || (rest[0] == b'.' && (rest.len() == 1 || rest[1] == b'/'))
                {
                    return true;
                }
            }
            _ => {}
        }
        prev = b;
    }
    false
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The normalised form of an origin-form path (it starts with `/`; `*` and others are left).
pub fn normalize(path: &str, rules: PathRules) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') || !may_need(bytes, rules) {
        return Ok(Cow::Borrowed(path));
    }
    // 1. Percent-encodings: decode the unreserved, upper-case the rest.
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::BadEscape);
            };
            let c = h * 16 + l;
            if is_unreserved(c) {
                decoded.push(c);
            } else {
                decoded.push(b'%');
                decoded.extend_from_slice(format!("{c:02X}").as_bytes());
            }
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    // 2. Segments: merge empty ones, drop `.`, climb for `..`.
    let trailing = decoded.ends_with(b"/")
        || decoded.ends_with(b"/.")
        || decoded.ends_with(b"/..")
        || decoded == b"/";
    let mut out: Vec<&[u8]> = Vec::new();
    let parts: Vec<&[u8]> = decoded[1..].split(|b| *b == b'/').collect();
    let last = parts.len().saturating_sub(1);
    for (n, seg) in parts.into_iter().enumerate() {
        match seg {
            b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            // A trailing slash is put back below; empty segments merge unless told not to.
            b"" if n == last || rules.merge_slashes => {}
            _ => out.push(seg),
        }
    }
    let mut result = Vec::with_capacity(decoded.len());
    for seg in &out {
        result.push(b'/');
        result.extend_from_slice(seg);
    }
    if result.is_empty() || (trailing && !result.ends_with(b"/")) {
        result.push(b'/');
    }
    // Only ASCII bytes were replaced or removed, so the result is as valid UTF-8 as the input
    // (decoded unreserved characters are ASCII).
    match String::from_utf8(result) {
        Ok(s) => Ok(Cow::Owned(s)),
        Err(_) => Err(PathError::BadEscape),
    }
}

#[cfg(test)]
mod tests;
