use super::*;

#[test]
fn counts_are_taken_once_and_bucketed_by_latency() {
    let t = Traffic::default();
    let orders = t.of("orders");
    orders.record(Side::New, 200, Duration::from_micros(800), false);
    orders.record(Side::New, 503, Duration::from_millis(2), false);
    orders.record(Side::New, 200, Duration::from_millis(30), false);
    orders.record(Side::Legacy, 200, Duration::from_secs(20), true);
    t.unclaimed()
        .record(Side::Legacy, 404, Duration::from_millis(1), false);
    assert!(Arc::ptr_eq(&orders, &t.of("orders")));
    let mut rows = t.take(7);
    rows.sort_by(|a, b| (&a.context, &a.side).cmp(&(&b.context, &b.side)));
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (
            rows[0].context.as_str(),
            rows[0].side.as_str(),
            rows[0].requests
        ),
        ("", "legacy", 1)
    );
    let new = &rows[2];
    assert_eq!((new.side.as_str(), new.requests, new.errors), ("new", 3, 1));
    // 0.8 ms → ≤1, 2 ms → ≤2, 30 ms → ≤50.
    assert_eq!((new.buckets[0], new.buckets[1], new.buckets[5]), (1, 1, 1));
    assert_eq!(
        rows[1].buckets[LATENCY_BOUNDS_MS.len()],
        1,
        "20 s is in the open bucket"
    );
    assert_eq!((rows[1].fallbacks, new.fallbacks), (1, 0));
    assert!(t.take(8).is_empty(), "taken once");
    t.restore(&rows);
    assert_eq!(t.take(9).iter().map(|r| r.requests).sum::<i64>(), 5);
    // `/metrics` sees totals that only grow, whatever the flushes took.
    let totals = orders.totals(Side::New);
    assert_eq!((totals.requests, totals.errors), (3, 1));
    assert_eq!(totals.buckets.iter().sum::<u64>(), 3);
    assert_eq!(totals.latency_us, 800 + 2_000 + 30_000);
    orders.record(Side::New, 200, Duration::from_millis(1), false);
    assert_eq!(orders.totals(Side::New).requests, 4);
    assert_eq!(t.take(10).iter().map(|r| r.requests).sum::<i64>(), 1);
    let names: Vec<String> = t.contexts().iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names, ["orders", ""]);
}

#[test]
fn ids_become_placeholders_and_kinds_stay() {
    for (path, want) in [
        ("/orders/123", "GET /orders/{id}"),
        ("/orders/123/items/7", "GET /orders/{id}/items/{id}"),
        ("/invoices/42.pdf", "GET /invoices/{id}.pdf"),
        (
            "/users/550e8400-e29b-41d4-a716-446655440000/cart",
            "GET /users/{id}/cart",
        ),
        ("/blobs/9f86d081884c7d65", "GET /blobs/{id}"),
        ("/t/ord_8f3k2j1h9g7f6d5s", "GET /t/{id}"),
        ("/", "GET /"),
        ("/v2/orders", "GET /v2/orders"),
        ("/static/app.css", "GET /static/app.css"),
        ("/cafe/facade", "GET /cafe/facade"),
        ("/decade", "GET /decade"),
    ] {
        assert_eq!(template("GET", path), want, "{path}");
    }
    let long = format!("/{}", "a".repeat(500));
    assert!(template("GET", &long).len() <= MAX_TEMPLATE_BYTES + 4);
}

