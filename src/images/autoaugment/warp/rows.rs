//! The row path of the warp: maps whose points step one whole pixel along each row (a move, or
//! a shear along x; a shear along y or a vertical move through the transpose), and, for the
//! nearest filter, any map.
//!
//! ```text
//!  output row y ─▶ one band of input rows (1, 2 or 4), one fraction, input column = x + shift
//!     ─▶ the span where no tap is clamped: one pass over the row's bytes (copy | 2×2 | 4×4 taps)
//!     ─▶ the rest of the row (edges, fill): the per-pixel path in `warp/mod.rs`
//! ```
//!
//! Each pixel of the span gets the same point, taps and arithmetic as the per-pixel path gives
//! it (the tests compare both on every map), so the two paths write the same bytes; the span
//! is only faster, because its weights and input rows are the same for the whole row.

use std::cmp::Ordering;
use std::ops::Range;

use super::{
    CubicWeights, FRACTION, HALF, Source, Steps, UNIT, bilinear_weight, blend_along, blend_down, cubic_finish,
    cubic_pass, cubic_pass_wide,
};
use crate::images::CHANNELS;

/// Whether the row path can take a map of a `w × h` image: its points step exactly one pixel
/// along x and none along y, and no point's slack (see `filtered`) reaches half a pixel, so a
/// point whose taps are all inside the image is never one that `filtered` finds exactly.
pub(super) fn fits(steps: &Steps, w: usize, h: usize) -> bool {
    steps.along == [UNIT, 0] && w > 0 && h > 0 && ((w + h) as i64) < HALF
}

/// Row `y`'s span for the nearest filter, on any map: the pixels whose points fall inside (an
/// interval: points move along a line), copied whole when the map keeps the row's fraction and
/// stepped one pixel at a time otherwise.
pub(super) fn nearest(src: &Source<'_>, steps: &Steps, y: usize, row: &mut [u8]) -> Range<usize> {
    let (u, v) = steps.at(0, y as i64);
    let [along_u, along_v] = steps.along;
    let (w, h) = (src.w as i64, src.h as i64);
    let (across, down) = (inside(u, along_u, w * UNIT, w), inside(v, along_v, h * UNIT, w));
    let span = across.start.max(down.start)..across.end.min(down.end);
    if span.is_empty() {
        return 0..0;
    }
    let span = span.start as usize..span.end as usize;
    let out = &mut row[span.start * CHANNELS..span.end * CHANNELS];
    let (mut u, mut v) = steps.at(span.start as i64, y as i64);
    if steps.along == [UNIT, 0] {
        let from = ((v >> FRACTION) * w + (u >> FRACTION)) as usize * CHANNELS;
        out.copy_from_slice(&src.data[from..from + out.len()]);
        return span;
    }
    for px in out.chunks_exact_mut(CHANNELS) {
        px.copy_from_slice(&src.pixel((u >> FRACTION) as usize, (v >> FRACTION) as usize));
        (u, v) = (u + along_u, v + along_v);
    }
    span
}

/// The `x` in `0..w` for which `start + x × step` lies in `0..end`: an interval, as the points
/// of a row move one way.
fn inside(start: i64, step: i64, end: i64, w: i64) -> Range<i64> {
    let (first, past) = match step.cmp(&0) {
        Ordering::Equal if (0..end).contains(&start) => (0, w),
        Ordering::Equal => (0, 0),
        // `start.div_euclid(step)` rounds down, so its negation is ⌈−start / step⌉.
        Ordering::Greater => (-start.div_euclid(step), (end - 1 - start).div_euclid(step) + 1),
        Ordering::Less => ((start - end).div_euclid(-step) + 1, start.div_euclid(-step) + 1),
    };
    let first = first.clamp(0, w);
    first..past.clamp(first, w)
}

