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

/// Days since 1970-01-01 as (year, month, day) in the proleptic Gregorian calendar (civil from
/// days), for dates shown and sent in UTC.
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}
