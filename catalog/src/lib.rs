//! The control plane: the migration catalog — services, bounded contexts, their routes and
//! migration states — with its validation rules, and (in `store`) its durable home.
//!
//! Layout:
//! - `model.rs` — the domain types; plain data, serde-able, nothing of the store;
//! - `state.rs` — migration states and the transitions DESIGN.md allows;
//! - `pattern.rs` — route path patterns, specificity and overlap;
//! - `validate.rs` — the rules a whole catalog must satisfy;
//! - `change.rs` — the changes an operator can make, applied to a catalog in memory;
//! - `follow.rs` — keeping the latest catalog in memory: notifications, polling, store health;
//! - `store.rs` — the [`store::Store`] trait and [`store::SqlStore`] (SQLite or PostgreSQL).
//!
//! **Invariant:** only this crate knows the store (sqlx); its domain types know nothing of it.
#![forbid(unsafe_code)]

mod change;
pub mod follow;
mod model;
pub mod pattern;
pub mod rollout;
mod state;
pub mod store;
mod validate;

pub use change::{Action, Change, ChangeError};
pub use model::{check_json_path, fnv1a64};
pub use model::{
    Catalog, Context, HeaderMatch, Name, Objective, QueryMatch, Route, RouteShadow, RouteSpec,
    Service, ServicePolicy, ShadowPolicy, ShadowWrites, StickyKey, ValueMatch, VersionMatch,
    Weight,
};
pub use state::{MigrationState, Side, TransitionError};
pub use store::{
    LastSeen, OutboxItem, PathTraffic, TrafficMinute, LATENCY_BOUNDS_MS, LATENCY_BUCKETS,
};
pub use validate::{
    check_url, set_translator_check, validate, ValidationError, MAX_TRANSLATOR_BYTES,
};
