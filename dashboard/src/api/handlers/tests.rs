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

#[test]
fn merge_patches_follow_rfc_7396() {
    let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    // Cases from the RFC's appendix.
    for (target, patch, want) in [
        (r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
        (r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#),
        (r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#),
        (r#"{"a":"b","b":"c"}"#, r#"{"a":null}"#, r#"{"b":"c"}"#),
        (r#"{"a":["b"]}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
        (r#"{"a":"c"}"#, r#"{"a":["b"]}"#, r#"{"a":["b"]}"#),
        (
            r#"{"a":{"b":"c"}}"#,
            r#"{"a":{"b":"d","c":null}}"#,
            r#"{"a":{"b":"d"}}"#,
        ),
        (r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#),
        (r#"{"e":null}"#, r#"{"a":1}"#, r#"{"e":null,"a":1}"#),
        (r#"[1,2]"#, r#"{"a":"b","c":null}"#, r#"{"a":"b"}"#),
        (
            r#"{}"#,
            r#"{"a":{"bb":{"ccc":null}}}"#,
            r#"{"a":{"bb":{}}}"#,
        ),
    ] {
        let mut t = j(target);
        merge_patch(&mut t, j(patch));
        assert_eq!(t, j(want), "{target} + {patch}");
    }
}
