//! The usual loader chain as a pipeline: folder → read → decode → resize (→ batches), or
//! → views (several crops of each image → one batch per view).

use std::sync::Arc;

use super::{
    BatchCollector, BatchPool, Crop, Erasing, Image, ImageBatch, ImageFolder, Layout, Mixable, MixedBatch, MixedViews,
    Mixup, Normalize, ViewBatch, Views, ViewsCollector, decode, read,
};
use crate::pipeline::{Collect, PipelineBuilder, source_epochs};

/// How [`loader`] builds its chain.
#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// Target width after center crop and resize.
    pub width: u32,
    /// Target height.
    pub height: u32,
    /// The region each image is resized from: the centered one (the default,
    /// `Crop::Center(1.0)`; `Crop::Center(0.875)` is torchvision's `Resize(256)` +
    /// `CenterCrop(224)` for evaluation) or, for training, `Crop::Random(Augment::new(seed))`: a
    /// random resized crop and flip per image, new each epoch.
    pub crop: Crop,
    /// Epochs of the whole run (an epoch marker after each); `None`: until `stop()`. They count
    /// from 0 even after [`ImageFolder::resume`]: a run of `Some(90)` resumed in epoch 37 loads
    /// the rest of epoch 37, then 38 to 89.
    pub epochs: Option<u64>,
    /// Reads in flight for the whole pipeline (split over the shards).
    pub read_concurrency: usize,
    /// Decodes and resizes at once: on a single loop, how many offload threads work on them
    /// at a time; sharded, each shard decodes inline on its own core and this is ignored.
    pub decode_concurrency: usize,
    /// Keep the folder's epoch order through every stage.
    pub ordered: bool,
    /// Failures each stage tolerates (bad files) before the pipeline fails; `None`: no limit.
    pub max_failures: Option<u64>,
    /// Files larger than this fail with a clear error instead of being read.
    pub max_file_bytes: u64,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        Self {
            width: 224,
            height: 224,
            crop: Crop::default(),
            epochs: Some(1),
            read_concurrency: 16,
            decode_concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ordered: false,
            max_failures: None,
            max_file_bytes: 64 << 20,
        }
    }
}

/// Source items queued ahead of the read stage. Items are few and slow (a millisecond of
/// decode each): a short ring keeps the dealer handing them to whichever shard has room, so
/// the shards finish an epoch together.
const SOURCE_BUFFER: usize = 8;

/// Stage queue length: enough to cover a shard's turn away, short enough that neither shard
/// hoards work at the end of an epoch.
const STAGE_BUFFER: usize = 4;

/// `folder`'s samples, read through io_uring (stage `read`), decoded (`decode`) and
/// cropped ([`LoaderOptions::crop`]: centered, or random and flipped for training) and resized
/// (`resize`). Add `.aggregate(n)` and [`batches`]' collation, or
/// call [`batches`] on it.
pub fn loader(folder: ImageFolder, opts: &LoaderOptions) -> PipelineBuilder<Image<u8>> {
    let (w, h, crop) = (opts.width, opts.height, opts.crop);
    let resized = decoded(folder, opts).pipe_blocking(move |img| crop.apply(img, w, h));
    stage_options(resized.name("resize").concurrency(opts.decode_concurrency), opts).buffer(STAGE_BUFFER)
}

/// `folder`'s samples read and decoded as [`loader`] does, then made into `views`' views
/// (stage `views`, in place of `resize`): each item is one image's views, in order, from one
/// decode. `opts`' `width`, `height` and `crop` are not used: each view has its own. Batch
/// them with [`view_batches`] or [`normalized_view_batches`].
pub fn loader_views(folder: ImageFolder, opts: &LoaderOptions, views: Views) -> PipelineBuilder<Vec<Image<u8>>> {
    let made = decoded(folder, opts).pipe_blocking(move |img| views.apply(img));
    stage_options(made.name("views").concurrency(opts.decode_concurrency), opts).buffer(STAGE_BUFFER)
}

/// Stages `read` and `decode`: the part of the chain [`loader`] and [`loader_views`] share.
fn decoded(folder: ImageFolder, opts: &LoaderOptions) -> PipelineBuilder<Image<u8>> {
    let epochs = opts.epochs;
    let first = folder.first_epoch();
    let folder = Arc::new(folder);
    let pass = move |k: u64| {
        let e = first + k;
        epochs.is_none_or(|n| e < n).then(|| folder.epoch(e))
    };
    let source = source_epochs(pass).buffer(SOURCE_BUFFER);
    let limit = opts.max_file_bytes;
    let read =
        source.pipe_async(move |s| read(s, limit)).name("read").concurrency(opts.read_concurrency).buffer(STAGE_BUFFER);
    let read = stage_options(read, opts);
    stage_options(
        read.pipe_blocking(decode).name("decode").concurrency(opts.decode_concurrency).buffer(STAGE_BUFFER),
        opts,
    )
}

/// Batches of `size` images collated into one `[B, H, W, C]` buffer each (stage `batch`: each
/// image is written into its batch as it arrives, [`BatchCollector`]; buffers of dropped
/// batches are reused through a [`BatchPool`]); with `drop_last` the incomplete last batch of
/// each epoch is left over (and counted) instead of delivered.
pub fn batches<T: Copy + Default + Send + 'static>(
    images: PipelineBuilder<Image<T>>,
    size: usize,
    drop_last: bool,
) -> PipelineBuilder<ImageBatch<T>> {
    let pool = BatchPool::new(POOLED_BATCHES);
    collected(images, size, drop_last, move || BatchCollector::new(pool.clone(), size, Layout::Hwc))
}

