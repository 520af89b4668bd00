//! Composition: a route answered by calling several services at once — legacy and the new
//! one — and assembling one legacy answer from their named answers with the context's
//! translator. The calls run concurrently, each with its own timeout; a failed part fails the
//! request, is omitted (null), or hands the whole request to legacy, as the rule says.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use strangler_anti_corruption::json::Value;
use strangler_anti_corruption::{Composition, OnFailure, PartSide};
use strangler_services::cluster::Cluster;
use strangler_services::Upstream;

use crate::body::{RequestBody, ResponseBody};
use crate::problem::Problem;
use crate::telemetry::{Answer, Telemetry};
use crate::translate::{collect, Translation, MAX_TRANSLATED_BODY};

/// A part's time limit when its rule gives none.
const DEFAULT_PART_TIMEOUT: Duration = Duration::from_secs(10);

/// What a composition produced.
pub enum Composed {
    Answer(Box<Response<ResponseBody>>),
    /// A part failed and the rule says legacy answers the whole request.
    ToLegacy,
}

/// Calls the parts and assembles the answer. `head` is the client's request head, already
/// prepared for upstreams (forwarding fields, hop-by-hop removed).
pub async fn answer(
    t: &Translation,
    composition: Composition,
    head: &http::request::Parts,
    legacy: &Upstream<RequestBody>,
    new: &Cluster<RequestBody>,
    telemetry: &Telemetry,
    work: &crate::shadow::Work,
) -> Result<Composed, Problem> {
    // Parts for the new service get what the live request would: the identity token, not
    // the session cookie (resolved once for all of them).
    let mut new_headers = head.headers.clone();
    if let (Some(spec), Some(bridge)) = (t.compiled.identity(), &work.identity) {
        if composition.parts.iter().any(|p| p.side == PartSide::New) {
            bridge
                .apply(spec, legacy, &mut new_headers, &t.context, new.name())
                .await?;
        }
    }
    let calls = composition.parts.iter().map(|part| {
        let mut req = Request::new(RequestBody::full(Bytes::new()));
        *req.method_mut() = Method::GET;
        *req.headers_mut() = match part.side {
            PartSide::New => new_headers.clone(),
            PartSide::Legacy => head.headers.clone(),
        };
        req.headers_mut().remove(CONTENT_LENGTH);
        let uri = part.path.parse::<http::Uri>();
        let timeout = part.timeout.unwrap_or(DEFAULT_PART_TIMEOUT);
        async move {
            let result = async {
                *req.uri_mut() =
                    uri.map_err(|_| format!("`{}` is not a request target", part.path))?;
                let call = async {
                    let resp = match part.side {
                        PartSide::Legacy => legacy
                            .send(req)
                            .await
                            .map(|r| r.map(ResponseBody::upstream))
                            .map_err(|e| {
                                tracing::debug!(error = %e, "a composed part failed");
                                format!("it {}", crate::problem::public_failure(e.kind()))
                            })?,
                        PartSide::New => new
                            .send(req)
                            .await
                            .map(|r| r.map(ResponseBody::cluster))
                            .map_err(|e| e.kind.as_str().to_owned())?,
                    };
                    let status = resp.status();
                    let (body, _held) =
                        collect(resp.into_body(), MAX_TRANSLATED_BODY, &work.buffers)
                            .await
                            .map_err(|e| match e {
                                crate::translate::Collect::Budget => {
                                    "the facade's buffer budget has no room for its answer now"
                                        .to_owned()
                                }
                                _ => "its answer broke off or is over 16 MiB".to_owned(),
                            })?;
                    if !status.is_success() {
                        return Err(format!("it answered {status}"));
                    }
                    let _parsing = work
                        .buffers
                        .hold(body.len() * strangler_anti_corruption::json::PARSED_BYTES_PER_BYTE)
                        .ok_or("the facade's buffer budget has no room to parse its answer now")?;
                    Value::parse(&body).map_err(|e| format!("its answer is not JSON: {e}"))
                };
                tokio::time::timeout(timeout, call)
                    .await
                    .map_err(|_| format!("no answer within {timeout:?}"))?
            }
            .await;
            (part.name.clone(), result)
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let mut answers = Vec::with_capacity(results.len());
    for (name, result) in results {
        match result {
            Ok(v) => answers.push((name, Some(v))),
            Err(why) => {
                tracing::debug!(context = %t.context, part = %name, %why, "composed part failed");
                match composition.on_failure {
                    OnFailure::Omit => answers.push((name, None)),
                    OnFailure::Legacy => return Ok(Composed::ToLegacy),
                    OnFailure::Fail => {
                        return Err(Problem::new(
                            Answer::UpstreamBroken,
                            format!(
                                "context `{}`: part `{name}` of the composed answer failed: {why}",
                                t.context
                            ),
                        ))
                    }
                }
            }
        }
    }
    let body = if t.compiled.unbounded() {
        let compiled = Arc::clone(&t.compiled);
        work.cpu
            .run(move || compiled.assemble(&composition, answers))
            .await
            .map_err(|why| {
                crate::translate::Failed::Overrun(why).problem(telemetry, &t.context, "response")
            })?
    } else {
        t.compiled.assemble(&composition, answers)
    }
    .map_err(|f| crate::translate::failed(telemetry, &t.context, "response", &f))?;
    let mut resp = Response::new(if head.method == Method::HEAD {
        ResponseBody::empty()
    } else {
        ResponseBody::full(body.clone())
    });
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    Ok(Composed::Answer(Box::new(resp)))
}
