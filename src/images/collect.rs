//! Collation as the images arrive: a [`BatchCollector`] is the `batch` stage's collector
//! ([`Collect`], `aggregate_into`). Each image is written into its place in a pooled batch
//! buffer the moment the stage receives it, while its pixels are still in the cache, and its
//! own memory is freed for the next resize at once. The batch is ready when its last image is
//! in; no pass over the whole batch follows.
//!
//! (The earlier way held a batch's 32 images until the last arrived and then copied them all, by
//! then long out of the cache: on two shards, building each batch as it fills made the loader
//! 1–2 % faster; docs/benchmarks.md, session 28.)
//!
//! At the end of an epoch the shards' incomplete batches merge (see `pipeline::aggregate`):
//! each image moves as a [`BatchSlot`], its values already in the batch's layout and type.

use std::sync::Arc;

use super::batch::write_image;
use super::{BatchPool, CHANNELS, Image, ImageBatch, ImageError, ImageErrorKind, Layout, Normalize, Sample, ViewBatch};
use crate::pipeline::Collect;

/// Writes one image's HWC values into its slot of the batch, in the batch's layout and type.
type Write<T, U> = Box<dyn Fn(&mut [U], &[T])>;

/// One image of an incomplete batch, as the batch holds it: how it moves to another shard's
/// collector at the end of an epoch.
#[derive(Debug)]
pub struct BatchSlot<U> {
    values: Vec<U>,
    sample: Sample,
    size: (u32, u32),
}

/// Builds batches of `[B, H, W, C]` or `[B, C, H, W]` images in buffers from a [`BatchPool`],
/// one image at a time (see the module docs). An image of another size than the batch's first
/// fails alone, with its path, instead of the whole batch.
pub struct BatchCollector<T, U> {
    pool: Arc<BatchPool<U>>,
    layout: Layout,
    write: Write<T, U>,
    batch: usize,
    data: Vec<U>,
    samples: Vec<Sample>,
    /// The batch's image size: its first image's.
    size: (u32, u32),
}

impl<T, U> std::fmt::Debug for BatchCollector<T, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchCollector")
            .field("layout", &self.layout)
            .field("batch", &self.batch)
            .field("held", &self.samples.len())
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl<T: Copy + Default + 'static> BatchCollector<T, T> {
    /// Batches of `batch` images in `layout`, their values as they are (what
    /// [`collate_layout`](super::collate_layout) makes).
    pub fn new(pool: Arc<BatchPool<T>>, batch: usize, layout: Layout) -> Self {
        let write: Write<T, T> = match layout {
            Layout::Hwc => Box::new(|out: &mut [T], values: &[T]| out.copy_from_slice(values)),
            Layout::Chw => Box::new(|out: &mut [T], values: &[T]| write_image(out, values, Layout::Chw, |_, x| x)),
        };
        Self::with(pool, batch, layout, write)
    }
}

impl BatchCollector<u8, f32> {
    /// Batches of `batch` images normalized by `n` in `layout` (what
    /// [`collate_normalized`](super::collate_normalized) makes).
    pub fn normalized(pool: Arc<BatchPool<f32>>, batch: usize, n: &Normalize, layout: Layout) -> Self {
        let table = n.table();
        let write = move |out: &mut [f32], values: &[u8]| {
            write_image(out, values, layout, |c, x| table[c][usize::from(x)]);
        };
        Self::with(pool, batch, layout, Box::new(write))
    }
}

impl<T, U: Copy + Default> BatchCollector<T, U> {
    fn with(pool: Arc<BatchPool<U>>, batch: usize, layout: Layout, write: Write<T, U>) -> Self {
        Self { pool, layout, write, batch, data: Vec::new(), samples: Vec::new(), size: (0, 0) }
    }

    /// The values of one image of the batch's size.
    fn per_image(&self) -> usize {
        self.size.0 as usize * self.size.1 as usize * CHANNELS
    }

