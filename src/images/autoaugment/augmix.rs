//! timm's AugMix (`augment_and_mix_transform("augmix-m3-w3")`, Hendrycks et al. 2020), and
//! [`AugmentPolicy`], the policy [`Augment::auto_augment`](crate::images::Augment::auto_augment)
//! runs: AugMix or one of [`RandAugment`]'s.
//!
//! ```text
//!  image ─┬─ chain 1: 1–3 ops ─× w₁─┐
//!         ├─ chain 2: 1–3 ops ─× w₂─┼─ Σ (f32), clipped, truncated to u8 = mixed ─┐
//!         └─ chain k …         × wₖ─┘                                              ├─ blend(image, mixed, m)
//!  image ──────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The weights `w` are Dirichlet(α, …, α) and `m` is Beta(α, α), both kept as `f32` like
//! timm's numpy arrays; the sum is accumulated in `f32` chain by chain as numpy does, and the
//! final blend is Pillow's `Image.blend` (truncating), so for the same draw the result is
//! timm's value for value, given the operations'.

use super::op::AugmentOp;
use super::timm::{self, Hparams};
use super::{IMAGENET_MEAN_FILL, MAX_LAYERS, RandAugment, RandAugmentError, Resample, STREAM, check_shape, numbered};
use crate::images::augment::Uniform;
use crate::images::{CHANNELS, Image, ImageError, Sample};

/// timm's AugMix: `width` chains of `depth` operations (1–3 at random by default) drawn from
/// its 13, each at a magnitude uniform in `[0, m]`, mixed by Dirichlet weights and blended
/// into the image by a Beta draw.
///
/// ```
/// use shardpipe::images::{AugMix, Augment};
///
/// let train = Augment::new(7).auto_augment(AugMix::timm(7, "augmix-m5-w4-d2")?);
/// # Ok::<(), shardpipe::images::RandAugmentError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugMix {
    seed: u64,
    magnitude: f64,
    width: u32,
    /// `None`: 1 to 3 operations per chain, at random.
    depth: Option<u32>,
    alpha: f64,
    /// timm's `blended` mode: each chain blended into the image in turn, no final blend.
    blended: bool,
    hp: Hparams,
    fill: [u8; CHANNELS],
    /// `None`: bilinear or bicubic at random.
    resample: Option<Resample>,
}

/// What [`AugMix::draw`] draws for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct AugMixDraw {
    /// Each chain's operations, applied in turn to a copy of the image.
    pub chains: Vec<Vec<AugmentOp>>,
    /// The chains' mixing weights (Dirichlet), summing to 1.
    pub weights: Vec<f32>,
    /// How much of the mix the result takes (Beta).
    pub mix: f32,
}

