//! Traffic to tests: the matched exchanges the shadow comparison recorded for a context
//! (redacted; the latest distinct ones per route) become a contract test suite that runs
//! against the new service without the facade — so the legacy behaviour stays as regression
//! tests after legacy is gone.
//!
//! - `strangler tests export --context NAME` writes the suite as JSON: the pairs, and the
//!   context's translator and comparison rules, so it is self-contained.
//! - `strangler tests export --context NAME --format hurl` writes it as a Hurl file
//!   (<https://hurl.dev>): each request with its answer's status and one `jsonpath` assert per
//!   value (ignored and redacted paths left out). Hurl sends the requests as recorded, in the
//!   legacy contract: run it against the new service directly when the context has no
//!   translator, or against the facade when it has one.
//! - `strangler tests replay --context NAME --target URL` (or `--file SUITE.json`) sends each
//!   request to the target, through the context's translator when it has one, translates the
//!   answer back, and compares it with legacy's as the shadow comparison does; exit 1 when one
//!   differs.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strangler_anti_corruption::{Compiled, Links, Registry};
use strangler_catalog::json_path::{JsonPath, Step};
use strangler_catalog::ContractPair;
use strangler_catalog::ShadowPolicy;
use strangler_facade::shadow_diff::{compare_with, Answer, Rules};
use strangler_store::{CatalogStore, ShadowRollups};

/// A self-contained suite.
#[derive(Debug, Serialize, Deserialize)]
pub struct Suite {
    pub context: String,
    /// The context's translator (TOML spec text), applied on replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translator: Option<String>,
    /// How answers are compared (ignored paths, tolerances, redacted paths …).
    #[serde(default)]
    pub shadow: ShadowPolicy,
    pub pairs: Vec<ContractPair>,
}

/// The suite of `context` from the catalog.
/// Only safe requests (GET, HEAD, OPTIONS) unless `include_writes`: replaying a write changes
/// the service it runs against.
pub async fn suite(
    store: &(impl CatalogStore + ShadowRollups),
    context: &str,
    include_writes: bool,
) -> anyhow::Result<Suite> {
    let catalog = store.load().await?;
    let ctx = catalog.contexts.get(context).with_context(|| {
        format!("there is no context `{context}`; `strangler ctl contexts` lists them")
    })?;
    let pairs: Vec<ContractPair> = store
        .contract_pairs(context)
        .await?
        .into_iter()
        .filter(|p| include_writes || matches!(p.method.as_str(), "GET" | "HEAD" | "OPTIONS"))
        .collect();
    if pairs.is_empty() {
        anyhow::bail!(
            "no matched exchange is recorded for `{context}` yet{}: they are recorded while it is shadowed (or reverse-shadowed) and its answers match",
            if include_writes { "" } else { " (reads only; --include-writes adds writes)" }
        );
    }
    Ok(Suite {
        context: context.to_owned(),
        translator: ctx.translator.clone(),
        shadow: ctx.shadow.clone(),
        pairs,
    })
}

fn hurl_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One `jsonpath` assert per value of `v`, except under `skip`.
fn asserts(v: &Value, path: &str, at: &mut Vec<Step>, skip: &[JsonPath], out: &mut Vec<String>) {
    if skip.iter().any(|rule| rule.covers(at)) {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let simple = !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !k.starts_with(|c: char| c.is_ascii_digit());
                let p = if simple {
                    format!("{path}.{k}")
                } else {
                    format!("{path}['{}']", k.replace('\\', "\\\\").replace('\'', "\\'"))
                };
                at.push(Step::Key(k.clone()));
                asserts(child, &p, at, skip, out);
                at.pop();
            }
        }
        Value::Array(items) => {
            out.push(format!(
                "jsonpath {} count == {}",
                hurl_string(path),
                items.len()
            ));
            for (i, child) in items.iter().enumerate() {
                at.push(Step::Each);
                asserts(child, &format!("{path}[{i}]"), at, skip, out);
                at.pop();
            }
        }
        Value::String(s) => out.push(format!(
            "jsonpath {} == {}",
            hurl_string(path),
            hurl_string(s)
        )),
        Value::Number(n) => out.push(format!("jsonpath {} == {n}", hurl_string(path))),
        Value::Bool(b) => out.push(format!("jsonpath {} == {b}", hurl_string(path))),
        Value::Null => out.push(format!("jsonpath {} == null", hurl_string(path))),
    }
}

