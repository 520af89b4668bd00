//! A retry budget: each request deposits a fraction of a token, each retry spends a whole one,
//! so retries can never exceed that fraction of the traffic (plus a small reserve) and cannot
//! amplify an outage.

use std::sync::atomic::{AtomicI64, Ordering};

/// Tokens are counted in thousandths.
const MILLI: i64 = 1000;

#[derive(Debug)]
pub struct RetryBudget {
    balance: AtomicI64,
    deposit: i64,
    cap: i64,
}

impl RetryBudget {
    /// `ratio`: retries per request (0.2 = at most 20 %); `reserve`: retries allowed before any
    /// traffic has paid for them.
    pub fn new(ratio: f64, reserve: u32) -> Self {
        let reserve = i64::from(reserve) * MILLI;
        Self {
            balance: AtomicI64::new(reserve),
            deposit: (ratio.clamp(0.0, 1.0) * MILLI as f64) as i64,
            cap: reserve.max(MILLI) * 10,
        }
    }

    /// Called once per request.
    pub fn deposit(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((b + self.deposit).min(self.cap))
            });
    }

    /// Takes a token for a retry, if there is one.
    pub fn try_spend(&self) -> bool {
        self.balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b >= MILLI).then_some(b - MILLI)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests;
