//! Normalization to floats and collation of images into one contiguous batch buffer, laid out
//! `[B, H, W, C]` (as decoded) or `[B, C, H, W]` (PyTorch's; [`Layout`]).
//!
//! [`collate_normalized`] does both in one pass: each `u8` pixel is looked up in a per-channel
//! table and written straight to its place in the `f32` batch, with no `f32` image in between.
//!
//! A batch buffer is large (4.8 MB for 32 × 224 × 224 × 3 bytes) and fresh memory costs a page
//! fault per 4 KiB: faulting a new buffer in takes longer than copying the images into it. So a
//! [`BatchPool`] keeps the buffers of batches the consumer has dropped, and the next collation
//! copies into memory that is already mapped.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::{CHANNELS, Image, ImageError, ImageErrorKind, Sample};

/// How a batch orders an image's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// `[B, H, W, C]`: a pixel's channels side by side, as decoded (NumPy, TensorFlow, JAX).
    #[default]
    Hwc,
    /// `[B, C, H, W]`: one plane per channel, what PyTorch's convolutions and torchvision's
    /// `ToTensor()` use.
    Chw,
}

/// A batch of same-sized images in one buffer, row-major in `shape`'s order (`[B, H, W, C]` or
/// `[B, C, H, W]`, as [`layout`](Self::layout) says): image `b` is
/// `data[b * H * W * C ..][.. H * W * C]`. The consumer owns the buffer; hand it to a
/// tensor library as is, or keep it ([`ImageBatch::into_data`]). Dropped, a pooled batch's
/// buffer goes back to its [`BatchPool`].
#[derive(Debug, Clone)]
pub struct ImageBatch<T> {
    /// `B × H × W × C` values.
    pub data: Vec<T>,
    /// `[B, H, W, C]`, or `[B, C, H, W]` when `layout` is [`Layout::Chw`].
    pub shape: [usize; 4],
    /// The order of `shape` and `data`.
    pub layout: Layout,
    /// The batch's samples, in batch order (paths, source indices, labels).
    pub samples: Vec<Sample>,
    pool: Option<Arc<BatchPool<T>>>,
}

impl<T: PartialEq> PartialEq for ImageBatch<T> {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data
            && self.shape == other.shape
            && self.layout == other.layout
            && self.samples == other.samples
    }
}

impl<T> Drop for ImageBatch<T> {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let data = std::mem::take(&mut self.data);
            if data.capacity() > 0 {
                // A full pool lets the buffer go.
                let _ = pool.free.push(data);
            }
        }
    }
}

/// Buffers of dropped batches, reused by the next collations (at most `keep` are kept).
#[derive(Debug)]
pub struct BatchPool<T> {
    free: ArrayQueue<Vec<T>>,
}

impl<T: Copy> BatchPool<T> {
    /// A pool keeping up to `keep` buffers (at least 1).
    pub fn new(keep: usize) -> Arc<Self> {
        Arc::new(Self { free: ArrayQueue::new(keep.max(1)) })
    }

    /// One pool per view of `views`, each keeping up to `keep` buffers (views differ in size).
    pub fn per_view(views: usize, keep: usize) -> Vec<Arc<Self>> {
        (0..views).map(|_| Self::new(keep)).collect()
    }

    /// [`collate`] into a pooled buffer; the batch returns it when dropped.
    pub fn collate(self: &Arc<Self>, images: Vec<Image<T>>) -> Result<ImageBatch<T>, ImageError> {
        self.pooled(|buf| collate_into(buf, images))
    }

    /// A buffer for the next batch: a dropped batch's, or a new one.
    pub(super) fn buffer(&self) -> Vec<T> {
        self.free.pop().unwrap_or_default()
    }

    /// `data` (a buffer from [`buffer`](Self::buffer)) as a batch of `samples`' images of
    /// `size` in `layout`, tied to this pool.
    pub(super) fn batch(
        self: &Arc<Self>,
        data: Vec<T>,
        samples: Vec<Sample>,
        size: (u32, u32),
        layout: Layout,
    ) -> ImageBatch<T> {
        let mut batch = batch_of(data, samples, size, layout);
        batch.pool = Some(self.clone());
        batch
    }

