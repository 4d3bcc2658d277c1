//! [`merge_pipelines`]: SPDL's `Merge` of whole sub-pipelines, each a source with stages of its
//! own, into one stream that later stages share.
//!
//! Built from two pieces that exist anyway: the sources run as [`merge_sources`] (a thread each,
//! items in arrival order), each item tagged with its sub-pipeline and boxed (the sources'
//! item types differ); a router sends it down that sub-pipeline's path, whose first stage
//! unboxes it. The cost is one allocation per item; the gain is that a slow or blocking
//! sub-pipeline holds the others up no more than a slow path does.

use std::any::Any;

use super::builder::PipelineBuilder;
use super::paths::{Path, path};
use super::route::PerItem;
use super::sources::merge_sources;

/// An item of sub-pipeline `.0`, its type erased until its path unboxes it.
struct Tagged(usize, Box<dyn Any + Send>);

/// The iterator of one sub-pipeline's items, tagged once its position is known.
type TaggedItems = Box<dyn FnOnce(usize) -> Box<dyn Iterator<Item = Tagged> + Send> + Send>;

/// One sub-pipeline of [`merge_pipelines`]: a source and the stages its items go through. Make
/// one with [`sub_pipeline`].
pub struct SubPipeline<U> {
    items: TaggedItems,
    stages: Path<Tagged, U>,
}

impl<U> std::fmt::Debug for SubPipeline<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubPipeline")
    }
}

/// A sub-pipeline for [`merge_pipelines`]: the items of `items` go through the stages `chain`
/// adds (`|p| p.map(decode)`, or `|p| p` for none).
pub fn sub_pipeline<I, U, C>(items: I, chain: C) -> SubPipeline<U>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
    U: Send + 'static,
    C: FnOnce(PipelineBuilder<I::Item>) -> PipelineBuilder<U> + Send + 'static,
{
    let items = items.into_iter();
    SubPipeline {
        items: Box::new(move |k| Box::new(items.map(move |x| Tagged(k, Box::new(x))))),
        stages: path(move |p: PipelineBuilder<Tagged>| {
            let unboxed = p
                .map(|t: Tagged| *t.1.downcast::<I::Item>().expect("a sub-pipeline's items are its source's"))
                .name("input");
            chain(unboxed)
        }),
    }
}

/// Merges whole sub-pipelines (SPDL's `Merge`): each is a source with stages of its own, and
/// their outputs, in completion order, are one stream for the stages added after. Sources run as
/// in [`merge_sources`] (a thread each; a slow one holds the others up no more than a slow path
/// does; the stream ends when every sub-pipeline has). In the report the router is `merge` and
/// sub-pipeline `k`'s stages are `subK/…`, starting with `subK/input` (its items unboxed: one
/// allocation per item carries the different source types through one router). Options right
/// after this apply to the router (`.buffer(n)`, `.on_shards(..)`); inside a sub-pipeline, to
/// its stages. A pipeline with a merge does not keep source order.
pub fn merge_pipelines<U: Send + 'static>(subs: impl IntoIterator<Item = SubPipeline<U>>) -> PipelineBuilder<U> {
    let (sources, paths): (Vec<_>, Vec<_>) =
        subs.into_iter().enumerate().map(|(k, s)| ((s.items)(k), s.stages)).unzip();
    merge_sources(sources).routed("merge", "sub", PerItem(|t: &Tagged| t.0), paths)
}
