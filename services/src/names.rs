//! Header names read off the wire. `HeaderName::from_bytes` copies a name the `http` crate has
//! no constant for into an allocation of its own, per field of every head; browsers' requests
//! carry several such names (fetch metadata, client hints), and proxies add more. Those listed
//! here are found by a comparison against a short list picked by the name's first letter, and
//! handed out as a clone of a static name: no allocation. Every other name — the standard ones,
//! whose first letters pick no list or a list they are quickly not in, among them — goes to
//! `HeaderName::from_bytes` as before.

use http::header::{HeaderName, InvalidHeaderName};

/// The header name `bytes` spells (in any case), as `HeaderName::from_bytes` gives it.
#[inline]
pub fn header_name(bytes: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    // Inlined: a name whose first letter picks no list costs one comparison more than
    // `from_bytes` alone.
    let list: &[Known] = match bytes.first().map(u8::to_ascii_lowercase) {
        Some(b's') => &S,
        Some(b'x') => &X,
        Some(b't') => &T,
        Some(b'p') => &P,
        Some(b'k') => &K,
        _ => return HeaderName::from_bytes(bytes),
    };
    listed(bytes, list)
}

/// [`header_name`] for a name whose first letter picked `list`.
#[inline(never)]
fn listed(bytes: &[u8], list: &[Known]) -> Result<HeaderName, InvalidHeaderName> {
    if bytes.len() <= WIDTH {
        let words = words(bytes);
        for known in list {
            if known.len == bytes.len() && known.matches(&words) {
                return Ok(known.name.clone());
            }
        }
    }
    HeaderName::from_bytes(bytes)
}

/// The longest name listed, rounded up to whole words.
const WIDTH: usize = 24;

/// `bytes` (at most `WIDTH` of them) as little-endian words, zero past its end.
fn words(bytes: &[u8]) -> [u64; WIDTH / 8] {
    let mut padded = [0u8; WIDTH];
    padded[..bytes.len()].copy_from_slice(bytes);
    let mut words = [0u64; WIDTH / 8];
    for (word, chunk) in words.iter_mut().zip(padded.chunks_exact(8)) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(chunk);
        *word = u64::from_le_bytes(eight);
    }
    words
}

/// A listed name, with its bytes as words and the case bit (0x20) of each of its letters: a
/// name of the same length matches in any case when, its letters' case bits set, it equals
/// these words (a byte that is not a letter must be equal as it is).
struct Known {
    name: HeaderName,
    len: usize,
    lower: [u64; WIDTH / 8],
    case: [u64; WIDTH / 8],
}

impl Known {
    const fn new(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        let mut lower = [0u64; WIDTH / 8];
        let mut case = [0u64; WIDTH / 8];
        let mut i = 0;
        while i < bytes.len() {
            let shift = (i % 8) * 8;
            lower[i / 8] |= (bytes[i] as u64) << shift;
            if bytes[i].is_ascii_lowercase() {
                case[i / 8] |= 0x20 << shift;
            }
            i += 1;
        }
        Self {
            name: HeaderName::from_static(name),
            len: bytes.len(),
            lower,
            case,
        }
    }

    fn matches(&self, words: &[u64; WIDTH / 8]) -> bool {
        words
            .iter()
            .zip(&self.case)
            .zip(&self.lower)
            .all(|((word, case), lower)| word | case == *lower)
    }
}

// The names without a constant in the `http` crate that requests and answers often carry,
// by first letter.
static S: [Known; 9] = [
    Known::new("sec-fetch-site"),
    Known::new("sec-fetch-mode"),
    Known::new("sec-fetch-dest"),
    Known::new("sec-fetch-user"),
    Known::new("sec-ch-ua"),
    Known::new("sec-ch-ua-mobile"),
    Known::new("sec-ch-ua-platform"),
    Known::new("sec-gpc"),
    Known::new("sec-purpose"),
];
static X: [Known; 10] = [
    Known::new("x-requested-with"),
    Known::new("x-forwarded-for"),
    Known::new("x-forwarded-proto"),
    Known::new("x-forwarded-host"),
    Known::new("x-real-ip"),
    Known::new("x-request-id"),
    Known::new("x-correlation-id"),
    Known::new("x-powered-by"),
    Known::new("x-csrf-token"),
    Known::new("x-api-key"),
];
static T: [Known; 2] = [Known::new("traceparent"), Known::new("tracestate")];
static P: [Known; 2] = [Known::new("priority"), Known::new("proxy-connection")];
static K: [Known; 1] = [Known::new("keep-alive")];

#[cfg(test)]
mod tests {
    use super::*;

    fn spellings(name: &str) -> [String; 3] {
        let capitalised = name
            .split('-')
            .map(|w| {
                let mut w = w.to_owned();
                w[..1].make_ascii_uppercase();
                w
            })
            .collect::<Vec<_>>()
            .join("-");
        [name.to_owned(), name.to_ascii_uppercase(), capitalised]
    }

    /// Every listed name, in any case, gives what `from_bytes` gives, and is one of the lists'
    /// own (not a standard name, which `from_bytes` hands out without an allocation).
    #[test]
    fn every_listed_name_is_what_from_bytes_gives() {
        let lists: [&[Known]; 5] = [&S, &X, &T, &P, &K];
        let mut seen = 0;
        for (list, first) in lists.into_iter().zip(["s", "x", "t", "p", "k"]) {
            for known in list {
                seen += 1;
                let name = known.name.as_str();
                assert_eq!(known.len, name.len());
                assert!(name.len() <= WIDTH, "{name}");
                assert!(name.starts_with(first), "{name} is under {first}");
                for spelling in spellings(name) {
                    let fast = header_name(spelling.as_bytes()).unwrap();
                    let slow = HeaderName::from_bytes(spelling.as_bytes()).unwrap();
                    assert_eq!(fast, slow, "{spelling}");
                    assert_eq!(fast.as_str(), name, "{spelling}");
                }
            }
        }
        assert_eq!(seen, 24);
    }

    /// Standard names, near misses and invalid names are `from_bytes`'s answers.
    #[test]
    fn other_names_are_from_bytes_answers() {
        for bytes in [
            &b"Server"[..],
            b"set-cookie",
            b"Strict-Transport-Security",
            b"sec-websocket-key",
            b"TE",
            b"Transfer-Encoding",
            b"pragma",
            b"Proxy-Authorization",
            b"x-frame-options",
            b"X-Content-Type-Options",
            b"host",
            b"x-custom",
            b"sec-fetch-sitE2",
            b"sec-fetch-sit",
            b"x-forwarded-fox",
            b"keep_alive",
            b"",
            b"s",
            b"x",
            b"bad name",
            b"sec fetch site",
            b"x-forwarded-for\0",
            // A control byte whose case bit set would read as `-`.
            b"sec\rfetch\rsite",
            b"x-forwarded\rfor",
            b"sec-fetch-sit\xc5",
            b"\xffx",
        ] {
            let fast = header_name(bytes).ok();
            let slow = HeaderName::from_bytes(bytes).ok();
            assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(bytes));
        }
    }
}
