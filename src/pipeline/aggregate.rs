//! Batching: `aggregate(n)` and custom aggregators.
//!
//! Each shard batches what it holds. For `aggregate(n)` the shards' incomplete last batches are
//! merged on shard 0 at the end of the stream, so at most one batch in the whole run is short
//! (or, under `drop_last`, fewer than `n` items are left over in total), as on a single loop.

use std::mem;

use super::envelope::{Envelope, Stamps};
use super::queue::LocalSender;
use super::stage::{BATCH, Inbound, StageCx, charge};
use crate::channel::{Receiver, Sender};

/// A custom aggregator (SPDL's accumulate/flush): one instance per shard.
pub trait Aggregator<T> {
    /// What it emits.
    type Output;
    /// Takes one item; returns an output when one is complete.
    fn push(&mut self, item: T) -> Option<Self::Output>;
    /// The end of the stream: returns what is left, if anything.
    fn flush(&mut self) -> Option<Self::Output>;
}

/// Where a shard's incomplete last batch goes at the end of the stream.
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
        let mut stamps = Stamps::None;
        let mut value = Vec::with_capacity(self.size);
        for e in mem::replace(&mut self.pending, Vec::with_capacity(self.size)) {
            value.push(e.value);
            stamps.absorb(e.stamps);
        }
        Envelope { value, stamps }
    }

    fn pending_units(&self) -> u64 {
        self.pending.iter().map(Envelope::units).sum()
    }
}

/// The worker of `aggregate(size)`.
pub(crate) async fn aggregate_worker<T: Send + 'static>(
    input: Inbound<T>,
    output: LocalSender<Envelope<Vec<T>>>,
    size: usize,
    drop_last: bool,
    leftovers: Leftovers<T>,
    cx: StageCx,
) {
    let mut batcher = Batcher { size, pending: Vec::with_capacity(size) };
    let mut buf = Vec::with_capacity(BATCH);
    loop {
        let n = input.recv_many(&mut buf, BATCH).await;
        if n == 0 {
            break;
        }
        cx.received(n);
        let discarding = cx.discarding();
        for env in buf.drain(..) {
            if discarding {
                cx.discard(env.units());
            } else if let Some(batch) = batcher.push(env) {
                cx.emit(&output, batch).await;
            }
        }
        charge(n).await;
    }
    match leftovers {
        Leftovers::SendTo(tx) => {
            let rest = mem::take(&mut batcher.pending);
            if !rest.is_empty()
                && let Err(e) = tx.send(rest).await
            {
                cx.discard(e.0.iter().map(Envelope::units).sum());
            }
            return;
        }
        Leftovers::Gather(rxs) => {
            for rx in rxs {
                while let Some(rest) = rx.recv().await {
                    for env in rest {
                        if cx.discarding() {
                            cx.discard(env.units());
                        } else if let Some(batch) = batcher.push(env) {
                            cx.emit(&output, batch).await;
                        }
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
    } else if drop_last {
        cx.stats.borrow_mut().left_over_units += batcher.pending_units();
    } else {
        let last = batcher.take();
        cx.emit(&output, last).await;
    }
}

/// The worker of a custom aggregator: each output carries the stamps of every item pushed
/// since the previous output.
pub(crate) async fn custom_aggregate_worker<T: Send + 'static, A: Aggregator<T>>(
    input: Inbound<T>,
    output: LocalSender<Envelope<A::Output>>,
    mut agg: A,
    cx: StageCx,
) {
    let mut buf = Vec::with_capacity(BATCH);
    let mut stamps = Stamps::None;
    loop {
        let n = input.recv_many(&mut buf, BATCH).await;
        if n == 0 {
            break;
        }
        cx.received(n);
        let discarding = cx.discarding();
        for env in buf.drain(..) {
            if discarding {
                cx.discard(env.units());
                continue;
            }
            let units = env.units();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| agg.push(env.value))) {
                Ok(out) => {
                    stamps.absorb(env.stamps);
                    if let Some(value) = out {
                        cx.emit(&output, Envelope { value, stamps: mem::take(&mut stamps) }).await;
                    }
                }
                Err(p) => cx.fail(units, format!("panicked: {}", crate::runtime::task_panic_message(&*p))),
            }
        }
        charge(n).await;
    }
    let units = stamps.units();
    if cx.discarding() {
        cx.discard(units);
        return;
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| agg.flush())) {
        Ok(Some(value)) => cx.emit(&output, Envelope { value, stamps }).await,
        Ok(None) => cx.stats.borrow_mut().left_over_units += units,
        Err(p) => cx.fail(units, format!("panicked in flush: {}", crate::runtime::task_panic_message(&*p))),
    }
}
