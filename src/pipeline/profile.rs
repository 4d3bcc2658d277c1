//! `profile`: SPDL's profiling mode — every stage run alone, on inputs made beforehand, at
//! concurrencies 32, 16, 8, 4 and 1, so each stage's own throughput shows without the rest of
//! the pipeline in the way.
//!
//! The source runs first and its items are collected (`items_per_level` for each level). Then,
//! stage by stage, the collected items are split into one share per level; each share runs
//! through a pipeline of that stage alone (a source over the share, the stage, the sink) on the
//! same placement; the outputs of all levels, together, are the next stage's inputs. A stage
//! whose concurrency changes nothing (inline ops, and blocking ops on shards, which run one call
//! at a time per shard) runs once, at its own setting, on all its inputs.
//!
//! Each stage's wiring is shared (`StageWire`) so it can be laid out again here; the builder
//! keeps one [`Profiler`] per stage, made where the stage's input and output types are known.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::build::{PipelineBuildError, Placement};
use super::builder::{PipelineBuilder, StageWire, Wire};
use super::envelope::{Envelope, Stamps};
use super::report::{Report, fmt_ns};
use super::route::Route;
use super::sources::{bare_builder, source};
use super::wiring::{Kind, StageSpec};

/// Capacity of each shard's ring to the consumer in a profiling run (see `run_levels`).
const PROFILE_SINK: usize = 256;

/// Concurrencies each stage whose concurrency matters is run at (SPDL's).
const LEVELS: [usize; 5] = [32, 16, 8, 4, 1];

/// Items of some stage's type, erased: a `Vec<T>` (for the source: the number of items to make).
type Erased = Box<dyn Any + Send>;

/// What profiling one stage hands on: its outputs (a `Vec` of its output type per output: one,
/// or one per path for a router) and its levels.
pub(crate) struct Staged {
    outputs: Vec<Erased>,
    levels: Vec<ProfileLevel>,
}

/// Runs one stage alone on its inputs (one `Vec` of its input type per output it reads) at
/// each of the levels.
pub(crate) type Profiler =
    Arc<dyn Fn(Vec<Erased>, &StageSpec, &[usize], Placement) -> Result<Staged, PipelineBuildError> + Send + Sync>;

/// `profile` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A stage's pipeline did not build or start.
    #[error("profile: {0}")]
    Build(#[from] PipelineBuildError),
    /// `items_per_level` was 0.
    #[error("profile: items_per_level must be at least 1 (SPDL uses 1000)")]
    NoItems,
}

/// One stage at one concurrency.
#[derive(Debug, Clone)]
pub struct ProfileLevel {
    /// Tasks in flight for the stage, in total.
    pub concurrency: usize,
    /// Items the stage received.
    pub items: u64,
    /// Items it emitted.
    pub outputs: u64,
    /// Calls that failed (errors and panics).
    pub failures: u64,
    /// From the start of the run (shards up) to its last output.
    pub elapsed: Duration,
    /// `items / elapsed`.
    pub items_per_sec: f64,
    /// Per call, ns (sampled for inline ops, as in reports; a router's: the mean).
    pub task_p50_ns: u64,
    /// Per call, ns (a router's: the mean).
    pub task_p99_ns: u64,
    /// Fraction of the time the stage's output queue held an item.
    pub occupancy: Option<f64>,
}

/// One stage's levels.
#[derive(Debug, Clone)]
pub struct StageProfile {
    /// The stage's name.
    pub name: String,
    /// One entry per concurrency run (one for stages whose concurrency changes nothing; none
    /// when the stages before it left it no input).
    pub levels: Vec<ProfileLevel>,
}

impl StageProfile {
    /// The level with the highest throughput.
    pub fn best(&self) -> Option<&ProfileLevel> {
        self.levels.iter().max_by(|a, b| a.items_per_sec.total_cmp(&b.items_per_sec))
    }

