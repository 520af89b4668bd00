use super::*;

#[test]
fn secret_names_are_recognised_and_others_not() {
    for n in [
        "password",
        "new_password",
        "X-Api-Key",
        "x-auth-token",
        "access_token",
        "token",
        "api_key",
        "apiKey",
        "client_secret",
        "session",
        "sid",
        "Authorization",
        "cvv",
    ] {
        assert!(is_secret_name(n), "{n}");
    }
    for n in [
        "total",
        "customer",
        "orderId",
        "keyboard",
        "status",
        "x-customer",
        "key",
        "code",
    ] {
        assert!(!is_secret_name(n), "{n}");
    }
    assert!(is_secret_param("key") && is_secret_param("code") && !is_secret_param("q"));
}

#[test]
fn queries_forms_headers_and_json_are_redacted() {
    assert_eq!(
        target("/a?token=T1&x=1&api_key=K2&session=S&q=ok", &["x".into()]),
        "/a?token=%5Bredacted%5D&x=%5Bredacted%5D&api_key=%5Bredacted%5D&session=%5Bredacted%5D&q=ok"
    );
    let mut h = http::HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("x-api-key", "K".parse().unwrap());
    h.insert("x-auth-token", "T".parse().unwrap());
    h.insert("x-tenant", "t1".parse().unwrap());
    h.insert("x-other", "o".parse().unwrap());
    assert_eq!(
        headers(&h, &["x-tenant".into(), "x-api-key".into()]),
        [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-tenant".to_owned(), "t1".to_owned())
        ]
    );
    let rules = Rules::compile(&strangler_catalog::ShadowPolicy {
        redact: vec!["$.card".into()],
        ..Default::default()
    });
    let out = body(
        br#"{"card":"4111","user":{"password":"p","name":"n"},"items":[{"token":"t"}]}"#,
        Some("application/json; charset=utf-8"),
        &rules,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["card"], BLANK);
    assert_eq!(v["user"]["password"], BLANK);
    assert_eq!(v["user"]["name"], "n");
    assert_eq!(v["items"][0]["token"], BLANK);
    assert_eq!(
        body(
            b"user=a&password=p",
            Some("application/x-www-form-urlencoded"),
            &rules
        ),
        Some(b"user=a&password=%5Bredacted%5D".to_vec())
    );
}

#[test]
fn what_cannot_be_redacted_is_not_stored() {
    let rules = Rules::default();
    assert_eq!(body(b"secret=1", Some("text/plain"), &rules), None);
    assert_eq!(body(b"\x00\x01", None, &rules), None);
    assert_eq!(body(b"{not json", Some("application/json"), &rules), None);
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    assert_eq!(
        body(deep.as_bytes(), Some("application/json"), &rules),
        None
    );
    assert_eq!(body(b"", None, &rules), Some(Vec::new()));
}
