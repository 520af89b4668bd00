use super::*;

fn json(body: &str) -> Answer<'_> {
    Answer {
        headers: &[],
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: body.as_bytes(),
    }
}

fn sigs(a: &str, b: &str) -> Vec<String> {
    compare(&json(a), &json(b))
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// An ids-as-keys map that differs in 20,000 entries is one signature, and however many
/// paths differ, a comparison reports at most [`MAX_SIGNATURES`].
#[test]
fn data_keys_fold_and_signatures_are_capped() {
    let map = |v: u32| {
        let entries: Vec<String> = (0..20_000).map(|i| format!("\"{i}\":{v}")).collect();
        format!("{{\"prices\":{{{}}}}}", entries.join(","))
    };
    assert_eq!(sigs(&map(1), &map(2)), ["value $.prices.*"]);
    // Keys that look like ids fold in small objects too; plain names do not.
    assert_eq!(
        sigs(
            r#"{"9f86d081884c7d65":1,"b1":{"550e8400-e29b-41d4-a716-446655440000":1}}"#,
            r#"{"9f86d081884c7d65":2,"b1":{"550e8400-e29b-41d4-a716-446655440000":2}}"#
        ),
        ["value $.*", "value $.b1.*"]
    );
    let record = |v: u32| {
        let fields: Vec<String> = (0..50)
            .map(|i| {
                format!(
                    "\"field_{}\":{v}",
                    char::from(b'a' + (i % 26) as u8)
                        .to_string()
                        .repeat(i / 26 + 1)
                )
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    };
    let capped = sigs(&record(1), &record(2));
    assert_eq!(capped.len(), MAX_SIGNATURES);
    assert_eq!(
        capped.last().map(String::as_str),
        Some("more differences (too many to list)")
    );
}

#[test]
fn equal_json_matches_whatever_the_key_order() {
    assert!(sigs(
        r#"{"a":1,"b":[1,2],"c":{"d":"x"}}"#,
        r#"{"c":{"d":"x"},"b":[1,2],"a":1}"#
    )
    .is_empty());
}

#[test]
fn each_kind_of_difference_has_its_signature() {
    assert_eq!(sigs(r#"{"a":1,"b":2}"#, r#"{"a":1}"#), ["missing $.b"]);
    assert_eq!(sigs(r#"{"a":1}"#, r#"{"a":1,"n":0}"#), ["extra $.n"]);
    // As many keys on both sides, in another order, one of them not shared.
    assert_eq!(
        sigs(r#"{"a":1,"b":2}"#, r#"{"c":2,"a":1}"#),
        ["missing $.b", "extra $.c"]
    );
    assert_eq!(
        sigs(r#"{"total":"49.80"}"#, r#"{"total":4980}"#),
        ["type $.total"]
    );
    assert_eq!(
        sigs(
            r#"{"items":[{"p":1},{"p":2}]}"#,
            r#"{"items":[{"p":1},{"p":3}]}"#
        ),
        ["value $.items[*].p"],
        "array indexes fold into one signature"
    );
    assert_eq!(sigs("[1,2,3]", "[1,2]"), ["missing $[*]"]);
}

fn with(policy: serde_json::Value, a: &str, b: &str) -> Vec<String> {
    let policy: ShadowPolicy = serde_json::from_value(policy).unwrap();
    policy.check().unwrap();
    compare_with(&json(a), &json(b), &Rules::compile(&policy))
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn noise_rules_silence_what_they_name_and_nothing_else() {
    let a = r#"{"id":"3f2a8c1e-0000-4000-8000-000000000001","at":"2026-11-22T05:00:00Z","items":[{"p":1,"updatedAt":"x"},{"p":2,"updatedAt":"y"}],"tags":["a","b"],"price":10.0,"name":"Ann  Lee","code":"ab"}"#;
    let b = r#"{"id":"9b1c0d2e-1111-4000-8000-000000000002","at":"2026-11-22T05:00:01Z","items":[{"p":1,"updatedAt":"z"},{"p":2,"updatedAt":"w"}],"tags":["b","a"],"price":10.004,"name":"Ann Lee","code":"AB"}"#;
    assert_eq!(
        with(serde_json::json!({}), a, b).len(),
        7,
        "{:?}",
        with(serde_json::json!({}), a, b)
    );
    let policy = serde_json::json!({
        "ignore": ["$.items[*].updatedAt"],
        "unordered": ["$.tags"],
        "tolerance": { "$.price": 0.01 },
        "normalize": { "$.id": "uuid", "$.at": "timestamp", "$.name": "whitespace", "$.code": "case" }
    });
    assert!(
        with(policy.clone(), a, b).is_empty(),
        "{:?}",
        with(policy.clone(), a, b)
    );
    // The rules do not hide real differences.
    let c = b.replace(r#""p":2"#, r#""p":3"#).replace("10.004", "11");
    assert_eq!(with(policy, a, &c), ["value $.items[*].p", "value $.price"]);
    // A wildcard key.
    assert!(with(
        serde_json::json!({ "ignore": ["$.*.updatedAt"] }),
        r#"{"o":{"updatedAt":1}}"#,
        r#"{"o":{"updatedAt":2}}"#
    )
    .is_empty());
}

#[test]
fn examples_are_redacted_and_cut() {
    let policy: ShadowPolicy =
        serde_json::from_value(serde_json::json!({ "redact": ["$.card", "$.users[*].email"] }))
            .unwrap();
    let rules = Rules::compile(&policy);
    let body = br#"{"card":"4111-1111","users":[{"email":"a@b.c","n":1}],"ok":true}"#;
    let out = super::super::redact::text(body, Some("application/json"), &rules, 4096).unwrap();
    assert!(!out.contains("4111") && !out.contains("a@b.c"), "{out}");
    assert!(
        out.contains("[redacted]") && out.contains("\"n\":1"),
        "{out}"
    );
    let long = format!("{{\"x\":\"{}\"}}", "x".repeat(10_000));
    let cut = super::super::redact::text(long.as_bytes(), Some("application/json"), &rules, 4096);
    assert!(cut.is_some_and(|t| t.len() <= 4096 + 3));
    assert_eq!(
        super::super::redact::text(b"x", Some("text/plain"), &rules, 4096),
        None,
        "what cannot be redacted is not kept"
    );
}

#[test]
fn bad_rules_name_the_rule() {
    let bad: ShadowPolicy =
        serde_json::from_value(serde_json::json!({ "ignore": ["items.updatedAt"] })).unwrap();
    let (field, why) = bad.check().unwrap_err();
    assert_eq!(field, "ignore[items.updatedAt]");
    assert!(why.contains("must start with `$`"), "{why}");
    let bad: ShadowPolicy =
        serde_json::from_value(serde_json::json!({ "normalize": { "$.a": "soundex" } })).unwrap();
    assert_eq!(bad.check().unwrap_err().0, "normalize[$.a]");
}

#[test]
fn status_content_type_and_plain_bodies() {
    let legacy = Answer {
        headers: &[],
        status: 200,
        content_type: Some("text/html"),
        body: b"<p>hi</p>",
    };
    let same = legacy.clone();
    assert!(compare(&legacy, &same).is_empty());
    let other = Answer {
        headers: &[],
        status: 404,
        content_type: Some("application/json"),
        body: b"{}",
    };
    let s: Vec<String> = compare(&legacy, &other)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(s, ["status 200 -> 404", "header content-type", "body $"]);
    let garbage = Answer {
        headers: &[],
        status: 200,
        content_type: Some("application/json"),
        body: b"{oops",
    };
    let s: Vec<String> = compare(&json("{}"), &garbage)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(s, ["body $ (invalid JSON)"]);
}

/// The diff walks the translators' value (numbers as written, keys in document order), and
/// compares the way it did on its own value: numbers by kind and value, keys as a set, a
/// repeated key by its last value, large objects through a sorted index.
#[test]
fn numbers_keys_and_large_objects_compare_by_value() {
    // Same kind and value, however written; an integer is not a float.
    assert!(sigs(r#"{"a":1.0,"b":1e2}"#, r#"{"a":1.00,"b":100.0}"#).is_empty());
    assert_eq!(sigs(r#"{"a":1}"#, r#"{"a":1.0}"#), ["value $.a"]);
    assert_eq!(sigs(r#"{"a":-1}"#, r#"{"a":1}"#), ["value $.a"]);
    // Digits beyond an integer's range still compare (as floats).
    assert!(sigs(
        r#"{"id":123456789012345678901234567890}"#,
        r#"{"id":123456789012345678901234567890}"#
    )
    .is_empty());
    // Key order is not a difference; a repeated key counts by its last value.
    assert!(sigs(r#"{"a":1,"b":2,"a":3}"#, r#"{"b":2,"a":3}"#).is_empty());
    // A large object: keys found through the sorted index, both ways.
    let big = |extra: &str, v: u32| {
        let mut f: Vec<String> = (0..40).map(|i| format!("\"k{i:02}\":{v}")).collect();
        f.reverse();
        if !extra.is_empty() {
            f.push(format!("\"{extra}\":0"));
        }
        format!("{{{}}}", f.join(","))
    };
    assert_eq!(
        sigs(&big("", 1), &big("", 1).replace("\"k05\":1,", "")),
        ["missing $.k05"]
    );
    assert_eq!(
        sigs(&big("only_a", 1), &big("only_b", 1)),
        ["missing $.only_a", "extra $.only_b"]
    );
    let all = sigs(&big("", 1), &big("", 2));
    assert_eq!(
        (all.len(), all[0].as_str()),
        (MAX_SIGNATURES, "value $.k00")
    );
    // Unordered arrays of objects: the same members, keys in any order.
    let rules = serde_json::json!({ "unordered": ["$.tags"] });
    assert!(with(
        rules.clone(),
        r#"{"tags":[{"x":1,"y":2.0},{"z":3}]}"#,
        r#"{"tags":[{"z":3},{"y":2.00,"x":1}]}"#
    )
    .is_empty());
    assert_eq!(
        with(rules, r#"{"tags":[{"x":1}]}"#, r#"{"tags":[{"x":2}]}"#),
        ["value $.tags[*]"]
    );
}
