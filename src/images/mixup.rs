//! Mixup and CutMix on whole batches, with the soft targets they imply (timm's `Mixup` in its
//! default batch mode, as timm's ImageNet training recipes use it).
//!
//! ```text
//!  ImageBatch (B images, labels) ─▶ Mixup::apply ─▶ MixedBatch { batch, targets [B, classes], mix }
//!     draw per batch: mix or not (prob) → CutMix or Mixup (switch_prob) → λ ~ Beta(α, α)
//!     image i is mixed with image B−1−i (the batch reversed, as timm's `x.flip(0)`)
//! ```
//!
//! - **Mixup:** `x_i ← λ·x_i + (1−λ)·x_{B−1−i}`, computed for both images of a pair at once, in
//!   place.
//! - **CutMix:** a box of about `(1−λ)` of the image's area, centred at a random pixel and
//!   clipped to the image, is swapped between the two images of a pair; λ is then corrected to
//!   the box actually cut (timm's `correct_lam`).
//! - **Targets:** label smoothing spreads `smoothing` over the classes (`on = 1 − smoothing +
//!   smoothing/classes`, `off = smoothing/classes`), and `target_i = λ·y_i + (1−λ)·y_{B−1−i}`.
//!
//! The draws come from a generator seeded by the seed and the batch's samples (their epochs and
//! indices), so the same batch is always mixed the same way; with `ordered` loading the batches,
//! and so the mixes, are the same in every placement. In an odd-sized batch the middle image is
//! paired with itself and stays as it was.

use super::augment::Uniform;
use super::folder::{SplitMix64, epoch_mix};
use super::{ImageBatch, Layout, Sample, ViewBatch};

/// Batch-level Mixup/CutMix settings; `Mixup::new(seed, classes)` starts from timm's recipe
/// defaults (`mixup_alpha` 0.8, `cutmix_alpha` 1.0, `prob` 1.0, `switch_prob` 0.5,
/// `label_smoothing` 0.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mixup {
    seed: u64,
    mixup_alpha: f64,
    cutmix_alpha: f64,
    prob: f64,
    switch_prob: f64,
    smoothing: f64,
    classes: u32,
}

/// What one batch got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mix {
    /// Left as it was (the `prob` draw missed); targets are the smoothed labels.
    None,
    /// Every image blended with its pair: `λ` of its own, `1 − λ` of the other.
    Mixup {
        /// The image's own share.
        lambda: f32,
    },
    /// A box swapped between the images of each pair.
    Cutmix {
        /// The share of the image left its own (1 − the box's area over the image's).
        lambda: f32,
        /// The box's rows, `top..bottom`.
        rows: (usize, usize),
        /// The box's columns, `left..right`.
        cols: (usize, usize),
    },
}

impl Mix {
    /// The weight of each image's own label in its target.
    pub fn lambda(&self) -> f32 {
        match *self {
            Mix::None => 1.0,
            Mix::Mixup { lambda } | Mix::Cutmix { lambda, .. } => lambda,
        }
    }
}

/// A mixed batch and the soft targets to train it against.
#[derive(Debug, Clone)]
pub struct MixedBatch<T> {
    /// The images, mixed in place (shape, layout and samples unchanged).
    pub batch: ImageBatch<T>,
    /// `[B, classes]` row-major: image `b`'s target is `targets[b * classes ..][.. classes]`.
    pub targets: Vec<f32>,
    /// The number of classes (a target row's length).
    pub classes: usize,
    /// What was done.
    pub mix: Mix,
}

/// Why Mixup settings were refused, or a batch could not be mixed.
#[derive(Debug, thiserror::Error)]
pub enum MixupError {
    /// An alpha that is negative or not finite.
    #[error("{what} {value}: need a finite value >= 0 (0 turns it off)")]
    Alpha {
        /// `mixup_alpha` or `cutmix_alpha`.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// Both alphas are 0.
    #[error("mixup_alpha and cutmix_alpha are both 0: nothing would be mixed (set one above 0, or leave mixup out)")]
    NothingToMix,
    /// A probability outside `[0, 1]`.
    #[error("{what} {value}: need a probability in [0, 1]")]
    Probability {
        /// `prob` or `switch_prob`.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// Label smoothing outside `[0, 1)`.
    #[error("label_smoothing {0}: need a value in [0, 1)")]
    Smoothing(f64),
    /// No classes.
    #[error("classes 0: targets need at least one class (the folder's classes().len())")]
    NoClasses,
    /// A sample without a label.
    #[error(
        "{0}: no label, and mixed targets need every sample's class (load a folder of class sub-directories, or a list with labels)"
    )]
    Unlabelled(String),
    /// A label that is not below `classes`.
    #[error("{path}: label {label} is not below the {classes} classes Mixup was made for")]
    Label {
        /// The sample's file.
        path: String,
        /// Its label.
        label: u32,
        /// The classes given to [`Mixup::new`].
        classes: u32,
    },
}

