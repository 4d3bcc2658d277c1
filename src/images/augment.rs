//! Training-time augmentation: torchvision's `RandomResizedCrop` followed by
//! `RandomHorizontalFlip` and, when asked for, `ColorJitter` and the self-supervised recipes'
//! grayscale, blur and solarize steps (`photometric.rs`), drawn per image from a seed.
//!
//! Each image's draw comes from its own generator, seeded with the augmentation's seed, the
//! sample's epoch and its index in the folder: the same image gets the same crop in every run,
//! on every placement and shard and in whatever order the stages finish, and a new crop in each
//! epoch. Nothing is shared between images, so no lock or atomic is on the path.
//!
//! ```text
//!  Image (W×H) ─draw(seed, epoch, index)─▶ crop box + flip? (+ jitter, coins) ─resize box to w×h─▶ mirror rows?
//!     ─▶ colour jitter? ─▶ grayscale? ─▶ blur? ─▶ solarize? ─▶ policy? ─▶ Image (w×h)
//! ```

use super::autoaugment::AugmentPolicy;
use super::folder::{SplitMix64, epoch_mix};
use super::jitter::{ColorJitter, Jitter};
use super::kernel_blur::MAX_BLUR_KERNEL;
use super::photometric::{Drawn, Photometric};
use super::resize::{resize_region, resize_region_of};
use super::{CHANNELS, Image, ImageError, Resample, Sample};

/// Crop attempts before the fallback, as torchvision makes.
const ATTEMPTS: usize = 10;

/// Random resized crops and horizontal flips, as torchvision's `RandomResizedCrop(size, scale,
/// ratio)` then `RandomHorizontalFlip(p)`; [`Augment::new`] has torchvision's defaults.
///
/// ```
/// use shardpipe::images::Augment;
///
/// let train = Augment::new(7).scale(0.25, 1.0)?.flip(0.5)?;
/// # Ok::<(), shardpipe::images::AugmentError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    seed: u64,
    scale: (f64, f64),
    ratio: (f64, f64),
    flip: f64,
    resample: Resample,
    jitter: ColorJitter,
    photometric: Photometric,
    auto: Option<AugmentPolicy>,
}

/// A setting [`Augment`] refuses; each message says what range is accepted.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum AugmentError {
    /// The crop's share of the image's area.
    #[error(
        "augment scale ({0}, {1}): need 0 < low <= high <= 1, as fractions of the image's area (torchvision's default: 0.08, 1.0)"
    )]
    Scale(f64, f64),
    /// The crop's aspect ratio.
    #[error("augment ratio ({0}, {1}): need 0 < low <= high, as width / height (torchvision's default: 0.75, 1.333)")]
    Ratio(f64, f64),
    /// The flip probability.
    #[error("augment flip {0}: need a probability from 0 to 1 (0.5 flips half the images)")]
    Flip(f64),
    /// A colour jitter strength.
    #[error(
        "augment {what} {value}: need {range} (0 leaves it out; timm's default jitter is 0.4 for brightness, contrast and saturation)"
    )]
    Jitter {
        /// `brightness`, `contrast`, `saturation` or `hue`.
        what: &'static str,
        /// The value given.
        value: f64,
        /// The accepted range.
        range: &'static str,
    },
    /// The probability of a random step.
    #[error("augment {what} {value}: need a probability from 0 to 1 (DINO uses 0.8 for the jitter, 0.2 for grayscale)")]
    Probability {
        /// `jitter_p`, `grayscale`, `blur` or `solarize`.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// The blur's radius range.
    #[error(
        "augment blur sigma ({0}, {1}): need 0 < low <= high <= {MAX_BLUR_SIGMA}, in pixels (DINO's and BYOL's range is 0.1, 2.0)"
    )]
    BlurSigma(f64, f64),
    /// The size of torchvision's blur kernel.
    #[error(
        "augment blur kernel {0}: need an odd number of taps from 1 to {MAX_BLUR_KERNEL} (torchvision's GaussianBlur needs it odd; DINOv2 uses 9, SimCLR about a tenth of the crop: 23 for 224)"
    )]
    BlurKernel(u32),
}