/// Row `y`'s span for the bilinear filter: the pixels whose 2×2 taps are all inside.
pub(super) fn bilinear(src: &Source<'_>, steps: &Steps, y: usize, row: &mut [u8]) -> Range<usize> {
    let Some(band) = Band::new(src, steps, y, 0, 1) else { return 0..0 };
    let (wx, wy) = (bilinear_weight(band.fraction[0]), bilinear_weight(band.fraction[1]));
    let len = band.span.len() * CHANNELS;
    let [top, bottom] = [0, 1].map(|k| band.input(src, k, len + CHANNELS));
    let out = &mut row[band.span.start * CHANNELS..][..len];
    for (i, o) in out.iter_mut().enumerate() {
        let along = |t: &[u8]| blend_along(t[i], t[i + CHANNELS], wx);
        *o = blend_down(along(top), along(bottom), wy);
    }
    band.span
}

/// Row `y`'s span for the bicubic filter: the pixels whose 4×4 taps are all inside. Down the
/// band's four rows first (one value per input byte, which four output pixels share), then
/// along the row, in chunks that stay in the first cache.
pub(super) fn bicubic(
    src: &Source<'_>,
    steps: &Steps,
    weights: &CubicWeights,
    y: usize,
    row: &mut [u8],
) -> Range<usize> {
    const CHUNK: usize = 64 * CHANNELS;
    let Some(band) = Band::new(src, steps, y, 1, 2) else { return 0..0 };
    let (wx, wy) = (weights.at(band.fraction[0]), weights.at(band.fraction[1]));
    let len = band.span.len() * CHANNELS;
    let rows = [0, 1, 2, 3].map(|k| band.input(src, k, len + 3 * CHANNELS));
    let out = &mut row[band.span.start * CHANNELS..][..len];
    let mut columns = [0i16; CHUNK + 3 * CHANNELS];
    for (chunk, out) in out.chunks_mut(CHUNK).enumerate() {
        let from = chunk * CHUNK;
        let columns = &mut columns[..out.len() + 3 * CHANNELS];
        for (i, value) in columns.iter_mut().enumerate() {
            *value = cubic_pass(rows.map(|r| i32::from(r[from + i])), wy);
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = cubic_finish(cubic_pass_wide([0, 1, 2, 3].map(|j| i32::from(columns[i + j * CHANNELS])), wx));
        }
    }
    band.span
}

/// One output row's input: the first tap's input row and column, the point's fraction, and the
/// span of output pixels whose taps (`before` rows and columns before the point's pixel, `after`
/// after it) are all inside the image.
struct Band {
    first_row: usize,
    first_column: i64,
    fraction: [i64; 2],
    span: Range<usize>,
}

impl Band {
    fn new(src: &Source<'_>, steps: &Steps, y: usize, before: i64, after: i64) -> Option<Self> {
        let (u, v) = steps.at(0, y as i64);
        let (u, v) = (u - HALF, v - HALF);
        let (shift, row) = (u >> FRACTION, v >> FRACTION);
        if row < before || row + after >= src.h as i64 {
            return None;
        }
        // The output columns `x` whose input column `shift + x` has `before` columns to its left
        // and `after` to its right.
        let w = src.w as i64;
        let span = inside(shift - before, 1, w - before - after, w);
        if span.is_empty() {
            return None;
        }
        let span = span.start as usize..span.end as usize;
        let first_column = shift + span.start as i64 - before;
        let fraction = [u & (UNIT - 1), v & (UNIT - 1)];
        Some(Self { first_row: (row - before) as usize, first_column, fraction, span })
    }

    /// `len` bytes of the band's `k`th input row, from the first tap of the span's first pixel.
    fn input<'a>(&self, src: &Source<'a>, k: usize, len: usize) -> &'a [u8] {
        let at = ((self.first_row + k) * src.w) as i64 + self.first_column;
        &src.data[at as usize * CHANNELS..][..len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_is_exactly_the_xs_whose_points_fall_in_range() {
        let w = 40;
        for start in [-5_000_000, -65_536, -1, 0, 1, 32_768, 65_535, 65_536, 1_000_000, 2_621_439, 2_621_440, 9_000_000]
        {
            for step in [-131_072, -65_536, -59_000, -7, -1, 0, 1, 3, 28_000, 65_536, 100_000] {
                let end = w * UNIT;
                let want: Vec<i64> = (0..w).filter(|&x| (0..end).contains(&(start + x * step))).collect();
                let got: Vec<i64> = inside(start, step, end, w).collect();
                assert_eq!(got, want, "start {start}, step {step}");
            }
        }
    }
}
