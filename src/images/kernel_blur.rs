//! torchvision's `GaussianBlur(kernel_size, sigma)`, the blur of DINOv2 (`kernel_size=9`) and of
//! SimCLR's PyTorch ports (about a tenth of the crop: 23 for 224): a sampled Gaussian of
//! `kernel_size` taps, the image mirrored at its edges, the result rounded back to bytes.
//!
//! ```text
//!  σ ─▶ taps: exp(-½ (x/σ)²), x = -k/2 … k/2, summing to 1
//!  u8 rows ─mirror the edges─▶ f32 ─taps along rows─▶ f32 ─taps down columns─▶ round half to even ─▶ u8
//! ```
//!
//! torchvision convolves with the outer product of the taps (`conv2d`, `float32`) after a
//! `reflect` pad (the edge value itself is not repeated: `… c b | a b c …`); the two passes here
//! compute the same sums in another order, so a value can differ only where the exact result sits
//! within `f32` rounding of a half. Pillow's blur ([`Augment::blur`](super::Augment::blur)
//! without a kernel size) is another filter: three box blurs each way, edges repeated.

use super::lanes::byte_of;
use super::{CHANNELS, Image};

/// The widest kernel [`Augment::blur_kernel`](super::Augment::blur_kernel) takes: each output
/// value costs two multiply-adds per tap, and recipes use 9 to 23.
pub const MAX_BLUR_KERNEL: u32 = 255;

/// Blurs `image` in place with torchvision's Gaussian of `size` taps (odd) and standard
/// deviation `sigma` (pixels, above 0).
pub(super) fn kernel_blur(image: &mut Image<u8>, size: u32, sigma: f32) {
    let (w, h) = (image.width as usize, image.height as usize);
    if w == 0 || h == 0 || size <= 1 {
        return;
    }
    let taps = gaussian_taps(size, sigma);
    let half = taps.len() / 2;
    let row_len = w * CHANNELS;
    // Along rows: each row mirrored into `padded`; output value `j` sums `padded[j + 3t]`.
    let mut across = vec![0f32; row_len * h];
    let mut padded = vec![0f32; (w + 2 * half) * CHANNELS];
    // Every padded row starts its taps at the same offsets.
    let mut starts: Vec<usize> = (0..taps.len()).map(|t| t * CHANNELS).collect();
    for (src, dst) in image.data.chunks_exact(row_len).zip(across.chunks_exact_mut(row_len)) {
        for (p, &s) in padded[half * CHANNELS..][..row_len].iter_mut().zip(src) {
            *p = f32::from(s);
        }
        // Only the `half` pixels past each end need the mirror.
        for i in (0..half).chain(w + half..w + 2 * half) {
            let x = mirror(i as isize - half as isize, w);
            for c in 0..CHANNELS {
                padded[i * CHANNELS + c] = f32::from(src[x * CHANNELS + c]);
            }
        }
        weighted_sum(dst, &taps, &padded, &starts);
    }
    // Down columns: output row `y` sums the mirrored rows around it, weighted.
    let mut sum = vec![0f32; row_len];
    for (y, out) in image.data.chunks_exact_mut(row_len).enumerate() {
        starts.clear();
        starts.extend((0..taps.len()).map(|t| mirror(y as isize + t as isize - half as isize, h) * row_len));
        weighted_sum(&mut sum, &taps, &across, &starts);
        for (o, &s) in out.iter_mut().zip(&sum) {
            *o = nearest_even_byte(s);
        }
    }
}

/// Values [`weighted_sum`] keeps in registers while it adds every tap's term.
const BLOCK: usize = 16;

/// `out[j] = Σ_t taps[t] · from[starts[t] + j]`, added in tap order (as one pass per tap would)
/// but `BLOCK` values at a time held in registers, so each output value is stored once.
fn weighted_sum(out: &mut [f32], taps: &[f32], from: &[f32], starts: &[usize]) {
    let whole = out.len() / BLOCK * BLOCK;
    let (blocks, rest) = out.split_at_mut(whole);
    for (b, block) in blocks.chunks_exact_mut(BLOCK).enumerate() {
        let mut acc = [0f32; BLOCK];
        for (&weight, &start) in taps.iter().zip(starts) {
            let values: &[f32; BLOCK] = from[start + b * BLOCK..][..BLOCK].try_into().expect("a whole block");
            for (a, &v) in acc.iter_mut().zip(values) {
                *a += weight * v;
            }
        }
        block.copy_from_slice(&acc);
    }
    rest.fill(0.0);
    let tail = rest.len();
    for (&weight, &start) in taps.iter().zip(starts) {
        for (d, &v) in rest.iter_mut().zip(&from[start + whole..][..tail]) {
            *d += weight * v;
        }
    }
}

/// torchvision's `output.round_().to(uint8)`: to the nearest whole number, halves to even, by
/// [`byte_of`]'s 2²³ trick (the same as `round_ties_even`, which on the baseline x86-64 target
/// is a library call per value, where this vectorizes).
fn nearest_even_byte(s: f32) -> u8 {
    byte_of(s.clamp(0.0, 255.0))
}

/// torchvision's `_get_gaussian_kernel1d`: `exp(-½ (x/σ)²)` at the `size` whole offsets around
/// the center, divided by their sum (all in `f32`).
fn gaussian_taps(size: u32, sigma: f32) -> Vec<f32> {
    let half = (size - 1) as f32 * 0.5;
    let pdf: Vec<f32> = (0..size)
        .map(|i| {
            let x = (i as f32 - half) / sigma;
            (-0.5 * (x * x)).exp()
        })
        .collect();
    let total: f32 = pdf.iter().sum();
    pdf.iter().map(|p| p / total).collect()
}

