//! Route path patterns, and how two routes compare: which is more specific, and whether they can
//! match the same request.
//!
//! # Patterns
//!
//! A pattern starts with `/` and is a list of segments separated by `/`:
//! - a literal matches exactly its text. Percent-encoded text is compared as written: the facade
//!   does not decode paths, so `/a%2Fb` is one segment that never matches `/a/b`. A literal may
//!   hold any character but `{` and `}`, and none that a request path cannot carry (`?`, `#`,
//!   whitespace, control characters);
//! - `{name}` matches any one non-empty segment; `name` is `[A-Za-z_][A-Za-z0-9_]*` and is used
//!   once per pattern;
//! - `{*name}`, only as the last segment, matches the rest of the path: zero or more segments,
//!   empty ones included (`/static/{*rest}` matches `/static`, `/static/` and `/static/a/b`).
//!
//! `/` alone is the root. Empty segments (`//`) are refused, except one trailing slash: it is kept
//! as an empty literal last segment, so `/orders/` and `/orders` are different routes, each
//! matching only the path written its way.
//!
//! # Specificity
//!
//! When several routes match a request, the most specific one answers. Specificity is a total
//! order; two routes are compared on each of these in turn and the first difference decides:
//! 1. a route with a host beats one without;
//! 2. the path (with a URI-prefix version put in front, see [`effective_path`]), segment by
//!    segment from the left: a literal beats a parameter, a parameter beats a wildcard. Where one
//!    path has ended and the other goes on with a literal or a parameter, the longer one wins (it
//!    has more non-wildcard segments); where the other goes on with its wildcard, the one that has
//!    ended wins (`/static` beats `/static/{*rest}`, which matches `/static` too);
//! 3. a version condition beats none;
//! 4. a method set beats "any method", and a smaller set beats a larger one;
//! 5. more header and query conditions beat fewer.
//!
//! Routes equal on all five have the same [`Specificity`]. The catalog refuses two such routes of
//! different contexts when one request could match both ([`may_overlap`]); within one context the
//! facade breaks the tie by route id, so the answer is still deterministic.

use std::cmp::Reverse;
use std::net::Ipv6Addr;

use crate::model::{http_token, RouteSpec, ValueMatch, VersionMatch};

/// Why a path pattern does not parse; the message names the pattern and says what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("path `{path}` must start with `/`, e.g. `/{path}`")]
    NoLeadingSlash { path: String },
    #[error(
        "path `{path}` uses the parameter name `{name}` twice; give each parameter its own name"
    )]
    ParamTwice { path: String, name: String },
    #[error("path `{path}` has an empty segment (`//`); remove the extra `/`")]
    EmptySegment { path: String },
    #[error("path `{path}`: segment `{segment}` opens `{{` but does not end with `}}`; a parameter is a whole segment, `{{name}}`")]
    Unclosed { path: String, segment: String },
    #[error("path `{path}`: the wildcard `{{*{name}}}` must be the last segment; move it to the end, or use `{{{name}}}` for one segment")]
    WildcardNotLast { path: String, name: String },
    #[error("path `{path}`: parameter name `{name}` is invalid; use letters, digits and `_`, not starting with a digit (`{{order_id}}`)")]
    ParamName { path: String, name: String },
    #[error("path `{path}`: segment `{segment}` contains {found:?}; {}", char_fix(*.found))]
    Character {
        path: String,
        segment: String,
        found: char,
    },
}

fn char_fix(c: char) -> &'static str {
    match c {
        '{' | '}' => {
            "a parameter is a whole segment (`/orders/{id}`), and a literal cannot hold `{` or `}`"
        }
        '?' => "a path pattern has no query; match query parameters with `query`",
        '#' => "a fragment never reaches a server; remove it",
        _ => "write it percent-encoded, as clients send it (`%20` for a space)",
    }
}

