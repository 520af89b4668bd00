//! What can go wrong in the store, by kind: the caller decides by the kind (retry, refuse,
//! report), never by reading a message.

use strangler_catalog::ChangeError;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The change was based on an older version of the catalog.
    #[error("the catalog is at version {current}, not {based_on}: reload it and decide again")]
    Stale { based_on: i64, current: i64 },
    /// The change itself is wrong (invalid, not found, in use …).
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// A row that had to exist does not.
    #[error("not found in the catalog store: {0}")]
    NotFound(String),
    /// A write collided with a row already there (a unique, foreign-key or check constraint).
    #[error("the catalog store refused a conflicting write: {0}")]
    Conflict(String),
    /// The database cannot be reached, or failed in a way that retrying may fix (a timeout, a
    /// lost connection, a busy or locked database, a serialization failure).
    #[error("the catalog store is unavailable: {0}")]
    Unavailable(String),
    /// The stored data could not be read back, or does not have the shape this version
    /// expects (a missing column, a wrong type, unreadable JSON).
    #[error("the catalog store holds unreadable data: {0}")]
    Corrupt(String),
    /// The change would move a context's write owner while mirrored writes toward the new
    /// owner are still waiting: the new owner would take writes without them.
    #[error("{}", not_drained(context, *toward, *pending, *oldest_ms, *dead))]
    NotDrained {
        context: String,
        /// The side that would own the writes.
        toward: strangler_catalog::Side,
        pending: i64,
        /// The oldest pending write's age.
        oldest_ms: Option<i64>,
        /// Writes toward that side given up on (never delivered).
        dead: i64,
    },
}

fn not_drained(
    context: &str,
    toward: strangler_catalog::Side,
    pending: i64,
    oldest_ms: Option<i64>,
    dead: i64,
) -> String {
    let age = oldest_ms.map_or(String::new(), |ms| {
        format!(", the oldest {:.1} s old", ms as f64 / 1000.0)
    });
    let dead = if dead > 0 {
        format!(" ({dead} more were given up on and will never arrive)")
    } else {
        String::new()
    };
    format!(
        "context `{context}`: {pending} mirrored writes still wait to reach {}{age}{dead}; \
         the write owner moves only once they are delivered. Try again when the outbox is \
         drained (GET /api/v1/contexts/{context}/shadow), or force it with a reason to leave \
         them behind (recorded in the audit log)",
        toward.as_str()
    )
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Stale { .. } | StoreError::NotDrained { .. }
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        let text = e.to_string();
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound(text),
            sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::Encode(_) => StoreError::Corrupt(text),
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation => StoreError::Conflict(text),
                _ if transient(db.as_ref()) => StoreError::Unavailable(text),
                // A statement the database does not accept: the schema is not the one this
                // version migrated to.
                _ => StoreError::Corrupt(text),
            },
            sqlx::Error::Migrate(_) => StoreError::Corrupt(text),
            // Io, Tls, Protocol, PoolTimedOut, PoolClosed, WorkerCrashed, Configuration …
            _ => StoreError::Unavailable(text),
        }
    }
}

/// Whether a database error says "try again".
fn transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code();
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        postgres_transient(code.as_deref())
    } else {
        sqlite_transient(code.as_deref())
    }
}

/// PostgreSQL's SQLSTATE classes that say "try again": connection exception (08), transaction
/// rollback (40: serialization failure, deadlock), insufficient resources (53), operator
/// intervention (57: shutting down).
fn postgres_transient(code: Option<&str>) -> bool {
    code.is_none_or(|c| {
        ["08", "40", "53", "57"]
            .iter()
            .any(|class| c.starts_with(class))
    })
}

/// SQLite's result codes that say "try again": BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN
/// (extended codes keep the primary code in their low byte).
fn sqlite_transient(code: Option<&str>) -> bool {
    match code.map(str::parse::<u32>) {
        None => true,
        Some(Ok(n)) => matches!(n & 0xff, 5 | 6 | 7 | 10 | 13 | 14),
        Some(Err(_)) => false,
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

#[cfg(test)]
mod tests;
