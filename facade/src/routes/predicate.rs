//! A route's conditions besides host and path: methods, headers, query parameters and the API
//! version (a URI-prefix version is part of the path already).

use crate::compile_error::PredicateError;
use http::header::{HeaderName, ACCEPT};
use http::{HeaderMap, Method};
use regex::bytes::Regex;
use strangler_catalog::pattern::anchored_regex;
use strangler_catalog::{RouteSpec, ValueMatch, VersionMatch};

#[derive(Debug)]
pub(super) struct Predicates {
    /// Empty: any method.
    methods: Box<[Method]>,
    headers: Box<[(HeaderName, ValueTest)]>,
    query: Box<[(Box<str>, ValueTest)]>,
    version: Option<VersionTest>,
}

#[derive(Debug)]
enum ValueTest {
    Exact(Box<[u8]>),
    /// Anchored: the whole value must match.
    Regex(Regex),
    Present,
}

#[derive(Debug)]
enum VersionTest {
    MediaType(Box<[u8]>),
    Header(HeaderName, Box<[u8]>),
}

impl Predicates {
    /// Compiles a spec's conditions (the spec has passed `check_spec`).
    pub(super) fn compile(spec: &RouteSpec) -> Result<Self, PredicateError> {
        let methods = spec
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.as_bytes()).map_err(|e| PredicateError::Method {
                    method: m.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        let headers = spec
            .headers
            .iter()
            .map(|h| Ok((header_name(&h.name)?, ValueTest::compile(&h.value)?)))
            .collect::<Result<_, PredicateError>>()?;
        let query = spec
            .query
            .iter()
            .map(|q| Ok((q.name.as_str().into(), ValueTest::compile(&q.value)?)))
            .collect::<Result<_, PredicateError>>()?;
        let version = match &spec.version {
            None | Some(VersionMatch::Prefix { .. }) => None,
            Some(VersionMatch::MediaType { version }) => {
                Some(VersionTest::MediaType(version.as_bytes().into()))
            }
            Some(VersionMatch::Header { name, version }) => Some(VersionTest::Header(
                header_name(name)?,
                version.as_bytes().into(),
            )),
        };
        Ok(Self {
            methods,
            headers,
            query,
            version,
        })
    }

    pub(super) fn matches(
        &self,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self
                .headers
                .iter()
                .all(|(name, test)| test.any(headers.get_all(name).iter().map(|v| v.as_bytes())))
            && self
                .query
                .iter()
                .all(|(name, test)| test.any(query_values(query, name)))
            && self.version.as_ref().is_none_or(|v| v.matches(headers))
    }
}

fn header_name(name: &str) -> Result<HeaderName, PredicateError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|e| PredicateError::HeaderName {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

impl ValueTest {
    fn compile(value: &ValueMatch) -> Result<Self, PredicateError> {
        Ok(match value {
            ValueMatch::Exact(v) => ValueTest::Exact(v.as_bytes().into()),
            ValueMatch::Regex(re) => {
                ValueTest::Regex(Regex::new(&anchored_regex(re)).map_err(|e| {
                    PredicateError::Regex {
                        regex: re.clone(),
                        reason: e.to_string(),
                    }
                })?)
            }
            ValueMatch::Present => ValueTest::Present,
        })
    }

    /// Whether any of the field's values passes (a field may appear several times).
    fn any<'a>(&self, mut values: impl Iterator<Item = &'a [u8]>) -> bool {
        match self {
            ValueTest::Exact(want) => values.any(|v| v == &**want),
            ValueTest::Regex(re) => values.any(|v| re.is_match(v)),
            ValueTest::Present => values.next().is_some(),
        }
    }
}

/// The values of a query parameter, as written: `a=1&b&a=2` gives `1` and `2` for `a`, and an
/// empty value for `b`. Nothing is decoded, as with paths.
fn query_values<'a>(query: Option<&'a str>, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(move |pair| match pair.split_once('=') {
            Some((k, v)) if k == name => Some(v.as_bytes()),
            None if !pair.is_empty() && pair == name => Some(&b""[..]),
            _ => None,
        })
}

impl VersionTest {
    fn matches(&self, headers: &HeaderMap) -> bool {
        match self {
            VersionTest::Header(name, version) => headers
                .get_all(name)
                .iter()
                .any(|v| v.as_bytes() == &**version),
            VersionTest::MediaType(version) => headers.get_all(ACCEPT).iter().any(|v| {
                v.as_bytes()
                    .split(|&b| b == b',')
                    .any(|range| media_type_names(range, version))
            }),
        }
    }
}

/// Whether one media range names `version`: a subtype `vnd.<vendor>.<version>` with or without a
/// `+suffix`, or a parameter `version=<version>`. Media types are case-insensitive.
fn media_type_names(range: &[u8], version: &[u8]) -> bool {
    let mut parts = range.split(|&b| b == b';');
    let essence = parts.next().unwrap_or_default().trim_ascii();
    let subtype = essence
        .iter()
        .position(|&b| b == b'/')
        .and_then(|i| essence.get(i + 1..))
        .unwrap_or_default();
    if subtype_names(subtype, version) {
        return true;
    }
    parts.any(|p| {
        let Some(eq) = p.iter().position(|&b| b == b'=') else {
            return false;
        };
        let (key, value) = (p[..eq].trim_ascii(), p[eq + 1..].trim_ascii());
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        key.eq_ignore_ascii_case(b"version") && value.eq_ignore_ascii_case(version)
    })
}

fn subtype_names(subtype: &[u8], version: &[u8]) -> bool {
    let Some(rest) = subtype
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case(b"vnd."))
        .and_then(|_| subtype.get(4..))
    else {
        return false;
    };
    // With the `+suffix` cut off, and without (a version may itself hold a `+`).
    let cut = rest.iter().rposition(|&b| b == b'+').map(|i| &rest[..i]);
    [Some(rest), cut].into_iter().flatten().any(|base| {
        // `<vendor>.<version>`, with a non-empty vendor.
        base.len() > version.len() + 1
            && base[base.len() - version.len() - 1] == b'.'
            && base[base.len() - version.len()..].eq_ignore_ascii_case(version)
    })
}
