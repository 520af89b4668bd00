//! A compiled translator: the spec's rules turned into ready-to-run form, checked once when it
//! loads, then applied to every request going to the new service and every answer coming back.
//!
//! Size: over 600 lines, kept whole on purpose. Everything here is one value, [`Compiled`], and
//! the two passes that apply it (request out, answer back); path, header, version, envelope,
//! error and composition rules each compile here and are applied in a fixed order that the
//! reader should see in one place. The JSON body rules live in `ops.rs` and the value in
//! `json.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ACCEPT, CONTENT_LOCATION, CONTENT_TYPE, LINK, LOCATION,
};
use http::{HeaderMap, Method, StatusCode};
use toml::Spanned;

use crate::jq::Jq;
use crate::json::{self, Path, Value};
use crate::ops::{self, Rule};
use crate::spec::{self, HeaderRules, IdentitySpec, Spec, SpecError};
use crate::{Failure, Registry, Request, Response, Translator};

/// A path pattern: literal segments, `{name}` captures, and a final `{*name}` for the rest.
#[derive(Debug, Clone)]
struct Pattern {
    segs: Vec<PSeg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PSeg {
    Lit(String),
    Cap(String),
    Tail(String),
}

type Captures = Vec<(String, String)>;

impl Pattern {
    fn parse(p: &str) -> Result<Pattern, String> {
        let Some(rest) = p.strip_prefix('/') else {
            return Err(format!("path pattern `{p}` must start with /"));
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut segs = Vec::new();
        for (i, s) in parts.iter().enumerate() {
            if let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if let Some(name) = inner.strip_prefix('*') {
                    if i + 1 != parts.len() || name.is_empty() {
                        return Err(format!(
                            "`{p}`: a {{*rest}} capture must be the last segment"
                        ));
                    }
                    segs.push(PSeg::Tail(name.to_owned()));
                } else if inner.is_empty() || inner.contains(['{', '}']) {
                    return Err(format!("`{p}` has an empty or broken capture"));
                } else {
                    segs.push(PSeg::Cap(inner.to_owned()));
                }
            } else if s.contains(['{', '}']) {
                return Err(format!(
                    "`{p}`: a capture must be a whole segment, like /orders/{{id}}"
                ));
            } else {
                segs.push(PSeg::Lit((*s).to_owned()));
            }
        }
        Ok(Pattern { segs })
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().filter_map(|s| match s {
            PSeg::Cap(n) | PSeg::Tail(n) => Some(n.as_str()),
            PSeg::Lit(_) => None,
        })
    }

    fn matches(&self, path: &str) -> Option<Captures> {
        let rest = path.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let mut caps = Vec::new();
        for seg in &self.segs {
            match seg {
                PSeg::Tail(name) => {
                    let tail: Vec<&str> = parts.by_ref().collect();
                    caps.push((name.clone(), tail.join("/")));
                    return Some(caps);
                }
                PSeg::Lit(l) => {
                    if parts.next()? != l {
                        return None;
                    }
                }
                PSeg::Cap(name) => {
                    let v = parts.next()?;
                    if v.is_empty() {
                        return None;
                    }
                    caps.push((name.clone(), v.to_owned()));
                }
            }
        }
        parts.next().is_none().then_some(caps)
    }

