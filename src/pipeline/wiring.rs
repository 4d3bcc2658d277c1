//! Turning a builder's stage list into tasks: what is prepared on the building thread (rings
//! between shard sets, the failure policy) and what each shard builds for itself (local queues,
//! workers), in stage order.
//!
//! Each stage adds one [`Step`] per shard of its set. On shard `j` the steps run in order inside
//! one task: a step takes the previous stage's output from [`ShardBuild`], spawns its worker,
//! and leaves its own output queue there for the next step. Where the next stage runs on other
//! shards, an exchange (a dealer on each upstream shard, a merge on each downstream one) carries
//! the stream across.

use std::any::Any;
use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use super::control::Control;
use super::envelope::Msg;
use super::exchange::{Dealer, Merge};
use super::hook::Hook;
use super::offload::Offload;
use super::progress::Snapshots;
use super::queue::{LocalSender, local_queue};
use super::report::StageStats;
use super::source::deal_task;
use super::stage::{Inbound, StageCx};
use crate::channel::{self, SharedReceiver, SharedSender};
use crate::runtime::time::sleep;
use crate::runtime::{JoinHandle, spawn_local};

/// Output queue capacity of a stage unless set with `buffer(n)`.
pub(crate) const DEFAULT_BUFFER: usize = 64;
/// Output queue capacity after `aggregate` (batches are large).
pub(crate) const DEFAULT_BATCH_BUFFER: usize = 2;
/// Capacity of each ring of an exchange between shard sets.
pub(crate) const EXCHANGE_RING: usize = 256;

/// What a stage does, as far as placement and ordering care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Source,
    /// One call at a time in input order (map, pipe, pipe_iter, disaggregate).
    Inline,
    /// Tasks that may finish out of order unless `ordered`.
    Tasks,
    /// `pipe_blocking`: tasks on a single loop (offloaded), inline on shards.
    Blocking,
    Aggregate,
    /// `path_variants`' router: sends each item down one of its paths.
    Route,
    Sink,
}

/// A stage's options.
#[derive(Debug, Clone)]
pub(crate) struct StageSpec {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) concurrency: usize,
    pub(crate) ordered: bool,
    pub(crate) max_failures: Option<u64>,
    /// `max_failure_rate(r)`: the fraction of calls that may fail.
    pub(crate) max_failure_rate: Option<f64>,
    pub(crate) buffer: usize,
    pub(crate) drop_last: bool,
    /// `Some(n)` for `aggregate(n)`.
    pub(crate) batch: Option<usize>,
    /// `on_shards(..)`: the shards this stage runs on (default: all).
    pub(crate) shards: Option<Vec<usize>>,
    /// The source only: emit at this many items per second (open loop).
    pub(crate) rate: Option<f64>,
    /// The source only: run the user's iterator on a thread of its own.
    pub(crate) threaded: bool,
    /// The source only: every shard makes its own items (`source_indexed`).
    pub(crate) split: bool,
    /// The outputs this stage reads, as (stage, output): the previous stage's (output 0) in a
    /// chain; a router's output `k` for the first stage of its path `k`; the last stage of
    /// every path after `path_variants`.
    pub(crate) parents: Vec<(usize, usize)>,
    /// A router: how many paths it has.
    pub(crate) paths: usize,
    /// A stage inside one of `path_variants`' paths.
    pub(crate) in_path: bool,
}

impl StageSpec {
    pub(crate) fn new(name: String, kind: Kind, buffer: usize) -> Self {
        Self {
            name,
            kind,
            concurrency: 1,
            ordered: false,
            max_failures: None,
            max_failure_rate: None,
            buffer,
            drop_last: false,
            batch: None,
            shards: None,
            rate: None,
            threaded: false,
            split: false,
            parents: Vec::new(),
            paths: 0,
            in_path: false,
        }
    }
}

/// What one shard runs for one stage.
pub(crate) type Step = Box<dyn FnOnce(&mut ShardBuild) + Send>;

/// Places the source once the first stage's shards are known.
pub(crate) type PlaceSource = Box<dyn FnOnce(&mut Wiring, &[usize]) + Send>;

/// Prepared on the building thread.
pub(crate) struct Wiring {
    pub(crate) shards: usize,
    pub(crate) offload: Option<Arc<Offload>>,
    pub(crate) specs: Vec<StageSpec>,
    pub(crate) steps: Vec<Vec<Step>>,
    /// The pipeline keeps source order end to end (see `exchange`).
    pub(crate) ordered: bool,
    /// The source, until the first stage says where its items go.
    pub(crate) source: Option<PlaceSource>,
    /// `source_thread()`, `merge_sources`: the threads running the user's iterators, or why
    /// they did not start.
    pub(crate) source_threads: Vec<std::io::Result<std::thread::JoinHandle<()>>>,
    /// The shards holding the chain's output so far.
    pub(crate) current: Vec<usize>,
    /// Upper bound on source items inside the pipeline at once (queues, batches, tasks).
    pub(crate) bound: u64,
    /// Source items one item holds at the current point of the chain (batches hold many).
    pub(crate) units_per_item: u64,
}

