use super::*;

#[test]
fn header_bytes_survive_the_text_round_trip() {
    let raw: Vec<u8> = (0x20..=0xff).collect();
    assert_eq!(from_latin1(&latin1(&raw)), raw);
}

#[test]
fn backoff_doubles_to_a_minute() {
    for (attempts, low) in [(1, 1000), (2, 2000), (4, 8000), (20, 60_000)] {
        let b = backoff_ms(Duration::from_secs(1), attempts);
        assert!(b >= low && b <= low + low / 5, "{attempts}: {b}");
    }
}

#[test]
fn backoff_starts_from_the_configured_wait() {
    let b = backoff_ms(Duration::from_millis(20), 1);
    assert!((20..=24).contains(&b), "{b}");
    let b = backoff_ms(Duration::from_millis(20), 3);
    assert!((80..=96).contains(&b), "{b}");
}

fn created(location: Option<&str>) -> http::response::Parts {
    let mut b = http::Response::builder().status(201);
    if let Some(l) = location {
        b = b.header("location", l);
    }
    b.body(()).unwrap().into_parts().0
}

fn mirrored(body: &str) -> OutboxItem {
    OutboxItem {
        method: "POST".into(),
        uri: "/orders?src=web".into(),
        body: body.as_bytes().to_vec(),
        ..OutboxItem::default()
    }
}

fn rule(from: &str, to: &str) -> MirrorId {
    MirrorId {
        from: from.into(),
        to: to.into(),
    }
}

#[test]
fn a_mirrored_create_carries_the_owners_id_where_the_route_says() {
    // From the answer's body into the request's body, its JSON type kept.
    let mut item = mirrored(r#"{"customer":{"id":"c9"},"total":5}"#);
    carry_id(
        &mut item,
        &rule("$.order.id", "$.id"),
        &created(None),
        Some(br#"{"order":{"id":1422}}"#),
    )
    .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&item.body).unwrap();
    assert_eq!(body["id"], 1422);
    assert_eq!(body["customer"]["id"], "c9", "the rest untouched");
    // From Location into a method and path; the query stays.
    let mut item = mirrored("{}");
    carry_id(
        &mut item,
        &rule("location", "PUT /orders/{id}"),
        &created(Some("/orders/A%2F7?x=1")),
        None,
    )
    .unwrap();
    assert_eq!(
        (item.method.as_str(), item.uri.as_str()),
        ("PUT", "/orders/A%2F7?src=web")
    );
    // An id from a body is encoded for the path.
    let mut item = mirrored("{}");
    carry_id(
        &mut item,
        &rule("$.id", "PUT /orders/{id}"),
        &created(None),
        Some(br#"{"id":"a b/c"}"#),
    )
    .unwrap();
    assert_eq!(item.uri, "/orders/a%20b%2Fc?src=web");
    // No id where the rule looks: an error, the mirror unchanged.
    let mut item = mirrored("{}");
    let err = carry_id(&mut item, &rule("location", "$.id"), &created(None), None).unwrap_err();
    assert!(err.contains("Location"), "{err}");
    assert_eq!(item.body, b"{}");
    let err = carry_id(
        &mut item,
        &rule("$.id", "$.id"),
        &created(None),
        Some(br#"{"id":{"nested":true}}"#),
    )
    .unwrap_err();
    assert!(err.contains("not a string or a number"), "{err}");
}
