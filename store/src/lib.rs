//! The durable home of the control plane: the catalog, its audit log, the traffic and shadow
//! rollups every replica adds to, the mirror and event outboxes, leases and registrations —
//! on SQLite (a file, WAL mode; the embedded default) or PostgreSQL (for several replicas).
//!
//! Both backends run the same queries (sqlx's `Any` driver; `$n` placeholders work on both);
//! each has its own migrations folder for the few DDL differences.
//!
//! Layout — one role trait per job, each in its own file, all implemented by [`SqlStore`]:
//! - `catalog.rs` — [`CatalogStore`]: the catalog, changes to it, the audit log;
//! - `registrations.rs` — [`Registrations`]: self-registered service instances;
//! - `traffic.rs` — [`TrafficRollups`]: traffic per minute, hour and route;
//! - `staging.rs` — [`StagedRollups`]: traffic counts handed in per flush, merged once for the
//!   whole fleet;
//! - `shadow.rs` — [`ShadowRollups`]: shadow results, noise, examples, recorded exchanges;
//! - `outbox.rs` — [`MirrorOutbox`]: mirrored writes waiting for delivery;
//! - `ids.rs` — [`IdMaps`]: resources the two sides know under different ids;
//! - `events.rs` — [`EventOutbox`]: events and their deliveries per sink;
//! - `leases.rs` — [`Leases`]: one holder at a time across replicas;
//! - `retention.rs` — [`Retention`]: deleting what is older than the retention;
//! - `follow.rs` — keeping the latest catalog in memory: notifications, polling, store health;
//! - `sql.rs` — opening and migrating the database;
//! - `error.rs` — [`StoreError`], by kind.
//!
//! **Invariants:** a change is one transaction (nothing half-written); the store is never
//! called on the request path (the facade follows the catalog in memory and hands its rollups
//! to a flush loop); nothing here knows HTTP.
#![forbid(unsafe_code)]

mod catalog;
mod error;
mod events;
pub mod follow;
mod ids;
mod leases;
mod outbox;
mod registrations;
mod retention;
mod shadow;
mod sql;
mod staging;
mod traffic;

pub use catalog::CatalogStore;
pub use error::StoreError;
pub use events::EventOutbox;
pub use ids::IdMaps;
pub use leases::Leases;
pub use outbox::MirrorOutbox;
pub use registrations::Registrations;
pub use retention::Retention;
pub use shadow::ShadowRollups;
pub use sql::{Backend, SqlStore, DEFAULT_OWNER_FENCE_MS, NOTIFY_CHANNEL};
pub use staging::{Merge, Merged, StagedRollups, FEW_ROUTE_ROWS, ROUTES_MERGE_EVERY_MS};
pub use traffic::TrafficRollups;

/// Every role at once: what the dashboard and the binary hold (`Arc<dyn Store>`). Code that
/// needs one job takes that role's trait.
pub trait Store:
    CatalogStore
    + Registrations
    + TrafficRollups
    + StagedRollups
    + ShadowRollups
    + MirrorOutbox
    + IdMaps
    + EventOutbox
    + Leases
    + Retention
{
}

impl<T> Store for T where
    T: CatalogStore
        + Registrations
        + TrafficRollups
        + StagedRollups
        + ShadowRollups
        + MirrorOutbox
        + IdMaps
        + EventOutbox
        + Leases
        + Retention
{
}

/// The role traits, to call their methods on a [`Store`].
pub mod prelude {
    pub use crate::{
        CatalogStore, EventOutbox, IdMaps, Leases, MirrorOutbox, Registrations, Retention,
        ShadowRollups, StagedRollups, Store, TrafficRollups,
    };
}

#[cfg(test)]
mod tests;
