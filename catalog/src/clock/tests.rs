use super::*;

#[test]
fn dates_are_civil_dates_in_utc() {
    assert_eq!(civil_date(0), (1970, 1, 1));
    assert_eq!(civil_date(-1), (1969, 12, 31));
    // 2000-02-29 (a leap day of a year divisible by 400) and 2100-03-01 (2100 is not leap).
    assert_eq!(civil_date(11_016), (2000, 2, 29));
    assert_eq!(civil_date(47_541), (2100, 3, 1));
    assert_eq!(rfc3339(1_780_000_000_250, true), "2026-05-28T20:26:40.250Z");
    assert_eq!(rfc3339(1_780_000_000_250, false), "2026-05-28T20:26:40Z");
    assert_eq!(rfc3339(-1, true), "1969-12-31T23:59:59.999Z");
}
