//! Automatic augmentation policies: timm's `RandAugment` (`rand-m9-mstd0.5-inc1`, the ImageNet
//! recipe of timm's training script), AutoAugment tables (`original`, `v0`, `3a`...) and AugMix
//! (`augmix.rs`), torchvision's `RandAugment` and `TrivialAugmentWide`, on resized `u8` images,
//! drawn per image and epoch from a seed.
//!
//! ```text
//!  Image<u8> ─draw(seed, epoch, index)─▶ [AugmentOp; n] ─apply each in turn─▶ Image<u8>
//!     colour ops (pixel.rs): tables and blends        geometric ops (warp.rs): inverse affine map + filter
//!     blur (blur.rs): Pillow's box blurs              timm's names and levels (timm.rs) → AugmentOp
//! ```
//!
//! A policy draws its operations and their magnitudes for an image from the image's own
//! generator ([`Uniform::for_sample`] in a stream of its own), so an image gets the same
//! operations on every placement and shard, and new ones each epoch, with no shared state.
//! The operations are Pillow's, which both libraries call on PIL images (see `pixel.rs` and
//! `warp.rs` for where the arithmetic differs by a rounding).

mod augmix;
mod blur;
mod op;
mod pixel;
mod timm;
mod warp;

pub use augmix::{AugMix, AugMixDraw, AugmentPolicy};
pub(super) use blur::gaussian_blur;
pub use op::AugmentOp;
pub(super) use pixel::{grayscale, solarize};
pub use warp::Resample;

use super::augment::Uniform;
use super::{CHANNELS, Image, ImageError, ImageErrorKind, Sample};
use timm::{Hparams, TimmOp};

/// Separates a policy's draws from those of an [`Augment`](super::Augment) with the same seed.
const STREAM: u64 = 0x6175_746f_6175_6700;

/// timm's levels run from 0 to this (`_LEVEL_DENOM`).
const LEVEL_DENOM: f64 = 10.0;

/// torchvision's `num_magnitude_bins`.
const BINS: u32 = 31;

/// The most operations per image a policy applies.
pub const MAX_LAYERS: u32 = 16;

/// ImageNet's mean colour, `round(255 × (0.485, 0.456, 0.406))`: timm's fill for the pixels a
/// geometric operation uncovers.
pub const IMAGENET_MEAN_FILL: [u8; CHANNELS] = [124, 116, 104];

/// An automatic augmentation policy: timm's `RandAugment` ([`RandAugment::timm`]),
/// torchvision's `RandAugment` ([`RandAugment::torchvision`]) or `TrivialAugmentWide`
/// ([`RandAugment::trivial_wide`]); [`RandAugment::parse`] reads any of them from the names
/// those libraries' training scripts take.
///
/// ```
/// use shardpipe::images::{Augment, RandAugment};
///
/// let policy = RandAugment::timm(7, "rand-m9-mstd0.5-inc1")?;
/// let train = Augment::new(7).auto_augment(policy);
/// # Ok::<(), shardpipe::images::RandAugmentError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandAugment {
    seed: u64,
    policy: Policy,
    fill: [u8; CHANNELS],
    /// `None`: bilinear or bicubic at random for each geometric operation (timm's `random`).
    resample: Option<Resample>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    Timm(Timm),
    /// One sub-policy of a timm AutoAugment table per image.
    AutoAugment {
        table: Table,
        hp: Hparams,
    },
    /// torchvision's `RandAugment(num_ops, magnitude)`: `layers` operations at the fixed bin.
    Torchvision {
        layers: u32,
        bin: u32,
    },
    TrivialWide,
}

/// timm's `rand-...` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Timm {
    layers: u32,
    magnitude: f64,
    prob: f64,
    /// The magnitude's noise and clamp, and the translations' reach.
    hp: Hparams,
    choices: Choices,
}

/// The operations a timm RandAugment draws from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Choices {
    /// Evenly, with replacement.
    Even(&'static [TimmOp]),
    /// By weight, without replacement (timm's weighted sets).
    Weighted(&'static [(TimmOp, f64)]),
}

/// timm's AutoAugment tables (`auto_augment_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Original,
    /// `original` with the research code's posterize (`PosterizeIncreasing`).
    OriginalR,
    V0,
    V0R,
    ThreeA,
}

