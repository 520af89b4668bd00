//! The JSON value translators work on. Unlike `serde_json::Value` without its optional
//! features, it keeps what a translation must not change by accident: numbers exactly as they
//! were written (a 30-digit id stays 30 digits, `1.10` stays `1.10`) and the order of object
//! keys. Parsing is iterative in depth and refuses documents nested deeper than [`MAX_DEPTH`]
//! (so dropping a value, which recurses, stays far from the stack's end), and rejects invalid
//! UTF-8: no body can make it panic.
//!
//! Hostile shapes cost linear time and bounded memory. A repeated key is found with a linear
//! scan only in small objects; a large one is checked once, when it closes, by sorting its keys
//! (O(n log n): 120,000 keys took ~50 s with a scan per key). Strings, numbers and keys are
//! [`Text`], which keeps up to 24 bytes inline: `[1,1,1,…]` no longer costs a heap allocation
//! per element, and every container is trimmed to its length when it closes, so a parsed
//! document takes at most [`PARSED_BYTES_PER_BYTE`] times its text (see the tests).
//!
//! Size: over 600 lines, kept whole on purpose: a parser, its compact value and its printer are
//! one format, and splitting them would spread the invariants (depth, duplicate keys, exact
//! numbers) over several files.

use std::fmt::Write as _;

/// Deepest nesting accepted; deeper documents are refused, not translated.
pub const MAX_DEPTH: usize = 512;

/// The most memory a parsed document takes per byte of its text, once parsed (the worst
/// shape is an array of one-digit numbers: two bytes of text, one 32-byte value), plus a KiB.
/// Callers that budget memory charge this much per byte before they parse.
pub const PARSED_BYTES_PER_BYTE: usize = 16;

/// Objects up to this size look for a repeated key with a scan per key; larger ones sort.
const SCAN_KEYS: usize = 16;

/// Text of strings, numbers and keys: inline up to 24 bytes, on the heap beyond.
pub type Text = compact_str::CompactString;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A number as written: valid JSON number syntax, never re-formatted.
    Num(Text),
    Str(Text),
    Arr(Vec<Value>),
    /// Keys in document order; a repeated key keeps its last value in the first position.
    Obj(Vec<(Text, Value)>),
}

