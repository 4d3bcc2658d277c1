//! State every shard of one pipeline shares: the clock origin, cancellation, and the failure
//! policy (counts, bounded samples, limits).
//!
//! Touched on the failure path and once per received batch (one relaxed load to see whether the
//! stage must discard, and one relaxed add to count calls when a failure rate is set), never per
//! item on the success path.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;
use std::time::Instant;

use super::hook::{Hook, HookContext, HookFactory};
use super::report::{FailureLimitExceeded, StageFailures};

/// Failure messages kept per stage.
pub(crate) const SAMPLES_PER_STAGE: usize = 8;

/// Calls a stage (or the pipeline) must have had before its failure rate is judged (SPDL's
/// probation): early failures are too few to make a rate of.
const RATE_PROBATION_CALLS: u64 = 100;

/// A failure policy: a count, a rate of calls, both, or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    /// Failures allowed; one more trips.
    pub(crate) count: Option<u64>,
    /// Fraction of calls allowed to fail, judged once there were [`RATE_PROBATION_CALLS`].
    pub(crate) rate: Option<f64>,
}

impl Limits {
    fn over_count(&self, failures: u64) -> bool {
        self.count.is_some_and(|m| failures > m)
    }

    /// `failed` of `of` is above the rate, once `of` is past the probation.
    fn over_rate(&self, failed: u64, of: u64) -> bool {
        self.rate.is_some_and(|r| of >= RATE_PROBATION_CALLS && failed as f64 > r * of as f64)
    }
}

/// One stage's failure policy and tally.
#[derive(Debug)]
pub(crate) struct StageControl {
    pub(crate) name: String,
    pub(crate) limits: Limits,
    /// Whether calls are counted (a rate applies to this stage).
    count_calls: bool,
    failures: AtomicU64,
    calls: AtomicU64,
    samples: Mutex<Vec<String>>,
}

/// Shared by every task of one pipeline.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) start: Instant,
    /// `start` on the stamp clock (`stats::now_ns`).
    start_ns: u64,
    /// Per stage: it discards what it receives (the source, index 0: it stops emitting). Set
    /// for a failing stage and everything upstream of it, or for every stage by `stop()`.
    cancelled: Vec<AtomicBool>,
    /// Per stage: the stages a cancel there reaches, itself and everything upstream of it (in
    /// a chain, every lower index; with `path_variants`, not the sibling paths).
    upstream: Vec<Vec<usize>>,
    stages: Vec<StageControl>,
    total: Limits,
    failures_total: AtomicU64,
    /// Counted where the pipeline has a failure rate: source items produced, and source items
    /// failed (a failed batch counts every item in it).
    produced: AtomicU64,
    failed_units: AtomicU64,
    tripped: AtomicBool,
    /// Async workers to wake when stages are cancelled (they then cancel their op calls).
    on_cancel: Mutex<Vec<Waker>>,
    /// Items in each pass the source started, where its iterator knew (an exact size hint).
    pass_lens: Mutex<Vec<Option<u64>>>,
    /// `task_hook`: the factory, and which stages call ops (only those get hooks).
    hooks: Option<Hooks>,
}

/// `task_hook`'s factory and the stages it applies to.
struct Hooks {
    factory: HookFactory,
    calls_ops: Vec<bool>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").field("calls_ops", &self.calls_ops).finish_non_exhaustive()
    }
}

impl Control {
    /// `stages[i]`: (name, limits) of stage `i` (0 is the source, the last the sink), a chain.
    #[cfg(test)]
    pub(crate) fn new(stages: Vec<(String, Limits)>, total: Limits) -> Self {
        let parents = (0..stages.len()).map(|i| if i == 0 { vec![] } else { vec![i - 1] }).collect();
        Self::starting_at(Instant::now(), stages, parents, total)
    }

