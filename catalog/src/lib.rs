//! The control plane's domain: the migration catalog — services, bounded contexts, their routes
//! and migration states — with its validation rules, the changes an operator can make, the
//! rollout policy, and the rows the control plane keeps besides the catalog. Pure: no I/O, no
//! runtime; the `strangler-store` crate keeps all of it.
//!
//! Layout:
//! - `model.rs` — the domain types; plain data, serde-able, nothing of the store;
//! - `state.rs` — migration states and the transitions DESIGN.md allows;
//! - `pattern.rs` — route path patterns, specificity and overlap;
//! - `validate.rs` — the rules a whole catalog must satisfy;
//! - `change.rs` — the changes an operator can make, applied to a catalog in memory, with the
//!   audit snapshot and the events each one emits;
//! - `rollout.rs` — the autopilot's policy: steps, holds, checks and their verdicts;
//! - `cookie.rs` — the one `Cookie` field parser (sticky keys, the identity bridge, sessions);
//! - `json_path.rs` — the JSON paths of shadow rules: one grammar, one matcher;
//! - `clock.rs` — the one clock (Unix time in ms, s, minutes) and RFC 3339 dates in UTC;
//! - `rows.rs` — audit entries, traffic and shadow rollups, outbox items, events.
//!
//! **Invariant:** nothing here knows a database or a runtime (no sqlx, no tokio).
#![forbid(unsafe_code)]

mod change;
pub mod clock;
pub mod cookie;
pub mod json_path;
mod mirror_id;
mod model;
pub mod pattern;
pub mod rollout;
mod rows;
mod state;
mod validate;

pub use change::{Action, Change, ChangeError, ContextEvent};
pub use json_path::{JsonPath, JsonPathError};
pub use mirror_id::{IdFrom, IdRefs, IdTo, MirrorId};
pub use model::{fnv1a64, owner_moves};
pub use model::{
    Catalog, Context, ContextView, HeaderMatch, Name, Objective, OwnerMove, QueryMatch, Route,
    RouteShadow, RouteSpec, Service, ServicePolicy, ShadowPolicy, ShadowWrites, StickyKey,
    ValueMatch, VersionMatch,
};
pub use rows::{
    AuditEntry, AuditQuery, ChangeMeta, ContractPair, Delivery, Event, IdPair, LastSeen,
    NoiseProposal, OutboxItem, OutboxStats, PathTraffic, ShadowExample, ShadowMinute,
    SignatureCount, SinkStats, TrafficMinute, LATENCY_BOUNDS_MS, LATENCY_BUCKETS,
};
pub use state::{MigrationState, Side, TransitionError, Weight, FULL_WEIGHT};
pub use validate::{
    check_url, validate, SizeOnly, TranslatorCheck, ValidationError, MAX_TRANSLATOR_BYTES,
};
