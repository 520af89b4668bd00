use super::*;
use strangler_catalog::Service;

#[test]
fn route_envelope_parses() {
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    let v = Envelope::<NewRoute>::from_value(parse(
        r#"{"base_version":1,"reason":"x","context":"orders","methods":["GET"],"path":"/o/{id}"}"#,
    ))
    .unwrap();
    assert_eq!(
        (v.item.context.as_str(), v.base_version, v.reason.as_deref()),
        ("orders", Some(1), Some("x"))
    );
    let e = Envelope::<NewRoute>::from_value(parse(
        r#"{"base_version":1,"reason":"x","context":"o","path":"/","colour":1}"#,
    ))
    .unwrap_err();
    assert!(e.detail.contains("unknown field `colour`"), "{e:?}");
    let e = Envelope::<Service>::from_value(parse(
        r#"{"base_version":1,"name":"a","urls":[],"colour":1}"#,
    ))
    .unwrap_err();
    assert!(e.detail.contains("unknown field `colour`"), "{e:?}");
    let e = Envelope::<Nothing>::from_value(parse(r#"{"base_version":"one"}"#)).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("base_version"));
}
