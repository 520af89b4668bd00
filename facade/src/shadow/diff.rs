//! Comparing a legacy answer with a new one: status, content type, and the body — JSON
//! structurally (key order ignored, arrays in order), anything else byte for byte. Each
//! difference is reduced to a signature: where (a JSON path with array indexes folded to `[*]`)
//! and what kind (missing, extra, type, value, status, header, body), so that thousands of
//! mismatches group into a few.

use serde_json::Value;

use strangler_anti_corruption::json::{self as ajson, Text, Value as J};
use strangler_catalog::json_path::{At, JsonPath, Step};
use strangler_catalog::ShadowPolicy;

/// A value normaliser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Norm {
    Timestamp,
    Uuid,
    Whitespace,
    Case,
}

/// A context's compiled noise rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub sample_percent: u8,
    /// Reverse shadow share in canary and migrated, percent.
    pub reverse_percent: u8,
    /// Share of shadowed safe requests sent to legacy twice to learn noise, percent.
    pub learn_percent: u8,
    /// Response header fields compared, lower-case.
    pub headers: Vec<http::HeaderName>,
    ignore: Vec<JsonPath>,
    unordered: Vec<JsonPath>,
    tolerance: Vec<(JsonPath, f64)>,
    normalize: Vec<(JsonPath, Norm)>,
    redact: Vec<JsonPath>,
    /// Query parameters blanked in stored requests (besides secret-looking ones).
    pub redact_query: Vec<String>,
    /// Request header fields a stored request keeps besides the standard ones.
    pub mirror_headers: Vec<String>,
}

impl Rules {
    /// Compiles a policy (already validated by the catalog; a bad path is skipped).
    pub fn compile(p: &ShadowPolicy) -> Self {
        let pats = |v: &[String]| v.iter().filter_map(|s| JsonPath::parse(s).ok()).collect();
        Self {
            sample_percent: if p.paused {
                0
            } else {
                p.sample_percent.unwrap_or(100).min(100)
            },
            reverse_percent: p.reverse_percent.unwrap_or(0).min(100),
            learn_percent: p.learn_percent.unwrap_or(0).min(100),
            headers: p
                .headers
                .iter()
                .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            ignore: pats(&p.ignore),
            redact: pats(&p.redact),
            redact_query: p.redact_query.clone(),
            mirror_headers: p.mirror_headers.clone(),
            unordered: pats(&p.unordered),
            tolerance: p
                .tolerance
                .iter()
                .filter_map(|(k, v)| Some((JsonPath::parse(k).ok()?, *v)))
                .collect(),
            normalize: p
                .normalize
                .iter()
                .filter_map(|(k, v)| {
                    let n = match v.as_str() {
                        "timestamp" => Norm::Timestamp,
                        "uuid" => Norm::Uuid,
                        "whitespace" => Norm::Whitespace,
                        "case" => Norm::Case,
                        _ => return None,
                    };
                    Some((JsonPath::parse(k).ok()?, n))
                })
                .collect(),
        }
    }
}

impl Rules {
    /// Blanks the values at the redacted paths of a parsed body.
    pub fn blank_json(&self, v: &mut Value) {
        if !self.redact.is_empty() {
            self.blank(v, &mut Vec::new());
        }
    }

    fn blank(&self, v: &mut Value, at: &mut Vec<Step>) {
        if self.redact.iter().any(|p| p.covers(at)) {
            *v = Value::String("[redacted]".into());
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    at.push(Step::Key(k.clone()));
                    self.blank(child, at);
                    at.pop();
                }
            }
            Value::Array(items) => {
                at.push(Step::Each);
                for child in items {
                    self.blank(child, at);
                }
                at.pop();
            }
            _ => {}
        }
    }
}

fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 16
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
}

fn looks_like_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn normalized_equal(n: Norm, a: &str, b: &str) -> bool {
    match n {
        Norm::Timestamp => looks_like_timestamp(a) && looks_like_timestamp(b),
        Norm::Uuid => looks_like_uuid(a) && looks_like_uuid(b),
        Norm::Whitespace => a.split_whitespace().eq(b.split_whitespace()),
        Norm::Case => a.to_lowercase() == b.to_lowercase(),
    }
}

