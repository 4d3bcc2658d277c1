//! TIFF (the `tiff` crate) to 8-bit RGB: the first image of the file.
//!
//! Uncompressed, LZW, Deflate, PackBits, CCITT fax and JPEG-compressed strips or tiles, little-
//! or big-endian, classic or BigTIFF. What becomes RGB, as Pillow's `convert("RGB")` makes it:
//! - gray at 1, 2, 4, 8 or 16 bits (samples under 8 bits scaled to 0–255), with or without
//!   alpha; RGB and RGBA at 8 or 16 bits; alpha dropped;
//! - CMYK (8 bits) with Pillow's formula, `R = (255 − K) − C·(255 − K)/255`;
//! - 16-bit samples keep their high byte, as for PNG.
//!
//! Not read (an [`ImageErrorKind::Unsupported`] naming the kind, so a loader counts the file):
//! palette (indexed-colour) files, which the crate does not decode; float or signed samples;
//! Lab, YCbCr stored raw and other multi-band images.

use std::io::Cursor;

use tiff::decoder::{Decoder, DecodingResult};
use tiff::{ColorType, TiffError};

use super::{CHANNELS, ImageErrorKind, ImageFormat};

/// Whether `bytes` start like a TIFF file: byte order `II` or `MM`, then 42 (classic) or 43
/// (BigTIFF).
pub(super) fn is_tiff(bytes: &[u8]) -> bool {
    matches!(bytes, [b'I', b'I', 42 | 43, 0, ..] | [b'M', b'M', 0, 42 | 43, ..])
}

/// Decodes the first image of TIFF bytes to `(width, height, RGB bytes)`. A truncated or corrupt
/// file is an error; so is a kind this decoder does not read.
pub(super) fn decode_rgb(bytes: &[u8], max_side: usize) -> Result<(usize, usize, Vec<u8>), ImageErrorKind> {
    let mut decoder = Decoder::new(Cursor::new(bytes)).map_err(classify)?;
    let (w, h) = decoder.dimensions().map_err(classify)?;
    let (width, height) = (w as usize, h as usize);
    if width > max_side || height > max_side {
        return Err(ImageErrorKind::TooManyPixels { width, height, max: max_side });
    }
    let color = decoder.colortype().map_err(classify)?;
    let data = decoder.read_image().map_err(classify)?;
    let rgb = to_rgb(data, color, width, height)?;
    Ok((width, height, rgb))
}