impl AugMix {
    /// timm's `augment_and_mix_transform(config)` as its training script sets it up: ImageNet's
    /// mean colour as fill, bilinear or bicubic at random, translations up to 30 % of the side.
    ///
    /// `config` is `augmix` followed by `-`-separated sections: `m3` (severity, default 3),
    /// `w3` (chains, default 3), `d2` (operations per chain; default and `d0`: 1 to 3 at
    /// random), `a1` (the Dirichlet and Beta α, default 1), `b1` (timm's blended mode; `b0` is
    /// off, where timm turns it on) and `mstd0.5` (the magnitude's standard deviation; by
    /// default magnitudes are uniform in `[0, m]`).
    pub fn timm(seed: u64, config: &str) -> Result<Self, RandAugmentError> {
        let mut sections = config.split('-');
        if sections.next() != Some("augmix") {
            return Err(RandAugmentError::Unknown(config.to_owned()));
        }
        let hp = Hparams { std: f64::INFINITY, translate: 0.3, ..Hparams::TRAIN };
        let mut mix = Self {
            seed,
            magnitude: 3.0,
            width: 3,
            depth: None,
            alpha: 1.0,
            blended: false,
            hp,
            fill: IMAGENET_MEAN_FILL,
            resample: None,
        };
        for section in sections {
            let bad = |reason: &str| RandAugmentError::section(config, section, reason);
            let (key, value, number) = numbered(section).ok_or_else(|| bad("has no value (write e.g. m3)"))?;
            let number = || number.ok_or_else(|| bad("needs a number from 0 up"));
            let whole = |from: f64| {
                number()
                    .ok()
                    .filter(|n| n.fract() == 0.0 && (from..=f64::from(MAX_LAYERS)).contains(n))
                    .ok_or_else(|| bad(&format!("needs a whole number from {from} to {MAX_LAYERS}")))
            };
            match key {
                "m" => mix.magnitude = number()?,
                "w" => mix.width = whole(1.0)? as u32,
                "d" => mix.depth = Some(whole(0.0)? as u32).filter(|&d| d > 0),
                "a" => mix.alpha = number().ok().filter(|a| *a > 0.0).ok_or_else(|| bad("needs a number above 0"))?,
                "b" => match value {
                    "0" => mix.blended = false,
                    "1" => mix.blended = true,
                    _ => return Err(bad("needs 0 or 1")),
                },
                "mstd" => mix.hp.std = number()?,
                _ => return Err(bad("is not one of m, w, d, a, b, mstd")),
            }
        }
        Ok(mix)
    }

    /// The colour of the pixels a geometric operation uncovers.
    pub fn fill(mut self, rgb: [u8; CHANNELS]) -> Self {
        self.fill = rgb;
        self
    }

    /// The geometric operations' sampling filter.
    pub fn resample(mut self, resample: Resample) -> Self {
        self.resample = Some(resample);
        self
    }

    /// Bilinear or bicubic, drawn for each geometric operation (timm's `random` interpolation,
    /// the default).
    pub fn random_resample(mut self) -> Self {
        self.resample = None;
        self
    }

    /// The chains, weights and blend for `sample`, a `width × height` image.
    pub fn draw(&self, sample: &Sample, width: u32, height: u32) -> AugMixDraw {
        let mut rng = Uniform::for_sample(self.seed ^ STREAM, sample);
        let gammas: Vec<f64> = (0..self.width).map(|_| rng.gamma(self.alpha)).collect();
        let total: f64 = gammas.iter().sum();
        let weights = if total > 0.0 {
            gammas.iter().map(|g| (g / total) as f32).collect()
        } else {
            // Every draw underflowed (a tiny α): the Dirichlet's mass is all on one chain.
            let one = rng.below(self.width);
            (0..self.width).map(|i| f32::from(u8::from(i == one))).collect()
        };
        let mix = rng.beta(self.alpha) as f32;
        let size = (f64::from(width), f64::from(height));
        let chains = (0..self.width)
            .map(|_| {
                let depth = self.depth.unwrap_or_else(|| 1 + rng.below(3));
                let ops: Vec<_> = (0..depth).map(|_| rng.choose(&timm::AUGMIX)).collect();
                ops.into_iter()
                    .filter_map(|op| timm::draw_step(op, 1.0, self.magnitude, &self.hp, self.resample, &mut rng, size))
                    .collect()
            })
            .collect();
        AugMixDraw { chains, weights, mix }
    }

