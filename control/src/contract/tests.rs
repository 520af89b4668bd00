use super::*;

#[test]
fn hurl_asserts_every_value_but_ignored_and_redacted_ones() {
    let suite = Suite {
        context: "orders".into(),
        translator: None,
        shadow: serde_json::from_value(serde_json::json!({
            "ignore": ["$.updatedAt", "$.lines[*].note"],
            "redact": ["$.email"]
        }))
        .unwrap(),
        pairs: vec![ContractPair {
            route: "r1".into(),
            method: "POST".into(),
            uri: "/api/orders?x=1".into(),
            request_type: Some("application/json".into()),
            request_body: r#"{"sku":"TEA-1"}"#.into(),
            status: 200,
            response_type: Some("application/json".into()),
            response_body: r#"{"id":7,"ok":true,"say":"a \"b\"","email":"x","updatedAt":"now","lines":[{"qty":2,"note":"n"}],"odd key":null}"#.into(),
            ..ContractPair::default()
        }],
    };
    let h = hurl(&suite);
    for want in [
        "POST {{base}}/api/orders?x=1\nContent-Type: application/json\n```\n{\"sku\":\"TEA-1\"}\n```\nHTTP 200\n[Asserts]\n",
        "jsonpath \"$.id\" == 7\n",
        "jsonpath \"$.ok\" == true\n",
        "jsonpath \"$.say\" == \"a \\\"b\\\"\"\n",
        "jsonpath \"$.lines\" count == 1\n",
        "jsonpath \"$.lines[0].qty\" == 2\n",
        "jsonpath \"$['odd key']\" == null\n",
    ] {
        assert!(h.contains(want), "{want} not in\n{h}");
    }
    for absent in ["$.email", "$.updatedAt", "note"] {
        assert!(!h.contains(absent), "{absent} in\n{h}");
    }
}
