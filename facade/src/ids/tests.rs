use super::*;

fn pair(seq: i64, legacy: &str, new: &str, origin: Side) -> IdPair {
    IdPair {
        seq,
        context: "orders".into(),
        resource: "orders".into(),
        legacy: legacy.into(),
        new: new.into(),
        origin,
    }
}

/// A client-held id is replaced only toward the side that did not give it; an id both sides'
/// clients hold for different resources is ambiguous.
#[test]
fn ids_map_toward_the_side_that_did_not_give_them() {
    let map = IdMap::new(100);
    // Created on legacy (1001), the new service named it 7.
    assert_eq!(map.insert(&pair(1, "1001", "7", Side::Legacy)), Ok(false));
    assert_eq!(
        map.lookup("orders", "orders", Side::New, "1001"),
        Mapped::To("7".into())
    );
    assert_eq!(
        map.lookup("orders", "orders", Side::Legacy, "1001"),
        Mapped::Same
    );
    // The new service's own name for it is not what clients hold: never mapped back.
    assert_eq!(
        map.lookup("orders", "orders", Side::Legacy, "7"),
        Mapped::Same
    );
    // Created on the new service after cutover (8), legacy named it 1002.
    assert_eq!(map.insert(&pair(2, "1002", "8", Side::New)), Ok(false));
    assert_eq!(
        map.lookup("orders", "orders", Side::Legacy, "8"),
        Mapped::To("1002".into())
    );
    assert_eq!(map.lookup("orders", "orders", Side::New, "8"), Mapped::Same);
    // Unknown ids, contexts and resources pass unchanged.
    assert_eq!(map.lookup("orders", "orders", Side::New, "5"), Mapped::Same);
    assert_eq!(
        map.lookup("orders", "invoices", Side::New, "1001"),
        Mapped::Same
    );
    assert_eq!(
        map.lookup("billing", "orders", Side::New, "1001"),
        Mapped::Same
    );
    // The new service later gives clients 1001 for another resource (legacy calls it 3000):
    // clients now hold 1001 for two resources, and a request that carries it is refused.
    assert_eq!(map.insert(&pair(3, "3000", "1001", Side::New)), Ok(true));
    assert_eq!(
        map.lookup("orders", "orders", Side::New, "1001"),
        Mapped::Ambiguous
    );
    assert_eq!(
        map.lookup("orders", "orders", Side::Legacy, "1001"),
        Mapped::Ambiguous
    );
    // A pair again, or another pair for an id already paired, changes nothing.
    assert_eq!(map.insert(&pair(3, "3000", "1001", Side::New)), Ok(false));
    assert_eq!(map.insert(&pair(4, "1001", "9", Side::Legacy)), Ok(false));
    assert_eq!(map.pairs(), 3);
    assert_eq!(map.seq(), 4);
}

/// A full map keeps what it has and says so instead of answering "same" for what it dropped.
#[test]
fn a_full_map_refuses_rather_than_guesses() {
    let map = IdMap::new(2);
    assert_eq!(map.insert(&pair(1, "1", "a", Side::Legacy)), Ok(false));
    assert_eq!(map.insert(&pair(2, "2", "b", Side::Legacy)), Ok(false));
    assert_eq!(map.lookup("orders", "orders", Side::New, "3"), Mapped::Same);
    assert_eq!(map.insert(&pair(3, "3", "c", Side::Legacy)), Err(Full(2)));
    assert_eq!(map.pairs(), 2);
    // What it kept still maps; what it may have dropped is refused.
    assert_eq!(
        map.lookup("orders", "orders", Side::New, "1"),
        Mapped::To("a".into())
    );
    assert_eq!(map.lookup("orders", "orders", Side::New, "3"), Mapped::Full);
    assert_eq!(map.lookup("other", "orders", Side::New, "3"), Mapped::Full);
}

#[test]
fn path_segments_are_read_and_replaced_in_place() {
    assert_eq!(segment("/api/orders/1001", 2), Some("1001"));
    assert_eq!(segment("/api/orders", 2), None);
    assert_eq!(with_segment("/api/orders/1001", 2, "7"), "/api/orders/7");
    assert_eq!(
        with_segment("/api/orders/1001/lines", 2, "a b/c"),
        "/api/orders/a%20b%2Fc/lines"
    );
    assert_eq!(decode_segment("a%20b%2Fc").as_deref(), Some("a b/c"));
    assert_eq!(decode_segment("100%").as_deref(), Some("100%"));
    assert_eq!(decode_segment("%FF"), None);
}

#[test]
fn body_fields_that_hold_the_id_are_swapped_and_nothing_else() {
    let fields = vec![
        vec!["id".to_owned()],
        vec!["order".to_owned(), "ref".to_owned()],
    ];
    let swap = |body: &str, from, to| {
        swap_in_body(body.as_bytes(), &fields, from, to).map(|b| String::from_utf8(b).unwrap())
    };
    // Numbers stay numbers (other numbers keep their text), strings stay strings.
    assert_eq!(
        swap(
            r#"{"id":1425,"total":1.10,"order":{"ref":"1425"}}"#,
            "1425",
            "4"
        )
        .as_deref(),
        Some(r#"{"id":4,"total":1.10,"order":{"ref":"4"}}"#)
    );
    // A number field given an id that is no number becomes a string.
    assert_eq!(
        swap(r#"{"id":7}"#, "7", "ord-7").as_deref(),
        Some(r#"{"id":"ord-7"}"#)
    );
    // Other values, other places, and bodies that are not JSON are left alone.
    assert_eq!(swap(r#"{"id":1426,"other":1425}"#, "1425", "4"), None);
    assert_eq!(swap(r#"[1425]"#, "1425", "4"), None);
    assert_eq!(swap("not json", "1425", "4"), None);
}

/// While no route maps ids the catalog's pairs are read every two seconds; a catalog with such
/// a route wakes the follower at once and it reads every 200 ms. (Tokio's clock is paused.)
#[tokio::test(start_paused = true)]
async fn pairs_are_read_often_only_while_a_route_maps_ids() {
    use std::sync::atomic::Ordering::Relaxed;
    let map = Arc::new(IdMap::new(100));
    let store = Arc::new(crate::testing::Counted::default());
    tokio::spawn(follow(Arc::clone(&map), store.clone()));
    let reads = || store.id_reads.load(Relaxed);

    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet = reads();
    assert!((5..=7).contains(&quiet), "{quiet} reads in a quiet 10 s");

    map.set_in_use(true);
    while reads() == quiet {
        tokio::task::yield_now().await;
    }
    let woken = reads();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy = reads() - woken;
    assert!((9..=11).contains(&busy), "{busy} reads in 2 s in use");

    map.set_in_use(false);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let before = reads();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet = reads() - before;
    assert!(
        (4..=6).contains(&quiet),
        "{quiet} reads in the next quiet 10 s"
    );
}