    /// Buffers waiting for reuse.
    pub fn idle(&self) -> usize {
        self.free.len()
    }

    /// A batch made by `make` in a buffer from the pool, tied to the pool.
    fn pooled(
        self: &Arc<Self>,
        make: impl FnOnce(Vec<T>) -> Result<ImageBatch<T>, ImageError>,
    ) -> Result<ImageBatch<T>, ImageError> {
        let mut batch = make(self.free.pop().unwrap_or_default())?;
        batch.pool = Some(self.clone());
        Ok(batch)
    }
}

impl<T: Copy + Default> BatchPool<T> {
    /// [`collate_layout`] into a pooled buffer.
    pub fn collate_layout(
        self: &Arc<Self>,
        images: Vec<Image<T>>,
        layout: Layout,
    ) -> Result<ImageBatch<T>, ImageError> {
        self.pooled(|buf| layout_into(buf, images, layout))
    }
}

impl BatchPool<f32> {
    /// [`collate_normalized`] into a pooled buffer.
    pub fn collate_normalized(
        self: &Arc<Self>,
        images: Vec<Image<u8>>,
        n: &Normalize,
        layout: Layout,
    ) -> Result<ImageBatch<f32>, ImageError> {
        self.pooled(|buf| normalized_into(buf, images, n, layout))
    }
}

impl<T> ImageBatch<T> {
    /// The buffer, kept by the caller (it does not go back to a pool).
    pub fn into_data(mut self) -> Vec<T> {
        self.pool = None;
        std::mem::take(&mut self.data)
    }

    /// Images in the batch.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Whether it holds no image.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// `(width, height)` of every image, whatever the layout.
    pub fn image_size(&self) -> (usize, usize) {
        match self.layout {
            Layout::Hwc => (self.shape[2], self.shape[1]),
            Layout::Chw => (self.shape[3], self.shape[2]),
        }
    }

    /// Every sample's label, or `None` when some sample has none.
    pub fn labels(&self) -> Option<Vec<u32>> {
        self.samples.iter().map(|s| s.label).collect()
    }

    /// Image `b`'s values (`H × W × C`, or `C × H × W`).
    pub fn image(&self, b: usize) -> &[T] {
        let per = self.shape[1] * self.shape[2] * self.shape[3];
        &self.data[b * per..(b + 1) * per]
    }

    /// Image `b`'s value at pixel `(x, y)`, channel `c`, whatever the layout.
    pub fn value(&self, b: usize, x: usize, y: usize, c: usize) -> T
    where
        T: Copy,
    {
        let (w, h) = self.image_size();
        self.image(b)[match self.layout {
            Layout::Hwc => (y * w + x) * CHANNELS + c,
            Layout::Chw => (c * h + y) * w + x,
        }]
    }
}

/// Copies `images` (all one size) into one `[B, H, W, C]` batch buffer, in order: the one copy
/// collation needs. Images of different sizes are an error naming the first that differs.
pub fn collate<T: Copy>(images: Vec<Image<T>>) -> Result<ImageBatch<T>, ImageError> {
    collate_into(Vec::new(), images)
}

/// [`collate`] into `layout`: for [`Layout::Chw`] each image's channels are split into planes
/// on the way in (one pass; no further copy).
pub fn collate_layout<T: Copy + Default>(images: Vec<Image<T>>, layout: Layout) -> Result<ImageBatch<T>, ImageError> {
    layout_into(Vec::new(), images, layout)
}

/// [`normalize`] and [`collate_layout`] in one pass: every `u8` value is turned into its
/// normalized `f32` and written once, to its place in the batch, with no `f32` image in
/// between. What torchvision's `ToTensor()` + `Normalize(mean, std)` + `default_collate` give,
/// with `layout: Layout::Chw`.
pub fn collate_normalized(
    images: Vec<Image<u8>>,
    n: &Normalize,
    layout: Layout,
) -> Result<ImageBatch<f32>, ImageError> {
    normalized_into(Vec::new(), images, n, layout)
}