impl Mixup {
    /// timm's recipe defaults for `classes` classes, drawing from `seed`.
    pub fn new(seed: u64, classes: u32) -> Result<Self, MixupError> {
        if classes == 0 {
            return Err(MixupError::NoClasses);
        }
        Ok(Self { seed, mixup_alpha: 0.8, cutmix_alpha: 1.0, prob: 1.0, switch_prob: 0.5, smoothing: 0.1, classes })
    }

    /// Mixup's `λ ~ Beta(α, α)`; 0 turns Mixup off (CutMix only).
    pub fn mixup_alpha(mut self, alpha: f64) -> Result<Self, MixupError> {
        self.mixup_alpha = check_alpha("mixup_alpha", alpha)?;
        self.any_alpha()
    }

    /// CutMix's `λ ~ Beta(α, α)`; 0 turns CutMix off (Mixup only).
    pub fn cutmix_alpha(mut self, alpha: f64) -> Result<Self, MixupError> {
        self.cutmix_alpha = check_alpha("cutmix_alpha", alpha)?;
        self.any_alpha()
    }

    /// The chance that a batch is mixed at all.
    pub fn prob(mut self, p: f64) -> Result<Self, MixupError> {
        self.prob = check_probability("prob", p)?;
        Ok(self)
    }

    /// With both enabled, the chance that a mixed batch gets CutMix rather than Mixup.
    pub fn switch_prob(mut self, p: f64) -> Result<Self, MixupError> {
        self.switch_prob = check_probability("switch_prob", p)?;
        Ok(self)
    }

    /// The share of each target spread evenly over all classes.
    pub fn label_smoothing(mut self, smoothing: f64) -> Result<Self, MixupError> {
        if !(0.0..1.0).contains(&smoothing) {
            return Err(MixupError::Smoothing(smoothing));
        }
        self.smoothing = smoothing;
        Ok(self)
    }

    fn any_alpha(self) -> Result<Self, MixupError> {
        if self.mixup_alpha == 0.0 && self.cutmix_alpha == 0.0 { Err(MixupError::NothingToMix) } else { Ok(self) }
    }

    /// What [`Mixup::apply`] does to a batch of these samples, of images `height × width`.
    pub fn draw(&self, samples: &[Sample], height: usize, width: usize) -> Mix {
        let mut h = self.seed;
        for s in samples {
            h = SplitMix64(h ^ epoch_mix(s.epoch) ^ s.index.rotate_left(32)).next();
        }
        let mut rng = Uniform(SplitMix64(h));
        if rng.unit() >= self.prob {
            return Mix::None;
        }
        let cutmix = match (self.mixup_alpha > 0.0, self.cutmix_alpha > 0.0) {
            (true, true) => rng.unit() < self.switch_prob,
            (false, _) => true,
            (true, false) => false,
        };
        if !cutmix {
            return Mix::Mixup { lambda: rng.beta(self.mixup_alpha) as f32 };
        }
        let lambda = rng.beta(self.cutmix_alpha);
        let cut = (1.0 - lambda).sqrt();
        let (cut_h, cut_w) = ((height as f64 * cut) as usize, (width as f64 * cut) as usize);
        let (cy, cx) = (below(&mut rng, height), below(&mut rng, width));
        let rows = (cy.saturating_sub(cut_h / 2), (cy + cut_h / 2).min(height));
        let cols = (cx.saturating_sub(cut_w / 2), (cx + cut_w / 2).min(width));
        let area = (rows.1 - rows.0) * (cols.1 - cols.0);
        let lambda = 1.0 - area as f64 / (height * width).max(1) as f64;
        Mix::Cutmix { lambda: lambda as f32, rows, cols }
    }

