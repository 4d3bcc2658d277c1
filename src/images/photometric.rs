//! The random colour and blur steps that self-supervised recipes (SimCLR, BYOL, DINO) add after
//! the crop and flip: the colour jitter applied only with a probability (torchvision's
//! `RandomApply([ColorJitter(…)], p)`), `RandomGrayscale(p)`, a Gaussian blur of random radius
//! (DINO's `GaussianBlur(p, 0.1, 2.0)`: Pillow's blur; or, given a kernel size, torchvision's
//! `GaussianBlur(kernel_size, sigma)`, which DINOv2 uses) and `Solarization(p)` (Pillow's
//! `ImageOps.solarize`, threshold 128).
//!
//! ```text
//!  resized crop ─flip?─▶ jitter? (p) ─▶ grayscale? (p) ─▶ blur, σ ~ U[lo, hi]? (p) ─▶ solarize? (p) ─▶ policy?
//! ```
//!
//! The coins and the radius come from a stream of their own (the augmentation's seed, mixed),
//! always drawn in the same order: turning one step on changes neither the crop, flip and
//! jitter draws nor the other steps' coins.

use super::augment::Uniform;
use super::autoaugment::{gaussian_blur, grayscale, solarize};
use super::kernel_blur::kernel_blur;
use super::{Image, Sample};

/// What the coins and the radius are mixed with, apart from the crop's stream.
const STREAM: u64 = 0x6a09_e667_f3bc_c909;

/// Pillow's solarize threshold that DINO and BYOL use (`ImageOps.solarize(img)`).
const SOLARIZE_AT: f32 = 128.0;

/// The probabilities of each step and the blur's radius range; the default does nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Photometric {
    /// Of applying the drawn colour jitter (torchvision's `RandomApply`).
    pub(super) jitter: f64,
    pub(super) grayscale: f64,
    pub(super) blur: f64,
    /// The blur's standard deviation in pixels, drawn uniformly from this range.
    pub(super) sigma: (f64, f64),
    /// torchvision's kernel of this many taps instead of Pillow's blur.
    pub(super) kernel: Option<u32>,
    pub(super) solarize: f64,
}

impl Default for Photometric {
    fn default() -> Self {
        Self { jitter: 1.0, grayscale: 0.0, blur: 0.0, sigma: (0.1, 2.0), kernel: None, solarize: 0.0 }
    }
}

/// What one image got from [`Photometric::draw`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Drawn {
    pub(super) jitter: bool,
    pub(super) grayscale: bool,
    /// The blur's radius, when the blur's coin came up.
    pub(super) blur: Option<f32>,
    pub(super) solarize: bool,
}

impl Photometric {
    /// `sample`'s coins and radius in the stream `seed`: the same wherever it is processed.
    pub(super) fn draw(&self, seed: u64, sample: &Sample) -> Drawn {
        let mut rng = Uniform::for_sample(seed ^ STREAM, sample);
        // Every draw is taken whether or not its step is on, so each step's draws stay put.
        let jitter = rng.unit() < self.jitter;
        let grayscale = rng.unit() < self.grayscale;
        let blur = rng.unit() < self.blur;
        let sigma = rng.between(self.sigma.0, self.sigma.1);
        let solarize = rng.unit() < self.solarize;
        Drawn { jitter, grayscale, blur: blur.then_some(sigma as f32), solarize }
    }
}

impl Drawn {
    /// The steps after the jitter, in DINO's order; the blur is Pillow's, or torchvision's of
    /// `kernel` taps.
    pub(super) fn apply(&self, image: &mut Image<u8>, kernel: Option<u32>) {
        if self.grayscale {
            grayscale(image);
        }
        match (self.blur, kernel) {
            (Some(sigma), Some(size)) => kernel_blur(image, size, sigma),
            (Some(radius), None) => gaussian_blur(image, radius),
            (None, _) => {}
        }
        if self.solarize {
            solarize(image, SOLARIZE_AT);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::images::resize::test_image as image;

    fn sample(index: u64) -> Sample {
        Sample { index, epoch: 3, path: Arc::from(Path::new("x.jpg")), label: None }
    }

    fn draws(p: &Photometric) -> Vec<Drawn> {
        (0..4000).map(|i| p.draw(9, &sample(i))).collect()
    }

    #[test]
    fn each_step_comes_up_at_its_rate_and_leaves_the_others_draws_alone() {
        let base = Photometric { jitter: 0.8, grayscale: 0.2, blur: 0.5, solarize: 0.2, ..Photometric::default() };
        let all = draws(&base);
        let rate = |f: fn(&Drawn) -> bool| all.iter().filter(|d| f(d)).count();
        // Binomial(4000, p): standard deviations 25 (0.8, 0.2) and 32 (0.5).
        assert!((3050..=3350).contains(&rate(|d| d.jitter)), "jitter {}", rate(|d| d.jitter));
        assert!((650..=950).contains(&rate(|d| d.grayscale)), "grayscale {}", rate(|d| d.grayscale));
        assert!((1850..=2150).contains(&rate(|d| d.blur.is_some())), "blur {}", rate(|d| d.blur.is_some()));
        assert!((650..=950).contains(&rate(|d| d.solarize)), "solarize {}", rate(|d| d.solarize));
        for d in &all {
            let r = d.blur.unwrap_or(1.0);
            assert!((0.1..2.0).contains(&r), "radius {r}");
        }
        // Turning grayscale off changes only grayscale's coins.
        let without = draws(&Photometric { grayscale: 0.0, ..base });
        for (a, b) in all.iter().zip(&without) {
            assert_eq!(Drawn { grayscale: false, ..*a }, *b);
        }
        let always = draws(&Photometric { jitter: 1.0, grayscale: 1.0, blur: 1.0, solarize: 1.0, ..base });
        assert!(always.iter().all(|d| d.jitter && d.grayscale && d.blur.is_some() && d.solarize));
        assert!(draws(&Photometric::default()).iter().all(|d| *d == Drawn { jitter: true, ..Drawn::default() }));
    }

    fn img_for_kernel() -> Image<u8> {
        image(40, 30, |x, y| [(x * 6) as u8, ((x * y) % 251) as u8, (y * 8) as u8])
    }

    #[test]
    fn grayscale_then_blur_then_solarize() {
        let img = image(40, 30, |x, y| [(x * 6) as u8, (y * 8) as u8, 200]);
        let d = Drawn { jitter: false, grayscale: true, blur: Some(1.5), solarize: true };
        let mut got = img.clone();
        d.apply(&mut got, None);
        let mut want = img;
        grayscale(&mut want);
        assert!(want.data.chunks_exact(3).all(|px| px[0] == px[1] && px[1] == px[2]), "grey in every channel");
        gaussian_blur(&mut want, 1.5);
        solarize(&mut want, 128.0);
        assert_eq!(got, want);
        let mut torchvision = img_for_kernel();
        let mut want = torchvision.clone();
        Drawn { blur: Some(1.5), ..Drawn::default() }.apply(&mut torchvision, Some(9));
        kernel_blur(&mut want, 9, 1.5);
        assert_eq!(torchvision, want, "a kernel size picks torchvision's blur");
        let mut pillow = img_for_kernel();
        gaussian_blur(&mut pillow, 1.5);
        assert_ne!(torchvision, pillow, "the two blurs are different filters");
        let mut untouched = got.clone();
        Drawn::default().apply(&mut untouched, Some(9));
        assert_eq!(untouched, got, "no coin up: nothing changes");
    }
}