/// Why a route's spec is refused on its own; the message names the route and says the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteSpecError {
    #[error(transparent)]
    Path(#[from] PatternError),
    #[error("route `{route}`: method `{method}` is not an HTTP method; write a token such as GET, POST or PURGE")]
    Method { route: String, method: String },
    #[error("route `{route}`: method `{method}` must be upper case; write `{}`", .method.to_ascii_uppercase())]
    MethodCase { route: String, method: String },
    #[error("route `{route}`: host `{host}` is invalid; write a host name with an optional port, e.g. `shop.example.com` or `shop.example.com:8443`")]
    Host { route: String, host: String },
    #[error("route `{route}`: header name `{name}` is not an HTTP token; use letters, digits and `-` (`X-Tenant`)")]
    HeaderName { route: String, name: String },
    #[error("route `{route}`: query parameter name `{name}` is invalid; write it as it appears before `=`, without `&`, `=`, `#` or spaces")]
    QueryName { route: String, name: String },
    #[error("route `{route}`: {kind} `{name}`: the value `{value}` can never be received as written; remove control characters, surrounding spaces (and for a query, `&`, `=`, `#`)")]
    Unreceivable {
        route: String,
        kind: &'static str,
        name: String,
        value: String,
    },
    #[error("route `{route}`: {kind} `{name}`: the regular expression `{regex}` does not compile; fix it ({reason})")]
    Regex {
        route: String,
        kind: &'static str,
        name: String,
        regex: String,
        reason: String,
    },
    #[error("route `{route}`: version `{version}` is invalid; write a token such as `v2` or `2`")]
    Version { route: String, version: String },
    #[error("route `{route}`: version header name `{name}` is not an HTTP token; write e.g. `X-API-Version`")]
    VersionHeader { route: String, name: String },
    #[error("route `{route}` with version `{version}`: {source}")]
    VersionedPath {
        route: String,
        version: String,
        source: PatternError,
    },
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this text (empty only as the last segment: a trailing slash).
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Param(String),
    /// `{*name}`, last only: the rest of the path (zero or more segments).
    Wildcard(String),
}

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    segments: Vec<Segment>,
}

impl PathPattern {
    /// Parses a pattern; the error names it and says what to write instead.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        let Some(rest) = s.strip_prefix('/') else {
            return Err(PatternError::NoLeadingSlash { path: s.to_owned() });
        };
        if rest.is_empty() {
            return Ok(Self {
                segments: Vec::new(),
            });
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let last = parts.len() - 1;
        let mut segments: Vec<Segment> = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let segment = parse_segment(s, part, i == last)?;
            if let Segment::Param(name) | Segment::Wildcard(name) = &segment {
                let taken = segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(n) | Segment::Wildcard(n) if n == name));
                if taken {
                    return Err(PatternError::ParamTwice {
                        path: s.to_owned(),
                        name: name.clone(),
                    });
                }
            }
            segments.push(segment);
        }
        Ok(Self { segments })
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