    /// Mixes `batch` in place as [`Mixup::draw`] says and makes its targets. A sample without a
    /// label, or with one not below `classes`, is an error and the batch is not mixed.
    pub fn apply<T: Mixable>(&self, mut batch: ImageBatch<T>) -> Result<MixedBatch<T>, MixupError> {
        let classes = self.classes as usize;
        let mut labels = Vec::with_capacity(batch.samples.len());
        for s in &batch.samples {
            let path = || s.path.display().to_string();
            match s.label {
                None => return Err(MixupError::Unlabelled(path())),
                Some(label) if label >= self.classes => {
                    return Err(MixupError::Label { path: path(), label, classes: self.classes });
                }
                Some(label) => labels.push(label as usize),
            }
        }
        let (width, height) = batch.image_size();
        let mix = self.draw(&batch.samples, height, width);
        mix_pairs(&mut batch, mix);
        let off = (self.smoothing / classes as f64) as f32;
        let on = (1.0 - self.smoothing) as f32 + off;
        let lambda = mix.lambda();
        let mut targets = vec![off; labels.len() * classes];
        for (i, row) in targets.chunks_exact_mut(classes).enumerate() {
            row[labels[i]] += (on - off) * lambda;
            row[labels[labels.len() - 1 - i]] += (on - off) * (1.0 - lambda);
        }
        Ok(MixedBatch { batch, targets, classes, mix })
    }

    /// Mixes every view of `batch` as [`Mixup::apply`] mixes a batch. The views hold the same
    /// samples, so they share one draw: all mixed or none, by Mixup or CutMix alike, with the
    /// same λ; a CutMix box is placed on each view's own size from the same draws (λ is then
    /// corrected to the box each view lost, so views of other sizes may get other targets).
    /// Image `i` of a view is paired with image `B−1−i` of the same view. (timm, which mixes
    /// its `--aug-splits` as one concatenated batch, pairs it with image `B−1−i` of the
    /// mirrored split: the same sample, so the same targets, from another view of it.)
    pub fn apply_views<T: Mixable>(&self, batch: ViewBatch<T>) -> Result<MixedViews<T>, MixupError> {
        let views = batch.views.into_iter().map(|view| self.apply(view)).collect::<Result<_, _>>()?;
        Ok(MixedViews { views })
    }
}

/// A batch of views, each mixed ([`Mixup::apply_views`]).
#[derive(Debug, Clone)]
pub struct MixedViews<T> {
    /// One mixed batch per view, with its targets, in view order.
    pub views: Vec<MixedBatch<T>>,
}

impl<T> MixedViews<T> {
    /// Images in the batch (each has every view).
    pub fn len(&self) -> usize {
        self.views.first().map_or(0, |v| v.batch.len())
    }

    /// Whether it holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch's samples, in batch order (the same for every view).
    pub fn samples(&self) -> &[super::Sample] {
        self.views.first().map_or(&[], |v| &v.batch.samples)
    }
}

/// A pixel value Mixup can blend: `f32` exactly; `u8` (timm's `FastCollateMixup`) with `λ`
/// rounded to 1/256 and the result to the nearest value, in 16-bit integers that vectorize.
pub trait Mixable: Copy {
    /// Makes `a` `λ·a + (1 − λ)·b` and `b` `λ·b + (1 − λ)·a`, value by value (equal lengths).
    fn blend_pair(a: &mut [Self], b: &mut [Self], lambda: f32);
}

impl Mixable for f32 {
    fn blend_pair(a: &mut [f32], b: &mut [f32], lambda: f32) {
        let other = 1.0 - lambda;
        for (x, y) in a.iter_mut().zip(b.iter_mut()) {
            (*x, *y) = (*x * lambda + *y * other, *y * lambda + *x * other);
        }
    }
}

impl Mixable for u8 {
    fn blend_pair(a: &mut [u8], b: &mut [u8], lambda: f32) {
        let own = (lambda.clamp(0.0, 1.0) * 256.0 + 0.5) as u16;
        let other = 256 - own;
        // At most 255 · 256 + 128: no overflow.
        let blend = |p: u8, q: u8| ((u16::from(p) * own + u16::from(q) * other + 128) >> 8) as u8;
        for (x, y) in a.iter_mut().zip(b.iter_mut()) {
            (*x, *y) = (blend(*x, *y), blend(*y, *x));
        }
    }
}