    fn render(&self, caps: &Captures) -> String {
        let mut out = String::new();
        for seg in &self.segs {
            out.push('/');
            match seg {
                PSeg::Lit(l) => out.push_str(l),
                PSeg::Cap(n) | PSeg::Tail(n) => {
                    if let Some((_, v)) = caps.iter().find(|(k, _)| k == n) {
                        out.push_str(v);
                    }
                }
            }
        }
        out
    }
}

#[derive(Debug)]
struct PathRule {
    from: Pattern,
    to: Pattern,
    methods: HashMap<Method, Method>,
}

#[derive(Debug, Default)]
struct Headers {
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
    rename: Vec<(HeaderName, HeaderName)>,
    from_capture: Vec<(HeaderName, String)>,
}

impl Headers {
    fn compile(r: &HeaderRules, requests: bool) -> Result<Headers, String> {
        let name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| format!("`{n}` is not a header field name"))
        };
        let value = |v: &str| {
            HeaderValue::from_str(v).map_err(|_| format!("`{v}` is not a valid header value"))
        };
        if !requests && !r.from_capture.is_empty() {
            return Err("from_capture is for requests only".into());
        }
        Ok(Headers {
            add: r
                .add
                .iter()
                .map(|(n, v)| Ok((name(n)?, value(v)?)))
                .collect::<Result<_, String>>()?,
            remove: r.remove.iter().map(|n| name(n)).collect::<Result<_, _>>()?,
            rename: r
                .rename
                .iter()
                .map(|(a, b)| Ok((name(a)?, name(b)?)))
                .collect::<Result<_, String>>()?,
            from_capture: r
                .from_capture
                .iter()
                .map(|(n, c)| Ok((name(n)?, c.clone())))
                .collect::<Result<_, String>>()?,
        })
    }

    fn apply(&self, h: &mut HeaderMap, caps: &Captures) {
        for (from, to) in &self.rename {
            let values: Vec<HeaderValue> = h.get_all(from).iter().cloned().collect();
            if !values.is_empty() {
                h.remove(from);
                for v in values {
                    h.append(to.clone(), v);
                }
            }
        }
        for n in &self.remove {
            h.remove(n);
        }
        for (n, v) in &self.add {
            h.insert(n.clone(), v.clone());
        }
        for (n, cap) in &self.from_capture {
            if let Some((_, v)) = caps.iter().find(|(k, _)| k == cap) {
                if let Ok(v) = HeaderValue::from_str(v) {
                    h.insert(n.clone(), v);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.remove.is_empty()
            && self.rename.is_empty()
            && self.from_capture.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum VersionStyle {
    Prefix,
    MediaType(String),
    Header(HeaderName),
}

#[derive(Debug)]
struct Version {
    style: VersionStyle,
    from: String,
    to: String,
}

impl Version {
    fn media(&self, vendor: &str, v: &str) -> String {
        format!("vnd.{vendor}.{v}+")
    }

    /// Rewrites a media-type value from one version to another; None when it names neither.
    fn swap_media(&self, value: &str, vendor: &str, from: &str, to: &str) -> Option<String> {
        let a = self.media(vendor, from);
        let b = self.media(vendor, to);
        let pa = format!("version={from}");
        let pb = format!("version={to}");
        if value.contains(&a) {
            Some(value.replace(&a, &b))
        } else if value.contains(&pa) {
            Some(value.replace(&pa, &pb))
        } else {
            None
        }
    }
}

#[derive(Debug)]
enum Envelope {
    Template(Value),
    Jq(Arc<Jq>),
}

#[derive(Debug)]
struct Errors {
    envelope: Envelope,
    content_type: HeaderValue,
    label: String,
}

/// What to do when one part of a composition fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Answer 502.
    Fail,
    /// The part's answer is null.
    Omit,
    /// Legacy answers the whole request.
    Legacy,
}

/// Who a composed part calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartSide {
    Legacy,
    New,
}

#[derive(Debug)]
struct ComposeRule {
    path: Pattern,
    parts: Vec<(String, PartSide, Pattern, Option<Duration>)>,
    assemble: Envelope,
    on_failure: OnFailure,
    label: String,
}

/// One call of a composition, with its path filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub side: PartSide,
    pub path: String,
    pub timeout: Option<Duration>,
}

/// The calls that answer one composed request.
#[derive(Debug, Clone)]
pub struct Composition {
    pub parts: Vec<Part>,
    pub on_failure: OnFailure,
    index: usize,
}

/// Where the new service lives and where clients reach the facade, for link rewriting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Links<'a> {
    /// The new service's origins, `http://host:port` each (no trailing slash).
    pub upstreams: &'a [String],
    /// The public origin clients used, `http://host` (None: links become relative).
    pub public: Option<&'a str>,
}

/// A registered Rust translator and its name.
struct Named(String, Arc<dyn Translator>);

impl std::fmt::Debug for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rust:{}", self.0)
    }
}

/// A translator compiled from a spec.
#[derive(Debug)]
pub struct Compiled {
    paths: Vec<PathRule>,
    version: Option<Version>,
    req_headers: Headers,
    query: spec::QueryRules,
    req_body: Vec<Rule>,
    resp_headers: Headers,
    resp_body: Vec<Rule>,
    status: HashMap<u16, StatusCode>,
    errors: Option<Errors>,
    links_headers: bool,
    links_body: bool,
    rust: Option<Named>,
    compose: Vec<ComposeRule>,
    identity: Option<IdentitySpec>,
}

