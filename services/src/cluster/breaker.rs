//! A circuit breaker per service: closed → open when the failure rate over a rolling window
//! passes a threshold (with a minimum number of requests) → half-open after a cool-down, where a
//! few probes decide → closed again, or open again.

use std::sync::Mutex;
use std::time::Duration;

use super::clock_ms;

/// Breaker settings.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// The rolling window the failure rate is measured over.
    pub window: Duration,
    /// Fewer requests than this in the window never open the breaker.
    pub min_requests: u32,
    /// Failure share (0–1) that opens it.
    pub failure_rate: f64,
    /// How long it stays open before probing.
    pub cool_down: Duration,
    /// Probes let through while half-open; all must succeed to close.
    pub probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            min_requests: 20,
            failure_rate: 0.5,
            cool_down: Duration::from_secs(5),
            probes: 3,
        }
    }
}

/// The breaker's state, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// Ten buckets make up the window.
const BUCKETS: usize = 10;

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    /// Milliseconds on the cluster clock.
    opened_at: u64,
    /// (bucket start in ms, total, failures), oldest first.
    buckets: [(u64, u32, u32); BUCKETS],
    probes_out: u32,
    probes_ok: u32,
}

/// The breaker. A short lock per request (never held across an `.await`).
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// What the breaker says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// A half-open probe.
    Probe,
    No,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        let now = clock_ms();
        Self {
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                opened_at: now,
                buckets: [(now, 0, 0); BUCKETS],
                probes_out: 0,
                probes_ok: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        self.tick(&mut inner, clock_ms());
        inner.state
    }

    fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    /// Moves open → half-open once the cool-down is over.
    fn tick(&self, inner: &mut Inner, now: u64) {
        if inner.state == BreakerState::Open
            && now.saturating_sub(inner.opened_at) >= Self::ms(self.config.cool_down)
        {
            inner.state = BreakerState::HalfOpen;
            inner.probes_out = 0;
            inner.probes_ok = 0;
        }
    }

    /// May a request go? Returns the transition, if any, for reporting.
    pub fn admit(&self) -> (Admit, Option<BreakerState>) {
        let mut inner = self.lock();
        let before = inner.state;
        self.tick(&mut inner, clock_ms());
        let moved = (inner.state != before).then_some(inner.state);
        let admit = match inner.state {
            BreakerState::Closed => Admit::Yes,
            BreakerState::Open => Admit::No,
            BreakerState::HalfOpen if inner.probes_out < self.config.probes => {
                inner.probes_out += 1;
                Admit::Probe
            }
            BreakerState::HalfOpen => Admit::No,
        };
        (admit, moved)
    }

    /// Records an outcome; returns the new state when it changed.
    pub fn record(&self, admit: Admit, ok: bool) -> Option<BreakerState> {
        let now = clock_ms();
        let mut inner = self.lock();
        let before = inner.state;
        match (inner.state, admit) {
            (BreakerState::HalfOpen, Admit::Probe) => {
                if ok {
                    inner.probes_ok += 1;
                    if inner.probes_ok >= self.config.probes {
                        inner.state = BreakerState::Closed;
                        inner.buckets = [(now, 0, 0); BUCKETS];
                    }
                } else {
                    inner.state = BreakerState::Open;
                    inner.opened_at = now;
                }
            }
            (BreakerState::Closed, _) => {
                let window = Self::ms(self.config.window);
                let width = (window / BUCKETS as u64).max(1);
                let last = BUCKETS - 1;
                if now.saturating_sub(inner.buckets[last].0) >= width {
                    inner.buckets.rotate_left(1);
                    inner.buckets[last] = (now, 0, 0);
                }
                inner.buckets[last].1 += 1;
                inner.buckets[last].2 += u32::from(!ok);
                let (total, failed) = inner
                    .buckets
                    .iter()
                    .filter(|b| now.saturating_sub(b.0) < window)
                    .fold((0u32, 0u32), |(t, f), b| (t + b.1, f + b.2));
                if total >= self.config.min_requests
                    && f64::from(failed) / f64::from(total) >= self.config.failure_rate
                {
                    inner.state = BreakerState::Open;
                    inner.opened_at = now;
                }
            }
            _ => {}
        }
        (inner.state != before).then_some(inner.state)
    }
}
