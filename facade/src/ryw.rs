//! Read-your-writes in canary. There a client's reads follow the sticky split while its writes
//! go to the write owner and reach the other side later, through the outbox. So that a client
//! never misses what it just wrote, its reads of that context go to the owner until the other
//! side has applied the write.
//!
//! The client is who its sticky key says (no key, no memory). What this process remembers is
//! when each client last wrote to each context (a bounded map: two generations, the older one
//! dropped when the newer fills). Whether the other side has applied a write is told by
//! watermarks polled beside the request path ([`marks`]): the creation time of the oldest
//! write still waiting toward each side of each context in the catalog's outbox, and of the
//! oldest write still only in this process's log. A write made at or after the watermark may
//! not be applied yet; one made before it has been (or was given up on). With no word from
//! the store, every remembered write counts as waiting: reads go to the owner, which has them.
//!
//! Across replicas the client carries it: the answer to a mirrored write in canary sets a
//! cookie with the write's time (`strangler-wrote-CONTEXT`), and a replica that gets a read with
//! it compares that time with its own watermarks (the catalog's are shared; a write still in
//! another replica's log is covered by the margin). The cookie is not signed: it can only send
//! its own client's reads to the owner, which has every write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use strangler_catalog::clock::now_ms;
use strangler_catalog::{fnv1a64, Side};
use tokio::sync::Notify;

use crate::shadow::outbox::OutboxStore;
use crate::shadow::wal::Wal;

/// Clients remembered per generation.
const GENERATION: usize = 50_000;
/// A write this recent counts as waiting whatever the watermarks say: it may be on its way from
/// a log to the catalog between two polls.
const MARGIN_MS: i64 = 1_000;
/// How often the watermarks are read while they are in use.
const POLL: Duration = Duration::from_millis(100);
/// How often they are read when no client's write, read or owner move has asked for them in
/// [`IN_USE_MS`]: a fleet that takes no mirrored writes does not poll its store ten times a
/// second per replica. The first question after a quiet spell wakes the poll at once; until
/// it answers, older marks only make reads more cautious (they go to the owner).
const IDLE_POLL: Duration = Duration::from_secs(2);
/// How long after the last question the watermarks count as in use.
const IN_USE_MS: i64 = 30_000;

/// The last write of each client to each context, and how far each side has caught up.
#[derive(Default)]
pub struct ReadYourWrites {
    recent: Mutex<Recent>,
    marks: ArcSwap<Marks>,
    /// When the watermarks were last asked about (ms since the epoch).
    asked_ms: AtomicI64,
    /// Wakes a quiet poll when they are asked about again.
    wake: Notify,
}

#[derive(Default)]
struct Recent {
    newer: HashMap<u64, i64>,
    older: HashMap<u64, i64>,
}

/// Watermarks, as of one poll.
#[derive(Debug, Default)]
pub struct Marks {
    /// When the poll began (0: never).
    pub polled_ms: i64,
    /// The creation time of the oldest write waiting toward a side, per (context, side).
    pub waiting: HashMap<(String, Side), i64>,
    /// The creation time of the oldest write still only in this process's log.
    pub unshipped: Option<i64>,
}

/// One client's writes to one context mirrored toward one side.
fn slot(context: &str, who: u64, toward: Side) -> u64 {
    let side = match toward {
        Side::Legacy => 0x9e37_79b9_7f4a_7c15,
        Side::New => 0,
    };
    fnv1a64(context.as_bytes()) ^ who.rotate_left(17) ^ side
}

impl ReadYourWrites {
    /// The watermarks are in use: a quiet poll wakes.
    fn asked(&self) {
        let now = now_ms();
        let before = self.asked_ms.swap(now, Relaxed);
        if now.saturating_sub(before) >= IN_USE_MS {
            self.wake.notify_one();
        }
    }

    /// Whether the watermarks were asked about in the last [`IN_USE_MS`].
    fn in_use(&self) -> bool {
        now_ms().saturating_sub(self.asked_ms.load(Relaxed)) < IN_USE_MS
    }

    /// Client `who` made a write to `context` at `created_ms` (durable in the log), mirrored
    /// toward `toward`.
    pub fn wrote(&self, context: &str, who: u64, toward: Side, created_ms: i64) {
        self.asked();
        let mut r = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if r.newer.len() >= GENERATION {
            r.older = std::mem::take(&mut r.newer);
        }
        let at = r
            .newer
            .entry(slot(context, who, toward))
            .or_insert(created_ms);
        *at = (*at).max(created_ms);
    }

