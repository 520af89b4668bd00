use super::*;

#[test]
fn money_and_dates() {
    assert_eq!(decimal(1275), "12.75");
    assert_eq!(decimal(5), "0.05");
    assert_eq!(decimal(120_000), "1200.00");
    assert_eq!(civil(0), (1970, 1, 1));
    assert_eq!(civil(20_786), (2026, 11, 29));
}