    /// Items this stage received over all its levels.
    fn received(&self) -> u64 {
        self.levels.iter().map(|l| l.items).sum()
    }
}

/// What [`PipelineBuilder::profile`] measured.
#[derive(Debug, Clone)]
pub struct Profile {
    /// "single-loop" or "sharded".
    pub placement: &'static str,
    /// The source first, then every stage in order.
    pub stages: Vec<StageProfile>,
}

impl Profile {
    /// Per stage, the source items per second it could keep up with at its best level: its best
    /// rate times the source items behind each item it receives (after `aggregate(32)`, 32; on
    /// a path that gets a quarter of the items, 4; after a filter, more than 1). `None` for a
    /// stage that got no input.
    pub fn source_rates(&self) -> Vec<(&str, Option<f64>)> {
        let made = self.stages.first().map_or(0, StageProfile::received) as f64;
        self.stages
            .iter()
            .map(|s| {
                let received = s.received();
                let rate = s.best().filter(|_| received > 0).map(|b| b.items_per_sec * made / received as f64);
                (s.name.as_str(), rate)
            })
            .collect()
    }

    /// The stage with the lowest [`source_rates`](Self::source_rates): what limits the pipeline,
    /// as far as stages run alone can tell. An estimate: a short run's rate includes its
    /// start-up (it reads low), and in the real run stages that share a core slow each other.
    pub fn bottleneck(&self) -> Option<(&str, f64)> {
        self.source_rates()
            .into_iter()
            .filter_map(|(name, rate)| rate.map(|r| (name, r)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "profile ({}): each stage alone on inputs made beforehand; * marks the fastest", self.placement)?;
        let width = self.stages.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for stage in &self.stages {
            if stage.levels.is_empty() {
                writeln!(f, "  {:width$}  no input (the stages before it emitted nothing)", stage.name)?;
            }
            let best = stage.best().map(|b| b.concurrency);
            for l in &stage.levels {
                let mark = if stage.levels.len() > 1 && Some(l.concurrency) == best { '*' } else { ' ' };
                let busy = l.occupancy.map_or("-".into(), |o| format!("{:.0}%", o * 100.0));
                writeln!(
                    f,
                    "  {:width$} {mark} concurrency {:>2}  {:>8} in {:>8} out {:>4} failed  {:>10.0} items/s  \
                     task p50 {} p99 {}  queue busy {busy}",
                    stage.name,
                    l.concurrency,
                    l.items,
                    l.outputs,
                    l.failures,
                    l.items_per_sec,
                    fmt_ns(l.task_p50_ns),
                    fmt_ns(l.task_p99_ns),
                )?;
            }
        }
        if let Some((stage, rate)) = self.bottleneck() {
            writeln!(
                f,
                "slowest stage at its best: {stage}, about {rate:.0} source items/s \
                 (each stage's best rate times the source items behind each of its inputs)"
            )?;
        }
        Ok(())
    }
}

impl<T: Send + 'static> PipelineBuilder<T> {
    /// SPDL's profiling mode: runs every stage alone on `placement`, at concurrencies 32, 16,
    /// 8, 4 and 1, each on `items_per_level` inputs made by the stages before it (SPDL uses
    /// 1000), and reports each level's throughput. Use it to find the stage that limits a
    /// pipeline and the concurrency it wants. Stages whose concurrency changes nothing (inline
    /// ops; blocking ops on shards) run once at their own setting. Failure limits are lifted
    /// while profiling (failures are counted). The source runs once, for as many items as all
    /// levels need (fewer if it ends sooner). A `path_variants` router is called in place on its
    /// inputs, and each path's stages run on the items routed to it.
    pub fn profile(self, items_per_level: usize, placement: Placement) -> Result<Profile, ProfileError> {
        if items_per_level == 0 {
            return Err(ProfileError::NoItems);
        }
        let mut stages = Vec::with_capacity(self.specs.len());
        // Per stage, its outputs until the stage reading each takes it.
        let mut outputs: Vec<Vec<Option<Erased>>> = Vec::with_capacity(self.specs.len());
        for (i, (spec, profiler)) in self.specs.iter().zip(&self.profilers).enumerate() {
            let profiler = profiler.as_ref().expect("every stage has a profiler");
            let inputs: Vec<Erased> = if i == 0 {
                vec![Box::new(items_per_level * LEVELS.len())]
            } else {
                let mut take = |(stage, port): (usize, usize)| outputs[stage][port].take();
                spec.parents.iter().map(|&p| take(p).expect("each output feeds one stage")).collect()
            };
            let staged = profiler(inputs, spec, &LEVELS, placement)?;
            stages.push(StageProfile { name: spec.name.clone(), levels: staged.levels });
            outputs.push(staged.outputs.into_iter().map(Some).collect());
        }
        let placement = if matches!(placement, Placement::SingleLoop { .. }) { "single-loop" } else { "sharded" };
        Ok(Profile { placement, stages })
    }
}

