//! The geometric operations of RandAugment and TrivialAugment: rotate, shear and translate, as
//! Pillow's `Image.rotate` and `Image.transform(size, AFFINE, ...)` compute them.
//!
//! ```text
//!  output pixel (x, y) ─centre (x + ½, y + ½)─▶ inverse map ─▶ point (u, v) of the input
//!     ─outside─▶ fill colour
//!     ─inside──▶ nearest | bilinear (2×2) | bicubic (4×4), rows and columns clamped at the edges
//! ```
//!
//! The filters are Pillow's transform filters (`Geometry.c`): bicubic is its `a = −1` cubic,
//! not the resize's Catmull–Rom. Values are rounded to the nearest `u8` where Pillow truncates;
//! points are found as Pillow finds them, so the same pixels take the fill (the module's tests
//! compare with Pillow's output).
//!
//! Two paths write the same bytes (a test compares them on every kind of map):
//!
//! ```text
//!  map ─steps one whole pixel along rows (move, shear along x)──────────▶ row path (rows.rs)
//!      ─steps one whole pixel down columns (shear along y, vertical move)─▶ transpose, row path, transpose
//!      ─nearest filter, any map───────────────────────────────────────────▶ row path (inside span stepped)
//!      ─otherwise (a rotation, bilinear or bicubic)─────────────────────────▶ per pixel
//! ```
//!
//! On the row path each row's span whose taps are all inside runs as one pass over its bytes;
//! the rest of the row (edges, fill) goes pixel by pixel, through the same code as a rotation.

use std::ops::Range;

use crate::images::{CHANNELS, Image};

mod rows;

/// How a geometric operation samples the input between pixel centres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resample {
    /// The pixel the point falls in (torchvision's default for its auto-augment policies).
    Nearest,
    /// The 2×2 pixels around the point, weighted by distance.
    Bilinear,
    /// The 4×4 pixels around the point, with Pillow's cubic weights.
    Bicubic,
}

/// The inverse map `[a, b, c, d, e, f]`: output point `(X, Y)` reads the input at
/// `(a X + b Y + c, d X + e Y + f)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Affine(pub(super) [f64; 6]);

impl Affine {
    /// Turns the picture `degrees` counter-clockwise about the image's centre (`Image.rotate`;
    /// the matrix rounded to 15 decimals as Pillow does, so quarter turns are exact).
    pub(super) fn rotate(degrees: f64, width: u32, height: u32) -> Self {
        let angle = -degrees.to_radians();
        let round15 = |x: f64| (x * 1e15).round() / 1e15;
        let (cos, sin) = (round15(angle.cos()), round15(angle.sin()));
        let (cx, cy) = (f64::from(width) / 2.0, f64::from(height) / 2.0);
        let (a, b, d, e) = (cos, sin, -sin, cos);
        Self([a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy])
    }

    /// Row `Y` reads the input from `X + factor × Y` (timm's and torchvision's `ShearX`).
    pub(super) fn shear_x(factor: f64) -> Self {
        Self([1.0, factor, 0.0, 0.0, 1.0, 0.0])
    }

    /// Column `X` reads the input from `Y + factor × X`.
    pub(super) fn shear_y(factor: f64) -> Self {
        Self([1.0, 0.0, 0.0, factor, 1.0, 0.0])
    }

    /// Moves the picture `dx` pixels right and `dy` down.
    pub(super) fn translate(dx: f64, dy: f64) -> Self {
        Self([1.0, 0.0, -dx, 0.0, 1.0, -dy])
    }
}

/// `image` mapped through `map`; points outside the input take `fill`.
pub(super) fn warp(image: &mut Image<u8>, map: &Affine, resample: Resample, fill: [u8; CHANNELS]) {
    let (w, h) = (image.width as usize, image.height as usize);
    let steps = map.steps();
    let exact = map.exact();
    if rows::fits(&steps, w, h) || resample == Resample::Nearest {
        let src = Source { data: &image.data, w, h };
        image.data = src.warp(&steps, exact, resample, fill, Path::Rows);
    } else if rows::fits(&steps.transposed(), h, w) {
        // Columns keep their fraction (a shear or move along y): rows of the transpose do.
        let turned = super::blur::transpose(&image.data, w, h);
        let src = Source { data: &turned, w: h, h: w };
        let exact = move |x, y| {
            let (u, v) = exact(y, x);
            (v, u)
        };
        let warped = src.warp(&steps.transposed(), exact, resample, fill, Path::Rows);
        image.data = super::blur::transpose(&warped, h, w);
    } else {
        let src = Source { data: &image.data, w, h };
        image.data = src.warp(&steps, exact, resample, fill, Path::PerPixel);
    }
}

