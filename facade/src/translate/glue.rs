//! A context's translation applied to one request's way: which composition answers it, the
//! request translated for the new side (kept untranslated too, for a fallback to legacy), and
//! the new side's answer translated back into the legacy contract.

use http::HeaderValue;

use crate::body::{RequestBody, RequestBodyError, ResponseBody};
use crate::decision::{Routing, Target};
use crate::problem::over_budget;
use crate::problem::Problem;
use crate::telemetry::Answer;
use http::header::{CONTENT_LOCATION, LOCATION};
use http::{Method, Request, Response};
use strangler_services::cluster::{Cluster, Replay};

use super::*;

impl crate::facade::Facade {
    /// The composition that answers this request, if its context's translator has one for the
    /// path and the new side answers.
    pub(crate) fn composition(
        &self,
        routing: &Routing,
        parts: &http::request::Parts,
    ) -> Option<(
        Translation,
        Cluster<RequestBody>,
        strangler_anti_corruption::Composition,
    )> {
        let (Target::New { cluster, .. }, Some(t)) = (&routing.target, &routing.translation) else {
            return None;
        };
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            return None;
        }
        let composition = t.compiled.compose(parts.uri.path())?;
        Some((t.clone(), cluster.clone(), composition))
    }

    /// Translates a request going to the new side (head always; the body when the translator's
    /// rules need it, buffered up to a cap). Keeps the client's request for a fallback.
    pub(crate) async fn translate_outgoing(
        &self,
        routing: &mut Routing,
        req: Request<RequestBody>,
    ) -> Result<Request<RequestBody>, Problem> {
        let s = &*self.shared;
        let (
            Target::New {
                fallback, cluster, ..
            },
            Some(t),
        ) = (&routing.target, &routing.translation)
        else {
            return Ok(req);
        };
        let (mut parts, body) = req.into_parts();
        let (body, buffered) = if t.compiled.needs_request_body() {
            match collect(body, MAX_TRANSLATED_BODY, &s.buffers).await {
                Ok(b) => (None, Some(b)),
                Err(Collect::TooLarge) => {
                    return Err(Problem::new(
                        Answer::BodyTooLarge,
                        format!(
                            "context `{}` translates request bodies of at most {MAX_TRANSLATED_BODY} bytes",
                            t.context
                        ),
                    ))
                }
                Err(Collect::Budget) => return Err(over_budget(&t.context)),
                Err(Collect::Broken(e)) => {
                    let answer = match e {
                        RequestBodyError::TooLarge { .. } => Answer::BodyTooLarge,
                        RequestBodyError::Idle(_) => Answer::ClientTimeout,
                        RequestBodyError::Client(_) => Answer::BadRequest,
                    };
                    return Err(Problem::new(answer, e.to_string()));
                }
            }
        } else {
            (Some(body), None)
        };
        let (buffered, held) = match buffered {
            Some((b, held)) => (Some(b), Some(held)),
            None => (None, None),
        };
        if *fallback {
            let head = Replay {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                version: parts.version,
                headers: parts.headers.clone(),
            };
            routing.untranslated = Some(Box::new((head, buffered.clone())));
        }
        // After the copy for a fallback: legacy gets the session cookie, the service the token.
        if let (Some(spec), Some(bridge)) = (t.compiled.identity(), &s.identity) {
            bridge
                .apply(
                    spec,
                    &s.legacy,
                    &mut parts.headers,
                    &t.context,
                    cluster.name(),
                )
                .await?;
        }
        let (parts, translated) = request_off(&s.cpu, &s.buffers, &t.compiled, parts, buffered)
            .await
            .map_err(|f| f.problem(&s.telemetry, &t.context, "request"))?;
        let body = match (translated, body) {
            (Some(b), _) => RequestBody::full(b).holding(held),
            (None, Some(body)) => body,
            (None, None) => RequestBody::full(bytes::Bytes::new()),
        };
        Ok(Request::from_parts(parts, body))
    }

    /// Translates the new side's answer back into the legacy contract (nothing when legacy
    /// answered, or the context has no translator).
    pub(crate) async fn translate_incoming(
        &self,
        routing: &Routing,
        parts: &mut http::response::Parts,
        body: ResponseBody,
        client_host: Option<&HeaderValue>,
        head_request: bool,
    ) -> Result<ResponseBody, Problem> {
        let s = &*self.shared;
        let (Target::New { .. }, Some(t), None) =
            (&routing.target, &routing.translation, &routing.fell_back)
        else {
            return Ok(body);
        };
        let (body, buffered) = if !head_request && t.compiled.needs_response_body(parts.status) {
            match collect(body, MAX_TRANSLATED_BODY, &s.buffers).await {
                Ok(b) => (None, Some(b)),
                Err(Collect::TooLarge) => {
                    s.telemetry
                        .record_translation_failure(&t.context, "response");
                    return Err(Problem::new(
                        Answer::TranslationFailed,
                        format!(
                            "context `{}`'s answer is over {MAX_TRANSLATED_BODY} bytes, the most its translator buffers",
                            t.context
                        ),
                    ));
                }
                Err(Collect::Budget) => return Err(over_budget(&t.context)),
                Err(Collect::Broken(e)) => {
                    return Err(Problem::new(
                        Answer::UpstreamBroken,
                        format!("context `{}`'s answer broke off: {e}", t.context),
                    ))
                }
            }
        } else {
            (Some(body), None)
        };
        let (buffered, held) = match buffered {
            Some((b, held)) => (Some(b), Some(held)),
            None => (None, None),
        };
        // The public origin, only when there may be a link to rewrite.
        let links_possible = buffered.is_some()
            || parts.headers.contains_key(LOCATION)
            || parts.headers.contains_key(CONTENT_LOCATION)
            || parts.headers.contains_key(http::header::LINK);
        let public = client_host
            .filter(|_| links_possible)
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("http://{h}"));
        let owned = std::mem::replace(parts, Response::new(()).into_parts().0);
        let (translated_parts, translated) = response_off(
            &s.cpu,
            &s.buffers,
            &t.compiled,
            owned,
            buffered,
            &t.upstreams,
            public,
        )
        .await
        .map_err(|f| f.problem(&s.telemetry, &t.context, "response"))?;
        *parts = translated_parts;
        Ok(match (translated, body) {
            (Some(b), _) => ResponseBody::full(b).holding(held),
            (None, Some(body)) => body,
            (None, None) => ResponseBody::empty(),
        })
    }
}