    /// With the clock origin (stamps, traces) set to `start`; `parents[i]`: the stages whose
    /// output stage `i` reads (every stage's parents have lower indices).
    pub(crate) fn starting_at(
        start: Instant,
        stages: Vec<(String, Limits)>,
        parents: Vec<Vec<usize>>,
        total: Limits,
    ) -> Self {
        let last = stages.len().saturating_sub(1);
        let upstream = upstream_sets(&parents);
        let stages: Vec<StageControl> = stages
            .into_iter()
            .enumerate()
            .map(|(i, (name, limits))| StageControl {
                name,
                limits,
                // The source and the sink call no op: they have no calls to fail.
                count_calls: limits.rate.is_some() && i != 0 && i != last,
                failures: AtomicU64::new(0),
                calls: AtomicU64::new(0),
                samples: Mutex::new(Vec::new()),
            })
            .collect();
        // The stamp clock's reading at `start` (it may be another clock than `Instant`).
        let start_ns = crate::stats::now_ns().saturating_sub(u64::try_from(start.elapsed().as_nanos()).unwrap_or(0));
        Self {
            start,
            start_ns,
            cancelled: stages.iter().map(|_| AtomicBool::new(false)).collect(),
            upstream,
            stages,
            total,
            failures_total: AtomicU64::new(0),
            produced: AtomicU64::new(0),
            failed_units: AtomicU64::new(0),
            tripped: AtomicBool::new(false),
            on_cancel: Mutex::new(Vec::new()),
            pass_lens: Mutex::new(Vec::new()),
            hooks: None,
        }
    }

    /// Hooks from `factory` for the stages marked in `calls_ops`.
    pub(crate) fn with_hooks(mut self, factory: HookFactory, calls_ops: Vec<bool>) -> Self {
        self.hooks = Some(Hooks { factory, calls_ops });
        self
    }

    /// Stage `index`'s hook on the calling shard, if the pipeline has a factory and it gives one.
    pub(crate) fn make_hook(&self, index: usize) -> Option<Hook> {
        let hooks = self.hooks.as_ref()?;
        if !hooks.calls_ops.get(index).copied().unwrap_or(false) {
            return None;
        }
        let cx = HookContext { stage: &self.stages[index].name, shard: crate::current_shard().unwrap_or(0) };
        (hooks.factory)(&cx).map(|h| Rc::new(RefCell::new(h)))
    }

