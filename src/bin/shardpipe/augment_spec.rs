//! The plan keys of a training crop (`augment = { … }` on a `resize` stage or a view) and of a
//! center crop's filter (`resample`), turned into the library's `Augment` and `Crop`.

use serde::Deserialize;

/// `augment = { seed = 7, scale = [0.08, 1.0], ratio = [0.75, 1.333], flip = 0.5 }` on a
/// `resize` stage: torchvision's `RandomResizedCrop` (`resample = "bicubic"` for its filter) and
/// `RandomHorizontalFlip` (its defaults for the keys left out), `ColorJitter` with any of
/// `brightness`, `contrast`, `saturation`, `hue` (applied with probability `jitter_p`), the
/// self-supervised steps `grayscale = p`, `blur = p` (`blur_sigma = [0.1, 2.0]`; `blur_kernel = 9`
/// for torchvision's kernel instead of Pillow's blur) and
/// `solarize = p`, and `auto_augment = "rand-m9-mstd0.5-inc1"` (or `"augmix-m3-w3"`,
/// `"original"`, `"ra"`, `"ta_wide"`...).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentSpec {
    pub seed: u64,
    pub scale: Option<[f64; 2]>,
    pub ratio: Option<[f64; 2]>,
    pub flip: Option<f64>,
    /// torchvision's `ColorJitter` strengths (0 or left out: that adjustment is off).
    pub brightness: Option<f64>,
    pub contrast: Option<f64>,
    pub saturation: Option<f64>,
    pub hue: Option<f64>,
    /// The filter that resizes the crop (default bilinear).
    pub resample: Option<ResampleSpec>,
    /// The probability of applying the colour jitter (torchvision's `RandomApply`; default 1).
    pub jitter_p: Option<f64>,
    /// Probabilities of `RandomGrayscale`, DINO's `GaussianBlur` and `Solarization`.
    pub grayscale: Option<f64>,
    pub blur: Option<f64>,
    /// The blur's radius range in pixels (default DINO's `[0.1, 2.0]`); needs `blur`.
    pub blur_sigma: Option<[f64; 2]>,
    /// torchvision's `GaussianBlur(kernel_size)` of this many taps instead of Pillow's blur
    /// (DINOv2: 9); needs `blur`.
    pub blur_kernel: Option<u32>,
    pub solarize: Option<f64>,
    /// An automatic augmentation policy by name: timm's `rand-m9-mstd0.5-inc1` form, AugMix
    /// (`augmix-m3-w3`) or an AutoAugment table (`original`, `v0`, `3a`...), torchvision's `ra`
    /// (`ra-n2-m9`) or `ta_wide`; seeded with `seed`.
    pub auto_augment: Option<String>,
}

impl AugmentSpec {
    /// The library's [`Augment`](shardpipe::images::Augment), or why a value is out of range.
    pub fn build(&self) -> Result<shardpipe::images::Augment, String> {
        self.build_checked().map_err(|e| e.to_string())
    }

    fn build_checked(&self) -> Result<shardpipe::images::Augment, Box<dyn std::error::Error>> {
        let mut a = shardpipe::images::Augment::new(self.seed);
        if let Some([lo, hi]) = self.scale {
            a = a.scale(lo, hi)?;
        }
        if let Some([lo, hi]) = self.ratio {
            a = a.ratio(lo, hi)?;
        }
        if let Some(p) = self.flip {
            a = a.flip(p)?;
        }
        if let Some(resample) = self.resample {
            a = a.resample(resample.into());
        }
        let jitter = [self.brightness, self.contrast, self.saturation, self.hue];
        if jitter.iter().any(Option::is_some) {
            let [b, c, s, h] = jitter.map(|x| x.unwrap_or(0.0));
            a = a.color_jitter(b, c, s, h)?;
        } else if let Some(p) = self.jitter_p {
            return Err(format!(
                "augment jitter_p {p}: there is no colour jitter to apply; set brightness, contrast, saturation or hue too"
            )
            .into());
        }
        if let Some(p) = self.jitter_p {
            a = a.color_jitter_p(p)?;
        }
        if let Some(p) = self.grayscale {
            a = a.grayscale(p)?;
        }
        match (self.blur, self.blur_sigma) {
            (Some(p), sigma) => {
                let [lo, hi] = sigma.unwrap_or([0.1, 2.0]);
                a = a.blur(p, lo, hi)?;
            }
            (None, Some([lo, hi])) => {
                return Err(format!(
                    "augment blur_sigma [{lo}, {hi}]: set blur = p too (the probability of blurring; DINO uses 1.0, 0.1 and 0.5)"
                )
                .into());
            }
            (None, None) => {}
        }
        match (self.blur, self.blur_kernel) {
            (Some(_), Some(k)) => a = a.blur_kernel(k)?,
            (None, Some(k)) => {
                return Err(format!(
                    "augment blur_kernel {k}: set blur = p too (the probability of blurring; DINOv2 uses 0, 0.9 and 0.5 with 9 taps)"
                )
                .into());
            }
            (_, None) => {}
        }
        if let Some(p) = self.solarize {
            a = a.solarize(p)?;
        }
        if let Some(name) = &self.auto_augment {
            a = a.auto_augment(shardpipe::images::AugmentPolicy::parse(self.seed, name)?);
        }
        Ok(a)
    }
}

/// The center crop of a `resize` stage or view: `crop_fraction` of the centered region's sides
/// (default all), resized with `resample` (default bilinear).
pub fn center_crop(fraction: Option<f64>, resample: Option<ResampleSpec>) -> shardpipe::images::Crop {
    let fraction = fraction.unwrap_or(1.0);
    match resample {
        Some(r) => shardpipe::images::Crop::CenterWith(fraction, r.into()),
        None => shardpipe::images::Crop::Center(fraction),
    }
}

/// `resample = "bilinear"`, `"bicubic"` or `"nearest"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResampleSpec {
    Nearest,
    Bilinear,
    Bicubic,
}

impl From<ResampleSpec> for shardpipe::images::Resample {
    fn from(r: ResampleSpec) -> Self {
        match r {
            ResampleSpec::Nearest => Self::Nearest,
            ResampleSpec::Bilinear => Self::Bilinear,
            ResampleSpec::Bicubic => Self::Bicubic,
        }
    }
}
