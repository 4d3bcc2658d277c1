//! [`PipelineBuilder`]: SPDL's `PipelineBuilder` in Rust — a source, stages, a sink — built
//! onto a [`Placement`].
//!
//! The builder is typed end to end (`PipelineBuilder<T>` emits `T`): each stage method composes
//! the previous wiring with its own, and nothing is boxed per item. Options (`name`,
//! `concurrency`, `ordered`, `max_failures`, `buffer`, `drop_last`) apply to the stage added last.

use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::aggregate::{Aggregator, Collect, Items, Leftovers, aggregate_worker, custom_aggregate_worker, tree_parent};
use super::envelope::Envelope;
use super::hook::{HookContext, HookFactory, TaskHook};
use super::profile::{Profiler, stage_profiler};
use super::progress::ReportFn;
use super::report::Report;
use super::stage::{BATCH, Timing, inline_worker, tasks_worker};
use super::wiring::{DEFAULT_BATCH_BUFFER, DEFAULT_BUFFER, Kind, ShardBuild, StageSpec, Wiring};
use crate::channel::{self, SharedReceiver};

/// What an op returns: `Option` (`None` drops the item: a filter) or `Result` (`Err` is a
/// failure, counted and sampled with its message). For a plain value use
/// [`PipelineBuilder::map`].
pub trait Outcome {
    /// The item passed on.
    type Item;
    /// `Ok(Some(item))`, `Ok(None)` to filter, `Err(message)` to fail.
    fn into_outcome(self) -> Result<Option<Self::Item>, String>;
}

impl<U> Outcome for Option<U> {
    type Item = U;
    fn into_outcome(self) -> Result<Option<U>, String> {
        Ok(self)
    }
}

impl<U, E: Display> Outcome for Result<U, E> {
    type Item = U;
    fn into_outcome(self) -> Result<Option<U>, String> {
        self.map(Some).map_err(|e| e.to_string())
    }
}

pub(super) type Wire = Box<dyn FnOnce(&mut Wiring) + Send>;

/// `last` inside a path before the path has a stage of its own.
pub(super) const NO_STAGE: usize = usize::MAX;

/// How one stage lays itself out, given its index.
pub(super) type StageWire = Arc<dyn Fn(&mut Wiring, usize) + Send + Sync>;

/// A pipeline being described; `T` is what its last stage emits.
#[must_use = "a builder does nothing until .build(placement)"]
pub struct PipelineBuilder<T> {
    pub(super) wire: Wire,
    pub(super) specs: Vec<StageSpec>,
    pub(super) max_failures_total: Option<u64>,
    pub(super) max_failure_rate_total: Option<f64>,
    pub(super) sink_buffer: usize,
    pub(super) report_every: Option<(Duration, ReportFn)>,
    pub(super) trace: bool,
    /// The stages whose output is the chain's output so far (several after `path_variants`).
    pub(super) tails: Vec<(usize, usize)>,
    /// The stage the options (`name`, `concurrency`, …) apply to: the one added last, or the
    /// router after `path_variants`.
    pub(super) last: usize,
    /// Per stage: how `profile` runs it alone.
    pub(super) profilers: Vec<Option<Profiler>>,
    /// `task_hook(factory)`.
    pub(super) task_hook: Option<HookFactory>,
    /// Where a stage option goes when no stage takes it (inside a path, before the path's first
    /// stage); `Some` means one was called there, which the build refuses.
    pub(super) scratch: Option<Box<StageSpec>>,
    pub(super) _out: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for PipelineBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.specs.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("PipelineBuilder").field("stages", &names).finish_non_exhaustive()
    }
}

