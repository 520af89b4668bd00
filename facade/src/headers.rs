//! Header handling on the way through: hop-by-hop fields (RFC 9110 §7.6.1), the forwarding
//! fields (`X-Forwarded-*`, `Via`), and `Location` rewriting.

use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, FORWARDED, HOST, TE,
    TRANSFER_ENCODING, UPGRADE,
};
use http::header::{CONTENT_LOCATION, LOCATION};
use http::HeaderMap;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `Via`, borrowable for as long as the fields sent after a request's own.
pub(crate) static VIA: HeaderName = http::header::VIA;
/// `X-Forwarded-Proto`'s values.
pub static HTTP: HeaderValue = HeaderValue::from_static("http");
pub static HTTPS: HeaderValue = HeaderValue::from_static("https");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Fields that describe one connection and never travel past it.
fn is_standard_hop_by_hop(name: &HeaderName) -> bool {
    name == CONNECTION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
        || name == TE
        || name == TRANSFER_ENCODING
        || name == UPGRADE
}

/// Header names the facade reserves for itself (`X-Strangler-*`).
pub(crate) const INTERNAL_PREFIX: &str = "x-strangler-";

/// Which of the fields the request path looks at or edits a request carries, found in one
/// pass over its names. Most requests carry none of them, and each lookup in a `HeaderMap`
/// hashes the name: the request path asks these flags first and looks up only what is there.
/// A flag that says "absent" stays true while fields are only removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Present {
    /// One of the standard hop-by-hop fields (see [`strip_hop_by_hop`]).
    pub hop_by_hop: bool,
    pub te: bool,
    pub upgrade: bool,
    pub expect: bool,
    pub transfer_encoding: bool,
    pub content_length: bool,
    /// `Forwarded` or one of `X-Forwarded-For`, `-Proto`, `-Host`.
    pub forwarding: bool,
    /// An `X-Strangler-*` field (which a client may not forge).
    pub internal: bool,
    /// How many `Host` fields (2 for two or more).
    pub hosts: u8,
}

impl Present {
    /// Notes one field's name.
    #[inline]
    pub fn note(&mut self, name: &HeaderName) {
        if is_standard_hop_by_hop(name) {
            self.hop_by_hop = true;
            self.te |= name == TE;
            self.upgrade |= name == UPGRADE;
            self.transfer_encoding |= name == TRANSFER_ENCODING;
        } else if name == CONTENT_LENGTH {
            self.content_length = true;
        } else if name == HOST {
            self.hosts = (self.hosts + 1).min(2);
        } else if name == EXPECT {
            self.expect = true;
        } else if name == FORWARDED {
            self.forwarding = true;
        } else {
            // The rest of the names this looks for are not standard ones: they compare as bytes.
            let s = name.as_str();
            if s.starts_with("x-") {
                self.forwarding |= name == X_FORWARDED_FOR
                    || name == X_FORWARDED_PROTO
                    || name == X_FORWARDED_HOST;
                self.internal |= s.starts_with(INTERNAL_PREFIX);
            }
        }
    }

    /// The flags of every field in `headers` (each line of a repeated field noted).
    #[cfg(test)]
    pub fn scan(headers: &HeaderMap) -> Self {
        let mut present = Self::default();
        for (name, _) in headers {
            present.note(name);
        }
        present
    }
}

/// Whether `Connection` lists `token` (case-insensitive).
pub fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Whether the client's `TE` accepts trailers.
pub fn te_has_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(TE).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|t| {
            let token = t.split(|&b| b == b';').next().unwrap_or_default();
            token.trim_ascii().eq_ignore_ascii_case(b"trailers")
        })
    })
}

/// Removes the hop-by-hop fields: the standard ones and every field the `Connection` header
/// names. With `keep_upgrade`, `Upgrade` survives and `Connection: upgrade` is set again, for
/// an upgrade that is being passed on.
///
/// `Host` and `Content-Length` are never removed even if `Connection` names them: dropping them
/// would change how the message is routed or framed, which is what request smuggling wants.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of these fields: one pass of cheap name comparisons (standard
    // names compare as enum tags) spares the hash lookups of six removals.
    if !keep_upgrade && !headers.keys().any(is_standard_hop_by_hop) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let mut named: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(CONNECTION) {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.is_empty() {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(token) {
                    if name != HOST && name != CONTENT_LENGTH && !is_standard_hop_by_hop(&name) {
                        named.push(name);
                    }
                }
            }
        }
        for name in named {
            headers.remove(name);
        }
        headers.remove(CONNECTION);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(TE);
    headers.remove(TRANSFER_ENCODING);
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(UPGRADE);
    }
}

/// What the facade knows about the client for the forwarding fields.
pub struct Forwarded<'a> {
    /// The peer's address, as a header value.
    pub peer: &'a HeaderValue,
    /// Whether `peer` is a trusted proxy whose forwarding fields are kept.
    pub trusted: bool,
    /// [`HTTP`] or [`HTTPS`].
    pub proto: &'static HeaderValue,
    pub host: Option<&'a HeaderValue>,
}

