//! Comparing a legacy answer with a new one: status, content type, and the body — JSON
//! structurally (key order ignored, arrays in order), anything else byte for byte. Each
//! difference is reduced to a signature: where (a JSON path with array indexes folded to `[*]`)
//! and what kind (missing, extra, type, value, status, header, body), so that thousands of
//! mismatches group into a few.

use serde_json::Value;

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
}

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
    pub body: &'a [u8],
}

fn is_json(content_type: Option<&str>) -> bool {
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

/// The signatures of every difference between `legacy` and `new` (empty: they match).
pub fn compare(legacy: &Answer<'_>, new: &Answer<'_>) -> Vec<Signature> {
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
    if is_json(legacy.content_type) && is_json(new.content_type) {
        match (
            serde_json::from_slice::<Value>(legacy.body),
            serde_json::from_slice::<Value>(new.body),
        ) {
            (Ok(a), Ok(b)) => diff_values(&a, &b, &mut String::from("$"), &mut out),
            _ if legacy.body == new.body => {}
            _ => out.push(Signature {
                kind: Kind::Body,
                path: "$ (invalid JSON)".into(),
            }),
        }
    } else if legacy.body != new.body {
        out.push(Signature {
            kind: Kind::Body,
            path: "$".into(),
        });
    }
    out.sort();
    out.dedup();
    out
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Walks both values; `path` is the JSON path so far (restored on return).
fn diff_values(a: &Value, b: &Value, path: &mut String, out: &mut Vec<Signature>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                match y.get(k) {
                    Some(vb) => diff_values(va, vb, path, out),
                    None => out.push(Signature {
                        kind: Kind::Missing,
                        path: path.clone(),
                    }),
                }
                path.truncate(len);
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(Signature {
                    kind: Kind::Extra,
                    path: format!("{path}.{k}"),
                });
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            let len = path.len();
            path.push_str("[*]");
            for (va, vb) in x.iter().zip(y) {
                diff_values(va, vb, path, out);
            }
            if x.len() > y.len() {
                out.push(Signature {
                    kind: Kind::Missing,
                    path: path.clone(),
                });
            } else if y.len() > x.len() {
                out.push(Signature {
                    kind: Kind::Extra,
                    path: path.clone(),
                });
            }
            path.truncate(len);
        }
        _ if type_name(a) != type_name(b) => out.push(Signature {
            kind: Kind::Type,
            path: path.clone(),
        }),
        _ if a != b => out.push(Signature {
            kind: Kind::Value,
            path: path.clone(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> Answer<'_> {
        Answer {
            status: 200,
            content_type: Some("application/json; charset=utf-8"),
            body: body.as_bytes(),
        }
    }

    fn sigs(a: &str, b: &str) -> Vec<String> {
        compare(&json(a), &json(b))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn equal_json_matches_whatever_the_key_order() {
        assert!(sigs(
            r#"{"a":1,"b":[1,2],"c":{"d":"x"}}"#,
            r#"{"c":{"d":"x"},"b":[1,2],"a":1}"#
        )
        .is_empty());
    }

    #[test]
    fn each_kind_of_difference_has_its_signature() {
        assert_eq!(sigs(r#"{"a":1,"b":2}"#, r#"{"a":1}"#), ["missing $.b"]);
        assert_eq!(sigs(r#"{"a":1}"#, r#"{"a":1,"n":0}"#), ["extra $.n"]);
        assert_eq!(
            sigs(r#"{"total":"49.80"}"#, r#"{"total":4980}"#),
            ["type $.total"]
        );
        assert_eq!(
            sigs(
                r#"{"items":[{"p":1},{"p":2}]}"#,
                r#"{"items":[{"p":1},{"p":3}]}"#
            ),
            ["value $.items[*].p"],
            "array indexes fold into one signature"
        );
        assert_eq!(sigs("[1,2,3]", "[1,2]"), ["missing $[*]"]);
    }

    #[test]
    fn status_content_type_and_plain_bodies() {
        let legacy = Answer {
            status: 200,
            content_type: Some("text/html"),
            body: b"<p>hi</p>",
        };
        let same = legacy.clone();
        assert!(compare(&legacy, &same).is_empty());
        let other = Answer {
            status: 404,
            content_type: Some("application/json"),
            body: b"{}",
        };
        let s: Vec<String> = compare(&legacy, &other)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(s, ["status 200 -> 404", "header content-type", "body $"]);
        let garbage = Answer {
            status: 200,
            content_type: Some("application/json"),
            body: b"{oops",
        };
        let s: Vec<String> = compare(&json("{}"), &garbage)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(s, ["body $ (invalid JSON)"]);
    }
}
