//! Building: the placement a pipeline runs on, the checks a builder passes before anything
//! starts, and `build` itself — start the shards (and the offload pool), lay every stage's steps
//! out on them, and hand the consumer its end.

use std::sync::Arc;

use super::builder::PipelineBuilder;
use super::consumer::{Parts, Pipeline};
use super::control::{Control, Limits};
use super::envelope::Msg;
use super::exchange::{Dealer, Merge};
use super::offload::Offload;
use super::progress::Snapshots;
use super::source::deal_task;
use super::stage::BATCH;
use super::wiring::{Kind, ShardBuild, StageSpec, Step, Wiring};
use crate::channel::{self, SharedReceiver};
use crate::runtime::{BuildError, Runtime, ShardUsage};

/// Where the pipeline runs; the same builder code runs on either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// SPDL's architecture: one event loop (one unpinned shard) schedules every task of every
    /// stage; `pipe_blocking` ops run on a pool of `offload_threads` OS threads (0: one per CPU).
    SingleLoop {
        /// Threads for blocking ops; 0 means one per CPU.
        offload_threads: usize,
    },
    /// `shards` pinned shards (0: one per CPU), each holding a replica of every stage and running
    /// blocking ops on its own core.
    Sharded {
        /// Shards; 0 means one per CPU in the affinity mask.
        shards: usize,
    },
}

impl Placement {
    /// One loop with one offload thread per CPU.
    pub fn single_loop() -> Self {
        Placement::SingleLoop { offload_threads: 0 }
    }

    /// One shard per CPU.
    pub fn sharded() -> Self {
        Placement::Sharded { shards: 0 }
    }

    /// "single-loop" or "sharded".
    pub fn label(&self) -> &'static str {
        match self {
            Placement::SingleLoop { .. } => "single-loop",
            Placement::Sharded { .. } => "sharded",
        }
    }
}

/// Why a pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PipelineBuildError {
    /// An option that must be at least 1 was 0.
    #[error("stage '{stage}': {option} must be at least 1, got 0")]
    Zero {
        /// The stage.
        stage: String,
        /// The option.
        option: &'static str,
    },
    /// `drop_last` was set on a stage that is not `aggregate(n)`.
    #[error("stage '{stage}': drop_last applies only to aggregate(n); call it right after .aggregate(n)")]
    DropLastWithoutAggregate {
        /// The stage.
        stage: String,
    },
    /// `rate` was zero, negative or not a number.
    #[error("the source rate must be a positive number of items per second, got {rate}")]
    BadRate {
        /// The rate asked for.
        rate: f64,
    },
    /// `rate` or `source_thread` on [`source_indexed`](super::source_indexed), whose items every
    /// shard makes for itself.
    #[error(
        "{option} does not apply to source_indexed (every shard makes its own items there); \
         start the pipeline with source(..) for an open-loop rate or a source on its own thread"
    )]
    SplitSourceOption {
        /// `"rate"` or `"source_thread"`.
        option: &'static str,
    },
    /// A failure rate limit outside (0, 1).
    #[error(
        "{whose} max_failure_rate must be a fraction strictly between 0 and 1 (0.05 for 5%), got {rate}; \
         to stop at the first failure set max_failures to 0"
    )]
    BadFailureRate {
        /// `stage 'name':` or `the pipeline's`.
        whose: String,
        /// The rate asked for.
        rate: f64,
    },
    /// `on_shards` named no shard, a shard twice, or a shard the placement does not have.
    #[error(
        "stage '{stage}': on_shards({shards:?}) must name distinct shards below {count} (the placement has {count}); \
         fix the list or ask for more shards"
    )]
    BadShards {
        /// The stage.
        stage: String,
        /// The shards asked for.
        shards: Vec<usize>,
        /// Shards the placement has.
        count: usize,
    },
    /// An ordered pipeline would need to merge and re-deal between two multi-shard sets.
    #[error(
        "stage '{stage}': an ordered pipeline cannot move from shards {from:?} to shards {to:?}; \
         pin one side to a single shard (on_shards([0])) or leave both on every shard"
    )]
    OrderedExchange {
        /// The stage.
        stage: String,
        /// Where the items are.
        from: Vec<usize>,
        /// Where the stage runs.
        to: Vec<usize>,
    },
    /// `path_variants` was given no path (or `merge_pipelines` no sub-pipeline).
    #[error(
        "stage '{stage}': a router needs at least one path; pass path_variants a list such as \
         [path(|p| p.map(f))], or merge_pipelines at least one sub_pipeline"
    )]
    NoPaths {
        /// The router.
        stage: String,
    },
    /// `on_shards` on a stage inside a path: paths run where their router runs.
    #[error(
        "stage '{stage}': on_shards cannot be set inside a path of path_variants (a path runs on its router's \
         shards); set it on the router (call .on_shards(..) right after .path_variants(..))"
    )]
    ShardsInPath {
        /// The stage.
        stage: String,
    },
    /// A stage option (`name`, `concurrency`, …) inside a path before the path's first stage.
    #[error(
        "a stage option (name, concurrency, buffer, …) was called inside a path of path_variants before the \
         path's first stage, where it applies to no stage; call it right after the stage it is for"
    )]
    OptionBeforeStage,
    /// The shards could not start.
    #[error("cannot start the shards: {0}")]
    Runtime(#[from] BuildError),
    /// A shard refused the pipeline's task (it is shutting down).
    #[error("cannot start the pipeline on its shards: {0}")]
    Spawn(#[from] crate::runtime::SpawnError),
    /// A source thread (`source_thread()`, `merge_sources`) could not start.
    #[error("cannot start a source thread: {0}")]
    SourceThread(std::io::Error),
    /// The offload threads could not start.
    #[error("cannot start the offload threads: {0}")]
    Offload(std::io::Error),
    /// `.trace()` on a pipeline built with `build_on`: the shards are not the pipeline's own.
    #[error(
        "trace() needs a pipeline with shards of its own: use build(placement), or trace the shared runtime \
         (Runtime::builder().trace(..))"
    )]
    TraceOnSharedRuntime,
}

