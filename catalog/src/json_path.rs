//! The JSON paths of shadow rules (`ignore`, `unordered`, `tolerance`, `normalize`, `redact`):
//! `$` then any number of `.key`, `.*` (any key) or `[*]` (every element of an array). One
//! grammar and one matcher for every place that reads them: the catalog's validation, the
//! facade's diff and redaction, and the contract tests' export.

use std::fmt;

/// One step of a rule's path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// `.key`: this key of an object.
    Key(String),
    /// `.*`: any key of an object.
    AnyKey,
    /// `[*]`: every element of an array.
    Each,
}

/// One step of a path as walked through a value: a key (borrowed from the value) or an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At<'v> {
    Key(&'v str),
    Element,
}

/// Anything a walked path can be made of.
pub trait Walked {
    fn at(&self) -> At<'_>;
}

impl Walked for At<'_> {
    fn at(&self) -> At<'_> {
        *self
    }
}

/// A rule's own steps, walked as written (`.*` is then the key `*`).
impl Walked for Step {
    fn at(&self) -> At<'_> {
        match self {
            Step::Key(k) => At::Key(k),
            Step::AnyKey => At::Key("*"),
            Step::Each => At::Element,
        }
    }
}

impl Step {
    /// Whether this step of a rule matches one step of a walked path.
    pub fn matches(&self, at: At<'_>) -> bool {
        match (self, at) {
            (Step::AnyKey, At::Key(_)) | (Step::Each, At::Element) => true,
            (Step::Key(a), At::Key(b)) => a == b,
            _ => false,
        }
    }
}

/// Why a text is not a rule's JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    #[error("`{0}` must start with `$`, e.g. $.items[*].updatedAt")]
    NoRoot(String),
    #[error("`{0}` has an empty key; write $.a.b, $.a[*] or $.*")]
    EmptyKey(String),
    #[error("`{0}` is not a JSON path; write $.a.b, $.a[*].c or $.*.c")]
    NotAPath(String),
}

/// A rule's path, parsed: its steps from the root (`$` alone has none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JsonPath(Vec<Step>);

impl JsonPath {
    /// Parses a path; the cost is linear in its length.
    pub fn parse(path: &str) -> Result<Self, JsonPathError> {
        let Some(mut rest) = path.strip_prefix('$') else {
            return Err(JsonPathError::NoRoot(path.to_owned()));
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("[*]") {
                steps.push(Step::Each);
                rest = r;
            } else if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                steps.push(match &r[..end] {
                    "" => return Err(JsonPathError::EmptyKey(path.to_owned())),
                    "*" => Step::AnyKey,
                    key => Step::Key(key.to_owned()),
                });
                rest = &r[end..];
            } else {
                return Err(JsonPathError::NotAPath(path.to_owned()));
            }
        }
        Ok(Self(steps))
    }

    pub fn steps(&self) -> &[Step] {
        &self.0
    }

    /// `$` itself: the whole value.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The walked path is exactly this one.
    pub fn is<W: Walked>(&self, at: &[W]) -> bool {
        self.0.len() == at.len() && self.0.iter().zip(at).all(|(s, w)| s.matches(w.at()))
    }

    /// The walked path is this one or below it.
    pub fn covers<W: Walked>(&self, at: &[W]) -> bool {
        self.0.len() <= at.len() && self.0.iter().zip(at).all(|(s, w)| s.matches(w.at()))
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for step in &self.0 {
            match step {
                Step::Key(k) => write!(f, ".{k}")?,
                Step::AnyKey => f.write_str(".*")?,
                Step::Each => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