fn parse_segment(pattern: &str, part: &str, last: bool) -> Result<Segment, PatternError> {
    if part.is_empty() {
        return if last {
            Ok(Segment::Literal(String::new()))
        } else {
            Err(PatternError::EmptySegment {
                path: pattern.to_owned(),
            })
        };
    }
    if let Some(inner) = part.strip_prefix('{') {
        let Some(inner) = inner.strip_suffix('}') else {
            return Err(PatternError::Unclosed {
                path: pattern.to_owned(),
                segment: part.to_owned(),
            });
        };
        if let Some(name) = inner.strip_prefix('*') {
            check_param_name(pattern, name)?;
            if !last {
                return Err(PatternError::WildcardNotLast {
                    path: pattern.to_owned(),
                    name: name.to_owned(),
                });
            }
            return Ok(Segment::Wildcard(name.to_owned()));
        }
        check_param_name(pattern, inner)?;
        return Ok(Segment::Param(inner.to_owned()));
    }
    if let Some(c) = part
        .chars()
        .find(|&c| matches!(c, '{' | '}' | '?' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err(PatternError::Character {
            path: pattern.to_owned(),
            segment: part.to_owned(),
            found: c,
        });
    }
    Ok(Segment::Literal(part.to_owned()))
}

fn check_param_name(pattern: &str, name: &str) -> Result<(), PatternError> {
    let mut bytes = name.bytes();
    let ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PatternError::ParamName {
            path: pattern.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// The path a spec matches: its pattern, with a URI-prefix version put in front (`/v2` + the
/// pattern; the root `/` becomes `/v2`, so a trailing slash stays significant elsewhere).
pub fn effective_path(spec: &RouteSpec) -> String {
    match &spec.version {
        Some(VersionMatch::Prefix { version }) if spec.path == "/" => format!("/{version}"),
        Some(VersionMatch::Prefix { version }) => format!("/{version}{}", spec.path),
        _ => spec.path.clone(),
    }
}

/// A regular expression of a header or query condition, anchored to match the whole value; the
/// catalog checks and the facade compiles this same text.
pub fn anchored_regex(re: &str) -> String {
    format!(r"\A(?:{re})\z")
}

/// Splits `host[:port]` (`[v6]:port` too) into the host and the port, if written.
pub fn split_host_port(h: &str) -> (&str, Option<&str>) {
    if h.starts_with('[') {
        return match h.find(']') {
            Some(i) => (&h[..=i], h[i + 1..].strip_prefix(':')),
            None => (h, None),
        };
    }
    match h.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (h, None),
    }
}

/// Checks a spec on its own; the error names the route's path and says the fix.
pub fn check_spec(spec: &RouteSpec) -> Result<(), RouteSpecError> {
    PathPattern::parse(&spec.path)?;
    let route = &spec.path;
    let route_of = || route.clone();
    for m in &spec.methods {
        if !http_token(m) {
            return Err(RouteSpecError::Method {
                route: route_of(),
                method: m.clone(),
            });
        }
        if m.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(RouteSpecError::MethodCase {
                route: route_of(),
                method: m.clone(),
            });
        }
    }
    if let Some(host) = &spec.host {
        if !host_ok(host) {
            return Err(RouteSpecError::Host {
                route: route_of(),
                host: host.clone(),
            });
        }
    }
    for h in &spec.headers {
        if !http_token(&h.name) {
            return Err(RouteSpecError::HeaderName {
                route: route_of(),
                name: h.name.clone(),
            });
        }
        check_value(route, "header", &h.name, &h.value, |v| {
            !v.starts_with([' ', '\t'])
                && !v.ends_with([' ', '\t'])
                && !v.chars().any(|c| c.is_control() && c != '\t')
        })?;
    }
    for q in &spec.query {
        let bad = |c: char| matches!(c, '&' | '=' | '#') || c.is_whitespace() || c.is_control();
        if q.name.is_empty() || q.name.contains(bad) {
            return Err(RouteSpecError::QueryName {
                route: route_of(),
                name: q.name.clone(),
            });
        }
        check_value(route, "query parameter", &q.name, &q.value, |v| {
            !v.contains(bad)
        })?;
    }
    if let Some(version) = &spec.version {
        let (v, header) = match version {
            VersionMatch::Prefix { version } => (version, None),
            VersionMatch::MediaType { version } => (version, None),
            VersionMatch::Header { name, version } => (version, Some(name)),
        };
        if !http_token(v) {
            return Err(RouteSpecError::Version {
                route: route_of(),
                version: v.clone(),
            });
        }
        if let Some(name) = header.filter(|n| !http_token(n)) {
            return Err(RouteSpecError::VersionHeader {
                route: route_of(),
                name: name.clone(),
            });
        }
        PathPattern::parse(&effective_path(spec)).map_err(|source| {
            RouteSpecError::VersionedPath {
                route: route_of(),
                version: v.clone(),
                source,
            }
        })?;
    }
    Ok(())
}

fn check_value(
    route: &str,
    kind: &'static str,
    name: &str,
    value: &ValueMatch,
    exact_ok: impl Fn(&str) -> bool,
) -> Result<(), RouteSpecError> {
    match value {
        ValueMatch::Exact(v) if !exact_ok(v) => Err(RouteSpecError::Unreceivable {
            route: route.to_owned(),
            kind,
            name: name.to_owned(),
            value: v.clone(),
        }),
        ValueMatch::Regex(re) => match regex::Regex::new(&anchored_regex(re)) {
            Ok(_) => Ok(()),
            Err(e) => Err(RouteSpecError::Regex {
                route: route.to_owned(),
                kind,
                name: name.to_owned(),
                regex: re.clone(),
                reason: e.to_string().replace('\n', " "),
            }),
        },
        _ => Ok(()),
    }
}

/// Whether `h` is a host name (or `[v6]` literal) with an optional non-zero port.
fn host_ok(h: &str) -> bool {
    let (name, port) = split_host_port(h);
    if let Some(port) = port {
        let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || !port.parse::<u16>().is_ok_and(|p| p != 0) {
            return false;
        }
    }
    if let Some(v6) = name.strip_prefix('[') {
        return v6
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<Ipv6Addr>().is_ok());
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)
}

/// How specific a route is: a greater value is more specific (see the module documentation).
/// The fields are compared in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Specificity {
    host: bool,
    /// One rank per segment, then [`END`] unless the path ends with a wildcard. END and WILDCARD
    /// only ever come last, so two different paths always differ at some position, and a plain
    /// lexicographic compare gives the rule of the module documentation.
    path: Vec<u8>,
    version: bool,
    methods: MethodRank,
    predicates: usize,
}

const LITERAL: u8 = 3;
const PARAM: u8 = 2;
/// The path has ended: beats a wildcard (which may also match nothing more), loses to anything
/// that asks for one more segment.
const END: u8 = 1;
const WILDCARD: u8 = 0;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum MethodRank {
    Any,
    /// The number of distinct methods: fewer is more specific.
    Set(Reverse<usize>),
}

