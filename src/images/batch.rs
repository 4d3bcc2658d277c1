//! Normalization to floats and collation of images into one contiguous `[B, H, W, C]` buffer.

use super::{CHANNELS, Image, ImageError, ImageErrorKind, Sample};

/// A batch of same-sized images in one buffer, `shape = [B, H, W, C]`, row-major: image `b`
/// is `data[b * H * W * C ..][.. H * W * C]`. The consumer owns the buffer; hand it to a
/// tensor library as is.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBatch<T> {
    /// `B × H × W × C` values.
    pub data: Vec<T>,
    /// `[B, H, W, C]`.
    pub shape: [usize; 4],
    /// The batch's samples, in batch order (paths, source indices, labels).
    pub samples: Vec<Sample>,
}

impl<T> ImageBatch<T> {
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
    let Some(first) = images.first() else {
        return Ok(ImageBatch { data: Vec::new(), shape: [0, 0, 0, CHANNELS], samples: Vec::new() });
    };
    let want = (first.width, first.height);
    if let Some((index, img)) = images.iter().enumerate().find(|(_, i)| (i.width, i.height) != want) {
        let kind = ImageErrorKind::Collate { index, got: (img.width, img.height), want };
        return Err(ImageError::new(&img.sample.path, kind));
    }
    let per = want.0 as usize * want.1 as usize * CHANNELS;
    let mut data = Vec::with_capacity(per * images.len());
    let mut samples = Vec::with_capacity(images.len());
    for img in images {
        data.extend_from_slice(&img.data);
        samples.push(img.sample);
    }
    Ok(ImageBatch { shape: [samples.len(), want.1 as usize, want.0 as usize, CHANNELS], data, samples })
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
    // x / 255 / std - mean / std: one multiply-add per value.
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * n.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| -n.mean[c] / n.std[c]);
    let mut data = Vec::with_capacity(image.data.len());
    for px in image.data.chunks_exact(CHANNELS) {
        for c in 0..CHANNELS {
            data.push(f32::from(px[c]).mul_add(scale[c], shift[c]));
        }
    }
    Image { sample: image.sample, width: image.width, height: image.height, data }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;

    fn image(index: u64, w: u32, h: u32, v: u8) -> Image<u8> {
        let sample = Sample { index, path: Arc::from(Path::new(&format!("{index}.jpg"))), label: Some(index as u32) };
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
