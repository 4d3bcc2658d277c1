//! Random erasing (timm's `RandomErasing`, Zhong et al. 2017): with some chance, a random
//! rectangle of each normalized image is overwritten with zeros or random normal values.
//!
//! ```text
//!  ImageBatch<f32> (normalized) ─▶ Erasing::apply ─▶ per image: erase? (prob) → count boxes
//!     each box: area ∈ [min, max] of the image, aspect e^U(ln lo, ln hi), 10 tries to fit
//!     fill: zeros, one normal value per channel, or one per value
//! ```
//!
//! It runs after normalization, as in timm (where zero is the dataset's mean colour). Each
//! image's draws come from its own generator (the seed, the sample's epoch and its index): an
//! image is erased the same way in every batch, placement and run, and anew each epoch.

use super::augment::{Uniform, view_mix};
use super::{ImageBatch, Layout, Sample, ViewBatch};

/// Random-erasing settings; `Erasing::new(seed)` starts from timm's defaults (`prob` 0.5, area
/// 0.02–1/3 of the image, aspect 0.3–1/0.3, one box, filled with zeros). timm's ImageNet
/// recipes use `prob` 0.25 with `Fill::PerPixel` (`--reprob 0.25 --remode pixel`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Erasing {
    seed: u64,
    prob: f64,
    area: (f64, f64),
    log_ratio: (f64, f64),
    count: (u32, u32),
    fill: Fill,
}

/// What an erased box is filled with (timm's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fill {
    /// Zeros: the mean colour, on normalized images (`const`).
    #[default]
    Zero,
    /// One standard normal value per channel (`rand`).
    PerChannel,
    /// A standard normal value for every value (`pixel`).
    PerPixel,
}

/// A box to erase: `top`, `left`, `height`, `width` in pixels, inside the image.
pub type ErasedBox = (usize, usize, usize, usize);

/// Why random-erasing settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum ErasingError {
    /// A probability outside `[0, 1]`.
    #[error("erasing prob {0}: need a probability in [0, 1]")]
    Probability(f64),
    /// An area range that is not `0 < min <= max <= 1`.
    #[error("erasing area {0}..{1}: need 0 < min <= max <= 1 (fractions of the image)")]
    Area(f64, f64),
    /// An aspect range that is not `0 < min <= max`, finite.
    #[error("erasing ratio {0}..{1}: need 0 < min <= max, finite (height over width)")]
    Ratio(f64, f64),
    /// A count range that is not `1 <= min <= max`.
    #[error("erasing count {0}..={1}: need 1 <= min <= max boxes")]
    Count(u32, u32),
}

/// Tries to fit a box before giving that box up (timm's).
const ATTEMPTS: usize = 10;

/// Keeps fill draws apart from box draws and from [`Augment`](super::Augment)'s stream when the
/// same seed is given to both.
const FILL_STREAM: u64 = 0x5eed_f111_0000_0001;
const BOX_STREAM: u64 = 0x5eed_b0c5_0000_0002;

