//! A plan's `batch` of images or of views: the library's collectors (`BatchCollector`,
//! `ViewsCollector`) on the plan's [`Value`]s, so each image goes into its batch buffer as the
//! stage receives it.

use shardpipe::pipeline::Collect;

use super::Value;

/// A collector of `X`s that takes them out of values and hands its batches back as one.
pub(super) struct ValueCollector<C: Collect<X>, X> {
    inner: C,
    take: fn(Value) -> Option<X>,
    wrap: fn(C::Batch) -> Value,
}

impl<C: Collect<X>, X> ValueCollector<C, X> {
    pub(super) fn new(inner: C, take: fn(Value) -> Option<X>, wrap: fn(C::Batch) -> Value) -> Self {
        Self { inner, take, wrap }
    }
}

impl<C: Collect<X>, X: 'static> Collect<Value> for ValueCollector<C, X> {
    type Batch = Value;
    type Slot = C::Slot;

    fn push(&mut self, value: Value) -> Result<(), String> {
        let what = value.what();
        let item = (self.take)(value).ok_or_else(|| format!("batch: a batch of images got {what}"))?;
        self.inner.push(item)
    }

    fn push_slot(&mut self, slot: C::Slot) -> Result<(), String> {
        self.inner.push_slot(slot)
    }

    fn take(&mut self) -> Value {
        (self.wrap)(self.inner.take())
    }

    fn rest(&mut self) -> Vec<C::Slot> {
        self.inner.rest()
    }
}
