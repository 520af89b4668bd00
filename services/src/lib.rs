//! Upstream services: the pooled HTTP client that the facade sends requests through, the
//! resilience stack around a service of several instances, and the typed failures they answer
//! with. The facade only ever asks "send this to service X" and gets a response or a typed
//! failure.
//!
//! Layout:
//! - `upstream.rs` — [`Upstream`]: one instance's origin, its keep-alive connection pool and
//!   timeouts, and [`UpstreamBody`], which returns a connection to the pool when it ends;
//! - `cluster.rs` — [`cluster::Cluster`]: a service of several instances (static or registered)
//!   behind a breaker (`cluster/breaker.rs`), a bulkhead, balancing, outlier ejection, active
//!   health checks, request collapsing (`cluster/collapse.rs`) and retries under a budget
//!   (`cluster/budget.rs`);
//! - `boxing.rs` — futures boxed where they are made, not made and then copied into a box;
//! - `names.rs` — header names read off the wire, the common ones without a constant in the
//!   `http` crate handed out without an allocation;
//! - `error.rs` — [`UpstreamError`]: why an upstream call failed, reduced to the few kinds the
//!   facade turns into answers (502, 504 …).
#![forbid(unsafe_code)]

pub mod boxing;
pub mod cluster;
mod error;
pub mod names;
pub mod relay;
mod upstream;

pub use error::{FailureKind, UpstreamError};
pub use upstream::tls::ClientTls;
pub use upstream::{
    Appended, Origin, OriginError, OriginProblem, Protocol, SendFailure, Upstream, UpstreamBody,
    UpstreamConfig,
};
