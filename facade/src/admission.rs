//! What a request must be before anything is sent upstream: its framing, method, head size and
//! transfer coding checked, its path in normal form, and the facade's own header fields not
//! forged.

use http::header::{HeaderName, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Method, Request, Version};

use crate::body::ClientBody;
use crate::facade::Facade;
use crate::headers::{Present, INTERNAL_PREFIX};
use crate::problem::Problem;
use crate::telemetry::Answer;

/// A refusal before anything was sent upstream, or a failed upstream call.
pub(crate) type Refusal = Problem;

impl Facade {
    /// Checks a request before anything is sent upstream. Returns which of the fields the
    /// request path looks at it carries (among them `X-Strangler-*` ones, which must not pass),
    /// noted in the pass that sums the head's size.
    pub(crate) fn check(&self, req: &Request<ClientBody>) -> Result<Present, Refusal> {
        let limits = &self.shared.config.limits;
        if req.method() == Method::CONNECT {
            return Err(Problem::new(
                Answer::MethodNotAllowed,
                "CONNECT is not served: Strangler is a reverse proxy, not a forward proxy",
            ));
        }
        let mut head_bytes = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
        let mut present = Present::default();
        for (name, value) in req.headers() {
            head_bytes += name.as_str().len() + value.len() + 4;
            present.note(name);
        }
        if head_bytes > limits.max_header_bytes {
            return Err(Problem::new(
                Answer::HeadersTooLarge,
                format!(
                    "the request target and header fields take {head_bytes} bytes; the limit is {}",
                    limits.max_header_bytes
                ),
            ));
        }
        if present.transfer_encoding {
            if req.version() != Version::HTTP_11 {
                return Err(Problem::new(
                    Answer::BadRequest,
                    "Transfer-Encoding is only valid in HTTP/1.1 requests",
                ));
            }
            // hyper decodes `chunked` only; any other coding would reach the upstream still
            // encoded, under framing it no longer describes.
            let mut codings = req.headers().get_all(TRANSFER_ENCODING).iter();
            let only_chunked = codings
                .next()
                .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"))
                && codings.next().is_none();
            if !only_chunked {
                return Err(Problem::new(
                    Answer::NotImplemented,
                    "the request uses a transfer coding other than `chunked`; send the body \
                     with `Transfer-Encoding: chunked` alone (or a Content-Length)",
                ));
            }
        }
        if let Some(limit) = limits.max_body_bytes.filter(|_| present.content_length) {
            let declared = req
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(len) = declared.filter(|len| *len > limit) {
                return Err(Problem::new(
                    Answer::BodyTooLarge,
                    format!("the request body declares {len} bytes; the limit is {limit}"),
                ));
            }
        }
        Ok(present)
    }
}

/// Replaces the request's path with its normal form (the query stays as sent), so that the
/// route table and every upstream see one spelling of it; a path that names nothing is 400.
pub(crate) fn normalize_target(
    req: &mut Request<ClientBody>,
    rules: crate::path::PathRules,
) -> Result<(), Problem> {
    let normal = match crate::path::normalize(req.uri().path(), rules) {
        Ok(std::borrow::Cow::Borrowed(_)) => return Ok(()),
        Ok(std::borrow::Cow::Owned(p)) => p,
        Err(e) => {
            return Err(Problem::new(
                Answer::BadRequest,
                format!("the request path cannot be routed: {e}"),
            ))
        }
    };
    let target = match req.uri().query() {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(
        target
            .parse()
            .map_err(|_| Problem::new(Answer::BadRequest, "the request path cannot be routed"))?,
    );
    *req.uri_mut() = http::Uri::from_parts(parts)
        .map_err(|_| Problem::new(Answer::BadRequest, "the request path cannot be routed"))?;
    Ok(())
}

pub(crate) fn strip_internal(headers: &mut http::HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(INTERNAL_PREFIX))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}
