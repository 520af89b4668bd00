use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn strips_standard_and_named_hop_by_hop_fields() {
    let mut h = map(&[
        ("connection", "keep-alive, X-Secret , close"),
        ("connection", "x-other"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("x-secret", "1"),
        ("x-other", "2"),
        ("x-kept", "3"),
        ("trailer", "x-checksum"),
    ]);
    strip_hop_by_hop(&mut h, false);
    let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["x-kept", "trailer"]);
}

#[test]
fn connection_cannot_remove_host_or_content_length() {
    let mut h = map(&[
        ("connection", "host, content-length"),
        ("host", "a"),
        ("content-length", "3"),
    ]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.get("host").unwrap(), "a");
    assert_eq!(h.get("content-length").unwrap(), "3");
}

#[test]
fn keeps_upgrade_for_an_upgrade() {
    let mut h = map(&[
        ("connection", "Upgrade, x-a"),
        ("upgrade", "websocket"),
        ("x-a", "1"),
    ]);
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h.get("upgrade").unwrap(), "websocket");
    assert_eq!(h.get("connection").unwrap(), "upgrade");
    assert!(h.get("x-a").is_none());
}

#[test]
fn untrusted_peer_gets_fresh_forwarding_fields() {
    let mut h = map(&[
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil"),
        ("forwarded", "for=6.6.6.6"),
    ]);
    let host = HeaderValue::from_static("shop.example");
    let carried = Present::scan(&h).forwarding;
    set_forwarded(
        &mut h,
        &Forwarded {
            peer: &HeaderValue::from_static("10.0.0.1"),
            trusted: false,
            proto: &HTTP,
            host: Some(&host),
        },
        carried,
    );
    assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1");
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
    assert_eq!(h.get("x-forwarded-host").unwrap(), "shop.example");
    assert!(h.get("forwarded").is_none());
}

#[test]
fn untrusted_peer_gets_exactly_one_of_each_whatever_it_sent() {
    let host = HeaderValue::from_static("shop.example");
    let sent: [&[(&str, &str)]; 6] = [
        &[],
        &[("accept", "*/*")],
        &[("forwarded", "for=6.6.6.6")],
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "7.7.7.7"),
        ],
        &[("x-forwarded-host", "evil")],
        &[("X-Forwarded-Proto", "https"), ("accept", "*/*")],
    ];
    for fields in sent {
        for with_host in [true, false] {
            let mut h = map(fields);
            let carried = Present::scan(&h).forwarding;
            set_forwarded(
                &mut h,
                &Forwarded {
                    peer: &HeaderValue::from_static("10.0.0.1"),
                    trusted: false,
                    proto: &HTTP,
                    host: with_host.then_some(&host),
                },
                carried,
            );
            let all = |name: &str| h.get_all(name).iter().cloned().collect::<Vec<_>>();
            assert_eq!(all("x-forwarded-for"), ["10.0.0.1"], "{fields:?}");
            assert_eq!(all("x-forwarded-proto"), ["http"], "{fields:?}");
            let want_host: &[&str] = if with_host { &["shop.example"] } else { &[] };
            assert_eq!(all("x-forwarded-host"), want_host, "{fields:?}");
            assert!(all("forwarded").is_empty(), "{fields:?}");
        }
    }
}

#[test]
fn trusted_peer_chain_is_appended() {
    let mut h = map(&[
        ("x-forwarded-for", "1.1.1.1"),
        ("x-forwarded-for", "2.2.2.2, 3.3.3.3"),
        ("x-forwarded-proto", "https"),
    ]);
    let carried = Present::scan(&h).forwarding;
    set_forwarded(
        &mut h,
        &Forwarded {
            peer: &HeaderValue::from_static("::1"),
            trusted: true,
            proto: &HTTP,
            host: None,
        },
        carried,
    );
    assert_eq!(
        h.get("x-forwarded-for").unwrap(),
        "1.1.1.1, 2.2.2.2, 3.3.3.3, ::1"
    );
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
}

#[test]
fn te_trailers_detection() {
    assert!(te_has_trailers(&map(&[("te", "gzip, trailers")])));
    assert!(te_has_trailers(&map(&[("te", "Trailers;q=1")])));
    assert!(!te_has_trailers(&map(&[("te", "gzip")])));
}