/// Index `i` of a line of `n` values mirrored about its end values (`reflect`: `… c b | a b c …`),
/// as often as needed when the kernel is wider than the line.
fn mirror(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::resize::test_image as image;

    /// `torch.nn.functional.pad(mode="reflect")` for one index, folded back until it lands inside.
    fn reflected(mut i: isize, n: usize) -> usize {
        let n = n as isize;
        loop {
            match i {
                _ if n == 1 => return 0,
                _ if i < 0 => i = -i,
                _ if i >= n => i = 2 * (n - 1) - i,
                _ => return i as usize,
            }
        }
    }

    /// torchvision's definition computed directly in `f64`: the 2-D kernel (outer product of the
    /// taps), the image padded by reflection, one sum per output value.
    fn reference(img: &Image<u8>, size: u32, sigma: f64) -> Vec<f64> {
        let half = (size as f64 - 1.0) * 0.5;
        let pdf: Vec<f64> = (0..size).map(|i| (-0.5 * ((i as f64 - half) / sigma).powi(2)).exp()).collect();
        let total: f64 = pdf.iter().sum();
        let taps: Vec<f64> = pdf.iter().map(|p| p / total).collect();
        let (w, h, k) = (img.width as usize, img.height as usize, size as isize);
        let mut out = Vec::with_capacity(w * h * CHANNELS);
        for y in 0..h as isize {
            for x in 0..w as isize {
                for c in 0..CHANNELS {
                    let mut s = 0.0;
                    for ty in 0..k {
                        for tx in 0..k {
                            let sy = reflected(y + ty - k / 2, h);
                            let sx = reflected(x + tx - k / 2, w);
                            let v = f64::from(img.data[(sy * w + sx) * CHANNELS + c]);
                            s += taps[ty as usize] * taps[tx as usize] * v;
                        }
                    }
                    out.push(s);
                }
            }
        }
        out
    }

    fn busy(w: u32, h: u32) -> Image<u8> {
        image(w, h, |x, y| {
            let v = (x * 37 + y * 91) ^ (x * y);
            [(v % 256) as u8, ((v / 3) % 256) as u8, ((x * 255) / w.max(1)) as u8]
        })
    }

    #[test]
    fn matches_torchvisions_definition_away_from_rounding_ties() {
        for (w, h, size, sigma) in [(40, 30, 9, 1.3), (33, 17, 23, 2.0), (12, 9, 9, 0.1), (20, 25, 5, 0.7)] {
            let img = busy(w, h);
            let want = reference(&img, size, sigma);
            let mut got = img.clone();
            kernel_blur(&mut got, size, sigma as f32);
            for (i, (&g, &r)) in got.data.iter().zip(&want).enumerate() {
                let near_tie = (r.fract() - 0.5).abs() < 1e-3;
                let rounded = r.round();
                assert!(
                    f64::from(g) == rounded || (near_tie && (f64::from(g) - r).abs() < 0.51),
                    "{w}x{h} k={size} σ={sigma}: value {i} is {g}, torchvision's {r}"
                );
            }
        }
    }

    #[test]
    fn a_kernel_wider_than_the_image_keeps_mirroring() {
        // torchvision refuses a pad as wide as the image; here the mirror repeats, so a tiny crop
        // still blurs to a value inside its range, and matches the same definition.
        let img = busy(3, 2);
        let want = reference(&img, 9, 3.0);
        let mut got = img.clone();
        kernel_blur(&mut got, 9, 3.0);
        for (&g, &r) in got.data.iter().zip(&want) {
            assert!((f64::from(g) - r).abs() <= 0.5 + 1e-3, "{g} vs {r}");
        }
        let mut one = busy(1, 1);
        let before = one.clone();
        kernel_blur(&mut one, 23, 2.0);
        assert_eq!(one, before, "one pixel is its own mirror");
    }

    #[test]
    fn flat_images_stay_flat_and_one_tap_changes_nothing() {
        let mut flat = image(30, 20, |_, _| [255, 0, 77]);
        let want = flat.clone();
        kernel_blur(&mut flat, 9, 2.0);
        assert_eq!(flat, want, "the taps sum to 1: no drift, no overflow at 255");
        let mut img = busy(16, 16);
        let before = img.clone();
        kernel_blur(&mut img, 1, 1.0);
        assert_eq!(img, before);
    }

    #[test]
    fn bytes_round_half_to_even_as_torch_does() {
        for (s, want) in
            [(0.5, 0), (1.5, 2), (2.5, 2), (2.4999, 2), (2.5001, 3), (254.5, 254), (255.0001, 255), (-0.3, 0)]
        {
            assert_eq!(nearest_even_byte(s), want, "{s}");
        }
        for i in 0..=2550 {
            let s = i as f32 * 0.1;
            assert_eq!(nearest_even_byte(s), s.round_ties_even() as u8, "{s}");
        }
    }

    #[test]
    fn taps_are_torchvisions() {
        let taps = gaussian_taps(5, 1.0);
        // exp(-x²/2) at 0, ±1, ±2 over their sum.
        let pdf = [0.135_335_28f32, 0.606_530_66, 1.0, 0.606_530_66, 0.135_335_28];
        let total: f32 = pdf.iter().sum();
        for (t, p) in taps.iter().zip(pdf) {
            assert!((t - p / total).abs() < 1e-7, "{t} vs {}", p / total);
        }
        assert_eq!(mirror(-1, 5), 1);
        assert_eq!(mirror(5, 5), 3);
        assert_eq!(mirror(-9, 5), 1, "past one period it keeps mirroring");
    }
}