/// How `Source::warp` goes over the output, and which way the bicubic filter runs its first
/// pass (it rounds between its passes, so the order shows in the last bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Every pixel on its own, along rows first.
    PerPixel,
    /// Each row's inside span at once (`rows.rs`; any map for the nearest filter, maps that
    /// `rows::fits` for the others), the rest per pixel; down columns first, the order in which
    /// the span's first pass serves four output pixels with each value.
    Rows,
    /// Every pixel on its own, down columns first: what `Rows` writes, pixel by pixel.
    #[cfg(test)]
    PerPixelColumnsFirst,
}

/// Where output pixel `(x, y)`'s point lies, in fixed point: `first + x × along + y × down` (as
/// Pillow's nearest filter steps it, `affine_fixed`), each a `(u, v)` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Steps {
    first: [i64; 2],
    along: [i64; 2],
    down: [i64; 2],
}

impl Steps {
    fn at(&self, x: i64, y: i64) -> (i64, i64) {
        let [first, along, down] = [self.first, self.along, self.down];
        (first[0] + x * along[0] + y * down[0], first[1] + x * along[1] + y * down[1])
    }

    /// The same points for the transposed image: output `(y, x)` reads input `(v, u)`.
    fn transposed(&self) -> Self {
        let [first, along, down] = [self.first, self.along, self.down];
        Self { first: [first[1], first[0]], along: [down[1], down[0]], down: [along[1], along[0]] }
    }
}

impl Affine {
    /// The first centre's point and the fixed steps along rows and columns. Where a point lands
    /// on a pixel's edge, the steps' rounding decides the pixel: Pillow's pixel.
    fn steps(&self) -> Steps {
        let [a, b, c, d, e, f] = self.0;
        Steps {
            first: [fixed(c + a * 0.5 + b * 0.5), fixed(f + d * 0.5 + e * 0.5)],
            along: [fixed(a), fixed(d)],
            down: [fixed(b), fixed(e)],
        }
    }

    /// The point as Pillow's bilinear and bicubic filters find it (`affine_transform`): in
    /// `f64` from the pixel's centre, then floored to fixed point (exactly: the scale is a power
    /// of two), so the inside test is Pillow's.
    fn exact(&self) -> impl Fn(i64, i64) -> (i64, i64) + Copy {
        let [a, b, c, d, e, f] = self.0;
        move |x, y| {
            let (xc, yc) = (x as f64 + 0.5, y as f64 + 0.5);
            (floor_fixed(a * xc + b * yc + c), floor_fixed(d * xc + e * yc + f))
        }
    }
}

/// The point for the bilinear and bicubic filters: stepped, which is within `(1 + x + y) / 2`
/// units of the exact point (each fixed step rounds by up to half a unit), and exact wherever
/// that leaves in doubt which side of the image's edge it is on.
fn filtered(
    steps: Steps,
    exact: impl Fn(i64, i64) -> (i64, i64),
    (end_u, end_v): (i64, i64),
) -> impl Fn(i64, i64) -> (i64, i64) {
    move |x, y| {
        let (u, v) = steps.at(x, y);
        let slack = slack(x, y);
        let near = |t: i64, end: i64| t.abs() <= slack || (t - end).abs() <= slack;
        if near(u, end_u) || near(v, end_v) { exact(x, y) } else { (u, v) }
    }
}

/// How far (in fixed-point units) the stepped point of `(x, y)` may be from the exact one.
fn slack(x: i64, y: i64) -> i64 {
    x + y + 2
}

/// Points are fixed-point numbers with this many fractional bits (as Pillow's nearest filter
/// steps them): a row's points are one start and one step apart, no multiplication per pixel.
const FRACTION: u32 = 16;
const UNIT: i64 = 1 << FRACTION;
const HALF: i64 = UNIT / 2;

