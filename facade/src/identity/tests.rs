use super::*;

#[test]
fn the_session_cookie_is_found_and_removed_alone() {
    let mut h = HeaderMap::new();
    h.append(COOKIE, HeaderValue::from_static("theme=dark; SID=abc123"));
    h.append(COOKIE, HeaderValue::from_static("lang=nb"));
    assert_eq!(session_cookie(&h, "SID").as_deref(), Some("abc123"));
    assert_eq!(session_cookie(&h, "sid"), None);
    remove_cookie(&mut h, "SID");
    assert_eq!(
        h.get_all(COOKIE).iter().collect::<Vec<_>>(),
        vec![&HeaderValue::from_static("theme=dark; lang=nb")]
    );
    remove_cookie(&mut h, "theme");
    remove_cookie(&mut h, "lang");
    assert!(h.get(COOKIE).is_none());
}