/// Why a body is not JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct ParseError {
    pub at: usize,
    pub what: &'static str,
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Num(_) => "number",
            Value::Str(_) => "string",
            Value::Arr(_) => "array",
            Value::Obj(_) => "object",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of `key`, in an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match self {
            Value::Obj(fields) => fields.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` in an object (in place when present, appended otherwise).
    pub fn insert(fields: &mut Vec<(Text, Value)>, key: &str, value: Value) {
        match fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => fields.push((Text::new(key), value)),
        }
    }

    pub fn remove(fields: &mut Vec<(Text, Value)>, key: &str) -> Option<Value> {
        let i = fields.iter().position(|(k, _)| k == key)?;
        Some(fields.remove(i).1)
    }

    /// A number from an integer.
    pub fn int(n: i64) -> Value {
        Value::Num(Text::from(n.to_string()))
    }

    /// A string value.
    pub fn str(s: impl Into<Text>) -> Value {
        Value::Str(s.into())
    }

    /// Parses one JSON document (surrounding whitespace allowed).
    pub fn parse(bytes: &[u8]) -> Result<Value, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ParseError {
            at: e.valid_up_to(),
            what: "invalid UTF-8",
        })?;
        Parser {
            s: text,
            b: text.as_bytes(),
            i: 0,
        }
        .document()
    }

    /// Writes compact JSON.
    pub fn write(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Num(n) => out.push_str(n),
            Value::Str(s) => write_str(s, out),
            Value::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Value::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    pub fn to_json(&self) -> String {
        self.to_json_sized(0)
    }

    /// Writes compact JSON into a string that starts with room for `hint` bytes.
    pub fn to_json_sized(&self, hint: usize) -> String {
        let mut out = String::with_capacity(hint);
        self.write(&mut out);
        out
    }

    /// Nesting depth (a scalar is 0). Values built by translators can only be as deep as
    /// what was parsed plus the spec's paths, but jq can build anything.
    pub fn depth(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 0usize)];
        while let Some((v, d)) = stack.pop() {
            max = max.max(d);
            match v {
                Value::Arr(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
                Value::Obj(fields) => stack.extend(fields.iter().map(|(_, v)| (v, d + 1))),
                _ => {}
            }
        }
        max
    }
}

pub fn write_str(s: &str, out: &mut String) {
    out.push('"');
    let b = s.as_bytes();
    let mut start = 0;
    // Bytes, not chars: every byte that needs an escape is ASCII, so the runs between them
    // are whole UTF-8 sequences.
    for (i, &c) in b.iter().enumerate() {
        if !STOPS_STRING[usize::from(c)] {
            continue;
        }
        let esc = match c {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            c if c < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{c:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Whether `s` is a JSON number.
pub fn is_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// The bytes a string's scan stops at (its closing quote, an escape, a control character),
/// which are also those written escaped.
static STOPS_STRING: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// An open container while parsing: where its elements (or fields) start in the parser's
/// pending ones, and, for an object, the key whose value comes next.
enum Frame {
    Arr(usize),
    Obj(usize, Text),
}

/// Keeps the first position and the last value of each repeated key (O(n log n)).
pub fn dedupe(fields: &mut Vec<(Text, Value)>) {
    if fields.len() < 2 {
        return;
    }
    if fields.len() <= SCAN_KEYS {
        let mut i = 1;
        while i < fields.len() {
            match fields[..i].iter().position(|(k, _)| *k == fields[i].0) {
                Some(first) => {
                    let (_, v) = fields.remove(i);
                    fields[first].1 = v;
                }
                None => i += 1,
            }
        }
        return;
    }
    let mut order: Vec<u32> = (0..fields.len() as u32).collect();
    order.sort_by(|&a, &b| {
        fields[a as usize]
            .0
            .cmp(&fields[b as usize].0)
            .then(a.cmp(&b))
    });
    let mut drop = vec![false; fields.len()];
    let mut run = 0;
    while run < order.len() {
        let mut end = run + 1;
        while end < order.len() && fields[order[end] as usize].0 == fields[order[run] as usize].0 {
            end += 1;
        }
        if end - run > 1 {
            let first = order[run] as usize;
            let last = order[end - 1] as usize;
            let v = std::mem::replace(&mut fields[last].1, Value::Null);
            fields[first].1 = v;
            for &i in &order[run + 1..end] {
                drop[i as usize] = true;
            }
        }
        run = end;
    }
    let mut i = 0;
    fields.retain(|_| {
        let keep = !drop[i];
        i += 1;
        keep
    });
}

impl Parser<'_> {
    fn err<T>(&self, what: &'static str) -> Result<T, ParseError> {
        Err(ParseError { at: self.i, what })
    }

    #[inline(always)]
    fn ws(&mut self) {
        // Compact JSON has none: one comparison says so (every whitespace byte is ≤ ' ').
        if self.b.get(self.i).is_some_and(|&c| c > b' ') {
            return;
        }
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn document(mut self) -> Result<Value, ParseError> {
        let v = self.value()?;
        self.ws();
        if self.i != self.b.len() {
            return self.err("trailing characters after the JSON value");
        }
        Ok(v)
    }

    /// One value, with an explicit stack for containers. The elements and fields of open
    /// containers wait in two shared vectors and move, when their container closes, into a
    /// vector of exactly their number: one allocation per container, none to grow or shrink.
    fn value(&mut self) -> Result<Value, ParseError> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut items: Vec<Value> = Vec::new();
        let mut fields: Vec<(Text, Value)> = Vec::new();
        loop {
            // Read a value start.
            self.ws();
            let mut v = match self.b.get(self.i) {
                None => return self.err("unexpected end of JSON"),
                Some(b'{') => {
                    self.i += 1;
                    self.ws();
                    // An empty container is a level too (as the limit is documented).
                    if stack.len() >= MAX_DEPTH {
                        return self.err("JSON nested deeper than 512 levels");
                    }
                    if self.b.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        Value::Obj(Vec::new())
                    } else {
                        let key = self.key()?;
                        stack.push(Frame::Obj(fields.len(), key));
                        continue;
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    self.ws();
                    if stack.len() >= MAX_DEPTH {
                        return self.err("JSON nested deeper than 512 levels");
                    }
                    if self.b.get(self.i) == Some(&b']') {
                        self.i += 1;
                        Value::Arr(Vec::new())
                    } else {
                        stack.push(Frame::Arr(items.len()));
                        continue;
                    }
                }
                Some(b'"') => Value::Str(self.string()?),
                Some(b't') => self.word("true", Value::Bool(true))?,
                Some(b'f') => self.word("false", Value::Bool(false))?,
                Some(b'n') => self.word("null", Value::Null)?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return self.err("expected a JSON value"),
            };
            // Hand it to the open containers, closing those that end.
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(v);
                };
                self.ws();
                let next = self.b.get(self.i).copied();
                match top {
                    Frame::Arr(start) => {
                        let start = *start;
                        items.push(v);
                        match next {
                            Some(b',') => {
                                self.i += 1;
                                break;
                            }
                            Some(b']') => {
                                self.i += 1;
                                stack.pop();
                                v = Value::Arr(items.split_off(start));
                            }
                            _ => return self.err("expected `,` or `]`"),
                        }
                    }
                    Frame::Obj(start, key) => {
                        let start = *start;
                        let k = std::mem::take(key);
                        // Small objects are kept free of repeats as they fill; large ones
                        // are checked once, when they close.
                        let open = &mut fields[start..];
                        let slot = if open.len() < SCAN_KEYS {
                            let len = k.len();
                            open.iter_mut().find(|(f, _)| f.len() == len && *f == k)
                        } else {
                            None
                        };
                        match slot {
                            Some(slot) => slot.1 = v,
                            None => fields.push((k, v)),
                        }
                        match next {
                            Some(b',') => {
                                self.i += 1;
                                *key = self.key()?;
                                break;
                            }
                            Some(b'}') => {
                                self.i += 1;
                                stack.pop();
                                let mut object = fields.split_off(start);
                                if object.len() > SCAN_KEYS {
                                    let before = object.len();
                                    dedupe(&mut object);
                                    if object.len() < before {
                                        object.shrink_to_fit();
                                    }
                                }
                                v = Value::Obj(object);
                            }
                            _ => return self.err("expected `,` or `}`"),
                        }
                    }
                }
            }
        }
    }

    /// `"key" :`
    fn key(&mut self) -> Result<Text, ParseError> {
        self.ws();
        if self.b.get(self.i) != Some(&b'"') {
            return self.err("expected a string key");
        }
        let k = self.string()?;
        self.ws();
        if self.b.get(self.i) != Some(&b':') {
            return self.err("expected `:`");
        }
        self.i += 1;
        Ok(k)
    }

    fn word(&mut self, w: &'static str, v: Value) -> Result<Value, ParseError> {
        if self.b[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(v)
        } else {
            self.err("expected a JSON value")
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        while self.i < self.b.len()
            && matches!(
                self.b[self.i],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.i += 1;
        }
        let text = &self.s[start..self.i];
        if !is_number(text) {
            self.i = start;
            return self.err("invalid number");
        }
        Ok(Value::Num(Text::new(text)))
    }

    fn string(&mut self) -> Result<Text, ParseError> {
        self.i += 1; // the opening quote
        let start = self.i;
        // Fast path: no escapes.
        while self.i < self.b.len() && !STOPS_STRING[usize::from(self.b[self.i])] {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'"') => {
                let s = Text::new(&self.s[start..self.i]);
                self.i += 1;
                return Ok(s);
            }
            Some(b'\\') | None => {}
            Some(_) => return self.err("control character in a string"),
        }
        let mut out = self.s[start..self.i].to_owned();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return self.err("unterminated string");
            };
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(Text::from(out));
                }
                b'\\' => {
                    self.i += 1;
                    let Some(&e) = self.b.get(self.i) else {
                        return self.err("unterminated string");
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                if !self.b[self.i..].starts_with(b"\\u") {
                                    return self.err("lone surrogate in a string");
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return self.err("lone surrogate in a string");
                                }
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                            } else {
                                char::from_u32(hi)
                            };
                            match c {
                                Some(c) => out.push(c),
                                None => return self.err("lone surrogate in a string"),
                            }
                        }
                        _ => return self.err("invalid escape in a string"),
                    }
                }
                c if c < 0x20 => return self.err("control character in a string"),
                _ => {
                    // Copy a run of plain characters at once.
                    let run = self.i;
                    while self.i < self.b.len()
                        && !matches!(self.b[self.i], b'"' | b'\\')
                        && self.b[self.i] >= 0x20
                    {
                        self.i += 1;
                    }
                    out.push_str(&self.s[run..self.i]);
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let Some(h) = self.s.get(self.i..self.i + 4) else {
            return self.err("short \\u escape");
        };
        let Ok(n) = u32::from_str_radix(h, 16) else {
            return self.err("invalid \\u escape");
        };
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.err("invalid \\u escape");
        }
        self.i += 4;
        Ok(n)
    }
}

/// A path into a JSON value: `$`, then `.key`, `["key with.dots"]`, `[3]` or `[*]` (every
/// element of an array) segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub text: String,
    pub segs: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
    Each,
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, String> {
        let Some(mut rest) = text.strip_prefix('$') else {
            return Err(format!(
                "`{text}` must start with `$`, e.g. $.items[*].price"
            ));
        };
        let mut segs = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("[*]") {
                segs.push(Seg::Each);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("[\"") {
                let Some(end) = r.find("\"]") else {
                    return Err(format!("`{text}` has an unclosed [\"…\"]"));
                };
                segs.push(Seg::Key(r[..end].to_owned()));
                rest = &r[end + 2..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').unwrap_or(r.len());
                let Ok(n) = r[..end].parse::<usize>() else {
                    return Err(format!(
                        "`{text}` has a bad index; write [0], [*] or [\"key\"]"
                    ));
                };
                segs.push(Seg::Index(n));
                rest = r.get(end + 1..).unwrap_or("");
            } else if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(format!(
                        "`{text}` has an empty key; write $.a.b or $.a[*].b"
                    ));
                }
                segs.push(Seg::Key(r[..end].to_owned()));
                rest = &r[end..];
            } else {
                return Err(format!("`{text}` is not a path; write $.a.b or $.a[*].b"));
            }
        }
        Ok(Path {
            text: text.to_owned(),
            segs,
        })
    }

    /// Whether the path names one value (no `[*]`).
    pub fn is_single(&self) -> bool {
        !self.segs.contains(&Seg::Each)
    }

    /// Splits at the last `[*]`: the part naming arrays' elements, and the rest within each.
    pub fn split_each(&self) -> (&[Seg], &[Seg]) {
        match self.segs.iter().rposition(|s| *s == Seg::Each) {
            Some(i) => (&self.segs[..=i], &self.segs[i + 1..]),
            None => (&[], &self.segs[..]),
        }
    }
}

/// Calls `f` on every value the segments reach (`[*]` fans out); missing keys are skipped.
/// The string passed is the concrete path of the value, for error messages.
pub fn each_mut<E>(
    root: &mut Value,
    segs: &[Seg],
    f: &mut dyn FnMut(&mut Value, &str) -> Result<(), E>,
) -> Result<(), E> {
    fn go<E>(
        v: &mut Value,
        segs: &[Seg],
        at: &mut String,
        f: &mut dyn FnMut(&mut Value, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some((first, rest)) = segs.split_first() else {
            return f(v, at);
        };
        let len = at.len();
        match (first, v) {
            (Seg::Key(k), Value::Obj(fields)) => {
                if let Some((_, child)) = fields.iter_mut().find(|(f, _)| f == k) {
                    push_key(at, k);
                    go(child, rest, at, f)?;
                }
            }
            (Seg::Index(n), Value::Arr(items)) => {
                if let Some(child) = items.get_mut(*n) {
                    push_index(at, *n);
                    go(child, rest, at, f)?;
                }
            }
            (Seg::Each, Value::Arr(items)) => {
                for (i, child) in items.iter_mut().enumerate() {
                    push_index(at, i);
                    go(child, rest, at, f)?;
                    at.truncate(len);
                }
            }
            _ => {}
        }
        at.truncate(len);
        Ok(())
    }
    let mut at = String::from("$");
    go(root, segs, &mut at, f)
}

/// Appends `[n]` to a concrete path (without the formatting machinery: this runs for every
/// array element a rule visits).
pub fn push_index(at: &mut String, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    at.push('[');
    at.extend(digits[i..].iter().map(|d| char::from(*d)));
    at.push(']');
}

/// Appends `.key` (or `["key"]` when it is not a plain name) to a concrete path.
pub fn push_key(at: &mut String, k: &str) {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        at.push('.');
        at.push_str(k);
    } else {
        at.push_str("[\"");
        at.push_str(k);
        at.push_str("\"]");
    }
}

/// The value at single-valued `segs` under `v`, if present.
pub fn get<'v>(v: &'v Value, segs: &[Seg]) -> Option<&'v Value> {
    let mut v = v;
    for s in segs {
        v = match (s, v) {
            (Seg::Key(k), Value::Obj(_)) => v.get(k)?,
            (Seg::Index(n), Value::Arr(items)) => items.get(*n)?,
            _ => return None,
        };
    }
    Some(v)
}

/// The value at single-valued `segs` under `v`, if present, to change.
pub fn get_mut<'v>(v: &'v mut Value, segs: &[Seg]) -> Option<&'v mut Value> {
    let mut v = v;
    for s in segs {
        v = match (s, v) {
            (Seg::Key(k), v @ Value::Obj(_)) => v.get_mut(k)?,
            (Seg::Index(n), Value::Arr(items)) => items.get_mut(*n)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Sets each of `new` in the object `fields` (in place where the key is present, appended
/// otherwise), as [`Value::insert`] one by one would, in O((n + m) log(n + m)).
pub fn merge(fields: &mut Vec<(Text, Value)>, new: Vec<(Text, Value)>) {
    if fields.len() + new.len() <= SCAN_KEYS {
        for (k, v) in new {
            Value::insert(fields, &k, v);
        }
    } else {
        fields.extend(new);
        dedupe(fields);
    }
}

/// Removes and returns the value at single-valued `segs`.
pub fn take(v: &mut Value, segs: &[Seg]) -> Option<Value> {
    let (last, parent) = segs.split_last()?;
    let mut v = v;
    for s in parent {
        v = match (s, v) {
            (Seg::Key(k), v @ Value::Obj(_)) => v.get_mut(k)?,
            (Seg::Index(n), Value::Arr(items)) => items.get_mut(*n)?,
            _ => return None,
        };
    }
    match (last, v) {
        (Seg::Key(k), Value::Obj(fields)) => Value::remove(fields, k),
        (Seg::Index(n), Value::Arr(items)) if *n < items.len() => Some(items.remove(*n)),
        _ => None,
    }
}

/// Sets the value at single-valued `segs`, creating objects on the way. Fails (with the
/// concrete path) where something that is not an object is in the way.
pub fn put(v: &mut Value, segs: &[Seg], value: Value) -> Result<(), String> {
    let Some((last, parent)) = segs.split_last() else {
        *v = value;
        return Ok(());
    };
    let mut at = String::from("$");
    let mut v = v;
    for s in parent {
        v = match s {
            Seg::Key(k) => {
                push_key(&mut at, k);
                if let Value::Null = v {
                    *v = Value::Obj(Vec::new());
                }
                let Value::Obj(fields) = v else {
                    return Err(format!(
                        "{at}: the parent is a {}, not an object",
                        v.type_name()
                    ));
                };
                let i = match fields.iter().position(|(f, _)| f == k) {
                    Some(i) => i,
                    None => {
                        fields.push((Text::new(k), Value::Obj(Vec::new())));
                        fields.len() - 1
                    }
                };
                &mut fields[i].1
            }
            Seg::Index(n) => {
                push_index(&mut at, *n);
                match v {
                    Value::Arr(items) if *n < items.len() => &mut items[*n],
                    _ => return Err(format!("{at}: no such array element")),
                }
            }
            Seg::Each => return Err(format!("{at}[*]: cannot set through [*] here")),
        };
    }
    match (last, v) {
        (Seg::Key(k), Value::Obj(fields)) => {
            Value::insert(fields, k, value);
            Ok(())
        }
        (Seg::Key(k), v @ Value::Null) => {
            *v = Value::Obj(vec![(Text::new(k), value)]);
            Ok(())
        }
        (Seg::Index(n), Value::Arr(items)) if *n < items.len() => {
            items[*n] = value;
            Ok(())
        }
        (_, v) => Err(format!(
            "{at}: the parent is a {}, not an object",
            v.type_name()
        )),
    }
}

#[cfg(test)]
mod tests;
