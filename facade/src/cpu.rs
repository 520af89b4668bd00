//! CPU-heavy work off the async workers: translating large bodies, running jq, comparing large
//! shadow answers. Such work runs on Tokio's blocking threads, at most one job per core at a
//! time (a semaphore), within a time budget per request. A request whose work cannot start or
//! finish within the budget is answered 503 with `Retry-After` (counted), so that a handful of
//! hostile bodies cannot stall the workers that serve every other client and `/healthz`.
//!
//! A job that overruns cannot be stopped (neither parsing nor jaq can be interrupted); its
//! caller stops waiting and its permit stays taken until it ends, so the pool's bound holds.
//! Small work runs inline: handing it to a thread would cost more than doing it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Bodies up to this size are translated (without jq) and compared inline.
pub const INLINE_BYTES: usize = 64 * 1024;

/// Why work did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Overrun {
    #[error("no CPU was free for it within the time budget of {0:?}")]
    Busy(Duration),
    #[error("it took longer than the time budget of {0:?}")]
    TooSlow(Duration),
}

/// The pool: permits for jobs in flight, and the budget per request.
#[derive(Debug)]
pub struct Cpu {
    permits: Arc<Semaphore>,
    budget: Duration,
    busy: AtomicU64,
    too_slow: AtomicU64,
}

impl Cpu {
    /// A pool of `jobs` concurrent jobs (0: one per core) with `budget` per request.
    pub fn new(jobs: usize, budget: Duration) -> Self {
        let jobs = if jobs == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            jobs
        };
        Self {
            permits: Arc::new(Semaphore::new(jobs)),
            budget,
            busy: AtomicU64::new(0),
            too_slow: AtomicU64::new(0),
        }
    }

    /// Runs `f` on a blocking thread within the budget.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Overrun>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + self.budget;
        let permit = match tokio::time::timeout_at(
            deadline,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => p,
            _ => {
                self.busy.fetch_add(1, Relaxed);
                return Err(Overrun::Busy(self.budget));
            }
        };
        let job = tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        });
        match tokio::time::timeout_at(deadline, job).await {
            Ok(Ok(out)) => Ok(out),
            // A panic in the job: answered like work that did not finish.
            Ok(Err(_)) | Err(_) => {
                self.too_slow.fetch_add(1, Relaxed);
                Err(Overrun::TooSlow(self.budget))
            }
        }
    }

    /// (refused because busy, gave up because too slow), for `/metrics`.
    pub fn counts(&self) -> (u64, u64) {
        (self.busy.load(Relaxed), self.too_slow.load(Relaxed))
    }
}

#[cfg(test)]
mod tests;
