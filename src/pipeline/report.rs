//! What a pipeline reports: per-stage counters and task times, per-shard utilization, end-to-end
//! latency, the account of every source item, and the failure-limit error.
//!
//! Each shard keeps its own [`StageStats`] (no atomics); they are merged when the run ends.

use std::fmt;
use std::time::Duration;

use crate::stats::{Recorder, Summary};

/// One stage's counters on one shard (merged across shards in the report).
#[derive(Debug, Clone, Default)]
pub struct StageStats {
    /// Items the stage took from its input queue.
    pub received: u64,
    /// Items the stage put on its output queue.
    pub emitted: u64,
    /// Items whose op returned an error or panicked.
    pub failures: u64,
    /// Items for which the op produced no output (`None`, an empty iterator).
    pub filtered: u64,
    /// Source items dropped here by a failure.
    pub failed_units: u64,
    /// Source items dropped here by a filter.
    pub filtered_units: u64,
    /// Source items left in an incomplete last batch under `drop_last`.
    pub left_over_units: u64,
    /// Source items discarded because the pipeline was stopped or cancelled.
    pub discarded_units: u64,
    /// Time per op call, ns (inline functions are timed on a sample of calls; see docs/pipeline.md).
    pub task_time: Recorder,
    /// Time the stage's worker waited for input (upstream too slow: the stage starved).
    pub input_wait: Duration,
    /// Time the stage waited for room in its output queue (downstream too slow: backpressure).
    pub output_wait: Duration,
    /// Time the stage's output queue held at least one item.
    pub output_nonempty: Duration,
    /// Time the stage's output queue existed.
    pub output_lifetime: Duration,
}

impl StageStats {
    /// Adds `other`'s counts and times.
    pub fn merge(&mut self, other: &StageStats) {
        self.received += other.received;
        self.emitted += other.emitted;
        self.failures += other.failures;
        self.filtered += other.filtered;
        self.failed_units += other.failed_units;
        self.filtered_units += other.filtered_units;
        self.left_over_units += other.left_over_units;
        self.discarded_units += other.discarded_units;
        self.task_time.merge(&other.task_time);
        self.input_wait += other.input_wait;
        self.output_wait += other.output_wait;
        self.output_nonempty += other.output_nonempty;
        self.output_lifetime += other.output_lifetime;
    }

    /// Fraction of the time the output queue was non-empty (SPDL's "data readiness": near 1
    /// means the next stage always had work waiting); `None` for stages without a queue.
    pub fn occupancy(&self) -> Option<f64> {
        let life = self.output_lifetime.as_secs_f64();
        (life > 0.0).then(|| self.output_nonempty.as_secs_f64() / life)
    }
}

/// One stage in the final report.
#[derive(Debug, Clone)]
pub struct StageReport {
    /// The stage's name (`source` for the source).
    pub name: String,
    /// Counters merged over every shard.
    pub stats: StageStats,
    /// Items received per second over the run.
    pub items_per_sec: f64,
    /// The first few failure messages (each names the item when the stage's error does, as
    /// the image stages' `path: reason` do).
    pub failure_samples: Vec<String>,
}

pub use crate::runtime::ShardUsage;

/// The account of every source item, in source items: `produced` equals the sum of the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Account {
    /// Items the source emitted.
    pub produced: u64,
    /// Source items that reached the consumer (inside whatever the last stage emits).
    pub delivered: u64,
    /// Dropped by a stage failure (error or panic).
    pub failed: u64,
    /// Dropped by a filter.
    pub filtered: u64,
    /// Left in an incomplete last batch under `drop_last`.
    pub left_over: u64,
    /// Discarded because the pipeline was stopped, or cancelled after a failure limit.
    pub discarded: u64,
}

impl Account {
    /// True when every produced item is accounted for exactly once.
    pub fn balances(&self) -> bool {
        self.produced == self.delivered + self.failed + self.filtered + self.left_over + self.discarded
    }
}

