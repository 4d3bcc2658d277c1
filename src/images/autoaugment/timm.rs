//! timm's operations by name (`auto_augment.py`'s `NAME_TO_OP` and `LEVEL_TO_ARG`), the sets
//! its RandAugment and AugMix draw from, and its AutoAugment policies.
//!
//! ```text
//!  Step { op, prob, magnitude } ─prob─▶ magnitude ± noise, clamped to [0, max] ─level / 10─▶ AugmentOp
//! ```
//!
//! Every timm policy is a list of such steps: RandAugment draws `n` from a set, AutoAugment
//! draws one sub-policy of a table, AugMix draws chains of them.

use super::op::AugmentOp;
use super::warp::Resample;
use super::{LEVEL_DENOM, pick_resample};
use crate::images::augment::Uniform;

/// An operation as timm names it: the Pillow operation and how a level maps to its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimmOp {
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    /// Keeps `int(4 level)` bits (TPU EfficientNet).
    Posterize,
    /// Keeps `4 − int(4 level)` bits (stronger with the level).
    PosterizeIncreasing,
    /// Keeps `int(4 level) + 4` bits (the AutoAugment paper).
    PosterizeOriginal,
    Solarize,
    SolarizeIncreasing,
    SolarizeAdd,
    Color,
    ColorIncreasing,
    Contrast,
    ContrastIncreasing,
    Brightness,
    BrightnessIncreasing,
    Sharpness,
    SharpnessIncreasing,
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
    /// Colour blended toward grey by `0.5 + 0.5 level` (3-Augment's greyscale).
    Desaturate,
    /// A Gaussian blur of radius `0.1 + 1.9 level`.
    GaussianBlur,
    /// A Gaussian blur of a radius drawn in `[0.1, 2 level]`.
    GaussianBlurRand,
}

use TimmOp::*;

/// `_RAND_TRANSFORMS`.
pub(super) const RAND: [TimmOp; 15] = [
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    Posterize,
    Solarize,
    SolarizeAdd,
    Color,
    Contrast,
    Brightness,
    Sharpness,
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
];

/// `_RAND_INCREASING_TRANSFORMS` (`inc1`).
pub(super) const RAND_INCREASING: [TimmOp; 15] = [
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    PosterizeIncreasing,
    SolarizeIncreasing,
    SolarizeAdd,
    ColorIncreasing,
    ContrastIncreasing,
    BrightnessIncreasing,
    SharpnessIncreasing,
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
];

/// `_RAND_3A` (`t3a`).
pub(super) const RAND_3A: [TimmOp; 3] = [SolarizeIncreasing, Desaturate, GaussianBlur];

/// `_RAND_WEIGHTED_3A` (`t3aw`).
pub(super) const RAND_WEIGHTED_3A: [(TimmOp, f64); 14] = [
    (SolarizeIncreasing, 6.0),
    (Desaturate, 6.0),
    (GaussianBlur, 6.0),
    (Rotate, 3.0),
    (ShearX, 2.0),
    (ShearY, 2.0),
    (PosterizeIncreasing, 1.0),
    (AutoContrast, 1.0),
    (ColorIncreasing, 1.0),
    (SharpnessIncreasing, 1.0),
    (ContrastIncreasing, 1.0),
    (BrightnessIncreasing, 1.0),
    (Equalize, 1.0),
    (Invert, 1.0),
];

/// `_RAND_WEIGHTED_0` (`tweights`).
pub(super) const RAND_WEIGHTED_0: [(TimmOp, f64); 15] = [
    (Rotate, 3.0),
    (ShearX, 2.0),
    (ShearY, 2.0),
    (TranslateXRel, 1.0),
    (TranslateYRel, 1.0),
    (ColorIncreasing, 0.25),
    (SharpnessIncreasing, 0.25),
    (AutoContrast, 0.25),
    (SolarizeIncreasing, 0.05),
    (SolarizeAdd, 0.05),
    (ContrastIncreasing, 0.05),
    (BrightnessIncreasing, 0.05),
    (Equalize, 0.05),
    (PosterizeIncreasing, 0.05),
    (Invert, 0.05),
];

/// `_AUGMIX_TRANSFORMS`.
pub(super) const AUGMIX: [TimmOp; 13] = [
    AutoContrast,
    ColorIncreasing,
    ContrastIncreasing,
    BrightnessIncreasing,
    SharpnessIncreasing,
    Equalize,
    Rotate,
    PosterizeIncreasing,
    SolarizeIncreasing,
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
];

/// A sub-policy of an AutoAugment table: operations with their probability and magnitude.
type SubPolicy = &'static [(TimmOp, f64, u8)];