    /// Whether client `who`'s last write to `context` that was mirrored toward `side` may not
    /// have reached it yet.
    pub fn waiting(&self, context: &str, who: u64, side: Side) -> bool {
        let key = slot(context, who, side);
        let written = {
            let r = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            match r.newer.get(&key).or_else(|| r.older.get(&key)) {
                Some(at) => *at,
                None => return false,
            }
        };
        self.pending(context, side, written)
    }

    /// Whether a write to `context` made at `written` and mirrored toward `side` may not have
    /// reached it yet.
    pub fn pending(&self, context: &str, side: Side, written: i64) -> bool {
        self.asked();
        let marks = self.marks.load();
        let mut mark = marks.polled_ms - MARGIN_MS;
        if let Some(at) = marks.waiting.get(&(context.to_owned(), side)) {
            mark = mark.min(*at);
        }
        if let Some(at) = marks.unshipped {
            mark = mark.min(at);
        }
        written >= mark
    }

    /// Whether a write owner that moved (`at`, in effect from `from`) may take writes now: the
    /// move is in effect, and every write the old owner took while it settled (a replica that
    /// had not learned of it yet) has reached `owner` — as far as watermarks read after the
    /// move took effect (and a shipping margin) can tell.
    pub fn owner_settled(&self, context: &str, owner: Side, at: i64, from: i64, now: i64) -> bool {
        if now < from {
            return false;
        }
        self.asked();
        let marks = self.marks.load();
        if marks.polled_ms < from.saturating_add(MARGIN_MS) {
            return false;
        }
        let meanwhile = |t: i64| (at..from).contains(&t);
        let waiting = marks
            .waiting
            .get(&(context.to_owned(), owner))
            .is_some_and(|t| meanwhile(*t));
        !waiting && !marks.unshipped.is_some_and(meanwhile)
    }

    /// The watermarks as of the last poll.
    pub fn marks(&self) -> Arc<Marks> {
        self.marks.load_full()
    }

    pub fn set_marks(&self, marks: Marks) {
        self.marks.store(Arc::new(marks));
    }
}

/// The cookie that tells any replica when the client last wrote to `context`.
pub fn cookie_name(context: &str) -> String {
    format!("strangler-wrote-{context}")
}

/// The `Set-Cookie` value for a write to `context` made at `at_ms`: kept ten minutes, long
/// past any outbox delay worth reading around, sent on every path, never to scripts.
pub fn set_cookie(context: &str, at_ms: i64) -> String {
    format!(
        "{}={at_ms}; Path=/; Max-Age=600; HttpOnly; SameSite=Lax",
        cookie_name(context)
    )
}

/// When the request says its client last wrote to `context` (a number of at most 15 digits:
/// anything else is ignored).
pub fn wrote_at(headers: &http::HeaderMap, context: &str) -> Option<i64> {
    let fields = headers
        .get_all(http::header::COOKIE)
        .iter()
        .map(http::HeaderValue::as_bytes);
    let value = strangler_catalog::cookie::find(fields, &cookie_name(context))?;
    if value.is_empty() || value.len() > 15 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Reads the watermarks every [`POLL`] while they are in use and every [`IDLE_POLL`] when not,
/// forever. A failed read keeps the last ones, which only grow more cautious as time passes.
pub async fn marks(ryw: Arc<ReadYourWrites>, store: Arc<dyn OutboxStore>, wal: Arc<Wal>) {
    loop {
        // The log first: a write that leaves it after this is in the catalog when it is read.
        let unshipped = wal.oldest_unshipped();
        let polled_ms = now_ms();
        match store.waiting_since().await {
            Ok(rows) => ryw.set_marks(Marks {
                polled_ms,
                waiting: rows
                    .into_iter()
                    .map(|(context, side, at)| ((context, side), at))
                    .collect(),
                unshipped,
            }),
            Err(e) => tracing::debug!(error = %e, "read-your-writes watermarks not read"),
        }
        if ryw.in_use() {
            tokio::time::sleep(POLL).await;
        } else {
            // A question between the check and the wait leaves a permit: not missed.
            tokio::select! {
                () = tokio::time::sleep(IDLE_POLL) => {}
                () = ryw.wake.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
