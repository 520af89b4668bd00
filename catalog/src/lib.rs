//! The control plane: the migration catalog. Today it holds the words of the domain — the
//! migration states of a bounded context and the sides that answer — so that every crate
//! speaks them the same way; the store, validation and audit arrive with the catalog issue.
//!
//! **Invariant:** only this crate knows the store (sqlx); its domain types know nothing of it.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Who answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Legacy,
    New,
}

/// Where a bounded context stands in its migration (see DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationState {
    Legacy,
    Shadow,
    Canary,
    Migrated,
    Retired,
}
