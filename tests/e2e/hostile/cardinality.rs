//! Bounded cardinality: one answer that differs in 20,000 map keys is one signature, one
//! example and one series, and `/metrics` stays valid Prometheus text whatever a label holds.

use axum::routing::get;
use axum::Router;
use strangler_catalog::MigrationState;

use crate::harness::*;
use crate::shadow::{catalog, until_metric};

/// Checks every line of a text exposition: a comment (`# HELP` / `# TYPE`), or a sample
/// `name{label="value",…} number` whose label values are properly escaped.
pub(crate) fn assert_valid_exposition(text: &str) {
    fn name(s: &str) -> usize {
        s.char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_alphabetic() || *c == '_' || *c == ':' || (*i > 0 && c.is_ascii_digit())
            })
            .count()
    }
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                "bad comment: {line:?}"
            );
            continue;
        }
        let n = name(line);
        assert!(n > 0, "no metric name: {line:?}");
        let mut rest = &line[n..];
        if let Some(labels) = rest.strip_prefix('{') {
            let mut chars = labels.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '}' {
                    end = Some(i);
                    break;
                }
                // name="value" followed by , or }
                let start = i;
                let mut j = start;
                while let Some(&(k, c)) = chars.peek() {
                    if c == '=' {
                        j = k;
                        break;
                    }
                    chars.next();
                }
                assert!(
                    name(&labels[start..j]) == j - start && j > start,
                    "bad label name in {line:?}"
                );
                chars.next(); // =
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "unquoted value in {line:?}"
                );
                loop {
                    match chars.next() {
                        Some((_, '\\')) => {
                            let esc = chars.next().map(|(_, c)| c);
                            assert!(
                                matches!(esc, Some('\\' | '"' | 'n')),
                                "bad escape in {line:?}"
                            );
                        }
                        Some((_, '"')) => break,
                        Some(_) => {}
                        None => panic!("unterminated label value in {line:?}"),
                    }
                }
                if chars.peek().map(|(_, c)| *c) == Some(',') {
                    chars.next();
                }
            }
            let end = end.unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
            rest = &labels[end + 1..];
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "bad value in {line:?}"
        );
    }
}

#[tokio::test]
async fn a_huge_map_of_differences_is_one_signature_and_metrics_stay_valid() {
    let map = |v: u32| {
        let entries: Vec<String> = (0..20_000).map(|i| format!("\"{i}\":{v}")).collect();
        format!(
            "{{\"prices\":{{{}}},\"odd\\nkey\\\"\\\\\":{v}}}",
            entries.join(",")
        )
    };
    let (legacy_body, new_body) = (map(1), map(2));
    let (legacy, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(move || {
            let b = legacy_body.clone();
            async move { ([("content-type", "application/json")], b) }
        }),
    ))
    .await;
    let (new, _) = axum_upstream(Router::new().route(
        "/orders/{id}",
        get(move || {
            let b = new_body.clone();
            async move { ([("content-type", "application/json")], b) }
        }),
    ))
    .await;
    let f = facade(legacy, |c| c.shadow.max_body_bytes = 4 << 20).await;
    f.facade
        .apply_catalog(&catalog(new, MigrationState::Shadow))
        .unwrap();
    let (status, _, _) = fetch(&f.url("/orders/1")).await;
    assert_eq!(status, 200);
    let text = until_metric(
        &f,
        "strangler_shadow_compared_total{context=\"orders\"} ",
        1,
    )
    .await;
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("strangler_shadow_mismatches_total{"))
        .collect();
    assert_eq!(series.len(), 2, "{series:#?}");
    assert!(
        text.contains("signature=\"value $.prices.*\"} 1"),
        "{series:#?}"
    );
    // The key with a newline, a quote and a backslash is escaped, not written raw.
    assert!(
        text.contains(r#"signature="value $.odd\nkey\"\\"} 1"#),
        "{series:#?}"
    );
    let mut all = String::new();
    f.facade.render_metrics(&mut all);
    assert_valid_exposition(&all);
    // One comparison, one example.
    let rollup = f.facade.telemetry().take_shadow_rollup();
    let examples: usize = rollup.iter().map(|r| r.examples.len()).sum();
    let signatures: usize = rollup.iter().map(|r| r.signatures.len()).sum();
    assert_eq!((examples, signatures), (1, 2));
}
