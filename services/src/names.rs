//! Header names read off the wire. `HeaderName::from_bytes` lowercases every name into a
//! buffer and matches it against the standard names (~145 instructions for `content-length`),
//! and copies a name the `http` crate has no constant for into an allocation of its own, per
//! field of every head; browsers' requests carry several such names (fetch metadata, client
//! hints), and proxies add more. The names heads most often carry, standard or not, are found
//! here by a comparison a word at a time against a short list picked by the name's first
//! letter (~95 instructions for `content-length`), and handed out as a clone of a static name:
//! no allocation, no lowercasing. Every other name goes to `HeaderName::from_bytes` as before.

use http::header::{HeaderName, InvalidHeaderName};

/// The header name `bytes` spells (in any case), as `HeaderName::from_bytes` gives it.
#[inline]
pub fn header_name(bytes: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    // Inlined: a name whose first letter picks no list costs one comparison more than
    // `from_bytes` alone.
    let list: &[Known] = match bytes.first().map(u8::to_ascii_lowercase) {
        Some(b'a') => &A,
        Some(b'c') => &C,
        Some(b'd') => &D,
        Some(b'e') => &E,
        Some(b'h') => &H,
        Some(b'i') => &I,
        Some(b'k') => &K,
        Some(b'l') => &L,
        Some(b'o') => &O,
        Some(b'p') => &P,
        Some(b'r') => &R,
        Some(b's') => &S,
        Some(b't') => &T,
        Some(b'u') => &U,
        Some(b'v') => &V,
        Some(b'x') => &X,
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
const WIDTH: usize = 32;

/// `bytes` (at most `WIDTH` of them) as little-endian words, zero past its end. Read with
/// whole-word loads, the last part of a word by a load that overlaps the word before (a copy
/// into a padded buffer is a call to `memcpy`, dearer than the comparison for names this
/// short).
fn words(bytes: &[u8]) -> [u64; WIDTH / 8] {
    let mut words = [0u64; WIDTH / 8];
    let len = bytes.len();
    let word_at = |at: usize| match bytes.get(at..at + 8) {
        Some(&[a, b, c, d, e, f, g, h]) => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => 0,
    };
    let half_at = |at: usize| match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => u64::from(u32::from_le_bytes([a, b, c, d])),
        _ => 0,
    };
    if len >= 8 {
        for (i, word) in words.iter_mut().enumerate().take(len / 8) {
            *word = word_at(i * 8);
        }
        if let Some(word) = words.get_mut(len / 8).filter(|_| !len.is_multiple_of(8)) {
            *word = word_at(len - 8) >> (8 * (8 - len % 8));
        }
    } else if len >= 4 {
        // The two halves overlap where the name is shorter than 8: the same bytes, or'ed.
        words[0] = half_at(0) | half_at(len - 4) << (8 * (len - 4));
    } else {
        for (i, b) in bytes.iter().enumerate() {
            words[0] |= u64::from(*b) << (8 * i);
        }
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

// The names requests and answers most often carry, by first letter, the likelier first in
// each list (a name of another length is passed over at the cost of one comparison).
static A: [Known; 7] = [
    Known::new("accept"),
    Known::new("accept-encoding"),
    Known::new("accept-language"),
    Known::new("authorization"),
    Known::new("accept-ranges"),
    Known::new("age"),
    Known::new("access-control-allow-origin"),
];
static C: [Known; 8] = [
    Known::new("content-length"),
    Known::new("content-type"),
    Known::new("connection"),
    Known::new("cache-control"),
    Known::new("cookie"),
    Known::new("content-encoding"),
    Known::new("content-security-policy"),
    Known::new("content-disposition"),
];
static D: [Known; 2] = [Known::new("date"), Known::new("dnt")];
static E: [Known; 3] = [
    Known::new("etag"),
    Known::new("expires"),
    Known::new("expect"),
];
static H: [Known; 1] = [Known::new("host")];
static I: [Known; 2] = [Known::new("if-none-match"), Known::new("if-modified-since")];
static K: [Known; 1] = [Known::new("keep-alive")];
static L: [Known; 3] = [
    Known::new("last-modified"),
    Known::new("location"),
    Known::new("link"),
];
static O: [Known; 1] = [Known::new("origin")];
static P: [Known; 3] = [
    Known::new("priority"),
    Known::new("pragma"),
    Known::new("proxy-connection"),
];
static R: [Known; 3] = [
    Known::new("referer"),
    Known::new("range"),
    Known::new("referrer-policy"),
];
static S: [Known; 12] = [
    Known::new("server"),
    Known::new("set-cookie"),
    Known::new("sec-fetch-site"),
    Known::new("sec-fetch-mode"),
    Known::new("sec-fetch-dest"),
    Known::new("sec-fetch-user"),
    Known::new("sec-ch-ua"),
    Known::new("sec-ch-ua-mobile"),
    Known::new("sec-ch-ua-platform"),
    Known::new("strict-transport-security"),
    Known::new("sec-gpc"),
    Known::new("sec-purpose"),
];
static T: [Known; 5] = [
    Known::new("transfer-encoding"),
    Known::new("te"),
    Known::new("traceparent"),
    Known::new("tracestate"),
    Known::new("trailer"),
];
static U: [Known; 2] = [
    Known::new("user-agent"),
    Known::new("upgrade-insecure-requests"),
];
static V: [Known; 2] = [Known::new("vary"), Known::new("via")];
static X: [Known; 13] = [
    Known::new("x-forwarded-for"),
    Known::new("x-forwarded-proto"),
    Known::new("x-forwarded-host"),
    Known::new("x-requested-with"),
    Known::new("x-real-ip"),
    Known::new("x-request-id"),
    Known::new("x-correlation-id"),
    Known::new("x-powered-by"),
    Known::new("x-csrf-token"),
    Known::new("x-api-key"),
    Known::new("x-content-type-options"),
    Known::new("x-frame-options"),
    Known::new("x-xss-protection"),
];

/// Every list with the letter that picks it (for the tests).
#[cfg(test)]
static LISTS: [(u8, &[Known]); 16] = [
    (b'a', &A),
    (b'c', &C),
    (b'd', &D),
    (b'e', &E),
    (b'h', &H),
    (b'i', &I),
    (b'k', &K),
    (b'l', &L),
    (b'o', &O),
    (b'p', &P),
    (b'r', &R),
    (b's', &S),
    (b't', &T),
    (b'u', &U),
    (b'v', &V),
    (b'x', &X),
];

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

    /// Every listed name, in any case, gives what `from_bytes` gives; each is under its first
    /// letter, listed once, and fits the words compared.
    #[test]
    fn every_listed_name_is_what_from_bytes_gives() {
        let mut seen = std::collections::HashSet::new();
        for (first, list) in &LISTS {
            for known in *list {
                let name = known.name.as_str();
                assert!(seen.insert(name), "{name} is listed twice");
                assert_eq!(known.len, name.len());
                assert!(name.len() <= WIDTH, "{name}");
                assert_eq!(
                    name.as_bytes()[0],
                    *first,
                    "{name} is under {}",
                    *first as char
                );
                for spelling in spellings(name) {
                    let fast = header_name(spelling.as_bytes()).unwrap();
                    let slow = HeaderName::from_bytes(spelling.as_bytes()).unwrap();
                    assert_eq!(fast, slow, "{spelling}");
                    assert_eq!(fast.as_str(), name, "{spelling}");
                }
            }
        }
        assert_eq!(seen.len(), 68);
    }

    /// The word loads give what a copy into a zeroed buffer gives, for every length.
    #[test]
    fn words_are_the_padded_bytes() {
        let text: Vec<u8> = (1..=WIDTH as u8).map(|i| i.wrapping_mul(37) | 1).collect();
        for len in 0..=WIDTH {
            let mut padded = [0u8; WIDTH];
            padded[..len].copy_from_slice(&text[..len]);
            let expected: Vec<u64> = padded
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(words(&text[..len]).to_vec(), expected, "length {len}");
        }
    }

    /// Standard names, near misses and invalid names are `from_bytes`'s answers.
    #[test]
    fn other_names_are_from_bytes_answers() {
        for bytes in [
            &b"sec-websocket-key"[..],
            b"Servers",
            b"set-cookie2",
            b"Strict-Transport-Securit",
            b"contents-length",
            b"content-lengtH\x80",
            b"Content-Lengt",
            b"date\0",
            b"hosT ",
            b"Access-Control-Allow-Origin2",
            b"upgrade-insecure-requests-and-more-than-thirty-two",
            b"www-authenticate",
            b"Warning",
            b"Proxy-Authorization",
            b"x-custom",
            b"c",
            b"-",
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
