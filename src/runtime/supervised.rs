//! The wrapper around every task's future: a panic becomes an `Err` for the task's handle, and
//! the shard counts the task as live from its first poll until it finishes or is dropped.
//!
//! A hand-written future rather than an `async fn` holding a drop guard across its `.await`, so
//! that its `poll` can be inlined into async-task's `run`: called out of line, its output (a
//! tag and a `Result` of 16 bytes) came back through the stack in word-sized stores that the
//! caller read back as one 16-byte load, a store-forwarding stall. Inlined, `spawn/shardpipe`
//! went from 78.3 to 63.8 ns.
//!
//! # Safety
//! The one `unsafe` is the pin projection to the inner future: `fut` is structurally pinned
//! (never moved out of a pinned `Supervised`, not even by `Drop`), and the other fields are
//! plain values that are never pinned.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::context;
use super::task::TaskResult;

/// Where a supervised future is in its life.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not polled yet: not counted as live.
    Idle,
    /// Polled and not finished: counted as live on this shard.
    Running,
    /// Finished (its output, or its panic, was returned): no longer counted.
    Done,
}

/// `fut`, with its panic caught and its life counted (see the module docs).
pub(crate) struct Supervised<F> {
    fut: F,
    stage: Stage,
}

impl<F> Supervised<F> {
    pub(crate) fn new(fut: F) -> Self {
        Self { fut, stage: Stage::Idle }
    }
}

impl<F: Future> Future for Supervised<F> {
    type Output = TaskResult<F::Output>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `fut` is structurally pinned (module `# Safety`): it is only ever reached
        // through `Pin::new_unchecked` below and never moved; `stage` is a plain `Copy` field.
        let this = unsafe { self.get_unchecked_mut() };
        match this.stage {
            Stage::Idle => {
                context::add_live(1);
                this.stage = Stage::Running;
            }
            Stage::Running => {}
            Stage::Done => panic!("a task's future was polled after it finished"),
        }
        // SAFETY: `this` came from a pinned `Supervised`, and `fut` is structurally pinned.
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        let out = match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(v)) => Ok(v),
            Err(panic) => Err(panic),
        };
        this.stage = Stage::Done;
        context::add_live(-1);
        Poll::Ready(out)
    }
}

impl<F> Drop for Supervised<F> {
    fn drop(&mut self) {
        // Dropped mid-run (its shard shut down, or the task was cancelled): no longer live.
        if self.stage == Stage::Running {
            context::add_live(-1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{Future, pending, ready};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::Supervised;
    use crate::runtime::context;

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_task_is_live_from_its_first_poll_until_it_finishes() {
        let before = context::live();
        let mut gate = false;
        let fut = std::future::poll_fn(
            move |_| {
                if std::mem::replace(&mut gate, true) { Poll::Ready(7) } else { Poll::Pending }
            },
        );
        let mut sup = pin!(Supervised::new(fut));
        assert_eq!(context::live(), before, "not live before its first poll");
        assert!(poll_once(sup.as_mut()).is_pending());
        assert_eq!(context::live(), before + 1);
        assert!(matches!(poll_once(sup.as_mut()), Poll::Ready(Ok(7))));
        assert_eq!(context::live(), before);
    }

    #[test]
    fn a_panic_becomes_an_error_and_the_task_is_no_longer_live() {
        let before = context::live();
        let mut sup = pin!(Supervised::new(async { panic!("boom") }));
        match poll_once(sup.as_mut()) {
            Poll::Ready(Err(p)) => assert_eq!(crate::runtime::task_panic_message(&*p), "boom"),
            _ => panic!("the panic must come back as an error"),
        }
        assert_eq!(context::live(), before);
    }

    #[test]
    fn dropping_a_running_task_ends_its_life_and_an_unpolled_one_never_counted() {
        let before = context::live();
        let mut running = Box::pin(Supervised::new(pending::<()>()));
        assert!(poll_once(running.as_mut()).is_pending());
        assert_eq!(context::live(), before + 1);
        drop(running);
        assert_eq!(context::live(), before);
        drop(Supervised::new(ready(())));
        assert_eq!(context::live(), before);
    }
}