/// How specific a spec is. A path that does not parse (which [`check_spec`] refuses) ranks below
/// every path.
pub fn specificity(spec: &RouteSpec) -> Specificity {
    let path = match PathPattern::parse(&effective_path(spec)) {
        Ok(p) => {
            let mut ranks: Vec<u8> = p
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(_) => LITERAL,
                    Segment::Param(_) => PARAM,
                    Segment::Wildcard(_) => WILDCARD,
                })
                .collect();
            if ranks.last() != Some(&WILDCARD) {
                ranks.push(END);
            }
            ranks
        }
        Err(_) => Vec::new(),
    };
    let methods = if spec.methods.is_empty() {
        MethodRank::Any
    } else {
        let mut distinct: Vec<&String> = spec.methods.iter().collect();
        distinct.sort();
        distinct.dedup();
        MethodRank::Set(Reverse(distinct.len()))
    };
    Specificity {
        host: spec.host.is_some(),
        path,
        version: spec.version.is_some(),
        methods,
        predicates: spec.headers.len() + spec.query.len(),
    }
}

/// Whether some request could match both specs. It errs towards "yes": only what is provably
/// disjoint answers "no" — methods that do not intersect, different hosts, paths that cannot
/// meet, different versions in the same style (the same header, for the header style), or the
/// same header or query parameter required to equal two different values. A spec whose path does
/// not parse matches nothing.
pub fn may_overlap(a: &RouteSpec, b: &RouteSpec) -> bool {
    let methods = a.methods.is_empty()
        || b.methods.is_empty()
        || a.methods.iter().any(|m| b.methods.contains(m));
    methods
        && hosts_compatible(a.host.as_deref(), b.host.as_deref())
        && versions_compatible(a.version.as_ref(), b.version.as_ref())
        && !a.headers.iter().any(|x| {
            b.headers
                .iter()
                .any(|y| x.name.eq_ignore_ascii_case(&y.name) && exact_differs(&x.value, &y.value))
        })
        && !a.query.iter().any(|x| {
            b.query
                .iter()
                .any(|y| x.name == y.name && exact_differs(&x.value, &y.value))
        })
        && paths_overlap(&effective_path(a), &effective_path(b))
}

fn exact_differs(a: &ValueMatch, b: &ValueMatch) -> bool {
    matches!((a, b), (ValueMatch::Exact(x), ValueMatch::Exact(y)) if x != y)
}

/// A route host without a port matches that host on any port.
fn hosts_compatible(a: Option<&str>, b: Option<&str>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    let ((ha, pa), (hb, pb)) = (split_host_port(a), split_host_port(b));
    ha.eq_ignore_ascii_case(hb) && (pa.is_none() || pb.is_none() || pa == pb)
}

fn versions_compatible(a: Option<&VersionMatch>, b: Option<&VersionMatch>) -> bool {
    use VersionMatch::{Header, MediaType, Prefix};
    match (a, b) {
        (Some(Prefix { version: x }), Some(Prefix { version: y })) => x == y,
        // Media types are case-insensitive, and the facade compares them so.
        (Some(MediaType { version: x }), Some(MediaType { version: y })) => {
            x.eq_ignore_ascii_case(y)
        }
        (
            Some(Header {
                name: n,
                version: x,
            }),
            Some(Header {
                name: m,
                version: y,
            }),
        ) => !n.eq_ignore_ascii_case(m) || x == y,
        _ => true,
    }
}

fn paths_overlap(a: &str, b: &str) -> bool {
    let (Ok(a), Ok(b)) = (PathPattern::parse(a), PathPattern::parse(b)) else {
        return false;
    };
    let (mut a, mut b) = (a.segments(), b.segments());
    loop {
        match (a.split_first(), b.split_first()) {
            (Some((Segment::Wildcard(_), _)), _) | (_, Some((Segment::Wildcard(_), _))) => {
                return true
            }
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some((x, ra)), Some((y, rb))) => {
                let meet = match (x, y) {
                    (Segment::Literal(p), Segment::Literal(q)) => p == q,
                    // A parameter needs a non-empty segment; the empty literal is a trailing slash.
                    (Segment::Literal(p), _) | (_, Segment::Literal(p)) => !p.is_empty(),
                    _ => true,
                };
                if !meet {
                    return false;
                }
                (a, b) = (ra, rb);
            }
        }
    }
}

#[cfg(test)]
mod tests;