/// The bilinear weights' bits: a blend of two `u8` along a row stays in `u16` (which
/// vectorizes eight lanes wide on the baseline instruction set), and one down a column in `u32`.
const WEIGHT_BITS: u32 = 8;
const WEIGHT_ONE: u16 = 1 << WEIGHT_BITS;

/// The bilinear weight of the second tap for the fixed-point `t`: its fraction, rounded to
/// `WEIGHT_BITS` (0 to `WEIGHT_ONE`).
fn bilinear_weight(t: i64) -> u16 {
    let drop = FRACTION - WEIGHT_BITS;
    (((t & (UNIT - 1)) + (1 << (drop - 1))) >> drop) as u16
}

/// `a` and `b` weighted `WEIGHT_ONE − w` and `w`, not rounded (at most 255 × 2⁸).
#[inline(always)]
fn blend_along(a: u8, b: u8, w: u16) -> u16 {
    u16::from(a) * (WEIGHT_ONE - w) + u16::from(b) * w
}

/// Two blends along rows weighted down the column, rounded to the nearest `u8`.
#[inline(always)]
fn blend_down(top: u16, bottom: u16, w: u16) -> u8 {
    let sum = u32::from(top) * u32::from(WEIGHT_ONE - w) + u32::from(bottom) * u32::from(w);
    ((sum + (1 << (2 * WEIGHT_BITS - 1))) >> (2 * WEIGHT_BITS)) as u8
}

/// `⌊x × 2¹⁶⌋` (without libm's `floor`, a call on the baseline x86-64 target).
fn floor_fixed(x: f64) -> i64 {
    let scaled = x * UNIT as f64;
    let t = scaled as i64;
    t - i64::from(t as f64 > scaled)
}

/// Pillow's `FIX`: `⌊x × 2¹⁶ + ½⌋`.
fn fixed(x: f64) -> i64 {
    (x * UNIT as f64 + 0.5).floor() as i64
}

struct Source<'a> {
    data: &'a [u8],
    w: usize,
    h: usize,
}

