//! The anti-corruption layer: translators between the legacy contract that clients speak and a
//! new service's own model.
//!
//! A translator is written as a declarative spec in TOML ([`spec`]), compiled once when it
//! loads ([`Compiled`]), and applied by the facade to every request that goes to the new
//! service and every answer that comes back. Where the declarative rules cannot say it, a rule
//! can be a jq expression (run by jaq), or the spec can name a [`Translator`] written in Rust
//! and registered in a [`Registry`]. [`contract`] runs a translator's example pairs.
//!
//! **Invariant:** pure — no I/O, no clocks, no sockets; and the only crate that knows contract
//! shapes. The facade hands it heads and buffered bodies and gets them back translated.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

pub mod contract;
pub mod identity;
pub mod jq;
pub mod json;
pub mod ops;
pub mod spec;
mod translate;

pub use spec::{IdentitySpec, Spec, SpecError};
pub use translate::{Compiled, Composition, Links, OnFailure, Part, PartSide};

/// A request on its way to the new service.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    /// The path, percent-encoded as it arrived.
    pub path: String,
    /// The query without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The whole body when the translator asked for it ([`Compiled::needs_request_body`]);
    /// `None` when it streams untouched.
    pub body: Option<Bytes>,
}

/// An answer on its way back from the new service.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The whole body when the translator asked for it; `None` when it streams untouched.
    pub body: Option<Bytes>,
}

/// Why a message could not be translated: the rule, the JSON path, and whose fault it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule} at {path}: {reason}")]
pub struct Failure {
    /// The rule that failed, with its line: `response.body[2] (convert, line 14)`.
    pub rule: String,
    /// The concrete JSON path: `$.items[3].price`.
    pub path: String,
    pub reason: String,
    /// The client's request is at fault (400), not the service's answer (502).
    pub client: bool,
}

/// A translator written in Rust, for what the declarative rules cannot say. Registered by
/// name in a [`Registry`]; a spec names it with `rust = "NAME"`.
pub trait Translator: Send + Sync + 'static {
    /// Legacy request → the new service's request. Runs after the declarative rules.
    fn request(&self, req: &mut Request) -> Result<(), Failure>;
    /// The new service's answer → the legacy answer. Runs before the declarative rules.
    fn response(&self, resp: &mut Response) -> Result<(), Failure>;
}

/// Rust translators by name.
#[derive(Clone, Default)]
pub struct Registry {
    by_name: BTreeMap<String, Arc<dyn Translator>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `translator` as `name` (replacing any of that name).
    pub fn register(&mut self, name: impl Into<String>, translator: Arc<dyn Translator>) {
        self.by_name.insert(name.into(), translator);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Translator>> {
        self.by_name.get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests;
