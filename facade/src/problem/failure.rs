//! How a failed upstream call becomes the client's answer: which status, what it is told
//! (never an address or an OS error), and what is counted.

use super::*;
use crate::decision::{Routing, Target};

impl crate::facade::Facade {
    pub(crate) fn upstream_failure(&self, err: &UpstreamError, routing: &Routing) -> Problem {
        let s = &*self.shared;
        if err.kind() == FailureKind::RequestBody {
            if let Some(cause) = err.find_cause::<RequestBodyError>() {
                let answer = match cause {
                    RequestBodyError::TooLarge { .. } => Answer::BodyTooLarge,
                    RequestBodyError::Idle(_) => Answer::ClientTimeout,
                    RequestBodyError::Client(_) => Answer::BadRequest,
                };
                return Problem::new(answer, cause.to_string());
            }
        }
        s.telemetry.record_upstream_error(err.kind());
        let answer = match err.kind() {
            FailureKind::Connect => Answer::UpstreamUnreachable,
            FailureKind::Timeout => Answer::UpstreamTimeout,
            FailureKind::Reset | FailureKind::Protocol | FailureKind::RequestBody => {
                Answer::UpstreamBroken
            }
        };
        let who = match &routing.context {
            Some(ctx) => format!("the {} side of context `{ctx}`", routing.side.as_str()),
            None => "the legacy application".to_owned(),
        };
        // The client learns what failed; the log learns where and why (addresses and OS
        // errors are the operator's business, not the client's).
        Problem::new(answer, format!("{who} {}", public_failure(err.kind()))).internal(format!(
            "{who} ({}): {err}",
            self.origin_of(routing).to_prefix()
        ))
    }

    /// The origin of whoever answers (the first instance of a new service).
    pub(crate) fn origin_of<'a>(&'a self, routing: &'a Routing) -> &'a Origin {
        match &routing.target {
            Target::New { cluster, .. } if routing.fell_back.is_none() => {
                cluster.origin().unwrap_or(self.shared.legacy.origin())
            }
            _ => self.shared.legacy.origin(),
        }
    }

    pub(crate) fn service_failure(
        &self,
        kind: &ServiceFailureKind,
        error: Option<&UpstreamError>,
        routing: &Routing,
    ) -> Problem {
        match (kind, error) {
            (_, Some(err)) => self.upstream_failure(err, routing),
            (ServiceFailureKind::BreakerOpen, None) => Problem::new(
                Answer::ServiceUnavailable,
                format!(
                    "the circuit breaker of context `{}`'s service is open; try again shortly",
                    routing.context.as_deref().unwrap_or("-")
                ),
            ),
            (_, None) => Problem::new(
                Answer::ServiceUnavailable,
                format!(
                    "context `{}`'s service is at its concurrency limit; try again shortly",
                    routing.context.as_deref().unwrap_or("-")
                ),
            ),
        }
    }
}
