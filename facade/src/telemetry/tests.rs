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
