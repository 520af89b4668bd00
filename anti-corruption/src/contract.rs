//! Contract tests: a translator's example pairs, kept beside it in `NAME.tests.toml`, run and
//! reported with a readable difference.
//!
//! ```toml
//! upstream = "http://orders.internal:8080"   # for link rewriting (optional)
//! public = "http://shop.example"
//!
//! [[request]]
//! name = "a new order"
//! given = { method = "POST", path = "/api/orders", json = '{"customerId": 7}' }
//! expect = { method = "POST", path = "/v2/orders", json = '{"customer_id": 7}' }
//!
//! [[response]]
//! name = "the order, in cents"
//! given = { status = 201, json = '{"total_cents": 1999}' }
//! expect = { status = 200, json = '{"total": "19.99"}' }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;

use crate::json::Value;
use crate::spec::SpecError;
use crate::{Compiled, Links, Request, Response};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default)]
    public: Option<String>,
    #[serde(default)]
    request: Vec<Case<Msg>>,
    #[serde(default)]
    response: Vec<Case<Msg>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case<M> {
    name: String,
    given: M,
    expect: M,
}

/// One side of an example: what is given, or what is expected. Unset fields are not checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Msg {
    #[serde(default)]
    method: Option<String>,
    /// With the query: `/v2/orders?limit=20`.
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Header fields that must not be there.
    #[serde(default)]
    absent: Vec<String>,
    /// The body as JSON text (compared as JSON: key order does not matter).
    #[serde(default)]
    json: Option<String>,
    /// The body as plain text (compared byte for byte).
    #[serde(default)]
    body: Option<String>,
    /// Expect the translation to fail with a message containing this.
    #[serde(default)]
    error: Option<String>,
}

/// The outcome of one example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `request` or `response`.
    pub kind: &'static str,
    pub name: String,
    /// What differs; empty when the example passed.
    pub differences: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Runs every example in `fixtures` against `translator`. An error means the fixture file
/// itself is wrong (with its line).
pub fn run(translator: &Compiled, fixtures: &str) -> Result<Vec<Outcome>, SpecError> {
    let file: File = toml::from_str(fixtures).map_err(|e| SpecError {
        line: e
            .span()
            .map_or(0, |s| crate::spec::line_of(fixtures, s.start)),
        message: e.message().to_owned(),
    })?;
    let upstreams: Vec<String> = file.upstream.iter().cloned().collect();
    let links = Links {
        upstreams: &upstreams,
        public: file.public.as_deref(),
    };
    let mut out = Vec::new();
    for case in &file.request {
        let differences = match request_case(translator, case) {
            Ok(d) => d,
            Err(why) => vec![format!("the example is malformed: {why}")],
        };
        out.push(Outcome {
            kind: "request",
            name: case.name.clone(),
            differences,
        });
    }
    for case in &file.response {
        let differences = match response_case(translator, case, &links) {
            Ok(d) => d,
            Err(why) => vec![format!("the example is malformed: {why}")],
        };
        out.push(Outcome {
            kind: "response",
            name: case.name.clone(),
            differences,
        });
    }
    Ok(out)
}

fn headers(m: &Msg) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    for (k, v) in &m.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("bad header `{k}`"))?;
        let value = HeaderValue::from_str(v).map_err(|_| format!("bad value of `{k}`"))?;
        h.append(name, value);
    }
    Ok(h)
}

fn body(m: &Msg) -> Result<Bytes, String> {
    match (&m.json, &m.body) {
        (Some(j), None) => {
            Value::parse(j.as_bytes()).map_err(|e| format!("given json: {e}"))?;
            Ok(Bytes::from(j.clone()))
        }
        (None, Some(b)) => Ok(Bytes::from(b.clone())),
        (None, None) => Ok(Bytes::new()),
        (Some(_), Some(_)) => Err("give json or body, not both".into()),
    }
}

fn request_case(t: &Compiled, case: &Case<Msg>) -> Result<Vec<String>, String> {
    let g = &case.given;
    let target = g.path.clone().unwrap_or_else(|| "/".to_owned());
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.clone(), None),
    };
    let mut req = Request {
        method: Method::from_bytes(g.method.as_deref().unwrap_or("GET").as_bytes())
            .map_err(|_| "bad method".to_owned())?,
        path,
        query,
        headers: headers(g)?,
        body: Some(body(g)?),
    };
    let result = t.request(&mut req);
    let mut d = Vec::new();
    if let Some(err) = expected_error(&case.expect, result.as_ref().err(), &mut d) {
        return Ok(err);
    }
    let e = &case.expect;
    if let Some(m) = &e.method {
        same(&mut d, "method", m, req.method.as_str());
    }
    if let Some(p) = &e.path {
        let got = match &req.query {
            Some(q) => format!("{}?{q}", req.path),
            None => req.path.clone(),
        };
        same(&mut d, "path", p, &got);
    }
    compare_heads(&mut d, e, &req.headers);
    compare_bodies(&mut d, e, req.body.as_deref().unwrap_or_default());
    Ok(d)
}

