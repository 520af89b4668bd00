//! What shadowing may take: shadows in flight (a cap that bounds memory), shadows started per
//! second (the operator's optional cap), and the governor's own cap, which makes shadows yield
//! to the clients' requests.
//!
//! A compared shadow is work no client asked for, and it costs about as much CPU again as the
//! request it copies. So the governor reads, every tenth of a second, how much of that time the
//! runtime's workers were busy. Above the ceiling (`[shadow] cpu_ceiling`, 60 % by default) it
//! caps shadow starts below what started in the last tick (× 0.7 a tick, never under
//! [`FLOOR`] a second, so comparisons go on); under nine tenths of the ceiling it raises the cap
//! by a fifth a tick, to no more than twice what shadows started (at least [`IDLE`]), so that
//! the cap follows the load up instead of being lifted and overrun. Whatever the operator set,
//! shadowing cannot push the workers far past the ceiling for longer than a tick or two.
//! Shadows refused by any cap are counted `budget_full`. Mirrored writes are never governed:
//! they keep the other side's data whole, and their queue bounds them.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shadow starts a second the governor always allows: at ~30 µs each, 0.3 % of a core —
/// too little to hurt clients, enough for comparisons to go on.
pub const FLOOR: u32 = 100;

/// Starts the governor's cap lets through at once at least (a twentieth of a second's worth
/// at higher rates), so that a handful of requests arriving together are all compared.
const GOVERNED_BURST: u64 = 20;

/// The cap while shadows start at under half of it: the first burst after a quiet spell
/// grows from here, a fifth a tick. High enough that a quiet facade never turns a burst of a
/// few dozen requests away (the rate cap lets a twentieth of a second's worth start at once).
const IDLE: f64 = 1000.0;

/// How often the governor looks.
const TICK: Duration = Duration::from_millis(100);

/// The shadows in flight, the rate caps, and what the governor saw.
#[derive(Debug, Default)]
pub struct Budget {
    in_flight: AtomicUsize,
    /// The rate cap's theoretical arrival time, in nanoseconds since the first call (GCRA):
    /// starts are spaced evenly, with a burst of a twentieth of a second's allowance.
    next_ns: AtomicU64,
    /// Compared shadows started since the process began.
    started: AtomicU64,
    /// The governor's cap on starts per second (0: not started).
    governed: AtomicU32,
    /// The workers' busy share over the governor's last tick, in thousandths.
    busy_permille: AtomicU32,
}

/// One shadow's place in the in-flight count, given back on drop.
pub(crate) struct Slot(Arc<Budget>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Budget {
    /// A compared shadow's slot: within `max` in flight, the operator's `per_second` (0: no
    /// cap) and the governor's cap.
    pub(crate) fn take(self: &Arc<Self>, max: usize, per_second: u32) -> Option<Slot> {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let now =
            u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.take_at(max, per_second, now)
    }

    /// A mirrored write's slot: counted in flight, never refused.
    pub(crate) fn take_mirror(self: &Arc<Self>) -> Slot {
        self.in_flight.fetch_add(1, Relaxed);
        Slot(Arc::clone(self))
    }

    /// [`Budget::take`] at `now_ns` nanoseconds on the budget's clock.
    fn take_at(self: &Arc<Self>, max: usize, per_second: u32, now_ns: u64) -> Option<Slot> {
        // The operator's cap keeps its own burst; the governor's lets a few more through.
        let (rate, min_burst) = match (per_second, self.governed.load(Relaxed)) {
            (0, 0) => (0, 1),
            (p, g) if g == 0 || (p > 0 && p <= g) => (p, 1),
            (_, g) => (g, GOVERNED_BURST),
        };
        if rate > 0 && !self.rate_allows(rate, min_burst, now_ns) {
            return None;
        }
        let slot = self
            .in_flight
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Slot(Arc::clone(self)))?;
        self.started.fetch_add(1, Relaxed);
        Some(slot)
    }

    /// Counts one start at `now` (ns) against the rate cap, which lets a twentieth of a
    /// second's worth (at least `min_burst`) start at once.
    fn rate_allows(&self, per_second: u32, min_burst: u64, now: u64) -> bool {
        let interval = 1_000_000_000 / u64::from(per_second.max(1));
        let burst = interval * u64::from(per_second / 20).max(min_burst).max(1);
        self.next_ns
            .fetch_update(Relaxed, Relaxed, |tat| {
                let tat = tat.max(now);
                (tat - now <= burst - interval).then_some(tat + interval)
            })
            .is_ok()
    }

    /// The governor's cap on shadow starts per second now (0: no governor runs).
    pub fn governed(&self) -> u32 {
        self.governed.load(Relaxed)
    }

    /// The workers' busy share over the governor's last tick (0 to 1).
    pub fn busy_share(&self) -> f64 {
        f64::from(self.busy_permille.load(Relaxed)) / 1000.0
    }
}

/// Governs `budget` for as long as the runtime runs, keeping the workers' busy share under
/// `ceiling` (0 to 1) as far as shadows can.
pub async fn govern(budget: Arc<Budget>, ceiling: f64) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let workers = metrics.num_workers().max(1);
    let busy = || -> Duration {
        (0..workers)
            .map(|w| metrics.worker_total_busy_duration(w))
            .sum()
    };
    let mut last = (Instant::now(), busy(), budget.started.load(Relaxed));
    let mut limit = IDLE;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = (Instant::now(), busy(), budget.started.load(Relaxed));
        let seconds = now.0.duration_since(last.0).as_secs_f64();
        if seconds <= 0.0 {
            continue;
        }
        let share = (now.1.saturating_sub(last.1).as_secs_f64() / (seconds * workers as f64))
            .clamp(0.0, 1.0);
        let started = now.2.saturating_sub(last.2) as f64 / seconds;
        limit = next_limit(limit, share, started, ceiling);
        budget.governed.store(
            limit.clamp(f64::from(FLOOR), f64::from(u32::MAX)) as u32,
            Relaxed,
        );
        budget
            .busy_permille
            .store((share * 1000.0).round() as u32, Relaxed);
        last = now;
    }
}

/// One step of the governor: the cap on shadow starts per second after a tick in which the
/// workers were busy for `busy` of the time (0 to 1) and `started` shadows started per second
/// under the cap `limit`.
fn next_limit(limit: f64, busy: f64, started: f64, ceiling: f64) -> f64 {
    let floor = f64::from(FLOOR);
    if busy > ceiling {
        // Below what started, so that the cut bites even where the cap did not.
        return (limit.min(started) * 0.7).max(floor);
    }
    if busy >= ceiling * 0.9 {
        return limit;
    }
    // Room: grow by a fifth, but to no more than twice what shadows used — a cap nobody used
    // says nothing about what reaching it would cost, and lifting it would let the first busy
    // tenth of a second after a quiet one start shadows unchecked.
    (limit * 1.2 + floor).min((started * 2.0).max(IDLE))
}
#[cfg(test)]
mod tests;