impl Erasing {
    /// timm's defaults, drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        let ratio: f64 = 0.3;
        Self {
            seed,
            prob: 0.5,
            area: (0.02, 1.0 / 3.0),
            log_ratio: (ratio.ln(), -ratio.ln()),
            count: (1, 1),
            fill: Fill::Zero,
        }
    }

    /// The chance that an image is erased.
    pub fn prob(mut self, p: f64) -> Result<Self, ErasingError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(ErasingError::Probability(p));
        }
        self.prob = p;
        Ok(self)
    }

    /// The range of a box's area, as fractions of the image (shared among `count` boxes).
    pub fn area(mut self, min: f64, max: f64) -> Result<Self, ErasingError> {
        if !(min > 0.0 && min <= max && max <= 1.0) {
            return Err(ErasingError::Area(min, max));
        }
        self.area = (min, max);
        Ok(self)
    }

    /// The range of a box's aspect ratio (height over width), drawn log-uniformly.
    pub fn ratio(mut self, min: f64, max: f64) -> Result<Self, ErasingError> {
        if !(min > 0.0 && min <= max && max.is_finite()) {
            return Err(ErasingError::Ratio(min, max));
        }
        self.log_ratio = (min.ln(), max.ln());
        Ok(self)
    }

    /// Boxes per erased image: drawn in `min..=max`.
    pub fn count(mut self, min: u32, max: u32) -> Result<Self, ErasingError> {
        if !(1 <= min && min <= max) {
            return Err(ErasingError::Count(min, max));
        }
        self.count = (min, max);
        Ok(self)
    }

    /// What erased boxes are filled with.
    pub fn fill(mut self, fill: Fill) -> Self {
        self.fill = fill;
        self
    }

    /// The boxes erased in `sample`'s image of `width × height` (none when the `prob` draw
    /// misses, or no box fits in its tries).
    pub fn draw(&self, sample: &Sample, width: usize, height: usize) -> Vec<ErasedBox> {
        let mut rng = Uniform::for_sample(self.seed ^ BOX_STREAM, sample);
        if rng.unit() >= self.prob {
            return Vec::new();
        }
        let (min, max) = self.count;
        let count = min + rng.below(max - min + 1);
        let area = (width * height) as f64;
        let mut boxes = Vec::new();
        for _ in 0..count {
            for _ in 0..ATTEMPTS {
                let target = rng.between(self.area.0, self.area.1) * area / f64::from(count);
                let aspect = rng.between(self.log_ratio.0, self.log_ratio.1).exp();
                let h = (target * aspect).sqrt().round() as usize;
                let w = (target / aspect).sqrt().round() as usize;
                if w < width && h < height {
                    let top = rng.below((height - h + 1) as u32) as usize;
                    let left = rng.below((width - w + 1) as u32) as usize;
                    boxes.push((top, left, h, w));
                    break;
                }
            }
        }
        boxes
    }

    /// Erases every image of `batch` as [`Erasing::draw`] says, in place.
    pub fn apply(&self, mut batch: ImageBatch<f32>) -> ImageBatch<f32> {
        let (width, height) = batch.image_size();
        let size = batch.shape[1] * batch.shape[2] * batch.shape[3];
        let channels = size / (width * height).max(1);
        let layout = batch.layout;
        let ImageBatch { data, samples, .. } = &mut batch;
        for (image, sample) in data.chunks_exact_mut(size.max(1)).zip(samples.iter()) {
            let mut values = Normals { rng: Uniform::for_sample(self.seed ^ FILL_STREAM, sample), spare: None };
            for (top, left, h, w) in self.draw(sample, width, height) {
                let colour: Vec<f32> = match self.fill {
                    Fill::Zero => vec![0.0; channels],
                    Fill::PerChannel => (0..channels).map(|_| values.next()).collect(),
                    Fill::PerPixel => Vec::new(),
                };
                let mut value = |c: usize| if colour.is_empty() { values.next() } else { colour[c] };
                match layout {
                    Layout::Hwc => {
                        for y in top..top + h {
                            let row = &mut image[(y * width + left) * channels..][..w * channels];
                            for (k, v) in row.iter_mut().enumerate() {
                                *v = value(k % channels);
                            }
                        }
                    }
                    Layout::Chw => {
                        for c in 0..channels {
                            for y in top..top + h {
                                image[(c * height + y) * width + left..][..w].iter_mut().for_each(|v| *v = value(c));
                            }
                        }
                    }
                }
            }
        }
        batch
    }
}

impl Erasing {
    /// Erases views `from..` of `batch` (each view's batch as [`apply`](Self::apply) erases
    /// one), every view with draws of its own: its position is mixed into the seed as
    /// [`Views`](super::Views) mixes it into the crops', so two views of an image lose
    /// different boxes. timm's `--aug-splits` with random erasing leaves the clean first split
    /// alone: `from = 1`.
    pub fn apply_views(&self, batch: ViewBatch<f32>, from: usize) -> ViewBatch<f32> {
        let views = batch.views.into_iter().enumerate();
        ViewBatch { views: views.map(|(v, b)| if v < from { b } else { self.apply_view(b, v) }).collect() }
    }

    /// Erases `batch` as view `view` of a batch of views ([`apply_views`](Self::apply_views)
    /// erases each view so), for views held in something else (mixed batches of views).
    pub fn apply_view(&self, batch: ImageBatch<f32>, view: usize) -> ImageBatch<f32> {
        Self { seed: self.seed ^ view_mix(view), ..*self }.apply(batch)
    }
}