/// The profiler of a source whose wiring waits in `slot` (shared with the builder's own
/// wiring: whichever runs first takes it).
pub(crate) fn source_profiler<T: Send + 'static>(slot: Arc<Mutex<Option<Wire>>>) -> Profiler {
    Arc::new(move |mut input, spec, _levels, placement| {
        let n = *input.pop().and_then(|i| i.downcast::<usize>().ok()).expect("the source's input is a count");
        let mut b = bare_builder::<T>(take_wire(&slot), spec.clone());
        b.specs[0].rate = None;
        b.sink_buffer = PROFILE_SINK;
        let mut pipe = b.build(placement)?;
        let t0 = Instant::now();
        let items: Vec<T> = pipe.iter().take(n).collect();
        let elapsed = t0.elapsed();
        pipe.stop();
        let report = finished(pipe.finish());
        // The source receives nothing: its throughput is the items collected over the time.
        let got = items.len() as u64;
        let level = ProfileLevel {
            items: got,
            outputs: got,
            items_per_sec: got as f64 / elapsed.as_secs_f64().max(1e-9),
            ..level(&report, 0, spec.concurrency, elapsed)
        };
        Ok(Staged { outputs: vec![Box::new(items)], levels: vec![level] })
    })
}

/// The source's wiring, taken out of its slot (once: a builder is built or profiled, not both).
pub(crate) fn take_wire(slot: &Mutex<Option<Wire>>) -> Wire {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take().expect("a builder's source is laid out once")
}

/// The profiler of a stage from `T` to `U` laid out by `stage`.
pub(crate) fn stage_profiler<T: Send + 'static, U: Send + 'static>(stage: StageWire) -> Profiler {
    Arc::new(move |inputs, spec, levels, placement| run_levels::<T, U>(joined(inputs), &stage, spec, levels, placement))
}

/// The profiler of a `path_variants` router: `router` called in place on every input, whose
/// parts go to their paths' outputs (a panic, or what the router refuses, is a failure).
pub(crate) fn router_profiler<T: Send + 'static, R: Route<T>>(router: Arc<R>, paths: usize) -> Profiler {
    Arc::new(move |inputs, spec, _levels, _placement| {
        let items: Vec<T> = joined(inputs);
        let n = items.len() as u64;
        let mut routed: Vec<Vec<T>> = (0..paths).map(|_| Vec::new()).collect();
        let (mut parts, mut failures) = (Vec::new(), 0u64);
        let t0 = Instant::now();
        for x in items {
            match catch_unwind(AssertUnwindSafe(|| router.choose(&x, paths))) {
                Ok(Ok(choice)) => match R::split(choice, Envelope { value: x, stamps: Stamps::None }, &mut parts) {
                    Some((k, whole)) => routed[k].push(whole.value),
                    None => parts.drain(..).for_each(|(k, part)| routed[k].push(part.value)),
                },
                Ok(Err(_)) | Err(_) => failures += 1,
            }
        }
        let elapsed = t0.elapsed();
        let outputs = routed.iter().map(|r| r.len() as u64).sum::<u64>();
        let mean_ns = u64::try_from(elapsed.as_nanos() / u128::from(n.max(1))).unwrap_or(u64::MAX);
        let level = ProfileLevel {
            concurrency: spec.concurrency,
            items: n,
            outputs,
            failures,
            elapsed,
            items_per_sec: n as f64 / elapsed.as_secs_f64().max(1e-9),
            task_p50_ns: mean_ns,
            task_p99_ns: mean_ns,
            occupancy: None,
        };
        let outputs = routed.into_iter().map(|r| Box::new(r) as Erased).collect();
        Ok(Staged { outputs, levels: vec![level] })
    })
}

