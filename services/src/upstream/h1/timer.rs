//! The answer's deadline on one connection, kept lazily. Each exchange only notes when its
//! answer is due; the connection's one timer is moved to that time only when it fires before
//! it (an earlier exchange's deadline), or at once when the new time is earlier than the one
//! it is set to. With a deadline seconds away and exchanges microseconds apart, the timer
//! fires about once per deadline's length, where resetting and polling it per exchange cost
//! ~400 instructions of every request.
//!
//! The timer is polled with a waker of the connection's own (`relay::Signal`), which marks the
//! connection and wakes the task that waits on it: a wake that did not come through it finds
//! no mark and costs registering the task's waker. A connection going back to the pool takes
//! that task's waker out, so that an idle connection keeps no finished task alive and wakes
//! none.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::time::{Instant, Sleep};

use crate::relay::Signal;

pub(super) struct AnswerTimer {
    /// The timer (set to fire at its `deadline()`) and when this exchange's answer is due;
    /// made on the first exchange that has a deadline.
    armed: Option<(Pin<Box<Sleep>>, Instant)>,
    /// Whether the timer holds `waker` and has not fired since it took it.
    registered: bool,
    signal: Arc<Signal>,
    waker: Waker,
}

impl AnswerTimer {
    pub(super) fn new() -> Self {
        let (signal, waker) = Signal::new();
        Self {
            armed: None,
            registered: false,
            signal,
            waker,
        }
    }

    /// This exchange's answer is due at `due`.
    pub(super) fn arm(&mut self, due: Instant) {
        match &mut self.armed {
            None => {
                self.armed = Some((Box::pin(tokio::time::sleep_until(due)), due));
                self.registered = false;
            }
            Some((sleep, at)) => {
                *at = due;
                // Set to fire after it: moved now (the timer wheel's lock, as any earlier
                // time). Set to fire before it (or at it): moved on when it fires.
                if due < sleep.deadline() {
                    sleep.as_mut().reset(due);
                    self.registered = false;
                }
            }
        }
    }

    /// Ready once the armed time has passed; until then the task is woken when it does.
    pub(super) fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some((sleep, due)) = &mut self.armed else {
            return Poll::Pending;
        };
        // Registered before the mark is read: a fire between the two reaches this task.
        self.signal.register(cx.waker());
        if self.registered && !self.signal.take_fired() {
            return Poll::Pending;
        }
        let mut own = Context::from_waker(&self.waker);
        loop {
            match sleep.as_mut().poll(&mut own) {
                Poll::Pending => {
                    self.registered = true;
                    return Poll::Pending;
                }
                Poll::Ready(()) if sleep.deadline() >= *due => {
                    self.registered = false;
                    return Poll::Ready(());
                }
                // An earlier exchange's time: on to this one's.
                Poll::Ready(()) => sleep.as_mut().reset(*due),
            }
        }
    }

    /// Takes out the waker of the task that waited last (see the module's documentation).
    pub(super) fn forget_waker(&mut self) {
        self.signal.forget_task();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    /// Counts the wakes of a task.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polls `timer` as a task whose wakes `count` counts.
    fn poll(timer: &mut AnswerTimer, count: &Arc<Count>) -> Poll<()> {
        let waker = Waker::from(Arc::clone(count));
        timer.poll_due(&mut Context::from_waker(&waker))
    }

    /// Lets the runtime's timer run up to the current (paused) time.
    async fn settle() {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_exchange_times_out_at_its_own_deadline_not_an_earlier_ones() {
        let mut timer = AnswerTimer::new();
        let count = Arc::new(Count::default());
        let start = Instant::now();
        // The first exchange: due in 10 s, answered at once.
        timer.arm(start + Duration::from_secs(10));
        assert!(poll(&mut timer, &count).is_pending());
        timer.forget_waker();
        // The next, 5 s later: due at 15 s. The timer still fires at 10 s.
        tokio::time::advance(Duration::from_secs(5)).await;
        timer.arm(start + Duration::from_secs(15));
        assert!(poll(&mut timer, &count).is_pending());
        tokio::time::advance(Duration::from_secs(5) + Duration::from_millis(1)).await;
        settle().await;
        // Woken at 10 s, and not due: it waits on.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut timer, &count).is_pending());
        tokio::time::advance(Duration::from_secs(4)).await;
        settle().await;
        assert!(poll(&mut timer, &count).is_pending());
        // Due at 15 s: woken, and ready.
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(poll(&mut timer, &count).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_moves_the_timer_at_once() {
        let mut timer = AnswerTimer::new();
        let count = Arc::new(Count::default());
        let start = Instant::now();
        timer.arm(start + Duration::from_secs(30));
        assert!(poll(&mut timer, &count).is_pending());
        timer.arm(start + Duration::from_secs(1));
        assert!(poll(&mut timer, &count).is_pending());
        tokio::time::advance(Duration::from_secs(1) + Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut timer, &count).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_wakes_no_task_and_holds_none() {
        let mut timer = AnswerTimer::new();
        let count = Arc::new(Count::default());
        timer.arm(Instant::now() + Duration::from_secs(1));
        assert!(poll(&mut timer, &count).is_pending());
        assert_eq!(
            Arc::strong_count(&count),
            2,
            "the waiting task's waker is held"
        );
        timer.forget_waker();
        assert_eq!(Arc::strong_count(&count), 1, "no waker of the task is left");
        tokio::time::advance(Duration::from_secs(2)).await;
        settle().await;
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        // The next exchange finds the fire, moves the timer on and waits.
        timer.arm(Instant::now() + Duration::from_secs(1));
        assert!(poll(&mut timer, &count).is_pending());
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut timer, &count).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn other_wakes_do_not_poll_the_timer_but_a_past_deadline_is_seen() {
        let mut timer = AnswerTimer::new();
        let count = Arc::new(Count::default());
        timer.arm(Instant::now() + Duration::from_secs(1));
        for _ in 0..100 {
            assert!(poll(&mut timer, &count).is_pending());
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert!(poll(&mut timer, &count).is_ready());
    }
}
