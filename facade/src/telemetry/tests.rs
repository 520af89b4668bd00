use super::*;

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix} in\n{text}"))
}

#[test]
fn renders_classes_histogram_and_gauges() {
    let t = Arc::new(Telemetry::default());
    t.record_response(200, Duration::from_micros(300));
    t.record_response(204, Duration::from_millis(3));
    t.record_response(502, Duration::from_secs(20));
    t.record_upstream_error(FailureKind::Connect);
    t.record_answer(Answer::UpstreamUnreachable);
    let guard = t.request_started();
    let mut out = String::new();
    t.render(&mut out);
    assert_eq!(
        line(&out, "strangler_requests_total{class=\"2xx\"}"),
        "strangler_requests_total{class=\"2xx\"} 2"
    );
    assert_eq!(
        line(&out, "strangler_requests_total{class=\"5xx\"}"),
        "strangler_requests_total{class=\"5xx\"} 1"
    );
    // 300 µs falls in the first bucket; 3 ms in le=0.005; 20 s only in +Inf.
    assert!(out.contains("strangler_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
    assert!(out.contains("strangler_request_duration_seconds_bucket{le=\"0.005\"} 2\n"));
    assert!(out.contains("strangler_request_duration_seconds_bucket{le=\"10\"} 2\n"));
    assert!(out.contains("strangler_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert!(out.contains("strangler_upstream_errors_total{kind=\"connect\"} 1\n"));
    assert!(out.contains("strangler_facade_answers_total{reason=\"upstream_unreachable\"} 1\n"));
    assert!(out.contains("strangler_requests_in_flight 1\n"));
    drop(guard);
    let mut out = String::new();
    t.render(&mut out);
    assert!(out.contains("strangler_requests_in_flight 0\n"));
}

/// A context keeps at most [`SIGNATURES_PER_CONTEXT`] distinct signatures (the rest count as
/// one), and a comparison stores one example whatever its number of signatures.
#[test]
fn signatures_per_context_and_examples_per_comparison_are_bounded() {
    use crate::shadow::diff::{Kind, Signature};
    let t = Telemetry::default();
    let example = strangler_catalog::ShadowExample {
        signature: String::new(),
        at_ms: 0,
        method: "GET".into(),
        path: "/x".into(),
        legacy_status: 200,
        new_status: 200,
        legacy_body: String::new(),
        new_body: String::new(),
    };
    for batch in 0..5 {
        let sigs: Vec<Signature> = (0..30)
            .map(|i| Signature {
                kind: Kind::Value,
                path: format!("$.f{batch}_{i}"),
            })
            .collect();
        t.record_shadow(
            "orders",
            "r",
            &sigs,
            Duration::ZERO,
            Duration::ZERO,
            (Some(example.clone()), None),
        );
    }
    let mut out = String::new();
    t.render(&mut out);
    let series = out
        .lines()
        .filter(|l| l.starts_with("strangler_shadow_mismatches_total{"))
        .count();
    assert_eq!(series, SIGNATURES_PER_CONTEXT + 1, "{out}");
    assert!(
        out.contains(&format!("signature=\"{OTHER_SIGNATURE}\"}} 50")),
        "{out}"
    );
    let rollup = t.take_shadow_rollup();
    assert_eq!(rollup.len(), 1);
    assert_eq!(rollup[0].examples.len(), 5, "one example per comparison");
    assert_eq!(rollup[0].signatures.len(), SIGNATURES_PER_CONTEXT + 1);
}
