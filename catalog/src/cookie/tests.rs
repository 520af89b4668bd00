use super::*;

const FIELDS: [&[u8]; 3] = [
    b"theme=dark; lang=en",
    b"xsid=no;  sid=abc=def ;other=1; flag",
    b"sid=second",
];

#[test]
fn cookies_are_found_across_pairs_and_fields() {
    let find = |name| find(FIELDS, name);
    assert_eq!(find("theme"), Some(&b"dark"[..]));
    assert_eq!(find("lang"), Some(&b"en"[..]));
    assert_eq!(
        find("sid"),
        Some(&b"abc=def"[..]),
        "the first, all of its value"
    );
    assert_eq!(find("other"), Some(&b"1"[..]));
    assert_eq!(find("SID"), None, "names are case-sensitive");
    assert_eq!(find("flag"), None, "a piece without = is no cookie");
    assert_eq!(find("missing"), None);
    assert_eq!(super::find([], "sid"), None);
}

#[test]
fn a_cookie_is_removed_alone_and_every_other_piece_kept() {
    let kept = without(FIELDS, "sid");
    assert_eq!(
        kept,
        [
            &b"theme=dark"[..],
            b"lang=en",
            b"xsid=no",
            b"other=1",
            b"flag"
        ]
    );
    assert_eq!(without([&b";;  ; "[..]], "sid"), Vec::<&[u8]>::new());
}

#[test]
fn hostile_fields_cost_one_pass_and_never_fail() {
    let long = vec![b';'; 1 << 20];
    assert_eq!(find([&long[..]], "sid"), None);
    let eqs = vec![b'='; 1 << 20];
    assert_eq!(find([&eqs[..]], ""), Some(&eqs[1..]));
    assert_eq!(find([&[0xff, b'=', 0xfe][..]], "\u{fffd}"), None);
}
