//! JSON body rules, compiled from the spec's `[[request.body]]` and `[[response.body]]`
//! tables, and the conversions they use.
//!
//! Size: over 600 lines, kept whole on purpose: one table of body operations (rename, move, copy,
//! drop, default, map, convert, case) and the conversions they use; each operation is
//! short, and the table reads best as one list.

use std::collections::HashMap;
use std::sync::Arc;

use crate::jq::Jq;
use crate::json::{self, Path, Seg, Value};
use crate::spec::Op;

/// A compiled body rule, with its label for errors (`response.body[2] (convert, line 14)`).
#[derive(Debug)]
pub struct Rule {
    pub label: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Move {
        from: Path,
        to: Path,
        keep: bool,
        required: bool,
    },
    Drop(Path),
    Default(Path, Value),
    Map {
        at: Path,
        values: HashMap<String, Value>,
        strict: bool,
        otherwise: Option<Value>,
    },
    Convert {
        at: Path,
        to: Conversion,
    },
    Case {
        at: Path,
        style: Case,
    },
    Flatten {
        at: Path,
        prefix: String,
    },
    Jq(Arc<Jq>),
}

#[derive(Debug, Clone)]
enum Conversion {
    String,
    Number,
    Boolean,
    Cents(u32),
    Decimal(u32),
    Date(DateFormat, DateFormat),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Camel,
    Snake,
    Kebab,
    Pascal,
}

/// A rule failed on a value: the concrete path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub path: String,
    pub reason: String,
}

