use super::{postgres_transient, sqlite_transient};

#[test]
fn transient_codes_are_told_from_the_others() {
    // SQLite: BUSY, LOCKED, and BUSY_SNAPSHOT (517 = 5 | 2 << 8).
    assert!(sqlite_transient(Some("5")) && sqlite_transient(Some("6")));
    assert!(sqlite_transient(Some("517")));
    // SQLite: SQLITE_ERROR (a bad statement) and CONSTRAINT are not.
    assert!(!sqlite_transient(Some("1")) && !sqlite_transient(Some("19")));
    // PostgreSQL: serialization failure, connection failure, too many connections,
    // shutting down.
    for code in ["40001", "08006", "53300", "57P01"] {
        assert!(postgres_transient(Some(code)), "{code}");
    }
    // PostgreSQL: undefined column, syntax error, unique violation.
    for code in ["42703", "42601", "23505"] {
        assert!(!postgres_transient(Some(code)), "{code}");
    }
}