    /// Stage `index` received `n` items (for the source: produced them). Counted only where a
    /// rate applies.
    #[inline]
    pub(crate) fn calls(&self, index: usize, n: usize) {
        if index == 0 {
            if self.total.rate.is_some() {
                self.produced.fetch_add(n as u64, Ordering::Relaxed);
            }
            return;
        }
        let stage = &self.stages[index];
        if stage.count_calls {
            stage.calls.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Nanoseconds since the pipeline started (the stamp unit).
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        crate::stats::now_ns().saturating_sub(self.start_ns)
    }

    /// Whether stage `index` must discard what it receives (cancelled upstream of a failure, or
    /// stopped).
    #[inline]
    pub(crate) fn discarding(&self, index: usize) -> bool {
        self.cancelled.get(index).is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Whether the source must stop emitting.
    #[inline]
    pub(crate) fn source_stopped(&self) -> bool {
        self.discarding(0)
    }

    /// Cancels stage `index` and everything upstream of it (the source included).
    fn cancel_upstream_of(&self, index: usize) {
        for &i in &self.upstream[index] {
            self.cancelled[i].store(true, Ordering::Relaxed);
        }
        self.wake_cancelled();
    }

    fn wake_cancelled(&self) {
        for w in self.on_cancel.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            w.wake_by_ref();
        }
    }

    /// The source started pass `epoch`, of `len` items if its iterator knew.
    pub(crate) fn started_pass(&self, epoch: u64, len: Option<u64>) {
        let mut lens = self.pass_lens.lock().unwrap_or_else(|e| e.into_inner());
        let i = usize::try_from(epoch).unwrap_or(usize::MAX);
        if lens.len() <= i {
            lens.resize(i + 1, None);
        }
        lens[i] = len;
    }

    /// Items in pass `epoch`: `None` if the source has not started it or its iterator did not
    /// say.
    pub(crate) fn pass_len(&self, epoch: u64) -> Option<u64> {
        let lens = self.pass_lens.lock().unwrap_or_else(|e| e.into_inner());
        usize::try_from(epoch).ok().and_then(|i| lens.get(i).copied().flatten())
    }

    /// Wakes `waker`'s task at every cancel from now on.
    pub(crate) fn wake_on_cancel(&self, waker: &Waker) {
        self.on_cancel.lock().unwrap_or_else(|e| e.into_inner()).push(waker.clone());
    }

    /// `stop()`: everything discards from now on.
    pub(crate) fn stop(&self) {
        self.cancelled.iter().for_each(|c| c.store(true, Ordering::Relaxed));
        self.wake_cancelled();
    }

    /// Counts one failure of stage `index` with its message; trips the limits when exceeded
    /// (the failing stage and everything upstream of it are cancelled, downstream drains).
    /// `units`: the source items the failed call held.
    pub(crate) fn fail(&self, index: usize, units: u64, message: impl FnOnce() -> String) {
        let stage = &self.stages[index];
        let n = stage.failures.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut samples = stage.samples.lock().unwrap_or_else(|e| e.into_inner());
            if samples.len() < SAMPLES_PER_STAGE {
                samples.push(message());
            }
        }
        let total = self.failures_total.fetch_add(1, Ordering::Relaxed) + 1;
        let over_stage = stage.limits.over_count(n) || stage.limits.over_rate(n, stage.calls.load(Ordering::Relaxed));
        // The pipeline's rate: source items failed (anywhere) over source items produced.
        let failed_units = self.failed_units.fetch_add(units, Ordering::Relaxed) + units;
        let over_total =
            self.total.over_count(total) || self.total.over_rate(failed_units, self.produced.load(Ordering::Relaxed));
        if over_stage || over_total {
            self.tripped.store(true, Ordering::Relaxed);
            self.cancel_upstream_of(index);
        }
    }

    /// A failure that ends the pipeline whatever the limits (the source itself broke).
    pub(crate) fn fail_fatal(&self, index: usize, message: String) {
        self.fail(index, 0, || message);
        self.tripped.store(true, Ordering::Relaxed);
        self.cancel_upstream_of(index);
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
                    limit: s.limits.count,
                    rate_limit: s.limits.rate,
                    calls: s.count_calls.then(|| s.calls.load(Ordering::Relaxed)),
                    samples: s.samples.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                })
            })
            .collect();
        Some(FailureLimitExceeded { stages, total_limit: self.total.count, total_rate_limit: self.total.rate })
    }
}

