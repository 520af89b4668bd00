//! The one clock of the control plane — Unix time in the units its rows are keyed by — and
//! dates in UTC written as RFC 3339, computed without a time-zone database.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 before it; saturating far after).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

/// Minutes since the Unix epoch: the key of the per-minute rollups.
pub fn now_minute() -> i64 {
    now_ms() / 60_000
}

/// Days since 1970-01-01 as (year, month, day) in the proleptic Gregorian calendar (civil
/// from days).
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

/// Milliseconds since the epoch as RFC 3339 in UTC, to the second (`2026-12-05T06:18:41Z`)
/// or, with `millis`, to the millisecond (`2026-12-05T06:18:41.250Z`).
pub fn rfc3339(ms: i64, millis: bool) -> String {
    let secs = ms.div_euclid(1000);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_date(secs.div_euclid(86_400));
    let (h, min, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if millis {
        format!(
            "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{:03}Z",
            ms.rem_euclid(1000)
        )
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}Z")
    }
}

#[cfg(test)]
mod tests;
