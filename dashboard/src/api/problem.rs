//! The API's errors, as `application/problem+json`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use strangler_catalog::ChangeError;
use strangler_store::StoreError;

/// An API error: status, a type slug, a title, the detail, and the field when one is at fault.
#[derive(Debug)]
pub struct ApiProblem {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub field: Option<String>,
    /// More members for the body (RFC 9457 extension members): for a stale change the
    /// catalog's `current_version`, for an undrained outbox what waits.
    pub extra: Vec<(&'static str, serde_json::Value)>,
}

impl ApiProblem {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            title,
            detail: detail.into(),
            field: None,
            extra: Vec::new(),
        }
    }

    pub fn bad_request(field: &str, detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "The request is not valid",
            detail,
        );
        p.field = Some(field.to_owned());
        p
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such resource",
            detail,
        )
    }
}

impl From<crate::actions::ActionError> for ApiProblem {
    fn from(e: crate::actions::ActionError) -> Self {
        use crate::actions::ActionError;
        match e {
            ActionError::Invalid { field, message } => Self::bad_request(field, message),
            ActionError::NotProposed { context, path } => Self::not_found(format!(
                "`{path}` is not a proposed rule of context `{context}`; GET /api/v1/contexts/{context}/shadow/noise lists them"
            )),
            ActionError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiProblem {
    fn from(e: StoreError) -> Self {
        let text = e.to_string();
        match e {
            StoreError::Stale { based_on, current } => {
                let mut p = Self::new(
                    StatusCode::CONFLICT,
                    "stale-version",
                    "The catalog changed since you read it",
                    format!("the change was based on version {based_on}, the catalog is at {current}; reload, check what changed (GET /api/v1/audit) and send the change again with base_version {current}"),
                );
                p.field = Some("base_version".into());
                p.extra = vec![("current_version", current.into())];
                p
            }
            StoreError::Change(ChangeError::Invalid(v)) => {
                let mut p = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-catalog", "The change would make the catalog invalid", v.message);
                p.field = Some(v.field);
                p
            }
            StoreError::Change(ChangeError::Transition(t)) => {
                let mut p = Self::new(StatusCode::CONFLICT, "illegal-transition", "The migration state does not allow this", t.to_string());
                p.field = Some("state".into());
                p
            }
            StoreError::Change(e @ ChangeError::NotFound { .. }) => Self::not_found(e.to_string()),
            StoreError::Change(e @ (ChangeError::Exists { .. } | ChangeError::InUse { .. })) => {
                Self::new(StatusCode::CONFLICT, "conflict", "The change conflicts with the catalog", e.to_string())
            }
            StoreError::NotFound(why) => Self::not_found(why),
            StoreError::Conflict(why) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "The change conflicts with what the store holds",
                format!("{why}; reload and decide again"),
            ),
            StoreError::Unavailable(why) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "The catalog store is unavailable",
                format!("{why}; the facade keeps serving the last catalog; try again when the store is back"),
            ),
            StoreError::NotDrained { toward, pending, oldest_ms, dead, .. } => {
                let extra = vec![
                    ("toward", serde_json::json!(toward)),
                    ("pending", serde_json::json!(pending)),
                    ("oldest_pending_ms", serde_json::json!(oldest_ms)),
                    ("dead", serde_json::json!(dead)),
                ];
                let mut p = Self::new(
                    StatusCode::CONFLICT,
                    "outbox-not-drained",
                    "Mirrored writes toward the new owner are still waiting",
                    format!("{text}: send the change again with \"force\": true"),
                );
                p.field = Some("force".into());
                p.extra = extra;
                p
            }
            StoreError::Corrupt(why) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "store-corrupt", "The catalog store holds unreadable data", why),
        }
    }
}

impl IntoResponse for ApiProblem {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "type": format!("urn:strangler:problem:{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(field) = self.field {
            body["field"] = field.into();
        }
        for (name, value) in self.extra {
            body[name] = value;
        }
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
