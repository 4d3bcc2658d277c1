//! Colour jitter: torchvision's `ColorJitter(brightness, contrast, saturation, hue)` on a
//! resized image, drawn per image with the crop (see [`Augment::color_jitter`](super::Augment::color_jitter)).
//!
//! ```text
//!  Image<u8> ─for each adjustment, in the drawn order─▶ brightness | contrast | saturation | hue ─▶ Image<u8>
//! ```
//!
//! The arithmetic is torchvision's tensor code on `[0, 255]` values: brightness scales,
//! contrast blends with the image's mean grey, saturation blends each pixel with its own grey
//! (`0.2989 R + 0.587 G + 0.114 B`), hue rotates the pixel's HSV hue. Each step rounds to the
//! nearest `u8`, halves up (torchvision truncates, which darkens by half a level on average).

use super::augment::Uniform;
use super::lanes::{F4, add, byte_of, div, max, min, mul, round_to_byte, select_eq, select_ge, select_lt, splat, sub};
use super::{CHANNELS, Image};

/// The ranges of [`ColorJitter`]: each factor is drawn uniformly from
/// `[max(0, 1 - x), 1 + x]` (brightness, contrast, saturation) or `[-hue, hue]` (hue, in turns);
/// 0 leaves that adjustment out.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColorJitter {
    pub(crate) brightness: f64,
    pub(crate) contrast: f64,
    pub(crate) saturation: f64,
    pub(crate) hue: f64,
}

/// One of the four adjustments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjust {
    /// Multiply every value by the factor.
    Brightness,
    /// Blend with the image's mean grey: `f × x + (1 − f) × mean`.
    Contrast,
    /// Blend each pixel with its grey: `f × x + (1 − f) × grey`.
    Saturation,
    /// Rotate the hue by the shift (a fraction of a turn).
    Hue,
}

/// What was drawn for one image: the order of the adjustments and their factors. An adjustment
/// left out has the factor that changes nothing (1, or a hue shift of 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    /// The adjustments, in the order they are applied (torchvision's `randperm(4)`).
    pub order: [Adjust; 4],
    /// Brightness factor.
    pub brightness: f32,
    /// Contrast factor.
    pub contrast: f32,
    /// Saturation factor.
    pub saturation: f32,
    /// Hue shift, in turns (`-0.5..=0.5`).
    pub hue: f32,
}

impl ColorJitter {
    /// Whether every adjustment is left out.
    pub(crate) fn is_off(&self) -> bool {
        *self == Self::default()
    }

    /// The order and the factors, from the image's generator: the permutation first, then each
    /// enabled factor, as torchvision's `get_params` draws.
    pub(super) fn draw(&self, rng: &mut Uniform) -> Jitter {
        let mut order = [Adjust::Brightness, Adjust::Contrast, Adjust::Saturation, Adjust::Hue];
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u32 + 1) as usize);
        }
        let mut factor = |x: f64| if x > 0.0 { rng.between((1.0 - x).max(0.0), 1.0 + x) as f32 } else { 1.0 };
        let (brightness, contrast, saturation) =
            (factor(self.brightness), factor(self.contrast), factor(self.saturation));
        let hue = if self.hue > 0.0 { rng.between(-self.hue, self.hue) as f32 } else { 0.0 };
        Jitter { order, brightness, contrast, saturation, hue }
    }
}

