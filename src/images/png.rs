//! Decoding PNG bytes (the `png` crate) to 8-bit RGB, the one pixel layout every later stage
//! takes.
//!
//! Gray, gray + alpha, palette and RGBA files are converted; samples under 8 bits are scaled to
//! the full range, 16-bit samples keep their high byte; an alpha channel (or a `tRNS`
//! transparency) is dropped, as Pillow's `convert("RGB")` and torchvision's `ImageReadMode.RGB`
//! drop it. An animated PNG gives its default image. Chunk checksums are checked.

use png::{ColorType, Transformations};

use super::{ImageErrorKind, ImageFormat};

/// The file signature every PNG starts with.
pub(super) const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Decodes PNG bytes to `(width, height, RGB bytes)`. Strict: a truncated file, a bad chunk
/// checksum or corrupt compressed data is an error, not a partly grey image.
pub(super) fn decode_rgb(bytes: &[u8], max_side: usize) -> Result<(usize, usize, Vec<u8>), ImageErrorKind> {
    let corrupt = |reason: String| ImageErrorKind::Corrupt { format: ImageFormat::Png, reason };
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| corrupt(e.to_string()))?;
    let (width, height) = (reader.info().width as usize, reader.info().height as usize);
    if width > max_side || height > max_side {
        return Err(ImageErrorKind::TooManyPixels { width, height, max: max_side });
    }
    let (color, _) = reader.output_color_type();
    let len = reader.output_buffer_size().ok_or_else(|| corrupt("its size overflows memory".into()))?;
    if len != width * height * color.samples() {
        return Err(corrupt(format!("decodes to {len} bytes, not {width}×{height} pixels of {color:?}")));
    }
    let mut data = vec![0u8; len];
    reader.next_frame(&mut data).map_err(|e| corrupt(e.to_string()))?;
    let rgb =
        to_rgb(data, color).ok_or_else(|| corrupt(format!("unexpected colour type {color:?} after expansion")))?;
    Ok((width, height, rgb))
}

/// Converts 8-bit samples of `color` to RGB, dropping alpha; `None` for a palette, which the
/// decoder's expansion never leaves.
fn to_rgb(data: Vec<u8>, color: ColorType) -> Option<Vec<u8>> {
    match color {
        ColorType::Rgb => Some(data),
        ColorType::Rgba => Some(super::decode::drop_alpha(data)),
        ColorType::Grayscale => Some(super::decode::gray_to_rgb(&data, 1)),
        ColorType::GrayscaleAlpha => Some(super::decode::gray_to_rgb(&data, 2)),
        ColorType::Indexed => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_colour_space_becomes_rgb() {
        assert_eq!(to_rgb(vec![1, 2, 3, 4, 5, 6], ColorType::Rgb), Some(vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(to_rgb(vec![1, 2, 3, 9, 4, 5, 6, 9], ColorType::Rgba), Some(vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(to_rgb(vec![7, 8], ColorType::Grayscale), Some(vec![7, 7, 7, 8, 8, 8]));
        assert_eq!(to_rgb(vec![7, 0, 8, 255], ColorType::GrayscaleAlpha), Some(vec![7, 7, 7, 8, 8, 8]));
        assert_eq!(to_rgb(vec![1, 2], ColorType::Indexed), None);
    }

    #[test]
    fn broken_files_are_errors() {
        let reason = |b: &[u8]| decode_rgb(b, 1 << 14).unwrap_err().to_string();
        assert!(reason(&SIGNATURE).starts_with("corrupt or truncated PNG"), "{}", reason(&SIGNATURE));
        let mut no_ihdr = SIGNATURE.to_vec();
        no_ihdr.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]);
        assert!(reason(&no_ihdr).contains("IHDR"), "{}", reason(&no_ihdr));
    }
}
