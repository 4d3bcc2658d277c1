//! Pillow's Gaussian blur (`ImageFilter.GaussianBlur(radius)`), which timm's 3-Augment
//! (`GaussianBlurRand`, `GaussianBlur`) calls: three passes of a box blur along each row, then
//! three along each column.
//!
//! ```text
//!  radius ─extended box radius (Gwosdek et al.)─▶ r = l + a ─▶ rows: box(r) ×3 ─▶ columns: box(r) ×3
//! ```
//!
//! A box of fractional radius `l + a` weighs the `2l + 1` values of its window by `ww` and the
//! two just outside by `fw` (24-bit fixed point, `ww (2l + 1) + 2 fw = 2²⁴`); values past an edge
//! repeat the edge. The arithmetic is Pillow's (`BoxBlur.c`) step for step, in `f32` where it
//! uses `float`, so the result is Pillow's value for value.

use crate::images::{CHANNELS, Image};

/// Box blurs per direction (Pillow's default for a Gaussian).
const PASSES: u32 = 3;

/// Blurs `image` in place with a Gaussian of `radius` (its standard deviation, in pixels); a
/// radius of 0 (or less) leaves it as it is.
pub(in crate::images) fn gaussian_blur(image: &mut Image<u8>, radius: f32) {
    let (w, h) = (image.width as usize, image.height as usize);
    if radius.is_nan() || radius <= 0.0 || w == 0 || h == 0 {
        return;
    }
    let boxed = BoxWeights::new(box_radius(radius));
    // Rows first, as Pillow does, by blurring the columns of the transposed image: a column
    // pass runs along whole rows at a time, which vectorizes.
    let mut turned = transpose(&image.data, w, h);
    boxed.column_passes(&mut turned, h * CHANNELS);
    image.data = transpose(&turned, h, w);
    boxed.column_passes(&mut image.data, w * CHANNELS);
}

/// The `w × h` RGB image `data` turned into its `h × w` transpose.
pub(super) fn transpose(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for (y, row) in data.chunks_exact(w * CHANNELS).enumerate() {
        for (x, px) in row.chunks_exact(CHANNELS).enumerate() {
            out[(x * h + y) * CHANNELS..][..CHANNELS].copy_from_slice(px);
        }
    }
    out
}

/// Pillow's `_gaussian_blur_radius`: the box radius whose `PASSES` passes have the Gaussian's
/// variance (Gwosdek et al., "Theoretical foundations of Gaussian convolution by extended box
/// filtering", equations 7, 11 and 14), in `f32` as Pillow computes it.
fn box_radius(radius: f32) -> f32 {
    let sigma2 = radius * radius / PASSES as f32;
    let length = (12.0 * f64::from(sigma2) + 1.0).sqrt() as f32;
    let whole = ((f64::from(length) - 1.0) / 2.0).floor() as f32;
    let mut fraction = (2.0 * whole + 1.0) * (whole * (whole + 1.0) - 3.0 * sigma2);
    fraction /= 6.0 * (sigma2 - (whole + 1.0) * (whole + 1.0));
    whole + fraction
}

/// One box of fractional radius: its whole radius and the 24-bit weights inside and at its rim.
struct BoxWeights {
    radius: usize,
    inside: u32,
    rim: u32,
}

impl BoxWeights {
    /// Pillow's `ImagingHorizontalBoxBlur` weights.
    fn new(radius: f32) -> Self {
        let whole = radius as u32;
        let inside = ((1u32 << 24) as f32 / (radius * 2.0 + 1.0)) as u32;
        let rim = ((1u32 << 24) - (whole * 2 + 1) * inside) / 2;
        Self { radius: whole as usize, inside, rim }
    }

    /// `PASSES` box blurs down the columns of `data`, rows of `row` values: each pass writes
    /// into the other buffer, and the last one's output becomes `data`.
    fn column_passes(&self, data: &mut Vec<u8>, row: usize) {
        let mut scratch = vec![0u8; data.len()];
        // A window of up to 257 values of 255 fits a u16 running sum (radius 2 is a window of 3).
        let narrow = self.radius <= 127;
        // Only the running sums that the window's width calls for.
        let (mut short, mut acc) = if narrow { (vec![0u16; row], Vec::new()) } else { (Vec::new(), vec![0u32; row]) };
        for _ in 0..PASSES {
            if narrow {
                self.column_blur_narrow(data, &mut scratch, &mut short, row);
            } else {
                self.column_blur(data, &mut scratch, &mut acc, row);
            }
            std::mem::swap(data, &mut scratch);
        }
    }

    /// [`column_blur`](Self::column_blur) for windows whose sums fit 16 bits: the same value,
    /// with each 24-bit weight split in two 12-bit halves so that every product is 16 × 16
    /// bits, which the baseline x86-64 target multiplies eight lanes at a time (it has no
    /// four-lane 32-bit multiply). `acc × inside + lr × rim` =
    /// `(acc × inside_hi + lr × rim_hi) × 2¹² + acc × inside_lo + lr × rim_lo`, exactly.
    fn column_blur_narrow(&self, src: &[u8], dst: &mut [u8], acc: &mut [u16], row: usize) {
        let split = |w: u32| ((w >> 12) as u16, (w & 0xfff) as u16);
        let ((inside_hi, inside_lo), (rim_hi, rim_lo)) = (split(self.inside), split(self.rim));
        let wide = |a: u16, b: u16| u32::from(a) * u32::from(b);
        self.sweep(src, dst, acc, row, |acc, l, add, f| {
            let (l, f) = (u16::from(l), u16::from(f));
            *acc = *acc + u16::from(add) - l;
            let (a, lr) = (*acc, l + f);
            let high = wide(a, inside_hi) + wide(lr, rim_hi);
            let bulk = (high << 12) + wide(a, inside_lo) + wide(lr, rim_lo);
            ((bulk + (1 << 23)) >> 24) as u8
        });
    }