impl Wiring {
    /// The shards stage `index` runs on.
    pub(crate) fn set_of(&self, index: usize) -> Vec<usize> {
        let spec = &self.specs[index];
        if self.shards == 1 {
            return vec![0];
        }
        match &spec.shards {
            // The hand-off to the consumer happens wherever the last stage ran.
            None if spec.kind == Kind::Sink && !self.current.is_empty() => self.current.clone(),
            Some(s) => s.clone(),
            // An ordered pipeline batches on one shard, so batches hold consecutive items.
            None if spec.kind == Kind::Aggregate && self.ordered => vec![self.current.first().copied().unwrap_or(0)],
            None => (0..self.shards).collect(),
        }
    }

    /// Tasks of stage `index` in flight on the `pos`-th of its `of` shards: the stage's total
    /// split evenly, at least 1 each.
    pub(crate) fn concurrency_on(&self, index: usize, pos: usize, of: usize) -> usize {
        let c = self.specs[index].concurrency;
        (c / of + usize::from(pos < c % of)).max(1)
    }

    /// Adds `items` held at this point of the chain, on each of `shards` shards, to the bound.
    pub(crate) fn hold(&mut self, items_per_shard: usize, shards: usize) {
        self.bound += items_per_shard as u64 * self.units_per_item * shards as u64;
    }

    /// Brings the chain's output (items of type `T`) to the shards of stage `index` and returns
    /// them: places the source there, or adds an exchange when they differ from where the
    /// output is now.
    pub(crate) fn enter<T: Send + 'static>(&mut self, index: usize) -> Vec<usize> {
        let set = self.set_of(index);
        if let Some(place) = self.source.take() {
            place(self, &set);
        } else if self.current != set {
            self.exchange::<T>(&set, index);
        }
        self.current = set.clone();
        set
    }

    /// Rings from every shard of `self.current` to every shard of `to`: a dealer on each
    /// upstream shard, a merge on each downstream one.
    fn exchange<T: Send + 'static>(&mut self, to: &[usize], next_index: usize) {
        let from = self.current.clone();
        let ordered = self.ordered;
        let mut outs: Vec<Vec<SharedSender<Msg<T>>>> = from.iter().map(|_| Vec::new()).collect();
        let mut ins: Vec<Vec<SharedReceiver<Msg<T>>>> = to.iter().map(|_| Vec::new()).collect();
        for out in &mut outs {
            for inn in &mut ins {
                let (tx, rx) = channel::bounded(EXCHANGE_RING);
                out.push(tx);
                inn.push(rx);
            }
        }
        self.hold(EXCHANGE_RING * to.len() + super::stage::BATCH, from.len());
        for (&f, targets) in from.iter().zip(outs) {
            self.steps[f].push(Box::new(move |sb: &mut ShardBuild| {
                let input = sb.take_upstream::<T>();
                let dealer = Dealer::new(targets.into_iter().map(SharedSender::connect).collect(), ordered, false);
                let cx = sb.stage(next_index);
                sb.spawn(deal_task(input, dealer, cx));
            }));
        }
        for (&t, rings) in to.iter().zip(ins) {
            self.steps[t].push(Box::new(move |sb: &mut ShardBuild| sb.set_upstream(merged(rings, ordered))));
        }
    }
}

/// The input a shard reads from `rings` (one per upstream shard).
pub(crate) fn merged<T: Send + 'static>(rings: Vec<SharedReceiver<Msg<T>>>, ordered: bool) -> Inbound<T> {
    let mut rings: Vec<_> = rings.into_iter().map(SharedReceiver::connect).collect();
    if rings.len() == 1 {
        Inbound::Ring(rings.pop().expect("one ring"))
    } else {
        Inbound::Merge(Merge::new(rings, ordered))
    }
}

/// A shard building its part of the pipeline.
pub(crate) struct ShardBuild {
    control: Arc<Control>,
    upstream: Option<Box<dyn Any>>,
    /// `path_variants` being laid out on this shard, innermost last.
    paths: Vec<PathFrame>,
    tasks: Vec<JoinHandle<()>>,
    /// By stage index: what the stage has on this shard, once it is laid out here.
    stages: Vec<Option<StageSlot>>,
}

/// One stage's counters and `task_hook` hook on one shard, made when it is first laid out there.
struct StageSlot {
    stats: Rc<RefCell<StageStats>>,
    hook: Option<Hook>,
}

/// One `path_variants` on one shard while its paths are laid out.
struct PathFrame {
    /// Each path's input (the router's queue to it) until the path's first step takes it.
    inputs: Vec<Option<Box<dyn Any>>>,
    /// The outputs of the paths laid out so far.
    outputs: Vec<Box<dyn Any>>,
}

impl ShardBuild {
    pub(crate) fn new(control: Arc<Control>) -> Self {
        Self { control, upstream: None, paths: Vec::new(), tasks: Vec::new(), stages: Vec::new() }
    }

