//! The mirror's write-ahead log: a mirrored write is on this machine's disk, synced, before the
//! client's answer is released, and is shipped from there to the catalog's outbox. A `kill -9`
//! of the facade therefore loses no acknowledged write: the next process to start on the same
//! directory ships what the dead one left.
//!
//! Layout, under the configured directory: slots `0/`, `1/`, … — a process takes the first
//! slot whose `lock` file it can lock, so replicas on one machine never share a log. A slot holds
//! segments `NNNN….wal` (a new one every [`SEGMENT_BYTES`]) and `shipped`, the position up to
//! which the catalog has the writes. A record is `length (u32 LE) · CRC-32C (u32 LE) · payload`;
//! a torn record at the end of the last segment (a crash mid-write, never acknowledged) is cut
//! off when the slot is opened.
//!
//! One writer thread appends: it takes every write waiting, writes them, syncs once (group
//! commit) and then releases all their answers. A record shipped twice (a crash between the
//! catalog's commit and `shipped`) carries the same origin key, which the catalog stores once.
//! Unlocked slots with writes left in them (a process that died and was not restarted on that
//! slot, or one that stopped after handing its listeners to a successor) are shipped by the
//! next process that starts, and looked for every [`ORPHAN_SCAN`] by each running one, then
//! emptied.
//!
//! Size: about 700 lines, kept whole on purpose: opening a slot, the writer thread and the
//! shipper share one notion of positions and segments, and each is only correct against the
//! others; the record format is a room of its own (`record.rs`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use strangler_catalog::clock::now_ms;
use strangler_catalog::OutboxItem;
use tokio::sync::{oneshot, Notify};

use super::outbox::OutboxStore;
use crate::telemetry::Telemetry;

/// A segment past this size is closed and the next one begun.
pub const SEGMENT_BYTES: u64 = 8 << 20;
/// Slots tried under the directory.
const SLOTS: usize = 64;
/// Records and bytes shipped to the catalog in one transaction at most.
const SHIP_RECORDS: usize = 512;
const SHIP_BYTES: usize = 4 << 20;
/// How often a running process looks for slots that other processes left with writes in them.
const ORPHAN_SCAN: Duration = Duration::from_secs(10);
/// After a failed write, mirrored writes are refused this long before one is tried again.
const BROKEN_MS: i64 = 1_000;

/// Why the log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("cannot use {dir} for the mirror's write-ahead log ({source}); set [shadow] wal_dir (or STRANGLER_SHADOW_WAL_DIR) to a writable directory on local disk")]
    Open { dir: PathBuf, source: io::Error },
    #[error("all {SLOTS} slots of the mirror's write-ahead log under {0} are in use by running processes; give this one its own [shadow] wal_dir")]
    NoSlot(PathBuf),
    #[error("the mirror's write-ahead log could not be written: {0}")]
    Write(String),
    #[error("the mirror's write-ahead log has stopped")]
    Stopped,
}

/// Why a mirrored write is refused before legacy takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// This many writes wait to be shipped to the catalog (the bound).
    Backlog(u64),
    /// The last write to the log failed; the log is tried again shortly.
    Broken,
}

/// A position in a slot: segment and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    seq: u64,
    off: u64,
}

struct Job {
    record: Vec<u8>,
    created_ms: i64,
    done: oneshot::Sender<Result<(), WalError>>,
}

struct Shared {
    dir: PathBuf,
    /// Writes made durable (including those found unshipped at start).
    appended: AtomicU64,
    /// Writes the catalog has.
    shipped: AtomicU64,
    /// The end of what is written and synced.
    committed: Mutex<Pos>,
    broken_until_ms: AtomicI64,
    /// Wakes the shipper after a commit.
    written: Notify,
    /// Wakes whoever waits for the backlog to drain.
    drained: Notify,
    /// The creation times of the writes not shipped yet, in log order (0: unknown, left by an
    /// earlier process).
    unshipped: Mutex<std::collections::VecDeque<i64>>,
}

/// The log of one process: its slot, locked for the process's life.
pub struct Wal {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    /// Where shipping starts, and slots of dead processes to ship first; taken by [`ship`].
    start: Mutex<Option<(Pos, Vec<Orphan>)>>,
    /// The directory of the slots, and how often the shipper looks in it for slots left by
    /// processes that stopped after this one started.
    base: PathBuf,
    orphan_scan: Duration,
    _lock: File,
}