impl Table {
    const NAMES: [(&'static str, Table); 5] = [
        ("original", Table::Original),
        ("originalr", Table::OriginalR),
        ("v0", Table::V0),
        ("v0r", Table::V0R),
        ("3a", Table::ThreeA),
    ];

    fn sub_policies(self) -> &'static [&'static [(TimmOp, f64, u8)]] {
        match self {
            Table::Original | Table::OriginalR => &timm::ORIGINAL,
            Table::V0 | Table::V0R => &timm::V0,
            Table::ThreeA => &timm::THREE_A,
        }
    }

    /// The operation the table runs for `op` (the `r` tables swap in `PosterizeIncreasing`).
    fn op(self, op: TimmOp) -> TimmOp {
        match (self, op) {
            (Table::OriginalR, TimmOp::PosterizeOriginal) | (Table::V0R, TimmOp::Posterize) => {
                TimmOp::PosterizeIncreasing
            }
            _ => op,
        }
    }
}

/// A policy name or setting [`RandAugment`] refuses; each message says what it accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RandAugmentError {
    /// A name none of the policies has.
    #[error(
        "auto-augment {0:?}: not a policy name; use timm's \"rand-m9-mstd0.5-inc1\" (sections m, n, mstd, mmax, inc, p, t), \"augmix-m3-w3\" (m, w, d, a, b, mstd) or an AutoAugment table (original, originalr, v0, v0r, 3a; section mstd), torchvision's \"ra\" (or \"ra-n2-m9\") or \"ta_wide\""
    )]
    Unknown(String),
    /// A section of a policy name that is not understood or out of range.
    #[error("auto-augment {config:?}: section {section:?} {reason}")]
    Section {
        /// The whole name.
        config: String,
        /// The section, as written.
        section: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
}

impl RandAugmentError {
    fn section(config: &str, section: &str, reason: impl Into<String>) -> Self {
        Self::Section { config: config.to_owned(), section: section.to_owned(), reason: reason.into() }
    }
}

impl RandAugment {
    /// timm's `rand_augment_transform(config)` as timm's training script sets it up: the fill
    /// is ImageNet's mean colour, translations reach 45 % of the side, and each geometric
    /// operation samples bilinear or bicubic at random (`train.py`'s default
    /// `--train-interpolation random`; [`RandAugment::resample`] fixes one).
    ///
    /// `config` is `rand` followed by `-`-separated sections: `m9` (magnitude, default 10),
    /// `n2` (operations per image, default 2), `mstd0.5` (the magnitude's standard deviation
    /// per operation; above 100: uniform in `[0, m]`), `mmax10` (the magnitude's upper clamp),
    /// `inc1` (the "increasing" operations, stronger with the magnitude; `inc0` is off, where
    /// timm turns it on), `p0.5` (each operation's probability, default 0.5), and `t` with a
    /// transform set: `t3a` (3-Augment's solarize, greyscale and blur), `t3aw` (those and 11
    /// more, by weight, without replacement) or `tweights` (timm's weighted set).
    pub fn timm(seed: u64, config: &str) -> Result<Self, RandAugmentError> {
        let mut sections = config.split('-');
        if sections.next() != Some("rand") {
            return Err(RandAugmentError::Unknown(config.to_owned()));
        }
        let hp = Hparams::TRAIN;
        let mut t = Timm { layers: 2, magnitude: LEVEL_DENOM, prob: 0.5, hp, choices: Choices::Even(&timm::RAND) };
        let (mut increasing, mut set) = (false, None);
        for section in sections {
            let bad = |reason: &str| RandAugmentError::section(config, section, reason);
            if let Some(name) = section.strip_prefix('t') {
                set = Some(match name {
                    "3a" => Choices::Even(&timm::RAND_3A),
                    "3aw" => Choices::Weighted(&timm::RAND_WEIGHTED_3A),
                    "weights" => Choices::Weighted(&timm::RAND_WEIGHTED_0),
                    _ => return Err(bad("is not a transform set: t3a, t3aw or tweights")),
                });
                continue;
            }
            let (key, value, number) = numbered(section).ok_or_else(|| bad("has no value (write e.g. m9)"))?;
            let number = || number.ok_or_else(|| bad("needs a number from 0 up"));
            match key {
                "m" => t.magnitude = number()?,
                "n" => {
                    t.layers =
                        layers(number()?).ok_or_else(|| bad(&format!("needs a whole number from 1 to {MAX_LAYERS}")))?
                }
                "mstd" => t.hp.std = number().map(|s| if s > 100.0 { f64::INFINITY } else { s })?,
                "mmax" => t.hp.max = number()?,
                "inc" => match value {
                    "0" => increasing = false,
                    "1" => increasing = true,
                    _ => return Err(bad("needs 0 or 1")),
                },
                "p" => {
                    t.prob =
                        number().ok().filter(|p| *p <= 1.0).ok_or_else(|| bad("needs a probability from 0 to 1"))?
                }
                _ => return Err(bad("is not one of m, n, mstd, mmax, inc, p, t")),
            }
        }
        let plain = if increasing { Choices::Even(&timm::RAND_INCREASING) } else { Choices::Even(&timm::RAND) };
        t.choices = set.unwrap_or(plain);
        if let Choices::Weighted(ops) = t.choices
            && t.layers as usize > ops.len()
        {
            let reason = format!("draws without replacement from a weighted set of {0}: at most n{0}", ops.len());
            return Err(RandAugmentError::section(config, &format!("n{}", t.layers), reason));
        }
        Ok(Self { seed, policy: Policy::Timm(t), fill: IMAGENET_MEAN_FILL, resample: None })
    }