impl Jitter {
    /// Applies the adjustments to `image` in place, in order; those that change nothing are
    /// skipped. They share passes over the image where they can: brightness and contrast
    /// before the first per-pixel adjustment become one table read as the pixels are loaded,
    /// and the ones after it run in the same pass. A contrast blends with the mean grey of the
    /// image the adjustments before it leave, so after a per-pixel adjustment it waits for the
    /// pass that sums those values.
    pub fn apply(&self, image: &mut Image<u8>) {
        let mut pass = Pass::default();
        for adjust in self.order {
            match adjust {
                Adjust::Brightness if self.brightness != 1.0 => {
                    let f = self.brightness;
                    pass.push(Step::Scale(f), || std::array::from_fn(|x| to_u8(x as f32 * f)));
                }
                Adjust::Contrast if self.contrast != 1.0 => {
                    let sums = pass.settle(image);
                    let (f, mean) = (self.contrast, mean_of(sums, image.data.len() / CHANNELS));
                    pass.push(Step::Blend { keep: f, offset: (1.0 - f) * mean }, || {
                        std::array::from_fn(|x| to_u8(f * x as f32 + (1.0 - f) * mean))
                    });
                }
                Adjust::Saturation if self.saturation != 1.0 => pass.push_lanes(Step::Saturate(self.saturation)),
                // A drawn shift is within half a turn; a hand-made one is brought to [0, 1)
                // first, so one step of a turn either way in the kernel brings every hue back
                // into [0, 1).
                Adjust::Hue if self.hue != 0.0 => pass.push_lanes(Step::Hue(if (-0.5..=0.5).contains(&self.hue) {
                    self.hue
                } else {
                    turns(self.hue)
                })),
                _ => {}
            }
        }
        pass.finish(image);
    }
}

/// Adjustments that run in one pass: a table the values go through as they are loaded (the
/// brightness and contrast before any per-pixel step), then steps on four pixels' lanes.
struct Pass {
    table: Option<[u8; 256]>,
    /// The first `len` are queued.
    steps: [Step; 4],
    len: usize,
}

impl Default for Pass {
    fn default() -> Self {
        Self { table: None, steps: [Step::Scale(1.0); 4], len: 0 }
    }
}

impl Pass {
    /// A per-value step: into the table while no lanes step is queued, else a lanes step.
    fn push(&mut self, step: Step, table: impl FnOnce() -> [u8; 256]) {
        if self.len > 0 {
            return self.push_lanes(step);
        }
        let next = table();
        self.table = Some(match self.table {
            Some(first) => std::array::from_fn(|x| next[usize::from(first[x])]),
            None => next,
        });
    }

    fn push_lanes(&mut self, step: Step) {
        self.steps[self.len] = step;
        self.len += 1;
    }

    /// The sums of the values of `image` as the adjustments so far leave it, for a contrast:
    /// with lanes steps queued the pass runs, the result is summed and a new pass starts; with
    /// only a table the values are summed through it, nothing written.
    fn settle(&mut self, image: &mut Image<u8>) -> [u64; CHANNELS] {
        if self.len > 0 {
            self.run(image);
            *self = Self::default();
            return sums_of(image);
        }
        let Some(table) = &self.table else { return sums_of(image) };
        let mut sums = [0; CHANNELS];
        for px in image.data.chunks_exact(CHANNELS) {
            for c in 0..CHANNELS {
                sums[c] += u64::from(table[usize::from(px[c])]);
            }
        }
        sums
    }

    /// Runs the pass over `image`.
    fn run(&self, image: &mut Image<u8>) {
        run_steps(image, self.table.as_ref(), &self.steps[..self.len])
    }

    fn finish(&self, image: &mut Image<u8>) {
        if self.len > 0 {
            self.run(image);
        } else if let Some(table) = self.table {
            apply_table(image, table);
        }
    }
}

/// One adjustment as a pass runs it, on four pixels' lanes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// Brightness: `f × x`.
    Scale(f32),
    /// Contrast: `keep × x + offset`, where `offset` is `(1 − keep) × mean grey`.
    Blend { keep: f32, offset: f32 },
    /// Saturation: `f × x + (1 − f) × the pixel's grey`.
    Saturate(f32),
    /// Hue: turn by this shift (within `[-0.5, 1)` turns).
    Hue(f32),
}

/// The nearest `u8` (halves up), clamped: `as` saturates below 0 and above 255. Not
/// `f32::round`, which is a libm call on the baseline x86-64 target (no SSE4.1).
pub(super) fn to_u8(x: f32) -> u8 {
    (x + 0.5) as u8
}

