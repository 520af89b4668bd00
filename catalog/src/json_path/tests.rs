use super::*;

fn path(s: &str) -> JsonPath {
    JsonPath::parse(s).unwrap()
}

#[test]
fn paths_parse_into_steps_and_print_as_written() {
    for s in [
        "$",
        "$.a",
        "$.items[*].updatedAt",
        "$.*.id",
        "$[*][*]",
        "$.a-b.c_d",
    ] {
        assert_eq!(path(s).to_string(), s);
    }
    assert_eq!(
        path("$.items[*].*").steps(),
        [Step::Key("items".into()), Step::Each, Step::AnyKey]
    );
    assert!(path("$").is_root());
}

#[test]
fn bad_paths_are_told_apart() {
    assert_eq!(
        JsonPath::parse("a.b"),
        Err(JsonPathError::NoRoot("a.b".into()))
    );
    assert_eq!(
        JsonPath::parse("$.a..b"),
        Err(JsonPathError::EmptyKey("$.a..b".into()))
    );
    assert_eq!(
        JsonPath::parse("$a"),
        Err(JsonPathError::NotAPath("$a".into()))
    );
    assert_eq!(
        JsonPath::parse("$.a[0]"),
        Err(JsonPathError::NotAPath("$.a[0]".into()))
    );
    let e = JsonPath::parse("x").unwrap_err().to_string();
    assert!(e.contains("must start with `$`"), "{e}");
}

#[test]
fn a_rule_matches_walked_paths_exactly_or_below() {
    let rule = path("$.items[*].*");
    let walked = [At::Key("items"), At::Element, At::Key("price")];
    assert!(rule.is(&walked));
    assert!(rule.covers(&walked));
    assert!(rule.covers(&[walked.as_slice(), &[At::Key("x")]].concat()));
    assert!(!rule.is(&walked[..2]));
    assert!(!rule.covers(&walked[..2]));
    assert!(!rule.is(&[At::Key("items"), At::Key("0"), At::Key("price")]));
    assert!(
        !path("$.*").is(&[At::Element]),
        "any key is not an array element"
    );
    assert!(path("$").covers(&walked), "the root covers everything");
}

#[test]
fn hostile_paths_parse_in_one_pass() {
    let long = format!("${}", "[*]".repeat(100_000));
    assert_eq!(path(&long).steps().len(), 100_000);
    let dots = format!("$.{}", "a.".repeat(100_000));
    assert!(matches!(
        JsonPath::parse(&dots),
        Err(JsonPathError::EmptyKey(_))
    ));
}