/// Batches of `size` images normalized and collated in one pass into `f32` buffers in `layout`
/// (stage `batch`, [`BatchCollector::normalized`]: each image is written once, to its place in
/// the batch, as it arrives): what a PyTorch model takes with `Layout::Chw`. Cheaper than a
/// `normalize` stage followed by [`batches`], which writes every value twice and allocates an
/// `f32` image per image.
pub fn normalized_batches(
    images: PipelineBuilder<Image<u8>>,
    size: usize,
    drop_last: bool,
    normalize: Normalize,
    layout: Layout,
) -> PipelineBuilder<ImageBatch<f32>> {
    let pool = BatchPool::new(POOLED_BATCHES);
    collected(images, size, drop_last, move || BatchCollector::normalized(pool.clone(), size, &normalize, layout))
}

/// Batches of `size` images' views (`count` per image, as [`loader_views`] makes them), each
/// view collated into a buffer of its own in `layout` (stage `batch`: each view written into its
/// batch as it arrives, [`ViewsCollector`]; buffers of dropped batches are reused, per view).
pub fn view_batches(
    views: PipelineBuilder<Vec<Image<u8>>>,
    count: usize,
    size: usize,
    drop_last: bool,
    layout: Layout,
) -> PipelineBuilder<ViewBatch<u8>> {
    let pools = BatchPool::per_view(count, POOLED_BATCHES);
    collected(views, size, drop_last, move || ViewsCollector::new(&pools, size, layout))
}

/// [`view_batches`] normalized in the same pass, into `f32` buffers: what a PyTorch model
/// takes with `Layout::Chw`.
pub fn normalized_view_batches(
    views: PipelineBuilder<Vec<Image<u8>>>,
    count: usize,
    size: usize,
    drop_last: bool,
    normalize: Normalize,
    layout: Layout,
) -> PipelineBuilder<ViewBatch<f32>> {
    let pools = BatchPool::per_view(count, POOLED_BATCHES);
    collected(views, size, drop_last, move || ViewsCollector::normalized(&pools, size, &normalize, layout))
}

/// Each normalized batch's images randomly erased by `erasing` (stage `erase`;
/// [`Erasing::apply`]), as timm does before Mixup.
pub fn erased(batches: PipelineBuilder<ImageBatch<f32>>, erasing: Erasing) -> PipelineBuilder<ImageBatch<f32>> {
    batches.pipe(move |batch| Some(erasing.apply(batch))).name("erase")
}

/// Each batch's views `from..` randomly erased by `erasing` (stage `erase`;
/// [`Erasing::apply_views`]): `from = 1` is timm's `--aug-splits` with erasing, the clean
/// first split left alone.
pub fn erased_views(
    batches: PipelineBuilder<ViewBatch<f32>>,
    erasing: Erasing,
    from: usize,
) -> PipelineBuilder<ViewBatch<f32>> {
    batches.pipe(move |batch| Some(erasing.apply_views(batch, from))).name("erase")
}

/// Each batch mixed by `mixup` (stage `mixup`; [`Mixup::apply`]): Mixup or CutMix in place,
/// with the soft targets to train against. A batch with an unlabelled sample, or a label not
/// below the classes, fails the stage (counted, with the file named).
pub fn mixed<T: Mixable + Send + 'static>(
    batches: PipelineBuilder<ImageBatch<T>>,
    mixup: Mixup,
) -> PipelineBuilder<MixedBatch<T>> {
    batches.pipe(move |batch| mixup.apply(batch)).name("mixup")
}

/// Each batch of views mixed by `mixup` (stage `mixup`; [`Mixup::apply_views`]): one draw per
/// batch shared by its views, each view mixed within itself, with its targets.
pub fn mixed_views<T: Mixable + Send + 'static>(
    batches: PipelineBuilder<ViewBatch<T>>,
    mixup: Mixup,
) -> PipelineBuilder<MixedViews<T>> {
    batches.pipe(move |batch| mixup.apply_views(batch)).name("mixup")
}

/// The `batch` stage building each batch with a collector from `make` as its images arrive.
fn collected<T, C, M>(images: PipelineBuilder<T>, size: usize, drop_last: bool, make: M) -> PipelineBuilder<C::Batch>
where
    T: Send + 'static,
    C: Collect<T>,
    M: Fn() -> C + Send + Sync + 'static,
{
    let batched = images.aggregate_into(size, make).name("batch");
    if drop_last { batched.drop_last() } else { batched }
}

/// Batch buffers each collating stage keeps for reuse: more than the batches a pipeline holds at
/// once (the sink's buffer and the consumer's), so steady state allocates none.
pub const POOLED_BATCHES: usize = 8;

fn stage_options<T: Send + 'static>(b: PipelineBuilder<T>, opts: &LoaderOptions) -> PipelineBuilder<T> {
    let b = if opts.ordered { b.ordered() } else { b };
    match opts.max_failures {
        Some(n) => b.max_failures(n),
        None => b,
    }
}