/// Where a pipeline runs: shards of its own (stopped with it) or a runtime it shares; with the
/// shards' usage when the pipeline started.
pub(crate) enum Hosted {
    Own(Runtime, Vec<ShardUsage>),
    Shared(Arc<Runtime>, Vec<ShardUsage>),
}

impl Hosted {
    pub(crate) fn get(&self) -> &Runtime {
        match self {
            Hosted::Own(r, _) => r,
            Hosted::Shared(r, _) => r,
        }
    }

    fn at_start(&self) -> &[ShardUsage] {
        let (Hosted::Own(_, at_start) | Hosted::Shared(_, at_start)) = self;
        at_start
    }

    /// The shards' usage since the pipeline started.
    pub(crate) fn usage_since_start(&self) -> Vec<ShardUsage> {
        since(&self.get().shard_usage(), self.at_start())
    }

    /// [`Hosted::usage_since_start`] for a thread that does not hold the pipeline (periodic
    /// reports).
    pub(crate) fn usage_reader(&self) -> impl Fn() -> Vec<ShardUsage> + Send + 'static {
        let (read, at_start) = (self.get().usage_reader(), self.at_start().to_vec());
        move || since(&read(), &at_start)
    }

    /// The pipeline ended: its own shards are shut down and give their usage and timelines; a
    /// shared runtime runs on and gives its shards' usage while the pipeline ran (which counts
    /// whatever else ran on them too).
    pub(crate) fn end(self) -> (Vec<ShardUsage>, Vec<crate::trace::Track>) {
        match self {
            Hosted::Own(r, _) => {
                let reports = r.shutdown();
                let usage = reports.iter().map(crate::runtime::ShardReport::usage).collect();
                (usage, reports.into_iter().filter_map(|r| r.trace).collect())
            }
            shared @ Hosted::Shared(..) => (shared.usage_since_start(), Vec::new()),
        }
    }
}

/// Each shard's usage between `at_start` and `now` (readings of the same shards, in order).
fn since(now: &[ShardUsage], at_start: &[ShardUsage]) -> Vec<ShardUsage> {
    now.iter().zip(at_start).map(|(n, s)| n.since(s)).collect()
}

/// What `start` lays a pipeline out with.
struct Launch {
    placement: Placement,
    runtime: Hosted,
    offload: Option<Arc<Offload>>,
    shards: usize,
    ordered: bool,
    start: std::time::Instant,
}

