//! The colour operations of RandAugment and TrivialAugment, on RGB `u8` values in place.
//!
//! ```text
//!  Image<u8> ─per-channel table (invert, posterize, solarize, autocontrast, equalize, brightness, contrast)─▶ Image<u8>
//!            ─blend with a degenerate image (colour: its grey; sharpness: its 3×3 smoothing)─▶ Image<u8>
//! ```
//!
//! Each is Pillow's (`ImageOps`, `ImageEnhance`), which timm and torchvision call on PIL
//! images: the integer operations value for value; the blends `d + f × (x − d)` round to the
//! nearest value where Pillow truncates (as the colour jitter does, see `jitter.rs`).

use crate::images::jitter::{apply_table, map_values, to_u8};
use crate::images::{CHANNELS, Image};

/// One 256-entry table per channel.
type Tables = [[u8; 256]; CHANNELS];

fn apply_tables(image: &mut Image<u8>, tables: &Tables) {
    for px in image.data.chunks_exact_mut(CHANNELS) {
        for (v, table) in px.iter_mut().zip(tables) {
            *v = table[usize::from(*v)];
        }
    }
}

fn histograms(image: &Image<u8>) -> [[u32; 256]; CHANNELS] {
    let mut h = [[0u32; 256]; CHANNELS];
    for px in image.data.chunks_exact(CHANNELS) {
        for (hist, &v) in h.iter_mut().zip(px) {
            hist[usize::from(v)] += 1;
        }
    }
    h
}

/// `255 − x`.
pub(super) fn invert(image: &mut Image<u8>) {
    apply_table(image, std::array::from_fn(|x| 255 - x as u8));
}

/// Keeps the top `bits` bits of each value (8: unchanged; 0: black).
pub(super) fn posterize(image: &mut Image<u8>, bits: u8) {
    if bits >= 8 {
        return;
    }
    let mask = !(0xffu8 >> bits);
    apply_table(image, std::array::from_fn(|x| x as u8 & mask));
}

/// Inverts every value at or above `threshold` (above 255: nothing).
pub(in crate::images) fn solarize(image: &mut Image<u8>, threshold: f32) {
    apply_table(image, std::array::from_fn(|x| if x as f32 >= threshold { 255 - x as u8 } else { x as u8 }));
}

/// Adds `add` to every value below 128, saturating (timm's `solarize_add`).
pub(super) fn solarize_add(image: &mut Image<u8>, add: u8) {
    apply_table(image, std::array::from_fn(|x| if x < 128 { (x as u8).saturating_add(add) } else { x as u8 }));
}

/// Stretches each channel to span 0–255 (`ImageOps.autocontrast` with no cutoff); a channel
/// of one value is left alone.
pub(super) fn autocontrast(image: &mut Image<u8>) {
    let hist = histograms(image);
    let tables = std::array::from_fn(|c| {
        let h = &hist[c];
        let (Some(lo), Some(hi)) = (h.iter().position(|&n| n > 0), h.iter().rposition(|&n| n > 0)) else {
            return identity();
        };
        if hi <= lo {
            return identity();
        }
        let scale = 255.0 / (hi - lo) as f64;
        let offset = -(lo as f64) * scale;
        // Pillow truncates toward zero, then clamps.
        std::array::from_fn(|x| (x as f64 * scale + offset).clamp(0.0, 255.0) as u8)
    });
    apply_tables(image, &tables);
}

/// Flattens each channel's histogram (`ImageOps.equalize`): a value maps to the count of
/// values below it, in steps of `(pixels − count of the top value) / 255`.
pub(super) fn equalize(image: &mut Image<u8>) {
    let hist = histograms(image);
    let tables = std::array::from_fn(|c| {
        let h = &hist[c];
        let top = h.iter().rev().find(|&&n| n > 0).copied().unwrap_or(0);
        let used = h.iter().filter(|&&n| n > 0).count();
        let step = (h.iter().sum::<u32>() - top) / 255;
        if used <= 1 || step == 0 {
            return identity();
        }
        let mut n = step / 2;
        std::array::from_fn(|x| {
            let v = (n / step).min(255) as u8;
            n += h[x];
            v
        })
    });
    apply_tables(image, &tables);
}

