//! Four `f32` lanes as a plain array, with element-wise operations written so that LLVM's
//! straight-line (SLP) vectorizer turns each into one SSE instruction on the baseline x86-64
//! target: a per-pixel kernel written with them runs four pixels at a time, with no branch and
//! no `unsafe`. Where a loop over pixels with `if`s would not vectorize (its cost model refused
//! the hue rotation), these do.
//!
//! Comparisons pick between two values per lane (`select_*`); `max` and `min` are the plain
//! comparisons (the inputs here are never NaN). Nothing here goes through `array::map` or an
//! iterator adaptor: in the release profile (16 codegen units, no LTO) those stayed calls, and
//! the kernels ran three times slower than the pixel-by-pixel code.

/// Four lanes.
pub(super) type F4 = [f32; 4];

#[inline(always)]
pub(super) fn splat(x: f32) -> F4 {
    [x; 4]
}

#[inline(always)]
fn zip(a: F4, b: F4, f: impl Fn(f32, f32) -> f32) -> F4 {
    [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])]
}

#[inline(always)]
pub(super) fn add(a: F4, b: F4) -> F4 {
    zip(a, b, |x, y| x + y)
}

#[inline(always)]
pub(super) fn sub(a: F4, b: F4) -> F4 {
    zip(a, b, |x, y| x - y)
}

#[inline(always)]
pub(super) fn mul(a: F4, b: F4) -> F4 {
    zip(a, b, |x, y| x * y)
}

#[inline(always)]
pub(super) fn div(a: F4, b: F4) -> F4 {
    zip(a, b, |x, y| x / y)
}

#[inline(always)]
pub(super) fn max(a: F4, b: F4) -> F4 {
    zip(a, b, |x, y| if x > y { x } else { y })
}

#[inline(always)]
pub(super) fn min(a: F4, b: F4) -> F4 {
    zip(a, b, |x, y| if x < y { x } else { y })
}

/// Per lane: `then` where `a == b`, else `other`.
#[inline(always)]
pub(super) fn select_eq(a: F4, b: F4, then: F4, other: F4) -> F4 {
    let lane = |i: usize| if a[i] == b[i] { then[i] } else { other[i] };
    [lane(0), lane(1), lane(2), lane(3)]
}

/// Per lane: `then` where `a < b`, else `other`.
#[inline(always)]
pub(super) fn select_lt(a: F4, b: F4, then: F4, other: F4) -> F4 {
    let lane = |i: usize| if a[i] < b[i] { then[i] } else { other[i] };
    [lane(0), lane(1), lane(2), lane(3)]
}

/// Per lane: `then` where `a >= b`, else `other`.
#[inline(always)]
pub(super) fn select_ge(a: F4, b: F4, then: F4, other: F4) -> F4 {
    let lane = |i: usize| if a[i] >= b[i] { then[i] } else { other[i] };
    [lane(0), lane(1), lane(2), lane(3)]
}

/// `2^23`: adding it to a float in `[0, 2^22)` leaves the nearest integer in the low mantissa bits.
const MAGIC: f32 = 8_388_608.0;

/// The floor of `x + 0.5` clamped to `0..=255` (what a saturating `(x + 0.5) as u8` gives), as a
/// float: the nearest integer by the `2^23` trick, less one where that rounded up.
#[inline(always)]
pub(super) fn round_to_byte(x: F4) -> F4 {
    let z = min(max(add(x, splat(0.5)), splat(0.0)), splat(255.0));
    let nearest = sub(add(z, splat(MAGIC)), splat(MAGIC));
    select_lt(z, nearest, sub(nearest, splat(1.0)), nearest)
}

/// The byte of a whole number in `0..=255` held in a float (as [`round_to_byte`] gives), read
/// from its bits rather than by a saturating cast. A value in `[0, 255]` that is not whole
/// comes out rounded to the nearest, halves to even (the FPU's rounding of the addition).
#[inline(always)]
pub(super) fn byte_of(whole: f32) -> u8 {
    (whole + MAGIC).to_bits() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_to_byte_is_the_saturating_cast_of_x_plus_a_half() {
        let mut x = -3.0f32;
        while x < 260.0 {
            for v in [x, x + 0.49999997, x + 0.5, x - 0.5, x + 0.75] {
                let want = (v + 0.5) as u8;
                let got = round_to_byte(splat(v));
                assert!(got.iter().all(|&g| byte_of(g) == want && g == f32::from(want)), "{v}: {got:?} vs {want}");
            }
            x += 0.25;
        }
    }
}
