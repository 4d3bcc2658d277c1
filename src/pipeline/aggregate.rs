//! Batching: `aggregate(n)` and custom aggregators.
//!
//! Each shard batches what it holds. For `aggregate(n)` the shards' incomplete last batches are
//! merged on shard 0 at the end of the stream, so at most one batch in the whole run is short
//! (or, under `drop_last`, fewer than `n` items are left over in total), as on a single loop.

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

/// Where a shard's incomplete last batch goes at the end of each epoch and of the stream: one
/// message per shard each time (empty when nothing is left), so shard 0 knows when it has all.
pub(crate) enum Leftovers<T: 'static> {
    /// Alone (one shard): nothing to merge.
    Alone,
    /// Shards 1..: hand it to shard 0.
    SendTo(Sender<Vec<Envelope<T>>>),
    /// Shard 0: merge every other shard's into its own.
    Gather(Vec<Receiver<Vec<Envelope<T>>>>),
}

/// Batches of exactly `size`, in arrival order.
struct Batcher<T> {
    size: usize,
    pending: Vec<Envelope<T>>,
}

impl<T> Batcher<T> {
    /// Adds one item; returns a full batch.
    fn push(&mut self, env: Envelope<T>) -> Option<Envelope<Vec<T>>> {
        self.pending.push(env);
        (self.pending.len() == self.size).then(|| self.take())
    }

    fn take(&mut self) -> Envelope<Vec<T>> {
        let pending = mem::replace(&mut self.pending, Vec::with_capacity(self.size));
        let mut value = Vec::with_capacity(pending.len());
        // One stamp per item is the common case: sized for it, grown for batches of batches.
        let mut stamps = Vec::with_capacity(pending.len());
        for e in pending {
            value.push(e.value);
            e.stamps.for_each(|s| stamps.push(s));
        }
        Envelope { value, stamps: Stamps::from_vec(stamps) }
    }

    fn pending_units(&self) -> u64 {
        self.pending.iter().map(Envelope::units).sum()
    }
}

/// The worker of `aggregate(size)`.
pub(crate) async fn aggregate_worker<T: Send + 'static>(
    mut input: Inbound<T>,
    output: LocalSender<Msg<Vec<T>>>,
    size: usize,
    drop_last: bool,
    leftovers: Leftovers<T>,
    cx: StageCx,
) {
    let mut batcher = Batcher { size, pending: Vec::with_capacity(size) };
    let mut buf = Vec::with_capacity(BATCH);
    while let Some((n, discarding)) = cx.next_batch(&mut input, &mut buf).await {
        for msg in buf.drain(..) {
            match msg {
                Msg::Item(env) => {
                    if discarding {
                        cx.discard(env.units());
                    } else if let Some(batch) = batcher.push(env) {
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

/// The end of an epoch or of the stream: merge the shards' incomplete batches on shard 0, then
/// emit (or under `drop_last` count as left over) what is still short of a batch.
async fn flush<T: Send + 'static>(
    batcher: &mut Batcher<T>,
    drop_last: bool,
    leftovers: &Leftovers<T>,
    output: &LocalSender<Msg<Vec<T>>>,
    cx: &StageCx,
) {
    match leftovers {
        Leftovers::SendTo(tx) => {
            let rest = mem::take(&mut batcher.pending);
            if let Err(e) = tx.send(rest).await {
                cx.discard(e.0.iter().map(Envelope::units).sum());
            }
            return;
        }
        Leftovers::Gather(rxs) => {
            for rx in rxs {
                for env in rx.recv().await.unwrap_or_default() {
                    if cx.discarding() {
                        cx.discard(env.units());
                    } else if let Some(batch) = batcher.push(env) {
                        cx.emit(output, batch).await;
                    }
                }
            }
        }
        Leftovers::Alone => {}
    }
    if batcher.pending.is_empty() {
        return;
    }
    if cx.discarding() {
        cx.discard(batcher.pending_units());
        batcher.pending.clear();
    } else if drop_last {
        cx.stats.borrow_mut().left_over_units += batcher.pending_units();
        batcher.pending.clear();
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