    /// timm's `auto_augment_transform(config)` as its training script sets it up (fill and
    /// sampling as in [`RandAugment::timm`]): one sub-policy of a table per image, each of its
    /// operations at the table's probability and magnitude. `config` is the table's name,
    /// `original` or `originalr` (the AutoAugment paper's ImageNet policy), `v0` or `v0r` (TPU
    /// EfficientNet's) or `3a` (DeiT III's 3-Augment), optionally with `-mstd0.5` (the
    /// magnitudes' standard deviation).
    pub fn auto_augment(seed: u64, config: &str) -> Result<Self, RandAugmentError> {
        let mut sections = config.split('-');
        let name = sections.next().unwrap_or_default();
        let Some(&(_, table)) = Table::NAMES.iter().find(|(n, _)| *n == name) else {
            return Err(RandAugmentError::Unknown(config.to_owned()));
        };
        let mut hp = Hparams::TRAIN;
        for section in sections {
            let bad = |reason: &str| RandAugmentError::section(config, section, reason);
            match numbered(section) {
                Some(("mstd", _, Some(std))) => hp.std = std,
                Some(("mstd", _, None)) => return Err(bad("needs a number from 0 up")),
                Some(_) => return Err(bad("is not mstd (the only setting of an AutoAugment table)")),
                None => return Err(bad("has no value (write e.g. mstd0.5)")),
            }
        }
        Ok(Self { seed, policy: Policy::AutoAugment { table, hp }, fill: IMAGENET_MEAN_FILL, resample: None })
    }

    /// torchvision's `RandAugment(num_ops, magnitude)`: `num_ops` of its 14 operations per
    /// image (Identity among them), each at bin `magnitude` of 31 with a random sign; fill
    /// black, nearest sampling (torchvision's defaults).
    pub fn torchvision(seed: u64, num_ops: u32, magnitude: u32) -> Result<Self, RandAugmentError> {
        let config = format!("ra-n{num_ops}-m{magnitude}");
        if !(1..=MAX_LAYERS).contains(&num_ops) {
            let reason = format!("needs a whole number from 1 to {MAX_LAYERS}");
            return Err(RandAugmentError::section(&config, &format!("n{num_ops}"), reason));
        }
        if magnitude >= BINS {
            let reason = format!("needs a bin from 0 to {} (torchvision's default: 9)", BINS - 1);
            return Err(RandAugmentError::section(&config, &format!("m{magnitude}"), reason));
        }
        Ok(Self {
            seed,
            policy: Policy::Torchvision { layers: num_ops, bin: magnitude },
            fill: [0; 3],
            resample: Some(Resample::Nearest),
        })
    }

    /// torchvision's `TrivialAugmentWide`: one of its 14 operations per image at a random bin of
    /// 31, with a random sign; fill black, nearest sampling.
    pub fn trivial_wide(seed: u64) -> Self {
        Self { seed, policy: Policy::TrivialWide, fill: [0; 3], resample: Some(Resample::Nearest) }
    }