    /// `image` augmented and mixed as drawn for it.
    pub fn apply(&self, mut image: Image<u8>) -> Result<Image<u8>, ImageError> {
        check_shape(&image)?;
        let draw = self.draw(&image.sample, image.width, image.height);
        let chain = |original: &Image<u8>, ops: &[AugmentOp]| {
            let mut out = original.clone();
            for op in ops {
                op.apply(&mut out, self.fill);
            }
            out.data
        };
        if self.blended {
            // Every chain starts from the input, which the blends overwrite: keep a copy.
            let original = image.clone();
            // timm's `_apply_blended`: blend weights that leave each chain its share of m.
            let mut alphas = vec![0f32; draw.weights.len()];
            let mut kept = 1.0f64;
            for (i, w) in draw.weights.iter().enumerate().rev() {
                let alpha = f64::from(w * draw.mix) / kept;
                kept *= 1.0 - alpha;
                alphas[i] = alpha as f32;
            }
            for (ops, alpha) in draw.chains.iter().zip(alphas) {
                let augmented = chain(&original, ops);
                for (x, a) in image.data.iter_mut().zip(augmented) {
                    *x = pillow_blend(*x, a, alpha);
                }
            }
        } else {
            let mut mixed = vec![0f32; image.data.len()];
            for (ops, &w) in draw.chains.iter().zip(&draw.weights) {
                for (m, v) in mixed.iter_mut().zip(chain(&image, ops)) {
                    *m += w * f32::from(v);
                }
            }
            for (x, m) in image.data.iter_mut().zip(mixed) {
                // numpy's clip, then astype(uint8): toward zero.
                *x = pillow_blend(*x, m.clamp(0.0, 255.0) as u8, draw.mix);
            }
        }
        Ok(image)
    }
}

/// Pillow's `Image.blend(a, b, alpha)` for one value: `a + alpha (b − a)` in `f32`, truncated
/// (clamped when `alpha` is outside `[0, 1]`).
pub(super) fn pillow_blend(a: u8, b: u8, alpha: f32) -> u8 {
    (f32::from(a) + alpha * (i32::from(b) - i32::from(a)) as f32) as u8
}

/// The automatic augmentation [`Augment::auto_augment`](crate::images::Augment::auto_augment)
/// runs last: a policy of operations applied in turn ([`RandAugment`]: timm's RandAugment and
/// AutoAugment, torchvision's RandAugment and TrivialAugmentWide) or [`AugMix`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AugmentPolicy {
    /// Operations applied in turn.
    Ops(RandAugment),
    /// Chains of operations mixed and blended.
    AugMix(AugMix),
}

impl From<RandAugment> for AugmentPolicy {
    fn from(policy: RandAugment) -> Self {
        Self::Ops(policy)
    }
}

impl From<AugMix> for AugmentPolicy {
    fn from(policy: AugMix) -> Self {
        Self::AugMix(policy)
    }
}

impl AugmentPolicy {
    /// A policy by the name a training script takes: `augmix-...` ([`AugMix::timm`]) or any
    /// name [`RandAugment::parse`] reads.
    pub fn parse(seed: u64, name: &str) -> Result<Self, RandAugmentError> {
        if name.split('-').next() == Some("augmix") {
            return AugMix::timm(seed, name).map(Self::AugMix);
        }
        RandAugment::parse(seed, name).map(Self::Ops)
    }

    /// `image` augmented by the policy.
    pub fn apply(&self, image: Image<u8>) -> Result<Image<u8>, ImageError> {
        match self {
            Self::Ops(policy) => policy.apply(image),
            Self::AugMix(policy) => policy.apply(image),
        }
    }

