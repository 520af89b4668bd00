//! Answers the facade makes itself. Every one is `application/problem+json` (RFC 9457) with a
//! `type`, a `title`, the `status`, a `detail` and the request id, which the log line repeats.

mod failure;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};

use crate::body::RequestBodyError;
use crate::body::ResponseBody;
use crate::request_id::RequestId;
use crate::telemetry::Answer;
use strangler_services::cluster::ServiceFailureKind;
use strangler_services::{FailureKind, Origin, UpstreamError};

impl Answer {
    pub fn status(self) -> StatusCode {
        match self {
            Answer::BadRequest => StatusCode::BAD_REQUEST,
            Answer::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Answer::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Answer::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            Answer::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Answer::UpstreamUnreachable | Answer::UpstreamBroken => StatusCode::BAD_GATEWAY,
            Answer::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Answer::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Answer::TranslationFailed => StatusCode::BAD_GATEWAY,
            Answer::Untranslatable => StatusCode::BAD_REQUEST,
            Answer::Unauthenticated => StatusCode::UNAUTHORIZED,
            Answer::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Answer::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Answer::AmbiguousId => StatusCode::CONFLICT,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Answer::BadRequest => "The request is malformed",
            Answer::HeadersTooLarge => "The request header fields are too large",
            Answer::BodyTooLarge => "The request body is too large",
            Answer::ClientTimeout => "The client was too slow sending the request",
            Answer::UpstreamTimeout => "The upstream service did not answer in time",
            Answer::UpstreamUnreachable => "The upstream service could not be reached",
            Answer::UpstreamBroken => "The upstream service broke off the exchange",
            Answer::MethodNotAllowed => "The method is not served by this facade",
            Answer::ServiceUnavailable => "The service is unavailable for now",
            Answer::TranslationFailed => {
                "The service's answer could not be translated to the legacy contract"
            }
            Answer::Untranslatable => "The request could not be translated for the service",
            Answer::Unauthenticated => "A signed-in session is required",
            Answer::NotImplemented => "The request uses a feature this facade does not implement",
            Answer::Overloaded => "The facade is at its limit for this work now",
            Answer::AmbiguousId => "The id names two resources",
        }
    }

    /// Whether the client connection must be closed after this answer: the rest of the
    /// request can no longer be framed or trusted.
    fn closes(self) -> bool {
        matches!(
            self,
            Answer::BadRequest
                | Answer::HeadersTooLarge
                | Answer::BodyTooLarge
                | Answer::ClientTimeout
                | Answer::MethodNotAllowed
                | Answer::NotImplemented
        )
    }
}

/// A problem the facade answers with.
#[derive(Debug)]
pub struct Problem {
    pub answer: Answer,
    /// What the client is told.
    pub detail: String,
    /// What only the log is told (internal addresses, OS errors), with the request id.
    pub internal: Option<String>,
    /// Extension members (RFC 9457 §3.2): `rule` and `path` of a failed translation.
    pub extensions: Vec<(&'static str, String)>,
}

impl Problem {
    pub fn new(answer: Answer, detail: impl Into<String>) -> Self {
        Self {
            answer,
            detail: detail.into(),
            internal: None,
            extensions: Vec::new(),
        }
    }

    /// Adds what the log (not the client) should know.
    pub fn internal(mut self, why: String) -> Self {
        self.internal = Some(why);
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, name: &'static str, value: String) -> Self {
        self.extensions.push((name, value));
        self
    }

    pub fn into_response(self, id: RequestId) -> Response<ResponseBody> {
        let status = self.answer.status();
        let mut body = serde_json::json!({
            "type": format!("urn:strangler:problem:{}", self.answer.as_str().replace('_', "-")),
            "title": self.answer.title(),
            "status": status.as_u16(),
            "detail": self.detail,
            "request_id": id.to_string(),
        });
        if let Some(members) = body.as_object_mut() {
            for (name, value) in self.extensions {
                members.insert(name.to_owned(), serde_json::Value::String(value));
            }
        }
        let mut resp = Response::new(ResponseBody::full(Bytes::from(body.to_string())));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
            headers.insert("x-request-id", v);
        }
        if self.answer.closes() {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if self.answer == Answer::Unauthenticated {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Cookie realm=\"legacy session\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// What a client is told of an upstream failure.
pub(crate) fn public_failure(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Connect => "could not be reached",
        FailureKind::Timeout => "did not answer in time",
        FailureKind::Reset | FailureKind::Protocol | FailureKind::RequestBody => {
            "broke off the exchange"
        }
    }
}

/// The answer when the buffer budget has no room for a body.
pub(crate) fn over_budget(context: &str) -> Problem {
    Problem::new(
        Answer::Overloaded,
        format!(
            "context `{context}`: the facade holds as many bodies in memory as its buffer budget allows; try again shortly"
        ),
    )
}
