//! Batching: `aggregate(n)`, `aggregate_into(n, …)` and custom aggregators.
//!
//! Each shard batches what it holds: every item goes to the shard's [`Collect`]or as it arrives
//! (for `aggregate(n)` a `Vec`; for image batches, a buffer the image is copied into at once),
//! and a batch leaves when its `n`-th item is in. The shards' incomplete last batches are merged
//! at the end of each epoch and of the stream, so at most one batch per epoch is short (or, under
//! `drop_last`, fewer than `n` items are left over), as on a single loop.
//!
//! The merge runs up a binary tree of the stage's shards (position `p` hands its rest to
//! `(p - 1) / 2`): each shard takes its children's rests, batches them with its own, emits the
//! full batches it made and hands what is still short to its parent; the root (the first shard)
//! emits the one short batch. A shard hands its rest on before it emits, so the merge takes one
//! hop per tree level, and no shard collates more than a few merged batches. (Gathering every
//! rest on one shard made it collate up to `shards - 1` batches alone while the others idled:
//! 5–13 ms of ~65 per 512 images on 16 shards.)

use std::marker::PhantomData;
use std::mem;

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::envelope::{Envelope, Msg, Stamps};
use super::queue::LocalSender;
use super::stage::{BATCH, Inbound, StageCx, charge, forward_marker};
use crate::channel::{Receiver, Sender};
use crate::runtime::task_panic_message;

/// A custom aggregator (SPDL's accumulate/flush): one instance per shard.
pub trait Aggregator<T> {
    /// What it emits.
    type Output;
    /// Takes one item; returns an output when one is complete.
    fn push(&mut self, item: T) -> Option<Self::Output>;
    /// The end of the stream: returns what is left, if anything.
    fn flush(&mut self) -> Option<Self::Output>;
}

/// Builds the batches of [`aggregate_into`](crate::pipeline::PipelineBuilder::aggregate_into)
/// as their items arrive, one collector per shard: each item goes into its place in the batch
/// at once (while it is still in the cache), and the batch is ready when its last item is in.
/// The stage counts items, stamps and failures, and merges the shards' incomplete batches
/// (handed over as slots) as [`aggregate`](crate::pipeline::PipelineBuilder::aggregate) does.
pub trait Collect<T>: 'static {
    /// A finished batch.
    type Batch: Send + 'static;
    /// One item as the batch holds it: how an incomplete batch's items move to another shard's
    /// collector at the end of an epoch.
    type Slot: Send + 'static;
    /// Puts `item` in the next place of the batch being built; an item the batch cannot take
    /// fails (counted as the stage's failure, with the message) and the batch goes on without it.
    fn push(&mut self, item: T) -> Result<(), String>;
    /// Puts an item that another collector of this stage held in the next place.
    fn push_slot(&mut self, slot: Self::Slot) -> Result<(), String>;
    /// The batch of the items put in since the last `take` (at least one).
    fn take(&mut self) -> Self::Batch;
    /// The items put in since the last `take`, in order, as slots; the collector starts over.
    fn rest(&mut self) -> Vec<Self::Slot>;
}

/// `aggregate(n)`'s collector: the items themselves, in a `Vec`.
pub(crate) struct Items<T> {
    size: usize,
    items: Vec<T>,
}

impl<T> Items<T> {
    pub(crate) fn new(size: usize) -> Self {
        Self { size, items: Vec::with_capacity(size) }
    }
}

impl<T: Send + 'static> Collect<T> for Items<T> {
    type Batch = Vec<T>;
    type Slot = T;

    fn push(&mut self, item: T) -> Result<(), String> {
        self.items.push(item);
        Ok(())
    }

    fn push_slot(&mut self, slot: T) -> Result<(), String> {
        self.push(slot)
    }

    fn take(&mut self) -> Vec<T> {
        mem::replace(&mut self.items, Vec::with_capacity(self.size))
    }

    fn rest(&mut self) -> Vec<T> {
        mem::take(&mut self.items)
    }
}