impl<T: Send + 'static> PipelineBuilder<T> {
    fn validate(&self) -> Result<(), PipelineBuildError> {
        if self.scratch.is_some() {
            return Err(PipelineBuildError::OptionBeforeStage);
        }
        for spec in &self.specs {
            let zero = |option| PipelineBuildError::Zero { stage: spec.name.clone(), option };
            if spec.concurrency == 0 {
                return Err(zero("concurrency"));
            }
            if spec.batch == Some(0) {
                return Err(zero("the batch size"));
            }
            if spec.buffer == 0 {
                return Err(zero("buffer"));
            }
            if let Some(rate) = spec.max_failure_rate
                && !(rate > 0.0 && rate < 1.0)
            {
                return Err(PipelineBuildError::BadFailureRate { whose: format!("stage '{}':", spec.name), rate });
            }
            if spec.drop_last && spec.batch.is_none() {
                return Err(PipelineBuildError::DropLastWithoutAggregate { stage: spec.name.clone() });
            }
            if spec.kind == Kind::Route && spec.paths == 0 {
                return Err(PipelineBuildError::NoPaths { stage: spec.name.clone() });
            }
        }
        let source = &self.specs[0];
        if source.split && source.rate.is_some() {
            return Err(PipelineBuildError::SplitSourceOption { option: "rate" });
        }
        if source.split && source.threaded {
            return Err(PipelineBuildError::SplitSourceOption { option: "source_thread" });
        }
        if let Some(rate) = source.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(PipelineBuildError::BadRate { rate });
        }
        if let Some(rate) = self.max_failure_rate_total
            && !(rate > 0.0 && rate < 1.0)
        {
            return Err(PipelineBuildError::BadFailureRate { whose: "the pipeline's".into(), rate });
        }
        if self.sink_buffer == 0 {
            return Err(PipelineBuildError::Zero { stage: "sink".into(), option: "buffer" });
        }
        Ok(())
    }

    /// Whether the pipeline keeps source order end to end: some stage asked for it, every stage
    /// that could reorder (tasks; blocking ops on a single loop) keeps its input order, and no
    /// `path_variants` merges paths (in completion order).
    fn keeps_order(&self, single_loop: bool) -> bool {
        let reorders = |s: &StageSpec| s.kind == Kind::Tasks || (s.kind == Kind::Blocking && single_loop);
        self.specs.iter().any(|s| s.ordered)
            && self.specs.iter().all(|s| (!reorders(s) || s.ordered) && s.kind != Kind::Route)
    }

    /// Checks the stage shard sets against the placement (what `Wiring::enter` will build).
    fn validate_placement(&self, shards: usize, ordered: bool, single_loop: bool) -> Result<(), PipelineBuildError> {
        if single_loop {
            return Ok(());
        }
        let mut current: Vec<usize> = Vec::new();
        for spec in &self.specs[1..] {
            if spec.in_path && spec.shards.is_some() {
                return Err(PipelineBuildError::ShardsInPath { stage: spec.name.clone() });
            }
            if let Some(set) = &spec.shards {
                let mut sorted = set.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if set.is_empty() || sorted.len() != set.len() || sorted.last().is_some_and(|&m| m >= shards) {
                    return Err(PipelineBuildError::BadShards {
                        stage: spec.name.clone(),
                        shards: set.clone(),
                        count: shards,
                    });
                }
            }
            let set = match &spec.shards {
                Some(s) => s.clone(),
                None if spec.kind == Kind::Aggregate && ordered => vec![current.first().copied().unwrap_or(0)],
                None => (0..shards).collect(),
            };
            if ordered && spec.kind == Kind::Aggregate && set.len() > 1 {
                return Err(PipelineBuildError::OrderedExchange { stage: spec.name.clone(), from: current, to: set });
            }
            if ordered && current.len() > 1 && set.len() > 1 && current != set {
                return Err(PipelineBuildError::OrderedExchange { stage: spec.name.clone(), from: current, to: set });
            }
            current = set;
        }
        Ok(())
    }

    /// Starts the pipeline on `placement`. Items flow at once; iterate the returned
    /// [`Pipeline`] to receive them.
    pub fn build(self, placement: Placement) -> Result<Pipeline<T>, PipelineBuildError> {
        self.validate()?;
        let mut rb = Runtime::builder();
        let offload_threads = match placement {
            Placement::SingleLoop { offload_threads } => {
                rb.shards(1).pin(false);
                Some(offload_threads)
            }
            Placement::Sharded { shards } => {
                if shards > 0 {
                    rb.shards(shards);
                }
                None
            }
        };
        let ordered = self.keeps_order(offload_threads.is_some());
        let shards = match placement {
            Placement::SingleLoop { .. } => 1,
            Placement::Sharded { shards: 0 } => rb.plan()?.len(),
            Placement::Sharded { shards } => shards,
        };
        self.validate_placement(shards, ordered, offload_threads.is_some())?;
        let start = std::time::Instant::now();
        if self.trace {
            rb.trace(start);
        }
        let runtime = rb.build()?;
        let offload = match offload_threads {
            Some(n) => {
                let n = if n == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { n };
                Some(Arc::new(Offload::new(n, self.trace.then_some(start)).map_err(PipelineBuildError::Offload)?))
            }
            None => None,
        };
        let at_start = runtime.shard_usage();
        let runtime = Hosted::Own(runtime, at_start);
        self.start(Launch { placement, runtime, offload, shards, ordered, start })
    }

    /// Starts the pipeline on the shards of `runtime`, which it shares with whatever else runs
    /// there (the caller's own tasks, other pipelines): placement sharded over all of them,
    /// blocking ops inline on their shard. Nothing is started or stopped but the pipeline's own
    /// tasks (and its source threads), so pipelines built one after another pay no thread or
    /// ring start-up. The report's per-shard busy time covers the pipeline's run but counts
    /// whatever else ran on those shards meanwhile, and `.trace()` is refused (a runtime traces
    /// when it is built with `trace`).
    ///
    /// Iterate the pipeline from a plain thread: waiting for it inside a task on one of these
    /// shards would block the event loop its stages need, so that panics (with this advice)
    /// instead of hanging.
    pub fn build_on(self, runtime: &Arc<Runtime>) -> Result<Pipeline<T>, PipelineBuildError> {
        self.validate()?;
        if self.trace {
            return Err(PipelineBuildError::TraceOnSharedRuntime);
        }
        let shards = runtime.shard_count();
        let ordered = self.keeps_order(false);
        self.validate_placement(shards, ordered, false)?;
        let start = std::time::Instant::now();
        let placement = Placement::Sharded { shards };
        self.start(Launch {
            placement,
            runtime: Hosted::Shared(runtime.clone(), runtime.shard_usage()),
            offload: None,
            shards,
            ordered,
            start,
        })
    }

    /// Lays the pipeline out on its shards and starts it.
    fn start(self, launch: Launch) -> Result<Pipeline<T>, PipelineBuildError> {
        let Launch { placement, runtime, offload, shards, ordered, start } = launch;
        let mut specs = self.specs;
        let sink_index = specs.len();
        let mut sink = StageSpec::new("sink".into(), Kind::Sink, self.sink_buffer);
        sink.parents = self.tails;
        specs.push(sink);
        let limits = |count, rate| Limits { count, rate };
        let stage_limits = specs.iter().map(|s| (s.name.clone(), limits(s.max_failures, s.max_failure_rate))).collect();
        let total = limits(self.max_failures_total, self.max_failure_rate_total);
        let parents = specs.iter().map(|s| s.parents.iter().map(|&(stage, _)| stage).collect()).collect();
        let mut control = Control::starting_at(start, stage_limits, parents, total);
        if let Some(factory) = self.task_hook {
            let calls_ops =
                specs.iter().map(|s| matches!(s.kind, Kind::Inline | Kind::Tasks | Kind::Blocking)).collect();
            control = control.with_hooks(factory, calls_ops);
        }
        let control = Arc::new(control);
        let mut w = Wiring {
            shards,
            offload: offload.clone(),
            specs,
            steps: (0..shards).map(|_| Vec::<Step>::new()).collect(),
            ordered,
            source: None,
            source_threads: Vec::new(),
            current: Vec::new(),
            bound: 0,
            units_per_item: 1,
        };
        (self.wire)(&mut w);
        let from = w.enter::<T>(sink_index);
        let mut consumer_rings: Vec<SharedReceiver<Msg<T>>> = Vec::new();
        for &j in &from {
            let (tx, rx) = channel::bounded::<Msg<T>>(self.sink_buffer);
            consumer_rings.push(rx);
            w.steps[j].push(Box::new(move |sb: &mut ShardBuild| {
                let input = sb.take_upstream::<T>();
                let cx = sb.stage(sink_index);
                sb.spawn(deal_task(input, Dealer::new(vec![tx.connect()], false, true), cx));
            }));
        }
        w.hold(BATCH + self.sink_buffer.max(2).next_power_of_two(), from.len());
        let source_threads = std::mem::take(&mut w.source_threads)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(PipelineBuildError::SourceThread)?;
        let stages = sink_index + 1;
        let names = w.specs.iter().map(|s| s.name.clone()).collect();
        let reporting = self.report_every.map(|(every, f)| (every, f, Arc::new(Snapshots::new(shards))));
        let mut handles = Vec::with_capacity(shards);
        for (j, steps) in std::mem::take(&mut w.steps).into_iter().enumerate() {
            let control = control.clone();
            let snapshots = reporting.as_ref().map(|(every, _, s)| (*every, s.clone(), j));
            let h = runtime.get().run_on(j, move || async move {
                let mut sb = ShardBuild::new(control);
                for step in steps {
                    step(&mut sb);
                }
                sb.finish(stages, snapshots).await
            });
            handles.push(h?);
        }
        let rings = Merge::new(consumer_rings, ordered && from.len() > 1);
        Ok(Pipeline::new(Parts {
            placement,
            runtime,
            offload,
            control,
            shard_tasks: handles,
            rings,
            source_threads,
            names,
            bound: w.bound,
            reporting,
        }))
    }
}