/// For each stage, itself and every stage upstream of it, from each stage's parents.
fn upstream_sets(parents: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut sets: Vec<Vec<usize>> = Vec::with_capacity(parents.len());
    for (i, ps) in parents.iter().enumerate() {
        let mut set = vec![i];
        for &p in ps {
            // Parents come first, so their sets are complete.
            set.extend(sets.get(p).into_iter().flatten().copied());
        }
        set.sort_unstable();
        set.dedup();
        sets.push(set);
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Limits = Limits { count: None, rate: None };

    fn count(n: u64) -> Limits {
        Limits { count: Some(n), rate: None }
    }

    fn rate(r: f64) -> Limits {
        Limits { count: None, rate: Some(r) }
    }

    #[test]
    fn a_rate_is_judged_after_the_probation_and_only_above_it() {
        let stages = || vec![("source".into(), NONE), ("a".into(), rate(0.1)), ("sink".into(), NONE)];
        // Every call fails: within the probation nothing trips, the 100th call's failure does.
        let c = Control::new(stages(), NONE);
        for _ in 0..99 {
            c.calls(1, 1);
            c.fail(1, 1, String::new);
        }
        assert!(c.limit_error().is_none(), "99 calls are still the probation");
        c.calls(1, 1);
        c.fail(1, 1, String::new);
        let e = c.limit_error().expect("100 of 100 failed");
        assert_eq!((e.stages[0].rate_limit, e.stages[0].calls), (Some(0.1), Some(100)));
        // 10 failures in 100 calls is the limit itself, not above it; the 11th is.
        let c = Control::new(stages(), NONE);
        c.calls(1, 100);
        (0..10).for_each(|_| c.fail(1, 1, String::new));
        assert!(c.limit_error().is_none(), "10% of 100 is allowed");
        c.fail(1, 1, String::new);
        assert!(c.limit_error().is_some());
    }

    #[test]
    fn the_pipeline_rate_is_failed_source_items_over_produced_ones() {
        let c = Control::new(
            vec![("source".into(), NONE), ("a".into(), NONE), ("b".into(), NONE), ("sink".into(), NONE)],
            rate(0.05),
        );
        c.calls(0, 60);
        c.calls(1, 1000);
        c.fail(2, 3, String::new);
        assert!(c.limit_error().is_none(), "60 produced is still the probation");
        c.calls(0, 140);
        (0..6).for_each(|_| c.fail(1, 1, String::new));
        assert!(c.limit_error().is_none(), "9 of 200 source items is 4.5%");
        c.fail(2, 2, String::new);
        let e = c.limit_error().expect("11 of 200 is above 5%");
        assert_eq!(e.total_rate_limit, Some(0.05));
        assert_eq!(e.stages.iter().map(|s| s.count).sum::<u64>(), 8, "failures, not items, per stage");
    }

    #[test]
    fn exceeding_a_stage_limit_cancels_it_and_everything_upstream() {
        let c = Control::new(
            vec![("source".into(), NONE), ("a".into(), NONE), ("b".into(), count(1)), ("sink".into(), NONE)],
            NONE,
        );
        c.fail(2, 1, || "one".into());
        assert!(!c.source_stopped(), "one failure is within the limit of 1");
        c.fail(1, 1, || "in a".into());
        c.fail(2, 1, || "two".into());
        assert!(c.source_stopped());
        assert!(c.discarding(1) && c.discarding(2));
        let err = c.limit_error().expect("tripped");
        let names: Vec<_> = err.stages.iter().map(|s| (s.stage.as_str(), s.count)).collect();
        assert_eq!(names, vec![("a", 1), ("b", 2)], "every failing stage is named, not just the one that tripped");
    }

    #[test]
    fn a_failing_path_cancels_its_own_upstream_not_its_sibling_path() {
        // source → router → (path 0: a) | (path 1: b → c) → sink
        let names = ["source", "router", "a", "b", "c", "sink"];
        let stages = names.iter().map(|n| (n.to_string(), NONE)).collect::<Vec<_>>();
        let mut limits = stages;
        limits[3].1 = count(0);
        let parents = vec![vec![], vec![0], vec![1], vec![1], vec![3], vec![2, 4]];
        let c = Control::starting_at(Instant::now(), limits, parents, NONE);
        c.fail(3, 1, String::new);
        let cancelled: Vec<_> = (0..names.len()).filter(|&i| c.discarding(i)).map(|i| names[i]).collect();
        assert_eq!(cancelled, vec!["source", "router", "b"], "path 0 and everything downstream drain");
        c.stop();
        assert!((0..names.len()).all(|i| c.discarding(i)));
    }

    #[test]
    fn the_total_limit_counts_failures_of_every_stage() {
        let c = Control::new(vec![("source".into(), NONE), ("a".into(), NONE), ("b".into(), NONE)], count(2));
        c.fail(1, 1, String::new);
        c.fail(2, 1, String::new);
        assert!(c.limit_error().is_none());
        c.fail(1, 1, String::new);
        assert!(c.limit_error().is_some());
    }

    #[test]
    fn samples_are_bounded() {
        let c = Control::new(vec![("source".into(), NONE), ("a".into(), NONE)], NONE);
        for i in 0..100 {
            c.fail(1, 1, || format!("error {i}"));
        }
        assert!(c.limit_error().is_none(), "no limit set");
        assert_eq!(c.stages[1].samples.lock().unwrap().len(), SAMPLES_PER_STAGE);
    }
}