    /// Checks that an image of `size` with `values` values fits the batch being built.
    fn check(&self, path: &Arc<std::path::Path>, size: (u32, u32), values: usize) -> Result<(), String> {
        let index = self.samples.len();
        let want = size.0 as usize * size.1 as usize * CHANNELS;
        if values != want {
            let (width, height) = size;
            let kind = ImageErrorKind::Malformed { index, values, width, height, want };
            return Err(ImageError::new(path, kind).to_string());
        }
        if index > 0 && size != self.size {
            let kind = ImageErrorKind::Collate { index, got: size, want: self.size };
            return Err(ImageError::new(path, kind).to_string());
        }
        Ok(())
    }

    /// The place in `data` of the next image, checked to be of `size`; the first image of a
    /// batch starts it (its buffer, its size).
    fn place(&mut self, size: (u32, u32)) -> usize {
        let index = self.samples.len();
        if index == 0 {
            self.size = size;
            if self.data.capacity() == 0 {
                self.data = self.pool.buffer();
            }
        }
        let per = self.per_image();
        // Resized, not cleared: a reused buffer of the same size is overwritten in place. (It
        // grows past `batch` images only for a collector driven by hand.)
        let end = (index + 1) * per;
        if index == 0 || self.data.len() < end {
            self.data.resize(end.max(per * self.batch), U::default());
        }
        index * per
    }

    /// Writes a checked image into the next place.
    fn put(&mut self, img: Image<T>) {
        let at = self.place((img.width, img.height));
        (self.write)(&mut self.data[at..at + img.data.len()], &img.data);
        self.samples.push(img.sample);
    }

    /// Writes a checked slot into the next place.
    fn put_slot(&mut self, slot: BatchSlot<U>) {
        let at = self.place(slot.size);
        self.data[at..at + slot.values.len()].copy_from_slice(&slot.values);
        self.samples.push(slot.sample);
    }
}

impl<T, U> Collect<Image<T>> for BatchCollector<T, U>
where
    T: 'static,
    U: Copy + Default + Send + 'static,
{
    type Batch = ImageBatch<U>;
    type Slot = BatchSlot<U>;

    fn push(&mut self, img: Image<T>) -> Result<(), String> {
        self.check(&img.sample.path, (img.width, img.height), img.data.len())?;
        self.put(img);
        Ok(())
    }

    fn push_slot(&mut self, slot: BatchSlot<U>) -> Result<(), String> {
        self.check(&slot.sample.path, slot.size, slot.values.len())?;
        self.put_slot(slot);
        Ok(())
    }

    fn take(&mut self) -> ImageBatch<U> {
        let mut data = std::mem::take(&mut self.data);
        data.truncate(self.per_image() * self.samples.len());
        let samples = std::mem::replace(&mut self.samples, Vec::with_capacity(self.batch));
        self.pool.batch(data, samples, self.size, self.layout)
    }

    fn rest(&mut self) -> Vec<BatchSlot<U>> {
        let (per, size, data) = (self.per_image(), self.size, &self.data);
        let slots = self.samples.drain(..).enumerate();
        slots.map(|(i, sample)| BatchSlot { values: data[i * per..(i + 1) * per].to_vec(), sample, size }).collect()
    }
}

/// Builds batches of images' views ([`ViewBatch`]: one buffer per view) as they arrive: view `v`
/// of each image goes into view `v`'s batch at once. An image with another number of views, or
/// a view of another size than that view's batch, fails whole (no view of it is kept).
#[derive(Debug)]
pub struct ViewsCollector<U> {
    views: Vec<BatchCollector<u8, U>>,
}

impl ViewsCollector<u8> {
    /// Batches of `batch` images' views, view `v` in `layout` in a buffer from `pools[v]` (one
    /// pool per view: [`BatchPool::per_view`]), the values as they are.
    pub fn new(pools: &[Arc<BatchPool<u8>>], batch: usize, layout: Layout) -> Self {
        Self { views: pools.iter().map(|p| BatchCollector::new(p.clone(), batch, layout)).collect() }
    }
}

