//! Why a catalog could not become the snapshot requests follow. The previous snapshot then
//! stays; the error names the part of the catalog at fault so that the log and the catalog
//! health metric point at it.

use strangler_anti_corruption::SpecError;
use strangler_catalog::pattern::{PatternError, RouteSpecError};
use strangler_services::OriginError;

/// A catalog the facade could not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A route's spec (path, host, predicates) does not compile, or names no context.
    #[error("route {id} of context `{context}`: {why}")]
    Route {
        id: String,
        context: String,
        why: Box<RouteProblem>,
    },
    /// A service's instances cannot make a cluster.
    #[error("service `{service}`: {why}")]
    Service { service: String, why: OriginError },
    /// A context's translator does not compile.
    #[error("context `{context}`: the translator does not compile: {why}")]
    Translator { context: String, why: SpecError },
    /// More routes than a rank can number.
    #[error("more than {0} routes")]
    TooManyRoutes(u32),
    /// A context the route table holds is not in the catalog it was built from.
    #[error("context `{0}` vanished while compiling")]
    Vanished(String),
}

/// What is wrong with one route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteProblem {
    /// The spec fails the catalog's own check.
    #[error(transparent)]
    Spec(#[from] RouteSpecError),
    /// The path with its version prefix does not parse.
    #[error(transparent)]
    Path(#[from] PatternError),
    /// A condition the catalog accepted does not compile here.
    #[error(transparent)]
    Predicate(#[from] PredicateError),
    #[error("unknown context; create it first")]
    UnknownContext,
}

/// A route condition that does not compile into a matcher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredicateError {
    #[error("method `{method}`: {reason}")]
    Method { method: String, reason: String },
    #[error("header `{name}`: {reason}")]
    HeaderName { name: String, reason: String },
    #[error("regex `{regex}`: {reason}")]
    Regex { regex: String, reason: String },
}