/// The widest blur [`Augment::blur`] takes, in pixels (DINO's widest is 2): each box pass starts
/// a column by summing a window of about four times the radius, so a far wider one would stall
/// the stage (and its sums overflow past ~8 million). Any crop this blur is useful on is a flat
/// colour long before it.
pub const MAX_BLUR_SIGMA: f64 = 4096.0;

/// What [`Augment::draw`] chose for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// The crop, `(left, top, width, height)` in whole pixels, inside the image.
    pub crop: (u32, u32, u32, u32),
    /// Whether the resized crop is mirrored left to right.
    pub flip: bool,
    /// The colour jitter, when [`Augment::color_jitter`] asked for one (and its
    /// [`color_jitter_p`](Augment::color_jitter_p) coin came up).
    pub color: Option<Jitter>,
    /// Whether the image is turned grey ([`Augment::grayscale`]).
    pub grayscale: bool,
    /// The Gaussian blur's radius (standard deviation, in pixels), when [`Augment::blur`]'s
    /// coin came up.
    pub blur: Option<f32>,
    /// Whether values from 128 up are inverted ([`Augment::solarize`]).
    pub solarize: bool,
}

impl Augment {
    /// Crops of 8–100 % of the area with aspect ratios 3/4–4/3, flipped with probability 0.5
    /// (torchvision's defaults), drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip: 0.5,
            resample: Resample::Bilinear,
            jitter: ColorJitter::default(),
            photometric: Photometric::default(),
            auto: None,
        }
    }

    /// The range of the crop's area, as fractions of the image's.
    pub fn scale(mut self, low: f64, high: f64) -> Result<Self, AugmentError> {
        if !(low > 0.0 && low <= high && high <= 1.0) {
            return Err(AugmentError::Scale(low, high));
        }
        self.scale = (low, high);
        Ok(self)
    }

    /// The range of the crop's aspect ratio (width / height), drawn on a log scale.
    pub fn ratio(mut self, low: f64, high: f64) -> Result<Self, AugmentError> {
        if !(low > 0.0 && low <= high && high.is_finite()) {
            return Err(AugmentError::Ratio(low, high));
        }
        self.ratio = (low, high);
        Ok(self)
    }

    /// The probability that an image is mirrored left to right (0: never).
    pub fn flip(mut self, p: f64) -> Result<Self, AugmentError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(AugmentError::Flip(p));
        }
        self.flip = p;
        Ok(self)
    }

    /// The filter that resizes the crop: bilinear (the default, torchvision's), or bicubic as
    /// DINO and timm's recipes ask for (`Resample::Bicubic`, Pillow's cubic). Nearest takes the
    /// pixel under each output pixel's centre.
    pub fn resample(mut self, resample: Resample) -> Self {
        self.resample = resample;
        self
    }

    /// torchvision's `ColorJitter(brightness, contrast, saturation, hue)` after the crop and
    /// flip, in a random order per image: brightness, contrast and saturation factors are drawn
    /// from `[max(0, 1 − x), 1 + x]`, the hue shift from `[−hue, hue]` turns (`hue` at most
    /// 0.5). 0 leaves an adjustment out; all 0 (the default) is no jitter, and the crops and
    /// flips drawn are the same as without this call.
    pub fn color_jitter(
        mut self,
        brightness: f64,
        contrast: f64,
        saturation: f64,
        hue: f64,
    ) -> Result<Self, AugmentError> {
        for (what, value) in [("brightness", brightness), ("contrast", contrast), ("saturation", saturation)] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(AugmentError::Jitter { what, value, range: "a number from 0 up" });
            }
        }
        if !(0.0..=0.5).contains(&hue) {
            return Err(AugmentError::Jitter {
                what: "hue",
                value: hue,
                range: "0 to 0.5 (turns of the colour wheel)",
            });
        }
        self.jitter = ColorJitter { brightness, contrast, saturation, hue };
        Ok(self)
    }

    /// The probability that an image gets the colour jitter at all (torchvision's
    /// `RandomApply([ColorJitter(…)], p)`; SimCLR, BYOL and DINO use 0.8). Default 1.
    pub fn color_jitter_p(mut self, p: f64) -> Result<Self, AugmentError> {
        self.photometric.jitter = probability("jitter_p", p)?;
        Ok(self)
    }

    /// torchvision's `RandomGrayscale(p)` after the jitter: the image's grey (Pillow's `L`) in
    /// all three channels.
    pub fn grayscale(mut self, p: f64) -> Result<Self, AugmentError> {
        self.photometric.grayscale = probability("grayscale", p)?;
        Ok(self)
    }

    /// DINO's `GaussianBlur(p, radius_min, radius_max)` after the grayscale step: with
    /// probability `p`, Pillow's `GaussianBlur` of a radius (standard deviation, in pixels) drawn
    /// uniformly from `[low, high]`. DINO blurs its first global view always (1.0), its second
    /// rarely (0.1) and its local views half the time (0.5), all with 0.1–2.0. `high` is at most
    /// [`MAX_BLUR_SIGMA`].
    pub fn blur(mut self, p: f64, low: f64, high: f64) -> Result<Self, AugmentError> {
        self.photometric.blur = probability("blur", p)?;
        if !(low > 0.0 && low <= high && high <= MAX_BLUR_SIGMA) {
            return Err(AugmentError::BlurSigma(low, high));
        }
        self.photometric.sigma = (low, high);
        Ok(self)
    }

    /// The blur of [`blur`](Self::blur) as torchvision's `GaussianBlur(kernel_size, sigma)`
    /// instead of Pillow's: a sampled Gaussian of `kernel_size` taps (odd, at most
    /// [`MAX_BLUR_KERNEL`]), edges mirrored, rounded back to bytes. DINOv2 uses 9 taps with
    /// σ in 0.1–2.0 (its `GaussianBlur(p)` is `RandomApply` with probability `1 - p`: its first
    /// global view is never blurred, its second with 0.9, its local views with 0.5).
    pub fn blur_kernel(mut self, kernel_size: u32) -> Result<Self, AugmentError> {
        if kernel_size.is_multiple_of(2) || kernel_size > MAX_BLUR_KERNEL {
            return Err(AugmentError::BlurKernel(kernel_size));
        }
        self.photometric.kernel = Some(kernel_size);
        Ok(self)
    }

    /// Pillow's `ImageOps.solarize` (values from 128 up inverted) with probability `p`, after
    /// the blur: DINO's and BYOL's second view use 0.2.
    pub fn solarize(mut self, p: f64) -> Result<Self, AugmentError> {
        self.photometric.solarize = probability("solarize", p)?;
        Ok(self)
    }

    /// An automatic augmentation policy ([`AugmentPolicy`]: a [`RandAugment`](super::RandAugment)
    /// — timm's RandAugment or AutoAugment, torchvision's RandAugment or TrivialAugmentWide — or
    /// an [`AugMix`](super::AugMix)) applied to the resized image, after the flip and any colour
    /// jitter (timm's recipes use one or the other). Its draws come from its own seed and
    /// stream: the crops and flips drawn are the same as without it.
    pub fn auto_augment(mut self, policy: impl Into<AugmentPolicy>) -> Self {
        self.auto = Some(policy.into());
        self
    }

    /// The crop and flip for `sample`, a `width × height` image: torchvision's
    /// `RandomResizedCrop.get_params` (ten tries at a random area and aspect ratio, then the
    /// largest centered crop within the ratio range), then the flip.
    pub fn draw(&self, sample: &Sample, width: u32, height: u32) -> Draw {
        let mut rng = self.generator(sample);
        let crop = self.crop(&mut rng, width, height);
        let flip = rng.unit() < self.flip;
        // Drawn after the crop and flip, so turning jitter on leaves those as they were.
        let color = (!self.jitter.is_off()).then(|| self.jitter.draw(&mut rng));
        let coins = self.photometric.draw(self.seed, sample);
        let color = color.filter(|_| coins.jitter);
        Draw { crop, flip, color, grayscale: coins.grayscale, blur: coins.blur, solarize: coins.solarize }
    }

    /// The generator of `sample`'s draws.
    fn generator(&self, sample: &Sample) -> Uniform {
        Uniform::for_sample(self.seed, sample)
    }

    fn crop(&self, rng: &mut Uniform, width: u32, height: u32) -> (u32, u32, u32, u32) {
        self.attempt_crops(rng, width, height).unwrap_or_else(|| self.fallback_crop(width, height))
    }

    /// Up to ten crops of a random area and aspect ratio; the first that fits.
    fn attempt_crops(&self, rng: &mut Uniform, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
        let (wf, hf) = (f64::from(width), f64::from(height));
        let area = wf * hf;
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..ATTEMPTS {
            let target = area * rng.between(self.scale.0, self.scale.1);
            let aspect = rng.between(log_lo, log_hi).exp();
            // Python's round(): halves to even.
            let w = (target * aspect).sqrt().round_ties_even();
            let h = (target / aspect).sqrt().round_ties_even();
            if w > 0.0 && w <= wf && h > 0.0 && h <= hf {
                let (w, h) = (w as u32, h as u32);
                let top = rng.below(height - h + 1);
                let left = rng.below(width - w + 1);
                return Some((left, top, w, h));
            }
        }
        None
    }

    /// The largest centered crop whose aspect ratio is within range (the whole image if its own is).
    fn fallback_crop(&self, width: u32, height: u32) -> (u32, u32, u32, u32) {
        let (wf, hf) = (f64::from(width), f64::from(height));
        let in_ratio = wf / hf;
        let (w, h) = if in_ratio < self.ratio.0 {
            (width, ((wf / self.ratio.0).round_ties_even() as u32).clamp(1, height))
        } else if in_ratio > self.ratio.1 {
            (((hf * self.ratio.1).round_ties_even() as u32).clamp(1, width), height)
        } else {
            (width, height)
        };
        ((width - w) / 2, (height - h) / 2, w, h)
    }

    /// `image`'s drawn crop resized to `width × height` (the filter of
    /// [`resize`](super::resize)), mirrored if the draw says so, then colour-jittered if asked.
    pub fn apply(&self, image: Image<u8>, width: u32, height: u32) -> Result<Image<u8>, ImageError> {
        let draw = self.draw(&image.sample, image.width, image.height);
        let out = resize_region(image, width, height, region_of(draw.crop), self.resample)?;
        self.finish(out, draw)
    }

    /// [`apply`](Self::apply) on a borrowed image (one of several views of it).
    pub(crate) fn apply_to(&self, image: &Image<u8>, width: u32, height: u32) -> Result<Image<u8>, ImageError> {
        let draw = self.draw(&image.sample, image.width, image.height);
        let out = resize_region_of(image, width, height, region_of(draw.crop), self.resample)?;
        self.finish(out, draw)
    }

    /// The same augmentation drawing from streams of its own for view `view` of each image
    /// (view 0 draws what `self` draws): two views of one image get independent crops,
    /// flips, jitter and policy draws even when they share a seed.
    pub(crate) fn for_view(&self, view: usize) -> Self {
        let mix = view_mix(view);
        Self { seed: self.seed ^ mix, auto: self.auto.as_ref().map(|p| p.mixed(mix)), ..*self }
    }

    /// The resized crop `out` mirrored, jittered, greyed, blurred, solarized and auto-augmented
    /// as `draw` and the policy say.
    fn finish(&self, mut out: Image<u8>, draw: Draw) -> Result<Image<u8>, ImageError> {
        let Draw { flip, color, grayscale, blur, solarize, .. } = draw;
        if flip {
            mirror(&mut out);
        }
        if let Some(jitter) = color {
            jitter.apply(&mut out);
        }
        Drawn { jitter: color.is_some(), grayscale, blur, solarize }.apply(&mut out, self.photometric.kernel);
        match &self.auto {
            Some(policy) => policy.apply(out),
            None => Ok(out),
        }
    }
}

