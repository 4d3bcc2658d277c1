//! Normalization to floats and collation of images into one contiguous `[B, H, W, C]` buffer.
//!
//! A batch buffer is large (4.8 MB for 32 × 224 × 224 × 3 bytes) and fresh memory costs a page
//! fault per 4 KiB: faulting a new buffer in takes longer than copying the images into it. So a
//! [`BatchPool`] keeps the buffers of batches the consumer has dropped, and the next collation
//! copies into memory that is already mapped.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::{CHANNELS, Image, ImageError, ImageErrorKind, Sample};

/// A batch of same-sized images in one buffer, `shape = [B, H, W, C]`, row-major: image `b`
/// is `data[b * H * W * C ..][.. H * W * C]`. The consumer owns the buffer; hand it to a
/// tensor library as is, or keep it ([`ImageBatch::into_data`]). Dropped, a pooled batch's
/// buffer goes back to its [`BatchPool`].
#[derive(Debug, Clone)]
pub struct ImageBatch<T> {
    /// `B × H × W × C` values.
    pub data: Vec<T>,
    /// `[B, H, W, C]`.
    pub shape: [usize; 4],
    /// The batch's samples, in batch order (paths, source indices, labels).
    pub samples: Vec<Sample>,
    pool: Option<Arc<BatchPool<T>>>,
}

impl<T: PartialEq> PartialEq for ImageBatch<T> {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data && self.shape == other.shape && self.samples == other.samples
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

    /// [`collate`] into a pooled buffer; the batch returns it when dropped.
    pub fn collate(self: &Arc<Self>, images: Vec<Image<T>>) -> Result<ImageBatch<T>, ImageError> {
        let mut batch = collate_into(self.free.pop().unwrap_or_default(), images)?;
        batch.pool = Some(self.clone());
        Ok(batch)
    }

    /// Buffers waiting for reuse.
    pub fn idle(&self) -> usize {
        self.free.len()
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

    /// Every sample's label, or `None` when some sample has none.
    pub fn labels(&self) -> Option<Vec<u32>> {
        self.samples.iter().map(|s| s.label).collect()
    }

    /// Image `b`'s values (`H × W × C`).
    pub fn image(&self, b: usize) -> &[T] {
        let per = self.shape[1] * self.shape[2] * self.shape[3];
        &self.data[b * per..(b + 1) * per]
    }
}

/// Copies `images` (all one size) into one batch buffer, in order: the one copy collation
/// needs. Images of different sizes are an error naming the first that differs.
pub fn collate<T: Copy>(images: Vec<Image<T>>) -> Result<ImageBatch<T>, ImageError> {
    collate_into(Vec::new(), images)
}

fn collate_into<T: Copy>(mut data: Vec<T>, images: Vec<Image<T>>) -> Result<ImageBatch<T>, ImageError> {
    data.clear();
    let Some(first) = images.first() else {
        return Ok(ImageBatch { data, shape: [0, 0, 0, CHANNELS], samples: Vec::new(), pool: None });
    };
    let want = (first.width, first.height);
    if let Some((index, img)) = images.iter().enumerate().find(|(_, i)| (i.width, i.height) != want) {
        let kind = ImageErrorKind::Collate { index, got: (img.width, img.height), want };
        return Err(ImageError::new(&img.sample.path, kind));
    }
    let per = want.0 as usize * want.1 as usize * CHANNELS;
    data.reserve_exact(per * images.len());
    let mut samples = Vec::with_capacity(images.len());
    for img in images {
        data.extend_from_slice(&img.data);
        samples.push(img.sample);
    }
    Ok(ImageBatch { shape: [samples.len(), want.1 as usize, want.0 as usize, CHANNELS], data, samples, pool: None })
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
}

/// Turns pixels into normalized floats.
pub fn normalize(image: Image<u8>, n: &Normalize) -> Image<f32> {
    // 256 values per channel: a table lookup per value instead of arithmetic.
    let table: [[f32; 256]; CHANNELS] =
        std::array::from_fn(|c| std::array::from_fn(|x| (x as f32 / 255.0 - n.mean[c]) / n.std[c]));
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

    #[test]
    fn normalization_maps_each_channel() {
        let n = Normalize { mean: [0.5, 0.0, 1.0], std: [0.5, 1.0, 0.25] };
        let out = normalize(image(0, 1, 1, 255), &n);
        let want = [1.0, 1.0, 0.0];
        assert!(out.data.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5), "{:?}", out.data);
    }
}