/// What kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Legacy has it, new does not.
    Missing,
    /// New has it, legacy does not.
    Extra,
    Type,
    Value,
    Status,
    Header,
    /// Non-JSON bodies differ.
    Body,
    /// More differences than one comparison reports (see [`MAX_SIGNATURES`]).
    More,
}

/// Signatures one comparison reports at most; the rest are one `more …` signature.
pub const MAX_SIGNATURES: usize = 32;
/// Differences collected before grouping; beyond, the walk stops counting new ones.
const MAX_RAW: usize = 4096;
/// Objects with more keys than this are maps (ids as keys), not records: their keys are
/// folded into `*` in signatures.
const MAP_KEYS: usize = 64;

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Type => "type",
            Kind::Value => "value",
            Kind::Status => "status",
            Kind::Header => "header",
            Kind::Body => "body",
            Kind::More => "more",
        }
    }
}

/// One difference, as a grouping key: `value $.items[*].total`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature {
    pub kind: Kind,
    pub path: String,
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.path)
    }
}

/// An answer, as far as the comparison needs it.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    /// The values of the compared header fields, in the order of [`Rules::headers`].
    pub headers: &'a [Option<String>],
    pub body: &'a [u8],
}

pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let ct = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        ct == "application/json" || ct.ends_with("+json")
    })
}

impl Rules {
    /// Non-JSON text bodies under a normaliser at `$` (`whitespace`, `case`) compare as
    /// normalised text.
    fn same_text(&self, a: &[u8], b: &[u8]) -> bool {
        let whole = self.normalize.iter().find(|(p, _)| p.is_root());
        match (whole, std::str::from_utf8(a), std::str::from_utf8(b)) {
            (Some((_, n)), Ok(a), Ok(b)) => normalized_equal(*n, a, b),
            _ => false,
        }
    }
}

/// JSON paths whose values differ between two answers of the same side to the same request:
/// candidates for ignore rules (status, header and non-JSON differences are not paths).
pub fn noise_paths(first: &Answer<'_>, second: &Answer<'_>) -> Vec<String> {
    compare_with(first, second, &Rules::default())
        .into_iter()
        .filter(|s| {
            matches!(
                s.kind,
                Kind::Missing | Kind::Extra | Kind::Type | Kind::Value
            )
        })
        .map(|s| s.path)
        .filter(|p| p != "$" && JsonPath::parse(p).is_ok())
        .collect()
}

/// The signatures of every difference between `legacy` and `new` (empty: they match).
#[cfg(test)]
pub fn compare(legacy: &Answer<'_>, new: &Answer<'_>) -> Vec<Signature> {
    compare_with(legacy, new, &Rules::default())
}