impl Source<'_> {
    /// `map` applied to this image with `resample`. On the row path (where every row reads one
    /// band of input rows at one fraction), each row's span goes through `rows.rs` and the rest
    /// pixel by pixel; otherwise every pixel goes through the per-pixel path.
    fn warp(
        &self,
        steps: &Steps,
        exact: impl Fn(i64, i64) -> (i64, i64),
        resample: Resample,
        fill: [u8; CHANNELS],
        path: Path,
    ) -> Vec<u8> {
        let by_rows = path == Path::Rows;
        let end = (self.w as i64 * UNIT, self.h as i64 * UNIT);
        // The per-pixel closures own a copy of the steps (the spans borrow them).
        let copy = *steps;
        let at = move |x, y| copy.at(x, y);
        match resample {
            Resample::Nearest => {
                let pixel = |s: &Self, u, v| s.pixel((u >> FRACTION) as usize, (v >> FRACTION) as usize);
                let span = |y, row: &mut [u8]| if by_rows { rows::nearest(self, steps, y, row) } else { 0..0 };
                self.map(at, fill, pixel, span)
            }
            Resample::Bilinear => {
                let span = |y, row: &mut [u8]| if by_rows { rows::bilinear(self, steps, y, row) } else { 0..0 };
                self.map(filtered(copy, exact, end), fill, |s, u, v| s.bilinear(u - HALF, v - HALF), span)
            }
            Resample::Bicubic => {
                let weights = CubicWeights::new();
                let span =
                    |y, row: &mut [u8]| if by_rows { rows::bicubic(self, steps, &weights, y, row) } else { 0..0 };
                let points = filtered(copy, exact, end);
                // One sampler per order, so the per-pixel loop has no branch on it.
                if path != Path::PerPixel {
                    self.map(points, fill, |s, u, v| s.bicubic::<true>(u - HALF, v - HALF, &weights), span)
                } else {
                    self.map(points, fill, |s, u, v| s.bicubic::<false>(u - HALF, v - HALF, &weights), span)
                }
            }
        }
    }

    /// A new image: `span` fills part of each row (and says which pixels), and each other output
    /// pixel's centre is mapped through `point` and sampled by `sample` (at a fixed-point
    /// point) when it lands inside; generic, so each filter gets its own loop.
    fn map(
        &self,
        point: impl Fn(i64, i64) -> (i64, i64),
        fill: [u8; CHANNELS],
        sample: impl Fn(&Self, i64, i64) -> [u8; CHANNELS],
        span: impl Fn(usize, &mut [u8]) -> Range<usize>,
    ) -> Vec<u8> {
        let mut out = vec![0u8; self.w * self.h * CHANNELS];
        if out.is_empty() {
            return out;
        }
        let (end_u, end_v) = (self.w as i64 * UNIT, self.h as i64 * UNIT);
        for (y, row) in out.chunks_exact_mut(self.w * CHANNELS).enumerate() {
            let done = span(y, row);
            // One loop body for both sides of the span (the sampler inlines into one copy), and
            // plain ranges, not a chained one: this is the whole image for a rotation.
            for xs in [0..done.start, done.end..self.w] {
                let pixels = row[xs.start * CHANNELS..xs.end * CHANNELS].chunks_exact_mut(CHANNELS);
                for (x, px) in xs.zip(pixels) {
                    let (u, v) = point(x as i64, y as i64);
                    let inside = (0..end_u).contains(&u) && (0..end_v).contains(&v);
                    px.copy_from_slice(&if inside { sample(self, u, v) } else { fill });
                }
            }
        }
        out
    }

    fn pixel(&self, x: usize, y: usize) -> [u8; CHANNELS] {
        let i = (y * self.w + x) * CHANNELS;
        let p = &self.data[i..i + CHANNELS];
        [p[0], p[1], p[2]]
    }

    /// The column `i` (possibly off the image) clamped into it.
    fn column(&self, i: i64) -> usize {
        i.clamp(0, self.w as i64 - 1) as usize
    }

    fn row(&self, i: i64) -> usize {
        i.clamp(0, self.h as i64 - 1) as usize
    }

    /// At fixed-point `(u, v)` in pixel-index space (centres at whole numbers).
    fn bilinear(&self, u: i64, v: i64) -> [u8; CHANNELS] {
        let (x, y) = (u >> FRACTION, v >> FRACTION);
        let (wx, wy) = (bilinear_weight(u), bilinear_weight(v));
        let (w, h) = (self.w as i64, self.h as i64);
        let taps: [[u8; 2 * CHANNELS]; 2] = if x >= 0 && y >= 0 && x + 1 < w && y + 1 < h {
            // Inside, the common case: two runs of two pixels, no clamping.
            let i = (y as usize * self.w + x as usize) * CHANNELS;
            let run = |at: usize| -> [u8; 2 * CHANNELS] { self.data[at..at + 2 * CHANNELS].try_into().expect("6") };
            [run(i), run(i + self.w * CHANNELS)]
        } else {
            let (x0, x1) = (self.column(x), self.column(x + 1));
            [self.row(y), self.row(y + 1)].map(|r| {
                let (a, b) = (self.pixel(x0, r), self.pixel(x1, r));
                [a[0], a[1], a[2], b[0], b[1], b[2]]
            })
        };
        // `blend_along` and `blend_down`'s integers, in `u32` throughout: the same values (none
        // overflows `u16` along the row), and ~5 % faster one pixel at a time.
        let (wx, wy, one) = (u32::from(wx), u32::from(wy), u32::from(WEIGHT_ONE));
        std::array::from_fn(|c| {
            let along = |t: &[u8; 6]| u32::from(t[c]) * (one - wx) + u32::from(t[c + CHANNELS]) * wx;
            ((along(&taps[0]) * (one - wy) + along(&taps[1]) * wy + (1 << (2 * WEIGHT_BITS - 1))) >> (2 * WEIGHT_BITS))
                as u8
        })
    }

    /// At fixed-point `(u, v)`, as `bilinear`; the first pass down columns or along rows.
    fn bicubic<const COLUMNS_FIRST: bool>(&self, u: i64, v: i64, weights: &CubicWeights) -> [u8; CHANNELS] {
        let (x, y) = (u >> FRACTION, v >> FRACTION);
        let (wx, wy) = (weights.at(u).map(i32::from), weights.at(v).map(i32::from));
        let (w, h) = (self.w as i64, self.h as i64);
        let taps: [[u8; 4 * CHANNELS]; 4] = if x >= 1 && y >= 1 && x + 2 < w && y + 2 < h {
            let i = ((y - 1) as usize * self.w + (x - 1) as usize) * CHANNELS;
            let run = |k: usize| -> [u8; 4 * CHANNELS] {
                let at = i + k * self.w * CHANNELS;
                self.data[at..at + 4 * CHANNELS].try_into().expect("12")
            };
            [run(0), run(1), run(2), run(3)]
        } else {
            let xs = [-1, 0, 1, 2].map(|k| self.column(x + k));
            [-1, 0, 1, 2].map(|k| {
                let r = self.row(y + k);
                let mut run = [0u8; 4 * CHANNELS];
                for (chunk, &x) in run.chunks_exact_mut(CHANNELS).zip(&xs) {
                    chunk.copy_from_slice(&self.pixel(x, r));
                }
                run
            })
        };
        // The arithmetic of `cubic_pass` and `cubic_finish`, in loops over the channels (which
        // the per-pixel path runs faster than their array form).
        let mut acc = [0i32; CHANNELS];
        if COLUMNS_FIRST {
            for (j, fx) in wx.iter().enumerate() {
                let mut column = [0i32; CHANNELS];
                for (run, fy) in taps.iter().zip(wy) {
                    for c in 0..CHANNELS {
                        column[c] += fy * i32::from(run[j * CHANNELS + c]);
                    }
                }
                for c in 0..CHANNELS {
                    acc[c] += fx * i32::from(cubic_round(column[c]));
                }
            }
        } else {
            for (run, fy) in taps.iter().zip(wy) {
                let mut line = [0i32; CHANNELS];
                for (px, fx) in run.chunks_exact(CHANNELS).zip(wx) {
                    for c in 0..CHANNELS {
                        line[c] += fx * i32::from(px[c]);
                    }
                }
                for c in 0..CHANNELS {
                    acc[c] += fy * i32::from(cubic_round(line[c]));
                }
            }
        }
        acc.map(cubic_finish)
    }
}

