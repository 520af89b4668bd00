//! A waker of a future's own that marks the future and wakes the task waiting on it: for inner
//! futures polled again only once their own wake came (the facade's gate over the connection
//! driver's phase watch, the upstream connection's answer timer). A wake of the task that did
//! not come through it finds no mark and costs registering the task's waker, where polling
//! the inner future (a tokio `Notify`, a timer) would cost more.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use futures_util::task::AtomicWaker;

/// What the inner future's waker reaches.
#[derive(Default)]
pub struct Signal {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Signal {
    /// A new signal and the waker to poll the inner future with.
    pub fn new() -> (Arc<Self>, Waker) {
        let signal = Arc::new(Self::default());
        let waker = Waker::from(Arc::clone(&signal));
        (signal, waker)
    }

    /// Registers the waiting task's waker: call it before [`Signal::take_fired`], so that a
    /// fire between the two reaches the task.
    pub fn register(&self, waker: &Waker) {
        self.task.register(waker);
    }

    /// Whether the inner future's waker fired since the last call (the mark is cleared).
    pub fn take_fired(&self) -> bool {
        self.fired.swap(false, Ordering::AcqRel)
    }

    /// Takes the waiting task's waker out: a fire from now on wakes no task (and the signal
    /// keeps none alive) until one registers again.
    pub fn forget_task(&self) {
        drop(self.task.take());
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}