/// A shard's place in the merge tree of incomplete batches: one message on each edge per epoch
/// end and per stream end (empty when nothing is left), so each shard knows when it has all.
pub(crate) struct Leftovers<S: 'static> {
    /// The rests of this shard's children in the tree (none on a leaf, or when alone).
    pub(crate) children: Vec<Receiver<Vec<Envelope<S>>>>,
    /// Where this shard's rest goes, its children's merged in; `None` on the root, which emits
    /// the short batch (or, under `drop_last`, counts it as left over).
    pub(crate) parent: Option<Sender<Vec<Envelope<S>>>>,
}

/// The parent of position `pos` (> 0) in the merge tree.
pub(crate) const fn tree_parent(pos: usize) -> usize {
    (pos - 1) / 2
}

/// Batches of exactly `size`, in arrival order, built by a collector; the stamps of the items
/// in the batch being built are kept beside it, one entry per item.
struct Batcher<T, C> {
    size: usize,
    collect: C,
    stamps: Vec<Stamps>,
    item: PhantomData<fn(T)>,
}

impl<T, C: Collect<T>> Batcher<T, C> {
    fn new(size: usize, collect: C) -> Self {
        Self { size, collect, stamps: Vec::with_capacity(size), item: PhantomData }
    }

    /// Puts one item (`put` hands it to the collector); returns a full batch. An item the
    /// collector refuses, or whose collector panics, fails alone.
    fn put<X>(
        &mut self,
        env: Envelope<X>,
        put: impl FnOnce(&mut C, X) -> Result<(), String>,
        cx: &StageCx,
    ) -> Option<Envelope<C::Batch>> {
        let Envelope { value, stamps } = env;
        let outcome = catch_unwind(AssertUnwindSafe(|| put(&mut self.collect, value)))
            .unwrap_or_else(|p| Err(format!("panicked: {}", task_panic_message(&*p))));
        if let Err(msg) = outcome {
            cx.fail(stamps.units(), msg);
            return None;
        }
        self.stamps.push(stamps);
        (self.stamps.len() == self.size).then(|| self.take())
    }

    fn take(&mut self) -> Envelope<C::Batch> {
        // One stamp per item is the common case: sized for it, grown for batches of batches.
        let mut all = Vec::with_capacity(self.stamps.len());
        for s in self.stamps.drain(..) {
            s.for_each(|x| all.push(x));
        }
        Envelope { value: self.collect.take(), stamps: Stamps::from_vec(all) }
    }

    /// The incomplete batch's items as slots with their stamps; the batcher starts over.
    fn rest(&mut self) -> Vec<Envelope<C::Slot>> {
        let slots = if self.stamps.is_empty() { Vec::new() } else { self.collect.rest() };
        slots.into_iter().zip(self.stamps.drain(..)).map(|(value, stamps)| Envelope { value, stamps }).collect()
    }

    fn pending_units(&self) -> u64 {
        self.stamps.iter().map(Stamps::units).sum()
    }
}

/// The worker of `aggregate(size)` and `aggregate_into(size, …)`.
pub(crate) async fn aggregate_worker<T: Send + 'static, C: Collect<T>>(
    mut input: Inbound<T>,
    output: LocalSender<Msg<C::Batch>>,
    collect: C,
    size: usize,
    drop_last: bool,
    leftovers: Leftovers<C::Slot>,
    cx: StageCx,
) {
    let mut batcher = Batcher::new(size, collect);
    let mut buf = Vec::with_capacity(BATCH);
    while let Some((n, discarding)) = cx.next_batch(&mut input, &mut buf).await {
        for msg in buf.drain(..) {
            match msg {
                Msg::Item(env) => {
                    if discarding {
                        cx.discard(env.units());
                    } else if let Some(batch) = batcher.put(env, C::push, &cx) {
                        cx.emit(&output, batch).await;
                    }
                }
                // Order markers end here: an ordered pipeline aggregates on one shard, and
                // whatever deals its batches out makes chunks of its own.
                Msg::Chunk => cx.unreceived_marker(),
                Msg::Epoch(e) => {
                    cx.unreceived_marker();
                    flush(&mut batcher, drop_last, &leftovers, &output, &cx).await;
                    forward_marker(&output, Msg::Epoch(e)).await;
                }
            }
        }
        charge(n).await;
    }
    flush(&mut batcher, drop_last, &leftovers, &output, &cx).await;
}