/// The final report of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// "single-loop" or "sharded".
    pub placement: &'static str,
    /// Shards that ran stages.
    pub shards: usize,
    /// The shards' driver: `io_uring (FLAGS)` or `fallback (no io_uring)`.
    pub driver: String,
    /// Wall time from build to the end of the stream.
    pub elapsed: Duration,
    /// Where every source item went.
    pub account: Account,
    /// Values the consumer received.
    pub received: u64,
    /// Source emission to consumer receipt, per source item, ns.
    pub latency: Summary,
    /// The same, every value (for `.hgrm` files and other quantiles).
    pub latency_histogram: Recorder,
    /// Index 0 is the source, then every stage in order.
    pub stages: Vec<StageReport>,
    /// Per shard busy and idle time.
    pub shard_usage: Vec<ShardUsage>,
    /// Every shard's and offload thread's timeline, when built with `trace()` (else empty).
    pub trace: Vec<crate::trace::Track>,
}

impl Report {
    /// Source items delivered per second.
    pub fn items_per_sec(&self) -> f64 {
        rate(self.account.delivered, self.elapsed)
    }
}

pub(crate) fn rate(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.account;
        writeln!(
            f,
            "{} on {} shard(s), {}: {} items in {:.3} s = {:.0} items/s",
            self.placement,
            self.shards,
            self.driver,
            a.delivered,
            self.elapsed.as_secs_f64(),
            self.items_per_sec()
        )?;
        writeln!(
            f,
            "account: produced {} = delivered {} + failed {} + filtered {} + left over {} + discarded {}{}",
            a.produced,
            a.delivered,
            a.failed,
            a.filtered,
            a.left_over,
            a.discarded,
            if a.balances() { "" } else { "  (DOES NOT BALANCE)" }
        )?;
        let l = &self.latency;
        writeln!(
            f,
            "latency: p50 {} p90 {} p99 {} p99.9 {} p99.99 {} max {}",
            fmt_ns(l.p50),
            fmt_ns(l.p90),
            fmt_ns(l.p99),
            fmt_ns(l.p999),
            fmt_ns(l.p9999),
            fmt_ns(l.max)
        )?;
        // Names line up however long they are (paths: `sub0/path1/decode`).
        let width = self.stages.iter().map(|s| s.name.chars().count()).max().unwrap_or(0).max(16);
        for s in &self.stages {
            let t = s.stats.task_time.summary();
            let occupancy = s.stats.occupancy().map_or_else(|| "-".to_owned(), |o| format!("{:.0}%", 100.0 * o));
            writeln!(
                f,
                "  {:<width$} in {:>9} out {:>9} failed {:>5} filtered {:>5}  task p50 {} p99 {}  waits in {:.3} s out {:.3} s  queue busy {}",
                s.name,
                s.stats.received,
                s.stats.emitted,
                s.stats.failures,
                s.stats.filtered,
                fmt_ns(t.p50),
                fmt_ns(t.p99),
                s.stats.input_wait.as_secs_f64(),
                s.stats.output_wait.as_secs_f64(),
                occupancy
            )?;
            for m in &s.failure_samples {
                writeln!(f, "      failed: {m}")?;
            }
            if s.stats.failures > s.failure_samples.len() as u64 {
                writeln!(f, "      ... and {} more failures", s.stats.failures - s.failure_samples.len() as u64)?;
            }
        }
        for u in &self.shard_usage {
            writeln!(f, "  shard {}: {:.0}% busy, {} task polls", u.id, 100.0 * u.utilization(), u.tasks_run)?;
        }
        Ok(())
    }
}