/// `p` if it is a probability, else the error naming `what`.
fn probability(what: &'static str, p: f64) -> Result<f64, AugmentError> {
    if (0.0..=1.0).contains(&p) { Ok(p) } else { Err(AugmentError::Probability { what, value: p }) }
}

/// A whole-pixel crop box as the resizer's `(left, top, width, height)`.
fn region_of((left, top, w, h): (u32, u32, u32, u32)) -> (f64, f64, f64, f64) {
    (f64::from(left), f64::from(top), f64::from(w), f64::from(h))
}

/// What view `view`'s seeds are mixed with: 0 for the first view, a distinct odd multiple
/// (apart from the sample index's golden-ratio multiples) for each other.
pub(super) fn view_mix(view: usize) -> u64 {
    (view as u64).wrapping_mul(0xd1b5_4a32_d192_ed03)
}

/// Reverses the pixels of every row.
fn mirror(image: &mut Image<u8>) {
    let row = image.width as usize * CHANNELS;
    for line in image.data.chunks_exact_mut(row) {
        let (mut a, mut b) = (0, row - CHANNELS);
        while a < b {
            for c in 0..CHANNELS {
                line.swap(a + c, b + c);
            }
            a += CHANNELS;
            b -= CHANNELS;
        }
    }
}

/// Uniform draws from SplitMix64 (the folder's shuffle generator: the same on every platform).
pub(super) struct Uniform(pub(super) SplitMix64);