/// The bicubic filter's first pass (along rows, or down columns on a transposed image): four
/// values weighted in 14-bit fixed point, 8 bits dropped and rounded. The cubic's weights sum to
/// at most 1.25 and at least −0.25, so the result is within −4,083..20,403: an `i16`, which
/// the second pass multiplies eight lanes wide.
#[inline(always)]
fn cubic_pass(taps: [i32; 4], w: [i16; 4]) -> i16 {
    cubic_round(cubic_pass_wide(taps, w))
}

/// A first pass's sum with 8 bits dropped, rounded.
#[inline(always)]
fn cubic_round(sum: i32) -> i16 {
    ((sum + (1 << 7)) >> 8) as i16
}

/// Four values weighted, not rounded; in `i32` for taps within the first pass's range.
#[inline(always)]
fn cubic_pass_wide(taps: [i32; 4], w: [i16; 4]) -> i32 {
    i32::from(w[0]) * taps[0] + i32::from(w[1]) * taps[1] + i32::from(w[2]) * taps[2] + i32::from(w[3]) * taps[3]
}

/// The second pass's sum (28 fractional bits in all) rounded into a `u8`.
#[inline(always)]
fn cubic_finish(acc: i32) -> u8 {
    ((acc + (1 << 19)) >> 20).clamp(0, 255) as u8
}

/// The four cubic weights, in 14-bit fixed point, for each of 256 steps between two pixel
/// centres: a point's fraction is looked up (to 1/256 of a pixel), not computed.
struct CubicWeights([[i16; 4]; 256]);

impl CubicWeights {
    fn new() -> Self {
        // Rounded half away from zero (not `f32::round`, a libm call on the baseline x86-64 target).
        let fixed = |w: f32| (w * 16384.0 + 0.5f32.copysign(w)) as i16;
        Self(std::array::from_fn(|i| cubic(i as f32 / 256.0).map(fixed)))
    }

