//! Spawning tasks and joining them: `spawn_local`, [`JoinHandle`], panic capture, `yield_now`.
//!
//! A task is an `async-task` cell that carries its home shard as the cell's metadata: a wake on the
//! home thread pushes onto the local run queue (no atomics), a wake from any other thread goes to
//! the home shard's remote inbox and rings its doorbell.
//!
//! The schedule function is a plain `fn` ([`schedule`]), not a closure holding the home shard:
//! async-task guards every schedule of a task whose schedule function has a size with an extra
//! waker (a reference-count increment and decrement), and turns every wake by value into a wake by
//! reference plus a drop (two more), so a capturing closure costs four atomics per spawn-and-await
//! that the metadata does not.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_task::{Builder, ScheduleInfo, WithInfo};

use super::context;
use super::shard::ShardShared;
use super::supervised::Supervised;
use std::sync::Arc;

/// Why a task produced no value.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The task panicked; the shard caught it and lives on. Holds the panic message.
    #[error("task panicked: {0}")]
    Panicked(String),
    /// The task was dropped before it finished (its shard shut down).
    #[error("task was cancelled before it finished (its shard shut down)")]
    Cancelled,
    /// `join()` was called on a shard thread, where blocking would stall the shard.
    #[error("JoinHandle::join blocks; on a shard thread use `.await` instead")]
    WouldBlockShard,
}

/// Why a task could not be spawned.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SpawnError {
    /// The runtime is shutting down and accepts no new work.
    #[error("the runtime is shutting down and accepts no new tasks")]
    ShuttingDown,
    /// No shard has this index.
    #[error("shard {shard} does not exist: the runtime has {count} shards (0..{count})")]
    NoSuchShard {
        /// The index asked for.
        shard: usize,
        /// How many shards there are.
        count: usize,
    },
    /// `spawn_local` was called on a thread that is not a shard.
    #[error("spawn_local must be called from a task running on a shard")]
    NotOnShard,
}

pub(crate) type TaskResult<T> = Result<T, Box<dyn Any + Send>>;

/// A task's home shard, kept in its async-task cell's metadata.
pub(crate) type Home = Arc<ShardShared>;

/// A task ready to run, as the run queues hold it.
pub(crate) type Runnable = async_task::Runnable<Home>;

/// Yields the task's output once it finishes. Dropping the handle detaches the task (it runs on).
#[derive(Debug)]
pub struct JoinHandle<T> {
    task: Option<async_task::FallibleTask<TaskResult<T>, Home>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: async_task::Task<TaskResult<T>, Home>) -> Self {
        Self { task: Some(task.fallible()) }
    }

    /// Blocks the calling (non-shard) thread until the task finishes.
    pub fn join(self) -> Result<T, JoinError> {
        if context::on_shard() {
            return Err(JoinError::WouldBlockShard);
        }
        super::block_on::block_on(self)
    }

    /// True once the task has finished (its output is ready).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let task = self.task.as_mut().expect("JoinHandle polled after completion");
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(out) => {
                self.task = None;
                Poll::Ready(match out {
                    None => Err(JoinError::Cancelled),
                    Some(Ok(v)) => Ok(v),
                    Some(Err(panic)) => Err(JoinError::Panicked(panic_message(&*panic))),
                })
            }
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.detach();
        }
    }
}

pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The schedule function of every task: its home shard's local queue when woken on the home
/// thread, else the home shard's inbox.
fn schedule(runnable: Runnable, info: ScheduleInfo) {
    let home = runnable.metadata();
    if context::shard_key() == home.key {
        if info.woken_while_running {
            context::note_yield();
        }
        context::push_local(runnable);
    } else {
        // Owned: once the runnable is in the inbox, the home shard may run the task to its end
        // and free the cell, metadata included, before `push_remote` rings the doorbell.
        let home = Arc::clone(home);
        home.push_remote(runnable);
    }
}

/// Spawns a `!Send` future on the current shard.
///
/// # Panics
/// When called off a shard; use [`try_spawn_local`] to get an error instead.
pub fn spawn_local<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    try_spawn_local(fut).expect("spawn_local must be called from a task running on a shard")
}

/// Spawns a `!Send` future on the current shard, or says why it cannot.
pub fn try_spawn_local<F>(fut: F) -> Result<JoinHandle<F::Output>, SpawnError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let home = context::with(|cx| cx.shard.clone()).ok_or(SpawnError::NotOnShard)?;
    // SAFETY: the future is made here, on `home`'s own thread.
    Ok(unsafe { spawn_homed(home, fut) })
}

/// Spawns `fut`, which may be `!Send`, homed on `home`, where every poll and its drop happen:
/// every schedule goes through `schedule`, which puts the runnable on the home shard's local
/// queue or its inbox, and only the home shard's thread pops either (the inbox is drained on that
/// thread before it exits, and a shard exits only when no task of its own is live). async-task's
/// own `spawn_local` would check the thread on every poll instead.
///
/// # Safety
/// `fut` may be moved to `home`'s thread: it was made there, or until its first poll it holds
/// only `Send` data.
unsafe fn spawn_homed<F>(home: Home, fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let fut = Supervised::new(fut);
    // SAFETY: async-task requires that a `!Send` future is polled and dropped on one thread only:
    // `home`'s (see above), which the caller lets it move to. The future is `'static` and
    // `schedule` is a plain `fn`.
    let (runnable, task) = unsafe { Builder::new().metadata(home).spawn_unchecked(|_| fut, WithInfo(schedule)) };
    runnable.schedule();
    JoinHandle::new(task)
}

/// Spawns a `Send` future homed on `home`, from any thread.
pub(crate) fn spawn_remote<F>(home: &Arc<ShardShared>, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (runnable, task) =
        Builder::new().metadata(Arc::clone(home)).spawn(|_| Supervised::new(fut), WithInfo(schedule));
    runnable.schedule();
    JoinHandle::new(task)
}

/// Lets every other runnable task (and the reactor) go first, then resumes.
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Cooperative-budget check for leaf futures: `Ready` while the task may go on, else wakes itself
/// and returns `Pending` so the shard can run other tasks and reap I/O.
#[inline]
pub(crate) fn poll_budget(cx: &mut Context<'_>) -> Poll<()> {
    if context::consume_budget() {
        Poll::Ready(())
    } else {
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Spawns the future `f` builds, homed on `home`: `f` is sent there, the future never leaves.
///
/// The future returned by `f` may be `!Send`; the task's future is `Send` until its first poll
/// (it holds only `f`), and every poll and drop happens on the home shard.
pub(crate) fn spawn_pinned_to<F, Fut>(home: &Arc<ShardShared>, f: F) -> JoinHandle<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    // SAFETY: until its first poll the future holds only `f`, which is `Send`.
    unsafe { spawn_homed(Arc::clone(home), async move { f().await }) }
}