/// `auto_augment_policy_original` (ImageNet, the AutoAugment paper); `originalr` swaps its
/// posterize for `PosterizeIncreasing`.
pub(super) const ORIGINAL: [SubPolicy; 25] = [
    &[(PosterizeOriginal, 0.4, 8), (Rotate, 0.6, 9)],
    &[(Solarize, 0.6, 5), (AutoContrast, 0.6, 5)],
    &[(Equalize, 0.8, 8), (Equalize, 0.6, 3)],
    &[(PosterizeOriginal, 0.6, 7), (PosterizeOriginal, 0.6, 6)],
    &[(Equalize, 0.4, 7), (Solarize, 0.2, 4)],
    &[(Equalize, 0.4, 4), (Rotate, 0.8, 8)],
    &[(Solarize, 0.6, 3), (Equalize, 0.6, 7)],
    &[(PosterizeOriginal, 0.8, 5), (Equalize, 1.0, 2)],
    &[(Rotate, 0.2, 3), (Solarize, 0.6, 8)],
    &[(Equalize, 0.6, 8), (PosterizeOriginal, 0.4, 6)],
    &[(Rotate, 0.8, 8), (Color, 0.4, 0)],
    &[(Rotate, 0.4, 9), (Equalize, 0.6, 2)],
    &[(Equalize, 0.0, 7), (Equalize, 0.8, 8)],
    &[(Invert, 0.6, 4), (Equalize, 1.0, 8)],
    &[(Color, 0.6, 4), (Contrast, 1.0, 8)],
    &[(Rotate, 0.8, 8), (Color, 1.0, 2)],
    &[(Color, 0.8, 8), (Solarize, 0.8, 7)],
    &[(Sharpness, 0.4, 7), (Invert, 0.6, 8)],
    &[(ShearX, 0.6, 5), (Equalize, 1.0, 9)],
    &[(Color, 0.4, 0), (Equalize, 0.6, 3)],
    &[(Equalize, 0.4, 7), (Solarize, 0.2, 4)],
    &[(Solarize, 0.6, 5), (AutoContrast, 0.6, 5)],
    &[(Invert, 0.6, 4), (Equalize, 1.0, 8)],
    &[(Color, 0.6, 4), (Contrast, 1.0, 8)],
    &[(Equalize, 0.8, 8), (Equalize, 0.6, 3)],
];

/// `auto_augment_policy_v0` (ImageNet, TPU EfficientNet); `v0r` swaps its posterize for
/// `PosterizeIncreasing`.
pub(super) const V0: [SubPolicy; 25] = [
    &[(Equalize, 0.8, 1), (ShearY, 0.8, 4)],
    &[(Color, 0.4, 9), (Equalize, 0.6, 3)],
    &[(Color, 0.4, 1), (Rotate, 0.6, 8)],
    &[(Solarize, 0.8, 3), (Equalize, 0.4, 7)],
    &[(Solarize, 0.4, 2), (Solarize, 0.6, 2)],
    &[(Color, 0.2, 0), (Equalize, 0.8, 8)],
    &[(Equalize, 0.4, 8), (SolarizeAdd, 0.8, 3)],
    &[(ShearX, 0.2, 9), (Rotate, 0.6, 8)],
    &[(Color, 0.6, 1), (Equalize, 1.0, 2)],
    &[(Invert, 0.4, 9), (Rotate, 0.6, 0)],
    &[(Equalize, 1.0, 9), (ShearY, 0.6, 3)],
    &[(Color, 0.4, 7), (Equalize, 0.6, 0)],
    &[(Posterize, 0.4, 6), (AutoContrast, 0.4, 7)],
    &[(Solarize, 0.6, 8), (Color, 0.6, 9)],
    &[(Solarize, 0.2, 4), (Rotate, 0.8, 9)],
    &[(Rotate, 1.0, 7), (TranslateYRel, 0.8, 9)],
    &[(ShearX, 0.0, 0), (Solarize, 0.8, 4)],
    &[(ShearY, 0.8, 0), (Color, 0.6, 4)],
    &[(Color, 1.0, 0), (Rotate, 0.6, 2)],
    &[(Equalize, 0.8, 4), (Equalize, 0.0, 8)],
    &[(Equalize, 1.0, 4), (AutoContrast, 0.6, 2)],
    &[(ShearY, 0.4, 7), (SolarizeAdd, 0.6, 7)],
    &[(Posterize, 0.8, 2), (Solarize, 0.6, 10)],
    &[(Solarize, 0.6, 8), (Equalize, 0.6, 1)],
    &[(Color, 0.8, 6), (Rotate, 0.4, 5)],
];

/// `auto_augment_policy_3a` (DeiT III's 3-Augment): one of solarize, greyscale or blur.
pub(super) const THREE_A: [SubPolicy; 3] =
    [&[(Solarize, 1.0, 5)], &[(Desaturate, 1.0, 10)], &[(GaussianBlurRand, 1.0, 10)]];

/// What timm's `AugmentOp` reads from its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Hparams {
    /// The magnitude's standard deviation; infinite: uniform in `[0, magnitude]`.
    pub(super) std: f64,
    /// The magnitude's upper clamp (`magnitude_max`, else 10).
    pub(super) max: f64,
    /// Relative translations' largest share of the side (`translate_pct`).
    pub(super) translate: f64,
}

impl Hparams {
    /// timm's defaults as its training script passes them: fixed magnitudes clamped to 10,
    /// translations up to 45 % of the side.
    pub(super) const TRAIN: Hparams = Hparams { std: 0.0, max: LEVEL_DENOM, translate: 0.45 };
}