/// Applies `mix` to every pair `(i, B−1−i)` of `batch`'s images.
fn mix_pairs<T: Mixable>(batch: &mut ImageBatch<T>, mix: Mix) {
    let n = batch.samples.len();
    let size = batch.shape[1] * batch.shape[2] * batch.shape[3];
    let (width, height) = batch.image_size();
    let channels = size / (height * width).max(1);
    // CutMix's box as contiguous runs `(start, len)` of an image: part of a pixel row (HWC), or
    // of one channel's row (CHW). The same for every pair.
    let runs: Vec<(usize, usize)> = match (mix, batch.layout) {
        (Mix::Cutmix { rows, cols, .. }, Layout::Hwc) => {
            (rows.0..rows.1).map(|y| ((y * width + cols.0) * channels, (cols.1 - cols.0) * channels)).collect()
        }
        (Mix::Cutmix { rows, cols, .. }, Layout::Chw) => (0..channels)
            .flat_map(|c| (rows.0..rows.1).map(move |y| ((c * height + y) * width + cols.0, cols.1 - cols.0)))
            .collect(),
        _ => Vec::new(),
    };
    for i in 0..n / 2 {
        let (head, tail) = batch.data.split_at_mut((n - 1 - i) * size);
        let (a, b) = (&mut head[i * size..][..size], &mut tail[..size]);
        match mix {
            Mix::None => return,
            Mix::Mixup { lambda } => T::blend_pair(a, b, lambda),
            Mix::Cutmix { .. } => {
                for &(start, len) in &runs {
                    a[start..start + len].swap_with_slice(&mut b[start..start + len]);
                }
            }
        }
    }
}

fn check_alpha(what: &'static str, value: f64) -> Result<f64, MixupError> {
    if value.is_finite() && value >= 0.0 { Ok(value) } else { Err(MixupError::Alpha { what, value }) }
}

fn check_probability(what: &'static str, value: f64) -> Result<f64, MixupError> {
    if (0.0..=1.0).contains(&value) { Ok(value) } else { Err(MixupError::Probability { what, value }) }
}

