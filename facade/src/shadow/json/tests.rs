use super::*;

#[test]
fn strings_borrow_and_objects_are_sorted_with_the_last_repeat_kept() {
    let body = br#"{"b": "plain", "a": [1, -2, 2.5, null, true], "b": "esc\"aped"}"#;
    let v = J::parse(body).unwrap();
    let J::Obj(fields) = &v else { panic!("{v:?}") };
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0].0, "a");
    assert!(matches!(&fields[0].0, Cow::Borrowed(_)), "keys borrow");
    assert_eq!(
        J::get(fields, "b"),
        Some(&J::Str(Cow::Owned("esc\"aped".into())))
    );
    let mut text = String::new();
    v.canonical(&mut text);
    assert_eq!(text, r#"{"a":[1,-2,2.5,null,true],"b":"esc\"aped"}"#);
    assert!(J::parse(b"{\"a\": ").is_err());
}
