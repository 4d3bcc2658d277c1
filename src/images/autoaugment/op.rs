//! One drawn operation of a policy, with its magnitude, and how it changes an image.

use super::warp::{self, Affine, Resample};
use super::{blur, pixel};
use crate::images::{CHANNELS, Image};

/// One operation of RandAugment or TrivialAugment with its drawn magnitude, as
/// [`RandAugment::draw`](super::RandAugment::draw) returns them. [`AugmentOp::apply`] changes an
/// image in place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AugmentOp {
    /// No change (torchvision's policies draw it like any other).
    Identity,
    /// Stretch each channel to span 0–255.
    AutoContrast,
    /// Flatten each channel's histogram.
    Equalize,
    /// `255 − x`.
    Invert,
    /// Keep the top bits of each value (8: unchanged; 0: black).
    Posterize(u8),
    /// Invert each value at or above the threshold (above 255: nothing changes).
    Solarize(f32),
    /// Add to each value below 128, saturating.
    SolarizeAdd(u8),
    /// Blend with black: `f × x` (1: unchanged).
    Brightness(f32),
    /// Blend each pixel with its grey (0: greyscale; 1: unchanged).
    Color(f32),
    /// Blend with the image's mean grey (1: unchanged).
    Contrast(f32),
    /// Blend with the image smoothed by a 3×3 kernel (below 1: blurred; above: sharpened).
    Sharpness(f32),
    /// Blur with a Gaussian of this radius (its standard deviation, in pixels), as Pillow's
    /// `GaussianBlur` does it: three box blurs each way.
    GaussianBlur(f32),
    /// Turn the picture counter-clockwise about its centre, in degrees.
    Rotate {
        /// Degrees, counter-clockwise.
        degrees: f32,
        /// The sampling filter.
        resample: Resample,
    },
    /// Shift row `y` (centre `y + ½`) left by `factor × (y + ½)` pixels: the input's
    /// `x + factor × y` is read.
    ShearX {
        /// The shear factor (tan of the angle).
        factor: f32,
        /// The sampling filter.
        resample: Resample,
    },
    /// Shift column `x` up by `factor × (x + ½)` pixels.
    ShearY {
        /// The shear factor.
        factor: f32,
        /// The sampling filter.
        resample: Resample,
    },
    /// Move the picture right (negative: left), in pixels.
    TranslateX {
        /// Pixels (fractions are interpolated).
        pixels: f32,
        /// The sampling filter.
        resample: Resample,
    },
    /// Move the picture down (negative: up), in pixels.
    TranslateY {
        /// Pixels.
        pixels: f32,
        /// The sampling filter.
        resample: Resample,
    },
}

impl AugmentOp {
    /// Changes `image` in place; the geometric operations fill what they uncover with `fill`.
    /// `image.data` must hold `width × height × 3` values ([`RandAugment::apply`](super::RandAugment::apply)
    /// checks it).
    pub fn apply(&self, image: &mut Image<u8>, fill: [u8; CHANNELS]) {
        let (w, h) = (image.width, image.height);
        let geometric = |map: Affine, resample, image: &mut Image<u8>| warp::warp(image, &map, resample, fill);
        match *self {
            Self::Identity => {}
            Self::AutoContrast => pixel::autocontrast(image),
            Self::Equalize => pixel::equalize(image),
            Self::Invert => pixel::invert(image),
            Self::Posterize(bits) => pixel::posterize(image, bits),
            Self::Solarize(threshold) => pixel::solarize(image, threshold),
            Self::SolarizeAdd(add) => pixel::solarize_add(image, add),
            Self::Brightness(f) => pixel::brightness(image, f),
            Self::Color(f) => pixel::color(image, f),
            Self::Contrast(f) => pixel::contrast(image, f),
            Self::Sharpness(f) => pixel::sharpness(image, f),
            Self::GaussianBlur(radius) => blur::gaussian_blur(image, radius),
            Self::Rotate { degrees, resample } => geometric(Affine::rotate(f64::from(degrees), w, h), resample, image),
            Self::ShearX { factor, resample } => geometric(Affine::shear_x(f64::from(factor)), resample, image),
            Self::ShearY { factor, resample } => geometric(Affine::shear_y(f64::from(factor)), resample, image),
            Self::TranslateX { pixels, resample } => {
                geometric(Affine::translate(f64::from(pixels), 0.0), resample, image);
            }
            Self::TranslateY { pixels, resample } => {
                geometric(Affine::translate(0.0, f64::from(pixels)), resample, image);
            }
        }
    }

    /// The operation's name as timm and torchvision spell it (`"ShearX"`, `"Posterize"`...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Identity => "Identity",
            Self::AutoContrast => "AutoContrast",
            Self::Equalize => "Equalize",
            Self::Invert => "Invert",
            Self::Posterize(_) => "Posterize",
            Self::Solarize(_) => "Solarize",
            Self::SolarizeAdd(_) => "SolarizeAdd",
            Self::Brightness(_) => "Brightness",
            Self::Color(_) => "Color",
            Self::Contrast(_) => "Contrast",
            Self::Sharpness(_) => "Sharpness",
            Self::GaussianBlur(_) => "GaussianBlur",
            Self::Rotate { .. } => "Rotate",
            Self::ShearX { .. } => "ShearX",
            Self::ShearY { .. } => "ShearY",
            Self::TranslateX { .. } => "TranslateX",
            Self::TranslateY { .. } => "TranslateY",
        }
    }
}