/// In `0..n` (0 when `n` is 0).
fn below(rng: &mut Uniform, n: usize) -> usize {
    rng.below(u32::try_from(n).unwrap_or(u32::MAX).max(1)) as usize
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::images::{Image, collate_layout};

    fn sample(index: u64, label: Option<u32>) -> Sample {
        Sample { index, epoch: 3, path: Arc::from(Path::new(&format!("c/{index}.jpg"))), label }
    }

    /// `n` images of `w × h`, image `i`'s value at (x, y, c) being `i·1000 + (y·w + x)·3 + c`.
    fn batch(n: u64, w: u32, h: u32, layout: Layout) -> ImageBatch<f32> {
        let images = (0..n)
            .map(|i| Image {
                width: w,
                height: h,
                data: (0..w * h * 3).map(|v| (i * 1000 + u64::from(v)) as f32).collect(),
                sample: sample(i, Some((i % 4) as u32)),
            })
            .collect();
        collate_layout(images, layout).unwrap()
    }

    /// Image `i`'s original value at (x, y, c).
    fn original(i: usize, w: usize, x: usize, y: usize, c: usize) -> f32 {
        (i * 1000 + (y * w + x) * 3 + c) as f32
    }

    #[test]
    fn mixup_blends_each_image_with_its_mirror_and_weights_the_targets_alike() {
        let mixup = Mixup::new(1, 4).unwrap().cutmix_alpha(0.0).unwrap().label_smoothing(0.2).unwrap();
        let (w, h) = (3, 2);
        let out = mixup.apply(batch(5, w as u32, h as u32, Layout::Hwc)).unwrap();
        let Mix::Mixup { lambda } = out.mix else { panic!("{:?}", out.mix) };
        assert!(lambda > 0.0 && lambda < 1.0);
        for i in 0..5 {
            let j = 4 - i;
            for (x, y, c) in [(0, 0, 0), (2, 1, 2), (1, 0, 1)] {
                let want = original(i, w, x, y, c) * lambda + original(j, w, x, y, c) * (1.0 - lambda);
                let got = out.batch.value(i, x, y, c);
                assert!((got - want).abs() < 1e-3, "image {i} ({x},{y},{c}): {got} != {want}");
            }
            let row = &out.targets[i * 4..][..4];
            // off = 0.2 / 4, on = 0.8 + off; labels i % 4 and j % 4.
            let mut want = [0.05f32; 4];
            want[i % 4] += 0.8 * lambda;
            want[j % 4] += 0.8 * (1.0 - lambda);
            assert!(row.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "row {i}: {row:?} != {want:?}");
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        assert_eq!(out.batch.image(2), batch(5, 3, 2, Layout::Hwc).image(2), "the middle image mixes with itself");
    }

    #[test]
    fn cutmix_swaps_one_box_between_mirrored_images_in_either_layout() {
        let mixup = Mixup::new(7, 4).unwrap().mixup_alpha(0.0).unwrap();
        let (w, h) = (13, 9);
        let mut boxes = Vec::new();
        for layout in [Layout::Hwc, Layout::Chw] {
            let out = mixup.apply(batch(4, w as u32, h as u32, layout)).unwrap();
            let Mix::Cutmix { lambda, rows, cols } = out.mix else { panic!("{:?}", out.mix) };
            let area = (rows.1 - rows.0) * (cols.1 - cols.0);
            assert!((lambda - (1.0 - area as f32 / (w * h) as f32)).abs() < 1e-6);
            for i in 0..4 {
                for (y, x, c) in (0..h).flat_map(|y| (0..w).flat_map(move |x| (0..3).map(move |c| (y, x, c)))) {
                    let inside = (rows.0..rows.1).contains(&y) && (cols.0..cols.1).contains(&x);
                    let from = if inside { 3 - i } else { i };
                    assert_eq!(out.batch.value(i, x, y, c), original(from, w, x, y, c), "{layout:?} image {i}");
                }
            }
            boxes.push(out.mix);
        }
        assert_eq!(boxes[0], boxes[1], "the draw depends on the samples and the size, not the layout");
    }

    /// Over many batches, λ follows Beta(α, α): mean 1/2, variance 1/(4(2α+1)); `prob` and
    /// `switch_prob` split the batches in their proportions.
    #[test]
    fn draws_follow_their_distributions() {
        let draws = 20_000u64;
        let stats = |mixup: Mixup| {
            let mixes: Vec<Mix> =
                (0..draws).map(|k| mixup.draw(&[sample(k, None), sample(k + 1, None)], 64, 64)).collect();
            let lambdas: Vec<f64> =
                mixes.iter().filter(|m| matches!(m, Mix::Mixup { .. })).map(|m| f64::from(m.lambda())).collect();
            let n = lambdas.len() as f64;
            let mean = lambdas.iter().sum::<f64>() / n;
            let var = lambdas.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
            let share = |f: fn(&Mix) -> bool| mixes.iter().filter(|m| f(m)).count() as f64 / draws as f64;
            (mean, var, share(|m| *m == Mix::None), share(|m| matches!(m, Mix::Cutmix { .. })))
        };
        for alpha in [0.2, 0.8, 1.0, 4.0] {
            let (mean, var, none, cut) =
                stats(Mixup::new(2, 10).unwrap().mixup_alpha(alpha).unwrap().cutmix_alpha(0.0).unwrap());
            let want = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!(
                (mean - 0.5).abs() < 0.01 && (var / want - 1.0).abs() < 0.05,
                "α {alpha}: mean {mean}, var {var} (want {want})"
            );
            assert_eq!((none, cut), (0.0, 0.0));
        }
        let (_, _, none, cut) = stats(Mixup::new(2, 10).unwrap().prob(0.6).unwrap().switch_prob(0.25).unwrap());
        assert!((none - 0.4).abs() < 0.015 && (cut - 0.6 * 0.25).abs() < 0.015, "none {none}, cutmix {cut}");
        let (_, _, none, _) = stats(Mixup::new(2, 10).unwrap().prob(0.0).unwrap());
        assert_eq!(none, 1.0);
    }

    #[test]
    fn the_same_batch_mixes_alike_and_another_seed_differently() {
        let samples: Vec<Sample> = (0..8).map(|i| sample(i, Some(1))).collect();
        let mixup = Mixup::new(5, 2).unwrap();
        assert_eq!(mixup.draw(&samples, 32, 32), mixup.draw(&samples, 32, 32));
        let differ = (6..30)
            .filter(|&s| Mixup::new(s, 2).unwrap().draw(&samples, 32, 32) != mixup.draw(&samples, 32, 32))
            .count();
        assert!(differ >= 23, "{differ} of 24 seeds draw differently");
    }

    #[test]
    fn the_views_of_a_batch_share_one_draw_and_each_mixes_within_itself() {
        // Two views of one size and a smaller third, as DINO's global and local crops.
        let views = || ViewBatch {
            views: vec![batch(6, 13, 9, Layout::Chw), batch(6, 13, 9, Layout::Chw), batch(6, 5, 4, Layout::Chw)],
        };
        let mut kinds = [0; 3];
        for seed in 0..40 {
            let mixup = Mixup::new(seed, 4).unwrap().prob(0.8).unwrap();
            let out = mixup.apply_views(views()).unwrap();
            assert_eq!(out.len(), 6);
            let [a, b, small] = &out.views[..] else { panic!("{} views", out.views.len()) };
            // Each view is what mixing it alone gives: same pairs, same draws.
            for (k, view) in views().views.into_iter().enumerate() {
                let alone = mixup.apply(view).unwrap();
                assert_eq!((&alone.batch.data, alone.mix), (&out.views[k].batch.data, out.views[k].mix), "seed {seed}");
            }
            assert_eq!((a.mix, &a.targets), (b.mix, &b.targets), "views of one size mix alike (seed {seed})");
            match (a.mix, small.mix) {
                (Mix::None, Mix::None) => kinds[0] += 1,
                (Mix::Mixup { lambda }, Mix::Mixup { lambda: l }) => {
                    assert_eq!((lambda, &a.targets), (l, &small.targets), "seed {seed}");
                    kinds[1] += 1;
                }
                (Mix::Cutmix { .. }, Mix::Cutmix { .. }) => kinds[2] += 1,
                other => panic!("seed {seed}: views drew apart: {other:?}"),
            }
        }
        assert!(kinds.iter().all(|&n| n > 0), "none, mixup, cutmix over 40 seeds: {kinds:?}");
    }

    #[test]
    fn u8_blends_round_to_the_nearest_value() {
        let blend = |p: u8, q: u8, lambda: f32| {
            let (mut a, mut b) = ([p], [q]);
            u8::blend_pair(&mut a, &mut b, lambda);
            (a[0], b[0])
        };
        assert_eq!(blend(10, 20, 0.5), (15, 15), "15 both ways");
        assert_eq!(blend(10, 11, 0.5), (11, 11), "10.5 rounds up");
        assert_eq!(blend(255, 0, 0.999), (255, 0));
        assert_eq!(blend(0, 255, 0.0), (255, 0));
        assert_eq!(blend(0, 200, 0.3), (140, 60));
        // Against exact arithmetic: off by at most one, for every pair of values.
        for (p, q) in (0..=255u8).flat_map(|p| (0..=255u8).map(move |q| (p, q))) {
            let exact = f32::from(p) * 0.37 + f32::from(q) * 0.63;
            assert!((f32::from(blend(p, q, 0.37).0) - exact).abs() <= 1.0, "{p}, {q}");
        }
    }

    #[test]
    fn bad_settings_and_labels_are_refused_naming_the_value() {
        let m = || Mixup::new(0, 4).unwrap();
        let cases: Vec<(Result<Mixup, MixupError>, &str)> = vec![
            (Mixup::new(0, 0), "classes 0"),
            (m().mixup_alpha(-1.0), "mixup_alpha -1: need a finite value >= 0"),
            (m().cutmix_alpha(f64::NAN), "cutmix_alpha NaN"),
            (m().mixup_alpha(0.0).and_then(|m| m.cutmix_alpha(0.0)), "both 0"),
            (m().prob(1.5), "prob 1.5: need a probability in [0, 1]"),
            (m().switch_prob(-0.1), "switch_prob -0.1"),
            (m().label_smoothing(1.0), "label_smoothing 1: need a value in [0, 1)"),
        ];
        for (got, says) in cases {
            let err = got.unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
        let mut b = batch(2, 2, 2, Layout::Hwc);
        b.samples[1].label = None;
        let err = m().apply(b).unwrap_err().to_string();
        assert!(err.contains("c/1.jpg: no label"), "{err}");
        let mut b = batch(2, 2, 2, Layout::Hwc);
        b.samples[0].label = Some(4);
        let err = m().apply(b).unwrap_err().to_string();
        assert!(err.contains("c/0.jpg: label 4 is not below the 4 classes"), "{err}");
    }
}