/// timm's `AugmentOp.__call__` for `op` at `prob` and `magnitude`: `None` when the probability
/// skips it, else the Pillow operation with its drawn argument, for a `w × h` image; geometric
/// operations sample with `resample` (`None`: bilinear or bicubic at random).
pub(super) fn draw_step(
    op: TimmOp,
    prob: f64,
    magnitude: f64,
    hp: &Hparams,
    resample: Option<Resample>,
    rng: &mut Uniform,
    (w, h): (f64, f64),
) -> Option<AugmentOp> {
    if prob < 1.0 && rng.unit() > prob {
        return None;
    }
    let magnitude = if hp.std.is_infinite() {
        rng.between(0.0, magnitude)
    } else if hp.std > 0.0 {
        magnitude + hp.std * rng.normal()
    } else {
        magnitude
    };
    let level = magnitude.clamp(0.0, hp.max) / LEVEL_DENOM;
    // Python's int(): toward zero, here on non-negative values.
    let whole = |x: f64| x as i64;
    // The enhancements' factor: fixed by the level, or 1 ± 0.9 level ("increasing").
    let fixed = (1.8 * level + 0.1) as f32;
    let increasing = |rng: &mut Uniform| (1.0 + signed(rng, 0.9 * level)).max(0.1) as f32;
    let pick = |rng: &mut Uniform| pick_resample(resample, rng);
    let solarize = whole(256.0 * level).min(256);
    Some(match op {
        AutoContrast => AugmentOp::AutoContrast,
        Equalize => AugmentOp::Equalize,
        Invert => AugmentOp::Invert,
        Rotate => AugmentOp::Rotate { degrees: signed(rng, 30.0 * level) as f32, resample: pick(rng) },
        Posterize => AugmentOp::Posterize(whole(4.0 * level).clamp(0, 8) as u8),
        PosterizeIncreasing => AugmentOp::Posterize((4 - whole(4.0 * level)).clamp(0, 8) as u8),
        PosterizeOriginal => AugmentOp::Posterize((whole(4.0 * level) + 4).clamp(0, 8) as u8),
        Solarize => AugmentOp::Solarize(solarize as f32),
        SolarizeIncreasing => AugmentOp::Solarize((256 - solarize) as f32),
        SolarizeAdd => AugmentOp::SolarizeAdd(whole(110.0 * level).min(128) as u8),
        Color => AugmentOp::Color(fixed),
        ColorIncreasing => AugmentOp::Color(increasing(rng)),
        Contrast => AugmentOp::Contrast(fixed),
        ContrastIncreasing => AugmentOp::Contrast(increasing(rng)),
        Brightness => AugmentOp::Brightness(fixed),
        BrightnessIncreasing => AugmentOp::Brightness(increasing(rng)),
        Sharpness => AugmentOp::Sharpness(fixed),
        SharpnessIncreasing => AugmentOp::Sharpness(increasing(rng)),
        ShearX => AugmentOp::ShearX { factor: signed(rng, 0.3 * level) as f32, resample: pick(rng) },
        ShearY => AugmentOp::ShearY { factor: signed(rng, 0.3 * level) as f32, resample: pick(rng) },
        TranslateXRel => {
            AugmentOp::TranslateX { pixels: (signed(rng, hp.translate * level) * w) as f32, resample: pick(rng) }
        }
        TranslateYRel => {
            AugmentOp::TranslateY { pixels: (signed(rng, hp.translate * level) * h) as f32, resample: pick(rng) }
        }
        // `desaturate`: Color at 1 − the level's value in [0.5, 1].
        Desaturate => AugmentOp::Color((1.0 - (0.5 + 0.5 * level).clamp(0.5, 1.0)).clamp(0.0, 1.0) as f32),
        GaussianBlur => AugmentOp::GaussianBlur((0.1 + 1.9 * level).clamp(0.1, 2.0) as f32),
        GaussianBlurRand => AugmentOp::GaussianBlur(rng.between(0.1, 2.0 * level.clamp(0.0, 1.0)) as f32),
    })
}

/// timm's `_randomly_negate`: `-v` half the time.
pub(super) fn signed(rng: &mut Uniform, v: f64) -> f64 {
    if rng.unit() > 0.5 { -v } else { v }
}

/// `n` operations drawn from `set` by weight, without replacement (numpy's `choice(…,
/// replace=False, p=…)`, as timm's weighted RandAugment draws); `n` is at most `set.len()`.
pub(super) fn weighted_without_replacement(set: &[(TimmOp, f64)], n: usize, rng: &mut Uniform) -> Vec<TimmOp> {
    let mut left = set.to_vec();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.min(set.len()) {
        let total: f64 = left.iter().map(|(_, w)| w).sum();
        let mut at = rng.unit() * total;
        let i = left.iter().position(|(_, w)| {
            at -= w;
            at < 0.0
        });
        let (op, _) = left.swap_remove(i.unwrap_or(left.len() - 1));
        out.push(op);
    }
    out
}
