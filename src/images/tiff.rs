//! TIFF (the `tiff` crate) to 8-bit RGB: the first image of the file.
//!
//! Uncompressed, LZW, Deflate, PackBits, CCITT fax and JPEG-compressed strips or tiles, little-
//! or big-endian, classic or BigTIFF. What becomes RGB, as Pillow's `convert("RGB")` makes it:
//! - gray at 1, 2, 4, 8 or 16 bits (samples under 8 bits scaled to 0–255), with or without
//!   alpha; RGB and RGBA at 8 or 16 bits; alpha dropped;
//! - CMYK (8 bits) with Pillow's formula, `R = (255 − K) − C·(255 − K)/255`;
//! - palette images at 1–8 bits, colours from the colour map's high bytes (as Pillow takes
//!   them). The crate refuses these, so their indices are decoded as gray from a copy whose
//!   photometric tag is rewritten (classic TIFF; not BigTIFF);
//! - 16-bit samples keep their high byte, as for PNG.
//!
//! Not read (an [`ImageErrorKind::Unsupported`] naming the kind, so a loader counts the file):
//! float or signed samples; Lab, YCbCr stored raw and other multi-band images.

use std::io::Cursor;

use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::Tag;
use tiff::{ColorType, TiffError};

use super::decode::{drop_alpha, gray_to_rgb};
use super::{ImageErrorKind, ImageFormat};

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
    let color = match decoder.colortype() {
        Ok(color) => color,
        Err(TiffError::UnsupportedError(_)) if photometric(&mut decoder) == Some(PALETTE) => {
            return Ok((width, height, decode_palette(bytes, &mut decoder, width, height)?));
        }
        Err(e) => return Err(classify(e)),
    };
    let data = decoder.read_image().map_err(classify)?;
    let rgb = to_rgb(data, color, width, height)?;
    Ok((width, height, rgb))
}

/// PhotometricInterpretation values: a palette image, and gray with black at zero.
const PALETTE: u16 = 3;
const BLACK_IS_ZERO: u16 = 1;

fn photometric(decoder: &mut Decoder<Cursor<&[u8]>>) -> Option<u16> {
    decoder.find_tag_unsigned(Tag::PhotometricInterpretation).ok().flatten()
}

/// A palette image: the colour map from its tags, the indices decoded as gray from a copy of the
/// file that says "gray" instead of "palette" (the crate decodes the same bytes either way).
fn decode_palette(
    bytes: &[u8],
    decoder: &mut Decoder<Cursor<&[u8]>>,
    width: usize,
    height: usize,
) -> Result<Vec<u8>, ImageErrorKind> {
    let corrupt = |reason: String| ImageErrorKind::Corrupt { format: ImageFormat::Tiff, reason };
    let map: Vec<u16> = decoder
        .find_tag_unsigned_vec(Tag::ColorMap)
        .map_err(classify)?
        .ok_or_else(|| corrupt("a palette image without a colour map".into()))?;
    let patched = with_photometric(bytes, BLACK_IS_ZERO)
        .ok_or_else(|| unsupported("a palette image in a BigTIFF or with an odd photometric tag".into()))?;
    let mut indexed = Decoder::new(Cursor::new(&patched[..])).map_err(classify)?;
    let bits = match indexed.colortype().map_err(classify)? {
        ColorType::Gray(bits @ (1 | 2 | 4 | 8)) => usize::from(bits),
        other => return Err(unsupported(format!("a palette image of {other:?} indices"))),
    };
    let entries = 1 << bits;
    if map.len() != 3 * entries {
        return Err(corrupt(format!("a colour map of {} values for {bits}-bit indices", map.len())));
    }
    // The map holds every red, then every green, then every blue, in 16 bits.
    let colour = |i: usize| [0, 1, 2].map(|c| (map[c * entries + i] >> 8) as u8);
    let indices = unpack(indexed.read_image().map_err(classify)?, bits, width, height)?;
    Ok(indices.into_iter().flat_map(|i| colour(usize::from(i))).collect())
}