#[test]
fn unclaimed_requests_are_counted_per_template_and_capped() {
    let t = Traffic::default();
    t.unclaimed_path("GET", "/orders/1")
        .record(Side::Legacy, 200, Duration::from_millis(2));
    t.unclaimed_path("GET", "/orders/2")
        .record(Side::Legacy, 502, Duration::from_millis(4));
    t.unclaimed_path("POST", "/orders")
        .record(Side::Legacy, 201, Duration::from_millis(1));
    t.route("orders", "r1")
        .record(Side::New, 200, Duration::from_millis(1));
    let mut rows = t.take_paths(60);
    rows.sort_by(|a, b| (&a.context, &a.path).cmp(&(&b.context, &b.path)));
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.context.as_str(),
                r.path.as_str(),
                r.side.as_str(),
                r.requests,
                r.errors,
                r.latency_us,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("", "GET /orders/{id}", "legacy", 2, 1, 6000),
            ("", "POST /orders", "legacy", 1, 0, 1000),
            ("orders", "r1", "new", 1, 0, 1000),
        ]
    );
    assert!(t.take_paths(61).is_empty(), "taken once");
    t.restore_paths(&rows);
    assert_eq!(t.take_paths(62).len(), 3);
    for i in 0..MAX_TEMPLATES + 10 {
        t.unclaimed_path("GET", &format!("/p{i}x"))
            .record(Side::Legacy, 200, Duration::ZERO);
    }
    let rows = t.take_paths(63);
    // Two templates were known: MAX - 2 more fit, the last 12 are counted together.
    assert_eq!(rows.len(), MAX_TEMPLATES - 1);
    let other = rows.iter().find(|r| r.path == OTHER).map(|r| r.requests);
    assert_eq!(
        other,
        Some(12),
        "the paths beyond the cap are counted together"
    );
    // While the crawl goes on, new paths still count together; once a window passes
    // without it, the templates it made are let go and new paths appear again.
    for i in 0..MAX_TEMPLATES {
        t.unclaimed_path("GET", &format!("/p{i}x"))
            .record(Side::Legacy, 200, Duration::ZERO);
    }
    t.unclaimed_path("GET", "/fresh")
        .record(Side::Legacy, 200, Duration::ZERO);
    let rows = t.take_paths(64);
    assert!(!rows.iter().any(|r| r.path == "GET /fresh"));
    assert!(t.take_paths(65).is_empty());
    t.unclaimed_path("GET", "/fresh")
        .record(Side::Legacy, 200, Duration::ZERO);
    let rows = t.take_paths(66);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].path, "GET /fresh");
}

/// The template as first written (by `str::split` and `rsplit_once`), kept as the reference
/// the byte-wise walk must agree with.
fn template_by_chars(method: &str, path: &str) -> String {
    let mut out = format!("{method} ");
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let (stem, ext) = match segment.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() && ext.len() <= 5 => (stem, Some(ext)),
            _ => (segment, None),
        };
        if is_id(stem) {
            out.push_str("{id}");
            if let Some(ext) = ext {
                out.push('.');
                out.push_str(ext);
            }
        } else {
            out.push_str(segment);
        }
        if out.len() > MAX_TEMPLATE_BYTES {
            let mut cut = MAX_TEMPLATE_BYTES;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    out
}

#[test]
fn a_method_past_the_bound_is_cut_as_the_walk_cuts_it() {
    let method = "M".repeat(250);
    for path in ["", "/", "/abc", "/é/x"] {
        assert_eq!(
            template(&method, path),
            template_by_chars(&method, path),
            "{path:?}"
        );
    }
}

#[test]
fn the_byte_walk_agrees_with_the_char_split_on_edges() {
    let long_id = format!("/{}", "7".repeat(300));
    let wide = format!("/{}", "é".repeat(150));
    let long_words = "/abc".repeat(20_000);
    for path in [
        "",
        "/",
        "//",
        "///",
        "a",
        "/.",
        "/..",
        "/.x",
        "/1.",
        "/1.pdf",
        "/1.toolong",
        "/1.a.b",
        "/a.1",
        "/x/",
        "/x//y",
        "/ß/123/ü.txt",
        "/12345678-abcd",
        "/é.1",
        long_id.as_str(),
        wide.as_str(),
        long_words.as_str(),
    ] {
        assert_eq!(
            template("GET", path),
            template_by_chars("GET", path),
            "{path:?}"
        );
    }
}

proptest::proptest! {
    #[test]
    fn the_byte_walk_agrees_with_the_char_split(path in "[/.a-f0-9xé_-]{0,260}") {
        proptest::prop_assert_eq!(template("PUT", &path), template_by_chars("PUT", &path));
    }

    #[test]
    fn a_path_without_digits_agrees_with_the_char_split(path in "[/.a-zé_-]{0,260}") {
        proptest::prop_assert_eq!(template("GET", &path), template_by_chars("GET", &path));
    }

    #[test]
    fn a_reused_buffer_gives_what_a_new_one_does(a in "[/.a-z0-9]{0,40}", b in "[/.a-z0-9]{0,40}") {
        let mut out = String::new();
        template_into(&mut out, "GET", &a);
        template_into(&mut out, "GET", &b);
        proptest::prop_assert_eq!(out, template("GET", &b));
    }
}
