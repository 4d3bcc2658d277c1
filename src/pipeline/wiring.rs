//! Turning a builder's stage list into tasks: what is prepared on the building thread (rings
//! between shards, the failure policy) and what each shard builds for itself (local queues,
//! workers), in stage order.
//!
//! Each stage adds one [`Step`] per shard. On shard `j` the steps run in order inside one task:
//! a step takes the previous stage's output from [`ShardBuild`], spawns its worker, and leaves
//! its own output queue there for the next step.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::control::Control;
use super::offload::Offload;
use super::report::StageStats;
use super::stage::{Inbound, StageCx};
use crate::runtime::{JoinHandle, spawn_local};

/// Output queue capacity of a stage unless set with `buffer(n)`.
pub(crate) const DEFAULT_BUFFER: usize = 64;
/// Output queue capacity after `aggregate` (batches are large).
pub(crate) const DEFAULT_BATCH_BUFFER: usize = 2;

/// A stage's options.
#[derive(Debug, Clone)]
pub(crate) struct StageSpec {
    pub(crate) name: String,
    pub(crate) concurrency: usize,
    pub(crate) ordered: bool,
    pub(crate) max_failures: Option<u64>,
    pub(crate) buffer: usize,
    pub(crate) drop_last: bool,
    /// `Some(n)` for `aggregate(n)`.
    pub(crate) batch: Option<usize>,
}

impl StageSpec {
    pub(crate) fn new(name: String, buffer: usize) -> Self {
        Self { name, concurrency: 1, ordered: false, max_failures: None, buffer, drop_last: false, batch: None }
    }
}

/// What one shard runs for one stage.
pub(crate) type Step = Box<dyn FnOnce(&mut ShardBuild) + Send>;

/// Prepared on the building thread.
pub(crate) struct Wiring {
    pub(crate) shards: usize,
    pub(crate) offload: Option<Arc<Offload>>,
    pub(crate) specs: Vec<StageSpec>,
    pub(crate) steps: Vec<Vec<Step>>,
    /// Upper bound on source items inside the pipeline at once (queues, batches, tasks).
    pub(crate) bound: u64,
    /// Source items one item holds at the current point of the chain (batches hold many).
    pub(crate) units_per_item: u64,
}

impl Wiring {
    /// Tasks of stage `index` in flight on shard `shard`: the stage's total split over the
    /// shards, at least 1 each.
    pub(crate) fn concurrency_on(&self, index: usize, shard: usize) -> usize {
        let c = self.specs[index].concurrency;
        (c / self.shards + usize::from(shard < c % self.shards)).max(1)
    }

    /// Adds `items` held at this point of the chain (on every shard) to the bound.
    pub(crate) fn hold(&mut self, items_per_shard: usize) {
        self.bound += items_per_shard as u64 * self.units_per_item * self.shards as u64;
    }
}

/// A shard building its part of the pipeline.
pub(crate) struct ShardBuild {
    control: Arc<Control>,
    upstream: Option<Box<dyn Any>>,
    tasks: Vec<JoinHandle<()>>,
    stats: Vec<Option<Rc<RefCell<StageStats>>>>,
}

impl ShardBuild {
    pub(crate) fn new(control: Arc<Control>) -> Self {
        Self { control, upstream: None, tasks: Vec::new(), stats: Vec::new() }
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
        if self.stats.len() <= index {
            self.stats.resize(index + 1, None);
        }
        let stats = self.stats[index].get_or_insert_with(Default::default).clone();
        StageCx { index, control: self.control.clone(), stats }
    }

    pub(crate) fn spawn(&mut self, fut: impl Future<Output = ()> + 'static) {
        self.tasks.push(spawn_local(fut));
    }

    /// Waits for every worker of this shard, then hands back its counters (by stage index).
    pub(crate) async fn finish(self, stages: usize) -> Vec<StageStats> {
        for t in self.tasks {
            // A worker that panicked (a bug, not an op failure) still leaves its counters.
            let _ = t.await;
        }
        let take =
            |s: Rc<RefCell<StageStats>>| Rc::try_unwrap(s).map_or_else(|s| s.borrow().clone(), RefCell::into_inner);
        let mut out: Vec<StageStats> = self.stats.into_iter().map(|s| s.map(take).unwrap_or_default()).collect();
        out.resize(stages, StageStats::default());
        out
    }
}
