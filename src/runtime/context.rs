//! The shard-local context: everything a shard thread owns, reached through one thread-local.
//!
//! Holds the ring driver, the timers and the list of channel ends to flush at the end of the loop
//! turn. The hottest per-task state (the local run queue, a plain `VecDeque`; the live-task count;
//! the cooperative budget; which shard this thread is) lives in const thread-locals of its own, so
//! a spawn or a wake touches no `RefCell<Option<Rc<_>>>`. Code that runs off a shard sees `None`
//! (or shard key 0) and takes its off-shard path.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use super::task::Runnable;

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
    pub(crate) driver: RefCell<Driver>,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) deferred: RefCell<Vec<Rc<dyn Deferred>>>,
    pub(crate) tasks_run: Cell<u64>,
    /// Whether this shard spins before parking (off when shards share CPUs).
    pub(crate) spin: bool,
    /// Ready operations a task may do per poll.
    pub(crate) task_budget: u32,
}

thread_local! {
    static CONTEXT: RefCell<Option<Rc<Context>>> = const { RefCell::new(None) };
    /// Ready operations left to the running task before its leaf futures yield. Its own
    /// const thread-local (no destructor, no `RefCell`): it is touched on every channel op.
    static BUDGET: Cell<u32> = const { Cell::new(u32::MAX) };
    /// The key of the shard this thread runs (0: not a shard thread).
    static SHARD_KEY: Cell<u64> = const { Cell::new(0) };
    /// Set when a task woke itself while running (it yielded): the loop then looks at how long
    /// its turn has run.
    static YIELDED: Cell<bool> = const { Cell::new(false) };
    /// The local run queue: runnables woken on this shard's own thread.
    static LOCAL: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
    /// Tasks that have started and not yet finished on this shard.
    static LIVE: Cell<usize> = const { Cell::new(0) };
    /// This shard's timeline, when tracing.
    static TRACE: RefCell<Option<crate::trace::TraceBuf>> = const { RefCell::new(None) };
}

/// Starts recording this thread's timeline.
pub(crate) fn start_trace(buf: crate::trace::TraceBuf) {
    TRACE.with(|t| *t.borrow_mut() = Some(buf));
}

/// Stops recording and hands the timeline back.
pub(crate) fn take_trace() -> Option<crate::trace::TraceBuf> {
    TRACE.with(|t| t.borrow_mut().take())
}

/// Adds to this thread's timeline, if it records one (a no-op otherwise).
#[inline]
pub(crate) fn trace(f: impl FnOnce(&mut crate::trace::TraceBuf)) {
    TRACE.with(|t| {
        if let Ok(mut t) = t.try_borrow_mut()
            && let Some(b) = t.as_mut()
        {
            f(b);
        }
    });
}

/// The key of the shard running on this thread, 0 off a shard.
#[inline]
pub(crate) fn shard_key() -> u64 {
    SHARD_KEY.with(Cell::get)
}

/// Queues a runnable on this thread's local run queue.
#[inline]
pub(crate) fn push_local(r: Runnable) {
    LOCAL.with(|q| q.borrow_mut().push_back(r));
}

/// Takes the next runnable from the local run queue.
#[inline]
pub(crate) fn pop_local() -> Option<Runnable> {
    LOCAL.with(|q| q.borrow_mut().pop_front())
}

/// Notes that a task yielded (woke itself while running).
#[inline]
pub(crate) fn note_yield() {
    YIELDED.with(|y| y.set(true));
}

/// Whether a task yielded since the last call.
#[inline]
pub(crate) fn take_yield() -> bool {
    YIELDED.with(|y| y.replace(false))
}

/// Whether the local run queue is empty.
#[inline]
pub(crate) fn local_is_empty() -> bool {
    LOCAL.with(|q| q.borrow().is_empty())
}

/// Adds `delta` (+1 or -1) to this shard's live-task count.
#[inline]
pub(crate) fn add_live(delta: isize) {
    LIVE.with(|l| l.set(l.get().wrapping_add_signed(delta)));
}

/// Tasks started and not yet finished on this shard.
pub(crate) fn live() -> usize {
    LIVE.with(Cell::get)
}

/// Installs `cx` as this thread's context (shard start).
pub(crate) fn enter(cx: Rc<Context>) {
    SHARD_KEY.with(|k| k.set(cx.shard.key));
    CONTEXT.with(|c| *c.borrow_mut() = Some(cx));
}

/// Removes this thread's context (shard exit).
pub(crate) fn leave() -> Option<Rc<Context>> {
    SHARD_KEY.with(|k| k.set(0));
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

/// Gives the task about to run its share of ready operations.
#[inline]
pub(crate) fn set_budget(n: u32) {
    BUDGET.with(|b| b.set(n));
}

/// Cooperative budget: returns false once the running task has used its share of this turn,
/// after which leaf futures wake themselves and return `Pending`. Off a shard nobody refills the
/// budget, so it is refilled here instead of ever saying no.
#[inline]
pub(crate) fn consume_budget() -> bool {
    BUDGET.with(|b| {
        let v = b.get();
        if v > 0 {
            b.set(v - 1);
            true
        } else if on_shard() {
            false
        } else {
            b.set(u32::MAX);
            true
        }
    })
}

/// Charges `n` ready operations at once (a channel end charges a whole batch when it publishes
/// or releases). Returns false when the running task has now used its share and must yield.
#[inline]
pub(crate) fn consume_budget_n(n: u32) -> bool {
    BUDGET.with(|b| {
        let left = b.get().saturating_sub(n);
        if left > 0 || !on_shard() {
            b.set(if left > 0 { left } else { u32::MAX });
            true
        } else {
            b.set(0);
            false
        }
    })
}

/// The per-poll budget shards give their tasks (the builder's `task_budget`); `u32::MAX` off a shard.
pub(crate) fn task_budget() -> u32 {
    with(|cx| cx.task_budget).unwrap_or(u32::MAX)
}

/// The index of the shard running the caller, if any.
pub fn current_shard() -> Option<usize> {
    with(|cx| cx.shard.id)
}

/// True when a channel end may spin briefly instead of parking its task: on a shard that does
/// not share its CPU (spinning is on) and has no other task ready to run.
#[inline]
pub(crate) fn may_spin() -> bool {
    with(|cx| cx.spin && local_is_empty() && cx.shard.inbox_is_empty()).unwrap_or(false)
}
