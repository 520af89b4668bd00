use super::*;
use proptest::prelude::*;

fn norm(p: &str) -> Result<String, PathError> {
    normalize(p, PathRules::default()).map(Cow::into_owned)
}

#[test]
fn other_spellings_of_one_path_are_that_path() {
    for p in [
        "/api/me",
        "/x/../api/me",
        "/api/./me",
        "//api/me",
        "/api//me",
        "/%61pi/me",
        "/%61%70%69/%6D%65",
        "/api/x/%2e%2e/me",
        "/api/x/%2E./me",
        "/./api/me",
    ] {
        assert_eq!(norm(p).as_deref(), Ok("/api/me"), "{p}");
    }
}

#[test]
fn what_is_already_normal_is_borrowed() {
    for p in [
        "/",
        "/api/me",
        "/api/me/",
        "/a.b/c..d/.e",
        "/files/report.v2.pdf",
    ] {
        assert!(
            matches!(normalize(p, PathRules::default()), Ok(Cow::Borrowed(_))),
            "{p}"
        );
    }
}

#[test]
fn reserved_encodings_stay_encoded_in_upper_case() {
    assert_eq!(norm("/a%2fb/c").as_deref(), Ok("/a%2Fb/c"));
    assert_eq!(norm("/a%20b").as_deref(), Ok("/a%20b"));
    assert_eq!(norm("/%e2%82%ac").as_deref(), Ok("/%E2%82%AC"));
}

#[test]
fn trailing_slashes_and_dots_at_the_end() {
    assert_eq!(norm("/a/b/").as_deref(), Ok("/a/b/"));
    assert_eq!(norm("/a/.").as_deref(), Ok("/a/"));
    assert_eq!(norm("/a/b/..").as_deref(), Ok("/a/"));
    assert_eq!(norm("/a/..").as_deref(), Ok("/"));
    assert_eq!(norm("//").as_deref(), Ok("/"));
}

#[test]
fn climbing_above_the_root_and_broken_escapes_are_refused() {
    assert_eq!(norm("/.."), Err(PathError::AboveRoot));
    assert_eq!(norm("/a/../../b"), Err(PathError::AboveRoot));
    assert_eq!(norm("/%2e%2e/etc"), Err(PathError::AboveRoot));
    assert_eq!(norm("/a%2"), Err(PathError::BadEscape));
    assert_eq!(norm("/a%zz"), Err(PathError::BadEscape));
}

#[test]
fn slashes_are_kept_when_merging_is_off() {
    let rules = PathRules {
        merge_slashes: false,
        fold_case: false,
    };
    assert_eq!(
        normalize("//a//b/../c", rules)
            .map(Cow::into_owned)
            .as_deref(),
        Ok("//a//c")
    );
    assert!(matches!(normalize("/a//b", rules), Ok(Cow::Borrowed(_))));
}

proptest! {
    /// Normalising is idempotent, keeps a leading slash, and leaves no dot segment, no empty
    /// segment and no encoded unreserved character behind; long hostile paths cost linear time.
    #[test]
    fn normal_forms_are_normal(path in "(/(\\.|\\.\\.|%2[eE]|%6[1-9]|[a-z]{0,3}|%2[fF]|)){0,40}/?") {
        let path = if path.is_empty() { "/".to_owned() } else { path };
        match normalize(&path, PathRules::default()) {
            Ok(n) => {
                prop_assert!(n.starts_with('/'));
                prop_assert_eq!(normalize(&n, PathRules::default()).map(Cow::into_owned), Ok(n.to_string()));
                let inner = n.trim_end_matches('/');
                for seg in inner.split('/').skip(1) {
                    prop_assert!(seg != "." && seg != ".." && !seg.is_empty(), "{} → {}", path, n);
                }
                prop_assert!(!n.contains("%2e") && !n.contains("%2E") && !n.contains("%6"));
            }
            Err(PathError::AboveRoot) => {}
            Err(e) => prop_assert!(false, "{path}: {e}"),
        }
    }
}