/// A copy of classic-TIFF `bytes` whose first image's PhotometricInterpretation tag says
/// `value`; `None` for a BigTIFF, or a tag that is not one SHORT.
fn with_photometric(bytes: &[u8], value: u16) -> Option<Vec<u8>> {
    let little = bytes.starts_with(b"II*\0");
    if !little && !bytes.starts_with(b"MM\0*") {
        return None;
    }
    let u16_at = |at: usize| {
        let b: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    };
    let ifd = u32_at(4)? as usize;
    // Each entry: tag, type, count (u32), then the value (a SHORT sits in the first 2 bytes).
    let at = (0..usize::from(u16_at(ifd)?)).map(|k| ifd + 2 + 12 * k).find(|&e| u16_at(e) == Some(262))?;
    if u16_at(at + 2)? != 3 || u32_at(at + 4)? != 1 {
        return None;
    }
    let mut copy = bytes.to_vec();
    let v = if little { value.to_le_bytes() } else { value.to_be_bytes() };
    copy[at + 8..at + 10].copy_from_slice(&v);
    Some(copy)
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
    // Gray + alpha comes as a two-sample "multiband" image.
    let samples = match color {
        ColorType::Gray(1 | 2 | 4) => return unpack_gray(data, color, width, height),
        ColorType::Gray(8 | 16) => 1,
        ColorType::Multiband { bit_depth: 8 | 16, num_samples: 2 } => 2,
        ColorType::RGB(8 | 16) => 3,
        ColorType::RGBA(8 | 16) | ColorType::CMYK(8) => 4,
        other => return Err(unsupported(format!("{other:?} pixels"))),
    };
    let bytes = match data {
        DecodingResult::U8(v) => v,
        // 16-bit samples keep their high byte.
        DecodingResult::U16(v) => v.into_iter().map(|s| (s >> 8) as u8).collect(),
        _ => return Err(unsupported("float or signed samples".into())),
    };
    if bytes.len() != width * height * samples {
        // A planar file, whose planes the crate reads one at a time, lands here too.
        return Err(unsupported(format!(
            "{} samples for {width}×{height} pixels of {samples} (planes stored apart?)",
            bytes.len()
        )));
    }
    Ok(match color {
        ColorType::RGB(_) => bytes,
        ColorType::RGBA(_) => drop_alpha(bytes),
        ColorType::CMYK(_) => cmyk_to_rgb(&bytes),
        _ => gray_to_rgb(&bytes, samples),
    })
}

/// CMYK to RGB as Pillow's `cmyk2rgb` does it: `R = (255 − K) − C·(255 − K)/255`, and so on.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    cmyk.chunks_exact(4)
        .flat_map(|s| {
            let white = 255 - u32::from(s[3]);
            [0, 1, 2].map(|c| (white - mul_div_255(u32::from(s[c]), white)) as u8)
        })
        .collect()
}

/// `a · b / 255`, rounded as Pillow's `MULDIV255` rounds it.
fn mul_div_255(a: u32, b: u32) -> u32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

/// Gray under 8 bits, scaled to 0–255.
fn unpack_gray(data: DecodingResult, color: ColorType, width: usize, height: usize) -> Result<Vec<u8>, ImageErrorKind> {
    let bits = usize::from(color.bit_depth());
    let max = (1u32 << bits) - 1;
    let mut values = unpack(data, bits, width, height)?;
    values.iter_mut().for_each(|v| *v = (u32::from(*v) * 255 / max) as u8);
    Ok(gray_to_rgb(&values, 1))
}

/// Samples of `bits` (1, 2, 4 or 8) each, one per pixel, rows packed to whole bytes with the most
/// significant bits first: one byte per sample.
fn unpack(data: DecodingResult, bits: usize, width: usize, height: usize) -> Result<Vec<u8>, ImageErrorKind> {
    let DecodingResult::U8(packed) = data else {
        return Err(unsupported(format!("{bits}-bit samples not in bytes")));
    };
    let row = (width * bits).div_ceil(8);
    if packed.len() != row * height {
        return Err(unsupported(format!("{} bytes for {height} rows of {row}", packed.len())));
    }
    if bits == 8 {
        return Ok(packed);
    }
    let mask = (1u8 << bits) - 1;
    let mut values = Vec::with_capacity(width * height);
    for line in packed.chunks_exact(row) {
        values.extend((0..width).map(|x| (line[x * bits / 8] >> (8 - bits - x * bits % 8)) & mask));
    }
    Ok(values)
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
    fn the_photometric_tag_is_rewritten_in_either_byte_order() {
        // A big-endian header, an IFD at 8 with one entry: tag 262, SHORT, count 1, value 3.
        let mut be = b"MM\0*\0\0\0\x08\0\x01".to_vec();
        be.extend_from_slice(&[1, 6, 0, 3, 0, 0, 0, 1, 0, 3, 0, 0]);
        let copy = with_photometric(&be, BLACK_IS_ZERO).unwrap();
        assert_eq!(&copy[18..20], &[0, 1]);
        assert_eq!(copy.len(), be.len());
        let le: Vec<u8> = [&b"II*\0\x08\0\0\0\x01\0"[..], &[6, 1, 3, 0, 1, 0, 0, 0, 3, 0, 0, 0]].concat();
        assert_eq!(&with_photometric(&le, BLACK_IS_ZERO).unwrap()[18..20], &[1, 0]);
        // A LONG where a SHORT belongs, a BigTIFF: not touched.
        let mut long = be.clone();
        long[13] = 4;
        assert!(with_photometric(&long, BLACK_IS_ZERO).is_none());
        assert!(with_photometric(b"II+\0\x08\0\0\0", BLACK_IS_ZERO).is_none());
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