fn identity() -> [u8; 256] {
    std::array::from_fn(|x| x as u8)
}

/// `f × x`: blends with black (`ImageEnhance.Brightness`).
pub(super) fn brightness(image: &mut Image<u8>, f: f32) {
    map_values(image, |x| f * x);
}

/// Blends with the image's mean grey (`ImageEnhance.Contrast`: the mean of Pillow's `L`
/// image, rounded).
pub(super) fn contrast(image: &mut Image<u8>, f: f32) {
    let pixels = image.data.len() / CHANNELS;
    if pixels == 0 {
        return;
    }
    let sum: u64 = image.data.chunks_exact(CHANNELS).map(|px| u64::from(grey(px))).sum();
    let mean = ((sum as f64 / pixels as f64) + 0.5).floor() as f32;
    map_values(image, |x| mean + f * (x - mean));
}

/// Blends each pixel with its own grey (`ImageEnhance.Color`).
pub(super) fn color(image: &mut Image<u8>, f: f32) {
    for px in image.data.chunks_exact_mut(CHANNELS) {
        let g = f32::from(grey(px));
        for v in px {
            *v = to_u8(g + f * (f32::from(*v) - g));
        }
    }
}

/// Blends with the image smoothed by Pillow's `SMOOTH` kernel (`[1 1 1; 1 5 1; 1 1 1] / 13`);
/// the border pixels, which the kernel does not cover, are kept (`ImageEnhance.Sharpness`).
pub(super) fn sharpness(image: &mut Image<u8>, f: f32) {
    let (w, h) = (image.width as usize, image.height as usize);
    if w < 3 || h < 3 || f == 1.0 {
        return;
    }
    let row = w * CHANNELS;
    let src = image.data.clone();
    for y in 1..h - 1 {
        let (above, here, below) = (&src[(y - 1) * row..][..row], &src[y * row..][..row], &src[(y + 1) * row..][..row]);
        let out = &mut image.data[y * row..][..row];
        for i in CHANNELS..row - CHANNELS {
            let (l, r) = (i - CHANNELS, i + CHANNELS);
            let ring = [above[l], above[i], above[r], here[l], here[r], below[l], below[i], below[r]];
            let sum = ring.iter().map(|&v| u32::from(v)).sum::<u32>() + 5 * u32::from(here[i]);
            let smooth = ((sum + 6) / 13) as f32;
            out[i] = to_u8(smooth + f * (f32::from(here[i]) - smooth));
        }
    }
}

/// Every pixel's three values set to its grey (`L`), as torchvision's `RandomGrayscale` makes
/// of a PIL image (`convert("L")`, then the grey in each channel).
pub(in crate::images) fn grayscale(image: &mut Image<u8>) {
    for px in image.data.chunks_exact_mut(CHANNELS) {
        px.fill(grey(px));
    }
}