/// Encodes 8-bit RGB pixels as an uncompressed TIFF (one image, in strips), as Pillow writes by
/// default: LZW without a predictor makes photos larger, not smaller (413 against 369 KB here).
pub(super) fn encode(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Cursor::new(Vec::new());
    let mut encoder = tiff::encoder::TiffEncoder::new(&mut out).map_err(|e| e.to_string())?;
    encoder.write_image::<tiff::encoder::colortype::RGB8>(width, height, rgb).map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

/// The crate's error as ours: what it cannot read is unsupported, the rest corrupt.
fn classify(e: TiffError) -> ImageErrorKind {
    match e {
        TiffError::UnsupportedError(what) => unsupported(what.to_string()),
        TiffError::LimitsExceeded => unsupported("larger than the decoder's 256 MiB buffer limit".into()),
        other => ImageErrorKind::Corrupt { format: ImageFormat::Tiff, reason: other.to_string() },
    }
}

fn unsupported(what: String) -> ImageErrorKind {
    ImageErrorKind::Unsupported { format: ImageFormat::Tiff, what }
}

/// Converts decoded samples of `color` to 8-bit RGB, checking that they fill the image.
fn to_rgb(data: DecodingResult, color: ColorType, width: usize, height: usize) -> Result<Vec<u8>, ImageErrorKind> {
    let pixels = width * height;
    // (samples per pixel, which of them are gray (1) or RGB (3), whether the last three are
    // CMYK's); gray + alpha comes as a two-sample "multiband" image.
    let (samples, shape) = match color {
        ColorType::Gray(1 | 2 | 4) => return unpack_gray(data, color, width, height),
        ColorType::Gray(8 | 16) => (1, Shape::Gray),
        ColorType::Multiband { bit_depth: 8 | 16, num_samples: 2 } => (2, Shape::Gray),
        ColorType::RGB(8 | 16) => (3, Shape::Rgb),
        ColorType::RGBA(8 | 16) => (4, Shape::Rgb),
        ColorType::CMYK(8) => (4, Shape::Cmyk),
        other => return Err(unsupported(format!("{other:?} pixels"))),
    };
    let bytes = match data {
        DecodingResult::U8(v) => v,
        // 16-bit samples keep their high byte.
        DecodingResult::U16(v) => v.into_iter().map(|s| (s >> 8) as u8).collect(),
        _ => return Err(unsupported("float or signed samples".into())),
    };
    if bytes.len() != pixels * samples {
        // A planar file, whose planes the crate reads one at a time, lands here too.
        return Err(unsupported(format!(
            "{} samples for {width}×{height} pixels of {samples} (planes stored apart?)",
            bytes.len()
        )));
    }
    let mut rgb = vec![0u8; pixels * CHANNELS];
    let out = rgb.chunks_exact_mut(CHANNELS);
    match shape {
        Shape::Gray => out.zip(bytes.chunks_exact(samples)).for_each(|(o, s)| o.fill(s[0])),
        Shape::Rgb => out.zip(bytes.chunks_exact(samples)).for_each(|(o, s)| o.copy_from_slice(&s[..3])),
        Shape::Cmyk => out.zip(bytes.chunks_exact(4)).for_each(|(o, s)| {
            let white = 255 - u32::from(s[3]);
            for (o, &ink) in o.iter_mut().zip(&s[..3]) {
                *o = (white - mul_div_255(u32::from(ink), white)) as u8;
            }
        }),
    }
    Ok(rgb)
}

enum Shape {
    Gray,
    Rgb,
    Cmyk,
}

/// `a · b / 255`, rounded as Pillow's `MULDIV255` rounds it.
fn mul_div_255(a: u32, b: u32) -> u32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

/// Gray under 8 bits: each row packed to whole bytes, most significant bits first.
fn unpack_gray(data: DecodingResult, color: ColorType, width: usize, height: usize) -> Result<Vec<u8>, ImageErrorKind> {
    let bits = color.bit_depth() as usize;
    let DecodingResult::U8(packed) = data else {
        return Err(unsupported(format!("{color:?} not in bytes")));
    };
    let row = (width * bits).div_ceil(8);
    if packed.len() != row * height {
        return Err(unsupported(format!("{} bytes for {height} rows of {row}", packed.len())));
    }
    let max = (1u32 << bits) - 1;
    let mut rgb = Vec::with_capacity(width * height * CHANNELS);
    for line in packed.chunks_exact(row) {
        for x in 0..width {
            let bit = x * bits;
            let v = (u32::from(line[bit / 8]) >> (8 - bits - bit % 8)) & max;
            rgb.extend_from_slice(&[(v * 255 / max) as u8; CHANNELS]);
        }
    }
    Ok(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pillows_rounding_of_cmyk_and_the_tiff_signatures() {
        // Pillow's cmyk2rgb on (C, M, Y, K) = (200, 0, 255, 40): 215 − 169, 215, 0.
        assert_eq!(mul_div_255(200, 215), 169);
        assert_eq!(mul_div_255(255, 215), 215);
        assert!(is_tiff(b"II*\0\x08\0\0\0") && is_tiff(b"MM\0*") && is_tiff(b"II+\0"));
        assert!(is_tiff(b"MM\0\x2b") && !is_tiff(b"II*") && !is_tiff(b"MM*\0"));
    }

    #[test]
    fn two_bit_gray_unpacks_and_scales_to_the_full_range() {
        // One row of 5 pixels at 2 bits: 00 01 10 11 | 11 (padded): 0b0001_1011, 0b1100_0000.
        let rgb = unpack_gray(DecodingResult::U8(vec![0b0001_1011, 0b1100_0000]), ColorType::Gray(2), 5, 1).unwrap();
        let gray: Vec<u8> = rgb.chunks(3).map(|p| p[0]).collect();
        assert_eq!(gray, [0, 85, 170, 255, 255]);
        assert!(unpack_gray(DecodingResult::U8(vec![0; 3]), ColorType::Gray(2), 5, 1).is_err());
    }
}