/// The fractional part of `x`, in `[0, 1)`, without libm's `floorf` or `fmodf`.
fn turns(x: f32) -> f32 {
    let f = x - (x as i32) as f32;
    if f < 0.0 { f + 1.0 } else { f }
}

/// `f` of every value, through a 256-entry table (the same function for every channel).
pub(super) fn map_values(image: &mut Image<u8>, f: impl Fn(f32) -> f32) {
    apply_table(image, std::array::from_fn(|x| to_u8(f(x as f32))));
}

/// Every value through `table`.
pub(super) fn apply_table(image: &mut Image<u8>, table: [u8; 256]) {
    for v in &mut image.data {
        *v = table[usize::from(*v)];
    }
}

/// The sums of the red, green and blue values of `image`.
fn sums_of(image: &Image<u8>) -> [u64; CHANNELS] {
    let mut sums = [0; CHANNELS];
    // Per-block `u32` counts (a block holds at most 2²⁴ values of 255 before they could wrap).
    for block in image.data.chunks(CHANNELS << 20) {
        let mut part = [0u32; CHANNELS];
        for px in block.chunks_exact(CHANNELS) {
            part[0] += u32::from(px[0]);
            part[1] += u32::from(px[1]);
            part[2] += u32::from(px[2]);
        }
        for c in 0..CHANNELS {
            sums[c] += u64::from(part[c]);
        }
    }
    sums
}

/// The mean grey (`0.2989 R + 0.587 G + 0.114 B`) of `pixels` pixels whose channels add up to
/// `sums`: exact up to the last step's rounding, in any order of the pixels.
fn mean_of(sums: [u64; CHANNELS], pixels: usize) -> f32 {
    if pixels == 0 {
        return 0.0;
    }
    let weighted = 0.2989 * sums[0] as f64 + 0.587 * sums[1] as f64 + 0.114 * sums[2] as f64;
    (weighted / pixels as f64) as f32
}

/// Pixels per block of the per-pixel adjustments: each block is split into one array per
/// channel and worked on four lanes at a time with the [`lanes`](super::lanes) operations (no
/// branch, no float-to-integer cast: the pixel-by-pixel loop did not vectorize). It computes
/// exactly what the pixel-by-pixel form did; the tests keep that form as their reference.
/// 32 measured fastest: 16 paid the per-block set-up twice as often, and from 64 on the
/// compiler stopped unrolling the per-block loops (1.6 × slower).
const LANES: usize = 32;

/// One block: `LANES` pixels, per channel in groups of four lanes.
type Planes = [[F4; LANES / 4]; CHANNELS];

/// Runs `steps` in order on every four pixels of `image`, its values read through `table`
/// (red, green and blue lanes, each step leaving whole numbers in `0..=255`), a block at a
/// time; a short last block is padded. A contrast after these steps sums the result in a pass
/// of its own ([`Pass::settle`]): summing every block here cost every pass, and most passes
/// are the last.
fn run_steps(image: &mut Image<u8>, table: Option<&[u8; 256]>, steps: &[Step]) {
    let identity: [u8; 256] = std::array::from_fn(|x| x as u8);
    let table = table.unwrap_or(&identity);
    let run = |block: &mut [u8]| {
        // Bytes are split into channels as bytes, then widened a channel at a time (whole
        // arrays: the widening vectorizes), and narrowed back the same way.
        let mut bytes = [[0u8; LANES]; CHANNELS];
        for (k, px) in block.chunks_exact(CHANNELS).enumerate() {
            for c in 0..CHANNELS {
                bytes[c][k] = table[usize::from(px[c])];
            }
        }
        let mut planes: Planes = [[[0.0; 4]; LANES / 4]; CHANNELS];
        for c in 0..CHANNELS {
            for k in 0..LANES {
                planes[c][k / 4][k % 4] = f32::from(bytes[c][k]);
            }
        }
        let [r, g, b] = &mut planes;
        for &step in steps {
            for j in 0..LANES / 4 {
                step_lanes(step, &mut r[j], &mut g[j], &mut b[j]);
            }
        }
        for c in 0..CHANNELS {
            for k in 0..LANES {
                bytes[c][k] = byte_of(planes[c][k / 4][k % 4]);
            }
        }
        for (k, px) in block.chunks_exact_mut(CHANNELS).enumerate() {
            for c in 0..CHANNELS {
                px[c] = bytes[c][k];
            }
        }
    };
    let mut blocks = image.data.chunks_exact_mut(CHANNELS * LANES);
    for block in &mut blocks {
        run(block);
    }
    let rest = blocks.into_remainder();
    if !rest.is_empty() {
        let mut padded = [0u8; CHANNELS * LANES];
        padded[..rest.len()].copy_from_slice(rest);
        run(&mut padded);
        rest.copy_from_slice(&padded[..rest.len()]);
    }
}

