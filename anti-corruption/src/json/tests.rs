use super::*;

fn round(s: &str) -> String {
    match Value::parse(s.as_bytes()) {
        Ok(v) => v.to_json(),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn numbers_and_key_order_survive_a_round_trip() {
    assert_eq!(
        round(r#" {"z": 1.10, "a": 123456789012345678901234567890, "m": -0.5e-7} "#),
        r#"{"z":1.10,"a":123456789012345678901234567890,"m":-0.5e-7}"#
    );
}

#[test]
fn strings_escape_and_unescape() {
    assert_eq!(
        round(r#"["a\"b\\c\n\u00e9\ud83d\ude00/\u0001", "plain"]"#),
        "[\"a\\\"b\\\\c\\né😀/\\u0001\",\"plain\"]"
    );
}

#[test]
fn bad_documents_are_errors_not_panics() {
    for bad in [
        "",
        "{",
        "[1,]",
        "{\"a\"}",
        "01",
        "1.",
        "-",
        "\"\\ud800\"",
        "\"\\x\"",
        "tru",
        "[1] 2",
        "{\"a\":1,}",
        "\"\u{1}\"",
        "1e",
        "\"abc",
    ] {
        assert!(Value::parse(bad.as_bytes()).is_err(), "{bad:?} parsed");
    }
    assert_eq!(
        Value::parse(&[b'"', 0xff, b'"']).map_err(|e| e.what),
        Err("invalid UTF-8")
    );
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let err = Value::parse(deep.as_bytes()).err();
    assert_eq!(
        err.map(|e| e.what),
        Some("JSON nested deeper than 512 levels")
    );
    let ok = "[".repeat(500) + &"]".repeat(500);
    let v = Value::parse(ok.as_bytes());
    assert_eq!(v.as_ref().map(Value::depth), Ok(499));
}

#[test]
fn repeated_keys_keep_the_last_value() {
    assert_eq!(round(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
}

#[test]
fn paths_parse_and_reach_values() {
    let p = Path::parse("$.items[*][\"unit.price\"]").map(|p| p.segs);
    assert_eq!(
        p,
        Ok(vec![
            Seg::Key("items".into()),
            Seg::Each,
            Seg::Key("unit.price".into())
        ])
    );
    for bad in ["items", "$.", "$..a", "$[x]", "$a", "$[\"a"] {
        assert!(Path::parse(bad).is_err(), "{bad}");
    }
    let mut v = Value::parse(br#"{"a":[{"b":1},{"b":2},{"c":3}]}"#).unwrap_or(Value::Null);
    let mut seen = Vec::new();
    let path = Path::parse("$.a[*].b").map(|p| p.segs).unwrap_or_default();
    let _ = each_mut::<()>(&mut v, &path, &mut |v, at| {
        seen.push(format!("{at}={}", v.to_json()));
        Ok(())
    });
    assert_eq!(seen, ["$.a[0].b=1", "$.a[1].b=2"]);
}

#[test]
fn put_creates_objects_and_names_the_obstacle() {
    let mut v = Value::parse(br#"{"a":5}"#).unwrap_or(Value::Null);
    let segs = |p: &str| Path::parse(p).map(|p| p.segs).unwrap_or_default();
    assert_eq!(put(&mut v, &segs("$.b.c"), Value::int(1)), Ok(()));
    assert_eq!(v.to_json(), r#"{"a":5,"b":{"c":1}}"#);
    assert_eq!(
        put(&mut v, &segs("$.a.x"), Value::Null),
        Err("$.a: the parent is a number, not an object".to_owned())
    );
    assert_eq!(take(&mut v, &segs("$.b.c")), Some(Value::int(1)));
    assert_eq!(v.to_json(), r#"{"a":5,"b":{}}"#);
}

/// Bytes a parsed value takes: every value slot its containers hold (their capacity), and the
/// heap text of strings, numbers and keys too long to be inline.
fn footprint(v: &Value) -> usize {
    let text = |t: &Text| {
        if t.is_heap_allocated() {
            t.capacity()
        } else {
            0
        }
    };
    let mut total = std::mem::size_of::<Value>();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Num(t) | Value::Str(t) => total += text(t),
            Value::Arr(items) => {
                total += items.capacity() * std::mem::size_of::<Value>();
                stack.extend(items.iter());
            }
            Value::Obj(fields) => {
                total += fields.capacity() * std::mem::size_of::<(Text, Value)>();
                for (k, v) in fields {
                    total += text(k);
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    total
}

/// The shapes that cost the most per byte of text stay within the factor the memory budget
/// charges (an array of one-digit numbers took ~37 times its size before values were compact).
#[test]
fn hostile_shapes_stay_within_the_charged_factor() {
    let n = 50_000;
    let shapes = [
        format!("[{}1]", "1,".repeat(n)),
        format!("[{}[]]", "[],".repeat(n)),
        format!("[{}{{}}]", "{},".repeat(n)),
        format!("[{}\"\"]", "\"\",".repeat(n)),
        format!("[{}null]", "null,".repeat(n)),
        format!(
            "{{{}\"z\":1}}",
            (0..n).map(|i| format!("\"{i}\":1,")).collect::<String>()
        ),
        format!("[{}]", vec!["[[[[1]]]]"; n].join(",")),
        format!("\"{}\"", "x".repeat(n)),
    ];
    for text in shapes {
        let v = Value::parse(text.as_bytes()).unwrap();
        let used = footprint(&v);
        assert!(
            used <= PARSED_BYTES_PER_BYTE * text.len() + 1024,
            "{}…: {used} bytes parsed from {} ({:.1}×)",
            &text[..20],
            text.len(),
            used as f64 / text.len() as f64
        );
    }
}

/// 120,000 keys, half of them repeated: parsed in one pass (this took ~50 s with a scan per
/// key), each repeated key keeping its first place and its last value.
#[test]
fn many_keys_and_many_repeats() {
    let n = 60_000;
    let mut text = String::from("{");
    for i in 0..n {
        text.push_str(&format!("\"k{i}\":{i},"));
    }
    for i in 0..n {
        text.push_str(&format!("\"k{i}\":\"again {i}\","));
    }
    text.push_str("\"end\":true}");
    let v = Value::parse(text.as_bytes()).unwrap();
    let Value::Obj(fields) = &v else {
        panic!("not an object")
    };
    assert_eq!(fields.len(), n + 1);
    assert_eq!(fields[0], (Text::new("k0"), Value::str("again 0")));
    assert_eq!(fields[n - 1].1, Value::str(format!("again {}", n - 1)));
    assert_eq!(fields[n].0, "end");
}

#[test]
fn deep_and_long_documents() {
    let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(Value::parse(ok.as_bytes()).is_ok());
    let deep = format!(
        "{}1{}",
        "[".repeat(MAX_DEPTH + 1),
        "]".repeat(MAX_DEPTH + 1)
    );
    assert!(Value::parse(deep.as_bytes()).is_err());
    // An empty container is a level too: 512 levels pass, 513 do not, whatever is innermost.
    for empty in ["[]", "{}"] {
        let at_limit = format!(
            "{}{empty}{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(Value::parse(at_limit.as_bytes()).is_ok(), "{empty}");
        let past = format!("{}{empty}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(Value::parse(past.as_bytes()).is_err(), "{empty}");
    }
    let long = format!("\"{}\\n{}\"", "é".repeat(200_000), "x".repeat(200_000));
    let v = Value::parse(long.as_bytes()).unwrap();
    assert_eq!(v.as_str().map(str::len), Some(400_000 + 1 + 200_000));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any object, repeats included, parses to what inserting its pairs one by one gives,
        /// small (scanned) or large (sorted).
        #[test]
        fn repeated_keys_keep_the_first_place_and_the_last_value(
            pairs in prop::collection::vec(("[a-e]{1,2}", 0i64..1000), 0..80)
        ) {
            let text = format!(
                "{{{}}}",
                pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(",")
            );
            let mut model: Vec<(Text, Value)> = Vec::new();
            for (k, v) in &pairs {
                Value::insert(&mut model, k, Value::int(*v));
            }
            prop_assert_eq!(Value::parse(text.as_bytes()), Ok(Value::Obj(model)));
        }

        /// Nested shapes round-trip, and hostile bytes are refused without a panic.
        #[test]
        fn documents_round_trip_and_garbage_is_refused(
            depth in 0usize..600,
            width in 0usize..50,
            garbage in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let inner = format!("[{}]", vec!["{\"a\":[1,\"x\",null]}"; width].join(","));
            let text = format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth));
            let total = depth + if width > 0 { 3 } else { 1 };
            match Value::parse(text.as_bytes()) {
                Ok(v) => {
                    prop_assert!(total <= MAX_DEPTH);
                    prop_assert_eq!(v.to_json(), text);
                }
                Err(_) => prop_assert!(total > MAX_DEPTH),
            }
            let _ = Value::parse(&garbage);
        }
    }
}