    /// One box blur down the columns of `src` into `dst` (Pillow's `ImagingLineBoxBlur`, run on
    /// every column at once).
    fn column_blur(&self, src: &[u8], dst: &mut [u8], acc: &mut [u32], row: usize) {
        let (inside, rim) = (self.inside, self.rim);
        self.sweep(src, dst, acc, row, |acc, l, add, f| {
            let (l, f) = (u32::from(l), u32::from(f));
            *acc = *acc + u32::from(add) - l;
            let bulk = *acc * inside + (l + f) * rim;
            ((bulk + (1 << 23)) >> 24) as u8
        });
    }

    /// Runs down the columns of `src`, keeping a running sum per column of the window
    /// `[y − r, y + r]` in `acc` (rows past an edge repeat the edge row): `value(sum, leaving,
    /// entering, just outside)` moves a column's sum to row `y` and gives its output there.
    #[inline(always)]
    fn sweep<A: Copy + Default + From<u8> + std::ops::AddAssign>(
        &self,
        src: &[u8],
        dst: &mut [u8],
        acc: &mut [A],
        row: usize,
        value: impl Fn(&mut A, u8, u8, u8) -> u8,
    ) {
        let r = self.radius as isize;
        let last = (src.len() / row) as isize - 1;
        let line = |y: isize| &src[y.clamp(0, last) as usize * row..][..row];
        acc.fill(A::default());
        // The window of row −1: [−r − 1, r − 1].
        for k in -r - 1..r {
            for (a, &v) in acc.iter_mut().zip(line(k)) {
                *a += A::from(v);
            }
        }
        for (y, out) in dst.chunks_exact_mut(row).enumerate() {
            let y = y as isize;
            let (left, add, right) = (line(y - r - 1), line(y + r), line(y + r + 1));
            let acc = &mut acc[..row];
            for i in 0..row {
                out[i] = value(&mut acc[i], left[i], add[i], right[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::resize::test_image as image;

    #[test]
    fn box_radius_and_weights_follow_pillow() {
        // Pillow's values (printed from the same arithmetic checked against Pillow 13).
        assert_eq!(box_radius(1.0), 0.25000003);
        assert_eq!(box_radius(2.0), 1.375);
        assert_eq!(box_radius(1.5), 1.0384616);
        let w = BoxWeights::new(box_radius(2.0));
        assert_eq!(w.radius, 1);
        let total = w.inside * 3 + 2 * w.rim;
        assert!((1 << 24) - total <= 1, "the weights sum to 2^24, less one lost to halving: {total}");
    }

    #[test]
    fn the_narrow_sums_write_what_the_wide_ones_write() {
        // Noise, so every weight and rounding case comes up; radii up to the narrow path's limit.
        let mut state = 7u64;
        let data: Vec<u8> = (0..40 * 300)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        for radius in [0.3, 1.0, 2.0, 9.5, 60.0, 127.9] {
            let boxed = BoxWeights::new(box_radius(radius));
            let (mut wide, mut narrow) = (vec![0u8; data.len()], vec![0u8; data.len()]);
            boxed.column_blur(&data, &mut wide, &mut [0u32; 40], 40);
            boxed.column_blur_narrow(&data, &mut narrow, &mut [0u16; 40], 40);
            assert!(wide == narrow, "radius {radius} (box {})", boxed.radius);
        }
    }

    #[test]
    fn the_widest_blur_augment_takes_makes_a_crop_one_flat_colour() {
        let mut img = image(40, 30, |x, y| [(x * 6) as u8, (y * 8) as u8, ((x * y) % 256) as u8]);
        gaussian_blur(&mut img, crate::images::augment::MAX_BLUR_SIGMA as f32);
        for c in 0..CHANNELS {
            let channel = img.data.iter().skip(c).step_by(CHANNELS);
            let (lo, hi) = channel.fold((255, 0), |(lo, hi), &v| (v.min(lo), v.max(hi)));
            assert!(hi - lo <= 1, "channel {c}: {lo}..={hi}");
        }
    }

    #[test]
    fn a_flat_image_stays_flat_and_a_bright_dot_spreads_symmetrically() {
        let mut flat = image(9, 7, |_, _| [10, 200, 255]);
        let want = flat.clone();
        gaussian_blur(&mut flat, 1.7);
        assert_eq!(flat, want, "edges repeat: a flat image is unchanged, however near the edge");
        let mut dot = image(15, 15, |x, y| if (x, y) == (7, 7) { [255, 0, 0] } else { [0, 0, 0] });
        gaussian_blur(&mut dot, 1.5);
        let red = |x: usize, y: usize| dot.data[(y * 15 + x) * 3];
        assert!(red(7, 7) < 255 && red(7, 7) > red(6, 7) && red(6, 7) > red(5, 7));
        for (dx, dy) in [(1, 0), (2, 1), (3, 3)] {
            let ring = [red(7 + dx, 7 + dy), red(7 - dx, 7 - dy), red(7 + dy, 7 - dx), red(7 - dy, 7 + dx)];
            assert!(ring.iter().all(|&v| v == ring[0]), "offset ({dx}, {dy}): {ring:?}");
        }
        assert!(dot.data.chunks_exact(3).all(|p| p[1] == 0 && p[2] == 0), "channels stay apart");
        let mut same = dot.clone();
        gaussian_blur(&mut same, 0.0);
        assert_eq!(same, dot, "radius 0: unchanged");
    }
}
