//! The declarative translator spec, as written in TOML. Parsing only checks the shape; the
//! meaning (paths, patterns, jq) is checked when the spec is compiled, in `translate.rs`.
//! Errors carry the line, so an operator can find the rule.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// Why a spec cannot be used: where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SpecError {
    /// 1-based; 0 when the error has no place in the text.
    pub line: usize,
    pub message: String,
}

impl SpecError {
    pub fn at(text: &str, offset: usize, message: impl Into<String>) -> Self {
        SpecError {
            line: line_of(text, offset),
            message: message.into(),
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A translator between the legacy contract (what clients send and expect) and a new
/// service's contract.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Path rewrites, tried in order; the first whose `from` matches applies.
    #[serde(default)]
    pub paths: Vec<Spanned<PathRule>>,
    /// Legacy request → new request.
    #[serde(default)]
    pub request: RequestSpec,
    /// New response → legacy response.
    #[serde(default)]
    pub response: ResponseSpec,
    /// The API version the clients speak and the one the service speaks.
    #[serde(default)]
    pub version: Option<Spanned<VersionSpec>>,
    #[serde(default)]
    pub links: LinksSpec,
    /// A Rust translator registered under this name, run after the declarative rules on
    /// requests and before them on responses.
    #[serde(default)]
    pub rust: Option<Spanned<String>>,
    /// Routes answered by calling several services and assembling one legacy answer.
    #[serde(default)]
    pub compose: Vec<Spanned<ComposeSpec>>,
    /// The identity bridge for this context's requests to the new service.
    #[serde(default)]
    pub identity: Option<IdentitySpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRule {
    /// A legacy path pattern: `/api/v1/orders/{id}`, `/files/{*rest}`.
    pub from: String,
    /// The new path, with the same captures: `/orders/{id}`.
    pub to: String,
    /// Method mapping for requests this rule matches: `{ POST = "PUT" }`.
    #[serde(default)]
    pub methods: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    /// Set these fields (replacing any present).
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
    /// `{ old = "new" }`.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Requests only: `{ "x-order-id" = "id" }` sets a field from a path capture.
    #[serde(default)]
    pub from_capture: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRules {
    /// `{ custId = "customer_id" }`.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    #[serde(default)]
    pub drop: Vec<String>,
    /// Added when absent.
    #[serde(default)]
    pub default: BTreeMap<String, String>,
    /// Moved into the JSON body: `{ note = "$.note" }` (a string there; convert it with a body
    /// rule if the service wants another type).
    #[serde(default)]
    pub to_body: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default)]
    pub headers: HeaderRules,
    #[serde(default)]
    pub query: QueryRules,
    /// JSON body rules, applied in order (`[[request.body]]`).
    #[serde(default)]
    pub body: Vec<Spanned<toml::Table>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    #[serde(default)]
    pub headers: HeaderRules,
    /// JSON body rules for successful answers (status below 400), in order.
    #[serde(default)]
    pub body: Vec<Spanned<toml::Table>>,
    /// `{ "201" = 200 }`.
    #[serde(default)]
    pub status: Option<Spanned<BTreeMap<String, u16>>>,
    /// How the service's errors become the legacy error body.
    #[serde(default)]
    pub errors: Option<Spanned<ErrorSpec>>,
}

/// The legacy error envelope, built from the service's error answer (status 400 and above).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorSpec {
    /// A JSON template: string values that are paths (`"$.detail"`) take the value at that
    /// path of the service's answer; everything else is copied as written.
    #[serde(default)]
    pub body: Option<toml::Value>,
    /// Or a jq expression over the service's answer.
    #[serde(default)]
    pub jq: Option<String>,
    /// The legacy error's content type (default `application/json`).
    #[serde(default)]
    pub content_type: Option<String>,
}

/// One JSON body rule (the `op` key names it).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Op {
    /// Moves a value (`rename` is the same): to nest, flatten or rename a field.
    Rename {
        from: String,
        to: String,
        /// A missing source is an error instead of a no-op.
        #[serde(default)]
        required: bool,
    },
    Move {
        from: String,
        to: String,
        #[serde(default)]
        required: bool,
    },
    Copy {
        from: String,
        to: String,
        #[serde(default)]
        required: bool,
    },
    Drop {
        at: String,
    },
    /// Sets the value where it is absent (or null).
    Default {
        at: String,
        value: toml::Value,
    },
    /// Replaces values: `values = { A = "active" }`. Keys match the value's text (strings as
    /// they are, numbers as written, `true`/`false`/`null`). Unmapped values pass unless
    /// `strict`, when they are an error.
    Map {
        at: String,
        values: BTreeMap<String, toml::Value>,
        #[serde(default)]
        strict: bool,
        /// The value for unmapped inputs (instead of passing them or failing).
        #[serde(default)]
        otherwise: Option<toml::Value>,
    },
    /// Converts a value: `to` is `string`, `number`, `boolean`, `cents` (decimal string or
    /// number → integer minor units), `decimal` (integer minor units → decimal string), or
    /// `date` (with `from_format` and `to_format`).
    Convert {
        at: String,
        to: String,
        /// Decimal places of `cents` and `decimal` (default 2).
        #[serde(default)]
        scale: Option<u32>,
        #[serde(default)]
        from_format: Option<String>,
        #[serde(default)]
        to_format: Option<String>,
    },
    /// Renames every key of the object at `at`, and of objects within it: `camel`, `snake`,
    /// `kebab` or `pascal`.
    Case {
        #[serde(default = "root")]
        at: String,
        style: String,
    },
    /// Moves the fields of the object at `at` into its parent, each key with `prefix`.
    Flatten {
        at: String,
        #[serde(default)]
        prefix: String,
    },
    /// A jq expression; the body becomes its (single) output.
    Jq {
        expr: String,
    },
}

