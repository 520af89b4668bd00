//! Reconciliation: read a context's resources from both sides and say what differs or is
//! missing on one side — the check that the two systems of record still agree, after mirroring
//! both ways, a cutover or a rollback.
//!
//! The resources read are the paths given or, without any, the context's GET routes that name
//! no parameter (collections, such as `/orders`) and the GET exchanges recorded for its
//! contract tests; at most `sample` of them. Legacy is read directly; the new service through the context's
//! translator, its answer translated back, so that both are compared in legacy's contract
//! with the context's comparison rules, as the shadow comparison does. A path that names a
//! resource the two sides know under different ids (a route's `shadow.ids`, the id map) is read
//! from each side under that side's id, and the side's id in the answer's named fields is put
//! back as the client's before the comparison. The result is recorded in the audit log (actor
//! `reconcile`), where the context page shows it.

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use strangler_anti_corruption::{Compiled, Registry};
use strangler_catalog::pattern::{effective_path, PathPattern, Segment};
use strangler_catalog::{Catalog, ChangeMeta, Side};
use strangler_facade::ids::{map_uri, swap_in_body, IdMap, RouteIds, Swap};
use strangler_facade::shadow_diff::{compare_with, Answer, Rules};
use strangler_store::{CatalogStore, ShadowRollups};

/// What one resource looks like on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Both answer it alike (or neither has it).
    Same,
    /// Both have it, and these differences (signatures) were found.
    Differs { differences: Vec<String> },
    /// Legacy has it, the new service answers 404.
    MissingOnNew,
    /// The new service has it, legacy answers 404.
    MissingOnLegacy,
    /// A side could not be read.
    Unreadable { why: String },
}

/// One resource read from both sides.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub path: String,
    pub legacy_status: Option<u16>,
    pub new_status: Option<u16>,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The paths to read for `context`: the given ones, or else its parameterless GET routes, then
/// its recorded GET exchanges; distinct, at most `sample`.
pub async fn candidates(
    store: &(impl ShadowRollups + ?Sized),
    catalog: &Catalog,
    context: &str,
    given: &[String],
    sample: usize,
) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |p: String| {
        if out.len() < sample && !out.contains(&p) {
            out.push(p);
        }
    };
    for p in given {
        add(p.clone());
    }
    if !given.is_empty() {
        return Ok(out);
    }
    for route in catalog.routes_of(context) {
        let spec = &route.spec;
        let reads = spec.methods.is_empty() || spec.methods.iter().any(|m| m == "GET");
        let path = effective_path(spec);
        let literal = PathPattern::parse(&path).is_ok_and(|p| {
            p.segments()
                .iter()
                .all(|s| matches!(s, Segment::Literal(_)))
        });
        if reads && literal && spec.host.is_none() {
            add(path);
        }
    }
    let mut pairs = store.contract_pairs(context).await?;
    pairs.sort_by_key(|p| std::cmp::Reverse(p.at_ms));
    for p in pairs.into_iter().filter(|p| p.method == "GET") {
        add(p.uri);
    }
    Ok(out)
}

/// Reads each path from legacy (`legacy`, an origin) and from the context's new service, and
/// compares.
pub async fn reconcile(
    catalog: &Catalog,
    context: &str,
    legacy: &str,
    paths: &[String],
    registry: &Registry,
    ids: &IdMap,
) -> anyhow::Result<Vec<Finding>> {
    let ctx = catalog
        .contexts
        .get(context)
        .with_context(|| format!("no context `{context}` in the catalog"))?;
    let new = catalog
        .instances_of(&ctx.target)
        .into_iter()
        .next()
        .with_context(|| {
            format!(
                "service `{}` of context `{context}` has no instance to read from",
                ctx.target
            )
        })?;
    let new = new.trim_end_matches('/').to_owned();
    let legacy = legacy.trim_end_matches('/').to_owned();
    let compiled = match &ctx.translator {
        Some(text) => Some(
            Compiled::compile(text, registry)
                .map_err(|e| anyhow::anyhow!("the context's translator does not compile: {e}"))?,
        ),
        None => None,
    };
    let mut policy = ctx.shadow.clone();
    policy.ignore.extend(policy.redact.clone());
    // Status and body are compared; header fields are the shadow's business.
    policy.headers.clear();
    let rules = Rules::compile(&policy);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let upstreams = [new.clone()];
    // The routes that name a resource by a path parameter, with their patterns.
    let named: Vec<(PathPattern, RouteIds)> = catalog
        .routes_of(context)
        .filter_map(|r| {
            let rule = RouteIds::compile(&r.spec)?;
            let pattern = PathPattern::parse(&effective_path(&r.spec)).ok()?;
            rule.segment.map(|_| (pattern, rule))
        })
        .collect();
    let mut findings = Vec::with_capacity(paths.len());
    for path in paths {
        let rule = named
            .iter()
            .find(|(p, _)| matches(p, path.split('?').next().unwrap_or(path)))
            .map(|(_, r)| r);
        let side = |toward| as_known(ids, context, rule, toward, path);
        let old = match side(Side::Legacy) {
            Ok((p, swap)) => read(&client, &legacy, &p, None, &upstreams)
                .await
                .map(|a| put_back(a, rule, swap.as_ref())),
            Err(e) => Err(e),
        };
        let now = match side(Side::New) {
            Ok((p, swap)) => read(&client, &new, &p, compiled.as_ref(), &upstreams)
                .await
                .map(|a| put_back(a, rule, swap.as_ref())),
            Err(e) => Err(e),
        };
        let finding = match (old, now) {
            (Err(e), _) => Finding {
                path: path.clone(),
                legacy_status: None,
                new_status: None,
                verdict: Verdict::Unreadable {
                    why: format!("legacy: {e:#}"),
                },
            },
            (Ok(l), Err(e)) => Finding {
                path: path.clone(),
                legacy_status: Some(l.0),
                new_status: None,
                verdict: Verdict::Unreadable {
                    why: format!("new: {e:#}"),
                },
            },
            (Ok(l), Ok(n)) => {
                let verdict = match (l.0, n.0) {
                    (404, 404) => Verdict::Same,
                    (200..=299, 404) => Verdict::MissingOnNew,
                    (404, 200..=299) => Verdict::MissingOnLegacy,
                    _ => {
                        let headers: Vec<Option<String>> = Vec::new();
                        let a = Answer {
                            status: l.0,
                            content_type: l.1.as_deref(),
                            headers: &headers,
                            body: &l.2,
                        };
                        let b = Answer {
                            status: n.0,
                            content_type: n.1.as_deref(),
                            headers: &headers,
                            body: &n.2,
                        };
                        let differences: Vec<String> = compare_with(&a, &b, &rules)
                            .iter()
                            .map(ToString::to_string)
                            .collect();
                        if differences.is_empty() {
                            Verdict::Same
                        } else {
                            Verdict::Differs { differences }
                        }
                    }
                };
                Finding {
                    path: path.clone(),
                    legacy_status: Some(l.0),
                    new_status: Some(n.0),
                    verdict,
                }
            }
        };
        findings.push(finding);
    }
    Ok(findings)
}

