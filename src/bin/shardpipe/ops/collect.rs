//! A plan's `batch` of images: the library's [`BatchCollector`] on the plan's [`Value`]s, so each
//! image goes into its batch buffer as the stage receives it.

use shardpipe::images::{BatchCollector, Image, ImageBatch, Slot};
use shardpipe::pipeline::Collect;

use super::Value;

/// A [`BatchCollector`] that takes its images out of values and hands its batches back as one.
pub(super) struct ValueCollector<T, U> {
    inner: BatchCollector<T, U>,
    take: fn(Value) -> Option<Image<T>>,
    wrap: fn(ImageBatch<U>) -> Value,
}

impl<T, U> ValueCollector<T, U> {
    pub(super) fn new(
        inner: BatchCollector<T, U>,
        take: fn(Value) -> Option<Image<T>>,
        wrap: fn(ImageBatch<U>) -> Value,
    ) -> Self {
        Self { inner, take, wrap }
    }
}

impl<T: 'static, U: Copy + Default + Send + 'static> Collect<Value> for ValueCollector<T, U> {
    type Batch = Value;
    type Slot = Slot<U>;

    fn push(&mut self, value: Value) -> Result<(), String> {
        let what = value.what();
        let image = (self.take)(value).ok_or_else(|| format!("batch: a batch of images got {what}"))?;
        self.inner.push(image)
    }

    fn push_slot(&mut self, slot: Slot<U>) -> Result<(), String> {
        self.inner.push_slot(slot)
    }

    fn take(&mut self) -> Value {
        (self.wrap)(self.inner.take())
    }

    fn rest(&mut self) -> Vec<Slot<U>> {
        self.inner.rest()
    }
}