    /// The same policy with its seed XORed with `mix` (another view's draws).
    pub(crate) fn mixed(&self, mix: u64) -> Self {
        match *self {
            Self::Ops(policy) => Self::Ops(RandAugment { seed: policy.seed ^ mix, ..policy }),
            Self::AugMix(policy) => Self::AugMix(AugMix { seed: policy.seed ^ mix, ..policy }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::images::resize::test_image as image;

    fn sample(index: u64) -> Sample {
        Sample { index, epoch: 0, path: Arc::from(Path::new("x.jpg")), label: None }
    }

    #[test]
    fn names_set_each_section_and_refuse_the_rest() {
        let m = AugMix::timm(1, "augmix").unwrap();
        assert_eq!((m.magnitude, m.width, m.depth, m.alpha, m.blended), (3.0, 3, None, 1.0, false), "timm's defaults");
        assert_eq!((m.hp.std, m.hp.translate, m.fill), (f64::INFINITY, 0.3, IMAGENET_MEAN_FILL));
        let m = AugMix::timm(1, "augmix-m5-w4-d2-a0.5-b1-mstd0.5").unwrap();
        assert_eq!((m.magnitude, m.width, m.depth, m.alpha, m.blended, m.hp.std), (5.0, 4, Some(2), 0.5, true, 0.5));
        assert_eq!(AugMix::timm(1, "augmix-d0").unwrap().depth, None, "d0: 1 to 3 at random");
        let err = |s: &str| AugMix::timm(1, s).unwrap_err().to_string();
        assert_eq!(err("augmix-w0"), "auto-augment \"augmix-w0\": section \"w0\" needs a whole number from 1 to 16");
        assert!(err("augmix-d2.5").contains("section \"d2.5\" needs a whole number from 0 to 16"));
        assert!(err("augmix-a0").contains("needs a number above 0"));
        assert!(err("augmix-b2").contains("needs 0 or 1"));
        assert!(err("augmix-n2").contains("is not one of m, w, d, a, b, mstd"));
        assert!(err("augmix-m").contains("has no value"));
        let policy = AugmentPolicy::parse(1, "augmix-m5-w4-d2").unwrap();
        assert_eq!(policy, AugmentPolicy::AugMix(AugMix::timm(1, "augmix-m5-w4-d2").unwrap()));
        let ops = AugmentPolicy::parse(1, "original").unwrap();
        assert_eq!(ops, AugmentPolicy::Ops(RandAugment::auto_augment(1, "original").unwrap()));
        assert!(AugmentPolicy::parse(1, "augmixx").unwrap_err().to_string().contains("not a policy name"));
    }

    #[test]
    fn draws_mix_chains_of_augmix_operations_at_uniform_magnitudes() {
        let policy = AugMix::timm(3, "augmix-m3-w3").unwrap();
        let n = 4000;
        let (mut depths, mut kinds, mut degrees, mut mix) = (HashSet::new(), HashSet::new(), Vec::new(), 0.0);
        let mut first_weight = 0.0;
        for index in 0..n {
            let d = policy.draw(&sample(index), 224, 224);
            assert_eq!((d.chains.len(), d.weights.len()), (3, 3));
            let sum: f32 = d.weights.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5 && d.weights.iter().all(|w| *w >= 0.0), "{:?}", d.weights);
            assert!((0.0..=1.0).contains(&d.mix));
            mix += f64::from(d.mix);
            first_weight += f64::from(d.weights[0]);
            for chain in &d.chains {
                depths.insert(chain.len());
                for op in chain {
                    kinds.insert(op.name());
                    if let AugmentOp::Rotate { degrees: deg, .. } = op {
                        degrees.push(f64::from(deg.abs()));
                    }
                }
            }
        }
        assert_eq!(depths, HashSet::from([1, 2, 3]));
        let want = [
            "AutoContrast",
            "Color",
            "Contrast",
            "Brightness",
            "Sharpness",
            "Equalize",
            "Rotate",
            "Posterize",
            "Solarize",
            "ShearX",
            "ShearY",
            "TranslateX",
            "TranslateY",
        ];
        assert_eq!(kinds, HashSet::from(want), "AugMix's 13 operations, no Invert or SolarizeAdd");
        // Beta(1, 1) and Dirichlet(1, 1, 1): means 1/2 and 1/3.
        assert!((mix / n as f64 - 0.5).abs() < 0.02, "mean mix {}", mix / n as f64);
        assert!((first_weight / n as f64 - 1.0 / 3.0).abs() < 0.02);
        // Magnitude uniform in [0, 3]: degrees 30 × U(0, 0.3), mean 4.5, none above 9.
        let mean = degrees.iter().sum::<f64>() / degrees.len() as f64;
        assert!((mean - 4.5).abs() < 0.3 && degrees.iter().all(|&d| d <= 9.0), "mean |rotation| {mean}");
        let fixed = AugMix::timm(3, "augmix-m3-w2-d2-mstd0").unwrap().draw(&sample(0), 224, 224);
        assert!(fixed.chains.iter().all(|c| c.len() == 2));
        let resample = |op: &AugmentOp| match *op {
            AugmentOp::Rotate { resample, .. }
            | AugmentOp::ShearX { resample, .. }
            | AugmentOp::ShearY { resample, .. }
            | AugmentOp::TranslateX { resample, .. }
            | AugmentOp::TranslateY { resample, .. } => Some(resample),
            _ => None,
        };
        let filters = |policy: AugMix| -> HashSet<Resample> {
            (0..300)
                .flat_map(|i| policy.draw(&sample(i), 224, 224).chains.concat())
                .filter_map(|op| resample(&op))
                .collect()
        };
        assert_eq!(filters(policy), HashSet::from([Resample::Bilinear, Resample::Bicubic]), "timm's random filter");
        assert_eq!(filters(policy.resample(Resample::Nearest)), HashSet::from([Resample::Nearest]));
        assert_eq!(filters(policy.resample(Resample::Nearest).random_resample()), filters(policy));
    }

    #[test]
    fn apply_mixes_the_drawn_chains_and_one_chain_blends_the_same_either_way() {
        let img = |index| Image { sample: sample(index), ..image(24, 18, |x, y| [(x * 10) as u8, (y * 14) as u8, 77]) };
        let policy = AugMix::timm(5, "augmix-m9-w3").unwrap().fill([1, 2, 3]);
        let mut changed = 0;
        for index in 0..20 {
            let input = img(index);
            let d = policy.draw(&input.sample, 24, 18);
            let chains: Vec<Vec<u8>> = d
                .chains
                .iter()
                .map(|ops| {
                    let mut out = input.clone();
                    ops.iter().for_each(|op| op.apply(&mut out, [1, 2, 3]));
                    out.data
                })
                .collect();
            let got = policy.apply(input.clone()).unwrap();
            for (i, (&x, &y)) in input.data.iter().zip(&got.data).enumerate() {
                let mixed: f32 = chains.iter().zip(&d.weights).fold(0.0, |acc, (c, w)| acc + w * f32::from(c[i]));
                let m = mixed.clamp(0.0, 255.0) as u8;
                assert_eq!(y, (f32::from(x) + d.mix * (f32::from(m) - f32::from(x))) as u8, "image {index} value {i}");
            }
            changed += usize::from(got != input);
        }
        assert!(changed >= 15, "most images change: {changed} of 20");
        // With one chain the weight is 1: the basic mix is the chain, and blended mode's one
        // blend weight is m, so both give blend(image, chain, m).
        let basic = AugMix::timm(6, "augmix-m9-w1").unwrap();
        let blended = AugMix::timm(6, "augmix-m9-w1-b1").unwrap();
        for index in 0..20 {
            assert_eq!(basic.apply(img(index)).unwrap(), blended.apply(img(index)).unwrap(), "image {index}");
        }
        // Two chains, blended mode: the first chain at w₀ m / (1 − w₁ m), then the second at w₁ m.
        let two = AugMix::timm(7, "augmix-m9-w2-b1").unwrap();
        for index in 0..10 {
            let input = img(index);
            let d = two.draw(&input.sample, 24, 18);
            let chain = |ops: &[AugmentOp]| {
                let mut out = input.clone();
                ops.iter().for_each(|op| op.apply(&mut out, IMAGENET_MEAN_FILL));
                out.data
            };
            let second = f64::from(d.weights[1] * d.mix);
            let first = (f64::from(d.weights[0] * d.mix) / (1.0 - second)) as f32;
            let (c0, c1) = (chain(&d.chains[0]), chain(&d.chains[1]));
            let want: Vec<u8> = (0..input.data.len())
                .map(|i| pillow_blend(pillow_blend(input.data[i], c0[i], first), c1[i], second as f32))
                .collect();
            assert_eq!(two.apply(input).unwrap().data, want, "image {index}");
        }
        let mut bad = img(0);
        bad.data.pop();
        assert!(basic.apply(bad).unwrap_err().to_string().contains("the image holds"));
    }
}
