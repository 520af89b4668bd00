//! What runs beside the request path: the loops that read the facade's rollups and the store,
//! decide, and write back — never on a request's way.
//!
//! Layout:
//! - `autopilot.rs` — the evaluator: holds the `autopilot` lease (or stands by), reads the
//!   evidence from the rollups, applies the rollout policy's decisions as catalog changes;
//! - `events.rs` — delivers the event outbox (CloudEvents) to webhooks and NATS, in order per
//!   context, with retries;
//! - `rollups.rs` — flushes the facade's traffic and shadow rollups into the store, and prunes
//!   what is older than the retention;
//! - `service_log.rs` — the services' breaker, ejection and health changes into the audit log;
//! - `outbox.rs` — the facade's mirror outbox on the store;
//! - `contract.rs` — recorded exchanges as contract test suites: export (JSON, Hurl) and replay.
//!
//! **Invariants:** nothing here runs on a request's way; every change to the catalog goes
//! through `CatalogStore::apply`, audited like a person's; a loop that holds a lease is the
//! only one of its kind across replicas.
#![forbid(unsafe_code)]

pub mod autopilot;
pub mod contract;
pub mod events;
pub mod outbox;
pub mod reconcile;
pub mod rollups;
pub mod service_log;