/// Like [`compare`], with a context's noise rules.
pub fn compare_with(legacy: &Answer<'_>, new: &Answer<'_>, rules: &Rules) -> Vec<Signature> {
    let mut out = Vec::new();
    if legacy.status != new.status {
        out.push(Signature {
            kind: Kind::Status,
            path: format!("{} -> {}", legacy.status, new.status),
        });
    }
    let media = |ct: Option<&str>| {
        ct.map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    };
    if media(legacy.content_type) != media(new.content_type) {
        out.push(Signature {
            kind: Kind::Header,
            path: "content-type".into(),
        });
    }
    for (i, name) in rules.headers.iter().enumerate() {
        if legacy.headers.get(i) != new.headers.get(i) {
            out.push(Signature {
                kind: Kind::Header,
                path: name.as_str().to_owned(),
            });
        }
    }
    if legacy.body == new.body {
        // Identical bytes: nothing in the body differs, whatever the rules say.
    } else if is_json(legacy.content_type) && is_json(new.content_type) {
        match (J::parse(legacy.body), J::parse(new.body)) {
            (Ok(a), Ok(b)) => {
                let mut walk = Walk {
                    rules,
                    segs: Vec::new(),
                    path: String::from("$"),
                    out: &mut out,
                };
                walk.diff(&a, &b);
            }
            _ if legacy.body == new.body => {}
            _ => out.push(Signature {
                kind: Kind::Body,
                path: "$ (invalid JSON)".into(),
            }),
        }
    } else if legacy.body != new.body && !rules.same_text(legacy.body, new.body) {
        out.push(Signature {
            kind: Kind::Body,
            path: "$".into(),
        });
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_SIGNATURES {
        out.truncate(MAX_SIGNATURES - 1);
        out.push(Signature {
            kind: Kind::More,
            path: "differences (too many to list)".into(),
        });
    }
    out
}

/// A walk over both values: where it is, and what it found.
struct Walk<'a, 'v> {
    rules: &'a Rules,
    segs: Vec<At<'v>>,
    /// The same place as text (`$.items[*].total`).
    path: String,
    out: &'a mut Vec<Signature>,
}

impl<'v> Walk<'_, 'v> {
    fn push(&mut self, kind: Kind) {
        // Folded paths repeat a lot (every entry of a map): a repeat of the last one is
        // common and cheap to spot; the rest are grouped after the walk.
        if self
            .out
            .last()
            .is_some_and(|s| s.kind == kind && s.path == self.path)
        {
            return;
        }
        if self.out.len() < MAX_RAW {
            self.out.push(Signature {
                kind,
                path: self.path.clone(),
            });
        } else if self.out.last().is_none_or(|s| s.kind != Kind::More) {
            self.out.push(Signature {
                kind: Kind::More,
                path: "differences (too many to list)".into(),
            });
        }
    }

    /// Steps into `seg`. In the signature's path a key that looks like data (an id, a UUID, a
    /// hash), or any key of a map with many keys, is written `*`, so that a difference in
    /// every entry of an ids-as-keys map is one signature, not one per id; rules still see the
    /// key itself.
    fn enter(&mut self, seg: At<'v>, map: bool) -> usize {
        let len = self.path.len();
        match seg {
            At::Key(k) if map || crate::traffic::is_id(k) => self.path.push_str(".*"),
            At::Key(k) => {
                self.path.push('.');
                self.path.push_str(k);
            }
            _ => self.path.push_str("[*]"),
        }
        self.segs.push(seg);
        len
    }

    fn leave(&mut self, len: usize) {
        self.path.truncate(len);
        self.segs.pop();
    }

    fn diff(&mut self, a: &'v J, b: &'v J) {
        let rules = self.rules;
        if rules.ignore.iter().any(|p| p.covers(&self.segs)) {
            return;
        }
        if let Some((_, n)) = rules.normalize.iter().find(|(p, _)| p.is(&self.segs)) {
            if let (J::Str(x), J::Str(y)) = (a, b) {
                if normalized_equal(*n, x, y) {
                    return;
                }
            }
        }
        match (a, b) {
            (J::Obj(x), J::Obj(y)) => {
                let map = x.len().max(y.len()) > MAP_KEYS;
                let (ix, iy) = (Keys::of(x), Keys::of(y));
                // Keys are unique once parsed: when every key of `x` is found in `y` and
                // they have as many, `y` has none of its own.
                let mut found = 0;
                for (at, (k, va)) in x.iter().enumerate() {
                    let len = self.enter(At::Key(k), map);
                    match iy.get(y, k, at) {
                        Some(vb) => {
                            found += 1;
                            self.diff(va, vb);
                        }
                        None if !rules.ignore.iter().any(|p| p.covers(&self.segs)) => {
                            self.push(Kind::Missing)
                        }
                        None => {}
                    }
                    self.leave(len);
                }
                let extra = if found == y.len() { &[][..] } else { y };
                for (k, _) in extra
                    .iter()
                    .enumerate()
                    .filter(|(at, (k, _))| ix.get(x, k, *at).is_none())
                    .map(|(_, f)| f)
                {
                    let len = self.enter(At::Key(k), map);
                    if !rules.ignore.iter().any(|p| p.covers(&self.segs)) {
                        self.push(Kind::Extra);
                    }
                    self.leave(len);
                }
            }
            (J::Arr(x), J::Arr(y)) => {
                let len = self.enter(At::Element, false);
                if rules
                    .unordered
                    .iter()
                    .any(|p| p.is(&self.segs[..self.segs.len() - 1]))
                {
                    // As multisets: the same elements, in any order.
                    let canon = |v: &[J]| {
                        let mut s: Vec<String> = v
                            .iter()
                            .map(|e| {
                                let mut t = String::new();
                                canonical(e, &mut t);
                                t
                            })
                            .collect();
                        s.sort();
                        s
                    };
                    if canon(x) != canon(y) {
                        self.push(Kind::Value);
                    }
                } else {
                    for (va, vb) in x.iter().zip(y) {
                        self.diff(va, vb);
                    }
                    if x.len() > y.len() {
                        self.push(Kind::Missing);
                    } else if y.len() > x.len() {
                        self.push(Kind::Extra);
                    }
                }
                self.leave(len);
            }
            (J::Num(x), J::Num(y)) => {
                let tolerance = rules
                    .tolerance
                    .iter()
                    .find(|(p, _)| p.is(&self.segs))
                    .map(|(_, t)| *t);
                let (x, y) = (Num::of(x), Num::of(y));
                let close = match tolerance {
                    Some(t) => (x.as_f64() - y.as_f64()).abs() <= t,
                    None => x == y,
                };
                if !close {
                    self.push(Kind::Value);
                }
            }
            _ if a.type_name() != b.type_name() => self.push(Kind::Type),
            _ if a != b => self.push(Kind::Value),
            _ => {}
        }
    }
}