/// Sets `X-Forwarded-For`, `-Proto`, `-Host` and drops `Forwarded` from untrusted peers. From a
/// trusted proxy the existing chain is kept and the peer appended. `carried` says whether the
/// request carries any forwarding field ([`Present::forwarding`]): most carry none, and then
/// the fields are appended without lookups.
pub fn set_forwarded(headers: &mut HeaderMap, fwd: &Forwarded<'_>, carried: bool) {
    if fwd.trusted {
        let peer = fwd.peer.to_str().unwrap_or("unknown");
        let mut chain = String::new();
        for v in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(s) = v.to_str() {
                if !chain.is_empty() {
                    chain.push_str(", ");
                }
                chain.push_str(s);
            }
        }
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(peer);
        if let Ok(v) = HeaderValue::from_str(&chain) {
            headers.insert(&X_FORWARDED_FOR, v);
        }
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(&X_FORWARDED_PROTO, fwd.proto.clone());
        }
        if !headers.contains_key(&X_FORWARDED_HOST) {
            if let Some(host) = fwd.host {
                headers.insert(&X_FORWARDED_HOST, host.clone());
            }
        }
    } else if !carried {
        // Nothing to replace or remove: appended (replacing and removing take lookups, each
        // hashing a name of 15–17 bytes).
        headers.append(&X_FORWARDED_FOR, fwd.peer.clone());
        headers.append(&X_FORWARDED_PROTO, fwd.proto.clone());
        if let Some(host) = fwd.host {
            headers.append(&X_FORWARDED_HOST, host.clone());
        }
    } else {
        headers.insert(&X_FORWARDED_FOR, fwd.peer.clone());
        headers.insert(&X_FORWARDED_PROTO, fwd.proto.clone());
        match fwd.host {
            Some(host) => {
                headers.insert(&X_FORWARDED_HOST, host.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
        headers.remove(FORWARDED);
    }
}

/// What [`set_forwarded`] appends for an untrusted peer whose request carries no forwarding
/// field, and `Via` after it, as fields for the upstream to send after the request's own (see
/// `Upstream::try_send_appending`): the same fields in the same order, without the appends to
/// the map (each hashes a name of 15–17 bytes). Fills `out` from the start; how many it took.
pub fn appended_forwarding<'a>(
    fwd: &Forwarded<'a>,
    via: &'a HeaderValue,
    out: &mut [(&'static HeaderName, &'a HeaderValue); 4],
) -> usize {
    out[0] = (&X_FORWARDED_FOR, fwd.peer);
    out[1] = (&X_FORWARDED_PROTO, fwd.proto);
    match fwd.host {
        Some(host) => {
            out[2] = (&X_FORWARDED_HOST, host);
            out[3] = (&VIA, via);
            4
        }
        None => {
            out[2] = (&VIA, via);
            3
        }
    }
}

/// If `value` is an absolute URL on `upstream` (`http://host:port`), the same URL on `public`.
pub fn rewrite_origin(value: &HeaderValue, upstream: &str, public: &str) -> Option<HeaderValue> {
    let bytes = value.as_bytes();
    if bytes.len() < upstream.len()
        || !bytes[..upstream.len()].eq_ignore_ascii_case(upstream.as_bytes())
    {
        return None;
    }
    let rest = &bytes[upstream.len()..];
    if !matches!(rest.first(), None | Some(b'/' | b'?' | b'#')) {
        // `http://host:80` must not match `http://host:8080`.
        return None;
    }
    let mut out = Vec::with_capacity(public.len() + rest.len());
    out.extend_from_slice(public.as_bytes());
    out.extend_from_slice(rest);
    HeaderValue::from_bytes(&out).ok()
}

pub(crate) fn rewrite_redirects(
    headers: &mut http::HeaderMap,
    upstream: &strangler_services::Origin,
    host: &HeaderValue,
) {
    // Most answers carry neither field: nothing is formatted for them. (One pass over the
    // names costs less than two lookups, which hash, for the few fields most answers have.)
    if !headers
        .keys()
        .any(|name| name == LOCATION || name == CONTENT_LOCATION)
    {
        return;
    }
    let Ok(host) = host.to_str() else { return };
    let public = format!("http://{host}");
    let upstream = upstream.to_prefix();
    for name in [LOCATION, CONTENT_LOCATION] {
        rewrite_one(headers, &name, &upstream, &public);
    }
}

fn rewrite_one(headers: &mut http::HeaderMap, name: &HeaderName, upstream: &str, public: &str) {
    if let Some(value) = headers.get(name) {
        if let Some(new) = rewrite_origin(value, upstream, public) {
            headers.insert(name, new);
        }
    }
}

#[cfg(test)]
mod tests;
