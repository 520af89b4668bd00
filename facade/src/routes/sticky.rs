//! Which side answers a request: the context's state, and in canary the bucket of the request's
//! sticky key.
//!
//! A key's bucket is fixed (FNV-1a, see [`sticky_bucket`]), so every replica and every restart
//! sends a user to the same side; a key goes to the new side while its bucket is below the
//! weight, so raising the weight only ever moves keys from legacy to new.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{AUTHORIZATION, COOKIE};
use http::HeaderMap;
use strangler_catalog::{fnv1a64, MigrationState, Side, StickyKey};

use super::ContextEntry;

/// Buckets per context: one per basis point of weight.
const BUCKETS: u16 = 10_000;

/// The sticky bucket of a key for a context, in `0..10000`: FNV-1a 64 over the context's name,
/// a zero byte, and the key, modulo 10000. The context's name is part of it so that one user is
/// not always among the first to move in every context.
pub fn sticky_bucket(context: &str, key: &[u8]) -> u16 {
    let len = context.len() + 1 + key.len();
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    // The usual short key fits on the stack; only a long one costs an allocation.
    let buf: &mut [u8] = match stack.get_mut(..len) {
        Some(buf) => buf,
        None => {
            heap.resize(len, 0);
            &mut heap
        }
    };
    let (name, rest) = buf.split_at_mut(context.len());
    name.copy_from_slice(context.as_bytes());
    if let Some((zero, tail)) = rest.split_first_mut() {
        *zero = 0;
        tail.copy_from_slice(key);
    }
    // Always below 10000, so it fits.
    (fnv1a64(buf) % u64::from(BUCKETS)) as u16
}

/// Which side answers: legacy and shadow → legacy; migrated and retired → new; canary → new iff
/// the bucket of the request's sticky key is below the weight. Without a sticky key configured,
/// or with the key absent or empty in the request, a random bucket decides for this request alone.
pub fn decide_side(ctx: &ContextEntry, headers: &HeaderMap, peer: IpAddr) -> Side {
    match ctx.state {
        MigrationState::Legacy | MigrationState::Shadow => Side::Legacy,
        MigrationState::Migrated | MigrationState::Retired => Side::New,
        // The weight alone decides at its ends: spare the key's extraction.
        MigrationState::Canary if ctx.weight == 0 => Side::Legacy,
        MigrationState::Canary if ctx.weight >= BUCKETS => Side::New,
        MigrationState::Canary => {
            let bucket = ctx
                .sticky
                .as_ref()
                .and_then(|key| key_bucket(&ctx.name, key, headers, peer))
                .unwrap_or_else(|| fastrand::u16(..BUCKETS));
            if bucket < ctx.weight {
                Side::New
            } else {
                Side::Legacy
            }
        }
    }
}

fn key_bucket(context: &str, key: &StickyKey, headers: &HeaderMap, peer: IpAddr) -> Option<u16> {
    with_key(key, headers, peer, |value| sticky_bucket(context, value))
}

/// Who the request's sticky key says the client is, as a 64-bit hash; `None` without a sticky
/// key configured, or with the key absent or empty in the request.
pub fn sticky_identity(ctx: &ContextEntry, headers: &HeaderMap, peer: IpAddr) -> Option<u64> {
    let key = ctx.sticky.as_ref()?;
    with_key(key, headers, peer, fnv1a64)
}

/// `f` of the request's sticky key value (non-empty), if it has one.
fn with_key<T>(
    key: &StickyKey,
    headers: &HeaderMap,
    peer: IpAddr,
    f: impl FnOnce(&[u8]) -> T,
) -> Option<T> {
    let value: Cow<'_, [u8]> = match key {
        StickyKey::Cookie(name) => cookie(headers, name)?.into(),
        StickyKey::Header(name) => headers.get(name.as_str())?.as_bytes().into(),
        StickyKey::JwtSub => jwt_sub(headers)?.into_bytes().into(),
        StickyKey::Ip => {
            // A v4 client seen through a dual-stack socket is the same client.
            let mut text = IpText::new();
            write!(text, "{}", peer.to_canonical()).ok()?;
            return Some(f(text.as_bytes()));
        }
    };
    (!value.is_empty()).then(|| f(&value))
}

/// The value of the first cookie called `name`, over all `Cookie` fields.
pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    strangler_catalog::cookie::find(headers.get_all(COOKIE).iter().map(|v| v.as_bytes()), name)
}

/// The `sub` claim of `Authorization: Bearer <jwt>`, decoded but not verified: it only picks a
/// bucket, and a client that forges it only picks its own side.
pub(super) fn jwt_sub(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.as_bytes().trim_ascii();
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value.get(7..)?.trim_ascii();
    let payload = token.split(|&b| b == b'.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(&base64url_decode(payload)?).ok()?;
    match claims.get("sub")? {
        serde_json::Value::String(s) => Some(s.clone()),
        // Some issuers put a number; its text is as good a key.
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Base64url without padding (RFC 7515 §2), the JWT alphabet; padding and the standard
/// alphabet's `+` and `/` are tolerated.
pub(super) fn base64url_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // The low byte of what has gathered; the bits above it were emitted before.
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// An address as text, on the stack (the longest is 45 bytes).
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    fn new() -> Self {
        Self {
            buf: [0; 48],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