fn spanned_err<T>(text: &str, s: &Spanned<T>, msg: impl Into<String>) -> SpecError {
    SpecError::at(text, s.span().start, msg)
}

fn body_rules(
    text: &str,
    tables: &[Spanned<toml::Table>],
    side: &str,
) -> Result<Vec<Rule>, SpecError> {
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let err = |m: String| spanned_err(text, t, format!("{side}.body[{i}]: {m}"));
            let op: spec::Op = toml::Value::Table(t.get_ref().clone())
                .try_into()
                .map_err(|e: toml::de::Error| err(e.message().to_owned()))?;
            let name = t
                .get_ref()
                .get("op")
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            let label = format!(
                "{side}.body[{i}] ({name}, line {})",
                spec::line_of(text, t.span().start)
            );
            Rule::compile(&op, label).map_err(err)
        })
        .collect()
}

/// A JSON template: strings that are paths (`"$.detail"`) are filled from `input`.
fn fill(template: &Value, input: &Value) -> Value {
    match template {
        Value::Str(s) if s.starts_with('$') => match Path::parse(s) {
            Ok(p) if p.is_single() => json::get(input, &p.segs).cloned().unwrap_or(Value::Null),
            _ => Value::Str(s.clone()),
        },
        Value::Arr(items) => Value::Arr(items.iter().map(|v| fill(v, input)).collect()),
        Value::Obj(fields) => Value::Obj(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), fill(v, input)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn envelope(
    text: &str,
    at: usize,
    body: &Option<toml::Value>,
    jq: &Option<String>,
    what: &str,
) -> Result<Envelope, SpecError> {
    match (body, jq) {
        (Some(b), None) => {
            Ok(Envelope::Template(ops::from_toml(b).map_err(|m| {
                SpecError::at(text, at, format!("{what}: {m}"))
            })?))
        }
        (None, Some(q)) => {
            Ok(Envelope::Jq(Arc::new(Jq::compile(q).map_err(|m| {
                SpecError::at(text, at, format!("{what}: {m}"))
            })?)))
        }
        _ => Err(SpecError::at(
            text,
            at,
            format!("{what}: give either body (a JSON template) or jq, not both or neither"),
        )),
    }
}

impl Compiled {
    /// Parses and compiles a spec. Every error names the line and the fix.
    pub fn compile(text: &str, registry: &Registry) -> Result<Compiled, SpecError> {
        let spec = Spec::parse(text)?;
        Self::from_spec(text, &spec, registry)
    }

    fn from_spec(text: &str, spec: &Spec, registry: &Registry) -> Result<Compiled, SpecError> {
        let mut paths = Vec::new();
        for rule in &spec.paths {
            let r = rule.get_ref();
            let err = |m: String| spanned_err(text, rule, format!("paths: {m}"));
            let from = Pattern::parse(&r.from).map_err(err)?;
            let to = Pattern::parse(&r.to).map_err(err)?;
            if let Some(missing) = to.names().find(|n| !from.names().any(|f| f == *n)) {
                return Err(err(format!(
                    "`{}` uses {{{missing}}}, which `{}` does not capture",
                    r.to, r.from
                )));
            }
            let mut methods = HashMap::new();
            for (a, b) in &r.methods {
                let m = |s: &str| {
                    Method::from_bytes(s.as_bytes())
                        .map_err(|_| err(format!("`{s}` is not a method")))
                };
                methods.insert(m(a)?, m(b)?);
            }
            paths.push(PathRule { from, to, methods });
        }
        let version = match &spec.version {
            None => None,
            Some(v) => {
                let err = |m: String| spanned_err(text, v, format!("version: {m}"));
                let r = v.get_ref();
                let token = |s: &str| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                };
                if !token(&r.from) || !token(&r.to) {
                    return Err(err(
                        "from and to must be version names like v1, 2 or 2024-01".into(),
                    ));
                }
                let style = match r.style.as_str() {
                    "prefix" => VersionStyle::Prefix,
                    "media-type" => VersionStyle::MediaType(
                        r.vendor
                            .clone()
                            .filter(|v| token(v))
                            .ok_or_else(|| err("media-type needs vendor = \"NAME\" (as in application/vnd.NAME.v1+json)".into()))?,
                    ),
                    "header" => VersionStyle::Header(
                        r.header
                            .as_deref()
                            .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                            .ok_or_else(|| {
                                err("header needs header = \"X-API-Version\" (a field name)".into())
                            })?,
                    ),
                    other => {
                        return Err(err(format!(
                            "`{other}` is not a versioning style; use prefix, media-type or header"
                        )))
                    }
                };
                Some(Version {
                    style,
                    from: r.from.clone(),
                    to: r.to.clone(),
                })
            }
        };
        let whole = |m: String| SpecError {
            line: 0,
            message: m,
        };
        let req_headers = Headers::compile(&spec.request.headers, true)
            .map_err(|m| whole(format!("request.headers: {m}")))?;
        let resp_headers = Headers::compile(&spec.response.headers, false)
            .map_err(|m| whole(format!("response.headers: {m}")))?;
        for (name, p) in &spec.request.query.to_body {
            Path::parse(p)
                .ok()
                .filter(|p| p.is_single() && !p.segs.is_empty())
                .ok_or_else(|| {
                    whole(format!(
                        "request.query.to_body.{name}: `{p}` must name one field, like $.note"
                    ))
                })?;
        }
        let req_body = body_rules(text, &spec.request.body, "request")?;
        let resp_body = body_rules(text, &spec.response.body, "response")?;
        let mut status = HashMap::new();
        for (from, to) in spec.response.status.iter().flat_map(|s| s.get_ref()) {
            let err = |m: String| {
                let at = spec.response.status.as_ref().map_or(0, |s| s.span().start);
                SpecError::at(text, at, format!("response.status: {m}"))
            };
            let from: u16 = from
                .parse()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| err(format!("`{from}` is not a status code")))?;
            let to = StatusCode::from_u16(*to)
                .ok()
                .filter(|c| (200..=599).contains(&c.as_u16()))
                .ok_or_else(|| err(format!("{to} is not a status code to answer with")))?;
            status.insert(from, to);
        }
        let errors = match &spec.response.errors {
            None => None,
            Some(e) => {
                let r = e.get_ref();
                let at = e.span().start;
                let content_type =
                    HeaderValue::from_str(r.content_type.as_deref().unwrap_or("application/json"))
                        .map_err(|_| {
                            SpecError::at(
                                text,
                                at,
                                "response.errors: content_type is not a header value",
                            )
                        })?;
                Some(Errors {
                    envelope: envelope(text, at, &r.body, &r.jq, "response.errors")?,
                    content_type,
                    label: format!("response.errors (line {})", spec::line_of(text, at)),
                })
            }
        };
        let rust = match &spec.rust {
            None => None,
            Some(name) => match registry.get(name.get_ref()) {
                Some(t) => Some(Named(name.get_ref().clone(), t)),
                None => {
                    return Err(spanned_err(
                        text,
                        name,
                        format!(
                            "no Rust translator named `{}` is registered; registered: {}",
                            name.get_ref(),
                            registry.names().join(", ")
                        ),
                    ))
                }
            },
        };
        let mut compose = Vec::new();
        for (i, c) in spec.compose.iter().enumerate() {
            let r = c.get_ref();
            let at = c.span().start;
            let err = |m: String| SpecError::at(text, at, format!("compose[{i}]: {m}"));
            let path = Pattern::parse(&r.path).map_err(err)?;
            if r.parts.is_empty() {
                return Err(err("a composition needs at least one part".into()));
            }
            let mut parts = Vec::new();
            for p in &r.parts {
                let side = match p.side.as_str() {
                    "legacy" => PartSide::Legacy,
                    "new" => PartSide::New,
                    other => {
                        return Err(err(format!(
                            "part `{}`: side `{other}` is not legacy or new",
                            p.name
                        )))
                    }
                };
                let pat = Pattern::parse(&p.path).map_err(err)?;
                if let Some(missing) = pat.names().find(|n| !path.names().any(|f| f == *n)) {
                    return Err(err(format!(
                        "part `{}` uses {{{missing}}}, which `{}` does not capture",
                        p.name, r.path
                    )));
                }
                let timeout = match p.timeout_ms {
                    Some(ms) if !(1..=600_000).contains(&ms) => {
                        return Err(err(format!(
                            "part `{}`: timeout_ms {ms} is out of range; choose 1-600000",
                            p.name
                        )))
                    }
                    t => t.map(Duration::from_millis),
                };
                parts.push((p.name.clone(), side, pat, timeout));
            }
            let on_failure = match r.on_failure.as_deref().unwrap_or("fail") {
                "fail" => OnFailure::Fail,
                "omit" => OnFailure::Omit,
                "legacy" => OnFailure::Legacy,
                other => {
                    return Err(err(format!(
                        "on_failure `{other}` is not fail, omit or legacy"
                    )))
                }
            };
            compose.push(ComposeRule {
                path,
                parts,
                assemble: envelope(text, at, &r.body, &r.jq, &format!("compose[{i}]"))?,
                on_failure,
                label: format!("compose[{i}] (line {})", spec::line_of(text, at)),
            });
        }
        Ok(Compiled {
            paths,
            version,
            req_headers,
            query: spec.request.query.clone(),
            req_body,
            resp_headers,
            resp_body,
            status,
            errors,
            links_headers: spec.links.headers,
            links_body: spec.links.body,
            rust,
            compose,
            identity: spec.identity.clone(),
        })
    }

    /// Whether requests need their body buffered (body rules, query moved into the body, or a
    /// Rust translator). Without, bodies stream untouched.
    pub fn needs_request_body(&self) -> bool {
        !self.req_body.is_empty() || !self.query.to_body.is_empty() || self.rust.is_some()
    }

    /// Whether an answer with `status` needs its body buffered.
    pub fn needs_response_body(&self, status: StatusCode) -> bool {
        if status.as_u16() >= 400 {
            self.errors.is_some() || self.rust.is_some()
        } else {
            !self.resp_body.is_empty() || self.links_body || self.rust.is_some()
        }
    }

    /// Whether translating may run jq or Rust code (work whose cost the body's size does not
    /// bound): callers then run it off the async workers, whatever the body's size.
    pub fn unbounded(&self) -> bool {
        self.rust.is_some()
            || self.req_body.iter().chain(&self.resp_body).any(Rule::is_jq)
            || matches!(&self.errors, Some(e) if matches!(e.envelope, Envelope::Jq(_)))
            || self
                .compose
                .iter()
                .any(|c| matches!(c.assemble, Envelope::Jq(_)))
    }

    /// The identity bridge settings, when the context asks for one.
    pub fn identity(&self) -> Option<&IdentitySpec> {
        self.identity.as_ref()
    }

    /// The JSON paths response rules write: a difference there may be the translator's doing.
    pub fn response_paths(&self) -> impl Iterator<Item = &str> {
        self.resp_body
            .iter()
            .filter_map(|r| r.writes().map(|p| p.text.as_str()))
    }

    /// Translates a legacy request into the new service's contract.
    ///
    /// All or nothing: a translation that fails leaves `req` exactly as it was.
    pub fn request(&self, req: &mut Request) -> Result<(), Failure> {
        let mut work = req.clone();
        self.request_in(&mut work)?;
        *req = work;
        Ok(())
    }

    fn request_in(&self, req: &mut Request) -> Result<(), Failure> {
        // Path and method: the first matching rule, else the version prefix.
        let mut caps = Vec::new();
        let mut mapped = false;
        for rule in &self.paths {
            if let Some(c) = rule.from.matches(&req.path) {
                req.path = rule.to.render(&c);
                if let Some(m) = rule.methods.get(&req.method) {
                    req.method = m.clone();
                }
                caps = c;
                mapped = true;
                break;
            }
        }
        if let Some(v) = &self.version {
            match &v.style {
                VersionStyle::Prefix if !mapped => {
                    let from = format!("/{}", v.from);
                    if let Some(rest) = req.path.strip_prefix(&from) {
                        if rest.is_empty() || rest.starts_with('/') {
                            req.path = format!("/{}{rest}", v.to);
                        }
                    }
                }
                VersionStyle::Prefix => {}
                VersionStyle::MediaType(vendor) => {
                    for name in [ACCEPT, CONTENT_TYPE] {
                        swap_header(&mut req.headers, &name, |s| {
                            v.swap_media(s, vendor, &v.from, &v.to)
                        });
                    }
                }
                VersionStyle::Header(name) => {
                    if let Ok(val) = HeaderValue::from_str(&v.to) {
                        req.headers.insert(name.clone(), val);
                    }
                }
            }
        }
        self.req_headers.apply(&mut req.headers, &caps);
        let moved = self.query(req)?;
        if let Some(body) = &mut req.body {
            let wants = !self.req_body.is_empty() || !moved.is_empty();
            if wants && (!body.is_empty() || !moved.is_empty()) {
                let mut v = if body.is_empty() {
                    Value::Obj(Vec::new())
                } else {
                    Value::parse(body).map_err(|e| Failure {
                        rule: "request.body".into(),
                        path: "$".into(),
                        reason: format!("the request body is not JSON: {e}"),
                        client: true,
                    })?
                };
                for (p, val) in moved {
                    json::put(&mut v, &p.segs, Value::str(val)).map_err(|why| Failure {
                        rule: "request.query.to_body".into(),
                        path: p.text.clone(),
                        reason: why,
                        client: true,
                    })?;
                }
                for rule in &self.req_body {
                    rule.apply(&mut v).map_err(|e| Failure {
                        rule: rule.label.clone(),
                        path: e.path,
                        reason: e.reason,
                        client: true,
                    })?;
                }
                *body = Bytes::from(v.to_json_sized(body.len() + body.len() / 8));
                if !req.headers.contains_key(CONTENT_TYPE) {
                    req.headers
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
            }
        }
        if let Some(Named(_, t)) = &self.rust {
            t.request(req)?;
        }
        Ok(())
    }

    /// Applies the query rules; returns the values moved into the body.
    fn query(&self, req: &mut Request) -> Result<Vec<(Path, String)>, Failure> {
        let q = &self.query;
        if q.rename.is_empty() && q.drop.is_empty() && q.default.is_empty() && q.to_body.is_empty()
        {
            return Ok(Vec::new());
        }
        let mut moved = Vec::new();
        let mut out: Vec<String> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for pair in req.query.as_deref().unwrap_or("").split('&') {
            if pair.is_empty() {
                continue;
            }
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = form_decode(raw_name).unwrap_or_else(|| raw_name.to_owned());
            if q.drop.contains(&name) {
                continue;
            }
            if let Some(p) = q.to_body.get(&name) {
                let value = form_decode(raw_value).ok_or_else(|| Failure {
                    rule: "request.query.to_body".into(),
                    path: p.clone(),
                    reason: format!("query parameter `{name}` is not valid UTF-8 once decoded"),
                    client: true,
                })?;
                if let Ok(path) = Path::parse(p) {
                    moved.push((path, value));
                }
                continue;
            }
            let name = match q.rename.get(&name) {
                Some(new) => {
                    out.push(format!("{}={raw_value}", form_encode(new)));
                    new.clone()
                }
                None => {
                    out.push(pair.to_owned());
                    name
                }
            };
            seen.push(name);
        }
        for (name, value) in &q.default {
            if !seen.contains(name) {
                out.push(format!("{}={}", form_encode(name), form_encode(value)));
            }
        }
        req.query = (!out.is_empty()).then(|| out.join("&"));
        Ok(moved)
    }

    /// Translates the new service's answer back into the legacy contract.
    ///
    /// All or nothing: a translation that fails leaves `resp` exactly as it was.
    pub fn response(&self, resp: &mut Response, links: &Links<'_>) -> Result<(), Failure> {
        let mut work = resp.clone();
        self.response_in(&mut work, links)?;
        *resp = work;
        Ok(())
    }

    fn response_in(&self, resp: &mut Response, links: &Links<'_>) -> Result<(), Failure> {
        if let Some(Named(_, t)) = &self.rust {
            t.response(resp)?;
        }
        let failed = resp.status.as_u16() >= 400;
        if let (true, Some(errors)) = (failed, &self.errors) {
            let input = match &resp.body {
                Some(b) if !b.is_empty() => match Value::parse(b) {
                    Ok(v) => v,
                    // Not JSON (a proxy's error page, say): the text becomes the detail.
                    Err(_) => Value::Obj(vec![
                        ("status".into(), Value::int(i64::from(resp.status.as_u16()))),
                        (
                            "detail".into(),
                            Value::Str(
                                String::from_utf8_lossy(&b[..b.len().min(1024)])
                                    .into_owned()
                                    .into(),
                            ),
                        ),
                    ]),
                },
                _ => Value::Obj(vec![(
                    "status".into(),
                    Value::int(i64::from(resp.status.as_u16())),
                )]),
            };
            let out = match &errors.envelope {
                Envelope::Template(t) => fill(t, &input),
                Envelope::Jq(jq) => jq.run(&input).map_err(|why| Failure {
                    rule: errors.label.clone(),
                    path: "$".into(),
                    reason: why,
                    client: false,
                })?,
            };
            resp.body = Some(Bytes::from(out.to_json()));
            resp.headers
                .insert(CONTENT_TYPE, errors.content_type.clone());
        } else if !failed {
            let rewrite_links = self.links_body && !links.upstreams.is_empty();
            if let Some(body) = &mut resp.body {
                if !body.is_empty() && (!self.resp_body.is_empty() || rewrite_links) {
                    let parsed = Value::parse(body);
                    let mut v = match parsed {
                        Ok(v) => v,
                        Err(e) if !self.resp_body.is_empty() => {
                            return Err(Failure {
                                rule: self.resp_body[0].label.clone(),
                                path: "$".into(),
                                reason: format!("the service's answer is not JSON: {e}"),
                                client: false,
                            })
                        }
                        // Only links to rewrite, and not JSON: leave it alone.
                        Err(_) => return self.response_head(resp, links),
                    };
                    for rule in &self.resp_body {
                        rule.apply(&mut v).map_err(|e| Failure {
                            rule: rule.label.clone(),
                            path: e.path,
                            reason: e.reason,
                            client: false,
                        })?;
                    }
                    if rewrite_links {
                        self.rewrite_body_links(&mut v, links);
                    }
                    *body = Bytes::from(v.to_json_sized(body.len() + body.len() / 8));
                }
            }
        }
        self.response_head(resp, links)
    }

    fn response_head(&self, resp: &mut Response, links: &Links<'_>) -> Result<(), Failure> {
        if let Some(to) = self.status.get(&resp.status.as_u16()) {
            resp.status = *to;
        }
        self.resp_headers.apply(&mut resp.headers, &Vec::new());
        if let Some(v) = &self.version {
            match &v.style {
                VersionStyle::MediaType(vendor) => {
                    swap_header(&mut resp.headers, &CONTENT_TYPE, |s| {
                        v.swap_media(s, vendor, &v.to, &v.from)
                    });
                }
                VersionStyle::Header(name) => {
                    if resp
                        .headers
                        .get(name)
                        .is_some_and(|h| h.as_bytes() == v.to.as_bytes())
                    {
                        if let Ok(val) = HeaderValue::from_str(&v.from) {
                            resp.headers.insert(name.clone(), val);
                        }
                    }
                }
                VersionStyle::Prefix => {}
            }
        }
        if self.links_headers {
            for name in [LOCATION, CONTENT_LOCATION] {
                swap_header(&mut resp.headers, &name, |s| {
                    self.rewrite_url(s, links, true)
                });
            }
            swap_header(&mut resp.headers, &LINK, |s| {
                self.rewrite_link_header(s, links)
            });
        }
        Ok(())
    }

    /// The legacy path for a path of the new service (the path rules backwards, then the
    /// version prefix).
    fn legacy_path(&self, path: &str) -> Option<String> {
        for rule in &self.paths {
            if let Some(c) = rule.to.matches(path) {
                return Some(rule.from.render(&c));
            }
        }
        if let Some(Version {
            style: VersionStyle::Prefix,
            from,
            to,
        }) = &self.version
        {
            let prefix = format!("/{to}");
            if let Some(rest) = path.strip_prefix(&prefix) {
                if rest.is_empty() || rest.starts_with('/') {
                    return Some(format!("/{from}{rest}"));
                }
            }
        }
        None
    }

    /// A URL of the new service as the client must see it; None when it is not one. The new
    /// service's own origins become the public one; a URL it built on the public origin (from
    /// the forwarded `Host`) keeps it; either way the path goes back to legacy's shape.
    fn rewrite_url(&self, url: &str, links: &Links<'_>, relative_too: bool) -> Option<String> {
        let on = |base: &str| {
            url.strip_prefix(base)
                .is_some_and(|r| r.is_empty() || r.starts_with(['/', '?', '#']))
        };
        let public = links.public.filter(|p| !p.is_empty());
        let (origin, rest, as_is) = match links.upstreams.iter().find(|u| on(u)) {
            Some(u) => (public.unwrap_or(""), &url[u.len()..], false),
            None => match public.filter(|p| on(p)) {
                Some(p) => (p, &url[p.len()..], true),
                None if relative_too && url.starts_with('/') && !url.starts_with("//") => {
                    ("", url, true)
                }
                None => return None,
            },
        };
        let split = rest.find(['?', '#']).unwrap_or(rest.len());
        let (path, suffix) = rest.split_at(split);
        let path = if path.is_empty() { "/" } else { path };
        let mapped = self.legacy_path(path);
        // Already on the client's origin and in legacy's shape: nothing to change.
        if as_is && mapped.is_none() {
            return None;
        }
        Some(format!(
            "{origin}{}{suffix}",
            mapped.as_deref().unwrap_or(path)
        ))
    }

    fn rewrite_link_header(&self, value: &str, links: &Links<'_>) -> Option<String> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        let mut changed = false;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>') else {
                break;
            };
            let url = &rest[open + 1..open + close];
            out.push_str(&rest[..=open]);
            match self.rewrite_url(url, links, true) {
                Some(new) => {
                    out.push_str(&new);
                    changed = true;
                }
                None => out.push_str(url),
            }
            out.push('>');
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        changed.then_some(out)
    }

    fn rewrite_body_links(&self, v: &mut Value, links: &Links<'_>) {
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                Value::Str(s) => {
                    if let Some(new) = self.rewrite_url(s, links, false) {
                        *s = new.into();
                    }
                }
                Value::Arr(items) => stack.extend(items.iter_mut()),
                Value::Obj(fields) => stack.extend(fields.iter_mut().map(|(_, v)| v)),
                _ => {}
            }
        }
    }

    /// The composition that answers `path`, if one does.
    pub fn compose(&self, path: &str) -> Option<Composition> {
        self.compose.iter().enumerate().find_map(|(index, c)| {
            let caps = c.path.matches(path)?;
            Some(Composition {
                parts: c
                    .parts
                    .iter()
                    .map(|(name, side, pat, timeout)| Part {
                        name: name.clone(),
                        side: *side,
                        path: pat.render(&caps),
                        timeout: *timeout,
                    })
                    .collect(),
                on_failure: c.on_failure,
                index,
            })
        })
    }

    /// Assembles the legacy answer from the parts' answers (None for an omitted part).
    pub fn assemble(
        &self,
        composition: &Composition,
        answers: Vec<(String, Option<Value>)>,
    ) -> Result<Bytes, Failure> {
        let Some(rule) = self.compose.get(composition.index) else {
            return Err(Failure {
                rule: "compose".into(),
                path: "$".into(),
                reason: "the composition changed while the request was in flight".into(),
                client: false,
            });
        };
        let input = Value::Obj(
            answers
                .into_iter()
                .map(|(k, v)| (k.into(), v.unwrap_or(Value::Null)))
                .collect(),
        );
        let out = match &rule.assemble {
            Envelope::Template(t) => fill(t, &input),
            Envelope::Jq(jq) => jq.run(&input).map_err(|why| Failure {
                rule: rule.label.clone(),
                path: "$".into(),
                reason: why,
                client: false,
            })?,
        };
        Ok(Bytes::from(out.to_json()))
    }

    /// Whether the translator only touches heads (no body rules of any kind).
    pub fn head_only(&self) -> bool {
        !self.needs_request_body()
            && self.resp_body.is_empty()
            && self.errors.is_none()
            && !self.links_body
    }

    /// Whether it changes nothing at all in request heads.
    pub fn request_head_untouched(&self) -> bool {
        self.paths.is_empty() && self.version.is_none() && self.req_headers.is_empty()
    }
}

fn swap_header(h: &mut HeaderMap, name: &HeaderName, f: impl Fn(&str) -> Option<String>) {
    let Some(v) = h.get(name).and_then(|v| v.to_str().ok()) else {
        return;
    };
    if let Some(new) = f(v).and_then(|s| HeaderValue::from_str(&s).ok()) {
        h.insert(name.clone(), new);
    }
}

/// Decodes `application/x-www-form-urlencoded` text; None when it is not UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(h) => {
                    out.push(h);
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Translator for Compiled {
    fn request(&self, req: &mut Request) -> Result<(), Failure> {
        Compiled::request(self, req)
    }

    fn response(&self, resp: &mut Response) -> Result<(), Failure> {
        Compiled::response(self, resp, &Links::default())
    }
}
