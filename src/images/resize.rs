//! Center-crop and resize (fast_image_resize: SIMD convolution, bilinear filter).

use std::cell::RefCell;

use fast_image_resize::images::{Image as FrImage, ImageRef as FrImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::{Augment, Image, ImageError, ImageErrorKind, Resample};

thread_local! {
    // A resizer keeps its scratch buffers between calls: one per thread saves an allocation
    // per image (a shard or an offload thread resizes one image at a time).
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Crops the largest centered region with the target's aspect ratio, then resizes it to
/// `width × height` (a bilinear convolution that averages over the whole footprint when
/// shrinking, as Pillow's `BILINEAR` does). An image already that size comes back unchanged.
pub fn resize(image: Image<u8>, width: u32, height: u32) -> Result<Image<u8>, ImageError> {
    resize_center(image, width, height, 1.0)
}

/// Like [`resize`], but the centered crop keeps only `fraction` of that region's sides, as
/// evaluation transforms do: torchvision's `Resize(256)` then `CenterCrop(224)` keeps
/// 224 / 256 = 0.875. `fraction` must be in (0, 1]; 1 is [`resize`].
pub fn resize_center(image: Image<u8>, width: u32, height: u32, fraction: f64) -> Result<Image<u8>, ImageError> {
    resize_center_with(image, width, height, fraction, Resample::Bilinear)
}

/// [`resize_center`] with the `resample` filter: timm's evaluation transforms resize with
/// bicubic for most of its models (`interpolation='bicubic'` in their configurations).
pub fn resize_center_with(
    image: Image<u8>,
    width: u32,
    height: u32,
    fraction: f64,
    resample: Resample,
) -> Result<Image<u8>, ImageError> {
    let region = center_region(&image, width, height, fraction)?;
    resize_region(image, width, height, region, resample)
}

/// The region [`resize_center`] resizes.
fn center_region(
    image: &Image<u8>,
    width: u32,
    height: u32,
    fraction: f64,
) -> Result<(f64, f64, f64, f64), ImageError> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        let msg = format!(
            "crop fraction {fraction} is outside (0, 1] (0.875 is torchvision's Resize(256) + CenterCrop(224))"
        );
        return Err(ImageError::new(&image.sample.path, ImageErrorKind::Resize(msg)));
    }
    let (left, top, cw, ch) = center_crop(image.width, image.height, width, height);
    let (kw, kh) = (cw * fraction, ch * fraction);
    Ok((left + (cw - kw) / 2.0, top + (ch - kh) / 2.0, kw, kh))
}

/// Which region of each image the `resize` stage resizes.
#[derive(Debug, Clone, Copy, PartialEq)]
// One per stage or view, built once: staying `Copy` matters more than its size (~230 bytes).
#[allow(clippy::large_enum_variant)]
pub enum Crop {
    /// The centered region with the target's aspect ratio, keeping this share of its sides
    /// ([`resize_center`]): 1 keeps all of it (the default, [`resize`]); 0.875 is torchvision's
    /// `Resize(256)` + `CenterCrop(224)` for evaluation.
    Center(f64),
    /// The same centered region resized with another filter ([`resize_center_with`]):
    /// `Crop::CenterWith(0.875, Resample::Bicubic)` is timm's usual evaluation transform.
    CenterWith(f64, Resample),
    /// A random resized crop and flip per image, for training ([`Augment::apply`]).
    Random(Augment),
}

impl Default for Crop {
    fn default() -> Self {
        Self::Center(1.0)
    }
}

impl Crop {
    /// `image`'s region resized to `width × height` (and flipped, for a random crop that says so).
    pub fn apply(&self, image: Image<u8>, width: u32, height: u32) -> Result<Image<u8>, ImageError> {
        match self {
            Self::Center(fraction) => resize_center(image, width, height, *fraction),
            Self::CenterWith(fraction, resample) => resize_center_with(image, width, height, *fraction, *resample),
            Self::Random(augment) => augment.apply(image, width, height),
        }
    }

