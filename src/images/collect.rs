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
//! each image moves as a [`Slot`], its values already in the batch's layout and type.

use std::sync::Arc;

use super::batch::write_image;
use super::{BatchPool, CHANNELS, Image, ImageBatch, ImageError, ImageErrorKind, Layout, Normalize, Sample};
use crate::pipeline::Collect;

/// Writes one image's HWC values into its slot of the batch, in the batch's layout and type.
type Write<T, U> = Box<dyn Fn(&mut [U], &[T])>;

/// One image of an incomplete batch, as the batch holds it: how it moves to another shard's
/// collector at the end of an epoch.
#[derive(Debug)]
pub struct Slot<U> {
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

    /// Checks that an image of `size` with `values` values fits the batch, starting the batch
    /// (its buffer, its size) on its first image; returns the image's place in `data`.
    fn place(&mut self, path: &Arc<std::path::Path>, size: (u32, u32), values: usize) -> Result<usize, String> {
        let index = self.samples.len();
        let want = size.0 as usize * size.1 as usize * CHANNELS;
        if values != want {
            let (width, height) = size;
            return Err(
                ImageError::new(path, ImageErrorKind::Malformed { index, values, width, height, want }).to_string()
            );
        }
        if index == 0 {
            self.size = size;
            if self.data.capacity() == 0 {
                self.data = self.pool.buffer();
            }
            // Resized, not cleared: a reused buffer of the same size is overwritten in place.
            self.data.resize(want * self.batch, U::default());
        } else if size != self.size {
            let kind = ImageErrorKind::Collate { index, got: size, want: self.size };
            return Err(ImageError::new(path, kind).to_string());
        }
        Ok(index * want)
    }
}

impl<T, U> Collect<Image<T>> for BatchCollector<T, U>
where
    T: 'static,
    U: Copy + Default + Send + 'static,
{
    type Batch = ImageBatch<U>;
    type Slot = Slot<U>;

    fn push(&mut self, img: Image<T>) -> Result<(), String> {
        let at = self.place(&img.sample.path, (img.width, img.height), img.data.len())?;
        (self.write)(&mut self.data[at..at + img.data.len()], &img.data);
        self.samples.push(img.sample);
        Ok(())
    }

    fn push_slot(&mut self, slot: Slot<U>) -> Result<(), String> {
        let at = self.place(&slot.sample.path, slot.size, slot.values.len())?;
        self.data[at..at + slot.values.len()].copy_from_slice(&slot.values);
        self.samples.push(slot.sample);
        Ok(())
    }

    fn take(&mut self) -> ImageBatch<U> {
        let mut data = std::mem::take(&mut self.data);
        data.truncate(self.per_image() * self.samples.len());
        let samples = std::mem::replace(&mut self.samples, Vec::with_capacity(self.batch));
        self.pool.batch(data, samples, self.size, self.layout)
    }

    fn rest(&mut self) -> Vec<Slot<U>> {
        let (per, size, data) = (self.per_image(), self.size, &self.data);
        let slots = self.samples.drain(..).enumerate();
        slots.map(|(i, sample)| Slot { values: data[i * per..(i + 1) * per].to_vec(), sample, size }).collect()
    }
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
}
