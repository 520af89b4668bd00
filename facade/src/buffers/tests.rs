use super::*;

#[test]
fn holds_are_refused_beyond_the_limit_and_given_back_on_drop() {
    let b = Buffers::new(100);
    let mut first = b.hold(60).unwrap();
    assert!(b.hold(50).is_none());
    assert_eq!(b.refused(), 1);
    assert!(!first.grow(41));
    assert!(first.grow(40));
    assert_eq!(b.used(), 100);
    drop(first);
    assert_eq!(b.used(), 0);
    assert!(b.hold(100).is_some());
    assert!(default_budget() >= 64 << 20);
}
