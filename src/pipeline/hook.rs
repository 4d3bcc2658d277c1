//! Task hooks: user code around every op call of a stage (SPDL's `task_hook_factory`), for
//! what the built-in stats do not record: a metrics exporter, a tracer, per-call logging.
//!
//! `PipelineBuilder::task_hook(factory)` gives the factory to the pipeline's shared `Control`.
//! Each shard, when it lays out a stage that calls an op (inline, async and blocking ops), asks
//! the factory once for that stage's hook on that shard; the hook then lives on the shard's
//! thread (it need not be `Send`) inside the stage's context, and is dropped when the stage ends
//! there. Without a factory the workers pay one `Option` check per call.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Code run around every op call of one stage on one shard. Both methods default to nothing.
///
/// A call that the pipeline cancels while it runs (`stop()`, a failure limit upstream) gets
/// `before_call` without `after_call`. A panic in a hook is caught: in `before_call` it fails the
/// call (counted and sampled like an op's failure), in `after_call` it is ignored.
pub trait TaskHook {
    /// Just before the op is called.
    fn before_call(&mut self) {}
    /// Once the op has returned (an async op: once its future is done).
    fn after_call(&mut self, _call: &CallInfo<'_>) {}
}

/// What one op call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// It emitted this many items (more than one for a 1 → N op).
    Emitted(usize),
    /// It emitted nothing (a filter, or a 1 → N op with no output).
    Filtered,
    /// It failed (an error or a panic).
    Failed,
}

/// One op call, as a hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    /// From just before the call to its end.
    pub elapsed: Duration,
    /// What it did.
    pub outcome: CallOutcome,
    /// The failure message, for a failed call.
    pub error: Option<&'a str>,
}

/// Which stage replica a hook is made for.
#[derive(Debug, Clone, Copy)]
pub struct HookContext<'a> {
    /// The stage's name (as in reports).
    pub stage: &'a str,
    /// The shard the replica runs on (0 on a single loop).
    pub shard: usize,
}

/// Makes the hook of one stage replica, or none for stages it does not want.
pub(crate) type HookFactory = Arc<dyn Fn(&HookContext<'_>) -> Option<Box<dyn TaskHook>> + Send + Sync>;

/// One stage replica's hook, shared by its worker and the tasks of its calls.
pub(crate) type Hook = Rc<RefCell<Box<dyn TaskHook>>>;

/// Calls `before_call`; `Err` with the message when it panicked.
pub(crate) fn before(hook: &Hook) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| hook.borrow_mut().before_call()))
        .map_err(|p| format!("task hook panicked: {}", crate::runtime::task_panic_message(&*p)))
}

/// Calls `after_call` with what the call did: `Ok(outputs)` (0: filtered) or the failure
/// message, and how long the call took in nanoseconds (on `stats::now_ns`). A panic in it is
/// ignored.
pub(crate) fn after(hook: &Hook, elapsed_ns: u64, result: Result<usize, &str>) {
    let (outcome, error) = match result {
        Ok(0) => (CallOutcome::Filtered, None),
        Ok(n) => (CallOutcome::Emitted(n), None),
        Err(e) => (CallOutcome::Failed, Some(e)),
    };
    let info = CallInfo { elapsed: Duration::from_nanos(elapsed_ns), outcome, error };
    let _ = catch_unwind(AssertUnwindSafe(|| hook.borrow_mut().after_call(&info)));
}