fn root() -> String {
    "$".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// `prefix` (`/v1/...`), `media-type` (`application/vnd.VENDOR.v1+json` or `;version=1`) or
    /// `header`.
    pub style: String,
    /// The version clients speak.
    pub from: String,
    /// The version the service speaks.
    pub to: String,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub header: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinksSpec {
    /// Rewrite `Location`, `Content-Location` and `Link` (default true).
    #[serde(default = "yes")]
    pub headers: bool,
    /// Also rewrite URLs inside JSON answers (needs the body; default false).
    #[serde(default)]
    pub body: bool,
}

impl Default for LinksSpec {
    fn default() -> Self {
        LinksSpec {
            headers: true,
            body: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// A route answered by several calls at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeSpec {
    /// The legacy path pattern it answers (GET and HEAD only).
    pub path: String,
    pub parts: Vec<PartSpec>,
    /// A JSON template over the parts (`"$.order.total"`), or use `jq`.
    #[serde(default)]
    pub body: Option<toml::Value>,
    /// A jq expression over `{ "part-name": answer, … }`.
    #[serde(default)]
    pub jq: Option<String>,
    /// When a part fails: `fail` (502), `omit` (its answer is null), or `legacy` (legacy
    /// answers the whole request). Default `fail`.
    #[serde(default)]
    pub on_failure: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartSpec {
    pub name: String,
    /// `legacy` or `new`.
    pub side: String,
    /// The path to call, with the route's captures: `/v2/orders/{id}`.
    pub path: String,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The identity bridge for one context.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySpec {
    /// Pass the legacy session cookie to the new service too (default false).
    #[serde(default)]
    pub forward_cookie: bool,
    /// Require a session: without one the request is answered 401 (default false: passed
    /// without an identity).
    #[serde(default)]
    pub required: bool,
}

impl Spec {
    /// Parses a spec; the error names the line.
    pub fn parse(text: &str) -> Result<Spec, SpecError> {
        toml::from_str(text).map_err(|e| SpecError {
            line: e.span().map_or(0, |s| line_of(text, s.start)),
            message: e.message().to_owned(),
        })
    }
}