/// Another process's slot with writes left in it, locked while this one ships them.
struct Orphan {
    dir: PathBuf,
    _lock: File,
}

impl Wal {
    /// Opens the first free slot under `dir` (created if missing): cuts a torn tail, counts
    /// what is not shipped yet, and starts the writer thread.
    pub fn open(dir: &Path) -> Result<Arc<Wal>, WalError> {
        let fail = |source| WalError::Open {
            dir: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(fail)?;
        let mut mine = None;
        let mut orphans = Vec::new();
        for i in 0..SLOTS {
            let slot = dir.join(i.to_string());
            let exists = slot.is_dir();
            if !exists && mine.is_some() {
                break;
            }
            fs::create_dir_all(&slot).map_err(fail)?;
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(slot.join("lock"))
                .map_err(fail)?;
            match lock.try_lock() {
                Ok(()) if mine.is_none() => mine = Some((slot, lock)),
                Ok(()) => {
                    if !segments(&slot).map_err(fail)?.is_empty() {
                        orphans.push(Orphan {
                            dir: slot,
                            _lock: lock,
                        });
                    }
                }
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => return Err(fail(e)),
            }
        }
        let Some((slot, lock)) = mine else {
            return Err(WalError::NoSlot(dir.to_owned()));
        };
        let open = open_slot(&slot).map_err(fail)?;
        let shared = Arc::new(Shared {
            dir: slot,
            appended: AtomicU64::new(open.backlog),
            shipped: AtomicU64::new(0),
            committed: Mutex::new(open.end),
            broken_until_ms: AtomicI64::new(0),
            written: Notify::new(),
            drained: Notify::new(),
            unshipped: Mutex::new(
                std::iter::repeat_n(0, usize::try_from(open.backlog).unwrap_or(0)).collect(),
            ),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("strangler-wal".into())
            .spawn(move || write_loop(&writer, open.file, open.end, &rx))
            .map_err(fail)?;
        if open.backlog > 0 || !orphans.is_empty() {
            tracing::info!(
                dir = %shared.dir.display(),
                unshipped = open.backlog,
                orphaned_slots = orphans.len(),
                "mirrored writes left by an earlier process will be shipped to the catalog"
            );
        }
        Ok(Arc::new(Wal {
            shared,
            jobs: tx,
            start: Mutex::new(Some((open.shipped, orphans))),
            base: dir.to_owned(),
            orphan_scan: ORPHAN_SCAN,
            _lock: lock,
        }))
    }

    /// The same log, looking for slots left by other processes every `every` (tests).
    #[doc(hidden)]
    pub fn with_orphan_scan(mut self: Arc<Self>, every: Duration) -> Arc<Self> {
        if let Some(wal) = Arc::get_mut(&mut self) {
            wal.orphan_scan = every;
        }
        self
    }

    /// The slot this process writes.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Writes durable here and not yet in the catalog.
    pub fn backlog(&self) -> u64 {
        let s = &self.shared;
        s.appended
            .load(Relaxed)
            .saturating_sub(s.shipped.load(Relaxed))
    }

    /// The creation time of the oldest write not yet in the catalog (0 when an earlier
    /// process left it).
    pub fn oldest_unshipped(&self) -> Option<i64> {
        self.shared
            .unshipped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .front()
            .copied()
    }

    /// Whether one more mirrored write may be taken, with at most `limit` waiting to ship.
    pub fn admits(&self, limit: u64) -> Result<(), Refusal> {
        if self.shared.broken_until_ms.load(Relaxed) > now_ms() {
            return Err(Refusal::Broken);
        }
        match self.backlog() {
            n if n >= limit => Err(Refusal::Backlog(n)),
            _ => Ok(()),
        }
    }

    /// Makes `item` durable; resolves once it is synced to disk (with others written at the
    /// same time).
    pub async fn append(&self, item: &OutboxItem) -> Result<(), WalError> {
        let record = record::frame(&record::encode(item))
            .ok_or_else(|| WalError::Write("the write is too large for a record".into()))?;
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                record,
                created_ms: item.created_ms,
                done,
            })
            .map_err(|_| WalError::Stopped)?;
        rx.await.map_err(|_| WalError::Stopped)?
    }

    /// Waits until everything durable here is in the catalog, or `limit` passes; returns what
    /// is still waiting.
    pub async fn drain(&self, limit: Duration) -> u64 {
        let wait = async {
            loop {
                let drained = self.shared.drained.notified();
                if self.backlog() == 0 {
                    return;
                }
                drained.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        self.backlog()
    }
}

struct Opened {
    file: File,
    /// The end of the valid records.
    end: Pos,
    shipped: Pos,
    /// Records between `shipped` and `end`.
    backlog: u64,
}

/// The segments of a slot, in order.
fn segments(slot: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(slot)? {
        let name = entry?.file_name();
        if let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

fn segment_path(slot: &Path, seq: u64) -> PathBuf {
    slot.join(format!("{seq:020}.wal"))
}

fn read_shipped(slot: &Path) -> Option<Pos> {
    let text = fs::read_to_string(slot.join("shipped")).ok()?;
    let (seq, off) = text.trim().split_once(' ')?;
    Some(Pos {
        seq: seq.parse().ok()?,
        off: off.parse().ok()?,
    })
}

/// Records `pos` as shipped. Not synced: a stale position only ships some writes again, which
/// the catalog keeps once.
fn write_shipped(slot: &Path, pos: Pos) -> io::Result<()> {
    let tmp = slot.join("shipped.tmp");
    fs::write(&tmp, format!("{} {}\n", pos.seq, pos.off))?;
    fs::rename(tmp, slot.join("shipped"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn open_slot(slot: &Path) -> io::Result<Opened> {
    let mut seqs = segments(slot)?;
    if seqs.is_empty() {
        File::create(segment_path(slot, 1))?.sync_all()?;
        sync_dir(slot)?;
        seqs.push(1);
    }
    let first = seqs[0];
    let last = seqs[seqs.len() - 1];
    let path = segment_path(slot, last);
    let mut file = OpenOptions::new().read(true).append(true).open(&path)?;
    let len = file.metadata()?.len();
    let (valid, _) = scan(&mut file, 0, len)?;
    if valid < len {
        tracing::warn!(
            segment = %path.display(),
            bytes = len - valid,
            "cut a torn record off the mirror's log (written when the process died, never acknowledged)"
        );
        file.set_len(valid)?;
        file.sync_all()?;
    }
    let end = Pos {
        seq: last,
        off: valid,
    };
    let shipped = read_shipped(slot)
        .filter(|p| p.seq >= first && *p <= end)
        .unwrap_or(Pos { seq: first, off: 0 });
    let mut backlog = 0;
    for &seq in seqs.iter().filter(|s| **s >= shipped.seq) {
        let mut f = File::open(segment_path(slot, seq))?;
        let from = if seq == shipped.seq { shipped.off } else { 0 };
        let to = if seq == last {
            valid
        } else {
            f.metadata()?.len()
        };
        backlog += scan(&mut f, from, to)?.1;
    }
    Ok(Opened {
        file,
        end,
        shipped,
        backlog,
    })
}

/// Walks whole, intact records from `from` up to `to`: where they end, and how many.
fn scan(file: &mut File, from: u64, to: u64) -> io::Result<(u64, u64)> {
    file.seek(SeekFrom::Start(from))?;
    let mut reader = io::BufReader::new(file.take(to.saturating_sub(from)));
    let mut at = from;
    let mut count = 0;
    while let Some(payload) = record::next(&mut reader)? {
        at += 8 + payload.len() as u64;
        count += 1;
    }
    Ok((at, count))
}

fn write_loop(shared: &Shared, mut file: File, mut pos: Pos, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut bytes = Vec::with_capacity(batch.iter().map(|j| j.record.len()).sum());
        for job in &batch {
            bytes.extend_from_slice(&job.record);
        }
        match file.write_all(&bytes).and_then(|()| file.sync_data()) {
            Ok(()) => {
                pos.off += bytes.len() as u64;
                *shared
                    .committed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = pos;
                shared.appended.fetch_add(batch.len() as u64, Relaxed);
                shared
                    .unshipped
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(batch.iter().map(|j| j.created_ms));
                for job in batch {
                    let _ = job.done.send(Ok(()));
                }
                shared.written.notify_one();
                if pos.off >= SEGMENT_BYTES {
                    match next_segment(&shared.dir, pos.seq + 1) {
                        Ok(next) => {
                            file = next;
                            pos = Pos {
                                seq: pos.seq + 1,
                                off: 0,
                            };
                            *shared
                                .committed
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner) = pos;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the mirror's log could not begin a new segment; it goes on in this one")
                        }
                    }
                }
            }
            Err(e) => {
                // What was written of this batch is cut off again, so the segment stays whole.
                let _ = file.set_len(pos.off);
                shared.broken_until_ms.store(now_ms() + BROKEN_MS, Relaxed);
                tracing::error!(error = %e, writes = batch.len(), dir = %shared.dir.display(), "the mirror's log could not be written: these writes were taken by legacy but will not reach the new service; mirrored writes are refused until the log works again");
                let why = e.to_string();
                for job in batch {
                    let _ = job.done.send(Err(WalError::Write(why.clone())));
                }
            }
        }
    }
}

fn next_segment(slot: &Path, seq: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .read(true)
        .open(segment_path(slot, seq))?;
    file.sync_all()?;
    sync_dir(slot)?;
    Ok(file)
}

/// Reads whole records from `pos` (moving on to later segments) up to `end` (`None`: as far as
/// the segments go), at most a shipment's worth.
fn read_batch(slot: &Path, mut pos: Pos, end: Option<Pos>) -> io::Result<(Vec<OutboxItem>, Pos)> {
    let mut out = Vec::new();
    let mut bytes = 0;
    loop {
        let path = segment_path(slot, pos.seq);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A gap in the numbering (segments deleted by hand): go on with the next one.
                match segments(slot)?.into_iter().find(|s| *s > pos.seq) {
                    Some(seq) if end.is_none_or(|e| seq <= e.seq) => {
                        pos = Pos { seq, off: 0 };
                        continue;
                    }
                    _ => return Ok((out, pos)),
                }
            }
            Err(e) => return Err(e),
        };
        let limit = match end {
            Some(e) if e.seq == pos.seq => e.off,
            _ => file.metadata()?.len(),
        };
        file.seek(SeekFrom::Start(pos.off))?;
        let mut reader = io::BufReader::new((&mut file).take(limit.saturating_sub(pos.off)));
        while out.len() < SHIP_RECORDS && bytes < SHIP_BYTES {
            let Some(payload) = record::next(&mut reader)? else {
                break;
            };
            pos.off += 8 + payload.len() as u64;
            bytes += payload.len();
            match record::decode(&payload) {
                Some(s) => out.push(s),
                None => {
                    tracing::error!(segment = %path.display(), "a record of the mirror's log does not decode; skipped")
                }
            }
        }
        if out.len() >= SHIP_RECORDS || bytes >= SHIP_BYTES {
            return Ok((out, pos));
        }
        let more = match end {
            Some(e) => pos.seq < e.seq,
            None => segments(slot)?.iter().any(|s| *s > pos.seq),
        };
        if pos.off < limit {
            // A corrupt record: the rest of this segment cannot be read in order.
            tracing::error!(segment = %path.display(), offset = pos.off, "the mirror's log is corrupt here; the rest of this segment is skipped");
        }
        if !more {
            return Ok((out, pos));
        }
        pos = Pos {
            seq: pos.seq + 1,
            off: 0,
        };
    }
}

/// Ships the log to the catalog's outbox, forever: first the slots dead processes left, then
/// this process's own writes as they are made durable. Wakes `delivery` after each shipment.
pub async fn ship(
    wal: Arc<Wal>,
    store: Arc<dyn OutboxStore>,
    delivery: Arc<Notify>,
    telemetry: Arc<Telemetry>,
) {
    let taken = wal
        .start
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let Some((mut pos, orphans)) = taken else {
        return;
    };
    for orphan in orphans {
        ship_orphan(&orphan, &*store, &delivery, &telemetry).await;
    }
    let mut next_scan = tokio::time::Instant::now() + wal.orphan_scan;
    let shared = &wal.shared;
    loop {
        if tokio::time::Instant::now() >= next_scan {
            // A process that stopped after this one started (a reload or an upgrade hands
            // over while the old process still drains) may have left writes in its slot.
            let (base, mine) = (wal.base.clone(), shared.dir.clone());
            let found = tokio::task::spawn_blocking(move || unheld_slots(&base, &mine)).await;
            if let Ok(Ok(found)) = found {
                for orphan in found {
                    ship_orphan(&orphan, &*store, &delivery, &telemetry).await;
                }
            }
            next_scan = tokio::time::Instant::now() + wal.orphan_scan;
        }
        let written = shared.written.notified();
        let end = *shared
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if pos >= end {
            tokio::select! {
                () = written => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let dir = shared.dir.clone();
        let read = tokio::task::spawn_blocking(move || read_batch(&dir, pos, Some(end))).await;
        let (items, next) = match read {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the mirror's log cannot be read; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => return,
        };
        if items.is_empty() && next == pos {
            // Nothing readable where records were written (the disk changed under the log):
            // said once by the reader; try again later rather than spin.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if !items.is_empty() {
            put(&*store, &items).await;
            telemetry.record_mirror_stored(items.len());
        }
        let old = pos.seq;
        pos = next;
        if let Err(e) = write_shipped(&shared.dir, pos) {
            tracing::warn!(error = %e, "the mirror log's shipped position was not saved; some writes may be shipped again (the catalog keeps them once)");
        }
        for seq in old..pos.seq {
            let _ = fs::remove_file(segment_path(&shared.dir, seq));
        }
        shared.shipped.fetch_add(items.len() as u64, Relaxed);
        {
            let mut unshipped = shared
                .unshipped
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let n = items.len().min(unshipped.len());
            unshipped.drain(..n);
        }
        shared.drained.notify_waiters();
        delivery.notify_one();
    }
}

/// Ships one dead process's slot to the catalog and empties it; a slot that cannot be read is
/// left in place, said so.
async fn ship_orphan(
    orphan: &Orphan,
    store: &dyn OutboxStore,
    delivery: &Notify,
    telemetry: &Telemetry,
) {
    let mut at = read_shipped(&orphan.dir).unwrap_or(Pos { seq: 0, off: 0 });
    loop {
        let dir = orphan.dir.clone();
        let read = tokio::task::spawn_blocking(move || read_batch(&dir, at, None)).await;
        let (items, next) = match read {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(error = %e, dir = %orphan.dir.display(), "an orphaned mirror log cannot be read; it is left in place");
                return;
            }
            Err(_) => return,
        };
        if items.is_empty() && next == at {
            // Everything is in the catalog: the slot is emptied for the next process.
            if let Ok(seqs) = segments(&orphan.dir) {
                for seq in seqs {
                    let _ = fs::remove_file(segment_path(&orphan.dir, seq));
                }
            }
            let _ = fs::remove_file(orphan.dir.join("shipped"));
            tracing::info!(dir = %orphan.dir.display(), "an orphaned mirror log was shipped to the catalog");
            return;
        }
        put(store, &items).await;
        telemetry.record_mirror_stored(items.len());
        at = next;
        let _ = write_shipped(&orphan.dir, at);
        delivery.notify_one();
    }
}

/// The slots under `base` other than `mine` that no running process holds and that have
/// segments in them, each locked for the caller.
fn unheld_slots(base: &Path, mine: &Path) -> io::Result<Vec<Orphan>> {
    let mut found = Vec::new();
    for i in 0..SLOTS {
        let slot = base.join(i.to_string());
        if slot == mine || !slot.is_dir() {
            continue;
        }
        let Ok(lock) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(slot.join("lock"))
        else {
            continue;
        };
        if lock.try_lock().is_ok() && !segments(&slot)?.is_empty() {
            found.push(Orphan {
                dir: slot,
                _lock: lock,
            });
        }
    }
    Ok(found)
}

/// Puts a shipment into the catalog, trying until it is there.
async fn put(store: &dyn OutboxStore, items: &[OutboxItem]) {
    let mut pause = Duration::from_millis(100);
    loop {
        match store.put(items).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, writes = items.len(), "mirrored writes not in the catalog yet (they are safe in the local log); retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

mod record;

#[cfg(test)]
mod tests;