    /// [`apply`](Self::apply) reading a borrowed image (one of several views of it).
    pub(crate) fn apply_to(&self, image: &Image<u8>, width: u32, height: u32) -> Result<Image<u8>, ImageError> {
        match self {
            Self::Center(fraction) => Self::CenterWith(*fraction, Resample::Bilinear).apply_to(image, width, height),
            Self::CenterWith(fraction, resample) => {
                let region = center_region(image, width, height, *fraction)?;
                resize_region_of(image, width, height, region, *resample)
            }
            Self::Random(augment) => augment.apply_to(image, width, height),
        }
    }
}

/// Resizes the `(left, top, width, height)` region of `image` to `width × height` with the
/// `resample` filter ([`resize`] uses bilinear). The whole image at the target size comes back
/// unchanged.
pub(crate) fn resize_region(
    image: Image<u8>,
    width: u32,
    height: u32,
    region: (f64, f64, f64, f64),
    resample: Resample,
) -> Result<Image<u8>, ImageError> {
    if is_whole(&image, width, height, region) {
        return Ok(image);
    }
    resize_region_of(&image, width, height, region, resample)
}

/// [`resize_region`] reading a borrowed image, for several crops of one image (its views): the
/// whole image at the target size comes back as a copy.
pub(crate) fn resize_region_of(
    image: &Image<u8>,
    width: u32,
    height: u32,
    region: (f64, f64, f64, f64),
    resample: Resample,
) -> Result<Image<u8>, ImageError> {
    if is_whole(image, width, height, region) {
        return Ok(image.clone());
    }
    let fail = |msg: String| ImageError::new(&image.sample.path, ImageErrorKind::Resize(msg));
    if width == 0 || height == 0 {
        return Err(fail(format!("the target {width}×{height} has no pixels")));
    }
    let (left, top, cw, ch) = region;
    let src =
        FrImageRef::new(image.width, image.height, &image.data, PixelType::U8x3).map_err(|e| fail(e.to_string()))?;
    let mut dst = FrImage::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(algorithm(resample)).crop(left, top, cw, ch);
    RESIZER.with_borrow_mut(|r| r.resize(&src, &mut dst, &options)).map_err(|e| fail(e.to_string()))?;
    Ok(Image { sample: image.sample.clone(), width, height, data: dst.into_vec() })
}

/// fast_image_resize's form of a filter: its convolutions are Pillow's (`BILINEAR` is the
/// triangle filter, `BICUBIC` the cubic with a = −0.5, Catmull–Rom), averaging over the whole
/// footprint when shrinking; nearest takes the pixel under each output pixel's centre.
fn algorithm(resample: Resample) -> ResizeAlg {
    match resample {
        Resample::Nearest => ResizeAlg::Nearest,
        Resample::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
        Resample::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
    }
}

/// Whether `region` is all of `image` and `image` is already `width × height`.
fn is_whole(image: &Image<u8>, width: u32, height: u32, region: (f64, f64, f64, f64)) -> bool {
    image.width == width && image.height == height && region == (0.0, 0.0, f64::from(width), f64::from(height))
}

/// The largest `(left, top, width, height)` box centered in `w × h` with the aspect ratio of
/// `tw × th`.
fn center_crop(w: u32, h: u32, tw: u32, th: u32) -> (f64, f64, f64, f64) {
    let (w, h, tw, th) = (f64::from(w), f64::from(h), f64::from(tw), f64::from(th));
    if w * th > h * tw {
        let cw = h * tw / th;
        ((w - cw) / 2.0, 0.0, cw, h)
    } else {
        let ch = w * th / tw;
        (0.0, (h - ch) / 2.0, w, ch)
    }
}

