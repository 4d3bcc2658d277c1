//! Waking a parked plain thread (the pipeline's consumer) from the CPU it parked on.
//!
//! A thread that parks on CPU `c` and is woken from a shard on another CPU costs that shard's
//! core far more than a wake from `c` itself: the kernel puts the woken thread back on `c`, so
//! the waker sends an interrupt to preempt the shard running there. Measured on this project's
//! 2-vCPU VM with both CPUs busy: ~25 µs of CPU per cross-CPU wake against ~2.6 µs for a wake
//! from the same CPU (`docs/benchmarks.md`). So a shard that must wake the thread and is not on
//! `c` hands the wake to the shard pinned on `c` (a one-line task through its inbox, no syscall
//! while that shard is busy), which unparks the thread at its next loop turn.
//!
//! The hand-off is skipped, and the thread unparked at once, when the waker is not a shard, when
//! the thread's CPU is unknown or runs no shard, or when that shard is parked (its CPU is idle,
//! so nothing is preempted). The price is latency: the wake waits for the target's next loop
//! turn (the end of its current task's poll). A target stuck in user code (a source iterator
//! that blocks, a long inline call) cannot hold the wake: after [`RELAY_PATIENCE`] the relaying
//! shard unparks the thread itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Wake;
use std::thread::Thread;
use std::time::Duration;

use super::context;
use super::shard::ShardShared;
use super::{task, time};

/// How long a relayed wake may wait for the target shard's loop before the relaying shard wakes
/// the thread itself: longer than a busy shard's loop turn (a few hundred µs of inline calls).
const RELAY_PATIENCE: Duration = Duration::from_micros(500);

/// `cpu` before the thread first says where it parks.
const UNKNOWN: usize = usize::MAX;

/// A waker for one plain thread that parks with `std::thread::park`, relayed through the shard
/// on the thread's CPU as described above.
pub(crate) struct SameCpuWaker {
    thread: Thread,
    /// Where the thread last got ready to park.
    cpu: AtomicUsize,
    shards: Vec<Arc<ShardShared>>,
}

impl SameCpuWaker {
    /// A waker for the calling thread, relaying through `shards`.
    pub(crate) fn current(shards: Vec<Arc<ShardShared>>) -> Arc<Self> {
        Arc::new(Self { thread: std::thread::current(), cpu: AtomicUsize::new(UNKNOWN), shards })
    }

    /// The parking thread: call right before parking, so wakes come from this CPU.
    pub(crate) fn note_cpu(&self) {
        self.cpu.store(crate::sys::current_cpu().unwrap_or(UNKNOWN), Ordering::Relaxed);
    }

    /// Hands the wake to the shard on the thread's CPU; false when a direct unpark is better.
    fn relay(&self) -> bool {
        let cpu = self.cpu.load(Ordering::Relaxed);
        if cpu == UNKNOWN {
            return false;
        }
        // Only a pinned shard on another CPU relays: anything else has no core of its own to
        // spare, or is already on the thread's CPU.
        let Some(Some(here)) = context::with(|cx| cx.shard.pinned_cpu()) else { return false };
        if here == cpu {
            return false;
        }
        let Some(target) = self.shards.iter().find(|s| s.pinned_cpu() == Some(cpu)) else { return false };
        if target.is_parked() || !target.begin_remote() {
            return false;
        }
        let done = Arc::new(AtomicBool::new(false));
        let (thread, relayed) = (self.thread.clone(), done.clone());
        // Dropping a handle detaches its task. If the target parks between the check above and
        // this push, the push rings its doorbell.
        drop(task::spawn_remote(target, async move {
            if !relayed.swap(true, Ordering::Relaxed) {
                thread.unpark();
            }
        }));
        target.end_remote();
        // The target may be stuck in user code (a blocking iterator, a long call): past
        // RELAY_PATIENCE this shard wakes the thread itself. Whichever of the two comes first
        // unparks; the other finds the flag taken.
        let thread = self.thread.clone();
        let fallback = task::try_spawn_local(async move {
            time::sleep(RELAY_PATIENCE).await;
            if !done.swap(true, Ordering::Relaxed) {
                thread.unpark();
            }
        });
        if fallback.is_err() {
            self.thread.unpark();
        }
        true
    }
}

impl Wake for SameCpuWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.relay() {
            self.thread.unpark();
        }
    }
}
