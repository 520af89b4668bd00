//! Migration states of a bounded context and the transitions between them.
//!
//! ```text
//! legacy ──► shadow ──► canary(w) ──► migrated ──► retired
//!    ▲          │           │             │
//!    └──────────┴───────────┴─────────────┘   rollback: any time, to legacy
//! ```
//!
//! Forward moves go one step at a time; `retired` is reachable only from `migrated`; a rollback
//! from any state but `legacy` returns the context to `legacy`.

use serde::{Deserialize, Serialize};

/// A canary weight in basis points: 0 (nobody) to 10000 (everybody).
pub type Weight = u16;

/// The largest weight: everyone.
pub const FULL_WEIGHT: Weight = 10_000;

/// Who answers a request.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Legacy,
    #[default]
    New,
}

impl Side {
    /// The side that is not this one.
    pub fn other(self) -> Side {
        match self {
            Side::Legacy => Side::New,
            Side::New => Side::Legacy,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Legacy => "legacy",
            Side::New => "new",
        }
    }

    /// The side [`Side::as_str`] names; `None` for any other text.
    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "legacy" => Some(Side::Legacy),
            "new" => Some(Side::New),
            _ => None,
        }
    }
}

/// Where a bounded context stands in its migration.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MigrationState {
    Legacy,
    Shadow,
    Canary,
    Migrated,
    Retired,
}

/// A transition that the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{context}: cannot {action} from `{from}`; {fix}")]
pub struct TransitionError {
    pub context: String,
    pub action: &'static str,
    pub from: MigrationState,
    pub fix: String,
}

impl MigrationState {
    pub const ALL: [MigrationState; 5] = [
        MigrationState::Legacy,
        MigrationState::Shadow,
        MigrationState::Canary,
        MigrationState::Migrated,
        MigrationState::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Legacy => "legacy",
            MigrationState::Shadow => "shadow",
            MigrationState::Canary => "canary",
            MigrationState::Migrated => "migrated",
            MigrationState::Retired => "retired",
        }
    }

    /// The next state forward, if any.
    pub fn next(self) -> Option<MigrationState> {
        match self {
            MigrationState::Legacy => Some(MigrationState::Shadow),
            MigrationState::Shadow => Some(MigrationState::Canary),
            MigrationState::Canary => Some(MigrationState::Migrated),
            MigrationState::Migrated => Some(MigrationState::Retired),
            MigrationState::Retired => None,
        }
    }

    /// Whether `self → to` is allowed: one step forward, or a rollback to legacy.
    pub fn can_move_to(self, to: MigrationState) -> bool {
        self.next() == Some(to) || (to == MigrationState::Legacy && self != MigrationState::Legacy)
    }
}

impl std::fmt::Display for MigrationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MigrationState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        MigrationState::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a migration state; use legacy, shadow, canary, migrated or retired")
            })
    }
}

#[cfg(test)]
mod tests;
