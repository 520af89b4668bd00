//! Bearer tokens: an operator token for changes, a viewer token for reads. Compared in constant
//! time. With no token configured at all, reads are open (the admin listener binds to
//! 127.0.0.1 by default) and changes are refused.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use subtle::ConstantTimeEq;

use super::problem::ApiProblem;
use super::ApiState;

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    pub operator: Option<String>,
    pub viewer: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token.
        f.debug_struct("Tokens")
            .field("operator", &self.operator.as_ref().map(|_| "<set>"))
            .field("viewer", &self.viewer.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// What the caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Operator,
}

fn same(a: &str, b: &str) -> bool {
    // Length is not secret; the content is compared without early exit.
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Tokens {
    pub fn role_of(&self, presented: Option<&str>) -> Result<Role, ApiProblem> {
        let Some(token) = presented else {
            if self.operator.is_none() && self.viewer.is_none() {
                return Ok(Role::Viewer);
            }
            return Err(ApiProblem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "A bearer token is required",
                "send `Authorization: Bearer <token>` with the viewer or the operator token",
            ));
        };
        if self.operator.as_deref().is_some_and(|t| same(t, token)) {
            return Ok(Role::Operator);
        }
        if self.viewer.as_deref().is_some_and(|t| same(t, token)) {
            return Ok(Role::Viewer);
        }
        Err(ApiProblem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The token is not valid",
            "the bearer token matches neither the viewer nor the operator token",
        ))
    }
}

/// A caller allowed to read.
#[derive(Debug, Clone, Copy)]
pub struct Reader;

/// A caller allowed to change the catalog.
#[derive(Debug, Clone)]
pub struct Operator {
    pub actor: String,
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

impl FromRequestParts<ApiState> for Reader {
    type Rejection = ApiProblem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiProblem> {
        state.tokens.role_of(bearer(parts)).map(|_| Reader)
    }
}

impl FromRequestParts<ApiState> for Operator {
    type Rejection = ApiProblem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiProblem> {
        if state.tokens.operator.is_none() {
            return Err(ApiProblem::new(
                StatusCode::FORBIDDEN,
                "changes-disabled",
                "Changes are disabled",
                "no operator token is configured; set STRANGLER_AUTH_OPERATOR_TOKEN (or auth.operator_token_file in the config file) and restart",
            ));
        }
        match state.tokens.role_of(bearer(parts))? {
            Role::Operator => Ok(Operator {
                actor: "operator".into(),
            }),
            Role::Viewer => Err(ApiProblem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "The viewer token cannot change anything",
                "use the operator token for changes",
            )),
        }
    }
}