    /// A policy by the name a training script takes: timm's `rand-...` ([`RandAugment::timm`])
    /// or AutoAugment tables (`original`, `v0`, `3a`...: [`RandAugment::auto_augment`]),
    /// torchvision's `ta_wide` or `ra` (`ra-n2-m9` for other settings; n: operations, m: bin).
    pub fn parse(seed: u64, name: &str) -> Result<Self, RandAugmentError> {
        if name == "ta_wide" {
            return Ok(Self::trivial_wide(seed));
        }
        if name.starts_with("rand") {
            return Self::timm(seed, name);
        }
        let first = name.split('-').next().unwrap_or_default();
        if Table::NAMES.iter().any(|(n, _)| *n == first) {
            return Self::auto_augment(seed, name);
        }
        let mut sections = name.split('-');
        if sections.next() != Some("ra") {
            return Err(RandAugmentError::Unknown(name.to_owned()));
        }
        let (mut n, mut m) = (2, 9);
        for section in sections {
            let bad = |reason: &str| RandAugmentError::section(name, section, reason);
            let value = |v: &str| v.parse::<u32>().map_err(|_| bad("needs a whole number"));
            match section.split_at(section.len().min(1)) {
                ("n", v) => n = value(v)?,
                ("m", v) => m = value(v)?,
                _ => return Err(bad("is not one of n (operations) or m (bin)")),
            }
        }
        Self::torchvision(seed, n, m).map_err(|e| match e {
            RandAugmentError::Section { section, reason, .. } => {
                RandAugmentError::Section { config: name.to_owned(), section, reason }
            }
            other => other,
        })
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

    /// Bilinear or bicubic, drawn for each geometric operation (timm's `random` interpolation).
    pub fn random_resample(mut self) -> Self {
        self.resample = None;
        self
    }

    /// The operations, in order, for `sample`, a `width × height` image (translations are
    /// relative to its size in timm's policy and torchvision's `RandAugment`); an operation
    /// skipped by timm's probability is left out.
    pub fn draw(&self, sample: &Sample, width: u32, height: u32) -> Vec<AugmentOp> {
        let mut rng = Uniform::for_sample(self.seed ^ STREAM, sample);
        let size = (f64::from(width), f64::from(height));
        match self.policy {
            Policy::Timm(t) => {
                let ops = match t.choices {
                    Choices::Even(set) => (0..t.layers).map(|_| rng.choose(set)).collect(),
                    Choices::Weighted(set) => timm::weighted_without_replacement(set, t.layers as usize, &mut rng),
                };
                ops.into_iter()
                    .filter_map(|op| timm::draw_step(op, t.prob, t.magnitude, &t.hp, self.resample, &mut rng, size))
                    .collect()
            }
            Policy::AutoAugment { table, hp } => rng
                .choose(table.sub_policies())
                .iter()
                .filter_map(|&(op, prob, m)| {
                    timm::draw_step(table.op(op), prob, f64::from(m), &hp, self.resample, &mut rng, size)
                })
                .collect(),
            Policy::Torchvision { layers, bin } => {
                (0..layers).map(|_| self.torchvision_op(&RA_SPACE, Some(bin), &mut rng, size)).collect()
            }
            Policy::TrivialWide => vec![self.torchvision_op(&TA_WIDE_SPACE, None, &mut rng, size)],
        }
    }

    /// `image` with its drawn operations applied in turn.
    pub fn apply(&self, mut image: Image<u8>) -> Result<Image<u8>, ImageError> {
        check_shape(&image)?;
        for op in self.draw(&image.sample, image.width, image.height) {
            op.apply(&mut image, self.fill);
        }
        Ok(image)
    }

    /// torchvision's `_augmentation_space` and `_apply_op`: the operation, its bin (drawn when
    /// `bin` is `None`), then the sign of a signed one.
    fn torchvision_op(&self, space: &Space, bin: Option<u32>, rng: &mut Uniform, (w, h): (f64, f64)) -> AugmentOp {
        let kind = rng.below(14);
        // Operations without magnitudes draw no bin (torchvision's `magnitudes.ndim > 0`).
        let has_bins = (1..=11).contains(&kind);
        let bin = match bin {
            Some(b) => b,
            None if has_bins => rng.below(BINS),
            None => 0,
        };
        let at = |max: f64| max * f64::from(bin) / f64::from(BINS - 1);
        let signed_if = |rng: &mut Uniform, v: f64| if rng.below(2) == 1 { -v } else { v };
        match kind {
            0 => AugmentOp::Identity,
            1 => AugmentOp::ShearX {
                factor: signed_if(rng, at(space.shear)) as f32,
                resample: pick_resample(self.resample, rng),
            },
            2 => AugmentOp::ShearY {
                factor: signed_if(rng, at(space.shear)) as f32,
                resample: pick_resample(self.resample, rng),
            },
            3 | 4 => {
                let side = if kind == 3 { w } else { h };
                let max = if space.translate_relative { space.translate * side } else { space.translate };
                // torchvision translates by int(magnitude): whole pixels, toward zero.
                let pixels = (signed_if(rng, at(max)) as i64) as f32;
                let resample = pick_resample(self.resample, rng);
                if kind == 3 {
                    AugmentOp::TranslateX { pixels, resample }
                } else {
                    AugmentOp::TranslateY { pixels, resample }
                }
            }
            5 => AugmentOp::Rotate {
                degrees: signed_if(rng, at(space.rotate)) as f32,
                resample: pick_resample(self.resample, rng),
            },
            6..=9 => {
                let f = (1.0 + signed_if(rng, at(space.enhance))) as f32;
                [AugmentOp::Brightness(f), AugmentOp::Color(f), AugmentOp::Contrast(f), AugmentOp::Sharpness(f)]
                    [kind as usize - 6]
            }
            10 => {
                let step = f64::from(BINS - 1) / space.posterize_steps;
                AugmentOp::Posterize((8.0 - (f64::from(bin) / step).round_ties_even()) as u8)
            }
            11 => AugmentOp::Solarize((255.0 - at(255.0)) as f32),
            12 => AugmentOp::AutoContrast,
            _ => AugmentOp::Equalize,
        }
    }
}

/// A torchvision policy's largest magnitudes (at the last bin).
struct Space {
    shear: f64,
    /// Pixels, or a share of the side when `translate_relative`.
    translate: f64,
    translate_relative: bool,
    rotate: f64,
    /// Brightness, colour, contrast and sharpness: the factor is `1 ± this`.
    enhance: f64,
    /// Bits posterize takes off at the last bin.
    posterize_steps: f64,
}

/// `RandAugment._augmentation_space`.
const RA_SPACE: Space = Space {
    shear: 0.3,
    translate: 150.0 / 331.0,
    translate_relative: true,
    rotate: 30.0,
    enhance: 0.9,
    posterize_steps: 4.0,
};

/// `TrivialAugmentWide._augmentation_space`.
const TA_WIDE_SPACE: Space = Space {
    shear: 0.99,
    translate: 32.0,
    translate_relative: false,
    rotate: 135.0,
    enhance: 0.99,
    posterize_steps: 6.0,
};

/// Refuses an image whose data is not `width × height × 3` values.
fn check_shape(image: &Image<u8>) -> Result<(), ImageError> {
    let want = image.width as usize * image.height as usize * CHANNELS;
    if image.data.len() == want {
        return Ok(());
    }
    let (values, width, height) = (image.data.len(), image.width, image.height);
    Err(ImageError::new(&image.sample.path, ImageErrorKind::Shape { values, width, height, want }))
}

/// The filter of one geometric operation: the chosen one, or bilinear or bicubic at random
/// (timm's `random` interpolation).
fn pick_resample(choice: Option<Resample>, rng: &mut Uniform) -> Resample {
    choice.unwrap_or_else(|| if rng.below(2) == 0 { Resample::Bilinear } else { Resample::Bicubic })
}

/// A timm section split as timm's `re.split(r'(\d.*)', c)` splits it: the key before the first
/// digit, the value from it, and the value as a number (if it is one from 0 up); `None` when
/// it has no digit.
fn numbered(section: &str) -> Option<(&str, &str, Option<f64>)> {
    let split = section.find(|c: char| c.is_ascii_digit())?;
    let (key, value) = section.split_at(split);
    Some((key, value, value.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)))
}

/// `n` as a number of operations, if it is a whole number in range.
fn layers(n: f64) -> Option<u32> {
    (n.fract() == 0.0 && (1.0..=f64::from(MAX_LAYERS)).contains(&n)).then_some(n as u32)
}

#[cfg(test)]
mod tests;
