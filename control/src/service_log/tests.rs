use super::*;

fn breaker(state: BreakerState) -> ServiceEvent {
    ServiceEvent::Breaker {
        service: "orders-svc".into(),
        state,
    }
}

fn actions(rows: &[Row]) -> Vec<&str> {
    rows.iter().map(|r| r.0.as_str()).collect()
}

/// A breaker flapping between open and half-open for a minute writes two rows, not one per
/// transition: the second says how long and how often.
#[test]
fn a_flapping_breaker_writes_one_row_when_it_opens_and_one_when_it_closes() {
    let mut e = Episodes::default();
    let mut written = Vec::new();
    written.extend(e.rows(&breaker(BreakerState::Open), 1_000));
    for i in 0..37 {
        let state = if i % 2 == 0 {
            BreakerState::HalfOpen
        } else {
            BreakerState::Open
        };
        written.extend(e.rows(&breaker(state), 2_000 + i * 1_000));
    }
    written.extend(e.rows(&breaker(BreakerState::Closed), 61_000));
    assert_eq!(actions(&written), ["breaker-open", "breaker-closed"]);
    assert_eq!(written[1].2["open_ms"], 60_000);
    assert_eq!(written[1].2["transitions"], 37);
    assert!(
        written[1].3.contains("after 60.0 s open"),
        "{}",
        written[1].3
    );
    // The next episode starts afresh.
    assert_eq!(
        actions(&e.rows(&breaker(BreakerState::Open), 70_000)),
        ["breaker-open"]
    );
}

#[test]
fn health_and_ejections_are_episodes_too() {
    let mut e = Episodes::default();
    let health = |healthy| ServiceEvent::Health {
        service: "orders-svc".into(),
        instance: "http://10.0.0.1:80".into(),
        healthy,
    };
    assert_eq!(actions(&e.rows(&health(false), 0)), ["instance-unhealthy"]);
    assert!(e.rows(&health(false), 500).is_empty());
    let back = e.rows(&health(true), 4_000);
    assert_eq!(actions(&back), ["instance-healthy"]);
    assert_eq!(back[0].2["unhealthy_ms"], 4_000);

    let ejected = ServiceEvent::Ejected {
        service: "orders-svc".into(),
        instance: "http://10.0.0.1:80".into(),
        for_ms: 30_000,
    };
    assert_eq!(actions(&e.rows(&ejected, 0)), ["instance-ejected"]);
    for t in 1..=5 {
        assert!(e.rows(&ejected, t * 60_000).is_empty());
    }
    // Quiet for ten minutes: the next ejection is a new episode, and says what the last had.
    let again = e.rows(&ejected, 5 * 60_000 + EJECTION_EPISODE_MS);
    assert_eq!(actions(&again), ["instance-ejected"]);
    assert_eq!(again[0].2["previous_episode_more"], 5);
    assert!(again[0].3.contains("5 more ejections"), "{}", again[0].3);
}

/// The open episodes are bounded, whatever the number of services and instances.
#[test]
fn open_episodes_are_bounded() {
    let mut e = Episodes::default();
    for i in 0..(MAX_EPISODES + 10) {
        e.rows(
            &ServiceEvent::Health {
                service: "s".into(),
                instance: format!("http://10.0.{}.{}:80", i / 256, i % 256),
                healthy: false,
            },
            0,
        );
    }
    assert!(e.unhealthy.len() <= MAX_EPISODES + 1);
}
