use super::*;

#[test]
fn label_values_and_help_are_escaped() {
    let mut e = Exposition::default();
    e.counter(
        "x_total",
        "Help with a \\ and a\nnewline.",
        &[("signature", "value $.a\n\"b\"\\c")],
        3.0,
    );
    let mut out = String::new();
    e.encode(&mut out);
    assert!(
        out.contains(r#"x_total{signature="value $.a\n\"b\"\\c"} 3"#),
        "{out}"
    );
    assert!(
        out.contains("# HELP x_total Help with a \\\\ and a\\nnewline."),
        "{out}"
    );
    assert_eq!(out.lines().count(), 3, "{out}");
}
