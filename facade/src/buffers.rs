//! The process-wide budget for bodies the facade holds in memory: bodies buffered for a
//! translator (and what parsing them takes), shadow copies of requests and answers, mirrored
//! writes waiting for the outbox. Each holder takes bytes from one counter before it buffers
//! and gives them back when it is dropped; when the budget is spent the request is answered
//! 503 with `Retry-After` (or the shadow is skipped and counted), so that many large bodies at
//! once degrade service instead of exhausting memory and aborting the process.
//!
//! The default is a quarter of the memory the process may use (its cgroup's limit, or the
//! machine's), at least 64 MiB.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// One counter of bytes held, against a limit.
#[derive(Debug)]
pub struct Buffers {
    limit: usize,
    used: AtomicUsize,
    /// Times a hold was refused.
    refused: AtomicU64,
}

impl Buffers {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Takes `bytes` from the budget, or refuses (and counts) when they do not fit.
    pub fn hold(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        let mut held = Held {
            buffers: Arc::clone(self),
            bytes: 0,
        };
        held.grow(bytes).then_some(held)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }
}

/// Bytes taken from the budget, given back on drop.
#[derive(Debug)]
pub struct Held {
    buffers: Arc<Buffers>,
    bytes: usize,
}

impl Held {
    /// Takes `more` bytes; false (and nothing taken) when they do not fit.
    pub fn grow(&mut self, more: usize) -> bool {
        let b = &self.buffers;
        let taken = b
            .used
            .fetch_update(Relaxed, Relaxed, |used| {
                used.checked_add(more).filter(|n| *n <= b.limit)
            })
            .is_ok();
        if taken {
            self.bytes += more;
        } else {
            b.refused.fetch_add(1, Relaxed);
        }
        taken
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.buffers.used.fetch_sub(self.bytes, Relaxed);
    }
}

/// The memory the process may use: its cgroup's limit when it has one, else the machine's.
pub fn memory_limit() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let machine = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    match (cgroup, machine) {
        (Some(c), Some(m)) => Some(c.min(m)),
        (c, m) => c.or(m),
    }
}

/// The default budget: a quarter of [`memory_limit`], at least 64 MiB (1 GiB when the limit
/// cannot be read).
pub fn default_budget() -> usize {
    let quarter = memory_limit().map_or(1 << 30, |m| m / 4);
    usize::try_from(quarter.max(64 << 20)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests;
