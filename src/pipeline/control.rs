//! State every shard of one pipeline shares: the clock origin, cancellation, and the failure
//! policy (counts, bounded samples, limits).
//!
//! Touched on the failure path and once per received batch (one relaxed load to see whether the
//! stage must discard), never per item on the success path.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::Waker;
use std::time::Instant;

use super::report::{FailureLimitExceeded, StageFailures};

/// Failure messages kept per stage.
pub(crate) const SAMPLES_PER_STAGE: usize = 8;

/// One stage's failure policy and tally.
#[derive(Debug)]
pub(crate) struct StageControl {
    pub(crate) name: String,
    pub(crate) max_failures: Option<u64>,
    failures: AtomicU64,
    samples: Mutex<Vec<String>>,
}

/// Shared by every task of one pipeline.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) start: Instant,
    /// Stages with an index below this discard what they receive; the source (index 0) stops
    /// once it is above 0. `usize::MAX` after `stop()`.
    cancel_below: AtomicUsize,
    stages: Vec<StageControl>,
    max_failures_total: Option<u64>,
    failures_total: AtomicU64,
    tripped: AtomicBool,
    /// Async workers to wake when stages are cancelled (they then cancel their op calls).
    on_cancel: Mutex<Vec<Waker>>,
}

impl Control {
    /// `stages[i]`: (name, per-stage limit) of stage `i` (0 is the source).
    #[cfg(test)]
    pub(crate) fn new(stages: Vec<(String, Option<u64>)>, max_failures_total: Option<u64>) -> Self {
        Self::starting_at(Instant::now(), stages, max_failures_total)
    }

    /// With the clock origin (stamps, traces) set to `start`.
    pub(crate) fn starting_at(
        start: Instant,
        stages: Vec<(String, Option<u64>)>,
        max_failures_total: Option<u64>,
    ) -> Self {
        let stages = stages
            .into_iter()
            .map(|(name, max_failures)| StageControl {
                name,
                max_failures,
                failures: AtomicU64::new(0),
                samples: Mutex::new(Vec::new()),
            })
            .collect();
        Self {
            start,
            cancel_below: AtomicUsize::new(0),
            stages,
            max_failures_total,
            failures_total: AtomicU64::new(0),
            tripped: AtomicBool::new(false),
            on_cancel: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the pipeline started (the stamp unit).
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether stage `index` must discard what it receives (cancelled upstream of a failure, or
    /// stopped).
    #[inline]
    pub(crate) fn discarding(&self, index: usize) -> bool {
        index < self.cancel_below.load(Ordering::Relaxed)
    }

    /// Whether the source must stop emitting.
    #[inline]
    pub(crate) fn source_stopped(&self) -> bool {
        self.cancel_below.load(Ordering::Relaxed) > 0
    }

    /// Cancels every stage below `index` (and the source).
    pub(crate) fn cancel_below(&self, index: usize) {
        self.cancel_below.fetch_max(index, Ordering::Relaxed);
        for w in self.on_cancel.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            w.wake_by_ref();
        }
    }

    /// Wakes `waker`'s task at every cancel from now on.
    pub(crate) fn wake_on_cancel(&self, waker: &Waker) {
        self.on_cancel.lock().unwrap_or_else(|e| e.into_inner()).push(waker.clone());
    }

    /// `stop()`: everything discards from now on.
    pub(crate) fn stop(&self) {
        self.cancel_below(usize::MAX);
    }

    /// Counts one failure of stage `index` with its message; trips the limits when exceeded
    /// (the failing stage and everything upstream of it are cancelled, downstream drains).
    pub(crate) fn fail(&self, index: usize, message: impl FnOnce() -> String) {
        let stage = &self.stages[index];
        let n = stage.failures.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut samples = stage.samples.lock().unwrap_or_else(|e| e.into_inner());
            if samples.len() < SAMPLES_PER_STAGE {
                samples.push(message());
            }
        }
        let total = self.failures_total.fetch_add(1, Ordering::Relaxed) + 1;
        let over_stage = stage.max_failures.is_some_and(|m| n > m);
        let over_total = self.max_failures_total.is_some_and(|m| total > m);
        if over_stage || over_total {
            self.tripped.store(true, Ordering::Relaxed);
            self.cancel_below(index + 1);
        }
    }

    /// A failure that ends the pipeline whatever the limits (the source itself broke).
    pub(crate) fn fail_fatal(&self, index: usize, message: String) {
        self.fail(index, || message);
        self.tripped.store(true, Ordering::Relaxed);
        self.cancel_below(index + 1);
    }

    /// Stage `index`'s kept failure messages.
    pub(crate) fn samples(&self, index: usize) -> Vec<String> {
        self.stages.get(index).map(|s| s.samples.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap_or_default()
    }

    /// The aggregated error naming every stage that failed, if a limit was exceeded.
    pub(crate) fn limit_error(&self) -> Option<FailureLimitExceeded> {
        if !self.tripped.load(Ordering::Relaxed) {
            return None;
        }
        let stages = self
            .stages
            .iter()
            .filter_map(|s| {
                let count = s.failures.load(Ordering::Relaxed);
                (count > 0).then(|| StageFailures {
                    stage: s.name.clone(),
                    count,
                    limit: s.max_failures,
                    samples: s.samples.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                })
            })
            .collect();
        Some(FailureLimitExceeded { stages, total_limit: self.max_failures_total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceeding_a_stage_limit_cancels_it_and_everything_upstream() {
        let c = Control::new(vec![("source".into(), None), ("a".into(), None), ("b".into(), Some(1))], None);
        c.fail(2, || "one".into());
        assert!(!c.source_stopped(), "one failure is within the limit of 1");
        c.fail(1, || "in a".into());
        c.fail(2, || "two".into());
        assert!(c.source_stopped());
        assert!(c.discarding(1) && c.discarding(2));
        let err = c.limit_error().expect("tripped");
        let names: Vec<_> = err.stages.iter().map(|s| (s.stage.as_str(), s.count)).collect();
        assert_eq!(names, vec![("a", 1), ("b", 2)], "every failing stage is named, not just the one that tripped");
    }

    #[test]
    fn the_total_limit_counts_failures_of_every_stage() {
        let c = Control::new(vec![("source".into(), None), ("a".into(), None), ("b".into(), None)], Some(2));
        c.fail(1, String::new);
        c.fail(2, String::new);
        assert!(c.limit_error().is_none());
        c.fail(1, String::new);
        assert!(c.limit_error().is_some());
    }

    #[test]
    fn samples_are_bounded() {
        let c = Control::new(vec![("source".into(), None), ("a".into(), None)], None);
        for i in 0..100 {
            c.fail(1, || format!("error {i}"));
        }
        assert!(c.limit_error().is_none(), "no limit set");
        assert_eq!(c.stages[1].samples.lock().unwrap().len(), SAMPLES_PER_STAGE);
    }
}
