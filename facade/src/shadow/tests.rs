use super::*;

#[test]
fn the_rate_cap_allows_so_many_per_second() {
    let budget = Arc::new(Budget::default());
    let ms = 1_000_000;
    // 100 a second: one every 10 ms, a burst of five (a twentieth of a second's worth).
    let taken: Vec<_> = (0..10)
        .filter_map(|_| budget.take_at(100, 100, 1_000 * ms))
        .collect();
    assert_eq!(taken.len(), 5);
    // 25 ms later, two and a half intervals have passed: two more.
    let later: Vec<_> = (0..10)
        .filter_map(|_| budget.take_at(100, 100, 1_025 * ms))
        .collect();
    assert_eq!(later.len(), 2);
    // A second later the burst is whole again, and no more.
    let rested: Vec<_> = (0..10)
        .filter_map(|_| budget.take_at(100, 100, 2_100 * ms))
        .collect();
    assert_eq!(rested.len(), 5);
    drop(rested);
    drop(later);
    drop(taken);
    assert_eq!(budget.in_flight.load(Relaxed), 0, "slots are given back");
    let unlimited: Vec<_> = (0..10).filter_map(|_| budget.take(100, 0)).collect();
    assert_eq!(unlimited.len(), 10);
    assert!(
        budget.take(10, 0).is_none(),
        "the in-flight cap still holds"
    );
}