/// Objects up to this many keys are searched key by key; larger ones through a sorted index,
/// so that comparing two maps of many keys stays O(n log n).
const SCAN_KEYS: usize = 16;

/// How to find a key in one object: a scan, or a sorted index of its positions.
enum Keys {
    Scan,
    Sorted(Vec<u32>),
}

impl Keys {
    fn of(fields: &[(Text, J)]) -> Keys {
        if fields.len() <= SCAN_KEYS {
            return Keys::Scan;
        }
        let mut index: Vec<u32> = (0..u32::try_from(fields.len()).unwrap_or(u32::MAX)).collect();
        index.sort_unstable_by(|&a, &b| fields[a as usize].0.cmp(&fields[b as usize].0));
        Keys::Sorted(index)
    }

    /// The value of `key` (keys are unique once parsed: a repeat keeps the last value),
    /// looked for first at `hint` — the two sides mostly write their keys in the same order.
    fn get<'f>(&self, fields: &'f [(Text, J)], key: &str, hint: usize) -> Option<&'f J> {
        match self {
            Keys::Scan => match fields.get(hint) {
                Some((k, v)) if k == key => Some(v),
                _ => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            },
            Keys::Sorted(index) => index
                .binary_search_by(|&i| fields[i as usize].0.as_str().cmp(key))
                .ok()
                .map(|i| &fields[index[i] as usize].1),
        }
    }
}

/// A number as its text reads, equal only to a number of the same kind and value (as
/// `serde_json::Number` compares): `1` and `1.0` differ, `1.0` and `1.00` do not.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Pos(u64),
    Neg(i64),
    Float(f64),
}

impl Num {
    fn of(text: &str) -> Num {
        let float = || Num::Float(text.parse().unwrap_or(f64::NAN));
        if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
            return float();
        }
        match text.strip_prefix('-') {
            Some(_) => match text.parse::<i64>() {
                Ok(n) if n < 0 => Num::Neg(n),
                _ => float(),
            },
            None => text.parse().map_or_else(|_| float(), Num::Pos),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Pos(n) => n as f64,
            Num::Neg(n) => n as f64,
            Num::Float(f) => f,
        }
    }
}

/// Compact JSON text with keys in order and numbers as [`Num`] reads them: equal values give
/// equal text.
fn canonical(v: &J, out: &mut String) {
    match v {
        J::Num(t) => match Num::of(t) {
            Num::Pos(n) => out.push_str(&n.to_string()),
            Num::Neg(n) => out.push_str(&n.to_string()),
            Num::Float(f) => out.push_str(&f.to_string()),
        },
        J::Arr(items) => {
            out.push('[');
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(e, out);
            }
            out.push(']');
        }
        J::Obj(fields) => {
            let mut sorted: Vec<&(Text, J)> = fields.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (k, e)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ajson::write_str(k, out);
                out.push(':');
                canonical(e, out);
            }
            out.push('}');
        }
        J::Null | J::Bool(_) | J::Str(_) => v.write(out),
    }
}

#[cfg(test)]
mod tests;
