use super::record::{decode, encode};
use super::*;
use strangler_catalog::Side;

fn item(n: usize) -> OutboxItem {
    OutboxItem {
        origin_key: format!("k{n}"),
        context: "orders".into(),
        route: "r1".into(),
        idempotency_key: format!("idem-{n}"),
        method: "POST".into(),
        uri: "/orders".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: format!("{{\"n\":{n}}}").into_bytes(),
        legacy_status: 201,
        legacy_headers: vec![("location".into(), format!("/orders/{n}"))],
        legacy_body: n.is_multiple_of(2).then(|| b"{}".to_vec()),
        legacy_us: 1234,
        created_ms: 1_700_000_000_000 + n as i64,
        toward: if n % 2 == 1 { Side::Legacy } else { Side::New },
        ..OutboxItem::default()
    }
}

#[test]
fn a_record_decodes_to_what_was_encoded_and_nothing_else_decodes() {
    for n in 0..4 {
        let it = item(n);
        let bytes = encode(&it);
        assert_eq!(decode(&bytes), Some(it));
        // Any cut is refused rather than read as another write.
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
    }
}

/// A catalog outbox that keeps what it is given, refusing the first `fail` shipments.
#[derive(Default)]
struct Kept {
    items: std::sync::Mutex<Vec<OutboxItem>>,
    fail: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl OutboxStore for Kept {
    async fn put(&self, items: &[OutboxItem]) -> Result<(), String> {
        if self
            .fail
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("catalog unreachable".into());
        }
        self.items.lock().unwrap().extend_from_slice(items);
        Ok(())
    }
    async fn claim(&self, _: i64, _: i64) -> Result<Vec<OutboxItem>, String> {
        Ok(Vec::new())
    }
    async fn done(&self, _: &[i64]) -> Result<(), String> {
        Ok(())
    }
    async fn waiting_since(&self) -> Result<Vec<(String, Side, i64)>, String> {
        Ok(Vec::new())
    }
    async fn retry(&self, _: i64, _: i64, _: Option<&str>, _: bool) -> Result<(), String> {
        Ok(())
    }
    async fn ids_put(&self, _: &strangler_catalog::IdPair) -> Result<(), String> {
        Ok(())
    }
    async fn ids_since(&self, _: i64, _: i64) -> Result<Vec<strangler_catalog::IdPair>, String> {
        Ok(Vec::new())
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "strangler-wal-{name}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let _ = fs::remove_dir_all(&dir);
    dir
}

struct Gone(PathBuf);
impl Drop for Gone {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn keys(kept: &Kept) -> Vec<String> {
    let mut k: Vec<String> = kept
        .items
        .lock()
        .unwrap()
        .iter()
        .map(|i| i.origin_key.clone())
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn what_was_acknowledged_survives_the_process_and_a_torn_tail_is_cut() {
    let dir = scratch("reopen");
    let _gone = Gone(dir.clone());
    let wal = Wal::open(&dir).unwrap();
    for n in 0..3 {
        wal.append(&item(n)).await.unwrap();
    }
    assert_eq!(wal.backlog(), 3);
    let slot = wal.dir().to_owned();
    // The process dies mid-write: half a record follows the acknowledged ones.
    drop(wal);
    let segment = segment_path(&slot, 1);
    let whole = fs::metadata(&segment).unwrap().len();
    let torn = encode(&item(9));
    let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
    f.write_all(&(torn.len() as u32).to_le_bytes()).unwrap();
    f.write_all(&[0, 0, 0, 0]).unwrap();
    f.write_all(&torn[..torn.len() / 2]).unwrap();
    drop(f);

    let wal = Wal::open(&dir).unwrap();
    assert_eq!(wal.dir(), slot, "the free slot is taken again");
    assert_eq!(wal.backlog(), 3, "the torn record was never acknowledged");
    assert_eq!(fs::metadata(&segment).unwrap().len(), whole);
    let kept = Arc::new(Kept::default());
    kept.fail.store(2, Relaxed);
    tokio::spawn(ship(
        Arc::clone(&wal),
        kept.clone(),
        Arc::new(Notify::new()),
        Arc::new(Telemetry::default()),
    ));
    wal.append(&item(3)).await.unwrap();
    assert_eq!(wal.drain(Duration::from_secs(30)).await, 0);
    assert_eq!(keys(&kept), ["k0", "k1", "k2", "k3"]);
    // Shipped is remembered: a new process ships nothing again.
    drop(wal);
    let wal = Wal::open(&dir).unwrap();
    assert_eq!(wal.backlog(), 0);
}

#[tokio::test]
async fn two_processes_take_two_slots_and_a_dead_ones_writes_are_shipped_by_the_next() {
    let dir = scratch("slots");
    let _gone = Gone(dir.clone());
    let a = Wal::open(&dir).unwrap();
    let b = Wal::open(&dir).unwrap();
    assert_ne!(a.dir(), b.dir(), "one slot per running process");
    a.append(&item(0)).await.unwrap();
    for n in 1..3 {
        b.append(&item(n)).await.unwrap();
    }
    let orphan = b.dir().to_owned();
    drop(b);
    drop(a);
    let c = Wal::open(&dir).unwrap();
    assert_eq!(c.backlog(), 1, "its own slot's write");
    let kept = Arc::new(Kept::default());
    tokio::spawn(ship(
        Arc::clone(&c),
        kept.clone(),
        Arc::new(Notify::new()),
        Arc::new(Telemetry::default()),
    ));
    assert_eq!(c.drain(Duration::from_secs(30)).await, 0);
    // The orphan is shipped before the process's own log; wait for its slot to be emptied.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !segments(&orphan).unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "orphan not shipped");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(keys(&kept), ["k0", "k1", "k2"]);
}

/// A process that stops after this one started (a hand-off: the successor is up before its
/// predecessor has drained) leaves writes in its slot: the running one ships them.
#[tokio::test]
async fn a_slot_left_while_this_process_runs_is_shipped() {
    let dir = scratch("left");
    let _gone = Gone(dir.clone());
    let old = Wal::open(&dir).unwrap();
    let new = Wal::open(&dir)
        .unwrap()
        .with_orphan_scan(Duration::from_millis(20));
    let kept = Arc::new(Kept::default());
    tokio::spawn(ship(
        Arc::clone(&new),
        kept.clone(),
        Arc::new(Notify::new()),
        Arc::new(Telemetry::default()),
    ));
    for n in 0..3 {
        old.append(&item(n)).await.unwrap();
    }
    let left = old.dir().to_owned();
    // Held by a running process: not touched.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(keys(&kept).is_empty());
    drop(old);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !segments(&left).unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "left slot not shipped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(keys(&kept), ["k0", "k1", "k2"]);
}

#[tokio::test]
async fn segments_roll_over_and_shipped_ones_are_removed() {
    let dir = scratch("roll");
    let _gone = Gone(dir.clone());
    let wal = Wal::open(&dir).unwrap();
    let kept = Arc::new(Kept::default());
    tokio::spawn(ship(
        Arc::clone(&wal),
        kept.clone(),
        Arc::new(Notify::new()),
        Arc::new(Telemetry::default()),
    ));
    let mut big = item(0);
    big.body = vec![b'x'; 1 << 20];
    let n = (SEGMENT_BYTES >> 20) as usize * 2 + 3;
    for i in 0..n {
        big.origin_key = format!("big{i:03}");
        wal.append(&big).await.unwrap();
    }
    assert_eq!(wal.drain(Duration::from_secs(60)).await, 0);
    assert_eq!(kept.items.lock().unwrap().len(), n);
    let left = segments(wal.dir()).unwrap();
    assert!(left.len() <= 2, "shipped segments are removed: {left:?}");
    assert!(left[0] >= 3, "it rolled over twice: {left:?}");
}
