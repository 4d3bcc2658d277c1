//! Reports while a pipeline runs (`report_every`), and the one assembly of counters into a
//! [`Report`] that both periodic and final reports use.
//!
//! Every interval each shard copies its stage counters into [`Snapshots`]; the consumer copies
//! its own (delivered, latency) when the reporter asks, on its next item. A `pipeline-report`
//! thread merges the latest copies and calls the user's callback, so a slow callback never
//! stalls a shard or the consumer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::control::Control;
use super::report::{Account, Report, ShardUsage, StageReport, StageStats, rate};
use crate::stats::Recorder;

/// The user's periodic report callback.
pub(crate) type ReportFn = Box<dyn FnMut(&Report) + Send>;

/// What the consumer has seen.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConsumerCounts {
    pub(crate) delivered: u64,
    pub(crate) received: u64,
    pub(crate) discarded: u64,
    pub(crate) latency: Recorder,
}

/// Builds reports from merged counters.
#[derive(Debug, Clone)]
pub(crate) struct Assembler {
    pub(crate) placement: &'static str,
    pub(crate) shards: usize,
    pub(crate) driver: String,
    pub(crate) names: Vec<String>,
    pub(crate) start: Instant,
    /// Where failure messages are kept.
    pub(crate) control: Arc<Control>,
}

impl Assembler {
    pub(crate) fn report(
        &self,
        stages: Vec<StageStats>,
        consumer: &ConsumerCounts,
        shard_usage: Vec<ShardUsage>,
        elapsed: Duration,
    ) -> Report {
        let account = Account {
            produced: stages.first().map_or(0, |s| s.received),
            delivered: consumer.delivered,
            failed: stages.iter().map(|s| s.failed_units).sum(),
            filtered: stages.iter().map(|s| s.filtered_units).sum(),
            left_over: stages.iter().map(|s| s.left_over_units).sum(),
            discarded: stages.iter().map(|s| s.discarded_units).sum::<u64>() + consumer.discarded,
        };
        Report {
            placement: self.placement,
            shards: self.shards,
            driver: self.driver.clone(),
            elapsed,
            account,
            received: consumer.received,
            latency: consumer.latency.summary(),
            latency_histogram: consumer.latency.clone(),
            stages: self
                .names
                .iter()
                .zip(stages)
                .enumerate()
                .map(|(i, (name, stats))| StageReport {
                    name: name.clone(),
                    items_per_sec: rate(stats.received, elapsed),
                    failure_samples: self.control.samples(i),
                    stats,
                })
                .collect(),
            shard_usage,
            trace: Vec::new(),
        }
    }
}

/// Merges per-shard counters (index: stage). The first shard's counters become the totals, so
/// its histograms are moved, not copied.
pub(crate) fn merge(stages: usize, per_shard: impl IntoIterator<Item = Vec<StageStats>>) -> Vec<StageStats> {
    let mut shards = per_shard.into_iter();
    let mut total = shards.next().unwrap_or_default();
    total.resize_with(stages, StageStats::default);
    for shard in shards {
        for (t, s) in total.iter_mut().zip(&shard) {
            t.merge(s);
        }
    }
    total
}

/// What the final report is made of, kept as it was when the pipeline ended.
pub(crate) struct Ending {
    pub(crate) assembler: Assembler,
    pub(crate) per_shard: Vec<Vec<StageStats>>,
    pub(crate) consumer: ConsumerCounts,
    pub(crate) shard_usage: Vec<ShardUsage>,
    pub(crate) trace: Vec<crate::trace::Track>,
    pub(crate) elapsed: Duration,
}

impl Ending {
    fn assemble(self) -> Report {
        let stages = merge(self.assembler.names.len(), self.per_shard);
        let mut report = self.assembler.report(stages, &self.consumer, self.shard_usage, self.elapsed);
        report.trace = self.trace;
        report
    }
}

/// The final report, assembled when first asked for: merging every shard's histograms takes
/// ~1 ms, which a consumer that drops the pipeline without reading the report should not wait
/// for at the end of its last epoch.
pub(crate) struct LazyReport {
    ending: Mutex<Option<Ending>>,
    report: OnceLock<Report>,
}

impl LazyReport {
    pub(crate) fn new(ending: Ending) -> Self {
        Self { ending: Mutex::new(Some(ending)), report: OnceLock::new() }
    }

    pub(crate) fn get(&self) -> &Report {
        self.report.get_or_init(|| lock(&self.ending).take().expect("assembled once, under the OnceLock").assemble())
    }

    pub(crate) fn into_report(self) -> Report {
        match self.report.into_inner() {
            Some(report) => report,
            None => self.ending.into_inner().unwrap_or_else(|e| e.into_inner()).expect("not assembled yet").assemble(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The latest copies of every shard's and the consumer's counters.
#[derive(Debug)]
pub(crate) struct Snapshots {
    shards: Mutex<Vec<Vec<StageStats>>>,
    consumer: Mutex<ConsumerCounts>,
    want_consumer: AtomicBool,
}

impl Snapshots {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: Mutex::new(vec![Vec::new(); shards]),
            consumer: Mutex::new(ConsumerCounts::default()),
            want_consumer: AtomicBool::new(false),
        }
    }

    pub(crate) fn store_shard(&self, shard: usize, stats: Vec<StageStats>) {
        lock(&self.shards)[shard] = stats;
    }

    /// Whether the reporter asked the consumer for a copy (one relaxed load per item).
    #[inline]
    pub(crate) fn wants_consumer(&self) -> bool {
        self.want_consumer.load(Ordering::Relaxed)
    }

    pub(crate) fn store_consumer(&self, counts: &ConsumerCounts) {
        *lock(&self.consumer) = counts.clone();
        self.want_consumer.store(false, Ordering::Relaxed);
    }

    fn merged(&self, stages: usize) -> (Vec<StageStats>, ConsumerCounts) {
        let per_shard = lock(&self.shards).clone();
        (merge(stages, per_shard), lock(&self.consumer).clone())
    }
}

/// The `pipeline-report` thread.
pub(crate) struct Reporter {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<ReportFn>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").finish_non_exhaustive()
    }
}

impl Reporter {
    pub(crate) fn start(
        every: Duration,
        mut callback: ReportFn,
        snapshots: Arc<Snapshots>,
        assembler: Assembler,
        shard_usage: Box<dyn Fn() -> Vec<ShardUsage> + Send>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new().name("pipeline-report".into()).spawn(move || {
            let (flag, cv) = &*stop2;
            let mut stopped = lock(flag);
            loop {
                stopped = cv.wait_timeout(stopped, every).unwrap_or_else(|e| e.into_inner()).0;
                if *stopped {
                    return callback;
                }
                snapshots.want_consumer.store(true, Ordering::Relaxed);
                let (stages, consumer) = snapshots.merged(assembler.names.len());
                callback(&assembler.report(stages, &consumer, shard_usage(), assembler.start.elapsed()));
            }
        })?;
        Ok(Self { stop, thread })
    }

    /// Stops the thread and hands the callback back (for the final report).
    pub(crate) fn finish(self) -> Option<ReportFn> {
        *lock(&self.stop.0) = true;
        self.stop.1.notify_all();
        self.thread.join().ok()
    }
}