/// Whether `path` (no query) fits `pattern`.
fn matches(pattern: &PathPattern, path: &str) -> bool {
    let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
    for seg in pattern.segments() {
        match seg {
            Segment::Wildcard(_) => return true,
            Segment::Literal(l) => {
                if parts.next() != Some(l.as_str()) {
                    return false;
                }
            }
            Segment::Param(_) => {
                if parts.next().is_none_or(str::is_empty) {
                    return false;
                }
            }
        }
    }
    parts.next().is_none()
}

/// `path` as `toward` knows the resource it names, with the id swapped (if any).
fn as_known(
    ids: &IdMap,
    context: &str,
    rule: Option<&RouteIds>,
    toward: Side,
    path: &str,
) -> anyhow::Result<(String, Option<Swap>)> {
    let Some(rule) = rule else {
        return Ok((path.to_owned(), None));
    };
    let uri: http::Uri = path
        .parse()
        .with_context(|| format!("`{path}` is not a path"))?;
    match map_uri(ids, context, rule, toward, &uri) {
        Ok(Some((uri, swap))) => Ok((
            uri.path_and_query().map_or(path, |p| p.as_str()).to_owned(),
            Some(swap),
        )),
        Ok(None) => Ok((path.to_owned(), None)),
        Err(_) => anyhow::bail!(
            "its id names two {} (one given by each side); rename one",
            rule.resource
        ),
    }
}

/// An answer with the side's id put back as the client's in the rule's fields.
fn put_back(
    answer: (u16, Option<String>, Bytes),
    rule: Option<&RouteIds>,
    swap: Option<&Swap>,
) -> (u16, Option<String>, Bytes) {
    let (Some(rule), Some(swap)) = (rule, swap) else {
        return answer;
    };
    match swap_in_body(&answer.2, &rule.fields, &swap.side, &swap.client) {
        Some(b) => (answer.0, answer.1, Bytes::from(b)),
        None => answer,
    }
}

/// Status, media type and body of a GET of `path` on `origin`, through `compiled` when given.
async fn read(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    origin: &str,
    path: &str,
    compiled: Option<&Compiled>,
    upstreams: &[String],
) -> anyhow::Result<(u16, Option<String>, Bytes)> {
    let (p, query) = match path.split_once('?') {
        Some((a, b)) => (a.to_owned(), Some(b.to_owned())),
        None => (path.to_owned(), None),
    };
    let req = strangler_anti_corruption::Request {
        method: http::Method::GET,
        path: p,
        query,
        headers: http::HeaderMap::new(),
        body: None,
    };
    let answer = crate::contract::through(client, origin, compiled, req, upstreams).await?;
    let content_type = answer
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((
        answer.status.as_u16(),
        content_type,
        answer.body.unwrap_or_default(),
    ))
}

/// Records a reconciliation's result in the audit log, for the context page.
pub async fn record(
    store: &(impl CatalogStore + ?Sized),
    context: &str,
    findings: &[Finding],
) -> anyhow::Result<()> {
    let count = |f: fn(&Verdict) -> bool| findings.iter().filter(|x| f(&x.verdict)).count();
    let summary = serde_json::json!({
        "checked": findings.len(),
        "same": count(|v| *v == Verdict::Same),
        "differ": count(|v| matches!(v, Verdict::Differs { .. })),
        "missing_on_new": count(|v| *v == Verdict::MissingOnNew),
        "missing_on_legacy": count(|v| *v == Verdict::MissingOnLegacy),
        "unreadable": count(|v| matches!(v, Verdict::Unreadable { .. })),
        "amiss": findings.iter().filter(|f| f.verdict != Verdict::Same).map(|f| &f.path).take(20).collect::<Vec<_>>(),
    });
    let meta = ChangeMeta {
        force: false,
        actor: "reconcile".into(),
        reason: format!("{} resources read from both sides", findings.len()),
    };
    store
        .record(
            &meta,
            "reconcile",
            &format!("context:{context}"),
            None,
            Some(summary),
        )
        .await?;
    Ok(())
}