fn response_case(t: &Compiled, case: &Case<Msg>, links: &Links<'_>) -> Result<Vec<String>, String> {
    let g = &case.given;
    let mut resp = Response {
        status: StatusCode::from_u16(g.status.unwrap_or(200)).map_err(|_| "bad status")?,
        headers: headers(g)?,
        body: Some(body(g)?),
    };
    let result = t.response(&mut resp, links);
    let mut d = Vec::new();
    if let Some(err) = expected_error(&case.expect, result.as_ref().err(), &mut d) {
        return Ok(err);
    }
    let e = &case.expect;
    if let Some(s) = e.status {
        same(&mut d, "status", &s.to_string(), resp.status.as_str());
    }
    compare_heads(&mut d, e, &resp.headers);
    compare_bodies(&mut d, e, resp.body.as_deref().unwrap_or_default());
    Ok(d)
}

/// Settles an example that expects (or got) a failure; None when both succeeded.
fn expected_error(
    e: &Msg,
    got: Option<&crate::Failure>,
    d: &mut Vec<String>,
) -> Option<Vec<String>> {
    match (&e.error, got) {
        (None, None) => None,
        (Some(want), Some(f)) => {
            let text = f.to_string();
            if !text.contains(want.as_str()) {
                d.push(format!(
                    "error: expected one containing {want:?}, got {text:?}"
                ));
            }
            Some(std::mem::take(d))
        }
        (Some(want), None) => Some(vec![format!(
            "error: expected a failure containing {want:?}, but it translated"
        )]),
        (None, Some(f)) => Some(vec![format!("error: the translation failed: {f}")]),
    }
}

fn same(d: &mut Vec<String>, what: &str, want: &str, got: &str) {
    if want != got {
        d.push(format!("{what}: expected {want:?}, got {got:?}"));
    }
}

fn compare_heads(d: &mut Vec<String>, e: &Msg, got: &HeaderMap) {
    for (k, v) in &e.headers {
        match got
            .get(k.as_str())
            .map(|h| String::from_utf8_lossy(h.as_bytes()))
        {
            Some(g) => same(d, &format!("header {k}"), v, &g),
            None => d.push(format!("header {k}: expected {v:?}, but it is missing")),
        }
    }
    for k in &e.absent {
        if let Some(g) = got.get(k.as_str()) {
            d.push(format!(
                "header {k}: expected none, got {:?}",
                String::from_utf8_lossy(g.as_bytes())
            ));
        }
    }
}

fn compare_bodies(d: &mut Vec<String>, e: &Msg, got: &[u8]) {
    if let Some(want) = &e.body {
        if want.as_bytes() != got {
            d.push(format!(
                "body: expected {want:?}, got {:?}",
                String::from_utf8_lossy(got)
            ));
        }
    }
    if let Some(want) = &e.json {
        let want = match Value::parse(want.as_bytes()) {
            Ok(v) => v,
            Err(err) => {
                d.push(format!("the expected json is not JSON: {err}"));
                return;
            }
        };
        match Value::parse(got) {
            Ok(got) => diff(&want, &got, "$".to_owned(), d),
            Err(err) => d.push(format!(
                "body: expected JSON, got {:?} ({err})",
                String::from_utf8_lossy(&got[..got.len().min(200)])
            )),
        }
    }
}

/// The differences between two JSON values, one line per path.
pub fn diff(want: &Value, got: &Value, at: String, d: &mut Vec<String>) {
    match (want, got) {
        (Value::Obj(w), Value::Obj(g)) => {
            for (k, wv) in w {
                let mut p = at.clone();
                crate::json::push_key(&mut p, k);
                match got.get(k) {
                    Some(gv) => diff(wv, gv, p, d),
                    None => d.push(format!("{p}: expected {}, but it is missing", wv.to_json())),
                }
            }
            for (k, gv) in g {
                if want.get(k).is_none() {
                    let mut p = at.clone();
                    crate::json::push_key(&mut p, k);
                    d.push(format!("{p}: unexpected {}", gv.to_json()));
                }
            }
        }
        (Value::Arr(w), Value::Arr(g)) => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                diff(wv, gv, format!("{at}[{i}]"), d);
            }
            if w.len() != g.len() {
                d.push(format!(
                    "{at}: expected {} elements, got {}",
                    w.len(),
                    g.len()
                ));
            }
        }
        (w, g) if w == g => {}
        (w, g) => d.push(format!(
            "{at}: expected {}, got {}",
            w.to_json(),
            g.to_json()
        )),
    }
}

/// A report of outcomes, as the CLI prints it; the second value is whether all passed.
pub fn report(name: &str, outcomes: &[Outcome]) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    for o in outcomes {
        if o.passed() {
            let _ = writeln!(out, "  ok    {name}: {} {:?}", o.kind, o.name);
        } else {
            ok = false;
            let _ = writeln!(out, "  FAIL  {name}: {} {:?}", o.kind, o.name);
            for line in &o.differences {
                let _ = writeln!(out, "          {line}");
            }
        }
    }
    (out, ok)
}
