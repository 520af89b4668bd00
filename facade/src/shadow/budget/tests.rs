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

#[test]
fn the_governors_cap_applies_with_or_without_the_operators() {
    let budget = Arc::new(Budget::default());
    let ms = 1_000_000;
    budget.governed.store(100, Relaxed);
    // The governor's 100 a second: a burst of twenty (where the operator's cap would let
    // five through), so that a handful of requests arriving together are all compared.
    let governed: Vec<_> = (0..30)
        .filter_map(|_| budget.take_at(100, 0, 1_000 * ms))
        .collect();
    assert_eq!(governed.len(), 20);
    // With the operator's cap lower still, the lower one holds (a burst of one at 20/s).
    let b = Arc::new(Budget::default());
    b.governed.store(100, Relaxed);
    let both: Vec<_> = (0..10)
        .filter_map(|_| b.take_at(100, 20, 1_000 * ms))
        .collect();
    assert_eq!(both.len(), 1);
    // Mirrored writes are never refused, and count in flight.
    let mirrors: Vec<_> = (0..300).map(|_| budget.take_mirror()).collect();
    assert_eq!(budget.in_flight.load(Relaxed), 320);
    drop(mirrors);
    drop(governed);
    assert_eq!(budget.in_flight.load(Relaxed), 0);
    assert_eq!(
        budget.started.load(Relaxed),
        20,
        "only compared shadows count as started"
    );
}

#[test]
fn over_the_ceiling_the_cap_falls_below_what_started_and_never_under_the_floor() {
    // 20,000 shadows a second under a cap they did not reach, workers 90 % busy: cut to 70 %
    // of what started.
    assert_eq!(next_limit(50_000.0, 0.9, 20_000.0, 0.6), 14_000.0);
    // Under a cap that bit, from the cap.
    assert_eq!(next_limit(1_000.0, 0.9, 1_000.0, 0.6), 700.0);
    // However busy, a few shadows a second go on.
    assert_eq!(next_limit(11.0, 1.0, 11.0, 0.6), f64::from(FLOOR));
    // Just under the ceiling: hold.
    assert_eq!(next_limit(500.0, 0.58, 500.0, 0.6), 500.0);
    // Well under it while the cap binds: raise by a fifth (and the floor).
    assert_eq!(next_limit(500.0, 0.3, 500.0, 0.6), 700.0);
    // Well under it, shadows using little of the cap: twice what they used.
    assert_eq!(next_limit(5_000.0, 0.3, 800.0, 0.6), 1_600.0);
    // Quiet: back to the idle cap, from where a burst grows a fifth a tick.
    assert_eq!(next_limit(5_000.0, 0.01, 0.0, 0.6), IDLE);
    assert_eq!(
        next_limit(IDLE, 0.3, IDLE, 0.6),
        IDLE * 1.2 + f64::from(FLOOR)
    );
}

/// A facade whose clients keep its one worker `base` busy, with `demand` shadows a second
/// wanted at `cost` seconds of work each, governed for `ticks` tenths of a second: the busy
/// share of each tick.
fn simulate(limit: &mut f64, base: f64, demand: f64, cost: f64, ticks: usize) -> Vec<f64> {
    let mut seen = Vec::new();
    for _ in 0..ticks {
        let started = demand.min(limit.max(f64::from(FLOOR)));
        let busy = (base + started * cost).min(1.0);
        seen.push(busy);
        *limit = next_limit(*limit, busy, started, 0.6);
    }
    seen
}

#[test]
fn shadowing_every_request_at_half_load_settles_under_the_ceiling_without_bursts() {
    // The bench's case: clients at half of saturation, shadows of every request (21,561 a
    // second at 30 µs each) would need 1.15 cores.
    let mut limit = IDLE;
    let busy = simulate(&mut limit, 0.5, 21_561.0, 30e-6, 100);
    assert!(
        busy.iter().all(|b| *b <= 0.61),
        "never past the ceiling, not even at first: {busy:?}"
    );
    let settled = &busy[30..];
    let mean = settled.iter().sum::<f64>() / settled.len() as f64;
    assert!(
        mean >= 0.54,
        "uses what is left under it: mean {mean}, {busy:?}"
    );
    // Clients busier than the ceiling on their own: shadows fall to the floor.
    let busy = simulate(&mut limit, 0.8, 21_561.0, 30e-6, 30);
    assert_eq!(limit, f64::from(FLOOR), "{busy:?}");
    // The load goes, 2,000 shadows a second wanted: the cap follows them up, and every one
    // starts.
    let busy = simulate(&mut limit, 0.1, 2_000.0, 30e-6, 60);
    assert!((2_000.0..=4_000.0).contains(&limit), "{limit} {busy:?}");
    // Quiet: the idle cap; a sudden burst of demand then grows from it without overrunning.
    simulate(&mut limit, 0.0, 0.0, 30e-6, 2);
    assert_eq!(limit, IDLE);
    let busy = simulate(&mut limit, 0.5, 21_561.0, 30e-6, 50);
    assert!(busy.iter().all(|b| *b <= 0.61), "{busy:?}");
}
