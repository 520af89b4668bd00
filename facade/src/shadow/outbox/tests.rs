use super::*;

#[test]
fn header_bytes_survive_the_text_round_trip() {
    let raw: Vec<u8> = (0x20..=0xff).collect();
    assert_eq!(from_latin1(&latin1(&raw)), raw);
}

#[test]
fn backoff_doubles_to_a_minute() {
    for (attempts, low) in [(1, 1000), (2, 2000), (4, 8000), (20, 60_000)] {
        let b = backoff_ms(Duration::from_secs(1), attempts);
        assert!(b >= low && b <= low + low / 5, "{attempts}: {b}");
    }
}

#[test]
fn backoff_starts_from_the_configured_wait() {
    let b = backoff_ms(Duration::from_millis(20), 1);
    assert!((20..=24).contains(&b), "{b}");
    let b = backoff_ms(Duration::from_millis(20), 3);
    assert!((80..=96).contains(&b), "{b}");
}