fn layout_into<T: Copy + Default>(
    buf: Vec<T>,
    images: Vec<Image<T>>,
    layout: Layout,
) -> Result<ImageBatch<T>, ImageError> {
    match layout {
        Layout::Hwc => collate_into(buf, images),
        Layout::Chw => convert_into(buf, images, layout, |_, x| x),
    }
}

fn normalized_into(
    buf: Vec<f32>,
    images: Vec<Image<u8>>,
    n: &Normalize,
    layout: Layout,
) -> Result<ImageBatch<f32>, ImageError> {
    let table = n.table();
    convert_into(buf, images, layout, |c, x| table[c][usize::from(x)])
}

/// The images' common `(width, height)`, or an error naming the first image that differs.
fn common_size<T>(images: &[Image<T>]) -> Result<(u32, u32), ImageError> {
    let Some(first) = images.first() else { return Ok((0, 0)) };
    let want = (first.width, first.height);
    if let Some((index, img)) = images.iter().enumerate().find(|(_, i)| (i.width, i.height) != want) {
        let kind = ImageErrorKind::Collate { index, got: (img.width, img.height), want };
        return Err(ImageError::new(&img.sample.path, kind));
    }
    let values = want.0 as usize * want.1 as usize * CHANNELS;
    if let Some((index, img)) = images.iter().enumerate().find(|(_, i)| i.data.len() != values) {
        let (width, height) = want;
        let kind = ImageErrorKind::Malformed { index, values: img.data.len(), width, height, want: values };
        return Err(ImageError::new(&img.sample.path, kind));
    }
    Ok(want)
}

fn batch_of<T>(data: Vec<T>, samples: Vec<Sample>, (w, h): (u32, u32), layout: Layout) -> ImageBatch<T> {
    let (w, h) = (w as usize, h as usize);
    let shape = match layout {
        Layout::Hwc => [samples.len(), h, w, CHANNELS],
        Layout::Chw => [samples.len(), CHANNELS, h, w],
    };
    ImageBatch { data, shape, layout, samples, pool: None }
}

fn collate_into<T: Copy>(mut data: Vec<T>, images: Vec<Image<T>>) -> Result<ImageBatch<T>, ImageError> {
    let size = common_size(&images)?;
    data.clear();
    data.reserve_exact(size.0 as usize * size.1 as usize * CHANNELS * images.len());
    let mut samples = Vec::with_capacity(images.len());
    for img in images {
        data.extend_from_slice(&img.data);
        samples.push(img.sample);
    }
    Ok(batch_of(data, samples, size, Layout::Hwc))
}

/// Writes `map(channel, value)` of every value of `images` into `data` in `layout`'s order.
/// `data` is resized, not cleared: a reused buffer of the same size is overwritten in place,
/// without first being zeroed.
fn convert_into<T: Copy, U: Copy + Default>(
    mut data: Vec<U>,
    images: Vec<Image<T>>,
    layout: Layout,
    map: impl Fn(usize, T) -> U,
) -> Result<ImageBatch<U>, ImageError> {
    let size = common_size(&images)?;
    let per = size.0 as usize * size.1 as usize * CHANNELS;
    data.resize(per * images.len(), U::default());
    let mut samples = Vec::with_capacity(images.len());
    for (img, out) in images.into_iter().zip(data.chunks_exact_mut(per)) {
        write_image(out, &img.data, layout, &map);
        samples.push(img.sample);
    }
    Ok(batch_of(data, samples, size, layout))
}

/// Writes `map(channel, value)` of one image's HWC `values` into its slot `out` of a batch in
/// `layout`'s order (an image's slot is contiguous in both layouts).
pub(super) fn write_image<T: Copy, U: Copy>(out: &mut [U], values: &[T], layout: Layout, map: impl Fn(usize, T) -> U) {
    match layout {
        Layout::Hwc => {
            for (o, px) in out.chunks_exact_mut(CHANNELS).zip(values.chunks_exact(CHANNELS)) {
                (o[0], o[1], o[2]) = (map(0, px[0]), map(1, px[1]), map(2, px[2]));
            }
        }
        Layout::Chw => {
            // Three sequential write streams, one read stream: each pixel is read once.
            let plane = out.len() / CHANNELS;
            let (r, gb) = out.split_at_mut(plane);
            let (g, b) = gb.split_at_mut(plane);
            for (((r, g), b), px) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()).zip(values.chunks_exact(CHANNELS))
            {
                (*r, *g, *b) = (map(0, px[0]), map(1, px[1]), map(2, px[2]));
            }
        }
    }
}