fn fail(path: &str, reason: impl Into<String>) -> OpError {
    OpError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Converts a TOML value (a default, a mapped value, a template) to JSON.
pub fn from_toml(v: &toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::str(s.as_str()),
        toml::Value::Integer(i) => Value::int(*i),
        toml::Value::Float(f) if f.is_finite() => Value::Num(format!("{f:?}").into()),
        toml::Value::Float(f) => return Err(format!("{f} is not a JSON number")),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::str(d.to_string()),
        toml::Value::Array(items) => {
            Value::Arr(items.iter().map(from_toml).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(t) => Value::Obj(
            t.iter()
                .map(|(k, v)| Ok((json::Text::new(k), from_toml(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn path(p: &str) -> Result<Path, String> {
    Path::parse(p)
}

impl Rule {
    /// Compiles one rule; the error explains what is wrong with it.
    pub fn compile(op: &Op, label: String) -> Result<Rule, String> {
        let kind = match op {
            Op::Rename { from, to, required }
            | Op::Move { from, to, required }
            | Op::Copy { from, to, required } => {
                let (from, to) = (path(from)?, path(to)?);
                if from.split_each().0 != to.split_each().0 {
                    return Err(format!(
                        "`{}` and `{}` must share the part up to their last [*], so each element \
                         keeps its own value",
                        from.text, to.text
                    ));
                }
                if from.split_each().1.is_empty() || to.split_each().1.is_empty() {
                    return Err(
                        "cannot move the whole body or a whole array element; name a field".into(),
                    );
                }
                Kind::Move {
                    from,
                    to,
                    keep: matches!(op, Op::Copy { .. }),
                    required: *required,
                }
            }
            Op::Drop { at } => {
                let at = path(at)?;
                if at.split_each().1.is_empty() {
                    return Err("cannot drop the whole body or array elements; name a field".into());
                }
                Kind::Drop(at)
            }
            Op::Default { at, value } => {
                let at = path(at)?;
                if at.split_each().1.is_empty() {
                    return Err("a default needs a field to set; name one".into());
                }
                Kind::Default(at, from_toml(value)?)
            }
            Op::Map {
                at,
                values,
                strict,
                otherwise,
            } => Kind::Map {
                at: path(at)?,
                values: values
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), from_toml(v)?)))
                    .collect::<Result<_, String>>()?,
                strict: *strict,
                otherwise: otherwise.as_ref().map(from_toml).transpose()?,
            },
            Op::Convert {
                at,
                to,
                scale,
                from_format,
                to_format,
            } => {
                let scale = scale.unwrap_or(2);
                if scale > 18 {
                    return Err(format!("scale {scale} is out of range; choose 0-18"));
                }
                let to = match to.as_str() {
                    "string" => Conversion::String,
                    "number" => Conversion::Number,
                    "boolean" => Conversion::Boolean,
                    "cents" => Conversion::Cents(scale),
                    "decimal" => Conversion::Decimal(scale),
                    "date" => {
                        let (Some(f), Some(t)) = (from_format, to_format) else {
                            return Err("a date conversion needs from_format and to_format (e.g. \
                                 \"%d/%m/%Y\" and \"rfc3339\")"
                                .into());
                        };
                        Conversion::Date(DateFormat::parse(f)?, DateFormat::parse(t)?)
                    }
                    other => {
                        return Err(format!(
                            "`{other}` is not a conversion; use string, number, boolean, cents, \
                             decimal or date"
                        ))
                    }
                };
                Kind::Convert { at: path(at)?, to }
            }
            Op::Case { at, style } => Kind::Case {
                at: path(at)?,
                style: match style.as_str() {
                    "camel" | "camelCase" => Case::Camel,
                    "snake" | "snake_case" => Case::Snake,
                    "kebab" | "kebab-case" => Case::Kebab,
                    "pascal" | "PascalCase" => Case::Pascal,
                    other => {
                        return Err(format!(
                            "`{other}` is not a case style; use camel, snake, kebab or pascal"
                        ))
                    }
                },
            },
            Op::Flatten { at, prefix } => {
                let at = path(at)?;
                if !matches!(at.split_each().1.last(), Some(Seg::Key(_))) {
                    return Err("flatten needs the field of an object to flatten".into());
                }
                Kind::Flatten {
                    at,
                    prefix: prefix.clone(),
                }
            }
            Op::Jq { expr } => Kind::Jq(Arc::new(Jq::compile(expr)?)),
        };
        Ok(Rule { label, kind })
    }

    /// The paths this rule writes, for attributing differences to the translator.
    /// Whether the rule runs jq (whose cost the input does not bound).
    pub fn is_jq(&self) -> bool {
        matches!(self.kind, Kind::Jq(_))
    }

    pub fn writes(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Move { to, .. } => Some(to),
            Kind::Default(at, _)
            | Kind::Map { at, .. }
            | Kind::Convert { at, .. }
            | Kind::Case { at, .. }
            | Kind::Flatten { at, .. } => Some(at),
            Kind::Drop(_) | Kind::Jq(_) => None,
        }
    }

    /// Applies the rule to `body`.
    pub fn apply(&self, body: &mut Value) -> Result<(), OpError> {
        match &self.kind {
            Kind::Move {
                from,
                to,
                keep,
                required,
            } => {
                let (each, rest_from) = from.split_each();
                let rest_to = to.split_each().1;
                json::each_mut(body, each, &mut |elem, at| {
                    let v = if *keep {
                        json::get(elem, rest_from).cloned()
                    } else {
                        json::take(elem, rest_from)
                    };
                    match v {
                        Some(v) => json::put(elem, rest_to, v)
                            .map_err(|why| fail(at, format!("cannot write {}: {why}", to.text))),
                        None if *required => Err(fail(
                            at,
                            format!("{} is missing and the rule requires it", from.text),
                        )),
                        None => Ok(()),
                    }
                })
            }
            Kind::Drop(at) => {
                let (each, rest) = at.split_each();
                json::each_mut(body, each, &mut |elem, _| {
                    json::take(elem, rest);
                    Ok(())
                })
            }
            Kind::Default(at, value) => {
                let (each, rest) = at.split_each();
                json::each_mut(body, each, &mut |elem, here| match json::get(elem, rest) {
                    Some(v) if *v != Value::Null => Ok(()),
                    _ => json::put(elem, rest, value.clone()).map_err(|why| fail(here, why)),
                })
            }
            Kind::Map {
                at,
                values,
                strict,
                otherwise,
            } => json::each_mut(body, &at.segs, &mut |v, here| {
                let key = match &*v {
                    Value::Str(s) => s.as_str(),
                    Value::Num(n) => n.as_str(),
                    Value::Bool(true) => "true",
                    Value::Bool(false) => "false",
                    Value::Null => "null",
                    other => {
                        return Err(fail(
                            here,
                            format!(
                                "expected a string, number or boolean to map, found {}",
                                other.type_name()
                            ),
                        ))
                    }
                };
                match values.get(key) {
                    Some(to) => *v = to.clone(),
                    None => match otherwise {
                        Some(to) => *v = to.clone(),
                        None if *strict => {
                            return Err(fail(
                                here,
                                format!(
                                    "`{key}` has no mapping; add it to values or set otherwise"
                                ),
                            ))
                        }
                        None => {}
                    },
                }
                Ok(())
            }),
            Kind::Convert { at, to } => json::each_mut(body, &at.segs, &mut |v, here| {
                if *v == Value::Null {
                    return Ok(());
                }
                convert(v, to).map_err(|why| fail(here, why))
            }),
            Kind::Case { at, style } => json::each_mut(body, &at.segs, &mut |v, _| {
                recase(v, *style);
                Ok(())
            }),
            Kind::Flatten { at, prefix } => {
                let (each, rest) = at.split_each();
                let Some((Seg::Key(key), parent)) = rest.split_last() else {
                    return Ok(());
                };
                json::each_mut(body, each, &mut |elem, here| {
                    let mut full = parent.to_vec();
                    full.push(Seg::Key(key.clone()));
                    let Some(mut inner) = json::take(elem, &full) else {
                        return Ok(());
                    };
                    let Value::Obj(fields) = &mut inner else {
                        return Err(fail(
                            here,
                            format!(
                                "{} is a {}, not an object to flatten",
                                at.text,
                                inner.type_name()
                            ),
                        ));
                    };
                    let fields: Vec<(json::Text, Value)> = std::mem::take(fields)
                        .into_iter()
                        .map(|(k, v)| (json::Text::from(format!("{prefix}{k}")), v))
                        .collect();
                    // The parent is an object (the flattened one was in it): created where it
                    // was null, refused where something else is in the way.
                    let Some((first_key, _)) = fields.first() else {
                        return Ok(());
                    };
                    let mut probe = parent.to_vec();
                    probe.push(Seg::Key(first_key.to_string()));
                    json::put(elem, &probe, Value::Null).map_err(|why| fail(here, why))?;
                    match json::get_mut(elem, parent) {
                        Some(Value::Obj(into)) => json::merge(into, fields),
                        _ => return Err(fail(here, "the parent is not an object")),
                    }
                    Ok(())
                })
            }
            Kind::Jq(jq) => {
                let out = jq.run(body).map_err(|why| fail("$", why))?;
                if out.depth() > json::MAX_DEPTH {
                    return Err(fail("$", "jq built a value nested deeper than 512 levels"));
                }
                *body = out;
                Ok(())
            }
        }
    }
}

fn convert(v: &mut Value, to: &Conversion) -> Result<(), String> {
    let found = |v: &Value| format!("found {} {}", v.type_name(), short(v));
    *v = match (to, &*v) {
        (Conversion::String, Value::Str(_)) => return Ok(()),
        (Conversion::String, Value::Num(n)) => Value::Str(n.clone()),
        (Conversion::String, Value::Bool(b)) => Value::str(b.to_string()),
        (Conversion::Number, Value::Num(_)) => return Ok(()),
        (Conversion::Number, Value::Str(s)) if json::is_number(s.trim()) => {
            Value::Num(json::Text::new(s.trim()))
        }
        (Conversion::Boolean, Value::Bool(_)) => return Ok(()),
        (Conversion::Boolean, Value::Str(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Value::Bool(true),
            "false" | "no" | "n" | "0" => Value::Bool(false),
            _ => return Err(format!("expected a boolean, {}", found(v))),
        },
        (Conversion::Boolean, Value::Num(n)) if n == "0" || n == "1" => Value::Bool(n == "1"),
        (Conversion::Cents(scale), Value::Str(s) | Value::Num(s)) => {
            Value::Num(to_minor_units(s.trim(), *scale)?.into())
        }
        (Conversion::Decimal(scale), Value::Num(s) | Value::Str(s)) => {
            Value::str(to_decimal(s.trim(), *scale)?)
        }
        (Conversion::Date(from, to), Value::Str(_) | Value::Num(_)) => {
            let t = from.read(v)?;
            to.write(t)
        }
        (to, _) => {
            let want = match to {
                Conversion::String => "a string, number or boolean",
                Conversion::Number => "a number or a numeric string",
                Conversion::Boolean => "a boolean",
                Conversion::Cents(_) => "a decimal amount",
                Conversion::Decimal(_) => "an integer amount in minor units",
                Conversion::Date(..) => "a date",
            };
            return Err(format!("expected {want}, {}", found(v)));
        }
    };
    Ok(())
}

fn short(v: &Value) -> String {
    let mut s = v.to_json();
    if s.len() > 40 {
        let mut end = 40;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// `"19.99"` → `"1999"` at scale 2, exactly (no floating point). More decimals than the scale
/// are an error unless they are zeros: a translator must not round money silently.
pub fn to_minor_units(s: &str, scale: u32) -> Result<String, String> {
    let bad = || format!("`{s}` is not a decimal amount like 19.99");
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (digits.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let scale = scale as usize;
    if frac.len() > scale && frac[scale..].bytes().any(|b| b != b'0') {
        return Err(format!(
            "`{s}` has more than {scale} decimal places; rounding it would change the amount"
        ));
    }
    let mut out = String::with_capacity(int.len() + scale + 1);
    out.push_str(int);
    let kept = &frac[..frac.len().min(scale)];
    out.push_str(kept);
    out.extend(std::iter::repeat_n('0', scale - kept.len()));
    let trimmed = out.trim_start_matches('0');
    let body = if trimmed.is_empty() { "0" } else { trimmed };
    Ok(if neg && body != "0" {
        format!("-{body}")
    } else {
        body.to_owned()
    })
}

/// `1999` → `"19.99"` at scale 2.
pub fn to_decimal(s: &str, scale: u32) -> Result<String, String> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{s}` is not an integer amount in minor units like 1999"
        ));
    }
    let digits = digits.trim_start_matches('0');
    let scale = scale as usize;
    // Written out by hand: this runs once per converted value, often for every line of a body.
    let mut out = String::with_capacity(digits.len().max(scale + 1) + 2);
    if neg && !digits.is_empty() {
        out.push('-');
    }
    for _ in digits.len()..scale + 1 {
        out.push('0');
    }
    out.push_str(digits);
    if scale > 0 {
        out.insert(out.len() - scale, '.');
    }
    Ok(out)
}

/// Splits a key into lower-case words: `orderId`, `order_id`, `Order-ID` → `order`, `id`.
fn words(key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' || c == ' ' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // orderId → order|Id; HTTPServer → HTTP|Server; userID → user|ID.
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

pub fn recase_key(key: &str, style: Case) -> String {
    let w = words(key);
    if w.is_empty() {
        return key.to_owned();
    }
    let cap = |s: &str| {
        let mut c = s.chars();
        match c.next() {
            Some(f) => f.to_uppercase().chain(c).collect::<String>(),
            None => String::new(),
        }
    };
    match style {
        Case::Snake => w.join("_"),
        Case::Kebab => w.join("-"),
        Case::Camel => {
            let mut out = w[0].clone();
            for x in &w[1..] {
                out.push_str(&cap(x));
            }
            out
        }
        Case::Pascal => w.iter().map(|x| cap(x)).collect(),
    }
}

/// Renames the keys of every object in `v` (iteratively: depth is bounded by the parser, not
/// by the stack).
fn recase(v: &mut Value, style: Case) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Obj(fields) => {
                for (k, _) in fields.iter_mut() {
                    *k = recase_key(k, style).into();
                }
                // `userId` and `user_id` are one key once recased: the last value wins, as
                // for a key repeated in the body.
                json::dedupe(fields);
                stack.extend(fields.iter_mut().map(|(_, child)| child));
            }
            Value::Arr(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// A point in time, as seconds since the Unix epoch (UTC) plus milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Instant {
    secs: i64,
    millis: u32,
}

/// A date format: `unix` (seconds, a number), `unix-ms`, `rfc3339`, or a pattern of `%Y`,
/// `%m`, `%d`, `%H`, `%M`, `%S` and literal characters (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateFormat {
    Unix,
    UnixMs,
    Rfc3339,
    Pattern(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Lit(char),
}

impl DateFormat {
    pub fn parse(f: &str) -> Result<DateFormat, String> {
        match f {
            "unix" => return Ok(DateFormat::Unix),
            "unix-ms" => return Ok(DateFormat::UnixMs),
            "rfc3339" => return Ok(DateFormat::Rfc3339),
            _ => {}
        }
        let mut out = Vec::new();
        let mut chars = f.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(Piece::Lit(c));
                continue;
            }
            out.push(match chars.next() {
                Some('Y') => Piece::Year,
                Some('m') => Piece::Month,
                Some('d') => Piece::Day,
                Some('H') => Piece::Hour,
                Some('M') => Piece::Minute,
                Some('S') => Piece::Second,
                Some('%') => Piece::Lit('%'),
                _ => {
                    return Err(format!(
                        "date format `{f}`: use %Y %m %d %H %M %S, or unix, unix-ms, rfc3339"
                    ))
                }
            });
        }
        if !out.contains(&Piece::Year) || !out.contains(&Piece::Month) || !out.contains(&Piece::Day)
        {
            return Err(format!("date format `{f}` needs %Y, %m and %d"));
        }
        Ok(DateFormat::Pattern(out))
    }

    fn read(&self, v: &Value) -> Result<Instant, String> {
        let text = match v {
            Value::Str(s) | Value::Num(s) => s.as_str(),
            _ => return Err(format!("expected a date, found {}", v.type_name())),
        };
        let bad = || format!("`{text}` does not match the date format");
        match self {
            DateFormat::Unix | DateFormat::UnixMs => {
                let n: i64 = text.trim().parse().map_err(|_| bad())?;
                let (secs, millis) = if *self == DateFormat::Unix {
                    (n, 0)
                } else {
                    (n.div_euclid(1000), n.rem_euclid(1000) as u32)
                };
                if secs.abs() > 253_402_300_799 {
                    return Err(format!("`{text}` is outside years 0-9999"));
                }
                Ok(Instant { secs, millis })
            }
            DateFormat::Rfc3339 => read_rfc3339(text).ok_or_else(bad),
            DateFormat::Pattern(pieces) => {
                let b = text.as_bytes();
                let mut i = 0;
                let (mut y, mut mo, mut d, mut h, mut mi, mut s) =
                    (0i64, 1u32, 1u32, 0u32, 0u32, 0u32);
                for p in pieces {
                    let mut num = |len: usize| -> Result<i64, String> {
                        let slice = text.get(i..i + len).ok_or_else(bad)?;
                        if !slice.bytes().all(|c| c.is_ascii_digit()) {
                            return Err(bad());
                        }
                        i += len;
                        slice.parse().map_err(|_| bad())
                    };
                    match p {
                        Piece::Year => y = num(4)?,
                        Piece::Month => mo = num(2)? as u32,
                        Piece::Day => d = num(2)? as u32,
                        Piece::Hour => h = num(2)? as u32,
                        Piece::Minute => mi = num(2)? as u32,
                        Piece::Second => s = num(2)? as u32,
                        Piece::Lit(c) => {
                            let mut buf = [0u8; 4];
                            let lit = c.encode_utf8(&mut buf).as_bytes();
                            if !b[i..].starts_with(lit) {
                                return Err(bad());
                            }
                            i += lit.len();
                        }
                    }
                }
                if i != b.len() {
                    return Err(bad());
                }
                civil(y, mo, d, h, mi, s).ok_or_else(bad)
            }
        }
    }

    fn write(&self, t: Instant) -> Value {
        let (y, mo, d, h, mi, s) = from_secs(t.secs);
        match self {
            DateFormat::Unix => Value::int(t.secs),
            DateFormat::UnixMs => Value::int(t.secs * 1000 + i64::from(t.millis)),
            DateFormat::Rfc3339 => Value::str(if t.millis > 0 {
                format!(
                    "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
                    t.millis
                )
            } else {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
            }),
            DateFormat::Pattern(pieces) => {
                let mut out = String::new();
                for p in pieces {
                    match p {
                        Piece::Year => out.push_str(&format!("{y:04}")),
                        Piece::Month => out.push_str(&format!("{mo:02}")),
                        Piece::Day => out.push_str(&format!("{d:02}")),
                        Piece::Hour => out.push_str(&format!("{h:02}")),
                        Piece::Minute => out.push_str(&format!("{mi:02}")),
                        Piece::Second => out.push_str(&format!("{s:02}")),
                        Piece::Lit(c) => out.push(*c),
                    }
                }
                Value::str(out)
            }
        }
    }
}

fn read_rfc3339(s: &str) -> Option<Instant> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let t = civil(
        num(0..4)?,
        num(5..7)? as u32,
        num(8..10)? as u32,
        num(11..13)? as u32,
        num(14..16)? as u32,
        num(17..19)? as u32,
    )?;
    let mut i = 19;
    let mut millis = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        let ms = format!("{:0<3}", &frac[..frac.len().min(3)]);
        millis = ms.parse().ok()?;
    }
    let offset = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && matches!(&tz[..1], "+" | "-") && &tz[3..4] == ":" => {
            let h: i64 = tz.get(1..3)?.parse().ok()?;
            let m: i64 = tz.get(4..6)?.parse().ok()?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    Some(Instant {
        secs: t.secs - offset,
        millis,
    })
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm), validated.
fn civil(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<Instant> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(0..=9999).contains(&y) || !(1..=12).contains(&mo) || d == 0 {
        return None;
    }
    if d > days_in[(mo - 1) as usize] || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (i64::from(mo) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(Instant {
        secs: days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s),
        millis: 0,
    })
}

fn from_secs(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests;
