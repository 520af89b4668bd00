use super::*;

#[test]
fn a_client_waits_for_its_own_write_only_until_the_side_has_it() {
    let ryw = ReadYourWrites::default();
    let now = now_ms();
    // Nobody wrote: nothing waits.
    assert!(!ryw.waiting("orders", 1, Side::New));
    ryw.wrote("orders", 1, Side::New, now - 5_000);
    // No watermark read yet: the write counts as waiting.
    assert!(ryw.waiting("orders", 1, Side::New));
    // Read at `now`: nothing waits toward new, so the 5-second-old write is there …
    ryw.set_marks(Marks {
        polled_ms: now,
        ..Marks::default()
    });
    assert!(!ryw.waiting("orders", 1, Side::New));
    // … unless an older write still waits toward new, or is still in the log.
    let mut waiting = HashMap::new();
    waiting.insert(("orders".to_owned(), Side::New), now - 6_000);
    ryw.set_marks(Marks {
        polled_ms: now,
        waiting,
        unshipped: None,
    });
    assert!(ryw.waiting("orders", 1, Side::New));
    assert!(
        !ryw.waiting("orders", 1, Side::Legacy),
        "the other way is clear"
    );
    assert!(!ryw.waiting("carts", 1, Side::New), "another context");
    assert!(!ryw.waiting("orders", 2, Side::New), "another client");
    ryw.set_marks(Marks {
        polled_ms: now,
        waiting: HashMap::new(),
        unshipped: Some(now - 7_000),
    });
    assert!(ryw.waiting("orders", 1, Side::New));
    // A write within the margin always waits.
    ryw.wrote("orders", 3, Side::New, now - 10);
    // A write legacy took, mirrored toward new: reading from legacy never waits for it.
    ryw.wrote("orders", 4, Side::New, now - 10);
    assert!(!ryw.waiting("orders", 4, Side::Legacy));
    ryw.set_marks(Marks {
        polled_ms: now,
        ..Marks::default()
    });
    assert!(ryw.waiting("orders", 3, Side::New));
}

#[test]
fn the_memory_is_bounded() {
    let ryw = ReadYourWrites::default();
    for who in 0..(3 * GENERATION as u64) {
        ryw.wrote("orders", who, Side::New, 1);
    }
    let r = ryw.recent.lock().unwrap();
    assert!(r.newer.len() + r.older.len() <= 2 * GENERATION);
}

#[test]
fn the_write_cookie_is_a_bounded_number_or_nothing() {
    let headers = |v: &str| {
        let mut h = http::HeaderMap::new();
        h.append(
            http::header::COOKIE,
            http::HeaderValue::from_str(v).unwrap(),
        );
        h
    };
    assert_eq!(
        wrote_at(
            &headers("a=1; strangler-wrote-orders=1764900000000"),
            "orders"
        ),
        Some(1_764_900_000_000)
    );
    assert_eq!(
        wrote_at(&headers("strangler-wrote-orders=1"), "billing"),
        None
    );
    for bad in ["", "-5", "1e9", "12 3", "1234567890123456", "soon"] {
        let h = headers(&format!("strangler-wrote-orders={bad}"));
        assert_eq!(wrote_at(&h, "orders"), None, "{bad}");
    }
    assert_eq!(
        set_cookie("orders", 42),
        "strangler-wrote-orders=42; Path=/; Max-Age=600; HttpOnly; SameSite=Lax"
    );
    // A write the watermarks have not passed is pending; an older one is not.
    let ryw = ReadYourWrites::default();
    let now = now_ms();
    ryw.set_marks(Marks {
        polled_ms: now,
        waiting: [(("orders".to_owned(), Side::New), now - 5_000)].into(),
        unshipped: None,
    });
    assert!(ryw.pending("orders", Side::New, now - 4_000));
    assert!(!ryw.pending("orders", Side::New, now - 6_000));
    assert!(!ryw.pending("billing", Side::New, now - 6_000));
}

#[test]
fn a_moved_owner_takes_writes_once_settled_and_what_the_old_one_took_meanwhile_has_arrived() {
    let ryw = ReadYourWrites::default();
    let (at, from) = (1_000_000, 1_004_000);
    let marks = |polled_ms, waiting: Option<i64>, unshipped| Marks {
        polled_ms,
        waiting: waiting
            .map(|t| (("orders".to_owned(), Side::New), t))
            .into_iter()
            .collect(),
        unshipped,
    };
    // Before the move takes effect: no.
    ryw.set_marks(marks(from + 5_000, None, None));
    assert!(!ryw.owner_settled("orders", Side::New, at, from, from - 1));
    // In effect, but the watermarks were read too early to have seen late writes: no.
    ryw.set_marks(marks(from + 10, None, None));
    assert!(!ryw.owner_settled("orders", Side::New, at, from, from + 20));
    // Read late enough, nothing from the settling time waits: yes.
    ryw.set_marks(marks(from + MARGIN_MS, None, None));
    assert!(ryw.owner_settled("orders", Side::New, at, from, from + MARGIN_MS));
    // A write the old owner took while it settled still waits (in the catalog, or in this
    // process's log): no.
    ryw.set_marks(marks(from + MARGIN_MS, Some(at + 10), None));
    assert!(!ryw.owner_settled("orders", Side::New, at, from, from + MARGIN_MS));
    ryw.set_marks(marks(from + MARGIN_MS, None, Some(from - 1)));
    assert!(!ryw.owner_settled("orders", Side::New, at, from, from + MARGIN_MS));
    // Writes left behind before the move (a forced one) do not hold it.
    ryw.set_marks(marks(from + MARGIN_MS, Some(at - 10), None));
    assert!(ryw.owner_settled("orders", Side::New, at, from, from + MARGIN_MS));
}

/// Quiet, the watermarks are read every two seconds; a question wakes the poll at once and it
/// reads ten times a second until the questions have stopped for a while. (Tokio's clock is
/// paused: the waits are virtual.)
#[tokio::test(start_paused = true)]
async fn the_watermarks_are_read_often_only_while_asked_about() {
    let dir = std::env::temp_dir().join(format!("strangler-ryw-poll-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let wal = crate::shadow::wal::Wal::open(&dir).unwrap();
    let ryw = Arc::new(ReadYourWrites::default());
    let store = Arc::new(crate::testing::Counted::default());
    tokio::spawn(marks(Arc::clone(&ryw), store.clone(), wal));
    let reads = || store.watermark_reads.load(Relaxed);

    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet = reads();
    assert!((5..=7).contains(&quiet), "{quiet} reads in a quiet 10 s");

    // A read asks: the poll wakes without waiting out its two seconds.
    ryw.pending("orders", Side::New, now_ms());
    while reads() == quiet {
        tokio::task::yield_now().await;
    }
    let woken = reads();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy = reads() - woken;
    assert!((9..=11).contains(&busy), "{busy} reads in a second in use");

    // The questions stop (as if the last was longer ago than the window): quiet again.
    ryw.asked_ms.store(now_ms() - IN_USE_MS - 1, Relaxed);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = reads();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet = reads() - before;
    assert!(
        (4..=6).contains(&quiet),
        "{quiet} reads in the next quiet 10 s"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
