//! The data plane: the public listener that stands in front of the legacy app.
//!
//! Layout:
//! - `snapshot.rs` — the compiled catalog (route table, service pools), swapped in whole;
//! - `shadow.rs` — shadow copies to the new service, compared with legacy's answers (`shadow/diff.rs`);
//! - `conn.rs` — one client connection as the request path sees it;
//! - `server.rs` — accepts connections (HTTP/1.1 and h2c), applies connection limits, drains on
//!   shutdown; `server/h1.rs` serves HTTP/1.1 requests with no body or one of a declared
//!   length itself and hands the rest of a connection to hyper;
//! - `facade.rs` — the handle the binary holds: configuration, legacy upstream, the compiled
//!   catalog it follows, metrics and views;
//! - `admission.rs` — what a request must be before anything is sent upstream;
//! - `decision.rs` — who answers a request, the shadow copy it may get, what it counts in;
//! - `proxy.rs` — one request: admit it, forward it, fall back, answer;
//! - `translate.rs` — translations off the async workers, and the glue that applies a context's
//!   translation to one request and its answer;
//! - `compose.rs` — composed routes (several answers assembled into one);
//! - `identity.rs` — the verified client identity forwarded upstream;
//! - `traffic.rs` — per-context and per-route counters behind the dashboard;
//! - `routes.rs` — the compiled route table: which route and context a request matches, and
//!   which side answers;
//! - `headers.rs` — hop-by-hop removal, `X-Forwarded-*`/`Via`, `Location` rewriting;
//! - `body.rs` — the request body wrapper (size limit, idle timeout) and the response body;
//! - `path.rs` — the RFC 3986 normal form of request paths, which routes match;
//! - `buffers.rs` — the process-wide budget of body bytes held in memory;
//! - `cpu.rs` — CPU-heavy work (large translations, jq, large diffs) off the async workers;
//! - `framing.rs` — a read-side guard that spots ambiguous HTTP/1 framing hyper would smooth over;
//! - `upgrade.rs` — tunnels for `Upgrade` (WebSocket and others);
//! - `problem.rs` — every answer the facade makes itself, as `application/problem+json`, and
//!   how an upstream failure becomes one;
//! - `telemetry.rs` — lock-free counters and histograms, rendered as Prometheus text.
//!
//! The request path takes no lock and makes no database call; configuration is immutable once
//! the facade is built.
#![forbid(unsafe_code)]

mod admission;
mod body;
mod buffers;
mod compile_error;
mod compose;
mod config;
mod conn;
mod cpu;
mod decision;
mod exposition;
mod facade;
mod framing;
mod headers;
mod identity;
pub mod ids;
mod path;
mod problem;
mod proxy;
mod request_id;
mod routes;
mod ryw;
mod server;
mod shadow;
mod snapshot;
mod telemetry;
#[cfg(test)]
mod testing;
pub mod tls;
mod traffic;
mod translate;
mod upgrade;

pub use buffers::default_budget as default_buffer_budget;
pub use compile_error::{CompileError, PredicateError, RouteProblem};
pub use config::{FacadeConfig, ForwardingConfig, HostHeader, LimitsConfig};
pub use facade::Facade;
pub use identity::{IdentityConfig, IDENTITY_HEADER};
pub use path::PathRules;
pub use routes::{decide_side, sticky_bucket, ContextEntry, Matched, RouteTable};
pub use server::{serve, serve_tls, Drain};
pub use shadow::diff as shadow_diff;
pub use shadow::outbox::OutboxStore;
pub use shadow::wal::{Wal, WalError};
pub use shadow::ShadowConfig;
pub use telemetry::Telemetry;
