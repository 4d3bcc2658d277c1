//! Live per-shard counters: busy and idle time and task polls, readable from any thread while
//! the shards run ([`Runtime::shard_usage`](super::Runtime::shard_usage)).
//!
//! Each shard's loop is the only writer of its [`LiveUsage`] (on a cache line of its own):
//! the task-poll count once per loop turn, the idle total when it wakes, and the moment it
//! goes idle, so a reader counts the idle stretch in progress too. The idle total and that
//! moment are read as a pair: `idle_since` changes at every idle stretch's start and end, and a
//! reader that sees it change around its read of the total reads again (a seqlock whose
//! sequence is `idle_since` itself), so a stretch is never counted twice or not at all. When
//! the loop ends it stores when, and readings stop growing there (a report thread may read
//! after the shards have stopped).

#![forbid(unsafe_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One shard's busy and idle time and task polls, over its life or over a stretch of it
/// ([`ShardUsage::since`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardUsage {
    /// Shard index.
    pub id: usize,
    /// Time spent running tasks and reaping I/O.
    pub busy: Duration,
    /// Time spent spinning idle and parked.
    pub idle: Duration,
    /// Task polls.
    pub tasks_run: u64,
}

impl ShardUsage {
    /// busy / (busy + idle), 0 when the shard never ran.
    pub fn utilization(&self) -> f64 {
        let total = (self.busy + self.idle).as_secs_f64();
        if total > 0.0 { self.busy.as_secs_f64() / total } else { 0.0 }
    }

    /// What the shard did between `earlier` (a reading of the same shard) and this reading.
    pub fn since(&self, earlier: &ShardUsage) -> ShardUsage {
        ShardUsage {
            id: self.id,
            busy: self.busy.saturating_sub(earlier.busy),
            idle: self.idle.saturating_sub(earlier.idle),
            tasks_run: self.tasks_run.saturating_sub(earlier.tasks_run),
        }
    }
}

/// A shard loop's counters as other threads see them.
#[derive(Debug, Default)]
pub(crate) struct LiveUsage {
    /// When the loop started.
    start: OnceLock<Instant>,
    /// Nanoseconds idle, up to the last wake.
    idle_ns: AtomicU64,
    /// Nanoseconds after `start` at which the current idle stretch began, plus one; 0 while busy.
    idle_since: AtomicU64,
    /// Task polls, as of the last loop turn.
    tasks_run: AtomicU64,
    /// Nanoseconds after `start` at which the loop ended, plus one; 0 while it runs.
    ended: AtomicU64,
}

impl LiveUsage {
    /// The loop starts now.
    pub(crate) fn begin(&self) -> Instant {
        *self.start.get_or_init(Instant::now)
    }

    /// End of a loop turn: `tasks_run` polls so far.
    pub(crate) fn turn(&self, tasks_run: u64) {
        self.tasks_run.store(tasks_run, Ordering::Relaxed);
    }

    /// The loop goes idle at `at`.
    pub(crate) fn idle_from(&self, at: Instant) {
        self.idle_since.store(self.nanos_at(at) + 1, Ordering::Relaxed);
    }

    /// The loop woke with `idle` in all so far.
    pub(crate) fn woke(&self, idle: Duration) {
        self.idle_ns.store(idle.as_nanos() as u64, Ordering::Relaxed);
        // Release: a reader that sees 0 here also sees the new total.
        self.idle_since.store(0, Ordering::Release);
    }

    /// The loop ended at `at` with `tasks_run` polls: readings stop growing there.
    pub(crate) fn end(&self, at: Instant, tasks_run: u64) {
        self.tasks_run.store(tasks_run, Ordering::Relaxed);
        self.ended.store(self.nanos_at(at) + 1, Ordering::Release);
    }

    /// The counters now (all zero before the loop starts; frozen once it has ended).
    pub(crate) fn read(&self, id: usize) -> ShardUsage {
        let Some(&start) = self.start.get() else {
            return ShardUsage { id, ..ShardUsage::default() };
        };
        let (now, since, total) = loop {
            let since = self.idle_since.load(Ordering::Acquire);
            let total = self.idle_ns.load(Ordering::Relaxed);
            let ended = self.ended.load(Ordering::Acquire);
            let now = if ended > 0 { start + Duration::from_nanos(ended - 1) } else { Instant::now() };
            // Acquire: the total above is read before `idle_since` is read again.
            std::sync::atomic::fence(Ordering::Acquire);
            if self.idle_since.load(Ordering::Relaxed) == since {
                break (now, since, total);
            }
        };
        let in_progress = if since > 0 { self.nanos_at(now).saturating_sub(since - 1) } else { 0 };
        let idle = Duration::from_nanos(total + in_progress).min(now - start);
        ShardUsage { id, busy: (now - start) - idle, idle, tasks_run: self.tasks_run.load(Ordering::Relaxed) }
    }

    fn nanos_at(&self, at: Instant) -> u64 {
        self.start.get().map_or(0, |&s| at.saturating_duration_since(s).as_nanos() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_stretch_in_progress_counts_as_idle() {
        let u = LiveUsage::default();
        assert_eq!(u.read(3), ShardUsage { id: 3, ..ShardUsage::default() }, "not started");
        let start = u.begin();
        u.turn(5);
        std::thread::sleep(Duration::from_millis(20));
        u.idle_from(Instant::now());
        std::thread::sleep(Duration::from_millis(30));
        let during = u.read(3);
        assert!(during.idle >= Duration::from_millis(30) && during.busy >= Duration::from_millis(20), "{during:?}");
        assert_eq!(during.tasks_run, 5);
        u.woke(Duration::from_millis(30));
        u.turn(9);
        let after = u.read(3);
        assert_eq!(after.idle, Duration::from_millis(30));
        assert!(after.busy + after.idle <= start.elapsed());
        let d = after.since(&during);
        assert_eq!((d.id, d.tasks_run), (3, 4));
        assert!(d.idle.is_zero(), "the idle stretch was counted in the earlier reading");
        u.end(Instant::now(), 11);
        let ended = u.read(3);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(u.read(3), ended, "an ended loop's counters stay put");
        assert_eq!(ended.tasks_run, 11);
    }

    #[test]
    fn utilization_is_the_busy_share() {
        let u = ShardUsage { id: 0, busy: Duration::from_millis(30), idle: Duration::from_millis(10), tasks_run: 1 };
        assert!((u.utilization() - 0.75).abs() < 1e-9);
        assert_eq!(ShardUsage::default().utilization(), 0.0);
    }
}