    /// A router's queues, one per path, become the inputs of its paths.
    pub(crate) fn open_paths<T: 'static>(&mut self, inputs: Vec<Inbound<T>>) {
        let inputs = inputs.into_iter().map(|i| Some(Box::new(i) as Box<dyn Any>)).collect();
        self.paths.push(PathFrame { inputs, outputs: Vec::new() });
    }

    /// The next steps lay out path `k` of the innermost open `path_variants`.
    pub(crate) fn enter_path(&mut self, k: usize) {
        let frame = self.paths.last_mut().expect("a path follows its router");
        self.upstream = frame.inputs[k].take();
    }

    /// The path just laid out ends here: its output waits for the join.
    pub(crate) fn leave_path(&mut self) {
        let out = self.upstream.take().expect("a path has an output");
        self.paths.last_mut().expect("a path follows its router").outputs.push(out);
    }

    /// Every path is laid out: the next stage reads their outputs merged.
    pub(crate) fn join_paths<T: Send + 'static>(&mut self) {
        let frame = self.paths.pop().expect("a join follows its paths");
        let outputs = frame
            .outputs
            .into_iter()
            .map(|o| *o.downcast::<Inbound<T>>().expect("every path ends with the same item type"))
            .collect();
        self.set_upstream(Inbound::Join(Box::new(Merge::new(outputs, false))));
    }

    /// The previous stage's output on this shard.
    pub(crate) fn take_upstream<T: 'static>(&mut self) -> Inbound<T> {
        let up = self.upstream.take().expect("every stage follows the source");
        *up.downcast::<Inbound<T>>().expect("the builder's types line stages up")
    }

    pub(crate) fn set_upstream<T: 'static>(&mut self, input: Inbound<T>) {
        self.upstream = Some(Box::new(input));
    }

    /// Counters and control for stage `index` on this shard.
    pub(crate) fn stage(&mut self, index: usize) -> StageCx {
        if self.stages.len() <= index {
            self.stages.resize_with(index + 1, || None);
        }
        let control = &self.control;
        let slot = self.stages[index]
            .get_or_insert_with(|| StageSlot { stats: Default::default(), hook: control.make_hook(index) });
        let (stats, hook) = (slot.stats.clone(), slot.hook.clone());
        StageCx { index, control: self.control.clone(), stats, hook }
    }

    /// Spawns a stage's long-lived worker. The future is boxed so that every worker shares one
    /// task type: async-task's cell code is compiled once, not once per stage and closure (it was
    /// a third of a pipeline's LLVM IR), at the cost of one allocation per worker and a virtual
    /// call per poll.
    pub(crate) fn spawn(&mut self, fut: impl Future<Output = ()> + 'static) {
        let fut: Pin<Box<dyn Future<Output = ()>>> = Box::pin(fut);
        self.tasks.push(spawn_local(fut));
    }

    /// The step of every stage with a worker: the worker reads the previous stage's output and
    /// writes a new queue of `buffer` items, which becomes the next stage's input.
    pub(crate) fn add_worker<T, U, Fut>(
        &mut self,
        index: usize,
        buffer: usize,
        worker: impl FnOnce(Inbound<T>, LocalSender<Msg<U>>, StageCx) -> Fut,
    ) where
        T: 'static,
        U: 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let input = self.take_upstream::<T>();
        let cx = self.stage(index);
        let (tx, rx) = local_queue(buffer, Some(&cx.stats));
        self.spawn(worker(input, tx, cx));
        self.set_upstream(Inbound::Local(rx));
    }

    /// Copies of this shard's counters so far (by stage index).
    fn snapshot(&self, stages: usize) -> Vec<StageStats> {
        let mut out: Vec<StageStats> =
            self.stages.iter().map(|s| s.as_ref().map(|s| s.stats.borrow().clone()).unwrap_or_default()).collect();
        out.resize(stages, StageStats::default());
        out
    }

    /// Waits for every worker of this shard, then hands back its counters (by stage index).
    /// With `reporting`, copies the counters into the snapshots every interval meanwhile.
    pub(crate) async fn finish(
        mut self,
        stages: usize,
        reporting: Option<(Duration, Arc<Snapshots>, usize)>,
    ) -> Vec<StageStats> {
        let mut tasks = std::mem::take(&mut self.tasks);
        if let Some((every, snapshots, shard)) = reporting {
            let mut tick = Box::pin(sleep(every));
            loop {
                let all_done = poll_fn(|cx| {
                    // A worker that panicked (a bug, not an op failure) still leaves its counters.
                    tasks.retain_mut(|t| Pin::new(t).poll(cx).is_pending());
                    if tasks.is_empty() {
                        Poll::Ready(true)
                    } else if tick.as_mut().poll(cx).is_ready() {
                        Poll::Ready(false)
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                if all_done {
                    break;
                }
                snapshots.store_shard(shard, self.snapshot(stages));
                tick = Box::pin(sleep(every));
            }
        }
        for t in tasks {
            let _ = t.await;
        }
        let take =
            |s: Rc<RefCell<StageStats>>| Rc::try_unwrap(s).map_or_else(|s| s.borrow().clone(), RefCell::into_inner);
        let mut out: Vec<StageStats> =
            self.stages.into_iter().map(|s| s.map(|s| take(s.stats)).unwrap_or_default()).collect();
        out.resize(stages, StageStats::default());
        out
    }
}
