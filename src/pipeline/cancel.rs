//! Cancelling an async stage's op calls in flight when the stage is cancelled (`stop()`, a
//! failure limit upstream of it), so an op that never finishes cannot hold shutdown up.
//!
//! Each async worker has a [`CancelSet`]; every op call it starts runs inside [`guarded`], which
//! keeps the call's waker in the set. The worker registers its own waker with the pipeline's
//! `Control` once ([`wake_me_on_cancel`]); a cancel wakes it, it sees its stage discarding and
//! fires the set, which wakes every guarded call: each then drops its op future and reports
//! `None`, and the worker counts its item as discarded.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::stage::StageCx;

/// The op calls one worker has in flight.
#[derive(Default)]
pub(crate) struct CancelSet {
    fired: Cell<bool>,
    wakers: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl CancelSet {
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Cancels every call in flight and every call started from now on.
    pub(crate) fn fire(&self) {
        if self.fired.replace(true) {
            return;
        }
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        wakers.into_iter().flatten().for_each(Waker::wake);
    }

    /// Fires when `cx`'s stage is discarding.
    pub(crate) fn fire_if_cancelled(&self, cx: &StageCx) {
        if !self.fired.get() && cx.discarding() {
            self.fire();
        }
    }

    fn register(&self) -> usize {
        let mut wakers = self.wakers.borrow_mut();
        match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                wakers.push(None);
                wakers.len() - 1
            }
        }
    }

    fn store(&self, id: usize, waker: &Waker) {
        if let Some(slot) = self.wakers.borrow_mut().get_mut(id) {
            match slot {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }

    fn unregister(&self, id: usize) {
        if let Some(slot) = self.wakers.borrow_mut().get_mut(id) {
            *slot = None;
            self.free.borrow_mut().push(id);
        }
    }
}

/// Frees a call's slot however the call ends (finished, cancelled, or its task dropped).
struct Registration<'a> {
    set: &'a CancelSet,
    id: usize,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.set.unregister(self.id);
    }
}

/// Runs `fut` unless `set` fires first: `Some(output)`, or `None` when cancelled (the future is
/// dropped then, never polled again).
pub(crate) async fn guarded<F: Future>(set: Rc<CancelSet>, fut: F) -> Option<F::Output> {
    let reg = Registration { set: &set, id: set.register() };
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if reg.set.fired.get() {
            return Poll::Ready(None);
        }
        match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => {
                reg.set.store(reg.id, cx.waker());
                Poll::Pending
            }
        }
    })
    .await
}

/// Registers the calling task to be woken when the pipeline cancels stages (stop, limits).
pub(crate) async fn wake_me_on_cancel(cx: &StageCx) {
    poll_fn(|c| {
        cx.control.wake_on_cancel(c.waker());
        Poll::Ready(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fired_set_drops_a_call_that_never_finishes() {
        let set = CancelSet::new();
        let stuck = guarded(set.clone(), std::future::pending::<u32>());
        let done = guarded(set.clone(), async { 7 });
        let out = crate::runtime::block_on(async {
            let d = done.await;
            let mut stuck = std::pin::pin!(stuck);
            // Not fired: still pending after a poll.
            let first = poll_fn(|c| Poll::Ready(stuck.as_mut().poll(c).is_pending())).await;
            set.fire();
            (d, first, stuck.await)
        });
        assert_eq!(out, (Some(7), true, None));
        assert!(set.wakers.borrow().iter().all(Option::is_none), "every slot freed");
    }
}