/// A `w × h` test image whose pixel `(x, y)` is `f(x, y)` (sample 0 of epoch 0).
#[cfg(test)]
pub(super) fn test_image(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Image<u8> {
    use std::path::Path;
    use std::sync::Arc;

    let mut data = Vec::with_capacity((w * h) as usize * super::CHANNELS);
    for y in 0..h {
        for x in 0..w {
            data.extend(f(x, y));
        }
    }
    let sample = super::Sample { index: 0, epoch: 0, path: Arc::from(Path::new("x")), label: None };
    Image { sample, width: w, height: h, data }
}

#[cfg(test)]
mod tests {
    use super::test_image as image;
    use super::*;

    #[test]
    fn crops_the_center_to_the_target_aspect() {
        assert_eq!(center_crop(400, 300, 224, 224), (50.0, 0.0, 300.0, 300.0));
        assert_eq!(center_crop(300, 400, 224, 224), (0.0, 50.0, 300.0, 300.0));
        assert_eq!(center_crop(400, 200, 200, 100), (0.0, 0.0, 400.0, 200.0));
    }

    #[test]
    fn a_crop_fraction_keeps_that_share_of_the_centered_region() {
        // Concentric: the middle 80 × 80 of a 200 × 100 image is blue, the rest red. The square
        // center crop is 100 × 100; a fraction of 0.5 keeps its middle 50 × 50, all blue.
        let img =
            image(
                200,
                100,
                |x, y| if (60..140).contains(&x) && (10..90).contains(&y) { [0, 0, 255] } else { [255, 0, 0] },
            );
        let half = resize_center(img.clone(), 32, 32, 0.5).unwrap();
        assert!(half.data.chunks(3).all(|p| p == [0, 0, 255]), "only the blue middle is kept");
        let whole = resize_center(img.clone(), 32, 32, 1.0).unwrap();
        assert_eq!(whole, resize(img.clone(), 32, 32).unwrap());
        assert!(whole.data.chunks(3).any(|p| p[0] > 200), "fraction 1 keeps the red border");
        for bad in [0.0, 1.5, f64::NAN] {
            let e = resize_center(img.clone(), 32, 32, bad).unwrap_err().to_string();
            assert!(e.contains("crop fraction") && e.contains("outside (0, 1]"), "{e}");
            let e = Crop::CenterWith(bad, Resample::Bicubic).apply(img.clone(), 32, 32).unwrap_err().to_string();
            assert!(e.contains("outside (0, 1]"), "{e}");
        }
    }

    #[test]
    fn a_center_crop_takes_the_filter_it_is_given() {
        let img = image(90, 70, |x, y| [(x * 2) as u8, (y * 3) as u8, ((x * y) % 256) as u8]);
        let bilinear = Crop::CenterWith(0.875, Resample::Bilinear);
        let want = resize_center(img.clone(), 24, 24, 0.875).unwrap();
        assert_eq!(bilinear.apply(img.clone(), 24, 24).unwrap(), want);
        assert_eq!(Crop::Center(0.875).apply_to(&img, 24, 24).unwrap(), want, "borrowed, the same");
        let bicubic = Crop::CenterWith(0.875, Resample::Bicubic);
        let cubic = bicubic.apply(img.clone(), 24, 24).unwrap();
        assert_ne!(cubic, want, "another filter, other values");
        assert_eq!(cubic, resize_center_with(img.clone(), 24, 24, 0.875, Resample::Bicubic).unwrap());
        assert_eq!(bicubic.apply_to(&img, 24, 24).unwrap(), cubic);
    }

    #[test]
    fn resizing_keeps_flat_colours_and_drops_the_cropped_sides() {
        // Left and right quarters red, the middle half blue: a square center crop of a 2:1
        // image keeps only the blue.
        let img = image(400, 200, |x, _| if (100..300).contains(&x) { [0, 0, 255] } else { [255, 0, 0] });
        let out = resize(img, 64, 64).unwrap();
        assert_eq!((out.width, out.height, out.data.len()), (64, 64, 64 * 64 * 3));
        // The filter's footprint at the crop's edge reaches just past it (as Pillow's `box` does):
        // the outermost columns blend a little red in; every other pixel is pure blue.
        for (i, p) in out.data.chunks(3).enumerate() {
            let x = i % 64;
            if x == 0 || x == 63 {
                assert!(p[2] > 200 && p[0] < 40, "edge column {x} is mostly blue: {p:?}");
            } else {
                assert_eq!(p, [0, 0, 255], "column {x}");
            }
        }
    }

    #[test]
    fn a_zero_target_is_an_error_naming_the_file() {
        let e = resize(image(4, 4, |_, _| [1, 2, 3]), 0, 10).unwrap_err().to_string();
        assert!(e.starts_with("x: cannot resize"), "{e}");
    }
}