impl ViewsCollector<f32> {
    /// [`new`](ViewsCollector::new)'s batches normalized by `n`.
    pub fn normalized(pools: &[Arc<BatchPool<f32>>], batch: usize, n: &Normalize, layout: Layout) -> Self {
        Self { views: pools.iter().map(|p| BatchCollector::normalized(p.clone(), batch, n, layout)).collect() }
    }
}

impl<U: Copy + Default + Send + 'static> ViewsCollector<U> {
    /// Checks every view of one image (`sizes[v]`: view `v`'s size and values) before any is
    /// written, so a refused image leaves no view behind.
    fn check(
        &self,
        path: &Arc<std::path::Path>,
        sizes: impl ExactSizeIterator<Item = ((u32, u32), usize)>,
    ) -> Result<(), String> {
        let want = self.views.len();
        if sizes.len() != want {
            let kind = ImageErrorKind::Views { index: self.held(), got: sizes.len(), want };
            return Err(ImageError::new(path, kind).to_string());
        }
        self.views.iter().zip(sizes).try_for_each(|(c, (size, values))| c.check(path, size, values))
    }

    fn held(&self) -> usize {
        self.views.first().map_or(0, |c| c.samples.len())
    }
}

impl<U: Copy + Default + Send + 'static> Collect<Vec<Image<u8>>> for ViewsCollector<U> {
    type Batch = ViewBatch<U>;
    type Slot = Vec<BatchSlot<U>>;

    fn push(&mut self, views: Vec<Image<u8>>) -> Result<(), String> {
        let path = path_of(views.first().map(|v| &v.sample));
        self.check(&path, views.iter().map(|v| ((v.width, v.height), v.data.len())))?;
        self.views.iter_mut().zip(views).for_each(|(c, v)| c.put(v));
        Ok(())
    }

    fn push_slot(&mut self, slots: Vec<BatchSlot<U>>) -> Result<(), String> {
        let path = path_of(slots.first().map(|s| &s.sample));
        self.check(&path, slots.iter().map(|s| (s.size, s.values.len())))?;
        self.views.iter_mut().zip(slots).for_each(|(c, s)| c.put_slot(s));
        Ok(())
    }

    fn take(&mut self) -> ViewBatch<U> {
        ViewBatch { views: self.views.iter_mut().map(BatchCollector::take).collect() }
    }

    fn rest(&mut self) -> Vec<Vec<BatchSlot<U>>> {
        let mut per_view: Vec<std::vec::IntoIter<BatchSlot<U>>> =
            self.views.iter_mut().map(|c| c.rest().into_iter()).collect();
        let images = per_view.first().map_or(0, ExactSizeIterator::len);
        (0..images).map(|_| per_view.iter_mut().filter_map(Iterator::next).collect()).collect()
    }
}

