use super::route_spec_parts;

#[test]
fn templates_become_route_patterns() {
    let p = |t| route_spec_parts(t);
    assert_eq!(
        p("GET /orders/{id}/items/{id}"),
        Some(("GET".into(), "/orders/{id}/items/{id2}".into()))
    );
    assert_eq!(
        p("GET /invoices/{id}.pdf"),
        Some(("GET".into(), "/invoices/{id}".into()))
    );
    assert_eq!(p("POST /orders"), Some(("POST".into(), "/orders".into())));
    assert_eq!(p("(other paths)"), None);
    assert_eq!(p("GET /aaaa…"), None);
}
