//! A JSON value that borrows from the body it was parsed from: keys and strings without
//! escapes are slices of the body, objects are vectors sorted by key. Parsing allocates once
//! per array and object instead of once per key and string, which is most of what a
//! comparison costs (`serde_json::Value` spent 100 µs on a 10 KiB body here; see
//! `benches/shadow_diff.rs`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A number as JSON wrote it: equal only to a number of the same kind and value, as
/// `serde_json::Number`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Pos(u64),
    Neg(i64),
    Float(f64),
}

impl Num {
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Pos(n) => n as f64,
            Num::Neg(n) => n as f64,
            Num::Float(f) => f,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum J<'a> {
    Null,
    Bool(bool),
    Num(Num),
    Str(Cow<'a, str>),
    Arr(Vec<J<'a>>),
    /// Sorted by key; a repeated key keeps its last value.
    Obj(Vec<(Cow<'a, str>, J<'a>)>),
}

impl<'a> J<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The value of `key` in an object.
    pub fn get(fields: &'a [(Cow<'a, str>, J<'a>)], key: &str) -> Option<&'a J<'a>> {
        fields
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &fields[i].1)
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            J::Null => "null",
            J::Bool(_) => "bool",
            J::Num(_) => "number",
            J::Str(_) => "string",
            J::Arr(_) => "array",
            J::Obj(_) => "object",
        }
    }

    /// Compact JSON text with keys in order: equal values give equal text.
    pub fn canonical(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(Num::Pos(n)) => out.push_str(&n.to_string()),
            J::Num(Num::Neg(n)) => out.push_str(&n.to_string()),
            J::Num(Num::Float(f)) => out.push_str(&f.to_string()),
            J::Str(s) => out.push_str(&serde_json::Value::from(s.as_ref()).to_string()),
            J::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.canonical(out);
                }
                out.push(']');
            }
            J::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::from(k.as_ref()).to_string());
                    out.push(':');
                    v.canonical(out);
                }
                out.push('}');
            }
        }
    }
}

/// A string that borrows when the input lets it.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for J<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<J<'de>, E> {
                Ok(J::Null)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<J<'de>, E> {
                Ok(J::Bool(b))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<J<'de>, E> {
                Ok(J::Num(Num::Pos(n)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<J<'de>, E> {
                // serde_json hands non-negative integers to visit_u64.
                Ok(J::Num(Num::Neg(n)))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<J<'de>, E> {
                Ok(J::Num(Num::Float(f)))
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<J<'de>, E> {
                Ok(J::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<J<'de>, E> {
                Ok(J::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<J<'de>, E> {
                Ok(J::Str(Cow::Owned(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(v) = seq.next_element()? {
                    items.push(v);
                }
                Ok(J::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J<'de>, A::Error> {
                let mut fields: Vec<(Cow<'de, str>, J<'de>)> = Vec::new();
                while let Some(Text(k)) = map.next_key()? {
                    let v = map.next_value()?;
                    fields.push((k, v));
                }
                // Stable, so that among equal keys the last stays last; keep only it.
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                let mut kept: Vec<(Cow<'de, str>, J<'de>)> = Vec::with_capacity(fields.len());
                for f in fields {
                    match kept.last_mut() {
                        Some(last) if last.0 == f.0 => *last = f,
                        _ => kept.push(f),
                    }
                }
                Ok(J::Obj(kept))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests;
