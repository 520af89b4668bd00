use super::*;

fn run(code: &str, input: &str) -> Result<String, String> {
    let jq = Jq::compile(code)?;
    let v = Value::parse(input.as_bytes()).map_err(|e| e.to_string())?;
    jq.run(&v).map(|v| v.to_json())
}

#[test]
fn runs_with_the_standard_library_and_keeps_big_numbers() {
    assert_eq!(
        run(
            "{id: .orderId, lines: (.items | map(.sku)), n: (.items | length)}",
            r#"{"orderId": 123456789012345678901234567890, "items": [{"sku":"a"},{"sku":"b"}]}"#
        ),
        Ok(r#"{"id":123456789012345678901234567890,"lines":["a","b"],"n":2}"#.to_owned())
    );
}

#[test]
fn errors_say_what_and_where() {
    let e = run("{a: .b", "{}").err().unwrap_or_default();
    assert!(e.starts_with("jq: expected"), "{e}");
    let e = run("nosuchfn(1)", "{}").err().unwrap_or_default();
    assert!(e.contains("undefined") && e.contains("nosuchfn"), "{e}");
    let e = run(".a + 1", r#"{"a":"x"}"#).err().unwrap_or_default();
    assert!(e.starts_with("jq failed"), "{e}");
    let e = run("empty", "{}").err().unwrap_or_default();
    assert!(e.contains("no output"), "{e}");
}