/// Per-channel `(x / 255 - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    /// Per-channel mean, in `[0, 1]` units.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in `[0, 1]` units.
    pub std: [f32; 3],
}

impl Normalize {
    /// ImageNet's statistics, as torchvision's models expect them.
    pub const IMAGENET: Normalize = Normalize { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

    /// Every channel's 256 results: a table lookup per value instead of arithmetic.
    pub(super) fn table(&self) -> [[f32; 256]; CHANNELS] {
        std::array::from_fn(|c| std::array::from_fn(|x| (x as f32 / 255.0 - self.mean[c]) / self.std[c]))
    }
}

/// Turns pixels into normalized floats.
pub fn normalize(image: Image<u8>, n: &Normalize) -> Image<f32> {
    let table = n.table();
    let mut data = vec![0.0f32; image.data.len()];
    for (out, px) in data.chunks_exact_mut(CHANNELS).zip(image.data.chunks_exact(CHANNELS)) {
        out[0] = table[0][usize::from(px[0])];
        out[1] = table[1][usize::from(px[1])];
        out[2] = table[2][usize::from(px[2])];
    }
    Image { sample: image.sample, width: image.width, height: image.height, data }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;

    fn image(index: u64, w: u32, h: u32, v: u8) -> Image<u8> {
        let sample =
            Sample { index, epoch: 0, path: Arc::from(Path::new(&format!("{index}.jpg"))), label: Some(index as u32) };
        Image { sample, width: w, height: h, data: vec![v; (w * h) as usize * CHANNELS] }
    }

    #[test]
    fn collation_lays_images_out_in_order() {
        let b = collate(vec![image(0, 2, 3, 10), image(1, 2, 3, 20)]).unwrap();
        assert_eq!(b.shape, [2, 3, 2, 3]);
        assert_eq!(b.data.len(), 2 * 3 * 2 * 3);
        assert!(b.image(0).iter().all(|&x| x == 10) && b.image(1).iter().all(|&x| x == 20));
        assert_eq!(b.labels(), Some(vec![0, 1]));
    }

    #[test]
    fn a_pool_reuses_the_buffers_of_dropped_batches() {
        let pool = BatchPool::new(2);
        let b = pool.collate(vec![image(0, 4, 4, 1), image(1, 4, 4, 2)]).unwrap();
        let addr = b.data.as_ptr();
        drop(b);
        assert_eq!(pool.idle(), 1);
        let again = pool.collate(vec![image(2, 4, 4, 3), image(3, 4, 4, 4)]).unwrap();
        assert_eq!(again.data.as_ptr(), addr, "the same memory");
        assert!(again.image(0).iter().all(|&x| x == 3) && again.image(1).iter().all(|&x| x == 4));
        let kept = again.into_data();
        assert_eq!((kept.len(), pool.idle()), (2 * 4 * 4 * 3, 0), "a kept buffer does not go back");
    }

    #[test]
    fn mixed_sizes_are_refused_naming_the_image() {
        let e = collate(vec![image(0, 2, 3, 0), image(7, 3, 3, 0)]).unwrap_err().to_string();
        assert!(e.starts_with("7.jpg: cannot collate: image 1 is (3, 3)"), "{e}");
    }

    /// An image whose value at (x, y, c) is `x + 10 y + 100 c`, all distinct below 256.
    fn ramp(index: u64, w: u32, h: u32) -> Image<u8> {
        let mut img = image(index, w, h, 0);
        for (i, v) in img.data.iter_mut().enumerate() {
            let (px, c) = (i / CHANNELS, i % CHANNELS);
            *v = (px as u32 % w + 10 * (px as u32 / w) + 100 * c as u32) as u8;
        }
        img
    }

    #[test]
    fn a_chw_batch_holds_one_plane_per_channel() {
        let b = collate_layout(vec![ramp(0, 4, 3), ramp(1, 4, 3)], Layout::Chw).unwrap();
        assert_eq!((b.shape, b.layout, b.image_size()), ([2, 3, 3, 4], Layout::Chw, (4, 3)));
        for i in 0..2 {
            let img = b.image(i);
            for (c, y, x) in (0..3).flat_map(|c| (0..3).flat_map(move |y| (0..4).map(move |x| (c, y, x)))) {
                assert_eq!(usize::from(img[c * 12 + y * 4 + x]), x + 10 * y + 100 * c, "image {i} ({x}, {y}, {c})");
            }
        }
        let hwc = collate_layout(vec![ramp(0, 4, 3)], Layout::Hwc).unwrap();
        assert_eq!((hwc.shape, hwc.image_size()), ([1, 3, 4, 3], (4, 3)));
        assert_eq!(hwc.data, ramp(0, 4, 3).data);
    }

    #[test]
    fn fused_normalization_equals_normalizing_then_collating_in_either_layout() {
        let n = Normalize::IMAGENET;
        let images = || vec![ramp(0, 5, 2), ramp(1, 5, 2), ramp(2, 5, 2)];
        let want_hwc = collate(images().into_iter().map(|i| normalize(i, &n)).collect()).unwrap();
        let fused = collate_normalized(images(), &n, Layout::Hwc).unwrap();
        assert_eq!(fused, want_hwc, "bit for bit: the same table");
        let want_chw = collate_layout(images().into_iter().map(|i| normalize(i, &n)).collect(), Layout::Chw).unwrap();
        let fused = collate_normalized(images(), &n, Layout::Chw).unwrap();
        assert_eq!(fused, want_chw);
        assert_eq!(fused.labels(), Some(vec![0, 1, 2]));
        let e = collate_normalized(vec![ramp(0, 5, 2), ramp(9, 2, 5)], &n, Layout::Chw).unwrap_err().to_string();
        assert!(e.starts_with("9.jpg: cannot collate: image 1 is (2, 5)"), "{e}");
        let mut short = ramp(4, 5, 2);
        short.data.pop();
        for e in [
            collate_normalized(vec![ramp(3, 5, 2), short.clone()], &n, Layout::Chw).unwrap_err(),
            collate(vec![ramp(3, 5, 2), short]).unwrap_err(),
        ] {
            assert_eq!(e.to_string(), "4.jpg: cannot collate: image 1 holds 29 values, not its 5 × 2 × 3 = 30");
        }
    }

    #[test]
    fn a_pooled_normalized_batch_overwrites_every_value_of_a_reused_buffer() {
        let pool = BatchPool::new(1);
        let n = Normalize { mean: [0.0; 3], std: [1.0; 3] };
        let first = pool.collate_normalized(vec![image(0, 3, 3, 255), image(1, 3, 3, 255)], &n, Layout::Chw).unwrap();
        let addr = first.data.as_ptr();
        drop(first);
        let smaller = pool.collate_normalized(vec![image(2, 3, 3, 0)], &n, Layout::Chw).unwrap();
        assert_eq!(smaller.data.as_ptr(), addr, "the same memory");
        assert_eq!(smaller.data, vec![0.0; 27], "nothing of the last batch is left");
        let bytes = BatchPool::new(1);
        drop(bytes.collate(vec![image(4, 3, 3, 7)]).unwrap());
        let again = bytes.collate_layout(vec![ramp(3, 3, 3)], Layout::Chw).unwrap();
        assert_eq!(again, collate_layout(vec![ramp(3, 3, 3)], Layout::Chw).unwrap(), "an HWC buffer reused as CHW");
    }

    #[test]
    fn normalization_maps_each_channel() {
        let n = Normalize { mean: [0.5, 0.0, 1.0], std: [0.5, 1.0, 0.25] };
        let out = normalize(image(0, 1, 1, 255), &n);
        let want = [1.0, 1.0, 0.0];
        assert!(out.data.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5), "{:?}", out.data);
    }
}