impl<T: Send + 'static> PipelineBuilder<T> {
    pub(super) fn push_stage<U: Send + 'static>(
        self,
        name: &str,
        kind: Kind,
        buffer: usize,
        stage: impl Fn(&mut Wiring, usize) + Send + Sync + 'static,
    ) -> PipelineBuilder<U> {
        self.push_shared_stage(name, kind, buffer, Arc::new(stage))
    }

    /// Adds a stage whose wiring is `stage` (shared: `profile` lays it out again on its own).
    pub(super) fn push_shared_stage<U: Send + 'static>(
        mut self,
        name: &str,
        kind: Kind,
        buffer: usize,
        stage: StageWire,
    ) -> PipelineBuilder<U> {
        let index = self.specs.len();
        let mut spec = StageSpec::new(format!("{name}{index}"), kind, buffer);
        spec.parents = std::mem::replace(&mut self.tails, vec![(index, 0)]);
        self.specs.push(spec);
        self.profilers.push(Some(stage_profiler::<T, U>(stage.clone())));
        let prev = std::mem::replace(&mut self.wire, Box::new(|_| {}));
        self.last = index;
        self.rewire(Box::new(move |w: &mut Wiring| {
            prev(w);
            stage(w, index);
        }))
    }

    /// The same builder with `wire` as its wiring and `U` as its output.
    pub(super) fn rewire<U>(self, wire: Wire) -> PipelineBuilder<U> {
        PipelineBuilder {
            wire,
            specs: self.specs,
            max_failures_total: self.max_failures_total,
            max_failure_rate_total: self.max_failure_rate_total,
            sink_buffer: self.sink_buffer,
            report_every: self.report_every,
            trace: self.trace,
            tails: self.tails,
            last: self.last,
            profilers: self.profilers,
            task_hook: self.task_hook,
            scratch: self.scratch,
            _out: PhantomData,
        }
    }

    /// An inline op on every shard: `apply` pushes the outputs of one input.
    fn inline<U, A>(self, name: &str, apply: A, timing: Timing) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        A: Fn(T, &mut Vec<U>) -> Result<(), String> + Send + Sync + 'static,
    {
        let apply = Arc::new(apply);
        self.push_stage(name, Kind::Inline, DEFAULT_BUFFER, move |w, index| {
            let set = w.enter::<T>(index);
            let buffer = w.specs[index].buffer;
            w.hold(buffer + BATCH + 1, set.len());
            for &j in &set {
                let apply = apply.clone();
                w.steps[j].push(Box::new(move |sb: &mut ShardBuild| {
                    sb.add_worker(index, buffer, |input, tx, cx| {
                        inline_worker(input, tx, move |x: T, out: &mut Vec<U>| apply(x, out), cx, timing)
                    });
                }));
            }
        })
    }

    /// An async op: one task per item, `concurrency` in flight in total.
    pub(super) fn tasks<U, F, Fut>(self, name: &str, op: F) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<U>, String>> + 'static,
    {
        let op = Arc::new(op);
        self.push_stage(name, Kind::Tasks, DEFAULT_BUFFER, move |w, index| {
            let set = w.enter::<T>(index);
            wire_tasks(w, index, &set, op.clone());
        })
    }

    /// A cheap function of each item (runs inline in the stage's worker, never as its own task).
    pub fn map<U, F>(self, f: F) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        self.inline(
            "map",
            move |x, out| {
                out.push(f(x));
                Ok(())
            },
            Timing::Sampled,
        )
    }

    /// A cheap function returning an [`Outcome`]: `None` filters the item, `Err` fails it.
    pub fn pipe<R, F>(self, f: F) -> PipelineBuilder<R::Item>
    where
        R: Outcome,
        R::Item: Send + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.inline("pipe", move |x, out| push_outcome(f(x), out), Timing::Sampled)
    }

    /// A function returning an iterator: 1 → N outputs (none filters the item).
    pub fn pipe_iter<I, F>(self, f: F) -> PipelineBuilder<I::Item>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(T) -> I + Send + Sync + 'static,
    {
        self.inline(
            "pipe_iter",
            move |x, out| {
                out.extend(f(x));
                Ok(())
            },
            Timing::Sampled,
        )
    }

    /// An async function (it may await io_uring reads and timers): each item runs as a task on
    /// its shard, up to `concurrency` in flight for the stage in total.
    pub fn pipe_async<R, Fut, F>(self, f: F) -> PipelineBuilder<R::Item>
    where
        R: Outcome + 'static,
        R::Item: Send + 'static,
        Fut: Future<Output = R> + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
    {
        // `f` itself is called inside the task's future, so a panic in it (before it returns a
        // future) is caught and counted like one inside the future, instead of ending the stage.
        let f = Arc::new(f);
        self.tasks("pipe_async", move |x| {
            let f = f.clone();
            async move { f(x).await.into_outcome() }
        })
    }

    /// A CPU-heavy or blocking function: on a single loop it runs on the offload threads (up to
    /// `concurrency` at once), sharded it runs inline on each shard's own core.
    pub fn pipe_blocking<R, F>(self, f: F) -> PipelineBuilder<R::Item>
    where
        R: Outcome + Send + 'static,
        R::Item: Send + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.push_stage("pipe_blocking", Kind::Blocking, DEFAULT_BUFFER, move |w, index| {
            let f = f.clone();
            let set = w.enter::<T>(index);
            let spec = w.specs[index].clone();
            if let Some(pool) = w.offload.clone() {
                let op = Arc::new(move |x: T| {
                    let (f, pool) = (f.clone(), pool.clone());
                    // Handed to the pool when first polled, inside the call's timing: a job
                    // handed over earlier could run before the clock starts.
                    async move { pool.run(move || f(x).into_outcome()).await.and_then(|r| r) }
                });
                // One loop: the pool's threads run `concurrency` calls at once.
                wire_tasks(w, index, &set, op);
            } else {
                w.hold(spec.buffer + BATCH + 1, set.len());
                for &j in &set {
                    let f = f.clone();
                    let buffer = spec.buffer;
                    w.steps[j].push(Box::new(move |sb: &mut ShardBuild| {
                        let apply = move |x, out: &mut Vec<R::Item>| push_outcome(f(x), out);
                        sb.add_worker(index, buffer, |input, tx, cx| {
                            inline_worker(input, tx, apply, cx, Timing::Every)
                        });
                    }));
                }
            }
        })
    }

    /// Batches of `size` items (the last may be short; see [`PipelineBuilder::drop_last`]).
    pub fn aggregate(self, size: usize) -> PipelineBuilder<Vec<T>> {
        self.aggregate_into(size, move || Items::new(size))
    }

    /// Batches of `size` items, as [`aggregate`](Self::aggregate) makes them, each built as its
    /// items arrive by a [`Collect`]or from `make` (one per shard): an image goes into its
    /// place in the batch buffer at once, not in a later pass over the whole batch.
    pub fn aggregate_into<C, M>(self, size: usize, make: M) -> PipelineBuilder<C::Batch>
    where
        C: Collect<T>,
        M: Fn() -> C + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let mut next = self.push_stage("aggregate", Kind::Aggregate, DEFAULT_BATCH_BUFFER, move |w, index| {
            let set = w.enter::<T>(index);
            let spec = w.specs[index].clone();
            w.hold(BATCH + size, set.len());
            w.units_per_item *= size.max(1) as u64;
            w.hold(spec.buffer + 1, set.len());
            // The merge tree of incomplete batches: one ring from each position to its parent.
            let mut tree: Vec<Prepared<C::Slot>> =
                set.iter().map(|_| Prepared { children: Vec::new(), parent: None }).collect();
            for pos in 1..set.len() {
                let (tx, rx) = channel::bounded::<Vec<Envelope<C::Slot>>>(2);
                tree[pos].parent = Some(tx);
                tree[tree_parent(pos)].children.push(rx);
            }
            for (&j, leftovers) in set.iter().zip(tree) {
                let (buffer, drop_last, make) = (spec.buffer, spec.drop_last, make.clone());
                w.steps[j].push(Box::new(move |sb: &mut ShardBuild| {
                    let leftovers = leftovers.connect();
                    sb.add_worker(index, buffer, |input, tx, cx| {
                        aggregate_worker(input, tx, make(), size, drop_last, leftovers, cx)
                    });
                }));
            }
        });
        next.last().batch = Some(size);
        next
    }

    /// A custom aggregator, one instance per shard made by `make` (SPDL's accumulate/flush).
    pub fn aggregate_with<A, M>(self, make: M) -> PipelineBuilder<A::Output>
    where
        A: Aggregator<T> + 'static,
        A::Output: Send + 'static,
        M: Fn() -> A + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        self.push_stage("aggregate", Kind::Aggregate, DEFAULT_BATCH_BUFFER, move |w, index| {
            let set = w.enter::<T>(index);
            let buffer = w.specs[index].buffer;
            w.hold(BATCH + buffer + 1, set.len());
            for &j in &set {
                let make = make.clone();
                w.steps[j].push(Box::new(move |sb: &mut ShardBuild| {
                    sb.add_worker(index, buffer, |input, tx, cx| custom_aggregate_worker(input, tx, make(), cx));
                }));
            }
        })
    }

    /// Splits each item (a batch) back into its elements.
    pub fn disaggregate<U>(self) -> PipelineBuilder<U>
    where
        T: IntoIterator<Item = U>,
        U: Send + 'static,
    {
        self.inline(
            "disaggregate",
            |x: T, out| {
                out.extend(x);
                Ok(())
            },
            Timing::Sampled,
        )
    }

    pub(super) fn last(&mut self) -> &mut StageSpec {
        if self.last == NO_STAGE {
            // An option inside a path before the path's first stage: refused at build.
            return self.scratch.get_or_insert_with(|| Box::new(StageSpec::new(String::new(), Kind::Inline, 1)));
        }
        &mut self.specs[self.last]
    }

    /// Names the stage added last (reports and errors use it).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.last().name = name.into();
        self
    }

    /// Tasks in flight for the stage added last, in total over all shards (split evenly, at
    /// least one per shard). Inline ops run one call at a time per shard whatever this says.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.last().concurrency = n;
        self
    }

    /// The stage added last emits in input order (default: completion order).
    pub fn ordered(mut self) -> Self {
        self.last().ordered = true;
        self
    }

    /// Failures the stage added last may have; one more cancels it and everything upstream.
    pub fn max_failures(mut self, n: u64) -> Self {
        self.last().max_failures = Some(n);
        self
    }

    /// The fraction of its calls the stage added last may fail (`0.1`: 10%), judged once it has
    /// had 100 calls (SPDL's probation); a failure that takes it above cancels it and everything
    /// upstream. Calls count when an item arrives, so early on the rate reads low, never high.
    /// Combines with [`max_failures`](Self::max_failures): whichever trips first.
    /// Refused at build unless strictly between 0 and 1.
    pub fn max_failure_rate(mut self, rate: f64) -> Self {
        self.last().max_failure_rate = Some(rate);
        self
    }

    /// Capacity of the queue after the stage added last, per shard (default 64 items; 2 after
    /// `aggregate`; the source's ring to each shard holds 1024).
    pub fn buffer(mut self, n: usize) -> Self {
        self.last().buffer = n;
        self
    }

    /// Open loop: the source emits `items_per_sec` items per second on a fixed schedule, whatever
    /// the pipeline does, and each item's latency counts from its scheduled emission time, so a
    /// stall shows in the latency of every item it delayed (no coordinated omission, as wrk2
    /// does it). Applies to the source (call it right after `source`); non-positive rates are
    /// refused at build.
    pub fn rate(mut self, items_per_sec: f64) -> Self {
        self.specs[0].rate = Some(items_per_sec);
        self
    }

    /// Runs the source's iterator (and, for [`source_epochs`](super::source_epochs), the function that makes each
    /// pass) on a thread of its own, `pipeline-source`, instead of on shard 0's event loop. For
    /// iterators that block — on I/O, a lock, or the consumer itself (a token it hands back) —
    /// which would otherwise stall every stage shard 0 runs (on a single loop: every stage).
    /// Costs one more thread and a hand-off per item: a trivial 1M-item pipeline took 240 ms
    /// instead of 83 ms on this 2-vCPU VM, so keep fast iterators on the shard. Stopping the
    /// pipeline stops the source at once; a thread stuck inside the iterator is not waited for
    /// (it ends when the iterator returns). Applies to the source (call it right after
    /// `source`).
    pub fn source_thread(mut self) -> Self {
        self.specs[0].threaded = true;
        self
    }

    /// Runs the stage added last only on these shards (a stateful writer on shard 0, say);
    /// items move there and back through rings. Ignored on a single loop, where every stage
    /// shares the one loop.
    pub fn on_shards(mut self, shards: impl IntoIterator<Item = usize>) -> Self {
        self.last().shards = Some(shards.into_iter().collect());
        self
    }

    /// After `aggregate(n)`: drop the incomplete last batch (its items are counted as left over).
    pub fn drop_last(mut self) -> Self {
        self.last().drop_last = true;
        self
    }

    /// Failures the whole pipeline may have; one more cancels the stage where it happened and
    /// everything upstream of it.
    pub fn max_failures_total(mut self, n: u64) -> Self {
        self.max_failures_total = Some(n);
        self
    }

    /// The fraction of source items that may fail, anywhere in the pipeline (a failed batch
    /// counts every item in it), judged once the source has produced 100; a failure that takes
    /// the pipeline above it cancels the stage where it happened and everything upstream.
    /// Items still in flight count as not failed, so early on the rate reads low, never high.
    /// Refused at build unless strictly between 0 and 1.
    pub fn max_failure_rate_total(mut self, rate: f64) -> Self {
        self.max_failure_rate_total = Some(rate);
        self
    }

    /// Capacity of each shard's ring to the consumer (SPDL's `add_sink(buffer_size)`; default 3,
    /// rounded up to a power of two).
    pub fn sink(mut self, buffer: usize) -> Self {
        self.sink_buffer = buffer;
        self
    }

    /// Records a timeline of every shard (task turns, idle periods, wakes) and offload thread
    /// (jobs), handed back in [`Report::trace`]; `shardpipe --trace` writes it as a Chrome trace.
    pub fn trace(mut self) -> Self {
        self.trace = true;
        self
    }

    /// Runs user code around every op call (SPDL's `task_hook_factory`): for each stage that
    /// calls an op (inline, async and blocking ops; not the source, batching or routers) on each
    /// shard, `factory` is asked once for a [`TaskHook`], or `None` to leave that stage alone.
    /// The hook lives on the shard's thread (it need not be `Send`), sees each call's time and
    /// outcome, and is dropped when the stage ends there. Inline ops are then timed on every call
    /// (two clock readings, ~40 ns here) instead of one in 16. `profile` does not run hooks.
    pub fn task_hook<H, F>(mut self, factory: F) -> Self
    where
        H: TaskHook + 'static,
        F: Fn(&HookContext<'_>) -> Option<H> + Send + Sync + 'static,
    {
        self.task_hook =
            Some(Arc::new(move |cx: &HookContext<'_>| factory(cx).map(|h| Box::new(h) as Box<dyn TaskHook>)));
        self
    }

    /// Calls `callback` with a report every `interval` while the pipeline runs (counters so far;
    /// shard usage is in the final report only), and once more with the final report. It runs
    /// on its own thread, so a slow callback stalls nothing.
    pub fn report_every(mut self, interval: Duration, callback: impl FnMut(&Report) + Send + 'static) -> Self {
        self.report_every = Some((interval, Box::new(callback)));
        self
    }
}

/// Lays out a task stage on `set`: `concurrency` tasks in flight in total, split over the
/// shards, in input order when the stage is `ordered`.
fn wire_tasks<T, U, F, Fut>(w: &mut Wiring, index: usize, set: &[usize], op: Arc<F>)
where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<U>, String>> + 'static,
{
    let spec = w.specs[index].clone();
    w.hold(spec.buffer + w.concurrency_on(index, 0, set.len()) + 1, set.len());
    for (pos, &j) in set.iter().enumerate() {
        let limit = w.concurrency_on(index, pos, set.len());
        let (op, buffer, ordered) = (op.clone(), spec.buffer, spec.ordered);
        w.steps[j].push(Box::new(move |sb: &mut ShardBuild| {
            sb.add_worker(index, buffer, |input, tx, cx| tasks_worker(input, tx, op, limit, ordered, cx));
        }));
    }
}

/// `aggregate`'s merge-tree rings for one shard, before they are bound to it.
struct Prepared<T> {
    children: Vec<SharedReceiver<Vec<Envelope<T>>>>,
    parent: Option<channel::SharedSender<Vec<Envelope<T>>>>,
}

impl<T: Send + 'static> Prepared<T> {
    fn connect(self) -> Leftovers<T> {
        Leftovers {
            children: self.children.into_iter().map(SharedReceiver::connect).collect(),
            parent: self.parent.map(channel::SharedSender::connect),
        }
    }
}

fn push_outcome<R: Outcome>(r: R, out: &mut Vec<R::Item>) -> Result<(), String> {
    if let Some(v) = r.into_outcome()? {
        out.push(v);
    }
    Ok(())
}