/// Pillow's `L` of an RGB pixel: `(19595 R + 38470 G + 7471 B + 2¹⁵) >> 16`.
fn grey(px: &[u8]) -> u8 {
    ((u32::from(px[0]) * 19595 + u32::from(px[1]) * 38470 + u32::from(px[2]) * 7471 + 0x8000) >> 16) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::resize::test_image as image;

    fn values(img: &Image<u8>) -> Vec<[u8; 3]> {
        img.data.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect()
    }

    #[test]
    fn table_operations_match_pillows_definitions() {
        let ramp = image(256, 1, |x, _| [x as u8, 255 - x as u8, (x as u8) / 2]);
        let mut img = ramp.clone();
        invert(&mut img);
        assert!(img.data.iter().zip(&ramp.data).all(|(a, b)| *a == 255 - b));
        let mut img = ramp.clone();
        posterize(&mut img, 2);
        assert!(img.data.iter().all(|v| v & 0x3f == 0), "two bits kept");
        assert_eq!(values(&img)[200], [192, 0, 64]);
        let mut black = ramp.clone();
        posterize(&mut black, 0);
        assert!(black.data.iter().all(|&v| v == 0));
        let mut same = ramp.clone();
        posterize(&mut same, 8);
        assert_eq!(same, ramp);
        let mut img = ramp.clone();
        solarize(&mut img, 128.0);
        assert_eq!(values(&img)[127], [127, 127, 63], "below the threshold: kept");
        assert_eq!(values(&img)[128], [127, 127, 64], "128 and 127 (255 − 128 and kept)");
        let mut img = ramp.clone();
        solarize(&mut img, 246.5);
        assert_eq!((values(&img)[246][0], values(&img)[247][0]), (246, 8), "a fractional threshold");
        let mut img = ramp.clone();
        solarize_add(&mut img, 110);
        assert_eq!((values(&img)[10], values(&img)[200]), ([120, 245, 115], [200, 165, 210]));
        assert_eq!(values(&img)[127][0], 237);
        assert_eq!(values(&img)[20][1], 235, "235 is not below 128: kept");
    }

    #[test]
    fn autocontrast_stretches_each_channel_and_leaves_a_flat_one() {
        let mut img = image(3, 1, |x, _| [[50, 7, 9], [100, 7, 10], [150, 7, 11]][x as usize]);
        autocontrast(&mut img);
        assert_eq!(values(&img), vec![[0, 7, 0], [127, 7, 127], [255, 7, 255]]);
    }

    #[test]
    fn equalize_follows_pillows_cumulative_steps() {
        let n = 255 * 4;
        let mut img = image(n, 1, |x, _| {
            let v = if x < 255 {
                10
            } else if x < 510 {
                20
            } else {
                30
            };
            [v, 77, 0]
        });
        equalize(&mut img);
        // Counts 255, 255, 510 → step (1020 − 510) / 255 = 2; n starts at 1.
        // lut[10] = 1 / 2 = 0; lut[20] = (1 + 255) / 2 = 128; lut[30] = (1 + 510) / 2 = 255.
        let want = |x: usize| {
            if x < 255 {
                0
            } else if x < 510 {
                128
            } else {
                255
            }
        };
        for (x, px) in values(&img).iter().enumerate() {
            assert_eq!(*px, [want(x), 77, 0], "pixel {x}: one-valued channels unchanged");
        }
    }

    #[test]
    fn blends_reach_their_degenerate_image_at_zero_and_keep_the_image_at_one() {
        let img = image(5, 4, |x, y| [(x * 50) as u8, (y * 60) as u8, 200 - (x * y * 9) as u8]);
        let at = |op: fn(&mut Image<u8>, f32), f: f32| {
            let mut out = img.clone();
            op(&mut out, f);
            out
        };
        for op in [brightness, contrast, color, sharpness] {
            assert_eq!(at(op, 1.0), img, "factor 1 changes nothing");
        }
        assert!(at(brightness, 0.0).data.iter().all(|&v| v == 0));
        let greys: Vec<u8> = img.data.chunks_exact(3).map(grey).collect();
        assert_eq!(values(&at(color, 0.0)), greys.iter().map(|&g| [g; 3]).collect::<Vec<_>>());
        let mean = (greys.iter().map(|&g| f64::from(g)).sum::<f64>() / greys.len() as f64).round() as u8;
        assert!(at(contrast, 0.0).data.iter().all(|&v| v == mean), "mean grey {mean}");
        let smooth = at(sharpness, 0.0);
        let px = |im: &Image<u8>, x: usize, y: usize, c: usize| im.data[(y * 5 + x) * 3 + c];
        for y in 0..4 {
            for x in 0..5 {
                for c in 0..3 {
                    let want = if x == 0 || y == 0 || x == 4 || y == 3 {
                        px(&img, x, y, c)
                    } else {
                        let mut s = 4 * u32::from(px(&img, x, y, c));
                        for (dx, dy) in (0..3).flat_map(|dy| (0..3).map(move |dx| (dx, dy))) {
                            s += u32::from(px(&img, x + dx - 1, y + dy - 1, c));
                        }
                        ((f64::from(s) / 13.0).round()) as u8
                    };
                    assert_eq!(px(&smooth, x, y, c), want, "({x}, {y}) channel {c}");
                }
            }
        }
        assert_eq!(values(&at(brightness, 1.5))[4], [255, 0, 255], "clamped (200 × 1.5)");
        assert_eq!(values(&at(brightness, 0.5))[1], [25, 0, 100]);
    }
}