/// One step on four pixels.
#[inline(always)]
fn step_lanes(step: Step, r: &mut F4, g: &mut F4, b: &mut F4) {
    match step {
        Step::Scale(f) => {
            let f = splat(f);
            (*r, *g, *b) = (round_to_byte(mul(*r, f)), round_to_byte(mul(*g, f)), round_to_byte(mul(*b, f)));
        }
        Step::Blend { keep, offset } => {
            let (keep, offset) = (splat(keep), splat(offset));
            *r = round_to_byte(add(mul(keep, *r), offset));
            *g = round_to_byte(add(mul(keep, *g), offset));
            *b = round_to_byte(add(mul(keep, *b), offset));
        }
        Step::Saturate(f) => saturate(r, g, b, f),
        Step::Hue(shift) => rotate_hue(r, g, b, shift),
    }
}

#[inline(always)]
fn saturate(r: &mut F4, g: &mut F4, b: &mut F4, f: f32) {
    let (keep, blend) = (splat(f), splat(1.0 - f));
    let grey = add(add(mul(splat(0.2989), *r), mul(splat(0.587), *g)), mul(splat(0.114), *b));
    let grey = mul(blend, grey);
    *r = round_to_byte(add(mul(keep, *r), grey));
    *g = round_to_byte(add(mul(keep, *g), grey));
    *b = round_to_byte(add(mul(keep, *b), grey));
}