impl Uniform {
    /// The generator of `sample` (its epoch and index) in the stream `seed`: the same wherever
    /// and whenever the sample is processed.
    pub(super) fn for_sample(seed: u64, sample: &Sample) -> Self {
        Uniform(SplitMix64(
            seed ^ epoch_mix(sample.epoch) ^ sample.index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ))
    }

    /// In `[0, 1)`, from the top 53 bits.
    pub(super) fn unit(&mut self) -> f64 {
        (self.0.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// In `(0, 1]`: safe to take the logarithm of.
    pub(super) fn open_unit(&mut self) -> f64 {
        1.0 - self.unit()
    }

    /// A standard normal draw (Box–Muller).
    pub(super) fn normal(&mut self) -> f64 {
        (-2.0 * self.open_unit().ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }

    /// In `[low, high)` (`low` when they are equal).
    pub(super) fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// In `0..n`, `n >= 1` (multiply-shift: no modulo bias worth counting at these sizes).
    pub(super) fn below(&mut self, n: u32) -> u32 {
        (((self.0.next() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// One of `items`, evenly (`items` is not empty).
    pub(super) fn choose<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u32) as usize]
    }

    /// `Beta(alpha, alpha)`, as `X / (X + Y)` of two `Gamma(alpha)` draws.
    pub(super) fn beta(&mut self, alpha: f64) -> f64 {
        let (x, y) = (self.gamma(alpha), self.gamma(alpha));
        if x + y > 0.0 {
            x / (x + y)
        } else {
            // Both underflowed (a tiny alpha): Beta(α, α) is then all but a coin toss between 0 and 1.
            f64::from(u8::from(self.unit() < 0.5))
        }
    }

    /// `Gamma(alpha, 1)` by Marsaglia and Tsang's method (`alpha < 1` boosted to `alpha + 1`).
    pub(super) fn gamma(&mut self, alpha: f64) -> f64 {
        if alpha < 1.0 {
            return self.gamma(alpha + 1.0) * self.open_unit().powf(1.0 / alpha);
        }
        let d = alpha - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v > 0.0 && self.open_unit().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }
}

#[cfg(test)]
mod tests;
