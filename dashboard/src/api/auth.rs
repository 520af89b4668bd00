//! Bearer tokens: shared ones (an operator token for changes, a viewer token for reads) and
//! named users' own, each with a role, so that the audit log records the person. Compared in
//! constant time. With no token configured at all, reads are open (the admin listener binds to
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
    /// Named people, each with a token of their own (`[[auth.users]]`).
    pub users: Vec<User>,
}

/// A named person who may use the API and the dashboard.
#[derive(Clone)]
pub struct User {
    /// What the audit log records as the actor.
    pub name: String,
    pub role: Role,
    pub token: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token.
        f.debug_struct("Tokens")
            .field("operator", &self.operator.as_ref().map(|_| "<set>"))
            .field("viewer", &self.viewer.as_ref().map(|_| "<set>"))
            .field(
                "users",
                &self
                    .users
                    .iter()
                    .map(|u| (&u.name, u.role))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Who presented a token: their role, and the name the audit log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// A user's name, or `operator` / `viewer` for the shared tokens.
    pub actor: String,
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
    /// Whether any token is configured (else reads are open and changes refused).
    pub fn any(&self) -> bool {
        self.operator.is_some() || self.viewer.is_some() || !self.users.is_empty()
    }

    /// Whether anyone may change the catalog.
    pub fn changes_enabled(&self) -> bool {
        self.operator.is_some() || self.users.iter().any(|u| u.role == Role::Operator)
    }

    /// The user named `name`, if configured.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn role_of(&self, presented: Option<&str>) -> Result<Role, ApiProblem> {
        self.identify(presented).map(|c| c.role)
    }

    /// Who presented `presented`. Every configured token is compared, whichever matches, so
    /// that the time taken says nothing about which one did.
    pub fn identify(&self, presented: Option<&str>) -> Result<Caller, ApiProblem> {
        let Some(token) = presented else {
            if !self.any() {
                return Ok(Caller {
                    role: Role::Viewer,
                    actor: "viewer".into(),
                });
            }
            return Err(ApiProblem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "A bearer token is required",
                "send `Authorization: Bearer <token>` with the viewer or the operator token, or your own",
            ));
        };
        let mut found = None;
        let shared = [
            (self.operator.as_deref(), Role::Operator, "operator"),
            (self.viewer.as_deref(), Role::Viewer, "viewer"),
        ];
        for (t, role, name) in shared {
            if t.is_some_and(|t| same(t, token)) && found.is_none() {
                found = Some(Caller {
                    role,
                    actor: name.into(),
                });
            }
        }
        for u in &self.users {
            if same(&u.token, token) && found.is_none() {
                found = Some(Caller {
                    role: u.role,
                    actor: u.name.clone(),
                });
            }
        }
        found.ok_or_else(|| {
            ApiProblem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "The token is not valid",
                "the bearer token matches none of the configured tokens",
            )
        })
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
        if !state.tokens.changes_enabled() {
            return Err(ApiProblem::new(
                StatusCode::FORBIDDEN,
                "changes-disabled",
                "Changes are disabled",
                "no operator token is configured; set STRANGLER_AUTH_OPERATOR_TOKEN (or auth.operator_token_file, or a user with role = \"operator\" under [[auth.users]] in the config file) and restart",
            ));
        }
        let caller = state.tokens.identify(bearer(parts))?;
        match caller.role {
            Role::Operator => Ok(Operator {
                actor: caller.actor,
            }),
            Role::Viewer => Err(ApiProblem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "A viewer cannot change anything",
                "use the operator token (or an operator's own) for changes",
            )),
        }
    }
}
