//! A future polled again only once its own wake came: for the connection driver's watch on the
//! listener's phase, which changes once or twice in a process's life but, polled as a branch
//! of the driver's `select!`, would be polled on every wake of the connection (two per request,
//! each ~180 instructions of tokio's `Notify`).
//!
//! The inner future is polled with a waker of the gate's own (`strangler_services::relay`);
//! when that waker fires, it marks the gate and wakes the connection's task. A wake of the task
//! that did not come through the gate finds it unmarked and returns `Pending` at the cost of
//! registering the task's waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use strangler_services::relay::Signal;

/// One per connection; [`Gate::guard`] wraps each future it gates.
pub(super) struct Gate {
    signal: Arc<Signal>,
    waker: Waker,
}

impl Gate {
    pub(super) fn new() -> Self {
        let (signal, waker) = Signal::new();
        Self { signal, waker }
    }

    /// `fut`, polled on its first poll and then only after its waker fired.
    pub(super) fn guard<F: Future>(&self, fut: F) -> Gated<'_, F> {
        Gated {
            gate: self,
            fut: Box::pin(fut),
            polled: false,
        }
    }
}

pub(super) struct Gated<'g, F> {
    gate: &'g Gate,
    // Boxed: the inner future need not be `Unpin` (one allocation per `select!`, which the
    // driver enters once per connection, and again only on a phase change or an HTTP/2 tick).
    fut: Pin<Box<F>>,
    polled: bool,
}

impl<F: Future> Future for Gated<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let signal = &self.gate.signal;
        // Registered before the mark is read: a wake between the two reaches this task.
        signal.register(cx.waker());
        if self.polled && !signal.take_fired() {
            return Poll::Pending;
        }
        self.polled = true;
        let waker = self.gate.waker.clone();
        let mut inner = Context::from_waker(&waker);
        self.fut.as_mut().poll(&mut inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::Wake;

    /// Counts its polls; ready once `open` is set (and woken through the waker it was given).
    struct Door {
        polls: Arc<AtomicUsize>,
        open: Arc<AtomicBool>,
        waker: Arc<std::sync::Mutex<Option<Waker>>>,
    }

    impl Future for Door {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.open.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn the_inner_future_is_polled_once_until_its_waker_fires_then_completes() {
        let polls = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicBool::new(false));
        let slot = Arc::new(std::sync::Mutex::new(None::<Waker>));
        let gate = Gate::new();
        let mut gated = gate.guard(Door {
            polls: Arc::clone(&polls),
            open: Arc::clone(&open),
            waker: Arc::clone(&slot),
        });
        let mut gated = Pin::new(&mut gated);
        // Woken by something else, many times: the door is polled once.
        let noop = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&noop);
        for _ in 0..100 {
            assert!(gated.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        // The door opens and wakes the waker it was given: the task is woken, and the next
        // poll reaches the door.
        open.store(true, Ordering::SeqCst);
        let waker = slot.lock().unwrap().take().unwrap();
        let woken = Arc::new(Flag::default());
        let task = Waker::from(Arc::clone(&woken));
        let mut cx = Context::from_waker(&task);
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        waker.wake();
        assert!(woken.0.load(Ordering::SeqCst), "the task was not woken");
        assert!(gated.as_mut().poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    #[derive(Default)]
    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_watch_change_reaches_a_gated_wait() {
        let (tx, mut rx) = tokio::sync::watch::channel(0u8);
        let gate = Gate::new();
        let waiting = tokio::spawn(async move {
            let gate = gate;
            gate.guard(rx.changed()).await.is_ok()
        });
        // Let the waiting task register before the change (it may or may not have: both ways
        // the change must reach it).
        tokio::task::yield_now().await;
        tx.send(1).unwrap();
        assert!(waiting.await.unwrap());
    }
}
