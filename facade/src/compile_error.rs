//! Why a catalog could not become the snapshot requests follow. The previous snapshot then
//! stays; the error names the part of the catalog at fault so that the log and the catalog
//! health metric point at it.

/// A catalog the facade could not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A route's spec (path, host, predicates) does not compile, or names no context.
    #[error("route {id} of context `{context}`: {why}")]
    Route {
        id: String,
        context: String,
        why: String,
    },
    /// A service's instances or policy cannot make a cluster.
    #[error("service `{service}`: {why}")]
    Service { service: String, why: String },
    /// A context's translator does not compile.
    #[error("context `{context}`: the translator does not compile: {why}")]
    Translator { context: String, why: String },
    /// More routes than a rank can number.
    #[error("more than {0} routes")]
    TooManyRoutes(u32),
    /// A context the route table holds is not in the catalog it was built from.
    #[error("context `{0}` vanished while compiling")]
    Vanished(String),
}
