//! The shard-local context: everything a shard thread owns, reached through one thread-local.
//!
//! Holds the local run queue (plain `VecDeque`, no atomics), the ring driver, the timers, the
//! cooperative budget and the list of channel ends to flush at the end of the loop turn. Code that
//! runs off a shard sees `None` from every accessor and takes its off-shard path.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use async_task::Runnable;

use super::shard::ShardShared;
use super::time::Timers;
use crate::driver::Driver;
use std::sync::Arc;

/// Something with batched work to publish at the end of a loop turn (a channel end).
pub(crate) trait Deferred {
    /// Publishes what was batched; called on the shard thread.
    fn flush(&self);
}

pub(crate) struct Context {
    pub(crate) shard: Arc<ShardShared>,
    pub(crate) local: RefCell<VecDeque<Runnable>>,
    pub(crate) driver: RefCell<Driver>,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) deferred: RefCell<Vec<Rc<dyn Deferred>>>,
    /// Polls left for the task running now before its leaf futures start yielding.
    pub(crate) budget: Cell<u32>,
    /// Tasks that have started and not yet finished on this shard.
    pub(crate) live: Cell<usize>,
    pub(crate) tasks_run: Cell<u64>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Rc<Context>>> = const { RefCell::new(None) };
}

/// Installs `cx` as this thread's context (shard start).
pub(crate) fn enter(cx: Rc<Context>) {
    CONTEXT.with(|c| *c.borrow_mut() = Some(cx));
}

/// Removes this thread's context (shard exit).
pub(crate) fn leave() -> Option<Rc<Context>> {
    CONTEXT.with(|c| c.borrow_mut().take())
}

/// Runs `f` with the current shard's context, or returns `None` off a shard.
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    CONTEXT.try_with(|c| c.borrow().as_deref().map(f)).ok().flatten()
}

/// Whether the calling thread is a shard thread.
pub(crate) fn on_shard() -> bool {
    with(|_| ()).is_some()
}

/// Runs `f` with the current shard's driver. `None` off a shard.
#[inline]
pub(crate) fn with_driver<R>(f: impl FnOnce(&mut Driver) -> R) -> Option<R> {
    with(|cx| f(&mut cx.driver.borrow_mut()))
}

/// Queues `d` to be flushed at the end of this loop turn. Returns false off a shard (then the
/// caller must publish immediately).
pub(crate) fn defer_flush(d: Rc<dyn Deferred>) -> bool {
    with(|cx| cx.deferred.borrow_mut().push(d)).is_some()
}

/// Cooperative budget: returns false once the running task has used its share of this turn,
/// after which leaf futures wake themselves and return `Pending`. Always true off a shard.
#[inline]
pub(crate) fn consume_budget() -> bool {
    with(|cx| {
        let b = cx.budget.get();
        if b == 0 {
            false
        } else {
            cx.budget.set(b - 1);
            true
        }
    })
    .unwrap_or(true)
}

/// The index of the shard running the caller, if any.
pub fn current_shard() -> Option<usize> {
    with(|cx| cx.shard.id)
}