#[test]
fn rewrites_only_the_exact_upstream_origin() {
    let up = "http://127.0.0.1:8000";
    let public = "http://shop.example";
    let v = |s: &str| HeaderValue::from_str(s).unwrap();
    assert_eq!(
        rewrite_origin(&v("http://127.0.0.1:8000/login?next=/"), up, public).unwrap(),
        "http://shop.example/login?next=/"
    );
    assert_eq!(
        rewrite_origin(&v("HTTP://127.0.0.1:8000"), up, public).unwrap(),
        "http://shop.example"
    );
    assert!(rewrite_origin(&v("http://127.0.0.1:80001/x"), up, public).is_none());
    assert!(rewrite_origin(&v("/relative"), up, public).is_none());
    assert!(rewrite_origin(&v("http://other/x"), up, public).is_none());
}

#[test]
fn present_notes_each_field_the_request_path_edits() {
    type Flag = fn(&Present) -> bool;
    let cases: [(&str, Flag); 14] = [
        ("connection", |p| p.hop_by_hop),
        ("keep-alive", |p| p.hop_by_hop),
        ("proxy-connection", |p| p.hop_by_hop),
        ("te", |p| p.hop_by_hop && p.te),
        ("transfer-encoding", |p| p.hop_by_hop && p.transfer_encoding),
        ("upgrade", |p| p.hop_by_hop && p.upgrade),
        ("expect", |p| p.expect),
        ("content-length", |p| p.content_length),
        ("forwarded", |p| p.forwarding),
        ("x-forwarded-for", |p| p.forwarding),
        ("X-Forwarded-Proto", |p| p.forwarding),
        ("x-forwarded-host", |p| p.forwarding),
        ("x-strangler-shadow", |p| p.internal),
        ("X-Strangler-Identity", |p| p.internal),
    ];
    for (name, flag) in cases {
        let present = Present::scan(&map(&[("accept", "*/*"), (name, "1")]));
        assert!(flag(&present), "{name}: {present:?}");
    }
    // Names that only look alike are not noted.
    let lookalikes = map(&[
        ("x-forwarded", "1"),
        ("x-forwarded-for-real", "1"),
        ("x-strangler", "1"),
        ("x-te", "1"),
        ("accept", "*/*"),
        ("user-agent", "t"),
    ]);
    assert_eq!(Present::scan(&lookalikes), Present::default());
}

#[test]
fn present_counts_host_fields_up_to_two() {
    assert_eq!(Present::scan(&map(&[])).hosts, 0);
    assert_eq!(Present::scan(&map(&[("host", "a")])).hosts, 1);
    assert_eq!(
        Present::scan(&map(&[("host", "a"), ("host", "b")])).hosts,
        2
    );
    let many: Vec<(&str, &str)> = (0..300).map(|_| ("host", "a")).collect();
    assert_eq!(Present::scan(&map(&many)).hosts, 2);
}

/// The fields sent after a request's own in place of `set_forwarded` and `Via` are exactly
/// the ones those appends leave at the end of the map, in the same order.
#[test]
fn appended_forwarding_is_what_set_forwarded_and_via_append() {
    let host = HeaderValue::from_static("shop.example");
    let via = HeaderValue::from_static("1.1 strangler");
    for (with_host, proto) in [
        (true, &HTTP),
        (false, &HTTPS),
        (true, &HTTPS),
        (false, &HTTP),
    ] {
        let fwd = Forwarded {
            peer: &HeaderValue::from_static("10.0.0.1"),
            trusted: false,
            proto,
            host: with_host.then_some(&host),
        };
        let mut h = map(&[("host", "shop.example"), ("accept", "*/*")]);
        let carried = Present::scan(&h).forwarding;
        assert!(!carried);
        set_forwarded(&mut h, &fwd, carried);
        h.append(&VIA, via.clone());
        let from_map: Vec<(String, HeaderValue)> = h
            .iter()
            .skip(2)
            .map(|(n, v)| (n.as_str().to_owned(), v.clone()))
            .collect();
        let mut out = [(&VIA, &via); 4];
        let n = appended_forwarding(&fwd, &via, &mut out);
        let appended: Vec<(String, HeaderValue)> = out[..n]
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), (*v).clone()))
            .collect();
        assert_eq!(appended, from_map, "host {with_host}, proto {proto:?}");
    }
}
