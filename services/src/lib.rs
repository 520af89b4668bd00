//! Upstream services: the pooled HTTP client that the facade sends requests through, and the
//! typed failures it answers with.
//!
//! Layout:
//! - `upstream.rs` — [`Upstream`]: one service's origin, its keep-alive connection pool and
//!   timeouts, and [`UpstreamBody`], which returns a connection to the pool when it ends;
//! - `error.rs` — [`UpstreamError`]: why an upstream call failed, reduced to the few kinds the
//!   facade turns into answers (502, 504 …).
//!
//! - `cluster.rs` — [`cluster::Cluster`]: a service of several instances behind a breaker, a
//!   bulkhead, balancing, outlier ejection and budgeted retries.
//!
//! Discovery and active health checks arrive later and live here too: the facade only ever asks "send this to service X" and gets a response or a typed
//! failure.
#![forbid(unsafe_code)]

pub mod cluster;
mod error;
mod upstream;

pub use error::{FailureKind, UpstreamError};
pub use upstream::{Origin, SendFailure, Upstream, UpstreamBody, UpstreamConfig};