/// The items of every output a stage reads, in one `Vec`.
fn joined<T: 'static>(inputs: Vec<Erased>) -> Vec<T> {
    let mut all = Vec::new();
    for part in inputs {
        all.extend(*part.downcast::<Vec<T>>().expect("a stage's inputs are its input type"));
    }
    all
}

/// Runs the stage alone once per level, each on its share of `items`.
fn run_levels<T: Send + 'static, U: Send + 'static>(
    items: Vec<T>,
    stage: &StageWire,
    spec: &StageSpec,
    levels: &[usize],
    placement: Placement,
) -> Result<Staged, PipelineBuildError> {
    let single_loop = matches!(placement, Placement::SingleLoop { .. });
    let matters = spec.kind == Kind::Tasks || (spec.kind == Kind::Blocking && single_loop);
    let levels: Vec<usize> = if matters { levels.to_vec() } else { vec![spec.concurrency] };
    let (n, k) = (items.len(), levels.len());
    let mut rest = items.into_iter();
    let mut outputs: Vec<U> = Vec::new();
    let mut done = Vec::with_capacity(k);
    for (i, &concurrency) in levels.iter().enumerate() {
        let share: Vec<T> = rest.by_ref().take(n / k + usize::from(i < n % k)).collect();
        if share.is_empty() {
            continue;
        }
        let mut b: PipelineBuilder<U> =
            source(share).push_shared_stage(&spec.name, spec.kind, spec.buffer, stage.clone());
        b.specs[1] = StageSpec {
            concurrency,
            max_failures: None,
            max_failure_rate: None,
            parents: vec![(0, 0)],
            ..spec.clone()
        };
        // The real pipeline hands the consumer batches; here every output goes to it alone, so a
        // roomy sink keeps the consumer's wake-ups from throttling the stage being measured.
        b.sink_buffer = PROFILE_SINK;
        let mut pipe = b.build(placement)?;
        let t0 = Instant::now();
        outputs.extend(pipe.iter());
        let elapsed = t0.elapsed();
        done.push(level(&finished(pipe.finish()), 1, concurrency, elapsed));
    }
    Ok(Staged { outputs: vec![Box::new(outputs)], levels: done })
}

/// The report of a finished run, failure limit or not (profiling lifts the limits, but a
/// source that panics still fails the run).
fn finished(r: Result<Report, super::PipelineFailed>) -> Report {
    r.unwrap_or_else(|failed| *failed.report)
}

/// Stage `index` of `report` as one level.
fn level(report: &Report, index: usize, concurrency: usize, elapsed: Duration) -> ProfileLevel {
    let s = &report.stages[index].stats;
    let task = s.task_time.summary();
    ProfileLevel {
        concurrency,
        items: s.received,
        outputs: s.emitted,
        failures: s.failures,
        elapsed,
        items_per_sec: s.received as f64 / elapsed.as_secs_f64().max(1e-9),
        task_p50_ns: task.p50,
        task_p99_ns: task.p99,
        occupancy: s.occupancy(),
    }
}
