//! The id map on a request's way: the path (and a JSON write's named fields) carry the id the
//! side the request goes to knows the resource by, the answer's fields the client's, and a
//! fallback to legacy is mapped again for legacy (see [`super`] for the map itself).

use http::header::{HeaderValue, CONTENT_LENGTH};
use http::Request;

use super::{Mapped, RouteIds};
use crate::body::{RequestBody, ResponseBody};
use crate::decision::{is_write, Routing};
use crate::problem::{over_budget, Problem};
use crate::telemetry::Answer;
use crate::translate::{collect, Collect, MAX_TRANSLATED_BODY};

impl crate::facade::Facade {
    /// The answer with the side's id put back as the client's in the route's named fields,
    /// when the request's id was mapped and the answer is JSON.
    pub(crate) async fn ids_in_answer(
        &self,
        routing: &Routing,
        parts: &mut http::response::Parts,
        body: ResponseBody,
        head_request: bool,
    ) -> Result<ResponseBody, Problem> {
        let (Some(swap), Some(rule)) = (&routing.swap, &routing.ids) else {
            return Ok(body);
        };
        if rule.fields.is_empty() || head_request || !json_typed(&parts.headers) {
            return Ok(body);
        }
        let context = routing.context.clone().unwrap_or_else(|| "-".into());
        let swapped = self
            .swap_body(&context, body, rule, &swap.side, &swap.client)
            .await?;
        if let Some(b) = &swapped.0 {
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(b.len()));
        }
        Ok(swapped.into_response())
    }

    /// Puts the id the request's path names as the side it goes to knows the resource (and in
    /// the body fields the route names, for a JSON write); keeps the client's target for a
    /// fallback.
    pub(crate) async fn map_ids(
        &self,
        rule: &RouteIds,
        routing: &mut Routing,
        mut req: Request<RequestBody>,
    ) -> Result<Request<RequestBody>, Problem> {
        let Some(context) = routing.context.clone() else {
            return Ok(req);
        };
        match super::map_uri(&self.shared.ids, &context, rule, routing.side, req.uri()) {
            Ok(None) => Ok(req),
            Ok(Some((uri, swap))) => {
                routing.client_uri = Some(Box::new(std::mem::replace(req.uri_mut(), uri)));
                let named =
                    !rule.fields.is_empty() && is_write(req.method()) && json_typed(req.headers());
                if named {
                    let (mut parts, body) = req.into_parts();
                    let body = self
                        .swap_body(&context, body, rule, &swap.client, &swap.side)
                        .await?;
                    if let Some(b) = &body.0 {
                        parts
                            .headers
                            .insert(CONTENT_LENGTH, HeaderValue::from(b.len()));
                    }
                    req = Request::from_parts(parts, body.into_request());
                }
                routing.swap = Some(swap);
                Ok(req)
            }
            Err(refused) => Err(id_problem(&context, rule, refused)),
        }
    }

    /// A body read whole, with `from` put as `to` in the rule's fields (`.0` is `None` when
    /// nothing changed; the bytes read are then handed on as they were).
    async fn swap_body<B>(
        &self,
        context: &str,
        body: B,
        rule: &RouteIds,
        from: &str,
        to: &str,
    ) -> Result<Swapped, Problem>
    where
        B: http_body::Body<Data = bytes::Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let s = &*self.shared;
        let too_large = || {
            Problem::new(
                Answer::BodyTooLarge,
                format!(
                    "context `{context}` names {} ids in bodies of at most {MAX_TRANSLATED_BODY} bytes",
                    rule.resource
                ),
            )
        };
        let (bytes, held) = match collect(body, MAX_TRANSLATED_BODY, &s.buffers).await {
            Ok(b) => b,
            Err(Collect::TooLarge) => return Err(too_large()),
            Err(Collect::Budget) => return Err(over_budget(context)),
            Err(Collect::Broken(e)) => {
                return Err(Problem::new(
                    Answer::UpstreamBroken,
                    format!("a body of context `{context}` broke off: {e}"),
                ))
            }
        };
        let _parsing = s
            .buffers
            .hold(bytes.len() * strangler_anti_corruption::json::PARSED_BYTES_PER_BYTE + 1024)
            .ok_or_else(|| over_budget(context))?;
        Ok(match super::swap_in_body(&bytes, &rule.fields, from, to) {
            Some(changed) => Swapped(Some(bytes::Bytes::from(changed)), None, held),
            None => Swapped(None, Some(bytes), held),
        })
    }
}

/// Why a request that names a resource was not sent.
pub(crate) fn id_problem(context: &str, rule: &RouteIds, refused: Mapped) -> Problem {
    match refused {
        Mapped::Full => Problem::new(
            Answer::ServiceUnavailable,
            format!(
                "context `{context}` maps {} ids between its two sides and this facade's id map                  is full; nothing was sent, try again once an operator raises                  `[shadow] id_map_pairs`",
                rule.resource
            ),
        ),
        _ => Problem::new(
            Answer::AmbiguousId,
            format!(
                "in context `{context}` this {} id names two resources, one given by each side;                  nothing was sent, rather than risk answering with the other one",
                rule.resource
            ),
        ),
    }
}

/// A body read whole for the id map: changed, or as it was, with its bytes' hold.
struct Swapped(
    Option<bytes::Bytes>,
    Option<bytes::Bytes>,
    crate::buffers::Held,
);

impl Swapped {
    fn bytes(self) -> (bytes::Bytes, crate::buffers::Held) {
        match self {
            Swapped(Some(b), _, held) | Swapped(None, Some(b), held) => (b, held),
            Swapped(None, None, held) => (bytes::Bytes::new(), held),
        }
    }

    fn into_request(self) -> RequestBody {
        let (b, held) = self.bytes();
        RequestBody::full(b).holding(Some(held))
    }

    fn into_response(self) -> ResponseBody {
        let (b, held) = self.bytes();
        ResponseBody::full(b).holding(Some(held))
    }
}

/// Whether a message says its body is JSON.
fn json_typed(headers: &http::HeaderMap) -> bool {
    crate::shadow::diff::is_json(
        headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )
}