/// Formats nanoseconds with a readable unit.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// One failing stage in [`FailureLimitExceeded`].
#[derive(Debug, Clone, PartialEq)]
pub struct StageFailures {
    /// The stage's name.
    pub stage: String,
    /// Items that failed there.
    pub count: u64,
    /// The stage's own limit, if set.
    pub limit: Option<u64>,
    /// The stage's own failure rate limit (a fraction of its calls), if set.
    pub rate_limit: Option<f64>,
    /// Items the stage was called on, counted where a failure rate applies.
    pub calls: Option<u64>,
    /// The first few messages.
    pub samples: Vec<String>,
}

/// A failure limit was exceeded: the failing stage and everything upstream were cancelled,
/// downstream drained. Names every stage that failed, with counts and sample messages.
///
/// Fix: look at the samples; raise `max_failures` or `max_failure_rate` on the stage (or
/// `PipelineBuilder::max_failures_total` / `max_failure_rate_total`) if such failures are
/// expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct FailureLimitExceeded {
    /// Every stage with at least one failure.
    pub stages: Vec<StageFailures>,
    /// The pipeline-wide limit, if set.
    pub total_limit: Option<u64>,
    /// The pipeline-wide failure rate limit (a fraction of the source items), if set.
    pub total_rate_limit: Option<f64>,
}

/// `0.1` as `10%`, `0.005` as `0.5%`.
fn percent(rate: f64) -> String {
    format!("{}%", (rate * 1e4).round() / 1e2)
}

impl fmt::Display for FailureLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pipeline stopped: failure limit exceeded")?;
        let total: Vec<String> = [
            self.total_limit.map(|t| format!("pipeline limit {t}")),
            self.total_rate_limit.map(|r| format!("pipeline limit {} of source items", percent(r))),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !total.is_empty() {
            write!(f, " ({})", total.join(", "))?;
        }
        for s in &self.stages {
            write!(f, "; stage '{}' failed {} time(s)", s.stage, s.count)?;
            if let Some(calls) = s.calls {
                write!(f, " of {calls} call(s)")?;
            }
            let limits: Vec<String> =
                [s.limit.map(|l| format!("limit {l}")), s.rate_limit.map(|r| format!("limit {} of calls", percent(r)))]
                    .into_iter()
                    .flatten()
                    .collect();
            if !limits.is_empty() {
                write!(f, " ({})", limits.join(", "))?;
            }
            if let Some(first) = s.samples.first() {
                write!(f, ", e.g. {first}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_every_failing_stage_with_counts_and_a_sample() {
        let e = FailureLimitExceeded {
            stages: vec![
                StageFailures {
                    stage: "decode".into(),
                    count: 3,
                    limit: Some(2),
                    rate_limit: None,
                    calls: None,
                    samples: vec!["bad header".into()],
                },
                StageFailures {
                    stage: "resize".into(),
                    count: 1,
                    limit: None,
                    rate_limit: None,
                    calls: None,
                    samples: vec!["zero width".into()],
                },
                StageFailures {
                    stage: "read".into(),
                    count: 12,
                    limit: None,
                    rate_limit: Some(0.1),
                    calls: Some(110),
                    samples: vec!["gone".into()],
                },
            ],
            total_limit: None,
            total_rate_limit: Some(0.005),
        };
        let s = e.to_string();
        assert!(
            s.starts_with("pipeline stopped: failure limit exceeded (pipeline limit 0.5% of source items);"),
            "{s}"
        );
        assert!(s.contains("'decode' failed 3 time(s) (limit 2), e.g. bad header"), "{s}");
        assert!(s.contains("'resize' failed 1 time(s), e.g. zero width"), "{s}");
        assert!(s.contains("'read' failed 12 time(s) of 110 call(s) (limit 10% of calls), e.g. gone"), "{s}");
    }

    #[test]
    fn an_account_balances_only_when_every_item_is_counted_once() {
        let mut a = Account { produced: 10, delivered: 6, failed: 1, filtered: 1, left_over: 1, discarded: 1 };
        assert!(a.balances());
        a.delivered += 1;
        assert!(!a.balances());
    }
}