/// The suite as a Hurl file; `{{base}}` is the origin to test (`hurl --variable base=…`).
pub fn hurl(suite: &Suite) -> String {
    let skip: Vec<JsonPath> = suite
        .shadow
        .ignore
        .iter()
        .chain(&suite.shadow.redact)
        .filter_map(|r| JsonPath::parse(r).ok())
        .collect();
    let mut out = format!(
        "# Contract tests for `{}`, from exchanges Strangler recorded in shadow where the new\n\
         # service answered like legacy. Requests are in the legacy contract{}.\n\
         # Run: hurl --test --variable base=http://HOST:PORT THIS_FILE\n",
        suite.context,
        if suite.translator.is_some() {
            " (the context has a translator: run against the facade, or use `strangler tests replay`)"
        } else {
            ""
        }
    );
    for p in &suite.pairs {
        out.push_str(&format!(
            "\n# route {}\n{} {{{{base}}}}{}\n",
            p.route, p.method, p.uri
        ));
        if !p.request_body.is_empty() {
            if let Some(t) = &p.request_type {
                out.push_str(&format!("Content-Type: {t}\n"));
            }
            out.push_str("```\n");
            out.push_str(&p.request_body);
            out.push_str("\n```\n");
        }
        out.push_str(&format!("HTTP {}\n", p.status));
        let json = p
            .response_type
            .as_deref()
            .is_some_and(|t| t.contains("json"));
        let mut lines = Vec::new();
        match serde_json::from_str::<Value>(&p.response_body) {
            Ok(v) if json => asserts(&v, "$", &mut Vec::new(), &skip, &mut lines),
            _ if !p.response_body.is_empty() => {
                lines.push(format!("body == {}", hurl_string(&p.response_body)));
            }
            _ => {}
        }
        if !lines.is_empty() {
            out.push_str("[Asserts]\n");
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
    }
    out
}

/// Replays the suite against `target` (an origin); returns how many passed and what failed.
pub async fn replay(
    suite: &Suite,
    target: &str,
    registry: &Registry,
) -> anyhow::Result<(usize, Vec<String>)> {
    let target = target.trim_end_matches('/').to_owned();
    let compiled = match &suite.translator {
        Some(text) => Some(
            Compiled::compile(text, registry)
                .map_err(|e| anyhow::anyhow!("the context's translator does not compile: {e}"))?,
        ),
        None => None,
    };
    let mut policy = suite.shadow.clone();
    // Redacted values were blanked in the recording: they cannot be compared.
    policy.ignore.extend(policy.redact.clone());
    policy.headers.clear();
    let rules = Rules::compile(&policy);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let upstreams = [target.clone()];
    let (mut passed, mut failed) = (0, Vec::new());
    for p in &suite.pairs {
        let name = format!("{} {}", p.method, p.uri);
        let outcome: anyhow::Result<Vec<String>> = async {
            let method: http::Method = p.method.parse().context("a recorded method")?;
            let (path, query) = match p.uri.split_once('?') {
                Some((a, b)) => (a.to_owned(), Some(b.to_owned())),
                None => (p.uri.clone(), None),
            };
            let mut headers = http::HeaderMap::new();
            if let Some(t) = &p.request_type {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    t.parse().context("a content type")?,
                );
            }
            let req = strangler_anti_corruption::Request {
                method,
                path,
                query,
                headers,
                body: Some(Bytes::from(p.request_body.clone())),
            };
            let answer = through(&client, &target, compiled.as_ref(), req, &upstreams).await?;
            let new_type = answer
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let new_body = answer.body.unwrap_or_default();
            let legacy = Answer {
                status: u16::try_from(p.status).unwrap_or(0),
                content_type: p.response_type.as_deref(),
                headers: &[],
                body: p.response_body.as_bytes(),
            };
            let new = Answer {
                status: answer.status.as_u16(),
                content_type: new_type.as_deref(),
                headers: &[],
                body: &new_body,
            };
            Ok(compare_with(&legacy, &new, &rules)
                .iter()
                .map(ToString::to_string)
                .collect())
        }
        .await;
        match outcome {
            Ok(diffs) if diffs.is_empty() => {
                passed += 1;
                println!("  ok    {name}");
            }
            Ok(diffs) => {
                println!("  FAIL  {name}: {}", diffs.join(", "));
                failed.push(format!("{name}: {}", diffs.join(", ")));
            }
            Err(e) => {
                println!("  FAIL  {name}: {e:#}");
                failed.push(format!("{name}: {e:#}"));
            }
        }
    }
    Ok((passed, failed))
}

/// Reads a suite written by `strangler tests export`.
pub fn read(path: &Path) -> anyhow::Result<Suite> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the suite {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a suite written by `strangler tests export`",
            path.display()
        )
    })
}

/// Sends `req` (in legacy's contract) to `origin` through `compiled` when given, and returns the
/// answer translated back to legacy's contract: how a service is read as legacy's clients see
/// it, outside the facade (contract replay, reconciliation).
pub(crate) async fn through(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    origin: &str,
    compiled: Option<&Compiled>,
    mut req: strangler_anti_corruption::Request,
    upstreams: &[String],
) -> anyhow::Result<strangler_anti_corruption::Response> {
    if let Some(c) = compiled {
        c.request(&mut req)
            .map_err(|e| anyhow::anyhow!("translating the request: {e}"))?;
    }
    let uri = match &req.query {
        Some(q) => format!("{origin}{}?{q}", req.path),
        None => format!("{origin}{}", req.path),
    };
    let mut builder = http::Request::builder()
        .method(req.method.clone())
        .uri(&uri);
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    let outgoing = builder.body(Full::new(req.body.clone().unwrap_or_default()))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(outgoing))
        .await
        .context("timed out")?
        .with_context(|| format!("cannot reach {origin}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut answer = strangler_anti_corruption::Response {
        status: parts.status,
        headers: parts.headers,
        body: Some(body),
    };
    if let Some(c) = compiled {
        let links = Links {
            upstreams,
            public: None,
        };
        c.response(&mut answer, &links)
            .map_err(|e| anyhow::anyhow!("translating the answer: {e}"))?;
    }
    Ok(answer)
}

#[cfg(test)]
mod tests;