/// The file an image's views came from, for errors ("?" for an image with no view).
fn path_of(first: Option<&Sample>) -> Arc<std::path::Path> {
    first.map_or_else(|| Arc::from(std::path::Path::new("?")), |s| s.path.clone())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::images::{collate_layout, collate_normalized};

    fn image(i: u64, w: u32, h: u32) -> Image<u8> {
        let sample = Sample { index: i, epoch: 0, path: Arc::from(Path::new(&format!("img{i}.jpg"))), label: Some(7) };
        let data = (0..w as usize * h as usize * CHANNELS).map(|v| (v as u64 * 7 + i * 13) as u8).collect();
        Image { sample, width: w, height: h, data }
    }

    fn images(n: u64) -> Vec<Image<u8>> {
        (0..n).map(|i| image(i, 5, 4)).collect()
    }

    /// Pushes `imgs` one at a time; returns the batches made (a full one each time `batch` are in).
    fn fill<U: Copy + Default + Send + 'static>(
        c: &mut BatchCollector<u8, U>,
        imgs: Vec<Image<u8>>,
    ) -> Vec<ImageBatch<U>> {
        let mut out = Vec::new();
        for img in imgs {
            c.push(img).unwrap();
            if c.samples.len() == c.batch {
                out.push(c.take());
            }
        }
        out
    }

    #[test]
    fn batches_built_one_image_at_a_time_equal_whole_batch_collation() {
        for layout in [Layout::Hwc, Layout::Chw] {
            let mut c = BatchCollector::new(BatchPool::new(2), 3, layout);
            let made = fill(&mut c, images(7));
            assert_eq!(made.len(), 2);
            let want = collate_layout(images(7)[3..6].to_vec(), layout).unwrap();
            assert_eq!(made[1], want, "{layout:?}");
            let short = c.take();
            assert_eq!(short, collate_layout(images(7)[6..].to_vec(), layout).unwrap(), "the short last batch");

            let n = Normalize::IMAGENET;
            let mut c = BatchCollector::normalized(BatchPool::new(2), 3, &n, layout);
            let made = fill(&mut c, images(3));
            assert_eq!(made[0], collate_normalized(images(3), &n, layout).unwrap(), "{layout:?}");
        }
    }

    #[test]
    fn an_image_of_another_size_fails_alone_naming_its_file() {
        let mut c = BatchCollector::new(BatchPool::new(2), 3, Layout::Hwc);
        c.push(image(0, 5, 4)).unwrap();
        let e = c.push(image(1, 4, 4)).unwrap_err();
        assert!(e.contains("img1.jpg") && e.contains("is (4, 4) but the batch's first is (5, 4)"), "{e}");
        let mut bad = image(2, 5, 4);
        bad.data.pop();
        let e = c.push(bad).unwrap_err();
        assert!(e.contains("img2.jpg") && e.contains("holds 59 values, not its 5 × 4 × 3 = 60"), "{e}");
        c.push(image(3, 5, 4)).unwrap();
        let batch = c.take();
        let indices: Vec<u64> = batch.samples.iter().map(|s| s.index).collect();
        assert_eq!(indices, [0, 3], "the refused images are not in the batch");
        assert_eq!(batch, collate_layout(vec![image(0, 5, 4), image(3, 5, 4)], Layout::Hwc).unwrap());
    }

    #[test]
    fn an_incomplete_batch_moves_to_another_collector_as_slots() {
        for layout in [Layout::Hwc, Layout::Chw] {
            let n = Normalize::IMAGENET;
            let mut child = BatchCollector::normalized(BatchPool::new(2), 4, &n, layout);
            let mut parent = BatchCollector::normalized(BatchPool::new(2), 4, &n, layout);
            fill(&mut child, images(2));
            fill(&mut parent, images(4)[2..].to_vec());
            let slots = child.rest();
            assert_eq!(slots.len(), 2);
            assert!(child.rest().is_empty(), "the child starts over");
            for s in slots {
                parent.push_slot(s).unwrap();
            }
            let merged = parent.take();
            let mut order = images(4)[2..].to_vec();
            order.extend(images(2));
            assert_eq!(merged, collate_normalized(order, &n, layout).unwrap(), "{layout:?}");
        }
        // A slot of another size is refused like an image.
        let mut a = BatchCollector::new(BatchPool::new(1), 4, Layout::Hwc);
        let mut b = BatchCollector::new(BatchPool::new(1), 4, Layout::Hwc);
        a.push(image(0, 5, 4)).unwrap();
        b.push(image(1, 3, 3)).unwrap();
        let e = b.push_slot(a.rest().pop().unwrap()).unwrap_err();
        assert!(e.contains("img0.jpg") && e.contains("is (5, 4) but the batch's first is (3, 3)"), "{e}");
    }

    #[test]
    fn a_collector_driven_by_hand_past_its_batch_size_grows_instead_of_panicking() {
        for batch in [0, 2] {
            let mut c = BatchCollector::new(BatchPool::new(1), batch, Layout::Hwc);
            images(5).into_iter().for_each(|img| c.push(img).unwrap());
            assert_eq!(c.take(), collate_layout(images(5), Layout::Hwc).unwrap(), "batch {batch}");
        }
    }

    #[test]
    fn a_dropped_batch_returns_its_buffer_to_the_pool_for_the_next() {
        let pool = BatchPool::new(2);
        let mut c = BatchCollector::new(pool.clone(), 2, Layout::Hwc);
        let first = fill(&mut c, images(2)).pop().unwrap();
        let ptr = first.data.as_ptr();
        drop(first);
        assert_eq!(pool.idle(), 1);
        let second = fill(&mut c, images(2)).pop().unwrap();
        assert_eq!((second.data.as_ptr(), pool.idle()), (ptr, 0), "the second batch is built in the first's buffer");
        assert_eq!(second, collate_layout(images(2), Layout::Hwc).unwrap());
    }

    /// Image `i`'s two views: itself at 5×4 and a 2×3 one.
    fn views(i: u64) -> Vec<Image<u8>> {
        vec![image(i, 5, 4), image(i + 100, 2, 3)]
    }

    fn views_collector(batch: usize, layout: Layout) -> ViewsCollector<u8> {
        ViewsCollector::new(&BatchPool::per_view(2, 2), batch, layout)
    }

    #[test]
    fn view_batches_built_on_arrival_equal_whole_batch_collation() {
        for layout in [Layout::Hwc, Layout::Chw] {
            let mut c = views_collector(3, layout);
            (0..3).for_each(|i| c.push(views(i)).unwrap());
            let want = crate::images::ViewCollator::new(2, 1).collate((0..3).map(views).collect(), layout).unwrap();
            assert_eq!(c.take(), want, "{layout:?}");
        }
        let n = Normalize::IMAGENET;
        let mut c = ViewsCollector::normalized(&BatchPool::per_view(2, 1), 2, &n, Layout::Chw);
        (0..2).for_each(|i| c.push(views(i)).unwrap());
        let want =
            crate::images::ViewCollator::new(2, 1).collate_normalized((0..2).map(views).collect(), &n, Layout::Chw);
        assert_eq!(c.take(), want.unwrap());
    }

    #[test]
    fn an_image_whose_views_do_not_fit_fails_whole_and_leaves_no_view() {
        let mut c = views_collector(4, Layout::Hwc);
        c.push(views(0)).unwrap();
        let e = c.push(vec![image(1, 5, 4)]).unwrap_err();
        assert!(e.contains("img1.jpg") && e.contains("has 1 views, not the 2"), "{e}");
        // The first view fits, the second does not: neither may stay.
        let e = c.push(vec![image(2, 5, 4), image(102, 3, 3)]).unwrap_err();
        assert!(e.contains("img2.jpg") && e.contains("is (3, 3) but the batch's first is (2, 3)"), "{e}");
        assert!(c.push(Vec::new()).unwrap_err().contains("has 0 views"));
        c.push(views(3)).unwrap();
        let batch = c.take();
        let want = crate::images::ViewCollator::new(2, 1).collate(vec![views(0), views(3)], Layout::Hwc).unwrap();
        assert_eq!(batch, want, "only the images that fit, every view in step");
    }

    #[test]
    fn an_incomplete_batch_of_views_moves_as_one_slot_list_per_image() {
        let (mut child, mut parent) = (views_collector(3, Layout::Chw), views_collector(3, Layout::Chw));
        child.push(views(0)).unwrap();
        child.push(views(1)).unwrap();
        parent.push(views(2)).unwrap();
        let rest = child.rest();
        assert_eq!(rest.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2], "two images, two views each");
        rest.into_iter().for_each(|slots| parent.push_slot(slots).unwrap());
        let want = crate::images::ViewCollator::new(2, 1).collate(vec![views(2), views(0), views(1)], Layout::Chw);
        assert_eq!(parent.take(), want.unwrap());
    }
}
