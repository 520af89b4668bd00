//! Request ids: unique per process run, cheap to make, printed only when needed.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// A request id: a per-process prefix from the start time and a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(u64);

static COUNTER: AtomicU64 = AtomicU64::new(0);
static PREFIX: OnceLock<u32> = OnceLock::new();

impl RequestId {
    pub fn next() -> Self {
        Self(COUNTER.fetch_add(1, Ordering::Relaxed))
    }
}

fn prefix() -> u32 {
    *PREFIX.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        // Mix the clock with the pid so two processes started together differ.
        ((nanos as u64) ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            as u32
    })
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}{:08x}", prefix(), self.0)
    }
}