/// torchvision's `_rgb2hsv`, the shift, then `_hsv2rgb`, on `[0, 255]` values (value keeps the
/// scale; hue and saturation are scale-free), four pixels at a time: every case is computed and
/// each lane's one selected.
#[inline(always)]
fn rotate_hue(r: &mut F4, g: &mut F4, b: &mut F4, shift: f32) {
    let (zero, one) = (splat(0.0), splat(1.0));
    let (red, green, blue) = (*r, *g, *b);
    let (v, least) = (max(max(red, green), blue), min(min(red, green), blue));
    let chroma = sub(v, least);
    // A grey (no chroma) has no hue to turn: it is written back as it is, and the divisions
    // below divide by 1 instead of 0 for it.
    let s = div(chroma, select_eq(chroma, zero, one, v));
    let inv = div(one, select_eq(chroma, zero, one, chroma));
    let (rc, gc, bc) = (mul(sub(v, red), inv), mul(sub(v, green), inv), mul(sub(v, blue), inv));
    let h =
        select_eq(v, red, sub(bc, gc), select_eq(v, green, sub(add(splat(2.0), rc), bc), sub(add(splat(4.0), gc), rc)));
    let x = add(div(h, splat(6.0)), splat(shift));
    let x = select_lt(x, zero, add(x, one), select_ge(x, one, sub(x, one), x));
    let h6 = mul(x, splat(6.0));
    // The sector, floor(h6) in 0..=5, by comparisons (h6 = 6 reads as sector 5 at its end,
    // which is the same colour as sector 0 at its start).
    let step = |edge: f32| select_ge(h6, splat(edge), one, zero);
    let sector = add(add(add(step(1.0), step(2.0)), add(step(3.0), step(4.0))), step(5.0));
    let f = sub(h6, sector);
    let clamp = |x: F4| min(max(x, zero), splat(255.0));
    let p = clamp(mul(v, sub(one, s)));
    let q = clamp(mul(v, sub(one, mul(s, f))));
    let t = clamp(mul(v, sub(one, mul(s, sub(one, f)))));
    // Sectors 0..=5 are (v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q).
    let pick = |at: [F4; 6]| {
        let is = |k: f32, then: F4, other: F4| select_eq(sector, splat(k), then, other);
        is(0.0, at[0], is(1.0, at[1], is(2.0, at[2], is(3.0, at[3], is(4.0, at[4], at[5])))))
    };
    *r = select_eq(chroma, zero, red, round_to_byte(pick([v, q, p, p, t, v])));
    *g = select_eq(chroma, zero, green, round_to_byte(pick([t, v, v, q, p, p])));
    *b = select_eq(chroma, zero, blue, round_to_byte(pick([p, p, t, v, v, q])));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::folder::SplitMix64;
    use crate::images::resize::test_image as image;

    /// A jitter that changes only what `set` sets (the other factors change nothing).
    fn only(set: impl FnOnce(&mut Jitter)) -> Jitter {
        let order = [Adjust::Brightness, Adjust::Contrast, Adjust::Saturation, Adjust::Hue];
        let mut j = Jitter { order, brightness: 1.0, contrast: 1.0, saturation: 1.0, hue: 0.0 };
        set(&mut j);
        j
    }

    fn grey(px: &[u8]) -> f32 {
        0.2989 * f32::from(px[0]) + 0.587 * f32::from(px[1]) + 0.114 * f32::from(px[2])
    }

    fn px(img: &Image<u8>, i: usize) -> [u8; 3] {
        img.data[i * 3..][..3].try_into().unwrap()
    }

    #[test]
    fn brightness_scales_every_value_and_clamps() {
        let mut img = image(2, 1, |x, _| if x == 0 { [200, 100, 0] } else { [255, 3, 1] });
        only(|j| j.brightness = 0.5).apply(&mut img);
        assert_eq!((px(&img, 0), px(&img, 1)), ([100, 50, 0], [128, 2, 1]), "halves round up");
        let mut img = image(1, 1, |_, _| [200, 100, 0]);
        only(|j| j.brightness = 1.5).apply(&mut img);
        assert_eq!(px(&img, 0), [255, 150, 0]);
    }

    #[test]
    fn contrast_zero_leaves_the_mean_grey_and_saturation_zero_leaves_each_pixels_grey() {
        let colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]];
        let mut img = image(4, 1, |x, _| colours[x as usize]);
        let greys: Vec<f32> = colours.iter().map(|c| grey(c)).collect();
        let mean = greys.iter().sum::<f32>() / 4.0;
        let mut flat = img.clone();
        only(|j| j.contrast = 0.0).apply(&mut flat);
        assert!(flat.data.iter().all(|&v| v == to_u8(mean)), "{:?} vs mean {mean}", flat.data);
        only(|j| j.saturation = 0.0).apply(&mut img);
        for (i, g) in greys.iter().enumerate() {
            assert_eq!(px(&img, i), [to_u8(*g); 3], "pixel {i}");
        }
    }

    #[test]
    fn hue_turns_primaries_into_each_other_and_leaves_greys() {
        let mut img = image(3, 1, |x, _| [[255, 0, 0], [0, 0, 255], [90, 90, 90]][x as usize]);
        only(|j| j.hue = 1.0 / 3.0).apply(&mut img);
        assert_eq!([px(&img, 0), px(&img, 1), px(&img, 2)], [[0, 255, 0], [255, 0, 0], [90, 90, 90]]);
        let mut img = image(1, 1, |_, _| [255, 0, 0]);
        only(|j| j.hue = -0.5).apply(&mut img);
        assert_eq!(px(&img, 0), [0, 255, 255], "half a turn: cyan");
    }

    #[test]
    fn a_full_turn_of_hue_gives_every_colour_back() {
        let mut img = image(64, 64, |x, y| [(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8]);
        let before = img.clone();
        for _ in 0..4 {
            only(|j| j.hue = 0.25).apply(&mut img);
        }
        let worst = img.data.iter().zip(&before.data).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert!(worst <= 2, "four quarter turns differ by up to {worst} (one rounding per turn)");
    }

    /// The pixel-by-pixel saturation the block form replaced: the reference it must match.
    fn saturate_per_pixel(image: &mut Image<u8>, f: f32) {
        for px in image.data.chunks_exact_mut(CHANNELS) {
            let g = (1.0 - f) * grey(px);
            for v in px {
                *v = to_u8(f * f32::from(*v) + g);
            }
        }
    }

    /// The pixel-by-pixel hue rotation the block form replaced.
    fn rotate_hue_per_pixel(image: &mut Image<u8>, shift: f32) {
        for px in image.data.chunks_exact_mut(CHANNELS) {
            let (r, g, b) = (f32::from(px[0]), f32::from(px[1]), f32::from(px[2]));
            let (max, min) = (r.max(g).max(b), r.min(g).min(b));
            let chroma = max - min;
            if chroma == 0.0 {
                continue;
            }
            let s = chroma / max;
            let inv = 1.0 / chroma;
            let (rc, gc, bc) = ((max - r) * inv, (max - g) * inv, (max - b) * inv);
            let h = if max == r {
                bc - gc
            } else if max == g {
                2.0 + rc - bc
            } else {
                4.0 + gc - rc
            };
            let h6 = turns(h / 6.0 + shift) * 6.0;
            let i = h6 as i32;
            let f = h6 - i as f32;
            let v = max;
            let p = (v * (1.0 - s)).clamp(0.0, 255.0);
            let q = (v * (1.0 - s * f)).clamp(0.0, 255.0);
            let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 255.0);
            let (r, g, b) = match i % 6 {
                0 => (v, t, p),
                1 => (q, v, p),
                2 => (p, v, t),
                3 => (p, q, v),
                4 => (t, p, v),
                _ => (v, p, q),
            };
            (px[0], px[1], px[2]) = (to_u8(r), to_u8(g), to_u8(b));
        }
    }

    #[test]
    fn the_block_form_writes_what_the_per_pixel_form_writes() {
        // Every colour on a grid of step 5 (52³ pixels, greys among them) and three more, so the
        // last block is short.
        let side: Vec<u8> = (0..=255).step_by(5).collect();
        let mut colours: Vec<[u8; 3]> = Vec::new();
        for &r in &side {
            for &g in &side {
                colours.extend(side.iter().map(|&b| [r, g, b]));
            }
        }
        colours.extend([[1, 2, 3], [254, 0, 127], [9, 9, 9]]);
        let img = image(colours.len() as u32, 1, |x, _| colours[x as usize]);
        assert_ne!(colours.len() % LANES, 0, "a short last block is covered");
        for shift in [0.5, 0.33, 0.1, 0.0137, -0.02, -0.25, -0.5] {
            let (mut block, mut reference) = (img.clone(), img.clone());
            run_steps(&mut block, None, &[Step::Hue(shift)]);
            rotate_hue_per_pixel(&mut reference, shift);
            assert!(block.data == reference.data, "hue shift {shift}");
        }
        for f in [0.0, 0.6, 0.97, 1.0, 1.03, 1.4, 2.5] {
            let (mut block, mut reference) = (img.clone(), img.clone());
            run_steps(&mut block, None, &[Step::Saturate(f)]);
            saturate_per_pixel(&mut reference, f);
            assert!(block.data == reference.data, "saturation {f}");
        }
        // A hand-made shift past half a turn is the same turn.
        let (mut far, mut near) = (img.clone(), img.clone());
        only(|j| j.hue = 1.25).apply(&mut far);
        only(|j| j.hue = 0.25).apply(&mut near);
        let worst = far.data.iter().zip(&near.data).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert!(worst <= 1, "1.25 turns against 0.25: {worst}");
    }

    /// The whole jitter one adjustment at a time over the whole image, as it ran before the
    /// adjustments shared passes: tables for brightness and contrast, the per-pixel forms above.
    fn apply_one_at_a_time(j: &Jitter, image: &mut Image<u8>) {
        for adjust in j.order {
            match adjust {
                Adjust::Brightness => map_values(image, |x| x * j.brightness),
                Adjust::Contrast => {
                    let pixels = image.data.len() as f64 / 3.0;
                    let sum = |c: usize| image.data.iter().skip(c).step_by(3).map(|&v| f64::from(v)).sum::<f64>();
                    let mean = ((0.2989 * sum(0) + 0.587 * sum(1) + 0.114 * sum(2)) / pixels) as f32;
                    map_values(image, |x| j.contrast * x + (1.0 - j.contrast) * mean);
                }
                Adjust::Saturation => saturate_per_pixel(image, j.saturation),
                Adjust::Hue => rotate_hue_per_pixel(image, j.hue),
            }
        }
    }

    #[test]
    fn passes_write_what_one_adjustment_at_a_time_writes() {
        // Smooth colours with a short last block, and every drawn order (contrast anywhere,
        // adjustments left out).
        let img = image(83, 61, |x, y| [(x * 3) as u8, (y * 4) as u8, ((x * y) % 251) as u8]);
        let cj = ColorJitter { brightness: 0.5, contrast: 0.6, saturation: 0.7, hue: 0.2 };
        let mut rng = Uniform(SplitMix64(3));
        for round in 0..300 {
            let mut j = cj.draw(&mut rng);
            match round % 5 {
                1 => j.contrast = 1.0,
                2 => j.brightness = 1.0,
                3 => (j.saturation, j.hue) = (1.0, 0.0),
                _ => {}
            }
            let (mut fused, mut reference) = (img.clone(), img.clone());
            j.apply(&mut fused);
            apply_one_at_a_time(&j, &mut reference);
            assert!(fused.data == reference.data, "round {round}: {j:?}");
        }
    }

    #[test]
    fn draws_stay_in_range_and_the_order_is_a_permutation() {
        let cj = ColorJitter { brightness: 0.4, contrast: 1.5, saturation: 0.2, hue: 0.1 };
        let mut rng = Uniform(SplitMix64(1));
        let mut seen_first = std::collections::HashSet::new();
        for _ in 0..2000 {
            let j = cj.draw(&mut rng);
            let mut sorted = j.order.map(|a| a as u8);
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3], "{:?}", j.order);
            seen_first.insert(j.order[0] as u8);
            assert!((0.6..=1.4).contains(&j.brightness) && (0.0..=2.5).contains(&j.contrast), "{j:?}");
            assert!((0.8..=1.2).contains(&j.saturation) && (-0.1..=0.1).contains(&j.hue), "{j:?}");
        }
        assert_eq!(seen_first.len(), 4, "every adjustment comes first sometimes");
        let (mut rng, mut three_later) = (Uniform(SplitMix64(5)), SplitMix64(5));
        let off = ColorJitter::default().draw(&mut rng);
        assert_eq!((off.brightness, off.contrast, off.saturation, off.hue), (1.0, 1.0, 1.0, 0.0));
        (0..3).for_each(|_| _ = three_later.next());
        assert_eq!(rng.0.next(), three_later.next(), "nothing enabled is drawn: only the order's three draws");
    }
}
