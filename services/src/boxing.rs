//! Futures boxed where they are made.
//!
//! `Box::pin(fut)` makes the future on the stack, then allocates, then copies the future's
//! whole size into the box — every byte of every state it may reach, although an unstarted
//! future holds only its arguments. The request path boxes several such futures per request
//! (each to keep a rarely taken step's state out of every request's), so the copy was paid
//! per request, into memory just taken from the allocator and not yet in the cache.

use std::future::Future;
use std::pin::Pin;

/// `make()`'s future in a box allocated before the future is made, so that the compiler can
/// build it in the box and copy only what is set.
#[inline(always)]
pub fn in_box<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}
