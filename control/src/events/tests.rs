use super::*;

#[test]
fn cloud_events_are_structured_and_signed() {
    let e = Event {
        id: 42,
        context: "orders".into(),
        kind: "io.strangler.autopilot.rollback".into(),
        data: json!({ "to": "legacy" }),
        created_ms: 1_796_000_000_123,
    };
    let ce = cloud_event(&e);
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["id"], "42");
    assert_eq!(ce["subject"], "orders");
    assert_eq!(ce["time"], "2026-11-30T00:53:20.123Z");
    assert_eq!(ce["data"]["to"], "legacy");
    // RFC 4231 test case 2.
    let sig = signature("Jefe", b"what do ya want for nothing?");
    assert_eq!(
        sig,
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