/// Standard normal fill values, two per accepted draw (Marsaglia's polar method: one logarithm
/// and no trigonometry per pair, from one 64-bit draw per try): a per-pixel fill draws one for
/// every value it erases, and Box–Muller's `ln`, `sqrt` and `cos` per value cost 3 × as much.
struct Normals {
    rng: Uniform,
    spare: Option<f32>,
}

impl Normals {
    fn next(&mut self) -> f32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        loop {
            let bits = self.rng.0.next();
            // Two uniforms in (-1, 1) from the high and low 32 bits.
            let unit = |b: u64| (b as u32 >> 8) as f32 * (2.0 / (1u32 << 24) as f32) - 1.0;
            let (u, v) = (unit(bits >> 32), unit(bits));
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let factor = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(v * factor);
                return u * factor;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::images::{Image, collate_layout};

    fn sample(index: u64, epoch: u64) -> Sample {
        Sample { index, epoch, path: Arc::from(Path::new("e.jpg")), label: None }
    }

    /// `n` images of `w × h` whose every value is 100 + its image number (never a fill value
    /// of 0, and a normal draw equals it with probability 0).
    fn batch(n: u64, w: u32, h: u32, layout: Layout) -> ImageBatch<f32> {
        let images = (0..n)
            .map(|i| Image {
                width: w,
                height: h,
                data: vec![100.0 + i as f32; (w * h * 3) as usize],
                sample: sample(i, 0),
            })
            .collect();
        collate_layout(images, layout).unwrap()
    }

    #[test]
    fn views_from_the_first_erased_are_erased_each_with_its_own_boxes() {
        let erasing = Erasing::new(5).prob(1.0).unwrap();
        let views = ViewBatch { views: (0..4).map(|_| batch(6, 20, 15, Layout::Chw)).collect() };
        let out = erasing.apply_views(views.clone(), 1);
        assert_eq!(out.views[0], views.views[0], "view 0 is the clean split: untouched");
        for v in 1..4 {
            let alone = Erasing { seed: 5 ^ view_mix(v), ..erasing }.apply(views.views[v].clone());
            assert_eq!(out.views[v], alone, "view {v}: erased with its own draws");
            assert_ne!(out.views[v], views.views[v], "view {v} lost boxes");
        }
        assert_ne!(out.views[1], out.views[2], "two views of the same images lose different boxes");
        let all = erasing.apply_views(views.clone(), 0);
        assert_eq!(all.views[0], erasing.apply(views.views[0].clone()), "view 0 draws what apply draws");
        assert_eq!(erasing.apply_views(views.clone(), 9), views, "from past the last view: nothing erased");
    }

    /// Exactly the drawn boxes change, filled as `fill` says, the same in both layouts.
    #[test]
    fn exactly_the_drawn_boxes_are_filled_in_either_layout() {
        let (w, h) = (20, 15);
        for fill in [Fill::Zero, Fill::PerChannel, Fill::PerPixel] {
            let erasing = Erasing::new(3).prob(1.0).unwrap().count(1, 3).unwrap().fill(fill);
            let outs: Vec<ImageBatch<f32>> =
                [Layout::Hwc, Layout::Chw].map(|l| erasing.apply(batch(6, w as u32, h as u32, l))).into();
            let mut erased_any = false;
            for i in 0..6 {
                let boxes = erasing.draw(&outs[0].samples[i], w, h);
                erased_any |= !boxes.is_empty();
                assert!(boxes.iter().all(|&(t, l, bh, bw)| t + bh <= h && l + bw <= w && bh > 0 && bw > 0));
                for (y, x) in (0..h).flat_map(|y| (0..w).map(move |x| (y, x))) {
                    let inside =
                        boxes.iter().any(|&(t, l, bh, bw)| (t..t + bh).contains(&y) && (l..l + bw).contains(&x));
                    let px: Vec<f32> = (0..3).map(|c| outs[0].value(i, x, y, c)).collect();
                    let chw: Vec<f32> = (0..3).map(|c| outs[1].value(i, x, y, c)).collect();
                    if !inside {
                        assert!(px.iter().chain(&chw).all(|&v| v == 100.0 + i as f32), "image {i} ({x},{y}) untouched");
                        continue;
                    }
                    assert!(px.iter().all(|&v| v != 100.0 + i as f32), "image {i} ({x},{y}) erased");
                    match fill {
                        Fill::Zero => assert_eq!(px, [0.0; 3]),
                        // Per channel: one colour per box, the same in both layouts.
                        Fill::PerChannel if boxes.len() == 1 => {
                            assert_eq!(px, chw);
                            let (t, l, _, _) = boxes[0];
                            assert_eq!(px, (0..3).map(|c| outs[0].value(i, l, t, c)).collect::<Vec<_>>());
                        }
                        _ => {}
                    }
                }
            }
            assert!(erased_any, "{fill:?}: some image erased");
        }
    }

    /// Over many images: the `prob` share is erased; box areas stay within the range; per-pixel
    /// fills are standard normal.
    #[test]
    fn draws_follow_their_settings() {
        let (w, h) = (64, 48);
        let erasing = Erasing::new(1).prob(0.25).unwrap().area(0.05, 0.2).unwrap();
        let n = 8_000;
        let drawn: Vec<Vec<ErasedBox>> = (0..n).map(|i| erasing.draw(&sample(i, 2), w, h)).collect();
        let erased = drawn.iter().filter(|b| !b.is_empty()).count() as f64 / n as f64;
        assert!((erased - 0.25).abs() < 0.02, "{erased} erased");
        for &(_, _, bh, bw) in drawn.iter().flatten() {
            let share = (bh * bw) as f64 / (w * h) as f64;
            // Rounding each side moves the area a little past the range.
            assert!((0.04..0.22).contains(&share), "box of {share} of the image");
        }
        let noisy = Erasing::new(4).prob(1.0).unwrap().area(0.3, 0.3).unwrap().fill(Fill::PerPixel);
        let out = noisy.apply(batch(40, w as u32, h as u32, Layout::Chw));
        let fills: Vec<f64> = out.data.iter().filter(|&&v| v < 50.0).map(|&v| f64::from(v)).collect();
        let mean = fills.iter().sum::<f64>() / fills.len() as f64;
        let var = fills.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / fills.len() as f64;
        assert!(fills.len() > 40 * 700 && mean.abs() < 0.02 && (var - 1.0).abs() < 0.03, "mean {mean}, var {var}");
    }

    #[test]
    fn an_image_is_erased_alike_in_any_batch_and_anew_each_epoch() {
        let erasing = Erasing::new(8).prob(1.0).unwrap();
        let boxes = |i, e| erasing.draw(&sample(i, e), 32, 32);
        let same = (0..50).filter(|&i| boxes(i, 0) == boxes(i, 0)).count();
        let new = (0..50).filter(|&i| boxes(i, 0) != boxes(i, 1)).count();
        assert_eq!(same, 50);
        assert!(new >= 48, "{new} of 50 erased differently in epoch 1");
        // Image 3 in a batch of 6, or alone: the same pixels.
        let alone = {
            let mut b = batch(6, 16, 16, Layout::Hwc);
            b.samples.swap(0, 3);
            b.data.chunks_exact_mut(16 * 16 * 3).for_each(|img| img.fill(103.0));
            erasing.apply(b)
        };
        let in_batch = erasing.apply(batch(6, 16, 16, Layout::Hwc));
        assert_eq!(in_batch.image(3), alone.image(0));
    }

    #[test]
    fn bad_settings_are_refused_naming_the_range() {
        let e = || Erasing::new(0);
        let cases = [
            (e().prob(-0.5).unwrap_err(), "erasing prob -0.5"),
            (e().area(0.0, 0.3).unwrap_err(), "erasing area 0..0.3: need 0 < min <= max <= 1"),
            (e().area(0.5, 0.3).unwrap_err(), "erasing area 0.5..0.3"),
            (e().ratio(1.0, f64::INFINITY).unwrap_err(), "erasing ratio 1..inf"),
            (e().count(0, 2).unwrap_err(), "erasing count 0..=2: need 1 <= min <= max"),
        ];
        for (err, says) in cases {
            assert!(err.to_string().contains(says), "{err}");
        }
    }
}