    /// The weights for the fractional part of the fixed-point `t`.
    fn at(&self, t: i64) -> [i16; 4] {
        self.0[((t & (UNIT - 1)) >> (FRACTION - 8)) as usize]
    }
}

/// Pillow's transform cubic as weights on the four taps: `v₂ + d(v₃ − v₁) + d²(2v₁ − 2v₂ + v₃
/// − v₄) + d³(−v₁ + v₂ − v₃ + v₄)`.
fn cubic(d: f32) -> [f32; 4] {
    let (d2, d3) = (d * d, d * d * d);
    [-d + 2.0 * d2 - d3, 1.0 - 2.0 * d2 + d3, d + d2 - d3, -d2 + d3]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::resize::test_image as image;

    const ALL: [Resample; 3] = [Resample::Nearest, Resample::Bilinear, Resample::Bicubic];

    fn px(img: &Image<u8>, x: u32, y: u32) -> [u8; 3] {
        img.data[((y * img.width + x) * 3) as usize..][..3].try_into().unwrap()
    }

    fn pattern(w: u32, h: u32) -> Image<u8> {
        image(w, h, |x, y| [(x * 37 + y * 11) as u8, (x * y) as u8, (200 + x - y) as u8])
    }

    #[test]
    fn quarter_and_half_turns_move_pixels_exactly() {
        let img = pattern(6, 6);
        for resample in ALL {
            let mut ccw = img.clone();
            warp(&mut ccw, &Affine::rotate(90.0, 6, 6), resample, [0; 3]);
            let mut half = img.clone();
            warp(&mut half, &Affine::rotate(180.0, 6, 6), resample, [0; 3]);
            let mut none = img.clone();
            warp(&mut none, &Affine::rotate(0.0, 6, 6), resample, [0; 3]);
            assert_eq!(none, img, "{resample:?}: no turn");
            for y in 0..6 {
                for x in 0..6 {
                    // Counter-clockwise: the top-right corner comes to the top-left.
                    assert_eq!(px(&ccw, x, y), px(&img, 5 - y, x), "{resample:?} 90° at ({x}, {y})");
                    assert_eq!(px(&half, x, y), px(&img, 5 - x, 5 - y), "{resample:?} 180° at ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn whole_pixel_translations_shift_and_fill_what_they_uncover() {
        let img = pattern(7, 5);
        for resample in ALL {
            let mut moved = img.clone();
            warp(&mut moved, &Affine::translate(2.0, -1.0), resample, [1, 2, 3]);
            for y in 0..5 {
                for x in 0..7 {
                    let want = if x < 2 || y == 4 { [1, 2, 3] } else { px(&img, x - 2, y + 1) };
                    assert_eq!(px(&moved, x, y), want, "{resample:?} at ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn shear_shifts_each_row_by_its_height() {
        let img = pattern(20, 4);
        let mut sheared = img.clone();
        warp(&mut sheared, &Affine::shear_x(0.5), Resample::Nearest, [9; 3]);
        for y in 0..4 {
            for x in 0..20 {
                let u = (f64::from(x) + 0.5 + 0.5 * (f64::from(y) + 0.5)) as u32;
                let want = if u < 20 { px(&img, u, y) } else { [9; 3] };
                assert_eq!(px(&sheared, x, y), want, "({x}, {y})");
            }
        }
        let mut down = pattern(4, 20);
        let before = down.clone();
        warp(&mut down, &Affine::shear_y(-0.5), Resample::Nearest, [9; 3]);
        // Column 3 reads 3.5 × 0.5 = 1.75 rows up: row 10 (centre 10.5) from 8.75, row 8.
        assert_eq!(px(&down, 3, 10), px(&before, 3, 8));
        assert_eq!(px(&down, 3, 0), [9; 3], "read from above the image");
    }

    #[test]
    fn half_pixel_steps_average_neighbours_and_a_flat_image_stays_flat() {
        let img = image(4, 1, |x, _| [[0, 100, 10], [200, 100, 30], [50, 0, 0], [50, 0, 0]][x as usize]);
        let mut half = img.clone();
        warp(&mut half, &Affine::translate(-0.5, 0.0), Resample::Bilinear, [0; 3]);
        assert_eq!(px(&half, 0, 0), [100, 100, 20]);
        assert_eq!(px(&half, 1, 0), [125, 50, 15]);
        assert_eq!(px(&half, 2, 0), [50, 0, 0]);
        assert_eq!(px(&half, 3, 0), [0; 3], "the point (4, ½) is off the image: fill");
        let mut quarter = img.clone();
        warp(&mut quarter, &Affine::translate(0.25, 0.0), Resample::Bilinear, [0; 3]);
        assert_eq!(px(&quarter, 0, 0), [0, 100, 10], "a point left of the first centre clamps to it");
        let flat = image(9, 9, |_, _| [77, 140, 3]);
        for resample in ALL {
            let mut turned = flat.clone();
            warp(&mut turned, &Affine::rotate(30.0, 9, 9), resample, [1, 1, 1]);
            assert_eq!(px(&turned, 4, 4), [77, 140, 3], "{resample:?}: the centre");
            assert_eq!(px(&turned, 0, 0), [1, 1, 1], "{resample:?}: a corner turned out of the image");
            assert_eq!(px(&turned, 4, 0), [77, 140, 3], "{resample:?}: the top middle stays inside");
        }
    }

    /// `map` through the per-pixel path alone.
    fn per_pixel(img: &Image<u8>, map: &Affine, resample: Resample, fill: [u8; 3], path: Path) -> Vec<u8> {
        let src = Source { data: &img.data, w: img.width as usize, h: img.height as usize };
        src.warp(&map.steps(), map.exact(), resample, fill, path)
    }

    #[test]
    fn the_row_path_writes_what_the_per_pixel_path_writes() {
        // Scrambled values, so that any difference in taps, weights or rounding shows.
        let img = image(37, 23, |x, y| {
            let h = x.wrapping_mul(2_654_435_761) ^ (y.wrapping_mul(40_503) << 7);
            [(h >> 3) as u8, (h >> 11) as u8, (h >> 19) as u8]
        });
        let mut maps = vec![];
        for shift in [-40.0, -36.9, -5.5, -3.25, -0.5, -0.01, 0.0, 0.3, 0.999_99, 1.0, 2.5, 17.75, 36.6, 60.0] {
            maps.push((Affine::translate(shift, 0.0), true));
            maps.push((Affine::translate(0.0, shift), true));
            maps.push((Affine::translate(shift, shift / 3.0), true));
        }
        for factor in [-0.9, -0.3, -0.25, -0.013, 0.0, 0.1, 0.2, 0.45, 1.7] {
            maps.push((Affine::shear_x(factor), true));
            maps.push((Affine::shear_y(factor), true));
        }
        // Rotations: the nearest filter's row path steps them; the others go pixel by pixel.
        for degrees in [27.0, -45.0, 90.0, 180.0, 3.7, -0.01, 200.0] {
            maps.push((Affine::rotate(degrees, 37, 23), false));
        }
        for (map, by_rows) in &maps {
            let steps = map.steps();
            let (along, down) = (rows::fits(&steps, 37, 23), rows::fits(&steps.transposed(), 23, 37));
            assert_eq!(along || down, *by_rows, "{map:?}");
            // The row path runs the bicubic filter down its columns first: those of the image,
            // or of the transpose (along the image's rows).
            let path = if along { Path::PerPixelColumnsFirst } else { Path::PerPixel };
            for resample in ALL {
                let mut warped = img.clone();
                warp(&mut warped, map, resample, [1, 2, 3]);
                let want = per_pixel(&img, map, resample, [1, 2, 3], path);
                let differ = warped.data.iter().zip(&want).position(|(a, b)| a != b);
                assert_eq!(differ, None, "{map:?} {resample:?}: first differing value");
            }
        }
    }

    #[test]
    fn the_cubic_weights_sum_to_one_and_interpolate_the_taps() {
        for d in [0.0, 0.1, 0.25, 0.5, 0.9] {
            assert!((cubic(d).iter().sum::<f32>() - 1.0).abs() < 1e-6, "{d}");
        }
        assert_eq!(cubic(0.0), [0.0, 1.0, 0.0, 0.0]);
    }
}
