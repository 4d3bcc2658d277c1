//! BMP (`zune-bmp`) to 8-bit RGB, and BMP files for generated sets.
//!
//! Every header version (OS/2 to V5), 1 to 32 bits per pixel, palettes, bit fields and RLE
//! compression; bottom-up and top-down rows. Gray becomes RGB and alpha is dropped, as Pillow's
//! `convert("RGB")` does.

use zune_bmp::BmpDecoder;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use super::{CHANNELS, ImageErrorKind, ImageFormat};

/// Whether `bytes` start like a BMP file: `BM` and a known header size.
pub(super) fn is_bmp(bytes: &[u8]) -> bool {
    zune_bmp::probe_bmp(bytes)
}

/// Decodes BMP bytes to `(width, height, RGB bytes)`; a truncated or corrupt file is an error.
pub(super) fn decode_rgb(bytes: &[u8], max_side: usize) -> Result<(usize, usize, Vec<u8>), ImageErrorKind> {
    let corrupt = |reason: String| ImageErrorKind::Corrupt { format: ImageFormat::Bmp, reason };
    // The decoder's own limit is set past ours, so that ours gives the error (with the sides).
    let options = DecoderOptions::default().set_max_width(usize::MAX).set_max_height(usize::MAX);
    let mut decoder = BmpDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| corrupt(reason(&e)))?;
    let (width, height) = decoder.dimensions().ok_or_else(|| corrupt("no header".into()))?;
    if width > max_side || height > max_side {
        return Err(ImageErrorKind::TooManyPixels { width, height, max: max_side });
    }
    // zune-bmp fills what a cut file lacks with zeros; refuse it instead.
    check_whole(bytes).map_err(corrupt)?;
    let colorspace = decoder.colorspace().ok_or_else(|| corrupt("no header".into()))?;
    let data = decoder.decode().map_err(|e| corrupt(reason(&e)))?;
    let samples = colorspace.num_components();
    if data.len() != width * height * samples {
        return Err(corrupt(format!("decodes to {} bytes, not {width}×{height} pixels of {colorspace:?}", data.len())));
    }
    let rgb = match colorspace {
        ColorSpace::RGB => data,
        ColorSpace::RGBA => super::decode::drop_alpha(data),
        ColorSpace::Luma => super::decode::gray_to_rgb(&data, 1),
        other => return Err(corrupt(format!("unexpected colour space {other:?}"))),
    };
    Ok((width, height, rgb))
}

/// Whether a BMP holds all its pixel data: the rows of an uncompressed file (`|height|` rows
/// from the data offset, each padded to 4 bytes), or an RLE stream up to its end-of-bitmap
/// marker. Headers the decoder has read are trusted here; other compressions (embedded JPEG
/// or PNG) are left to it.
fn check_whole(bytes: &[u8]) -> Result<(), String> {
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])));
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let header = || "cut short in its header".to_owned();
    let offset = u32_at(10).ok_or_else(header)? as usize;
    let core = u32_at(14).ok_or_else(header)? == 12;
    let side = |at| u32_at(at).map(|v| u64::from((v as i32).unsigned_abs()));
    let (width, height, bits, compression) = if core {
        // OS/2 BITMAPCOREHEADER: 16-bit sides, never compressed.
        (u16_at(18), u16_at(20), u16_at(24), Some(0))
    } else {
        (side(18), side(22), u16_at(28), u32_at(30))
    };
    let (Some(width), Some(height), Some(bits), Some(compression)) = (width, height, bits, compression) else {
        return Err(header());
    };
    let len = bytes.len();
    let cut = |end: u64| format!("cut short: {len} bytes, where its pixels end at byte {end}");
    match compression {
        // BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: rows as they are.
        0 | 3 | 6 => {
            let end = (width * bits).div_ceil(32) * 4 * height + offset as u64;
            if (len as u64) < end { Err(cut(end)) } else { Ok(()) }
        }
        // BI_RLE8, BI_RLE4.
        1 | 2 => rle_ends(bytes.get(offset..).unwrap_or_default(), compression == 2).then_some(()).ok_or_else(|| {
            format!("cut short: its RLE data ({} bytes) has no end-of-bitmap marker", len.saturating_sub(offset))
        }),
        _ => Ok(()),
    }
}

/// Whether an RLE8 (or RLE4) stream reaches its end-of-bitmap marker (`00 01`) within `data`.
fn rle_ends(data: &[u8], four_bit: bool) -> bool {
    let mut at = 0;
    while let Some(&[count, value]) = data.get(at..at + 2) {
        at += 2;
        match (count, value) {
            (0, 1) => return true,
            (0, 0) => {}
            // A delta: two more bytes, the offsets.
            (0, 2) => at += 2,
            // A literal stretch of `value` pixels, padded to an even number of bytes.
            (0, n) => {
                let n = usize::from(n);
                at += if four_bit { n.div_ceil(2) } else { n }.next_multiple_of(2);
            }
            // A run: the two bytes were all of it.
            _ => {}
        }
    }
    false
}

/// The decoder's error as one line: it has only `Debug`, which ends with a newline.
fn reason(e: &zune_bmp::BmpDecoderErrors) -> String {
    format!("{e:?}").trim_end().to_owned()
}

/// Encodes 8-bit RGB pixels as an uncompressed 24-bit BMP (bottom-up rows, each padded to 4
/// bytes): lossless, and what most tools write.
pub(super) fn encode(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, String> {
    const HEADERS: usize = 14 + 40;
    let (w, h) = (width as usize, height as usize);
    let row = (w * CHANNELS).next_multiple_of(4);
    let size = HEADERS + row * h;
    let too_large = || format!("{width}×{height} does not fit a BMP's 32-bit sizes");
    let file_size = u32::try_from(size).map_err(|_| too_large())?;
    let (sw, sh) = (i32::try_from(width).map_err(|_| too_large())?, i32::try_from(height).map_err(|_| too_large())?);
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&file_size.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(HEADERS as u32).to_le_bytes());
    // BITMAPINFOHEADER: size, width, height (positive: bottom-up), planes, bits, BI_RGB,
    // image size, 2835 pixels per metre (72 dpi) both ways, no palette.
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&sw.to_le_bytes());
    out.extend_from_slice(&sh.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&((row * h) as u32).to_le_bytes());
    out.extend_from_slice(&2835i32.to_le_bytes());
    out.extend_from_slice(&2835i32.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    for y in (0..h).rev() {
        for px in rgb[y * w * CHANNELS..][..w * CHANNELS].chunks_exact(CHANNELS) {
            out.extend_from_slice(&[px[2], px[1], px[0]]);
        }
        out.resize(out.len() + row - w * CHANNELS, 0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_bmp_decodes_to_the_same_pixels() {
        // 5 pixels a row: 15 bytes, padded to 16, so row padding is exercised.
        let (w, h) = (5u32, 3u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 17 % 251) as u8).collect();
        let bytes = encode(w, h, &rgb).unwrap();
        assert!(is_bmp(&bytes));
        assert_eq!(decode_rgb(&bytes, 1 << 14).unwrap(), (5, 3, rgb));
    }

    #[test]
    fn large_truncated_and_headerless_files_are_errors() {
        let bytes = encode(300, 2, &[7; 300 * 2 * 3]).unwrap();
        assert!(matches!(decode_rgb(&bytes, 256), Err(ImageErrorKind::TooManyPixels { width: 300, .. })));
        let cut = &bytes[..bytes.len() - 10];
        assert!(decode_rgb(cut, 1 << 14).is_err(), "a BMP cut short must not decode");
        assert!(!is_bmp(b"BM but text"));
    }
}