/// The end of an epoch or of the stream: merge the children's incomplete batches into this
/// shard's, hand what is still short to the parent, then emit the full batches; the root emits
/// (or under `drop_last` counts as left over) what is short of a batch.
async fn flush<T, C: Collect<T>>(
    batcher: &mut Batcher<T, C>,
    drop_last: bool,
    leftovers: &Leftovers<C::Slot>,
    output: &LocalSender<Msg<C::Batch>>,
    cx: &StageCx,
) {
    let mut full = Vec::new();
    for rx in &leftovers.children {
        for env in rx.recv().await.unwrap_or_default() {
            if cx.discarding() {
                cx.discard(env.units());
            } else if let Some(batch) = batcher.put(env, C::push_slot, cx) {
                full.push(batch);
            }
        }
    }
    if let Some(tx) = &leftovers.parent {
        // Before emitting: an emit may wait for this shard's own collation, and the parent (and
        // its ancestors) wait for this rest.
        let rest = batcher.rest();
        if let Err(e) = tx.send(rest).await {
            cx.discard(e.0.iter().map(Envelope::units).sum());
        }
    }
    for batch in full {
        cx.emit(output, batch).await;
    }
    if leftovers.parent.is_some() || batcher.stamps.is_empty() {
        return;
    }
    if cx.discarding() {
        cx.discard(batcher.pending_units());
        batcher.rest();
    } else if drop_last {
        cx.stats.borrow_mut().left_over_units += batcher.pending_units();
        batcher.rest();
    } else {
        let last = batcher.take();
        cx.emit(output, last).await;
    }
}

/// The worker of a custom aggregator: each output carries the stamps of every item pushed
/// since the previous output; the aggregator is flushed at every epoch end and at the end.
pub(crate) async fn custom_aggregate_worker<T: Send + 'static, A: Aggregator<T>>(
    mut input: Inbound<T>,
    output: LocalSender<Msg<A::Output>>,
    mut agg: A,
    cx: StageCx,
) {
    let mut buf = Vec::with_capacity(BATCH);
    let mut stamps = Stamps::None;
    while let Some((n, discarding)) = cx.next_batch(&mut input, &mut buf).await {
        for msg in buf.drain(..) {
            let env = match msg {
                Msg::Item(env) => env,
                Msg::Chunk => {
                    cx.unreceived_marker();
                    continue;
                }
                Msg::Epoch(e) => {
                    cx.unreceived_marker();
                    flush_custom(&mut agg, &mut stamps, &output, &cx).await;
                    forward_marker(&output, Msg::Epoch(e)).await;
                    continue;
                }
            };
            if discarding {
                cx.discard(env.units());
                continue;
            }
            let units = env.units();
            match catch_unwind(AssertUnwindSafe(|| agg.push(env.value))) {
                Ok(out) => {
                    stamps.absorb(env.stamps);
                    if let Some(value) = out {
                        cx.emit(&output, Envelope { value, stamps: mem::take(&mut stamps) }).await;
                    }
                }
                Err(p) => cx.fail(units, format!("panicked: {}", task_panic_message(&*p))),
            }
        }
        charge(n).await;
    }
    flush_custom(&mut agg, &mut stamps, &output, &cx).await;
}

async fn flush_custom<T, A: Aggregator<T>>(
    agg: &mut A,
    stamps: &mut Stamps,
    output: &LocalSender<Msg<A::Output>>,
    cx: &StageCx,
) {
    let stamps = mem::take(stamps);
    let units = stamps.units();
    if cx.discarding() {
        cx.discard(units);
        return;
    }
    match catch_unwind(AssertUnwindSafe(|| agg.flush())) {
        Ok(Some(value)) => {
            cx.emit(output, Envelope { value, stamps }).await;
        }
        Ok(None) => cx.stats.borrow_mut().left_over_units += units,
        Err(p) => cx.fail(units, format!("panicked in flush: {}", task_panic_message(&*p))),
    }
}
