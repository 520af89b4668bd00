use super::*;

#[test]
fn header_bytes_survive_the_text_round_trip() {
    let raw: Vec<u8> = (0x20..=0xff).collect();
    assert_eq!(from_latin1(&latin1(&raw)), raw);
}

#[test]
fn backoff_doubles_to_a_minute() {
    for (attempts, low) in [(0, 500), (1, 1000), (3, 4000), (20, 60_000)] {
        let b = backoff_ms(attempts);
        assert!(b >= low && b <= low + low / 5, "{attempts}: {b}");
    }
}
